// One notebook's WebSocket: authentication by first message, resume after
// a drop (`since {epoch, version}`), token refresh over the socket before the
// token expires, keepalive, and reconnect with backoff. Close codes that
// mean "stop" (4401 twice, 4403, 4404) end it with a clear reason instead of
// retrying forever.
//
// Phases (shown to the user): connecting, live, reconnecting, closed.

const MAX_BACKOFF_MS = 15_000;
const READY_TIMEOUT_MS = 15_000;
const PING_EVERY_MS = 15_000;
const SILENCE_LIMIT_MS = 40_000;

export class Live {
  /**
   * @param {object} o
   * @param {string} o.notebookId
   * @param {object} o.auth      see auth.js
   * @param {() => ({epoch, version}|null)} o.resumePoint
   * @param {(msg) => void} o.onMessage  every server message after `ready` (and `ready`)
   * @param {(state) => void} o.onState  {phase, reason?, message?, retryIn?}
   */
  constructor({ notebookId, auth, resumePoint, onMessage, onState }) {
    this.notebookId = notebookId;
    this.auth = auth;
    this.resumePoint = resumePoint;
    this.onMessage = onMessage;
    this.onState = onState;
    this.ws = null;
    this.ready = false;
    this.stopped = false;
    this.everReady = false;
    this.attempts = 0;
    this.authRetried = false;
    this.forceToken = false;
    this.seq = 0;
    this.timers = {};
    this.lastSeen = 0;
    this.state = { phase: 'connecting' };
    this.onOnline = () => { if (!this.ws && !this.stopped) this.connect(); };
    window.addEventListener('online', this.onOnline);
  }

  setState(state) {
    this.state = state;
    this.onState(state);
  }

  clear(name) {
    clearTimeout(this.timers[name]);
    clearInterval(this.timers[name]);
    delete this.timers[name];
  }

  clearAll() {
    for (const name of Object.keys(this.timers)) this.clear(name);
  }

  url() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/api/v1/notebooks/${encodeURIComponent(this.notebookId)}/ws`;
  }

  connect() {
    if (this.stopped) return;
    this.clearAll();
    this.ready = false;
    this.setState({ phase: this.everReady ? 'reconnecting' : 'connecting' });
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => this.authenticate(ws);
    ws.onmessage = (event) => this.receive(ws, event.data);
    ws.onclose = (event) => this.closed(ws, event.code, event.reason);
    this.timers.readyTimeout = setTimeout(() => {
      if (this.ws === ws && !this.ready) this.drop(ws, 4000, 'no ready in time');
    }, READY_TIMEOUT_MS);
  }

  async authenticate(ws) {
    let token;
    try {
      token = await this.auth.getToken({ minValidity: 15, force: this.forceToken });
    } catch {
      token = undefined;
    }
    this.forceToken = false;
    if (this.ws !== ws) return;
    if (token === null) {
      this.finish('signed-out', 'You are signed out.');
      return;
    }
    if (!token) {
      this.drop(ws, 4000, 'no token');
      return;
    }
    const msg = { type: 'auth', token };
    const since = this.everReady ? this.resumePoint() : null;
    if (since) msg.since = since;
    ws.send(JSON.stringify(msg));
  }

  receive(ws, data) {
    if (ws !== this.ws) return;
    this.lastSeen = Date.now();
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    switch (msg.type) {
      case 'ready':
        this.ready = true;
        this.everReady = true;
        this.attempts = 0;
        this.authRetried = false;
        this.clear('readyTimeout');
        this.scheduleRefresh(msg.expires_in);
        this.startKeepalive(ws);
        this.setState({ phase: 'live' });
        break;
      case 'auth.ok':
        this.scheduleRefresh(msg.expires_in);
        break;
      case 'error':
        if (msg.code === 'auth_unavailable') {
          this.clear('refresh');
          this.timers.refresh = setTimeout(() => this.refresh(), 5000);
        }
        break;
      default:
        break;
    }
    this.onMessage(msg);
  }

  /** Sends a fresh token `expiresIn - 10` seconds from now. */
  scheduleRefresh(expiresIn) {
    this.clear('refresh');
    if (typeof expiresIn !== 'number') return;
    const seconds = Math.max(1, expiresIn - 10);
    this.timers.refresh = setTimeout(() => this.refresh(), seconds * 1000);
  }

  async refresh() {
    const ws = this.ws;
    if (!ws || !this.ready) return;
    let token;
    try {
      token = await this.auth.getToken({ minValidity: 20 });
    } catch {
      this.timers.refresh = setTimeout(() => this.refresh(), 3000);
      return;
    }
    if (ws !== this.ws) return;
    if (!token) {
      this.finish('signed-out', 'You are signed out.');
      return;
    }
    ws.send(JSON.stringify({ type: 'auth', token }));
  }

  /** JSON pings: a dead network shows up as silence, not as a close. */
  startKeepalive(ws) {
    this.clear('keepalive');
    this.timers.keepalive = setInterval(() => {
      if (ws !== this.ws) return;
      if (Date.now() - this.lastSeen > SILENCE_LIMIT_MS) {
        this.drop(ws, 4000, 'connection went quiet');
        return;
      }
      if (ws.readyState === WebSocket.OPEN) ws.send('{"type":"ping"}');
    }, PING_EVERY_MS);
  }

  /** Gives up on a socket now (its close event may come much later). */
  drop(ws, code, reason) {
    try { ws.close(code, reason); } catch { /* already closing */ }
    this.closed(ws, 1006, reason);
  }

  closed(ws, code, reason) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.ready = false;
    this.clearAll();
    if (this.stopped) return;
    switch (code) {
      case 4401:
        // Unauthenticated or expired: one reconnect with a fresh token.
        if (!this.authRetried) {
          this.authRetried = true;
          this.forceToken = true;
          this.connect();
        } else {
          this.finish('signed-out', 'You were signed out. Sign in again to keep editing.');
        }
        return;
      case 4403:
        this.finish('forbidden', 'You no longer have access to this notebook.');
        return;
      case 4404:
        this.finish('gone', 'This notebook was deleted.');
        return;
      case 4413:
        this.onMessage({ type: 'local.error', message: 'A change was too large to send.' });
        break;
      default:
        break;
    }
    this.retry(reason);
  }

  retry() {
    if (this.stopped) return;
    const base = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempts);
    const delay = Math.round(base * (0.6 + Math.random() * 0.4));
    this.attempts += 1;
    const at = Date.now() + delay;
    const tell = () => this.setState({ phase: 'reconnecting', retryIn: Math.max(1, Math.ceil((at - Date.now()) / 1000)) });
    tell();
    this.timers.retry = setTimeout(() => this.connect(), delay);
    this.timers.countdown = setInterval(tell, 1000);
  }

  /** Ends for good, with a reason the page shows. */
  finish(reason, message) {
    this.stopped = true;
    this.clearAll();
    const ws = this.ws;
    this.ws = null;
    if (ws) try { ws.close(1000); } catch { /* closing */ }
    window.removeEventListener('online', this.onOnline);
    this.setState({ phase: 'closed', reason, message });
  }

  /** Sends a client op with a fresh `ref`; null when not live. */
  send(op) {
    if (!this.ws || !this.ready || this.ws.readyState !== WebSocket.OPEN) return null;
    const ref = `r${++this.seq}`;
    this.ws.send(JSON.stringify({ ...op, ref }));
    return ref;
  }

  /** Sends a ping now (its pong marks the end of a resume replay). */
  ping() {
    if (this.ws && this.ready && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send('{"type":"ping"}');
      return true;
    }
    return false;
  }

  /** Starts over with a resume (used when a gap in versions is seen). */
  resync() {
    if (this.ws) this.drop(this.ws, 4000, 'resync');
  }

  /** Closes the socket for good (navigating away, signing out). */
  stop() {
    this.stopped = true;
    this.clearAll();
    window.removeEventListener('online', this.onOnline);
    const ws = this.ws;
    this.ws = null;
    if (ws) try { ws.close(1000, 'bye'); } catch { /* closing */ }
  }
}
