// @ts-check
/**
 * Settings (`#/settings/<section>`), for administrators only: inboxes (a set-up wizard per
 * channel, built from GET /api/v1/channels), agents and invitations, teams, labels, canned
 * responses, the account, personal API tokens and the audit log. Everything goes through the
 * REST API; a refusal is shown next to the field it concerns. Others get a clear "not allowed"
 * (and the API would answer them 403).
 */
import { macrosSettings } from "./macros.js";
import { io } from "/console/socket.io.esm.min.js";
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { Api } from "./api.js";
import { field, input, clearErrors, showError, messageOf, copyable } from "./forms.js";
import { inboxSwitch, deleteConsequence } from "./inbox_state.js";
import { embedSnippet } from "./webchat.js";

export const SECTIONS = ["inboxes", "agents", "teams", "labels", "canned", "macros", "account", "tokens", "audit"];
const SCOPES = ["profile", "account:read", "conversations:read", "conversations:write", "contacts:read",
  "contacts:write", "labels:manage", "canned_responses:manage", "contacts:delete", "teams:manage",
  "users:manage", "inboxes:manage", "account:manage", "audit:read"];
/** settings whose value is a number or a list (SIP) */
const NUMBERS = new Set(["port"]);
const LISTS = new Set(["accounts"]);

/** @type {any} */ let liveSocket = null;
function stopLive() { if (liveSocket) { liveSocket.removeAllListeners(); liveSocket.disconnect(); liveSocket = null; } }

/**
 * @param {HTMLElement} app @param {Api} api @param {string[]} path  e.g. ["inboxes", "new"]
 * @param {HTMLElement} header the console's top bar
 */
export function settingsScreen(app, api, path, header) {
  stopLive();
  clear(app);
  const section = SECTIONS.includes(path[0]) ? path[0] : "inboxes";
  const main = h("main.settings-main", { id: "settings-main", tabindex: "-1" });
  if (api.user?.role !== "administrator") {
    main.append(h("section.notice", { role: "alert", id: "not-allowed" },
      h("h1", { text: t("settings.not_allowed_title") }),
      h("p", { text: t("settings.not_allowed") }),
      h("a", { href: "#", text: t("settings.back") })));
    app.append(header, main);
    return;
  }
  const nav = h("nav.settings-nav", { "aria-label": t("settings.title") },
    h("h2", { text: t("settings.title") }),
    h("ul", null, ...SECTIONS.map((s) => h("li", null, h("a", {
      href: `#/settings/${s}`, text: t(`settings.${s}`), "aria-current": s === section ? "page" : null,
    })))),
    h("a.back", { href: "#", text: t("settings.back") }));
  app.append(header, h("div.settings", null, nav, main));
  const ctx = { api, main, path };
  const render = /** @type {Record<string, (c: typeof ctx) => Promise<void>>} */ ({
    inboxes, agents, teams, labels, canned, macros: macrosSettings, account, tokens, audit,
  })[section];
  render(ctx).catch((err) => main.append(h("p.error", { role: "alert", text: messageOf(err) })));
}

/** A section's heading and body. @param {HTMLElement} main @param {string} title @param {...any} body */
function page(main, title, ...body) {
  clear(main).append(h("h1", { id: "settings-title", text: title }), ...body);
}

/** @param {string} text @returns {Promise<boolean>} */
function confirmDialog(text) {
  return new Promise((resolve) => {
    const yes = h("button.danger", { type: "button", text: t("settings.confirm") });
    const no = h("button", { type: "button", text: t("settings.cancel") });
    const dialog = /** @type {HTMLDialogElement} */ (h("dialog.help", { id: "confirm", "aria-labelledby": "confirm-text" },
      h("p", { id: "confirm-text", text }), h("div.row", null, yes, no)));
    let answer = false;
    yes.addEventListener("click", () => { answer = true; dialog.close(); });
    no.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => { dialog.remove(); resolve(answer); });
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}

/** @param {Api} api @param {string} path */
async function all(api, path) {
  const r = await api.get(`${path}${path.includes("?") ? "&" : "?"}limit=200`);
  return r.data;
}

// ---------------------------------------------------------------- inboxes
/** @param {{api: Api, main: HTMLElement, path: string[]}} c */
async function inboxes(c) {
  if (c.path[1] === "new") return inboxWizard(c);
  if (c.path[1]) return inboxPage(c, c.path[1]);
  const [list, channels] = await Promise.all([all(c.api, "/api/v1/inboxes"), c.api.get("/api/v1/channels")]);
  const names = new Map(channels.data.map((/** @type {any} */ x) => [x.id, x.name]));
  page(c.main, t("settings.inboxes"),
    h("a.button.primary", { href: "#/settings/inboxes/new", id: "new-inbox", text: t("inbox.new") }),
    list.length ? h("table.grid", { id: "inbox-table" },
      h("thead", null, h("tr", null, h("th", { text: t("inbox.name") }), h("th", { text: t("inbox.channel") }), h("th", { text: t("inbox.members") }))),
      h("tbody", null, ...list.map((/** @type {any} */ i) => h("tr", { "data-inbox": i.id },
        h("td", null, h("a", { href: `#/settings/inboxes/${i.id}`, text: i.name }), i.enabled === false ? h("span.badge.off", { text: ` ${t("inbox.off")}` }) : null),
        h("td", { text: names.get(i.channel) || i.channel }),
        h("td", { text: String(i.member_ids.length) })))))
      : h("p.muted", { text: t("inbox.none") }));
}

/** The fields of one channel's form. @param {any} ch @param {boolean} editing */
function channelFields(ch, editing) {
  const out = [];
  for (const key of [...ch.required_settings, ...ch.optional_settings]) {
    const required = ch.required_settings.includes(key);
    const id = `inbox-settings-${key}`;
    const el = key === "kind"
      ? h("select", { "data-setting": key }, h("option", { value: "sms", text: "SMS" }), h("option", { value: "whatsapp", text: "WhatsApp" }))
      : input(id, { "data-setting": key, required, inputmode: NUMBERS.has(key) ? "numeric" : null, autocomplete: "off" });
    out.push(field(id, `${t(`inbox.setting.${key}`) }${required ? " *" : ""}`, el, t(`inbox.setting.${key}.hint`)));
  }
  for (const key of [...ch.required_secrets, ...ch.optional_secrets]) {
    const generated = ch.generated_secrets.includes(key);
    const required = ch.required_secrets.includes(key) && !generated && !editing;
    const id = `inbox-credentials-${key}`;
    const el = input(id, { type: "password", "data-secret": key, required, autocomplete: "off" });
    const hint = editing ? t("inbox.secret_keep") : generated ? t("inbox.secret_generated") : t(`inbox.secret.${key}.hint`);
    out.push(field(id, `${t(`inbox.secret.${key}`)}${required ? " *" : ""}`, el, hint));
  }
  return out;
}

/** Settings and credentials from a form: empty fields are left out. @param {HTMLElement} form */
function collect(form) {
  /** @type {Record<string, any>} */ const settings = {};
  /** @type {Record<string, string>} */ const credentials = {};
  for (const el of form.querySelectorAll("[data-setting]")) {
    const key = /** @type {HTMLElement} */ (el).dataset.setting || "";
    const v = /** @type {HTMLInputElement} */ (el).value.trim();
    if (!v) continue;
    settings[key] = NUMBERS.has(key) && /^\d+$/.test(v) ? Number(v) : LISTS.has(key) ? v.split(",").map((x) => x.trim()).filter(Boolean) : v;
  }
  for (const el of form.querySelectorAll("[data-secret]")) {
    const v = /** @type {HTMLInputElement} */ (el).value;
    if (v) credentials[/** @type {HTMLElement} */ (el).dataset.secret || ""] = v;
  }
  return { settings, credentials };
}

/** @param {{api: Api, main: HTMLElement}} c */
async function inboxWizard(c) {
  const channels = (await c.api.get("/api/v1/channels")).data;
  const name = input("inbox-name", { required: true, autocomplete: "off" });
  const picker = h("fieldset.channels", null, h("legend", { text: t("inbox.pick_channel") }),
    ...channels.map((/** @type {any} */ ch, /** @type {number} */ n) => h("label.check", null,
      h("input", { type: "radio", name: "channel", value: ch.id, id: `channel-${ch.id}`, checked: n === 0 }), " ", ch.name)));
  const fields = h("div.channel-fields");
  const pick = () => {
    const id = /** @type {HTMLInputElement | null} */ (picker.querySelector("input:checked"))?.value;
    const ch = channels.find((/** @type {any} */ x) => x.id === id);
    clear(fields).append(...(ch ? channelFields(ch, false) : []));
  };
  picker.addEventListener("change", pick);
  pick();
  const form = h("form.settings-form", { id: "inbox-form", "aria-labelledby": "settings-title", novalidate: true },
    picker, field("inbox-name", t("inbox.name"), name), fields,
    h("p.form-error.error", { role: "alert" }),
    h("button.primary", { type: "submit", text: t("inbox.create") }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const channel = /** @type {HTMLInputElement} */ (picker.querySelector("input:checked")).value;
    try {
      const made = await c.api.post("/api/v1/inboxes", { name: name.value, channel, ...collect(form) });
      const ch = channels.find((/** @type {any} */ x) => x.id === channel);
      connected(c, made, ch);
    } catch (err) { showError(form, err, "inbox"); }
  });
  page(c.main, t("inbox.new"), form);
  name.focus();
}

/** After the create: where the provider sends, the secrets the hub made (once), and a live
 * wait for the first message. @param {{api: Api, main: HTMLElement}} c @param {any} inbox @param {any} ch */
function connected(c, inbox, ch) {
  history.replaceState(null, "", `#/settings/inboxes/${inbox.id}`);
  const url = inbox.webhook_url || `${location.origin}${inbox.webhook_path}`;
  const shown = Object.entries(inbox.credentials || {}).filter(([k]) => ch?.generated_secrets.includes(k));
  const waiting = h("p.live", { id: "first-message", role: "status", text: t("inbox.waiting") });
  // the address bar already shows this inbox's page: a plain link would not open it
  const edit = h("a", { href: `#/settings/inboxes/${inbox.id}`, text: t("inbox.edit"), id: "edit-inbox" });
  edit.addEventListener("click", (e) => { e.preventDefault(); stopLive(); inboxPage(c, inbox.id); });
  page(c.main, t("inbox.connected", { name: inbox.name }),
    inbox.channel === "webchat" ? null : h("p", { text: t(ch?.webhooks === false ? "inbox.no_webhooks" : "inbox.paste") }),
    ch?.webhooks === false ? null : copyable("webhook-url", t("inbox.webhook_url"), url),
    ...shown.map(([k, v]) => copyable(`secret-${k}`, t(`inbox.secret.${k}`), String(v))),
    shown.length ? h("p.warning", { text: t("inbox.shown_once") }) : null,
    inbox.channel === "webchat" ? copyable("embed-snippet", t("inbox.embed"), embedSnippet(inbox.id)) : null,
    waiting,
    h("p", null, edit));
  stopLive();
  liveSocket = io("/agent", { transports: ["websocket"], auth: (/** @type {any} */ cb) => cb({ token: c.api.token }) });
  liveSocket.on("events", (/** @type {any[]} */ batch) => {
    const got = batch.find((x) => x.event?.type === "message.received" && x.event.payload?.inbox_id === inbox.id);
    if (!got) return;
    waiting.textContent = t("inbox.first_message", { text: got.event.payload.content || "" });
    waiting.classList.add("ok");
    waiting.append(" ", h("a", { href: "#", text: t("inbox.open_conversations") }));
    stopLive();
  });
}

/** One inbox: rename, settings, replace credentials, members, delete.
 * @param {{api: Api, main: HTMLElement}} c @param {string} id */
async function inboxPage(c, id) {
  const [inbox, channels, users] = await Promise.all([
    c.api.get(`/api/v1/inboxes/${encodeURIComponent(id)}`), c.api.get("/api/v1/channels"), all(c.api, "/api/v1/users")]);
  const ch = channels.data.find((/** @type {any} */ x) => x.id === inbox.channel);
  const name = input("inbox-name", { required: true, value: inbox.name });
  const fields = ch ? channelFields(ch, true) : [];
  const form = h("form.settings-form", { id: "inbox-form", novalidate: true },
    field("inbox-name", t("inbox.name"), name), ...fields,
    h("p.muted", { text: t("inbox.stored_secrets", { keys: Object.entries(inbox.credentials).map(([k, v]) => `${k} ${v}`).join(", ") || "—" }) }),
    h("p.form-error.error", { role: "alert" }),
    h("button.primary", { type: "submit", text: t("settings.save") }), h("span.saved", { role: "status" }));
  for (const el of form.querySelectorAll("[data-setting]")) {
    const v = inbox.settings[/** @type {HTMLElement} */ (el).dataset.setting || ""];
    if (v !== undefined && v !== null) /** @type {HTMLInputElement} */ (el).value = Array.isArray(v) ? v.join(", ") : String(v);
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const { settings, credentials } = collect(form);
    /** @type {Record<string, any>} */ const body = { name: name.value, settings: { ...inbox.settings, ...settings } };
    if (Object.keys(credentials).length) body.credentials = credentials;
    try {
      await c.api.patch(`/api/v1/inboxes/${inbox.id}`, body);
      /** @type {HTMLElement} */ (form.querySelector(".saved")).textContent = t("settings.saved");
      for (const el of form.querySelectorAll("[data-secret]")) /** @type {HTMLInputElement} */ (el).value = "";
    } catch (err) { showError(form, err, "inbox"); }
  });
  const members = memberBoxes("inbox-member", users, inbox.member_ids);
  const saveMembers = h("button", { type: "button", text: t("inbox.save_members") });
  const membersNote = h("span", { role: "status" });
  saveMembers.addEventListener("click", async () => {
    try { await c.api.call("PUT", `/api/v1/inboxes/${inbox.id}/members`, { user_ids: checked(members) }); membersNote.textContent = t("settings.saved"); }
    catch (err) { membersNote.textContent = messageOf(err); }
  });
  const del = h("button.danger", { type: "button", id: "delete-inbox", text: t("inbox.delete") });
  const delNote = h("p.error", { role: "alert" });
  del.addEventListener("click", async () => {
    if (!(await confirmDialog(t("inbox.delete_confirm", { name: inbox.name })))) return;
    try { await c.api.call("DELETE", `/api/v1/inboxes/${inbox.id}`); location.hash = "#/settings/inboxes"; }
    catch (err) { delNote.textContent = messageOf(err); }
  });
  const url = inbox.webhook_url || `${location.origin}${inbox.webhook_path}`;
  page(c.main, inbox.name,
    ch?.webhooks === false ? null : copyable("webhook-url", t("inbox.webhook_url"), url),
    form,
    h("h2", { text: t("inbox.members") }), members, saveMembers, membersNote,
    ...inboxSwitch(c.api, inbox, () => inboxPage(c, id).catch((err) => { delNote.textContent = messageOf(err); })),
    h("h2", { text: t("inbox.delete") }), h("p", { text: t("inbox.delete_explained") }), deleteConsequence(inbox), del, delNote);
}

/** @param {string} prefix @param {any[]} items @param {string[]} on */
function memberBoxes(prefix, items, on) {
  return h("fieldset.members", null, h("legend.visually-hidden", { text: t("inbox.members") }),
    ...items.map((u) => h("label.check", null,
      h("input", { type: "checkbox", value: u.id, id: `${prefix}-${u.id}`, checked: on.includes(u.id) }), " ", u.name || u.email)));
}

/** @param {HTMLElement} box */
function checked(box) {
  return [...box.querySelectorAll("input:checked")].map((x) => /** @type {HTMLInputElement} */ (x).value);
}

// ---------------------------------------------------------------- agents
/** @param {{api: Api, main: HTMLElement}} c */
async function agents(c) {
  const [users, boxes] = await Promise.all([all(c.api, "/api/v1/users"), all(c.api, "/api/v1/inboxes")]);
  const email = input("agent-email", { type: "email", required: true, autocomplete: "off" });
  const name = input("agent-name", { required: true, autocomplete: "off" });
  const role = h("select", null, ...["agent", "supervisor", "administrator"].map((r) => h("option", { value: r, text: t(`role.${r}`) })));
  const inboxBoxes = memberBoxes("agent-inbox", boxes, []);
  const result = h("div.invitation", { id: "invitation" });
  const form = h("form.settings-form", { id: "invite-form", novalidate: true },
    h("h2", { text: t("agent.invite") }),
    field("agent-email", t("agent.email"), email), field("agent-name", t("agent.name"), name),
    field("agent-role", t("agent.role"), role),
    h("p", { text: t("agent.inboxes") }), inboxBoxes,
    h("p.form-error.error", { role: "alert" }),
    h("button.primary", { type: "submit", text: t("agent.send_invite") }), result);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    clear(result);
    try {
      const made = await c.api.post("/api/v1/users", { email: email.value, name: name.value, role: /** @type {HTMLSelectElement} */ (role).value });
      for (const id of checked(inboxBoxes)) {
        const inbox = boxes.find((/** @type {any} */ b) => b.id === id);
        await c.api.call("PUT", `/api/v1/inboxes/${id}/members`, { user_ids: [...inbox.member_ids, made.user.id] });
        inbox.member_ids.push(made.user.id);
      }
      const link = `${location.origin}/#/invite/${made.invitation_token}`;
      result.append(h("p", { text: t("agent.invited", { email: made.user.email }) }),
        copyable("invitation-link", t("agent.link"), link),
        h("p.muted", { text: t("agent.link_hint", { until: new Date(made.invitation_expires_at).toLocaleString() }) }));
      listBody.prepend(userRow(c, made.user));
      /** @type {HTMLFormElement} */ (form).reset();
    } catch (err) { showError(form, err, "agent"); }
  });
  const listBody = h("tbody", null, ...users.map((/** @type {any} */ u) => userRow(c, u)));
  page(c.main, t("settings.agents"), form,
    h("h2", { text: t("agent.list") }),
    h("table.grid", { id: "user-table" }, h("thead", null, h("tr", null,
      ...["agent.name", "agent.email", "agent.role", "agent.status", "agent.actions"].map((k) => h("th", { text: t(k) })))), listBody));
}

/** @param {{api: Api}} c @param {any} u */
function userRow(c, u) {
  const role = h("select", { "aria-label": `${t("agent.role")}: ${u.name}` },
    ...["agent", "supervisor", "administrator"].map((r) => h("option", { value: r, text: t(`role.${r}`), selected: r === u.role })));
  const note = h("span.error", { role: "alert" });
  role.addEventListener("change", async () => {
    try { await c.api.patch(`/api/v1/users/${u.id}`, { role: /** @type {HTMLSelectElement} */ (role).value }); note.textContent = ""; }
    catch (err) { note.textContent = messageOf(err); /** @type {HTMLSelectElement} */ (role).value = u.role; }
  });
  const disabled = u.status === "disabled";
  const toggle = h("button", { type: "button", text: disabled ? t("agent.reactivate") : t("agent.deactivate") });
  toggle.addEventListener("click", async () => {
    if (!disabled && !(await confirmDialog(t("agent.deactivate_confirm", { name: u.name })))) return;
    try { const r = await c.api.patch(`/api/v1/users/${u.id}`, { disabled: !disabled }); tr.replaceWith(userRow(c, r)); }
    catch (err) { note.textContent = messageOf(err); }
  });
  const tr = h("tr", { "data-user": u.id }, h("td", { text: u.name }), h("td", { text: u.email }), h("td", null, role),
    h("td", { text: t(`agent.status.${u.status}`) }), h("td", null, toggle, note));
  return tr;
}

// ---------------------------------------------------------------- teams, labels, canned responses
/** @param {{api: Api, main: HTMLElement}} c */
async function teams(c) {
  const [list, users, boxes] = await Promise.all([all(c.api, "/api/v1/teams"), all(c.api, "/api/v1/users"), all(c.api, "/api/v1/inboxes")]);
  const name = input("team-name", { required: true });
  const description = input("team-description");
  const form = h("form.settings-form", { id: "team-form", novalidate: true }, h("h2", { text: t("team.new") }),
    field("team-name", t("team.name"), name), field("team-description", t("team.description"), description),
    h("p.form-error.error", { role: "alert" }), h("button.primary", { type: "submit", text: t("settings.add") }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault(); clearErrors(form);
    try { await c.api.post("/api/v1/teams", { name: name.value, description: description.value }); await teams(c); }
    catch (err) { showError(form, err, "team"); }
  });
  const cards = list.map((/** @type {any} */ team) => {
    const members = memberBoxes(`team-${team.id}-member`, users, team.member_ids || []);
    const inboxBoxes = memberBoxes(`team-${team.id}-inbox`, boxes, team.inbox_ids || []);
    const note = h("span", { role: "status" });
    const save = h("button", { type: "button", text: t("settings.save") });
    save.addEventListener("click", async () => {
      try {
        await c.api.call("PUT", `/api/v1/teams/${team.id}/members`, { user_ids: checked(members) });
        await c.api.call("PUT", `/api/v1/teams/${team.id}/inboxes`, { inbox_ids: checked(inboxBoxes) });
        note.textContent = t("settings.saved");
      } catch (err) { note.textContent = messageOf(err); }
    });
    const del = h("button.danger", { type: "button", text: t("settings.delete") });
    del.addEventListener("click", async () => {
      if (!(await confirmDialog(t("team.delete_confirm", { name: team.name })))) return;
      try { await c.api.call("DELETE", `/api/v1/teams/${team.id}`); await teams(c); } catch (err) { note.textContent = messageOf(err); }
    });
    return h("section.card", { "data-team": team.id }, h("h3", { text: team.name }), h("p.muted", { text: team.description || "" }),
      h("p", { text: t("team.members") }), members, h("p", { text: t("team.inboxes") }), inboxBoxes, h("div.row", null, save, del, note));
  });
  page(c.main, t("settings.teams"), form, ...cards);
}

/**
 * A list with an add form and delete buttons (labels, canned responses).
 * @param {{api: Api, main: HTMLElement}} c @param {string} title @param {string} path @param {string} prefix
 * @param {[string, string, HTMLElement][]} inputs  [body key, label, input]
 * @param {(x: any) => (Node | string)[]} show
 */
async function simpleList(c, title, path, prefix, inputs, show) {
  const items = await all(c.api, path);
  const form = h("form.settings-form", { id: `${prefix}-form`, novalidate: true },
    ...inputs.map(([key, label, el]) => field(`${prefix}-${key}`, label, el)),
    h("p.form-error.error", { role: "alert" }), h("button.primary", { type: "submit", text: t("settings.add") }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault(); clearErrors(form);
    /** @type {Record<string, string>} */ const body = {};
    for (const [key, , el] of inputs) body[key] = /** @type {HTMLInputElement} */ (el).value;
    try { await c.api.post(path, body); await simpleList(c, title, path, prefix, inputs.map(([k, l, el]) => { /** @type {HTMLInputElement} */ (el).value = el.dataset.initial || ""; return [k, l, el]; }), show); }
    catch (err) { showError(form, err, prefix); }
  });
  const rows = items.map((/** @type {any} */ x) => {
    const del = h("button.danger", { type: "button", text: t("settings.delete"), "aria-label": `${t("settings.delete")}: ${x.name || x.short_code}` });
    const note = h("span.error", { role: "alert" });
    del.addEventListener("click", async () => {
      if (!(await confirmDialog(t("settings.delete_confirm", { name: x.name || x.short_code })))) return;
      try { await c.api.call("DELETE", `${path}/${x.id}`); await simpleList(c, title, path, prefix, inputs, show); }
      catch (err) { note.textContent = messageOf(err); }
    });
    return h("li", { "data-id": x.id }, ...show(x), " ", del, note);
  });
  page(c.main, title, form, h("ul.items", { id: `${prefix}-list` }, ...rows));
  /** @type {HTMLElement} */ (inputs[0][2]).focus();
}

/** @param {{api: Api, main: HTMLElement}} c */
function labels(c) {
  const color = input("label-color", { type: "color", value: "#1f93ff", "data-initial": "#1f93ff" });
  return simpleList(c, t("settings.labels"), "/api/v1/labels", "label",
    [["name", t("label.name"), input("label-name", { required: true })], ["color", t("label.color"), color],
      ["description", t("label.description"), input("label-description")]],
    (x) => [h("span.label-chip", { style: { borderColor: x.color }, text: x.name }), h("span.muted", { text: ` ${x.color} ${x.description || ""}` })]);
}

/** @param {{api: Api, main: HTMLElement}} c */
function canned(c) {
  return simpleList(c, t("settings.canned"), "/api/v1/canned_responses", "canned",
    [["short_code", t("canned.short_code"), input("canned-short_code", { required: true, placeholder: "thanks" })],
      ["content", t("canned.content"), /** @type {HTMLElement} */ (h("textarea", { id: "canned-content", rows: 3, required: true }))]],
    (x) => [h("code", { text: `/${x.short_code}` }), h("span", { text: ` ${x.content}` })]);
}

// ---------------------------------------------------------------- account, tokens, audit
/** @param {{api: Api, main: HTMLElement}} c */
async function account(c) {
  const a = await c.api.get("/api/v1/account");
  const name = input("account-name", { required: true, value: a.name });
  /** @type {string[]} */ let zones = [];
  try { zones = /** @type {any} */ (Intl).supportedValuesOf("timeZone"); } catch { zones = []; }
  if (!zones.includes(a.time_zone)) zones = [a.time_zone, ...zones];
  const tz = h("select", null, ...zones.map((z) => h("option", { value: z, text: z, selected: z === a.time_zone })));
  const mfa = input("account-mfa_required", { type: "checkbox", checked: a.mfa_required });
  const form = h("form.settings-form", { id: "account-form", novalidate: true },
    field("account-name", t("account.name"), name), field("account-time_zone", t("account.time_zone"), tz),
    h("label.check", null, mfa, " ", t("account.mfa_required")),
    h("p.form-error.error", { role: "alert" }),
    h("button.primary", { type: "submit", text: t("settings.save") }), h("span.saved", { role: "status" }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault(); clearErrors(form);
    try {
      await c.api.patch("/api/v1/account", { name: name.value, time_zone: /** @type {HTMLSelectElement} */ (tz).value, mfa_required: mfa.checked });
      /** @type {HTMLElement} */ (form.querySelector(".saved")).textContent = t("settings.saved");
    } catch (err) { showError(form, err, "account"); }
  });
  page(c.main, t("settings.account"), form);
}

/** @param {{api: Api, main: HTMLElement}} c */
async function tokens(c) {
  const list = (await c.api.get("/api/v1/profile/tokens")).data;
  const name = input("token-name", { required: true });
  const days = input("token-expires_in_days", { type: "number", min: 1, max: 3650, inputmode: "numeric" });
  const scopes = h("fieldset.members", { id: "token-scopes" }, h("legend", { text: t("token.scopes") }),
    ...SCOPES.map((s) => h("label.check", null, h("input", { type: "checkbox", value: s, id: `scope-${s.replace(":", "-")}` }), " ", s)));
  const shown = h("div", { id: "token-shown" });
  const form = h("form.settings-form", { id: "token-form", novalidate: true }, h("h2", { text: t("token.new") }),
    field("token-name", t("token.name"), name), field("token-expires_in_days", t("token.days"), days, t("token.days_hint")), scopes,
    h("p.field-error", { id: "token-scopes-error" }),
    h("p.form-error.error", { role: "alert" }), h("button.primary", { type: "submit", text: t("token.create") }), shown);
  form.addEventListener("submit", async (e) => {
    e.preventDefault(); clearErrors(form); clear(shown);
    /** @type {Record<string, any>} */ const body = { name: name.value, scopes: checked(scopes) };
    if (days.value) body.expires_in_days = Number(days.value);
    try {
      const made = await c.api.post("/api/v1/profile/tokens", body);
      await tokens(c);
      c.main.querySelector("#token-shown")?.append(copyable("new-token", t("token.value"), made.token), h("p.warning", { text: t("token.shown_once") }));
    } catch (err) { showError(form, err, "token"); }
  });
  const rows = list.map((/** @type {any} */ x) => {
    const revoke = h("button.danger", { type: "button", text: t("token.revoke") });
    revoke.addEventListener("click", async () => {
      if (!(await confirmDialog(t("token.revoke_confirm", { name: x.name })))) return;
      await c.api.call("DELETE", `/api/v1/profile/tokens/${x.id}`).catch(() => {});
      await tokens(c);
    });
    return h("li", null, h("strong", { text: x.name }), h("span.muted", { text: ` ${x.token_prefix || ""}… ${(x.scopes || []).join(", ")}` }), " ", revoke);
  });
  page(c.main, t("settings.tokens"), form, h("h2", { text: t("token.list") }), h("ul.items", { id: "token-list" }, ...rows));
}

/** @param {{api: Api, main: HTMLElement}} c */
async function audit(c) {
  const action = input("audit-action", { placeholder: "user.invited" });
  const type = input("audit-object_type", { placeholder: "inbox" });
  const since = input("audit-since", { type: "datetime-local" });
  const until = input("audit-until", { type: "datetime-local" });
  const body = h("tbody");
  const more = h("button", { type: "button", text: t("audit.more"), hidden: true });
  const note = h("p.error", { role: "alert" });
  /** @type {string | null} */ let cursor = null;
  const load = async (/** @type {boolean} */ fresh) => {
    const p = new URLSearchParams({ limit: "50" });
    if (action.value.trim()) p.set("action", action.value.trim());
    if (type.value.trim()) p.set("object_type", type.value.trim());
    if (since.value) p.set("since", new Date(since.value).toISOString());
    if (until.value) p.set("until", new Date(until.value).toISOString());
    if (!fresh && cursor) p.set("cursor", cursor);
    note.textContent = "";
    try {
      const r = await c.api.get(`/api/v1/audit_log?${p}`);
      if (fresh) clear(body);
      for (const e of r.data) body.append(h("tr", null, h("td", { text: new Date(e.created_at).toLocaleString() }),
        h("td", { text: e.action }), h("td", { text: `${e.actor_type} ${e.actor_id || ""}` }), h("td", { text: `${e.object_type} ${e.object_id || ""}` }),
        h("td.mono", { text: JSON.stringify(e.details) })));
      cursor = r.next_cursor;
      more.hidden = !cursor;
    } catch (err) { note.textContent = messageOf(err); }
  };
  const form = h("form.filters", { id: "audit-filters" },
    field("audit-action", t("audit.action"), action), field("audit-object_type", t("audit.object_type"), type),
    field("audit-since", t("audit.since"), since), field("audit-until", t("audit.until"), until),
    h("button.primary", { type: "submit", text: t("audit.filter") }));
  form.addEventListener("submit", (e) => { e.preventDefault(); load(true); });
  more.addEventListener("click", () => load(false));
  page(c.main, t("settings.audit"), form, note, h("div.table-scroll", null, h("table.grid", { id: "audit-table" },
    h("thead", null, h("tr", null, ...["audit.when", "audit.action", "audit.actor", "audit.object", "audit.details"].map((k) => h("th", { text: t(k) })))), body)), more);
  await load(true);
}
