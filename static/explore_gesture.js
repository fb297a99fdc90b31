// Pan and zoom for plots too big to redraw at frame rate (software GL draws a million points in about a second): while
// the user drags or wheels, the drawn picture moves (a CSS translate and scale of the canvas, composited by the browser
// at full frame rate); once the gesture settles the scatterplot's camera is set to exactly the view the transform
// showed, the points are drawn once, and the transform is dropped in the same task as that draw (one frame: no jump).
// regl-scatterplot's own camera is fixed in this mode; its lasso (lasso mode, shift-drag) and clicks stay its own, and
// hover is picked over the drawn picture (explore_hover.js).

const SETTLE_MS = 150; // after the last wheel step; a drag settles on its release
const CLICK_PX = 3; // a press that moves less is a click on a point (the library's lassoMinDist)

/** Take over pan and zoom of `plot` (drawn into `canvas`). `isLasso(event)`: whether a press there starts a lasso;
 * `onMove(t)`: the picture now shows at {x, y} + s * p (page pixels, p a canvas pixel), for what is placed over it.
 * Returns {settled(): a promise of the next settled draw (at once when nothing is pending), settles: the durations (ms)
 * from each settle to its draw, moving(): whether the picture is held or moved by a gesture}. */
export function compositeGestures(plot, canvas, isLasso, onMove) {
  plot.set({ cameraIsFixed: true });
  canvas.style.transformOrigin = "0 0";
  const IDENTITY = { x: 0, y: 0, s: 1 };
  let t = IDENTITY; // page pixels: a canvas pixel p shows at (x, y) + s * p
  let folded = IDENTITY; // the part of t already in the camera's view, not yet drawn
  let press = null; // a left press on the canvas that is not a lasso: where, the last move, whether it moved
  let panned = false; // the press just released moved: its click is no click on a point
  let timer = null;
  let pending = null; // a settle whose draw has not happened yet: {start, waiters}
  const settles = [];

  const isIdentity = (a) => a.x === 0 && a.y === 0 && a.s === 1;
  const moved = () => !isIdentity(t);
  /** a after the inverse of b: what is left of a once b is drawn. */
  const unfold = (a, b) => ({ s: a.s / b.s, x: a.x - (a.s / b.s) * b.x, y: a.y - (a.s / b.s) * b.y });
  const show = () => {
    canvas.style.transform = moved() ? `translate(${t.x}px, ${t.y}px) scale(${t.s})` : "";
    onMove(t);
  };

  function settle() {
    clearTimeout(timer);
    timer = null;
    const d = unfold(t, folded); // a settle still waiting for its draw has its part in the view already
    if (isIdentity(d)) return;
    // The transform in clip space: x' = s x + ax, y' = s y + ay; left of the projection (1 / aspect on x) it is the
    // same scale with ax * aspect, so the new view is that affine map times the current view.
    const w = canvas.clientWidth, h = canvas.clientHeight;
    const ax = (d.s - 1 + (2 * d.x) / w) * (w / h), ay = 1 - d.s - (2 * d.y) / h;
    const v = plot.get("cameraView"), next = new Float32Array(v);
    for (let c = 0; c < 4; c++) {
      next[4 * c] = d.s * v[4 * c] + ax * v[4 * c + 3];
      next[4 * c + 1] = d.s * v[4 * c + 1] + ay * v[4 * c + 3];
    }
    folded = { ...t };
    pending = { start: pending && pending.start ? pending.start : performance.now(), waiters: pending ? pending.waiters : [] };
    plot.view(next);
  }

  // Synchronous with the draw: the new picture and the dropped transform reach the screen in the same frame (what moved
  // since the settle, a drag or wheel meanwhile, stays as the transform).
  plot.subscribe("drawing", ({ isViewChanged }) => {
    if (!pending || !pending.start || !isViewChanged) return;
    t = unfold(t, folded);
    if (Math.abs(t.x) < 1e-6 && Math.abs(t.y) < 1e-6 && Math.abs(t.s - 1) < 1e-9) t = IDENTITY;
    folded = IDENTITY;
    show();
    settles.push(performance.now() - pending.start);
    for (const done of pending.waiters) done();
    pending = null;
  });

  const later = () => { clearTimeout(timer); timer = setTimeout(settle, SETTLE_MS); };

  // Window listeners in the capture phase run before the library's (window and canvas, bubbling): its camera must not
  // see the drag (it would redraw every point on every move), nor the wheel (a redraw per step).
  window.addEventListener("mousedown", (e) => {
    if (e.target !== canvas || e.button !== 0 || isLasso(e)) return;
    if (timer) settle(); // a wheel zoom still showing as a transform: its view first, the drag then moves from there
    press = { x: e.clientX, y: e.clientY, lx: e.clientX, ly: e.clientY, moved: false };
  }, { capture: true });
  window.addEventListener("mousemove", (e) => {
    if (press) {
      press.moved = press.moved || Math.hypot(e.clientX - press.x, e.clientY - press.y) >= CLICK_PX;
      if (press.moved) {
        t = { ...t, x: t.x + e.clientX - press.lx, y: t.y + e.clientY - press.ly };
        press.lx = e.clientX;
        press.ly = e.clientY;
        show();
      }
      e.stopPropagation();
    } else if (moved()) e.stopPropagation(); // hover waits for the settled view (the library maps it with the old one)
  }, { capture: true });
  window.addEventListener("mouseup", () => {
    if (!press) return;
    panned = press.moved;
    press = null;
    if (panned) settle();
  }, { capture: true });
  window.addEventListener("click", (e) => {
    if (panned && e.target === canvas) e.stopPropagation();
    panned = false;
  }, { capture: true });
  // On the canvas, not the window: a non-passive wheel listener there would hold every scroll of the page for the main
  // thread. Capture listeners at the target run before the library's, and stopImmediatePropagation skips those.
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    e.stopImmediatePropagation();
    // The library's speed: a factor of e per canvas height of wheel, about the cursor.
    const delta = (e.deltaMode === 1 ? 12 : 1) * (e.deltaY || e.deltaX || 0);
    const f = Math.exp(-delta / canvas.clientHeight);
    const box = canvas.parentElement.getBoundingClientRect(); // untransformed, unlike the canvas's own box
    const cx = e.clientX - box.left, cy = e.clientY - box.top;
    t = { x: f * (t.x - cx) + cx, y: f * (t.y - cy) + cy, s: f * t.s };
    show();
    if (!press) later();
  }, { capture: true, passive: false });

  return {
    settles,
    moving: () => !!press || moved(), // a press that may drag, or a picture not yet drawn where it shows
    settled: () => new Promise((done) => {
      if (!pending && !moved()) done();
      else {
        if (!pending) pending = { start: 0, waiters: [] }; // started by the settle the timer (or the release) makes
        pending.waiters.push(done);
      }
    }),
  };
}
