// @ts-check
/**
 * Email in the timeline and the composer.
 *
 * An inbound mail carries two files the hub keeps for it: `original.eml` (the full original) and
 * `message.html` (its HTML, sanitised with nh3 by the hub). Its item shows the subject, From, To,
 * Cc and date read from the original's headers, the reply's own words (the message's content),
 * and on demand the whole mail: the HTML in a sandboxed iframe (no `allow-scripts`, an opaque
 * origin, and a Content-Security-Policy that loads nothing from the network: no script runs and
 * no remote image or tracker loads — the hub has removed those already), or the original as text.
 * An agent's reply shows the Cc, Bcc and subject it was sent with. In an email conversation the
 * composer has Cc, Bcc and the subject (`Re:` the thread's), sent as the message's `email`.
 */
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";

const ORIGINAL = "original.eml";
const HTML = "message.html";
/** What the hub's own email files are called on a message: not shown as attachments. */
export function isEmailPart(/** @type {any} */ a) {
  return (a?.filename === ORIGINAL && a?.content_type === "message/rfc822") || (a?.filename === HTML && a?.content_type === "text/html");
}

/** @param {any} a */
function keyOf(a) { return a.key || (a.url || "").split("/").pop(); }

/** @type {Map<string, Promise<string>>} media text by key, fetched once per page */
const texts = new Map();
/** @param {import("./api.js").Api} api @param {string} key */
function mediaText(api, key) {
  let p = texts.get(key);
  if (!p) {
    // read directly: the console's policy lets it fetch its own origin, not blob: URLs
    const go = () => fetch(`/api/v1/media/${encodeURIComponent(key)}`, { headers: { Authorization: `Bearer ${api.token}` } });
    p = go().then(async (r) => {
      if (r.status === 401 && (await api.refresh())) r = await go();
      if (!r.ok) throw new Error(`media ${r.status}`);
      return r.text();
    });
    p.catch(() => texts.delete(key));
    texts.set(key, p);
  }
  return p;
}

/** RFC 2047 encoded words (`=?utf-8?B?...?=`) decoded. @param {string} value */
export function decodeWords(value) {
  const joined = value.replace(/(\?=)\s+(=\?)/g, "$1$2");
  return joined.replace(/=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g, (whole, charset, enc, data) => {
    try {
      let bytes;
      if (enc.toUpperCase() === "B") bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
      else {
        const s = data.replace(/_/g, " ");
        const out = [];
        for (let i = 0; i < s.length; i++) {
          if (s[i] === "=" && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) { out.push(parseInt(s.slice(i + 1, i + 3), 16)); i += 2; }
          else out.push(s.charCodeAt(i) & 0xff);
        }
        bytes = Uint8Array.from(out);
      }
      const label = charset.split("*")[0].toLowerCase();
      let decoder;
      try { decoder = new TextDecoder(label); } catch { decoder = new TextDecoder("utf-8"); }
      return decoder.decode(bytes);
    } catch { return whole; }
  });
}

/** The header block of a raw mail: name (lowercase) to its unfolded, decoded value.
 * @param {string} raw @returns {Map<string, string>} */
export function parseHeaders(raw) {
  const end = raw.search(/\r?\n\r?\n/);
  const block = (end < 0 ? raw : raw.slice(0, end)).replace(/\r?\n[ \t]+/g, " ");
  /** @type {Map<string, string>} */
  const out = new Map();
  for (const line of block.split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!out.has(name)) out.set(name, decodeWords(line.slice(colon + 1).trim()));
  }
  return out;
}

/** A header line of the item (nothing when empty). @param {string} label @param {string | undefined} value @param {string} cls */
function line(label, value, cls) {
  return value ? h(`div.mail-${cls}`, null, h("span.mail-label", { text: `${label}: ` }), h("span.mail-value", { text: value })) : null;
}

/** The latest subject seen per conversation, for the composer. @type {Map<string, string>} */
const subjects = new Map();
/** @type {Set<(conversationId: string) => void>} */
const subjectListeners = new Set();
/** @param {string} conversationId @param {string | undefined} subject */
function seenSubject(conversationId, subject) {
  if (!subject || !conversationId) return;
  subjects.set(conversationId, subject);
  for (const f of subjectListeners) f(conversationId);
}

/** The document an iframe shows: the sanitised HTML under a policy that loads nothing from the
 * network (the frame also inherits the console's own), and no script whatever the HTML holds.
 * @param {string} html */
function frameDoc(html) {
  return `<!doctype html><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'"><base target="_blank"><style>body{font:14px/1.4 system-ui,sans-serif;margin:8px;word-wrap:break-word}img{max-width:100%}</style>${html}`;
}

/**
 * The email parts of a message item, or null for a message that is not a mail.
 * @param {any} m the message @param {{api: import("./api.js").Api}} ctx
 * @returns {{head: HTMLElement, tail: HTMLElement} | null}
 */
export function emailView(m, ctx) {
  const files = m.attachments || [];
  const original = files.find((/** @type {any} */ a) => a.filename === ORIGINAL && a.content_type === "message/rfc822");
  const html = files.find((/** @type {any} */ a) => a.filename === HTML && a.content_type === "text/html");
  if (m.email && !original) {  // an agent's email reply
    seenSubject(m.conversation_id, m.email.subject);
    const head = h("div.mail-head", null, line(t("email.subject"), m.email.subject, "subject"),
      line(t("email.cc"), (m.email.cc || []).join(", "), "cc"), line(t("email.bcc"), (m.email.bcc || []).join(", "), "bcc"));
    return { head, tail: h("div.mail-tail") };
  }
  if (!original) return null;
  const head = h("div.mail-head", { "aria-busy": "true" });
  mediaText(ctx.api, keyOf(original)).then((raw) => {
    const hd = parseHeaders(raw);
    head.append(...[line(t("email.subject"), hd.get("subject"), "subject"), line(t("email.from"), hd.get("from"), "from"),
      line(t("email.to"), hd.get("to"), "to"), line(t("email.cc"), hd.get("cc"), "cc"), line(t("email.date"), hd.get("date"), "date")].filter(Boolean));
    head.removeAttribute("aria-busy");
    seenSubject(m.conversation_id, hd.get("subject"));
  }).catch(() => head.removeAttribute("aria-busy"));

  const shown = h("div.mail-whole");
  const whole = h("button.link", { type: "button", "data-mail": "whole", text: html ? t("email.show_html") : t("email.show_original"), "aria-expanded": "false" });
  const raw = h("button.link", { type: "button", "data-mail": "original", text: t("email.show_original"), "aria-expanded": "false", hidden: !html });
  const download = h("button.link", { type: "button", "data-mail": "download", text: t("email.download_original") });
  /** @param {HTMLElement} button @param {() => Promise<HTMLElement[]>} make */
  const toggle = (button, make) => button.addEventListener("click", async () => {
    const open = button.getAttribute("aria-expanded") === "true";
    for (const b of [whole, raw]) { b.setAttribute("aria-expanded", "false"); }
    clear(shown);
    if (open) return;
    button.setAttribute("aria-expanded", "true");
    try { shown.append(...await make()); } catch { shown.append(h("p.error", { text: t("email.unavailable") })); }
  });
  const original_text = async () => [h("pre.mail-original", { text: await mediaText(ctx.api, keyOf(original)) })];
  toggle(whole, html ? async () => {
    const source = await mediaText(ctx.api, keyOf(html));
    return [h("iframe.mail-html", { sandbox: "", title: t("email.html_title"), referrerpolicy: "no-referrer", srcdoc: frameDoc(source) })];
  } : original_text);
  toggle(raw, original_text);
  download.addEventListener("click", async () => {
    const url = await ctx.api.mediaUrl(keyOf(original));
    h("a", { href: url, download: ORIGINAL }).click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  });
  return { head, tail: h("div.mail-tail", null, h("div.row", null, whole, raw, download), shown) };
}

/**
 * Cc, Bcc and the subject for a reply in an email conversation; null for other channels.
 * @param {any} inbox @param {string} conversationId
 * @returns {{el: HTMLElement, options: () => Record<string, any>, sent: () => void} | null}
 */
export function emailComposer(inbox, conversationId) {
  if (inbox?.channel !== "email" && inbox?.channel !== "sendgrid") return null;
  const cc = h("input", { id: "mail-cc", type: "text", autocomplete: "off", "aria-label": t("composer.cc"), placeholder: t("composer.cc") });
  const bcc = h("input", { id: "mail-bcc", type: "text", autocomplete: "off", "aria-label": t("composer.bcc"), placeholder: t("composer.bcc") });
  const subject = /** @type {HTMLInputElement} */ (h("input", { id: "mail-subject", type: "text", autocomplete: "off", "aria-label": t("composer.subject"), placeholder: t("composer.subject") }));
  let edited = false;
  subject.addEventListener("input", () => { edited = true; });
  subjectListeners.clear();  // one composer at a time: the open conversation's
  const fill = (/** @type {string} */ id) => {
    if (id !== conversationId || edited) return;
    const last = subjects.get(conversationId) || "";
    subject.value = /^(re|aw|sv|vs)\s*:/i.test(last) ? last : last ? `Re: ${last}` : "";
  };
  subjectListeners.add(fill);
  fill(conversationId);
  const list = (/** @type {HTMLElement} */ el) => /** @type {HTMLInputElement} */ (el).value.split(/[,;]/).map((x) => x.trim()).filter(Boolean);
  const el = h("div.mail-fields", null, subject, h("div.row", null, cc, bcc));
  return {
    el,
    options: () => ({ cc: list(cc), bcc: list(bcc), ...(subject.value.trim() ? { subject: subject.value.trim() } : {}) }),
    sent: () => { /** @type {HTMLInputElement} */ (cc).value = ""; /** @type {HTMLInputElement} */ (bcc).value = ""; },
  };
}
