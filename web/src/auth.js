// Sign-in. Two providers with one shape:
//   start()                      resolves once the signed-in state is known
//   user                         the signed-in user id, or null
//   org                          the active organization, {id, name, role}, or null
//   getToken({minValidity, force}) a session token valid for at least
//                                minValidity more seconds (null: signed out)
//   signOut(), onChange(fn)
//
// ClerkAuth (production): Clerk's own browser SDK, loaded from the instance's
// Frontend API with the documented script tag (data-clerk-publishable-key),
// then `Clerk.load()`; tokens come from `Clerk.session.getToken()`, which
// Clerk keeps fresh (its session tokens live 60 s).
//
// DevAuth (`quire dev`): a "sign in as" box; tokens are minted by the local
// stand-in at POST /__dev/token with a 60 s lifetime, like Clerk's, and
// refreshed 10 s before they expire. The box can also name an active
// organization and role; every token it mints (refreshes too) carries them.

import { parseDevSignIn } from './member-id.js';

/** The payload of a JWT (no verification: the server does that). */
export function jwtPayload(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return {};
  }
}

/**
 * When a token expires, in this browser's clock: now + (exp - iat), so a
 * skewed local clock does not make fresh tokens look expired.
 */
function localExpiry(token) {
  const { exp, iat } = jwtPayload(token);
  if (typeof exp !== 'number') return 0;
  const life = typeof iat === 'number' ? exp - iat : exp - Date.now() / 1000;
  return Date.now() / 1000 + life;
}

class Listeners {
  constructor() { this.fns = new Set(); }
  on(fn) { this.fns.add(fn); return () => this.fns.delete(fn); }
  emit(value) { for (const fn of [...this.fns]) fn(value); }
}

const DEV_USER_KEY = 'quire.dev.user';
const REFRESH_BEFORE = 10; // seconds

export class DevAuth {
  constructor() {
    this.kind = 'dev';
    this.user = null;
    this.org = null; // {id, name, role}: the minted tokens' active organization
    this.sessionId = null;
    this.token = null;
    this.expiresAt = 0; // local clock, seconds
    this.timer = null;
    this.pending = null;
    this.listeners = new Listeners();
  }

  onChange(fn) { return this.listeners.on(fn); }

  async start() {
    const saved = parseDevSignIn(sessionStorage.getItem(DEV_USER_KEY));
    if (!saved) return;
    try {
      await this.signIn(saved.user, { orgId: saved.org, orgRole: saved.orgRole });
    } catch {
      sessionStorage.removeItem(DEV_USER_KEY);
    }
  }

  /**
   * Mints a token for `userId` (the dev stand-in accepts any id), with
   * `orgId` (`org_...`) as its active organization when given.
   */
  async signIn(userId, { orgId = null, orgRole = null } = {}) {
    const org = orgId?.trim() ? { id: orgId.trim(), name: orgId.trim(), role: orgRole || 'org:admin' } : null;
    await this.mint(userId.trim(), null, org);
    this.org = org;
    sessionStorage.setItem(DEV_USER_KEY, JSON.stringify({ user: this.user, org: org?.id ?? null, orgRole: org?.role ?? null }));
    this.listeners.emit(this.user);
  }

  async mint(userId, sessionId, org) {
    const body = { user_id: userId, lifetime_secs: 60 };
    if (sessionId) body.session_id = sessionId;
    if (org) {
      body.org_id = org.id;
      body.org_role = org.role;
    }
    const response = await fetch('/__dev/token', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(json?.error?.message || `sign-in failed (${response.status})`);
    this.user = json.user_id;
    this.sessionId = json.session_id;
    this.token = json.token;
    this.expiresAt = localExpiry(json.token);
    this.schedule();
  }

  schedule() {
    clearTimeout(this.timer);
    const ms = Math.max(1000, (this.expiresAt - REFRESH_BEFORE) * 1000 - Date.now());
    this.timer = setTimeout(() => this.refresh().catch(() => this.retryRefresh()), ms);
  }

  retryRefresh() {
    clearTimeout(this.timer);
    if (!this.user) return;
    this.timer = setTimeout(() => this.refresh().catch(() => this.retryRefresh()), 2000);
  }

  /** A new token for the same user and session; concurrent callers share it. */
  refresh() {
    if (!this.user) return Promise.resolve();
    if (!this.pending) {
      this.pending = this.mint(this.user, this.sessionId, this.org).finally(() => { this.pending = null; });
    }
    return this.pending;
  }

  async getToken({ minValidity = 15, force = false } = {}) {
    if (!this.user) return null;
    if (force || this.expiresAt - Date.now() / 1000 < minValidity) await this.refresh();
    return this.user ? this.token : null;
  }

  async signOut() {
    clearTimeout(this.timer);
    this.user = this.token = this.sessionId = this.org = null;
    this.expiresAt = 0;
    sessionStorage.removeItem(DEV_USER_KEY);
    this.listeners.emit(null);
  }
}

/** `https://<frontend-api-host>` from `pk_test_` / `pk_live_` + base64(host + '$'). */
export function frontendApiFromKey(publishableKey) {
  const m = /^pk_(?:test|live)_([A-Za-z0-9+/=_-]+)$/.exec(publishableKey || '');
  if (!m) throw new Error('malformed Clerk publishable key');
  const b64 = m[1].replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  const decoded = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  const host = decoded.replace(/\$$/, '');
  if (!/^[A-Za-z0-9.-]+(?::\d+)?$/.test(host)) throw new Error('malformed Clerk publishable key');
  return `https://${host}`;
}

/** Clerk's script tag, as its docs give it, pinned to clerk-js major 5. */
function loadClerkScript(publishableKey) {
  if (window.Clerk) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.async = true;
    script.crossOrigin = 'anonymous';
    script.type = 'text/javascript';
    script.setAttribute('data-clerk-publishable-key', publishableKey);
    script.src = `${frontendApiFromKey(publishableKey)}/npm/@clerk/clerk-js@5/dist/clerk.browser.js`;
    script.addEventListener('load', () => resolve());
    script.addEventListener('error', () => reject(new Error('could not load Clerk')));
    document.head.append(script);
  });
}

export class ClerkAuth {
  constructor(publishableKey) {
    this.kind = 'clerk';
    this.publishableKey = publishableKey;
    this.clerk = null;
    this.user = null;
    this.listeners = new Listeners();
  }

  onChange(fn) { return this.listeners.on(fn); }

  async start() {
    await loadClerkScript(this.publishableKey);
    this.clerk = window.Clerk;
    await this.clerk.load();
    this.user = this.clerk.user?.id ?? null;
    this.clerk.addListener(({ user }) => {
      const id = user?.id ?? null;
      if (id !== this.user) {
        this.user = id;
        this.listeners.emit(id);
      }
    });
  }

  async getToken({ minValidity = 15, force = false } = {}) {
    const session = this.clerk?.session;
    if (!session) return null;
    let token = force ? null : await session.getToken();
    if (!token || localExpiry(token) - Date.now() / 1000 < minValidity) {
      token = await session.getToken({ skipCache: true });
    }
    return token || null;
  }

  /** The session's active organization, as Clerk's SDK knows it. */
  get org() {
    const o = this.clerk?.organization;
    return o?.id ? { id: o.id, name: o.name || o.id, role: null } : null;
  }

  /** What `Clerk.user.getOrganizationMemberships()` resolves to (the share dialog offers these). */
  async organizationMemberships() {
    const user = this.clerk?.user;
    if (typeof user?.getOrganizationMemberships !== 'function') return [];
    return user.getOrganizationMemberships();
  }

  mountSignIn(el) { this.clerk.mountSignIn(el); }
  unmountSignIn(el) { try { this.clerk.unmountSignIn(el); } catch { /* not mounted */ } }
  mountUserButton(el) { this.clerk.mountUserButton(el); }

  async signOut() {
    await this.clerk.signOut();
    this.user = null;
    this.listeners.emit(null);
  }
}
