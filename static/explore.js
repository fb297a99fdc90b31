// The embedding explorer (templates/explore.html). The points arrive as binary columns
// (GET /embedding/columns, read into typed arrays) and are drawn by regl-scatterplot (WebGL, every
// point, no sampling); every text from the data goes through textContent.
import createScatterplot from "/static/vendor/regl-scatterplot/regl-scatterplot.esm.js";
import { decodeColumns } from "/static/columns.js";
import { api, ApiError, classColor, csrfToken, el } from "/static/common.js";
import { compositeGestures } from "/static/explore_gesture.js";
import { pickedHover } from "/static/explore_hover.js";
import { handOver } from "/static/selection_handover.js";

const root = document.getElementById("explorer");
const $ = (id) => document.getElementById(id);
const maxK = Number(root.dataset.maxK) || 1000;
const base = root.dataset.base; // /api/jobs/{id} or /api/collections/{id}: the same routes below it
const prefix = root.dataset.prefix; // file names of exports: job7-, collection3-
const isJob = root.dataset.kind === "job"; // a job's points have splits and can be queried by an uploaded image
const hasImages = root.dataset.images !== "false"; // a collection imported without images has no thumbnails
const RIGHT = "#9aa5b1";
const WRONG = "#d62728";
const SPLIT_COLORS = ["#1f77b4", "#ff7f0e"]; // validation, training sample
// From this many points a pan or zoom moves the drawn picture and draws the points once it settles
// (static/explore_gesture.js): software GL takes ~0.3 s to draw 200,000 points. ?composite-from=N sets it (tests).
const COMPOSITE_FROM = Number(new URLSearchParams(location.search).get("composite-from")) || 100000;

let pts = null; // {n, index, x, y, label, split, nn_same_label (typed arrays), splits, class_names}
let byIndex = null; // dataset index -> row
let plot = null; // the regl-scatterplot instance
let ndc = null; // {x: Float32Array, y: Float32Array}: the layout scaled into [-1, 1]
let toNdc = null; // (x, y) of the layout -> [x, y] in [-1, 1]
let refs = null; // two rows per axis, to map any layout position to the screen (upload marker)
let selected = null; // {kind: "row", row} | {kind: "upload", file, x, y}
let lassoing = false;
let lastSelection = null; // rows of the last lasso selection
let mouse = { x: 0, y: 0 };

// -- helpers -----------------------------------------------------------------
function setStatus(text, isError) {
  const s = $("ex-status");
  s.textContent = text || "";
  s.classList.toggle("ex-error", !!isError);
}

function className(label) {
  return pts.class_names[label] !== undefined ? pts.class_names[label] : String(label);
}

/** One colour per class label on every page: common.js's map, indexed by label over the dataset's classes. */
function colorOfLabel(label) {
  return classColor(label, Math.max(pts.class_names.length, label + 1));
}

const probe = document.createElement("canvas").getContext("2d");
/** Any CSS colour as #rrggbb (regl-scatterplot reads hex or RGBA, not hsl()). */
function hex(color) {
  probe.fillStyle = "#000";
  probe.fillStyle = color;
  return probe.fillStyle;
}

function imageUrl(index) {
  return `${base}/images/${index}`;
}

/** A thumbnail's source, or the image hidden where there are none. */
function setThumb(img, url) {
  img.hidden = !hasImages;
  if (hasImages) img.src = url;
}

function currentK() {
  const k = Math.round(Number($("k").value));
  return Math.min(maxK, Math.max(1, Number.isFinite(k) ? k : 10));
}

async function send(path, init) {
  const headers = { ...(init.headers || {}) };
  const token = await csrfToken();
  if (token) headers["X-CSRF-Token"] = token;
  const response = await fetch(path, { ...init, headers, credentials: "same-origin" });
  if (!response.ok) {
    const data = await response.json().catch(() => null);
    throw new ApiError(response.status, data && data.detail !== undefined ? data.detail : response.statusText);
  }
  return response;
}

// -- binary columns ----------------------------------------------------------
async function loadColumns() {
  const response = await fetch(`${base}/embedding/columns`, { credentials: "same-origin" });
  if (!response.ok) {
    const data = await response.json().catch(() => null);
    throw new ApiError(response.status, data && data.detail !== undefined ? data.detail : response.statusText);
  }
  return decodeColumns(await response.arrayBuffer());
}

// -- the scatter ---------------------------------------------------------------
function normalise() {
  const { n, x, y } = pts;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    if (x[i] < x0) x0 = x[i];
    if (x[i] > x1) x1 = x[i];
    if (y[i] < y0) y0 = y[i];
    if (y[i] > y1) y1 = y[i];
  }
  const scale = 1.9 / Math.max(x1 - x0, y1 - y0, 1e-9); // one scale for both axes: the layout keeps its shape
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  toNdc = (px, py) => [(px - cx) * scale, (py - cy) * scale];
  const nx = new Float32Array(n), ny = new Float32Array(n);
  let minX = 0, maxX = 0, minY = 0, maxY = 0;
  for (let i = 0; i < n; i++) {
    nx[i] = (x[i] - cx) * scale;
    ny[i] = (y[i] - cy) * scale;
    if (nx[i] < nx[minX]) minX = i;
    if (nx[i] > nx[maxX]) maxX = i;
    if (ny[i] < ny[minY]) minY = i;
    if (ny[i] > ny[maxY]) maxY = i;
  }
  ndc = { x: nx, y: ny };
  refs = { minX, maxX, minY, maxY };
}

/** z: the class label (colour by class); w: split * 2 + nearest-neighbour-agrees (colour by split or by that), or
 * a bucket of a per-point value (colour by AP@R, by distance): 0..9 low to high, 10 where the value is missing. */
function channels(w) {
  const { n, label, split, nn_same_label: nn } = pts;
  const z = new Float32Array(n);
  const base = !w;
  if (base) w = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    z[i] = label[i];
    if (base) w[i] = split[i] * 2 + nn[i];
  }
  return { x: ndc.x, y: ndc.y, z, w };
}

// Viridis in ten steps, low to high, then grey for points without a value.
const SCALE = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"];
const MISSING = "#d0d4d9";
let wHolds = "base"; // what the drawn w channel holds: "base" (split, nn), "ap", or "distance:<index>"

/** Values in [0, 1] as buckets 0..9 (NaN -> 10). */
function bucketsOf(values) {
  const w = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    w[i] = Number.isNaN(v) ? 10 : Math.min(9, Math.max(0, Math.floor(v * 10)));
  }
  return w;
}

/** Distances as deciles, nearest brightest (a rank scale: a few far outliers do not flatten the rest). */
function decilesOf(distances) {
  const sorted = Float32Array.from(distances).sort();
  const edges = [];
  for (let q = 1; q < 10; q++) edges.push(sorted[Math.floor((q * sorted.length) / 10)]);
  const w = new Float32Array(distances.length);
  for (let i = 0; i < distances.length; i++) {
    let d = 0;
    while (d < 9 && distances[i] > edges[d]) d++;
    w[i] = 9 - d;
  }
  return w;
}

async function redraw(holds, w) {
  if (wHolds === holds) return;
  await plot.draw(channels(w));
  wHolds = holds;
}

function colorSettings(mode) {
  if (mode === "split") return { colorBy: "valueW", pointColor: [0, 0, 1, 1].map((s) => SPLIT_COLORS[s]) };
  if (mode === "nn") return { colorBy: "valueW", pointColor: [WRONG, RIGHT, WRONG, RIGHT] };
  if (mode === "ap" || mode === "distance") return { colorBy: "valueW", pointColor: [...SCALE, MISSING] };
  let top = 0;
  for (let i = 0; i < pts.n; i++) if (pts.label[i] > top) top = pts.label[i];
  const colors = [];
  for (let label = 0; label <= top; label++) colors.push(hex(colorOfLabel(label)));
  return { colorBy: "valueZ", pointColor: colors };
}

async function applyColors() {
  const mode = $("color-by").value;
  try {
    if (mode === "ap") await redraw("ap", bucketsOf(pts.ap));
    else if (mode === "distance") {
      if (!selected) {
        setStatus("Click a point (or upload an image) first: the colours are then each point's distance to it (full embedding space).");
        await redraw("base");
      } else {
        const upload = selected.kind === "upload";
        const what = upload ? "the uploaded image" : `#${pts.index[selected.row]}`;
        let response;
        if (upload) {
          const form = new FormData();
          form.append("file", selected.file);
          response = await send(`${base}/embedding/distances`, { method: "POST", body: form });
        } else response = await send(`${base}/embedding/distances?index=${pts.index[selected.row]}`, { method: "GET" });
        const d = new Float32Array(await response.arrayBuffer());
        if ($("color-by").value !== "distance") return; // changed meanwhile
        await redraw(`distance:${what}:${upload ? selected.file.name + selected.file.lastModified : ""}`, decilesOf(d));
        setStatus(`Distance to ${what} in the full embedding space, in tenths of the points: yellow the nearest tenth, purple the farthest.`);
      }
    } else await redraw("base");
  } catch (err) {
    setStatus(err.message, true);
    return;
  }
  plot.set(colorSettings(mode));
  if (mode === "ap") {
    let scored = 0, sum = 0;
    for (let i = 0; i < pts.n; i++) if (!Number.isNaN(pts.ap[i])) { scored++; sum += pts.ap[i]; }
    setStatus(scored ? `AP@R of ${scored.toLocaleString()} scored points (mean ${(sum / scored).toFixed(3)}): purple 0, yellow 1; grey: not scored ` +
      (isJob ? "(the training sample, or a job laid out before per-point AP was stored)." : "(outside the metrics sample, or no labels).")
      : "No point has a stored AP@R (laid out before embedlab stored it, or imported without labels).");
  } else if (mode === "nn") {
    let errors = 0;
    for (let i = 0; i < pts.n; i++) errors += pts.nn_same_label[i] ? 0 : 1;
    setStatus(`${errors} of ${pts.n} points (red) have a nearest neighbour (same split, full space) of another label.`);
  } else if (mode === "split") {
    setStatus("Blue: validation split; orange: training sample.");
  }
}

/** The camera in page pixels per axis of the [-1, 1] layout (page = a + b * ndc), read off two drawn points per axis. */
function ndcAxes() {
  const box = $("plot").getBoundingClientRect();
  const at = (row) => plot.getScreenPosition(row);
  const slope = (i, j, vs, c) => (vs[j] === vs[i] ? null : (at(j)[c] - at(i)[c]) / (vs[j] - vs[i]));
  let bx = slope(refs.minX, refs.maxX, ndc.x, 0), by = slope(refs.minY, refs.maxY, ndc.y, 1);
  // One scale on both axes, y downwards on the page: a layout flat along one axis takes the other's.
  if (bx === null) bx = by === null ? 1 : -by;
  if (by === null) by = -bx;
  return { x: [box.left + at(refs.minX)[0] - bx * ndc.x[refs.minX], bx], y: [box.top + at(refs.minY)[1] - by * ndc.y[refs.minY], by] };
}

/** Screen position (page pixels) of a layout position. */
function screenOf(px, py) {
  const [nx, ny] = toNdc(px, py), a = ndcAxes();
  return [a.x[0] + a.x[1] * nx, a.y[0] + a.y[1] * ny];
}

/** The upload's marker over the drawn point; `t`: the picture moved by a gesture not yet settled (explore_gesture.js). */
function placeUploadMarker(t = { x: 0, y: 0, s: 1 }) {
  const marker = $("upload-marker");
  if (!selected || selected.kind !== "upload") {
    marker.hidden = true;
    return;
  }
  const [sx, sy] = screenOf(selected.x, selected.y);
  const box = $("plot").getBoundingClientRect();
  marker.style.left = `${t.x + t.s * (sx - box.left)}px`;
  marker.style.top = `${t.y + t.s * (sy - box.top)}px`;
  marker.hidden = false;
}

function highlight(rows) {
  plot.select(rows, { preventEvent: true });
}

function selectClass(label) {
  const rows = [];
  for (let i = 0; i < pts.n; i++) if (pts.label[i] === label) rows.push(i);
  for (const tr of document.querySelectorAll("#classes tbody tr")) tr.classList.toggle("ex-selected", Number(tr.dataset.label) === label);
  plot.select(rows); // a selection like a lasso's: summarised on the right
}

// -- hover thumbnail -------------------------------------------------------------
function showHover(row) {
  const box = $("hover");
  setThumb(box.querySelector("img"), imageUrl(pts.index[row]));
  box.querySelector("span").textContent = `${className(pts.label[row])} · #${pts.index[row]}` + (isJob ? ` · ${pts.splits[pts.split[row]]}` : "");
  box.style.left = `${mouse.x + 14}px`;
  box.style.top = `${mouse.y + 14}px`;
  box.hidden = false;
}

// -- neighbour panel -----------------------------------------------------------
function renderPanel(answer, uploadUrl) {
  const q = $("query");
  q.replaceChildren();
  const img = el("img", { class: "ex-thumb ex-thumb-query", alt: "query image" });
  if (uploadUrl) img.src = uploadUrl;
  else setThumb(img, answer.query.image_url);
  const label = answer.query.split === "upload"
    ? "uploaded image"
    : `#${answer.query.index} · ${answer.query.class_name}` + (isJob ? ` · ${answer.query.split}` : "");
  q.append(img, el("span", { class: "ex-query-label" }, label));

  const list = $("neighbors");
  list.replaceChildren();
  for (const n of answer.neighbors) {
    const li = el("li", { class: "ex-neighbor", tabindex: "0", "data-index": String(n.index) });
    if (n.same_label === false) li.classList.add("ex-mismatch");
    const thumb = el("img", { class: "ex-thumb", alt: `image ${n.index}`, loading: "lazy" });
    setThumb(thumb, n.image_url);
    const text = el("span", { class: "ex-neighbor-text" });
    text.append(el("span", { class: "ex-neighbor-label" }, n.class_name), el("span", { class: "ex-neighbor-dist" }, n.distance.toFixed(4)),
      el("span", { class: "ex-neighbor-meta" }, isJob ? `#${n.index} · ${n.split}` : `#${n.index}`));
    if (n.same_label === false) text.append(el("span", { class: "ex-mismatch-mark", title: "label differs from the query's" }, "≠"));
    li.append(thumb, text);
    li.addEventListener("click", () => selectIndex(n.index));
    li.addEventListener("keydown", (e) => { if (e.key === "Enter") selectIndex(n.index); });
    list.append(li);
  }
  $("panel").hidden = false;
}

function neighbourRows(answer) {
  return answer.neighbors.map((n) => byIndex.get(n.index)).filter((r) => r !== undefined);
}

async function selectRow(row) {
  selected = { kind: "row", row };
  placeUploadMarker();
  try {
    const answer = await api(`${base}/neighbors?index=${pts.index[row]}&k=${currentK()}`);
    if (selected.kind !== "row" || selected.row !== row) return; // a newer click won
    renderPanel(answer);
    if ($("color-by").value === "distance") await applyColors();
    highlight([row, ...neighbourRows(answer)]);
    const wrong = answer.neighbors.filter((n) => n.same_label === false).length;
    setStatus(`#${answer.query.index} (${answer.query.class_name}): ${wrong} of ${answer.neighbors.length} neighbours have another label.`);
  } catch (err) {
    setStatus(err.message, true);
  }
}

function selectIndex(index) {
  const row = byIndex.get(index);
  if (row === undefined) {
    setStatus(isJob ? `Image ${index} is not shown here (the explorer has the validation split and a training sample).`
      : `No point has index ${index}.`, true);
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
    const response = await send(`${base}/neighbors?k=${currentK()}`, { method: "POST", body: form, headers: { Accept: "application/json" } });
    const answer = await response.json();
    if (selected.kind !== "upload" || selected.file !== file) return;
    selected.x = answer.query.x;
    selected.y = answer.query.y;
    renderPanel(answer, URL.createObjectURL(file));
    if ($("color-by").value === "distance") await applyColors();
    highlight(neighbourRows(answer));
    placeUploadMarker();
    setStatus(`Uploaded image placed at (${answer.query.x.toFixed(2)}, ${answer.query.y.toFixed(2)}) by UMAP's transform.`);
  } catch (err) {
    setStatus(err.message, true);
  }
}

// -- selections ----------------------------------------------------------------
function selectionBody(rows) {
  return { indices: Array.from(rows, (r) => pts.index[r]) };
}

async function summarise(rows) {
  lastSelection = rows;
  const box = $("selection");
  box.hidden = false;
  offerCandidates();
  $("sel-count").textContent = `${rows.length.toLocaleString()} points selected; summarising…`;
  try {
    const s = await api(`${base}/embedding/selection`, { method: "POST", body: selectionBody(rows) });
    if (lastSelection !== rows) return;
    $("sel-count").textContent = `${s.count.toLocaleString()} points · P@1 ${s.precision_at_1.toFixed(3)} (nearest point in the full space has the same label)`;
    const body = $("sel-classes").querySelector("tbody");
    body.replaceChildren();
    for (const c of s.per_class.slice(0, 50)) {
      const name = el("td");
      const swatch = el("span", { class: "ex-swatch" });
      swatch.style.background = colorOfLabel(c.label);
      name.append(swatch, document.createTextNode(c.class_name));
      body.append(el("tr", { "data-label": String(c.label) }, name, el("td", {}, String(c.count)), el("td", {}, `${(100 * c.share).toFixed(1)}%`),
        el("td", {}, c.precision_at_1.toFixed(3))));
    }
    const central = $("sel-central");
    central.replaceChildren();
    for (const c of s.central) {
      const img = el("img", { class: "ex-thumb", alt: `image ${c.index} (${c.class_name})`, title: `#${c.index} · ${c.class_name}`, loading: "lazy" });
      setThumb(img, c.image_url);
      img.addEventListener("click", () => selectIndex(c.index));
      central.append(img);
    }
    setStatus(`Selection: ${s.count.toLocaleString()} points, ${s.per_class.length} classes.`);
  } catch (err) {
    setStatus(err.message, true);
  }
}

/** The selection as a file: `csv` (index, label, class, split) or `npy` (its embeddings, in the CSV's row order). */
async function exportSelection(format) {
  if (!lastSelection) return;
  try {
    const response = await send(`${base}/embedding/selection?format=${format}`, {
      method: "POST", body: JSON.stringify(selectionBody(lastSelection)), headers: { "Content-Type": "application/json" },
    });
    const url = URL.createObjectURL(await response.blob());
    const a = el("a", { href: url, download: `${prefix}-selection.${format}` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    setStatus(err.message, true);
  }
}

/** The selection's items compared in another embedding of them: the neighbourhood page, opened with this selection. */
async function openComparison(event) {
  event.preventDefault();
  if (!lastSelection) return;
  const other = $("sel-compare-with").value.trim();
  $("sel-compare-status").textContent = "";
  if (other === root.dataset.ref) {
    $("sel-compare-status").textContent = "That is this embedding: name another one of the same items.";
    return;
  }
  try {
    const token = await handOver(root.dataset.ref, selectionBody(lastSelection).indices);
    const q = new URLSearchParams({ a: root.dataset.ref, b: other, selection: token });
    window.location.href = `/compare/neighbourhoods?${q}`;
  } catch (err) {
    $("sel-compare-status").textContent = err.message;
  }
}

/** Other embeddings to offer for a comparison: finished jobs and ready collections (the page refuses a pair sharing too
 * few items, naming it). Asked once, when the first selection is made. */
let candidatesAsked = false;
async function offerCandidates() {
  if (candidatesAsked) return;
  candidatesAsked = true;
  try {
    const [jobs, collections] = await Promise.all([
      api("/api/jobs?status=succeeded&limit=200"), api("/api/collections?limit=200"),
    ]);
    const options = [
      ...jobs.jobs.map((j) => [`job:${j.id}`, `${j.name} (${j.dataset}, ${j.loss})`]),
      ...collections.collections.filter((c) => c.status === "ready").map((c) => [`collection:${c.id}`, `${c.name} (${c.points.toLocaleString()} points)`]),
    ].filter(([ref]) => ref !== root.dataset.ref);
    $("compare-candidates").replaceChildren(...options.map(([ref, label]) => el("option", { value: ref }, label)));
  } catch {
    candidatesAsked = false; // typed by hand meanwhile; asked again with the next selection
  }
}

function setLasso(on) {
  plot.set({ mouseMode: on ? "lasso" : "panZoom" });
  $("lasso").setAttribute("aria-pressed", String(on));
}

// -- quality -------------------------------------------------------------------
/** What laying the points out cost, phase by phase (" Laid out in 42 s: umap 30 s, quality 12 s."), or "". */
function layoutCost(seconds) {
  const phases = Object.entries(seconds);
  if (!phases.length) return "";
  const total = phases.reduce((sum, [, v]) => sum + v, 0);
  const s = (v) => `${v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString()} s`;
  return ` Laid out in ${s(total)}: ${phases.map(([k, v]) => `${k.replaceAll("_", " ")} ${s(v)}`).join(", ")}.`;
}

function renderQuality(summary) {
  const p = summary.preservation;
  $("preservation").textContent =
    `Neighbour preservation: kNN recall@10 (2-D vs full space) ${p.knn_recall_at_10.toFixed(3)}, trustworthiness@10 ${p.trustworthiness_at_10.toFixed(3)}`;
  const u = summary.umap;
  $("layout-info").textContent =
    `UMAP (${summary.space}, n_neighbors ${u.n_neighbors}, min_dist ${u.min_dist}, seed ${u.seed}) fitted on ${summary.fitted_points} of ${summary.points} points; ` +
    `neighbour search ${summary.index.kind === "exact" ? "exact" : `HNSW (recall@10 ${summary.index.recall_at_10})`}.` +
    layoutCost(summary.seconds || {});
  const body = $("classes").querySelector("tbody");
  body.replaceChildren();
  const fmt = (v) => (v === null || v === undefined ? "–" : v.toFixed(3));
  for (const c of summary.per_class) {
    const tr = el("tr", { "data-label": String(c.label), tabindex: "0" });
    const name = el("td");
    const swatch = el("span", { class: "ex-swatch" });
    swatch.style.background = colorOfLabel(c.label);
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
  const canvas = $("plot-canvas");
  canvas.addEventListener("mousemove", (e) => { mouse = { x: e.clientX, y: e.clientY }; });
  canvas.addEventListener("mouseleave", () => { $("hover").hidden = true; });
  plot.subscribe("pointover", showHover);
  plot.subscribe("pointout", () => { $("hover").hidden = true; });
  plot.subscribe("lassoStart", () => { lassoing = true; $("hover").hidden = true; }); // the library hovers no more till its end
  plot.subscribe("lassoEnd", () => {
    lassoing = false;
    if (released && released.tiny) { plot.select(released.rows, { preventEvent: true }); return; } // the selection as it was
    const rows = plot.get("selectedPoints");
    if (rows.length) summarise(Array.from(rows));
  });
  wireLassoRelease();
  plot.subscribe("select", ({ points }) => {
    if (lassoing || (released && released.tiny)) return; // the lasso's own selection: summarised (or undone) at lassoEnd
    if (points.length === 1) selectRow(points[0]); // a click on a point
    else if (points.length > 1) summarise(Array.from(points)); // a class picked in the table
  });
  plot.subscribe("view", () => placeUploadMarker());
  // The plot narrows when the neighbour panel opens (the library publishes no view for a resize): the marker follows,
  // a frame later, once the library has its new size.
  new ResizeObserver(() => requestAnimationFrame(() => placeUploadMarker())).observe($("plot"));
  $("color-by").addEventListener("change", applyColors);
  $("lasso").addEventListener("click", () => setLasso($("lasso").getAttribute("aria-pressed") !== "true"));
  for (const b of document.querySelectorAll(".sel-export")) b.addEventListener("click", () => exportSelection(b.dataset.format));
  $("sel-compare").addEventListener("submit", openComparison);
  $("sel-close").addEventListener("click", () => {
    $("selection").hidden = true;
    lastSelection = null;
    plot.deselect({ preventEvent: true });
  });
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
      const label = pts.class_names.findIndex((name) => name.toLowerCase() === wanted);
      if (label < 0) { setStatus(`No class named "${text}".`, true); return; }
      selectClass(label);
    }
  });
  $("search-kind").addEventListener("change", () => {
    $("search-text").placeholder = $("search-kind").value === "index" ? "e.g. 42" : "class name";
  });
  $("panel-close").addEventListener("click", () => {
    $("panel").hidden = true;
    selected = null;
    placeUploadMarker();
    plot.deselect({ preventEvent: true });
  });
  if (isJob) wireUploads();
}

// A lasso press is never a click on a point: regl-scatterplot takes a release within 3 px of the press for one (a lasso
// closed where it began, or a press and release while lassoing) and replaces the selection with that point. A lasso
// that never went further than TINY_LASSO_PX from its press (a slip) keeps the selection it found: the library would
// replace it with what the tiny polygon holds, usually nothing. Listeners on the window, in the capture phase, run before
// the library's (its mouseup is the window's, and the release may land on its lasso's layer).
const TINY_LASSO_PX = 6;
let pressed = null; // a lasso press on the canvas: where, how far it went, and the selection then
let released = null; // that press once released, until the library's events of the release are through

/** A press that draws a lasso (lasso mode, or shift held), not a pan. */
const lassoPress = (e) => plot.get("mouseMode") === "lasso" || e.shiftKey;

function wireLassoRelease() {
  const canvas = $("plot-canvas");
  window.addEventListener("mousedown", (e) => {
    const lasso = e.target === canvas && lassoPress(e);
    pressed = lasso ? { x: e.clientX, y: e.clientY, far: 0, rows: Array.from(plot.get("selectedPoints")) } : null;
    released = null;
  }, { capture: true });
  window.addEventListener("mousemove", (e) => {
    if (pressed) pressed.far = Math.max(pressed.far, Math.hypot(e.clientX - pressed.x, e.clientY - pressed.y));
  }, { capture: true });
  window.addEventListener("mouseup", () => {
    released = pressed && { tiny: pressed.far < TINY_LASSO_PX, rows: pressed.rows };
    pressed = null;
  }, { capture: true });
  window.addEventListener("click", (e) => {
    if (released && e.target === canvas) e.stopPropagation(); // not a click on a point
    setTimeout(() => { released = null; }, 0); // after the library's events of the release (published a tick later)
  }, { capture: true });
}

function wireUploads() {
  $("upload").addEventListener("change", () => queryUpload($("upload").files[0]));
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
  // The summary needs the neighbour index (minutes to build past a million points): the points are drawn without waiting for it.
  const summary = api(`${base}/embedding/summary`);
  try {
    pts = await loadColumns();
  } catch (err) {
    summary.catch(() => {});
    setStatus(err.message, true);
    return;
  }
  byIndex = new Map();
  for (let r = 0; r < pts.n; r++) byIndex.set(pts.index[r], r);
  const list = $("class-list");
  for (const name of pts.class_names) list.append(el("option", { value: name }));
  normalise();
  const n = pts.n;
  const pointSize = n > 300000 ? 2 : n > 20000 ? 3 : n > 5000 ? 4 : 6;
  plot = createScatterplot({
    canvas: $("plot-canvas"),
    backgroundColor: "#ffffff",
    pointSize,
    pointSizeSelected: 4,
    pointOutlineWidth: 2,
    pointColorActive: "#111111",
    pointColorHover: "#111111",
    opacityInactiveMax: 0.25,
    performanceMode: n > 500000, // squares without blending: what keeps a million points fluid in software GL
    spatialIndexUseWorker: false, // its worker would be a blob: script, which the page's policy refuses
    lassoColor: "#0b62c4",
    ...colorSettings($("color-by").value),
  });
  let draws = 0; // every point drawn this many times (tests: a hover draws none)
  plot.subscribe("drawing", () => { draws += 1; });
  await plot.draw(channels());
  performance.mark("explorer-drawn"); // every point is on the canvas (bench/explorer.py reads this)
  // Past COMPOSITE_FROM points nothing redraws them but a settled view or a new selection: gestures move the drawn
  // picture, and hover is picked and marked over it.
  const big = n >= COMPOSITE_FROM;
  // Each refers to the other, only once events arrive (both are set by then).
  const hovers = big ? pickedHover(plot, $("plot-canvas"), ndc.x, ndc.y, pointSize, {
    axes: ndcAxes, paused: () => gestures.moving(), isLasso: lassoPress, ring: $("hover-ring"),
    over: (row, x, y) => { mouse = { x, y }; showHover(row); }, out: () => { $("hover").hidden = true; } }) : null;
  const gestures = big ? compositeGestures(plot, $("plot-canvas"), lassoPress,
    (t) => {
      if (t.s !== 1 || t.x || t.y) { $("hover").hidden = true; hovers.hide(); } // hover waits for the settled view
      placeUploadMarker(t);
    }) : null;
  wire();
  if (hovers) {
    // The ring and the card mark where the point was: a new view or a resized plot (the neighbour panel opening) moves it.
    plot.subscribe("view", () => hovers.hide());
    new ResizeObserver(() => hovers.hide()).observe($("plot"));
  }
  // For tests and benchmarks: where a row is drawn, in page pixels.
  $("plot").explorer = { rows: n, indexOf: (row) => pts.index[row], screenOfRow: (row) => screenOf(pts.x[row], pts.y[row]),
    screenOfIndex: (index) => { const row = byIndex.get(index); return screenOf(pts.x[row], pts.y[row]); },
    selectedRows: () => Array.from(plot.get("selectedPoints")),
    composited: !!gestures, pickedHover: !!hovers, draws: () => draws,
    uploadScreen: () => (selected && selected.kind === "upload" ? screenOf(selected.x, selected.y) : null),
    hoverRowAt: (x, y) => (hovers ? hovers.rowAt(x, y) : null), hoverRadius: () => (hovers ? hovers.radiusPx() : null),
    settled: () => (gestures ? gestures.settled() : Promise.resolve()), settles: () => (gestures ? gestures.settles : []) };
  root.dataset.ready = "true";
  let val = 0;
  for (let i = 0; i < n; i++) val += pts.split[i] === 0 ? 1 : 0;
  setStatus((isJob ? `${n.toLocaleString()} points: ${val.toLocaleString()} validation, ${(n - val).toLocaleString()} training sample. `
    : `${n.toLocaleString()} points. `) + "Click a point for its neighbours; shift-drag (or the lasso button) to select.");
  const m = /^#index=(\d+)$/.exec(location.hash);
  if (m) selectIndex(Number(m[1]));
  if (!$("classes").querySelector("tbody tr")) $("preservation").textContent =
    "Waiting for the neighbour index (built once per job, minutes past a million points): neighbours, quality and selections need it.";
  summary.then(renderQuality, (err) => setStatus(err.message, true));
}

main();
