// @ts-check
/**
 * Macros: the "Macros" button of a conversation (a menu of the account's macros; one click runs
 * one, POST /api/v1/conversations/{id}/macros/{macro_id}) and the settings section where
 * administrators add and delete them (`#/settings/macros`). A macro the hub turned off is shown
 * greyed out with its reason.
 */
import { ApiError } from "./api.js";
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";

/** @param {unknown} err */
function messageOf(err) {
  return err instanceof Error ? err.message : String(err);
}

/**
 * @param {import("./api.js").Api} api @param {string} conversationId
 * @param {(text: string) => void} toast
 */
export function macrosButton(api, conversationId, toast) {
  const menu = h("ul.macro-menu", { id: "macro-menu", role: "menu", hidden: true });
  const button = h("button.macros-button", {
    type: "button", id: "macros-button", text: t("macros.button"),
    "aria-haspopup": "menu", "aria-expanded": "false", "aria-controls": "macro-menu",
  });
  const close = () => { menu.hidden = true; button.setAttribute("aria-expanded", "false"); };
  button.addEventListener("click", async () => {
    if (!menu.hidden) return close();
    clear(menu).append(h("li.muted", { role: "none", text: t("macros.loading") }));
    menu.hidden = false;
    button.setAttribute("aria-expanded", "true");
    let found = [];
    try { found = (await api.get("/api/v1/macros")).data; }
    catch (err) { clear(menu).append(h("li.error", { role: "none", text: messageOf(err) })); return; }
    clear(menu);
    if (!found.length) menu.append(h("li.muted", { role: "none", text: t("macros.none") }));
    for (const m of found) {
      const item = h("button", {
        type: "button", role: "menuitem", "data-macro": m.id, text: m.name,
        disabled: !m.enabled, title: m.enabled ? "" : t("macros.off", { reason: m.disabled_reason || "" }),
      });
      item.addEventListener("click", async () => {
        close();
        try {
          await api.post(`/api/v1/conversations/${encodeURIComponent(conversationId)}/macros/${encodeURIComponent(m.id)}`, {});
          toast(t("macros.ran", { name: m.name }));
        } catch (err) {
          toast(err instanceof ApiError && err.code === "macro_disabled" ? t("macros.off", { reason: err.message }) : messageOf(err));
        }
      });
      menu.append(h("li", { role: "none" }, item,
        m.enabled ? null : h("span.muted.macro-reason", { text: ` ${m.disabled_reason || ""}` })));
    }
    /** @type {HTMLElement | null} */ (menu.querySelector("button:not([disabled])"))?.focus();
  });
  menu.addEventListener("keydown", (e) => { if (/** @type {KeyboardEvent} */ (e).key === "Escape") { close(); button.focus(); } });
  return h("span.macros", null, button, menu);
}

/** The settings section: the macros with their actions, an add form (actions as JSON, in the
 * rules' vocabulary) and delete buttons. @param {{api: import("./api.js").Api, main: HTMLElement}} c */
export async function macrosSettings(c) {
  const found = (await c.api.get("/api/v1/macros")).data;
  const name = h("input", { id: "macro-name", required: true });
  const actions = h("textarea.mono", {
    id: "macro-actions", rows: 4, required: true,
    placeholder: '[{"type": "add_labels", "value": ["billing"]}, {"type": "set_status", "value": "resolved"}]',
  });
  const error = h("p.form-error.error", { role: "alert" });
  const form = h("form.settings-form", { id: "macro-form", novalidate: true },
    h("label", { for: "macro-name", text: t("macros.name") }), name,
    h("label", { for: "macro-actions", text: t("macros.actions") }), actions,
    h("p.muted", { text: t("macros.actions_hint") }),
    error, h("button.primary", { type: "submit", text: t("settings.add") }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    let parsed;
    try { parsed = JSON.parse(/** @type {HTMLTextAreaElement} */ (actions).value); }
    catch { error.textContent = t("macros.bad_json"); return; }
    try {
      await c.api.post("/api/v1/macros", { name: /** @type {HTMLInputElement} */ (name).value, actions: parsed });
      await macrosSettings(c);
    } catch (err) { error.textContent = messageOf(err); }
  });
  const rows = found.map((/** @type {any} */ m) => {
    const del = h("button.danger", { type: "button", text: t("settings.delete"), "aria-label": `${t("settings.delete")}: ${m.name}` });
    const note = h("span.error", { role: "alert" });
    del.addEventListener("click", async () => {
      if (!window.confirm(t("settings.delete_confirm", { name: m.name }))) return;
      try { await c.api.call("DELETE", `/api/v1/macros/${encodeURIComponent(m.id)}`); await macrosSettings(c); }
      catch (err) { note.textContent = messageOf(err); }
    });
    return h("li", { "data-id": m.id }, h("strong", { text: m.name }), " ",
      h("code", { text: m.actions.map((/** @type {any} */ a) => a.type).join(", ") }),
      m.enabled ? null : h("span.error", { text: ` ${t("macros.off", { reason: m.disabled_reason || "" })}` }),
      " ", del, note);
  });
  clear(c.main).append(h("h1", { id: "settings-title", text: t("settings.macros") }), form,
    h("ul.items", { id: "macro-list" }, ...rows));
}
