// Sweeps: the list, and one sweep's leaderboard, objective against each hyperparameter (pruned trials
// marked), live while it runs.
import { get, post, q } from "../api.js";
import { h, idChip, runStatus, s, statusBadge } from "../dom.js";
import { ago, num } from "../format.js";
import { banner, errorText, notFound } from "../shell.js";
import { ticks } from "../chart.js";

const REFRESH_MS = 2000;
const TRIAL_COLOR = {succeeded: "#2f6fdf", pruned: "#e0592a", failed: "#a5281b", running: "#2a9d55", queued: "#9aa3b0", cancelled: "#c9a227"};

export function renderSweeps(main, {signal}) {
  const body = h("tbody");
  main.append(h("h1", {}, "Sweeps"), h("p", {class: "muted"}, "Create one with POST /sweeps (see the README); trials are ordinary runs."),
              h("table", {class: "runs"}, h("thead", {}, h("tr", {}, ["Sweep", "Status", "Method", "Objective", "Trials", "Best", "Created"].map((c) => h("th", {}, c)))), body));
  async function load() {
    try {
      const list = await get("/sweeps?limit=100", {signal});
      body.replaceChildren(...list.items.map((sw) => h("tr", {class: "run", onclick: () => { location.hash = `#/sweeps/${sw.id}`; }},
        h("td", {}, idChip(sw.id, `#/sweeps/${sw.id}`)), h("td", {}, statusBadge(sw.status)),
        h("td", {}, sw.method), h("td", {}, `${sw.objective} (${sw.direction === "minimize" ? "min" : "max"})`),
        h("td", {class: "num"}, `${sw.trials_created} / ${sw.trials}`), h("td", {class: "num"}, num(sw.best_objective)),
        h("td", {}, ago(sw.created_at)))));
      if (!list.items.length) body.append(h("tr", {}, h("td", {colSpan: 7, class: "muted"}, "No sweeps yet.")));
    } catch (error) {
      if (error.name !== "AbortError") banner(`Could not load the sweeps: ${errorText(error)}`);
    }
  }
  load();
  const timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS * 2);
  return () => clearInterval(timer);
}

export function renderSweep(main, {args: [id], signal}) {
  const head = h("div", {class: "toolbar"});
  const counts = h("div", {class: "cards"});
  const plots = h("div", {class: "scatter-grid"});
  const board = h("section", {class: "wide"});
  main.append(h("p", {class: "crumbs"}, h("a", {href: "#/sweeps"}, "Sweeps"), " / ", id.slice(0, 8)), head, counts,
              h("h2", {}, "Objective against each hyperparameter"), plots, board);
  let timer = null;

  async function load() {
    try {
      const sw = await get(`/sweeps/${q(id)}`, {signal});
      draw(sw);
      if (sw.status !== "running") clearInterval(timer);
    } catch (error) {
      if (error.status === 404) {
        clearInterval(timer);
        notFound(main, {title: "Sweep not found", back: ["#/sweeps", "Back to the sweeps"],
                        text: `There is no sweep ${id} for this key: it was deleted, or it belongs to another owner.`});
      } else if (error.name !== "AbortError") banner(`Could not load sweep ${id}: ${errorText(error)}`);
    }
  }

  function draw(sw) {
    const paths = Object.keys(sw.sweep.space);
    head.replaceChildren(...[h("h1", {}, "Sweep ", idChip(sw.id)), statusBadge(sw.status),
      h("span", {class: "muted"}, `${sw.method} · ${sw.direction} ${sw.objective} · ${sw.trials_created} of ${sw.trials} trials asked for`),
      sw.status === "running" ? h("button", {onclick: () => post(`/sweeps/${q(id)}/cancel`).then(load, (e) => banner(errorText(e)))}, "Cancel sweep") : null].filter(Boolean));
    counts.replaceChildren(...Object.entries(sw.counts).map(([k, v]) => h("div", {class: "card"}, h("div", {class: "card-value"}, String(v)), h("div", {class: "muted"}, k))),
      h("div", {class: "card"}, h("div", {class: "card-value"}, num(sw.best_objective)), h("div", {class: "muted"}, `best ${sw.objective}`)));
    plots.replaceChildren(...paths.map((path) => scatter(path, sw.sweep.space[path], sw.leaderboard, sw.objective)));
    const best = sw.best?.number;
    board.replaceChildren(h("h2", {}, "Leaderboard"), h("table", {class: "runs leaderboard"},
      h("thead", {}, h("tr", {}, ["#", "trial", "status", ...paths, sw.objective, "steps", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, sw.leaderboard.map((t, rank) => h("tr", {class: `run${t.number === best ? " best" : ""}`, dataset: {trial: t.number},
        onclick: () => { if (t.job_id) location.hash = `#/runs/${t.job_id}`; }},
        h("td", {class: "num"}, t.objective === null ? "" : String(rank + 1)), h("td", {class: "num"}, String(t.number)),
        h("td", {}, statusBadge(runStatus(t))),
        ...paths.map((p) => h("td", {class: "num mono"}, fmt(t.params[p]))),
        h("td", {class: "num"}, num(t.objective)), h("td", {class: "num"}, String(t.steps_done)),
        h("td", {}, t.job_id ? h("a", {href: `#/runs/${t.job_id}`}, "run") : "deleted"))))));
  }

  load();
  timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
  return () => clearInterval(timer);
}

function fmt(value) {
  return typeof value === "number" ? num(value) : JSON.stringify(value);
}

// One small scatter: this parameter's value (x) against the objective (y); pruned trials, which have no
// objective, as hollow orange rings in a lane of their own above the plot, labelled "pruned" (not on an
// edge of it, where they would read as the best or the worst values).
function scatter(path, param, trials, objective) {
  const width = 300, height = 200, pad = {l: 56, r: 12, t: 10, b: 30};
  const numeric = typeof (trials.find((t) => t.params[path] !== undefined)?.params[path]) === "number";
  const log = Boolean(param.log);
  const categories = numeric ? null : [...new Set(trials.map((t) => fmt(t.params[path])))];
  const xValue = (t) => numeric ? t.params[path] : categories.indexOf(fmt(t.params[path]));
  const fx = (v) => log ? Math.log10(v) : v;
  const xs = trials.map(xValue).filter((v) => v !== undefined && (!log || v > 0)).map(fx);
  const scored = trials.filter((t) => t.objective !== null);
  const ys = scored.map((t) => t.objective);
  const svg = s("svg", {class: "scatter", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": `${objective} against ${path}`});
  const figure = h("figure", {class: "chart scatter-chart", dataset: {param: path}}, h("figcaption", {}, `${path}${log ? " (log)" : ""}`), svg);
  if (!xs.length) return figure;
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (x0 === x1) { x0 -= 0.5; x1 += 0.5; }
  let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const mx = (x1 - x0) * 0.06, my = (y1 - y0) * 0.08;
  [x0, x1, y0, y1] = [x0 - mx, x1 + mx, y0 - my, y1 + my];
  const sx = (v) => pad.l + (fx(v) - x0) / (x1 - x0) * (width - pad.l - pad.r);
  const sxi = (v) => pad.l + (v - x0) / (x1 - x0) * (width - pad.l - pad.r);
  const lane = trials.some((t) => t.pruned && t.objective === null) ? 18 : 0;  // the pruned trials' lane
  const top = pad.t + lane;
  const sy = (v) => top + (1 - (v - y0) / (y1 - y0)) * (height - top - pad.b);
  const axes = s("g", {class: "axes"}, s("rect", {x: pad.l, y: top, width: width - pad.l - pad.r, height: height - top - pad.b, class: "frame"}));
  if (lane) axes.append(s("text", {x: pad.l - 4, y: pad.t + lane / 2 + 3, "text-anchor": "end", class: "pruned-lane"}, "pruned"));
  for (const t of ticks(y0, y1, 4)) axes.append(s("text", {x: pad.l - 4, y: sy(t) + 4, "text-anchor": "end"}, num(t)));
  if (numeric) {
    const decades = ticks(x0, x1, 4).filter(Number.isInteger);
    const values = !log ? ticks(x0, x1, 4) : decades.length >= 2 ? decades.map((d) => 10 ** d) : ticks(10 ** x0, 10 ** x1, 3).filter((v) => v > 0);
    for (const v of values) axes.append(s("text", {x: log ? sx(v) : sxi(v), y: height - pad.b + 14, "text-anchor": "middle"}, num(v)));
  }
  else categories.forEach((c, i) => axes.append(s("text", {x: sxi(i), y: height - pad.b + 14, "text-anchor": "middle"}, c.length > 12 ? c.slice(0, 11) + "…" : c)));
  axes.append(s("text", {x: pad.l + (width - pad.l - pad.r) / 2, y: height - 4, "text-anchor": "middle", class: "label"}, path),
              s("text", {x: 10, y: top + (height - top - pad.b) / 2, "text-anchor": "middle", class: "label",
                         transform: `rotate(-90 10 ${top + (height - top - pad.b) / 2})`}, objective));
  svg.append(axes);
  const dots = s("g");
  for (const t of trials) {
    const v = xValue(t);
    if (v === undefined || (log && v <= 0)) continue;
    const x = numeric ? sx(v) : sxi(v);
    const title = s("title", {}, `trial ${t.number}: ${path} = ${fmt(t.params[path])}, ${objective} ${num(t.objective)}${t.pruned ? " (pruned)" : ""}`);
    if (t.objective !== null) dots.append(s("circle", {cx: x, cy: sy(t.objective), r: 4, fill: TRIAL_COLOR[t.status] || "#2f6fdf", class: "trial"}, title));
    else if (t.pruned) dots.append(s("circle", {cx: x, cy: pad.t + lane / 2, r: 4, fill: "none", stroke: TRIAL_COLOR.pruned, "stroke-width": 1.5, class: "trial pruned"}, title));
  }
  svg.append(dots);
  return figure;
}
