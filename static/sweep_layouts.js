// "Embeddings across the sweep": one panel per succeeded run, laid out together (GET /api/sweeps/{id}/layouts,
// umap's AlignedUMAP) so an image sits in about the same place in each; a box or lasso selection in one
// panel highlights the same images in all (static/linked_panels.js).
import { api } from "/static/common.js";
import { clearSelection, drawPanels } from "/static/linked_panels.js";

const POLL_MS = 2000;
const RETRY_MS = 10000;
const gd = document.getElementById("layouts");
const status = document.getElementById("layouts-status");
const clear = document.getElementById("clear-selection");
let shownKey = null; // the succeeded job ids the panels (or the message) stand for
let waiting = false; // a request or a poll is under way
let latest = null; // the sweep as last refreshed: titles come from it

function succeededKey(sweep) {
  return sweep.job_list.filter((j) => j.status === "succeeded").map((j) => j.id).sort((a, b) => a - b).join(",");
}

function say(text) {
  status.textContent = text;
}

function draw(data, title) {
  const jobs = new Map(latest.job_list.map((j) => [j.id, j]));
  const points = data.points;
  drawPanels(gd, {
    points, classNames: data.class_names, legend: document.getElementById("layouts-legend"),
    panels: data.job_ids.map((id) => ({ title: jobs.has(id) ? title(jobs.get(id)) : `job ${id}`, ...data.layouts[id] })),
    describe: (row, className) => `image ${points.index[row]} · class ${className}`,
    onSelect: selected,
  });
  const shown = points.index.length;
  const sample = data.common_points > shown ? `a seeded sample of ${shown} of the ${data.common_points}` : `all ${shown}`;
  const left = data.skipped.map((id) => `job ${id}`).join(", ");
  const skipped = left ? ` Left out (no stored embeddings): ${left}.` : "";
  say(`${data.job_ids.length} runs, ${sample} validation images they share; laid out in ${data.seconds.toFixed(0)} s.${skipped}`);
}

function selected(chosen) {
  clear.disabled = !chosen;
  document.getElementById("selection-status").textContent = chosen ? `${chosen.length} images selected, highlighted in every panel.` : "";
}

clear.addEventListener("click", () => selected(clearSelection(gd)));

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
