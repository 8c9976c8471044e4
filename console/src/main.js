// @ts-check
/**
 * The agent console: login, the inbox sidebar, the live conversation list, the conversation view
 * with its composer and actions, the contact panel, presence and notifications.
 * State comes from REST once, then from the /agent Socket.IO stream (docs/realtime.md).
 */
import { io } from "/console/socket.io.esm.min.js";
import { Api, ApiError } from "./api.js";
import { h, clear, initials, since } from "./dom.js";
import { t, setLanguage, preferred, language, LANGUAGES } from "./i18n.js";
import { VirtualList } from "./vlist.js";
import { renderItem, messageItem, systemItems, tickFor } from "./timeline.js";
import { emailComposer } from "./email.js";
import { Notifier } from "./notify.js";
import { Ringer, callItems, callButton, showProfile } from "./calls.js";
import { settingsScreen } from "./settings.js";
import { macrosButton } from "./macros.js";
import { setupScreen, inviteScreen } from "./setup.js";
import { analyticsScreen, stopAnalytics } from "./analytics.js";
import { contactsScreen } from "./contacts.js";
import { AiPanel } from "./ai.js";

const ROW = 64;
const api = new Api();
const app = /** @type {HTMLElement} */ (document.getElementById("app"));

/** Everything the screens show. */
const S = {
  /** @type {Map<string, any>} */ inboxes: new Map(),
  /** @type {Map<string, any>} */ counters: new Map(),
  /** @type {Map<string, any>} */ users: new Map(),
  /** @type {any[]} */ teams: [],
  /** @type {any[]} */ labels: [],
  /** @type {Map<string, any>} */ convs: new Map(),
  /** @type {Map<string, string>} */ previews: new Map(),
  /** @type {any[]} */ rows: [],
  filters: { view: "all", status: "open", inbox_id: "", team_id: "", label: "", priority: "" },
  /** @type {string | null} */ cursor: null,
  loading: false,
  /** @type {string | null} */ current: null,
  /** @type {any[]} */ timeline: [],
  /** timeline events lately heard per conversation, for a view opened before the journal has
   * logged them @type {Map<string, any[]>} */ recent: new Map(),
  /** @type {Map<string, string>} */ presence: new Map(),
  /** the AI part's intent labels for the open conversation's last customer message
   * @type {{label: string, confidence: number}[]} */ intents: [],
  /** its message.analysed findings heard while the timeline loads @type {Map<string, any>} */
  analysed: new Map(),
  lastSeq: -1,
  connected: false,
  /** @type {any[] | null} */ queued: null,
};
/** @type {any} */ let socket = null;
/** @type {AiPanel | null} */ let aiPanel = null;
/** @type {VirtualList | null} */ let list = null;
const notifier = new Notifier();
const ringer = new Ringer(api, {
  inboxName: (id) => S.inboxes.get(id)?.name || "",
  open: (id) => openConversation(id),
  toast: (text) => toast(text),
  notify: (title, body) => notifier.notify(title, body),
});
/** @type {Record<string, HTMLElement>} */ const $ = {};

// ---------------------------------------------------------------- theme and language
function applyTheme() {
  const theme = localStorage.getItem("hub.theme") || "";
  if (theme) document.documentElement.dataset.theme = theme; else delete document.documentElement.dataset.theme;
}

function switches() {
  const lang = h("select", { "aria-label": t("ui.language"), id: "lang" },
    ...LANGUAGES.map((l) => h("option", { value: l, text: t(`lang.${l}`), selected: l === language() })));
  lang.addEventListener("change", async () => { await setLanguage(/** @type {HTMLSelectElement} */ (lang).value, true); start(); });
  const theme = h("button.icon", { type: "button", "aria-label": t("ui.theme"), title: t("ui.theme"), text: "◐" });
  theme.addEventListener("click", () => {
    const dark = document.documentElement.dataset.theme === "dark" ||
      (!document.documentElement.dataset.theme && matchMedia("(prefers-color-scheme: dark)").matches);
    localStorage.setItem("hub.theme", dark ? "light" : "dark");
    applyTheme();
  });
  return h("div.switches", null, lang, theme);
}

// ---------------------------------------------------------------- login
function loginScreen(/** @type {string} */ message = "") {
  disconnect();
  ringer.reset();
  clear(app);
  const email = h("input", { id: "email", type: "email", autocomplete: "username", required: true });
  const password = h("input", { id: "password", type: "password", autocomplete: "current-password", required: true });
  const error = h("p.error", { role: "alert", text: message });
  const form = h("form.login", { "aria-labelledby": "login-title" },
    h("h1", { id: "login-title", text: t("login.title") }),
    h("label", { for: "email", text: t("login.email") }), email,
    h("label", { for: "password", text: t("login.password") }), password,
    error,
    h("button.primary", { type: "submit", text: t("login.submit") }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      const r = await api.login(/** @type {HTMLInputElement} */ (email).value, /** @type {HTMLInputElement} */ (password).value);
      if (["mfa_required", "authenticated", "mfa_setup_required"].includes(r.status)) loggedIn(r);
      else error.textContent = t("login.failed");
    } catch (err) {
      error.textContent = err instanceof ApiError && err.code === "account_locked" ? t("login.locked") : t("login.failed");
    }
  });
  app.append(h("main.center", null, form, switches()));
  email.focus();
}

function mfaScreen(/** @type {string} */ mfaToken) {
  clear(app);
  const code = h("input", { id: "code", inputmode: "numeric", autocomplete: "one-time-code", required: true });
  const error = h("p.error", { role: "alert" });
  const form = h("form.login", null,
    h("h1", { text: t("mfa.title") }),
    h("label", { for: "code", text: t("mfa.code") }), code, error,
    h("button.primary", { type: "submit", text: t("mfa.submit") }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try { await api.mfa(mfaToken, /** @type {HTMLInputElement} */ (code).value.trim()); start(); }
    catch (err) {
      if (err instanceof ApiError && err.code === "invalid_mfa_token") loginScreen(t("mfa.expired"));
      else error.textContent = t("mfa.failed");
    }
  });
  app.append(h("main.center", null, form));
  code.focus();
}

/** The account requires MFA and this user has none: enrol (secret + otpauth URI), confirm a
 * first code, then show the backup codes once. @param {string} mfaToken */
async function enrolScreen(mfaToken) {
  clear(app);
  let enrolment;
  try { enrolment = await api.enrol(mfaToken); }
  catch { return loginScreen(t("mfa.expired")); }
  const code = h("input", { id: "enrol-code", inputmode: "numeric", autocomplete: "one-time-code", required: true, pattern: "[0-9]{6}" });
  const error = h("p.error", { role: "alert" });
  const form = h("form.login.enrol", { "aria-labelledby": "enrol-title" },
    h("h1", { id: "enrol-title", text: t("enrol.title") }),
    h("p", { text: t("enrol.intro") }),
    h("label", { for: "mfa-secret", text: t("enrol.secret") }),
    h("input.mono", { id: "mfa-secret", readonly: true, value: enrolment.secret }),
    h("label", { for: "mfa-uri", text: t("enrol.uri") }),
    h("textarea.mono", { id: "mfa-uri", readonly: true, rows: 3, text: enrolment.otpauth_uri }),
    h("label", { for: "enrol-code", text: t("enrol.code") }), code, error,
    h("button.primary", { type: "submit", text: t("enrol.submit") }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try { backupScreen(await api.confirmEnrol(mfaToken, /** @type {HTMLInputElement} */ (code).value.trim())); }
    catch (err) {
      if (err instanceof ApiError && err.code === "invalid_mfa_token") loginScreen(t("mfa.expired"));
      else error.textContent = t("mfa.failed");
    }
  });
  app.append(h("main.center", null, form));
  code.focus();
}

/** Backup codes, shown this once. @param {string[]} codes */
function backupScreen(codes) {
  clear(app);
  const go = h("button.primary", { type: "button", text: t("enrol.continue") });
  go.addEventListener("click", () => start());
  app.append(h("main.center", null, h("section.login", { "aria-labelledby": "backup-title" },
    h("h1", { id: "backup-title", text: t("enrol.backup_title") }),
    h("p", { text: t("enrol.backup_intro") }),
    h("ol.backup-codes.mono", { id: "backup-codes" }, ...codes.map((c) => h("li", { text: c }))),
    go)));
  go.focus();
}

// ---------------------------------------------------------------- the shell
/** The part of the address after `#/`: ["settings", "inboxes"], ["invite", token], or [""]. */
function route() { return location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent); }

/** After a login step's answer: the second factor, its enrolment, or the console. @param {any} r */
function loggedIn(r) {
  if (r?.status === "mfa_required") mfaScreen(r.mfa_token);
  else if (r?.status === "mfa_setup_required") enrolScreen(r.mfa_token);
  else start();
}

async function start() {
  applyTheme();
  const [where, ...rest] = route();
  if (location.pathname === "/setup") { disconnect(); return setupScreen(app, api, () => start()); }
  if (where === "invite" && rest[0]) { disconnect(); api.save(null); return inviteScreen(app, api, rest[0], loggedIn); }
  if (!api.session) {
    const open = await fetch("/api/v1/setup").then((r) => r.ok).catch(() => false);
    if (open) { location.assign("/setup"); return; }  // a fresh hub: its first-run page
    return loginScreen();
  }
  api.onLoggedOut = () => loginScreen(t("login.expired"));
  stopAnalytics();
  if (where === "analytics") { disconnect(); ringer.reset(); return analyticsScreen(app, api, topBar()); }
  if (where === "contacts") { disconnect(); ringer.reset(); return contactsScreen(app, api, rest, topBar()); }
  if (where === "settings") {
    disconnect();
    ringer.reset();
    return settingsScreen(app, api, rest, topBar());
  }
  shell();
  connect();
  try { await loadReference(); } catch (e) { if (!(e instanceof ApiError)) throw e; }
  renderSidebar();
  if (where === "conversations" && rest[0]) return openLinked(rest[0]);
  if (S.current) openConversation(S.current);  // after a language switch
}

/** `#/conversations/<id>` (a link from the contact page): that conversation, even when it is not
 * in the list's current filter; the address goes back to the plain console. @param {string} id */
async function openLinked(id) {
  history.replaceState(null, "", "#");
  try { S.convs.set(id, { ...S.convs.get(id), ...(await api.get(`/api/v1/conversations/${encodeURIComponent(id)}`)) }); }
  catch (e) { if (e instanceof ApiError) return toast(e.message); throw e; }  // fresh: a merge may have renamed its contact
  return openConversation(id);
}

/** The bar over the settings pages. */
function topBar() {
  const logout = h("button", { type: "button", text: t("ui.logout") });
  logout.addEventListener("click", async () => { await api.logout(); location.hash = ""; loginScreen(); });
  return h("header.top", null, h("strong.brand", { text: "Hub" }),
    h("span.me", null, h("a", { href: "#", id: "to-conversations", text: t("settings.back") })),
    h("a.button", { href: "#/contacts", id: "contacts-link", text: t("contacts.title") }),
    switches(), logout);
}

window.addEventListener("hashchange", () => { if (location.pathname !== "/setup") start(); });

function shell() {
  clear(app);
  const me = api.user;
  $.banner = h("div.banner", { role: "status", hidden: true, text: t("ui.reconnecting") });
  const presence = h("select", { id: "presence", "aria-label": t("presence.label") },
    ...["online", "busy", "offline"].map((s) => h("option", { value: s, text: t(`presence.${s}`) })));
  presence.addEventListener("change", () => socket?.emit("presence", { status: /** @type {HTMLSelectElement} */ (presence).value }));
  $.presence = presence;
  const notify = h("button.icon", { type: "button", title: t("ui.notifications"), "aria-label": t("ui.notifications"), text: "♪" });
  notify.addEventListener("click", () => notifier.enable());
  const help = h("button.icon", { type: "button", id: "help-button", title: t("help.title"), "aria-label": t("help.title"), "aria-keyshortcuts": "?", text: "?" });
  help.addEventListener("click", () => showHelp());
  const profile = h("button.icon", { type: "button", id: "profile-button", title: t("profile.title"), "aria-label": t("profile.title"), text: "☎" });
  profile.addEventListener("click", () => showProfile(api));
  const logout = h("button", { type: "button", text: t("ui.logout") });
  logout.addEventListener("click", async () => { await api.logout(); loginScreen(); });
  const header = h("header.top", null,
    h("strong.brand", { text: "Hub" }),
    h("span.me", null, h("span.avatar", { text: initials(me?.name), "aria-hidden": "true" }), h("span", { text: me?.name || "" })),
    presence, notify, profile, help,
    h("a.button", { href: "#/contacts", id: "contacts-link", text: t("contacts.title") }),
    h("a.button", { href: "#/analytics", id: "analytics-link", text: t("analytics.title") }),
    me?.role === "administrator" ? h("a.button", { href: "#/settings/inboxes", id: "settings-link", text: t("settings.title") }) : null,
    switches(), logout);
  $.sidebar = h("nav.sidebar", { "aria-label": t("sidebar.label") });
  $.listbox = h("div.vlist", { role: "listbox", tabindex: "0", "aria-label": t("list.label"), id: "conversation-list" });
  $.listEmpty = h("p.empty", { text: t("list.empty"), hidden: true });
  $.convo = h("section.convo", { "aria-label": t("convo.label") }, h("p.empty", { text: t("convo.none") }));
  $.contact = h("aside.contact", { "aria-label": t("contact.label") });
  app.append($.banner, header, h("div.layout", null, $.sidebar,
    h("section.list", { "aria-label": t("list.label") }, $.listEmpty, $.listbox), $.convo, $.contact));
  list = new VirtualList($.listbox, ROW, renderRow, () => loadMore());
  $.listbox.addEventListener("click", (e) => {
    const row = /** @type {HTMLElement} */ (e.target).closest(".vrow");
    if (row instanceof HTMLElement && row.dataset.id) openConversation(row.dataset.id);
  });
  $.listbox.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") { e.preventDefault(); step(e.key === "ArrowDown" ? 1 : -1); }
  });
}

async function loadReference() {
  const [inboxes, users, teams, labels] = await Promise.all([
    api.get("/api/v1/inboxes?limit=200"),
    api.get("/api/v1/users?limit=200").catch(() => ({ data: [] })),
    api.get("/api/v1/teams?limit=200").catch(() => ({ data: [] })),
    api.get("/api/v1/labels?limit=200").catch(() => ({ data: [] })),
  ]);
  S.inboxes.clear();
  for (const i of inboxes.data) S.inboxes.set(i.id, i);
  for (const u of users.data) S.users.set(u.id, u);
  S.teams = teams.data;
  S.labels = labels.data;
}

/** @param {string | null} id */
function nameOf(id) {
  if (!id) return "";
  if (id === api.user?.id) return api.user.name;
  return S.users.get(id)?.name || id.slice(0, 8);
}

// ---------------------------------------------------------------- sidebar and filters
function renderSidebar() {
  const s = $.sidebar;
  clear(s);
  const views = h("div.views", { role: "group", "aria-label": t("sidebar.views") },
    ...["mine", "unassigned", "all"].map((v) => {
      const b = h("button", { type: "button", text: t(`view.${v}`), "aria-pressed": String(S.filters.view === v), "data-view": v });
      b.addEventListener("click", () => { S.filters.view = v; renderSidebar(); reload(); });
      return b;
    }));
  const inboxList = h("ul.inboxes", { "aria-label": t("sidebar.inboxes") },
    ...[...S.inboxes.values()].map((i) => {
      const c = S.counters.get(i.id);
      const b = h("button", { type: "button", "aria-pressed": String(S.filters.inbox_id === i.id), "data-inbox": i.id },
        h("span", { text: `${channelIcon(i)} ${i.name}` }),
        h("span.count", { text: c ? String(c.open) : "", title: t("sidebar.open_count"), "data-counter": i.id }));
      b.addEventListener("click", () => { S.filters.inbox_id = S.filters.inbox_id === i.id ? "" : i.id; renderSidebar(); reload(); });
      return h("li", null, b);
    }));
  /** @param {string} key @param {string[][]} options */
  const select = (key, options) => {
    const el = h("select", { id: `filter-${key}` },
      h("option", { value: "", text: t("filter.any") }),
      ...options.map(([v, label]) => h("option", { value: v, text: label, selected: /** @type {any} */ (S.filters)[key] === v })));
    el.addEventListener("change", () => { /** @type {any} */ (S.filters)[key] = /** @type {HTMLSelectElement} */ (el).value; reload(); });
    return h("div.field", null, h("label", { for: `filter-${key}`, text: t(`filter.${key}`) }), el);
  };
  const agents = h("ul.agents", { "aria-label": t("presence.others") },
    ...[...S.presence.entries()].filter(([id]) => id !== api.user?.id).map(([id, st]) =>
      h("li", null, h(`span.dot.dot-${st}`, { "aria-hidden": "true" }), h("span", { text: `${nameOf(id)} — ${t(`presence.${st}`)}` }))));
  s.append(views,
    h("h2", { text: t("sidebar.inboxes") }), inboxList,
    h("h2", { text: t("sidebar.filters") }),
    select("status", ["open", "pending", "snoozed", "resolved"].map((v) => [v, t(`status_conv.${v}`)])),
    select("team_id", S.teams.map((x) => [x.id, x.name])),
    select("label", S.labels.map((x) => [x.name, x.name])),
    select("priority", ["urgent", "high", "medium", "low"].map((v) => [v, t(`priority.${v}`)])),
    h("h2", { text: t("presence.others") }), agents);
}

/** @param {any} inbox */
function channelIcon(inbox) {
  if (!inbox) return "•";
  if (inbox.channel === "whatsapp_cloud" || inbox.settings?.kind === "whatsapp") return "🟢";
  if (inbox.channel === "twilio") return "✉";
  if (inbox.channel === "api") return "⚙";
  if (inbox.channel === "sip") return "☎";
  if (inbox.channel === "meta_messenger") return "💬";
  if (inbox.channel === "instagram") return "📷";
  if (inbox.channel === "telegram") return "✈";
  return "•";
}

function updateCounters() {
  for (const [id, c] of S.counters) {
    const el = $.sidebar?.querySelector(`[data-counter="${id}"]`);
    if (el) el.textContent = String(c.open);
  }
}

// ---------------------------------------------------------------- the conversation list
function query(/** @type {string | null} */ cursor) {
  const f = S.filters;
  const p = new URLSearchParams({ limit: "200" });
  if (f.status) p.set("status", f.status);
  if (f.inbox_id) p.set("inbox_id", f.inbox_id);
  if (f.team_id) p.set("team_id", f.team_id);
  if (f.label) p.set("label", f.label);
  if (f.priority) p.set("priority", f.priority);
  if (f.view === "mine") p.set("mine", "true");
  if (f.view === "unassigned") p.set("unassigned", "true");
  if (cursor) p.set("cursor", cursor);
  return `/api/v1/conversations?${p}`;
}

/** @param {any} row */
function matches(row) {
  const f = S.filters;
  if (f.status && row.status !== f.status) return false;
  if (f.inbox_id && row.inbox_id !== f.inbox_id) return false;
  if (f.team_id && row.team_id !== f.team_id) return false;
  if (f.label && !(row.labels || []).includes(f.label)) return false;
  if (f.priority && row.priority !== f.priority) return false;
  if (f.view === "mine" && row.assignee_id !== api.user?.id) return false;
  if (f.view === "unassigned" && row.assignee_id) return false;
  return true;
}

/** @param {any} a @param {any} b */
const newer = (a, b) => (a.last_activity_at < b.last_activity_at ? 1 : a.last_activity_at > b.last_activity_at ? -1 : a.id < b.id ? 1 : -1);

let generation = 0;
let firstList = false;  // a new socket's first connection reads the list, its reconnections replay
const HOLD_AT_MOST_MS = 10_000;
let reading = 0;  // reads of the list or the timeline in flight; the socket's events wait meanwhile

/**
 * A read over REST with the socket's events held, then applied in order. A read that began
 * before an event's change and answers after the event would otherwise put the older state back
 * over it, and nothing would correct it until the next event; applied after the read, the
 * events bring it up to date (an unread count takes a message once: isNewInbound; the timeline
 * takes a message once by its id).
 * @param {() => Promise<void>} read
 */
async function holdingEvents(read) {
  reading++;
  S.queued ??= [];
  let done = false;
  const release = () => {
    if (done) return;
    done = true;
    if (--reading === 0) { const q = S.queued || []; S.queued = null; for (const batch of q) onEvents(batch); }
  };
  const stuck = setTimeout(release, HOLD_AT_MOST_MS);  // a hung read must not freeze the inbox
  try { await read(); } finally { clearTimeout(stuck); release(); }
}

function reload() {
  return holdingEvents(async () => {
    const mine = ++generation;
    S.cursor = null;
    S.loading = true;
    try {
      const page = await api.get(query(null));
      if (mine !== generation) return;
      S.rows = [];
      absorbPage(page);
    } finally { if (mine === generation) S.loading = false; }
  });
}

async function loadMore() {
  if (S.loading || !S.cursor) return;
  await holdingEvents(async () => {
    const mine = generation;
    S.loading = true;
    try {
      const page = await api.get(query(S.cursor));
      if (mine === generation) absorbPage(page);
    } finally { if (mine === generation) S.loading = false; }
  });
}

/** @param {any} page */
function absorbPage(page) {
  for (const c of page.inboxes || []) S.counters.set(c.inbox_id, c);
  const seen = new Set(S.rows.map((r) => r.id));
  for (const row of page.data) {
    S.convs.set(row.id, row);
    if (row.last_message_preview) S.previews.set(row.id, row.last_message_preview);
    if (!seen.has(row.id)) S.rows.push(row);
  }
  S.cursor = page.next_cursor;
  updateCounters();
  list?.setItems(S.rows);
  $.listEmpty.hidden = S.rows.length > 0;
}

/** Put a changed row where it belongs in the visible list (or take it out). @param {any} row */
function place(row) {
  const at = S.rows.findIndex((r) => r.id === row.id);
  if (at >= 0) S.rows.splice(at, 1);
  if (matches(row)) {
    let lo = 0, hi = S.rows.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (newer(S.rows[mid], row) < 0) lo = mid + 1; else hi = mid; }
    // a row below the loaded pages is left for pagination to bring
    if (lo < S.rows.length || !S.cursor) S.rows.splice(lo, 0, row);
  }
  list?.setItems(S.rows);
  $.listEmpty.hidden = S.rows.length > 0;
}

/** @param {HTMLElement} el @param {any} row */
function renderRow(el, row) {
  if (el.dataset.id === row.id && el.dataset.v === rowVersion(row)) return;
  el.dataset.id = row.id;
  el.dataset.v = rowVersion(row);
  el.setAttribute("aria-selected", String(row.id === S.current));
  const inbox = S.inboxes.get(row.inbox_id);
  const unread = row.unread_count || 0;
  clear(el).append(
    h("span.chan", { text: channelIcon(inbox), title: inbox?.channel || "", "aria-hidden": "true" }),
    h("span.main", null,
      h("span.name", { text: row.contact_name || t("list.unknown_contact") }),
      h("span.preview", { text: S.previews.get(row.id) || "" })),
    h("span.side", null,
      h("span.wait", { text: since(row.last_message_at || row.last_activity_at), title: t("list.waiting") }),
      row.assignee_id ? h("span.avatar.small", { text: initials(nameOf(row.assignee_id)), title: nameOf(row.assignee_id) }) : null,
      unread ? h("span.badge", { text: String(unread), "aria-label": t("list.unread", { n: unread }) }) : null));
}

/** @param {any} row */
function rowVersion(row) {
  return `${row.last_activity_at}|${row.assignee_id}|${row.unread_count}|${row.status}|${row.contact_name}|${S.previews.get(row.id) || ""}|${row.id === S.current}`;
}

/** @param {number} delta */
function step(delta) {
  const at = S.rows.findIndex((r) => r.id === S.current);
  const next = S.rows[Math.max(0, Math.min(S.rows.length - 1, at + delta))];
  if (next) { openConversation(next.id); list?.scrollTo(S.rows.indexOf(next)); }
}

// ---------------------------------------------------------------- realtime
function connect() {
  disconnect();
  S.queued ??= [];  // held from the first connection until the list is in (reload releases them)
  firstList = true;
  socket = io("/agent", {
    transports: ["websocket"],
    auth: (/** @type {(a: any) => void} */ cb) => cb(S.lastSeq >= 0 ? { token: api.token, last_seq: S.lastSeq } : { token: api.token }),
  });
  socket.on("connect", async () => {
    S.connected = true;
    $.banner.hidden = true;
    if (firstList) {  // the list over REST, then the events held meanwhile
      firstList = false;
      await reload().catch(() => {});
    }
    // the screen may have been left (settings) while the list loaded: no socket then
    if (S.current) socket?.emit("join", { conversation_id: S.current });
    socket?.emit("presence", { status: /** @type {HTMLSelectElement} */ ($.presence).value });
  });
  socket.on("disconnect", (/** @type {string} */ reason) => {
    S.connected = false;
    $.banner.hidden = false;
    if (reason === "io server disconnect") {  // credentials changed: renew, then come back
      api.refresh().then((ok) => { if (ok) setTimeout(() => socket?.connect(), 500); });
    }
  });
  socket.on("connect_error", async (/** @type {any} */ err) => {
    $.banner.hidden = false;
    const code = err?.data?.code;
    if (code === "invalid_token" || code === "unauthenticated") {
      if (await api.refresh()) socket?.connect(); else loginScreen(t("login.expired"));
    }
  });
  socket.on("events", (/** @type {any[]} */ batch) => { if (S.queued) S.queued.push(batch); else onEvents(batch); });
  socket.on("resync", (/** @type {{head: number}} */ r) => { S.lastSeq = r.head; reload(); if (S.current) loadTimeline(S.current); });
  socket.on("presence_list", (/** @type {Record<string, string>} */ all) => { S.presence = new Map(Object.entries(all)); renderSidebar(); });
  socket.on("presence", (/** @type {any} */ p) => {
    if (p.status === "offline") S.presence.delete(p.agent_id); else S.presence.set(p.agent_id, p.status);
    if (p.agent_id === api.user?.id && p.status !== "offline") /** @type {HTMLSelectElement} */ ($.presence).value = p.status;
    renderSidebar();
  });
  socket.on("typing", (/** @type {any} */ e) => {
    if (e.conversation_id !== S.current || !$.typing) return;
    $.typing.textContent = e.on ? t("convo.typing", { name: nameOf(e.agent_id) || e.name || "" }) : ""; // e.name: a web chat visitor
  });
  /** @type {any} */ (window).hubConsole.socket = socket;
}

function disconnect() {
  if (socket) { socket.removeAllListeners(); socket.disconnect(); socket = null; }
}

/** @param {any[]} batch */
function onEvents(batch) {
  for (const item of batch) {
    if (item.seq <= S.lastSeq) continue;  // a duplicate across a reconnect race
    S.lastSeq = item.seq;
    try { apply(item); } catch (e) { console.error("event", item, e); }
  }
}

/** @param {any} item */
function apply(item) {
  const ev = item.event;
  const ctx = item.context;
  if (ctx?.inbox) { S.counters.set(ctx.inbox.inbox_id, ctx.inbox); updateCounters(); }
  const p = ev.payload || {};
  const id = ev.conversation_id;
  if (ev.type === "message.received" || ev.type === "message.created") {
    if (p.content) S.previews.set(id, p.content);
  }
  if (ctx?.conversation) {
    const old = S.convs.get(id);
    const row = { ...(old || { unread_count: 0, contact_name: null }), ...ctx.conversation };
    if (ev.type === "message.received" && isNewInbound(row, p.message_id)) {
      if (id !== S.current) row.unread_count = (row.unread_count || 0) + 1;
      row.last_inbound_message_id = p.message_id;
      row.last_inbound_at = ev.occurred_at;
    }
    if ((ev.type === "message.received" || ev.type === "message.created") && p.content) row.last_message_preview = p.content.slice(0, 140);
    if (ev.type === "conversation.read" && p.agent_id === api.user?.id) row.unread_count = 0;
    if (ev.type === "conversation.attributes_changed") row.attributes = p.attributes;
    S.convs.set(id, row);
    place(row);
    if (!row.contact_name) fillName(row);  // an older hub without contact_name in the context
  }
  if (ev.type === "message.received" && ctx?.conversation?.assignee_id === api.user?.id && (id !== S.current || document.hidden)) {
    notifier.notify(S.convs.get(id)?.contact_name || t("list.unknown_contact"), p.content || "");
  }
  if (ev.type.startsWith("call.")) ringer.onEvent(ev, ctx);
  if (ev.type.startsWith("call.") || ev.type === "conversation.updated") remember(id, ev);
  if (id !== S.current) return;
  aiPanel?.onEvent(ev);
  if (ev.type === "message.analysed") {  // the message's language and sentiment badges
    const found = { language: p.language, sentiment: p.sentiment, intents: (p.intents || []).map((/** @type {any} */ i) => i.label) };
    S.analysed.set(p.message_id, found);
    const m = S.timeline.find((x) => x.id === p.message_id);
    if (m) { Object.assign(m, found); replaceItem(m); }
  }
  if (ev.type === "message.received") {
    appendItem(messageItem({ id: p.message_id, direction: "inbound", private: false, content: p.content, content_type: p.content_type, attachments: p.attachments, created_at: ev.occurred_at, status: "received" }));
    socket?.emit("mark_read", { conversation_id: id });
  } else if (ev.type === "message.created") {
    appendItem(messageItem({ id: p.message_id, direction: "outbound", private: p.private, content: p.content, attachments: p.attachments, created_at: ev.occurred_at, status: p.status, sender_id: p.sender_id }));
  } else if (ev.type === "conversation.attributes_changed") {
    const fresh = attributeChips(p.attributes);
    $.attrs?.replaceWith(fresh); $.attrs = fresh;
  } else if (ev.type === "message.edited") {
    const m = S.timeline.find((x) => x.id === p.message_id);
    if (m) {
      m.edits = [...(m.edits || []), { edited_at: p.edited_at, previous_content: p.previous_content }];
      m.content = p.content; m.edited_at = p.edited_at; replaceItem(m);
    }
  } else if (ev.type === "message.status_changed") {
    const m = S.timeline.find((x) => x.id === p.message_id);
    if (m) { m.status = p.status; m.error_message = p.error_message; m.error_code = p.error_code; replaceItem(m); }
  } else if (ev.type === "conversation.updated") {
    for (const s of systemItems(ev)) appendItem(s);
    renderActions();
  } else if (ev.type.startsWith("call.")) {
    for (const c of callItems(ev)) appendItem(c);
  }
}

/**
 * Whether a received message is not yet in the row's unread count. The list read over REST may
 * already hold a message whose event was queued while it loaded; the server counts the contact's
 * messages by id, so the newest id the row has counted tells (ids grow within a conversation).
 * @param {any} row @param {string} messageId
 */
function isNewInbound(row, messageId) {
  return !row.last_inbound_message_id || !messageId || messageId > row.last_inbound_message_id;
}

/** A new row from an event has no contact name yet: one small read fills it. @param {any} row */
async function fillName(row) {
  try {
    const full = await api.get(`/api/v1/conversations/${row.id}`);
    const cur = S.convs.get(row.id);
    if (cur) { cur.contact_name = full.contact_name; list?.schedule(); }
  } catch { /* gone or not visible */ }
}

// ---------------------------------------------------------------- the conversation view
/** @param {string} id */
async function openConversation(id) {
  if (S.current && S.current !== id) socket?.emit("leave", { conversation_id: S.current });
  S.current = id;
  S.timeline = [];
  S.intents = [];
  S.analysed = new Map();
  const row = S.convs.get(id);
  if (row) { row.unread_count = 0; list?.schedule(); }
  socket?.emit("join", { conversation_id: id });
  const inbox = S.inboxes.get(row?.inbox_id);
  $.timeline = h("ol.timeline", { "aria-label": t("convo.timeline"), "aria-live": "polite" });
  $.typing = h("p.typing", { "aria-live": "polite" });
  $.actions = h("div.actions", { role: "toolbar", "aria-label": t("actions.label") });
  clear($.convo).append(
    h("header.convo-head", null, h("h2", null, row?.contact_id
      ? h("a", { href: `#/contacts/${row.contact_id}`, id: "contact-link", title: t("contacts.open"), text: row?.contact_name || t("list.unknown_contact") })
      : t("list.unknown_contact")),
      h("span.chip", { text: `${channelIcon(inbox)} ${inbox?.name || ""}` }),
      $.attrs = attributeChips(row?.attributes),
      inbox?.channel === "sip" ? callButton(api, id, toast) : null, macrosButton(api, id, toast)),
    $.actions, $.timeline, $.typing, composer(id, inbox));
  renderActions();
  await loadTimeline(id);
  socket?.emit("mark_read", { conversation_id: id });
  if (row) renderContact(row.contact_id);
}

/** What channels learnt about the conversation (a Telegram deep link's payload, the web chat's
 * reply-by-mail address), as chips; empty values are not shown. @param {Record<string, string> | undefined} attributes */
function attributeChips(attributes) {
  const shown = Object.entries(attributes || {}).filter(([, v]) => v);
  return h("span.convo-attrs", null, ...shown.map(([k, v]) => {
    const label = ["start_payload", "reply_by_email"].includes(k) ? t(`convo.attr.${k}`) : k;
    return h("span.chip.attr", { "data-attribute": k, text: `${label}: ${v}` });
  }));
}

/** The conversation's timeline over REST, with the socket's events held meanwhile (a status,
 * an edit or an analysis arriving during the read lands on the messages it read). @param {string} id */
function loadTimeline(id) {
  return holdingEvents(async () => {
    const [messages, events] = await Promise.all([
      pages(`/api/v1/conversations/${id}/messages`),
      pages(`/api/v1/conversations/${id}/events`).catch(() => []),
    ]);
    const logged = [...events, ...(S.recent.get(id) || []).filter((e) => !events.some((x) => x.id === e.id))];
    /** @type {any[]} */
    for (const m of messages) if (!m.language && S.analysed.has(m.id)) Object.assign(m, S.analysed.get(m.id));
    const items = [...messages.map(messageItem), ...logged.flatMap(systemItems), ...logged.flatMap(callItems)];
    items.sort(byTime);
    if (S.current !== id) return;
    const live = S.timeline.filter((x) => !items.some((m) => m.id === x.id));
    S.timeline = [...items, ...live];
    clear($.timeline).append(...S.timeline.map((x) => h("li", null, renderItem(x, ctx()))));
    $.timeline.scrollTop = $.timeline.scrollHeight;
    updateWindow();
  });
}

/** Keep a conversation's last timeline events as they arrive: the journal logs them a moment
 * later, so a view opened in between still shows them. @param {string} id @param {any} ev */
function remember(id, ev) {
  const kept = S.recent.get(id) || [];
  kept.push(ev);
  S.recent.set(id, kept.slice(-50));
  if (S.recent.size > 200) S.recent.delete(S.recent.keys().next().value || "");
}

/** Every page of a cursor-paginated list (at most 20 pages of 200). @param {string} path */
async function pages(path) {
  /** @type {any[]} */
  const all = [];
  let cursor = null;
  for (let n = 0; n < 20; n++) {
    const page = await api.get(`${path}?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    all.push(...page.data);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return all;
}

/** @param {any} a @param {any} b */
const byTime = (a, b) => Date.parse(a.at) - Date.parse(b.at) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function ctx() { return { api, names: nameOf }; }

/** @param {any} item */
function appendItem(item) {
  const old = S.timeline.find((x) => x.id === item.id);
  if (old) { Object.assign(old, item); return replaceItem(old); }
  S.timeline.push(item);
  $.timeline?.append(h("li", null, renderItem(item, ctx())));
  if ($.timeline) $.timeline.scrollTop = $.timeline.scrollHeight;
  updateWindow();
}

/** @param {any} item */
function replaceItem(item) {
  const el = $.timeline?.querySelector(`[data-item-id="${CSS.escape(item.id)}"]`);
  el?.replaceWith(renderItem(item, ctx()));
}

// ---------------------------------------------------------------- actions
function renderActions() {
  const row = S.convs.get(S.current || "");
  if (!row || !$.actions) return;
  const id = row.id;
  /** @param {any} changes */
  const change = async (changes) => {
    try { const r = await api.patch(`/api/v1/conversations/${id}`, changes); S.convs.set(id, { ...S.convs.get(id), ...r }); place(S.convs.get(id)); renderActions(); }
    catch (e) { toast(e instanceof Error ? e.message : String(e)); }
  };
  const assignee = h("select", { id: "assignee", "aria-label": t("actions.assignee") },
    h("option", { value: "", text: t("actions.nobody") }),
    ...[...S.users.values()].filter((u) => u.status !== "disabled").map((u) => h("option", { value: u.id, text: u.name, selected: u.id === row.assignee_id })));
  if (row.assignee_id && !S.users.has(row.assignee_id)) assignee.append(h("option", { value: row.assignee_id, text: nameOf(row.assignee_id), selected: true }));
  assignee.addEventListener("change", () => change({ assignee_id: /** @type {HTMLSelectElement} */ (assignee).value || null }));
  const team = h("select", { id: "team", "aria-label": t("actions.team") },
    h("option", { value: "", text: t("actions.no_team") }),
    ...S.teams.map((x) => h("option", { value: x.id, text: x.name, selected: x.id === row.team_id })));
  team.addEventListener("change", () => change({ team_id: /** @type {HTMLSelectElement} */ (team).value || null }));
  const priority = h("select", { id: "priority", "aria-label": t("actions.priority") },
    h("option", { value: "", text: t("actions.no_priority") }),
    ...["urgent", "high", "medium", "low"].map((v) => h("option", { value: v, text: t(`priority.${v}`), selected: v === row.priority })));
  priority.addEventListener("change", () => change({ priority: /** @type {HTMLSelectElement} */ (priority).value || null }));
  const resolved = row.status === "resolved";
  const status = h("button", { type: "button", id: "resolve", text: resolved ? t("actions.reopen") : t("actions.resolve"), "aria-keyshortcuts": "e" });
  status.addEventListener("click", () => change({ status: resolved ? "open" : "resolved" }));
  const until = h("input", { type: "datetime-local", id: "snooze-until", "aria-label": t("actions.snooze_until") });
  const snooze = h("button", { type: "button", text: t("actions.snooze") });
  snooze.addEventListener("click", () => {
    const v = /** @type {HTMLInputElement} */ (until).value;
    if (v) change({ status: "snoozed", snoozed_until: new Date(v).toISOString() });
  });
  const labels = h("fieldset.labels", null, h("legend", { text: t("actions.labels") }),
    ...S.labels.map((l) => {
      const box = h("input", { type: "checkbox", id: `label-${l.id}`, checked: (row.labels || []).includes(l.name) });
      box.addEventListener("change", () => {
        const set = new Set(row.labels || []);
        if (/** @type {HTMLInputElement} */ (box).checked) set.add(l.name); else set.delete(l.name);
        change({ labels: [...set] });
      });
      return h("label.label-chip", { style: { borderColor: l.color } }, box, l.name);
    }));
  $.labelSuggestions = h("span.label-suggestions", { role: "group", "aria-label": t("ai.suggested_labels") });
  labels.insertBefore($.labelSuggestions, labels.children[1] || null);
  applyLabel = (/** @type {string} */ name) => change({ labels: [...new Set([...(row.labels || []), name])] });
  renderLabelSuggestions();
  clear($.actions).append(assignee, team, priority, status, until, snooze, labels);
}

/** @type {(name: string) => void} */ let applyLabel = () => {};

/** At the top of the label picker: the AI part's intent labels for the last customer message
 * that are not on the conversation yet, marked as suggested, each applied with one click through
 * the same change as ticking it. An intent with no account label of its name is shown, not
 * offered (the API would refuse it): an administrator adds the label in Settings. */
function renderLabelSuggestions() {
  const row = S.convs.get(S.current || "");
  const box = $.labelSuggestions;
  if (!row || !box) return;
  const on = new Set((row.labels || []).map((/** @type {string} */ x) => x.toLowerCase()));
  const shown = [...S.intents].sort((a, b) => b.confidence - a.confidence)
    .filter((i) => !on.has(i.label.toLowerCase()))
    .map((i) => {
      const label = S.labels.find((l) => l.name.toLowerCase() === i.label.toLowerCase());
      const pct = Math.round(i.confidence * 100);
      if (!label) {
        return h("span.label-chip.label-suggested.missing", { "data-intent": i.label, title: t("ai.label_missing", { label: i.label }), text: i.label });
      }
      const title = t("ai.apply_label", { label: label.name, confidence: pct });
      const b = h("button.label-chip.label-suggested", { type: "button", "data-label": label.name, title, "aria-label": title, style: { borderColor: label.color } },
        h("span.label-plus", { "aria-hidden": "true", text: "+" }), label.name, h("span.label-conf", { "aria-hidden": "true", text: `${pct}%` }));
      b.addEventListener("click", () => applyLabel(label.name));
      return b;
    });
  clear(box).append(...(shown.length ? [h("span.label-suggested-mark", { text: t("ai.suggested") }), ...shown] : []));
  box.hidden = shown.length === 0;
}

// ---------------------------------------------------------------- composer
/** @param {string} id @param {any} inbox */
function composer(id, inbox) {
  const isWhatsApp = inbox?.channel === "whatsapp_cloud" || inbox?.settings?.kind === "whatsapp";
  const isSms = inbox?.channel === "twilio" && !isWhatsApp;
  const text = h("textarea", { id: "reply", rows: 3, "aria-label": t("composer.reply"), placeholder: t("composer.placeholder") });
  const note = h("input", { type: "checkbox", id: "private" });
  const file = h("input", { type: "file", id: "attach", "aria-label": t("composer.attach") });
  const counter = h("span.counter", { id: "sms-counter", "aria-live": "polite" });
  const suggestions = h("ul.suggest", { role: "listbox", hidden: true, "aria-label": t("composer.canned") });
  $.window = h("p.window", { id: "wa-window", hidden: !isWhatsApp });
  const tplName = h("input", { id: "tpl-name", "aria-label": t("composer.template_name"), placeholder: t("composer.template_name") });
  const tplLang = h("input", { id: "tpl-lang", value: "en", "aria-label": t("composer.template_language"), size: 5 });
  const tplParams = h("input", { id: "tpl-params", "aria-label": t("composer.template_params"), placeholder: t("composer.template_params") });
  $.templates = h("div.templates", { hidden: true }, tplName, tplLang, tplParams);
  $.composerIsWa = /** @type {any} */ (isWhatsApp);
  const send = h("button.primary", { type: "submit", text: t("composer.send") });
  const mail = emailComposer(inbox, id);
  aiPanel = new AiPanel(api, id, /** @type {HTMLTextAreaElement} */ (text), toast, (intents) => {
    if (S.current !== id) return;
    S.intents = intents;
    renderLabelSuggestions();
  });
  const form = h("form.composer", { "aria-label": t("composer.label") }, $.window, $.templates, mail?.el, suggestions, aiPanel.el, text,
    h("div.row", null, h("label", null, note, " ", t("composer.private")), file, counter, send));
  note.addEventListener("change", () => form.classList.toggle("is-note", /** @type {HTMLInputElement} */ (note).checked));
  let typingOn = false, typingTimer = 0, smsTimer = 0, cannedTimer = 0;
  text.addEventListener("input", () => {
    const v = /** @type {HTMLTextAreaElement} */ (text).value;
    if (!typingOn) { typingOn = true; socket?.emit("typing", { conversation_id: id, on: true }); }
    clearTimeout(typingTimer);
    typingTimer = window.setTimeout(() => { typingOn = false; socket?.emit("typing", { conversation_id: id, on: false }); }, 2000);
    if (isSms) {
      clearTimeout(smsTimer);
      smsTimer = window.setTimeout(async () => {
        const s = await api.post("/api/v1/sms/segments", { text: v }).catch(() => null);
        if (s) counter.textContent = t("composer.segments", { chars: s.characters, segments: s.segments, encoding: s.encoding });
      }, 150);
    }
    clearTimeout(cannedTimer);
    if (v.startsWith("/")) {
      cannedTimer = window.setTimeout(async () => {
        const q = v.slice(1).trim();
        const r = await api.get(`/api/v1/canned_responses?limit=10${q ? `&q=${encodeURIComponent(q)}` : ""}`).catch(() => ({ data: [] }));
        clear(suggestions).append(...r.data.map((/** @type {any} */ c) => {
          const li = h("li", { role: "option", tabindex: "-1", text: `/${c.short_code} — ${c.content}` });
          li.addEventListener("click", () => { /** @type {HTMLTextAreaElement} */ (text).value = c.content; suggestions.hidden = true; text.focus(); });
          return li;
        }));
        suggestions.hidden = r.data.length === 0;
      }, 120);
    } else suggestions.hidden = true;
  });
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !suggestions.hidden) {
      const first = suggestions.querySelector("li");
      if (first) { e.preventDefault(); /** @type {HTMLElement} */ (first).click(); return; }
    }
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
    if (e.key === "Escape") suggestions.hidden = true;
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const content = /** @type {HTMLTextAreaElement} */ (text).value;
    const priv = /** @type {HTMLInputElement} */ (note).checked;
    const f = /** @type {HTMLInputElement} */ (file).files?.[0];
    try {
      if (f) {
        const data = new FormData();
        data.append("file", f);
        if (content) data.append("content", content);
        data.append("private", String(priv));
        await api.post(`/api/v1/conversations/${id}/attachments`, data);
        /** @type {HTMLInputElement} */ (file).value = "";
      } else if (!$.templates.hidden && !priv) {
        const params = /** @type {HTMLInputElement} */ (tplParams).value.split(",").map((x) => x.trim()).filter(Boolean);
        await api.post(`/api/v1/conversations/${id}/messages`, { template: { name: /** @type {HTMLInputElement} */ (tplName).value.trim(), language: /** @type {HTMLInputElement} */ (tplLang).value.trim(), body_parameters: params }, client_id: crypto.randomUUID() });
      } else {
        if (!content.trim()) return;
        await api.post(`/api/v1/conversations/${id}/messages`, { content, private: priv, client_id: crypto.randomUUID(), ...(mail && !priv ? { email: mail.options() } : {}) });
        mail?.sent();
      }
      /** @type {HTMLTextAreaElement} */ (text).value = "";
      counter.textContent = "";
      socket?.emit("typing", { conversation_id: id, on: false });
    } catch (err) {
      toast(err instanceof ApiError && err.code === "window_closed" ? t("composer.window_closed") : err instanceof Error ? err.message : String(err));
    }
  });
  return form;
}

/**
 * When the contact last wrote: the row's last_inbound_at, or, for that same message in the
 * timeline, the provider's earlier timestamp (a webhook delivered late) as the hub's own check
 * counts it. -Infinity when they never wrote.
 */
function windowStart() {
  const row = S.convs.get(S.current || "");
  const stored = row?.last_inbound_at ? Date.parse(row.last_inbound_at) : -Infinity;
  const m = [...S.timeline].reverse().find((x) => x.kind === "message" && x.direction === "inbound");
  if (!m) return stored;
  const received = Date.parse(m.created_at || m.at);
  const sent = m.sent_at ? Date.parse(m.sent_at) : received;
  return received >= stored - 1000 ? Math.min(sent, received) : stored;
}

/** WhatsApp: the 24-hour reply window from the contact's last message. */
function updateWindow() {
  if (!$.window || !$.composerIsWa) return;
  const left = windowStart() + 24 * 3600_000 - Date.now();
  const open = left > 0;
  $.window.textContent = open ? t("composer.window_open", { hours: Math.floor(left / 3600_000), minutes: Math.floor((left % 3600_000) / 60_000) }) : t("composer.window_closed");
  $.window.className = `window ${open ? "open" : "closed"}`;
  $.templates.hidden = open;
}

// ---------------------------------------------------------------- contact panel
/** @param {string} contactId */
async function renderContact(contactId) {
  const [c, theirs] = await Promise.all([
    api.get(`/api/v1/contacts/${contactId}`).catch(() => null),
    api.get(`/api/v1/conversations?contact_id=${encodeURIComponent(contactId)}&limit=20`).catch(() => ({ data: [] })),
  ]);
  if (!c) return;
  const previous = theirs.data.filter((/** @type {any} */ x) => x.id !== S.current);
  for (const x of previous) if (!S.convs.has(x.id)) S.convs.set(x.id, x);
  clear($.contact).append(
    h("h2", null, h("a", { href: `#/contacts/${c.id}`, text: c.name || t("list.unknown_contact") })),
    h("h3", { text: t("contact.identities") }),
    h("ul", null, ...c.identities.map((/** @type {any} */ i) => h("li", null, h("span.chip", { text: i.channel }), " ", i.address))),
    h("h3", { text: t("contact.attributes") }),
    h("dl", null, ...Object.entries(c.attributes || {}).flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: typeof v === "string" ? v : JSON.stringify(v) })])),
    h("h3", { text: t("contact.previous") }),
    previous.length ? h("ul", null, ...previous.map((x) => {
      const b = h("button.link", { type: "button", text: `${t(`status_conv.${x.status}`)} · ${new Date(x.created_at || x.last_activity_at).toLocaleDateString()}` });
      b.addEventListener("click", () => openConversation(x.id));
      return h("li.previous", { "data-conversation": x.id }, b, x.last_message_preview ? h("p.muted", { text: x.last_message_preview }) : null);
    })) : h("p.muted", { text: t("contact.no_previous") }));
}

// ---------------------------------------------------------------- keyboard, toasts
document.addEventListener("keydown", (e) => {
  const target = /** @type {HTMLElement} */ (e.target);
  if (e.ctrlKey || e.metaKey || e.altKey || target.closest("input, textarea, select")) return;
  if (!api.session || !$.convo?.isConnected) return;  // the conversation screen only
  const map = /** @type {Record<string, () => void>} */ ({
    j: () => step(1), k: () => step(-1),
    r: () => document.getElementById("reply")?.focus(),
    n: () => { const p = /** @type {HTMLInputElement | null} */ (document.getElementById("private")); if (p) { p.checked = true; p.dispatchEvent(new Event("change")); } document.getElementById("reply")?.focus(); },
    e: () => document.getElementById("resolve")?.click(),
    a: () => { const s = /** @type {HTMLSelectElement | null} */ (document.getElementById("assignee")); if (s && api.user) { s.value = api.user.id; s.dispatchEvent(new Event("change")); } },
    s: () => document.getElementById("snooze-until")?.focus(),
    p: () => document.getElementById("priority")?.focus(),
    l: () => /** @type {HTMLElement | null} */ (document.querySelector(".labels input"))?.focus(),
    "/": () => { const r = /** @type {HTMLTextAreaElement | null} */ (document.getElementById("reply")); if (r) { r.focus(); r.value = "/"; r.dispatchEvent(new Event("input")); } },
    "?": () => showHelp(),
  });
  const f = map[e.key];
  if (f) { e.preventDefault(); f(); }
});

/** The keyboard shortcuts (the same list as the README's). */
const SHORTCUTS = ["j", "k", "r", "n", "/", "e", "a", "s", "p", "l", "?"];

function showHelp() {
  document.getElementById("help")?.remove();
  const close = h("button", { type: "button", text: t("help.close") });
  const dialog = /** @type {HTMLDialogElement} */ (h("dialog.help", { id: "help", "aria-labelledby": "help-title" },
    h("h2", { id: "help-title", text: t("help.title") }),
    h("dl", null, ...SHORTCUTS.flatMap((k) => [h("dt", null, h("kbd", { text: k })), h("dd", { text: t(`help.key.${k === "/" ? "slash" : k === "?" ? "help" : k}`) })])),
    h("p.muted", { text: t("help.send") }),
    close));
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  close.focus();
}

/** @param {string} text */
function toast(text) {
  const el = h("div.toast", { role: "alert", text });
  document.body.append(el);
  setTimeout(() => el.remove(), 5000);
}

// waiting times move on: redraw the visible rows twice a minute
setInterval(() => { if (list) { for (const el of list.pool) el.dataset.v = ""; list.schedule(); } updateWindow(); }, 30_000);

/** For tests, benchmarks and debugging from the browser's console. */
/** @type {any} */ (window).hubConsole = { api, state: S, socket: null, loadMore, reload, openConversation };

applyTheme();
setLanguage(preferred()).then(start);
