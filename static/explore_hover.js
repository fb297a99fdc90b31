// Hover for plots too big to redraw at frame rate (the same ones whose gestures are composited, explore_gesture.js).
// regl-scatterplot's hover redraws every point to highlight the hovered one, and only then publishes `pointover`: about
// half a second at 1,000,000 points in software GL, which the hover card and its thumbnail wait for. Here the point
// under the cursor is found in a grid over the layout and marked by a ring laid over the canvas, so a hover draws no
// point at all. The library sees no mouse move but those of a lasso pressed on its canvas: its clicks read the positions
// of their own events, and its camera (which would track the cursor) is fixed in this mode.

const MIN_POINT_SIZE = 1; // the library's floor on a zoomed-out point (px)

/** A uniform grid over `xs`, `ys` (the layout in [-1, 1]): the rows of each cell, contiguous in `order`. */
function gridOf(xs, ys) {
  const n = xs.length;
  const side = Math.max(16, Math.min(2048, Math.round(Math.sqrt(n / 4)))); // about 4 points a cell
  const cellOf = (v) => Math.min(side - 1, Math.max(0, Math.floor(((v + 1) / 2) * side)));
  const cell = new Int32Array(n);
  const start = new Int32Array(side * side + 1);
  for (let i = 0; i < n; i++) {
    cell[i] = cellOf(ys[i]) * side + cellOf(xs[i]);
    start[cell[i] + 1]++;
  }
  for (let c = 0; c < side * side; c++) start[c + 1] += start[c];
  const order = new Int32Array(n);
  const fill = start.slice(0, side * side);
  for (let i = 0; i < n; i++) order[fill[cell[i]]++] = i;

  /** The row nearest (x, y) within r (layout units), or -1. */
  function nearest(x, y, r) {
    let best = -1, bestD = r * r;
    const x0 = cellOf(x - r), x1 = cellOf(x + r), y0 = cellOf(y - r), y1 = cellOf(y + r);
    for (let cy = y0; cy <= y1; cy++) {
      for (let c = cy * side + x0, end = cy * side + x1; c <= end; c++) {
        for (let k = start[c]; k < start[c + 1]; k++) {
          const i = order[k], dx = xs[i] - x, dy = ys[i] - y, d = dx * dx + dy * dy;
          if (d < bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }
  return { nearest };
}

/** Hover over `plot` (drawn into `canvas`, its points at `xs`, `ys` in [-1, 1], `pointSize` px): `axes()` maps the layout
 * to page pixels ({x: [a, b], y: [a, b]}: page = a + b * layout), `paused()` says a gesture is moving the picture,
 * `isLasso(event)` says a press draws a lasso, `over(row, x, y)` and `out()` show and hide the hover card, `ring` is the
 * element laid over the hovered point. Returns
 * {hide(): forget the hovered point (the view changed), rowAt(x, y): the row a hover at page (x, y) finds, or -1,
 * radiusPx(): how near (page pixels) a point must be to be hovered}. */
export function pickedHover(plot, canvas, xs, ys, pointSize, { axes, paused, isLasso, over, out, ring }) {
  const grid = gridOf(xs, ys);
  let current = -1;
  let lassoing = false; // a lasso pressed on the canvas is held: its moves are the library's

  // The library's picking radius, so that what is hovered is what a click there selects: the drawn point's size at
  // this zoom (asinh-scaled past 1) plus 4 device pixels, in page pixels.
  function radiusPx() {
    const v = plot.get("cameraView"), zoom = Math.hypot(v[0], v[1]);
    const scale = zoom > 1 ? Math.asinh(zoom) / Math.asinh(1) : Math.max(MIN_POINT_SIZE / pointSize, zoom);
    return pointSize * scale + 4 / window.devicePixelRatio;
  }

  function rowAt(x, y) {
    const a = axes();
    const r = radiusPx();
    return grid.nearest((x - a.x[0]) / a.x[1], (y - a.y[0]) / a.y[1], r / Math.abs(a.x[1]));
  }

  function hide() {
    if (current >= 0) out();
    current = -1;
    ring.hidden = true;
  }

  function place(row) {
    const a = axes(), box = canvas.parentElement.getBoundingClientRect();
    const d = 2 * radiusPx();
    ring.style.width = ring.style.height = `${d}px`;
    ring.style.left = `${a.x[0] + a.x[1] * xs[row] - box.left}px`;
    ring.style.top = `${a.y[0] + a.y[1] * ys[row] - box.top}px`;
    ring.hidden = false;
  }

  // Window listeners in the capture phase run before the library's (window, bubbling). Every move it saw would hover
  // (and redraw every point) wherever its canvas last had the cursor: off the canvas too, since it is kept from leaving.
  window.addEventListener("mousedown", (e) => {
    lassoing = e.target === canvas && e.button === 0 && isLasso(e);
  }, { capture: true });
  window.addEventListener("mouseup", () => { lassoing = false; }, { capture: true });
  window.addEventListener("mousemove", (e) => {
    if (lassoing) return; // the library draws the lasso (it hovers nothing meanwhile)
    e.stopPropagation();
    if (e.target !== canvas || e.buttons !== 0 || paused()) {
      if (current >= 0) hide(); // off the canvas, or a drag (the gesture module's)
      return;
    }
    const row = rowAt(e.clientX, e.clientY);
    if (row === current) return;
    current = row;
    if (row < 0) {
      ring.hidden = true;
      out();
    } else {
      place(row);
      over(row, e.clientX, e.clientY);
    }
  }, { capture: true });
  // The library redraws every point when the cursor leaves its canvas, to drop a hover it never made here.
  window.addEventListener("mouseleave", (e) => {
    if (e.target !== canvas) return;
    e.stopPropagation();
    hide();
  }, { capture: true });
  // The hovered point moves under a still cursor when the page scrolls, and a card left up when the window loses focus.
  window.addEventListener("scroll", hide, { capture: true, passive: true });
  window.addEventListener("blur", hide);

  return { hide, rowAt, radiusPx };
}
