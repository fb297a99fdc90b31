// The job page's margin diagnostics: triplet hardness per step (stacked) and the validation
// distance histograms with the margin drawn on, one evaluation at a time (slider).
import { CHART_CONFIG as CONFIG, CHART_LAYOUT as LAYOUT, effectiveWindow, movingAverage } from "/static/charts.js";
import { api, el, fmtMetric, plotlyText } from "/static/common.js";

export const HARDNESS = [
  ["train/triplets_easy", "easy", "#2da44e"],
  ["train/triplets_semihard", "semi-hard", "#d4a72c"],
  ["train/triplets_hard", "hard", "#d1453b"],
];
export const ACTIVE = "train/active_pairs";

const $ = (id) => document.getElementById(id);

/** Stacked shares of easy / semi-hard / hard triplets (moving average), and active pairs for pair losses. */
export function drawHardness(series, window, revision) {
  const traces = HARDNESS.filter(([name]) => series[name].x.length).map(([name, label, color]) => ({
    name: label, x: series[name].x, y: movingAverage(series[name].x, series[name].y, effectiveWindow(series[name].x, window)), type: "scatter", mode: "lines",
    stackgroup: "hardness", line: { color, width: 0.5 }, fillcolor: color, hovertemplate: `${label}: %{y:.2f}<extra></extra>`,
  }));
  const active = series[ACTIVE];
  if (active.x.length) {
    traces.push({ name: "active pairs", x: active.x, y: movingAverage(active.x, active.y, effectiveWindow(active.x, window)), type: "scatter", mode: "lines",
      line: { color: "#8250df", width: 2 }, hovertemplate: "active pairs: %{y:.2f}<extra></extra>" });
  }
  $("hardness-card").hidden = !traces.length;
  if (!traces.length) return;
  Plotly.react("hardness-chart", traces, {
    ...LAYOUT, datarevision: revision, hovermode: "x unified",
    xaxis: { title: { text: "step" }, zeroline: false, gridcolor: "#eef0f2" },
    yaxis: { title: { text: "share of the batch" }, range: [0, 1], gridcolor: "#eef0f2", zeroline: false },
  }, CONFIG);
}

/** The distance histograms of each evaluation; read again when the worker has written a new one. */
export class DistanceView {
  constructor(jobId) {
    this.jobId = jobId;
    this.data = null;
    this.follow = true; // the slider stays on the latest evaluation until the user moves it
    $("distance-step").addEventListener("input", () => {
      this.follow = Number($("distance-step").value) === this.data.evaluations.length - 1;
      this.draw();
    });
  }

  async load() {
    try {
      this.data = await api(`/api/jobs/${this.jobId}/distances`);
    } catch (err) {
      if (err.status === 404) return; // no evaluation yet
      throw err;
    }
    const slider = $("distance-step");
    const last = this.data.evaluations.length - 1;
    slider.max = String(Math.max(0, last));
    if (this.follow || Number(slider.value) > last) slider.value = String(last);
    $("distances-card").hidden = last < 0;
    slider.disabled = last < 1;
    this.draw();
  }

  draw() {
    const { evaluations, kind } = this.data;
    const e = evaluations[Number($("distance-step").value)];
    if (!e) return;
    const centres = e.edges.slice(0, -1).map((lo, i) => (lo + e.edges[i + 1]) / 2);
    const width = e.edges[1] - e.edges[0];
    const share = (counts) => {
      const total = counts.reduce((a, b) => a + b, 0) || 1;
      return counts.map((c) => c / total);
    };
    const bars = (name, counts, color) => ({
      name, x: centres, y: share(counts), type: "bar", width, marker: { color, opacity: 0.55 },
      hovertemplate: `${name}: %{y:.3f} at %{x:.3f}<extra></extra>`,
    });
    const shapes = e.margin_lines.map((line) => ({ type: "line", xref: "x", yref: "paper", x0: line.x, x1: line.x, y0: 0, y1: 1, line: { color: "#1b1f24", width: 2, dash: "dash" } }));
    // Zoom on the occupied bins and the margin lines: the bins span every possible value, pairs rarely do.
    const used = centres.filter((_, i) => e.positive[i] || e.negative[i]);
    const xs = [...used, ...e.margin_lines.map((line) => line.x)];
    const range = xs.length ? [Math.min(...xs) - 2 * width, Math.max(...xs) + 2 * width] : undefined;
    // A label right of its line, or left of it in the right half: never past the chart's edge.
    const middle = range ? (range[0] + range[1]) / 2 : 0;
    const annotations = e.margin_lines.map((line, i) => ({
      x: line.x, xref: "x", y: 1 - 0.08 * i, yref: "paper", text: plotlyText(line.label), showarrow: false,
      xanchor: line.x > middle ? "right" : "left", xshift: line.x > middle ? -4 : 4, bgcolor: "rgba(255,255,255,0.8)",
    }));
    Plotly.react("distance-chart", [bars("positive pairs", e.positive, "#0b62c4"), bars("negative pairs", e.negative, "#d1453b")], {
      ...LAYOUT, barmode: "overlay", bargap: 0, shapes, annotations,
      xaxis: { range, title: { text: kind === "cosine_similarity" ? "cosine similarity" : "L2 distance (normalised embeddings)" }, zeroline: false, gridcolor: "#eef0f2" },
      yaxis: { title: { text: "share of pairs" }, gridcolor: "#eef0f2", zeroline: false },
    }, CONFIG);
    $("distance-step-value").textContent = `step ${e.step} (${Number($("distance-step").value) + 1} of ${evaluations.length})`;
    $("distance-facts").replaceChildren(
      el("div", {}, el("dt", {}, "Overlap"), el("dd", { id: "distance-overlap", title: "shared area of the two normalised histograms: 0 = separated, 1 = identical" }, fmtMetric(e.overlap, 3))),
      el("div", {}, el("dt", {}, "Median positive"), el("dd", {}, fmtMetric(e.positive_median, 3))),
      el("div", {}, el("dt", {}, "Median negative"), el("dd", {}, fmtMetric(e.negative_median, 3))),
    );
  }
}
