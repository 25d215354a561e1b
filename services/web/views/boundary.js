// The decision boundary of a 2-D run: the model's class over a grid (GET /jobs/{id}/boundary),
// drawn as cells, with the dataset's points on top.
import { q } from "../api.js";
import { h, s } from "../dom.js";
import { num } from "../format.js";
import { errorText } from "../shell.js";

const FILL = ["#cfe0fb", "#fbd9c9", "#cdeed8", "#e6d6f3", "#f4ebc4", "#c8eaf0"];
const DOT = ["#2f6fdf", "#e0592a", "#2a9d55", "#9b4dca", "#c9a227", "#1f9fb4"];

// read(path): the calling view's GET (it knows which of its reads are under way).
export function boundaryPanel(id, read) {
  const section = h("section", {class: "boundary"}, h("h2", {}, "Decision boundary"), h("p", {class: "muted"}, "Computing…"));
  read(`/jobs/${q(id)}/boundary?size=48`).then((b) => {
    section.replaceChildren(h("h2", {}, "Decision boundary"), draw(b),
      h("p", {class: "muted"}, `The trained model's class over a ${b.size}×${b.size} grid; dots are the ${b.points.length} samples.`));
  }).catch((error) => {
    if (error.name !== "AbortError") section.replaceChildren(h("h2", {}, "Decision boundary"), h("p", {class: "muted"}, errorText(error)));
  });
  return section;
}

function draw(b) {
  const size = 420, pad = 48;
  const [x0, x1] = edges(b.x), [y0, y1] = edges(b.y);
  const sx = (x) => pad + (x - x0) / (x1 - x0) * size;
  const sy = (y) => pad + size - (y - y0) / (y1 - y0) * size;
  const cw = size / b.size;
  const svg = s("svg", {class: "boundary-svg", viewBox: `0 0 ${size + 2 * pad} ${size + 2 * pad}`, width: size + 2 * pad, height: size + 2 * pad,
                        role: "img", "aria-label": "decision boundary"});
  const cells = s("g", {"shape-rendering": "crispEdges"});
  b.classes.forEach((row, r) => {
    // one rect per run of equal classes in a row: a 60x60 grid is a few hundred rects, not 3600
    let start = 0;
    for (let c = 1; c <= row.length; c++) {
      if (c === row.length || row[c] !== row[start]) {
        cells.append(s("rect", {x: pad + start * cw, y: pad + size - (r + 1) * cw, width: (c - start) * cw + 0.5, height: cw + 0.5,
                                fill: FILL[row[start] % FILL.length]}));
        start = c;
      }
    }
  });
  svg.append(cells);
  const dots = s("g", {class: "points"});
  b.points.forEach(([x, y], i) => dots.append(s("circle", {cx: sx(x), cy: sy(y), r: 3.2, fill: DOT[b.labels[i] % DOT.length]},
                                                s("title", {}, `(${num(x)}, ${num(y)}) class ${b.labels[i]}`))));
  svg.append(dots, s("rect", {x: pad, y: pad, width: size, height: size, class: "frame"}),
             s("text", {x: pad, y: pad + size + 16}, num(x0)), s("text", {x: pad + size, y: pad + size + 16, "text-anchor": "end"}, num(x1)),
             s("text", {x: pad - 4, y: pad + size, "text-anchor": "end"}, num(y0)), s("text", {x: pad - 4, y: pad + 10, "text-anchor": "end"}, num(y1)));
  return svg;
}

function edges(centres) {  // the grid's outer edges from its cell centres
  const half = centres.length > 1 ? (centres[1] - centres[0]) / 2 : 0.5;
  return [centres[0] - half, centres[centres.length - 1] + half];
}
