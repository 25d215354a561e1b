// What every view may ask of the shell: its query string, the banner.

// Replace the current query without adding a history entry (filters, sort) and without re-rendering.
export function setQuery(params) {
  const [path] = location.hash.replace(/^#/, "").split("?");
  const query = params.toString();
  history.replaceState(null, "", `#${path}${query ? "?" + query : ""}`);
}

export function banner(text) {
  const el = document.getElementById("banner");
  el.textContent = text;
  el.hidden = !text;
}

export function errorText(error) {
  return error?.message ?? String(error);
}
