// The Hourglass dashboard: plain JavaScript, no framework, no build, no requests anywhere but this server's API.
// It signs in with a token (kept in sessionStorage), reads everything through /api/v1 with that token — so it sees
// exactly what its user may see — and draws its charts as inline SVG. docs/dashboard.md.
(function () {
  "use strict";

  const TOKEN_KEY = "hourglass-token";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const HOUR = 3600 * 1000;
  const DAY = 24 * HOUR;
  const RUN_STATUSES = ["completed", "partial", "failed", "abandoned", "skipped", "running"];
  const SEVERITIES = ["info", "warning", "error", "critical"];
  const ORDER_STATUSES = ["pending", "processing", "validated", "needs_approval", "exception", "cancelled"];
  const TIMELINE_HOURS = 48;
  const VIOLATION_DAYS = 14;
  const INBOUND_DAYS = 14;
  const THROUGHPUT_DAYS = 7;
  const COMPLIANCE_DAYS = 7;

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    tenants: [],
    tenant: null,
    loadSeq: 0,
    timer: null,
  };

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------------------------------ DOM helpers

  // An element with attributes ("class", "text", "data-*", "aria-*", on* handlers) and children (nodes or text).
  function el(tag, attrs, ...children) {
    return build(document.createElement(tag), attrs, children);
  }

  function svg(tag, attrs, ...children) {
    return build(document.createElementNS(SVG_NS, tag), attrs, children);
  }

  function build(node, attrs, children) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) {
        continue;
      }
      if (name === "text") {
        node.textContent = String(value);
      } else if (name.startsWith("on") && typeof value === "function") {
        node.addEventListener(name.slice(2), value);
      } else {
        node.setAttribute(name, value === true ? "" : String(value));
      }
    }
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) {
        continue;
      }
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function table(caption, headers, rows, attrs) {
    return el("table", attrs,
      el("caption", { class: "visually-hidden", text: caption }),
      el("thead", null, el("tr", null, headers.map((h) =>
        el("th", { scope: "col", class: typeof h === "object" ? h.class : null, text: typeof h === "object" ? h.text : h })))),
      el("tbody", null, rows));
  }

  const shortId = (id) => (id ? String(id).slice(0, 8) : "–");
  const number = (n, digits = 0) => new Intl.NumberFormat("en", { maximumFractionDigits: digits }).format(n);
  const plural = (n, one, many) => `${number(n)} ${n === 1 ? one : many || one + "s"}`;
  const label = (text) => String(text || "").replace(/_/g, " ");

  // ------------------------------------------------------------------------------------------ Time, in the tenant's zone

  function zone() {
    return (state.tenant && state.tenant.timezone) || "UTC";
  }

  function formatter(options) {
    try {
      return new Intl.DateTimeFormat("en-GB", { timeZone: zone(), ...options });
    } catch (e) {
      return new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", ...options });
    }
  }

  function fmt(value, options) {
    if (value === null || value === undefined) {
      return "–";
    }
    const date = value instanceof Date ? value : new Date(value);
    return Number.isNaN(date.getTime()) ? "–" : formatter(options).format(date);
  }

  const fmtDateTime = (v) => fmt(v, { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
  const fmtHour = (v) => fmt(v, { hour: "2-digit", minute: "2-digit" });

  // The calendar day (YYYY-MM-DD) of an instant in the tenant's zone.
  function localDay(value) {
    const parts = {};
    for (const part of formatter({ year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(new Date(value))) {
      parts[part.type] = part.value;
    }
    return `${parts.year}-${parts.month}-${parts.day}`;
  }

  function addDays(day, days) {
    const [y, m, d] = day.split("-").map(Number);
    return new Date(Date.UTC(y, m - 1, d) + days * DAY).toISOString().slice(0, 10);
  }

  function dayLabel(day) {
    const [y, m, d] = day.split("-").map(Number);
    return new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", day: "numeric", month: "short" }).format(new Date(Date.UTC(y, m - 1, d)));
  }

  // The last `count` calendar days in the tenant's zone, oldest first, ending today.
  function lastDays(count) {
    const today = localDay(Date.now());
    return Array.from({ length: count }, (_, i) => addDays(today, i - count + 1));
  }

  // ------------------------------------------------------------------------------------------ The API

  class ApiError extends Error {
    constructor(status, problem, fallback) {
      const title = (problem && problem.title) || (status ? `HTTP ${status}` : "Request failed");
      let detail = (problem && problem.detail) || "";
      if (problem && problem.errors && typeof problem.errors === "object") {
        const fields = Object.entries(problem.errors).map(([field, problems]) => `${field}: ${[].concat(problems).join(", ")}`);
        detail = [detail, ...fields].filter(Boolean).join("; ");
      }
      if (!detail && fallback && !problem) {
        detail = String(fallback).slice(0, 300);
      }
      super(detail ? `${title}: ${detail}` : title);
      this.status = status;
      this.title = title;
      this.detail = detail;
    }
  }

  async function api(path, options = {}) {
    const headers = { Accept: "application/json, application/problem+json", Authorization: `Bearer ${state.token}` };
    let body;
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    let response;
    try {
      response = await fetch(`/api/v1${path}`, { method: options.method || "GET", headers, body, cache: "no-store", credentials: "omit" });
    } catch (e) {
      throw new ApiError(0, { title: "Network error", detail: `the server did not answer (${e.message})` });
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = null;
      }
    }
    if (!response.ok) {
      const error = new ApiError(response.status, data, text);
      if (response.status === 401) {
        signOut(error);
      }
      throw error;
    }
    return data;
  }

  // Every item of a paged list, following next_cursor, newest first; stops at the first item created before
  // `since`, or after `maxPages` pages (then `truncated` is true).
  async function collect(path, { limit = 200, maxPages = 5, since = null } = {}) {
    const items = [];
    let cursor = null;
    for (let page = 0; page < maxPages; page++) {
      const separator = path.includes("?") ? "&" : "?";
      const data = await api(`${path}${separator}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      for (const item of data.items) {
        if (since && new Date(item.created_at) < since) {
          return { items, truncated: false };
        }
        items.push(item);
      }
      cursor = data.next_cursor;
      if (!cursor) {
        return { items, truncated: false };
      }
    }
    return { items, truncated: true };
  }

  const tenantPath = (path) => `/tenants/${encodeURIComponent(state.tenant.id)}${path}`;

  // Whether the caller's role in the selected tenant has a capability (GET /tenants lists them): controls a role may
  // not use are not offered; the API and the database refuse them anyway.
  const can = (capability) => Array.isArray(state.tenant && state.tenant.capabilities) && state.tenant.capabilities.includes(capability);

  function notAllowed(capability) {
    const role = (state.tenant && state.tenant.role) || "your role";
    return el("span", { class: "hint", "data-testid": "not-allowed", text: `Needs '${capability}' (${role} lacks it)` });
  }

  // ------------------------------------------------------------------------------------------ Messages

  function errorBox(error, context) {
    const problem = error instanceof ApiError ? error : new ApiError(0, { title: "Error", detail: String(error && error.message || error) });
    return el("div", { class: "error", "data-testid": "error", "data-status": problem.status || "" },
      context ? el("span", { class: "hint", text: `${context} — ` }) : null,
      el("strong", { text: problem.title }),
      problem.detail ? el("span", { "data-testid": "error-detail", text: problem.detail }) : null);
  }

  function showError(error, context) {
    $("errors").replaceChildren(errorBox(error, context));
  }

  function clearErrors() {
    $("errors").replaceChildren();
  }

  function panelMessages(panel) {
    let box = panel.querySelector(":scope > .panel-messages");
    if (!box) {
      box = el("div", { class: "panel-messages", "aria-live": "polite" });
      panel.querySelector("h2").after(box);
    }
    return box;
  }

  function showPanelError(panel, error) {
    const box = errorBox(error);
    box.classList.add("panel-error");
    box.setAttribute("data-testid", "panel-error");
    box.setAttribute("role", "alert");
    panelMessages(panel).append(box);
  }

  function showPanelNotice(panel, text) {
    panelMessages(panel).append(el("div", { class: "notice", role: "status", "data-testid": "panel-notice", text }));
  }

  function clearPanelErrors(panel) {
    panelMessages(panel).querySelectorAll(".panel-error").forEach((node) => node.remove());
  }

  function clearPanelMessages(panel) {
    panelMessages(panel).replaceChildren();
  }

  // ------------------------------------------------------------------------------------------ Sign-in and tenants

  function tokenClaims(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const binary = atob(part.padEnd(Math.ceil(part.length / 4) * 4, "="));
      return JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
    } catch (e) {
      return {};
    }
  }

  function whoText(token) {
    // For display only: the server verifies the token on every request.
    const claims = tokenClaims(token);
    if (claims.role === "service_role") {
      return "Service role";
    }
    return claims.email || (claims.sub ? `User ${shortId(claims.sub)}` : "Signed in");
  }

  function showSignin() {
    $("signin").hidden = false;
    $("session").hidden = true;
    $("tenant-bar").hidden = true;
    $("tenant-view").hidden = true;
    $("no-tenants").hidden = true;
    $("token").value = "";
    $("token").focus();
  }

  function signOut(error) {
    state.token = null;
    state.tenant = null;
    state.loadSeq++;
    sessionStorage.removeItem(TOKEN_KEY);
    setAutoRefresh(false);
    showSignin();
    if (error) {
      showError(error, "Signed out");
    } else {
      clearErrors();
    }
  }

  async function start() {
    if (!state.token) {
      showSignin();
      return;
    }
    $("signin").hidden = true;
    $("session").hidden = false;
    $("who").textContent = whoText(state.token);
    $("who").title = tokenClaims(state.token).sub || "";
    let tenants;
    try {
      tenants = await api("/tenants");
    } catch (e) {
      if (e.status !== 401) {
        showError(e, "Loading your tenants");
      }
      return;
    }
    clearErrors();
    state.tenants = Array.isArray(tenants) ? tenants : [];
    const picker = $("tenant-picker");
    picker.replaceChildren(...state.tenants.map((t) => el("option", { value: t.id, text: t.name })));
    if (state.tenants.length === 0) {
      $("tenant-bar").hidden = true;
      $("tenant-view").hidden = true;
      $("no-tenants").hidden = false;
      return;
    }
    $("no-tenants").hidden = true;
    $("tenant-bar").hidden = false;
    const wanted = new URLSearchParams(location.hash.slice(1)).get("tenant");
    const chosen = state.tenants.find((t) => t.id === wanted) || state.tenants[0];
    picker.value = chosen.id;
    selectTenant(chosen.id);
  }

  function selectTenant(id) {
    state.tenant = state.tenants.find((t) => t.id === id) || null;
    if (!state.tenant) {
      return;
    }
    history.replaceState(null, "", `#tenant=${encodeURIComponent(id)}`);
    document.title = `Hourglass — ${state.tenant.name}`;
    for (const panel of document.querySelectorAll("#tenant-view .panel")) {
      clearPanelMessages(panel);
    }
    refresh();
  }

  function setAutoRefresh(on) {
    $("auto-refresh").checked = on;
    if (state.timer) {
      clearInterval(state.timer);
      state.timer = null;
    }
    if (on) {
      state.timer = setInterval(() => {
        if (!$("note-dialog").open) {
          refresh();
        }
      }, 60 * 1000);
    }
  }

  // ------------------------------------------------------------------------------------------ Loading a tenant

  // Reads every panel's data in parallel; a panel that fails shows its own error and the others still draw.
  async function refresh() {
    if (!state.tenant) {
      return;
    }
    const seq = ++state.loadSeq;
    const view = $("tenant-view");
    view.hidden = false;
    view.setAttribute("data-state", "loading");
    view.setAttribute("aria-busy", "true");
    view.setAttribute("data-tenant-id", state.tenant.id);

    const now = Date.now();
    const shared = {
      now,
      reflections: once(() => collect(tenantPath("/reflections"), { limit: 200, maxPages: 2, since: new Date(now - COMPLIANCE_DAYS * DAY) })),
      exceptions: once(async () => {
        const [open, review] = await Promise.all([
          collect(tenantPath("/orders/exceptions?status=open"), { limit: 200, maxPages: 5 }),
          collect(tenantPath("/orders/exceptions?status=in_review"), { limit: 200, maxPages: 5 }),
        ]);
        return { open: open.items, review: review.items, truncated: open.truncated || review.truncated };
      }),
    };

    await Promise.all([
      panel("panel-timeline", seq, () => loadTimeline(shared)),
      panel("panel-compliance", seq, () => loadCompliance(shared)),
      panel("panel-violations", seq, () => loadViolations()),
      panel("panel-inbound", seq, () => loadInbound()),
      panel("panel-queue", seq, () => loadQueue()),
      panel("panel-orders", seq, () => loadOrders(shared)),
      panel("panel-reflections", seq, () => loadReflections(shared)),
      panel("panel-approvals", seq, () => loadApprovals()),
      panel("panel-exceptions", seq, () => loadExceptions(shared)),
    ]);
    if (seq !== state.loadSeq) {
      return;
    }
    view.setAttribute("data-state", "loaded");
    view.removeAttribute("aria-busy");
    $("updated-at").textContent = `Updated ${new Date(now).toLocaleTimeString("en-GB")} · times in ${zone()}`;
  }

  function once(load) {
    let promise = null;
    return () => (promise = promise || load());
  }

  // Runs a panel's loader (which returns a function that draws) unless a newer load started meanwhile.
  async function panel(id, seq, load) {
    const node = $(id);
    node.setAttribute("aria-busy", "true");
    node.setAttribute("data-state", "loading");
    try {
      const draw = await load();
      if (seq !== state.loadSeq) {
        return;
      }
      clearPanelErrors(node);
      draw();
      node.setAttribute("data-state", "loaded");
    } catch (e) {
      if (seq !== state.loadSeq) {
        return;
      }
      clearPanelErrors(node);
      showPanelError(node, e);
      node.setAttribute("data-state", "error");
    } finally {
      node.removeAttribute("aria-busy");
    }
  }

  function chartSvg(id, width, height, title, description, ...children) {
    return svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": `${id}-t ${id}-d`, preserveAspectRatio: "xMidYMid meet" },
      svg("title", { id: `${id}-t`, text: title }),
      svg("desc", { id: `${id}-d`, text: description }),
      children);
  }

  function legend(entries) {
    return el("ul", { class: "legend" }, entries.map(([cls, text]) =>
      el("li", null, el("span", { class: `swatch ${cls}`, "aria-hidden": "true" }), text)));
  }

  function niceMax(value) {
    if (value <= 5) {
      return Math.max(1, Math.ceil(value));
    }
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * power >= value) {
        return step * power;
      }
    }
    return 10 * power;
  }

  // Grid values from 0 to max (a niceMax) in round steps, at most five of them.
  function ticks(max) {
    for (let power = 1; power <= max; power *= 10) {
      for (const step of [1, 2, 2.5, 5].map((m) => m * power)) {
        if (Number.isInteger(step) && max % step === 0 && max / step <= 5) {
          return Array.from({ length: max / step + 1 }, (_, i) => i * step);
        }
      }
    }
    return [0, max];
  }

  // ------------------------------------------------------------------------------------------ Cycle timeline

  async function loadTimeline(shared) {
    const since = new Date(shared.now - TIMELINE_HOURS * HOUR);
    const { items, truncated } = await collect(tenantPath("/runs"), { limit: 200, maxPages: 10, since });
    const runs = items.filter((r) => new Date(r.started_at) >= since);
    return () => drawTimeline(runs, truncated, shared.now);
  }

  function drawTimeline(runs, truncated, now) {
    const counts = {};
    for (const run of runs) {
      counts[run.status] = (counts[run.status] || 0) + 1;
    }
    const failed = counts.failed || 0;
    const summary = $("timeline-summary");
    summary.setAttribute("data-total", runs.length);
    summary.setAttribute("data-failed", failed);
    summary.textContent = runs.length === 0
      ? "No cycle ran in the last 48 hours."
      : `${plural(runs.length, "run")} in the last 48 hours: ${RUN_STATUSES.filter((s) => counts[s]).map((s) => `${number(counts[s])} ${s}`).join(", ")}`
        + (truncated ? " (only the newest shown)" : "") + ".";

    const width = 960;
    const height = 130;
    const left = 8;
    const right = 8;
    const top = 16;
    const bottom = 24;
    const plotHeight = height - top - bottom;
    const lastHour = Math.floor(now / HOUR);
    const firstHour = lastHour - TIMELINE_HOURS + 1;
    const column = (width - left - right) / TIMELINE_HOURS;
    const byHour = new Map();
    for (const run of runs) {
      const hour = Math.floor(new Date(run.started_at).getTime() / HOUR);
      if (hour < firstHour || hour > lastHour) {
        continue;
      }
      if (!byHour.has(hour)) {
        byHour.set(hour, []);
      }
      byHour.get(hour).push(run);
    }
    const maxStack = Math.max(1, ...[...byHour.values()].map((list) => list.length));
    const barHeight = Math.min(40, plotHeight / maxStack);

    const shapes = [];
    for (let i = 0; i < TIMELINE_HOURS; i++) {
      const hour = firstHour + i;
      const x = left + i * column;
      if (hour % 6 === 0) {
        shapes.push(svg("line", { class: "grid-line", x1: x, x2: x, y1: top, y2: top + plotHeight }));
        shapes.push(svg("text", { x: x + 2, y: height - 6, text: hour % 24 === 0 ? fmt(hour * HOUR, { weekday: "short", hour: "2-digit", minute: "2-digit" }) : fmtHour(hour * HOUR) }));
      }
      const list = (byHour.get(hour) || []).sort((a, b) => new Date(a.started_at) - new Date(b.started_at));
      list.forEach((run, j) => {
        const status = RUN_STATUSES.includes(run.status) ? run.status : "skipped";
        const parts = [`${fmtDateTime(run.started_at)} · ${run.status} (${label(run.trigger)})`,
          `${run.actions_planned} planned, ${run.actions_taken} taken, ${run.actions_blocked} blocked`];
        if (run.error) {
          parts.push(`error: ${run.error}`);
        }
        shapes.push(svg("rect", {
          class: `run-bar status-${status}`, "data-testid": "run-bar", "data-status": run.status, "data-run-id": run.id,
          x: x + 1, y: top + plotHeight - (j + 1) * barHeight, width: Math.max(column - 2, 1), height: Math.max(barHeight - 1, 1), rx: 1.5,
        }, svg("title", { text: parts.join("\n") })));
      });
      if (list.some((r) => r.status === "failed")) {
        const cx = x + column / 2;
        const y = top + plotHeight - list.length * barHeight - 3;
        shapes.push(svg("path", {
          class: "failed-marker", "data-testid": "failed-marker", d: `M ${cx - 4} ${y - 7} L ${cx + 4} ${y - 7} L ${cx} ${y} Z`,
        }, svg("title", { text: `Failed run at ${fmtHour(hour * HOUR)}` })));
      }
    }
    shapes.push(svg("line", { class: "axis", x1: left, x2: width - right, y1: top + plotHeight, y2: top + plotHeight }));

    $("timeline-chart").replaceChildren(
      chartSvg("timeline", width, height, "Cycle runs in the last 48 hours",
        `One bar per run, in the hour it started, coloured by status. ${summary.textContent}`, shapes),
      legend(RUN_STATUSES.filter((s) => counts[s] || s === "completed" || s === "failed").map((s) => [`status-${s}`, `${s} (${counts[s] || 0})`])));

    const problems = runs.filter((r) => r.status === "failed" || r.status === "partial" || r.status === "abandoned").slice(0, 5);
    $("timeline-failures").replaceChildren(problems.length === 0 ? "" : table("Latest runs that failed or were cut short",
      ["When", "Status", "Error"],
      problems.map((r) => el("tr", { "data-testid": "failed-run", "data-run-id": r.id, "data-status": r.status },
        el("td", { text: fmtDateTime(r.started_at) }),
        el("td", null, el("span", { class: `badge ${r.status === "failed" ? "error" : "warning"}`, text: r.status })),
        el("td", { text: r.error || "–" })))));
  }

  // ------------------------------------------------------------------------------------------ Compliance over time

  async function loadCompliance(shared) {
    const { items } = await shared.reflections();
    const points = items
      .map((r) => {
        const moved = r.what_moved || {};
        const metric = moved["engagement.compliance_pct"];
        const overdue = moved["engagement.overdue"];
        return {
          at: new Date(r.hour_bucket).getTime(),
          value: metric && typeof metric.after === "number" ? metric.after : Number(metric && metric.after),
          delta: metric && metric.delta !== null && metric.delta !== undefined ? Number(metric.delta) : null,
          overdue: overdue && overdue.after !== undefined ? Number(overdue.after) : null,
        };
      })
      .filter((p) => Number.isFinite(p.value))
      .sort((a, b) => a.at - b.at);
    return () => drawCompliance(points);
  }

  function drawCompliance(points) {
    const latest = $("compliance-latest");
    const chart = $("compliance-chart");
    latest.setAttribute("data-points", points.length);
    if (points.length === 0) {
      latest.removeAttribute("data-value");
      latest.textContent = "No reflection has measured compliance in the last 7 days.";
      chart.replaceChildren();
      return;
    }
    const last = points[points.length - 1];
    latest.setAttribute("data-value", last.value);
    latest.textContent = `${number(last.value, 2)}% compliant at ${fmtDateTime(last.at)}`
      + (last.delta !== null && Number.isFinite(last.delta) ? ` (${last.delta >= 0 ? "+" : ""}${number(last.delta, 2)} on the hour before)` : "")
      + (last.overdue !== null && Number.isFinite(last.overdue) ? `; ${plural(last.overdue, "overdue")}` : "") + ".";

    const width = 480;
    const height = 200;
    const left = 36;
    const right = 10;
    const top = 10;
    const bottom = 24;
    const min = Math.min(...points.map((p) => p.value));
    const lo = Math.max(0, Math.min(90, Math.floor((min - 5) / 10) * 10));
    const hi = 100;
    const t0 = Math.min(points[0].at, last.at - 6 * HOUR);
    const t1 = last.at;
    const x = (t) => left + ((t - t0) / Math.max(t1 - t0, 1)) * (width - left - right);
    const y = (v) => top + (1 - (v - lo) / (hi - lo)) * (height - top - bottom);

    const shapes = [];
    for (let v = lo; v <= hi; v += hi - lo <= 50 ? 10 : 25) {
      shapes.push(svg("line", { class: "grid-line", x1: left, x2: width - right, y1: y(v), y2: y(v) }));
      shapes.push(svg("text", { x: left - 4, y: y(v) + 4, "text-anchor": "end", text: `${number(v)}%` }));
    }
    const span = t1 - t0;
    const ticks = 4;
    for (let i = 0; i <= ticks; i++) {
      const t = t0 + (span * i) / ticks;
      shapes.push(svg("text", { x: x(t), y: height - 6, "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle",
        text: span > 2 * DAY ? fmt(t, { day: "numeric", month: "short" }) : fmtHour(t) }));
    }
    const line = points.map((p, i) => `${i === 0 ? "M" : "L"} ${x(p.at).toFixed(1)} ${y(p.value).toFixed(1)}`).join(" ");
    shapes.push(svg("path", { class: "compliance-area", d: `${line} L ${x(last.at).toFixed(1)} ${y(lo)} L ${x(points[0].at).toFixed(1)} ${y(lo)} Z` }));
    shapes.push(svg("path", { class: "compliance-line", d: line }));
    for (const p of points) {
      shapes.push(svg("circle", { class: "compliance-point", "data-testid": "compliance-point", "data-value": p.value, cx: x(p.at), cy: y(p.value), r: points.length > 60 ? 2 : 3.5 },
        svg("title", { text: `${fmtDateTime(p.at)}: ${number(p.value, 2)}%` })));
    }
    chart.replaceChildren(chartSvg("compliance", width, height, "Compliance over time",
      `Share of contacts and accounts not overdue, per hourly reflection; ${points.length} points, latest ${number(last.value, 2)}%.`, shapes));
  }

  // ------------------------------------------------------------------------------------------ Violations over time

  async function loadViolations() {
    const rows = await api(tenantPath(`/violations/trends?days=${VIOLATION_DAYS}`));
    return () => drawViolations(Array.isArray(rows) ? rows : []);
  }

  function drawViolations(rows) {
    const days = lastDays(VIOLATION_DAYS);
    const byDay = new Map(days.map((d) => [d, { total: 0, info: 0, warning: 0, error: 0, critical: 0 }]));
    const byRule = new Map();
    let total = 0;
    for (const row of rows) {
      const day = String(row.day).slice(0, 10);
      const count = Number(row.violations) || 0;
      total += count;
      if (!byDay.has(day)) {
        byDay.set(day, { total: 0, info: 0, warning: 0, error: 0, critical: 0 });
        days.push(day);
      }
      const entry = byDay.get(day);
      entry.total += count;
      if (SEVERITIES.includes(row.severity)) {
        entry[row.severity] += count;
      }
      const rule = byRule.get(row.policy_key) || { count: 0, severity: "info", decisions: new Set() };
      rule.count += count;
      rule.decisions.add(row.decision);
      if (SEVERITIES.indexOf(row.severity) > SEVERITIES.indexOf(rule.severity)) {
        rule.severity = row.severity;
      }
      byRule.set(row.policy_key, rule);
    }
    days.sort();
    const activeDays = days.filter((d) => byDay.get(d).total > 0).length;
    const summary = $("violations-summary");
    summary.setAttribute("data-total", total);
    summary.setAttribute("data-days", activeDays);
    summary.textContent = total === 0
      ? `No policy violations in the last ${VIOLATION_DAYS} days.`
      : `${plural(total, "violation")} on ${plural(activeDays, "day")} in the last ${VIOLATION_DAYS} days; today ${number(byDay.get(days[days.length - 1]).total)}.`;

    const width = 480;
    const height = 200;
    const left = 30;
    const right = 6;
    const top = 10;
    const bottom = 24;
    const plotHeight = height - top - bottom;
    const max = niceMax(Math.max(1, ...days.map((d) => byDay.get(d).total)));
    const column = (width - left - right) / days.length;
    const y = (v) => top + plotHeight - (v / max) * plotHeight;
    const shapes = [];
    for (const v of ticks(max)) {
      shapes.push(svg("line", { class: "grid-line", x1: left, x2: width - right, y1: y(v), y2: y(v) }));
      shapes.push(svg("text", { x: left - 4, y: y(v) + 4, "text-anchor": "end", text: number(v) }));
    }
    days.forEach((day, i) => {
      const entry = byDay.get(day);
      const x = left + i * column;
      if (i % 2 === (days.length - 1) % 2) {
        shapes.push(svg("text", { x: x + column / 2, y: height - 6, "text-anchor": "middle", text: dayLabel(day) }));
      }
      if (entry.total === 0) {
        return;
      }
      let base = 0;
      const bars = [];
      for (const severity of SEVERITIES) {
        const count = entry[severity];
        if (count === 0) {
          continue;
        }
        bars.push(svg("rect", {
          class: `sev-${severity}`, "data-severity": severity, "data-count": count,
          x: x + column * 0.15, width: column * 0.7, y: y(base + count), height: Math.max(y(base) - y(base + count), 1),
        }, svg("title", { text: `${dayLabel(day)}: ${count} ${severity}` })));
        base += count;
      }
      shapes.push(svg("g", { "data-testid": "violation-day", "data-day": day, "data-total": entry.total }, bars,
        svg("title", { text: `${dayLabel(day)}: ${plural(entry.total, "violation")}` })));
    });
    shapes.push(svg("line", { class: "axis", x1: left, x2: width - right, y1: top + plotHeight, y2: top + plotHeight }));
    $("violations-chart").replaceChildren(
      chartSvg("violations", width, height, "Policy violations per day by severity", summary.textContent, shapes),
      legend(SEVERITIES.map((s) => [`sev-${s}`, s])));

    const rules = [...byRule.entries()].sort((a, b) => b[1].count - a[1].count).slice(0, 5);
    $("violations-rules").replaceChildren(rules.length === 0 ? "" : table("Rules with the most violations",
      ["Rule", "Worst severity", "Decisions", { text: "Violations", class: "num" }],
      rules.map(([key, rule]) => el("tr", { "data-testid": "violation-rule", "data-rule": key },
        el("td", { class: "mono", text: key }),
        el("td", null, el("span", { class: `badge ${rule.severity}`, text: rule.severity })),
        el("td", { text: [...rule.decisions].map(label).join(", ") }),
        el("td", { class: "num", text: number(rule.count) })))));
  }

  // ------------------------------------------------------------------------------------------ Answers from the world

  // What the world answered about the tenant's messages (docs/inbound.md): one row per day that had any answer.
  const INBOUND_KINDS = [
    ["bounces_hard", "Hard bounces"], ["bounces_soft", "Soft bounces"], ["complaints", "Complaints"],
    ["unsubscribes", "Unsubscribes"], ["replies", "Replies"], ["out_of_office", "Out of office"], ["delivered", "Delivered"],
  ];

  async function loadInbound() {
    const rows = await api(tenantPath(`/inbound/trends?days=${INBOUND_DAYS}`));
    return () => drawInbound(Array.isArray(rows) ? rows : []);
  }

  function drawInbound(rows) {
    const totals = Object.fromEntries(INBOUND_KINDS.map(([key]) => [key, 0]));
    for (const row of rows) {
      for (const [key] of INBOUND_KINDS) {
        totals[key] += Number(row[key]) || 0;
      }
    }
    const bounces = totals.bounces_hard + totals.bounces_soft;
    const summary = $("inbound-summary");
    summary.setAttribute("data-bounces", bounces);
    summary.setAttribute("data-complaints", totals.complaints);
    summary.setAttribute("data-unsubscribes", totals.unsubscribes);
    summary.setAttribute("data-replies", totals.replies);
    summary.setAttribute("data-out-of-office", totals.out_of_office);
    summary.textContent = rows.length === 0
      ? `Nothing heard back in the last ${INBOUND_DAYS} days: no bounce, complaint, unsubscribe or reply recorded.`
      : `Last ${INBOUND_DAYS} days: ${plural(totals.replies, "reply", "replies")}, ${plural(bounces, "bounce")} (${number(totals.bounces_hard)} hard), `
        + `${plural(totals.complaints, "complaint")}, ${plural(totals.unsubscribes, "unsubscribe")}, ${number(totals.out_of_office)} out of office.`;
    const days = rows.map((r) => ({ ...r, day: String(r.day).slice(0, 10) })).sort((a, b) => (a.day < b.day ? 1 : -1));
    $("inbound-table").replaceChildren(days.length === 0 ? "" : table("What the world answered per day, newest first",
      ["Day", ...INBOUND_KINDS.map(([, text]) => ({ text, class: "num" }))],
      days.map((r) => el("tr", { "data-testid": "inbound-day", "data-day": r.day },
        el("td", { text: dayLabel(r.day) }),
        ...INBOUND_KINDS.map(([key]) => el("td", { class: "num", "data-kind": key, text: number(Number(r[key]) || 0) }))))));
  }

  // ------------------------------------------------------------------------------------------ Overdue queue

  async function loadQueue() {
    const rows = await api(tenantPath("/engagement/queue?top=50"));
    return () => drawQueue(Array.isArray(rows) ? rows : []);
  }

  function drawQueue(rows) {
    const overdue = rows.filter((r) => r.compliance_status === "overdue").length;
    const summary = $("queue-summary");
    summary.setAttribute("data-overdue", overdue);
    summary.setAttribute("data-total", rows.length);
    summary.textContent = rows.length === 0
      ? "Nobody is due: every contact and account is within its touch frequency."
      : `${number(overdue)} overdue, ${number(rows.length - overdue)} due soon${rows.length >= 50 ? " (the 50 most urgent)" : ""}.`;
    $("queue-table").replaceChildren(rows.length === 0 ? "" : table("Contacts and accounts due a touch, most urgent first",
      [{ text: "Priority", class: "num" }, "Who", "Status", { text: "Days overdue", class: "num" }, "Due", "Why"],
      rows.map((r) => el("tr", { "data-testid": "queue-row", "data-entity-id": r.entity_id, "data-entity-type": r.entity_type, "data-status": r.compliance_status },
        el("td", { class: "num", text: number(Number(r.priority_score), 1) }),
        el("td", null, `${label(r.entity_type)} `, el("span", { class: "mono", title: r.entity_id, text: shortId(r.entity_id) })),
        el("td", null, el("span", { class: `badge ${r.compliance_status}`, text: label(r.compliance_status) })),
        el("td", { class: "num", text: number(r.days_overdue) }),
        el("td", { text: fmtDateTime(r.next_touch_due) }),
        el("td", { text: r.priority_reason || "–" })))));
  }

  // ------------------------------------------------------------------------------------------ Orders

  async function loadOrders(shared) {
    const [queue, exceptions] = await Promise.all([
      collect(tenantPath("/orders/queue"), { limit: 500, maxPages: 4 }),
      shared.exceptions(),
    ]);
    return () => drawOrders(queue, exceptions, shared.now);
  }

  function drawOrders(queue, exceptions, now) {
    const counts = {};
    for (const entry of queue.items) {
      counts[entry.status] = (counts[entry.status] || 0) + 1;
    }
    const openCount = exceptions.open.length + exceptions.review.length;
    const open = $("open-exceptions-count");
    open.textContent = number(openCount) + (exceptions.truncated ? "+" : "");
    open.setAttribute("data-count", openCount);
    open.classList.toggle("alert", openCount > 0);
    open.nextElementSibling.textContent = exceptions.review.length > 0
      ? `open exceptions (${number(exceptions.review.length)} in review)`
      : "open exceptions";

    $("orders-status").replaceChildren(
      el("ul", { class: "status-counts", "aria-label": `Orders in the processing queue by status${queue.truncated ? " (the newest only)" : ""}` },
        ORDER_STATUSES.map((s) => el("li", { "data-testid": "order-status", "data-status": s, "data-count": counts[s] || 0 },
          label(s), el("strong", { text: number(counts[s] || 0) })))));

    const days = lastDays(THROUGHPUT_DAYS);
    const perDay = new Map(days.map((d) => [d, 0]));
    const since = now - (THROUGHPUT_DAYS + 1) * DAY;
    for (const entry of queue.items) {
      if (!entry.processed_at || new Date(entry.processed_at).getTime() < since) {
        continue;
      }
      const day = localDay(entry.processed_at);
      if (perDay.has(day)) {
        perDay.set(day, perDay.get(day) + 1);
      }
    }
    const processed = [...perDay.values()].reduce((a, b) => a + b, 0);
    const processedNode = $("orders-processed-count");
    processedNode.textContent = number(processed);
    processedNode.setAttribute("data-count", processed);

    const width = 480;
    const height = 150;
    const left = 30;
    const right = 6;
    const top = 14;
    const bottom = 22;
    const plotHeight = height - top - bottom;
    const max = niceMax(Math.max(1, ...perDay.values()));
    const column = (width - left - right) / days.length;
    const y = (v) => top + plotHeight - (v / max) * plotHeight;
    const shapes = [];
    for (const v of ticks(max)) {
      shapes.push(svg("line", { class: "grid-line", x1: left, x2: width - right, y1: y(v), y2: y(v) }));
      shapes.push(svg("text", { x: left - 4, y: y(v) + 4, "text-anchor": "end", text: number(v) }));
    }
    days.forEach((day, i) => {
      const count = perDay.get(day);
      const x = left + i * column;
      shapes.push(svg("text", { x: x + column / 2, y: height - 6, "text-anchor": "middle", text: dayLabel(day) }));
      shapes.push(svg("rect", {
        class: "throughput-bar", "data-testid": "throughput-bar", "data-day": day, "data-count": count,
        x: x + column * 0.2, width: column * 0.6, y: y(count), height: Math.max(y(0) - y(count), count > 0 ? 1 : 0),
      }, svg("title", { text: `${dayLabel(day)}: ${plural(count, "order")} processed` })));
      if (count > 0) {
        shapes.push(svg("text", { x: x + column / 2, y: y(count) - 3, "text-anchor": "middle", text: number(count) }));
      }
    });
    shapes.push(svg("line", { class: "axis", x1: left, x2: width - right, y1: top + plotHeight, y2: top + plotHeight }));
    $("throughput-chart").replaceChildren(chartSvg("throughput", width, height, "Orders processed per day",
      `${plural(processed, "order")} processed in the last ${THROUGHPUT_DAYS} days.`, shapes));
  }

  // ------------------------------------------------------------------------------------------ Reflections

  async function loadReflections(shared) {
    const { items } = await shared.reflections();
    return () => {
      const latest = items.slice(0, 6);
      $("reflections-list").replaceChildren(...(latest.length === 0
        ? [el("li", { class: "empty", "data-testid": "reflections-empty", text: "No reflection in the last 7 days." })]
        : latest.map((r) => el("li", { "data-testid": "reflection", "data-reflection-id": r.id, "data-runs": runCount(r) },
          el("time", { datetime: r.hour_bucket, text: fmtDateTime(r.hour_bucket) + runsOfHour(r) }),
          el("p", { text: r.summary || "(no summary written)" })))));
    };
  }

  // An hour's reflection rolls up every run of the hour; say so when there was more than one.
  function runCount(r) {
    return Array.isArray(r.run_ids) ? r.run_ids.length : 0;
  }

  function runsOfHour(r) {
    return runCount(r) > 1 ? ` · ${runCount(r)} runs` : "";
  }

  // ------------------------------------------------------------------------------------------ Approval queue

  async function loadApprovals() {
    const { items, truncated } = await collect(tenantPath("/cards?kind=approval&status=open"), { limit: 100, maxPages: 3 });
    return () => drawApprovals(items, truncated);
  }

  function drawApprovals(cards, truncated) {
    const box = $("approvals-table");
    if (cards.length === 0) {
      box.replaceChildren(el("p", { class: "empty", "data-testid": "approvals-empty", text: "No action is waiting for approval." }));
      return;
    }
    box.replaceChildren(
      truncated ? el("p", { class: "hint", text: "Only the newest approvals are listed." }) : "",
      table("Actions held for approval", ["Action", "Details", "For", "Expires", "Asked", "Decision"],
        cards.map((card) => el("tr", { "data-testid": "approval-row", "data-card-id": card.id },
          el("td", { text: card.title }),
          el("td", { text: card.body || "–" }),
          el("td", null, card.entity_type ? `${label(card.entity_type)} ` : "–",
            card.entity_id ? el("span", { class: "mono", title: card.entity_id, text: shortId(card.entity_id) }) : ""),
          el("td", { text: card.due_at ? fmtDateTime(card.due_at) : "never" }),
          el("td", { text: fmtDateTime(card.created_at) }),
          el("td", { class: "actions" }, ...(can("approve") ? [
            el("button", { type: "button", class: "approve", "data-testid": "approve-button", "data-card-id": card.id,
              "aria-label": `Approve: ${card.title}`, text: "Approve", onclick: (e) => decideApproval(card, true, e.currentTarget) }),
            el("button", { type: "button", class: "reject", "data-testid": "reject-button", "data-card-id": card.id,
              "aria-label": `Reject: ${card.title}`, text: "Reject", onclick: (e) => decideApproval(card, false, e.currentTarget) })]
            : [notAllowed("approve")]))))));
  }

  async function decideApproval(card, approve, button) {
    const verb = approve ? "Approve" : "Reject";
    const note = await askNote({
      title: `${verb} this action?`,
      what: card.title,
      label: approve ? "Note (optional)" : "Why reject it? (optional)",
      required: false,
      confirm: verb,
    });
    if (note === null) {
      return;
    }
    await act("panel-approvals", button, tenantPath(`/cards/${encodeURIComponent(card.id)}/${approve ? "approve" : "reject"}`),
      { notes: note || null }, (result) => `${result && result.outcome === "rejected" ? "Rejected" : "Approved"}: ${card.title}`);
  }

  // ------------------------------------------------------------------------------------------ Exception queue

  async function loadExceptions(shared) {
    const exceptions = await shared.exceptions();
    return () => drawExceptions(exceptions);
  }

  function drawExceptions(exceptions) {
    const rows = [...exceptions.open, ...exceptions.review].sort((a, b) => new Date(a.created_at) - new Date(b.created_at));
    const box = $("exceptions-table");
    if (rows.length === 0) {
      box.replaceChildren(el("p", { class: "empty", "data-testid": "exceptions-empty", text: "No order exception is open." }));
      return;
    }
    box.replaceChildren(table("Order exceptions open or in review, oldest first",
      ["Exception", "Severity", "Order", "Details", "Status", "Opened", "Actions"],
      rows.map((x) => el("tr", { "data-testid": "exception-row", "data-exception-id": x.id, "data-status": x.resolution_status },
        el("td", { text: label(x.exception_type) }),
        el("td", null, el("span", { class: `badge ${x.severity}`, text: x.severity })),
        el("td", null, el("span", { class: "mono", title: x.order_id, text: shortId(x.order_id) })),
        el("td", { text: (x.details && (x.details.message || x.details.reason)) || "–" }),
        el("td", null, el("span", { class: `badge ${x.resolution_status}`, text: label(x.resolution_status) })),
        el("td", { text: fmtDateTime(x.created_at) }),
        el("td", { class: "actions" }, ...(!can("resolve_exceptions") ? [notAllowed("resolve_exceptions")] : [
          x.resolution_status === "open"
            ? el("button", { type: "button", "data-testid": "review-button", "data-exception-id": x.id,
              "aria-label": `Review: ${label(x.exception_type)} on order ${shortId(x.order_id)}`, text: "Review",
              onclick: (e) => exceptionStep(x, "review", e.currentTarget) })
            : "",
          el("button", { type: "button", class: "approve", "data-testid": "resolve-button", "data-exception-id": x.id,
            "aria-label": `Resolve: ${label(x.exception_type)} on order ${shortId(x.order_id)}`, text: "Resolve",
            onclick: (e) => exceptionStep(x, "resolve", e.currentTarget) }),
          el("button", { type: "button", class: "dismiss", "data-testid": "dismiss-button", "data-exception-id": x.id,
            "aria-label": `Dismiss: ${label(x.exception_type)} on order ${shortId(x.order_id)}`, text: "Dismiss",
            onclick: (e) => exceptionStep(x, "dismiss", e.currentTarget) })]))))));
  }

  async function exceptionStep(exception, step, button) {
    const what = `${label(exception.exception_type)} on order ${shortId(exception.order_id)}`;
    let notes = null;
    if (step !== "review") {
      notes = await askNote({
        title: step === "resolve" ? "Resolve this exception?" : "Dismiss this exception?",
        what: step === "resolve"
          ? `${what}. Resolving sends the order back to be validated again.`
          : `${what}. Dismissing takes the order out of automatic processing: a person handles it.`,
        label: step === "resolve" ? "What was done (required)" : "Why dismiss it (required)",
        required: true,
        confirm: step === "resolve" ? "Resolve" : "Dismiss",
      });
      if (notes === null) {
        return;
      }
    }
    const done = { review: "In review", resolve: "Resolved", dismiss: "Dismissed" }[step];
    await act("panel-exceptions", button, tenantPath(`/orders/exceptions/${encodeURIComponent(exception.id)}/${step}`),
      { notes }, () => `${done}: ${what}`);
  }

  // ------------------------------------------------------------------------------------------ Actions

  // Posts an action, says what happened in the panel, and reloads the tenant (the queues, counts and charts move).
  async function act(panelId, button, path, body, doneText) {
    const panelNode = $(panelId);
    clearPanelMessages(panelNode);
    const row = button.closest("tr");
    const buttons = row ? [...row.querySelectorAll("button")] : [button];
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const result = await api(path, { method: "POST", body });
      showPanelNotice(panelNode, doneText(result));
      await refresh();
    } catch (e) {
      showPanelError(panelNode, e);
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  // A note from the person, in a modal dialog: the text (possibly empty), or null when they cancel.
  function askNote({ title, what, label: fieldLabel, required, confirm }) {
    const dialog = $("note-dialog");
    const form = $("note-form");
    const input = $("note-input");
    const error = $("note-error");
    const cancel = $("note-cancel");
    $("note-title").textContent = title;
    $("note-what").textContent = what;
    $("note-label").textContent = fieldLabel;
    $("note-confirm").textContent = confirm;
    input.value = "";
    input.setAttribute("aria-required", required ? "true" : "false");
    error.textContent = "";
    return new Promise((resolve) => {
      const finish = (value) => {
        form.removeEventListener("submit", onSubmit);
        cancel.removeEventListener("click", onCancel);
        dialog.removeEventListener("cancel", onCancel);
        if (dialog.open) {
          dialog.close();
        }
        resolve(value);
      };
      const onSubmit = (e) => {
        e.preventDefault();
        const value = input.value.trim();
        if (required && !value) {
          error.textContent = "A note is required: say why.";
          input.focus();
          return;
        }
        finish(value);
      };
      const onCancel = (e) => {
        e.preventDefault();
        finish(null);
      };
      form.addEventListener("submit", onSubmit);
      cancel.addEventListener("click", onCancel);
      dialog.addEventListener("cancel", onCancel);
      dialog.showModal();
      input.focus();
    });
  }

  // ------------------------------------------------------------------------------------------ Wiring

  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("token").value.trim();
    if (!token) {
      return;
    }
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    clearErrors();
    start();
  });
  $("signout-button").addEventListener("click", () => signOut(null));
  $("tenant-picker").addEventListener("change", (e) => selectTenant(e.target.value));
  $("refresh-button").addEventListener("click", () => refresh());
  $("auto-refresh").addEventListener("change", (e) => setAutoRefresh(e.target.checked));

  start();
})();
