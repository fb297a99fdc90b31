// The comparison page: any jobs, with the sweep page's overlays and each job against the best of them.
import { api, badge, classColor, el, fmtMetric, TERMINAL } from "/static/common.js";
import { METRICS, baselineOf, bestOf, drawDistanceOverlay, drawTrainingOverlays, drawValidationOverlay, fmtInterval, loadSeries,
  metricOf, summaryOf } from "/static/overlays.js";

const root = document.getElementById("compare");
const ids = root.dataset.jobIds;
const series = new Map();
const distances = new Map();

const range = (lo, hi) => `[${fmtMetric(lo, 4)}, ${fmtMetric(hi, 4)}]`;

function against(row, best) {
  if (!row) return "no finished evaluation";
  if (row.job_id === best) return "highest";
  if (row.method === "paired bootstrap") {
    return `${row.distinguishable ? "below, beyond the noise" : "within noise"}: difference ${fmtMetric(row.diff, 4)} ${range(row.diff_low, row.diff_high)} (paired bootstrap, ${row.queries} queries)`;
  }
  return `${row.distinguishable ? "below, beyond the noise" : "within noise"}: difference ${fmtMetric(row.diff, 4)} (interval overlap: no per-query values)`;
}

function drawTable(data) {
  const rows = new Map(data.rows.map((r) => [r.job_id, r]));
  document.querySelector("#compare-table tbody").replaceChildren(...data.jobs.map((j) => {
    const best = bestOf(j), s = summaryOf(j), test = rows.get(j.id)?.locked_test;
    return el("tr", { class: j.id === data.best_job ? "best" : "", dataset: { jobId: j.id } },
      el("td", { class: "num" }, el("a", { href: `/jobs/${j.id}` }, j.id)),
      el("td", {}, j.name, s.no_gain ? el("span", { class: "warn-tag no-gain", title: s.no_gain }, "no gain over step 0") : null),
      el("td", {}, j.sweep_id ? el("a", { href: `/sweeps/${j.sweep_id}` }, `sweep ${j.sweep_id}`) : "–"),
      el("td", {}, badge(j.status)),
      el("td", { class: "num" }, best.step ?? "–"),
      ...METRICS.map(([m]) => el("td", { class: "num" }, fmtInterval(best.metrics, m))),
      el("td", { class: "num" }, fmtMetric(metricOf(baselineOf(j), METRICS[0][0]), 3)),
      el("td", { class: "against" }, against(rows.get(j.id), data.best_job)),
      el("td", { class: "num locked-test" }, test ? `${fmtMetric(test.mean, 4)} ${range(test.low, test.high)}` : "–"));
  }));
}

async function refresh() {
  const data = await api(`/api/compare?jobs=${encodeURIComponent(ids)}`);
  const order = data.jobs.map((j) => j.id);
  const style = (j) => ({ color: classColor(order.indexOf(j.id), order.length), dash: "solid" });
  const name = (j) => `#${j.id} ${j.name}`;
  drawTable(data);
  await loadSeries(data.jobs, series);
  drawValidationOverlay("validation-overlay", data.jobs, series, style, name);
  drawTrainingOverlays(data.jobs, series, style, name);
  await drawDistanceOverlay("distance-overlay", data.jobs, style, name, distances);
  if (data.jobs.some((j) => !TERMINAL.has(j.status))) setTimeout(refresh, 3000);
}

window.addEventListener("load", () => refresh().catch((err) => {
  const box = document.getElementById("compare-error");
  box.hidden = false;
  box.textContent = `Could not compare: ${err.message}`;
}));
