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

/** @typedef {{kind: string, id: string, at: string, [k: string]: any}} Item */
/** @typedef {{api: import("./api.js").Api, names: (id: string | null) => string}} Ctx */
/** @type {Map<string, (item: Item, ctx: Ctx) => HTMLElement>} */
const renderers = new Map();

/** @param {string} kind @param {(item: Item, ctx: Ctx) => HTMLElement} render */
export function registerRenderer(kind, render) { renderers.set(kind, render); }

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
  return { kind: "message", id: m.id, at: m.created_at || m.sent_at || new Date().toISOString(), ...m };
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
  if (m.content) body.append(h("p.content", { text: m.content }));
  for (const a of m.attachments || []) body.append(attachment(a, ctx));
  const meta = h("div.meta", null,
    h("span.who", { text: m.private ? t("timeline.note") : side === "in" ? "" : ctx.names(m.sender_id) }),
    h("time", { datetime: m.at, text: new Date(m.at).toLocaleTimeString() }),
    side === "out" && !m.private ? tickFor(m) : null);
  if (m.status === "failed" && m.error_message) meta.append(h("span.reason", { text: m.error_message }));
  return h(`div.msg.msg-${cls}`, { "data-message-id": m.id }, h("div.bubble", null, body, meta));
});

registerRenderer("system", (e, ctx) => {
  return h("div.sys", { role: "note" }, h("span", { text: t(`system.${e.what}`, { name: ctx.names(e.who) }) }),
    h("time", { datetime: e.at, text: new Date(e.at).toLocaleTimeString() }));
});

/** @param {any} a @param {Ctx} ctx */
function attachment(a, ctx) {
  const key = a.key || (a.url || "").split("/").pop();
  const name = a.filename || key || "file";
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
 * System items from a conversation.updated event's previous values and new state.
 * @param {any} ev the event envelope
 * @returns {Item[]}
 */
export function systemItems(ev) {
  const p = ev.payload || {};
  const prev = p.previous || {};
  const state = p.state || {};
  const who = ev.actor?.id || null;
  /** @type {Item[]} */
  const out = [];
  const add = (/** @type {string} */ what, /** @type {string|null} */ whom) => out.push({ kind: "system", id: `${ev.id}:${what}`, at: ev.occurred_at, what, who: whom });
  if ("assignee_id" in prev) add(state.assignee_id ? "assigned" : "unassigned", state.assignee_id || who);
  if ("status" in prev) {
    if (state.status === "resolved") add("resolved", who);
    else if (prev.status === "resolved") add("reopened", who);
    else if (state.status === "snoozed") add("snoozed", who);
    else add("status", who);
  }
  if ("team_id" in prev) add("team", who);
  if ("labels" in prev) add("labels", who);
  if ("priority" in prev) add("priority", who);
  return out;
}
