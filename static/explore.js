// The embedding explorer (templates/explore.html). Data from the JSON API; every text from
// the data goes through textContent (or is entity-escaped for Plotly's SVG text).
import { api, classColor, el, plotlyText } from "/static/common.js";

const root = document.getElementById("explorer");
const $ = (id) => document.getElementById(id);
const jobId = root.dataset.jobId;
const maxK = Number(root.dataset.maxK) || 1000;
const base = `/api/jobs/${jobId}`;
const gd = $("plot");
const RIGHT = "#9aa5b1";
const WRONG = "#d62728";

let pts = null; // columns of /embedding?format=columns
const byIndex = new Map(); // dataset index -> row
let traceOfLabel = new Map(); // label -> trace number
let rowsOfTrace = []; // trace number -> rows
const overlay = {}; // names -> trace numbers of the highlight traces
let selected = null; // {kind: "row", row} | {kind: "upload", file}
let selectedClass = null;

// -- helpers ---------------------------------------------------------------
function setStatus(text, isError) {
  const s = $("ex-status");
  s.textContent = text || "";
  s.classList.toggle("ex-error", !!isError);
}

function className(label) {
  return pts.class_names[label] !== undefined ? pts.class_names[label] : String(label);
}

function imageUrl(index) {
  return `${base}/images/${index}`;
}

function currentK() {
  const k = Math.round(Number($("k").value));
  return Math.min(maxK, Math.max(1, Number.isFinite(k) ? k : 10));
}

// -- the scatter -------------------------------------------------------------
function buildTraces() {
  const n = pts.index.length;
  const size = n > 20000 ? 3 : n > 5000 ? 4 : 6;
  const labels = [...new Set(pts.label)].sort((a, b) => a - b);
  const traces = [];
  traceOfLabel = new Map();
  rowsOfTrace = [];
  labels.forEach((label, position) => {
    const rows = [];
    for (let r = 0; r < n; r++) if (pts.label[r] === label) rows.push(r);
    traceOfLabel.set(label, traces.length);
    rowsOfTrace.push(rows);
    traces.push({
      type: "scattergl",
      mode: "markers",
      name: plotlyText(className(label)),
      x: rows.map((r) => pts.x[r]),
      y: rows.map((r) => pts.y[r]),
      customdata: rows,
      hoverinfo: "none",
      marker: {
        color: classColor(position, labels.length),
        size: size,
        opacity: 0.85,
        symbol: rows.map((r) => (pts.split[r] === 1 ? "diamond" : "circle")),
      },
      unselected: { marker: { opacity: 0.07 } },
    });
  });
  const extra = (name, marker) => {
    overlay[name] = traces.length;
    traces.push({ type: "scattergl", mode: "markers", name, x: [], y: [], customdata: [], hoverinfo: "none", showlegend: false, marker });
  };
  // Legend entries of the "nearest neighbour has the same label" colouring: no points of their own, shown in that mode only.
  const key = (name, text, color) => {
    overlay[name] = traces.length;
    traces.push({ type: "scattergl", mode: "markers", name: text, x: [null], y: [null], hoverinfo: "none", showlegend: false, marker: { color, size } });
  };
  key("nnSame", "same label", RIGHT);
  key("nnOther", "another label", WRONG);
  extra("neighbors", { size: size + 10, color: "rgba(0,0,0,0)", line: { color: "#111", width: 2 }, symbol: "circle-open" });
  extra("query", { size: size + 14, color: "#111", symbol: "star" });
  extra("upload", { size: size + 14, color: WRONG, symbol: "x" });
  return traces;
}

function classTraceNumbers() {
  return rowsOfTrace.map((_, i) => i);
}

function applyColors() {
  const mode = $("color-by").value;
  const traces = classTraceNumbers();
  const labels = [...traceOfLabel.keys()];
  const colors = traces.map((t, position) => {
    if (mode === "nn") return rowsOfTrace[t].map((r) => (pts.nn_same_label[r] ? RIGHT : WRONG));
    return classColor(position, labels.length);
  });
  const nn = mode === "nn";
  // In that colouring the classes leave the legend (every class is grey and red alike) and every point shows.
  Plotly.restyle(gd, { "marker.color": colors, showlegend: !nn, ...(nn ? { visible: true } : {}) }, traces);
  Plotly.restyle(gd, { showlegend: nn }, [overlay.nnSame, overlay.nnOther]);
  Plotly.relayout(gd, { "legend.title.text": nn ? "nearest neighbour" : "class", "legend.itemclick": nn ? false : "toggle",
    "legend.itemdoubleclick": nn ? false : "toggleothers" });
  const errors = pts.nn_same_label.filter((v) => !v).length;
  if (mode === "nn") setStatus(`${errors} of ${pts.index.length} points (red) have a nearest neighbour of another label.`);
}

function selectClass(label) {
  selectedClass = selectedClass === label ? null : label;
  const traces = classTraceNumbers();
  const sel = traces.map((t) => (selectedClass === null || traceOfLabel.get(selectedClass) === t ? null : []));
  Plotly.restyle(gd, { selectedpoints: sel }, traces);
  for (const tr of document.querySelectorAll("#classes tbody tr")) {
    tr.classList.toggle("ex-selected", selectedClass !== null && Number(tr.dataset.label) === selectedClass);
  }
  if (selectedClass !== null) {
    setStatus(`Class ${className(selectedClass)}: ${rowsOfTrace[traceOfLabel.get(selectedClass)].length} points selected (click again to clear).`);
  } else setStatus("");
}

function highlight(query, neighbors, isUpload) {
  const update = {
    x: [neighbors.map((n) => n.x), isUpload ? [] : [query.x], isUpload ? [query.x] : []],
    y: [neighbors.map((n) => n.y), isUpload ? [] : [query.y], isUpload ? [query.y] : []],
    customdata: [neighbors.map((n) => byIndex.get(n.index)), isUpload ? [] : [byIndex.get(query.index)], []],
  };
  Plotly.restyle(gd, update, [overlay.neighbors, overlay.query, overlay.upload]);
}

// -- hover thumbnail -------------------------------------------------------------
function showHover(ev) {
  const p = ev.points && ev.points[0];
  if (!p || p.customdata === undefined || p.customdata === null) return;
  const row = p.customdata;
  const box = $("hover");
  box.querySelector("img").src = imageUrl(pts.index[row]);
  box.querySelector("span").textContent = `${className(pts.label[row])} · #${pts.index[row]} · ${pts.splits[pts.split[row]]}`;
  const e = ev.event || {};
  box.style.left = `${(e.clientX || 0) + 14}px`;
  box.style.top = `${(e.clientY || 0) + 14}px`;
  box.hidden = false;
}

// -- neighbour panel -----------------------------------------------------------
function renderPanel(answer, uploadUrl) {
  const panel = $("panel");
  const q = $("query");
  q.replaceChildren();
  const img = el("img", { class: "ex-thumb ex-thumb-query", alt: "query image" });
  img.src = uploadUrl || answer.query.image_url;
  const label = answer.query.split === "upload"
    ? "uploaded image"
    : `#${answer.query.index} · ${answer.query.class_name} · ${answer.query.split}`;
  q.append(img, el("span", { class: "ex-query-label" }, label));

  const list = $("neighbors");
  list.replaceChildren();
  for (const n of answer.neighbors) {
    const li = el("li", { class: "ex-neighbor", tabindex: "0", "data-index": String(n.index) });
    if (n.same_label === false) li.classList.add("ex-mismatch");
    const thumb = el("img", { class: "ex-thumb", alt: `image ${n.index}`, loading: "lazy" });
    thumb.src = n.image_url;
    const text = el("span", { class: "ex-neighbor-text" });
    text.append(el("span", { class: "ex-neighbor-label" }, n.class_name), el("span", { class: "ex-neighbor-dist" }, n.distance.toFixed(4)),
      el("span", { class: "ex-neighbor-meta" }, `#${n.index} · ${n.split}`));
    if (n.same_label === false) text.append(el("span", { class: "ex-mismatch-mark", title: "label differs from the query's" }, "≠"));
    li.append(thumb, text);
    li.addEventListener("click", () => selectIndex(n.index));
    li.addEventListener("keydown", (e) => { if (e.key === "Enter") selectIndex(n.index); });
    list.append(li);
  }
  if (panel.hidden) {
    panel.hidden = false;
    Plotly.Plots.resize(gd);
  }
}

async function selectRow(row) {
  selected = { kind: "row", row };
  const k = currentK();
  try {
    const answer = await api(`${base}/neighbors?index=${pts.index[row]}&k=${k}`);
    if (selected.kind !== "row" || selected.row !== row) return; // a newer click won
    renderPanel(answer);
    highlight(answer.query, answer.neighbors, false);
    const wrong = answer.neighbors.filter((n) => n.same_label === false).length;
    setStatus(`#${answer.query.index} (${answer.query.class_name}): ${wrong} of ${answer.neighbors.length} neighbours have another label.`);
  } catch (err) {
    setStatus(err.message, true);
  }
}

function selectIndex(index) {
  const row = byIndex.get(index);
  if (row === undefined) {
    setStatus(`Image ${index} is not shown here (the explorer has the validation split and a training sample).`, true);
    return;
  }
  selectRow(row);
}

async function queryUpload(file) {
  if (!file) return;
  selected = { kind: "upload", file };
  const form = new FormData();
  form.append("file", file);
  setStatus("Embedding the image…");
  try {
    const answer = await api(`${base}/neighbors?k=${currentK()}`, { method: "POST", body: form });
    if (selected.kind !== "upload" || selected.file !== file) return;
    renderPanel(answer, URL.createObjectURL(file));
    highlight(answer.query, answer.neighbors, true);
    setStatus(`Uploaded image placed at (${answer.query.x.toFixed(2)}, ${answer.query.y.toFixed(2)}) by UMAP's transform.`);
  } catch (err) {
    setStatus(err.message, true);
  }
}

// -- quality -------------------------------------------------------------------
function renderQuality(summary) {
  const p = summary.preservation;
  $("preservation").textContent =
    `Neighbour preservation: kNN recall@10 (2-D vs full space) ${p.knn_recall_at_10.toFixed(3)}, trustworthiness@10 ${p.trustworthiness_at_10.toFixed(3)}`;
  const u = summary.umap;
  $("layout-info").textContent =
    `UMAP (${summary.space}, n_neighbors ${u.n_neighbors}, min_dist ${u.min_dist}, seed ${u.seed}) fitted on ${summary.fitted_points} of ${summary.points} points; ` +
    `neighbour search ${summary.index.kind === "exact" ? "exact" : `HNSW (recall@10 ${summary.index.recall_at_10})`}.`;
  const body = $("classes").querySelector("tbody");
  body.replaceChildren();
  const labels = [...traceOfLabel.keys()];
  const fmt = (v) => (v === null || v === undefined ? "–" : v.toFixed(3));
  for (const c of summary.per_class) {
    const tr = el("tr", { "data-label": String(c.label), tabindex: "0" });
    const name = el("td");
    const position = labels.indexOf(c.label);
    const swatch = el("span", { class: "ex-swatch" });
    swatch.style.background = classColor(Math.max(0, position), labels.length);
    name.append(swatch, document.createTextNode(c.class_name));
    tr.append(name, el("td", {}, String(c.count)), el("td", {}, fmt(c.precision_at_1)), el("td", {}, fmt(c.r_precision)),
      el("td", {}, fmt(c.mean_average_precision_at_r)));
    tr.addEventListener("click", () => selectClass(c.label));
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") selectClass(c.label); });
    body.append(tr);
  }
}

// -- wiring --------------------------------------------------------------------
function wire() {
  gd.on("plotly_click", (ev) => {
    const p = ev.points && ev.points[0];
    if (!p || p.customdata === undefined || p.customdata === null) return;
    selectRow(p.customdata);
  });
  gd.on("plotly_hover", showHover);
  gd.on("plotly_unhover", () => { $("hover").hidden = true; });
  $("color-by").addEventListener("change", applyColors);
  $("k").addEventListener("change", () => {
    $("k").value = String(currentK());
    if (selected && selected.kind === "row") selectRow(selected.row);
    else if (selected && selected.kind === "upload") queryUpload(selected.file);
  });
  $("search").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("search-text").value.trim();
    if (!text) return;
    if ($("search-kind").value === "index") {
      if (!/^\d+$/.test(text)) { setStatus("An image index is a whole number.", true); return; }
      selectIndex(Number(text));
    } else {
      const wanted = text.toLowerCase();
      const label = [...traceOfLabel.keys()].find((l) => className(l).toLowerCase() === wanted);
      if (label === undefined) { setStatus(`No class named "${text}".`, true); return; }
      selectedClass = null;
      selectClass(label);
    }
  });
  $("search-kind").addEventListener("change", () => {
    $("search-text").placeholder = $("search-kind").value === "index" ? "e.g. 42" : "class name";
  });
  $("upload").addEventListener("change", () => queryUpload($("upload").files[0]));
  $("panel-close").addEventListener("click", () => {
    $("panel").hidden = true;
    Plotly.Plots.resize(gd);
    selected = null;
    Plotly.restyle(gd, { x: [[], [], []], y: [[], [], []], customdata: [[], [], []] }, [overlay.neighbors, overlay.query, overlay.upload]);
  });
  // Drop an image anywhere on the page.
  const hint = $("drop-hint");
  document.addEventListener("dragover", (e) => {
    if (e.dataTransfer && [...e.dataTransfer.types].includes("Files")) { e.preventDefault(); hint.hidden = false; }
  });
  document.addEventListener("dragleave", (e) => { if (!e.relatedTarget) hint.hidden = true; });
  document.addEventListener("drop", (e) => {
    if (!e.dataTransfer || !e.dataTransfer.files.length) return;
    e.preventDefault();
    hint.hidden = true;
    queryUpload(e.dataTransfer.files[0]);
  });
}

async function main() {
  setStatus("Loading the embedding…");
  let summary;
  try {
    [pts, summary] = await Promise.all([api(`${base}/embedding?format=columns`), api(`${base}/embedding/summary`)]);
  } catch (err) {
    setStatus(err.message, true);
    return;
  }
  pts.index.forEach((index, row) => byIndex.set(index, row));
  const list = $("class-list");
  for (const name of pts.class_names) list.append(el("option", { value: name }));
  const layout = {
    margin: { l: 10, r: 10, t: 36, b: 10 }, // the top margin holds Plotly's toolbar, above the legend's title
    hovermode: "closest",
    dragmode: "pan",
    uirevision: "keep",
    legend: { title: { text: "class" }, itemclick: "toggle", itemdoubleclick: "toggleothers" },
    xaxis: { showgrid: false, zeroline: false, showticklabels: false },
    yaxis: { showgrid: false, zeroline: false, showticklabels: false, scaleanchor: "x" },
  };
  await Plotly.newPlot(gd, buildTraces(), layout, { responsive: true, displaylogo: false, scrollZoom: true });
  wire();
  renderQuality(summary);
  root.dataset.ready = "true";
  setStatus(`${pts.index.length} points: ${summary.splits.val} validation, ${summary.splits.train} training sample. Click a point for its neighbours.`);
  const m = /^#index=(\d+)$/.exec(location.hash);
  if (m) selectIndex(Number(m[1]));
}

main();
