// @ts-check
/**
 * Contacts (`#/contacts`): a searchable, paged contact list next to the saved segments with their
 * counts (`#/contacts/segments/<id>` lists a segment's members), and the contact page
 * (`#/contacts/<id>`): name, company and the account's typed attributes (a refusal shown next to
 * its field), identities per channel, notes, a timeline of the person's messages across all their
 * conversations and channels, a merge dialog, and for administrators the person-data download
 * and erasure. Everything goes through the REST API (docs/api.md, "CRM"); a merged contact's id
 * answers with its survivor, so old links keep working.
 */
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { Api, ApiError } from "./api.js";
import { field, input, clearErrors, showError, messageOf } from "./forms.js";

const PAGE = 50;
/** conversations whose messages the timeline reads (most recent activity first) */
const TIMELINE_CONVERSATIONS = 20;
/** pages of 200 messages read per conversation */
const MESSAGE_PAGES = 20;

/**
 * @param {HTMLElement} app @param {Api} api @param {string[]} path  [], [id] or ["segments", id]
 * @param {HTMLElement} header the console's top bar
 */
export function contactsScreen(app, api, path, header) {
  clear(app);
  const main = h("main.contacts-main", { id: "contacts-main", tabindex: "-1" });
  app.append(header, main);
  const done = path[0] === "segments" || !path[0] ? listPage(api, main, path[0] === "segments" ? path[1] || "" : "")
    : contactPage(api, main, path[0]);
  done.catch((err) => main.append(h("p.error", { role: "alert", text: messageOf(err) })));
}

/** A contact's identities as chips. @param {any} c */
function identityChips(c) {
  return h("span.identities", null, ...(c.identities || []).map((/** @type {any} */ i) =>
    h("span.chip", { text: `${i.channel}: ${i.address}` })));
}

/** A table of contacts with a "more" button for the next page.
 * @param {Api} api @param {string} base  the list's path, without limit and cursor @param {string} id */
function contactTable(api, base, id) {
  const body = h("tbody");
  const more = h("button", { type: "button", id: `${id}-more`, text: t("contacts.more"), hidden: true });
  const status = h("p.muted", { "aria-live": "polite", id: `${id}-status` });
  const table = h("table.grid", { id },
    h("thead", null, h("tr", null, h("th", { text: t("contacts.name") }), h("th", { text: t("contact.identities") }))),
    body);
  /** @type {string | null} */ let cursor = null;
  async function load() {
    const sep = base.includes("?") ? "&" : "?";
    const r = await api.get(`${base}${sep}limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    body.append(...r.data.map((/** @type {any} */ c) => h("tr", { "data-contact": c.id },
      h("td", null, h("a", { href: `#/contacts/${c.id}`, text: c.name || t("list.unknown_contact") })),
      h("td", null, identityChips(c)))));
    cursor = r.next_cursor;
    more.hidden = !cursor;
    status.textContent = body.children.length ? "" : t("contacts.none");
  }
  more.addEventListener("click", () => load().catch((e) => { status.textContent = messageOf(e); }));
  return { el: h("div.table-scroll", null, table, status, more), load };
}

/** The contact list with its search, and the segments. @param {Api} api @param {HTMLElement} main @param {string} segmentId */
async function listPage(api, main, segmentId) {
  const q = input("contacts-q", { type: "search", autocomplete: "off" });
  const form = h("form.filters", { role: "search", "aria-label": t("contacts.title") },
    field("contacts-q", t("contacts.search"), q), h("button.primary", { type: "submit", text: t("contacts.find") }));
  const results = h("div", { id: "contacts-results" });
  const segments = h("ul.items", { id: "segment-list", "aria-label": t("contacts.segments") });
  const members = h("section", { id: "segment-members", "aria-live": "polite" });
  clear(main).append(h("div.contacts-cols", null,
    h("section", { "aria-labelledby": "contacts-title" }, h("h1", { id: "contacts-title", text: t("contacts.title") }), form, results),
    h("section.segments", { "aria-labelledby": "segments-title" }, h("h2", { id: "segments-title", text: t("contacts.segments") }), segments, members)));

  async function search() {
    const v = /** @type {HTMLInputElement} */ (q).value.trim();
    const table = contactTable(api, `/api/v1/contacts${v ? `?q=${encodeURIComponent(v)}` : ""}`, "contact-table");
    clear(results).append(table.el);
    try { await table.load(); } catch (err) { clearErrors(form); showError(form, err, "contacts"); }
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); search(); });

  const list = await api.get("/api/v1/segments");
  const counts = await Promise.all(list.data.map((/** @type {any} */ s) =>
    api.get(`/api/v1/segments/${s.id}/count`).then((r) => r.count).catch(() => null)));
  if (!list.data.length) segments.append(h("li.muted", { text: t("contacts.no_segments") }));
  list.data.forEach((/** @type {any} */ s, /** @type {number} */ i) => {
    segments.append(h("li", { "data-segment": s.id },
      h("a", { href: `#/contacts/segments/${s.id}`, "aria-current": s.id === segmentId ? "page" : null, text: s.name }),
      " ", h("span.badge", { text: counts[i] === null ? "?" : String(counts[i]), title: t("contacts.segment_count") })));
  });
  const open = list.data.find((/** @type {any} */ s) => s.id === segmentId);
  if (open) {
    const table = contactTable(api, `/api/v1/segments/${open.id}/contacts`, "segment-table");
    members.append(h("h3", { id: "segment-title", text: t("contacts.members", { name: open.name }) }), table.el);
    await table.load();
  }
  await search();
  q.focus();
}

// ---------------------------------------------------------------- the contact page
/** @param {Api} api @param {HTMLElement} main @param {string} asked */
async function contactPage(api, main, asked) {
  const [c, defs, companies] = await Promise.all([
    api.get(`/api/v1/contacts/${encodeURIComponent(asked)}`),
    api.get("/api/v1/contact-attributes").then((r) => r.data).catch(() => []),
    api.get("/api/v1/companies").then((r) => r.data).catch(() => []),
  ]);
  const admin = api.user?.role === "administrator";
  const title = h("h1", { id: "contact-title", text: c.name || t("list.unknown_contact") });
  const status = h("p.ok", { id: "contact-status", role: "status" });
  const merge = h("button", { type: "button", id: "merge-button", text: t("contacts.merge") });
  merge.addEventListener("click", () => mergeDialog(api, c, (survivor) => {
    contactPage(api, main, survivor).then(() => {
      const s = document.getElementById("contact-status");
      if (s) s.textContent = t("contacts.merged");
      document.getElementById("contact-title")?.focus();
    });
  }));
  const tools = h("div.row", { role: "toolbar", "aria-label": t("contacts.tools") }, merge);
  if (admin) tools.append(...personDataButtons(api, c, status, () => contactPage(api, main, c.id)));
  title.tabIndex = -1;
  clear(main).append(...[
    h("p", null, h("a", { href: "#/contacts", text: t("contacts.back") })),
    c.id !== asked ? h("p.notice-line", { id: "merged-notice", text: t("contacts.merged_into") }) : null,
    title, tools, status,
    h("div.contact-page", null,
      h("div", null,
        h("section.card", { "aria-labelledby": "ct-identities-title" },
          h("h2", { id: "ct-identities-title", text: t("contact.identities") }),
          c.identities.length ? h("ul.items", { id: "contact-identities" }, ...c.identities.map((/** @type {any} */ i) =>
            h("li", { "data-channel": i.channel }, h("span.chip", { text: i.channel }), " ", h("span.mono", { text: i.address }))))
            : h("p.muted", { text: t("contacts.no_identities") })),
        detailsForm(api, c, defs, companies, (updated) => { title.textContent = updated.name || t("list.unknown_contact"); })),
      h("div", null, notesSection(api, c.id), timelineSection(api, c.id))),
  ].filter((x) => x !== null));
}

/**
 * Name, company and attributes in one form: only what changed is sent; a refusal is shown next
 * to its field (an attribute's `details.attribute`, else the schema path).
 * @param {Api} api @param {any} c @param {any[]} defs @param {any[]} companies @param {(c: any) => void} saved
 */
function detailsForm(api, c, defs, companies, saved) {
  const name = input("ct-name", { value: c.name || "", autocomplete: "off" });
  const company = h("select", null, h("option", { value: "", text: t("contacts.no_company") }),
    ...companies.map((x) => h("option", { value: x.id, text: x.domain ? `${x.name} (${x.domain})` : x.name, selected: x.id === c.company_id })));
  const error = h("p.error.form-error", { role: "alert" });
  const ok = h("p.ok", { role: "status", id: "ct-saved" });
  const fields = defs.map((d) => field(`ct-attr-${d.key}`, d.label, attributeInput(d, c.attributes?.[d.key]), t(`contacts.type.${d.type}`)));
  const defined = new Set(defs.map((d) => d.key));
  const free = Object.entries(c.attributes || {}).filter(([k]) => !defined.has(k));
  const form = h("form.settings-form.card", { id: "contact-form", "aria-labelledby": "ct-details-title", novalidate: true },
    h("h2", { id: "ct-details-title", text: t("contacts.details") }),
    field("ct-name", t("contacts.name"), name),
    field("ct-company", t("contacts.company"), company),
    h("h3", { text: t("contact.attributes") }),
    ...(fields.length ? fields : [h("p.muted", { text: t("contacts.no_definitions") })]),
    free.length ? h("dl.free", null, ...free.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: typeof v === "string" ? v : JSON.stringify(v) })])) : null,
    error, ok, h("button.primary", { type: "submit", text: t("contacts.save") }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    ok.textContent = "";
    /** @type {Record<string, any>} */ const changes = {};
    const newName = /** @type {HTMLInputElement} */ (name).value.trim() || null;
    if (newName !== (c.name || null)) changes.name = newName;
    const newCompany = /** @type {HTMLSelectElement} */ (company).value || null;
    if (newCompany !== (c.company_id || null)) changes.company_id = newCompany;
    /** @type {Record<string, any>} */ const attributes = {};
    for (const d of defs) {
      const el = /** @type {HTMLInputElement} */ (form.querySelector(`#${CSS.escape(`ct-attr-${d.key}`)}`));
      const v = readAttribute(d, el);
      const before = c.attributes?.[d.key] ?? null;
      if (JSON.stringify(v) !== JSON.stringify(before)) attributes[d.key] = v;
    }
    if (Object.keys(attributes).length) changes.attributes = attributes;
    if (!Object.keys(changes).length) { ok.textContent = t("contacts.unchanged"); return; }
    try {
      const updated = await api.patch(`/api/v1/contacts/${c.id}`, changes);
      Object.assign(c, updated);
      ok.textContent = t("contacts.saved");
      saved(updated);
    } catch (err) {
      const key = err instanceof ApiError ? err.body?.error?.details?.attribute : null;
      if (typeof key === "string" && form.querySelector(`#${CSS.escape(`ct-attr-${key}`)}`)) {
        const target = /** @type {HTMLElement} */ (form.querySelector(`#${CSS.escape(`ct-attr-${key}`)}`));
        const line = form.querySelector(`#${CSS.escape(`ct-attr-${key}`)}-error`);
        if (line) line.textContent = messageOf(err);
        target.setAttribute("aria-invalid", "true");
        target.focus();
      } else showError(form, err, "ct");
    }
  });
  return form;
}

/** The input of a typed attribute. @param {any} d @param {any} value */
function attributeInput(d, value) {
  if (d.type === "checkbox") return h("input", { type: "checkbox", checked: value === true });
  if (d.type === "list") {
    return h("select", null, h("option", { value: "", text: "—" }),
      ...d.options.map((/** @type {string} */ o) => h("option", { value: o, text: o, selected: o === value })),
      // a stored value outside the options stays visible (and is refused if saved again)
      typeof value === "string" && value && !d.options.includes(value) ? h("option", { value, text: value, selected: true }) : null);
  }
  const shown = value === undefined || value === null ? "" : typeof value === "string" ? value : JSON.stringify(value);
  // numbers and links as text: what was typed reaches the API, which says what is wrong with it
  const type = d.type === "date" ? "date" : "text";
  return h("input", { type, value: shown, autocomplete: "off", inputmode: d.type === "number" ? "decimal" : d.type === "link" ? "url" : null });
}

/** An attribute's value as the API takes it; null removes it. @param {any} d @param {HTMLInputElement} el */
function readAttribute(d, el) {
  if (d.type === "checkbox") return el.checked;
  const v = el.value.trim();
  if (!v) return null;
  if (d.type === "number" && /^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  return v;
}

/** @param {Api} api @param {string} contactId */
function notesSection(api, contactId) {
  const list = h("ul.items", { id: "contact-notes" });
  const text = h("textarea", { rows: 3 });
  const form = h("form.settings-form", { id: "note-form", "aria-label": t("contacts.add_note") },
    field("ct-note", t("contacts.new_note"), text), h("p.error.form-error", { role: "alert" }),
    h("button.primary", { type: "submit", text: t("contacts.add_note") }));
  /** @param {any} n */
  const item = (n) => h("li", { "data-note": n.id }, h("p.content", { text: n.content }),
    h("p.muted", { text: new Date(n.created_at).toLocaleString() }));
  api.get(`/api/v1/contacts/${contactId}/notes`).then((r) => {
    list.append(...r.data.map(item));
  }).catch((err) => list.append(h("li.error", { text: messageOf(err) })));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const content = /** @type {HTMLTextAreaElement} */ (text).value.trim();
    if (!content) return;
    try {
      list.append(item(await api.post(`/api/v1/contacts/${contactId}/notes`, { content })));
      /** @type {HTMLTextAreaElement} */ (text).value = "";
    } catch (err) { showError(form, err, "ct-note"); }
  });
  return h("section.card", { "aria-labelledby": "ct-notes-title" },
    h("h2", { id: "ct-notes-title", text: t("contacts.notes") }), list, form);
}

/**
 * The person's messages across their conversations (every channel), newest first, each linked
 * to its conversation. Reads the messages of their most recently active conversations.
 * @param {Api} api @param {string} contactId
 */
function timelineSection(api, contactId) {
  const list = h("ol.contact-timeline", { id: "contact-timeline", "aria-busy": "true" });
  (async () => {
    const [convs, inboxes] = await Promise.all([
      api.get(`/api/v1/conversations?contact_id=${encodeURIComponent(contactId)}&limit=${TIMELINE_CONVERSATIONS}`),
      api.get("/api/v1/inboxes?limit=200").then((r) => new Map(r.data.map((/** @type {any} */ i) => [i.id, i]))).catch(() => new Map()),
    ]);
    const pages = await Promise.all(convs.data.map((/** @type {any} */ x) => messagesOf(api, x.id)));
    /** @type {any[]} */ const items = [];
    convs.data.forEach((/** @type {any} */ x, /** @type {number} */ i) => {
      items.push({ kind: "start", at: x.created_at, conv: x });
      for (const m of pages[i].data) items.push({ kind: "message", at: m.created_at, conv: x, m });
      if (pages[i].more) items.push({ kind: "more", at: x.last_activity_at || x.created_at, conv: x });
    });
    // newest first; a conversation's start below its first message of the same instant
    items.sort((a, b) => Date.parse(b.at) - Date.parse(a.at) || (a.kind === "start" ? 1 : 0) - (b.kind === "start" ? 1 : 0));
    if (!items.length) list.append(h("li.muted", { text: t("contacts.no_timeline") }));
    for (const it of items) {
      const inbox = inboxes.get(it.conv.inbox_id);
      const where = h("span.chip", { text: `${inbox?.channel || ""} · ${inbox?.name || ""}` });
      const when = h("time", { datetime: it.at, text: new Date(it.at).toLocaleString() });
      const open = h("a", { href: `#/conversations/${it.conv.id}`, text: t("contacts.open_conversation"), "data-conversation": it.conv.id,
        "aria-label": `${t("contacts.open_conversation")}: ${inbox?.name || ""}, ${new Date(it.at).toLocaleString()}` });
      if (it.kind === "more") {
        list.append(h("li.ct-start", null, h("p.meta-line", null, when, where, open), h("p.muted", { text: t("contacts.timeline_more") })));
      } else if (it.kind === "start") {
        list.append(h("li.ct-start", null, h("p.meta-line", null, when, where, open),
          h("p.muted", { text: t("contacts.conversation_started", { status: t(`status_conv.${it.conv.status}`) }) })));
      } else {
        const m = it.m;
        const who = m.private ? t("contacts.private_note") : m.direction === "inbound" ? t("contacts.inbound") : t("contacts.outbound");
        const text = m.content || (m.attachments?.length ? m.attachments.map((/** @type {any} */ a) => a.filename || a.name || "📎").join(", ") : "—");
        list.append(h(`li.ct-${m.private ? "note" : m.direction}`, { "data-message": m.id },
          h("p.meta-line", null, when, where, h("strong", { text: who }), open), h("p.content", { text })));
      }
    }
  })().catch((err) => list.append(h("li.error", { text: messageOf(err) })))
    .finally(() => list.removeAttribute("aria-busy"));
  return h("section.card", { "aria-labelledby": "ct-timeline-title" },
    h("h2", { id: "ct-timeline-title", text: t("contacts.timeline") }), list);
}

/** A conversation's messages, oldest first, up to MESSAGE_PAGES pages of 200 as the conversation
 * view reads them (the API has no newest-first order); `more` when that was not all.
 * @param {Api} api @param {string} id @returns {Promise<{data: any[], more: boolean}>} */
async function messagesOf(api, id) {
  /** @type {any[]} */ const all = [];
  /** @type {string | null} */ let cursor = null;
  try {
    for (let n = 0; n < MESSAGE_PAGES; n++) {
      const page = await api.get(`/api/v1/conversations/${id}/messages?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      all.push(...page.data);
      cursor = page.next_cursor;
      if (!cursor) break;
    }
  } catch (e) { if (!(e instanceof ApiError)) throw e; }  // out of sight: what was read
  return { data: all, more: cursor !== null };
}

/**
 * Pick the other contact by search, confirm, merge it into this one (which survives).
 * @param {Api} api @param {any} c @param {(survivor: string) => void} merged
 */
function mergeDialog(api, c, merged) {
  document.getElementById("merge-dialog")?.remove();
  const q = input("merge-q", { type: "search", autocomplete: "off" });
  const results = h("fieldset.merge-results", { id: "merge-results" }, h("legend", { text: t("contacts.merge_pick") }));
  const confirmLine = h("p", { id: "merge-confirm-text", "aria-live": "polite" });
  const error = h("p.error", { role: "alert", id: "merge-error" });
  const go = /** @type {HTMLButtonElement} */ (h("button.danger", { type: "button", id: "merge-confirm", text: t("contacts.merge_confirm"), disabled: true }));
  const cancel = h("button", { type: "button", text: t("settings.cancel") });
  const find = h("button", { type: "submit", text: t("contacts.find") });
  const form = h("form.row", { role: "search" }, field("merge-q", t("contacts.merge_search"), q), find);
  const dialog = /** @type {HTMLDialogElement} */ (h("dialog.help.merge", { id: "merge-dialog", "aria-labelledby": "merge-title" },
    h("h2", { id: "merge-title", text: t("contacts.merge_title", { name: c.name || t("list.unknown_contact") }) }),
    h("p.muted", { text: t("contacts.merge_intro") }),
    form, results, confirmLine, error, h("div.row", null, go, cancel)));
  /** @type {any} */ let picked = null;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    const v = /** @type {HTMLInputElement} */ (q).value.trim();
    try {
      const r = await api.get(`/api/v1/contacts?limit=20${v ? `&q=${encodeURIComponent(v)}` : ""}`);
      for (const el of [...results.querySelectorAll("label, p")]) el.remove();
      const others = r.data.filter((/** @type {any} */ x) => x.id !== c.id);
      if (!others.length) results.append(h("p.muted", { text: t("contacts.none") }));
      for (const x of others) {
        const radio = h("input", { type: "radio", name: "merge-other", value: x.id });
        radio.addEventListener("change", () => {
          picked = x;
          go.disabled = false;
          confirmLine.textContent = t("contacts.merge_question", { other: x.name || t("list.unknown_contact"), name: c.name || t("list.unknown_contact") });
        });
        results.append(h("label.check", { "data-contact": x.id }, radio, h("span", { text: x.name || t("list.unknown_contact") }), identityChips(x)));
      }
      /** @type {HTMLElement | null} */ (results.querySelector("input"))?.focus();
    } catch (err) { error.textContent = messageOf(err); }
  });
  go.addEventListener("click", async () => {
    if (!picked) return;
    go.disabled = true;
    try {
      const r = await api.post(`/api/v1/contacts/${c.id}/merge`, { contact_id: picked.id });
      dialog.close();
      merged(r.contact.id);
    } catch (err) { error.textContent = messageOf(err); go.disabled = false; }
  });
  cancel.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => { dialog.remove(); document.getElementById("merge-button")?.focus(); });
  document.body.append(dialog);
  dialog.showModal();
  q.focus();
}

/**
 * Administrators: the person-data zip (fetched with the bearer token, then saved) and the
 * erasure, which asks first.
 * @param {Api} api @param {any} c @param {HTMLElement} status @param {() => void} reload
 */
function personDataButtons(api, c, status, reload) {
  const download = h("button", { type: "button", id: "person-export", text: t("contacts.export") });
  download.addEventListener("click", async () => {
    status.textContent = "";
    const go = () => fetch(`/api/v1/contacts/${c.id}/data-export`, { headers: { Authorization: `Bearer ${api.token}` } });
    let r = await go();
    if (r.status === 401 && (await api.refresh())) r = await go();
    if (!r.ok) { status.textContent = `${t("contacts.export_failed")} (${r.status})`; return; }
    const a = h("a", { href: URL.createObjectURL(await r.blob()), download: `contact-${c.id}.zip` });
    document.body.append(a);
    /** @type {HTMLAnchorElement} */ (a).click();
    a.remove();
  });
  const erase = h("button.danger", { type: "button", id: "person-erase", text: t("contacts.erase") });
  erase.addEventListener("click", async () => {
    if (!(await confirmErase(c))) return;
    try {
      const r = await api.post(`/api/v1/contacts/${c.id}/erase`, {});
      await reload();
      const s = document.getElementById("contact-status");
      if (s) s.textContent = t("contacts.erased", { messages: r.messages, files: r.files, notes: r.notes });
    } catch (err) { status.textContent = messageOf(err); }
  });
  return [download, erase];
}

/** @param {any} c @returns {Promise<boolean>} */
function confirmErase(c) {
  return new Promise((resolve) => {
    const yes = h("button.danger", { type: "button", id: "erase-confirm", text: t("contacts.erase_confirm") });
    const no = h("button", { type: "button", text: t("settings.cancel") });
    const dialog = /** @type {HTMLDialogElement} */ (h("dialog.help", { id: "erase-dialog", "aria-labelledby": "erase-text" },
      h("p", { id: "erase-text", text: t("contacts.erase_question", { name: c.name || t("list.unknown_contact") }) }), h("div.row", null, yes, no)));
    let answer = false;
    yes.addEventListener("click", () => { answer = true; dialog.close(); });
    no.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => { dialog.remove(); resolve(answer); });
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}
