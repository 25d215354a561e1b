// The computation-graph explorer. The SVG is fetched with the key and shown as an <img> of a blob:
// an image never runs script, whatever the SVG holds. The same text is parsed (inertly, never put in
// the page) for the nodes' boxes and labels: search and hover read those.
import { failure, headers, q } from "../api.js";
import { h, idChip, s } from "../dom.js";
import { banner, errorText, notFound } from "../shell.js";

const PX_PER_PT = 96 / 72;
const MIN_SCALE = 0.01, MAX_SCALE = 8;

export function renderGraph(main, {args: [id], signal}) {
  const img = h("img", {class: "graph-img", alt: "computation graph", draggable: false});
  const overlay = s("svg", {class: "graph-overlay"});
  const stage = h("div", {class: "graph-stage"}, img, overlay);
  const viewport = h("div", {class: "graph-viewport", tabIndex: 0}, stage);
  const tip = h("div", {class: "graph-tip", hidden: true});
  const zoomText = h("span", {class: "muted zoom-text"});
  const found = h("span", {class: "muted"});
  const search = h("input", {type: "search", placeholder: "find a node label (e.g. loss, w0)", "aria-label": "find a node",
                             oninput: () => find(0), onkeydown: (e) => { if (e.key === "Enter") find(view.match + 1); }});
  const caption = h("p", {class: "muted"}, "Loading the graph…");
  main.append(
    h("p", {class: "crumbs"}, h("a", {href: "#/runs"}, "Runs"), " / ", h("a", {href: `#/runs/${id}`}, id.slice(0, 8)), " / graph"),
    h("div", {class: "toolbar"}, h("h1", {}, "Computation graph ", idChip(id)), caption),
    h("div", {class: "toolbar"},
      h("button", {onclick: () => zoomBy(1.5), title: "zoom in"}, "+"),
      h("button", {onclick: () => zoomBy(1 / 1.5), title: "zoom out"}, "−"),
      h("button", {onclick: () => fit()}, "Fit"),
      h("button", {onclick: () => zoomTo(1)}, "100%"), zoomText, search, found,
      h("span", {class: "muted"}, "drag to pan · wheel to zoom · hover a node for data and grad")),
    h("div", {class: "graph-wrap"}, viewport, tip));

  const view = {k: 1, tx: 0, ty: 0, w: 0, h: 0, vb: null, nodes: [], matches: [], match: -1, url: null};

  function apply() {
    stage.style.width = `${view.w * view.k}px`;
    stage.style.height = `${view.h * view.k}px`;
    stage.style.transform = `translate(${view.tx}px, ${view.ty}px)`;
    zoomText.textContent = `${Math.round(view.k * 100)}%`;
    viewport.dataset.scale = view.k.toFixed(4);
    viewport.dataset.tx = view.tx.toFixed(1);
    viewport.dataset.ty = view.ty.toFixed(1);
  }

  function zoomTo(k, cx = viewport.clientWidth / 2, cy = viewport.clientHeight / 2) {
    k = Math.min(MAX_SCALE, Math.max(MIN_SCALE, k));
    view.tx = cx - (cx - view.tx) * k / view.k;
    view.ty = cy - (cy - view.ty) * k / view.k;
    view.k = k;
    apply();
  }
  const zoomBy = (factor, cx, cy) => zoomTo(view.k * factor, cx, cy);

  function fit() {
    if (!view.w) return;
    const k = Math.min(viewport.clientWidth / view.w, viewport.clientHeight / view.h) * 0.98;
    view.k = Math.min(MAX_SCALE, Math.max(MIN_SCALE, k));
    view.tx = (viewport.clientWidth - view.w * view.k) / 2;
    view.ty = (viewport.clientHeight - view.h * view.k) / 2;
    apply();
  }

  viewport.addEventListener("wheel", (e) => {
    e.preventDefault();
    const box = viewport.getBoundingClientRect();
    zoomBy(Math.exp(-e.deltaY * 0.0015), e.clientX - box.left, e.clientY - box.top);
  }, {passive: false});
  viewport.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    e.preventDefault();  // no native image drag or text selection: they would cancel the pointer
    viewport.focus();
    const start = {x: e.clientX, y: e.clientY, tx: view.tx, ty: view.ty};
    viewport.setPointerCapture(e.pointerId);
    viewport.classList.add("dragging");
    const move = (m) => { view.tx = start.tx + m.clientX - start.x; view.ty = start.ty + m.clientY - start.y; apply(); };
    const up = () => {
      viewport.removeEventListener("pointermove", move);
      viewport.removeEventListener("pointerup", up);
      viewport.removeEventListener("pointercancel", up);
      viewport.classList.remove("dragging");
    };
    viewport.addEventListener("pointermove", move);
    viewport.addEventListener("pointerup", up);
    viewport.addEventListener("pointercancel", up);
  });
  viewport.addEventListener("keydown", (e) => {
    const step = 60, moves = {ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step]};
    if (moves[e.key]) { view.tx += moves[e.key][0]; view.ty += moves[e.key][1]; apply(); e.preventDefault(); }
    if (e.key === "+" || e.key === "=") zoomBy(1.25);
    if (e.key === "-") zoomBy(0.8);
    if (e.key === "0") fit();
  });
  viewport.addEventListener("mousemove", (e) => hover(e));
  viewport.addEventListener("mouseleave", () => { tip.hidden = true; mark([]); });

  // viewport pixel -> the SVG's own coordinates
  function toSvg(clientX, clientY) {
    const box = viewport.getBoundingClientRect(), vb = view.vb;
    return [vb[0] + (clientX - box.left - view.tx) / (view.w * view.k) * vb[2],
            vb[1] + (clientY - box.top - view.ty) / (view.h * view.k) * vb[3]];
  }

  function hover(e) {
    if (!view.vb || viewport.classList.contains("dragging")) return;
    const [x, y] = toSvg(e.clientX, e.clientY);
    const node = view.nodes.find((n) => x >= n.box[0] && x <= n.box[2] && y >= n.box[1] && y <= n.box[3]);
    if (!node) { tip.hidden = true; mark(view.matches, view.match); return; }
    tip.replaceChildren(...node.texts.map((t, i) => h(i ? "div" : "strong", {}, t)));
    tip.hidden = false;
    const box = viewport.getBoundingClientRect();
    tip.style.left = `${Math.min(e.clientX - box.left + 14, box.width - 220)}px`;
    tip.style.top = `${e.clientY - box.top + 14}px`;
    mark([...view.matches, node], view.match, node);
  }

  function mark(nodes, current = -1, hovered = null) {
    overlay.replaceChildren(...nodes.map((n, i) => s("rect", {
      x: n.box[0] - 2, y: n.box[1] - 2, width: n.box[2] - n.box[0] + 4, height: n.box[3] - n.box[1] + 4,
      class: n === hovered ? "hovered" : i === current ? "match current" : "match"})));
  }

  function find(index) {
    const text = search.value.trim().toLowerCase();
    view.matches = text ? view.nodes.filter((n) => n.texts.some((t) => t.toLowerCase().includes(text))) : [];
    found.textContent = text ? `${view.matches.length} match${view.matches.length === 1 ? "" : "es"}` : "";
    view.match = view.matches.length ? index % view.matches.length : -1;
    mark(view.matches, view.match);
    if (view.match >= 0) {
      const n = view.matches[view.match], vb = view.vb;
      if (view.k < 0.6) view.k = 1;
      const cx = ((n.box[0] + n.box[2]) / 2 - vb[0]) / vb[2] * view.w * view.k;
      const cy = ((n.box[1] + n.box[3]) / 2 - vb[1]) / vb[3] * view.h * view.k;
      view.tx = viewport.clientWidth / 2 - cx;
      view.ty = viewport.clientHeight / 2 - cy;
      apply();
      found.textContent += ` (showing ${view.match + 1}; Enter for the next)`;
    }
  }

  (async () => {
    try {
      let response;
      // 202: the run has succeeded and its graph is being drawn (it is drawn after the results are saved)
      while ((response = await fetch(`/jobs/${q(id)}/graph.svg`, {headers: headers(), signal})).status === 202) {
        let detail = "the graph is being drawn";
        try { detail = (await response.json()).detail; } catch { /* not JSON */ }
        caption.textContent = `${detail}…`;
        viewport.dataset.waiting = "true";
        await pause(1000 * (Number(response.headers.get("Retry-After")) || 1), signal);
      }
      delete viewport.dataset.waiting;
      if (!response.ok) {
        const error = await failure(response, signal);
        if (error.status === 404) {  // no such run, or a run without a graph (not finished, not asked for, …)
          notFound(main, {title: "No computation graph", text: `${errorText(error)}.`, back: [`#/runs/${id}`, "Back to the run"]});
        } else {
          caption.textContent = errorText(error);
        }
        return;
      }
      const text = await response.text();
      const doc = new DOMParser().parseFromString(text, "image/svg+xml");  // inert: never in the page
      const root = doc.documentElement;
      if (root.nodeName !== "svg") throw new Error("the graph is not an SVG document");
      Object.assign(view, measure(root), {nodes: nodes(root)});
      overlay.setAttribute("viewBox", view.vb.join(" "));
      view.url = URL.createObjectURL(new Blob([text], {type: "image/svg+xml"}));
      img.src = view.url;
      await img.decode().catch(() => {});
      const title = root.querySelector("g.graph > title")?.textContent;
      caption.textContent = `${Math.round(view.w)}×${Math.round(view.h)} px · ${view.nodes.length} nodes` + (title && title !== "%3" ? ` · ${title}` : "");
      fit();
      viewport.dataset.ready = "true";
    } catch (error) {
      if (error.name !== "AbortError") banner(`Could not show the graph: ${errorText(error)}`);
    }
  })();
  return () => { if (view.url) URL.revokeObjectURL(view.url); };
}

// Resolves after `ms`, or rejects with an AbortError when the view is left first.
function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); reject(new DOMException("left the view", "AbortError")); }, {once: true});
  });
}

// The SVG's size in CSS pixels and its viewBox.
function measure(root) {
  const length = (value) => {
    const match = /^([\d.]+)\s*(pt|px)?$/.exec(value || "");
    return match ? Number(match[1]) * (match[2] === "pt" ? PX_PER_PT : 1) : null;
  };
  let vb = (root.getAttribute("viewBox") || "").trim().split(/[\s,]+/).map(Number);
  const w = length(root.getAttribute("width")), ht = length(root.getAttribute("height"));
  if (vb.length !== 4 || vb.some((v) => !Number.isFinite(v))) vb = [0, 0, w || 1000, ht || 1000];
  return {vb, w: w || vb[2], h: ht || vb[3]};
}

// Graphviz draws each node as <g class="node"><title>name</title><polygon|ellipse|path/><text/>…</g>
// inside <g class="graph" transform="scale(..) rotate(0) translate(..)">; boxes in viewBox units.
function nodes(root) {
  const graph = root.querySelector("g.graph");
  const transform = graph?.getAttribute("transform") || "";
  const scale = /scale\(([-\d.]+)(?:[ ,]+([-\d.]+))?\)/.exec(transform);
  const translate = /translate\(([-\d.]+)(?:[ ,]+([-\d.]+))?\)/.exec(transform);
  const [sx, sy] = scale ? [Number(scale[1]), Number(scale[2] ?? scale[1])] : [1, 1];
  const [tx, ty] = translate ? [Number(translate[1]), Number(translate[2] ?? 0)] : [0, 0];
  const out = [];
  for (const node of root.querySelectorAll("g.node")) {
    const xs = [], ys = [];
    for (const shape of node.querySelectorAll("polygon, polyline")) {
      const nums = (shape.getAttribute("points") || "").trim().split(/[\s,]+/).map(Number);
      for (let i = 0; i + 1 < nums.length; i += 2) { xs.push(nums[i]); ys.push(nums[i + 1]); }
    }
    for (const e of node.querySelectorAll("ellipse")) {
      const [cx, cy, rx, ry] = ["cx", "cy", "rx", "ry"].map((a) => Number(e.getAttribute(a)));
      xs.push(cx - rx, cx + rx); ys.push(cy - ry, cy + ry);
    }
    const texts = [...node.querySelectorAll("text")].map((t) => t.textContent.trim()).filter(Boolean);
    if (!xs.length) {
      for (const t of node.querySelectorAll("text")) { xs.push(Number(t.getAttribute("x"))); ys.push(Number(t.getAttribute("y"))); }
    }
    if (!xs.length || xs.some((v) => !Number.isFinite(v))) continue;
    const box = [sx * (Math.min(...xs) + tx), sy * (Math.min(...ys) + ty), sx * (Math.max(...xs) + tx), sy * (Math.max(...ys) + ty)];
    out.push({name: node.querySelector("title")?.textContent, texts: texts.length ? texts : [node.querySelector("title")?.textContent ?? "?"], box});
  }
  return out;
}
