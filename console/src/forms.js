// @ts-check
/**
 * Form helpers for the settings and set-up screens: labelled fields with an error line each, and
 * the API's refusals shown next to the field they concern (`details.field`, or the `details.path`
 * of a schema error such as `$.settings.from_number`).
 */
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { ApiError } from "./api.js";

/**
 * A labelled field: the input gets the id, an error line `<id>-error` it is described by.
 * @param {string} id @param {string} label @param {HTMLElement} input @param {string} [hint]
 */
export function field(id, label, input, hint) {
  input.id = id;
  const error = h("p.field-error", { id: `${id}-error`, "aria-live": "polite" });
  input.setAttribute("aria-describedby", hint ? `${id}-hint ${id}-error` : `${id}-error`);
  return h("div.field", { "data-field": id }, h("label", { for: id, text: label }), input,
    hint ? h("p.hint.muted", { id: `${id}-hint`, text: hint }) : null, error);
}

/** @param {string} id @param {Record<string, any>} [attrs] */
export function input(id, attrs = {}) { return /** @type {HTMLInputElement} */ (h("input", { id, ...attrs })); }

/** @param {HTMLElement} form */
export function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error, .form-error")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

/**
 * The field a refusal is about: `details.field` ("settings.from_number") or the schema path
 * ("$.credentials.auth_token"), as an input id `<prefix>-<a>-<b>`.
 * @param {any} err @param {string} prefix
 */
export function fieldOf(err, prefix) {
  const d = err instanceof ApiError ? err.body?.error?.details : null;
  let name = typeof d?.field === "string" ? d.field : typeof d?.path === "string" ? d.path.replaceAll("`", "").replace(/^\$\.?/, "") : "";
  name = name.replace(/\[\d+\]$/, "");
  return name ? `${prefix}-${name.replaceAll(".", "-")}` : "";
}

/** The message of an error, for people. @param {any} err */
export function messageOf(err) {
  if (err instanceof ApiError) {
    const d = err.body?.error?.details;
    const reason = typeof d?.reason === "string" ? ` (${d.reason})` : "";
    if (err.code === "forbidden") return t("settings.forbidden");
    return `${err.message}${reason}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * Show a refusal next to its field (else in the form's own error line), and focus that field.
 * @param {HTMLElement} form @param {any} err @param {string} prefix
 */
export function showError(form, err, prefix) {
  const id = fieldOf(err, prefix);
  const target = id ? form.querySelector(`#${CSS.escape(id)}`) : null;
  const line = target ? form.querySelector(`#${CSS.escape(id)}-error`) : form.querySelector(".form-error");
  if (line) line.textContent = messageOf(err);
  if (target instanceof HTMLElement) { target.setAttribute("aria-invalid", "true"); target.focus(); }
}

/** A read-only value with a copy button. @param {string} id @param {string} label @param {string} value */
export function copyable(id, label, value) {
  const box = h("input.mono", { id, readonly: true, value });
  const button = h("button", { type: "button", "data-copy": id, text: t("settings.copy"), "aria-label": `${t("settings.copy")}: ${label}` });
  const done = h("span.muted", { "aria-live": "polite" });
  button.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(value); done.textContent = t("settings.copied"); }
    catch { /** @type {HTMLInputElement} */ (box).select(); done.textContent = t("settings.copy_by_hand"); }
  });
  return h("div.field", null, h("label", { for: id, text: label }), h("div.row", null, box, button, done));
}
