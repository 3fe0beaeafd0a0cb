//! The opt-in clients.verify strategy against the local Clerk stand-in:
//! session selection, coalescing, caching, retries and outages.

use std::time::Duration;

use clerk_auth::testing::{ClerkStandIn, ClientSpec, Endpoint, Fault, Gate, SessionSpec};
use clerk_auth::{
    AuthError, Clock, KeySource, PublicCode, RemoteOptions, Verifier, VerifierConfig,
};

/// A clients.verify verifier for a served `standin`; both read one test
/// clock (`standin.clock()`), which tests move instead of sleeping.
async fn remote(standin: &ClerkStandIn, options: RemoteOptions) -> Verifier {
    let clock = Clock::test();
    standin.set_clock(clock.clone());
    let api_url = standin.serve().await;
    remote_at(&api_url, &standin.secret_key(), options, clock)
}

fn remote_at(api_url: &str, secret: &str, options: RemoteOptions, clock: Clock) -> Verifier {
    let source = KeySource::ClientsVerify {
        api_url: api_url.to_string(),
        secret_key: secret.to_string().into(),
    };
    let config = VerifierConfig {
        remote: options,
        clock,
        ..VerifierConfig::default()
    };
    Verifier::new(source, config).expect("verifier")
}

fn session(id: &str, user: &str, status: &str) -> SessionSpec {
    SessionSpec {
        id: id.into(),
        user_id: user.into(),
        status: status.into(),
    }
}

fn quick() -> RemoteOptions {
    RemoteOptions {
        max_retry_wait: Duration::from_millis(50),
        timeout: Duration::from_millis(500),
        ..RemoteOptions::default()
    }
}

#[tokio::test]
async fn last_active_session_is_used_when_active() {
    let standin = ClerkStandIn::new();
    let v = remote(&standin, quick()).await;
    standin.register_client(
        "client_tok_1",
        ClientSpec {
            sessions: vec![
                session("sess_a", "user_1", "active"),
                session("sess_b", "user_1", "active"),
            ],
            last_active_session_id: Some("sess_b".into()),
        },
    );
    let p = v.verify("client_tok_1").await.expect("verified");
    assert_eq!(
        (p.user_id.as_str(), p.session_id.as_str()),
        ("user_1", "sess_b")
    );
}

#[tokio::test]
async fn first_active_session_when_last_active_is_not() {
    let standin = ClerkStandIn::new();
    let v = remote(&standin, quick()).await;
    standin.register_client(
        "client_tok_2",
        ClientSpec {
            sessions: vec![
                session("sess_old", "user_2", "ended"),
                session("sess_x", "user_2", "active"),
                session("sess_y", "user_2", "active"),
            ],
            last_active_session_id: Some("sess_old".into()),
        },
    );
    let p = v.verify("client_tok_2").await.expect("verified");
    assert_eq!(p.session_id, "sess_x");
}

#[tokio::test]
async fn no_active_session_is_invalid_token() {
    let standin = ClerkStandIn::new();
    let v = remote(&standin, quick()).await;
    standin.register_client(
        "client_tok_3",
        ClientSpec {
            sessions: vec![
                session("sess_e", "user_3", "expired"),
                session("sess_r", "user_3", "revoked"),
            ],
            last_active_session_id: Some("sess_e".into()),
        },
    );
    let err = v.verify("client_tok_3").await.unwrap_err();
    assert_eq!(err, AuthError::SessionNotActive);
    assert_eq!(err.public_code(), PublicCode::InvalidToken);
}

#[tokio::test]
async fn minted_session_token_verifies_and_revocation_is_seen_after_cache() {
    let standin = ClerkStandIn::new();
    let v = remote(
        &standin,
        RemoteOptions {
            cache_ttl: Duration::from_millis(300),
            ..quick()
        },
    )
    .await;
    let token = standin.token("user_4").session("sess_4").sign();
    assert_eq!(v.verify(&token).await.expect("ok").user_id, "user_4");
    standin.set_session_status("sess_4", "revoked");
    // Within the TTL the cached answer stands (one upstream call so far) ...
    assert!(v.verify(&token).await.is_ok());
    assert_eq!(standin.verify_requests(), 1);
    // ... after it, Clerk is asked again and says the session is gone.
    standin.clock().advance(Duration::from_millis(300));
    assert_eq!(
        v.verify(&token).await.unwrap_err(),
        AuthError::SessionNotActive
    );
    assert_eq!(standin.verify_requests(), 2);
}

#[tokio::test]
async fn unknown_token_is_invalid_not_unavailable() {
    let standin = ClerkStandIn::new();
    let v = remote(&standin, quick()).await;
    let err = v.verify("nobody_knows_this").await.unwrap_err();
    assert_eq!(err.public_code(), PublicCode::InvalidToken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_requests_make_one_upstream_call() {
    let standin = ClerkStandIn::new();
    let v = remote(&standin, quick()).await;
    // The upstream call is held so all 50 are waiting on the same call.
    let gate = Gate::new();
    standin.set_verify_fault(Fault::Held(gate.clone()));
    let token = standin.token("user_5").sign();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let (v, token) = (v.clone(), token.clone());
            tokio::spawn(async move { v.verify(&token).await })
        })
        .collect();
    standin.wait_for_requests(Endpoint::ClientsVerify, 1).await;
    gate.open();
    for call in calls {
        assert_eq!(call.await.unwrap().expect("verified").user_id, "user_5");
    }
    assert_eq!(standin.verify_requests(), 1);
}

#[tokio::test]
async fn upstream_down_is_unavailable_never_invalid() {
    // Nothing listens on this port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let v = remote_at(&url, "sk_test_x", quick(), Clock::test());
    let err = v.verify("any_token").await.unwrap_err();
    assert_eq!(err.public_code(), PublicCode::AuthUnavailable);
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let standin = ClerkStandIn::new();
    let v = remote(
        &standin,
        RemoteOptions {
            max_attempts: 3,
            ..quick()
        },
    )
    .await;
    standin.set_verify_fault(Fault::Status(503));
    let err = v.verify(&standin.token("user_6").sign()).await.unwrap_err();
    assert_eq!(err.public_code(), PublicCode::AuthUnavailable);
    assert_eq!(standin.verify_requests(), 3);
}

#[tokio::test]
async fn rate_limited_then_recovered_honours_retry_after() {
    let standin = ClerkStandIn::new();
    let options = RemoteOptions {
        max_attempts: 3,
        max_retry_wait: Duration::from_secs(5),
        ..quick()
    };
    let v = remote(&standin, options).await;
    // One 429 asking for 1 s, then Clerk answers.
    let limited = Fault::TooManyRequests {
        retry_after_secs: 1,
    };
    standin.set_verify_fault(Fault::Times(1, Box::new(limited)));
    let token = standin.token("user_7").sign();
    let before = standin.clock().unix_ms();
    assert_eq!(
        v.verify(&token)
            .await
            .expect("verified after the retry")
            .user_id,
        "user_7"
    );
    assert_eq!(standin.verify_requests(), 2);
    assert!(
        standin.clock().unix_ms() - before >= 1000,
        "the retry waited what Retry-After said"
    );
}

#[tokio::test]
async fn clerk_refusing_our_secret_is_unavailable() {
    let standin = ClerkStandIn::new();
    let api_url = standin.serve().await;
    let v = remote_at(&api_url, "sk_test_wrong", quick(), Clock::test());
    let err = v.verify(&standin.token("user_8").sign()).await.unwrap_err();
    assert_eq!(err.public_code(), PublicCode::AuthUnavailable);
}

#[tokio::test]
async fn cache_never_outlives_the_tokens_exp() {
    let standin = ClerkStandIn::new();
    let v = remote(
        &standin,
        RemoteOptions {
            cache_ttl: Duration::from_secs(60),
            ..quick()
        },
    )
    .await;
    let token = standin.token("user_9").lifetime(1).sign();
    assert!(v.verify(&token).await.is_ok());
    // Time is the subject: move past the token's exp (1 s lifetime).
    standin.clock().advance(Duration::from_millis(1100));
    assert!(
        v.verify(&token).await.is_err(),
        "an expired token is not served from the cache"
    );
}
