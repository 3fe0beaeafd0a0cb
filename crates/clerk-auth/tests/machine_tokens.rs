//! Black-box suite of machine tokens (API keys, OAuth access tokens, M2M
//! tokens) through `Verifier::verify`, against the local Clerk stand-in:
//! acceptance, refusals, caching and coalescing, outages, our own key
//! refused, no network for garbage, and no token text in any log line.
//!
//! Time is a shared test [`Clock`]: the verifier's cache and the stand-in's
//! expiry read it, and the tests move it instead of waiting.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clerk_auth::extract::rejection_parts;
use clerk_auth::testing::{ClerkStandIn, Endpoint, Fault, Gate};
use clerk_auth::{
    AuthError, Clock, KeySource, MachineConfig, Principal, PublicCode, RemoteOptions, SubjectKind,
    TokenKind, Verifier, VerifierConfig,
};
use tracing_subscriber::fmt::MakeWriter;

const USER: &str = "user_2alice";
const ORG: &str = "org_2acme";
const MACHINE: &str = "mch_2ci";
const ENDPOINTS: [Endpoint; 5] = [
    Endpoint::Jwks,
    Endpoint::ClientsVerify,
    Endpoint::ApiKeys,
    Endpoint::OAuthTokens,
    Endpoint::M2MTokens,
];

struct Setup {
    standin: ClerkStandIn,
    verifier: Verifier,
    clock: Clock,
    api_url: String,
}

/// A served stand-in on a test clock, and a PEM-mode verifier whose machine
/// tokens go to it with the right keys.
async fn setup() -> Setup {
    let standin = ClerkStandIn::new();
    let clock = Clock::test();
    standin.set_clock(clock.clone());
    let api_url = standin.serve().await;
    let machine = MachineConfig::new(&api_url, standin.secret_key().into())
        .with_machine_secret_key(standin.machine_secret_key().into());
    let verifier = verifier(&standin, &clock, Some(machine));
    Setup {
        standin,
        verifier,
        clock,
        api_url,
    }
}

fn verifier(standin: &ClerkStandIn, clock: &Clock, machine: Option<MachineConfig>) -> Verifier {
    let config = VerifierConfig {
        issuer: Some(standin.issuer()),
        machine,
        remote: RemoteOptions {
            timeout: Duration::from_secs(2),
            ..RemoteOptions::default()
        },
        clock: clock.clone(),
        ..VerifierConfig::default()
    };
    Verifier::new(KeySource::Pem(standin.public_key_pem()), config).expect("verifier")
}

fn total_requests(standin: &ClerkStandIn) -> usize {
    ENDPOINTS.iter().map(|e| standin.requests(*e)).sum()
}

fn assert_invalid(result: Result<Principal, AuthError>, want: AuthError) {
    let err = result.expect_err("must be refused");
    assert_eq!(err, want);
    assert_eq!(err.public_code(), PublicCode::InvalidToken, "{err:?}");
}

fn assert_unavailable(result: Result<Principal, AuthError>) {
    let err = result.expect_err("must be refused");
    assert!(
        matches!(err, AuthError::UpstreamUnavailable(_)),
        "want unavailable, got {err:?}"
    );
    let code = err.public_code();
    assert_eq!((code, code.status()), (PublicCode::AuthUnavailable, 503));
    let (_, headers) = rejection_parts(code, "test");
    assert!(
        headers.contains_key("retry-after"),
        "503 carries Retry-After"
    );
}

#[tokio::test]
async fn each_kind_is_accepted_with_its_subject_and_scopes() {
    let s = setup().await;
    let cases = [
        (
            s.standin.mint_api_key(USER, &["notebooks:read"]),
            TokenKind::ApiKey,
            USER,
            SubjectKind::User,
            Endpoint::ApiKeys,
        ),
        (
            s.standin.mint_api_key(ORG, &[]),
            TokenKind::ApiKey,
            ORG,
            SubjectKind::Organization,
            Endpoint::ApiKeys,
        ),
        (
            s.standin
                .mint_oauth_token(USER, &["notebooks:read", "notebooks:write"]),
            TokenKind::OAuth,
            USER,
            SubjectKind::User,
            Endpoint::OAuthTokens,
        ),
        (
            s.standin.mint_m2m_token(MACHINE, &["notebooks:write"]),
            TokenKind::M2M,
            MACHINE,
            SubjectKind::Machine,
            Endpoint::M2MTokens,
        ),
    ];
    for (token, kind, subject, subject_kind, endpoint) in cases {
        let before = s.standin.requests(endpoint);
        let p = s.verifier.verify(&token).await.expect("accepted");
        assert_eq!((p.kind, p.subject.as_str()), (kind, subject));
        assert_eq!(p.subject_kind(), subject_kind);
        assert_eq!(p.user_id, subject, "user_id names whoever acts");
        assert_eq!(
            p.acting_user(),
            (subject_kind == SubjectKind::User).then_some(subject)
        );
        assert_eq!(
            Some(p.session_id.clone()),
            s.standin.machine_token_id(&token)
        );
        assert!(p.is_machine());
        assert_eq!(s.standin.requests(endpoint), before + 1, "{kind:?}");
    }
    let scoped = s
        .verifier
        .verify(&s.standin.mint_api_key(USER, &["notebooks:read"]))
        .await
        .unwrap();
    assert_eq!(scoped.scopes, ["notebooks:read"]);
    let unscoped = s
        .verifier
        .verify(&s.standin.mint_api_key(ORG, &[]))
        .await
        .unwrap();
    assert!(unscoped.scopes.is_empty());
    assert_eq!(unscoped.expires_at, clerk_auth::NEVER_EXPIRES);
}

#[tokio::test]
async fn session_tokens_keep_their_networkless_path() {
    let s = setup().await;
    let p = s
        .verifier
        .verify(&s.standin.token(USER).sign())
        .await
        .unwrap();
    assert_eq!(
        (p.kind, p.subject.as_str(), p.user_id.as_str()),
        (TokenKind::Session, USER, USER)
    );
    assert!(p.scopes.is_empty() && !p.is_machine());
    assert_eq!(total_requests(&s.standin), 0);
}

#[tokio::test]
async fn revoked_expired_and_unknown_tokens_are_invalid() {
    let s = setup().await;
    let revoked = s.standin.mint_api_key(USER, &[]);
    s.standin.revoke(&revoked);
    assert_invalid(
        s.verifier.verify(&revoked).await,
        AuthError::MachineTokenRevoked,
    );
    let expired = s
        .standin
        .mint_machine_token(TokenKind::M2M, MACHINE, &[], Some(Duration::ZERO));
    assert_invalid(
        s.verifier.verify(&expired).await,
        AuthError::MachineTokenExpired,
    );
    for unknown in ["ak_nobody_minted_this", "oat_nobody", "mt_nobody"] {
        assert_invalid(s.verifier.verify(unknown).await, AuthError::UnknownToken);
    }
    // A token of one kind presented as another is unknown to that route.
    let oauth = s.standin.mint_oauth_token(USER, &[]);
    let disguised = format!("ak_{}", oauth.trim_start_matches("oat_"));
    assert_invalid(s.verifier.verify(&disguised).await, AuthError::UnknownToken);
}

#[tokio::test]
async fn expiration_gets_no_clock_skew_and_bounds_the_cache() {
    let s = setup().await;
    let token =
        s.standin
            .mint_machine_token(TokenKind::OAuth, USER, &[], Some(Duration::from_secs(10)));
    s.verifier.verify(&token).await.expect("fresh");
    s.clock.advance(Duration::from_secs(9));
    s.verifier
        .verify(&token)
        .await
        .expect("still fresh, cached");
    assert_eq!(s.standin.requests(Endpoint::OAuthTokens), 1);
    // At the expiration exactly: refused, although a 5 s skew would still
    // admit a session token, and although the 30 s cache TTL has not passed.
    s.clock.advance(Duration::from_secs(1));
    assert_invalid(
        s.verifier.verify(&token).await,
        AuthError::MachineTokenExpired,
    );
    assert_eq!(s.standin.requests(Endpoint::OAuthTokens), 2);
}

#[tokio::test]
async fn one_upstream_call_per_token_per_thirty_seconds() {
    let s = setup().await;
    let token = s.standin.mint_api_key(USER, &[]);
    for _ in 0..20 {
        s.verifier.verify(&token).await.unwrap();
    }
    assert_eq!(s.standin.requests(Endpoint::ApiKeys), 1);
    // Revoked at Clerk: the cached answer stands until the TTL runs out ...
    s.standin.revoke(&token);
    s.clock.advance(Duration::from_millis(29_999));
    s.verifier.verify(&token).await.expect("cached");
    assert_eq!(s.standin.requests(Endpoint::ApiKeys), 1);
    // ... and at 30 s Clerk is asked again.
    s.clock.advance(Duration::from_millis(1));
    assert_invalid(
        s.verifier.verify(&token).await,
        AuthError::MachineTokenRevoked,
    );
    assert_eq!(s.standin.requests(Endpoint::ApiKeys), 2);
    // Another token is its own cache entry.
    s.verifier
        .verify(&s.standin.mint_api_key(USER, &[]))
        .await
        .unwrap();
    assert_eq!(s.standin.requests(Endpoint::ApiKeys), 3);
}

#[tokio::test]
async fn a_longer_configured_ttl_still_trusts_machine_tokens_30_s_at_most() {
    let s = setup().await;
    let machine = MachineConfig::new(&s.api_url, s.standin.secret_key().into());
    let config = VerifierConfig {
        machine: Some(machine),
        remote: RemoteOptions {
            cache_ttl: Duration::from_secs(300),
            ..RemoteOptions::default()
        },
        clock: s.clock.clone(),
        ..VerifierConfig::default()
    };
    let v = Verifier::new(KeySource::Pem(s.standin.public_key_pem()), config).unwrap();
    let token = s.standin.mint_api_key(USER, &[]);
    v.verify(&token).await.unwrap();
    s.standin.revoke(&token);
    s.clock.advance(Duration::from_secs(30));
    assert_invalid(v.verify(&token).await, AuthError::MachineTokenRevoked);
    assert_eq!(s.standin.requests(Endpoint::ApiKeys), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_first_requests_make_one_upstream_call() {
    let s = setup().await;
    let gate = Gate::new();
    s.standin
        .set_fault(Endpoint::M2MTokens, Fault::Held(gate.clone()));
    let token = s.standin.mint_m2m_token(MACHINE, &[]);
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let (v, token, barrier) = (s.verifier.clone(), token.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                v.verify(&token).await
            })
        })
        .collect();
    // The first call is held at Clerk while the others pile up behind it.
    s.standin.wait_for_requests(Endpoint::M2MTokens, 1).await;
    gate.open();
    for call in calls {
        assert_eq!(call.await.unwrap().expect("verified").subject, MACHINE);
    }
    assert_eq!(s.standin.requests(Endpoint::M2MTokens), 1);
}

#[tokio::test]
async fn clerk_unreachable_is_unavailable_with_retry_after() {
    let standin = ClerkStandIn::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let clock = Clock::test();
    let v = verifier(
        &standin,
        &clock,
        Some(MachineConfig::new(url, "sk_test_x".to_string().into())),
    );
    assert_unavailable(v.verify("ak_anything").await);
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let s = setup().await;
    s.standin.set_fault(Endpoint::ApiKeys, Fault::Status(503));
    assert_unavailable(s.verifier.verify(&s.standin.mint_api_key(USER, &[])).await);
    assert_eq!(
        s.standin.requests(Endpoint::ApiKeys),
        RemoteOptions::default().max_attempts as usize
    );
}

#[tokio::test]
async fn rate_limit_is_retried_after_what_retry_after_says() {
    let s = setup().await;
    let once = Fault::TooManyRequests {
        retry_after_secs: 1,
    };
    s.standin
        .set_fault(Endpoint::OAuthTokens, Fault::Times(1, Box::new(once)));
    let token = s.standin.mint_oauth_token(USER, &[]);
    let before = s.clock.unix_ms();
    s.verifier
        .verify(&token)
        .await
        .expect("verified after one retry");
    assert_eq!(s.standin.requests(Endpoint::OAuthTokens), 2);
    assert!(
        s.clock.unix_ms() - before >= 1000,
        "the retry waited the 1 s Retry-After asked for"
    );
}

#[tokio::test]
async fn clerk_refusing_our_key_is_unavailable_and_logged_as_an_error() {
    let s = setup().await;
    let logs = Logs::default();
    let _guard = logs.install();
    let wrong = MachineConfig::new(&s.api_url, "sk_test_wrong".to_string().into())
        .with_machine_secret_key("ak_wrong_machine_key".to_string().into());
    let v = verifier(&s.standin, &s.clock, Some(wrong));
    assert_unavailable(v.verify(&s.standin.mint_api_key(USER, &[])).await);
    assert_unavailable(v.verify(&s.standin.mint_m2m_token(MACHINE, &[])).await);
    let text = logs.text();
    assert!(
        text.contains("ERROR") && text.contains("CLERK_SECRET_KEY"),
        "{text}"
    );
    assert!(text.contains("CLERK_MACHINE_SECRET_KEY"), "{text}");
    // Refused at once: our key will not get better by retrying.
    assert_eq!(s.standin.requests(Endpoint::ApiKeys), 1);
}

#[tokio::test]
async fn m2m_falls_back_to_the_instance_secret_key() {
    let s = setup().await;
    let no_machine_key = MachineConfig::new(&s.api_url, s.standin.secret_key().into());
    let v = verifier(&s.standin, &s.clock, Some(no_machine_key));
    let p = v
        .verify(&s.standin.mint_m2m_token(MACHINE, &[]))
        .await
        .unwrap();
    assert_eq!(p.kind, TokenKind::M2M);
}

#[tokio::test]
async fn garbage_bearers_make_no_upstream_call() {
    let s = setup().await;
    let garbage = [
        "sk_test_not_a_bearer",
        "hello",
        "ak",
        "a.b",
        "a.b.c.d",
        "Bearer",
        "ak_with.dots.inside",
        "mt_spaces are not allowed",
        "oat_{\"json\":1}",
    ];
    for token in garbage {
        let err = s.verifier.verify(token).await.unwrap_err();
        assert_eq!(
            err.public_code(),
            PublicCode::InvalidToken,
            "{token}: {err:?}"
        );
    }
    let huge = format!("ak_{}", "a".repeat(9000));
    assert_eq!(
        s.verifier.verify(&huge).await.unwrap_err(),
        AuthError::TooLarge
    );
    assert_eq!(total_requests(&s.standin), 0);

    // Without machine configuration, machine tokens are refused unasked.
    let off = verifier(&s.standin, &s.clock, None);
    let key = s.standin.mint_api_key(USER, &[]);
    assert_invalid(off.verify(&key).await, AuthError::MachineTokensDisabled);
    assert_eq!(total_requests(&s.standin), 0);
}

#[tokio::test]
async fn no_token_of_any_kind_appears_in_the_logs() {
    let s = setup().await;
    let logs = Logs::default();
    let _guard = logs.install();
    let revoked = s.standin.mint_oauth_token(USER, &[]);
    s.standin.revoke(&revoked);
    let tokens = [
        s.standin.mint_api_key(USER, &["notebooks:read"]),
        s.standin.mint_m2m_token(MACHINE, &[]),
        revoked,
        "ak_unknown_secret_value".to_string(),
        s.standin.token(USER).sign(),
        s.standin.token(USER).lifetime(-120).sign(),
    ];
    for token in &tokens {
        let _ = s.verifier.verify(token).await;
    }
    // Failure paths that log: Clerk down, and Clerk refusing our key.
    s.standin.set_fault(Endpoint::ApiKeys, Fault::Status(500));
    let failing = s.standin.mint_api_key(ORG, &[]);
    let _ = s.verifier.verify(&failing).await;
    let wrong = MachineConfig::new(&s.api_url, "sk_test_wrong".to_string().into());
    let refused = s.standin.mint_oauth_token(ORG, &[]);
    let _ = verifier(&s.standin, &s.clock, Some(wrong))
        .verify(&refused)
        .await;

    let text = logs.text();
    assert!(!text.is_empty(), "the failure paths did log");
    for token in tokens.iter().chain([&failing, &refused]) {
        // Any 16-character window of a token would be a leak.
        let probe = &token[token.len().saturating_sub(16)..];
        assert!(!text.contains(probe), "token text in logs:\n{text}");
    }
}

/// Log lines captured by a thread-local subscriber (current-thread tests).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}
