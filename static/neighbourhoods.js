// Items whose neighbourhoods changed most between two embeddings (templates/neighbourhoods.html, GET /api/neighbourhoods).
import { api, el } from "/static/common.js";

const root = document.getElementById("changed");
const $ = (id) => document.getElementById(id);
const LIMIT = 2000; // the most changed items fetched; sorting other ways is over these
let items = [];
let sortKey = "change", descending = true;

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
    body.append(el("tr", { "data-index": String(it.index) }, el("td", {}, img), el("td", {}, String(it.index)),
      el("td", {}, it.class_name), el("td", {}, it.change.toFixed(3)), open));
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
  } catch (err) {
    $("nb-summary").textContent = err.message;
  }
}

for (const b of document.querySelectorAll("[data-sort]")) {
  b.addEventListener("click", () => {
    if (sortKey === b.dataset.sort) descending = !descending;
    else { sortKey = b.dataset.sort; descending = sortKey === "change"; }
    render();
  });
}
$("k").addEventListener("change", load);
load();
