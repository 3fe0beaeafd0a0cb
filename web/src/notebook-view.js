// The notebook page: header (title, connection, presence, share, export),
// the cells (cell-view.js) and the socket (live.js). State and edits live in
// the model (notebook.js); this file turns socket messages into model calls
// and model events into DOM updates.

import { h, replace, toast, download, fileName } from './ui.js';
import { NotebookModel, isWriterRole } from './notebook.js';
import { CellView } from './cell-view.js';
import { openShareDialog } from './share-dialog.js';
import { Live } from './live.js';

/** How long one slice of filling in new cells may take before the page may paint. */
const FILL_BUDGET_MS = 40;

/** Cells the first slice fills whatever they take: about a screenful, so it paints at once. */
const FIRST_SCREEN = 8;

/** Cells from which the page lets the browser skip laying out cells off screen. */
const BIG_NOTEBOOK = 100;

const CLOSED_TEXT = { 'signed-out': 'Signed out', forbidden: 'No access', gone: 'Deleted' };

export class NotebookView {
  constructor({ id, api, auth, root, onSignOut }) {
    this.kind = 'notebook';
    this.id = id;
    this.api = api;
    this.auth = auth;
    this.root = root;
    this.onSignOut = onSignOut;
    this.me = auth.user;
    this.els = new Map();
    this.unrendered = new Set(); // cells made but not filled in yet (see fillCells)
    this.fillScheduled = false;
    this.editing = new Set();
    this.titleDirty = false;
    this.connection = { phase: 'connecting' };
    this.awaitingReplay = false;
    this.reordering = false;
    this.model = new NotebookModel({
      me: this.me,
      send: (op) => this.live.send(op),
      onEvent: (type, detail) => this.onModelEvent(type, detail),
    });
    this.build();
    this.live = new Live({
      notebookId: id,
      auth,
      resumePoint: () => (this.model.epoch ? { epoch: this.model.epoch, version: this.model.version } : null),
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
          ev.target.value = this.model.nb?.title ?? '';
          ev.target.blur();
        }
      },
      // Someone may have renamed it while this field had focus.
      onblur: () => { if (!this.titleDirty) this.renderTitle(true); },
    });
    this.connEl = h('span', { id: 'conn-state', class: 'conn', dataset: { state: 'connecting' }, role: 'status' }, 'Connecting…');
    this.presenceEl = h('ul', { id: 'presence', class: 'presence', 'aria-label': 'People with this notebook open' });
    const shareBtn = h('button', { id: 'share-btn', type: 'button', class: 'secondary', onclick: () => this.openShare() }, 'Share');
    const exportBtn = h('button', { id: 'export-btn', type: 'button', class: 'secondary', onclick: () => this.exportIpynb() }, 'Export .ipynb');
    this.bannerEl = h('div', { id: 'banner', class: 'banner', hidden: true, role: 'alert' });
    this.orphansEl = h('div', { id: 'orphans', class: 'orphans' });
    this.cellsEl = h('div', { id: 'cells', class: 'cells' }, h('p', { class: 'muted loading' }, 'Loading notebook…'));
    this.addCodeBtn = h('button', { id: 'add-code', type: 'button', class: 'secondary', disabled: true, onclick: () => this.model.insertCell(this.model.cells.length, 'code') }, '+ Code');
    this.addMdBtn = h('button', { id: 'add-markdown', type: 'button', class: 'secondary', disabled: true, onclick: () => this.model.insertCell(this.model.cells.length, 'markdown') }, '+ Markdown');
    this.view = h('section', { class: 'nb-view', 'aria-label': 'Notebook' },
      h('div', { class: 'nb-head' },
        h('div', { class: 'nb-head-row' },
          h('a', { href: '#/', class: 'back', 'aria-label': 'Back to notebooks' }, '← Notebooks'),
          h('div', { class: 'nb-actions' }, shareBtn, exportBtn)),
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
    this.model.destroy();
    for (const el of this.els.values()) el.destroy();
    this.shareDialog?.remove();
  }

  hasUnsaved() { return this.model.hasUnsaved(); }

  // ------------------------------------------------------------ connection

  onConnection(state) {
    this.connection = state;
    this.model.setConnection(state.phase);
    this.renderConnection();
    this.renderAccess();
    for (const id of this.model.edits.keys()) this.renderCellMeta(id);
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
    else if (phase === 'live' && !isWriterRole(this.model.role)) { state = 'read-only'; text = 'Read-only'; }
    else if (phase === 'live') text = 'Live';
    else if (phase === 'reconnecting') text = retryIn ? `Reconnecting in ${retryIn}s…` : 'Reconnecting…';
    else text = CLOSED_TEXT[reason] ?? 'Disconnected';
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
    const writer = this.model.isWriter();
    const change = this.model.canChange();
    this.titleInput.readOnly = !change;
    this.addCodeBtn.disabled = !change;
    this.addMdBtn.disabled = !change;
    this.hintEl.textContent = writer
      ? 'Shift+Enter: next cell · Esc: stop editing · Changes save as you type.'
      : (this.connection.phase === 'closed' ? '' : 'You can read this notebook; only its owner and editors can change it.');
    for (const [id, el] of this.els) {
      el.setAccess({ writer, change });
      this.renderMode(id);
    }
  }

  // -------------------------------------------------------------- messages

  onMessage(msg) {
    switch (msg.type) {
      case 'ready': return this.onReady(msg);
      case 'op': return this.model.applyOp(msg);
      case 'ack': return this.model.ack(msg.ref);
      case 'error': return this.model.error(msg);
      case 'presence': return this.renderPresence(msg.users || []);
      case 'role': return this.model.setRole(msg.role, true);
      case 'pong':
        if (this.awaitingReplay) {
          this.awaitingReplay = false;
          this.model.afterReplay();
        }
        return undefined;
      case 'local.error': toast(msg.message, 'error'); return undefined;
      default: return undefined;
    }
  }

  onReady(msg) {
    this.bannerEl.hidden = true;
    const how = this.model.ready(msg);
    // For people debugging (and the e2e test): how many sockets so far, and
    // whether this one resumed.
    this.connEl.dataset.connects = String(this.model.socketGen);
    this.connEl.dataset.resumed = String(!!msg.resumed);
    if (how === 'resumed') {
      // The missed ops follow `ready`; our pong comes after the last of them.
      this.awaitingReplay = true;
      if (!this.live.ping()) this.model.afterReplay();
    }
  }

  onModelEvent(type, detail) {
    switch (type) {
      case 'cells': return this.renderCells();
      case 'cell': return this.renderCellMeta(detail.id);
      case 'text': return this.setLocalText(detail.id, detail.text);
      case 'title': return this.renderTitle();
      case 'role': return this.onRole(detail);
      case 'focus': return this.enterEdit(detail.id);
      case 'orphan': return this.orphan(detail);
      case 'resync': return this.live.resync();
      case 'toast': return toast(detail.message, detail.kind);
      default: return undefined;
    }
  }

  onRole({ role, announce }) {
    if (announce) {
      toast(role === 'viewer' ? 'You can now only read this notebook.' : `You are now ${role === 'owner' ? 'the owner' : 'an editor'} of this notebook.`);
    }
    this.renderConnection();
    this.renderAccess();
  }

  // ------------------------------------------------------------ structure

  deleteCell(id) {
    const text = this.model.textOf(id);
    if (text && this.model.canChange() && !window.confirm('Delete this cell?')) return;
    this.model.deleteCell(id);
  }

  changeType(id, type) {
    this.model.changeType(id, type);
  }

  rename() {
    const title = this.titleInput.value.trim();
    this.titleDirty = false;
    if (!title) {
      this.renderTitle(true);
      return;
    }
    if (!this.model.rename(title)) {
      toast('Not connected; the title was not changed.', 'error');
      this.renderTitle(true);
    }
  }

  /** Text of a deleted cell, kept until the user restores or dismisses it. */
  orphan({ text, type, why, index }) {
    const restore = () => {
      if (this.model.insertCell(Math.min(index, this.model.cells.length), type || 'code', text)) item.remove();
    };
    const item = h('div', { class: 'orphan', role: 'alert' },
      h('p', {}, h('strong', {}, why), ' Your text is kept here.'),
      h('pre', { class: 'orphan-text' }, text),
      h('div', { class: 'banner-actions' },
        h('button', { type: 'button', onclick: restore }, 'Restore as a new cell'),
        h('button', { type: 'button', class: 'secondary', onclick: () => item.remove() }, 'Dismiss')));
    this.orphansEl.append(item);
  }

  // -------------------------------------------------------------- rendering

  /** Shows the title, unless the user is in the middle of changing it. */
  renderTitle(force = false) {
    const nb = this.model.nb;
    if (!nb) return;
    document.title = `${nb.title} · quire`;
    if (force || !this.titleDirty) this.titleInput.value = nb.title;
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
    const cells = this.model.cells;
    const active = document.activeElement;
    const selection = active instanceof HTMLTextAreaElement ? [active.selectionStart, active.selectionEnd] : null;
    const wanted = new Set(cells.map((c) => c.id));
    for (const [id, el] of this.els) {
      if (!wanted.has(id)) {
        el.destroy();
        this.els.delete(id);
        this.editing.delete(id);
      }
    }
    this.reordering = true;
    try {
      this.cellsEl.querySelector('.loading')?.remove();
      this.cellsEl.querySelector('.empty')?.remove();
      cells.forEach((cell, i) => {
        let el = this.els.get(cell.id);
        if (!el) {
          el = this.makeCell(cell);
          this.els.set(cell.id, el);
        }
        if (this.cellsEl.children[i] !== el.root) this.cellsEl.insertBefore(el.root, this.cellsEl.children[i] ?? null);
        el.setPosition(i, cells.length);
      });
      this.cellsEl.classList.toggle('big', cells.length > BIG_NOTEBOOK);
      if (cells.length === 0) {
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
    const el = new CellView({
      id,
      text: this.model.textOf(id),
      language: this.model.language(),
      on: {
        input: (text) => this.model.localEdit(id, text),
        key: (ev) => this.onKey(id, ev),
        focus: () => this.editing.add(id),
        blur: () => {
          if (this.reordering) return;
          el.root.classList.remove('focused');
          this.model.flushNow(id);
          this.editing.delete(id);
          this.renderMode(id);
        },
        edit: () => this.enterEdit(id),
        type: (t) => this.changeType(id, t),
        move: (delta) => this.model.moveCell(id, delta),
        addBelow: () => this.model.insertCell(this.model.index(id) + 1, 'code'),
        remove: () => this.deleteCell(id),
        keepMine: () => this.model.keepMine(id),
        takeTheirs: () => {
          if (window.confirm('Replace your text in this cell with the other version? Your text will be lost.')) this.model.takeTheirs(id);
        },
      },
    });
    this.unrendered.add(id);
    this.scheduleFill();
    return el;
  }

  scheduleFill() {
    if (this.fillScheduled) return;
    this.fillScheduled = true;
    queueMicrotask(() => this.fillCells());
  }

  /**
   * Fills in new cells (markdown, highlighting, outputs) once they are in
   * the document, in document order, a few milliseconds at a time: a big
   * notebook paints its first cells at once and the rest right after,
   * instead of the page freezing until the last one is done.
   */
  fillCells(first = true) {
    const started = performance.now();
    let filled = 0;
    for (const cell of this.model.cells) {
      if (!this.unrendered.has(cell.id)) continue;
      this.unrendered.delete(cell.id);
      this.renderCellMeta(cell.id);
      filled += 1;
      if ((!first || filled >= FIRST_SCREEN) && performance.now() - started > FILL_BUDGET_MS) break;
    }
    for (const id of this.unrendered) if (!this.model.cell(id)) this.unrendered.delete(id);
    if (this.unrendered.size) nextTask(() => this.fillCells(false));
    else this.fillScheduled = false;
    // Every cell shows its content (for people measuring, and tests).
    this.cellsEl.dataset.filled = String(!this.fillScheduled);
  }

  /** Type selector, mode, status and conflict of one cell. */
  renderCellMeta(id) {
    const el = this.els.get(id);
    const cell = this.model.cell(id);
    if (!el || !cell || this.unrendered.has(id)) return;
    el.renderMeta({ type: this.model.typeOf(id), version: cell.version, status: this.model.status(id) });
    el.renderConflict(this.model.edits.get(id)?.conflict, this.model.isWriter());
    this.renderMode(id);
  }

  /** Markdown and code cells show their rendering unless being edited. */
  renderMode(id) {
    const el = this.els.get(id);
    const cell = this.model.cell(id);
    if (!el || !cell || this.unrendered.has(id)) return;
    const e = this.model.edits.get(id);
    el.renderMode({
      type: this.model.typeOf(id),
      editing: this.editing.has(id) || !!e?.conflict,
      text: this.model.textOf(id),
      cell,
      writer: this.model.isWriter(),
    });
  }

  setLocalText(id, text) {
    const el = this.els.get(id);
    if (!el) return;
    el.setText(text);
    this.renderMode(id);
  }

  /** Shows a cell's editor and puts the caret there (writers only: viewers keep the rendering). */
  enterEdit(id) {
    const el = this.els.get(id);
    if (!el || !this.model.isWriter()) return;
    this.editing.add(id);
    this.unrendered.delete(id);
    this.renderCellMeta(id);
    this.renderMode(id);
    el.focusEditor();
  }

  onKey(id, ev) {
    if (ev.key === 'Enter' && ev.shiftKey) {
      ev.preventDefault();
      this.model.flushNow(id);
      const next = this.model.cells[this.model.index(id) + 1];
      if (next) this.enterEdit(next.id);
      else if (this.model.canChange()) this.model.insertCell(this.model.cells.length, 'code');
    } else if (ev.key === 'Escape') {
      ev.preventDefault();
      const root = this.els.get(id)?.root;
      ev.target.blur();
      root?.focus({ preventScroll: true });
    } else if ((ev.ctrlKey || ev.metaKey) && ev.key === 's') {
      ev.preventDefault();
      this.model.flushNow(id);
    }
  }

  // ------------------------------------------------------------ export, share

  async exportIpynb() {
    try {
      const blob = await this.api.exportIpynb(this.id);
      download(blob, fileName(this.model.nb?.title, '.ipynb'));
    } catch (e) {
      toast(`Export failed: ${e.message}`, 'error');
    }
  }

  openShare() {
    this.shareDialog?.remove();
    this.shareDialog = openShareDialog({ api: this.api, notebookId: this.id, me: this.me, owner: this.model.role === 'owner', auth: this.auth });
  }
}

/** Runs `fn` in a task of its own (after the browser had its chance to paint). */
function nextTask(fn) {
  if (globalThis.scheduler?.postTask) globalThis.scheduler.postTask(fn);
  else setTimeout(fn, 0);
}

function initials(userId) {
  const s = String(userId).replace(/^user_/, '');
  return (s.slice(0, 2) || '?').toUpperCase();
}
