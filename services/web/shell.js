// What every view may ask of the shell: its query string, the banner, the key prompt.
import { h } from "./dom.js";

// Replace the current query without adding a history entry (filters, sort) and without re-rendering.
export function setQuery(params) {
  const [path] = location.hash.replace(/^#/, "").split("?");
  const query = params.toString();
  history.replaceState(null, "", `#${path}${query ? "?" + query : ""}`);
}

let asking = false;  // the banner asks for a key: views' messages wait until one is given

export function banner(text) {
  if (asking) return;
  const el = document.getElementById("banner");
  el.textContent = text;
  el.hidden = !text;
}

// The server refused the key (401): say so, with a field for another key; onKey(key) when one is given.
// Called again while asking (another request refused at the same moment), only the reason is updated.
export function askForKey(detail, hadKey, onKey) {
  const el = document.getElementById("banner");
  const reason = `${hadKey ? "The server refused this page's API key" : "This server needs an API key"} (${detail}). ` +
                 "The page has stopped refreshing until a key is accepted.";
  if (asking) {
    el.querySelector(".key-reason").textContent = reason;
    return;
  }
  asking = true;
  const input = h("input", {type: "password", id: "prompt-key", autocomplete: "new-password", size: 30,
                            "aria-label": "API key", placeholder: "paste an API key"});
  el.replaceChildren(h("span", {class: "key-reason"}, reason), " ",
    h("form", {class: "key-prompt", onsubmit: (event) => { event.preventDefault(); onKey(input.value.trim()); }},
      input, h("button", {type: "submit", class: "primary"}, "Use this key")));
  el.classList.add("refused");
  el.hidden = false;
  input.focus();
}

export function keyGiven() {
  asking = false;
  document.getElementById("banner").classList.remove("refused");
  banner("");
}

// A view's subject does not exist (404): say so in place of the view, not over an empty skeleton of it.
export function notFound(main, {title, text, back}) {
  main.replaceChildren(h("h1", {}, title), h("p", {class: "not-found"}, text, " ", h("a", {href: back[0]}, back[1])));
}

export function errorText(error) {
  return error?.message ?? String(error);
}
