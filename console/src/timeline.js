// @ts-check
/**
 * The conversation timeline. Items are rendered by kind through a registry, so later features
 * (call events, AI suggestions) register their own renderers instead of editing this file:
 *
 *   registerRenderer("call.ended", (item, ctx) => h("div", null, ...));
 *
 * An item is {kind, id, at, ...}; kinds here: "message" (inbound, outbound, private note) and
 * "system" (assigned, resolved, reopened, ... from conversation.updated events).
 */
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { emailView, isEmailPart } from "./email.js";

/** @typedef {{kind: string, id: string, at: string, [k: string]: any}} Item */
/** @typedef {{api: import("./api.js").Api, names: (id: string | null) => string}} Ctx */
/** @type {Map<string, (item: Item, ctx: Ctx) => HTMLElement>} */
const renderers = new Map();

/** @param {string} kind @param {(item: Item, ctx: Ctx) => HTMLElement} render */
export function registerRenderer(kind, render) { renderers.set(kind, render); }

/** Extra marks in a message's meta line (the AI part's language and sentiment badges).
 * @type {((m: Item) => (HTMLElement | null)[])[]} */
const messageMeta = [];

/** @param {(m: Item) => (HTMLElement | null)[]} marks */
export function registerMessageMeta(marks) { messageMeta.push(marks); }

/** @param {Item} item @param {Ctx} ctx */
export function renderItem(item, ctx) {
  const render = renderers.get(item.kind);
  const el = render ? render(item, ctx) : h("div.tl-unknown", { text: item.kind });
  el.dataset.itemId = item.id;
  return el;
}

const TICKS = { queued: "🕓", sending: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "⚠" };

/** @param {any} m  a message row or an event payload turned into one */
export function messageItem(m) {
  // a voice call enters as a message of content type "call": drawn by calls.js
  return { kind: m.content_type === "call" ? "call" : "message", id: m.id, at: m.created_at || m.sent_at || new Date().toISOString(), ...m };
}

/** @param {Item} m */
export function tickFor(m) {
  const status = m.status || "queued";
  const el = h(`span.tick.tick-${status}`, {
    title: status === "failed" && m.error_message ? `${t("status.failed")}: ${m.error_message}` : t(`status.${status}`),
    "aria-label": t(`status.${status}`),
    text: /** @type {any} */ (TICKS)[status] || status,
  });
  el.dataset.status = status;
  return el;
}

registerRenderer("message", (m, ctx) => {
  const side = m.direction === "inbound" ? "in" : "out";
  const cls = m.private ? "note" : side;
  const body = h("div.bubble-body", null);
  const mail = emailView(m, ctx);
  if (mail) body.append(mail.head);
  if (m.content) body.append(h("p.content", { text: m.content }));
  for (const a of m.attachments || []) if (!isEmailPart(a)) body.append(attachment(a, ctx));
  if (mail) body.append(mail.tail);
  const meta = h("div.meta", null,
    h("span.who", { text: m.private ? t("timeline.note") : side === "in" ? "" : ctx.names(m.sender_id) }),
    ...messageMeta.flatMap((marks) => marks(m)),
    h("time", { datetime: m.at, text: new Date(m.at).toLocaleTimeString() }),
    m.edited_at ? editedMark(m) : null,
    side === "out" && !m.private ? tickFor(m) : null);
  if (m.status === "failed" && m.error_message) meta.append(h("span.reason", { text: m.error_message }));
  return h(`div.msg.msg-${cls}`, { "data-message-id": m.id }, h("div.bubble", null, body, meta));
});

/** "edited", its time and the earlier text on hover. @param {Item} m */
function editedMark(m) {
  const earlier = (m.edits || []).map((/** @type {any} */ e) => e.previous_content).filter(Boolean);
  const when = new Date(m.edited_at).toLocaleString();
  return h("span.edited", {
    text: t("timeline.edited"),
    title: earlier.length ? `${when}\n${t("timeline.edited_from")}: ${earlier[earlier.length - 1]}` : when,
  });
}

registerRenderer("system", (e, ctx) => {
  const by = e.who ? ctx.names(e.who) : t("system.someone");
  const text = t(`system.${e.what}`, { name: ctx.names(e.whom), by, value: systemValue(e) });
  return h("div.sys", { role: "note", "data-what": e.what }, h("span", { text }),
    h("time", { datetime: e.at, text: new Date(e.at).toLocaleTimeString() }));
});

/** The changed value in words: a status, a priority, labels or a snooze time. @param {Item} e */
function systemValue(e) {
  const v = e.value;
  if (e.what === "priority") return v ? t(`priority.${v}`) : t("actions.no_priority");
  if (e.what === "status") return t(`status_conv.${v}`);
  if (e.what === "labels") return v && v.length ? v.join(", ") : t("system.no_labels");
  if (e.what === "snoozed") return v ? new Date(v).toLocaleString() : "";
  return v ?? "";
}

/** @param {any} a @param {Ctx} ctx */
function attachment(a, ctx) {
  const key = a.key || (a.url || "").split("/").pop();
  const name = a.filename || key || "file";
  if (!a.url && !a.key) {  // announced by the provider, not kept: say why
    const why = a.unavailable === "too_large" ? "timeline.file_too_large" : "timeline.file_not_received";
    return h("div.attachment.unavailable", { role: "note", text: t(why, { name }) });
  }
  const box = h("div.attachment", null);
  const download = h("button.link", { type: "button", text: `⬇ ${name}`, "aria-label": t("timeline.download", { name }) });
  download.addEventListener("click", async () => {
    const url = await ctx.api.mediaUrl(key);
    const link = h("a", { href: url, download: name });
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  });
  if ((a.content_type || "").startsWith("image/") && key) {
    const img = h("img.preview", { alt: name, loading: "lazy" });
    ctx.api.mediaUrl(key).then((u) => { /** @type {HTMLImageElement} */ (img).src = u; }).catch(() => img.remove());
    box.append(img);
  }
  box.append(download);
  return box;
}

/**
 * System items from a conversation.updated event (live from the stream, or from the journal's
 * /events list: both carry id, occurred_at, actor and payload.state/previous), with who did it.
 * @param {any} ev the event envelope
 * @returns {Item[]}
 */
export function systemItems(ev) {
  if (ev.type && ev.type !== "conversation.updated") return [];
  const p = ev.payload || {};
  const prev = p.previous || {};
  const state = p.state || {};
  const who = ev.actor?.id || null;
  /** @type {Item[]} */
  const out = [];
  /** @param {string} what @param {any} [value] */
  const add = (what, value) => out.push({ kind: "system", id: `${ev.id}:${what}`, at: ev.occurred_at, what, who, whom: state.assignee_id || null, value });
  if ("assignee_id" in prev) add(state.assignee_id ? "assigned" : "unassigned");
  if ("status" in prev) {
    if (state.status === "resolved") add("resolved");
    else if (prev.status === "resolved") add("reopened");
    else if (prev.status === "snoozed" && state.status === "open" && ev.actor?.kind === "system") add("woke");
    else if (state.status === "snoozed") add("snoozed", state.snoozed_until);
    else add("status", state.status);
  }
  if ("team_id" in prev) add("team");
  if ("labels" in prev) add("labels", state.labels || []);
  if ("priority" in prev) add("priority", state.priority);
  return out;
}
