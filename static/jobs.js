// The jobs page: one page of GET /api/jobs, polled every 2 s; rows are updated in place.
import { api, el, fmtInt, fmtMetric, progressFraction, progressText, setBadge, timeNode } from "/static/common.js";

const PAGE_SIZE = 50;
const DEFAULT_SORT = "-id";
const POLL_MS = 2000;

const body = document.getElementById("jobs-body");
const statusSelect = document.getElementById("filter-status");
const search = document.getElementById("filter-q");
const live = document.getElementById("live");
const empty = document.getElementById("empty");
const pageInfo = document.getElementById("page-info");
const prev = document.getElementById("prev");
const next = document.getElementById("next");

// Filters live in the URL, so a reload or a shared link shows the same list.
const params = new URLSearchParams(window.location.search);
const state = {
  status: params.get("status") || "",
  q: params.get("q") || "",
  offset: Math.max(0, Number(params.get("offset")) || 0),
  sort: params.get("sort") || DEFAULT_SORT,
};
statusSelect.value = state.status;
search.value = state.q;

// The API's sort key of each column, in the table's order (null: not sortable). A click sorts by it, a second click reverses.
const SORT_KEYS = [null, "id", "name", "dataset", "loss", "margin", "sweep_id", "status", "progress",
  "metrics.val/mean_average_precision_at_r", "metrics.val/precision_at_1", "owner", "created_at", "finished_at", null];
// Numbers and times read best largest or newest first; names A to Z.
const DESCENDING_FIRST = new Set(["id", "margin", "progress", "metrics.val/mean_average_precision_at_r", "metrics.val/precision_at_1",
  "created_at", "finished_at"]);
const headers = [...document.querySelectorAll("#jobs-table thead th")];
headers.forEach((th, i) => {
  const key = SORT_KEYS[i];
  if (!key) return;
  const button = el("button", { type: "button", class: "sort", title: `Sort by ${th.textContent.trim()}` }, ...th.childNodes);
  th.replaceChildren(button);
  button.addEventListener("click", () => {
    const current = state.sort.replace(/^-/, "");
    state.sort = current === key ? (state.sort.startsWith("-") ? key : `-${key}`) : DESCENDING_FIRST.has(key) ? `-${key}` : key;
    state.offset = 0;
    filtersChanged();
  });
});

function showSort() {
  headers.forEach((th, i) => {
    const key = SORT_KEYS[i];
    if (!key) return;
    const sorted = state.sort.replace(/^-/, "") === key;
    th.setAttribute("aria-sort", sorted ? (state.sort.startsWith("-") ? "descending" : "ascending") : "none");
  });
  const byAge = state.sort === DEFAULT_SORT;
  prev.textContent = byAge ? "← Newer" : "← Previous";
  next.textContent = byAge ? "Older →" : "Next →";
}
showSort();

const rows = new Map(); // job id -> {tr, cells, key}
const selected = new Set(); // job ids ticked for comparison (kept across pages and polls)
const compareButton = document.getElementById("compare-selected");
let timer = null;
let inflight = null;

function datasetLabel(job) {
  if (job.dataset !== "imagefolder" || !job.spec.dataset_path) return job.dataset;
  return job.spec.dataset_path.split(/[\\/]/).filter(Boolean).pop();
}

function newRow(job) {
  const pick = el("input", { type: "checkbox", class: "pick", "aria-label": `select job ${job.id} for comparison` });
  pick.checked = selected.has(job.id);
  pick.addEventListener("change", () => {
    if (pick.checked) selected.add(job.id);
    else selected.delete(job.id);
    updateCompare();
  });
  const cells = {
    pick: el("td", {}, pick),
    id: el("td", { class: "num muted" }),
    name: el("td", { class: "name-cell" }, el("a", { href: `/jobs/${job.id}` })),
    dataset: el("td"),
    loss: el("td"),
    margin: el("td", { class: "num" }),
    sweep: el("td", { class: "sweep-cell" }),
    status: el("td", {}, el("span", { class: "badge" }), el("span", { class: "warn-tag no-gain", hidden: true }, "no gain")),
    progress: el("td", { class: "progress-cell" }, el("div", { class: "bar" }, el("div", { class: "bar-fill" })), el("small")),
    map: el("td", { class: "num map" }),
    p1: el("td", { class: "num p1" }),
    owner: el("td"),
    created: el("td"),
    finished: el("td"),
    actions: el("td", {}, el("a", { class: "button small", href: `/jobs/new?clone=${job.id}`, title: "New job with this job's spec" }, "Clone")),
  };
  const tr = el("tr", { dataset: { jobId: job.id } }, Object.values(cells));
  return { tr, cells, key: "" };
}

function updateRow(row, job) {
  // Skip the DOM when nothing shown changed (most rows, most polls).
  const shown = [job.name, job.status, job.progress, job.eta_seconds, job.phase, job.queue_position, job.metrics, job.best, job.no_gain, job.sweep_id, job.finished_at];
  const key = JSON.stringify([...shown, Math.floor(Date.now() / 30000)]);
  if (row.key === key) return;
  row.key = key;
  const c = row.cells;
  c.id.textContent = job.id;
  c.name.firstChild.textContent = job.name;
  c.dataset.textContent = datasetLabel(job);
  c.dataset.title = job.spec.dataset_path || "";
  c.loss.textContent = job.loss;
  c.margin.textContent = job.margin;
  c.sweep.replaceChildren(job.sweep_id ? el("a", { href: `/sweeps/${job.sweep_id}`, title: "the sweep this job belongs to" }, `sweep ${job.sweep_id}`) : "");
  setBadge(c.status.firstChild, job.status);
  const noGain = job.no_gain;
  c.status.lastChild.hidden = !noGain;
  c.status.lastChild.title = noGain || "";
  const [bar, text] = c.progress.children;
  bar.firstChild.style.width = `${(progressFraction(job) * 100).toFixed(1)}%`;
  bar.firstChild.className = `bar-fill status-${job.status}`;
  text.textContent = progressText(job);
  // At the best checkpoint once the job has one (what the job keeps), else the latest evaluation.
  const best = job.best && job.best.metrics;
  c.map.textContent = fmtMetric(best ? best.mean_average_precision_at_r : job.metrics["val/mean_average_precision_at_r"]);
  c.p1.textContent = fmtMetric(best ? best.precision_at_1 : job.metrics["val/precision_at_1"]);
  c.map.title = best ? `best step ${job.best.step}` : "latest evaluation";
  c.owner.textContent = job.owner;
  c.created.replaceChildren(timeNode(job.created_at));
  c.finished.replaceChildren(job.finished_at ? timeNode(job.finished_at) : "");
}

function updateCompare() {
  compareButton.disabled = selected.size < 2;
  compareButton.textContent = selected.size ? `Compare selected (${selected.size})` : "Compare selected";
}

compareButton.addEventListener("click", () => {
  window.location.href = `/compare?jobs=${[...selected].sort((a, b) => a - b).join(",")}`;
});

function render(list) {
  const seen = new Set();
  list.jobs.forEach((job, i) => {
    let row = rows.get(job.id);
    if (!row) {
      row = newRow(job);
      rows.set(job.id, row);
    }
    updateRow(row, job);
    seen.add(job.id);
    if (body.children[i] !== row.tr) body.insertBefore(row.tr, body.children[i] || null);
  });
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.tr.remove();
      rows.delete(id);
    }
  }
  const filtered = state.status || state.q;
  empty.hidden = list.jobs.length > 0;
  if (!list.jobs.length) {
    empty.replaceChildren(
      list.total && state.offset >= list.total ? "No jobs on this page." : filtered ? "No job matches these filters." : "No jobs yet. ",
      !filtered && !list.total ? el("a", { href: "/jobs/new" }, "Submit the first one.") : "",
    );
  }
  const first = list.jobs.length ? state.offset + 1 : 0;
  pageInfo.textContent = list.total ? `${fmtInt(first)}–${fmtInt(state.offset + list.jobs.length)} of ${fmtInt(list.total)}` : "";
  prev.disabled = state.offset === 0;
  next.disabled = state.offset + PAGE_SIZE >= list.total;
}

async function refresh() {
  clearTimeout(timer);
  if (inflight) inflight.abort();
  const controller = new AbortController();
  inflight = controller;
  const query = new URLSearchParams({ limit: PAGE_SIZE, offset: state.offset, sort: state.sort });
  if (state.status) query.set("status", state.status);
  if (state.q) query.set("q", state.q);
  try {
    const list = await api(`/api/jobs?${query}`, { signal: controller.signal });
    render(list);
    live.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    if (err.name === "AbortError") return;
    live.textContent = `could not refresh: ${err.message}`;
  } finally {
    if (inflight === controller) {
      inflight = null;
      if (document.visibilityState === "visible") timer = setTimeout(refresh, POLL_MS);
    }
  }
}

function filtersChanged() {
  const query = new URLSearchParams();
  if (state.status) query.set("status", state.status);
  if (state.q) query.set("q", state.q);
  if (state.offset) query.set("offset", state.offset);
  if (state.sort !== DEFAULT_SORT) query.set("sort", state.sort);
  showSort();
  const qs = query.toString();
  history.replaceState(null, "", qs ? `?${qs}` : window.location.pathname);
  refresh();
}

let typing = null;
search.addEventListener("input", () => {
  clearTimeout(typing);
  typing = setTimeout(() => {
    state.q = search.value.trim();
    state.offset = 0;
    filtersChanged();
  }, 250);
});
statusSelect.addEventListener("change", () => {
  state.status = statusSelect.value;
  state.offset = 0;
  filtersChanged();
});
document.getElementById("filters").addEventListener("submit", (e) => e.preventDefault());
prev.addEventListener("click", () => {
  state.offset = Math.max(0, state.offset - PAGE_SIZE);
  filtersChanged();
});
next.addEventListener("click", () => {
  state.offset += PAGE_SIZE;
  filtersChanged();
});
// No polling while the tab is hidden; catch up at once when it shows again.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refresh();
  else clearTimeout(timer);
});

refresh();
