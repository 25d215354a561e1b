// The app shell: one hash route per view (#/runs, #/runs/<id>, #/runs/<id>/graph, #/compare?ids=…,
// #/new, #/queue), so every view has its own URL and back/forward work.
import { key } from "./api.js";
import { h } from "./dom.js";
import { banner } from "./shell.js";
import { renderRuns } from "./views/runs.js";
import { renderRun } from "./views/run.js";
import { renderGraph } from "./views/graph.js";
import { renderCompare } from "./views/compare.js";
import { renderNew } from "./views/new.js";
import { renderQueue } from "./views/queue.js";
import { renderSweep, renderSweeps } from "./views/sweeps.js";

const ROUTES = [
  [/^\/?(runs)?$/, "runs", renderRuns],
  [/^\/new$/, "new", renderNew],
  [/^\/queue$/, "queue", renderQueue],
  [/^\/compare$/, "compare", renderCompare],
  [/^\/sweeps$/, "sweeps", renderSweeps],
  [/^\/sweeps\/([0-9a-f-]{36})$/, "sweeps", renderSweep],
  [/^\/runs\/([0-9a-f-]{36})\/graph$/, "runs", renderGraph],
  [/^\/runs\/([0-9a-f-]{36})$/, "runs", renderRun],
];

const main = document.getElementById("main");
let cleanup = null;

export function route() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  cleanup?.();
  cleanup = null;
  banner("");
  for (const [pattern, nav, render] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll("[data-nav]")) link.classList.toggle("active", link.dataset.nav === nav);
    main.replaceChildren();
    const controller = new AbortController();
    const stop = render(main, {args: match.slice(1), params, signal: controller.signal});
    cleanup = () => { controller.abort(); if (typeof stop === "function") stop(); };
    return;
  }
  main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, "No view at ", h("code", {}, location.hash), ". ",
                                                            h("a", {href: "#/runs"}, "Back to the runs")));
}

function setUpKey() {
  const input = document.getElementById("key");
  input.value = key.get();
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    key.set(input.value.trim());
    route();
  });
  window.addEventListener("mgs:unauthorized", (event) =>
    banner(`The server refused the request (${event.detail}). Enter an API key above and press Save.`));
}

setUpKey();
window.addEventListener("hashchange", route);
route();
