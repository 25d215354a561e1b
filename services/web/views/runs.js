// Runs: every job of this owner, newest first; live status, sort, filter, select to compare.
import { get, has, q } from "../api.js";
import { h, idChip, runStatus, statusBadge } from "../dom.js";
import { ago, duration, num, pct } from "../format.js";
import { isFinal } from "../live.js";
import { banner, errorText, setQuery } from "../shell.js";

const REFRESH_MS = 3000;
const STATUSES = ["", "queued", "running", "succeeded", "failed", "cancelled"];
const COLUMNS = [
  ["name", "Run", (r) => r.name ?? ""],
  ["status", "Status", (r) => r.status],
  ["final_loss", "Final loss", (r) => metric(r, "final_loss")],
  ["accuracy", "Accuracy", (r) => metric(r, "accuracy")],
  ["val_accuracy", "Val. accuracy", (r) => metric(r, "val_accuracy")],
  ["created_at", "Created", (r) => r.created_at],
  ["duration", "Duration", (r) => r.finished_at && Date.parse(r.finished_at) - Date.parse(r.detail?.timings.started_at || r.created_at)],
];
const details = new Map();  // id -> JobDetail; a final job's never changes, so it is kept

function metric(run, name) {
  return run.metrics?.[name] ?? run.detail?.metrics?.[name] ?? (name === "final_loss" ? run.final_loss : null);
}

export function renderRuns(main, {params, signal}) {
  const state = {status: params.get("status") || "", text: params.get("q") || "", filter: params.get("filter") || "",
                 experiment: params.get("experiment") || "",
                 sort: params.get("sort") || "created_at", desc: params.get("order") !== "asc",
                 selected: new Set((params.get("select") || "").split(",").filter(Boolean)), runs: []};
  // Each refresh (every 3 s, and again once the details are read) builds the rows anew, but only the cells that
  // read differently replace the ones shown: a new copy button lost its "copied" feedback when a refresh came
  // within its 0.8 s, and a click whose press and release fell either side of a replaced cell did nothing.
  const shownRows = new Map();  // id -> {tr, cells: each cell's markup (and the checkbox's state) when drawn}
  const statusSelect = h("select", {"aria-label": "status", onchange: () => { state.status = statusSelect.value; save(); load(); }},
                         STATUSES.map((st) => h("option", {value: st, selected: st === state.status}, st || "any status")));
  const search = h("input", {type: "search", placeholder: "filter by name, id or tag", value: state.text,
                             oninput: () => { state.text = search.value; save(); draw(); }});
  const experimentSelect = h("select", {"aria-label": "experiment", hidden: true,
    onchange: () => { state.experiment = experimentSelect.value; save(); load(); }});
  has("GET", "/experiments").then((offered) => offered && get("/experiments", {signal})).then((list) => {
    if (!list) return;
    experimentSelect.replaceChildren(h("option", {value: ""}, "any experiment"),
      ...list.items.map((e) => h("option", {value: e.name, selected: e.name === state.experiment}, `${e.name} (${e.jobs})`)));
    experimentSelect.hidden = list.items.length === 0;
  }).catch(() => {});
  const filter = h("input", {type: "search", class: "api-filter", placeholder: "API filter, e.g. optimizer.lr>=0.05 and metrics.accuracy>0.9", value: state.filter,
                             "aria-label": "API filter", onchange: () => { state.filter = filter.value.trim(); save(); load(); }});
  const compare = h("button", {class: "primary", onclick: () => {
    location.hash = `#/compare?ids=${[...state.selected].join(",")}`;
  }});
  const summary = h("span", {class: "muted"});
  const head = h("thead");
  const body = h("tbody");
  main.append(h("div", {class: "toolbar"}, h("h1", {}, "Runs"), summary),
              h("div", {class: "toolbar"}, statusSelect, experimentSelect, filter, search, compare, h("a", {class: "button", href: "#/new"}, "New run")),
              h("table", {class: "runs"}, head, body));

  function save() {
    const p = new URLSearchParams();
    if (state.status) p.set("status", state.status);
    if (state.text) p.set("q", state.text);
    if (state.filter) p.set("filter", state.filter);
    if (state.experiment) p.set("experiment", state.experiment);
    if (state.sort !== "created_at") p.set("sort", state.sort);
    if (!state.desc) p.set("order", "asc");
    setQuery(p);
  }

  async function load() {
    try {
      const query = new URLSearchParams({limit: "100"});
      if (state.status) query.set("status", state.status);
      if (state.filter) query.set("filter", state.filter);
      if (state.experiment) query.set("experiment", state.experiment);
      const list = await get(`/jobs?${query}`, {signal});
      banner("");
      state.runs = list.items;
      draw();
      await Promise.all(list.items.filter((r) => !details.has(r.id) || !isFinal(details.get(r.id).status))
        .map(async (r) => details.set(r.id, await get(`/jobs/${q(r.id)}`, {signal}))));
      draw();
    } catch (error) {
      if (error.name !== "AbortError") banner(`Could not load the runs: ${errorText(error)}`);
    }
  }

  function rows() {
    const text = state.text.toLowerCase();
    const runs = state.runs.map((r) => ({...r, detail: details.get(r.id)}))
      .filter((r) => !text || [r.id, r.name, ...Object.entries(r.tags || {}).flat()].some((v) => String(v ?? "").toLowerCase().includes(text)));
    const column = COLUMNS.find(([name]) => name === state.sort) || COLUMNS[5];
    const sign = state.desc ? -1 : 1;
    return runs.sort((a, b) => {
      const [va, vb] = [column[2](a), column[2](b)];
      if (va === vb) return 0;
      if (va === null || va === undefined || va === "") return 1;  // blanks last, either way
      if (vb === null || vb === undefined || vb === "") return -1;
      return (va < vb ? -1 : 1) * sign;
    });
  }

  function draw() {
    head.replaceChildren(h("tr", {}, h("th", {}, ""), COLUMNS.map(([name, label]) => h("th", {
      class: `sortable ${state.sort === name ? (state.desc ? "desc" : "asc") : ""}`, "aria-sort": state.sort === name ? (state.desc ? "descending" : "ascending") : "none",
      onclick: () => { state.desc = state.sort === name ? !state.desc : true; state.sort = name; save(); draw(); }}, label))));
    const shown = rows();
    place(shown.map(patched));
    if (!shown.length) body.replaceChildren(h("tr", {}, h("td", {colSpan: COLUMNS.length + 1, class: "muted"},
      state.runs.length || state.status || state.filter || state.experiment ? "No run matches the filter."
        : "No runs yet. Start one from “New run”.")));
    const active = state.runs.filter((r) => !isFinal(r.status));
    summary.textContent = `${state.runs.length} runs · ${active.filter((r) => r.status === "running").length} running · ` +
                          `${active.filter((r) => r.status === "queued").length} queued`;
    compare.textContent = `Compare selected (${state.selected.size})`;
    compare.disabled = state.selected.size < 2 || state.selected.size > 20;
  }

  // The row shown for this run, its cells replaced where the freshly built row reads differently.
  function patched(run) {
    const fresh = row(run);
    const cells = [...fresh.cells].map((td) => td.outerHTML + td.querySelector("input")?.checked);
    const kept = shownRows.get(run.id);
    if (!kept) {
      shownRows.set(run.id, {tr: fresh, cells});
      return fresh;
    }
    [...fresh.cells].forEach((td, i) => {
      if (cells[i] !== kept.cells[i]) kept.tr.cells[i].replaceWith(td);
    });
    kept.cells = cells;
    return kept.tr;
  }

  // The rows in this order, moving only those that must move (a moved row is a replaced one to a click).
  function place(trs) {
    const wanted = new Set(trs);
    for (const child of [...body.children]) if (!wanted.has(child)) child.remove();
    for (const [id, kept] of shownRows) if (!wanted.has(kept.tr)) shownRows.delete(id);
    let cursor = body.firstElementChild;
    for (const tr of trs) {
      if (tr === cursor) cursor = cursor.nextElementSibling;
      else body.insertBefore(tr, cursor);
    }
  }

  function row(run) {
    const d = run.detail;
    const box = h("input", {type: "checkbox", checked: state.selected.has(run.id), "aria-label": `select ${run.id}`,
      onclick: (e) => e.stopPropagation(),
      onchange: () => { box.checked ? state.selected.add(run.id) : state.selected.delete(run.id); draw(); }});
    const progress = run.status === "running" && d ? ` ${d.progress.step}/${d.progress.total}` : "";
    const tags = Object.entries(run.tags || {}).map(([k, v]) => h("span", {class: "tag"}, v ? `${k}: ${v}` : k));
    const dataset = d ? `${d.spec.data.kind} · ${d.spec.model.layers.join("-")} · ${d.spec.optimizer.name} lr ${num(d.spec.optimizer.lr)}` : "";
    const tr = h("tr", {class: "run", dataset: {id: run.id}, onclick: () => { location.hash = `#/runs/${run.id}`; }},
      h("td", {}, box),
      h("td", {}, h("a", {href: `#/runs/${run.id}`, class: "name"}, run.name ?? dataset ?? ""), " ", idChip(run.id), " ", tags),
      h("td", {}, statusBadge(runStatus(run)), h("span", {class: "muted"}, progress),
        run.status === "failed" && d?.error ? h("div", {class: "reason", title: d.error}, d.error) : null),
      h("td", {class: "num"}, num(metric(run, "final_loss") ?? (run.status === "running" ? d?.progress.latest_loss : null))),
      h("td", {class: "num"}, pct(metric(run, "accuracy"))),
      h("td", {class: "num"}, pct(metric(run, "val_accuracy"))),
      h("td", {title: new Date(run.created_at).toLocaleString()}, ago(run.created_at)),
      h("td", {class: "num"}, d?.timings.started_at ? duration(d.timings.started_at, d.timings.finished_at) : "–"));
    return tr;
  }

  load();
  const timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
  return () => clearInterval(timer);
}
