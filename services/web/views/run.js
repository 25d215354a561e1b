// One run: its curves (live while it runs), decision boundary, spec, metrics, timings, parameters.
import { del, get, has, post, q } from "../api.js";
import { COLORS, LineChart } from "../chart.js";
import { h, idChip, runStatus, statusBadge } from "../dom.js";
import { ago, duration, localTime, num, pct } from "../format.js";
import { follow, isFinal } from "../live.js";
import { banner, errorText, notFound } from "../shell.js";
import { boundaryPanel } from "./boundary.js";

const GRAPH_POLL_MS = 500;

export function renderRun(main, {args: [id], signal}) {
  const base = `/jobs/${q(id)}`;
  const state = {points: [], job: null, stop: null, leaving: false, graphTimer: null};
  // This view's reads of the run still under way: a delete waits for them, or the server could answer one
  // after the run is gone (a 404, logged by the browser, and the view's banner for a run the user deleted).
  const reads = new Set();
  const read = (path) => {
    const promise = get(path, {signal});
    reads.add(promise);
    promise.catch(() => {}).finally(() => reads.delete(promise));
    return promise;
  };
  const title = h("h1", {}, "Run ", idChip(id));
  const status = h("span");
  const progress = h("progress", {max: 1, value: 0});
  const progressText = h("span", {class: "muted"});
  const mode = h("span", {class: "muted live-mode"});
  const buttons = h("div", {class: "actions"});
  const charts = {
    loss: new LineChart({title: "Loss", yLabel: "loss"}),
    accuracy: new LineChart({title: "Accuracy", yLabel: "accuracy", format: pct}),
    lr: new LineChart({title: "Learning rate", yLabel: "lr"}),
  };
  const logToggle = h("input", {type: "checkbox", onchange: () => charts.loss.setLog(logToggle.checked)});
  const smoothing = h("input", {type: "range", min: 0, max: 0.99, step: 0.01, value: 0, "aria-label": "smoothing",
    oninput: () => { smoothingText.textContent = num(Number(smoothing.value)); for (const c of Object.values(charts)) c.setSmoothing(Number(smoothing.value)); }});
  const smoothingText = h("span", {class: "muted"}, "0");
  const details = h("div", {class: "details"});
  const extra = h("div");
  main.append(
    h("p", {class: "crumbs"}, h("a", {href: "#/runs"}, "Runs"), " / ", h("span", {}, id.slice(0, 8))),
    h("div", {class: "toolbar"}, title, status, progress, progressText, mode),
    buttons,
    h("div", {class: "toolbar"}, h("label", {}, logToggle, " log scale (loss)"),
      h("label", {}, "smoothing ", smoothing, " ", smoothingText),
      h("span", {class: "muted"}, "drag on a chart to zoom, double-click to reset")),
    h("div", {class: "charts"}, charts.loss.el, charts.accuracy.el, charts.lr.el),
    extra, details);

  function redrawCharts() {
    const series = (field, name) => [{name, color: COLORS[0], points: state.points.map((p) => [p.step, p[field]])}];
    charts.loss.setSeries(series("loss", "loss"));
    const hasAccuracy = state.points.some((p) => p.accuracy !== null && p.accuracy !== undefined);
    charts.accuracy.el.hidden = !hasAccuracy;
    if (hasAccuracy) charts.accuracy.setSeries(series("accuracy", "accuracy"));
    charts.lr.setSeries(series("lr", "lr"));
  }

  function showHeader(job) {
    status.replaceChildren(statusBadge(runStatus(job)));
    const {step, total, latest_loss} = job.progress;
    progress.max = total;
    progress.value = step;
    progressText.textContent = `step ${step} of ${total}` + (latest_loss !== null && latest_loss !== undefined ? ` · loss ${num(latest_loss)}` : "");
    progress.hidden = isFinal(job.status) && job.status === "succeeded";
  }

  async function loadJob() {
    const job = await read(base);
    state.job = job;
    showHeader(job);
    drawButtons(job);
    drawDetails(job);
    if (job.name) title.replaceChildren(job.name, " ", idChip(id));
    return job;
  }

  async function drawButtons(job) {
    const final = isFinal(job.status);
    const canDelete = await has("DELETE", "/jobs/{job_id}");
    buttons.replaceChildren(...[
      h("a", {class: "button graph-link", href: `#/runs/${id}/graph`, hidden: job.status !== "succeeded" || !job.spec.record.graph_svg,
              "data-graph": job.graph ?? ""}, job.status === "succeeded" && job.graph === "pending" ? "Computation graph (being drawn…)" : "Computation graph"),
      final ? null : h("button", {onclick: () => act(() => post(`${base}/cancel`), "cancel")}, job.cancel_requested ? "Cancelling…" : "Cancel"),
      h("button", {onclick: () => act(rerun, "re-run", false)}, "Re-run"),
      final && canDelete ? h("button", {class: "danger", onclick: () => {
        if (confirm("Delete this run, its history and its artifacts? This cannot be undone.")) act(remove, "delete", false);
      }}, "Delete") : null].filter(Boolean));
  }

  // reload: false for actions that leave this view (re-run opens the new run; a deleted run is gone, and
  // reading it again would be a 404)
  async function act(action, name, reload = true) {
    try {
      await action();
      if (reload) await loadJob();
    } catch (error) {
      if (error.name !== "AbortError") banner(`Could not ${name}: ${errorText(error)}`);
    }
  }

  async function rerun() {  // the experiments endpoint when the server has it, else the same spec again
    const created = await has("POST", "/jobs/{job_id}/rerun") ? await post(`${base}/rerun`, {}) : await post("/jobs", state.job.spec);
    location.hash = `#/runs/${created.id}`;
  }

  async function remove() {
    state.leaving = true;  // no new reads of this run: the graph's poll and the live follow stop
    clearTimeout(state.graphTimer);
    state.stop?.();
    await Promise.allSettled([...reads]);
    try {
      await del(base);
    } catch (error) {
      state.leaving = false;  // still here: watch the graph again if it was being drawn
      if (state.job?.graph === "pending") waitForGraph();
      throw error;
    }
    location.hash = "#/runs";
  }

  function drawDetails(job) {
    const m = job.metrics || {};
    const t = job.timings;
    details.replaceChildren(...[
      job.error ? h("section", {class: "error-box"}, h("h2", {}, "Error"), h("pre", {}, job.error)) : null,
      h("section", {}, h("h2", {}, "Metrics"), table([
        ["final loss", num(m.final_loss)], ["accuracy", pct(m.accuracy)], ["validation loss", num(m.val_loss)],
        ["validation accuracy", pct(m.val_accuracy)], ["steps done", num(m.steps_done ?? job.progress.step)]])),
      h("section", {}, h("h2", {}, "Timings"), table([
        ["queued", `${localTime(t.queued_at)} (${ago(t.queued_at)})`],
        ["started", t.started_at ? `${localTime(t.started_at)} (waited ${duration(t.queued_at, t.started_at)})` : "–"],
        ["finished", t.finished_at ? localTime(t.finished_at) : "–"],
        ["ran for", t.started_at ? duration(t.started_at, t.finished_at) : "–"],
        ["attempts", String(job.attempts)]])),
      h("section", {}, h("h2", {}, "Spec"), table(flatten(job.spec).map(([k, v]) => [k, Array.isArray(v) && v.length > 8 ? `[${v.length} items]` : typeof v === "number" ? num(v) : JSON.stringify(v)]))),
      job.status === "succeeded" ? paramsSection() : null].filter(Boolean));
  }

  function paramsSection() {
    const section = h("section", {class: "wide"}, h("h2", {}, "Parameters"));
    read(`${base}/params`).then((params) => {
      const rows = [];
      params.layers.forEach((layer, i) => layer.neurons.forEach((neuron, j) =>
        rows.push([`layer ${i} (${layer.activation})`, `neuron ${j}`, num(neuron.b), neuron.w.map((w) => num(w)).join("  ")])));
      const shown = rows.slice(0, 200);
      section.append(...[h("table", {class: "params"}, h("thead", {}, h("tr", {}, ["layer", "neuron", "bias", "weights"].map((c) => h("th", {}, c)))),
                           h("tbody", {}, shown.map((r) => h("tr", {}, r.map((c, k) => h("td", {class: k === 2 ? "num mono" : k === 3 ? "mono" : ""}, c)))))),
                         rows.length > shown.length ? h("p", {class: "muted"}, `first ${shown.length} of ${rows.length} neurons`) : null]
                       .filter(Boolean));  // (append() writes a null as the text "null")
    }).catch((error) => { if (error.name !== "AbortError") section.append(h("p", {class: "muted"}, errorText(error))); });
    return section;
  }

  async function start() {
    try {
      const [job, loss] = await Promise.all([loadJob(), read(`${base}/loss?max_points=2000`)]);
      state.points = loss.points;
      redrawCharts();
      if (job.status === "succeeded" && ["moons", "circles", "xor", "spirals", "blobs"].includes(job.spec.data.kind)) {
        extra.replaceChildren(boundaryPanel(id, read));
      }
      if (job.status === "succeeded" && job.graph === "pending") waitForGraph();
      if (!isFinal(job.status)) {
        const last = state.points.length ? state.points[state.points.length - 1].step : null;
        state.stop = follow(id, last, {
          mode: (m) => { mode.textContent = m === "live" ? "● live" : "polling"; },
          points: (points) => { state.points.push(...points); redrawCharts(); },
          status: (data) => {  // the header and the details (steps done, ran for) move together
            if (!data.progress) return;
            state.job = {...state.job, status: data.status, progress: data.progress};
            showHeader(state.job);
            // A final status comes with `end`, whose start() reads the run and draws its details: drawn here too,
            // a succeeded run's details (their metrics not yet read) asked for its parameters a second time.
            if (!isFinal(data.status)) drawDetails(state.job);
          },
          end: () => { mode.textContent = ""; if (!state.leaving) start(); },
        });
      }
    } catch (error) {
      if (error.status === 404) {
        notFound(main, {title: "Run not found", back: ["#/runs", "Back to the runs"],
                        text: `There is no run ${id} for this key: it was deleted, or it belongs to another owner.`});
      } else if (error.name !== "AbortError") banner(`Could not load run ${id}: ${errorText(error)}`);
    }
  }

  // A succeeded run's graph is drawn after its results are saved: read the run again until it is drawn (or failed).
  function waitForGraph() {
    const timer = state.graphTimer = setTimeout(async () => {
      try {
        if (state.leaving) return;
        const job = await read(base);
        state.job = job;
        if (state.leaving) return;
        if (job.graph === "pending") return waitForGraph();
        drawButtons(job);
      } catch (error) {
        if (error.name !== "AbortError") banner(`Could not read run ${id}: ${errorText(error)}`);
      }
    }, GRAPH_POLL_MS);
    signal.addEventListener("abort", () => clearTimeout(timer), {once: true});
  }

  start();
  return () => state.stop?.();
}

function table(rows) {
  return h("table", {class: "kv"}, h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v)))));
}

export function flatten(object, prefix = "") {
  return Object.entries(object ?? {}).flatMap(([k, v]) =>
    v && typeof v === "object" && !Array.isArray(v) ? flatten(v, `${prefix}${k}.`) : [[`${prefix}${k}`, v]]);
}
