// @ts-check
/**
 * Voice calls in the console: the incoming-call panel (a `call.offered` for me rings until its
 * `expires_at`), call items on the conversation timeline (the `call` message and the `call.*`
 * events, with a player for recordings and voicemail), click-to-call and the phone (SIP URI)
 * setting of the agent's profile.
 */
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { registerRenderer } from "./timeline.js";
import { ApiError } from "./api.js";

/** Events after which a ringing panel has nothing left to ask. */
const SETTLED = new Set(["call.accepted", "call.declined", "call.answered", "call.voicemail", "call.ended"]);

/** Seconds as m:ss (h:mm:ss past an hour). @param {number} seconds */
export function clock(seconds) {
  const s = Math.max(0, Math.round(seconds || 0));
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** A refused call action in the user's language when the code is known, else the hub's words.
 * @param {unknown} err */
export function callError(err) {
  if (err instanceof ApiError) {
    const key = `call.error.${err.code}`;
    const text = t(key);
    return text === key ? err.message : text;
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * A timeline item for a `call.*` event (live from the stream or from the /events journal: both
 * carry id, type, occurred_at, actor and payload).
 * @param {any} ev
 * @returns {import("./timeline.js").Item[]}
 */
export function callItems(ev) {
  if (!ev.type || !ev.type.startsWith("call.")) return [];
  return [{ kind: "call.event", id: ev.id, at: ev.occurred_at, type: ev.type, payload: ev.payload || {}, who: ev.actor?.id || null }];
}

/** @param {string} iso */
const timeOf = (iso) => h("time", { datetime: iso, text: new Date(iso).toLocaleTimeString() });

/** The `call` message the voice process ingests for an inbound call. */
registerRenderer("call", (m) => h("div.call.call-message", { role: "note", "data-message-id": m.id, "data-call": "message" },
  h("span.call-icon", { text: "☎", "aria-hidden": "true" }),
  h("span.call-text", { text: m.content || t("call.incoming") }),
  timeOf(m.at)));

/** The words for a call event. @param {any} e @param {import("./timeline.js").Ctx} ctx */
function describe(e, ctx) {
  const p = e.payload;
  const name = ctx.names(p.agent_id || null) || t("system.someone");
  switch (e.type) {
    case "call.ringing": return t(p.direction === "outbound" ? "call.ev.dialling" : "call.ev.ringing", { number: p.number || "" });
    case "call.offered": return t("call.ev.offered", { name });
    case "call.accepted": return t("call.ev.accepted", { name });
    case "call.declined": return t(`call.ev.declined.${["no_answer", "unreachable"].includes(p.reason) ? p.reason : "declined"}`, { name });
    case "call.requested": return t("call.ev.requested", { name, number: p.number || "" });
    case "call.answered": return p.by === "agent" ? t("call.ev.answered_by", { name }) : t(`call.ev.answered_${p.by === "voicemail" ? "voicemail" : "ivr"}`);
    case "call.transferred": return t("call.ev.transferred", { target: p.target || "", method: t(`call.method.${p.method === "refer" ? "refer" : "bridge"}`) });
    case "call.dtmf": return t("call.ev.dtmf", { digit: p.digit || "" });
    case "call.voicemail": return t("call.ev.voicemail");
    case "call.ended": return p.answered
      ? t("call.ev.ended", { duration: clock(p.duration_s), cause: p.hangup_cause || "" })
      : t("call.ev.missed", { cause: p.hangup_cause || "" });
    case "call.recording_ready": return t(p.kind === "voicemail" ? "call.ev.voicemail_ready" : "call.ev.recording_ready", { duration: clock(p.duration_s) });
    default: return e.type;
  }
}

/** Glyphs every system font has (no emoji font needed). */
const ICONS = /** @type {Record<string, string>} */ ({
  "call.ringing": "☎", "call.offered": "☏", "call.accepted": "✓", "call.declined": "✕", "call.requested": "☎",
  "call.answered": "☎", "call.transferred": "↪", "call.dtmf": "#", "call.voicemail": "✉", "call.ended": "■",
  "call.recording_ready": "♫",
});

registerRenderer("call.event", (e, ctx) => {
  const row = h("div.call", { role: "note", "data-call": e.type },
    h("span.call-icon", { text: ICONS[e.type] || "☎", "aria-hidden": "true" }),
    h("span.call-text", { text: describe(e, ctx) }),
    timeOf(e.at));
  if (e.type !== "call.recording_ready") return row;
  const key = e.payload.media_key || (e.payload.url || "").split("/").pop();
  const audio = /** @type {HTMLAudioElement} */ (h("audio.recording", { controls: true, preload: "metadata", "aria-label": describe(e, ctx) }));
  // the media URL needs the bearer token: fetched as a blob, played from an object URL
  if (key) ctx.api.mediaUrl(key).then((url) => { audio.src = url; }).catch(() => audio.replaceWith(h("span.reason", { text: t("call.recording_missing") })));
  return h("div.call-recording", { "data-call": e.type }, row, audio);
});

/**
 * The incoming-call panel: one card per call offered to me, with a countdown to its expiry and
 * Accept / Decline. It goes away on my answer, when the call settles elsewhere, or at expiry.
 */
export class Ringer {
  /**
   * @param {import("./api.js").Api} api
   * @param {{inboxName: (id: string) => string, open: (conversationId: string) => void, toast: (text: string) => void, notify: (title: string, body: string) => void}} hooks
   */
  constructor(api, hooks) {
    this.api = api;
    this.hooks = hooks;
    /** @type {Map<string, {el: HTMLElement, timer: number}>} */
    this.ringing = new Map();
    /** caller numbers from `call.ringing`, so an offer needs no extra read @type {Map<string, string>} */
    this.numbers = new Map();
    this.box = h("div.ringer", { id: "ringer", "aria-live": "assertive" });
  }

  /** Put the panel's container on the page (outside #app, so screens can be redrawn). */
  mount() { if (!this.box.isConnected) document.body.append(this.box); }

  /** Stop ringing (logging out). */
  reset() { for (const id of [...this.ringing.keys()]) this.stop(id); this.numbers.clear(); }

  /** Every `call.*` event of the stream, for any conversation. @param {any} ev @param {any} context */
  onEvent(ev, context) {
    const p = ev.payload || {};
    if (!p.call_id) return;
    if (ev.type === "call.ringing" && p.number) this.numbers.set(p.call_id, p.number);
    if (ev.type === "call.offered") {
      if (p.agent_id === this.api.user?.id) this.ring(ev, context);
      else this.stop(p.call_id);  // offered to someone else now
    } else if (SETTLED.has(ev.type)) {
      this.stop(p.call_id);
      if (ev.type === "call.ended") this.numbers.delete(p.call_id);
    }
  }

  /** @param {any} ev @param {any} context */
  ring(ev, context) {
    const p = ev.payload;
    const expires = Date.parse(p.expires_at);
    if (!(expires > Date.now()) || this.ringing.has(p.call_id)) return;  // a replayed, stale offer
    this.mount();
    const conversationId = ev.conversation_id;
    const name = context?.conversation?.contact_name || t("list.unknown_contact");
    const number = h("span.ring-number", { text: this.numbers.get(p.call_id) || "" });
    if (!this.numbers.has(p.call_id)) {
      this.api.get(`/api/v1/calls/${encodeURIComponent(p.call_id)}`).then((c) => { number.textContent = c.number || ""; }).catch(() => {});
    }
    const countdown = h("span.ring-countdown", { "aria-live": "off" });
    const accept = h("button.primary.ring-accept", { type: "button", text: t("call.accept") });
    const decline = h("button.ring-decline", { type: "button", text: t("call.decline") });
    const open = h("button.link", { type: "button", text: t("call.open") });
    const el = h("section.ring", { role: "alertdialog", "aria-labelledby": `ring-title-${p.call_id}`, "data-call-id": p.call_id },
      h("h2", { id: `ring-title-${p.call_id}`, text: `☎ ${t("call.incoming")}` }),
      h("p.ring-who", null, h("strong.ring-name", { text: name }), " ", number),
      h("p.ring-inbox.muted", { text: this.hooks.inboxName(p.inbox_id) }),
      countdown,
      h("div.ring-buttons", null, accept, decline, open));
    const tick = () => {
      const left = Math.ceil((expires - Date.now()) / 1000);
      if (left <= 0) return this.stop(p.call_id);
      countdown.textContent = t("call.expires_in", { seconds: left });
    };
    /** @param {"accept" | "decline"} what */
    const answer = async (what) => {
      accept.setAttribute("disabled", ""); decline.setAttribute("disabled", "");
      try {
        await this.api.post(`/api/v1/calls/${encodeURIComponent(p.call_id)}/${what}`, undefined);
        if (what === "accept") { this.hooks.toast(t("call.accepted_phone")); this.hooks.open(conversationId); }
      } catch (err) { this.hooks.toast(callError(err)); }
      this.stop(p.call_id);
    };
    accept.addEventListener("click", () => answer("accept"));
    decline.addEventListener("click", () => answer("decline"));
    open.addEventListener("click", () => this.hooks.open(conversationId));
    this.ringing.set(p.call_id, { el, timer: window.setInterval(tick, 500) });
    tick();
    this.box.append(el);
    accept.focus();
    this.hooks.notify(t("call.incoming"), `${name} ${this.numbers.get(p.call_id) || ""}`.trim());
  }

  /** @param {string} callId */
  stop(callId) {
    const r = this.ringing.get(callId);
    if (!r) return;
    clearInterval(r.timer);
    r.el.remove();
    this.ringing.delete(callId);
  }
}

/** The "Call" button of a voice inbox's conversation (click-to-call: rings my phone first).
 * @param {import("./api.js").Api} api @param {string} conversationId @param {(text: string) => void} toast */
export function callButton(api, conversationId, toast) {
  const b = h("button.call-button", { type: "button", id: "call-button", text: `☎ ${t("call.call")}`, title: t("call.call_hint") });
  b.addEventListener("click", async () => {
    b.setAttribute("disabled", "");
    try {
      await api.post(`/api/v1/conversations/${encodeURIComponent(conversationId)}/calls`, {});
      toast(t("call.calling"));
    } catch (err) { toast(callError(err)); }
    b.removeAttribute("disabled");
  });
  return b;
}

/** My profile: the phone (a SIP URI) calls I take are connected to. @param {import("./api.js").Api} api */
export async function showProfile(api) {
  document.getElementById("profile")?.remove();
  const input = /** @type {HTMLInputElement} */ (h("input.mono", { id: "sip-uri", type: "text", placeholder: "sip:101@pbx.example.com", autocomplete: "off", spellcheck: false }));
  const status = h("p.error", { role: "alert", id: "profile-status" });
  const save = h("button.primary", { type: "submit", text: t("profile.save") });
  const close = h("button", { type: "button", text: t("help.close") });
  const form = h("form", null,
    h("label", { for: "sip-uri", text: t("profile.sip_uri") }), input,
    h("p.muted", { text: t("profile.sip_hint") }),
    status, h("div.row", null, save, close));
  const dialog = /** @type {HTMLDialogElement} */ (h("dialog.help.profile", { id: "profile", "aria-labelledby": "profile-title" },
    h("h2", { id: "profile-title", text: t("profile.title") }), form));
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    status.className = "error";
    status.textContent = "";
    try {
      const p = await api.patch("/api/v1/profile", { sip_uri: input.value.trim() });
      input.value = p.sip_uri || "";
      status.className = "ok";
      status.textContent = t("profile.saved");
    } catch (err) {
      status.textContent = err instanceof ApiError && err.code === "invalid_body" ? t("profile.sip_invalid") : callError(err);
    }
  });
  document.body.append(dialog);
  dialog.showModal();
  input.focus();
  try { input.value = (await api.get("/api/v1/profile")).sip_uri || ""; } catch { /* shown empty */ }
}
