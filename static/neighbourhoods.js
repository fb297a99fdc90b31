// Items whose neighbourhoods changed most between two embeddings (templates/neighbourhoods.html, GET /api/neighbourhoods),
// and both layouts side by side with a linked selection (GET /api/neighbourhoods/layouts, static/linked_panels.js).
import { api, el } from "/static/common.js";
import { clearSelection, drawPanels, selectRows } from "/static/linked_panels.js";

const root = document.getElementById("changed");
const $ = (id) => document.getElementById(id);
const LIMIT = 2000; // the most changed items fetched; sorting other ways is over these
let items = [];
let sortKey = "change", descending = true;
const gd = $("pair");
let pair = null; // the drawn layouts: row of each item index, for the table's clicks
let picked = new Set(); // item indices selected in the panels

function render() {
  const sign = descending ? -1 : 1;
  const rows = [...items].sort((p, q) => {
    const a = p[sortKey], b = q[sortKey];
    return (a < b ? -1 : a > b ? 1 : 0) * sign || p.index - q.index;
  });
  const body = $("nb-table").querySelector("tbody");
  body.replaceChildren();
  for (const it of rows) {
    const img = el("img", { class: "ex-thumb", alt: `image ${it.index}`, loading: "lazy" });
    img.src = it.image_url;
    img.addEventListener("error", () => { img.hidden = true; }, { once: true }); // a collection without images
    const open = el("td", {},
      el("a", { href: `${root.dataset.aExplore}#index=${it.index}` }, root.dataset.a), " · ",
      el("a", { href: `${root.dataset.bExplore}#index=${it.index}` }, root.dataset.b));
    const tr = el("tr", { "data-index": String(it.index), class: picked.has(it.index) ? "picked" : "" }, el("td", {}, img),
      el("td", {}, String(it.index)), el("td", {}, it.class_name), el("td", {}, it.change.toFixed(3)), open);
    tr.addEventListener("click", (event) => { if (!event.target.closest("a")) pick(it.index); });
    body.append(tr);
  }
  for (const b of document.querySelectorAll("[data-sort]")) {
    const on = b.dataset.sort === sortKey;
    b.textContent = b.dataset.sort.replace("_name", "") + (on ? (descending ? " ▼" : " ▲") : "");
    if (on) b.setAttribute("aria-sort", descending ? "descending" : "ascending");
    else b.removeAttribute("aria-sort");
  }
}

async function load() {
  const k = Math.min(100, Math.max(1, Math.round(Number($("k").value)) || 10));
  $("nb-summary").textContent = "Searching both embeddings…";
  try {
    const q = new URLSearchParams({ a: root.dataset.a, b: root.dataset.b, k: String(k), limit: String(LIMIT) });
    const r = await api(`/api/neighbourhoods?${q}`);
    items = r.items;
    $("nb-summary").textContent = `${r.shared.toLocaleString()} shared items; mean change ${r.mean_change.toFixed(3)}; ` +
      `${r.unchanged.toLocaleString()} with the same ${k} neighbours` + (r.shared > LIMIT ? `; the ${LIMIT.toLocaleString()} most changed listed.` : ".");
    render();
    root.dataset.ready = "true";
    await layouts(k); // after the table: the server has the comparison cached by then
  } catch (err) {
    $("nb-summary").textContent = err.message;
  }
}

async function layouts(k) {
  try {
    const q = new URLSearchParams({ a: root.dataset.a, b: root.dataset.b, k: String(k) });
    const data = await api(`/api/neighbourhoods/layouts?${q}`);
    const t = data.alignment;
    const turned = `${data.b} aligned: turned ${t.rotation_degrees.toFixed(0)}°${t.mirrored ? ", mirrored" : ""}`;
    pair = { data, rowOf: new Map(data.points.index.map((index, row) => [index, row])) };
    drawPanels(gd, {
      points: data.points, classNames: data.class_names, legend: $("pair-legend"), columns: 2, height: 420,
      panels: [{ title: `${data.a}`, ...data.layouts.a }, { title: turned, ...data.layouts.b }],
      describe: (row, className) => `item ${data.points.index[row]} · class ${className} · change ${data.points.change[row].toFixed(2)}`,
      onSelect: selected,
    });
    selected(null); // a redraw (another k) starts without a selection
    const shown = data.points.index.length;
    const sample = data.shared > shown ? `the ${data.most_changed.toLocaleString()} most changed and a seeded sample of the rest, ` +
      `${shown.toLocaleString()} of ${data.shared.toLocaleString()} shared items` : `All ${shown.toLocaleString()} shared items`;
    $("pair-status").textContent = `${sample}. After alignment an item sits ${t.residual.toFixed(2)} of the layout's spread ` +
      "from its place in the other (RMS; 0: the same picture, about 1: unrelated).";
    gd.dataset.ready = "true";
  } catch (err) {
    $("pair-status").textContent = err.message;
  }
}

/** A table row clicked: that item selected in both panels (when drawn). */
function pick(index) {
  const row = pair && pair.rowOf.get(index);
  if (row === undefined) {
    $("pair-selection").textContent = pair ? `Item ${index} is not among the drawn sample.` : "";
    return;
  }
  Plotly.relayout(gd, { selections: [] });
  selected(selectRows(gd, [row]));
}

function selected(rows) {
  $("pair-clear").disabled = !rows;
  const { index, change } = pair.data.points;
  picked = new Set(rows ? rows.map((r) => index[r]) : []);
  const mean = rows ? rows.reduce((s, r) => s + change[r], 0) / rows.length : 0;
  $("pair-selection").textContent = rows ? `${rows.length.toLocaleString()} items selected, highlighted in both panels; ` +
    `mean change ${mean.toFixed(3)}.` : "";
  render();
}

$("pair-clear").addEventListener("click", () => selected(clearSelection(gd)));

for (const b of document.querySelectorAll("[data-sort]")) {
  b.addEventListener("click", () => {
    if (sortKey === b.dataset.sort) descending = !descending;
    else { sortKey = b.dataset.sort; descending = sortKey === "change"; }
    render();
  });
}
$("k").addEventListener("change", load);
load();
