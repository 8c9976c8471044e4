// @ts-check
/**
 * REST calls with the session's bearer token.
 *
 * The session (access + refresh token) is kept in localStorage so that a reload stays logged in.
 * Trade-off: any script running on this origin could read it; the strict CSP (no inline or
 * third-party scripts) is what protects it, and a refresh token is single-use (a reused one ends
 * the whole session server-side). Tabs share the session; refreshing is serialised across tabs
 * with the Web Locks API so two tabs never rotate the same refresh token.
 */

const KEY = "hub.session";
/** @typedef {{access_token: string, refresh_token: string, access_expires_at: string, user: {id: string, email: string, name: string, role: string, account_id: string}}} Session */

export class ApiError extends Error {
  /** @param {number} status @param {any} body */
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code || "http_error";
    this.body = body;
  }
}

export class Api {
  constructor() {
    /** @type {Session | null} */
    this.session = this.stored();
    /** @type {() => void} */
    this.onLoggedOut = () => {};
    /** @type {number | undefined} */
    this.timer = undefined;
    this.schedule();
  }

  /** @returns {Session | null} */
  stored() {
    try { return JSON.parse(localStorage.getItem(KEY) || "null"); } catch { return null; }
  }

  /** @param {Session | null} s */
  save(s) {
    this.session = s;
    if (s) localStorage.setItem(KEY, JSON.stringify(s)); else localStorage.removeItem(KEY);
    this.schedule();
  }

  get token() { return this.session?.access_token || ""; }
  get user() { return this.session?.user || null; }

  /** Renew the access token a minute before it expires. */
  schedule() {
    clearTimeout(this.timer);
    if (!this.session) return;
    const due = Date.parse(this.session.access_expires_at) - Date.now() - 60_000;
    this.timer = window.setTimeout(() => this.refresh().catch(() => {}), Math.max(due, 1_000));
  }

  /** @param {string} email @param {string} password */
  async login(email, password) {
    const r = await this.raw("POST", "/api/v1/auth/login", { email, password }, false);
    if (r.status === "authenticated") this.save(r);
    return r;
  }

  /** @param {string} mfaToken @param {string} code */
  async mfa(mfaToken, code) {
    const body = /^\d{6}$/.test(code) ? { mfa_token: mfaToken, code } : { mfa_token: mfaToken, backup_code: code };
    const r = await this.raw("POST", "/api/v1/auth/mfa", body, false);
    this.save(r);
    return r;
  }

  /** The enrolment an account's MFA rule asks for (login answered mfa_setup_required). */
  /** @param {string} mfaToken */
  enrol(mfaToken) { return this.raw("POST", "/api/v1/auth/mfa/enrol", { mfa_token: mfaToken }, false); }

  /** Confirm the enrolment with a first code: logs in; the answer's backup codes are not kept. */
  /** @param {string} mfaToken @param {string} code @returns {Promise<string[]>} */
  async confirmEnrol(mfaToken, code) {
    const r = await this.raw("POST", "/api/v1/auth/mfa/confirm", { mfa_token: mfaToken, code }, false);
    const { backup_codes: codes, ...session } = r;
    this.save(session);
    return codes;
  }

  async logout() {
    const s = this.session;
    this.save(null);
    if (s) await this.raw("POST", "/api/v1/auth/logout", undefined, false, s.access_token).catch(() => {});
  }

  /** Rotate the refresh token (once at a time across tabs); true when a fresh token is in hand. */
  async refresh() {
    const before = this.session?.refresh_token;
    const run = async () => {
      const latest = this.stored();  // another tab may have rotated it already
      if (latest && latest.refresh_token !== before && Date.parse(latest.access_expires_at) > Date.now() + 5_000) {
        this.save(latest);
        return true;
      }
      const s = latest || this.session;
      if (!s) return false;
      try {
        const r = await this.raw("POST", "/api/v1/auth/refresh", { refresh_token: s.refresh_token }, false);
        this.save(r);
        return true;
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) { this.save(null); this.onLoggedOut(); }
        return false;
      }
    };
    return navigator.locks ? navigator.locks.request("hub.refresh", run) : run();
  }

  /**
   * @param {string} method @param {string} path @param {any} [body]
   * @param {boolean} [auth] @param {string} [token]
   */
  async raw(method, path, body, auth = true, token) {
    /** @type {Record<string, string>} */
    const headers = {};
    const bearer = token || (auth ? this.token : "");
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    let payload;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
    const r = await fetch(path, { method, headers, body: payload });
    const data = r.status === 204 ? null : await r.json().catch(() => null);
    if (!r.ok) throw new ApiError(r.status, data);
    return data;
  }

  /** A call with the token; a 401 tries one refresh, then sends the user to the login screen. */
  /** @param {string} method @param {string} path @param {any} [body] */
  async call(method, path, body) {
    try {
      return await this.raw(method, path, body);
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) throw e;
      if (await this.refresh()) return this.raw(method, path, body);
      this.save(null);
      this.onLoggedOut();
      throw e;
    }
  }

  /** @param {string} path */ get(path) { return this.call("GET", path); }
  /** @param {string} path @param {any} body */ post(path, body) { return this.call("POST", path, body); }
  /** @param {string} path @param {any} body */ patch(path, body) { return this.call("PATCH", path, body); }

  /** A media file as an object URL (downloads need the bearer token, so no plain links). */
  /** @param {string} key */
  async mediaUrl(key) {
    const go = () => fetch(`/api/v1/media/${encodeURIComponent(key)}`, { headers: { Authorization: `Bearer ${this.token}` } });
    let r = await go();
    if (r.status === 401 && (await this.refresh())) r = await go();
    if (!r.ok) throw new ApiError(r.status, null);
    return URL.createObjectURL(await r.blob());
  }
}
