// Sweeps list and the new-sweep form.
import { api, ApiError, el, fmtDateTime } from "/static/common.js";

const axes = document.getElementById("axes");

/** "0.4 to 1.0 step 0.1" -> [0.4, 0.5, ..., 1.0]; "triplet, circle" -> ["triplet", "circle"]; numbers stay numbers. */
export function parseValues(text) {
  const range = text.trim().match(/^(-?[\d.]+)\s*to\s*(-?[\d.]+)\s*step\s*([\d.]+)$/i);
  if (range) {
    const [start, stop, step] = range.slice(1).map(Number);
    if (!(step > 0)) throw new Error("the step of a range must be positive");
    const decimals = Math.max(...range.slice(1).map((s) => (s.split(".")[1] || "").length));
    const values = [];
    for (let i = 0; start + i * step <= stop + step / 1e6 && values.length <= 1000; i++) values.push(Number((start + i * step).toFixed(decimals)));
    return values;
  }
  return text.split(",").map((s) => s.trim()).filter(Boolean).map((s) => {
    if (s === "true" || s === "false") return s === "true";
    return s !== "" && !Number.isNaN(Number(s)) ? Number(s) : s;
  });
}

function addAxis(field = "", values = "") {
  const row = el("div", { class: "axis-row" },
    el("input", { class: "axis-field", list: "axis-fields", placeholder: "field, e.g. margin", value: field, "aria-label": "axis field" }),
    el("input", { class: "axis-values", placeholder: "0.1 to 0.8 step 0.1", value: values, size: 40, "aria-label": "axis values" }),
    el("button", { type: "button", class: "button small" }, "Remove"));
  row.querySelector("button").addEventListener("click", () => { row.remove(); updateCount(); });
  row.addEventListener("input", updateCount);
  axes.append(row);
}

function readForm() {
  const grid = {};
  for (const row of axes.querySelectorAll(".axis-row")) {
    const field = row.querySelector(".axis-field").value.trim();
    if (field) grid[field] = parseValues(row.querySelector(".axis-values").value);
  }
  const seeds = parseValues(document.getElementById("sweep-seeds").value);
  const base = JSON.parse(document.getElementById("sweep-base").value || "{}");
  return { name: document.getElementById("sweep-name").value.trim(), base, grid, seeds };
}

function updateCount() {
  const out = document.getElementById("sweep-count");
  try {
    const { grid, seeds } = readForm();
    const n = Object.values(grid).reduce((acc, v) => acc * v.length, seeds.length);
    out.textContent = `${n} job${n === 1 ? "" : "s"}`;
  } catch (e) {
    out.textContent = e.message;
  }
}

document.getElementById("add-axis").addEventListener("click", () => addAxis());
document.getElementById("sweep-form").addEventListener("input", updateCount);
document.getElementById("sweep-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = document.getElementById("sweep-error");
  box.hidden = true;
  try {
    const created = await api("/api/sweeps", { method: "POST", body: readForm() });
    window.location.href = `/sweeps/${created.id}`;
  } catch (e) {
    box.textContent = e instanceof ApiError ? e.message : `Cannot read the form: ${e.message}`;
    box.hidden = false;
  }
});

async function refresh() {
  const data = await api("/api/sweeps?limit=100");
  const body = document.querySelector("#sweeps-table tbody");
  body.replaceChildren(...data.sweeps.map((s) => el("tr", {},
    el("td", { class: "num" }, s.id),
    el("td", {}, el("a", { href: `/sweeps/${s.id}` }, s.name)),
    el("td", {}, s.axes.join(", ")),
    el("td", { class: "num" }, s.jobs),
    el("td", {}, Object.entries(s.status_counts).map(([k, v]) => `${v} ${k}`).join(", ")),
    el("td", {}, s.owner),
    el("td", {}, fmtDateTime(s.created_at)),
    el("td", {}, el("a", { href: `/sweeps/${s.id}` }, "Compare")))));
  if (!data.sweeps.length) body.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No sweep yet.")));
}

/** Margins around `margin` on a log grid, x0.25 to x4 (three significant digits). */
export function marginsAround(margin) {
  return [0.25, 0.5, 1, 2, 4].map((f) => Number((margin * f).toPrecision(3)));
}

/** /sweeps?from_job=ID: the form pre-filled around that job's spec (the job page's "Sweep this margin"). */
async function prefill() {
  const from = Number(new URLSearchParams(window.location.search).get("from_job"));
  if (!Number.isInteger(from) || from < 1) {
    addAxis("margin", "0.1 to 0.8 step 0.1");
    return;
  }
  try {
    const job = await api(`/api/jobs/${from}`);
    const { name, margin, seed, ...base } = job.spec;
    document.getElementById("sweep-name").value = `margins around job ${job.id}`;
    document.getElementById("sweep-base").value = JSON.stringify(base);
    document.getElementById("sweep-seeds").value = "0, 1";
    addAxis("margin", marginsAround(margin > 0 ? margin : 0.2).join(", "));
    document.getElementById("sweep-source").textContent = `Pre-filled from job ${job.id} (${job.name}, margin ${margin}): its spec, margins x0.25 to x4, two seeds.`;
  } catch (e) {
    addAxis("margin", "0.1 to 0.8 step 0.1");
    document.getElementById("sweep-source").textContent = `Could not read job ${from}: ${e.message}`;
  }
  document.getElementById("sweep-form").scrollIntoView();
}

await prefill();
updateCount();
refresh();
setInterval(refresh, 5000);
