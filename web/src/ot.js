// Character-level edits of a cell's source for live co-editing: validate,
// apply, transform, rebase and compose lists of changes {from, to, insert}.
//
// The JavaScript twin of crates/quire/src/notebook/text.rs (read its module
// docs for the rule and the canonical form); web/test/ot.test.mjs checks both
// compute exactly the same on a fixture the Rust side generates. Positions are
// UTF-16 code units, which is what JS strings index, so `s.length` is a length.
//
// The one rule, gap by gap of the original text: the committed edit's text,
// then the incoming edit's text, then the original character unless either
// side deleted it. Committed (server-ordered, "remote") edits win ties.
//
// Pure ES module, no dependencies; runs in the browser and under Node.

/** Most changes one client edit may carry (DESIGN.md). */
export const MAX_CHANGES = 1000;

/** An `invalid_op` reason; `reason` and `index` match Rust's TextError. */
export class TextError extends Error {
  constructor(reason, index = null, message = reason) {
    super(message);
    this.name = 'TextError';
    this.reason = reason;
    this.index = index;
  }
}

/**
 * Throws a TextError unless `changes` is a valid client edit of `text`:
 * 1..1000 changes, sorted, non-overlapping, one pure insertion per position,
 * every position within the text and not inside a surrogate pair.
 */
export function validate(changes, text) {
  checkShape(changes);
  if (changes.length === 0) throw new TextError('empty', null, 'an edit needs at least one change');
  if (changes.length > MAX_CHANGES) throw new TextError('too_many', null, `${changes.length} changes`);
  checkOrder(changes);
  checkPositions(text, changes);
}

/**
 * Applies a sorted change list (a client edit or a transformed one, possibly
 * empty) to `text`. Throws a TextError when a position is invalid or the
 * result is over `maxBytes` of UTF-8 (the cell source limit).
 */
export function apply(text, changes, maxBytes = Infinity) {
  checkShape(changes);
  checkOrder(changes);
  checkPositions(text, changes);
  let out = '';
  let kept = 0;
  for (const c of changes) {
    out += text.slice(kept, c.from) + c.insert;
    kept = c.to;
  }
  out += text.slice(kept);
  const bytes = utf8Length(out);
  if (bytes > maxBytes) throw new TextError('too_large', null, `the result is ${bytes} bytes`);
  return out;
}

/** The server's transform: `incoming` rewritten to apply after `committed`. */
export function transform(incoming, committed) {
  return transformSide(incoming, committed, false);
}

/** `transform` over committed edits in commit order (each on the previous result). */
export function transformOver(incoming, committedList) {
  return committedList.reduce((set, done) => transform(set, done), incoming);
}

/**
 * Both sides of one concurrent pair, committed first: [committed', incoming']
 * with apply(apply(t, committed), incoming') === apply(apply(t, incoming), committed').
 */
export function transformPair(committed, incoming) {
  return [transformSide(committed, incoming, true), transform(incoming, committed)];
}

/**
 * A remote (committed) edit arrives while `pending` local changes are not yet
 * acknowledged: apply `remote` to the local text and keep `pending` as the
 * new pending edit (it is what the server computes for it).
 */
export function rebase(pending, remote) {
  const [remoteAfter, pendingAfter] = transformPair(remote, pending);
  return { remote: remoteAfter, pending: pendingAfter };
}

/** One change list doing `a` then `b` (`b` made on the text `a` produced). */
export function compose(a, b) {
  const out = new Builder();
  const first = steps(a);
  const second = steps(b);
  let x = first.next();
  let y = second.next();
  for (;;) {
    if (x.retain === Infinity && y.retain === Infinity) break;
    // `b`'s text goes before `a`'s deletion: the earliest gap it can have.
    if (y.insert !== undefined) { out.insert(y.insert); y = second.next(); continue; }
    if (x.delete !== undefined) { out.delete(x.delete); x = first.next(); continue; }
    const k = Math.min(stepLength(x), stepLength(y));
    if (x.retain !== undefined && y.retain !== undefined) out.retain(k);
    else if (x.retain !== undefined) out.delete(k);
    else if (y.retain !== undefined) out.insert(splitUtf16(x.insert, k)[0]);
    // else: text `a` inserted and `b` deleted never existed for the original.
    x = stepAfter(x, k) ?? first.next();
    y = stepAfter(y, k) ?? second.next();
  }
  return out.changes;
}

/** UTF-8 size of a string (what the cell source limit counts). */
export function utf8Length(s) {
  let bytes = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0);
    bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return bytes;
}

const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

// JS-only: what serde rejects on the server before any rule applies.
function checkShape(changes) {
  if (!Array.isArray(changes)) throw new TextError('malformed', null, 'changes must be a list');
  changes.forEach((c, index) => {
    const position = (n) => Number.isSafeInteger(n) && n >= 0;
    if (c === null || typeof c !== 'object' || !position(c.from) || !position(c.to) ||
      typeof c.insert !== 'string' || LONE_SURROGATE.test(c.insert)) {
      throw new TextError('malformed', index, `change ${index} is malformed`);
    }
  });
}

function checkOrder(changes) {
  changes.forEach((c, index) => {
    if (c.from > c.to) throw new TextError('reversed', index, `change ${index} ends before it starts`);
    const prev = changes[index - 1];
    if (!prev) return;
    if (c.from < prev.from) throw new TextError('out_of_order', index, `change ${index} is out of order`);
    if (c.from < prev.to) throw new TextError('overlapping', index, `change ${index} overlaps`);
    if (c.from === c.to && prev.from === prev.to && prev.to === c.from) {
      throw new TextError('duplicate_insertion', index, `change ${index} is a second insertion`);
    }
  });
}

function checkPositions(text, changes) {
  changes.forEach((c, index) => {
    for (const p of [c.from, c.to]) {
      if (p > text.length) throw new TextError('past_end', index, `position ${p} is past the end`);
      if (splitsPair(text, p)) throw new TextError('splits_surrogate', index, `position ${p} splits a pair`);
    }
  });
}

function splitsPair(s, p) {
  return p > 0 && p < s.length && isHigh(s.charCodeAt(p - 1)) && isLow(s.charCodeAt(p));
}

const isHigh = (u) => u >= 0xd800 && u <= 0xdbff;
const isLow = (u) => u >= 0xdc00 && u <= 0xdfff;

// `set` rewritten to apply after `over`; `mineFirst` is the tie-break at a
// shared gap (true for the committed side's view).
function transformSide(set, over, mineFirst) {
  const gaps = [...new Set([...set, ...over].flatMap((c) => [c.from, c.to]))].sort((p, q) => p - q);
  const mine = new GapCursor(set);
  const theirs = new GapCursor(over);
  const out = new Builder();
  out.retain(gaps.length ? gaps[0] : 0);
  gaps.forEach((gap, k) => {
    const myText = mine.startingAt(gap);
    const theirLength = theirs.startingAt(gap).reduce((n, c) => n + c.insert.length, 0);
    if (!mineFirst) out.retain(theirLength);
    myText.forEach((c) => out.insert(c.insert));
    if (mineFirst) out.retain(theirLength);
    if (k + 1 === gaps.length) return;
    const length = gaps[k + 1] - gap;
    if (theirs.deletes(gap)) return;
    if (mine.deletes(gap)) out.delete(length);
    else out.retain(length);
  });
  return out.changes;
}

// Walks one side's changes gap by gap, in ascending gaps.
class GapCursor {
  constructor(changes) {
    this.changes = changes;
    this.next = 0;
    this.deletingTo = 0;
  }

  startingAt(gap) {
    const start = this.next;
    while (this.next < this.changes.length && this.changes[this.next].from === gap) {
      this.deletingTo = Math.max(this.deletingTo, this.changes[this.next].to);
      this.next++;
    }
    return this.changes.slice(start, this.next);
  }

  deletes(gap) {
    return this.deletingTo > gap;
  }
}

// Builds a canonical list from retain / delete / insert steps: drops empty
// steps, merges only where no inserted text changes gap (see text.rs).
class Builder {
  constructor() {
    this.pos = 0;
    this.changes = [];
  }

  retain(n) {
    this.pos += n;
  }

  delete(n) {
    if (n > 0) {
      this.push(this.pos + n, '');
      this.pos += n;
    }
  }

  insert(s) {
    if (s !== '') this.push(this.pos, s);
  }

  push(to, insert) {
    const last = this.changes[this.changes.length - 1];
    if (last && last.to === this.pos && (insert === '' || last.from === last.to)) {
      last.to = to;
      last.insert += insert;
    } else {
      this.changes.push({ from: this.pos, to, insert });
    }
  }
}

// A change list read as retain / insert / delete steps, then an endless retain.
function steps(changes) {
  const list = [];
  let pos = 0;
  for (const c of changes) {
    list.push({ retain: c.from - pos }, { insert: c.insert }, { delete: c.to - c.from });
    pos = c.to;
  }
  const nonEmpty = list.filter((s) => stepLength(s) > 0);
  let i = 0;
  return { next: () => (i < nonEmpty.length ? nonEmpty[i++] : { retain: Infinity }) };
}

function stepLength(s) {
  return s.insert !== undefined ? s.insert.length : (s.retain ?? s.delete);
}

// What is left of a step after its first k units, or null.
function stepAfter(s, k) {
  if (s.retain === Infinity) return s;
  let rest;
  if (s.retain !== undefined) rest = { retain: s.retain - k };
  else if (s.delete !== undefined) rest = { delete: s.delete - k };
  else rest = { insert: splitUtf16(s.insert, k)[1] };
  return stepLength(rest) > 0 ? rest : null;
}

// Split after k units; a k inside a surrogate pair (valid input never gives
// one) keeps the whole character in the first part, as text.rs does.
function splitUtf16(s, k) {
  const at = splitsPair(s, k) ? k + 1 : k;
  return [s.slice(0, at), s.slice(at)];
}
