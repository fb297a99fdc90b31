// Sweep comparison: curves per run, final metrics against margin, the runs table, the recommendation.
import { effectiveWindow, movingAverage } from "/static/charts.js";
import { api, el, badge, fmtMetric } from "/static/common.js";
import { showLayouts } from "/static/sweep_layouts.js";

const root = document.getElementById("sweep");
const sweepId = root.dataset.sweepId;
const METRICS = [["val/mean_average_precision_at_r", "MAP@R"], ["val/r_precision", "R-Precision"], ["val/precision_at_1", "P@1"]];
const DASHES = ["solid", "dash", "dot", "dashdot", "longdash"];
const SMOOTH = 50;
const series = new Map(); // job id -> {name: {step, value}}
let sortKey = "id", sortDir = 1;

function colourOf(margins, m) {
  const i = margins.indexOf(m), t = margins.length > 1 ? i / (margins.length - 1) : 0.5;
  return `hsl(${Math.round(220 - 200 * t)}, 70%, 45%)`; // blue (small margin) to orange (large)
}

function label(job, axes) {
  return [...axes.map((a) => `${a}=${job.spec[a]}`), `seed=${job.spec.seed}`].join(" ");
}

async function loadSeries(jobs) {
  await Promise.all(jobs.filter((j) => !series.has(j.id) || ["queued", "running"].includes(j.status) || !series.get(j.id).final).map(async (j) => {
    const data = await api(`/api/jobs/${j.id}/metrics?names=train/loss,val/loss,train/triplets_semihard&max_points=600`);
    series.set(j.id, { ...data.series, final: !["queued", "running"].includes(j.status) });
  }));
}

function drawCurves(sweep, margins, losses) {
  const loss = [], hard = [];
  for (const j of sweep.job_list) {
    const s = series.get(j.id) || {};
    const style = { color: colourOf(margins, j.spec.margin), dash: DASHES[losses.indexOf(j.spec.loss) % DASHES.length], width: 1.5 };
    const name = label(j, sweep.axes);
    if (s["train/loss"]) loss.push({ x: s["train/loss"].step, y: movingAverage(s["train/loss"].step, s["train/loss"].value, effectiveWindow(s["train/loss"].step, SMOOTH)), name, mode: "lines", line: style, legendgroup: String(j.id) });
    if (s["val/loss"]) loss.push({ x: s["val/loss"].step, y: s["val/loss"].value, name: `${name} (val)`, mode: "markers", marker: { color: style.color, size: 6 }, legendgroup: String(j.id), showlegend: false });
    if (s["train/triplets_semihard"]) hard.push({ x: s["train/triplets_semihard"].step, y: movingAverage(s["train/triplets_semihard"].step, s["train/triplets_semihard"].value, effectiveWindow(s["train/triplets_semihard"].step, SMOOTH)), name, mode: "lines", line: style });
  }
  const layout = (y) => ({ margin: { t: 10, r: 10, b: 40, l: 55 }, xaxis: { title: { text: "step" } }, yaxis: { title: { text: y } }, legend: { font: { size: 11 } }, height: 360 });
  Plotly.react("loss-overlay", loss, layout("loss"), { responsive: true, displaylogo: false });
  Plotly.react("hardness-overlay", hard, { ...layout("semi-hard share"), yaxis: { title: { text: "semi-hard share" }, range: [0, 1] } }, { responsive: true, displaylogo: false });
}

function drawMetricVsMargin(sweep, margins, losses) {
  const traces = [];
  METRICS.forEach(([metric, title], k) => {
    for (const [li, loss] of losses.entries()) {
      const xs = [], mean = [], lo = [], hi = [];
      for (const m of margins) {
        const values = sweep.job_list.filter((j) => j.spec.loss === loss && j.spec.margin === m && j.status === "succeeded")
          .map((j) => j.metrics[metric]).filter((v) => v !== null && v !== undefined);
        if (!values.length) continue;
        const avg = values.reduce((a, b) => a + b, 0) / values.length;
        xs.push(m); mean.push(avg); lo.push(avg - Math.min(...values)); hi.push(Math.max(...values) - avg);
      }
      traces.push({ x: xs, y: mean, name: loss, legendgroup: loss, showlegend: k === 0, mode: "lines+markers", xaxis: `x${k ? k + 1 : ""}`, yaxis: `y${k ? k + 1 : ""}`,
        line: { dash: DASHES[li % DASHES.length] }, error_y: { type: "data", symmetric: false, array: hi, arrayminus: lo, visible: true } });
    }
  });
  const layout = { grid: { rows: 1, columns: 3, pattern: "independent" }, margin: { t: 30, r: 10, b: 40, l: 50 }, height: 320,
    annotations: METRICS.map(([, title], k) => ({ text: title, xref: `x${k ? k + 1 : ""} domain`, yref: `y${k ? k + 1 : ""} domain`, x: 0.5, y: 1.12, showarrow: false })) };
  for (let k = 1; k <= 3; k++) layout[`xaxis${k === 1 ? "" : k}`] = { title: { text: "margin" } };
  Plotly.react("metric-vs-margin", traces, layout, { responsive: true, displaylogo: false });
}

function drawTable(sweep) {
  const best = new Map();
  for (const j of sweep.job_list) {
    const v = j.metrics["val/mean_average_precision_at_r"];
    if (j.status === "succeeded" && v !== undefined && v !== null && (!best.has(j.spec.loss) || v > best.get(j.spec.loss).v)) best.set(j.spec.loss, { id: j.id, v });
  }
  const columns = [["id", "#"], ...sweep.axes.map((a) => [a, a]), ["seed", "seed"], ["status", "status"], ...METRICS.map(([m, t]) => [m, t])];
  const value = (j, key) => (key === "id" ? j.id : key === "status" ? j.status : key.startsWith("val/") ? j.metrics[key] : j.spec[key]);
  const head = document.querySelector("#runs thead tr");
  head.replaceChildren(...columns.map(([key, title]) => {
    const th = el("th", { class: "sortable", "aria-sort": key === sortKey ? (sortDir > 0 ? "ascending" : "descending") : "none", tabindex: 0 }, title);
    th.addEventListener("click", () => { sortDir = key === sortKey ? -sortDir : -1; sortKey = key; drawTable(sweep); });
    return th;
  }));
  const rows = [...sweep.job_list].sort((a, b) => {
    const x = value(a, sortKey), y = value(b, sortKey);
    if (x === y) return 0;
    if (x === undefined || x === null) return 1;
    if (y === undefined || y === null) return -1;
    return (x < y ? -1 : 1) * sortDir;
  });
  document.querySelector("#runs tbody").replaceChildren(...rows.map((j) => el("tr", { class: best.get(j.spec.loss)?.id === j.id ? "best" : "" },
    ...columns.map(([key]) => {
      if (key === "id") return el("td", { class: "num" }, el("a", { href: `/jobs/${j.id}` }, j.id), best.get(j.spec.loss)?.id === j.id ? el("span", { title: `best ${j.spec.loss} run (MAP@R)` }, " ★") : null);
      if (key === "status") return el("td", {}, badge(j.status));
      if (key.startsWith("val/")) return el("td", { class: "num" }, fmtMetric(j.metrics[key], 4));
      return el("td", {}, String(j.spec[key]));
    }))));
}

function drawRecommendations(sweep) {
  const box = document.getElementById("recommendations");
  if (!sweep.recommendations.length) return;
  box.classList.remove("muted");
  box.replaceChildren(...sweep.recommendations.map((r) => el("p", {},
    el("strong", {}, `${r.loss}: margin ${r.margin}`), ` — MAP@R ${fmtMetric(r.mean, 4)} (runs from ${fmtMetric(r.min, 4)} to ${fmtMetric(r.max, 4)}). `,
    el("span", { class: "muted" }, `Rule: ${r.rule}.`))));
}

async function refresh() {
  const sweep = await api(`/api/sweeps/${sweepId}`);
  const margins = [...new Set(sweep.job_list.map((j) => j.spec.margin))].sort((a, b) => a - b);
  const losses = [...new Set(sweep.job_list.map((j) => j.spec.loss))];
  document.getElementById("sweep-status").textContent = Object.entries(sweep.status_counts).map(([k, v]) => `${v} ${k}`).join(", ");
  await loadSeries(sweep.job_list);
  drawCurves(sweep, margins, losses);
  drawMetricVsMargin(sweep, margins, losses);
  drawTable(sweep);
  drawRecommendations(sweep);
  showLayouts(sweep, (job) => label(job, sweep.axes));
  const live = sweep.job_list.some((j) => ["queued", "running"].includes(j.status));
  document.getElementById("cancel-sweep").disabled = !live;
  if (live) setTimeout(refresh, 3000);
}

document.getElementById("cancel-sweep").addEventListener("click", async () => {
  await api(`/api/sweeps/${sweepId}/cancel`, { method: "POST" });
  refresh();
});

window.addEventListener("load", refresh);
