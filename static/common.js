// Shared by every page: JSON calls to the API, DOM building with text only, formatting.

/** An API answer that was not 2xx; `detail` is FastAPI's list of {field, reason} or a sentence. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : (detail || []).map((d) => `${d.field}: ${d.reason}`).join("; ") || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

/** Job statuses, and those a job ends in: rendered from the server's type onto <body> (app/pages/render.py). */
export const JOB_STATUSES = document.body.dataset.jobStatuses.split(" ");
export const TERMINAL = new Set(document.body.dataset.terminalStatuses.split(" "));

let me = null;

/** The session's CSRF token from GET /api/me, asked once per page on the first write; null without accounts. */
export function csrfToken() {
  me = me || fetch("/api/me", { headers: { Accept: "application/json" }, credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : null))
    .then((data) => (data && data.csrf_token) || null, () => null);
  return me;
}

/** Every page's one way to call the API: JSON answers; a body sent as JSON, or as multipart when it is a FormData (an
 * uploaded image); writes carry the session's CSRF token (`csrf: false` for the sign-in call, made before there is a session). */
export async function api(path, { method = "GET", body, signal, csrf = true } = {}) {
  const headers = { Accept: "application/json" };
  const form = body instanceof FormData;
  if (body !== undefined && !form) headers["Content-Type"] = "application/json"; // multipart: the browser sets the boundary
  if (method !== "GET" && csrf) {
    const token = await csrfToken();
    if (token) headers["X-CSRF-Token"] = token;
  }
  const payload = body === undefined || form ? body : JSON.stringify(body);
  const response = await fetch(path, { method, headers, body: payload, signal, credentials: "same-origin" });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data && data.detail !== undefined ? data.detail : text || response.statusText);
  return data;
}

/** el("a", {href: "/x", class: "y"}, "text", child): children are text nodes or elements, never HTML. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Plotly renders names as pseudo-HTML: escape so a class name is shown as written.
export function plotlyText(s) {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/** The colour of the class at `position` of `count` classes: Plotly's ten, then golden-angle hues. */
export function classColor(position, count) {
  if (count <= PALETTE.length) return PALETTE[position];
  return `hsl(${Math.round((position * 137.508) % 360)}, 65%, ${45 + (position % 3) * 8}%)`;
}

export function badge(status) {
  return el("span", { class: `badge status-${status}` }, status);
}

export function setBadge(node, status) {
  node.className = `badge status-${status}`;
  node.textContent = status;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${String(m % 60).padStart(2, "0")} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** "3 min ago" for recent times, the date after a day; the exact local time goes in a tooltip. */
export function fmtAgo(iso, now = Date.now()) {
  if (!iso) return "";
  const then = Date.parse(iso);
  const seconds = (now - then) / 1000;
  if (seconds < 5) return "just now";
  if (seconds < 86400) return `${fmtDuration(seconds).replace(/ \d+ s$/, "")} ago`;
  return new Date(then).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

export function fmtDateTime(iso) {
  return iso ? new Date(Date.parse(iso)).toLocaleString() : "";
}

/** A time cell: relative text, exact time on hover. */
export function timeNode(iso) {
  return el("time", { datetime: iso || null, title: fmtDateTime(iso) || null }, fmtAgo(iso));
}

export function fmtMetric(value, digits = 3) {
  return value === null || value === undefined || !Number.isFinite(value) ? "–" : value.toFixed(digits);
}

export function fmtInt(n) {
  return Number(n).toLocaleString("en-US");
}

/** "120 / 300 · ETA 43 s", or after the steps "300 / 300 · laying out embeddings: 40%": what a running job's progress says. */
export function progressText(job) {
  const parts = [`${fmtInt(job.progress.step)} / ${fmtInt(job.progress.total)}`];
  if (job.status === "queued" && job.queue_position) parts.push(job.queue_position === 1 ? "next in the queue" : `${ordinal(job.queue_position)} in the queue`);
  if (job.status === "running" && job.phase) parts.push(job.phase);
  else if (job.status === "running" && job.eta_seconds !== null && job.eta_seconds !== undefined) parts.push(`ETA ${fmtDuration(job.eta_seconds)}`);
  return parts.join(" · ");
}

/** 1st, 2nd, 3rd, 4th, 11th, 21st... */
export function ordinal(n) {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? "th" : { 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th";
  return `${fmtInt(n)}${suffix}`;
}

export function progressFraction(job) {
  return job.progress.total ? Math.min(1, job.progress.step / job.progress.total) : 0;
}

const signOut = document.getElementById("sign-out");
if (signOut) {
  signOut.addEventListener("click", async () => {
    await api("/api/session", { method: "DELETE" }).catch(() => {}); // signed out either way: the cookie goes with the answer
    window.location.href = "/login";
  });
}
