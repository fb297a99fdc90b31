// Overlays of several jobs, shared by the sweep page and the comparison page: training curves, validation curves with
// each run's best step, distance histograms, and the numbers a table needs (best, step 0, locked test, with intervals).
import { effectiveWindow, movingAverage } from "/static/charts.js";
import { api, fmtMetric, plotlyText, TERMINAL } from "/static/common.js";

export const METRICS = [["mean_average_precision_at_r", "MAP@R"], ["r_precision", "R-Precision"], ["precision_at_1", "P@1"]];
export const DASHES = ["solid", "dash", "dot", "dashdot", "longdash"];
const SMOOTH = 50;
const CONFIG = { responsive: true, displaylogo: false };

const EVIDENCE = ["best", "baseline", "test", "no_gain", "stopped_early", "select_metric"];

/** The job's latest values with its evidence beside them (JobOut's best / baseline / test / no_gain ... fields). */
export function summaryOf(job) {
  const out = { ...(job.metrics || {}) };
  for (const key of EVIDENCE) if (job[key] !== undefined && job[key] !== null) out[key] = job[key];
  return out;
}

/** metrics[m + suffix] whatever the key's prefix ("val/m", "test/m" or "m"). */
export function metricOf(metrics, m, suffix = "") {
  if (!metrics) return null;
  for (const key of [`${m}${suffix}`, `val/${m}${suffix}`, `test/${m}${suffix}`]) {
    const v = metrics[key];
    if (typeof v === "number" && Number.isFinite(v)) return v;
  }
  return null;
}

/** {step, metrics} of the best checkpoint; the latest values stand in for a job that recorded none. */
export function bestOf(job) {
  const s = summaryOf(job);
  return s.best && s.best.metrics ? { step: s.best.step, metrics: s.best.metrics, recorded: true } : { step: null, metrics: s, recorded: false };
}

export function baselineOf(job) {
  const s = summaryOf(job);
  return s.baseline && s.baseline.metrics ? s.baseline.metrics : null;
}

export function lockedTestOf(job) {
  const t = summaryOf(job).test;
  return t && t.best && t.best.metrics ? t.best : null;
}

/** "0.432 [0.411, 0.452]" (the interval when the job wrote one). */
export function fmtInterval(metrics, m, digits = 3) {
  const v = metricOf(metrics, m);
  if (v === null) return "–";
  const lo = metricOf(metrics, m, "_low"), hi = metricOf(metrics, m, "_high");
  return lo === null || hi === null ? fmtMetric(v, digits) : `${fmtMetric(v, digits)} [${fmtMetric(lo, digits)}, ${fmtMetric(hi, digits)}]`;
}

/** Each job's training and validation series, read once a job has ended (again while it runs). */
export async function loadSeries(jobs, store) {
  const names = ["train/loss", "val/loss", "train/triplets_semihard", ...METRICS.map(([m]) => `val/${m}`)].join(",");
  await Promise.all(jobs.filter((j) => !store.has(j.id) || !store.get(j.id).final).map(async (j) => {
    const data = await api(`/api/jobs/${j.id}/metrics?names=${encodeURIComponent(names)}&max_points=600`);
    store.set(j.id, { ...data.series, final: TERMINAL.has(j.status) });
  }));
}

const layout = (y, extra = {}) => ({ margin: { t: 10, r: 10, b: 40, l: 55 }, xaxis: { title: { text: "step" } }, yaxis: { title: { text: y } },
  legend: { font: { size: 11 } }, height: 360, ...extra });

/** Training loss (moving average) with validation loss dots, and the semi-hard share; `style(job)` -> {color, dash}. */
export function drawTrainingOverlays(jobs, store, style, name, ids = { loss: "loss-overlay", hardness: "hardness-overlay" }) {
  const loss = [], hard = [];
  for (const j of jobs) {
    const s = store.get(j.id) || {};
    const line = { ...style(j), width: 1.5 }, label = plotlyText(name(j));
    const smooth = (x) => movingAverage(x.step, x.value, effectiveWindow(x.step, SMOOTH));
    if (s["train/loss"]) loss.push({ x: s["train/loss"].step, y: smooth(s["train/loss"]), name: label, mode: "lines", line, legendgroup: String(j.id) });
    if (s["val/loss"]) loss.push({ x: s["val/loss"].step, y: s["val/loss"].value, name: `${label} (val)`, mode: "markers", marker: { color: line.color, size: 6 }, legendgroup: String(j.id), showlegend: false });
    if (s["train/triplets_semihard"]) hard.push({ x: s["train/triplets_semihard"].step, y: smooth(s["train/triplets_semihard"]), name: label, mode: "lines", line });
  }
  Plotly.react(ids.loss, loss, layout("loss"), CONFIG);
  Plotly.react(ids.hardness, hard, layout("semi-hard share", { yaxis: { title: { text: "semi-hard share" }, range: [0, 1] } }), CONFIG);
}

/** The validation curve of `metric` per job, its best step ringed, each job's step-0 value as a dotted line. */
export function drawValidationOverlay(target, jobs, store, style, name, metric = METRICS[0][0]) {
  const traces = [];
  let lo = Infinity, hi = -Infinity;
  for (const j of jobs) {
    const s = (store.get(j.id) || {})[`val/${metric}`];
    if (!s || !s.step.length) continue;
    const { color, dash } = style(j), label = plotlyText(name(j));
    traces.push({ x: s.step, y: s.value, name: label, mode: "lines+markers", line: { color, dash, width: 1.5 }, marker: { size: 5 }, legendgroup: String(j.id) });
    s.value.forEach((v) => { if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    const best = bestOf(j), value = metricOf(best.metrics, metric);
    if (best.recorded && value !== null) {
      traces.push({ x: [best.step], y: [value], name: `${label}: best step ${best.step}`, mode: "markers", legendgroup: String(j.id), showlegend: false,
        marker: { color, size: 13, symbol: "circle-open", line: { width: 2.5, color } }, hovertemplate: `best step %{x}: %{y:.4f}<extra>${label}</extra>` });
    }
    const base = metricOf(baselineOf(j), metric) ?? (s.step[0] === 0 ? s.value[0] : null);
    if (base !== null) {
      traces.push({ x: [s.step[0], s.step[s.step.length - 1]], y: [base, base], name: `${label}: step 0`, mode: "lines", legendgroup: String(j.id), showlegend: false,
        line: { color, dash: "dot", width: 1 }, hovertemplate: `step 0 (untrained): %{y:.4f}<extra>${label}</extra>` });
      lo = Math.min(lo, base); hi = Math.max(hi, base);
    }
  }
  const pad = Number.isFinite(lo) ? Math.max(0.01, (hi - lo) * 0.08) : 0;
  const range = Number.isFinite(lo) ? [Math.max(0, lo - pad), Math.min(1, hi + pad)] : [0, 1];
  const title = METRICS.find(([m]) => m === metric)[1];
  Plotly.react(target, traces, layout(`validation ${title}`, { yaxis: { title: { text: `validation ${title}` }, range } }), CONFIG);
}

/** Each job's positive and negative distance histograms at its last evaluation, as outlines on one axis. */
export async function drawDistanceOverlay(target, jobs, style, name, cache = new Map()) {
  const done = jobs.filter((j) => TERMINAL.has(j.status));
  await Promise.all(done.filter((j) => !cache.has(j.id)).map(async (j) => {
    cache.set(j.id, await api(`/api/jobs/${j.id}/distances`).catch(() => null));
  }));
  const traces = [];
  const kinds = new Set();
  for (const j of done) {
    const d = cache.get(j.id);
    const e = d && d.evaluations[d.evaluations.length - 1];
    if (!e) continue;
    kinds.add(d.kind);
    const centres = e.edges.slice(0, -1).map((a, i) => (a + e.edges[i + 1]) / 2);
    const share = (counts) => { const total = counts.reduce((a, b) => a + b, 0) || 1; return counts.map((c) => c / total); };
    const { color } = style(j), label = plotlyText(name(j));
    const keep = centres.map((_, i) => e.positive[i] || e.negative[i]);
    const pick = (arr) => arr.filter((_, i) => keep[i]);
    traces.push({ x: pick(centres), y: pick(share(e.positive)), name: `${label}: positive`, mode: "lines", line: { color, shape: "hvh", width: 1.5 }, legendgroup: String(j.id) });
    traces.push({ x: pick(centres), y: pick(share(e.negative)), name: `${label}: negative`, mode: "lines", line: { color, shape: "hvh", width: 1.5, dash: "dash" }, legendgroup: String(j.id) });
  }
  const axis = kinds.size === 1 && kinds.has("cosine_similarity") ? "cosine similarity" : "L2 distance (normalised embeddings)";
  Plotly.react(target, traces, layout("share of pairs", { xaxis: { title: { text: kinds.size > 1 ? "distance or similarity (mixed kinds)" : axis } } }), CONFIG);
  return traces.length;
}
