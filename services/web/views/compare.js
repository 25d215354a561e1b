// Compare 2–20 runs: curves overlaid, the spec fields that differ, metrics side by side.
import { get, has, q } from "../api.js";
import { COLORS, LineChart } from "../chart.js";
import { h, idChip, runStatus, statusBadge } from "../dom.js";
import { num, pct } from "../format.js";
import { banner, errorText, notFound } from "../shell.js";
import { flatten } from "./run.js";

const MAX_RUNS = 20;
const UUID = /^[0-9a-f]{8}(-?[0-9a-f]{4}){3}-?[0-9a-f]{12}$/i;  // as the API reads a job id (hyphens optional)
const BACK = ["#/runs", "Back to the runs"];

// An id that is no UUID was asked for anyway: the page said "Could not compare: path.job_id: Input should be a
// valid UUID…" (GET /jobs/abc's 422) over a "Compare 2 runs" heading and two empty charts. Such a link, or one
// to a run that is gone, gets the not-found view the run and sweep pages have.
export function renderCompare(main, {params, signal}) {
  const ids = [...new Set((params.get("ids") || "").split(",").map((id) => id.trim()).filter(Boolean))];
  const invalid = ids.filter((id) => !UUID.test(id));
  if (invalid.length) {
    notFound(main, {title: invalid.length === 1 ? "Run not found" : "Runs not found", back: BACK,
                    text: `${invalid.join(", ")} ${invalid.length === 1 ? "is not a run id" : "are not run ids"}: ` +
                          "a run's id is a UUID, such as 1b4e28ba-2fa1-41d2-883f-0016d3cca427."});
    return;
  }
  main.append(h("p", {class: "crumbs"}, h("a", {href: "#/runs"}, "Runs"), " / compare"),
              h("h1", {}, `Compare ${ids.length} ${ids.length === 1 ? "run" : "runs"}`));
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
      const useServer = await has("GET", "/compare");
      const [comparison, ...each] = await Promise.all([
        useServer ? get(`/compare?ids=${ids.map(q).join(",")}&max_points=2000`, {signal}) : null,
        ...ids.map(async (id) => {
          const [job, loss] = await Promise.all([get(`/jobs/${q(id)}`, {signal}), get(`/jobs/${q(id)}/loss?max_points=1000`, {signal})]);
          return {job, points: loss.points};
        })]);
      const runs = ids.map((id, i) => ({id, ...each[i], color: COLORS[i % COLORS.length], name: each[i].job.name ?? id.slice(0, 8)}));
      const lossSeries = comparison  // the server's aligned grid when it has GET /compare
        ? comparison.runs.map((r, i) => ({name: runs[i].name, color: runs[i].color,
                                          points: comparison.steps.map((step, k) => [step, r.loss[k]]).filter(([, y]) => y !== null)}))
        : runs.map((r) => ({name: r.name, color: r.color, points: r.points.map((p) => [p.step, p.loss])}));
      charts.loss.setSeries(lossSeries);
      const accuracy = runs.map((r) => ({name: r.name, color: r.color, points: r.points.map((p) => [p.step, p.accuracy])}));
      charts.accuracy.el.hidden = !accuracy.some((serie) => serie.points.some(([, y]) => y !== null));
      charts.accuracy.setSeries(accuracy);
      const differences = comparison ? Object.entries(comparison.differences) : clientDifferences(runs);
      tables.replaceChildren(specDiff(runs, differences), metrics(runs));
    } catch (error) {
      if (error.status === 404) {
        const missing = ids.find((id) => errorText(error).toLowerCase().includes(id.toLowerCase()));
        notFound(main, {title: "Run not found", back: BACK,
                        text: `There is no ${missing ? `run ${missing}` : "such run"} for this key: it was deleted, or it belongs to another owner.`});
      } else if (error.name !== "AbortError") banner(`Could not compare: ${errorText(error)}`);
    }
  })();
}

function clientDifferences(runs) {
  const flat = runs.map((r) => new Map(flatten(r.job.spec)));
  const keys = [...new Set(flat.flatMap((m) => [...m.keys()]))].sort();
  return keys.map((k) => [k, flat.map((m) => m.get(k))]).filter(([, values]) => new Set(values.map((v) => JSON.stringify(v))).size > 1);
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

function specDiff(runs, differences) {
  return h("section", {class: "wide"}, h("h2", {}, "Spec differences"),
    differences.length ? colorSwatches(h("table", {class: "compare"}, header(runs), h("tbody", {}, differences.map(([k, values]) =>
      h("tr", {}, h("th", {}, k), values.map((v) => h("td", {class: "mono"}, short(v === undefined || v === null ? undefined : JSON.stringify(v)))))))))
      : h("p", {class: "muted"}, "The specs are identical."));
}

function metrics(runs) {
  const rows = [["status", (j) => statusBadge(runStatus(j))], ["final loss", (j) => num(j.metrics?.final_loss)],
                ["accuracy", (j) => pct(j.metrics?.accuracy)], ["validation loss", (j) => num(j.metrics?.val_loss)],
                ["validation accuracy", (j) => pct(j.metrics?.val_accuracy)], ["steps", (j) => `${j.progress.step} / ${j.progress.total}`]];
  return h("section", {class: "wide"}, h("h2", {}, "Metrics"), colorSwatches(h("table", {class: "compare"}, header(runs),
    h("tbody", {}, rows.map(([label, f]) => h("tr", {}, h("th", {}, label), runs.map((r) => h("td", {class: "num"}, f(r.job)))))))));
}

function short(text) {
  if (text === undefined) return "–";
  return text.length > 60 ? text.slice(0, 57) + "…" : text;
}
