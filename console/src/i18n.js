// @ts-check
/** Message catalogues (console/i18n/<lang>.json): every UI string goes through t(). */

export const LANGUAGES = ["en", "si"];
/** @type {Record<string, string>} */
let messages = {};
/** @type {Record<string, string>} */
let fallback = {};
let current = "en";

export function language() { return current; }

/** The saved choice, else the browser's first language we have, else English. */
export function preferred() {
  const saved = localStorage.getItem("hub.lang");
  if (saved && LANGUAGES.includes(saved)) return saved;
  for (const l of navigator.languages || [navigator.language]) {
    const base = (l || "").toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

/** @param {string} lang */
async function fetchCatalogue(lang) {
  const r = await fetch(`/console/i18n/${lang}.json`);
  return r.ok ? r.json() : {};
}

/** @param {string} lang @param {boolean} [save] */
export async function setLanguage(lang, save = false) {
  if (!Object.keys(fallback).length) fallback = await fetchCatalogue("en");
  messages = lang === "en" ? fallback : await fetchCatalogue(lang);
  current = lang;
  document.documentElement.lang = lang;
  if (save) localStorage.setItem("hub.lang", lang);
}

/** @param {string} key @param {Record<string, string | number>} [vars] */
export function t(key, vars) {
  let s = messages[key] ?? fallback[key] ?? key;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, String(v));
  return s;
}
