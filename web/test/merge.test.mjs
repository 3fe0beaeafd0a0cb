// Rebasing of concurrent whole-cell edits (web/src/merge.js).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { merge3, mapCaret } from '../src/merge.js';

test('disjoint edits merge; overlapping ones refuse', () => {
  assert.equal(merge3('a\nb\nc', 'A\nb\nc', 'a\nb\nC'), 'A\nb\nC');
  assert.equal(merge3('x = 1', 'x = 1\ny', 'x = 1\ny'), 'x = 1\ny');
  assert.equal(merge3('# Plan', '# Plan (bob)', '# Plan (alice)'), null);
  assert.equal(merge3('abc', 'aXc', 'aYc'), null);
});

test('the caret moves with text inserted before it', () => {
  assert.equal(mapCaret('hello world', 'hi hello world', 5), 8);
  assert.equal(mapCaret('hello world', 'hello world!', 5), 5);
});
