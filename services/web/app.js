// The app shell: one hash route per view (#/runs, #/runs/<id>, #/runs/<id>/graph, #/compare?ids=…,
// #/new, #/queue), so every view has its own URL and back/forward work.
import { key } from "./api.js";
import { h } from "./dom.js";
import { askForKey, banner, keyGiven } from "./shell.js";
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

function stop() {
  cleanup?.();
  cleanup = null;
}

export function route() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  stop();
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

// A 401 (no key, a wrong or a revoked one) stops the view, so that nothing polls a server that refuses
// every request (and counts each as a failed attempt against this address, good keys' requests included
// past the limit), and asks for a key; a key given here or in the header starts the view again.
function setUpKey() {
  const input = document.getElementById("key");
  input.value = key.get();
  const useKey = (value) => {
    key.set(value);
    input.value = value;
    keyGiven();
    route();
  };
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    useKey(input.value.trim());
  });
  window.addEventListener("mgs:unauthorized", (event) => {
    stop();
    askForKey(event.detail, Boolean(key.get()), useKey);
  });
}

setUpKey();
window.addEventListener("hashchange", route);
route();
