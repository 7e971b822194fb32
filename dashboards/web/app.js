// tracebudget dashboards: one page, three views chosen by the URL's hash.
//   #/            executive: every SLO at a glance
//   #/oncall      on-call: firing alerts with their traces and contributors, silences, trace health
//   #/slo/<name>  one SLO: burn rate per policy window, budget burndown, latency percentiles
// Everything comes from the JSON API of the same server (/api/v1/…); nothing else is loaded.
// Figures are written by format.js (its header lists the rounding rules) and carry the API's
// raw value in data-value.

import * as fmt from "./format.js";
import { lineChart, sparkline } from "./chart.js";

// Script errors, rejected promises and CSP violations, for people (the banner) and for the
// browser tests (window.__tbErrors).
window.__tbErrors = [];
function recordError(message) {
  window.__tbErrors.push(String(message));
}
window.addEventListener("error", (e) => recordError(e.message || e.type));
window.addEventListener("unhandledrejection", (e) => recordError(`unhandled rejection: ${e.reason}`));
document.addEventListener("securitypolicyviolation", (e) =>
  recordError(`content security policy: ${e.violatedDirective} blocked ${e.blockedURI}`),
);

const TOKEN_KEY = "tracebudget.token";
const AUTHOR_KEY = "tracebudget.author";
// `?refresh=SECONDS` in the URL (before the #): how often the view reloads, default 30, at least
// 5; `?refresh=0` never (the browser tests use it so the page holds still while they read it).
const REFRESH_MS = (() => {
  const asked = new URLSearchParams(location.search).get("refresh");
  const seconds = asked === null ? 30 : Number(asked);
  return Number.isFinite(seconds) && seconds > 0 ? Math.max(5, seconds) * 1000 : 0;
})();

// ---------------------------------------------------------------------------------------------
// DOM helpers.

// h("td", { class: "x", dataset: { testid: "y" } }, child, "text", …)
function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") {
      for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = String(dv);
    } else if (k === "on") {
      for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    } else if (k === "class") {
      e.className = v;
    } else if (v === true) {
      e.setAttribute(k, "");
    } else {
      e.setAttribute(k, String(v));
    }
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// A figure: its text by a format rule, its raw API value in data-value.
function figure(tag, testid, raw, text, attrs = {}) {
  return h(tag, { ...attrs, dataset: { testid, value: raw === null || raw === undefined ? "null" : String(raw) } }, text);
}

function statusBadge(status) {
  const icon = { ok: "✓", warning: "▲", critical: "✖", no_data: "○" }[status] ?? "?";
  return h(
    "span",
    { class: `badge status-${status}`, dataset: { testid: "status", value: status } },
    h("span", { "aria-hidden": "true" }, icon),
    ` ${fmt.STATUS_LABEL[status] ?? status}`,
  );
}

function severityBadge(severity) {
  return h(
    "span",
    { class: `badge severity-${severity}`, dataset: { testid: "alert-severity", value: severity } },
    severity === "page" ? "Page" : severity === "ticket" ? "Ticket" : severity,
  );
}

// A horizontal bar for a ratio in [0, 1] (clamped), drawn with CSSOM (no inline style markup).
function bar(value, cls) {
  const fill = h("span", { class: `fill ${cls}` });
  fill.style.width = `${Math.max(0, Math.min(1, value)) * 100}%`;
  return h("span", { class: "bar", "aria-hidden": "true" }, fill);
}

function budgetClass(remaining) {
  if (remaining <= 0) return "critical";
  if (remaining < 0.25) return "warning";
  return "ok";
}

function sloLink(name, attrs = {}) {
  return h("a", { href: `#/slo/${encodeURIComponent(name)}`, ...attrs }, name);
}

// ---------------------------------------------------------------------------------------------
// The API, with the bearer token when one is known.

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (response.status === 401) {
    showTokenForm(token ? "The token was refused." : "This server needs an API token.");
  }
  if (!response.ok) {
    const message = json && typeof json.error === "string" ? json.error : text || response.statusText;
    throw new ApiError(response.status, `${method} ${path}: ${response.status} ${message}`);
  }
  return json;
}

function showTokenForm(reason) {
  const box = document.getElementById("auth");
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    required: true,
    dataset: { testid: "token-input" },
  });
  const form = h(
    "form",
    {
      class: "token-form",
      dataset: { testid: "token-form" },
      on: {
        submit: (e) => {
          e.preventDefault();
          sessionStorage.setItem(TOKEN_KEY, input.value.trim());
          box.hidden = true;
          box.replaceChildren();
          // Someone filling in a form keeps it: they submit it again. Otherwise reload the view.
          const pending = document.querySelector("#view form");
          if (!pending) {
            render();
            return;
          }
          const message = pending.querySelector(".form-message");
          if (message) {
            message.className = "form-message";
            message.textContent = "Token saved: submit again.";
          }
          pending.querySelector("[type=submit]")?.focus();
        },
      },
    },
    h("p", { role: "alert" }, `${reason} It is kept for this browser tab only.`),
    h("label", { for: "token" }, "API token"),
    input,
    h("button", { type: "submit" }, "Use token"),
  );
  box.replaceChildren(form);
  box.hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Routing and rendering.

function currentRoute() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = hash.split("?");
  const params = new URLSearchParams(query);
  if (path === "/" || path === "") return { name: "executive", params };
  if (path === "/oncall") return { name: "oncall", params };
  const m = path.match(/^\/slo\/(.+)$/);
  if (m) return { name: "slo", slo: decodeURIComponent(m[1]), params };
  return { name: "notfound", path, params };
}

const PAGES = {
  executive: executivePage,
  oncall: oncallPage,
  slo: sloPage,
  notfound: async (route) => [h("h1", {}, "Not found"), h("p", {}, `No dashboard at ${route.path}. `, h("a", { href: "#/" }, "Executive view"))],
};

let generation = 0;

async function render() {
  const view = document.getElementById("view");
  const route = currentRoute();
  const mine = ++generation;
  view.dataset.state = "loading";
  view.dataset.route = route.name;
  for (const a of document.querySelectorAll("nav a")) {
    const on = a.dataset.nav === route.name;
    if (on) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  let content;
  try {
    content = await PAGES[route.name](route);
  } catch (e) {
    content = [h("div", { class: "error", role: "alert", dataset: { testid: "error" } }, h("strong", {}, "Cannot load this view. "), String(e.message ?? e))];
  }
  if (mine !== generation) return; // a newer render started meanwhile
  view.replaceChildren(...[content].flat());
  view.dataset.state = "ready";
  document.getElementById("updated").textContent = `Updated ${new Date().toISOString().slice(11, 19)} UTC`;
}

// Refresh now and then, unless someone is filling in a form.
function refreshIfIdle() {
  if (document.hidden) return;
  if (document.querySelector("#view form, #auth form")) return;
  render();
}

// ---------------------------------------------------------------------------------------------
// Executive: every SLO at a glance.

// Budget remaining over the SLO's whole period, in about 48 steps of whole minutes.
function trendPath(slo) {
  const range = Math.max(60, Math.round(slo.period.seconds));
  const step = Math.max(60, Math.ceil(range / 48 / 60) * 60);
  return `/api/v1/slos/${encodeURIComponent(slo.name)}/series?range=${range}s&step=${step}s`;
}

async function executivePage() {
  document.title = "SLOs — tracebudget";
  const { slos } = await api("/api/v1/slos");
  const trends = await Promise.all(slos.map((s) => api(trendPath(s)).catch((e) => e)));

  const counts = { critical: 0, warning: 0, ok: 0, no_data: 0 };
  for (const s of slos) counts[s.status] = (counts[s.status] ?? 0) + 1;
  const summary = h(
    "ul",
    { class: "summary", "aria-label": "SLOs by status" },
    ["critical", "warning", "ok", "no_data"].map((st) =>
      h(
        "li",
        { class: `tile status-${st}` },
        figure("span", `count-${st}`, counts[st], String(counts[st]), { class: "big" }),
        h("span", {}, fmt.STATUS_LABEL[st]),
      ),
    ),
  );

  const head = h(
    "tr",
    {},
    ["Status", "SLO", "Journey", "Objective", "Period", "SLI", "Budget remaining", "Budget consumed", "Trend", "Events (bad)", "Budget lasts"].map(
      (t) => h("th", { scope: "col" }, t),
    ),
  );
  const rows = slos.map((s, i) => {
    const trend = trends[i];
    let trendCell;
    if (trend instanceof Error) {
      trendCell = h("td", { class: "muted", title: trend.message }, "unavailable");
    } else {
      const values = trend.points.map((p) => p.budget_remaining);
      trendCell = h(
        "td",
        {},
        sparkline(values, {
          label: `Budget remaining of ${s.name} over its period (${s.period.label})`,
          testid: "trend",
          max: 1,
          min: 0,
          cls: `status-${budgetClass(s.budget_remaining)}`,
        }),
      );
    }
    return h(
      "tr",
      { dataset: { testid: "slo-row", slo: s.name } },
      h("td", {}, statusBadge(s.status)),
      h("th", { scope: "row", class: "name" }, sloLink(s.name, { dataset: { testid: "slo-link" } })),
      figure("td", "journey", s.journey, s.journey),
      figure("td", "objective", s.objective, fmt.objective(s.objective), { class: "num" }),
      figure("td", "period", s.period.label, s.period.label),
      figure("td", "sli", s.sli_ratio, fmt.sli(s.sli_ratio), { class: "num" }),
      h(
        "td",
        { class: "num budget" },
        figure("span", "budget-remaining", s.budget_remaining, fmt.ratio(s.budget_remaining)),
        bar(s.budget_remaining, `status-${budgetClass(s.budget_remaining)}`),
      ),
      figure("td", "budget-consumed", s.budget_consumed, fmt.ratio(s.budget_consumed), { class: "num" }),
      trendCell,
      h(
        "td",
        { class: "num" },
        figure("span", "events", s.period.events, fmt.count(s.period.events)),
        " (",
        figure("span", "bad-events", s.period.bad_events, fmt.count(s.period.bad_events)),
        ")",
      ),
      figure("td", "exhaustion", s.exhaustion_seconds, fmt.exhaustion(s.exhaustion_seconds), { class: "num" }),
    );
  });
  const table = h(
    "table",
    { class: "slos", dataset: { testid: "slo-table" } },
    h("caption", {}, "Every SLO over its own period. Budget lasts: until the error budget runs out at the current burn rate."),
    h("thead", {}, head),
    h("tbody", {}, rows),
  );
  return [
    h("h1", {}, "Service level objectives"),
    summary,
    slos.length === 0 ? h("p", {}, "No SLO is configured.") : h("div", { class: "scroll" }, table),
  ];
}

// ---------------------------------------------------------------------------------------------
// On-call: firing alerts, their traces and contributors; silences.

function matcherFor(name, value) {
  return `${name} = "${String(value).replace(/"/g, '\\"')}"`;
}

function silenceForm(alert, onDone) {
  const labels = Object.entries(alert.labels);
  const id = alert.fingerprint;
  const matchers = h("textarea", { id: `m-${id}`, name: "matchers", rows: labels.length, required: true, spellcheck: "false" });
  matchers.value = labels.map(([k, v]) => matcherFor(k, v)).join("\n");
  const duration = h("input", { id: `d-${id}`, name: "duration", value: "2h", required: true, size: 8 });
  const author = h("input", { id: `a-${id}`, name: "created_by", required: true, autocomplete: "name" });
  author.value = localStorage.getItem(AUTHOR_KEY) ?? "";
  const comment = h("textarea", { id: `c-${id}`, name: "comment", rows: 2, required: true });
  const message = h("p", { class: "form-message", role: "status", dataset: { testid: "silence-message" } });
  const form = h(
    "form",
    { class: "silence-form", dataset: { testid: "silence-form", fingerprint: id } },
    h("h4", {}, "Silence this alert"),
    h("label", { for: `m-${id}` }, "Matchers, one per line; a silence mutes alerts that match all of them"),
    matchers,
    h("div", { class: "row" },
      h("span", {}, h("label", { for: `d-${id}` }, "Duration"), duration, h("span", { class: "hint" }, "e.g. 30m, 2h, 1d")),
      h("span", {}, h("label", { for: `a-${id}` }, "Author"), author),
    ),
    h("label", { for: `c-${id}` }, "Comment: why"),
    comment,
    h("div", { class: "actions" },
      h("button", { type: "submit", dataset: { testid: "silence-submit" } }, "Create silence"),
      h("button", { type: "button", class: "quiet", on: { click: () => onDone(false) } }, "Cancel"),
    ),
    message,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = {
      matchers: matchers.value.split("\n").map((l) => l.trim()).filter((l) => l !== ""),
      duration: duration.value.trim(),
      created_by: author.value.trim(),
      comment: comment.value.trim(),
    };
    localStorage.setItem(AUTHOR_KEY, body.created_by);
    message.className = "form-message";
    message.textContent = "Creating…";
    try {
      const created = await api("/api/v1/silences", { method: "POST", body });
      message.textContent = `Silence ${created.id} created.`;
      onDone(true);
    } catch (err) {
      message.className = "form-message error";
      message.textContent =
        err.status === 401 ? "This server needs an API token: enter it above, then create the silence again." : err.message;
    }
  });
  return form;
}

// Why a firing alert's notifications are held back, from the API's `muted`: the silences'
// ids, or the alert that inhibits it (named by SLO and severity when it is in the list).
function mutedBadge(muted, byFingerprint) {
  if (!muted) return null;
  let text;
  if (muted.by === "silence") {
    text = `Silenced (id ${muted.silences.join(", ")})`;
  } else if (muted.by === "inhibition") {
    const source = byFingerprint.get(muted.source);
    text = `Inhibited by ${source ? `${source.detail.slo} ${source.detail.severity}` : muted.source}`;
  } else {
    text = `Muted (${muted.by})`;
  }
  return h(
    "span",
    {
      class: `badge mute mute-${muted.by}`,
      title: "Notifications of this alert are held back; it still fires.",
      dataset: { testid: "alert-muted", value: JSON.stringify(muted) },
    },
    text,
  );
}

function alertCard(a, byFingerprint) {
  const d = a.detail;
  const long = d.long_window_seconds;
  const short = d.short_window_seconds;
  const since = Date.parse(a.starts_at);
  const slot = h("div", { class: "silence-slot" });
  const button = h(
    "button",
    {
      type: "button",
      dataset: { testid: "silence-button" },
      "aria-expanded": "false",
      on: {
        click: () => {
          if (slot.firstChild) return;
          button.setAttribute("aria-expanded", "true");
          const form = silenceForm(a, (created) => {
            slot.replaceChildren();
            button.setAttribute("aria-expanded", "false");
            if (created) render();
          });
          slot.replaceChildren(form);
          form.querySelector("[name=created_by]").focus();
        },
      },
    },
    "Silence…",
  );

  const exemplars = d.exemplars.length
    ? h(
        "table",
        { class: "exemplars" },
        h("caption", {}, "Exemplar traces, worst first"),
        h("thead", {}, h("tr", {}, ["Trace", "Latency", "", "Started (UTC)"].map((t) => h("th", { scope: "col" }, t)))),
        h(
          "tbody",
          {},
          d.exemplars.map((x) =>
            h(
              "tr",
              { dataset: { testid: "exemplar", value: x.trace_id } },
              h(
                "td",
                {},
                x.url
                  ? h("a", { href: x.url, target: "_blank", rel: "noopener noreferrer" }, h("code", {}, x.trace_id))
                  : h("code", {}, x.trace_id),
              ),
              figure("td", "exemplar-latency", x.latency_seconds, fmt.latency(x.latency_seconds), { class: "num" }),
              h("td", {}, x.error ? h("span", { class: "tag" }, "error") : null),
              figure("td", "exemplar-at", x.at, fmt.instant(x.at).slice(11, 19), { class: "muted" }),
            ),
          ),
        ),
      )
    : h("p", { class: "muted" }, "No exemplar trace yet.");

  const contributors = d.contributors.length
    ? h(
        "table",
        { class: "contributors" },
        h("caption", {}, "Top contributors to the bad events"),
        h("thead", {}, h("tr", {}, ["Service", "Operation", "Bad events", "Share", "Why"].map((t) => h("th", { scope: "col" }, t)))),
        h(
          "tbody",
          {},
          d.contributors.map((c) =>
            h(
              "tr",
              { dataset: { testid: "contributor", service: c.service, operation: c.operation } },
              h("td", {}, c.service),
              h("td", {}, c.operation),
              figure("td", "contributor-bad-events", c.bad_events, fmt.count(c.bad_events), { class: "num" }),
              h("td", { class: "num share" }, figure("span", "share", c.share, fmt.ratio(c.share)), bar(c.share, "status-critical")),
              h("td", {}, c.reason),
            ),
          ),
        ),
      )
    : h("p", { class: "muted" }, "No contributor known yet (blame arrives when the failed traces close).");

  const labels = h(
    "ul",
    { class: "labels", "aria-label": "Labels" },
    Object.entries(a.labels).map(([k, v]) => h("li", {}, h("span", { class: "k" }, k), "=", h("span", { class: "v" }, v))),
  );

  return h(
    "article",
    { class: `alert severity-${d.severity}${a.muted ? " is-muted" : ""}`, dataset: { testid: "alert", fingerprint: a.fingerprint, slo: d.slo } },
    h("header", {},
      severityBadge(d.severity),
      mutedBadge(a.muted, byFingerprint),
      h("h3", {}, d.slo, h("span", { class: "muted alertname" }, ` ${a.labels.alertname ?? ""}`)),
      h("span", { class: "muted" }, "firing since ", figure("time", "alert-since", a.starts_at, fmt.instant(a.starts_at), { datetime: a.starts_at }),
        ` (${fmt.duration(Math.max(0, (Date.now() - since) / 1000))})`),
      button,
    ),
    a.annotations?.summary ? h("p", {}, a.annotations.summary) : null,
    h(
      "dl",
      { class: "facts" },
      h("div", {}, h("dt", {}, "SLO"), h("dd", {}, sloLink(d.slo), h("span", { class: "muted plain" }, ` ${d.journey}, objective ${fmt.objective(d.objective)}`))),
      h("div", {}, h("dt", {}, "Rule"), h("dd", {}, `burn over ${fmt.window(long)} and ${fmt.window(short)} above `, figure("span", "alert-factor", d.factor, fmt.factor(d.factor)))),
      h("div", {}, h("dt", {}, `Burn ${fmt.window(long)}`), figure("dd", "burn-long", d.burn_long, fmt.burn(d.burn_long), { class: "num" })),
      h("div", {}, h("dt", {}, `Burn ${fmt.window(short)}`), figure("dd", "burn-short", d.burn_short, fmt.burn(d.burn_short), { class: "num" })),
      h("div", {}, h("dt", {}, "Budget remaining"), figure("dd", "alert-budget-remaining", d.budget_remaining, fmt.ratio(d.budget_remaining), { class: "num" })),
      h("div", {}, h("dt", {}, "Budget lasts"), figure("dd", "alert-exhaustion", d.time_to_exhaustion_seconds, fmt.exhaustion(d.time_to_exhaustion_seconds), { class: "num" })),
    ),
    labels,
    h("div", { class: "two" }, h("section", {}, exemplars), h("section", {}, contributors)),
    slot,
  );
}

function silencesTable(silences) {
  const live = silences.filter((s) => s.state !== "expired");
  const expired = silences.filter((s) => s.state === "expired");
  const row = (s) =>
    h(
      "tr",
      { dataset: { testid: "silence-row", id: s.id, state: s.state } },
      h("td", {}, h("span", { class: `badge silence-${s.state}` }, s.state)),
      h("td", {}, h("ul", { class: "matchers" }, s.matchers.map((m) => h("li", {}, h("code", {}, m))))),
      figure("td", "silence-starts", s.starts_at, fmt.instant(s.starts_at)),
      figure("td", "silence-ends", s.ends_at, fmt.instant(s.ends_at)),
      figure("td", "silence-author", s.created_by, s.created_by),
      figure("td", "silence-comment", s.comment, s.comment),
      h(
        "td",
        {},
        s.state === "expired"
          ? null
          : h(
              "button",
              {
                type: "button",
                class: "quiet",
                dataset: { testid: "expire-button" },
                on: {
                  click: async (e) => {
                    e.target.disabled = true;
                    try {
                      await api(`/api/v1/silences/${encodeURIComponent(s.id)}`, { method: "DELETE" });
                    } catch (err) {
                      e.target.disabled = false;
                      e.target.after(h("span", { class: "error", role: "alert" }, ` ${err.message}`));
                      return;
                    }
                    render();
                  },
                },
              },
              "Expire",
            ),
      ),
    );
  const table = (list, caption) =>
    h(
      "table",
      { class: "silences", dataset: { testid: "silence-table" } },
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, ["State", "Matchers", "Starts", "Ends", "By", "Comment", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, list.map(row)),
    );
  return [
    live.length ? table(live, "Active and pending silences") : h("p", { class: "muted" }, "No active or pending silence."),
    expired.length ? h("details", {}, h("summary", {}, `Expired (${expired.length})`), table(expired, "Expired silences")) : null,
  ];
}

const SEVERITY_ORDER = { page: 0, ticket: 1 };

/** Like Promise.all, but a failure is reported in the order the requests are listed, not in the
 * order they happen to fail, so a view names the same failed request every time. */
async function allInOrder(promises) {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((r) => r.status === "rejected");
  if (failed) {
    throw failed.reason;
  }
  return settled.map((r) => r.value);
}

// The "Trace health" panel: the tracing pipeline itself (GET /api/v1/health/traces).
function traceHealthPanel(th) {
  const optRatio = (x) => (x === null ? fmt.NO_DATA : fmt.ratio(x));
  const table = (testid, caption, heads, rows) =>
    h(
      "table",
      { class: "health", dataset: { testid } },
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows),
    );
  const journeys = th.journeys.map((j) =>
    h(
      "tr",
      { dataset: { testid: "health-journey", journey: j.journey } },
      h("th", { scope: "row" }, j.journey),
      figure("td", "health-traces", j.traces, fmt.count(j.traces)),
      figure("td", "health-fragmented", j.fragmented, fmt.count(j.fragmented)),
      figure("td", "health-fragmentation", j.fragmentation_ratio, optRatio(j.fragmentation_ratio)),
      figure("td", "health-skewed", j.skewed, fmt.count(j.skewed)),
    ),
  );
  const services = th.services.map((s) => {
    const flagged = s.attributes.filter((a) => a.over_limit);
    return h(
      "tr",
      { dataset: { testid: "health-service", service: s.service }, class: s.volume.drop ? "drop" : null },
      h("th", { scope: "row" }, s.service),
      figure("td", "health-spans", s.spans, fmt.count(s.spans)),
      figure("td", "health-volume-newest", s.volume.newest, fmt.count(s.volume.newest)),
      figure("td", "health-volume-baseline", s.volume.baseline, fmt.perBucket(s.volume.baseline)),
      h(
        "td",
        {},
        h(
          "span",
          { class: `badge ${s.volume.drop ? "status-critical" : "status-ok"}`, dataset: { testid: "health-volume-drop", value: String(s.volume.drop) } },
          s.volume.drop ? "✖ Drop" : "✓ Steady",
        ),
      ),
      figure("td", "health-lag-p50", s.export_lag?.p50_seconds ?? null, fmt.latency(s.export_lag?.p50_seconds ?? null)),
      figure("td", "health-lag-p99", s.export_lag?.p99_seconds ?? null, fmt.latency(s.export_lag?.p99_seconds ?? null)),
      figure("td", "health-service-fragmentation", s.fragmentation_ratio, optRatio(s.fragmentation_ratio)),
      h(
        "td",
        {},
        flagged.length
          ? h(
              "ul",
              { class: "keys" },
              flagged.map((a) =>
                h("li", { dataset: { testid: "health-key", key: a.key } }, h("code", {}, a.key), " ", figure("span", "health-key-estimate", a.estimate, fmt.count(a.estimate))),
              ),
            )
          : h("span", { class: "muted" }, "none"),
      ),
    );
  });
  const lost = th.lost_context.map((b) =>
    h(
      "tr",
      { dataset: { testid: "health-lost", from: b.parent_service, to: b.child_service } },
      h("td", {}, b.parent_service, " → ", b.child_service),
      figure("td", "health-lost-traces", b.traces, fmt.count(b.traces)),
    ),
  );
  const skew = th.clock_skew.map((k) =>
    h(
      "tr",
      { dataset: { testid: "health-skew", from: k.parent_service, to: k.child_service, kind: k.kind } },
      h("td", {}, k.parent_service, " → ", k.child_service),
      h("td", {}, k.kind.replaceAll("_", " ")),
      figure("td", "health-skew-spans", k.spans, fmt.count(k.spans)),
    ),
  );
  return h(
    "section",
    { "aria-labelledby": "health-h", dataset: { testid: "trace-health" } },
    h("h2", { id: "health-h" }, "Trace health"),
    h(
      "div",
      { class: "tiles" },
      tile("Closed traces", figure("span", "health-total-traces", th.traces, fmt.count(th.traces), { class: "big" })),
      tile("Fragmented", figure("span", "health-total-fragmentation", th.fragmentation_ratio, optRatio(th.fragmentation_ratio), { class: "big" })),
      tile("Skewed traces", figure("span", "health-total-skewed", th.skewed, fmt.count(th.skewed), { class: "big" })),
      tile("Volume drops", figure("span", "health-drops", th.services.filter((s) => s.volume.drop).length, fmt.count(th.services.filter((s) => s.volume.drop).length), { class: "big" })),
    ),
    table("health-journeys", "Per journey (since start)", ["Journey", "Traces", "Fragmented", "Share", "Skewed"], journeys),
    table(
      "health-services",
      "Per service",
      ["Service", "Spans", "Last bucket", "Baseline", "Volume", "Lag P50", "Lag P99", "Fragmented", "High-cardinality keys"],
      services,
    ),
    lost.length ? table("health-lost-table", "Where the trace context was lost", ["Caller → callee", "Traces"], lost) : h("p", { class: "calm" }, "✓ No context lost."),
    skew.length ? table("health-skew-table", "Clock skew", ["Parent → child", "Kind", "Spans"], skew) : h("p", { class: "calm" }, "✓ No clock skew."),
  );
}

async function oncallPage() {
  document.title = "On-call — tracebudget";
  const [{ alerts }, { silences }, health] = await allInOrder([
    api("/api/v1/alerts"),
    api("/api/v1/silences"),
    api("/api/v1/health/traces"),
  ]);
  const firing = alerts
    .filter((a) => a.status === "firing")
    .sort(
      (a, b) =>
        (SEVERITY_ORDER[a.detail.severity] ?? 9) - (SEVERITY_ORDER[b.detail.severity] ?? 9) ||
        Date.parse(a.starts_at) - Date.parse(b.starts_at),
    );
  const byFingerprint = new Map(alerts.map((a) => [a.fingerprint, a]));
  return [
    h("h1", {}, "On-call"),
    h(
      "section",
      { "aria-labelledby": "firing-h" },
      h("h2", { id: "firing-h" }, "Firing alerts ", figure("span", "firing-count", firing.length, `(${firing.length})`, { class: "muted" })),
      firing.length ? firing.map((a) => alertCard(a, byFingerprint)) : h("p", { class: "calm", dataset: { testid: "no-alerts" } }, "✓ No alert is firing."),
    ),
    h("section", { "aria-labelledby": "silences-h" }, h("h2", { id: "silences-h" }, "Silences"), silencesTable(silences)),
    traceHealthPanel(health),
  ];
}

// ---------------------------------------------------------------------------------------------
// One SLO.

// Ranges offered, with a step that gives 60–170 points.
const RANGES = [
  ["1h", "1m"],
  ["6h", "5m"],
  ["24h", "15m"],
  ["7d", "1h"],
];

function tile(label, node) {
  return h("div", { class: "tile" }, h("span", { class: "label" }, label), node);
}

async function sloPage(route) {
  const name = route.slo;
  document.title = `${name} — tracebudget`;
  const range = RANGES.find(([r]) => r === route.params.get("range")) ?? RANGES[1];
  const enc = encodeURIComponent(name);
  const [s, series] = await allInOrder([
    api(`/api/v1/slos/${enc}`),
    api(`/api/v1/slos/${enc}/series?range=${range[0]}&step=${range[1]}`),
  ]);
  const from = Date.parse(series.from);
  const to = Date.parse(series.to);
  const at = (p) => (typeof p.t === "number" ? p.t * 1000 : Date.parse(p.t));
  const xFormat = fmt.axisTime;

  const tiles = h(
    "div",
    { class: "tiles" },
    tile("SLI", figure("span", "sli", s.sli_ratio, fmt.sli(s.sli_ratio), { class: "big" })),
    tile("Budget remaining", figure("span", "budget-remaining", s.budget_remaining, fmt.ratio(s.budget_remaining), { class: "big" })),
    tile("Budget consumed", figure("span", "budget-consumed", s.budget_consumed, fmt.ratio(s.budget_consumed), { class: "big" })),
    tile("Burn rate now", figure("span", "current-burn", s.current_burn_rate, fmt.burn(s.current_burn_rate), { class: "big" })),
    tile("Budget lasts", figure("span", "exhaustion", s.exhaustion_seconds, fmt.exhaustion(s.exhaustion_seconds), { class: "big" })),
    tile(
      "Events (bad)",
      h("span", { class: "big" }, figure("span", "events", s.period.events, fmt.count(s.period.events)), " (", figure("span", "bad-events", s.period.bad_events, fmt.count(s.period.bad_events)), ")"),
    ),
    tile(
      "Latency P50 / P95 / P99",
      h(
        "span",
        { class: "big small" },
        figure("span", "p50", s.latency?.p50_seconds ?? null, fmt.latency(s.latency?.p50_seconds ?? null)),
        " / ",
        figure("span", "p95", s.latency?.p95_seconds ?? null, fmt.latency(s.latency?.p95_seconds ?? null)),
        " / ",
        figure("span", "p99", s.latency?.p99_seconds ?? null, fmt.latency(s.latency?.p99_seconds ?? null)),
      ),
    ),
  );

  const rules = h(
    "table",
    { class: "rules", dataset: { testid: "rule-table" } },
    h("caption", {}, `Policy ${s.policy}: an alert fires when both windows burn above the factor`),
    h("thead", {}, h("tr", {}, ["Severity", "Long window", "Short window", "Factor", "Burn (long)", "Burn (short)", "Events long (bad)", "Firing"].map((t) => h("th", { scope: "col" }, t)))),
    h(
      "tbody",
      {},
      s.burn_rates.map((r) =>
        h(
          "tr",
          { dataset: { testid: "rule-row", severity: r.severity, long: r.long_window_seconds, short: r.short_window_seconds } },
          h("td", {}, severityBadge(r.severity)),
          figure("td", "long-window", r.long_window_seconds, r.long_window),
          figure("td", "short-window", r.short_window_seconds, r.short_window),
          figure("td", "factor", r.factor, fmt.factor(r.factor), { class: "num" }),
          figure("td", "long-burn", r.long_burn_rate, fmt.burn(r.long_burn_rate), { class: `num ${r.long_burn_rate > r.factor ? "over" : ""}` }),
          figure("td", "short-burn", r.short_burn_rate, fmt.burn(r.short_burn_rate), { class: `num ${r.short_burn_rate > r.factor ? "over" : ""}` }),
          h("td", { class: "num" }, fmt.count(r.long_events ?? 0), " (", fmt.count(r.long_bad_events ?? 0), ")"),
          h("td", {}, figure("span", "firing", r.firing, r.firing ? "Firing" : "No", { class: r.firing ? "badge status-critical" : "muted" })),
        ),
      ),
    ),
  );

  const burnCharts = s.burn_rates.map((r, i) => {
    // The series keys its burn rates by these window labels.
    const long = r.long_window;
    const short = r.short_window;
    const pick = (key) => series.points.map((p) => [at(p), p.burn_rates?.[key] ?? null]);
    return lineChart(
      [
        { label: `${long} window`, points: pick(long) },
        { label: `${short} window`, points: pick(short) },
      ],
      [{ label: `${r.severity} above ${fmt.factor(r.factor)}`, value: r.factor }],
      {
        title: `Burn rate, ${r.severity} rule ${long} / ${short}`,
        testid: `chart-burn-${i}`,
        yFormat: (v) => `${+v.toFixed(2)}×`,
        yMin: 0,
        xFormat,
        from,
        to,
      },
    );
  });

  const budget = lineChart(
    [{ label: "budget remaining", points: series.points.map((p) => [at(p), p.budget_remaining]) }],
    [{ label: "exhausted", value: 0 }],
    { title: "Error budget remaining (burndown)", testid: "chart-budget", yFormat: (v) => `${+(v * 100).toFixed(1)} %`, xFormat, from, to },
  );

  const latency = lineChart(
    [
      { label: "P50", points: series.points.map((p) => [at(p), p.p50_seconds]) },
      { label: "P95", points: series.points.map((p) => [at(p), p.p95_seconds]) },
      { label: "P99", points: series.points.map((p) => [at(p), p.p99_seconds]) },
    ],
    [],
    { title: "Root span latency percentiles", testid: "chart-latency", yFormat: (v) => `${+(v * 1000).toFixed(1)} ms`, yMin: 0, xFormat, from, to },
  );

  const ranges = h(
    "nav",
    { class: "ranges", "aria-label": "Time range" },
    RANGES.map(([r]) =>
      h("a", { href: `#/slo/${enc}?range=${r}`, "aria-current": r === range[0] ? "page" : null, dataset: { testid: `range-${r}` } }, r),
    ),
  );

  return [
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Executive"), " › ", name),
    h("h1", {}, figure("span", "slo-title", s.name, s.name), statusBadge(s.status)),
    h(
      "p",
      { class: "muted" },
      `${s.sli} SLI of journey `,
      figure("span", "journey", s.journey, s.journey),
      `, objective `,
      figure("span", "objective", s.objective, fmt.objective(s.objective)),
      ` over ${s.period.label}`,
    ),
    tiles,
    h("h2", {}, "Burn rate per policy rule, now"),
    h("div", { class: "scroll" }, rules),
    h("div", { class: "chart-head" }, h("h2", {}, `Over the last ${range[0]}`), ranges),
    h("div", { class: "charts" }, burnCharts, budget, latency),
  ];
}

// ---------------------------------------------------------------------------------------------
// Start. It comes last in the module: the first render runs the view named by the link the page
// was opened with, and that view's constants (RANGES, SEVERITY_ORDER, …) must be initialised by
// then (a `const` read before its line has run throws).

window.addEventListener("hashchange", () => {
  render().then(() => document.getElementById("view").focus({ preventScroll: true }));
});
document.getElementById("refresh").addEventListener("click", () => render());
if (REFRESH_MS > 0) setInterval(refreshIfIdle, REFRESH_MS);
render();
