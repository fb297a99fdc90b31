// Sweep comparison: what the evidence supports (per loss), the selection metric against margin, curves per run,
// the runs table with intervals, the distance histograms and the aligned embeddings.
import { CHART_CONFIG, CHART_LAYOUT } from "/static/charts.js";
import { api, badge, classColor, el, fmtMetric, plotlyText, TERMINAL } from "/static/common.js";
import { DASHES, METRICS, baselineOf, bestOf, drawDistanceOverlay, drawTrainingOverlays, drawValidationOverlay, fmtInterval,
  loadSeries, metricOf } from "/static/overlays.js";
import { drawRecommendations, metricTitle } from "/static/recommendation.js";
import { showLayouts } from "/static/sweep_layouts.js";

const root = document.getElementById("sweep");
const sweepId = root.dataset.sweepId;
const status = document.getElementById("sweep-status");
const POLL_MS = 3000;
const RETRY_MS = 10000; // after a failed poll: the page says so and asks again
const MARGIN_NAMES = { triplet: "triplet margin", contrastive: "contrastive negative margin", circle: "circle m" };
const COLOURS = { band: "rgba(11, 98, 196, 0.16)", line: "#0b62c4", base: "#5d6670", star: "#d4a72c" };
const series = new Map(); // job id -> {name: {step, value}}
const distances = new Map();
let sortKey = "id", sortDir = 1;

function colourOf(margins, m) {
  const i = margins.indexOf(m), t = margins.length > 1 ? i / (margins.length - 1) : 0.5;
  return `hsl(${Math.round(220 - 200 * t)}, 70%, 45%)`; // blue (small margin) to orange (large)
}

/** A run's name from its grid point: plain text, passed through `plotlyText` wherever it reaches a chart. */
function label(job, axes) {
  return [...axes.map((a) => `${a}=${job.spec[a]}`), `seed=${job.spec.seed}`].join(" ");
}

/** One panel per loss: the selection metric at the best checkpoints (mean over seeds, 95% band) against that loss's
 *  margin, the untrained network's value as a dotted line; the points within noise of the best drawn filled. */
function drawMetricVsMargin(sweep) {
  const recs = sweep.recommendations.filter((r) => r.points.some((p) => p.margin !== null));
  const box = document.getElementById("metric-vs-margin");
  if (!recs.length) { Plotly.purge(box); return; }
  const traces = [];
  const annotations = [];
  const layout = {
    ...CHART_LAYOUT, grid: { rows: 1, columns: recs.length, pattern: "independent" }, height: 340,
    margin: { t: 34, r: 10, b: 46, l: 56 }, legend: { orientation: "h", y: -0.25 }, showlegend: true,
  };
  const seen = new Set();
  const legend = (key) => { const show = !seen.has(key); seen.add(key); return show; };
  // Other axes than the margin (lr, miner...): one line per combination, its colour the same in every panel.
  const others = (p) => Object.entries(p.point).filter(([key]) => key !== "margin").map(([key, v]) => `${key}=${v}`).join(" ");
  const groups = [...new Set(recs.flatMap((r) => r.points.map(others)))];
  const colourOfGroup = (g) => (groups.length > 1 ? classColor(groups.indexOf(g), groups.length) : COLOURS.line);
  const same = (p, q) => JSON.stringify(p.point) === JSON.stringify(q.point);
  recs.forEach((r, k) => {
    const ax = k ? String(k + 1) : "", xa = `x${ax}`, ya = `y${ax}`;
    const pts = r.points.filter((p) => p.margin !== null);
    const xs = pts.map((p) => p.margin);
    const near = [r.best, ...r.tied];
    for (const g of groups) {
      const gp = pts.filter((p) => others(p) === g);
      if (!gp.length) continue;
      const gx = gp.map((p) => p.margin), colour = colourOfGroup(g), suffix = groups.length > 1 ? ` (${plotlyText(g)})` : "";
      const isStar = (p) => r.starred && same(p, r.best);
      const band = [...gp.map((p) => p.high), ...[...gp].reverse().map((p) => p.low)];
      traces.push({ x: [...gx, ...[...gx].reverse()], y: band, xaxis: xa, yaxis: ya,
        fill: "toself", fillcolor: groups.length > 1 ? "rgba(120, 120, 120, 0.12)" : COLOURS.band, line: { width: 0 }, hoverinfo: "skip",
        name: "95% interval", legendgroup: "band", showlegend: legend("band") });
      traces.push({ x: gx, y: gp.map((p) => p.mean), xaxis: xa, yaxis: ya, mode: "lines+markers",
        name: `mean over seeds at the best checkpoint${suffix}`, legendgroup: `mean ${g}`, showlegend: legend(`mean ${g}`),
        line: { color: colour, width: 2 },
        marker: { size: gp.map((p) => (isStar(p) ? 16 : 9)), color: gp.map((p) => (near.some((q) => same(p, q)) ? colour : "#fff")),
          symbol: gp.map((p) => (isStar(p) ? "star" : "circle")), line: { color: colour, width: 2 } },
        customdata: gp.map((p) => [p.low, p.high, p.runs]),
        hovertemplate: "margin %{x}: %{y:.4f} [%{customdata[0]:.4f}, %{customdata[1]:.4f}], %{customdata[2]} run(s)"
          + `<extra>${plotlyText(r.loss)}${suffix}</extra>` });
    }
    const bases = sweep.job_list.filter((j) => j.spec.loss === r.loss)
      .map((j) => metricOf(baselineOf(j), r.select_metric)).filter((v) => v !== null);
    const base = bases.length ? bases.reduce((a, b) => a + b, 0) / bases.length : null;
    if (base !== null) traces.push({ x: [Math.min(...xs), Math.max(...xs)], y: [base, base], xaxis: xa, yaxis: ya, mode: "lines",
      name: "step 0 (untrained)", legendgroup: "base", showlegend: legend("base"), line: { color: COLOURS.base, dash: "dot", width: 1.5 } });
    const ys = [...pts.map((p) => p.low), ...pts.map((p) => p.high), ...(base === null ? [] : [base])];
    const lo = Math.min(...ys), hi = Math.max(...ys), pad = Math.max(0.005, (hi - lo) * 0.1);
    const logX = xs.length > 1 && Math.min(...xs) > 0 && Math.max(...xs) / Math.min(...xs) >= 8;
    layout[`xaxis${ax}`] = { title: { text: plotlyText(MARGIN_NAMES[r.loss] || `${r.loss} margin`) }, type: logX ? "log" : "linear" };
    const yTitle = k ? "" : `validation ${metricTitle(r.select_metric)}`;
    layout[`yaxis${ax}`] = { title: { text: yTitle }, range: [Math.max(0, lo - pad), Math.min(1, hi + pad)] };
    annotations.push({ text: `<b>${plotlyText(r.loss)}</b>`, xref: `${xa} domain`, yref: `${ya} domain`, x: 0.5, y: 1.1, showarrow: false });
  });
  Plotly.react(box, traces, { ...layout, annotations }, CHART_CONFIG);
}

function drawTable(sweep) {
  const recs = new Map(sweep.recommendations.map((r) => [r.loss, r]));
  const role = (j) => {
    const r = recs.get(j.spec.loss);
    if (!r) return "";
    if (r.best.job_ids.includes(j.id)) return r.starred ? "starred" : "best";
    return r.tied.some((t) => t.job_ids.includes(j.id)) ? "tied" : "";
  };
  const columns = [["id", "#"], ...sweep.axes.map((a) => [a, a]), ["seed", "seed"], ["status", "status"], ["best_step", "best step"],
    ...METRICS.map(([m, t]) => [m, `${t} (best)`]), ["baseline", "MAP@R step 0"]];
  const value = (j, key) => {
    if (key === "id") return j.id;
    if (key === "status") return j.status;
    if (key === "best_step") return bestOf(j).step;
    if (key === "baseline") return metricOf(baselineOf(j), METRICS[0][0]);
    if (METRICS.some(([m]) => m === key)) return metricOf(bestOf(j).metrics, key);
    return j.spec[key];
  };
  const head = document.querySelector("#runs thead tr");
  head.replaceChildren(...columns.map(([key, title]) => {
    const sorted = key === sortKey ? (sortDir > 0 ? "ascending" : "descending") : "none";
    const th = el("th", { class: "sortable", "aria-sort": sorted, tabindex: 0 }, title);
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
  const marks = { starred: [" ★", "best point of its loss, beyond the noise"], best: [" ≈", "highest mean, but within noise of other points"],
    tied: [" ≈", "within noise of the highest mean"] };
  document.querySelector("#runs tbody").replaceChildren(...rows.map((j) => el("tr", { class: role(j) },
    ...columns.map(([key]) => {
      if (key === "id") {
        const mark = marks[role(j)];
        const tag = mark ? el("span", { class: "mark", title: mark[1] }, mark[0]) : null;
        return el("td", { class: "num" }, el("a", { href: `/jobs/${j.id}` }, j.id), tag);
      }
      if (key === "status") return el("td", {}, badge(j.status));
      if (key === "best_step") return el("td", { class: "num" }, value(j, key) ?? "–");
      if (key === "baseline") return el("td", { class: "num" }, fmtMetric(value(j, key), 3));
      if (METRICS.some(([m]) => m === key)) return el("td", { class: "num" }, fmtInterval(bestOf(j).metrics, key));
      return el("td", {}, String(j.spec[key]));
    }))));
}

let timer = null;

async function refresh() {
  clearTimeout(timer);
  let sweep;
  try {
    sweep = await api(`/api/sweeps/${sweepId}`);
    await loadSeries(sweep.job_list, series);
  } catch (err) {
    status.textContent = `could not refresh: ${err.message}; trying again`;
    timer = setTimeout(refresh, RETRY_MS);
    return;
  }
  const margins = [...new Set(sweep.job_list.map((j) => j.spec.margin))].sort((a, b) => a - b);
  const losses = [...new Set(sweep.job_list.map((j) => j.spec.loss))];
  const style = (j) => ({ color: colourOf(margins, j.spec.margin), dash: DASHES[losses.indexOf(j.spec.loss) % DASHES.length] });
  const name = (j) => label(j, sweep.axes);
  status.textContent = Object.entries(sweep.status_counts).map(([k, v]) => `${v} ${k}`).join(", ");
  drawRecommendations(document.getElementById("recommendations"), sweep.recommendations);
  drawMetricVsMargin(sweep);
  drawTrainingOverlays(sweep.job_list, series, style, name);
  drawValidationOverlay("validation-overlay", sweep.job_list, series, style, name);
  drawTable(sweep);
  drawDistanceOverlay("distance-overlay", sweep.job_list, style, name, distances);
  showLayouts(sweep, name);
  const live = sweep.job_list.some((j) => !TERMINAL.has(j.status));
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
