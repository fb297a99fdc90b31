// One job: its state, log and live charts. Series come from GET /metrics, then new points
// from the SSE stream, resumed after the load's last_event_id so nothing is missed or doubled.
import { CHART_CONFIG as CONFIG, CHART_LAYOUT, Series, effectiveWindow, movingAverage } from "/static/charts.js";
import { ACTIVE, DistanceView, HARDNESS, drawHardness } from "/static/job_margin.js";
import { summaryOf } from "/static/overlays.js";
import { api, el, fmtDateTime, fmtDuration, fmtInt, fmtMetric, progressFraction, progressText, setBadge, TERMINAL } from "/static/common.js";

const root = document.getElementById("job");
const jobId = Number(root.dataset.jobId);
const $ = (id) => document.getElementById(id);

const LOSS = ["train/loss", "val/loss"];
const RETRIEVAL = [
  ["val/precision_at_1", "precision@1", "#0b62c4", "rgba(11, 98, 196, 0.14)"],
  ["val/r_precision", "R-precision", "#2da44e", "rgba(45, 164, 78, 0.14)"],
  ["val/mean_average_precision_at_r", "MAP@R", "#8250df", "rgba(130, 80, 223, 0.14)"],
];
const BOUNDS = RETRIEVAL.flatMap(([name]) => [`${name}_low`, `${name}_high`]); // 95% bootstrap bounds, per evaluation
// Read in two parts: the loss and retrieval charts first, the per-step diagnostics right after.
const FIRST = [...LOSS, ...RETRIEVAL.map(([name]) => name), ...BOUNDS];
const DIAGNOSTICS = [...HARDNESS.map(([name]) => name), ACTIVE];
const WANTED = [...FIRST, ...DIAGNOSTICS];
const NEW_EVALUATION = "val/distance_overlap"; // written with each evaluation's distance histograms
const LIVE_MAX_POINTS = 20000; // a long live run is thinned in the browser beyond this
const LATEST = [
  ["val/mean_average_precision_at_r", "MAP@R"],
  ["val/precision_at_1", "Precision@1"],
  ["val/r_precision", "R-precision"],
  ["val/loss", "Validation loss"],
];

let job = null;
const series = Object.fromEntries(WANTED.map((name) => [name, new Series()]));
let stream = null;
const distances = new DistanceView(jobId);

// -- job state ---------------------------------------------------------------

let drawnStatus = null;

function renderJob() {
  if (drawnStatus !== null && drawnStatus !== job.status) scheduleDraw(); // an empty chart says why it is empty
  drawnStatus = job.status;
  setBadge($("status"), job.status);
  $("job-name").textContent = job.name;
  document.title = `Job ${job.id}: ${job.name} · embedlab`;
  const fill = $("progress-bar");
  fill.style.width = `${(progressFraction(job) * 100).toFixed(1)}%`;
  fill.className = `bar-fill status-${job.status}`;
  $("progress-text").textContent = `step ${progressText(job)}`;
  const rate = job.status === "running" && job.steps_per_second ? `${job.steps_per_second.toFixed(1)} steps/s` : "";
  $("eta").textContent = rate;
  $("attempts").textContent = `${job.attempts} of ${job.max_attempts}`;
  $("device").textContent = job.device || "–";
  $("worker").textContent = job.worker || "–";
  $("created").textContent = fmtDateTime(job.created_at);
  $("started").textContent = fmtDateTime(job.started_at) || "–";
  $("finished").textContent = job.finished_at
    ? `${fmtDateTime(job.finished_at)}${job.started_at ? ` (ran ${fmtDuration((Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000)})` : ""}`
    : "–";
  $("error").hidden = !job.error;
  $("error").textContent = job.error || "";
  $("latest").replaceChildren(
    ...LATEST.filter(([name]) => job.metrics[name] !== undefined).map(([name, label]) => el("div", { title: name }, el("dt", {}, label), el("dd", {}, fmtMetric(job.metrics[name])))),
  );
  const cancel = $("cancel");
  cancel.hidden = TERMINAL.has(job.status);
  cancel.disabled = job.cancel_requested;
  cancel.textContent = job.cancel_requested ? "Cancelling…" : "Cancel job";
  // A job cancelled while running keeps its last evaluation (checkpoint, embeddings, layout).
  const succeeded = job.status === "succeeded" || (job.status === "cancelled" && Boolean(job.started_at));
  $("explore").hidden = !succeeded || job.spec.explorer === false;
  $("downloads").hidden = !succeeded;
  $("downloads-pending").hidden = succeeded;
  $("downloads-pending").textContent = TERMINAL.has(job.status)
    ? `No downloads: the job ${job.status} before writing its final checkpoint and embeddings.`
    : "Downloads appear when the job has succeeded.";
  if (!$("spec").textContent) $("spec").textContent = JSON.stringify(job.spec, null, 2);
  renderEvidence();
}

async function loadLog() {
  const lines = await api(`/api/jobs/${jobId}/logs`);
  const box = $("log");
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  if (!lines.length) return;
  box.replaceChildren(
    ...lines.map((line) =>
      el("div", { class: `log-line level-${line.level}` },
        el("span", { class: "log-time", title: fmtDateTime(line.created_at) }, new Date(Date.parse(line.created_at)).toLocaleTimeString()),
        el("span", { class: "log-attempt muted", title: "attempt" }, `#${line.attempt}`),
        el("span", { class: "log-level" }, line.level),
        el("span", { class: "log-message" }, line.message)),
    ),
  );
  if (atBottom) box.scrollTop = box.scrollHeight;
}

$("cancel").addEventListener("click", async () => {
  if (!window.confirm(`Cancel job ${jobId} (${job.name})?`)) return;
  $("action-error").hidden = true;
  try {
    job = await api(`/api/jobs/${jobId}/cancel`, { method: "POST" });
    renderJob();
  } catch (err) {
    $("action-error").hidden = false;
    $("action-error").textContent = `Could not cancel: ${err.message}`;
  }
});

// -- charts ------------------------------------------------------------------

const smoothing = $("smoothing");
const logScale = $("log-scale");
const BASE_LAYOUT = { ...CHART_LAYOUT, xaxis: { title: { text: "step" }, zeroline: false, gridcolor: "#eef0f2" }, hovermode: "x unified" };
let revision = 0;
let drawPending = false;

function lossTraces() {
  const train = series["train/loss"];
  const val = series["val/loss"];
  const window = effectiveWindow(train.x, Number(smoothing.value));
  return [
    // data[0] is the raw training loss (the e2e tests count its points).
    { name: "train/loss", x: train.x, y: train.y, type: "scatter", mode: "lines", line: { color: "rgba(11, 98, 196, 0.22)", width: 1 }, hoverinfo: "skip", showlegend: window > 1 },
    { name: window > 1 ? `train/loss, mean of ${window} steps` : "train/loss", x: train.x, y: window > 1 ? movingAverage(train.x, train.y, window) : train.y,
      type: "scatter", mode: "lines", line: { color: "#0b62c4", width: 2 } },
    { name: "val/loss", x: val.x, y: val.y, type: "scatter", mode: "lines+markers", line: { color: "#d1453b", width: 1.5 }, marker: { size: 6 } },
  ];
}

/** Per metric: its interval band (when written), the curve, the step-0 value as a dotted reference, the best step ringed. */
function retrievalTraces() {
  const summary = job ? summaryOf(job) : {};
  const traces = [];
  for (const [name, label, color, band] of RETRIEVAL) {
    const s = series[name], lo = series[`${name}_low`], hi = series[`${name}_high`];
    if (lo.x.length && hi.x.length) {
      traces.push({ name: `${label} 95% interval`, x: hi.x, y: hi.y, type: "scatter", mode: "lines", line: { width: 0, color }, hoverinfo: "skip", showlegend: false, legendgroup: name });
      traces.push({ name: `${label} 95% interval`, x: lo.x, y: lo.y, type: "scatter", mode: "lines", line: { width: 0, color }, fill: "tonexty", fillcolor: band,
        hoverinfo: "skip", showlegend: false, legendgroup: name });
    }
    traces.push({ name: label, x: s.x, y: s.y, type: "scatter", mode: "lines+markers", line: { color, width: 2 }, marker: { size: 6 }, legendgroup: name,
      hovertemplate: `${name}: %{y:.4f}<extra></extra>` });
    const metric = name.slice(4);
    const baseline = summary.baseline && summary.baseline.metrics ? summary.baseline.metrics[metric] ?? summary.baseline.metrics[name] : undefined;
    const base = typeof baseline === "number" ? baseline : s.x[0] === 0 ? s.y[0] : null;
    if (base !== null && s.x.length) {
      traces.push({ name: `${label} at step 0`, x: [0, Math.max(s.x[s.x.length - 1], 1)], y: [base, base], type: "scatter", mode: "lines", legendgroup: name,
        showlegend: false, line: { color, width: 1.2, dash: "dot" }, hovertemplate: `${name} at step 0 (untrained): %{y:.4f}<extra></extra>` });
    }
    const best = summary.best && summary.best.metrics ? summary.best.metrics[metric] ?? summary.best.metrics[name] : undefined;
    if (typeof best === "number") {
      traces.push({ name: `${label} best`, x: [summary.best.step], y: [best], type: "scatter", mode: "markers", legendgroup: name, showlegend: false,
        marker: { color, size: 13, symbol: "circle-open", line: { width: 2.5, color } }, hovertemplate: `best step %{x}: %{y:.4f}<extra></extra>` });
    }
  }
  return traces;
}

const fmtBounds = (m, key) => {
  const bare = key.split("/").pop();
  const v = m[key] ?? m[bare], lo = m[`${key}_low`] ?? m[`${bare}_low`], hi = m[`${key}_high`] ?? m[`${bare}_high`];
  if (typeof v !== "number") return "–";
  return typeof lo === "number" && typeof hi === "number" ? `${fmtMetric(v, 3)} [${fmtMetric(lo, 3)}, ${fmtMetric(hi, 3)}]` : fmtMetric(v, 3);
};

/** The evidence a finished job carries: its best checkpoint, its untrained value, its locked test, and the no-gain warning. */
function renderEvidence() {
  const s = summaryOf(job);
  const map = "val/mean_average_precision_at_r";
  const items = [];
  if (s.best && s.best.metrics) items.push(["Best MAP@R", `step ${s.best.step}: ${fmtBounds(s.best.metrics, map)}`, "the kept checkpoint, chosen on the validation split"]);
  if (s.baseline && s.baseline.metrics) items.push(["MAP@R at step 0", fmtBounds(s.baseline.metrics, map), "the untrained network"]);
  const test = s.test || {};
  for (const [key, label] of [["best", "Locked test, best"], ["final", "Locked test, final"]]) {
    if (test[key] && test[key].metrics) items.push([label, `step ${test[key].step}: ${fmtBounds(test[key].metrics, "test/mean_average_precision_at_r")}`, "the test classes, scored once at the end and read by no selection"]);
  }
  if (s.stopped_early) items.push(["Stopped early", `step ${s.stopped_early.step}: ${s.stopped_early.reason}`, ""]);
  $("evidence").replaceChildren(...items.map(([dt, dd, title]) => el("div", { title }, el("dt", {}, dt), el("dd", {}, dd))));
  $("no-gain").hidden = !s.no_gain;
  $("no-gain").textContent = s.no_gain || "";
}

function draw() {
  drawPending = false;
  revision += 1;
  const hasLoss = series["train/loss"].x.length || series["val/loss"].x.length;
  Plotly.react("loss-chart", lossTraces(), {
    ...BASE_LAYOUT, datarevision: revision,
    yaxis: { title: { text: "loss" }, type: logScale.checked ? "log" : "linear", gridcolor: "#eef0f2", zeroline: false },
    ...(hasLoss ? {} : emptyLayout()),
  }, CONFIG);
  const hasRetrieval = RETRIEVAL.some(([name]) => series[name].x.length);
  const traces = retrievalTraces();
  const ys = traces.flatMap((t) => t.y).filter((v) => typeof v === "number");
  const pad = ys.length ? Math.max(0.02, (Math.max(...ys) - Math.min(...ys)) * 0.08) : 0;
  Plotly.react("retrieval-chart", traces, {
    ...BASE_LAYOUT, datarevision: revision,
    yaxis: { title: { text: "score" }, range: ys.length ? [Math.max(0, Math.min(...ys) - pad), Math.min(1.02, Math.max(...ys) + pad)] : [0, 1.02], gridcolor: "#eef0f2", zeroline: false },
    ...(hasRetrieval ? {} : emptyLayout()),
  }, CONFIG);
  drawHardness(series, Number(smoothing.value), revision);
}

/** A chart with no points: no axes, one line saying why. */
function emptyLayout() {
  const text = job && job.status === "queued" ? "waiting for a worker to start this job" : job && TERMINAL.has(job.status) ? "no points were logged" : "no points yet";
  return {
    xaxis: { visible: false }, yaxis: { visible: false },
    annotations: [{ text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: "#5d6670", size: 14 } }],
  };
}

function scheduleDraw() {
  if (drawPending) return;
  drawPending = true;
  setTimeout(draw, 200);
}

async function loadSeries(names) {
  const data = await api(`/api/jobs/${jobId}/metrics?names=${encodeURIComponent(names.join(","))}`);
  for (const name of names) {
    const s = data.series[name];
    if (s) series[name] = new Series(s.step, s.value);
  }
  return data.last_event_id;
}

function limitSmoothing() {
  // A window longer than half the run says little; keep the default of 50 where it fits.
  const max = Math.max(10, Math.min(1000, Math.floor(job.progress.total / 2)));
  smoothing.max = max;
  if (Number(smoothing.value) > max) smoothing.value = max;
  $("smoothing-value").textContent = `${smoothing.value} step${smoothing.value === "1" ? "" : "s"}`;
}

smoothing.addEventListener("input", () => {
  $("smoothing-value").textContent = `${smoothing.value} step${smoothing.value === "1" ? "" : "s"}`;
  scheduleDraw();
});
logScale.addEventListener("change", draw);

// Zoom: read the visible steps again at full detail (the first load is thinned for long runs).
let zoomTimer = null;
function onRelayout(event) {
  const lo = event["xaxis.range[0]"] ?? (event["xaxis.range"] || [])[0];
  const hi = event["xaxis.range[1]"] ?? (event["xaxis.range"] || [])[1];
  if (event["xaxis.autorange"]) {
    // Zoomed out: back to the thinned overview of the whole run.
    clearTimeout(zoomTimer);
    zoomTimer = setTimeout(() => loadSeries(LOSS).then(scheduleDraw), 250);
    return;
  }
  if (lo === undefined || hi === undefined) return;
  clearTimeout(zoomTimer);
  zoomTimer = setTimeout(async () => {
    const from = Math.max(0, Math.floor(lo) - Number(smoothing.value)); // the moving average at `lo` needs the window before it
    const to = Math.max(from, Math.ceil(hi));
    const query = new URLSearchParams({ names: LOSS.join(","), step_min: from, step_max: to });
    const data = await api(`/api/jobs/${jobId}/metrics?${query}`);
    for (const name of LOSS) {
      const s = data.series[name];
      if (s) series[name].replaceRange(from, to, s.step, s.value);
    }
    scheduleDraw();
  }, 250);
}

// -- live updates --------------------------------------------------------------

function setLive(text) {
  $("live").textContent = text;
}

function openStream(after) {
  stream = new EventSource(`/api/jobs/${jobId}/stream?after=${after}`);
  stream.addEventListener("open", () => setLive("live"));
  stream.addEventListener("error", () => setLive(stream.readyState === EventSource.CLOSED ? "" : "reconnecting…"));
  stream.addEventListener("metrics", (event) => {
    for (const p of JSON.parse(event.data).points) {
      if (p.name === NEW_EVALUATION) distances.load().catch(() => {});
      const s = series[p.name];
      if (!s) continue;
      s.push(p.step, p.value);
      if (s.x.length > LIVE_MAX_POINTS) s.thin(LIVE_MAX_POINTS / 2);
    }
    scheduleDraw();
  });
  stream.addEventListener("status", (event) => {
    const changed = JSON.parse(event.data);
    const logWorthy = !job || changed.status !== job.status || changed.attempts !== job.attempts || changed.error !== job.error;
    job = { ...job, ...changed };
    renderJob();
    if (logWorthy) {
      loadLog();
      // The stream sends the fields that change while a job runs; a new status or attempt also moves started_at.
      api(`/api/jobs/${jobId}`).then((fresh) => {
        job = fresh;
        renderJob();
      }, () => {});
    }
  });
  stream.addEventListener("end", async () => {
    stream.close(); // otherwise EventSource reconnects when the server closes the stream
    setLive("");
    job = await api(`/api/jobs/${jobId}`);
    renderJob();
    scheduleDraw();
    loadLog();
    distances.load();
  });
}

async function start() {
  job = await api(`/api/jobs/${jobId}`);
  renderJob();
  limitSmoothing();
  // The job before its points: a job read as ended comes with all of them (workers write points first).
  const lastEventId = await loadSeries(FIRST);
  draw();
  $("loss-chart").on("plotly_relayout", onRelayout);
  // The stream opens after the second read and resumes from the first one's id: the points
  // written in between arrive again, and Series.push keeps one per step.
  await Promise.all([loadSeries(DIAGNOSTICS).then(scheduleDraw), loadLog(), distances.load()]);
  if (!TERMINAL.has(job.status)) openStream(lastEventId);
  // The log has no stream of its own: read it again now and then while the job may still write.
  const poll = setInterval(() => {
    if (TERMINAL.has(job.status)) clearInterval(poll);
    else if (document.visibilityState === "visible") {
      loadLog();
      // The place in the queue moves as jobs ahead start; the stream only carries what a running job changes.
      if (job.status === "queued") api(`/api/jobs/${jobId}`).then((fresh) => { job = fresh; renderJob(); }, () => {});
    }
  }, 5000);
}

start().catch((err) => {
  $("action-error").hidden = false;
  $("action-error").textContent = `Could not load the job: ${err.message}`;
});
