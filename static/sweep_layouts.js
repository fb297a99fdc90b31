// "Embeddings across the sweep": one panel per succeeded run, laid out together (GET /api/sweeps/{id}/layouts,
// umap's AlignedUMAP) so an image sits in about the same place in each; a box or lasso selection in one
// panel highlights the same images in all. Row i of every trace is the same image, so one list of
// rows selects it everywhere. SVG traces, not scattergl: WebGL (regl) compiles its drawing code with
// `new Function`, which the pages' Content-Security-Policy refuses; the server bounds the points of a
// sweep (app/explorer/aligned.py) to what SVG draws at ease.
import { CHART_CONFIG, CHART_LAYOUT } from "/static/charts.js";
import { api, classColor, el, plotlyText } from "/static/common.js";

const POLL_MS = 2000;
const RETRY_MS = 10000;
const COLUMNS = 4;
const PANEL_HEIGHT = 250;
const gd = document.getElementById("layouts");
const status = document.getElementById("layouts-status");
const clear = document.getElementById("clear-selection");
let shownKey = null; // the succeeded job ids the panels (or the message) stand for
let waiting = false; // a request or a poll is under way
let points = null;
let latest = null; // the sweep as last refreshed: titles come from it
let linked = false;

function succeededKey(sweep) {
  return sweep.job_list.filter((j) => j.status === "succeeded").map((j) => j.id).sort((a, b) => a - b).join(",");
}

function say(text) {
  status.textContent = text;
}

function axisName(k, letter) {
  return `${letter}axis${k ? k + 1 : ""}`;
}

function draw(data, title) {
  points = data.points;
  const jobs = new Map(latest.job_list.map((j) => [j.id, j]));
  const labels = [...new Set(points.label)].sort((a, b) => a - b);
  const colour = new Map(labels.map((label, position) => [label, classColor(position, labels.length)]));
  const name = (label) => data.class_names[label] ?? String(label);
  const hover = points.index.map((index, row) => plotlyText(`image ${index} · class ${name(points.label[row])}`));
  const columns = Math.min(COLUMNS, data.job_ids.length);
  const rows = Math.ceil(data.job_ids.length / columns);
  const size = points.index.length > 1000 ? 3 : 4;
  const traces = data.job_ids.map((id, k) => ({
    type: "scatter", mode: "markers", x: data.layouts[id].x, y: data.layouts[id].y,
    xaxis: `x${k ? k + 1 : ""}`, yaxis: `y${k ? k + 1 : ""}`, name: `job ${id}`, showlegend: false,
    customdata: points.index, text: hover, hovertemplate: "%{text}<extra></extra>",
    marker: { size, color: points.label.map((label) => colour.get(label)), opacity: 0.85 },
    selected: { marker: { opacity: 1 } }, unselected: { marker: { opacity: 0.06 } },
  }));
  const layout = {
    ...CHART_LAYOUT,
    grid: { rows, columns, pattern: "independent", xgap: 0.06, ygap: 0.14 },
    height: rows * PANEL_HEIGHT + 50, margin: { t: 48, r: 8, b: 8, l: 8 }, dragmode: "select", hovermode: "closest",
    annotations: data.job_ids.map((id, k) => ({
      text: plotlyText(jobs.has(id) ? title(jobs.get(id)) : `job ${id}`), showarrow: false, font: { size: 12 },
      xref: `x${k ? k + 1 : ""} domain`, yref: `y${k ? k + 1 : ""} domain`, x: 0.5, y: 1.02, yanchor: "bottom",
    })),
  };
  data.job_ids.forEach((_, k) => { // one coordinate frame: zooming one panel zooms all
    layout[axisName(k, "x")] = { matches: k ? "x" : undefined, showticklabels: false, showgrid: false, zeroline: false };
    layout[axisName(k, "y")] = { matches: k ? "y" : undefined, showticklabels: false, showgrid: false, zeroline: false };
  });
  Plotly.react(gd, traces, layout, { ...CHART_CONFIG, modeBarButtonsToRemove: [] }); // box and lasso select the images
  document.getElementById("layouts-legend").replaceChildren(...labels.map((label) => {
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = colour.get(label);
    return el("span", { class: "legend-item" }, swatch, name(label));
  }));
  const shown = points.index.length;
  const sample = data.common_points > shown ? `a seeded sample of ${shown} of the ${data.common_points}` : `all ${shown}`;
  const left = data.skipped.map((id) => `job ${id}`).join(", ");
  const skipped = left ? ` Left out (no stored embeddings): ${left}.` : "";
  say(`${data.job_ids.length} runs, ${sample} validation images they share; laid out in ${data.seconds.toFixed(0)} s.${skipped}`);
  if (!linked) {
    linked = true;
    gd.on("plotly_selected", (event) => select(event && event.points.length ? event.points.map((p) => p.pointIndex) : null));
    gd.on("plotly_deselect", () => select(null));
  }
}

/** The same rows selected in every panel (null: none, every point at full opacity). */
function select(rows) {
  const chosen = rows ? [...new Set(rows)].sort((a, b) => a - b) : null;
  Plotly.restyle(gd, { selectedpoints: gd.data.map(() => chosen) });
  clear.disabled = !chosen;
  document.getElementById("selection-status").textContent = chosen ? `${chosen.length} images selected, highlighted in every panel.` : "";
}

clear.addEventListener("click", () => {
  Plotly.relayout(gd, { selections: [] }); // the box or lasso outline
  select(null);
});

async function load(title) {
  const key = succeededKey(latest);
  try {
    const data = await api(`/api/sweeps/${latest.id}/layouts`);
    if (data.status === "computing") {
      say("Laying the runs out together (AlignedUMAP)…");
      setTimeout(() => load(title), POLL_MS);
      return;
    }
    draw(data, title);
    shownKey = data.job_ids.join(",");
  } catch (e) {
    if (e.status === undefined || e.status >= 500) { // the network or the server: ask again, the answer is still wanted
      say(`Could not load the layouts: ${e.message}; trying again…`);
      setTimeout(() => load(title), RETRY_MS);
      return;
    }
    say(e.message); // 409: fewer than two finished runs, said in words
    shownKey = key;
  }
  waiting = false;
}

/** Called on every refresh of the sweep page: asks again only when the set of succeeded runs changed. */
export function showLayouts(sweep, title) {
  latest = sweep;
  const key = succeededKey(sweep);
  if (waiting || key === shownKey) return;
  if (key.split(",").filter(Boolean).length < 2) { // nothing to compare yet: no request (the API would answer 409)
    say("Waiting for two finished runs…");
    return;
  }
  waiting = true;
  load(title);
}
