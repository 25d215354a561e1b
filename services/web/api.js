// Every request the page makes: same origin, with the stored key as a Bearer header, and X-Requested-With,
// without which a server that runs without keys refuses a POST or DELETE that has no JSON body (a web page of
// another site cannot send that header without the server's consent).
const KEY = "mgs.apiKey";
const MARKER = {"X-Requested-With": "mgs-dashboard"};

export const key = {
  get: () => localStorage.getItem(KEY) || "",
  set: (value) => value ? localStorage.setItem(KEY, value) : localStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, detail) {
    super(describe(detail));
    this.status = status;
  }
}

// FastAPI's 422 detail is a list of {loc, msg}: "body.steps: must be ≥ 1; …".
function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((e) => `${(e.loc || []).filter((p) => p !== "body").join(".")}: ${e.msg}`).join("; ");
  }
  return JSON.stringify(detail);
}

// A 401: the key is missing, wrong or revoked. The shell stops the view (and with it every poll, which the
// server would only refuse again and count as failed attempts) and asks for a key.
export function refused(detail) {
  window.dispatchEvent(new CustomEvent("mgs:unauthorized", {detail}));
}

// The error for a response that is not ok, with the server's JSON detail; a 401 also goes to refused(),
// unless the view that asked is gone by now (its refusal is no news about the key the page holds now).
export async function failure(response, signal) {
  let detail = response.statusText;
  try { detail = (await response.json()).detail ?? detail; } catch { /* not JSON */ }
  if (signal?.aborted) return new DOMException("the view was left", "AbortError");
  if (response.status === 401) refused(detail);
  return new ApiError(response.status, detail);
}

export function headers(extra = {}) {
  const k = key.get();
  return k ? {...MARKER, ...extra, Authorization: `Bearer ${k}`} : {...MARKER, ...extra};
}

export async function request(path, {method = "GET", body, signal, accept = "json"} = {}) {
  const init = {method, signal, headers: headers(body === undefined ? {} : {"Content-Type": "application/json"})};
  if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response, signal);
  if (accept === "text") return response.text();
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path, options) => request(path, options);
export const post = (path, body, options) => request(path, {...options, method: "POST", body: body ?? {}});
export const del = (path, options) => request(path, {...options, method: "DELETE"});
export const q = encodeURIComponent;

// What this server offers ("GET /compare", "DELETE /jobs/{job_id}", …), read once from its OpenAPI schema,
// so views use an endpoint only where it exists.
let offered = null;
export function has(method, path) {
  offered ??= fetch("/openapi.json").then((r) => r.json()).then((schema) =>
    new Set(Object.entries(schema.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`))))
    .catch(() => new Set());
  return offered.then((set) => set.has(`${method} ${path}`));
}
