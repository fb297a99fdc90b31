// One search: its trials table, the best value over trials, parameter against value, each trial's curve.
import { api, el, fmtMetric, fmtInt } from "/static/common.js";
import { CHART_CONFIG, CHART_LAYOUT } from "/static/charts.js";
import { drawRecommendations } from "/static/recommendation.js";

const root = document.getElementById("search");
const searchId = root.dataset.searchId;
const STATE_CLASS = { complete: "succeeded", fail: "failed" }; // the study's states, coloured as job statuses
const COLOURS = { complete: "#1f77b4", pruned: "#d62728", running: "#7f7f7f", fail: "#8c564b" };

function fmtParams(params) {
  return Object.entries(params).map(([k, v]) => `${k}=${typeof v === "number" ? Number(v.toPrecision(4)) : v}`).join(" ");
}

function drawBestOverTrials(trials) {
  const shown = trials.filter((t) => t.value !== null);
  let best = -Infinity;
  const running = [], xs = [];
  for (const t of trials.filter((t) => t.state === "complete" && t.value !== null)) {
    best = Math.max(best, t.value);
    xs.push(t.number);
    running.push(best);
  }
  const traces = ["complete", "pruned", "running", "fail"].map((state) => {
    const ts = shown.filter((t) => t.state === state);
    return { x: ts.map((t) => t.number), y: ts.map((t) => t.value), text: ts.map((t) => fmtParams(t.params)), name: state, mode: "markers",
      marker: { color: COLOURS[state], size: 9, symbol: state === "pruned" ? "x" : "circle" } };
  }).filter((t) => t.x.length);
  traces.push({ x: xs, y: running, name: "best so far", mode: "lines", line: { shape: "hv", color: "#2ca02c" } });
  Plotly.react("best-over-trials", traces, { ...CHART_LAYOUT, height: 320, xaxis: { title: { text: "trial" }, tickformat: "d" }, yaxis: { title: { text: "value" } } }, CHART_CONFIG);
}

function drawParamVsValue(search) {
  const names = search.space;
  const node = document.getElementById("param-vs-value");
  const traces = [];
  const layout = { ...CHART_LAYOUT, height: 320, grid: { rows: 1, columns: names.length, pattern: "independent" } };
  names.forEach((name, i) => {
    const axis = i ? String(i + 1) : "";
    const dim = search.spec.space[name];
    for (const state of ["complete", "pruned"]) {
      const ts = search.trial_list.filter((t) => t.state === state && t.value !== null);
      traces.push({ x: ts.map((t) => t.params[name]), y: ts.map((t) => t.value), text: ts.map((t) => `trial ${t.number}`), name: state,
        legendgroup: state, showlegend: i === 0, mode: "markers", xaxis: `x${axis}`, yaxis: `y${axis}`,
        marker: { color: COLOURS[state], size: 9, symbol: state === "pruned" ? "x" : "circle" } });
    }
    layout[`xaxis${axis}`] = { title: { text: name }, type: dim && !Array.isArray(dim) && dim.log ? "log" : undefined };
    layout[`yaxis${axis}`] = { title: { text: i ? "" : search.select_metric } };
  });
  Plotly.react(node, traces, layout, CHART_CONFIG);
}

function drawCurves(trials) {
  const traces = trials.filter((t) => Object.keys(t.intermediate).length).map((t) => {
    const steps = Object.keys(t.intermediate).map(Number).sort((a, b) => a - b);
    return { x: steps, y: steps.map((s) => t.intermediate[s]), name: `#${t.number} ${fmtParams(t.params)}`, mode: "lines+markers",
      line: { dash: t.state === "pruned" ? "dash" : "solid", width: 1.5 }, marker: { size: 5 } };
  });
  Plotly.react("trial-curves", traces, { ...CHART_LAYOUT, height: 360, xaxis: { title: { text: "step" } }, yaxis: { title: { text: "value" } } }, CHART_CONFIG);
}

function drawTable(trials) {
  const body = document.querySelector("#trials tbody");
  body.replaceChildren(...trials.map((t) => el("tr", { dataset: { trial: t.number } },
    el("td", {}, String(t.number)), el("td", {}, fmtParams(t.params)), el("td", {}, el("span", { class: `badge status-${STATE_CLASS[t.state] || t.state}` }, t.state)),
    el("td", {}, t.value === null ? "–" : fmtMetric(t.value, 4)), el("td", {}, t.best_step === null ? "–" : String(t.best_step)),
    el("td", {}, fmtInt(t.steps)), el("td", {}, t.pruned_at === null ? "" : String(t.pruned_at)),
    el("td", {}, ...t.job_ids.map((id, k) => [k ? " " : "", el("a", { href: `/jobs/${id}` }, `#${id}`)])))));
}

function drawSummary(search) {
  const status = document.getElementById("search-status");
  status.textContent = `${search.status}: ${search.trial_list.length} of ${search.trials} trials, ${search.sampler} + ${search.pruner}`;
  document.getElementById("cancel-search").hidden = search.status !== "running";
  const best = document.getElementById("best");
  best.textContent = search.best ? `Trial ${search.best.number} (${fmtParams(search.best.params)}): ${search.select_metric} ${fmtMetric(search.best.value, 4)} on validation at its best step.`
    : "Waiting for a finished trial…";
  const b = search.budget;
  document.getElementById("budget").textContent = `${fmtInt(b.steps_spent)} training steps spent` +
    (b.grid_steps ? `, ${Math.round(100 * b.fraction)}% of the ${fmtInt(b.grid_steps)} the same ${search.trials} trials would spend trained to the end (a grid of the same resolution).` : ".");
  const importance = document.getElementById("importance");
  importance.hidden = !search.importance;
  if (search.importance) importance.textContent = "Parameter importance (fANOVA over the completed trials): " +
    Object.entries(search.importance).map(([k, v]) => `${k} ${Math.round(100 * v)}%`).join(", ");
  drawRecommendations(document.getElementById("recommendations"), search.recommendations); // a sweep's rules over the completed trials
}

async function refresh() {
  const search = await api(`/api/searches/${searchId}`);
  drawSummary(search);
  drawTable(search.trial_list);
  if (window.Plotly) {
    drawBestOverTrials(search.trial_list);
    drawParamVsValue(search);
    drawCurves(search.trial_list);
  }
  return search.status === "running";
}

document.getElementById("cancel-search").addEventListener("click", async () => {
  await api(`/api/searches/${searchId}/cancel`, { method: "POST" });
  refresh();
});

const poll = setInterval(async () => { if (!(await refresh())) clearInterval(poll); }, 3000);
window.addEventListener("load", refresh);
