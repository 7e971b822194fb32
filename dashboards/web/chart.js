// A small SVG line chart and sparkline, written for these dashboards (no library). Colours come
// from style.css classes (`series-0` … `series-3`, `threshold`), so the page's
// Content-Security-Policy needs no inline style.
//
// Every drawn series keeps its data on the element for tests and assistive tools:
// `data-series` (its label), `data-points` (how many points have a value) and `data-last` (the
// last value, as the API gave it).

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// Round "nice" tick step for a range.
function niceStep(span, ticks) {
  const raw = span / Math.max(1, ticks);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const nice = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
  return nice * mag;
}

function lastValue(points) {
  for (let i = points.length - 1; i >= 0; i -= 1) {
    if (points[i][1] !== null && points[i][1] !== undefined) return points[i][1];
  }
  return null;
}

// Path data through the points, broken where a value is null.
function pathData(points, x, y) {
  let d = "";
  let pen = false;
  for (const [t, v] of points) {
    if (v === null || v === undefined || !Number.isFinite(v)) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
    pen = true;
  }
  return d;
}

/**
 * A line chart.
 *  series:     [{ label, points: [[tMillis, value|null], …] }]
 *  thresholds: [{ label, value }] dashed horizontal lines
 *  options:    { title, yFormat(v) → text, yMin, height, testid, from, to }
 * Returns a <figure> holding the SVG and a legend.
 */
export function lineChart(series, thresholds, options) {
  const width = 720;
  const height = options.height ?? 220;
  const m = { top: 12, right: 16, bottom: 28, left: 64 };
  const all = series.flatMap((s) => s.points);
  const from = options.from ?? Math.min(...all.map((p) => p[0]));
  const to = options.to ?? Math.max(...all.map((p) => p[0]));
  const values = all.map((p) => p[1]).filter((v) => v !== null && v !== undefined && Number.isFinite(v));
  const limits = values.concat(thresholds.map((t) => t.value));
  let lo = Math.min(options.yMin ?? Infinity, ...limits);
  let hi = Math.max(...limits);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) {
    lo = 0;
    hi = 1;
  }
  if (hi === lo) hi = lo + (Math.abs(lo) || 1);
  const step = niceStep(hi - lo, 4);
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;
  const x = (t) => m.left + ((t - from) / Math.max(1, to - from)) * (width - m.left - m.right);
  const y = (v) => m.top + (1 - (v - lo) / (hi - lo)) * (height - m.top - m.bottom);

  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "chart",
    role: "img",
    "aria-label": options.title,
    "data-testid": options.testid,
  });
  svg.append(el("title", {}, options.title));

  const grid = el("g", { class: "grid" });
  for (let v = lo; v <= hi + step / 2; v += step) {
    grid.append(el("line", { x1: m.left, x2: width - m.right, y1: y(v), y2: y(v) }));
    grid.append(
      el("text", { x: m.left - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, options.yFormat(v)),
    );
  }
  const span = to - from;
  for (let i = 0; i <= 4; i += 1) {
    const t = from + (span * i) / 4;
    const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
    grid.append(
      el("text", { x: x(t), y: height - 8, "text-anchor": anchor, class: "tick" }, options.xFormat(t, span)),
    );
  }
  svg.append(grid);

  thresholds.forEach((t) => {
    const g = el("g", { class: "threshold", "data-threshold": t.value });
    g.append(el("line", { x1: m.left, x2: width - m.right, y1: y(t.value), y2: y(t.value) }));
    g.append(el("text", { x: m.left + 6, y: y(t.value) - 4, "text-anchor": "start" }, t.label));
    svg.append(g);
  });

  series.forEach((s, i) => {
    // A point without a neighbour has no line: mark it.
    s.points.forEach(([t, v], k) => {
      const has = (j) => j >= 0 && j < s.points.length && Number.isFinite(s.points[j][1]);
      if (Number.isFinite(v) && !has(k - 1) && !has(k + 1)) {
        svg.append(el("circle", { cx: x(t), cy: y(v), r: 3, class: `dot series-${i}` }));
      }
    });
    const last = lastValue(s.points);
    svg.append(
      el("path", {
        d: pathData(s.points, x, y),
        class: `line series-${i}`,
        "data-series": s.label,
        "data-points": s.points.filter((p) => p[1] !== null && p[1] !== undefined).length,
        "data-last": last === null ? "null" : String(last),
      }),
    );
  });

  const figure = document.createElement("figure");
  figure.className = "chart-figure";
  const caption = document.createElement("figcaption");
  const h = document.createElement("span");
  h.className = "chart-title";
  h.textContent = options.title;
  caption.append(h);
  const legend = document.createElement("ul");
  legend.className = "legend";
  series.forEach((s, i) => {
    const li = document.createElement("li");
    li.className = `key series-${i}`;
    li.textContent = s.label;
    legend.append(li);
  });
  thresholds.forEach((t) => {
    const li = document.createElement("li");
    li.className = "key threshold";
    li.textContent = t.label;
    legend.append(li);
  });
  caption.append(legend);
  figure.append(caption, svg);
  if (values.length === 0) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "No events in this range.";
    figure.append(p);
  }
  return figure;
}

/**
 * A sparkline of values (nulls are gaps) with a baseline at `zero` when it is in range.
 * Returns the <svg>.
 */
export function sparkline(values, options) {
  const width = 120;
  const height = 28;
  const pts = values.map((v, i) => [i, v]);
  const finite = values.filter((v) => v !== null && v !== undefined && Number.isFinite(v));
  let lo = Math.min(options.min ?? Infinity, ...finite);
  let hi = Math.max(options.max ?? -Infinity, ...finite);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) {
    lo = 0;
    hi = 1;
  }
  if (hi === lo) hi = lo + 1;
  const x = (i) => 2 + (i / Math.max(1, values.length - 1)) * (width - 4);
  const y = (v) => 2 + (1 - (v - lo) / (hi - lo)) * (height - 4);
  const last = lastValue(pts);
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "sparkline",
    role: "img",
    "aria-label": options.label,
    "data-testid": options.testid,
    "data-points": finite.length,
    "data-last": last === null ? "null" : String(last),
  });
  svg.append(el("title", {}, options.label));
  if (lo < 0 && hi > 0) {
    svg.append(el("line", { x1: 0, x2: width, y1: y(0), y2: y(0), class: "baseline" }));
  }
  svg.append(el("path", { d: pathData(pts, x, y), class: `line ${options.cls ?? ""}` }));
  return svg;
}
