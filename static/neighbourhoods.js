// Items whose neighbourhoods changed most between two embeddings (templates/neighbourhoods.html, GET /api/neighbourhoods),
// and both layouts side by side with a linked selection (GET /api/neighbourhoods/layouts, static/linked_panels.js).
import { api, el } from "/static/common.js";
import { clearSelection, drawPanels, selectRows } from "/static/linked_panels.js";
import { takeOver } from "/static/selection_handover.js";

const root = document.getElementById("changed");
const $ = (id) => document.getElementById(id);
const LIMIT = 2000; // the most changed items fetched; sorting other ways is over these
const PAGE = 50; // rows in the DOM at once: only their thumbnails are requested
let items = [];
let sortKey = "change", descending = true;
const gd = $("pair");
let pair = null; // the drawn layouts: row of each item index, for the table's clicks
let picked = new Set(); // item indices selected in the panels
// A box or lasso in a panel lists its items alone (they are scattered over up to 40 pages otherwise, a highlight on
// one page would show few of them); a table row's click keeps the list it was clicked in. Clearing returns to the page
// the full list was left at.
let only = null; // item indices the table is narrowed to (null: every listed item)
let page = 0, pageBefore = 0;
let picking = false; // a table row's item being selected in the panels
// An explorer's selection this page was opened for (?selection=<token>, static/selection_handover.js): the table lists
// its items, the summary says whether they changed more than the others, the panels highlight them.
const token = new URLSearchParams(window.location.search).get("selection");
const handed = token ? await takeOver(token) : null;

function ordered() {
  const sign = descending ? -1 : 1;
  const rows = [...items].sort((p, q) => {
    const a = p[sortKey], b = q[sortKey];
    return (a < b ? -1 : a > b ? 1 : 0) * sign || p.index - q.index;
  });
  return only ? rows.filter((it) => only.has(it.index)) : rows;
}

function row(it) {
  const img = el("img", { class: "ex-thumb", alt: `image ${it.index}`, loading: "lazy" });
  img.src = it.image_url;
  img.addEventListener("error", () => { img.hidden = true; }, { once: true }); // a collection without images
  const open = el("td", {},
    el("a", { href: `${root.dataset.aExplore}#index=${it.index}` }, root.dataset.a), " · ",
    el("a", { href: `${root.dataset.bExplore}#index=${it.index}` }, root.dataset.b));
  const tr = el("tr", { "data-index": String(it.index), class: picked.has(it.index) ? "picked" : "" }, el("td", {}, img),
    el("td", {}, String(it.index)), el("td", {}, it.class_name), el("td", {}, it.change.toFixed(3)), open);
  tr.addEventListener("click", (event) => { if (!event.target.closest("a")) pick(it.index); });
  return tr;
}

function range(total) {
  const n = (v) => v.toLocaleString();
  const rows = total ? `Rows ${n(page * PAGE + 1)}–${n(Math.min(total, (page + 1) * PAGE))} of ${n(total)}` : "No rows";
  if (!only) return rows;
  const away = only.size - total; // selected in the panels' sample, but not among the most changed listed
  return `${rows}: the panel selection's items` +
    (away ? `; ${n(away)} of the ${n(only.size)} selected are not among the ${n(items.length)} listed` : "");
}

function render() {
  const rows = ordered();
  page = Math.min(page, Math.max(0, Math.ceil(rows.length / PAGE) - 1));
  $("nb-table").querySelector("tbody").replaceChildren(...rows.slice(page * PAGE, (page + 1) * PAGE).map(row));
  for (const nav of document.querySelectorAll(".nb-pager")) {
    nav.querySelector(".nb-range").textContent = range(rows.length);
    nav.querySelector("[data-step='-1']").disabled = page === 0;
    nav.querySelector("[data-step='1']").disabled = (page + 1) * PAGE >= rows.length;
    nav.querySelector(".nb-all").hidden = !only;
  }
  for (const b of document.querySelectorAll("[data-sort]")) {
    const on = b.dataset.sort === sortKey;
    b.textContent = b.dataset.sort.replace("_name", "") + (on ? (descending ? " ▼" : " ▲") : "");
    if (on) b.setAttribute("aria-sort", descending ? "descending" : "ascending");
    else b.removeAttribute("aria-sort");
  }
}

/** The table narrowed to `indices` (a Set), or back to every row (null) at the page it was left at. */
function narrow(indices) {
  if (indices && !only) pageBefore = page;
  page = indices ? 0 : pageBefore;
  only = indices;
}

let asking = null; // the comparison being asked for: another k aborts it, so an older answer never lands over a newer one

async function load() {
  const k = Math.min(100, Math.max(1, Math.round(Number($("k").value)) || 10));
  $("nb-summary").textContent = "Searching both embeddings…";
  if (asking) asking.abort();
  const mine = (asking = new AbortController());
  try {
    const q = new URLSearchParams({ a: root.dataset.a, b: root.dataset.b, k: String(k), limit: String(LIMIT) });
    const r = handed
      ? await api(`/api/neighbourhoods/selection?${q}`, { method: "POST", body: { indices: handed.indices }, signal: mine.signal })
      : await api(`/api/neighbourhoods?${q}`, { signal: mine.signal });
    if (mine !== asking) return;
    items = r.items;
    only = null;
    page = pageBefore = 0;
    const whole = `${r.shared.toLocaleString()} shared items; mean change ${r.mean_change.toFixed(3)}; ` +
      `${r.unchanged.toLocaleString()} with the same ${k} neighbours`;
    $("nb-summary").textContent = handed ? `All ${whole}.`
      : whole + (r.shared > LIMIT ? `; the ${LIMIT.toLocaleString()} most changed listed.` : ".");
    if (handed) describeSelection(r.selection);
    render();
    root.dataset.ready = "true";
    await layouts(k, mine); // after the table: the server has the comparison cached by then
  } catch (err) {
    if (mine === asking) $("nb-summary").textContent = err.message;
  }
}

const fixed = (v) => v.toFixed(3);

/** What the handed-over selection's items did, against the other shared items, and the rule that says so. */
function describeSelection(s) {
  const n = (v) => v.toLocaleString();
  const away = s.selected - s.shared;
  const lines = [`The selection from ${handed.from}'s explorer: ${n(s.selected)} items` +
    (away ? `, ${n(s.shared)} of them held by both (${n(away)} left out)` : ", all held by both") +
    (s.shared > LIMIT ? `; the ${LIMIT.toLocaleString()} most changed listed.` : "; listed below.")];
  let verdict = `Their mean change ${fixed(s.selection.mean_change)}`;
  if (s.rest) {
    const sign = s.difference >= 0 ? "+" : "−";
    verdict += ` against ${fixed(s.rest.mean_change)} for the other ${n(s.rest.items)}: ${sign}${fixed(Math.abs(s.difference))}, ` +
      `where 95% of random selections of ${n(s.shared)} items differ by less than ±${fixed(s.noise)}`;
  }
  lines.push(`${verdict}: ${s.verdict}.`);
  if (s.rest) {
    lines.push("The rule: a difference beyond what 95% of random selections of the same size show is evidence; within it, " +
      "noise (a permutation test, 10,000 seeded draws; a lasso's items are neighbours, whose changes go together, so the " +
      "band is somewhat narrow for one).");
  }
  $("nb-selection").replaceChildren(...lines.map((t) => el("p", {}, t)),
    el("p", {}, el("a", { href: `?${new URLSearchParams({ a: root.dataset.a, b: root.dataset.b })}` }, "Compare every shared item instead")));
  $("nb-selection").hidden = false;
}

async function layouts(k, mine) {
  try {
    const q = new URLSearchParams({ a: root.dataset.a, b: root.dataset.b, k: String(k) });
    const data = await api(`/api/neighbourhoods/layouts?${q}`, { signal: mine.signal });
    if (mine !== asking) return;
    const t = data.alignment;
    const turned = `${data.b} aligned: turned ${t.rotation_degrees.toFixed(0)}°${t.mirrored ? ", mirrored" : ""}`;
    pair = { data, rowOf: new Map(data.points.index.map((index, row) => [index, row])) };
    drawPanels(gd, {
      points: data.points, classNames: data.class_names, legend: $("pair-legend"), columns: 2, height: 420,
      panels: [{ title: `${data.a}`, ...data.layouts.a }, { title: turned, ...data.layouts.b }],
      describe: (row, className) => `item ${data.points.index[row]} · class ${className} · change ${data.points.change[row].toFixed(2)}`,
      onSelect: (rows) => { if (!picking) selected(rows, true); },
    });
    selected(null); // a redraw (another k) starts without a selection
    if (handed) {
      // The handed-over items that are drawn (the panels show the most changed and a sample of the rest), in both.
      const rows = handed.indices.map((i) => pair.rowOf.get(i)).filter((r) => r !== undefined);
      if (rows.length) selected(selectRows(gd, rows));
    }
    const shown = data.points.index.length;
    const sample = data.shared > shown ? `the ${data.most_changed.toLocaleString()} most changed and a seeded sample of the rest, ` +
      `${shown.toLocaleString()} of ${data.shared.toLocaleString()} shared items` : `All ${shown.toLocaleString()} shared items`;
    $("pair-status").textContent = `${sample}. After alignment an item sits ${t.residual.toFixed(2)} of the layout's spread ` +
      "from its place in the other (RMS; 0: the same picture, about 1: unrelated).";
    gd.dataset.ready = "true";
  } catch (err) {
    if (mine === asking) $("pair-status").textContent = err.message;
  }
}

/** A table row clicked: that item selected in both panels (when drawn). */
function pick(index) {
  const row = pair && pair.rowOf.get(index);
  if (row === undefined) {
    $("pair-selection").textContent = pair ? `Item ${index} is not among the drawn sample.` : "";
    return;
  }
  picking = true; // removing the box or lasso outline reports a deselection: not the user's, the table keeps its list
  try {
    Plotly.relayout(gd, { selections: [] });
  } finally {
    picking = false;
  }
  selected(selectRows(gd, [row]));
}

/** `rows` of the panels selected (null: none); `inPanel`: by a box or lasso there, which narrows the table to them. */
function selected(rows, inPanel = false) {
  $("pair-clear").disabled = !rows;
  const { index, change } = pair.data.points;
  picked = new Set(rows ? rows.map((r) => index[r]) : []);
  if (rows ? inPanel : only) narrow(rows && new Set(picked)); // a box or lasso narrows the table, any clearing widens it
  const mean = rows ? rows.reduce((s, r) => s + change[r], 0) / rows.length : 0;
  const count = rows && `${rows.length.toLocaleString()} item${rows.length === 1 ? "" : "s"}`;
  const drawnOnly = handed && !inPanel && rows && rows.length < handed.indices.length; // the panels draw a sample
  $("pair-selection").textContent = !rows ? ""
    : drawnOnly ? `${count} of the selection's ${handed.indices.length.toLocaleString()} drawn (the panels favour the most changed), ` +
      `highlighted in both; their mean change ${mean.toFixed(3)}.`
    : `${count} selected, highlighted in both panels; mean change ${mean.toFixed(3)}.`;
  render();
}

$("pair-clear").addEventListener("click", () => selected(clearSelection(gd)));
for (const nav of document.querySelectorAll(".nb-pager")) {
  nav.querySelector(".nb-all").addEventListener("click", () => { narrow(null); render(); });
  for (const b of nav.querySelectorAll("[data-step]")) {
    b.addEventListener("click", () => {
      page += Number(b.dataset.step);
      render();
      // From the pager under the table: the new page from its first row, not from its last.
      if ($("nb-table").getBoundingClientRect().top < 0) $("nb-table").scrollIntoView({ block: "start" });
    });
  }
}

for (const b of document.querySelectorAll("[data-sort]")) {
  b.addEventListener("click", () => {
    if (sortKey === b.dataset.sort) descending = !descending;
    else { sortKey = b.dataset.sort; descending = sortKey === "change"; }
    page = 0; // the top of the new order
    render();
  });
}
$("k").addEventListener("change", load);
if (token && !handed) {
  $("nb-selection").replaceChildren(el("p", {}, "The explorer's selection this link was made for is no longer held here (a later selection " +
    "replaced it, or it was made in another browser): every shared item is compared."));
  $("nb-selection").hidden = false;
}
load();
