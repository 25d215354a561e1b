// Compare 2–20 runs: curves overlaid, the spec fields that differ, metrics side by side.
import { get, q } from "../api.js";
import { COLORS, LineChart } from "../chart.js";
import { h, idChip, statusBadge } from "../dom.js";
import { num, pct } from "../format.js";
import { banner, errorText } from "../shell.js";
import { flatten } from "./run.js";

const MAX_RUNS = 20;

export function renderCompare(main, {params, signal}) {
  const ids = [...new Set((params.get("ids") || "").split(",").filter(Boolean))];
  main.append(h("p", {class: "crumbs"}, h("a", {href: "#/runs"}, "Runs"), " / compare"), h("h1", {}, `Compare ${ids.length} runs`));
  if (ids.length < 2 || ids.length > MAX_RUNS) {
    main.append(h("p", {}, `Select 2 to ${MAX_RUNS} runs in the `, h("a", {href: "#/runs"}, "runs table"), " and press “Compare selected”."));
    return;
  }
  const charts = {loss: new LineChart({title: "Loss", yLabel: "loss"}),
                  accuracy: new LineChart({title: "Accuracy", yLabel: "accuracy", format: pct})};
  const logToggle = h("input", {type: "checkbox", onchange: () => charts.loss.setLog(logToggle.checked)});
  const smoothing = h("input", {type: "range", min: 0, max: 0.99, step: 0.01, value: 0, "aria-label": "smoothing",
    oninput: () => Object.values(charts).forEach((c) => c.setSmoothing(Number(smoothing.value)))});
  const tables = h("div", {class: "details"});
  main.append(h("div", {class: "toolbar"}, h("label", {}, logToggle, " log scale (loss)"), h("label", {}, "smoothing ", smoothing)),
              h("div", {class: "charts two"}, charts.loss.el, charts.accuracy.el), tables);

  (async () => {
    try {
      const runs = await Promise.all(ids.map(async (id, i) => {
        const [job, loss] = await Promise.all([get(`/jobs/${q(id)}`, {signal}), get(`/jobs/${q(id)}/loss?max_points=1000`, {signal})]);
        return {id, job, points: loss.points, color: COLORS[i % COLORS.length], name: job.name ?? id.slice(0, 8)};
      }));
      const series = (field) => runs.map((r) => ({name: r.name, color: r.color, points: r.points.map((p) => [p.step, p[field]])}));
      charts.loss.setSeries(series("loss"));
      const accuracy = series("accuracy");
      charts.accuracy.el.hidden = !accuracy.some((serie) => serie.points.some(([, y]) => y !== null));
      charts.accuracy.setSeries(accuracy);
      tables.replaceChildren(specDiff(runs), metrics(runs));
    } catch (error) {
      if (error.name !== "AbortError") banner(`Could not compare: ${errorText(error)}`);
    }
  })();
}

function header(runs) {
  return h("thead", {}, h("tr", {}, h("th", {}, ""), runs.map((r) => h("th", {},
    h("span", {class: "swatch", dataset: {color: r.color}}), r.job.name ? [h("a", {href: `#/runs/${r.id}`}, r.name), " "] : null,
    idChip(r.id), r.job.name ? null : h("a", {href: `#/runs/${r.id}`, class: "open"}, "open")))));
}

function colorSwatches(table) {
  for (const swatch of table.querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.color;
  return table;
}

function specDiff(runs) {
  const flat = runs.map((r) => new Map(flatten(r.job.spec).map(([k, v]) => [k, JSON.stringify(v)])));
  const keys = [...new Set(flat.flatMap((m) => [...m.keys()]))].sort();
  const differing = keys.filter((k) => new Set(flat.map((m) => m.get(k))).size > 1);
  return h("section", {class: "wide"}, h("h2", {}, "Spec differences"),
    differing.length ? colorSwatches(h("table", {class: "compare"}, header(runs), h("tbody", {}, differing.map((k) =>
      h("tr", {}, h("th", {}, k), flat.map((m) => h("td", {class: "mono"}, short(m.get(k)))))))))
      : h("p", {class: "muted"}, "The specs are identical."));
}

function metrics(runs) {
  const rows = [["status", (j) => statusBadge(j.status)], ["final loss", (j) => num(j.metrics?.final_loss)],
                ["accuracy", (j) => pct(j.metrics?.accuracy)], ["validation loss", (j) => num(j.metrics?.val_loss)],
                ["validation accuracy", (j) => pct(j.metrics?.val_accuracy)], ["steps", (j) => `${j.progress.step} / ${j.progress.total}`]];
  return h("section", {class: "wide"}, h("h2", {}, "Metrics"), colorSwatches(h("table", {class: "compare"}, header(runs),
    h("tbody", {}, rows.map(([label, f]) => h("tr", {}, h("th", {}, label), runs.map((r) => h("td", {class: "num"}, f(r.job)))))))));
}

function short(text) {
  if (text === undefined) return "–";
  return text.length > 60 ? text.slice(0, 57) + "…" : text;
}
