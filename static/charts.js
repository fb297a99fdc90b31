// Metric series kept in the browser, and the arithmetic the charts need (no DOM here).

/** The job page's Plotly look, shared by its charts. */
export const CHART_LAYOUT = {
  margin: { l: 56, r: 16, t: 8, b: 40 },
  font: { family: "system-ui, sans-serif", size: 12, color: "#1b1f24" },
  legend: { orientation: "h", y: 1.02, yanchor: "bottom", x: 0 },
  paper_bgcolor: "#fff",
  plot_bgcolor: "#fff",
  uirevision: "keep", // redraws keep the user's zoom
};
export const CHART_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

/** Points of one metric, sorted by step: x = steps, y = values (null for NaN / inf). */
export class Series {
  constructor(x = [], y = []) {
    this.x = x;
    this.y = y;
  }

  /** First index whose step is >= `step` (binary search). */
  indexOf(step) {
    let lo = 0;
    let hi = this.x.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.x[mid] < step) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** A live point. A step at or before the last one means a newer attempt (or a point the
   *  first load already had): it replaces every point from that step on, latest attempt wins. */
  push(step, value) {
    const n = this.x.length;
    if (n && step <= this.x[n - 1]) {
      const at = this.indexOf(step);
      this.x.length = at;
      this.y.length = at;
    }
    this.x.push(step);
    this.y.push(value);
  }

  /** Replace the points of steps lo..hi with a finer read of that range (after a zoom). */
  replaceRange(lo, hi, steps, values) {
    const start = this.indexOf(lo);
    const end = this.indexOf(hi + 1);
    this.x.splice(start, end - start, ...steps);
    this.y.splice(start, end - start, ...values);
  }

  /** Keep at most `maxPoints` (min and max of each bucket, first and last), as the server thins. */
  thin(maxPoints) {
    const n = this.x.length;
    if (n <= maxPoints) return;
    const buckets = Math.max(1, Math.floor((maxPoints - 2) / 2));
    const keep = new Uint8Array(n);
    keep[0] = 1;
    keep[n - 1] = 1;
    for (let b = 0; b < buckets; b++) {
      const start = Math.floor((b * n) / buckets);
      const end = Math.floor(((b + 1) * n) / buckets);
      let lo = -1;
      let hi = -1;
      for (let i = start; i < end; i++) {
        const v = this.y[i];
        if (v === null) continue;
        if (lo < 0 || v < this.y[lo]) lo = i;
        if (hi < 0 || v > this.y[hi]) hi = i;
      }
      if (lo >= 0) keep[lo] = 1;
      if (hi >= 0) keep[hi] = 1;
    }
    this.x = this.x.filter((_, i) => keep[i]);
    this.y = this.y.filter((_, i) => keep[i]);
  }
}

/** The smoothing window to draw with: early in a run, a window wider than a third of the steps
 *  logged so far would flatten the curve into its mean, so it shrinks until the run is longer. */
export function effectiveWindow(x, window) {
  if (x.length < 2) return 1;
  return Math.max(1, Math.min(window, Math.floor((x[x.length - 1] - x[0] + 1) / 3)));
}

/** Centred moving average over a window of `window` steps (not points: the series may be thinned).
 *  Centred, so the smoothed curve does not lag the raw one; near the ends the window holds what
 *  there is. Nulls are skipped; a window of 1 returns the values as they are. */
export function movingAverage(x, y, window) {
  const out = new Array(x.length);
  const half = window / 2;
  let sum = 0;
  let count = 0;
  let lo = 0; // first index inside the window
  let hi = 0; // first index past the window
  for (let i = 0; i < x.length; i++) {
    while (hi < x.length && x[hi] <= x[i] + half) {
      if (y[hi] !== null) {
        sum += y[hi];
        count += 1;
      }
      hi += 1;
    }
    while (x[lo] <= x[i] - half) {
      if (y[lo] !== null) {
        sum -= y[lo];
        count -= 1;
      }
      lo += 1;
    }
    out[i] = count ? sum / count : null;
  }
  return out;
}
