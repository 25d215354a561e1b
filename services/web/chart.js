// A small SVG line chart: axes with ticks, log scale, EMA smoothing, hover values, drag-to-zoom
// (double-click resets). Several series share the axes (a run's curve, or runs side by side).
import { h, s } from "./dom.js";
import { num } from "./format.js";

const PAD = {left: 56, right: 14, top: 12, bottom: 34};
export const COLORS = ["#2f6fdf", "#e0592a", "#2a9d55", "#9b4dca", "#c9a227", "#1f9fb4", "#d6457a",
                       "#6b7a8f", "#8c5a2b", "#4c9a2a"];
const MAX_DRAWN = 1500;  // points per series on screen (min/max kept per bucket)

export class LineChart {
  constructor({title, xLabel = "step", yLabel = "", log = false, smoothing = 0, height = 240, format = num}) {
    Object.assign(this, {title, xLabel, yLabel, log, smoothing, height, format, series: [], zoom: null});
    this.svg = s("svg", {class: "chart-svg", role: "img", "aria-label": title});
    this.tip = h("div", {class: "chart-tip", hidden: true});
    // the series' names above the plot, not over it: inside, they hid the curves' start (a loss curve's
    // highest part), and 20 compared runs' names ran past the plot's bottom
    this.legend = h("div", {class: "chart-legend", hidden: true});
    this.el = h("figure", {class: "chart"}, h("figcaption", {}, title), this.legend,
                h("div", {class: "chart-body"}, this.svg, this.tip));
    this.svg.addEventListener("mousemove", (e) => this.hover(e));
    this.svg.addEventListener("mouseleave", () => { this.tip.hidden = true; this.cursor?.remove(); });
    this.svg.addEventListener("mousedown", (e) => this.dragStart(e));
    this.svg.addEventListener("dblclick", () => { this.zoom = null; this.draw(); });
    new ResizeObserver(() => this.draw()).observe(this.el);
  }

  // series: [{name, color, points: [[x, y], ...]}]
  setSeries(series) { this.series = series; this.drawLegend(); this.draw(); }
  setLog(log) { this.log = log; this.draw(); }
  setSmoothing(smoothing) { this.smoothing = smoothing; this.draw(); }

  visible() {
    return this.series.map((serie) => {
      let points = serie.points.filter(([x, y]) => y !== null && Number.isFinite(y) && (!this.log || y > 0));
      if (this.zoom) points = points.filter(([x]) => x >= this.zoom[0] && x <= this.zoom[1]);
      const smooth = this.smoothing > 0 ? ema(points, this.smoothing) : null;
      return {...serie, points: thin(points), smooth: smooth && thin(smooth)};
    });
  }

  draw() {
    const width = this.el.clientWidth || 600, height = this.height;
    this.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    this.svg.setAttribute("width", width);
    this.svg.setAttribute("height", height);
    this.svg.replaceChildren();
    this.el.dataset.points = String(this.series.reduce((n, serie) => n + serie.points.length, 0));
    const shown = this.visible();
    const all = shown.flatMap((serie) => serie.points);
    if (all.length === 0) {
      this.svg.append(s("text", {x: width / 2, y: height / 2, "text-anchor": "middle", class: "chart-empty"},
                        this.series.length ? "no finite values yet" : "no data yet"));
      this.scales = null;
      return;
    }
    const xs = all.map(([x]) => x), ys = all.map(([, y]) => y);
    let [x0, x1] = this.zoom || [Math.min(...xs), Math.max(...xs)];
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    const f = this.log ? Math.log10 : (v) => v;
    let [fy0, fy1] = [f(y0), f(y1)];
    if (fy0 === fy1) { fy0 -= this.log ? 0.5 : Math.abs(fy0) * 0.1 || 1; fy1 += this.log ? 0.5 : Math.abs(fy1) * 0.1 || 1; }
    const margin = (fy1 - fy0) * 0.04;
    fy0 -= margin; fy1 += margin;
    const plotW = width - PAD.left - PAD.right, plotH = height - PAD.top - PAD.bottom;
    const sx = (x) => PAD.left + plotW * (x - x0) / (x1 - x0);
    const sy = (y) => PAD.top + plotH * (1 - (f(y) - fy0) / (fy1 - fy0));
    this.scales = {sx, sy, x0, x1, plotW, plotH, shown};

    const axes = s("g", {class: "axes"});
    for (const t of ticks(x0, x1, Math.max(2, Math.floor(plotW / 80)))) {
      axes.append(s("line", {x1: sx(t), x2: sx(t), y1: PAD.top, y2: PAD.top + plotH, class: "grid"}),
                  s("text", {x: sx(t), y: height - PAD.bottom + 16, "text-anchor": "middle"}, num(t)));
    }
    const yTicks = this.log ? logTicks(fy0, fy1) : ticks(fy0, fy1, Math.max(2, Math.floor(plotH / 40)));
    for (const t of yTicks) {
      axes.append(s("line", {x1: PAD.left, x2: PAD.left + plotW, y1: sy(t), y2: sy(t), class: "grid"}),
                  s("text", {x: PAD.left - 6, y: sy(t) + 4, "text-anchor": "end"}, this.format(t)));
    }
    axes.append(s("rect", {x: PAD.left, y: PAD.top, width: plotW, height: plotH, class: "frame"}),
                s("text", {x: PAD.left + plotW / 2, y: height - 4, "text-anchor": "middle", class: "label"}, this.xLabel),
                s("text", {x: 12, y: PAD.top + plotH / 2, "text-anchor": "middle", class: "label",
                           transform: `rotate(-90 12 ${PAD.top + plotH / 2})`}, this.yLabel + (this.log ? " (log)" : "")));
    this.svg.append(axes);
    const clip = `clip-${Math.random().toString(36).slice(2)}`;
    this.svg.append(s("clipPath", {id: clip}, s("rect", {x: PAD.left, y: PAD.top, width: plotW, height: plotH})));
    const lines = s("g", {"clip-path": `url(#${clip})`});
    for (const serie of shown) {
      const path = (points) => points.map(([x, y], i) => `${i ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
      if (serie.smooth) {
        lines.append(s("path", {d: path(serie.points), stroke: serie.color, class: "line faint"}),
                     s("path", {d: path(serie.smooth), stroke: serie.color, class: "line"}));
      } else {
        lines.append(s("path", {d: path(serie.points), stroke: serie.color, class: "line"}));
      }
      if (serie.points.length === 1) {
        const [x, y] = serie.points[0];
        lines.append(s("circle", {cx: sx(x), cy: sy(y), r: 3, fill: serie.color}));
      }
    }
    this.svg.append(lines);
  }

  drawLegend() {
    this.legend.hidden = this.series.length < 2;
    this.legend.replaceChildren(...(this.legend.hidden ? [] : this.series.map((serie) => {
      const swatch = h("span", {class: "legend-swatch"});
      swatch.style.background = serie.color;
      return h("span", {class: "legend-item"}, swatch, serie.name);
    })));
  }

  xAt(event) {
    const box = this.svg.getBoundingClientRect(), {x0, x1, plotW} = this.scales;
    return x0 + (event.clientX - box.left - PAD.left) / plotW * (x1 - x0);
  }

  hover(event) {
    if (!this.scales || this.dragging) return;
    const x = this.xAt(event), {sx, shown} = this.scales;
    const rows = [];
    let nearestX = null;
    for (const serie of shown) {
      const source = serie.smooth || serie.points;
      const i = nearest(source, x);
      if (i < 0) continue;
      nearestX ??= source[i][0];
      rows.push(h("div", {}, h("span", {class: "swatch", dataset: {color: serie.color}}),
                  `${serie.name}: ${this.format(source[i][1])}`));
    }
    if (nearestX === null) return;
    this.tip.replaceChildren(h("div", {class: "tip-x"}, `${this.xLabel} ${num(nearestX)}`), ...rows);
    for (const swatch of this.tip.querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.color;
    this.tip.hidden = false;
    const box = this.svg.getBoundingClientRect();
    const left = event.clientX - box.left;
    this.tip.style.left = `${Math.min(left + 12, box.width - 160)}px`;
    this.tip.style.top = `${PAD.top + 4}px`;
    this.cursor?.remove();
    this.cursor = s("line", {x1: sx(nearestX), x2: sx(nearestX), y1: PAD.top, y2: this.height - PAD.bottom, class: "cursor"});
    this.svg.append(this.cursor);
  }

  dragStart(event) {
    if (!this.scales || event.button !== 0) return;
    event.preventDefault();
    const from = this.xAt(event), {sx} = this.scales;
    const band = s("rect", {y: PAD.top, height: this.scales.plotH, class: "zoom-band"});
    this.svg.append(band);
    this.dragging = true;
    const move = (e) => {
      const to = this.xAt(e);
      band.setAttribute("x", sx(Math.min(from, to)));
      band.setAttribute("width", Math.abs(sx(to) - sx(from)));
    };
    const up = (e) => {
      window.removeEventListener("mousemove", move);
      window.removeEventListener("mouseup", up);
      this.dragging = false;
      band.remove();
      const to = this.xAt(e);
      if (Math.abs(sx(to) - sx(from)) > 5) { this.zoom = [Math.min(from, to), Math.max(from, to)]; this.draw(); }
    };
    window.addEventListener("mousemove", move);
    window.addEventListener("mouseup", up);
  }
}

// TensorBoard's smoothing: an exponential moving average, debiased at the start.
export function ema(points, weight) {
  let last = 0, count = 0;
  return points.map(([x, y]) => {
    last = last * weight + (1 - weight) * y;
    count += 1;
    return [x, last / (1 - weight ** count)];
  });
}

// At most MAX_DRAWN points, keeping each bucket's lowest and highest (spikes stay visible).
function thin(points) {
  if (points.length <= MAX_DRAWN) return points;
  const size = Math.ceil(points.length / (MAX_DRAWN / 2)), kept = [];
  for (let i = 0; i < points.length; i += size) {
    const bucket = points.slice(i, i + size);
    let lo = bucket[0], hi = bucket[0];
    for (const p of bucket) { if (p[1] < lo[1]) lo = p; if (p[1] > hi[1]) hi = p; }
    kept.push(...(lo[0] <= hi[0] ? [lo, hi] : [hi, lo]));
  }
  return kept;
}

function nearest(points, x) {
  let best = -1, distance = Infinity;
  for (let i = 0; i < points.length; i++) {
    const d = Math.abs(points[i][0] - x);
    if (d < distance) { distance = d; best = i; }
  }
  return best;
}

export function ticks(low, high, count) {
  const step0 = (high - low) / count;
  const magnitude = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((m) => m >= step0) || step0;
  const out = [];
  for (let t = Math.ceil(low / step) * step; t <= high + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

function logTicks(low, high) {  // low/high are log10 values
  const out = [];
  for (let e = Math.ceil(low); e <= Math.floor(high); e++) out.push(10 ** e);
  if (out.length >= 2) return out;
  return ticks(low, high, 4).map((t) => 10 ** t);
}
