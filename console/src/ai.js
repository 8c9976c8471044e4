// @ts-check
/**
 * The AI part in the composer: the reply suggestions for the conversation's last customer message
 * (click one, or Tab in an empty reply box, to insert the first), badges with that message's
 * language and the conversation's sentiment trend, and a "summarise" action.
 * Suggestions come from GET /api/v1/conversations/{id}/ai when the conversation opens, then from
 * its message.analysed events on the socket; the one used is reported back (it ranks higher).
 * The same analysis's intent labels go to the label picker (main.js) through `onIntents`, and
 * every customer message in the timeline carries its own language and sentiment badges.
 */
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { registerMessageMeta } from "./timeline.js";

/** VADER's usual cut-offs on the compound score (as automation's sentiment condition).
 * @param {number | null | undefined} v */
export function mood(v) {
  if (v === null || v === undefined) return null;
  return v >= 0.05 ? "positive" : v <= -0.05 ? "negative" : "neutral";
}

const MOOD_MARK = { positive: "☺", negative: "☹", neutral: "○" };

/** A language code in words when the catalogue knows it ("si" → "Sinhala"), else the code.
 * @param {string} code */
export function languageName(code) {
  const key = `ai.lang.${code}`;
  const name = t(key);
  return name === key ? code : name;
}

/** A customer message's language code and sentiment mark, each with its meaning as title and
 * accessible name; nothing before the AI part analysed it. @param {any} m a timeline item */
export function messageBadges(m) {
  if (m.direction !== "inbound" || m.private) return [];
  const out = [];
  if (m.language) {
    const title = t("ai.message_language", { language: languageName(m.language) });
    out.push(h("span.chip.msg-lang", { text: m.language, title, "aria-label": title, "data-language": m.language }));
  }
  const md = mood(m.sentiment);
  if (md) {
    const title = t("ai.message_sentiment", { mood: t(`ai.${md}`), score: Number(m.sentiment).toFixed(2) });
    out.push(h(`span.msg-mood.${md}`, { role: "img", text: /** @type {any} */ (MOOD_MARK)[md], title, "aria-label": title, "data-mood": md }));
  }
  return out;
}
registerMessageMeta(messageBadges);

export class AiPanel {
  /**
   * @param {any} api the console's Api
   * @param {string} conversationId
   * @param {HTMLTextAreaElement} text the reply box
   * @param {(message: string) => void} toast
   * @param {(intents: {label: string, confidence: number}[]) => void} [onIntents] the last
   *   analysis's intent labels (above the account's threshold), for the label picker
   */
  constructor(api, conversationId, text, toast, onIntents) {
    this.api = api;
    this.id = conversationId;
    this.text = text;
    this.toast = toast;
    this.onIntents = onIntents || (() => {});
    /** @type {any[]} */
    this.suggestions = [];
    /** the message id of the analysis shown ("": none yet) */
    this.shown = "";
    this.list = h("ul.ai-suggestions", { "aria-label": t("ai.suggestions") });
    this.badges = h("span.ai-badges");
    this.summary = h("div.ai-summary", { hidden: true, "aria-live": "polite" });
    const summarise = h("button.ai-summarise", { type: "button", text: t("ai.summarise") });
    summarise.addEventListener("click", () => this.summarise());
    this.el = h("div.ai", { "data-testid": "ai-panel" }, h("div.row", null, this.badges, summarise), this.list, this.summary);
    text.addEventListener("keydown", (e) => {
      if (e.key === "Tab" && !e.shiftKey && !text.value && this.suggestions.length) {
        e.preventDefault();
        this.use(this.suggestions[0]);
      }
    });
    this.load();
  }

  async load() {
    try {
      this.show(await this.api.get(`/api/v1/conversations/${this.id}/ai`));
    } catch { /* no AI part, or not allowed: the composer works without it */ }
  }

  /** A socket event of this conversation. @param {any} ev */
  onEvent(ev) {
    if (ev.type === "message.analysed" && ev.conversation_id === this.id) this.show(ev.payload);
  }

  /** The newest analysis wins: the REST read may answer after a newer message's event.
   * @param {any} analysis */
  show(analysis) {
    if (!analysis) return;
    if (this.shown && analysis.message_id && analysis.message_id < this.shown) return;
    if (analysis.message_id) this.shown = analysis.message_id;
    this.suggestions = analysis.suggestions || [];
    clear(this.list).append(...this.suggestions.map((/** @type {any} */ s) => {
      const b = h("button", { type: "button", title: s.source, text: s.text });
      b.addEventListener("click", () => this.use(s));
      return h("li", null, b);
    }));
    const badges = [];
    if (analysis.language) badges.push(h("span.chip.ai-lang", { text: analysis.language, title: t("ai.language") }));
    const m = mood(analysis.sentiment_trend);
    if (m) badges.push(h(`span.chip.ai-mood.${m}`, { text: t(`ai.${m}`), title: t("ai.trend") }));
    clear(this.badges).append(...badges);
    this.onIntents(analysis.intents || []);
  }

  /** @param {any} s */
  use(s) {
    this.text.value = s.text;
    this.text.focus();
    this.text.dispatchEvent(new Event("input"));
    this.api.post(`/api/v1/conversations/${this.id}/ai/feedback`, { ref: s.ref }).catch(() => {});
  }

  async summarise() {
    try {
      const r = await this.api.get(`/api/v1/conversations/${this.id}/summary`);
      clear(this.summary).append(
        h("strong", { text: t("ai.summary") }),
        r.lines.length
          ? h("ul", null, ...r.lines.map((/** @type {any} */ l) => h("li", { text: `${t(`ai.${l.speaker}`)}: ${l.text}` })))
          : h("p.muted", { text: t("ai.summary_empty") }),
      );
      this.summary.hidden = false;
    } catch (err) {
      this.toast(err instanceof Error ? err.message : String(err));
    }
  }
}
