// The notebook page: cells, live updates, presence, sharing, export.
//
// Server state is authoritative and changes only through `op` events (ours
// included). Local typing lives in `edits` until the server has it:
//
//   edit = { text, base, baseText, type, inflight, conflict }
//     text      what the textarea holds
//     base      the cell version `text` was edited from; baseText its source
//     type      a pending cell_type change
//     inflight  the cell.update sent and not yet seen committed
//     conflict  {theirs, version} when someone else's change overlaps ours
//
// Someone else's change to a cell being edited is rebased into the local
// text when the two changes do not touch (merge.js); when they do, both
// versions are shown and nothing is sent until the user chooses. Local text
// is never dropped without the user saying so.

import { h, replace, toast, autosize, download, fileName } from './ui.js';
import { renderMarkdown } from './markdown.js';
import { merge3, mapCaret } from './merge.js';
import { Live } from './live.js';

const TYPES = ['code', 'markdown', 'raw'];
const FLUSH_MS = 300; // debounce of cell edits
const MAX_WAIT_MS = 1500; // ...but someone typing without a pause is still seen

function newCellId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

function isWriterRole(role) {
  return role === 'owner' || role === 'editor';
}

export class NotebookView {
  constructor({ id, api, auth, root, onSignOut }) {
    this.kind = 'notebook';
    this.id = id;
    this.api = api;
    this.auth = auth;
    this.root = root;
    this.onSignOut = onSignOut;
    this.me = auth.user;
    this.nb = null;
    this.cells = [];
    this.version = 0;
    this.epoch = null;
    this.role = null;
    this.edits = new Map();
    this.els = new Map();
    this.flushTimers = new Map();
    this.pendingSince = new Map();
    this.refs = new Map();
    this.editing = new Set();
    this.pendingFocus = null;
    this.titleDirty = false;
    this.connection = { phase: 'connecting' };
    this.socketGen = 0;
    this.awaitingReplay = false;
    this.reordering = false;
    this.build();
    this.live = new Live({
      notebookId: id,
      auth,
      resumePoint: () => (this.epoch ? { epoch: this.epoch, version: this.version } : null),
      onMessage: (msg) => this.onMessage(msg),
      onState: (state) => this.onConnection(state),
    });
    this.live.connect();
  }

  // ---------------------------------------------------------------- layout

  build() {
    this.titleInput = h('input', {
      id: 'nb-title', class: 'nb-title', 'aria-label': 'Notebook title', maxlength: 200,
      value: '', readOnly: true,
      oninput: () => { this.titleDirty = true; },
      onchange: () => this.rename(),
      onkeydown: (ev) => {
        if (ev.key === 'Enter') ev.target.blur();
        if (ev.key === 'Escape') {
          this.titleDirty = false;
          ev.target.value = this.nb?.title ?? '';
          ev.target.blur();
        }
      },
      // Someone may have renamed it while this field had focus.
      onblur: () => { if (!this.titleDirty) this.renderTitle(true); },
    });
    this.connEl = h('span', { id: 'conn-state', class: 'conn', dataset: { state: 'connecting' }, role: 'status' }, 'Connecting…');
    this.presenceEl = h('ul', { id: 'presence', class: 'presence', 'aria-label': 'People with this notebook open' });
    this.shareBtn = h('button', { id: 'share-btn', type: 'button', class: 'secondary', onclick: () => this.openShare() }, 'Share');
    this.exportBtn = h('button', { id: 'export-btn', type: 'button', class: 'secondary', onclick: () => this.exportIpynb() }, 'Export .ipynb');
    this.bannerEl = h('div', { id: 'banner', class: 'banner', hidden: true, role: 'alert' });
    this.orphansEl = h('div', { id: 'orphans', class: 'orphans' });
    this.cellsEl = h('div', { id: 'cells', class: 'cells' }, h('p', { class: 'muted loading' }, 'Loading notebook…'));
    this.addCodeBtn = h('button', { id: 'add-code', type: 'button', class: 'secondary', disabled: true, onclick: () => this.insertCell(this.cells.length, 'code') }, '+ Code');
    this.addMdBtn = h('button', { id: 'add-markdown', type: 'button', class: 'secondary', disabled: true, onclick: () => this.insertCell(this.cells.length, 'markdown') }, '+ Markdown');
    this.view = h('section', { class: 'nb-view', 'aria-label': 'Notebook' },
      h('div', { class: 'nb-head' },
        h('div', { class: 'nb-head-row' },
          h('a', { href: '#/', class: 'back', 'aria-label': 'Back to notebooks' }, '← Notebooks'),
          h('div', { class: 'nb-actions' }, this.shareBtn, this.exportBtn)),
        this.titleInput,
        h('div', { class: 'nb-status' }, this.connEl, this.presenceEl)),
      this.bannerEl,
      this.orphansEl,
      this.cellsEl,
      h('div', { class: 'add-row' }, this.addCodeBtn, this.addMdBtn),
      this.hintEl = h('p', { class: 'hint muted' }));
    replace(this.root, this.view);
  }

  destroy() {
    this.live.stop();
    for (const t of this.flushTimers.values()) clearTimeout(t);
    this.flushTimers.clear();
    this.shareDialog?.remove();
  }

  hasUnsaved() {
    for (const [id, e] of this.edits) {
      const cell = this.cell(id);
      if (!cell || e.text !== cell.source || e.inflight || e.conflict) return true;
    }
    return false;
  }

  cell(id) { return this.cells.find((c) => c.id === id); }
  index(id) { return this.cells.findIndex((c) => c.id === id); }
  isWriter() { return isWriterRole(this.role) && this.connection.phase !== 'closed'; }
  isLive() { return this.connection.phase === 'live'; }
  canChange() { return this.isWriter() && this.isLive(); }

  // ------------------------------------------------------------ connection

  onConnection(state) {
    this.connection = state;
    this.renderConnection();
    this.renderAccess();
    for (const id of this.edits.keys()) this.renderStatus(id);
    if (state.phase === 'closed') {
      this.renderPresence([]);
      this.showClosed(state);
    }
    this.view.classList.toggle('closed', state.phase === 'closed');
  }

  renderConnection() {
    const { phase, retryIn, reason } = this.connection;
    let state = phase;
    let text;
    if (phase === 'connecting') text = 'Connecting…';
    else if (phase === 'live' && !isWriterRole(this.role)) { state = 'read-only'; text = 'Read-only'; }
    else if (phase === 'live') text = 'Live';
    else if (phase === 'reconnecting') text = retryIn ? `Reconnecting in ${retryIn}s…` : 'Reconnecting…';
    else text = { 'signed-out': 'Signed out', forbidden: 'No access', gone: 'Deleted' }[reason] ?? 'Disconnected';
    this.connEl.dataset.state = state;
    if (reason) this.connEl.dataset.reason = reason;
    this.connEl.textContent = text;
    this.connEl.title = phase === 'live' && state === 'read-only'
      ? 'You can read this notebook; only its owner and editors can change it.'
      : text;
  }

  showClosed({ reason, message }) {
    const actions = [h('a', { href: '#/', class: 'button secondary' }, 'Back to notebooks')];
    if (reason === 'signed-out') {
      actions.unshift(h('button', { type: 'button', onclick: () => this.onSignOut?.() }, 'Sign in again'));
    }
    replace(this.bannerEl, h('p', {}, h('strong', {}, message || 'Disconnected.')),
      this.hasUnsaved() ? h('p', {}, 'Your unsaved text is still on this page; copy it before leaving.') : null,
      h('div', { class: 'banner-actions' }, actions));
    this.bannerEl.dataset.reason = reason;
    this.bannerEl.hidden = false;
  }

  /** Read-only for viewers and closed sockets; structure changes need a live socket. */
  renderAccess() {
    const writer = this.isWriter();
    const change = this.canChange();
    this.titleInput.readOnly = !change;
    this.addCodeBtn.disabled = !change;
    this.addMdBtn.disabled = !change;
    this.hintEl.textContent = writer
      ? 'Shift+Enter: next cell · Esc: stop editing · Changes save as you type.'
      : (this.connection.phase === 'closed' ? '' : 'You can read this notebook; only its owner and editors can change it.');
    for (const [id, el] of this.els) {
      el.textarea.readOnly = !writer;
      el.type.disabled = !change;
      for (const b of el.buttons) b.disabled = !change;
      el.root.classList.toggle('readonly', !writer);
      this.renderMode(id);
    }
  }

  setRole(role, announce) {
    const was = this.role;
    this.role = role;
    if (this.nb) this.nb.role = role;
    if (announce && was && was !== role) {
      toast(role === 'viewer' ? 'You can now only read this notebook.' : `You are now ${role === 'owner' ? 'the owner' : 'an editor'} of this notebook.`);
    }
    this.renderConnection();
    this.renderAccess();
  }

  // -------------------------------------------------------------- messages

  onMessage(msg) {
    switch (msg.type) {
      case 'ready': return this.onReady(msg);
      case 'op': return this.applyOp(msg);
      case 'ack': this.refs.delete(msg.ref); return undefined;
      case 'error': return this.onError(msg);
      case 'presence': return this.renderPresence(msg.users || []);
      case 'role': return this.setRole(msg.role, true);
      case 'pong':
        if (this.awaitingReplay) {
          this.awaitingReplay = false;
          this.afterReplay();
        }
        return undefined;
      case 'local.error': toast(msg.message, 'error'); return undefined;
      default: return undefined;
    }
  }

  onReady(msg) {
    this.socketGen += 1;
    this.bannerEl.hidden = true;
    // For people debugging (and the e2e test): how many sockets so far, and
    // whether this one resumed.
    this.connEl.dataset.connects = String(this.socketGen);
    this.connEl.dataset.resumed = String(!!msg.resumed);
    if (msg.resumed) {
      this.epoch = msg.epoch;
      this.setRole(msg.role, true);
      // The missed ops follow `ready`; our pong comes after the last of them.
      this.awaitingReplay = true;
      if (!this.live.ping()) this.afterReplay();
      return;
    }
    this.loadNotebook(msg.notebook, msg.version, msg.epoch, msg.role);
  }

  /** A full snapshot (first load, or a resume that was not possible). */
  loadNotebook(nb, version, epoch, role) {
    const had = this.nb !== null;
    this.nb = { ...nb };
    delete this.nb.cells;
    this.cells = (nb.cells || []).map((c) => ({ ...c }));
    this.version = version;
    this.epoch = epoch;
    this.setRole(role, had);
    for (const [id, e] of [...this.edits]) {
      const cell = this.cell(id);
      if (!cell) {
        this.edits.delete(id);
        if (e.text !== e.baseText) this.orphan(e, 'A cell you were editing was deleted while you were offline.');
        continue;
      }
      const inf = e.inflight;
      e.inflight = null;
      if (inf && inf.text !== null && cell.source === inf.text) {
        // It did commit before the connection dropped.
        e.base = cell.version;
        e.baseText = cell.source;
      }
      this.rebase(id, cell.source, cell.version, true);
    }
    this.renderTitle();
    this.renderCells();
    for (const cell of this.cells) {
      if (!this.edits.has(cell.id)) this.setLocalText(cell.id, cell.source);
      this.renderCellMeta(cell.id);
    }
    for (const id of this.edits.keys()) this.scheduleFlush(id, 0);
  }

  /** After a resumed replay: what was in flight and not seen committed never was. */
  afterReplay() {
    for (const [id, e] of this.edits) {
      if (e.inflight && e.inflight.gen < this.socketGen) e.inflight = null;
      this.scheduleFlush(id, 0);
    }
  }

  applyOp(msg) {
    if (msg.version <= this.version) return;
    if (msg.version > this.version + 1) {
      // A gap: never guess; resume from what we have.
      this.live.resync();
      return;
    }
    this.version = msg.version;
    const op = msg.op || {};
    const who = msg.author === this.me ? 'You' : msg.author;
    switch (op.type) {
      case 'cell.insert': {
        const cell = { ...op.cell };
        this.cells.splice(Math.min(op.index ?? this.cells.length, this.cells.length), 0, cell);
        this.renderCells();
        if (this.pendingFocus === cell.id) {
          this.pendingFocus = null;
          this.enterEdit(cell.id);
        }
        break;
      }
      case 'cell.update':
        this.applyUpdate(op, msg.author);
        break;
      case 'cell.delete': {
        const i = this.index(op.cell_id);
        if (i < 0) break;
        const [cell] = this.cells.splice(i, 1);
        const e = this.edits.get(cell.id);
        this.edits.delete(cell.id);
        if (e && e.text !== cell.source) this.orphan(e, `${who} deleted a cell you were editing.`, i);
        this.renderCells();
        break;
      }
      case 'cell.move': {
        const i = this.index(op.cell_id);
        if (i < 0) break;
        const [cell] = this.cells.splice(i, 1);
        this.cells.splice(Math.min(op.index, this.cells.length), 0, cell);
        this.renderCells();
        break;
      }
      case 'notebook.rename':
        this.nb.title = op.title;
        this.renderTitle();
        break;
      default:
        break;
    }
  }

  applyUpdate(op, author) {
    const cell = this.cell(op.cell_id);
    if (!cell) return;
    if (op.source !== undefined) cell.source = op.source;
    if (op.cell_type) {
      cell.cell_type = op.cell_type;
      if (cell.cell_type === 'code') {
        cell.outputs = cell.outputs ?? [];
        cell.execution_count = null;
      } else {
        delete cell.outputs;
        delete cell.execution_count;
      }
    }
    if (op.metadata) cell.metadata = op.metadata;
    cell.version = op.cell_version;
    const e = this.edits.get(cell.id);
    if (!e) {
      this.setLocalText(cell.id, cell.source);
    } else {
      const inf = e.inflight;
      const mine = inf && author === this.me && cell.version === inf.base + 1 &&
        (inf.text === null || inf.text === cell.source) &&
        (inf.type === null || inf.type === cell.cell_type);
      if (mine) {
        e.inflight = null;
        e.base = cell.version;
        e.baseText = cell.source;
        if (e.type === cell.cell_type) e.type = null;
        this.settle(cell.id);
      } else {
        this.rebase(cell.id, cell.source, cell.version, false);
      }
    }
    this.renderCellMeta(cell.id);
  }

  onError(msg) {
    const r = this.refs.get(msg.ref);
    this.refs.delete(msg.ref);
    if (r?.kind === 'update') {
      const e = this.edits.get(r.cellId);
      if (!e || e.inflight?.ref !== msg.ref) return;
      e.inflight = null;
      if (msg.code === 'conflict' && msg.current) {
        this.rebase(r.cellId, msg.current.source, msg.current.version, false);
        this.settle(r.cellId);
      } else if (msg.code === 'rate_limited') {
        this.scheduleFlush(r.cellId, 1000);
      } else if (msg.code === 'not_found') {
        // The delete op that follows keeps the text (orphan).
      } else {
        e.failed = msg.code === 'forbidden' ? 'You can only read this notebook; not saved.' : (msg.message || 'Not saved.');
        toast(e.failed, 'error');
        this.renderStatus(r.cellId);
      }
      return;
    }
    const text = {
      forbidden: 'You can only read this notebook.',
      not_found: 'That cell no longer exists.',
      rate_limited: 'Too many changes at once; slow down a little.',
    }[msg.code] ?? msg.message ?? 'The change was refused.';
    toast(text, 'error');
  }

  // ------------------------------------------------------------ local edits

  editFor(id) {
    let e = this.edits.get(id);
    if (!e) {
      const cell = this.cell(id);
      e = { text: cell.source, base: cell.version, baseText: cell.source, type: null, inflight: null, conflict: null };
      this.edits.set(id, e);
    }
    return e;
  }

  onInput(id) {
    const el = this.els.get(id);
    const e = this.editFor(id);
    e.text = el.textarea.value;
    e.failed = null;
    autosize(el.textarea);
    if (e.conflict) {
      this.renderStatus(id);
      return;
    }
    this.settle(id);
  }

  /** Drops a clean edit, or schedules sending a dirty one. */
  settle(id) {
    const e = this.edits.get(id);
    const cell = this.cell(id);
    if (!e || !cell) return;
    const clean = e.text === e.baseText && (!e.type || e.type === cell.cell_type);
    if (clean && !e.inflight && !e.conflict && e.base === cell.version) this.edits.delete(id);
    else if (!clean) this.scheduleFlush(id, FLUSH_MS);
    this.renderStatus(id);
  }

  scheduleFlush(id, ms = FLUSH_MS) {
    const now = Date.now();
    if (!this.pendingSince.has(id)) this.pendingSince.set(id, now);
    const delay = Math.max(0, Math.min(ms, MAX_WAIT_MS - (now - this.pendingSince.get(id))));
    clearTimeout(this.flushTimers.get(id));
    this.flushTimers.set(id, setTimeout(() => {
      this.flushTimers.delete(id);
      this.pendingSince.delete(id);
      this.flush(id);
    }, delay));
  }

  /** Sends the cell's pending change as one cell.update with its base_version. */
  flush(id) {
    const e = this.edits.get(id);
    const cell = this.cell(id);
    if (!e || !cell) return;
    if (e.inflight || e.conflict || !this.isWriter()) {
      this.renderStatus(id);
      return;
    }
    const op = { type: 'cell.update', cell_id: id, base_version: e.base };
    if (e.text !== e.baseText) op.source = e.text;
    if (e.type && e.type !== cell.cell_type) op.cell_type = e.type;
    if (op.source === undefined && op.cell_type === undefined) {
      this.settle(id);
      return;
    }
    const ref = this.live.send(op);
    if (ref) {
      this.refs.set(ref, { kind: 'update', cellId: id });
      e.inflight = { ref, base: e.base, text: op.source ?? null, type: op.cell_type ?? null, gen: this.socketGen };
    }
    this.renderStatus(id);
  }

  flushNow(id) {
    if (!this.flushTimers.has(id)) return;
    clearTimeout(this.flushTimers.get(id));
    this.flushTimers.delete(id);
    this.pendingSince.delete(id);
    this.flush(id);
  }

  /**
   * The server's text for a cell moved to `theirs` at `version`: fold that
   * into the local edit, or flag a conflict when the changes overlap.
   */
  rebase(id, theirs, version, anyVersion) {
    const e = this.edits.get(id);
    if (!e) return;
    if (!anyVersion && version < e.base) return;
    if (version === e.base && theirs === e.baseText) return;
    if (e.conflict) {
      e.conflict = { theirs, version };
      this.renderConflict(id);
      return;
    }
    const merged = merge3(e.baseText, e.text, theirs);
    if (merged === null) {
      e.conflict = { theirs, version };
      this.renderConflict(id);
      this.renderStatus(id);
      return;
    }
    e.base = version;
    e.baseText = theirs;
    if (merged !== e.text) {
      e.text = merged;
      this.setLocalText(id, merged);
    }
    this.settle(id);
  }

  /** Puts text in a cell's textarea, keeping the caret where it was. */
  setLocalText(id, text) {
    const el = this.els.get(id);
    if (!el) return;
    const ta = el.textarea;
    if (ta.value === text) return;
    if (document.activeElement === ta) {
      const start = mapCaret(ta.value, text, ta.selectionStart);
      const end = mapCaret(ta.value, text, ta.selectionEnd);
      ta.value = text;
      ta.setSelectionRange(start, end);
    } else {
      ta.value = text;
    }
    autosize(ta);
    this.renderMode(id);
  }

  keepMine(id) {
    const e = this.edits.get(id);
    if (!e?.conflict) return;
    e.base = e.conflict.version;
    e.baseText = e.conflict.theirs;
    e.conflict = null;
    this.renderConflict(id);
    this.flush(id);
  }

  takeTheirs(id) {
    const e = this.edits.get(id);
    const cell = this.cell(id);
    if (!e || !cell) return;
    if (!window.confirm('Replace your text in this cell with the other version? Your text will be lost.')) return;
    this.edits.delete(id);
    this.setLocalText(id, cell.source);
    this.renderConflict(id);
    this.renderStatus(id);
  }

  /** Text of a deleted cell, kept until the user restores or dismisses it. */
  orphan(e, why, index = this.cells.length) {
    const text = e.text;
    const type = e.type;
    const item = h('div', { class: 'orphan', role: 'alert' },
      h('p', {}, h('strong', {}, why), ' Your text is kept here.'),
      h('pre', { class: 'orphan-text' }, text),
      h('div', { class: 'banner-actions' },
        h('button', { type: 'button', onclick: () => { if (this.insertCell(Math.min(index, this.cells.length), type || 'code', text)) item.remove(); } }, 'Restore as a new cell'),
        h('button', { type: 'button', class: 'secondary', onclick: () => item.remove() }, 'Dismiss')));
    this.orphansEl.append(item);
  }

  // ------------------------------------------------------------ structure

  insertCell(index, type, source = '') {
    if (!this.canChange()) {
      toast(this.isWriter() ? 'Not connected; try again in a moment.' : 'You can only read this notebook.', 'error');
      return false;
    }
    const id = newCellId();
    const ref = this.live.send({ type: 'cell.insert', index, cell: { cell_type: type, source, id } });
    if (!ref) return false;
    this.refs.set(ref, { kind: 'insert' });
    this.pendingFocus = id;
    return true;
  }

  deleteCell(id) {
    if (!this.canChange()) return;
    const e = this.edits.get(id);
    const cell = this.cell(id);
    const text = e ? e.text : cell?.source;
    if (text && !window.confirm('Delete this cell?')) return;
    const ref = this.live.send({ type: 'cell.delete', cell_id: id });
    if (ref) this.refs.set(ref, { kind: 'delete' });
  }

  moveCell(id, delta) {
    if (!this.canChange()) return;
    const to = this.index(id) + delta;
    if (to < 0 || to >= this.cells.length) return;
    const ref = this.live.send({ type: 'cell.move', cell_id: id, index: to });
    if (ref) this.refs.set(ref, { kind: 'move' });
  }

  changeType(id, type) {
    if (!this.canChange()) return;
    const e = this.editFor(id);
    e.type = type;
    this.renderMode(id);
    this.flushNow(id);
    this.flush(id);
  }

  rename() {
    const title = this.titleInput.value.trim();
    this.titleDirty = false;
    if (!this.nb || title === this.nb.title) return;
    if (!title) {
      this.renderTitle(true);
      return;
    }
    const ref = this.live.send({ type: 'notebook.rename', title });
    if (ref) this.refs.set(ref, { kind: 'rename' });
    else {
      toast('Not connected; the title was not changed.', 'error');
      this.renderTitle(true);
    }
  }

  // -------------------------------------------------------------- rendering

  /** Shows the title, unless the user is in the middle of changing it. */
  renderTitle(force = false) {
    if (!this.nb) return;
    document.title = `${this.nb.title} · quire`;
    if (force || !this.titleDirty) this.titleInput.value = this.nb.title;
  }

  renderPresence(users) {
    replace(this.presenceEl, users.map((u) => {
      const you = u.user_id === this.me;
      const label = `${u.user_id}${you ? ' (you)' : ''} · ${u.role}${u.connections > 1 ? ` · ${u.connections} tabs` : ''}`;
      return h('li', { class: `presence-user${you ? ' you' : ''}`, title: label, dataset: { user: u.user_id, role: u.role } },
        h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials(u.user_id)),
        h('span', { class: 'presence-name' }, you ? `${u.user_id} (you)` : u.user_id));
    }));
  }

  /** Puts cell elements in model order, touching only what moved. */
  renderCells() {
    const active = document.activeElement;
    const selection = active instanceof HTMLTextAreaElement ? [active.selectionStart, active.selectionEnd] : null;
    const wanted = new Set(this.cells.map((c) => c.id));
    for (const [id, el] of this.els) {
      if (!wanted.has(id)) {
        el.root.remove();
        this.els.delete(id);
        this.editing.delete(id);
      }
    }
    this.reordering = true;
    try {
      this.cellsEl.querySelector('.loading')?.remove();
      this.cellsEl.querySelector('.empty')?.remove();
      this.cells.forEach((cell, i) => {
        let el = this.els.get(cell.id);
        if (!el) {
          el = this.makeCell(cell);
          this.els.set(cell.id, el);
        }
        if (this.cellsEl.children[i] !== el.root) this.cellsEl.insertBefore(el.root, this.cellsEl.children[i] ?? null);
        el.position.textContent = `[${i + 1}]`;
        el.up.dataset.edge = i === 0 ? 'true' : 'false';
        el.down.dataset.edge = i === this.cells.length - 1 ? 'true' : 'false';
      });
      if (this.cells.length === 0) {
        this.cellsEl.append(h('p', { class: 'empty muted' }, 'This notebook has no cells yet.'));
      }
    } finally {
      this.reordering = false;
    }
    if (active && document.activeElement !== active && active.isConnected) {
      active.focus();
      if (selection) active.setSelectionRange(...selection);
    }
    this.renderAccess();
  }

  makeCell(cell) {
    const id = cell.id;
    const textarea = h('textarea', {
      class: 'cell-source', spellcheck: 'false', rows: 1, 'aria-label': 'Cell source',
      autocapitalize: 'off', autocomplete: 'off',
    });
    textarea.value = this.edits.get(id)?.text ?? cell.source;
    textarea.addEventListener('input', () => this.onInput(id));
    textarea.addEventListener('keydown', (ev) => this.onKey(id, ev));
    textarea.addEventListener('focus', () => {
      root.classList.add('focused');
      this.editing.add(id);
    });
    textarea.addEventListener('blur', () => {
      if (this.reordering) return;
      root.classList.remove('focused');
      this.flushNow(id);
      this.editing.delete(id);
      this.renderMode(id);
    });
    const preview = h('div', {
      class: 'md-preview', tabindex: '0', role: 'button', 'aria-label': 'Markdown cell; press Enter to edit',
      onclick: (ev) => { if (!ev.target.closest('a')) this.enterEdit(id); },
      onkeydown: (ev) => { if (ev.key === 'Enter') { ev.preventDefault(); this.enterEdit(id); } },
    });
    const type = h('select', { class: 'cell-type', 'aria-label': 'Cell type', onchange: (ev) => this.changeType(id, ev.target.value) },
      TYPES.map((t) => h('option', { value: t }, t)));
    const btn = (label, text, onclick, cls = '') => h('button', { type: 'button', class: `icon ${cls}`, title: label, 'aria-label': label, onclick }, text);
    const up = btn('Move up', '↑', () => this.moveCell(id, -1), 'move-up');
    const down = btn('Move down', '↓', () => this.moveCell(id, 1), 'move-down');
    const addBelow = btn('Add a cell below', '+', () => this.insertCell(this.index(id) + 1, 'code'), 'add-below');
    const del = btn('Delete cell', '✕', () => this.deleteCell(id), 'delete');
    const status = h('span', { class: 'cell-status', 'aria-live': 'polite' });
    const typeLabel = h('span', { class: 'cell-type-label' });
    const position = h('span', { class: 'cell-pos', 'aria-hidden': 'true' });
    const conflict = h('div', { class: 'conflict', hidden: true, role: 'alert' });
    const root = h('article', { class: 'cell', dataset: { cellId: id }, tabindex: '-1' },
      h('div', { class: 'cell-bar' }, position, type, typeLabel, status, h('span', { class: 'spacer' }), up, down, addBelow, del),
      conflict, textarea, preview);
    const el = { root, textarea, preview, type, typeLabel, status, conflict, position, up, down, buttons: [up, down, addBelow, del] };
    // Fill it in once it is in the document (autosize needs layout).
    queueMicrotask(() => {
      this.renderCellMeta(id);
      autosize(textarea);
    });
    return el;
  }

  /** Type selector, mode and status of one cell. */
  renderCellMeta(id) {
    const el = this.els.get(id);
    const cell = this.cell(id);
    if (!el || !cell) return;
    const e = this.edits.get(id);
    el.type.value = e?.type || cell.cell_type;
    el.typeLabel.textContent = el.type.value;
    el.root.dataset.type = el.type.value;
    el.root.dataset.version = String(cell.version);
    this.renderMode(id);
    this.renderStatus(id);
    this.renderConflict(id);
  }

  /** Markdown cells show rendered text unless being edited. */
  renderMode(id) {
    const el = this.els.get(id);
    const cell = this.cell(id);
    if (!el || !cell) return;
    const e = this.edits.get(id);
    const type = e?.type || cell.cell_type;
    el.root.dataset.type = type;
    const editing = type !== 'markdown' || this.editing.has(id) || !!e?.conflict;
    el.textarea.hidden = !editing;
    el.preview.hidden = editing;
    el.textarea.classList.toggle('code', type === 'code');
    if (!editing) {
      const text = e ? e.text : cell.source;
      if (text.trim()) el.preview.innerHTML = renderMarkdown(text);
      else replace(el.preview, h('p', { class: 'muted' }, this.isWriter() ? 'Empty markdown cell — click to write.' : 'Empty markdown cell.'));
    }
  }

  renderStatus(id) {
    const el = this.els.get(id);
    if (!el) return;
    const e = this.edits.get(id);
    let text = '';
    let state = 'saved';
    if (e?.conflict) { text = 'Conflict'; state = 'conflict'; }
    else if (e?.failed) { text = 'Not saved'; state = 'failed'; }
    else if (e?.inflight) { text = 'Saving…'; state = 'saving'; }
    else if (e && (e.text !== e.baseText || e.type)) {
      if (!this.isWriter()) { text = 'Not saved (read-only)'; state = 'failed'; }
      else if (!this.isLive()) { text = 'Not saved yet (offline)'; state = 'pending'; }
      else { text = 'Editing…'; state = 'pending'; }
    }
    el.status.textContent = text;
    el.status.dataset.state = state;
    el.root.dataset.state = state;
  }

  renderConflict(id) {
    const el = this.els.get(id);
    if (!el) return;
    const e = this.edits.get(id);
    if (!e?.conflict) {
      el.conflict.hidden = true;
      el.conflict.replaceChildren();
      el.root.classList.remove('has-conflict');
      return;
    }
    el.root.classList.add('has-conflict');
    replace(el.conflict,
      h('p', {}, h('strong', {}, 'Someone else changed this cell while you were editing.'),
        ' Your text is kept in the editor below; theirs is shown here. Nothing is saved until you choose.'),
      h('details', { open: true }, h('summary', {}, 'Their version'), h('pre', { class: 'theirs' }, e.conflict.theirs)),
      h('div', { class: 'banner-actions' },
        h('button', { type: 'button', class: 'keep-mine', disabled: !this.isWriter(), onclick: () => this.keepMine(id) }, 'Save mine over theirs'),
        h('button', { type: 'button', class: 'secondary take-theirs', onclick: () => this.takeTheirs(id) }, 'Use theirs')));
    el.conflict.hidden = false;
    this.renderMode(id);
  }

  enterEdit(id) {
    const el = this.els.get(id);
    if (!el) return;
    this.editing.add(id);
    this.renderMode(id);
    el.textarea.focus();
    autosize(el.textarea);
  }

  onKey(id, ev) {
    if (ev.key === 'Enter' && ev.shiftKey) {
      ev.preventDefault();
      this.flushNow(id);
      const next = this.cells[this.index(id) + 1];
      if (next) this.enterEdit(next.id);
      else if (this.canChange()) this.insertCell(this.cells.length, 'code');
    } else if (ev.key === 'Escape') {
      ev.preventDefault();
      const root = this.els.get(id)?.root;
      ev.target.blur();
      root?.focus({ preventScroll: true });
    } else if ((ev.ctrlKey || ev.metaKey) && ev.key === 's') {
      ev.preventDefault();
      this.flushNow(id);
    }
  }

  // ------------------------------------------------------------ export, share

  async exportIpynb() {
    try {
      const blob = await this.api.exportIpynb(this.id);
      download(blob, fileName(this.nb?.title, '.ipynb'));
    } catch (e) {
      toast(`Export failed: ${e.message}`, 'error');
    }
  }

  openShare() {
    this.shareDialog?.remove();
    const owner = this.role === 'owner';
    const list = h('ul', { id: 'member-list', class: 'member-list' }, h('li', { class: 'muted' }, 'Loading…'));
    const error = h('p', { class: 'error', hidden: true, role: 'alert' });
    const showError = (msg) => { error.textContent = msg; error.hidden = !msg; };
    const load = async () => {
      try {
        const { items } = await this.api.members(this.id);
        replace(list, items.map((m) => this.memberRow(m, owner, load, showError)));
        showError('');
      } catch (e) {
        showError(e.message);
      }
    };
    const userInput = h('input', { id: 'member-user', required: true, maxlength: 128, placeholder: 'Clerk user id, e.g. user_2abc…', autocomplete: 'off', 'aria-label': 'User id' });
    const roleSelect = h('select', { id: 'member-role', 'aria-label': 'Role' },
      h('option', { value: 'editor' }, 'Editor'), h('option', { value: 'viewer' }, 'Viewer'));
    const form = h('form', {
      id: 'member-form', class: 'member-form',
      onsubmit: async (ev) => {
        ev.preventDefault();
        const user = userInput.value.trim();
        if (!user) return;
        try {
          await this.api.putMember(this.id, user, roleSelect.value);
          userInput.value = '';
          await load();
        } catch (e) {
          showError(e.message);
        }
      },
    }, userInput, roleSelect, h('button', { id: 'member-add', type: 'submit' }, 'Add'));
    const dialog = h('dialog', { id: 'share-dialog', class: 'dialog', 'aria-labelledby': 'share-title' },
      h('div', { class: 'dialog-head' },
        h('h2', { id: 'share-title' }, 'Share'),
        h('button', { type: 'button', class: 'icon', 'aria-label': 'Close', onclick: () => dialog.close() }, '✕')),
      h('p', { class: 'muted' }, owner
        ? 'Editors can change cells; viewers can only read. Removing someone closes their open tabs.'
        : 'Only the owner can change who has access.'),
      list,
      owner ? form : null,
      error);
    dialog.addEventListener('close', () => dialog.remove());
    document.body.append(dialog);
    this.shareDialog = dialog;
    dialog.showModal();
    load();
  }

  memberRow(m, owner, reload, showError) {
    const you = m.user_id === this.me;
    const name = h('span', { class: 'member-name' }, m.user_id, you ? ' (you)' : '');
    if (m.role === 'owner' || !owner) {
      return h('li', { class: 'member-row', dataset: { user: m.user_id, role: m.role } }, name, h('span', { class: 'badge' }, m.role));
    }
    const role = h('select', {
      class: 'member-role', 'aria-label': `Role of ${m.user_id}`,
      onchange: async (ev) => {
        try { await this.api.putMember(this.id, m.user_id, ev.target.value); await reload(); } catch (e) { showError(e.message); }
      },
    }, h('option', { value: 'editor', selected: m.role === 'editor' }, 'Editor'), h('option', { value: 'viewer', selected: m.role === 'viewer' }, 'Viewer'));
    const remove = h('button', {
      type: 'button', class: 'secondary member-remove', 'aria-label': `Remove ${m.user_id}`,
      onclick: async () => {
        try { await this.api.removeMember(this.id, m.user_id); await reload(); } catch (e) { showError(e.message); }
      },
    }, 'Remove');
    return h('li', { class: 'member-row', dataset: { user: m.user_id, role: m.role } }, name, role, remove);
  }
}

function initials(userId) {
  const s = String(userId).replace(/^user_/, '');
  return (s.slice(0, 2) || '?').toUpperCase();
}
