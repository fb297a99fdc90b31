// Small multiples of one set of points laid out several ways: a sweep's runs (static/sweep_layouts.js), two embeddings
// of the same items (static/neighbourhoods.js). One Plotly panel per layout, one coordinate frame (zooming one zooms
// all), and a box or lasso selection in any panel highlights the same rows in every panel: row i of every trace is the
// same item, so one list of rows selects it everywhere. SVG traces, not scattergl: WebGL (regl) compiles its drawing
// code with `new Function`, which the pages' Content-Security-Policy refuses; the servers bound the points to what SVG
// draws at ease (app/explorer/aligned.py).
import { CHART_CONFIG, CHART_LAYOUT } from "/static/charts.js";
import { classColor, el, plotlyText } from "/static/common.js";

const linked = new WeakSet();

function axisName(k, letter) {
  return `${letter}axis${k ? k + 1 : ""}`;
}

/**
 * Draw `panels` ([{title, x, y}], in order) of `points` ({index, label}) into `gd`, coloured by class with
 * `classNames`, its legend into `legend`. `describe(row)`: the hover text; `onSelect(rows or null)` after each
 * selection, which every panel then shows.
 */
export function drawPanels(gd, { points, classNames, panels, legend, describe, onSelect = () => {}, columns = 4, height = 250 }) {
  const labels = [...new Set(points.label)].sort((a, b) => a - b);
  const colour = new Map(labels.map((label, position) => [label, classColor(position, labels.length)]));
  const name = (label) => classNames[label] ?? String(label);
  const hover = points.index.map((_, row) => plotlyText(describe(row, name(points.label[row]))));
  const across = Math.min(columns, panels.length);
  const rows = Math.ceil(panels.length / across);
  const size = points.index.length > 1000 ? 3 : 4;
  const traces = panels.map((panel, k) => ({
    type: "scatter", mode: "markers", x: panel.x, y: panel.y,
    xaxis: `x${k ? k + 1 : ""}`, yaxis: `y${k ? k + 1 : ""}`, name: panel.title, showlegend: false,
    customdata: points.index, text: hover, hovertemplate: "%{text}<extra></extra>",
    marker: { size, color: points.label.map((label) => colour.get(label)), opacity: 0.85 },
    selected: { marker: { opacity: 1 } }, unselected: { marker: { opacity: 0.06 } },
  }));
  const layout = {
    ...CHART_LAYOUT,
    grid: { rows, columns: across, pattern: "independent", xgap: 0.06, ygap: 0.14 },
    height: rows * height + 50, margin: { t: 48, r: 8, b: 8, l: 8 }, dragmode: "select", hovermode: "closest",
    annotations: panels.map((panel, k) => ({
      text: plotlyText(panel.title), showarrow: false, font: { size: 12 },
      xref: `x${k ? k + 1 : ""} domain`, yref: `y${k ? k + 1 : ""} domain`, x: 0.5, y: 1.02, yanchor: "bottom",
    })),
  };
  panels.forEach((_, k) => {
    layout[axisName(k, "x")] = { matches: k ? "x" : undefined, showticklabels: false, showgrid: false, zeroline: false };
    layout[axisName(k, "y")] = { matches: k ? "y" : undefined, showticklabels: false, showgrid: false, zeroline: false };
  });
  Plotly.react(gd, traces, layout, { ...CHART_CONFIG, modeBarButtonsToRemove: [] }); // box and lasso select the items
  legend.replaceChildren(...labels.map((label) => {
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = colour.get(label);
    return el("span", { class: "legend-item" }, swatch, name(label));
  }));
  if (!linked.has(gd)) {
    linked.add(gd);
    const chosen = (event) => (event && event.points.length ? event.points.map((p) => p.pointIndex) : null);
    gd.on("plotly_selected", (event) => onSelect(selectRows(gd, chosen(event))));
    gd.on("plotly_deselect", () => onSelect(selectRows(gd, null)));
  }
}

/** The same rows selected in every panel (null: none, every point at full opacity); returns them sorted. */
export function selectRows(gd, rows) {
  const chosen = rows ? [...new Set(rows)].sort((a, b) => a - b) : null;
  Plotly.restyle(gd, { selectedpoints: gd.data.map(() => chosen) });
  gd.dataset.selected = chosen ? chosen.join(",") : "";
  return chosen;
}

/** Selection cleared, its box or lasso outline too. */
export function clearSelection(gd) {
  Plotly.relayout(gd, { selections: [] });
  return selectRows(gd, null);
}
