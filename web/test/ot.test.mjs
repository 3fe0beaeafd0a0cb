// The browser's transform (web/src/ot.js) against the server's
// (crates/quire/src/notebook/text.rs): every case of the fixture the Rust
// side generated must come out exactly the same, plus the pinned rules.
//
// Run: node --test web/test/ot.test.mjs
// Regenerate the fixture (Rust): QUIRE_WRITE_OT_FIXTURES=1 cargo test -p quire --test text_transform

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import {
  apply, compose, rebase, TextError, transform, transformOver, transformPair, validate,
} from '../src/ot.js';

const fixture = JSON.parse(readFileSync(new URL('./fixtures/ot-cases.json', import.meta.url), 'utf8'));

const reasonOf = (fn) => {
  try {
    fn();
    return { reason: 'ok', index: null };
  } catch (e) {
    if (!(e instanceof TextError)) throw e;
    return { reason: e.reason, index: e.index };
  }
};

test('the fixture is big enough to mean something', () => {
  assert.ok(fixture.cases.length >= 500, `${fixture.cases.length} cases`);
  assert.ok(fixture.checks.length >= 100, `${fixture.checks.length} checks`);
});

test('transform, transformPair, transformOver and compose match Rust on every case', () => {
  fixture.cases.forEach((c, i) => {
    const at = `case ${i}: ${JSON.stringify({ text: c.text, a: c.a, b: c.b })}`;
    validate(c.a, c.text);
    validate(c.b, c.text);
    assert.deepEqual(transform(c.b, c.a), c.b_prime, at);
    assert.deepEqual(transformPair(c.a, c.b), [c.a_prime, c.b_prime], at);
    assert.equal(apply(apply(c.text, c.a), c.b_prime), c.result, at);
    assert.equal(apply(apply(c.text, c.b), c.a_prime), c.result, at);
    assert.deepEqual(transformOver(c.b, [c.a, c.a2]), c.b_over, at);
    assert.deepEqual(compose(c.a, c.b_prime), c.composed, at);
    assert.equal(apply(c.text, c.composed), c.result, at);
  });
});

test('rebase gives the client what the server computes', () => {
  fixture.cases.forEach((c, i) => {
    // Local pending edit b, remote committed edit a.
    const { remote, pending } = rebase(c.b, c.a);
    assert.deepEqual(pending, c.b_prime, `case ${i}`);
    assert.equal(apply(apply(c.text, c.b), remote), c.result, `case ${i}`);
  });
});

test('validate names the same invalid_op reason and change as Rust', () => {
  fixture.checks.forEach((c, i) => {
    const got = reasonOf(() => validate(c.changes, c.text));
    assert.deepEqual(got, { reason: c.reason, index: c.index ?? null }, `check ${i}: ${JSON.stringify(c)}`);
  });
});

const ch = (from, to, insert = '') => ({ from, to, insert });

test('pinned ties: committed text first, inside a deletion moves to its start', () => {
  assert.equal(apply(apply('ab', [ch(1, 1, 'C')]), transform([ch(1, 1, 'I')], [ch(1, 1, 'C')])), 'aCIb');
  assert.deepEqual(transform([ch(2, 2, 'I')], [ch(1, 4)]), [ch(1, 1, 'I')]);
  assert.deepEqual(transform([ch(2, 3, 'R')], [ch(1, 4)]), [ch(1, 1, 'R')]);
  assert.deepEqual(transform([ch(1, 2)], [ch(0, 3)]), []);
  assert.deepEqual(transform([ch(1, 4)], [ch(2, 2, 'C')]), [ch(1, 2), ch(3, 5)]);
  const a = [ch(1, 3, 'XY')];
  assert.equal(apply(apply('abcd', a), transform([ch(1, 1, 'I')], a)), 'aXYId');
});

test('positions are UTF-16 units and never split a surrogate pair', () => {
  assert.equal(apply('a😀b', [ch(1, 3, 'x')]), 'axb');
  assert.equal(reasonOf(() => validate([ch(2, 2, 'x')], 'a😀b')).reason, 'splits_surrogate');
  assert.equal(reasonOf(() => validate([ch(0, 0, '\ud800')], 'a')).reason, 'malformed');
  assert.equal(reasonOf(() => validate([{ from: 0.5, to: 1, insert: '' }], 'ab')).reason, 'malformed');
});

test('the source limit counts UTF-8 bytes of the result', () => {
  assert.equal(apply('abc', [ch(0, 0, 'é')], 5), 'éabc');
  assert.equal(reasonOf(() => apply('abc', [ch(0, 0, 'é')], 4)).reason, 'too_large');
});
