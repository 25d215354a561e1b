// A tiny element builder: text always goes through textContent, never markup.
import { shortId } from "./format.js";

const SVG_NS = "http://www.w3.org/2000/svg";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  return fill(el, attrs, children);
}

export function s(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.setAttribute("class", value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name in el && !(el instanceof SVGElement)) el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// A short id with a button that copies the full one. The button is an icon (two overlapping sheets): as the
// word "copy" it read as part of the name, "seed-a98b a98ba0e1 copy", as if the run were a copy of another.
// With `href` the short id is the link, for what has no name to link from (a sweep's row said "97238a21 97238a21").
export function idChip(id, href) {
  const icon = s("svg", {viewBox: "0 0 12 12", width: 11, height: 11, "aria-hidden": "true"},
                 s("rect", {x: 3.5, y: 0.5, width: 8, height: 8, rx: 1.2}), s("rect", {x: 0.5, y: 3.5, width: 8, height: 8, rx: 1.2}));
  const button = h("button", {class: "copy", title: `copy the whole id (${id})`, "aria-label": `copy id ${id}`,
    onclick: (event) => {
      event.preventDefault();
      event.stopPropagation();
      navigator.clipboard?.writeText(String(id)).then(() => flash(button), () => {});
    }}, icon);
  const code = h("code", {}, shortId(id));
  return h("span", {class: "id", title: String(id)}, href ? h("a", {href}, code) : code, button);
}

function flash(el) {
  el.classList.add("copied");
  setTimeout(() => el.classList.remove("copied"), 800);
}

export function statusBadge(status) {
  return h("span", {class: `status status-${status}`}, status);
}

// A run's status as people read it: a sweep trial that early stopping pruned says "pruned" (the job's own status
// stays cancelled; the API marks it `pruned`), as the sweep's leaderboard does.
export function runStatus(run) {
  return run.pruned ? "pruned" : run.status;
}
