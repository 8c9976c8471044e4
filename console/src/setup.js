// @ts-check
/**
 * The first run (`/setup`): the setup token `hub serve` printed (the link carries it after `#`),
 * the account's name and time zone, the first administrator and, if wanted, their two-factor
 * enrolment; then a checklist of what to do next. Accepting an invitation (`#/invite/<token>`)
 * lives here too: both set a first password.
 */
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { Api } from "./api.js";
import { field, input, clearErrors, showError } from "./forms.js";

/** The password policy's length, said before sending (the API refuses it too).
 * @param {HTMLElement} form @param {HTMLInputElement} password */
function tooShort(form, password) {
  const line = form.querySelector(`#${password.id}-error`);
  if (line) line.textContent = t("setup.password_short");
  password.setAttribute("aria-invalid", "true");
  password.focus();
}

/** @param {string} selected */
function timeZones(selected) {
  /** @type {string[]} */
  let zones = [];
  try { zones = /** @type {any} */ (Intl).supportedValuesOf("timeZone"); } catch { zones = []; }
  if (!zones.includes("UTC")) zones = ["UTC", ...zones];
  if (!zones.includes(selected)) zones = [selected, ...zones];
  return h("select", null, ...zones.map((z) => h("option", { value: z, text: z, selected: z === selected })));
}

/** @param {HTMLElement} app @param {Api} api @param {() => void} done */
export async function setupScreen(app, api, done) {
  clear(app);
  const state = await fetch("/api/v1/setup").then((r) => (r.ok ? r.json() : null)).catch(() => null);
  if (!state) {
    app.append(h("main.center", null, h("section.login", null,
      h("h1", { text: t("setup.done_title") }), h("p", { text: t("setup.done") }),
      h("a", { href: "/", text: t("setup.to_login") }))));
    return;
  }
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token") || "";
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const token = input("setup-token", { required: true, autocomplete: "off", value: fromLink });
  const account = input("setup-account_name", { required: true, autocomplete: "organization" });
  const tz = timeZones(zone);
  const name = input("setup-name", { required: true, autocomplete: "name" });
  const email = input("setup-email", { type: "email", required: true, autocomplete: "username" });
  const password = input("setup-password", { type: "password", required: true, autocomplete: "new-password", minlength: 10 });
  const mfa = input("setup-mfa", { type: "checkbox" });
  const submit = h("button.primary", { type: "submit", text: t("setup.submit") });
  const form = h("form.login.wide", { "aria-labelledby": "setup-title", novalidate: true },
    h("h1", { id: "setup-title", text: t("setup.title") }),
    h("p", { text: t("setup.intro") }),
    field("setup-setup_token", t("setup.token"), token, t("setup.token_hint")),
    field("setup-account_name", t("setup.account_name"), account),
    field("setup-time_zone", t("setup.time_zone"), tz),
    field("setup-name", t("setup.name"), name),
    field("setup-email", t("setup.email"), email),
    field("setup-password", t("setup.password"), password, t("setup.password_hint")),
    h("label.check", null, mfa, " ", t("setup.mfa")),
    h("p.form-error.error", { role: "alert" }),
    submit);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const v = (/** @type {HTMLInputElement | HTMLSelectElement} */ el) => el.value;
    if (v(password).length < 10) return tooShort(form, password);
    submit.setAttribute("disabled", "");
    try {
      const r = await api.raw("POST", "/api/v1/setup", {
        setup_token: v(token).trim(), account_name: v(account), time_zone: v(/** @type {any} */ (tz)),
        name: v(name), email: v(email), password: v(password),
      }, false);
      api.save(r);
      history.replaceState(null, "", "/");
      if (mfa.checked) await enrolOwn(app, api, () => checklist(app, done));
      else checklist(app, done);
    } catch (err) {
      showError(form, err, "setup");
    } finally { submit.removeAttribute("disabled"); }
  });
  app.append(h("main.center.scroll", null, form));
  (fromLink ? account : token).focus();
}

/** Two-factor enrolment of the signed-in user (profile routes), then backup codes once.
 * @param {HTMLElement} app @param {Api} api @param {() => void} next */
export async function enrolOwn(app, api, next) {
  clear(app);
  const enrolment = await api.post("/api/v1/profile/mfa/enrol", undefined);
  const code = input("own-code", { inputmode: "numeric", autocomplete: "one-time-code", required: true });
  const form = h("form.login.enrol", { "aria-labelledby": "own-enrol-title" },
    h("h1", { id: "own-enrol-title", text: t("enrol.title") }),
    h("p", { text: t("enrol.intro") }),
    h("label", { for: "mfa-secret", text: t("enrol.secret") }),
    h("input.mono", { id: "mfa-secret", readonly: true, value: enrolment.secret }),
    h("label", { for: "mfa-uri", text: t("enrol.uri") }),
    h("textarea.mono", { id: "mfa-uri", readonly: true, rows: 3, text: enrolment.otpauth_uri }),
    field("own-code", t("enrol.code"), code),
    h("p.form-error.error", { role: "alert" }),
    h("button.primary", { type: "submit", text: t("enrol.submit") }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    try {
      const r = await api.post("/api/v1/profile/mfa/confirm", { code: code.value.trim() });
      const go = h("button.primary", { type: "button", text: t("enrol.continue") });
      go.addEventListener("click", next);
      clear(app).append(h("main.center", null, h("section.login", { "aria-labelledby": "backup-title" },
        h("h1", { id: "backup-title", text: t("enrol.backup_title") }),
        h("p", { text: t("enrol.backup_intro") }),
        h("ol.backup-codes.mono", { id: "backup-codes" }, ...(r.backup_codes || []).map((/** @type {string} */ c) => h("li", { text: c }))),
        go)));
      go.focus();
    } catch (err) { showError(form, err, "own"); }
  });
  app.append(h("main.center", null, form));
  code.focus();
}

/** What to do after the first run. @param {HTMLElement} app @param {() => void} done */
export function checklist(app, done) {
  clear(app);
  const go = h("button.primary", { type: "button", text: t("checklist.open_console") });
  go.addEventListener("click", () => { history.replaceState(null, "", "/"); done(); });
  const item = (/** @type {string} */ key, /** @type {string} */ href) =>
    h("li", null, h("a", { href, text: t(`checklist.${key}`) }), h("p.muted", { text: t(`checklist.${key}_hint`) }));
  app.append(h("main.center", null, h("section.login.wide", { "aria-labelledby": "checklist-title", id: "checklist" },
    h("h1", { id: "checklist-title", text: t("checklist.title") }),
    h("ol.checklist", null,
      item("channel", "#/settings/inboxes/new"),
      item("team", "#/settings/agents"),
      item("test", "#/settings/inboxes")),
    go)));
  go.focus();
}

/** Accept an invitation: a password (and a name), then logged in.
 * @param {HTMLElement} app @param {Api} api @param {string} token @param {(r: any) => void} next */
export function inviteScreen(app, api, token, next) {
  clear(app);
  const name = input("invite-name", { autocomplete: "name" });
  const password = input("invite-password", { type: "password", required: true, autocomplete: "new-password" });
  const form = h("form.login", { "aria-labelledby": "invite-title" },
    h("h1", { id: "invite-title", text: t("invite.title") }),
    field("invite-name", t("invite.name"), name, t("invite.name_hint")),
    field("invite-password", t("setup.password"), password, t("setup.password_hint")),
    h("p.form-error.error", { role: "alert" }),
    h("button.primary", { type: "submit", text: t("invite.submit") }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    if (password.value.length < 10) return tooShort(form, password);
    try {
      /** @type {Record<string, string>} */
      const body = { token, password: password.value };
      if (name.value.trim()) body.name = name.value.trim();
      const r = await api.raw("POST", "/api/v1/auth/accept-invite", body, false);
      if (r.status === "authenticated") api.save(r);
      history.replaceState(null, "", "/");
      next(r);
    } catch (err) {
      if (err && /** @type {any} */ (err).code === "invalid_invitation") {
        const line = form.querySelector(".form-error");
        if (line) line.textContent = t("invite.invalid");
      } else showError(form, err, "invite");
    }
  });
  app.append(h("main.center", null, form));
  password.focus();
}
