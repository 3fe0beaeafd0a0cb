// What code-cell outputs show (web/src/output-model.js): streams joined,
// the richest safe MIME type picked, prompts, folding, image URLs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { displayItems, pickMime, inPrompt, outPrompt, imageUrl, latexSource, FOLD_LINES } from '../src/output-model.js';

test('consecutive streams of one name are joined; stdout and stderr stay apart', () => {
  const items = displayItems([
    { output_type: 'stream', name: 'stdout', text: ['hel', 'lo\n'] },
    { output_type: 'stream', name: 'stdout', text: 'world\n' },
    { output_type: 'stream', name: 'stderr', text: 'oops\n' },
    { output_type: 'stream', name: 'stdout', text: 'again\n' },
  ]);
  assert.deepEqual(items.map((i) => [i.name, i.text]), [['stdout', 'hello\nworld\n'], ['stderr', 'oops\n'], ['stdout', 'again\n']]);
});

test('the richest MIME type wins; javascript only when nothing else is there', () => {
  assert.equal(pickMime({ 'text/plain': 'x', 'text/html': '<b>x</b>', 'image/png': 'AAA' }), 'image/png');
  assert.equal(pickMime({ 'text/plain': 'x', 'text/html': '<b>x</b>' }), 'text/html');
  assert.equal(pickMime({ 'application/javascript': 'alert(1)', 'text/plain': '<IPython.Javascript>' }), 'text/plain');
  assert.equal(pickMime({ 'application/javascript': 'alert(1)' }), 'application/javascript');
  assert.equal(pickMime({ 'application/x-unknown': 1 }), null);
  assert.equal(pickMime({ 'text/latex': '$x$', 'text/plain': 'x' }), 'text/latex');
});

test('execute_result carries its Out prompt; display_data none', () => {
  const [a, b] = displayItems([
    { output_type: 'execute_result', execution_count: 3, data: { 'text/plain': '42' }, metadata: {} },
    { output_type: 'display_data', data: { 'application/json': { a: [1] } }, metadata: {} },
  ]);
  assert.deepEqual([a.kind, a.mime, a.value, a.prompt], ['data', 'text/plain', '42', 'Out[3]:']);
  assert.equal(b.prompt, null);
  assert.equal(b.value, '{\n  "a": [\n    1\n  ]\n}');
  assert.equal(inPrompt(3), 'In [3]:');
  assert.equal(inPrompt(null), 'In [ ]:');
  assert.equal(outPrompt(undefined), 'Out[ ]:');
});

test('errors keep their traceback lines; long text folds', () => {
  const [err] = displayItems([{ output_type: 'error', ename: 'ValueError', evalue: 'bad', traceback: ['\u001b[31mValueError\u001b[0m', 'line 2'] }]);
  assert.equal(err.kind, 'error');
  assert.equal(err.traceback, '\u001b[31mValueError\u001b[0m\nline 2');
  assert.equal(err.fold, false);
  const long = Array.from({ length: FOLD_LINES + 5 }, (_, i) => `line ${i}\n`);
  const [stream] = displayItems([{ output_type: 'stream', name: 'stdout', text: long }]);
  assert.equal(stream.fold, true);
});

test('unknown outputs are named, not dropped silently; junk is tolerated', () => {
  assert.deepEqual(displayItems([{ output_type: 'pyout' }]).map((i) => i.kind), ['unknown']);
  assert.deepEqual(displayItems(null), []);
});

test('images become data: URLs (SVG as text, never as a document)', () => {
  assert.equal(imageUrl('image/png', 'iVBO\nRw0K\n'), 'data:image/png;base64,iVBORw0K');
  assert.equal(imageUrl('image/svg+xml', '<svg/>'), 'data:image/svg+xml;charset=utf-8,%3Csvg%2F%3E');
});

test('LaTeX outputs lose their math delimiters', () => {
  assert.equal(latexSource('$$\\frac{1}{2}$$'), '\\frac{1}{2}');
  assert.equal(latexSource(' $x^2$ '), 'x^2');
  assert.equal(latexSource('\\begin{align}a\\end{align}'), '\\begin{align}a\\end{align}');
});
