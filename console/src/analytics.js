// @ts-check
/**
 * The analytics page (`#/analytics`): live counters from PostgreSQL (open, unassigned, waiting;
 * refreshed every 15 s while the page is open) next to the historic reports from the analytics
 * store (GET /api/v1/reports/*): volume by hour, weekday, channel and language, first response,
 * next response and resolution times per inbox, first response and resolution per team, SLA
 * compliance, CSAT, and agents (handled, replies, resolutions, mean handling time, time online and
 * busy). A date range, a time zone, an inbox and a channel
 * filter every report, a team the response and resolution times and CSAT (the reports that know
 * a conversation's team); a toggle counts the times in the inboxes' business hours; each card has a CSV export (fetched with the bearer token, then saved).
 * Charts are SVG drawn here, coloured from the theme's variables, so the dark theme needs nothing
 * more. A report the store cannot answer (analytics off, store away) shows its error in its card.
 */
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { Api, ApiError } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";
const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LIVE_EVERY_MS = 15_000;
/** The reports that take a team (``team_id``); the others answer 400 to it. */
const TEAMED = new Set(["first_response", "next_response", "resolution", "csat"]);
/** The reports that count in business hours (``hours=business``) when the toggle is on. */
const HOURED = new Set(["first_response", "next_response", "resolution"]);
/** English defaults; a catalogue entry (console/i18n) wins when there is one. */
const EN = {
  "analytics.title": "Analytics",
  "analytics.since": "From",
  "analytics.until": "To",
  "analytics.tz": "Time zone",
  "analytics.inbox": "Inbox",
  "analytics.channel": "Channel",
  "analytics.team": "Team (times, CSAT)",
  "analytics.business_hours": "Business hours (times)",
  "analytics.all": "All",
  "analytics.apply": "Show",
  "analytics.csv": "CSV",
  "analytics.open": "Open",
  "analytics.unassigned": "Unassigned",
  "analytics.waiting": "Waiting",
  "analytics.live": "Now",
  "analytics.totals": "Conversations {c} · messages in {i} · out {o}",
  "analytics.by_hour": "Messages by hour of day",
  "analytics.by_weekday": "Messages by day of week",
  "analytics.by_channel": "Conversations by channel",
  "analytics.first_response": "First response time by inbox (median, p90)",
  "analytics.resolution": "Resolution time by inbox (median, p90)",
  "analytics.agents": "Agents",
  "analytics.agent": "Agent",
  "analytics.handled": "Conversations",
  "analytics.replies": "Replies",
  "analytics.resolved": "Resolved",
  "analytics.handling": "Handling time",
  "analytics.online": "Online",
  "analytics.busy": "Busy",
  "analytics.inbound": "Inbound",
  "analytics.outbound": "Outbound",
  "analytics.median": "Median",
  "analytics.nothing": "Nothing in this range.",
  "analytics.next_response": "Next response time by inbox (median, p90)",
  "analytics.by_team": "First response and resolution by team (median)",
  "analytics.no_team": "No team",
  "analytics.first": "First response",
  "analytics.resolution_short": "Resolution",
  "analytics.languages": "Messages by language",
  "analytics.messages": "Messages",
  "analytics.csat": "Customer satisfaction (CSAT)",
  "analytics.csat_totals": "Score {s}% · mean {m} · {n} ratings",
  "analytics.ratings": "Ratings",
  "analytics.sla": "SLA compliance",
  "analytics.metric": "Metric",
  "analytics.conversations": "Conversations",
  "analytics.breached": "Breached",
  "analytics.compliance": "Compliance",
  "analytics.metric_first_response": "First response",
  "analytics.metric_next_response": "Next response",
  "analytics.metric_resolution": "Resolution",
  "analytics.bad_range": "The start must not be after the end.",
};
/** @param {keyof typeof EN} key @param {Record<string, string | number>} [vars] */
function L(key, vars) {
  const found = t(key, vars);
  if (found !== key) return found;
  let s = EN[key];
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, String(v));
  return s;
}

/** @type {number | undefined} */ let liveTimer;
export function stopAnalytics() { clearInterval(liveTimer); liveTimer = undefined; }

/** @param {Date} d */
function day(d) { return d.toISOString().slice(0, 10); }

/** A duration for people: 42 s, 7 min, 3.2 h, 2.1 d. @param {number} s */
export function duration(s) {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

/**
 * @param {string} tag @param {Record<string, string | number>} [attrs] @param {...Element} children
 * @returns {SVGElement}
 */
function s(tag, attrs = {}, ...children) {
  const el = /** @type {SVGElement} */ (document.createElementNS(SVG, tag));
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

/** @param {string} text @param {Record<string, string | number>} attrs */
function label(text, attrs) { const el = s("text", attrs); el.textContent = text; return el; }

/**
 * Vertical stacked bars (one per key, series stacked), with a legend and a y-axis maximum.
 * @param {string[]} keys @param {{name: string, cls: string, values: number[]}[]} series
 * @param {string} title
 */
export function columnChart(keys, series, title) {
  const W = 520, H = 220, left = 40, bottom = 24, top = 22;
  const totals = keys.map((_, i) => series.reduce((a, x) => a + x.values[i], 0));
  const max = Math.max(1, ...totals);
  const step = (W - left - 8) / keys.length;
  const y = (/** @type {number} */ v) => (H - bottom - top) * (v / max);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, class: "chart" });
  const name = s("title"); name.textContent = title;
  svg.append(name, label(max.toLocaleString(), { x: left - 4, y: top + 4, "text-anchor": "end", class: "tick" }),
    label("0", { x: left - 4, y: H - bottom, "text-anchor": "end", class: "tick" }),
    s("line", { x1: left, y1: H - bottom, x2: W - 4, y2: H - bottom, class: "axis" }));
  keys.forEach((key, i) => {
    let base = H - bottom;
    for (const x of series) {
      const hgt = y(x.values[i]);
      if (hgt > 0) {
        const bar = s("rect", { x: left + i * step + 1, y: base - hgt, width: Math.max(1, step - 2), height: hgt, class: x.cls });
        const tip = s("title"); tip.textContent = `${key} · ${x.name}: ${x.values[i].toLocaleString()}`; bar.append(tip);
        svg.append(bar);
      }
      base -= hgt;
    }
    if (keys.length <= 12 || i % 3 === 0) {
      svg.append(label(key, { x: left + i * step + step / 2, y: H - 8, "text-anchor": "middle", class: "tick" }));
    }
  });
  series.forEach((x, i) => {
    svg.append(s("rect", { x: left + i * 110, y: 4, width: 10, height: 10, class: x.cls }),
      label(x.name, { x: left + 14 + i * 110, y: 13, class: "tick" }));
  });
  return svg;
}

/**
 * Horizontal bars: one row per item, up to two measures (the second drawn thinner).
 * @param {{key: string, a: number, b?: number, text: string}[]} rows @param {string} title
 * @param {[string, string?]} names
 */
export function barChart(rows, title, names) {
  const W = 520, row = 26, left = 110, top = 22;
  const H = top + row * Math.max(rows.length, 1) + 6;
  const max = Math.max(1, ...rows.map((r) => Math.max(r.a, r.b ?? 0)));
  const x = (/** @type {number} */ v) => (W - left - 170) * (v / max);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, class: "chart" });
  const tip = s("title"); tip.textContent = title; svg.append(tip);
  names.forEach((n, i) => {
    if (!n) return;
    svg.append(s("rect", { x: left + i * 110, y: 4, width: 10, height: 10, class: i ? "s2" : "s1" }),
      label(n, { x: left + 14 + i * 110, y: 13, class: "tick" }));
  });
  rows.forEach((r, i) => {
    const y0 = top + i * row;
    svg.append(label(r.key.length > 16 ? `${r.key.slice(0, 15)}…` : r.key, { x: left - 6, y: y0 + 15, "text-anchor": "end", class: "tick" }));
    svg.append(s("rect", { x: left, y: y0 + 3, width: Math.max(1, x(r.a)), height: 10, class: "s1" }));
    if (r.b !== undefined) svg.append(s("rect", { x: left, y: y0 + 14, width: Math.max(1, x(r.b)), height: 6, class: "s2" }));
    svg.append(label(r.text, { x: left + x(Math.max(r.a, r.b ?? 0)) + 6, y: y0 + 15, class: "tick" }));
  });
  return svg;
}

/**
 * @param {HTMLElement} app @param {Api} api @param {HTMLElement} header the console's top bar
 */
export async function analyticsScreen(app, api, header) {
  stopAnalytics();
  clear(app);
  const today = new Date();
  const from = new Date(today.getTime() - 29 * 86400_000);
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const zones = [...new Set([zone, "UTC", "Asia/Colombo", "Asia/Kolkata", "Asia/Kathmandu", "Asia/Dhaka", "Asia/Karachi", "Europe/London", "America/New_York"])];
  const since = h("input", { id: "an-since", type: "date", value: day(from) });
  const until = h("input", { id: "an-until", type: "date", value: day(today) });
  const tz = h("select", { id: "an-tz" }, ...zones.map((z) => h("option", { value: z, text: z })));
  const inbox = h("select", { id: "an-inbox" }, h("option", { value: "", text: L("analytics.all") }));
  const channel = h("select", { id: "an-channel" }, h("option", { value: "", text: L("analytics.all") }));
  const team = h("select", { id: "an-team" }, h("option", { value: "", text: L("analytics.all") }));
  const business = h("input", { id: "an-business", type: "checkbox" });
  const error = h("p.error", { role: "alert", id: "an-error" });
  const form = h("form.an-filters", { "aria-label": L("analytics.title") },
    h("label", null, L("analytics.since"), since), h("label", null, L("analytics.until"), until),
    h("label", null, L("analytics.tz"), tz), h("label", null, L("analytics.inbox"), inbox),
    h("label", null, L("analytics.channel"), channel), h("label", null, L("analytics.team"), team),
    h("label.an-toggle", null, business, L("analytics.business_hours")),
    h("button.primary", { type: "submit", text: L("analytics.apply") }), error);
  const live = h("section.an-live", { "aria-label": L("analytics.live"), id: "an-live" });
  const grid = h("div.an-grid", { id: "an-grid" });
  const main = h("main.analytics", { id: "analytics-main", tabindex: "-1" },
    h("h1", { text: L("analytics.title") }), form, live, grid);
  app.append(header, main);

  /** @type {Map<string, any>} */ const inboxes = new Map();
  /** @type {Map<string, string>} */ const users = new Map();
  /** @type {Map<string, string>} */ const teams = new Map();
  try {
    const [ib, us, tm] = await Promise.all([
      api.get("/api/v1/inboxes?limit=200"),
      api.get("/api/v1/users?limit=200").catch(() => ({ data: [] })),
      api.get("/api/v1/teams").catch(() => ({ data: [] })),
    ]);
    for (const i of ib.data) inboxes.set(i.id, i);
    for (const u of us.data) users.set(u.id, u.name);
    for (const x of tm.data || []) teams.set(x.id, x.name);
  } catch (e) { if (!(e instanceof ApiError)) throw e; }
  for (const i of inboxes.values()) inbox.append(h("option", { value: i.id, text: i.name }));
  for (const c of new Set([...inboxes.values()].map((i) => i.channel))) channel.append(h("option", { value: c, text: c }));
  for (const [id, name] of teams) team.append(h("option", { value: id, text: name }));
  const inboxName = (/** @type {string} */ id) => inboxes.get(id)?.name || id || "—";
  const userName = (/** @type {string} */ id) => users.get(id) || id || "—";
  const teamName = (/** @type {string} */ id) => teams.get(id) || id || L("analytics.no_team");
  const empty = () => [h("p.empty", { text: L("analytics.nothing") })];

  async function refreshLive() {
    if (!document.body.contains(live)) return stopAnalytics();
    try {
      const r = await api.get(`/api/v1/reports/live${inbox.value ? `?inbox_id=${encodeURIComponent(/** @type {HTMLSelectElement} */ (inbox).value)}` : ""}`);
      clear(live).append(
        h("h2", { text: L("analytics.live") }),
        ...[["open", r.totals.open], ["unassigned", r.totals.unassigned], ["waiting", r.totals.pending]].map(([k, n]) =>
          h("div.an-counter", { id: `an-live-${k}` }, h("strong", { text: String(n) }), h("span", { text: L(/** @type {any} */ (`analytics.${k}`)) }))));
    } catch (e) { if (!(e instanceof ApiError)) throw e; }
  }

  /** @param {Record<string, string>} [extra] @param {string} [report] the team filter goes to the reports that take it */
  function query(extra = {}, report = "") {
    const q = new URLSearchParams({ since: /** @type {HTMLInputElement} */ (since).value, until: /** @type {HTMLInputElement} */ (until).value, tz: /** @type {HTMLSelectElement} */ (tz).value, ...extra });
    if (/** @type {HTMLSelectElement} */ (inbox).value) q.set("inbox_id", /** @type {HTMLSelectElement} */ (inbox).value);
    if (/** @type {HTMLSelectElement} */ (channel).value) q.set("channel", /** @type {HTMLSelectElement} */ (channel).value);
    if (TEAMED.has(report) && /** @type {HTMLSelectElement} */ (team).value) q.set("team_id", /** @type {HTMLSelectElement} */ (team).value);
    if (HOURED.has(report) && /** @type {HTMLInputElement} */ (business).checked) q.set("hours", "business");
    return q;
  }

  /** A card: title, CSV button, body. @param {string} id @param {string} title @param {string} report @param {Record<string, string>} [extra] */
  function card(id, title, report, extra = {}) {
    const csv = h("button.an-csv", { type: "button", id: `${id}-csv`, text: L("analytics.csv"), "aria-label": `${L("analytics.csv")}: ${title}` });
    csv.addEventListener("click", () => download(report, extra));
    const body = h("div.an-body", { "aria-busy": "true" });
    grid.append(h("section.an-card", { id, "aria-label": title }, h("header", null, h("h2", { text: title }), csv), body));
    return body;
  }

  /** @param {string} report @param {Record<string, string>} extra */
  async function download(report, extra) {
    const q = query({ ...extra, format: "csv" }, report);
    const go = () => fetch(`/api/v1/reports/${report}?${q}`, { headers: { Authorization: `Bearer ${api.token}` } });
    let r = await go();
    if (r.status === 401 && (await api.refresh())) r = await go();
    if (!r.ok) { error.textContent = `${r.status}`; return; }
    const a = h("a", { href: URL.createObjectURL(await r.blob()), download: `${report}-${q.get("since")}-${q.get("until")}.csv` });
    document.body.append(a);
    /** @type {HTMLAnchorElement} */ (a).click();
    a.remove();
  }

  /** @param {HTMLElement} body @param {string} path @param {(data: any) => (Node | string)[] | Promise<(Node | string)[]>} draw */
  async function fill(body, path, draw) {
    try {
      const data = await api.get(path);
      clear(body).append(...(await draw(data)));
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      clear(body).append(h("p.error", { text: e.message }));
    }
    body.removeAttribute("aria-busy");
  }

  function render() {
    clear(grid);
    error.textContent = "";
    if (/** @type {HTMLInputElement} */ (since).value > /** @type {HTMLInputElement} */ (until).value) {
      error.textContent = L("analytics.bad_range");
      return;
    }
    const q = query();
    const hours = card("an-hours", L("analytics.by_hour"), "volume");
    const days = card("an-weekdays", L("analytics.by_weekday"), "volume");
    const channels = card("an-channels", L("analytics.by_channel"), "volume");
    fill(hours, `/api/v1/reports/volume?${q}`, (v) => {
      const totals = h("p.an-totals", { id: "an-totals", text: L("analytics.totals", { c: v.totals.conversations, i: v.totals.messages_inbound, o: v.totals.messages_outbound }) });
      const keys = Object.keys(v.by_hour);
      const chart = columnChart(keys, [
        { name: L("analytics.inbound"), cls: "s1", values: keys.map((k) => v.by_hour[k].messages_inbound) },
        { name: L("analytics.outbound"), cls: "s2", values: keys.map((k) => v.by_hour[k].messages_outbound) },
      ], L("analytics.by_hour"));
      const wk = Object.keys(v.by_weekday);
      clear(days).append(columnChart(wk.map((k) => WEEKDAYS[Number(k) - 1]), [
        { name: L("analytics.inbound"), cls: "s1", values: wk.map((k) => v.by_weekday[k].messages_inbound) },
        { name: L("analytics.outbound"), cls: "s2", values: wk.map((k) => v.by_weekday[k].messages_outbound) },
      ], L("analytics.by_weekday")));
      days.removeAttribute("aria-busy");
      const ch = Object.entries(v.by_channel).map(([k, c]) => ({ key: k, a: /** @type {any} */ (c).conversations, text: String(/** @type {any} */ (c).conversations) }));
      clear(channels).append(ch.length ? barChart(ch, L("analytics.by_channel"), [L("analytics.handled")]) : h("p.empty", { text: L("analytics.nothing") }));
      channels.removeAttribute("aria-busy");
      return [totals, chart];
    });
    for (const [id, report] of [["an-first-response", "first_response"], ["an-next-response", "next_response"], ["an-resolution", "resolution"]]) {
      const title = L(/** @type {any} */ (`analytics.${report}`));
      const body = card(id, title, report, { group_by: "inbox" });
      fill(body, `/api/v1/reports/${report}?${query({ group_by: "inbox" }, report)}`, (r) => r.rows.length
        ? [barChart(r.rows.map((/** @type {any} */ x) => ({ key: inboxName(x.key), a: x.median_s, b: x.p90_s, text: `${duration(x.median_s)} · ${duration(x.p90_s)} (${x.count})` })), title, [L("analytics.median"), "p90"])]
        : [h("p.empty", { text: L("analytics.nothing") })]);
    }
    const byTeam = card("an-teams", L("analytics.by_team"), "first_response", { group_by: "team" });
    fill(byTeam, `/api/v1/reports/first_response?${query({ group_by: "team" }, "first_response")}`, async (f) => {
      const r = await api.get(`/api/v1/reports/resolution?${query({ group_by: "team" }, "resolution")}`);
      /** @type {Map<string, {a: number, b?: number}>} */ const both = new Map();
      for (const x of f.rows) both.set(x.key, { a: x.median_s });
      for (const x of r.rows) both.set(x.key, { a: both.get(x.key)?.a ?? 0, b: x.median_s });
      return both.size
        ? [barChart([...both].map(([k, v]) => ({ key: teamName(k), a: v.a, b: v.b ?? 0, text: `${duration(v.a)} · ${duration(v.b ?? 0)}` })), L("analytics.by_team"), [L("analytics.first"), L("analytics.resolution_short")])]
        : empty();
    });
    const langs = card("an-languages", L("analytics.languages"), "languages");
    fill(langs, `/api/v1/reports/languages?${q}`, (r) => r.rows.length
      ? [barChart(r.rows.slice(0, 12).map((/** @type {any} */ x) => ({ key: x.language, a: x.messages_inbound, b: x.messages_outbound, text: String(x.messages) })), L("analytics.languages"), [L("analytics.inbound"), L("analytics.outbound")])]
      : empty());
    const csat = card("an-csat", L("analytics.csat"), "csat", { group_by: "inbox" });
    fill(csat, `/api/v1/reports/csat?${query({ group_by: "inbox" }, "csat")}`, (r) => {
      const tot = r.totals;
      if (!tot.ratings) return empty();
      const keys = ["1", "2", "3", "4", "5"];
      return [h("p.an-totals", { id: "an-csat-totals", text: L("analytics.csat_totals", { s: tot.score_pct, m: tot.mean_rating, n: tot.ratings }) }),
        columnChart(keys, [{ name: L("analytics.ratings"), cls: "s1", values: keys.map((k) => tot.distribution[k]) }], L("analytics.csat"))];
    });
    const sla = card("an-sla", L("analytics.sla"), "sla", { group_by: "inbox" });
    fill(sla, `/api/v1/reports/sla?${query({ group_by: "inbox" })}`, (r) => r.rows.length
      ? [h("table.an-table", null,
          h("thead", null, h("tr", null, ...["metric", "conversations", "breached", "compliance"].map((k) => h("th", { text: L(/** @type {any} */ (`analytics.${k}`)) })))),
          h("tbody", null, ...r.totals.map((/** @type {any} */ x) => h("tr", { "data-metric": x.metric },
            h("td", { text: L(/** @type {any} */ (`analytics.metric_${x.metric}`)) }), h("td", { text: String(x.conversations) }),
            h("td", { text: String(x.breached) }), h("td", { text: `${x.compliance_pct}%` })))))]
      : empty());
    const agents = card("an-agents", L("analytics.agents"), "agents");
    fill(agents, `/api/v1/reports/agents?${q}`, (r) => r.rows.length
      ? [h("table.an-table", null,
          h("thead", null, h("tr", null, ...["agent", "handled", "replies", "resolved", "handling", "online", "busy"].map((k) => h("th", { text: L(/** @type {any} */ (`analytics.${k}`)) })))),
          h("tbody", null, ...r.rows.slice(0, 12).map((/** @type {any} */ x) => h("tr", null,
            h("td", { text: userName(x.agent_id) }), h("td", { text: String(x.conversations_handled) }),
            h("td", { text: String(x.replies) }), h("td", { text: String(x.resolutions) }),
            h("td.an-handling", { text: x.mean_handling_s == null ? "–" : duration(x.mean_handling_s) }),
            h("td.an-online", { text: duration(x.online_s) }), h("td.an-busy", { text: duration(x.busy_s) })))))]
      : [h("p.empty", { text: L("analytics.nothing") })]);
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); render(); refreshLive(); });
  business.addEventListener("change", () => render());
  render();
  await refreshLive();
  liveTimer = window.setInterval(refreshLive, LIVE_EVERY_MS);
}
