// Text rebasing for concurrent cell edits (pure; also runs under Node).
//
// Each side's change from the common base is reduced to one replaced range
// (common prefix and suffix trimmed). When the two ranges do not touch, both
// changes apply: that is the everyday case of two people typing in different
// places of one cell. When they overlap the merge refuses (returns null) and
// the caller shows both versions instead of choosing one.

/** The single range of `base` that `text` replaced: {start, end, insert}. */
export function diffRange(base, text) {
  const max = Math.min(base.length, text.length);
  let start = 0;
  while (start < max && base.charCodeAt(start) === text.charCodeAt(start)) start++;
  let tail = 0;
  while (tail < max - start &&
    base.charCodeAt(base.length - 1 - tail) === text.charCodeAt(text.length - 1 - tail)) tail++;
  return { start, end: base.length - tail, insert: text.slice(start, text.length - tail) };
}

/** Moves a caret offset of `before` to the matching offset of `after`. */
export function mapCaret(before, after, caret) {
  const d = diffRange(before, after);
  if (caret <= d.start) return caret;
  if (caret >= d.end) return caret + d.insert.length - (d.end - d.start);
  return d.start + d.insert.length;
}

/**
 * Three-way merge of `mine` and `theirs`, both edited from `base`.
 * Returns the merged text, or null when the edits overlap.
 */
export function merge3(base, mine, theirs) {
  if (mine === theirs || theirs === base) return mine;
  if (mine === base) return theirs;
  const a = diffRange(base, mine);
  const b = diffRange(base, theirs);
  const apply = (first, second) =>
    base.slice(0, first.start) + first.insert + base.slice(first.end, second.start) +
    second.insert + base.slice(second.end);
  // Two insertions at the very same place have no right order: a conflict.
  const samePoint = a.start === a.end && b.start === b.end && a.start === b.start;
  if (samePoint) return null;
  if (a.end <= b.start) return apply(a, b);
  if (b.end <= a.start) return apply(b, a);
  return null;
}
