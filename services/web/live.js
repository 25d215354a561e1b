// Follow a running job: Server-Sent Events from GET /jobs/{id}/events, read with fetch (EventSource
// cannot send the Authorization header), resumed with Last-Event-ID; polling when the stream fails.
import { ApiError, failure, get, headers, q } from "./api.js";

const POLL_MS = 1000;
const FINAL = new Set(["succeeded", "failed", "cancelled"]);

export function isFinal(status) { return FINAL.has(status); }

// handlers: {points(list), status(job-ish {status, progress}), end(status)}; returns a stop function.
export function follow(jobId, lastStep, handlers) {
  const controller = new AbortController();
  const state = {lastStep, retryMs: 1000, stopped: false};
  (async () => {
    let failures = 0;
    while (!state.stopped) {
      try {
        const ended = await stream(jobId, state, handlers, controller.signal);
        if (ended) return;
        failures = 0;
      } catch (error) {
        if (state.stopped || error.name === "AbortError") return;
        failures += 1;
        if (failures >= 2 || (error instanceof ApiError && error.status !== 503)) {
          handlers.mode?.("polling");
          return poll(jobId, state, handlers, controller.signal);
        }
      }
      await sleep(state.retryMs, controller.signal).catch(() => {});
    }
  })();
  return () => { state.stopped = true; controller.abort(); };
}

async function stream(jobId, state, handlers, signal) {
  const extra = {Accept: "text/event-stream"};
  if (state.lastStep !== null && state.lastStep !== undefined) extra["Last-Event-ID"] = String(state.lastStep);
  const response = await fetch(`/jobs/${q(jobId)}/events`, {headers: headers(extra), signal});
  if (!response.ok) throw await failure(response, signal);
  if (!response.body) throw new ApiError(response.status, "no body");
  handlers.mode?.("live");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return false;  // the server ended this stream (its lifetime is bounded): reconnect
    buffer += value.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = parse(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 2);
      if (event.retry) state.retryMs = event.retry;
      if (event.id !== undefined && event.id !== "") state.lastStep = Number(event.id);
      if (!event.data) continue;
      const data = JSON.parse(event.data);
      if (event.event === "progress") deliver(data, handlers);
      if (event.event === "end") {
        deliver(data, handlers);
        handlers.end?.(data.status);
        return true;
      }
    }
  }
}

function parse(block) {
  const event = {event: "message", data: ""};
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") event.data += (event.data ? "\n" : "") + value;
    else if (field === "retry") event.retry = Number(value);
    else event[field] = value;
  }
  return event;
}

function deliver(data, handlers) {
  if (data.points?.length) handlers.points?.(data.points);
  handlers.status?.(data);
}

async function poll(jobId, state, handlers, signal) {
  while (!state.stopped) {
    try {
      const job = await get(`/jobs/${q(jobId)}`, {signal});
      const start = state.lastStep === null || state.lastStep === undefined ? 0 : state.lastStep + 1;
      const loss = await get(`/jobs/${q(jobId)}/loss?start=${start}&max_points=10000`, {signal});
      if (loss.points.length) state.lastStep = loss.points[loss.points.length - 1].step;
      deliver({status: job.status, progress: job.progress, points: loss.points}, handlers);
      if (isFinal(job.status)) return handlers.end?.(job.status);
    } catch (error) {
      if (state.stopped || error.name === "AbortError") return;
    }
    await sleep(POLL_MS, signal).catch(() => {});
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); reject(new DOMException("aborted", "AbortError")); });
  });
}
