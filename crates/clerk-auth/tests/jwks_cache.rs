//! Black-box suite of the JWKS cache, through the verifier: rotation,
//! retirement, refetch cooldown, single flight, outages and hostile JWKS.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clerk_auth::config::JwksOptions;
use clerk_auth::testing::{ClerkStandIn, Endpoint, Fault, Gate};
use clerk_auth::{
    AuthError, Clock, KeySource, PublicCode, Verifier, VerifierConfig, SESSION_TOKEN_CATEGORY,
};
use rsa::pkcs1v15::SigningKey;
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

const USER: &str = "user_2alice";
/// Hang guard for calls that must not block forever.
const HANG_GUARD: Duration = Duration::from_secs(5);

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn config(jwks: JwksOptions) -> VerifierConfig {
    VerifierConfig {
        jwks,
        ..VerifierConfig::default()
    }
}

fn options(f: impl FnOnce(&mut JwksOptions)) -> JwksOptions {
    let mut o = JwksOptions::default();
    f(&mut o);
    o
}

fn verifier_for(api_url: &str, secret: &str, config: VerifierConfig) -> Verifier {
    Verifier::new(
        KeySource::Jwks {
            api_url: api_url.to_string(),
            secret_key: secret.to_string().into(),
        },
        config,
    )
    .unwrap()
}

/// A served stand-in and a JWKS verifier for it, sharing a test clock
/// (`standin.clock()`) that the tests move instead of sleeping.
async fn setup(config: VerifierConfig) -> (ClerkStandIn, Verifier) {
    let standin = ClerkStandIn::new();
    let clock = Clock::test();
    standin.set_clock(clock.clone());
    let api_url = standin.serve().await;
    let config = VerifierConfig { clock, ..config };
    let verifier = verifier_for(&api_url, &standin.secret_key(), config);
    (standin, verifier)
}

fn random_kid() -> String {
    let mut bytes = [0u8; 12];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    format!(
        "ins_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// The stand-in's current key as a JWK (from its PEM, no network).
fn jwk_of(standin: &ClerkStandIn) -> Value {
    let block = pem::parse(standin.public_key_pem()).unwrap();
    let public = aws_lc_rs::rsa::PublicKey::from_der(block.contents()).unwrap();
    json!({
        "use": "sig", "kty": "RSA", "kid": standin.kid(), "alg": "RS256",
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    })
}

/// Within the cooldown a token under a new kid is `UnknownKid` (the refetch
/// is held back); once the cooldown has passed, it is accepted.
async fn accepted_after_cooldown(
    standin: &ClerkStandIn,
    verifier: &Verifier,
    token: &str,
    cooldown: Duration,
) {
    let before = standin.jwks_requests();
    assert_eq!(
        verifier.verify(token).await.unwrap_err(),
        AuthError::UnknownKid,
        "within the cooldown"
    );
    assert_eq!(
        standin.jwks_requests(),
        before,
        "no fetch within the cooldown"
    );
    standin.clock().advance(cooldown);
    verifier
        .verify(token)
        .await
        .expect("accepted after the cooldown");
}

fn assert_unavailable(result: Result<clerk_auth::Principal, AuthError>, what: &str) {
    match result {
        Err(e @ AuthError::KeysUnavailable(_)) => {
            assert_eq!(e.public_code(), PublicCode::AuthUnavailable)
        }
        other => panic!("{what}: want KeysUnavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn rotated_key_is_picked_up_after_the_cooldown() {
    let (standin, verifier) =
        setup(config(options(|o| o.cooldown = Duration::from_millis(200)))).await;
    let old_token = standin.token(USER).sign();
    verifier.verify(&old_token).await.unwrap();
    assert_eq!(standin.jwks_requests(), 1);

    let old_kid = standin.kid();
    let new_kid = standin.rotate_key();
    assert_ne!(old_kid, new_kid);
    let new_token = standin.token(USER).sign();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(new_token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], new_kid.as_str());

    accepted_after_cooldown(&standin, &verifier, &new_token, Duration::from_millis(200)).await;
    assert_eq!(standin.jwks_requests(), 2, "the new kid needed one fetch");
    assert_eq!(
        verifier.jwks().unwrap().fetch_count() as usize,
        standin.jwks_requests()
    );
    // The old key is still published (not retired), so its tokens still pass.
    verifier.verify(&old_token).await.unwrap();
}

#[tokio::test]
async fn retired_key_drops_out_after_a_fetch() {
    let (standin, verifier) =
        setup(config(options(|o| o.cooldown = Duration::from_millis(200)))).await;
    let old_kid = standin.kid();
    let old_token = standin.token(USER).sign();
    verifier.verify(&old_token).await.unwrap();

    standin.rotate_key();
    standin.retire_key(&old_kid);
    let new_token = standin.token(USER).sign();
    accepted_after_cooldown(&standin, &verifier, &new_token, Duration::from_millis(200)).await;

    // The fetch that brought the new key replaced the set: the old kid is gone.
    let err = verifier.verify(&old_token).await.unwrap_err();
    assert_eq!(err, AuthError::UnknownKid);
    assert_eq!(err.public_code(), PublicCode::InvalidToken);
}

#[tokio::test]
async fn ttl_refresh_drops_retired_key_for_the_refreshing_call_too() {
    let (standin, verifier) = setup(config(options(|o| {
        o.ttl = Duration::from_millis(300);
        o.cooldown = Duration::from_millis(100);
    })))
    .await;
    let old_kid = standin.kid();
    let old_token = standin.token(USER).sign();
    verifier.verify(&old_token).await.unwrap();
    assert_eq!(standin.jwks_requests(), 1);

    standin.rotate_key();
    standin.retire_key(&old_kid);
    // Within the TTL the known kid needs no fetch ...
    verifier.verify(&old_token).await.unwrap();
    assert_eq!(standin.jwks_requests(), 1);
    // ... past it (the TTL is what is under test), the known kid triggers a
    // refresh; that refresh succeeds without the kid, so the token is refused.
    standin.clock().advance(Duration::from_millis(300));
    assert_eq!(
        verifier.verify(&old_token).await.unwrap_err(),
        AuthError::UnknownKid
    );
    assert_eq!(standin.jwks_requests(), 2);
    assert_eq!(
        verifier.verify(&old_token).await.unwrap_err(),
        AuthError::UnknownKid
    );
    verifier.verify(&standin.token(USER).sign()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_kids_cause_at_most_one_fetch_per_cooldown() {
    // Default options: 30 s cooldown.
    let (standin, verifier) = setup(VerifierConfig::default()).await;
    verifier.verify(&standin.token(USER).sign()).await.unwrap();
    let before = standin.jwks_requests();
    assert_eq!(before, 1);

    let tokens: Vec<String> = (0..1000)
        .map(|_| {
            standin
                .token(USER)
                .header("kid", json!(random_kid()))
                .sign()
        })
        .collect();
    let results = futures::future::join_all(tokens.iter().map(|t| verifier.verify(t))).await;
    for r in &results {
        assert_eq!(r.as_ref().unwrap_err(), &AuthError::UnknownKid);
    }
    // And sequentially, too.
    for t in tokens.iter().take(100) {
        assert_eq!(verifier.verify(t).await.unwrap_err(), AuthError::UnknownKid);
    }
    let delta = standin.jwks_requests() - before;
    assert!(
        delta <= 1,
        "{delta} JWKS fetches for 1,100 unknown kids within one cooldown"
    );
    // Known keys are unaffected.
    verifier.verify(&standin.token(USER).sign()).await.unwrap();
}

#[tokio::test]
async fn unknown_kid_with_warm_cache_is_invalid_token() {
    let (standin, verifier) = setup(VerifierConfig::default()).await;
    verifier.verify(&standin.token(USER).sign()).await.unwrap();
    let err = verifier
        .verify(&standin.token(USER).header("kid", json!("ins_2nope")).sign())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::UnknownKid);
    assert_eq!(err.public_code(), PublicCode::InvalidToken);
    assert_eq!(err.reason(), "unknown_kid");
}

#[tokio::test]
async fn warm_cache_keeps_working_while_jwks_is_down() {
    let (standin, verifier) =
        setup(config(options(|o| o.cooldown = Duration::from_millis(100)))).await;
    verifier.verify(&standin.token(USER).sign()).await.unwrap();
    standin.set_jwks_fault(Fault::Status(503));

    for _ in 0..20 {
        verifier.verify(&standin.token(USER).sign()).await.unwrap();
    }
    // An unknown kid past the cooldown makes a (failing) fetch; the answer is
    // still "unknown kid" (401), not "unavailable", because keys exist.
    standin.clock().advance(Duration::from_millis(100));
    let before = standin.jwks_requests();
    let err = verifier
        .verify(&standin.token(USER).header("kid", json!("ins_2nope")).sign())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::UnknownKid);
    assert_eq!(
        standin.jwks_requests(),
        before + 1,
        "the unknown kid did try a fetch"
    );
    verifier.verify(&standin.token(USER).sign()).await.unwrap();
    assert!(verifier.jwks().unwrap().has_keys());
}

#[tokio::test]
async fn stale_cache_during_an_outage_keeps_working_without_a_fetch_storm() {
    // TTL short, cooldown default (30 s): once stale, refresh attempts during
    // an outage must still be bounded by the cooldown.
    let (standin, verifier) = setup(config(options(|o| o.ttl = Duration::from_millis(200)))).await;
    verifier.verify(&standin.token(USER).sign()).await.unwrap();
    standin.set_jwks_fault(Fault::Status(503));
    standin.clock().advance(Duration::from_millis(200));

    let before = standin.jwks_requests();
    for _ in 0..20 {
        verifier.verify(&standin.token(USER).sign()).await.unwrap();
    }
    let delta = standin.jwks_requests() - before;
    assert!(
        delta <= 1,
        "{delta} JWKS fetches for 20 requests within one cooldown"
    );
}

#[tokio::test]
async fn cold_start_with_jwks_down_is_unavailable_then_recovers() {
    let (standin, verifier) = setup(VerifierConfig::default()).await;
    standin.set_jwks_fault(Fault::Status(503));
    let token = standin.token(USER).sign();
    assert_unavailable(verifier.verify(&token).await, "cold, JWKS 503");
    assert!(matches!(
        verifier.ready().await,
        Err(AuthError::KeysUnavailable(_))
    ));
    assert!(standin.jwks_requests() >= 1);

    // Clerk comes back: a cold cache recovers after a short retry wait (1 s),
    // not a full cooldown (30 s); within the wait nobody refetches.
    standin.set_jwks_fault(Fault::None);
    let fetched = standin.jwks_requests();
    assert_unavailable(verifier.verify(&token).await, "within the retry wait");
    assert_eq!(standin.jwks_requests(), fetched);
    standin.clock().advance(Duration::from_secs(1));
    assert_eq!(verifier.verify(&token).await.unwrap().user_id, USER);
    verifier.ready().await.unwrap();
}

#[tokio::test]
async fn hanging_jwks_times_out_to_unavailable() {
    let (standin, verifier) =
        setup(config(options(|o| o.timeout = Duration::from_millis(300)))).await;
    standin.set_jwks_fault(Fault::Hang);
    let token = standin.token(USER).sign();
    let result = tokio::time::timeout(HANG_GUARD, verifier.verify(&token))
        .await
        .expect("verify hung on a hanging JWKS");
    assert_unavailable(result, "cold, JWKS hangs");
    assert_eq!(standin.jwks_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cold_callers_share_one_fetch() {
    let (standin, verifier) = setup(VerifierConfig::default()).await;
    // A held JWKS keeps the one fetch in flight while the others arrive.
    let gate = Gate::new();
    standin.set_jwks_fault(Fault::Held(gate.clone()));
    let token = Arc::new(standin.token(USER).sign());
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (verifier, token, barrier) = (verifier.clone(), token.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                verifier.verify(&token).await
            })
        })
        .collect();
    standin.wait_for_requests(Endpoint::Jwks, 1).await;
    gate.open();
    for task in tasks {
        let p = tokio::time::timeout(HANG_GUARD, task)
            .await
            .expect("hang")
            .expect("no panic")
            .unwrap();
        assert_eq!(p.user_id, USER);
    }
    assert_eq!(standin.jwks_requests(), 1);
    assert_eq!(verifier.jwks().unwrap().fetch_count(), 1);
}

#[tokio::test]
async fn garbage_or_huge_jwks_on_a_cold_cache_is_unavailable() {
    for (fault, name) in [(Fault::Garbage, "garbage"), (Fault::Huge, "huge")] {
        let (standin, verifier) = setup(VerifierConfig::default()).await;
        standin.set_jwks_fault(fault);
        let token = standin.token(USER).sign();
        // Spawned, so a panic inside the verifier shows up as a JoinError.
        let v = verifier.clone();
        let result = tokio::time::timeout(
            HANG_GUARD,
            tokio::spawn(async move { v.verify(&token).await }),
        )
        .await
        .unwrap_or_else(|_| panic!("{name}: hung"))
        .unwrap_or_else(|e| panic!("{name}: verifier panicked: {e}"));
        assert_unavailable(result, name);
        assert_eq!(standin.jwks_requests(), 1, "{name}");
        assert!(!verifier.jwks().unwrap().has_keys());
    }
}

#[tokio::test]
async fn wrong_secret_key_is_unavailable_not_invalid() {
    let standin = ClerkStandIn::new();
    let api_url = standin.serve().await;
    let verifier = verifier_for(
        &api_url,
        "sk_test_not_this_instance",
        VerifierConfig::default(),
    );
    assert_unavailable(
        verifier.verify(&standin.token(USER).sign()).await,
        "wrong secret",
    );
    assert_eq!(
        standin.jwks_requests(),
        1,
        "the request reached the stand-in and was refused"
    );
}

#[tokio::test]
async fn ready_loads_keys_once() {
    let (standin, verifier) = setup(VerifierConfig::default()).await;
    assert!(!verifier.jwks().unwrap().has_keys());
    verifier.ready().await.unwrap();
    assert_eq!(standin.jwks_requests(), 1);
    verifier.verify(&standin.token(USER).sign()).await.unwrap();
    verifier.ready().await.unwrap();
    assert_eq!(standin.jwks_requests(), 1);
}

/// Unusable JWKS entries, each under its own kid, plus a token for each that
/// would verify if the entry were taken.
struct Unusable {
    jwks: Vec<Value>,
    tokens: Vec<(&'static str, String)>,
}

fn unusable_entries(standin: &ClerkStandIn) -> Unusable {
    let real = jwk_of(standin);
    let with = |kid: &str, member: &str, value: Value| {
        let mut j = real.clone();
        j["kid"] = json!(kid);
        j[member] = value;
        j
    };
    let mut rng = rsa::rand_core::OsRng;
    let weak = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
    let weak_jwk = json!({
        "use": "sig", "kty": "RSA", "kid": "ins_weak", "alg": "RS256",
        "n": b64(weak.n().to_bytes_be()), "e": b64(weak.e().to_bytes_be()),
    });
    let weak_token = {
        let header =
            json!({"alg": "RS256", "cat": SESSION_TOKEN_CATEGORY, "kid": "ins_weak", "typ": "JWT"});
        let input = format!(
            "{}.{}",
            b64(header.to_string()),
            b64(standin.token(USER).claims().to_string())
        );
        let sig = SigningKey::<Sha256>::new(weak)
            .sign(input.as_bytes())
            .to_vec();
        format!("{input}.{}", b64(sig))
    };
    let real_key_as = |kid: &str| standin.token(USER).header("kid", json!(kid)).sign();
    Unusable {
        jwks: vec![
            json!({"kty": "EC", "use": "sig", "crv": "P-256", "kid": "ins_ec", "alg": "ES256",
                   "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                   "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}),
            with("ins_enc", "use", json!("enc")),
            with("ins_rs512", "alg", json!("RS512")),
            with("ins_oct", "kty", json!("oct")),
            weak_jwk,
            json!("not an object"),
            json!({"kty": "RSA", "kid": "ins_no_n", "e": "AQAB"}),
        ],
        tokens: vec![
            ("EC key", real_key_as("ins_ec")),
            ("use=enc", real_key_as("ins_enc")),
            ("alg RS512", real_key_as("ins_rs512")),
            ("kty oct", real_key_as("ins_oct")),
            ("1024-bit", weak_token),
            ("no n", real_key_as("ins_no_n")),
        ],
    }
}

#[tokio::test]
async fn jwks_with_only_unusable_entries_is_unavailable() {
    let standin = ClerkStandIn::new();
    let own_kid = standin.kid();
    let own_token = standin.token(USER).sign();
    let unusable = unusable_entries(&standin);
    for jwk in unusable.jwks {
        standin.add_raw_jwk(jwk);
    }
    standin.retire_key(&own_kid);
    let api_url = standin.serve().await;
    let verifier = verifier_for(&api_url, &standin.secret_key(), VerifierConfig::default());

    assert_unavailable(verifier.verify(&own_token).await, "retired own key");
    for (name, token) in &unusable.tokens {
        assert_unavailable(verifier.verify(token).await, name);
    }
    assert!(matches!(
        verifier.ready().await,
        Err(AuthError::KeysUnavailable(_))
    ));
    assert!(!verifier.jwks().unwrap().has_keys());
}

#[tokio::test]
async fn unusable_entries_are_skipped_one_by_one() {
    let standin = ClerkStandIn::new();
    let unusable = unusable_entries(&standin);
    for jwk in unusable.jwks {
        standin.add_raw_jwk(jwk);
    }
    let api_url = standin.serve().await;
    let verifier = verifier_for(&api_url, &standin.secret_key(), VerifierConfig::default());

    // The one good key is taken despite its junk neighbours ...
    verifier.verify(&standin.token(USER).sign()).await.unwrap();
    // ... and none of the junk is.
    for (name, token) in &unusable.tokens {
        assert_eq!(
            verifier.verify(token).await.unwrap_err(),
            AuthError::UnknownKid,
            "{name}"
        );
    }
    assert_eq!(standin.jwks_requests(), 1);
}
