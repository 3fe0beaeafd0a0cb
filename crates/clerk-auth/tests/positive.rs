//! Black-box positive suite: what a genuine Clerk token becomes, clock-skew
//! boundaries, PEM mode and issuer derivation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clerk_auth::testing::ClerkStandIn;
use clerk_auth::{
    issuer_from_publishable_key, Actor, AuthError, KeySource, Org, PublicCode, Verifier,
    VerifierConfig,
};
use serde_json::{json, Value};

const USER: &str = "user_2alice";

/// A JWKS-backed verifier for `standin` with `config`.
async fn jwks_verifier(standin: &ClerkStandIn, config: VerifierConfig) -> Verifier {
    let api_url = standin.serve().await;
    Verifier::new(
        KeySource::Jwks {
            api_url,
            secret_key: standin.secret_key().into(),
        },
        config,
    )
    .unwrap()
}

fn strict_config(standin: &ClerkStandIn) -> VerifierConfig {
    VerifierConfig {
        issuer: Some(standin.issuer()),
        authorized_parties: vec!["http://localhost:3000".into()],
        ..VerifierConfig::default()
    }
}

fn at_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms as u64)
}

fn header_of(token: &str) -> Value {
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
}

#[tokio::test]
async fn v2_token_without_org_gives_plain_principal() {
    let standin = ClerkStandIn::new();
    let verifier = jwks_verifier(&standin, strict_config(&standin)).await;
    let builder = standin.token(USER).session("sess_2plain");
    let exp = builder.claims()["exp"].as_i64().unwrap();
    let p = verifier.verify(&builder.sign()).await.unwrap();
    assert_eq!(p.user_id, USER);
    assert_eq!(p.session_id, "sess_2plain");
    assert_eq!(p.org, None);
    assert_eq!(p.actor, None);
    assert_eq!(p.expires_at, exp);
}

#[tokio::test]
async fn v1_token_with_org_claims() {
    let standin = ClerkStandIn::new();
    let verifier = jwks_verifier(&standin, strict_config(&standin)).await;

    let builder = standin.token(USER).v1().org(
        "org_2acme",
        "acme",
        "admin",
        "o:notebooks,o:billing",
        "manage,read",
        "3,2",
    );
    let claims = builder.claims();
    assert!(
        claims.get("v").is_none() && claims.get("o").is_none(),
        "not a v1 token: {claims}"
    );
    let p = verifier.verify(&builder.sign()).await.unwrap();
    assert_eq!(
        p.org,
        Some(Org {
            id: "org_2acme".into(),
            slug: Some("acme".into()),
            role: Some("org:admin".into()),
            permissions: vec![
                "org:notebooks:manage".into(),
                "org:notebooks:read".into(),
                "org:billing:read".into()
            ],
        })
    );

    // A bare v1 role is normalized to Clerk's `org:<role>` form.
    let bare = standin
        .token(USER)
        .v1()
        .claim("org_id", json!("org_2beta"))
        .claim("org_role", json!("basic_member"))
        .claim("org_slug", json!("beta"))
        .claim("org_permissions", json!(["org:notebooks:read"]))
        .sign();
    let org = verifier.verify(&bare).await.unwrap().org.unwrap();
    assert_eq!(org.id, "org_2beta");
    assert_eq!(org.role.as_deref(), Some("org:basic_member"));
    assert_eq!(org.permissions, ["org:notebooks:read"]);
}

#[tokio::test]
async fn v2_token_with_o_and_fea_computes_permissions() {
    let standin = ClerkStandIn::new();
    let verifier = jwks_verifier(&standin, strict_config(&standin)).await;
    let builder = standin.token(USER).org(
        "org_2acme",
        "acme",
        "admin",
        "o:notebooks,o:billing",
        "manage,read",
        "3,2",
    );
    let claims = builder.claims();
    assert_eq!(claims["v"], 2);
    assert_eq!(claims["fea"], "o:notebooks,o:billing");
    assert_eq!(claims["o"]["per"], "manage,read");
    assert_eq!(claims["o"]["fpm"], "3,2");
    let p = verifier.verify(&builder.sign()).await.unwrap();
    assert_eq!(
        p.org,
        Some(Org {
            id: "org_2acme".into(),
            slug: Some("acme".into()),
            role: Some("org:admin".into()),
            permissions: vec![
                "org:notebooks:manage".into(),
                "org:notebooks:read".into(),
                "org:billing:read".into()
            ],
        })
    );

    // User-scoped features do not consume an org bitmask.
    let mixed = standin
        .token(USER)
        .org(
            "org_2acme",
            "acme",
            "org:member",
            "u:profile,o:notebooks",
            "manage,read",
            "2",
        )
        .sign();
    let org = verifier.verify(&mixed).await.unwrap().org.unwrap();
    assert_eq!(org.role.as_deref(), Some("org:member"));
    assert_eq!(org.permissions, ["org:notebooks:read"]);
}

#[tokio::test]
async fn unknown_header_fields_and_claims_are_fine() {
    let standin = ClerkStandIn::new();
    let verifier = jwks_verifier(&standin, strict_config(&standin)).await;
    let token = standin
        .token(USER)
        .header("oiat", json!(1_700_000_000))
        .header("x-custom", json!({"nested": [1, 2]}))
        .claim("fva", json!([3, -1]))
        .claim("pla", json!("u:free"))
        .sign();
    assert_eq!(header_of(&token)["oiat"], 1_700_000_000);
    assert_eq!(verifier.verify(&token).await.unwrap().user_id, USER);

    // Without `typ` and `cat` (both optional) the token is still a session token.
    let bare = standin
        .token(USER)
        .remove_header("typ")
        .remove_header("cat")
        .sign();
    assert_eq!(verifier.verify(&bare).await.unwrap().user_id, USER);
}

#[tokio::test]
async fn act_becomes_actor() {
    let standin = ClerkStandIn::new();
    let verifier = jwks_verifier(&standin, strict_config(&standin)).await;
    let token = standin
        .token(USER)
        .claim(
            "act",
            json!({"sub": "user_2support", "iss": "https://dashboard.clerk.com", "sid": "sess_2imp", "extra": true}),
        )
        .sign();
    let p = verifier.verify(&token).await.unwrap();
    assert_eq!(p.user_id, USER);
    assert_eq!(
        p.actor,
        Some(Actor {
            sub: "user_2support".into(),
            iss: Some("https://dashboard.clerk.com".into()),
            sid: Some("sess_2imp".into()),
        })
    );
}

#[tokio::test]
async fn audience_and_azp_when_configured() {
    let standin = ClerkStandIn::new();
    let config = VerifierConfig {
        audience: Some("quire-api".into()),
        authorized_parties: vec!["https://app.example".into(), "http://localhost:3000".into()],
        ..strict_config(&standin)
    };
    let verifier = jwks_verifier(&standin, config).await;
    let one = standin
        .token(USER)
        .azp("https://app.example")
        .claim("aud", json!("quire-api"))
        .sign();
    assert!(verifier.verify(&one).await.is_ok());
    let many = standin
        .token(USER)
        .claim("aud", json!(["other", "quire-api"]))
        .sign();
    assert!(verifier.verify(&many).await.is_ok());
}

/// The DESIGN rules, at a fixed clock: skew (default 5 s) applies to exp, nbf and iat.
#[tokio::test]
async fn clock_skew_boundaries() {
    let standin = ClerkStandIn::new();
    let verifier = jwks_verifier(&standin, strict_config(&standin)).await;
    assert_eq!(verifier.config().clock_skew, Duration::from_secs(5));
    const T0: i64 = 1_700_000_000;

    // exp = T0 + 60 (nbf = T0 - 10, iat = T0).
    let token = standin.token(USER).issued_at(T0).lifetime(60).sign();
    let exp_ms = (T0 + 60) * 1000;
    let check = |now_ms: i64| verifier.verify_at(&token, at_ms(now_ms));
    assert!(check(exp_ms - 1000).await.is_ok(), "before exp");
    assert!(check(exp_ms + 2000).await.is_ok(), "2 s past exp passes");
    assert!(
        check(exp_ms + 4999).await.is_ok(),
        "exp + skew - 1 ms passes"
    );
    let at_boundary = check(exp_ms + 5000).await.unwrap_err();
    assert_eq!(at_boundary, AuthError::Expired, "exactly exp + skew fails");
    assert_eq!(at_boundary.public_code(), PublicCode::TokenExpired);
    assert_eq!(
        check(exp_ms + 6000).await.unwrap_err(),
        AuthError::Expired,
        "6 s past exp fails"
    );

    // nbf alone (no iat), far from exp.
    let nbf = T0 + 1000;
    let token = standin
        .token(USER)
        .issued_at(T0)
        .lifetime(10_000)
        .claim("nbf", json!(nbf))
        .remove_claim("iat")
        .sign();
    let check = |now_ms: i64| verifier.verify_at(&token, at_ms(now_ms));
    assert!(check(nbf * 1000).await.is_ok(), "at nbf");
    assert!(
        check(nbf * 1000 - 5000).await.is_ok(),
        "nbf exactly now + skew passes"
    );
    assert_eq!(
        check(nbf * 1000 - 5001).await.unwrap_err(),
        AuthError::NotYetValid,
        "nbf = now + skew + 1 ms"
    );
    assert_eq!(
        check(nbf * 1000 - 6000).await.unwrap_err(),
        AuthError::NotYetValid,
        "nbf = now + skew + 1 s"
    );

    // iat alone (no nbf).
    let iat = T0 + 1000;
    let token = standin
        .token(USER)
        .issued_at(T0)
        .lifetime(10_000)
        .claim("iat", json!(iat))
        .remove_claim("nbf")
        .sign();
    let check = |now_ms: i64| verifier.verify_at(&token, at_ms(now_ms));
    assert!(
        check(iat * 1000 - 5000).await.is_ok(),
        "iat exactly now + skew passes"
    );
    assert_eq!(
        check(iat * 1000 - 5001).await.unwrap_err(),
        AuthError::IssuedInFuture
    );
    assert_eq!(
        check(iat * 1000 - 6000).await.unwrap_err(),
        AuthError::IssuedInFuture,
        "iat = now + skew + 1 s"
    );

    // A configured skew replaces the default.
    let zero_skew = Verifier::new(
        KeySource::Pem(standin.public_key_pem()),
        VerifierConfig {
            clock_skew: Duration::ZERO,
            ..strict_config(&standin)
        },
    )
    .unwrap();
    let token = standin.token(USER).issued_at(T0).lifetime(60).sign();
    assert!(zero_skew.verify_at(&token, at_ms(exp_ms - 1)).await.is_ok());
    assert_eq!(
        zero_skew
            .verify_at(&token, at_ms(exp_ms))
            .await
            .unwrap_err(),
        AuthError::Expired
    );
    assert!(
        verifier.verify_at(&token, at_ms(exp_ms)).await.is_ok(),
        "default skew still applies"
    );
}

#[tokio::test]
async fn pem_mode_needs_no_jwks() {
    let standin = ClerkStandIn::new();
    // Served, so a stray JWKS request would be counted.
    let _api_url = standin.serve().await;
    let verifier = Verifier::new(
        KeySource::Pem(standin.public_key_pem()),
        strict_config(&standin),
    )
    .unwrap();
    assert!(verifier.jwks().is_none());
    verifier.ready().await.unwrap();

    let p = verifier.verify(&standin.token(USER).sign()).await.unwrap();
    assert_eq!(p.user_id, USER);
    // The PEM key verifies whatever the (present) kid says, as Clerk's SDKs do.
    let other_kid = standin
        .token(USER)
        .header("kid", json!("ins_2whatever"))
        .sign();
    assert!(verifier.verify(&other_kid).await.is_ok());
    assert_eq!(standin.jwks_requests(), 0);

    // kid is still required; other keys are still refused.
    let no_kid = standin.token(USER).remove_header("kid").sign();
    assert_eq!(
        verifier.verify(&no_kid).await.unwrap_err(),
        AuthError::MissingKid
    );
    let attacker = ClerkStandIn::new();
    let forged = standin.token(USER).sign_with(&attacker).sign();
    assert_eq!(
        verifier.verify(&forged).await.unwrap_err(),
        AuthError::BadSignature
    );

    // A PEM pasted into a one-line env var with escaped newlines works too.
    let one_line = standin.public_key_pem().trim().replace('\n', "\\n");
    let verifier = Verifier::new(KeySource::Pem(one_line), strict_config(&standin)).unwrap();
    assert!(verifier.verify(&standin.token(USER).sign()).await.is_ok());
    assert_eq!(standin.jwks_requests(), 0);

    // A bad PEM is a configuration error, not a 401 later.
    assert!(Verifier::new(
        KeySource::Pem("not a pem".into()),
        VerifierConfig::default()
    )
    .is_err());
}

#[tokio::test]
async fn issuer_derived_from_publishable_key() {
    let standin = ClerkStandIn::new();
    let pk = standin.publishable_key();
    let issuer = issuer_from_publishable_key(&pk).unwrap();
    assert_eq!(issuer, standin.issuer());
    // Padded or unpadded base64 derive the same issuer.
    assert!(pk.ends_with('='), "stand-in key is padded: {pk}");
    assert_eq!(
        issuer_from_publishable_key(pk.trim_end_matches('=')).unwrap(),
        issuer
    );

    let config = VerifierConfig {
        issuer: Some(issuer),
        ..VerifierConfig::default()
    };
    let verifier = jwks_verifier(&standin, config).await;
    assert_eq!(
        verifier
            .verify(&standin.token(USER).sign())
            .await
            .unwrap()
            .user_id,
        USER
    );

    // A token from the same keys but another Frontend API is refused by it.
    let foreign = standin
        .token(USER)
        .claim("iss", json!("https://clerk.other.example"))
        .sign();
    assert_eq!(
        verifier.verify(&foreign).await.unwrap_err(),
        AuthError::BadIssuer
    );

    // Another instance's publishable key derives another issuer.
    let other = ClerkStandIn::with_issuer("https://clerk.acme.example");
    assert_eq!(
        issuer_from_publishable_key(&other.publishable_key()).unwrap(),
        "https://clerk.acme.example"
    );
}
