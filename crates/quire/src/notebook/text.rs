//! Character-level edits of a cell's source: validate, apply, transform and
//! compose lists of [`Change`]s (DESIGN.md, "Live text editing").
//!
//! Positions count UTF-16 code units (what browsers and CodeMirror count).
//! Everything here is pure; `web/src/ot.js` is the same code in JavaScript and
//! `tests/text_transform.rs` checks the two agree on a shared fixture.
//!
//! # The one transform rule
//!
//! Think of the original text as gaps `0..=len` with one original character
//! between neighbouring gaps. Each side's edit inserts text at gaps (a
//! replacement `from..to` inserts at gap `from`) and deletes original
//! characters. The merged text is, gap by gap: the committed edit's text, then
//! the incoming edit's text, then the original character unless either side
//! deleted it. Every rule of DESIGN.md follows from that one picture: committed
//! edits win ties; a position inside a committed deletion lands at the
//! deletion's start, after any text the committed edit put there; an incoming
//! deletion loses what is already deleted and never removes text it never saw
//! (it is split around it); a replacement whose range is gone becomes an
//! insertion.
//!
//! # Canonical form and the empty set
//!
//! Results of [`transform`] and [`compose`] are canonical: no change is empty,
//! and touching changes are merged where that keeps every inserted text at its
//! gap (a deletion joins the change before it; text joins a pure insertion at
//! the same spot). A deletion followed by an insertion at its end stays two
//! changes: merged, the text would move to the deletion's start and a later
//! committed insertion there would order differently. An edit the
//! transform reduces to nothing is an empty [`ChangeSet`], which serializes as
//! `[]`; it is still a valid set to apply (and one accepted op for the server).
//! Only client input must be non-empty ([`ChangeSet::new`], [`validate`]).
//!
//! # Positions the server cannot see
//!
//! The server transforms a client's changes made on an old version without
//! that old text. [`ChangeSet::new`] checks what needs no text; [`apply`] on
//! the current text then catches the rest: a position past the old end maps
//! past the current end, and a surrogate split in text nobody deleted stays a
//! split. A split inside text a committed edit deleted is moot (it maps to the
//! deletion's start) and is accepted.

use serde::{Deserialize, Serialize};

/// Most changes one client edit may carry (DESIGN.md).
pub const MAX_CHANGES: usize = 1000;

/// Replace the UTF-16 range `from..to` of a text with `insert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Start of the replaced range (UTF-16 code units).
    pub from: usize,
    /// End of the replaced range, `>= from`; `from == to` is a pure insertion.
    pub to: usize,
    /// The new text (may be empty: a pure deletion).
    pub insert: String,
}

/// Changes that are sorted, non-overlapping and have at most one pure
/// insertion per position, so applying them in order is unambiguous. All
/// positions refer to the text before any of them applies.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct ChangeSet {
    changes: Vec<Change>,
}

/// Why an edit is `invalid_op` (each variant one reason of DESIGN.md).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// A client edit without changes.
    #[error("an edit needs at least one change")]
    Empty,
    /// More than [`MAX_CHANGES`] changes.
    #[error("{count} changes, at most {MAX_CHANGES} allowed")]
    TooMany {
        /// How many were sent.
        count: usize,
    },
    /// `from > to`.
    #[error("change {index} ends before it starts")]
    Reversed {
        /// Which change (0-based).
        index: usize,
    },
    /// A change starts before the previous one.
    #[error("change {index} starts before the previous change")]
    OutOfOrder {
        /// Which change (0-based).
        index: usize,
    },
    /// A change starts inside the previous one's range.
    #[error("change {index} overlaps the previous change")]
    Overlapping {
        /// Which change (0-based).
        index: usize,
    },
    /// Two pure insertions at one position (their order would be ambiguous).
    #[error("change {index} is a second insertion at position {position}")]
    DuplicateInsertion {
        /// Which change (0-based).
        index: usize,
        /// The shared position.
        position: usize,
    },
    /// A position after the end of the text.
    #[error("change {index}: position {position} is past the end ({len})")]
    PastEnd {
        /// Which change (0-based).
        index: usize,
        /// The offending position.
        position: usize,
        /// The text's length in UTF-16 code units.
        len: usize,
    },
    /// A position between the two halves of a surrogate pair.
    #[error("change {index}: position {position} splits a surrogate pair")]
    SplitsSurrogate {
        /// Which change (0-based).
        index: usize,
        /// The offending position.
        position: usize,
    },
    /// The result would exceed the cell source limit.
    #[error("the result is {bytes} bytes, at most {max} allowed")]
    TooLarge {
        /// UTF-8 size of the result.
        bytes: usize,
        /// The limit.
        max: usize,
    },
}

impl TextError {
    /// A stable snake_case name for the reason (logs, the JS twin, fixtures).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooMany { .. } => "too_many",
            Self::Reversed { .. } => "reversed",
            Self::OutOfOrder { .. } => "out_of_order",
            Self::Overlapping { .. } => "overlapping",
            Self::DuplicateInsertion { .. } => "duplicate_insertion",
            Self::PastEnd { .. } => "past_end",
            Self::SplitsSurrogate { .. } => "splits_surrogate",
            Self::TooLarge { .. } => "too_large",
        }
    }

    /// The change the error is about, when it is about one.
    pub fn index(&self) -> Option<usize> {
        match self {
            Self::Reversed { index }
            | Self::OutOfOrder { index }
            | Self::Overlapping { index }
            | Self::DuplicateInsertion { index, .. }
            | Self::PastEnd { index, .. }
            | Self::SplitsSurrogate { index, .. } => Some(*index),
            Self::Empty | Self::TooMany { .. } | Self::TooLarge { .. } => None,
        }
    }
}

impl ChangeSet {
    /// Parse a client's changes by the rules that need no text: 1 to
    /// [`MAX_CHANGES`] changes, sorted, non-overlapping, at most one pure
    /// insertion per position. Positions are checked by [`apply`].
    pub fn new(changes: Vec<Change>) -> Result<Self, TextError> {
        check_count(&changes)?;
        check_order(&changes)?;
        Ok(Self { changes })
    }

    /// The set that changes nothing (what a fully absorbed edit becomes).
    pub fn empty() -> Self {
        Self::default()
    }

    /// The changes, sorted.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// The changes, sorted, by value (e.g. for an op event).
    pub fn into_changes(self) -> Vec<Change> {
        self.changes
    }

    /// True when applying changes nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Check a client's changes against the text they were made on: every rule of
/// DESIGN.md except the source limit (which [`apply`] enforces).
pub fn validate(changes: &[Change], text: &str) -> Result<(), TextError> {
    check_count(changes)?;
    check_order(changes)?;
    byte_spans(text, changes).map(drop)
}

/// Apply `set` to `text`; the result may be at most `max_bytes` of UTF-8.
/// Fails, leaving nothing changed, when a position is past the end or splits a
/// surrogate pair, or the result is too large.
pub fn apply(text: &str, set: &ChangeSet, max_bytes: usize) -> Result<String, TextError> {
    let spans = byte_spans(text, &set.changes)?;
    let pairs = set.changes.iter().zip(&spans);
    let bytes = pairs.clone().fold(text.len(), |n, (c, (from, to))| {
        n - (to - from) + c.insert.len()
    });
    if bytes > max_bytes {
        return Err(TextError::TooLarge {
            bytes,
            max: max_bytes,
        });
    }
    let mut out = String::with_capacity(bytes);
    let mut kept = 0;
    for (change, &(from, to)) in pairs {
        out.push_str(&text[kept..from]);
        out.push_str(&change.insert);
        kept = to;
    }
    out.push_str(&text[kept..]);
    Ok(out)
}

/// The server's transform: `incoming` (made on the same text as `committed`)
/// rewritten to apply after `committed`, which wins every tie.
pub fn transform(incoming: &ChangeSet, committed: &ChangeSet) -> ChangeSet {
    transform_side(incoming, committed, Tie::After)
}

/// [`transform`] over several committed edits, in commit order (each relative
/// to the text the previous one produced). With none, `incoming` comes back
/// exactly as sent (DESIGN.md: on the current version the broadcast changes
/// are those sent).
pub fn transform_over<'a>(
    incoming: &ChangeSet,
    committed: impl IntoIterator<Item = &'a ChangeSet>,
) -> ChangeSet {
    committed
        .into_iter()
        .fold(incoming.clone(), |set, done| transform(&set, done))
}

/// Both sides of one concurrent pair, committed first: `(committed', incoming')`
/// where `incoming' = transform(incoming, committed)` and
/// `apply(apply(t, committed), incoming') == apply(apply(t, incoming), committed')`.
pub fn transform_pair(committed: &ChangeSet, incoming: &ChangeSet) -> (ChangeSet, ChangeSet) {
    (
        transform_side(committed, incoming, Tie::Before),
        transform(incoming, committed),
    )
}

/// The client's rebase: a `remote` (committed) edit arrives while `pending`
/// local changes are unacknowledged. Returns `(remote', pending')`: apply
/// `remote'` to the local text, and `pending'` is what the server will have
/// computed for `pending` (it is the server's [`transform`]).
pub fn rebase(pending: &ChangeSet, remote: &ChangeSet) -> (ChangeSet, ChangeSet) {
    transform_pair(remote, pending)
}

/// One set doing what `a` then `b` do (`b` relative to the text `a` produced):
/// `apply(t, compose(a, b)) == apply(apply(t, a), b)`. The client composes
/// local edits waiting behind an unacknowledged one with it.
pub fn compose(a: &ChangeSet, b: &ChangeSet) -> ChangeSet {
    let mut out = Builder::default();
    let mut first = Steps::new(&a.changes);
    let mut second = Steps::new(&b.changes);
    let (mut x, mut y) = (first.next(), second.next());
    loop {
        match (x, y) {
            (Step::Retain(ENDLESS), Step::Retain(ENDLESS)) => break,
            // `b`'s text before `a`'s deletion: at the earliest gap it can
            // have, so later transforms order it as they would `b` itself.
            (_, Step::Insert(s)) => {
                out.insert(s);
                y = second.next();
                continue;
            }
            (Step::Delete(n), _) => {
                out.delete(n);
                x = first.next();
                continue;
            }
            _ => {}
        }
        let k = x.len().min(y.len());
        match (x, y) {
            (Step::Retain(_), Step::Retain(_)) => out.retain(k),
            (Step::Retain(_), Step::Delete(_)) => out.delete(k),
            (Step::Insert(s), Step::Retain(_)) => out.insert(split_utf16(s, k).0),
            // Text `a` inserted and `b` deleted never existed for `t`.
            _ => {}
        }
        x = x.after(k).unwrap_or_else(|| first.next());
        y = y.after(k).unwrap_or_else(|| second.next());
    }
    out.finish()
}

/// Length of a string in UTF-16 code units.
pub fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

fn check_count(changes: &[Change]) -> Result<(), TextError> {
    match changes.len() {
        0 => Err(TextError::Empty),
        count if count > MAX_CHANGES => Err(TextError::TooMany { count }),
        _ => Ok(()),
    }
}

fn check_order(changes: &[Change]) -> Result<(), TextError> {
    let mut previous: Option<&Change> = None;
    for (index, change) in changes.iter().enumerate() {
        if change.from > change.to {
            return Err(TextError::Reversed { index });
        }
        if let Some(prev) = previous {
            if change.from < prev.from {
                return Err(TextError::OutOfOrder { index });
            }
            if change.from < prev.to {
                return Err(TextError::Overlapping { index });
            }
            if change.from == change.to && prev.from == prev.to && prev.to == change.from {
                return Err(TextError::DuplicateInsertion {
                    index,
                    position: change.from,
                });
            }
        }
        previous = Some(change);
    }
    Ok(())
}

/// Byte range of each change in `text`, checking every position lies on a
/// character boundary within the text. `changes` must be in order.
fn byte_spans(text: &str, changes: &[Change]) -> Result<Vec<(usize, usize)>, TextError> {
    let mut chars = text.chars();
    let (mut unit, mut byte) = (0, 0);
    let mut locate = |position: usize, index: usize| {
        while unit < position {
            let Some(c) = chars.next() else {
                return Err(TextError::PastEnd {
                    index,
                    position,
                    len: unit,
                });
            };
            unit += c.len_utf16();
            byte += c.len_utf8();
        }
        if unit > position {
            return Err(TextError::SplitsSurrogate { index, position });
        }
        Ok(byte)
    };
    let mut spans = Vec::with_capacity(changes.len());
    for (index, change) in changes.iter().enumerate() {
        let from = locate(change.from, index)?;
        spans.push((from, locate(change.to, index)?));
    }
    Ok(spans)
}

/// Which side's text goes first where both insert at one gap.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tie {
    /// The set being transformed goes first (the committed side's view).
    Before,
    /// The other set goes first (the incoming side's view: committed wins).
    After,
}

/// `set` rewritten to apply after `over` (both made on one text), by the gap
/// picture of the module docs.
fn transform_side(set: &ChangeSet, over: &ChangeSet, tie: Tie) -> ChangeSet {
    let mut gaps: Vec<usize> = set
        .changes
        .iter()
        .chain(&over.changes)
        .flat_map(|c| [c.from, c.to])
        .collect();
    gaps.sort_unstable();
    gaps.dedup();
    let (mut mine, mut theirs) = (GapCursor::new(&set.changes), GapCursor::new(&over.changes));
    let mut out = Builder::default();
    out.retain(gaps.first().copied().unwrap_or(0));
    for (k, &gap) in gaps.iter().enumerate() {
        let my_text = mine.starting_at(gap);
        let their_len: usize = theirs
            .starting_at(gap)
            .iter()
            .map(|c| utf16_len(&c.insert))
            .sum();
        if tie == Tie::After {
            out.retain(their_len);
        }
        my_text.iter().for_each(|c| out.insert(&c.insert));
        if tie == Tie::Before {
            out.retain(their_len);
        }
        let Some(&next) = gaps.get(k + 1) else { break };
        match (mine.deletes(gap), theirs.deletes(gap)) {
            (_, true) => {}
            (true, false) => out.delete(next - gap),
            (false, false) => out.retain(next - gap),
        }
    }
    out.finish()
}

/// Walks one side's changes gap by gap, in ascending gaps.
struct GapCursor<'a> {
    changes: &'a [Change],
    next: usize,
    deleting_to: usize,
}

impl<'a> GapCursor<'a> {
    fn new(changes: &'a [Change]) -> Self {
        Self {
            changes,
            next: 0,
            deleting_to: 0,
        }
    }

    /// The changes whose text goes at `gap` (they start there), in order.
    fn starting_at(&mut self, gap: usize) -> &'a [Change] {
        let start = self.next;
        while self.changes.get(self.next).is_some_and(|c| c.from == gap) {
            self.deleting_to = self.deleting_to.max(self.changes[self.next].to);
            self.next += 1;
        }
        &self.changes[start..self.next]
    }

    /// Whether this side deletes the original text right after `gap`.
    fn deletes(&self, gap: usize) -> bool {
        self.deleting_to > gap
    }
}

/// Builds a canonical set from retain / delete / insert steps: drops empty
/// steps and merges only where no inserted text changes gap (module docs).
#[derive(Default)]
struct Builder {
    pos: usize,
    changes: Vec<Change>,
}

impl Builder {
    fn retain(&mut self, n: usize) {
        self.pos += n;
    }

    fn delete(&mut self, n: usize) {
        if n > 0 {
            self.push(self.pos + n, "");
            self.pos += n;
        }
    }

    fn insert(&mut self, s: &str) {
        if !s.is_empty() {
            self.push(self.pos, s);
        }
    }

    fn push(&mut self, to: usize, insert: &str) {
        match self.changes.last_mut() {
            Some(last) if last.to == self.pos && (insert.is_empty() || last.from == last.to) => {
                last.to = to;
                last.insert.push_str(insert);
            }
            _ => self.changes.push(Change {
                from: self.pos,
                to,
                insert: insert.to_owned(),
            }),
        }
    }

    fn finish(self) -> ChangeSet {
        ChangeSet {
            changes: self.changes,
        }
    }
}

/// An endless retain stands for the untouched rest of the text.
const ENDLESS: usize = usize::MAX;

/// A set read as the classic retain / delete / insert operation.
#[derive(Clone, Copy)]
enum Step<'a> {
    Retain(usize),
    Delete(usize),
    Insert(&'a str),
}

impl<'a> Step<'a> {
    /// UTF-16 length the step covers.
    fn len(self) -> usize {
        match self {
            Step::Retain(n) | Step::Delete(n) => n,
            Step::Insert(s) => utf16_len(s),
        }
    }

    /// What is left after the first `k` units, `None` when nothing is.
    fn after(self, k: usize) -> Option<Self> {
        let rest = match self {
            Step::Retain(ENDLESS) => return Some(self),
            Step::Retain(n) => Step::Retain(n - k),
            Step::Delete(n) => Step::Delete(n - k),
            Step::Insert(s) => Step::Insert(split_utf16(s, k).1),
        };
        (rest.len() > 0).then_some(rest)
    }
}

/// Steps of one set, then an endless retain.
struct Steps<'a> {
    changes: std::slice::Iter<'a, Change>,
    pending: Vec<Step<'a>>,
    pos: usize,
}

impl<'a> Steps<'a> {
    fn new(changes: &'a [Change]) -> Self {
        Self {
            changes: changes.iter(),
            pending: Vec::new(),
            pos: 0,
        }
    }

    fn next(&mut self) -> Step<'a> {
        loop {
            if let Some(step) = self.pending.pop() {
                if step.len() > 0 {
                    return step;
                }
                continue;
            }
            let Some(c) = self.changes.next() else {
                return Step::Retain(ENDLESS);
            };
            // Popped from the back: retain, then insert, then delete.
            self.pending.extend([
                Step::Delete(c.to - c.from),
                Step::Insert(&c.insert),
                Step::Retain(c.from - self.pos),
            ]);
            self.pos = c.to;
        }
    }
}

/// Split `s` after `k` UTF-16 units. A `k` inside a surrogate pair (which
/// valid inputs never give) keeps the whole character in the first part.
fn split_utf16(s: &str, k: usize) -> (&str, &str) {
    let mut unit = 0;
    for (byte, c) in s.char_indices() {
        if unit >= k {
            return s.split_at(byte);
        }
        unit += c.len_utf16();
    }
    (s, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(changes: &[(usize, usize, &str)]) -> ChangeSet {
        ChangeSet::new(
            changes
                .iter()
                .map(|&(from, to, insert)| Change {
                    from,
                    to,
                    insert: insert.to_owned(),
                })
                .collect(),
        )
        .expect("valid test changes")
    }

    fn run(text: &str, s: &ChangeSet) -> String {
        apply(text, s, usize::MAX).expect("applies")
    }

    /// Committed `a` then incoming `b` transformed: the server's text, checked
    /// against the other order so every pinned case also shows convergence.
    fn merged(text: &str, a: &ChangeSet, b: &ChangeSet) -> String {
        let (a2, b2) = transform_pair(a, b);
        let server = run(&run(text, a), &b2);
        assert_eq!(server, run(&run(text, b), &a2), "replicas diverge");
        server
    }

    #[test]
    fn positions_count_utf16_units() {
        let text = "a😀b";
        assert_eq!(utf16_len(text), 4);
        assert_eq!(run(text, &set(&[(1, 3, "x")])), "axb");
        assert_eq!(
            validate(&set(&[(2, 2, "x")]).into_changes(), text),
            Err(TextError::SplitsSurrogate {
                index: 0,
                position: 2
            })
        );
        assert_eq!(
            validate(&set(&[(0, 5, "")]).into_changes(), text).map_err(|e| e.reason()),
            Err("past_end")
        );
    }

    #[test]
    fn input_rules_name_each_reason() {
        let c = |from, to| Change {
            from,
            to,
            insert: "x".into(),
        };
        let reason =
            |changes: Vec<Change>| ChangeSet::new(changes).map(drop).map_err(|e| e.reason());
        assert_eq!(reason(vec![]), Err("empty"));
        assert_eq!(reason(vec![c(0, 0); MAX_CHANGES + 1]), Err("too_many"));
        assert_eq!(reason(vec![c(2, 1)]), Err("reversed"));
        assert_eq!(reason(vec![c(3, 4), c(1, 2)]), Err("out_of_order"));
        assert_eq!(reason(vec![c(1, 3), c(2, 4)]), Err("overlapping"));
        assert_eq!(reason(vec![c(1, 1), c(1, 1)]), Err("duplicate_insertion"));
        assert_eq!(reason(vec![c(1, 1), c(1, 2), c(2, 2)]), Ok(()));
    }

    #[test]
    fn the_source_limit_counts_utf8_bytes_of_the_result() {
        let s = set(&[(0, 0, "é")]);
        assert_eq!(apply("abc", &s, 5).as_deref(), Ok("éabc"));
        assert_eq!(
            apply("abc", &s, 4),
            Err(TextError::TooLarge { bytes: 5, max: 4 })
        );
    }

    #[test]
    fn insertions_at_one_spot_put_the_committed_text_first() {
        assert_eq!(
            merged("ab", &set(&[(1, 1, "C")]), &set(&[(1, 1, "I")])),
            "aCIb"
        );
    }

    #[test]
    fn a_position_inside_a_committed_deletion_moves_to_its_start() {
        let a = set(&[(1, 4, "")]);
        assert_eq!(transform(&set(&[(2, 2, "I")]), &a), set(&[(1, 1, "I")]));
        assert_eq!(merged("abcde", &a, &set(&[(3, 3, "I")])), "aIe");
    }

    #[test]
    fn an_incoming_deletion_loses_what_is_already_deleted() {
        let (a, b) = (set(&[(0, 3, "")]), set(&[(2, 5, "")]));
        assert_eq!(transform(&b, &a), set(&[(0, 2, "")]));
        assert_eq!(merged("abcdefg", &a, &b), "fg");
    }

    #[test]
    fn a_deletion_already_done_becomes_the_empty_set() {
        let b2 = transform(&set(&[(1, 2, "")]), &set(&[(0, 3, "")]));
        assert!(b2.is_empty());
        assert_eq!(serde_json::to_string(&b2).unwrap(), "[]");
    }

    #[test]
    fn a_replacement_whose_range_is_gone_becomes_an_insertion() {
        let b2 = transform(&set(&[(2, 3, "R")]), &set(&[(1, 4, "")]));
        assert_eq!(b2, set(&[(1, 1, "R")]));
    }

    #[test]
    fn committed_text_inside_an_incoming_deletion_survives() {
        let a = set(&[(2, 2, "C")]);
        let b2 = transform(&set(&[(1, 4, "")]), &a);
        assert_eq!(b2, set(&[(1, 2, ""), (3, 5, "")]));
        assert_eq!(merged("abcde", &a, &set(&[(1, 4, "")])), "aCe");
    }

    #[test]
    fn an_insertion_at_the_start_of_a_committed_replacement_goes_after_its_text() {
        assert_eq!(
            merged("abcd", &set(&[(1, 3, "XY")]), &set(&[(1, 1, "I")])),
            "aXYId"
        );
    }

    #[test]
    fn rebase_is_the_server_transform_seen_from_the_client() {
        let (pending, remote) = (set(&[(0, 0, "P")]), set(&[(0, 0, "R")]));
        let (remote2, pending2) = rebase(&pending, &remote);
        assert_eq!(pending2, transform(&pending, &remote));
        let local = run(&run("x", &pending), &remote2);
        assert_eq!(local, run(&run("x", &remote), &pending2));
        assert_eq!(local, "RPx");
    }

    #[test]
    fn transform_over_applies_committed_edits_in_order() {
        let steps = [set(&[(0, 0, "ab")]), set(&[(1, 1, "c")])];
        let b = set(&[(0, 1, "")]);
        let once = transform_over(&b, &steps);
        assert_eq!(once, transform(&transform(&b, &steps[0]), &steps[1]));
        assert_eq!(run(&run(&run("xy", &steps[0]), &steps[1]), &once), "acby");
    }

    #[test]
    fn compose_does_both_in_one_set() {
        let (a, b) = (set(&[(1, 1, "XYZ")]), set(&[(0, 2, ""), (3, 4, "Q")]));
        let c = compose(&a, &b);
        assert_eq!(run(&run("abc", &a), &b), "YQbc");
        assert_eq!(run("abc", &c), "YQbc");
        // "YQ" stays at gap 1, where `a` put its text.
        assert_eq!(c, set(&[(0, 1, ""), (1, 1, "YQ")]));
    }

    #[test]
    fn transformed_text_keeps_its_gap_for_later_transforms() {
        // "M" lands right after a kept "x" and a deleted stretch; merging it
        // into the deletion would move it before a committed "X" there.
        let (a1, a2) = (set(&[(1, 2, "")]), set(&[(1, 1, "X")]));
        let b = set(&[(0, 1, ""), (2, 2, "M")]);
        let once = transform(&b, &a1);
        assert_eq!(once, set(&[(0, 1, ""), (1, 1, "M")]));
        assert_eq!(run("xyz", &a1), "xz");
        assert_eq!(run(&run("xz", &a2), &transform(&once, &a2)), "XMz");
    }
}
