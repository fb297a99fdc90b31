// Sweep comparison: curves per run, final metrics against margin, the runs table, the recommendation.
// Polled every 3 s while a run is queued or running; a failed poll says so and tries again.
import { CHART_CONFIG, CHART_LAYOUT, effectiveWindow, movingAverage } from "/static/charts.js";
import { api, el, badge, fmtMetric } from "/static/common.js";
import { showLayouts } from "/static/sweep_layouts.js";

const root = document.getElementById("sweep");
const sweepId = root.dataset.sweepId;
const status = document.getElementById("sweep-status");
const METRICS = [["val/mean_average_precision_at_r", "MAP@R"], ["val/r_precision", "R-Precision"], ["val/precision_at_1", "P@1"]];
const DASHES = ["solid", "dash", "dot", "dashdot", "longdash"];
const SMOOTH = 50;
const POLL_MS = 3000;
const RETRY_MS = 10000;
const LIVE = ["queued", "running"];
const series = new Map(); // job id -> {name: {step, value}, final}
let sortKey = "id";
let sortDir = 1;

/** The sweep pages' charts: the job page's look, a legend at the side (one entry per run). */
const SWEEP_LAYOUT = { ...CHART_LAYOUT, margin: { t: 10, r: 10, b: 40, l: 55 }, legend: { font: { size: 11 } } };

function colourOf(margins, m) {
  const t = margins.length > 1 ? margins.indexOf(m) / (margins.length - 1) : 0.5;
  return `hsl(${Math.round(220 - 200 * t)}, 70%, 45%)`; // blue (small margin) to orange (large)
}

function label(job, axes) {
  return [...axes.map((a) => `${a}=${job.spec[a]}`), `seed=${job.spec.seed}`].join(" ");
}

const axis = (letter, k) => `${letter}${k ? k + 1 : ""}`;

async function loadSeries(jobs) {
  const stale = jobs.filter((j) => !series.has(j.id) || LIVE.includes(j.status) || !series.get(j.id).final);
  await Promise.all(stale.map(async (j) => {
    const data = await api(`/api/jobs/${j.id}/metrics?names=train/loss,val/loss,train/triplets_semihard&max_points=600`);
    series.set(j.id, { ...data.series, final: !LIVE.includes(j.status) });
  }));
}

/** A metric's moving average as a Plotly line. */
function smoothed(s, name, extra) {
  return { x: s.step, y: movingAverage(s.step, s.value, effectiveWindow(s.step, SMOOTH)), name, mode: "lines", ...extra };
}

function drawCurves(sweep, margins, losses) {
  const loss = [];
  const hard = [];
  for (const j of sweep.job_list) {
    const s = series.get(j.id) || {};
    const line = { color: colourOf(margins, j.spec.margin), dash: DASHES[losses.indexOf(j.spec.loss) % DASHES.length], width: 1.5 };
    const name = label(j, sweep.axes);
    const group = String(j.id);
    if (s["train/loss"]) loss.push(smoothed(s["train/loss"], name, { line, legendgroup: group }));
    if (s["val/loss"]) {
      const v = s["val/loss"];
      const marker = { color: line.color, size: 6 };
      loss.push({ x: v.step, y: v.value, name: `${name} (val)`, mode: "markers", marker, legendgroup: group, showlegend: false });
    }
    if (s["train/triplets_semihard"]) hard.push(smoothed(s["train/triplets_semihard"], name, { line }));
  }
  const layout = (title, yaxis = {}) => ({
    ...SWEEP_LAYOUT, height: 360, xaxis: { title: { text: "step" } }, yaxis: { title: { text: title }, ...yaxis },
  });
  Plotly.react("loss-overlay", loss, layout("loss"), CHART_CONFIG);
  Plotly.react("hardness-overlay", hard, layout("semi-hard share", { range: [0, 1] }), CHART_CONFIG);
}

/** Mean of the succeeded runs at each margin, with the span of the runs as asymmetric error bars. */
function marginPoints(sweep, margins, loss, metric) {
  const xs = [];
  const mean = [];
  const lo = [];
  const hi = [];
  for (const m of margins) {
    const values = sweep.job_list
      .filter((j) => j.spec.loss === loss && j.spec.margin === m && j.status === "succeeded")
      .map((j) => j.metrics[metric])
      .filter((v) => v !== null && v !== undefined);
    if (!values.length) continue;
    const avg = values.reduce((a, b) => a + b, 0) / values.length;
    xs.push(m);
    mean.push(avg);
    lo.push(avg - Math.min(...values));
    hi.push(Math.max(...values) - avg);
  }
  return { x: xs, y: mean, error_y: { type: "data", symmetric: false, array: hi, arrayminus: lo, visible: true } };
}

function drawMetricVsMargin(sweep, margins, losses) {
  const traces = METRICS.flatMap(([metric], k) => losses.map((loss, li) => ({
    ...marginPoints(sweep, margins, loss, metric), name: loss, legendgroup: loss, showlegend: k === 0, mode: "lines+markers",
    xaxis: axis("x", k), yaxis: axis("y", k), line: { dash: DASHES[li % DASHES.length] },
  })));
  const layout = {
    ...SWEEP_LAYOUT, grid: { rows: 1, columns: 3, pattern: "independent" }, margin: { t: 30, r: 10, b: 40, l: 50 }, height: 320,
    annotations: METRICS.map(([, title], k) => ({
      text: title, xref: `${axis("x", k)} domain`, yref: `${axis("y", k)} domain`, x: 0.5, y: 1.12, showarrow: false,
    })),
  };
  METRICS.forEach((_, k) => { layout[axis("xaxis", k)] = { title: { text: "margin" } }; });
  Plotly.react("metric-vs-margin", traces, layout, CHART_CONFIG);
}

function bestRuns(sweep) {
  const best = new Map(); // loss -> {id, v}: the highest MAP@R among its succeeded runs
  for (const j of sweep.job_list) {
    const v = j.metrics["val/mean_average_precision_at_r"];
    if (j.status !== "succeeded" || v === undefined || v === null) continue;
    if (!best.has(j.spec.loss) || v > best.get(j.spec.loss).v) best.set(j.spec.loss, { id: j.id, v });
  }
  return best;
}

function drawTable(sweep) {
  const best = bestRuns(sweep);
  const columns = [["id", "#"], ...sweep.axes.map((a) => [a, a]), ["seed", "seed"], ["status", "status"], ...METRICS];
  const value = (j, key) => (key === "id" ? j.id : key === "status" ? j.status : key.startsWith("val/") ? j.metrics[key] : j.spec[key]);
  const head = document.querySelector("#runs thead tr");
  head.replaceChildren(...columns.map(([key, title]) => {
    const sorted = key === sortKey ? (sortDir > 0 ? "ascending" : "descending") : "none";
    const th = el("th", { class: "sortable", "aria-sort": sorted, tabindex: 0 }, title);
    th.addEventListener("click", () => {
      sortDir = key === sortKey ? -sortDir : -1;
      sortKey = key;
      drawTable(sweep);
    });
    return th;
  }));
  const rows = [...sweep.job_list].sort((a, b) => {
    const x = value(a, sortKey);
    const y = value(b, sortKey);
    if (x === y) return 0;
    if (x === undefined || x === null) return 1;
    if (y === undefined || y === null) return -1;
    return (x < y ? -1 : 1) * sortDir;
  });
  const cell = (j, key) => {
    const isBest = best.get(j.spec.loss)?.id === j.id;
    if (key === "id") {
      const star = isBest ? el("span", { title: `best ${j.spec.loss} run (MAP@R)` }, " ★") : null;
      return el("td", { class: "num" }, el("a", { href: `/jobs/${j.id}` }, j.id), star);
    }
    if (key === "status") return el("td", {}, badge(j.status));
    if (key.startsWith("val/")) return el("td", { class: "num" }, fmtMetric(j.metrics[key], 4));
    return el("td", {}, String(j.spec[key]));
  };
  document.querySelector("#runs tbody").replaceChildren(...rows.map((j) => el("tr", { class: best.get(j.spec.loss)?.id === j.id ? "best" : "" },
    ...columns.map(([key]) => cell(j, key)))));
}

function drawRecommendations(sweep) {
  const box = document.getElementById("recommendations");
  if (!sweep.recommendations.length) return;
  box.classList.remove("muted");
  box.replaceChildren(...sweep.recommendations.map((r) => el("p", {},
    el("strong", {}, `${r.loss}: margin ${r.margin}`),
    ` — MAP@R ${fmtMetric(r.mean, 4)} (runs from ${fmtMetric(r.min, 4)} to ${fmtMetric(r.max, 4)}). `,
    el("span", { class: "muted" }, `Rule: ${r.rule}.`))));
}

let timer = null;

async function refresh() {
  clearTimeout(timer);
  let sweep;
  try {
    sweep = await api(`/api/sweeps/${sweepId}`);
    await loadSeries(sweep.job_list);
  } catch (err) {
    status.textContent = `could not refresh: ${err.message}; trying again`;
    timer = setTimeout(refresh, RETRY_MS);
    return;
  }
  const margins = [...new Set(sweep.job_list.map((j) => j.spec.margin))].sort((a, b) => a - b);
  const losses = [...new Set(sweep.job_list.map((j) => j.spec.loss))];
  status.textContent = Object.entries(sweep.status_counts).map(([k, v]) => `${v} ${k}`).join(", ");
  drawCurves(sweep, margins, losses);
  drawMetricVsMargin(sweep, margins, losses);
  drawTable(sweep);
  drawRecommendations(sweep);
  showLayouts(sweep, (job) => label(job, sweep.axes));
  const live = sweep.job_list.some((j) => LIVE.includes(j.status));
  document.getElementById("cancel-sweep").disabled = !live;
  if (live) timer = setTimeout(refresh, POLL_MS);
}

document.getElementById("cancel-sweep").addEventListener("click", async () => {
  try {
    await api(`/api/sweeps/${sweepId}/cancel`, { method: "POST" });
  } catch (err) {
    status.textContent = `could not cancel: ${err.message}`;
    return;
  }
  refresh();
});

window.addEventListener("load", refresh);
