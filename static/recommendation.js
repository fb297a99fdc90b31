// What the evidence supports, per loss: the sweep recommender's reading, shown alike on a sweep's page and a search's
// (the best point with its interval, the points within noise of it, the star, the locked test score read once).
import { el, fmtMetric } from "/static/common.js";
import { METRICS } from "/static/overlays.js";

export const metricTitle = (m) => (METRICS.find(([k]) => k === m) || [m, m])[1];

const fmtRange = (lo, hi) => `[${fmtMetric(lo, 4)}, ${fmtMetric(hi, 4)}]`;
const fmtValue = (v) => (typeof v === "number" ? String(Number(v.toPrecision(4))) : String(v)); // a search's floats: 4 digits
const pointText = (point) => Object.entries(point).map(([k, v]) => `${k} ${fmtValue(v)}`).join(", ");

/** Fill `box` with one block per loss of `recommendations` (the API's list); leave it as it is while there is none. */
export function drawRecommendations(box, recommendations) {
  if (!recommendations.length) return;
  box.classList.remove("muted");
  box.replaceChildren(...recommendations.map((r) => {
    const title = metricTitle(r.select_metric);
    const b = r.best;
    const where = Object.keys(r.point).length ? pointText(r.point) : "its only configuration";
    const star = r.starred ? el("span", { class: "star", title: "better than every other point beyond the noise" }, " ★") : null;
    const difference = (t) => (t.diff_low === null ? "" : `, difference ${fmtRange(t.diff_low, t.diff_high)}`);
    const tiedText = (t) => `${pointText(t.point)} (${fmtMetric(t.mean, 4)}${difference(t)})`;
    const test = r.locked_test;
    return el("div", { class: "recommendation", dataset: { loss: r.loss } },
      el("h3", {}, el("strong", {}, r.loss), star),
      el("p", { class: "statement" }, r.statement),
      el("p", {}, `Highest mean validation ${title}: ${where}, ${fmtMetric(b.mean, 4)} ${fmtRange(b.low, b.high)} over ${b.runs} run(s) `
        + "at their best checkpoints."),
      r.tied.length ? el("p", { class: "tied" }, "Within noise of it: ", r.tied.map(tiedText).join("; "), ".") : null,
      test ? el("p", { class: "locked-test" }, el("strong", {}, "Locked test"),
        ` of ${where} (scored once, at the end of each run, read by no selection): ${title} ${fmtMetric(test.mean, 4)} `
        + `${fmtRange(test.low, test.high)} over ${test.runs} run(s).`) : null,
      el("p", { class: "muted test-used" }, `Test used: ${r.test_used}. Rule: ${r.rule}. Intervals: ${b.interval}.`));
  }));
}
