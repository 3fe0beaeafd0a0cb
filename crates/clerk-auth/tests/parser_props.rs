//! Property tests of the token parser, bounded for CI (a fixed, modest case
//! count per property; no timing assertions).
//!
//! Every input goes through the real entry point, `Verifier::verify_at`, with
//! a PEM-mode verifier (no network) and a clock frozen when the fixture token
//! was minted. Properties:
//!
//! - (a) arbitrary strings, lossily decoded bytes, dotted base64url-ish
//!   segments and mutations of a valid token never panic and are never
//!   accepted, except the untouched valid token itself;
//! - (b) any change to the signing input of a valid token (raw byte edits, or
//!   re-encoded forged claims/headers) is refused, and refused before a single
//!   claim is read;
//! - (c) a token longer than `MAX_TOKEN_BYTES` is always `TooLarge` (and a
//!   token within the cap never is).

use std::sync::OnceLock;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clerk_auth::testing::ClerkStandIn;
use clerk_auth::{
    AuthError, KeySource, Principal, Verifier, VerifierConfig, MAX_TOKEN_BYTES,
    SESSION_TOKEN_CATEGORY,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::{json, Map, Value};

/// Cases per property: enough to be useful, a few seconds in a debug build.
const CASES: u32 = 512;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        // Keep a failing run bounded too.
        max_shrink_time: 30_000,
        ..ProptestConfig::default()
    }
}

/// Built once: the stand-in, a PEM-mode verifier, a current-thread runtime,
/// and one valid long-lived token with its pieces.
struct Fixture {
    standin: ClerkStandIn,
    verifier: Verifier,
    rt: tokio::runtime::Runtime,
    /// "Now" for every verification: the moment the token was minted.
    now: SystemTime,
    token: String,
    header_b64: String,
    payload_b64: String,
    sig_b64: String,
    /// Decoded claims of `token`, in their serialized order.
    claims: Map<String, Value>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let standin = ClerkStandIn::new();
        let config = VerifierConfig {
            issuer: Some(standin.issuer()),
            ..VerifierConfig::default()
        };
        let verifier =
            Verifier::new(KeySource::Pem(standin.public_key_pem()), config).expect("PEM verifier");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime");
        let now = SystemTime::now();
        let token = standin.token("user_props").lifetime(3600).sign();
        let mut parts = token.split('.').map(str::to_owned);
        let (header_b64, payload_b64, sig_b64) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let claims = match serde_json::from_slice(&b64d(&payload_b64)).expect("claims JSON") {
            Value::Object(map) => map,
            other => panic!("claims are not an object: {other}"),
        };
        Fixture {
            standin,
            verifier,
            rt,
            now,
            token,
            header_b64,
            payload_b64,
            sig_b64,
            claims,
        }
    })
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn b64d(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).expect("base64url")
}

fn verify(token: &str) -> Result<Principal, AuthError> {
    let fx = fixture();
    fx.rt.block_on(fx.verifier.verify_at(token, fx.now))
}

/// Refusals that happen before the signature check (size, shape, header) or
/// at it. Everything else (claims errors, key/network errors) is impossible
/// for a token that was not signed by the key, in PEM mode.
fn refused_before_claims(e: &AuthError) -> bool {
    matches!(
        e,
        AuthError::TooLarge
            | AuthError::Malformed(_)
            | AuthError::DuplicateMember("header")
            | AuthError::BadAlgorithm
            | AuthError::AlgNone
            | AuthError::MissingKid
            | AuthError::KidTooLong
            | AuthError::BadType
            | AuthError::ForbiddenHeader(_)
            | AuthError::NotSessionToken
            | AuthError::BadSignature
    )
}

/// The invariant shared by every property: only the untouched valid token is
/// accepted; everything else is refused no later than the signature check;
/// `TooLarge` exactly when the token exceeds the cap. Returns the refusal.
fn check(token: &str) -> Result<Option<AuthError>, TestCaseError> {
    let fx = fixture();
    let result = verify(token);
    if token == fx.token {
        prop_assert!(result.is_ok(), "the valid token was refused: {result:?}");
        return Ok(None);
    }
    let err = match result {
        Ok(p) => {
            return Err(TestCaseError::fail(format!(
                "accepted a token that is not the minted one: {token:?} -> {p:?}"
            )))
        }
        Err(e) => e,
    };
    prop_assert!(
        refused_before_claims(&err),
        "refused too late ({err:?}): the payload was read before the signature checked out"
    );
    prop_assert_eq!(
        err == AuthError::TooLarge,
        token.len() > MAX_TOKEN_BYTES,
        "TooLarge must mean exactly len > {}; len = {}, err = {:?}",
        MAX_TOKEN_BYTES,
        token.len(),
        err
    );
    Ok(Some(err))
}

// ----- generators -----

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A byte for edits: mostly one that survives the alphabet check (base64url
/// or the dot), sometimes anything at all.
fn edit_byte() -> impl Strategy<Value = u8> {
    let mut friendly = B64URL.to_vec();
    friendly.push(b'.');
    prop_oneof![4 => select(friendly), 1 => any::<u8>()]
}

#[derive(Clone, Debug)]
enum Edit {
    /// Replace a byte (no-op if it is the same byte).
    Replace(Index, u8),
    /// Flip bits of a byte (mask never 0).
    Flip(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    /// Keep a strict prefix.
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), edit_byte()).prop_map(|(i, b)| Edit::Replace(i, b)),
        (any::<Index>(), 1u8..=255).prop_map(|(i, m)| Edit::Flip(i, m)),
        (any::<Index>(), edit_byte()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<Index>().prop_map(Edit::Delete),
        any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let len = bytes.len();
    match *edit {
        Edit::Insert(i, b) => bytes.insert(i.index(len + 1), b),
        _ if len == 0 => {}
        Edit::Replace(i, b) => bytes[i.index(len)] = b,
        Edit::Flip(i, m) => bytes[i.index(len)] ^= m,
        Edit::Delete(i) => {
            bytes.remove(i.index(len));
        }
        Edit::Truncate(i) => bytes.truncate(i.index(len)),
    }
}

/// Applies `edits` to `s`; invalid UTF-8 is turned into a string lossily
/// (the result then differs from any ASCII token, as it should).
fn edited(s: &str, edits: &[Edit]) -> String {
    let mut bytes = s.as_bytes().to_vec();
    for e in edits {
        apply(&mut bytes, e);
    }
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A JSON value of any small shape, for forged claims and header members.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::from),
            vec(("[a-z]{1,4}", inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A JWS header as raw JSON text, close enough to Clerk's to reach every
/// header rule: alg/kid/typ/cat variants, forbidden members, duplicates.
fn header_json() -> impl Strategy<Value = String> {
    let kid = fixture().standin.kid();
    let alg = prop_oneof![
        6 => Just(json!("RS256")),
        1 => select(vec!["HS256", "none", "rs256", "RS512", "PS256", "ES256", ""]).prop_map(Value::from),
        1 => json_value(),
    ];
    let kid = prop::option::weighted(
        0.85,
        prop_oneof![
            6 => Just(json!(kid)),
            1 => Just(json!("")),
            1 => "[a-z0-9_]{120,136}".prop_map(Value::from),
            1 => json_value(),
        ],
    );
    let typ = prop::option::of(prop_oneof![3 => Just(json!("JWT")), 1 => json_value()]);
    let cat = prop::option::of(prop_oneof![
        3 => Just(json!(SESSION_TOKEN_CATEGORY)),
        1 => json_value(),
    ]);
    let names = vec![
        "crit", "cty", "zip", "jku", "x5u", "jwk", "x5c", "alg", "kid", "typ", "oiat", "b64",
    ];
    let extra = prop_oneof![
        2 => Just(Vec::new()),
        1 => vec((select(names), json_value()), 1..3),
    ];
    (alg, kid, typ, cat, extra, select(vec!["", " ", "\n"])).prop_map(
        |(alg, kid, typ, cat, extra, ws)| {
            let mut members = vec![("alg".to_owned(), alg)];
            for (name, v) in [("kid", kid), ("typ", typ), ("cat", cat)] {
                if let Some(v) = v {
                    members.push((name.to_owned(), v));
                }
            }
            members.extend(extra.into_iter().map(|(n, v)| (n.to_owned(), v)));
            let body: Vec<String> = members
                .iter()
                .map(|(n, v)| format!("{}:{ws}{v}", json!(n)))
                .collect();
            format!("{{{ws}{}{ws}}}", body.join(","))
        },
    )
}

/// One base64url-ish segment: random alphabet runs, near-misses (padding,
/// standard-alphabet characters), real segments of the valid token, encoded
/// random bytes and encoded headers.
fn segment() -> impl Strategy<Value = String> {
    let fx = fixture();
    prop_oneof![
        4 => "[A-Za-z0-9_-]{0,64}",
        1 => "[A-Za-z0-9_+/=-]{0,16}",
        1 => Just(fx.header_b64.clone()),
        1 => Just(fx.payload_b64.clone()),
        1 => Just(fx.sig_b64.clone()),
        2 => vec(any::<u8>(), 0..300).prop_map(b64),
        3 => header_json().prop_map(b64),
    ]
}

/// A string longer than the cap, of various make-ups.
fn oversized() -> impl Strategy<Value = String> {
    let fx = fixture();
    let cap = MAX_TOKEN_BYTES;
    prop_oneof![
        // Arbitrary text padded with a filler (ASCII, dot, 2- and 4-byte chars).
        (
            ".{0,64}",
            select(vec!["A", ".", "é", "😀", "\0"]),
            1usize..4096
        )
            .prop_map(move |(prefix, fill, extra)| {
                let mut s = prefix;
                while s.len() < cap + extra {
                    s.push_str(fill);
                }
                s
            }),
        // The real header and signature around a huge, well-encoded payload.
        vec(any::<u8>(), 6_000..9_000)
            .prop_map(|bytes| { format!("{}.{}.{}", fx.header_b64, b64(bytes), fx.sig_b64) }),
        // The valid token with trailing segments or junk.
        (select(vec![".", "", "A", "=="]), 1usize..4096).prop_map(move |(sep, extra)| {
            let room = cap - fx.token.len() - sep.len() + extra;
            format!("{}{sep}{}", fx.token, "A".repeat(room))
        }),
    ]
    .prop_filter("longer than the cap", move |s| s.len() > cap)
}

// ----- properties -----

proptest! {
    #![proptest_config(config())]

    /// (a) arbitrary strings.
    #[test]
    fn arbitrary_strings_are_refused(s in any::<String>()) {
        check(&s)?;
    }

    /// (a) printable ASCII with many dots, closer to the token alphabet.
    #[test]
    fn ascii_strings_are_refused(s in "[ -~]{0,400}") {
        check(&s)?;
    }

    /// (a) arbitrary bytes, lossily decoded.
    #[test]
    fn arbitrary_bytes_are_refused(bytes in vec(any::<u8>(), 0..600)) {
        check(&String::from_utf8_lossy(&bytes))?;
    }

    /// (a) one to five base64url-ish segments joined by dots (half of the
    /// cases with exactly three, so they get past the shape check).
    #[test]
    fn dotted_segments_are_refused(
        segments in prop_oneof![vec(segment(), 1..=5), vec(segment(), 3)],
    ) {
        // Three segments that are the valid token's own pieces, in order,
        // are the valid token; `check` expects exactly that to pass.
        check(&segments.join("."))?;
    }

    /// (a) byte flips, replacements, insertions, deletions and truncations of
    /// a valid token: accepted only if the edits cancel out.
    #[test]
    fn edited_tokens_are_refused(edits in vec(edit(), 1..=3)) {
        let fx = fixture();
        check(&edited(&fx.token, &edits))?;
    }

    /// (b) raw edits confined to the signing input (header "." payload),
    /// original signature kept.
    #[test]
    fn edited_signing_input_is_refused(edits in vec(edit(), 1..=3)) {
        let fx = fixture();
        let input = format!("{}.{}", fx.header_b64, fx.payload_b64);
        check(&format!("{}.{}", edited(&input, &edits), fx.sig_b64))?;
    }

    /// (b) forged claims: one claim set, changed or removed, payload
    /// re-encoded correctly, header and signature kept. The header is intact
    /// and the encoding canonical, so the signature check is what refuses it.
    #[test]
    fn forged_claims_are_refused(
        name in select(vec!["sub", "sid", "exp", "nbf", "iat", "iss", "azp", "sts", "v", "o", "aud", "act", "extra"]),
        value in prop::option::of(json_value()),
    ) {
        let fx = fixture();
        let mut claims = fx.claims.clone();
        match value {
            Some(v) => { claims.insert(name.to_owned(), v); }
            None => { claims.shift_remove(name); }
        }
        let payload = Value::Object(claims).to_string();
        let token = format!("{}.{}.{}", fx.header_b64, b64(&payload), fx.sig_b64);
        if let Some(err) = check(&token)? {
            prop_assert_eq!(err, AuthError::BadSignature);
        }
    }

    /// (b) forged headers with the original payload and signature: refused
    /// by a header rule or, if the header passes, by the signature.
    #[test]
    fn forged_headers_are_refused(header in header_json()) {
        let fx = fixture();
        check(&format!("{}.{}.{}", b64(&header), fx.payload_b64, fx.sig_b64))?;
    }

    /// (c) anything longer than the cap is `TooLarge`, whatever it contains.
    #[test]
    fn oversized_tokens_are_too_large(token in oversized()) {
        prop_assert_eq!(verify(&token).err(), Some(AuthError::TooLarge));
    }
}

// ----- fixed examples -----

#[test]
fn the_valid_token_verifies() {
    let fx = fixture();
    let principal = verify(&fx.token).expect("valid token");
    assert_eq!(principal.user_id, "user_props");
}

/// (c) at the boundary, with genuinely signed tokens: exactly
/// `MAX_TOKEN_BYTES` is verified normally, one byte more is `TooLarge`.
#[test]
fn size_cap_boundary_with_signed_tokens() {
    let fx = fixture();
    let kid = fx.standin.kid();
    let mut claims = fx.claims.clone();
    claims.insert("pad".to_owned(), json!(""));
    let sig_len = fx.sig_b64.len();
    let b64_len = |n: usize| (n * 4).div_ceil(3);
    for target in [MAX_TOKEN_BYTES, MAX_TOKEN_BYTES + 1] {
        // Find header whitespace and a pad length that land exactly on target.
        let (header, payload) = (0..4)
            .find_map(|spaces| {
                let header = format!(
                    r#"{{"alg":"RS256","cat":"{SESSION_TOKEN_CATEGORY}","kid":"{kid}",{}"typ":"JWT"}}"#,
                    " ".repeat(spaces)
                );
                let fixed = b64_len(header.len()) + 2 + sig_len;
                (0..target).find_map(|pad| {
                    let mut c = claims.clone();
                    c.insert("pad".to_owned(), json!("x".repeat(pad)));
                    let payload = Value::Object(c).to_string();
                    let total = fixed + b64_len(payload.len());
                    (total == target).then(|| (header.clone(), payload))
                })
            })
            .expect("a header/pad combination of the target length");
        let token = fx.standin.sign_raw(&header, &payload);
        assert_eq!(token.len(), target);
        let result = verify(&token);
        if target <= MAX_TOKEN_BYTES {
            assert_eq!(
                result.expect("signed token at the cap").user_id,
                "user_props"
            );
        } else {
            assert_eq!(result.err(), Some(AuthError::TooLarge));
        }
    }
}
