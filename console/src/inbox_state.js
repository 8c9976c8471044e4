// @ts-check
/**
 * An inbox's on/off switch and what deleting it would do, on its settings page: disabling
 * refuses its webhooks and sends nothing while its conversations stay readable; deleting is
 * possible only without conversations, and the page says so (with their number) before anyone
 * presses the button.
 */
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { Api } from "./api.js";
import { messageOf } from "./forms.js";

/**
 * @param {Api} api @param {any} inbox the inbox as GET /api/v1/inboxes/{id} answers
 * @param {() => void} changed called after a switch (the page re-renders)
 */
export function inboxSwitch(api, inbox, changed) {
  const on = inbox.enabled !== false;
  const state = h("p", { id: "inbox-state", role: "status", class: on ? "ok" : "warning",
    text: t(on ? "inbox.state_enabled" : "inbox.state_disabled") });
  const button = h(on ? "button.danger" : "button.primary", { type: "button", id: on ? "disable-inbox" : "enable-inbox",
    text: t(on ? "inbox.disable" : "inbox.enable") });
  const note = h("p.error", { role: "alert" });
  button.addEventListener("click", async () => {
    note.textContent = "";
    try { await api.post(`/api/v1/inboxes/${encodeURIComponent(inbox.id)}/${on ? "disable" : "enable"}`, undefined); changed(); }
    catch (err) { note.textContent = messageOf(err); }
  });
  return [h("h2", { text: t("inbox.state") }), state, h("p.muted", { text: t("inbox.disable_explained") }), button, note];
}

/** What deleting this inbox does to its conversations, said before the button. @param {any} inbox */
export function deleteConsequence(inbox) {
  const n = Number(inbox.conversation_count || 0);
  return h("p", { id: "delete-consequence", text: n
    ? t("inbox.delete_has_conversations", { count: n })
    : t("inbox.delete_no_conversations") });
}
