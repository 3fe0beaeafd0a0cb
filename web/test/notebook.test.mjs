// The notebook model (web/src/notebook.js) without a browser: ops applied in
// order, local edits sent once, acknowledged, rebased or flagged as conflicts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NotebookModel, notebookLanguage } from '../src/notebook.js';

/** A clock whose timers run only when the test says so. */
function manualClock() {
  let now = 0;
  let seq = 0;
  const timers = new Map();
  return {
    now: () => now,
    setTimeout: (fn, ms) => { const id = ++seq; timers.set(id, { fn, at: now + ms }); return id; },
    clearTimeout: (id) => { timers.delete(id); },
    /** Moves time on, running every timer that falls due. */
    advance(ms) {
      now += ms;
      for (const [id, t] of [...timers].sort((a, b) => a[1].at - b[1].at)) {
        if (t.at <= now && timers.has(id)) { timers.delete(id); t.fn(); }
      }
    },
  };
}

const snapshot = () => ({
  id: 'nb1', title: 'T', metadata: {},
  cells: [
    { id: 'a', cell_type: 'code', source: 'x = 1', version: 1, outputs: [], execution_count: null },
    { id: 'b', cell_type: 'markdown', source: '# Hi', version: 1 },
  ],
});

function setup({ role = 'owner' } = {}) {
  const clock = manualClock();
  const sent = [];
  const events = [];
  const model = new NotebookModel({
    me: 'user_me',
    clock,
    send: (op) => { sent.push(op); return `r${sent.length}`; },
    onEvent: (type, detail) => events.push({ ...detail, type }),
  });
  model.setConnection('live');
  model.ready({ type: 'ready', resumed: false, notebook: snapshot(), version: 5, epoch: 'e1', role });
  events.length = 0;
  return { model, sent, events, clock };
}

const op = (version, author, body) => ({ type: 'op', version, author, op: body });

test('a snapshot loads cells, version and role', () => {
  const { model } = setup();
  assert.deepEqual(model.cells.map((c) => c.id), ['a', 'b']);
  assert.equal(model.version, 5);
  assert.equal(model.canChange(), true);
  assert.equal(model.status('a').state, 'saved');
});

test('typing is sent once, debounced, with the base version; our own op settles it', () => {
  const { model, sent, clock } = setup();
  model.localEdit('a', 'x = 12');
  model.localEdit('a', 'x = 123');
  assert.equal(sent.length, 0, 'nothing sent while typing');
  assert.equal(model.status('a').state, 'pending');
  clock.advance(300);
  assert.deepEqual(sent, [{ type: 'cell.update', cell_id: 'a', base_version: 1, source: 'x = 123' }]);
  assert.equal(model.status('a').state, 'saving');
  model.applyOp(op(6, 'user_me', { type: 'cell.update', cell_id: 'a', source: 'x = 123', cell_version: 2 }));
  assert.equal(model.status('a').state, 'saved');
  assert.equal(model.hasUnsaved(), false);
  assert.equal(model.cell('a').source, 'x = 123');
});

test('someone typing without a pause is still sent after the longest wait', () => {
  const { model, sent, clock } = setup();
  for (let i = 0; i < 10; i++) {
    model.localEdit('a', `x = 1${'0'.repeat(i + 1)}`);
    clock.advance(200);
  }
  assert.equal(sent.length, 1, 'sent within 1.5 s of the first keystroke');
});

test('a remote edit elsewhere in the cell is merged into the local text', () => {
  const { model, events } = setup();
  model.localEdit('a', 'x = 1\ny = 2');
  model.applyOp(op(6, 'user_other', { type: 'cell.update', cell_id: 'a', source: '# top\nx = 1', cell_version: 2 }));
  assert.equal(model.textOf('a'), '# top\nx = 1\ny = 2');
  assert.ok(events.some((e) => e.type === 'text' && e.id === 'a' && e.text === '# top\nx = 1\ny = 2'));
  assert.equal(model.edits.get('a').base, 2);
});

test('an overlapping remote edit is a conflict: nothing is sent until the user chooses', () => {
  const { model, sent, clock } = setup();
  model.localEdit('a', 'x = 2');
  model.applyOp(op(6, 'user_other', { type: 'cell.update', cell_id: 'a', source: 'x = 3', cell_version: 2 }));
  assert.equal(model.status('a').state, 'conflict');
  assert.deepEqual(model.edits.get('a').conflict, { theirs: 'x = 3', version: 2 });
  clock.advance(5000);
  assert.equal(sent.length, 0);
  model.keepMine('a');
  assert.deepEqual(sent, [{ type: 'cell.update', cell_id: 'a', base_version: 2, source: 'x = 2' }]);
});

test('"use theirs" drops the local text and shows the server\'s', () => {
  const { model, events } = setup();
  model.localEdit('a', 'x = 2');
  model.applyOp(op(6, 'user_other', { type: 'cell.update', cell_id: 'a', source: 'x = 3', cell_version: 2 }));
  model.takeTheirs('a');
  assert.equal(model.edits.has('a'), false);
  assert.equal(model.textOf('a'), 'x = 3');
  assert.ok(events.some((e) => e.type === 'text' && e.text === 'x = 3'));
});

test('a conflict error from the server rebases and resends', () => {
  const { model, sent, clock } = setup();
  model.localEdit('a', 'x = 1\nmine');
  clock.advance(300);
  model.error({ type: 'error', ref: 'r1', code: 'conflict', current: { source: 'top\nx = 1', version: 2 } });
  clock.advance(300);
  assert.deepEqual(sent[1], { type: 'cell.update', cell_id: 'a', base_version: 2, source: 'top\nx = 1\nmine' });
});

test('a version gap asks for a resync and applies nothing', () => {
  const { model, events } = setup();
  model.applyOp(op(8, 'user_other', { type: 'notebook.rename', title: 'Later' }));
  assert.equal(model.nb.title, 'T');
  assert.ok(events.some((e) => e.type === 'resync'));
  model.applyOp(op(5, 'user_other', { type: 'notebook.rename', title: 'Old' }));
  assert.equal(model.nb.title, 'T', 'already-seen versions are ignored');
});

test('structure ops: insert, move, delete; deleting a cell being edited keeps its text', () => {
  const { model, events } = setup();
  model.applyOp(op(6, 'user_other', { type: 'cell.insert', index: 1, cell: { id: 'c', cell_type: 'raw', source: 'r', version: 1 } }));
  model.applyOp(op(7, 'user_other', { type: 'cell.move', cell_id: 'a', index: 2 }));
  assert.deepEqual(model.cells.map((c) => c.id), ['c', 'b', 'a']);
  model.localEdit('b', '# Hi there');
  model.applyOp(op(8, 'user_other', { type: 'cell.delete', cell_id: 'b' }));
  assert.deepEqual(model.cells.map((c) => c.id), ['c', 'a']);
  const orphan = events.find((e) => e.type === 'orphan');
  assert.equal(orphan.text, '# Hi there');
  assert.match(orphan.why, /user_other deleted/);
});

test('a cell we inserted gets the focus when it arrives', () => {
  const { model, sent, events } = setup();
  assert.equal(model.insertCell(2, 'code'), true);
  const id = sent[0].cell.id;
  model.applyOp(op(6, 'user_me', { type: 'cell.insert', index: 2, cell: { ...sent[0].cell, version: 1 } }));
  assert.ok(events.some((e) => e.type === 'focus' && e.id === id));
});

test('viewers and closed sockets change nothing', () => {
  const { model, sent, events } = setup({ role: 'viewer' });
  assert.equal(model.insertCell(0, 'code'), false);
  assert.ok(events.some((e) => e.type === 'toast' && /only read/.test(e.message)));
  model.localEdit('a', 'nope');
  assert.equal(model.status('a').state, 'failed');
  model.setConnection('closed');
  model.changeType('a', 'raw');
  assert.equal(sent.length, 0);
});

test('offline edits wait, then go out after a resumed replay', () => {
  const { model, sent, clock } = setup();
  model.setConnection('reconnecting');
  model.localEdit('a', 'x = 9');
  assert.equal(model.status('a').text, 'Not saved yet (offline)');
  model.setConnection('live');
  assert.equal(model.ready({ type: 'ready', resumed: true, epoch: 'e1', role: 'owner' }), 'resumed');
  model.afterReplay();
  clock.advance(0);
  assert.equal(sent.at(-1).source, 'x = 9');
});

test('a reload snapshot keeps an edit that did commit before the drop', () => {
  const { model, sent, clock } = setup();
  model.localEdit('a', 'x = 5');
  clock.advance(300);
  assert.equal(sent.length, 1);
  const nb = snapshot();
  nb.cells[0] = { ...nb.cells[0], source: 'x = 5', version: 2 };
  model.ready({ type: 'ready', resumed: false, notebook: nb, version: 6, epoch: 'e2', role: 'owner' });
  clock.advance(0);
  assert.equal(sent.length, 1, 'not sent twice');
  assert.equal(model.hasUnsaved(), false);
});

test('the highlighting language comes from the notebook metadata, Python by default', () => {
  assert.equal(notebookLanguage({}), 'python');
  assert.equal(notebookLanguage(undefined), 'python');
  assert.equal(notebookLanguage({ kernelspec: { language: 'javascript' } }), 'javascript');
  assert.equal(notebookLanguage({ language_info: { name: 'Python' }, kernelspec: { language: 'r' } }), 'python');
  assert.equal(notebookLanguage({ language_info: { name: 'julia' } }), 'text');
});

test("a full ready's metadata sets the notebook language", () => {
  const { model } = setup();
  const nb = { ...snapshot() };
  delete nb.metadata;
  model.ready({ type: 'ready', resumed: false, notebook: nb, version: 0, epoch: 'e', role: 'owner',
    metadata: { kernelspec: { language: 'javascript' } } });
  assert.equal(model.language(), 'javascript');
  model.ready({ type: 'ready', resumed: false, notebook: nb, version: 0, epoch: 'e', role: 'owner' });
  assert.equal(model.language(), 'python');
});
