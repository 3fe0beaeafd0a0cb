//! Property tests of the character-level transform (`quire::notebook::text`)
//! and the generator of the fixture the JavaScript twin (`web/src/ot.js`) is
//! checked against.
//!
//! Texts mix ASCII, newlines, BMP and astral characters (surrogate pairs);
//! every inserted string starts with a marker character used nowhere else, so
//! "never lost, never duplicated" is a count. The merged text is compared with
//! an oracle that spells out DESIGN.md's rule unit by unit. A model of the
//! Jupiter protocol (one edit in flight per client, later ones composed,
//! remote ops rebased over both) checks clients end with the server's text
//! under any interleaving of typing, sending, serving and receiving.
//!
//! `QUIRE_WRITE_OT_FIXTURES=1 cargo test -p quire --test text_transform`
//! rewrites `web/test/fixtures/ot-cases.json`; without it the test fails when
//! the committed file differs from what this code computes.

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use quire::notebook::text::{
    apply, compose, rebase, transform, transform_over, transform_pair, utf16_len, validate, Change,
    ChangeSet,
};
use serde::{Deserialize, Serialize};

/// Characters of generated texts: one and two UTF-16 units, a newline.
const ALPHABET: &[char] = &['a', 'b', 'c', ' ', '\n', 'é', '中', '😀', '𝄞'];
/// First marker of each side's insertions (BMP and astral private use).
const MARK_A: u32 = 0xF0000;
const MARK_B: u32 = 0xE000;
const MARK_A2: u32 = 0xF1000;
const MARK_C: u32 = 0xE800;

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET), 0..=16).prop_map(String::from_iter)
}

/// Valid changes on `text`: 1 to 5 of them at character boundaries, each
/// insertion starting with its own marker `mark + i`.
fn changes_on(text: &str, mark: u32) -> impl Strategy<Value = ChangeSet> {
    let bounds = char_bounds(text);
    let n = bounds.len() - 1;
    let filler = prop::option::of(text_of_len(0..=2));
    prop::collection::vec((0..=n, 0..=n, filler), 1..=5)
        .prop_map(move |raw| build(&bounds, raw, mark))
}

fn text_of_len(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET), len).prop_map(String::from_iter)
}

/// Sort raw (char index, char index, insertion) triples into a valid set,
/// dropping what would overlap or repeat a pure insertion.
fn build(bounds: &[usize], raw: Vec<(usize, usize, Option<String>)>, mark: u32) -> ChangeSet {
    let mut raw: Vec<_> = raw
        .into_iter()
        .map(|(x, y, ins)| (x.min(y), x.max(y), ins))
        .collect();
    raw.sort_by_key(|r| (r.0, r.1));
    let mut changes: Vec<Change> = Vec::new();
    for (x, y, ins) in raw {
        let (from, to) = (bounds[x], bounds[y]);
        if let Some(prev) = changes.last() {
            let repeated_insertion = from == to && prev.from == prev.to && prev.to == from;
            if from < prev.to || repeated_insertion {
                continue;
            }
        }
        let insert = ins.map_or_else(String::new, |filler| {
            let marker = char::from_u32(mark + changes.len() as u32).expect("marker");
            format!("{marker}{filler}")
        });
        changes.push(Change { from, to, insert });
    }
    ChangeSet::new(changes).expect("generated changes are valid")
}

fn run(text: &str, set: &ChangeSet) -> String {
    apply(text, set, usize::MAX).expect("applies")
}

/// DESIGN.md's rule, spelled out: at every gap the committed text, then the
/// incoming text, then the original unit unless either side deleted it.
fn oracle(text: &str, committed: &ChangeSet, incoming: &ChangeSet) -> String {
    let units: Vec<u16> = text.encode_utf16().collect();
    let deleted = |set: &ChangeSet, u: usize| set.changes().iter().any(|c| c.from <= u && u < c.to);
    let inserted = |set: &ChangeSet, g: usize, out: &mut Vec<u16>| {
        let here = set.changes().iter().filter(|c| c.from == g);
        out.extend(here.flat_map(|c| c.insert.encode_utf16()));
    };
    let mut out = Vec::new();
    for g in 0..=units.len() {
        inserted(committed, g, &mut out);
        inserted(incoming, g, &mut out);
        if g < units.len() && !deleted(committed, g) && !deleted(incoming, g) {
            out.push(units[g]);
        }
    }
    String::from_utf16(&out).expect("the rule never splits a surrogate pair")
}

/// A result set must be valid where it applies: sorted, in range, on
/// character boundaries (an empty set is the one allowed exception).
fn assert_valid_on(set: &ChangeSet, text: &str) {
    if !set.is_empty() {
        assert_eq!(validate(set.changes(), text), Ok(()), "{set:?} on {text:?}");
    }
}

fn inserts(set: &ChangeSet) -> impl Iterator<Item = &str> {
    set.changes()
        .iter()
        .map(|c| c.insert.as_str())
        .filter(|s| !s.is_empty())
}

/// A text, a committed edit and a concurrent incoming edit on it.
fn concurrent() -> impl Strategy<Value = (String, ChangeSet, ChangeSet)> {
    text().prop_flat_map(|t| {
        let (a, b) = (changes_on(&t, MARK_A), changes_on(&t, MARK_B));
        (Just(t), a, b)
    })
}

/// A text, an edit and a second edit made on the first one's result.
fn sequential(mark: u32) -> impl Strategy<Value = (String, ChangeSet, ChangeSet)> {
    text()
        .prop_flat_map(|t| {
            let a = changes_on(&t, MARK_A);
            (Just(t), a)
        })
        .prop_flat_map(move |(t, a)| {
            let next = changes_on(&run(&t, &a), mark);
            (Just(t), Just(a), next)
        })
}

/// Two committed edits in commit order and an incoming edit on the first text.
fn two_committed() -> impl Strategy<Value = (String, ChangeSet, ChangeSet, ChangeSet)> {
    sequential(MARK_A2).prop_flat_map(|(t, a1, a2)| {
        let b = changes_on(&t, MARK_B);
        (Just(t), Just(a1), Just(a2), b)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn both_orders_converge_on_the_designed_text((t, a, b) in concurrent()) {
        let (a2, b2) = transform_pair(&a, &b);
        prop_assert_eq!(&b2, &transform(&b, &a));
        let (ta, tb) = (run(&t, &a), run(&t, &b));
        assert_valid_on(&b2, &ta);
        assert_valid_on(&a2, &tb);
        let merged = run(&ta, &b2);
        prop_assert_eq!(&merged, &run(&tb, &a2));
        prop_assert_eq!(&merged, &oracle(&t, &a, &b));
    }

    #[test]
    fn every_insertion_survives_exactly_once((t, a, b) in concurrent()) {
        let merged = run(&run(&t, &a), &transform(&b, &a));
        for ins in inserts(&a).chain(inserts(&b)) {
            prop_assert_eq!(merged.matches(ins).count(), 1, "{:?} in {:?}", ins, merged);
        }
        let markers = merged.chars().filter(|c| ('\u{E000}'..='\u{F8FF}').contains(c)
            || *c >= '\u{F0000}').count();
        prop_assert_eq!(markers, inserts(&a).chain(inserts(&b)).count());
    }

    #[test]
    fn transforming_over_a_sequence_is_transforming_step_by_step(
        (t, a1, a2, b) in two_committed()
    ) {
        let over = transform_over(&b, [&a1, &a2]);
        prop_assert_eq!(&over, &transform(&transform(&b, &a1), &a2));
        prop_assert_eq!(&over, &transform(&b, &compose(&a1, &a2)));
        assert_valid_on(&over, &run(&run(&t, &a1), &a2));
    }

    #[test]
    fn compose_does_what_applying_both_does((t, a, b) in sequential(MARK_C)) {
        let c = compose(&a, &b);
        assert_valid_on(&c, &t);
        prop_assert_eq!(run(&t, &c), run(&run(&t, &a), &b));
    }
}

/// DESIGN.md's input rules read literally, on UTF-16 units.
fn valid_by_the_letter(changes: &[Change], units: &[u16]) -> bool {
    let on_boundary = |p: usize| {
        p <= units.len() && !(0 < p && p < units.len() && (0xDC00..=0xDFFF).contains(&units[p]))
    };
    let sorted = changes.windows(2).all(|w| {
        let pure = |c: &Change| c.from == c.to;
        w[0].to <= w[1].from && !(pure(&w[0]) && pure(&w[1]) && w[0].from == w[1].from)
    });
    (1..=1000).contains(&changes.len())
        && sorted
        && changes
            .iter()
            .all(|c| c.from <= c.to && on_boundary(c.from) && on_boundary(c.to))
}

/// Apply by splicing UTF-16 units, back to front.
fn splice(units: &[u16], changes: &[Change]) -> String {
    let mut out = units.to_vec();
    for c in changes.iter().rev() {
        out.splice(c.from..c.to, c.insert.encode_utf16());
    }
    String::from_utf16(&out).expect("valid changes keep pairs whole")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn validate_and_apply_follow_the_rules_to_the_letter((t, changes) in raw_input()) {
        let units: Vec<u16> = t.encode_utf16().collect();
        let valid = valid_by_the_letter(&changes, &units);
        prop_assert_eq!(validate(&changes, &t).is_ok(), valid);
        if valid {
            let set = ChangeSet::new(changes.clone()).expect("valid");
            prop_assert_eq!(run(&t, &set), splice(&units, &changes));
        }
    }
}

/// Raw changes for a text not known yet: char indices are taken modulo the
/// number of character boundaries when the edit is made.
type RawChanges = Vec<(usize, usize, Option<String>)>;

/// One step of a run of the Jupiter protocol with a few clients.
#[derive(Debug, Clone)]
enum Step {
    /// A client types: the edit applies locally and joins its waiting edit.
    Type(usize, RawChanges),
    /// A client with nothing in flight sends its waiting edit.
    Send(usize),
    /// The server takes the next edit a client sent.
    Serve(usize),
    /// A client reads the next op the server broadcast to it.
    Receive(usize),
}

const CLIENTS: usize = 3;

fn step() -> impl Strategy<Value = Step> {
    let client = 0..CLIENTS;
    let raw = prop::collection::vec(
        (
            0..=24usize,
            0..=24usize,
            prop::option::of(text_of_len(0..=1)),
        ),
        1..=3,
    );
    prop_oneof![
        2 => (client.clone(), raw).prop_map(|(c, r)| Step::Type(c, r)),
        1 => client.clone().prop_map(Step::Send),
        1 => client.clone().prop_map(Step::Serve),
        2 => client.prop_map(Step::Receive),
    ]
}

/// A client's side: its text, the server version it has seen, the edit in
/// flight (on that version) and the local edits waiting behind it, composed.
#[derive(Default)]
struct Client {
    text: String,
    version: usize,
    in_flight: Option<ChangeSet>,
    waiting: Option<ChangeSet>,
    outbox: std::collections::VecDeque<(usize, ChangeSet)>,
    inbox: std::collections::VecDeque<(usize, ChangeSet)>,
}

/// The server: the text and every committed edit, in order.
struct Session {
    text: String,
    log: Vec<ChangeSet>,
    clients: Vec<Client>,
    next_mark: u32,
}

impl Session {
    fn new(text: String) -> Self {
        let clients = (0..CLIENTS)
            .map(|_| Client {
                text: text.clone(),
                ..Client::default()
            })
            .collect();
        Self {
            text,
            log: Vec::new(),
            clients,
            next_mark: 0x10_0000,
        }
    }

    fn run(&mut self, step: Step) {
        match step {
            Step::Type(c, raw) => self.type_in(c, raw),
            Step::Send(c) => self.send(c),
            Step::Serve(c) => self.serve(c),
            Step::Receive(c) => self.receive(c),
        }
    }

    fn type_in(&mut self, c: usize, raw: RawChanges) {
        let client = &mut self.clients[c];
        let bounds = char_bounds(&client.text);
        let n = bounds.len();
        let raw = raw
            .into_iter()
            .map(|(x, y, ins)| (x % n, y % n, ins))
            .collect();
        let edit = build(&bounds, raw, self.next_mark);
        self.next_mark += 8;
        client.text = run(&client.text, &edit);
        client.waiting = Some(match client.waiting.take() {
            Some(waiting) => compose(&waiting, &edit),
            None => edit,
        });
    }

    fn send(&mut self, c: usize) {
        let client = &mut self.clients[c];
        if client.in_flight.is_none() {
            if let Some(edit) = client.waiting.take() {
                client.outbox.push_back((client.version, edit.clone()));
                client.in_flight = Some(edit);
            }
        }
    }

    fn serve(&mut self, c: usize) {
        let Some((base, edit)) = self.clients[c].outbox.pop_front() else {
            return;
        };
        let edit = transform_over(&edit, &self.log[base..]);
        self.text = run(&self.text, &edit);
        self.log.push(edit.clone());
        for (i, client) in self.clients.iter_mut().enumerate() {
            // The author's copy stands for the ack.
            let author = if i == c { usize::MAX } else { c };
            client.inbox.push_back((author, edit.clone()));
        }
    }

    fn receive(&mut self, c: usize) {
        let client = &mut self.clients[c];
        let Some((author, remote)) = client.inbox.pop_front() else {
            return;
        };
        client.version += 1;
        if author == usize::MAX {
            client.in_flight = None;
            return;
        }
        let mut remote = remote;
        for pending in [&mut client.in_flight, &mut client.waiting] {
            if let Some(edit) = pending.take() {
                let (remote_after, edit_after) = rebase(&edit, &remote);
                remote = remote_after;
                *pending = Some(edit_after);
            }
        }
        client.text = run(&client.text, &remote);
    }

    /// Send, serve and receive everything still on its way.
    fn settle(&mut self) {
        while self
            .clients
            .iter()
            .any(|c| c.waiting.is_some() || !c.outbox.is_empty() || !c.inbox.is_empty())
        {
            for c in 0..CLIENTS {
                self.send(c);
                self.serve(c);
                while !self.clients[c].inbox.is_empty() {
                    self.receive(c);
                }
            }
        }
    }
}

fn char_bounds(text: &str) -> Vec<usize> {
    let mut bounds = vec![0];
    bounds.extend(text.chars().scan(0, |unit, c| {
        *unit += c.len_utf16();
        Some(*unit)
    }));
    bounds
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Clients typing, sending one edit at a time and rebasing what they have
    /// not had acknowledged end with the server's text, whatever the timing.
    #[test]
    fn clients_and_server_converge_under_any_interleaving(
        (t, steps) in (text(), prop::collection::vec(step(), 1..=40))
    ) {
        let mut session = Session::new(t);
        for step in steps {
            session.run(step);
        }
        session.settle();
        for client in &session.clients {
            prop_assert_eq!(&client.text, &session.text);
            prop_assert_eq!(client.version, session.log.len());
        }
    }
}

/// One fixture case: inputs and what Rust computes from them.
#[derive(Debug, Serialize, Deserialize)]
struct Case {
    text: String,
    /// Committed edit on `text`.
    a: ChangeSetJson,
    /// Incoming edit on `text`.
    b: ChangeSetJson,
    /// A second committed edit, on `apply(text, a)`.
    a2: ChangeSetJson,
    /// `transform(b, a)`.
    b_prime: ChangeSetJson,
    /// The committed edit as the incoming side applies it (`transform_pair`).
    a_prime: ChangeSetJson,
    /// `apply(apply(text, a), b_prime)`.
    result: String,
    /// `transform_over(b, [a, a2])`.
    b_over: ChangeSetJson,
    /// `compose(a, b_prime)`.
    composed: ChangeSetJson,
}

/// An input that is not a valid edit of `text` and why (or `ok`).
#[derive(Debug, Serialize, Deserialize)]
struct Check {
    text: String,
    changes: Vec<Change>,
    /// `TextError::reason`, or "ok".
    reason: String,
    /// `TextError::index`, when the error names a change.
    index: Option<usize>,
}

type ChangeSetJson = Vec<Change>;

const CASES: usize = 600;
const CHECKS: usize = 300;
const SEED: [u8; 32] = *b"quire ot fixture, seed number 1!";

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web/test/fixtures/ot-cases.json")
}

fn case((text, a, a2, b): (String, ChangeSet, ChangeSet, ChangeSet)) -> Case {
    let (a_prime, b_prime) = transform_pair(&a, &b);
    let result = run(&run(&text, &a), &b_prime);
    Case {
        b_over: transform_over(&b, [&a, &a2]).into_changes(),
        composed: compose(&a, &b_prime).into_changes(),
        text,
        a: a.into_changes(),
        b: b.into_changes(),
        a2: a2.into_changes(),
        b_prime: b_prime.into_changes(),
        a_prime: a_prime.into_changes(),
        result,
    }
}

/// Raw change lists (any order, any unit position up to one past the end,
/// sometimes none) to pin every `invalid_op` reason; [`fixture`] adds one
/// list that is too long.
fn raw_input() -> impl Strategy<Value = (String, Vec<Change>)> {
    text().prop_flat_map(|t| {
        let max = utf16_len(&t) + 1;
        // Mostly `from <= to` and non-empty, so the later rules get their turn.
        let change =
            (0..=max, 0..=max, 0..8u8, text_of_len(0..=1)).prop_map(|(x, y, reversed, insert)| {
                let (from, to) = if reversed == 0 {
                    (x, y)
                } else {
                    (x.min(y), x.max(y))
                };
                Change { from, to, insert }
            });
        let count = prop_oneof![1 => Just(0), 9 => 1..=3usize];
        let change = change.boxed();
        let changes = count.prop_flat_map(move |n| prop::collection::vec(change.clone(), n));
        (Just(t), changes)
    })
}

fn check((text, changes): (String, Vec<Change>)) -> Check {
    let outcome = validate(&changes, &text);
    Check {
        reason: outcome
            .as_ref()
            .map_or_else(|e| e.reason().to_owned(), |()| "ok".to_owned()),
        index: outcome.err().and_then(|e| e.index()),
        text,
        changes,
    }
}

fn draw<S: Strategy>(strategy: &S, runner: &mut TestRunner) -> S::Value {
    strategy.new_tree(runner).expect("generates").current()
}

/// The fixture text: one case per line so a diff shows which cases changed.
fn fixture() -> String {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &SEED);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let cases = two_committed();
    let lines: Vec<String> = (0..CASES)
        .map(|_| case(draw(&cases, &mut runner)))
        .map(|c| serde_json::to_string(&c).expect("serializes"))
        .collect();
    let too_many = (
        String::new(),
        vec![
            Change {
                from: 0,
                to: 0,
                insert: String::new()
            };
            1001
        ],
    );
    let checks: Vec<String> = (0..CHECKS)
        .map(|_| check(draw(&raw_input(), &mut runner)))
        .chain([check(too_many)])
        .map(|c| serde_json::to_string(&c).expect("serializes"))
        .collect();
    format!(
        "{{\"cases\":[\n{}\n],\n\"checks\":[\n{}\n]}}\n",
        lines.join(",\n"),
        checks.join(",\n")
    )
}

#[test]
fn the_javascript_fixture_is_what_rust_computes() {
    let expected = fixture();
    let path = fixture_path();
    if std::env::var_os("QUIRE_WRITE_OT_FIXTURES").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&path, &expected).expect("write fixture");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "{} is stale: rerun with QUIRE_WRITE_OT_FIXTURES=1",
        path.display()
    );
    let parsed: serde_json::Value = serde_json::from_str(&committed).expect("valid JSON");
    let reasons: std::collections::BTreeSet<&str> = parsed["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["reason"].as_str())
        .collect();
    let all = [
        "ok",
        "empty",
        "too_many",
        "reversed",
        "out_of_order",
        "overlapping",
        "duplicate_insertion",
        "past_end",
        "splits_surrogate",
    ];
    assert!(
        all.iter().all(|r| reasons.contains(r)),
        "the checks cover every reason: {reasons:?}"
    );
}
