// How the dashboards write numbers. Every rendered figure also carries the API's raw value in
// `data-value`, so a test (tests/tests/dashboards.rs) compares the raw value with the API's JSON
// exactly and the text with these rules. The rules, one per kind of figure:
//
//   ratio (budget remaining, budget consumed, share)  (x * 100).toFixed(1) + " %"
//   SLI ratio                                          (x * 100).toFixed(3) + " %"; null: "no data"
//   objective                                          String(Number((x * 100).toFixed(4))) + " %"
//   burn rate                                          x.toFixed(2) + "×"
//   factor (a rule's threshold)                        String(x) + "×"
//   latency in seconds                                 (s * 1000).toFixed(1) + " ms"; null: "—"
//   count of events                                    the integer, thousands separated by ","
//   time to exhaustion in seconds                      null: "never"; 0: "exhausted";
//                                                      else duration(floor(s))
//   duration(s) for whole seconds s                    the two largest units of d/h/m/s, zero
//                                                      units left out: "3d 4h", "2h", "5m 10s"
//   window(s)                                          tracebudget's exact name of a window, as
//                                                      in the config: "5m", "2h30m", "2d19h12m"
//   instant (RFC 3339)                                 "YYYY-MM-DD HH:MM:SS UTC"
//   spans per bucket (a volume baseline)               x.toFixed(1)
//
// toFixed rounds the exact binary value half away from zero, as ECMAScript specifies.

export const NO_DATA = "no data";
export const DASH = "—";

export function ratio(x) {
  return `${(x * 100).toFixed(1)} %`;
}

export function sli(x) {
  return x === null || x === undefined ? NO_DATA : `${(x * 100).toFixed(3)} %`;
}

export function objective(x) {
  return `${String(Number((x * 100).toFixed(4)))} %`;
}

export function perBucket(x) {
  return x.toFixed(1);
}

export function burn(x) {
  return `${x.toFixed(2)}×`;
}

export function factor(x) {
  return `${String(x)}×`;
}

export function latency(seconds) {
  return seconds === null || seconds === undefined ? DASH : `${(seconds * 1000).toFixed(1)} ms`;
}

export function count(n) {
  const digits = String(Math.trunc(Math.abs(n)));
  const grouped = digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return n < 0 ? `-${grouped}` : grouped;
}

export function exhaustion(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds <= 0) return "exhausted";
  return duration(Math.floor(seconds));
}

const UNITS = [
  [86400, "d"],
  [3600, "h"],
  [60, "m"],
  [1, "s"],
];

// The two largest non-zero-led units, e.g. 273600 → "3d 4h", 7200 → "2h", 0 → "0s".
export function duration(seconds) {
  let rest = Math.floor(seconds);
  const parts = UNITS.map(([size, unit]) => {
    const v = Math.floor(rest / size);
    rest -= v * size;
    return [v, unit];
  });
  const first = parts.findIndex(([v]) => v !== 0);
  if (first < 0) return "0s";
  return parts
    .slice(first, first + 2)
    .filter(([v]) => v !== 0)
    .map(([v, u]) => `${v}${u}`)
    .join(" ");
}

// A window named exactly as tracebudget names it (slis::format_exact) for whole seconds: every
// non-zero unit, 300 → "5m", 5400 → "1h30m", 259200 → "3d", 241920 → "2d19h12m", 129 → "2m9s".
export function window(seconds) {
  const s = Math.round(seconds);
  if (s === 0) return "0s";
  return [
    [Math.floor(s / 86400), "d"],
    [Math.floor(s / 3600) % 24, "h"],
    [Math.floor(s / 60) % 60, "m"],
    [s % 60, "s"],
  ]
    .filter(([v]) => v !== 0)
    .map(([v, u]) => `${v}${u}`)
    .join("");
}

export function instant(rfc3339) {
  if (!rfc3339) return DASH;
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return rfc3339;
  return `${d.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

// "HH:MM" (UTC) or "MM-DD HH:MM" for axis labels over more than a day.
export function axisTime(ms, spanMs) {
  const iso = new Date(ms).toISOString();
  return spanMs > 86400000 ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(11, 16);
}

export const STATUS_LABEL = {
  ok: "OK",
  warning: "Warning",
  critical: "Critical",
  no_data: "No data",
};
