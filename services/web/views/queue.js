// Queue: what runs now and what waits, from the service's own job table (and GET /workers when the server has it).
import { get, has } from "../api.js";
import { h, idChip, statusBadge } from "../dom.js";
import { ago } from "../format.js";
import { banner, errorText } from "../shell.js";

const REFRESH_MS = 2000;

export function renderQueue(main, {signal}) {
  const counts = h("div", {class: "cards"});
  const workers = h("section");
  const lists = h("div");
  main.append(h("h1", {}, "Queue"), counts, workers, lists);

  async function load() {
    try {
      const [running, queued] = await Promise.all(["running", "queued"].map((st) => get(`/jobs?status=${st}&limit=200`, {signal})));
      const more = (list) => list.next_cursor ? "+" : "";
      counts.replaceChildren(card("running", `${running.items.length}${more(running)}`), card("queued", `${queued.items.length}${more(queued)}`),
        card("oldest waiting", queued.items.length ? ago(queued.items[queued.items.length - 1].created_at) : "–"));
      lists.replaceChildren(section("Running", running.items), section("Queued (oldest last)", queued.items));
      await loadWorkers();
    } catch (error) {
      if (error.name !== "AbortError") banner(`Could not load the queue: ${errorText(error)}`);
    }
  }

  async function loadWorkers() {
    if (!await has("GET", "/workers")) {
      workers.replaceChildren(h("p", {class: "muted"}, "This server does not list its workers (no GET /workers); the counts above come from the job table."));
      return;
    }
    try {
      const live = await get("/workers", {signal});
      if (!live.length) {
        workers.replaceChildren(h("h2", {}, "Workers (none live)"), h("p", {class: "empty-workers"},
          "No worker has beaten in the last ", h("code", {}, "STALE_AFTER_SECONDS"), ": queued jobs wait until one starts ",
          "(", h("code", {}, "make run"), " starts one with the API; in the compose stack, the ", h("code", {}, "worker"), " service)."));
        return;
      }
      workers.replaceChildren(h("h2", {}, `Workers (${live.length} live)`), h("table", {class: "runs workers"},
        h("thead", {}, h("tr", {}, ["worker", "state", "job", "started", "last heartbeat"].map((c) => h("th", {}, c)))),
        h("tbody", {}, live.map((w) => h("tr", {},
          h("td", {class: "mono"}, w.name), h("td", {}, statusBadge(w.busy ? "running" : "idle")),
          h("td", {}, w.current_job ? h("a", {href: `#/runs/${w.current_job}`}, w.current_job.slice(0, 8)) : w.busy ? "another owner's" : "–"),
          h("td", {}, ago(w.started_at)), h("td", {}, ago(w.last_heartbeat)))))));
    } catch (error) {
      if (error.name === "AbortError") throw error;
      workers.replaceChildren(h("p", {class: "muted"}, `Could not list the workers: ${errorText(error)}`));
    }
  }

  function section(title, items) {
    return h("section", {}, h("h2", {}, title), items.length ? h("table", {class: "runs"}, h("tbody", {}, items.map((job) =>
      h("tr", {class: "run", onclick: () => { location.hash = `#/runs/${job.id}`; }}, h("td", {}, job.name ?? "", " ", idChip(job.id)),
        h("td", {}, statusBadge(job.status)), h("td", {}, `queued ${ago(job.created_at)}`))))) : h("p", {class: "muted"}, "none"));
  }

  load();
  const timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
  return () => clearInterval(timer);
}

function card(label, value) {
  return h("div", {class: "card"}, h("div", {class: "card-value"}, value), h("div", {class: "muted"}, label));
}
