/* The hub's web chat widget: one <script> tag renders a chat bubble (docs/channels/webchat.md).
 *
 *   <script src="https://hub.example/widget/widget.js" data-inbox="INBOX_ID" async></script>
 *
 * Optional attributes: data-lang (en, si, ta), data-identifier and data-identifier-hash (a
 * logged-in customer: HMAC-SHA256 of the identifier under the inbox's identity secret, computed
 * on the site's server). No build step and no framework; it works under a strict CSP: no eval,
 * no inline script or style (the stylesheet is widget.css, linked from the hub; anything dynamic
 * goes through CSSOM classes), everything inside a shadow root so the page's CSS cannot reach it.
 */
(() => {
  "use strict";
  const script = /** @type {HTMLScriptElement} */ (document.currentScript);
  if (!script) return;
  const base = new URL(".", script.src).href; // .../widget/
  const hub = new URL(script.src).origin;
  const inbox = script.dataset.inbox || "";
  const identifier = script.dataset.identifier;
  const identifierHash = script.dataset.identifierHash;

  const STRINGS = {
    en: {
      open: "Chat with us", close: "Close", title: "Chat with us", send: "Send",
      placeholder: "Write a message…", typing: "Typing…", attach: "Attach a file",
      name: "Your name", email: "Your email", start: "Start chat",
      offline: "We are away right now. Leave your email and we will answer by mail.",
      rate: "How did we do?", thanks: "Thank you for your rating.",
      refused: "The chat is not available here.", retry: "Connection lost, reconnecting…",
      failed: "Not sent", tooBig: "That file is too large.", badType: "That type of file cannot be sent.",
      slow: "You are sending too fast. Wait a moment.", stars: "{n} of 5",
    },
    si: {
      open: "අප හා කතාබස් කරන්න", close: "වසන්න", title: "අප හා කතාබස් කරන්න", send: "යවන්න",
      placeholder: "පණිවිඩයක් ලියන්න…", typing: "ලියමින්…", attach: "ගොනුවක් අමුණන්න",
      name: "ඔබේ නම", email: "ඔබේ විද්‍යුත් තැපෑල", start: "කතාබස් අරඹන්න",
      offline: "අපි දැන් නොසිටිමු. ඔබේ විද්‍යුත් තැපෑල තබන්න, අපි තැපෑලෙන් පිළිතුරු දෙන්නෙමු.",
      rate: "අපේ සේවය කෙසේද?", thanks: "ඔබේ ඇගයීමට ස්තූතියි.",
      refused: "කතාබස් මෙහි ලබා ගත නොහැක.", retry: "සම්බන්ධතාවය නැති විය, නැවත සම්බන්ධ වෙමින්…",
      failed: "නොයැවුණි", tooBig: "ගොනුව විශාල වැඩියි.", badType: "මෙම ගොනු වර්ගය යැවිය නොහැක.",
      slow: "ඔබ ඉතා වේගයෙන් යවයි. මොහොතක් රැඳී සිටින්න.", stars: "5 න් {n}",
    },
    ta: {
      open: "எங்களுடன் அரட்டையடிக்க", close: "மூடு", title: "எங்களுடன் அரட்டை", send: "அனுப்பு",
      placeholder: "செய்தியை எழுதுங்கள்…", typing: "தட்டச்சு செய்கிறார்…", attach: "கோப்பை இணைக்க",
      name: "உங்கள் பெயர்", email: "உங்கள் மின்னஞ்சல்", start: "அரட்டையைத் தொடங்கு",
      offline: "நாங்கள் இப்போது இல்லை. உங்கள் மின்னஞ்சலை விடுங்கள், மின்னஞ்சலில் பதிலளிப்போம்.",
      rate: "எங்கள் சேவை எப்படி?", thanks: "உங்கள் மதிப்பீட்டிற்கு நன்றி.",
      refused: "அரட்டை இங்கே கிடைக்காது.", retry: "இணைப்பு துண்டிக்கப்பட்டது, மீண்டும் இணைக்கிறது…",
      failed: "அனுப்பப்படவில்லை", tooBig: "கோப்பு மிகப் பெரியது.", badType: "இந்த வகை கோப்பை அனுப்ப முடியாது.",
      slow: "மிக வேகமாக அனுப்புகிறீர்கள். சற்று காத்திருங்கள்.", stars: "5 இல் {n}",
    },
  };
  const wanted = (script.dataset.lang || navigator.language || "en").slice(0, 2).toLowerCase();
  const lang = wanted in STRINGS ? wanted : "en";
  /** @param {string} key @param {Record<string, string|number>} [vars] */
  const t = (key, vars) => {
    const text = STRINGS[lang][key] || STRINGS.en[key] || key;
    return vars ? text.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? "")) : text;
  };

  /** A tiny element builder: h("button.send", {type: "submit"}, "Send"). */
  function h(tag, attrs, ...children) {
    const [name, ...classes] = tag.split(".");
    const el = document.createElement(name);
    if (classes.length) el.className = classes.join(" ");
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") el.textContent = String(v);
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c) el.append(c);
    return el;
  }

  const storeKey = `hubchat:${inbox}`;
  const saved = (() => {
    try { return JSON.parse(localStorage.getItem(storeKey) || "{}"); } catch { return {}; }
  })();
  const keep = () => { try { localStorage.setItem(storeKey, JSON.stringify(saved)); } catch { /* private mode */ } };

  // ------------------------------------------------------------------ the view
  const host = h("div", { id: "hubchat", lang });
  const root = host.attachShadow({ mode: "open" });
  root.append(h("link", { rel: "stylesheet", href: base + "widget.css" }));
  const list = h("ol.messages", { "aria-live": "polite" });
  const typing = h("p.typing", { "aria-live": "polite" });
  const status = h("p.status", { role: "status" });
  const input = h("textarea.input", { rows: 1, placeholder: t("placeholder"), "aria-label": t("placeholder"), maxlength: 10000 });
  const file = h("input.file", { type: "file", "aria-label": t("attach") });
  const attach = h("button.attach", { type: "button", title: t("attach"), "aria-label": t("attach"), text: "+", onclick: () => file.click() });
  const composer = h("form.composer", { onsubmit: (e) => { e.preventDefault(); sendText(); } },
    attach, file, input, h("button.send", { type: "submit", text: t("send") }));
  const nameField = h("input", { name: "name", autocomplete: "name" });
  const emailField = h("input", { name: "email", type: "email", autocomplete: "email" });
  const offline = h("p.offline", { text: t("offline"), hidden: true });
  const prechat = h("form.prechat", { hidden: true, onsubmit: (e) => { e.preventDefault(); submitForm(); } },
    offline,
    h("label.name", null, h("span", { text: t("name") }), nameField),
    h("label.email", null, h("span", { text: t("email") }), emailField),
    h("button.start", { type: "submit", text: t("start") }));
  const csat = h("div.csat", { hidden: true }, h("p", { text: t("rate") }));
  for (let n = 1; n <= 5; n++) {
    csat.append(h("button.star", { type: "button", "aria-label": t("stars", { n }), text: "★", onclick: () => rate(n) }));
  }
  const panel = h("section.panel", { hidden: true, role: "dialog", "aria-label": t("title") },
    h("header", null, h("h2", { text: t("title") }),
      h("button.close", { type: "button", "aria-label": t("close"), text: "×", onclick: () => toggle(false) })),
    list, typing, status, csat, prechat, composer);
  const bubble = h("button.bubble", { type: "button", "aria-label": t("open"), onclick: () => toggle(true) });
  root.append(panel, bubble);
  (document.body ? Promise.resolve() : new Promise((r) => addEventListener("DOMContentLoaded", r))).then(() => document.body.append(host));

  function toggle(open) {
    panel.hidden = !open;
    bubble.hidden = open;
    if (open) (prechat.hidden ? input : nameField).focus();
  }

  // ------------------------------------------------------------------ state
  /** @type {any} */ let socket = null;
  let lastSeq = /** @type {number|undefined} */ (undefined);
  let conversationId = "";
  let needForm = false;
  let upload = { types: /** @type {string[]} */ ([]), max: 0 };
  const shown = new Map(); // message id or client id -> <li>

  function render(m, pending) {
    const key = m.id || m.client_id;
    let li = shown.get(key) || (m.client_id && shown.get(m.client_id));
    const body = [h("span.text", { text: m.content || "" })];
    for (const a of m.attachments || []) body.push(h("span.attachment", { text: `📎 ${a.filename || a.content_type || ""}` }));
    const fresh = h(`li.msg.${m.from === "visitor" ? "mine" : "theirs"}${pending ? ".pending" : ""}`, { "data-id": m.id || "" }, ...body);
    if (li) li.replaceWith(fresh); else list.append(fresh);
    if (m.id) shown.set(m.id, fresh);
    if (m.client_id) shown.set(m.client_id, fresh);
    list.scrollTop = list.scrollHeight;
    if (m.from === "agent") typing.textContent = "";
    return fresh;
  }

  function say(text) { status.textContent = text || ""; }

  function clientId() {
    if (crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  const refusal = (err) => ({ rate_limited: t("slow"), too_large: t("tooBig"), type_not_allowed: t("badType") }[err?.code] || err?.message || t("failed"));

  function sendText() {
    const content = input.value.trim();
    if (!content || !socket) return;
    input.value = "";
    stopTyping();
    const cid = clientId();
    const li = render({ client_id: cid, from: "visitor", content }, true);
    socket.emit("message", { content, client_id: cid }, (reply) => {
      if (reply?.ok) { li.classList.remove("pending"); li.dataset.id = reply.id; shown.set(reply.id, li); say(""); }
      else { li.classList.replace("pending", "failed"); say(refusal(reply?.error)); }
    });
  }

  let typingOn = false, typingTimer = 0;
  function stopTyping() {
    clearTimeout(typingTimer);
    if (typingOn) { typingOn = false; socket?.emit("typing", { on: false }); }
  }
  input.addEventListener("input", () => {
    if (!typingOn) { typingOn = true; socket?.emit("typing", { on: true }); }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, 2000);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); sendText(); }
  });

  file.addEventListener("change", async () => {
    const f = file.files?.[0];
    file.value = "";
    if (!f || !socket) return;
    if (upload.types.length && !upload.types.includes(f.type)) return say(t("badType"));
    if (f.size > upload.max) return say(t("tooBig"));
    const cid = clientId();
    const li = render({ client_id: cid, from: "visitor", content: "", attachments: [{ filename: f.name }] }, true);
    const data = await new Promise((ok) => { const r = new FileReader(); r.onload = () => ok(String(r.result).split(",", 2)[1] || ""); r.readAsDataURL(f); });
    socket.emit("upload", { name: f.name, type: f.type, client_id: cid, data }, (reply) => {
      if (reply?.ok) { li.classList.remove("pending"); shown.set(reply.id, li); say(""); }
      else { li.classList.replace("pending", "failed"); say(refusal(reply?.error)); }
    });
  });

  function showForm(fields, open) {
    const asks = new Map(fields.map((f) => [f.field, f.required]));
    if (!open) asks.set("email", true);
    nameField.closest("label").hidden = !asks.has("name");
    emailField.closest("label").hidden = !asks.has("email");
    nameField.required = !!asks.get("name");
    emailField.required = !!asks.get("email");
    offline.hidden = open;
    needForm = asks.size > 0;
    prechat.hidden = !needForm;
    composer.hidden = needForm;
  }

  function submitForm() {
    const data = {};
    if (nameField.value.trim()) data.name = nameField.value.trim();
    if (emailField.value.trim()) data.email = emailField.value.trim();
    socket?.emit("prechat", data, (reply) => {
      if (!reply?.ok) return say(refusal(reply?.error));
      prechat.hidden = true; composer.hidden = false; say(""); input.focus();
    });
  }

  function rate(n) {
    socket?.emit("rate", { conversation_id: conversationId, rating: n }, (reply) => {
      csat.hidden = true;
      say(reply?.ok ? t("thanks") : refusal(reply?.error));
    });
  }

  function onItems(items) {
    for (const item of items) {
      if (lastSeq !== undefined && item.seq <= lastSeq) continue;
      lastSeq = item.seq;
      if (item.type === "message") render(item.message, false);
      if (item.type === "status") {
        conversationId = item.conversation_id;
        csat.hidden = item.status !== "resolved";
      }
    }
  }

  // ------------------------------------------------------------------ the socket
  import(base + "socket.io.esm.min.js").then(({ io }) => {
    socket = io(hub + "/widget", {
      transports: ["websocket"],
      auth: (cb) => cb({
        inbox_id: inbox,
        visitor_token: identifier ? undefined : saved.token,
        identifier, identifier_hash: identifierHash,
        last_seq: lastSeq,
      }),
    });
    socket.on("session", (s) => {
      if (s.visitor_token) { saved.token = s.visitor_token; keep(); }
      upload = { types: s.upload_types || [], max: s.upload_max_bytes || 0 };
      if (!s.known) showForm(s.prechat || [], s.open !== false);
      say("");
    });
    socket.on("history", (hist) => {
      list.replaceChildren();
      shown.clear();
      for (const m of hist.messages) render(m, false);
      lastSeq = hist.head;
    });
    socket.on("events", onItems);
    socket.on("typing", (e) => { typing.textContent = e.on ? t("typing") : ""; });
    socket.on("disconnect", () => say(t("retry")));
    socket.on("connect_error", (err) => {
      const code = err?.data?.code;
      if (code) {
        host.dataset.refused = code;
        say(`${t("refused")} (${code})`);
        if (code === "invalid_visitor_token") { delete saved.token; keep(); socket.connect(); }
      }
    });
    window.HubChat = { socket, open: () => toggle(true) };
  });
})();
