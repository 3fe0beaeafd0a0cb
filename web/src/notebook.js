// The notebook page's model: notebook state, ops applied, local edits.
// Pure: no DOM, no sockets; the view hands it a `send` and listens to what it
// emits. Runs under `node --test` (web/test/notebook.test.mjs).
//
// Server state is authoritative and changes only through `op` events (ours
// included). Local typing lives in `edits` until the server has it:
//
//   edit = { text, base, baseText, type, inflight, conflict, failed }
//     text      what the editor holds
//     base      the cell version `text` was edited from; baseText its source
//     type      a pending cell_type change
//     inflight  the cell.update sent and not yet seen committed
//     conflict  {theirs, version} when someone else's change overlaps ours
//
// Someone else's change to a cell being edited is rebased into the local
// text when the two changes do not touch (merge.js); when they do, both
// versions are kept and nothing is sent until the user chooses. Local text
// is never dropped without the user saying so.
//
// Events (`onEvent(type, detail)`), for the view to render:
//   cells                    the list of cells changed (insert, delete, move, snapshot)
//   cell      {id}           a cell's type, version, status or conflict changed
//   text      {id, text}     a cell's local text changed under the user (remote edit, merge)
//   title                    the notebook's title changed
//   role      {was, role, announce}
//   focus     {id}           a cell we inserted arrived: put the caret there
//   orphan    {text, type, why, index}   text of a deleted cell, to offer back
//   resync                   a version gap: reconnect and resume
//   toast     {message, kind}

import { merge3 } from './merge.js';

export const CELL_TYPES = ['code', 'markdown', 'raw'];
export const FLUSH_MS = 300; // debounce of cell edits
export const MAX_WAIT_MS = 1500; // ...but someone typing without a pause is still seen

/** Owners and editors change cells; viewers read. */
export function isWriterRole(role) {
  return role === 'owner' || role === 'editor';
}

/**
 * The language code cells are highlighted in: the notebook's
 * `metadata.language_info.name` or `metadata.kernelspec.language`, Python
 * when neither says; 'text' for one the page has no grammar for.
 */
export function notebookLanguage(metadata) {
  const name = String(metadata?.language_info?.name || metadata?.kernelspec?.language || 'python').toLowerCase();
  if (name === 'python' || name === 'python3' || name === 'ipython') return 'python';
  if (['javascript', 'js', 'typescript', 'node', 'nodejs'].includes(name)) return 'javascript';
  return 'text';
}

function newCellId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  return Array.from(globalThis.crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

const ERROR_TEXT = {
  forbidden: 'You can only read this notebook.',
  not_found: 'That cell no longer exists.',
  rate_limited: 'Too many changes at once; slow down a little.',
};

export class NotebookModel {
  /**
   * @param {object} o
   * @param {string} o.me                  the signed-in user id (to recognise our own ops)
   * @param {(op) => (string|null)} o.send  sends an op, returns its ref (null when not connected)
   * @param {(type, detail) => void} o.onEvent
   * @param {object} [o.clock]             {setTimeout, clearTimeout, now}; tests pass their own
   */
  constructor({ me, send, onEvent, clock = globalThis }) {
    this.me = me;
    this.send = send;
    this.onEvent = onEvent || (() => {});
    this.clock = { setTimeout: clock.setTimeout.bind(clock), clearTimeout: clock.clearTimeout.bind(clock), now: clock.now ? clock.now.bind(clock) : () => Date.now() };
    this.nb = null;
    this.cells = [];
    this.version = 0;
    this.epoch = null;
    this.role = null;
    this.connection = 'connecting';
    this.socketGen = 0;
    this.edits = new Map();
    this.refs = new Map();
    this.flushTimers = new Map();
    this.pendingSince = new Map();
    this.pendingFocus = null;
  }

  emit(type, detail = {}) { this.onEvent(type, detail); }

  cell(id) { return this.cells.find((c) => c.id === id); }
  index(id) { return this.cells.findIndex((c) => c.id === id); }
  isWriter() { return isWriterRole(this.role) && this.connection !== 'closed'; }
  isLive() { return this.connection === 'live'; }
  canChange() { return this.isWriter() && this.isLive(); }
  language() { return notebookLanguage(this.nb?.metadata); }

  /** The text a cell shows: the local edit if any, else the server's. */
  textOf(id) { return this.edits.get(id)?.text ?? this.cell(id)?.source ?? ''; }
  /** The type a cell shows: a pending change if any, else the server's. */
  typeOf(id) { return this.edits.get(id)?.type || this.cell(id)?.cell_type; }

  hasUnsaved() {
    for (const [id, e] of this.edits) {
      const cell = this.cell(id);
      if (!cell || e.text !== cell.source || e.inflight || e.conflict) return true;
    }
    return false;
  }

  /** What a cell's status line says: {text, state} with state saved|pending|saving|conflict|failed. */
  status(id) {
    const e = this.edits.get(id);
    if (e?.conflict) return { text: 'Conflict', state: 'conflict' };
    if (e?.failed) return { text: 'Not saved', state: 'failed' };
    if (e?.inflight) return { text: 'Saving…', state: 'saving' };
    if (e && (e.text !== e.baseText || e.type)) {
      if (!this.isWriter()) return { text: 'Not saved (read-only)', state: 'failed' };
      if (!this.isLive()) return { text: 'Not saved yet (offline)', state: 'pending' };
      return { text: 'Editing…', state: 'pending' };
    }
    return { text: '', state: 'saved' };
  }

  destroy() {
    for (const t of this.flushTimers.values()) this.clock.clearTimeout(t);
    this.flushTimers.clear();
  }

  // ------------------------------------------------------------ connection

  setConnection(phase) { this.connection = phase; }

  setRole(role, announce) {
    const was = this.role;
    this.role = role;
    if (this.nb) this.nb.role = role;
    this.emit('role', { was, role, announce: !!(announce && was && was !== role) });
  }

  /**
   * A `ready` message. Returns 'resumed' (missed ops follow; call
   * afterReplay once they are in) or 'loaded' (a full snapshot).
   */
  ready(msg) {
    this.socketGen += 1;
    if (msg.resumed) {
      this.epoch = msg.epoch;
      this.setRole(msg.role, true);
      return 'resumed';
    }
    // The server sends the .ipynb metadata (kernelspec, language_info) beside
    // the notebook in a full `ready`; the REST notebook shape has none.
    const nb = msg.metadata ? { ...msg.notebook, metadata: msg.metadata } : msg.notebook;
    this.load(nb, msg.version, msg.epoch, msg.role);
    return 'loaded';
  }

  /** A full snapshot (first load, or a resume that was not possible). */
  load(nb, version, epoch, role) {
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
        if (e.text !== e.baseText) this.emit('orphan', { text: e.text, type: e.type, why: 'A cell you were editing was deleted while you were offline.', index: this.cells.length });
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
    this.emit('title');
    this.emit('cells');
    for (const cell of this.cells) {
      if (!this.edits.has(cell.id)) this.emit('text', { id: cell.id, text: cell.source });
      this.emit('cell', { id: cell.id });
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

  // ------------------------------------------------------------------- ops

  /** An `op` message: applied in version order; a gap asks for a resync. */
  applyOp(msg) {
    if (msg.version <= this.version) return;
    if (msg.version > this.version + 1) {
      this.emit('resync');
      return;
    }
    this.version = msg.version;
    const op = msg.op || {};
    const who = msg.author === this.me ? 'You' : msg.author;
    switch (op.type) {
      case 'cell.insert': {
        const cell = { ...op.cell };
        this.cells.splice(Math.min(op.index ?? this.cells.length, this.cells.length), 0, cell);
        this.emit('cells');
        if (this.pendingFocus === cell.id) {
          this.pendingFocus = null;
          this.emit('focus', { id: cell.id });
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
        if (e && e.text !== cell.source) this.emit('orphan', { text: e.text, type: e.type, why: `${who} deleted a cell you were editing.`, index: i });
        this.emit('cells');
        break;
      }
      case 'cell.move': {
        const i = this.index(op.cell_id);
        if (i < 0) break;
        const [cell] = this.cells.splice(i, 1);
        this.cells.splice(Math.min(op.index, this.cells.length), 0, cell);
        this.emit('cells');
        break;
      }
      case 'notebook.rename':
        this.nb.title = op.title;
        this.emit('title');
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
      this.emit('text', { id: cell.id, text: cell.source });
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
    this.emit('cell', { id: cell.id });
  }

  ack(ref) { this.refs.delete(ref); }

  /** An `error` message answering one of our ops. */
  error(msg) {
    const r = this.refs.get(msg.ref);
    this.refs.delete(msg.ref);
    if (r?.kind === 'update') {
      this.updateRefused(r.cellId, msg);
      return;
    }
    this.emit('toast', { message: ERROR_TEXT[msg.code] ?? msg.message ?? 'The change was refused.', kind: 'error' });
  }

  updateRefused(id, msg) {
    const e = this.edits.get(id);
    if (!e || e.inflight?.ref !== msg.ref) return;
    e.inflight = null;
    if (msg.code === 'conflict' && msg.current) {
      this.rebase(id, msg.current.source, msg.current.version, false);
      this.settle(id);
    } else if (msg.code === 'rate_limited') {
      this.scheduleFlush(id, 1000);
    } else if (msg.code === 'not_found') {
      // The delete op that follows keeps the text (orphan).
    } else {
      e.failed = msg.code === 'forbidden' ? 'You can only read this notebook; not saved.' : (msg.message || 'Not saved.');
      this.emit('toast', { message: e.failed, kind: 'error' });
      this.emit('cell', { id });
    }
  }

  // ------------------------------------------------------------ local edits

  editFor(id) {
    let e = this.edits.get(id);
    if (!e) {
      const cell = this.cell(id);
      e = { text: cell.source, base: cell.version, baseText: cell.source, type: null, inflight: null, conflict: null, failed: null };
      this.edits.set(id, e);
    }
    return e;
  }

  /** The user typed: `text` is the whole new source of the cell. */
  localEdit(id, text) {
    if (!this.cell(id)) return;
    const e = this.editFor(id);
    e.text = text;
    e.failed = null;
    if (e.conflict) {
      this.emit('cell', { id });
      return;
    }
    this.settle(id);
  }

  /** The user picked another cell type: sent at once. */
  changeType(id, type) {
    if (!this.canChange() || !this.cell(id)) return;
    const e = this.editFor(id);
    e.type = type;
    this.emit('cell', { id });
    this.flushNow(id);
    this.flush(id);
  }

  /** Drops a clean edit, or schedules sending a dirty one. */
  settle(id) {
    const e = this.edits.get(id);
    const cell = this.cell(id);
    if (!e || !cell) return;
    const clean = e.text === e.baseText && (!e.type || e.type === cell.cell_type);
    if (clean && !e.inflight && !e.conflict && e.base === cell.version) this.edits.delete(id);
    else if (!clean) this.scheduleFlush(id, FLUSH_MS);
    this.emit('cell', { id });
  }

  scheduleFlush(id, ms = FLUSH_MS) {
    const now = this.clock.now();
    if (!this.pendingSince.has(id)) this.pendingSince.set(id, now);
    const delay = Math.max(0, Math.min(ms, MAX_WAIT_MS - (now - this.pendingSince.get(id))));
    this.clock.clearTimeout(this.flushTimers.get(id));
    this.flushTimers.set(id, this.clock.setTimeout(() => {
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
      this.emit('cell', { id });
      return;
    }
    const op = { type: 'cell.update', cell_id: id, base_version: e.base };
    if (e.text !== e.baseText) op.source = e.text;
    if (e.type && e.type !== cell.cell_type) op.cell_type = e.type;
    if (op.source === undefined && op.cell_type === undefined) {
      this.settle(id);
      return;
    }
    const ref = this.send(op);
    if (ref) {
      this.refs.set(ref, { kind: 'update', cellId: id });
      e.inflight = { ref, base: e.base, text: op.source ?? null, type: op.cell_type ?? null, gen: this.socketGen };
    }
    this.emit('cell', { id });
  }

  /** Sends a cell's waiting change now instead of after the debounce. */
  flushNow(id) {
    if (!this.flushTimers.has(id)) return;
    this.clock.clearTimeout(this.flushTimers.get(id));
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
      this.emit('cell', { id });
      return;
    }
    const merged = merge3(e.baseText, e.text, theirs);
    if (merged === null) {
      e.conflict = { theirs, version };
      this.emit('cell', { id });
      return;
    }
    e.base = version;
    e.baseText = theirs;
    if (merged !== e.text) {
      e.text = merged;
      this.emit('text', { id, text: merged });
    }
    this.settle(id);
  }

  /** Conflict resolved in favour of the local text: sent over theirs. */
  keepMine(id) {
    const e = this.edits.get(id);
    if (!e?.conflict) return;
    e.base = e.conflict.version;
    e.baseText = e.conflict.theirs;
    e.conflict = null;
    this.emit('cell', { id });
    this.flush(id);
  }

  /** Conflict resolved in favour of the server: the local text is dropped. */
  takeTheirs(id) {
    const cell = this.cell(id);
    if (!this.edits.has(id) || !cell) return;
    this.edits.delete(id);
    this.emit('text', { id, text: cell.source });
    this.emit('cell', { id });
  }

  // ------------------------------------------------------------ structure

  /** Asks for a new cell; returns false (and says why) when it cannot be sent. */
  insertCell(index, type, source = '') {
    if (!this.canChange()) {
      this.emit('toast', { message: this.isWriter() ? 'Not connected; try again in a moment.' : 'You can only read this notebook.', kind: 'error' });
      return false;
    }
    const id = newCellId();
    const ref = this.send({ type: 'cell.insert', index, cell: { cell_type: type, source, id } });
    if (!ref) return false;
    this.refs.set(ref, { kind: 'insert' });
    this.pendingFocus = id;
    return true;
  }

  deleteCell(id) {
    if (!this.canChange()) return;
    this.request({ type: 'cell.delete', cell_id: id }, 'delete');
  }

  moveCell(id, delta) {
    if (!this.canChange()) return;
    const to = this.index(id) + delta;
    if (to < 0 || to >= this.cells.length) return;
    this.request({ type: 'cell.move', cell_id: id, index: to }, 'move');
  }

  /** Returns false when the rename could not be sent. */
  rename(title) {
    if (!this.nb || title === this.nb.title) return true;
    return this.request({ type: 'notebook.rename', title }, 'rename');
  }

  request(op, kind) {
    const ref = this.send(op);
    if (ref) this.refs.set(ref, { kind });
    return !!ref;
  }
}
