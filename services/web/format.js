// Readable numbers, times and ids. Every view formats through these.

export function num(x, digits = 4) {
  if (x === null || x === undefined) return "–";
  if (typeof x !== "number") return String(x);
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return "0";
  if (Number.isInteger(x) && Math.abs(x) < 1e6) return String(x);
  const a = Math.abs(x);
  if (a >= 1e6 || a < 1e-3) return x.toExponential(digits - 1).replace(/\.?0+e/, "e");
  return String(Number(x.toPrecision(digits)));
}

export function pct(x) {
  return x === null || x === undefined ? "–" : `${num(100 * x, 4)}%`;
}

const UNITS = [["y", 31536000], ["mo", 2592000], ["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];

export function ago(iso, now = Date.now()) {
  if (!iso) return "–";
  const seconds = Math.round((now - Date.parse(iso)) / 1000);
  if (Math.abs(seconds) < 5) return "just now";
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) {
      const n = Math.floor(Math.abs(seconds) / size);
      return seconds >= 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`;
    }
  }
  return "just now";
}

export function duration(startIso, endIso, now = Date.now()) {
  if (!startIso) return "–";
  const end = endIso ? Date.parse(endIso) : now;
  let s = Math.max(0, (end - Date.parse(startIso)) / 1000);
  if (s < 10) return `${num(s, 2)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  s = Math.round(s % 60);
  if (m < 60) return `${m} min ${s} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function shortId(id) {
  return String(id).slice(0, 8);
}

export function localTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}
