//! Tests of the stand-in itself (not of the verifier): token wire format,
//! JWKS publication and rotation, clients.verify resolution, faults.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

use super::mint::org_permissions;
use super::*;

fn segment(token: &str, i: usize) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(token.split('.').nth(i).expect("segment"))
        .expect("base64url")
}

async fn get_jwks(base: &str, secret: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(format!("{base}/v1/jwks"));
    if let Some(secret) = secret {
        req = req.bearer_auth(secret);
    }
    let resp = req.send().await.expect("jwks request");
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(&resp.text().await.expect("body")).unwrap_or(Value::Null),
    )
}

async fn post_verify(base: &str, secret: &str, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/clients/verify"))
        .bearer_auth(secret)
        .header("content-type", "application/json")
        .body(json!({ "token": token }).to_string())
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("verify request");
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(&resp.text().await.expect("body")).unwrap_or(Value::Null),
    )
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn minted_token_has_three_segments_and_clerk_header_order() {
    let clerk = ClerkStandIn::new();
    let token = clerk.token("user_1").sign();
    assert_eq!(token.split('.').count(), 3);
    let header = String::from_utf8(segment(&token, 0)).unwrap();
    let expected = format!(
        r#"{{"alg":"RS256","cat":"cl_B7d4PD111AAA","kid":"{}","typ":"JWT"}}"#,
        clerk.kid()
    );
    assert_eq!(header, expected);

    let claims: Value = serde_json::from_slice(&segment(&token, 1)).unwrap();
    let names: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        ["azp", "exp", "fva", "iat", "iss", "nbf", "sid", "sts", "sub", "v"]
    );
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 60);
    assert_eq!(claims["nbf"].as_i64().unwrap(), iat - 10);
    assert_eq!(claims["iss"], DEFAULT_ISSUER);
    assert!(claims["sid"].as_str().unwrap().starts_with("sess_"));
}

#[test]
fn signature_verifies_with_published_pem_independently() {
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    let clerk = ClerkStandIn::new();
    let token = clerk.token("user_1").sign();
    let key = rsa::RsaPublicKey::from_public_key_pem(&clerk.public_key_pem()).expect("SPKI PEM");
    let verifier = rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(key);
    let (input, _) = token.rsplit_once('.').unwrap();
    let sig = rsa::pkcs1v15::Signature::try_from(segment(&token, 2).as_slice()).unwrap();
    verifier
        .verify(input.as_bytes(), &sig)
        .expect("RS256 signature valid");
}

#[test]
fn builder_knobs_shape_claims_and_header() {
    let clerk = ClerkStandIn::with_issuer("https://clerk.example.test");
    assert_eq!(
        clerk.publishable_key(),
        format!("pk_test_{}", STANDARD.encode("clerk.example.test$"))
    );
    let v2 = clerk.token("u").org(
        "org_1",
        "acme",
        "admin",
        "o:docs,u:x,o:billing",
        "read,manage",
        "3,1",
    );
    let c = v2.claims();
    assert_eq!(
        c["o"],
        json!({"fpm":"3,1","id":"org_1","per":"read,manage","rol":"admin","slg":"acme"})
    );
    assert_eq!(c["fea"], "o:docs,u:x,o:billing");

    let v1 = clerk
        .token("u")
        .org(
            "org_1",
            "acme",
            "admin",
            "o:docs,u:x,o:billing",
            "read,manage",
            "3,1",
        )
        .v1();
    let c = v1.remove_claim("azp").claim("extra", json!(1)).claims();
    let names: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "exp",
            "iat",
            "iss",
            "nbf",
            "org_id",
            "org_permissions",
            "org_role",
            "org_slug",
            "sid",
            "sub",
            "extra"
        ]
    );
    assert_eq!(c["org_role"], "org:admin");
    assert_eq!(
        c["org_permissions"],
        json!(["org:docs:read", "org:docs:manage", "org:billing:read"])
    );
    assert!(org_permissions("", "read", "1").is_empty());

    let token = clerk
        .token("u")
        .header("kid", json!("other"))
        .remove_header("cat")
        .sign();
    assert_eq!(
        String::from_utf8(segment(&token, 0)).unwrap(),
        r#"{"alg":"RS256","kid":"other","typ":"JWT"}"#
    );
}

#[test]
fn sign_raw_keeps_bytes_verbatim() {
    let clerk = ClerkStandIn::new();
    let header = r#"{"alg":"RS256", "alg":"none","kid":"k"}"#;
    let payload = "{\"sub\":\"a\",\"sub\":\"b\"}\n";
    let token = clerk.sign_raw(header, payload);
    assert_eq!(segment(&token, 0), header.as_bytes());
    assert_eq!(segment(&token, 1), payload.as_bytes());
    let (input, _) = token.rsplit_once('.').unwrap();
    assert_eq!(
        segment(&token, 2),
        clerk.sign(input.as_bytes()),
        "PKCS#1 v1.5 is deterministic"
    );
}

#[tokio::test]
async fn jwks_serves_key_and_requires_secret() {
    let clerk = ClerkStandIn::new();
    let base = clerk.serve().await;
    let (status, body) = get_jwks(&base, None).await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["code"], "authentication_invalid");
    assert_eq!(get_jwks(&base, Some("sk_test_wrong")).await.0, 401);

    let (status, body) = get_jwks(&base, Some(&clerk.secret_key())).await;
    assert_eq!(status, 200);
    let key = &body["keys"][0];
    assert_eq!(key["kid"], clerk.kid().as_str());
    assert_eq!(
        (&key["use"], &key["kty"], &key["alg"], &key["e"]),
        (
            &json!("sig"),
            &json!("RSA"),
            &json!("RS256"),
            &json!("AQAB")
        )
    );
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(key["n"].as_str().unwrap())
            .unwrap()
            .len(),
        256
    );
    assert_eq!(clerk.jwks_requests(), 3);
}

#[tokio::test]
async fn rotate_and_retire_change_jwks() {
    let clerk = ClerkStandIn::new();
    let base = clerk.serve().await;
    let secret = clerk.secret_key();
    let old = clerk.kid();
    let new = clerk.rotate_key();
    assert_ne!(old, new);
    assert_eq!(clerk.kid(), new);
    assert_eq!(
        kids(&get_jwks(&base, Some(&secret)).await.1),
        [new.clone(), old.clone()]
    );

    clerk.retire_key(&old);
    clerk.add_raw_jwk(json!({"kty":"EC","kid":"ec1","crv":"P-256"}));
    let (_, body) = get_jwks(&base, Some(&secret)).await;
    assert_eq!(kids(&body), [new, "ec1".to_owned()]);
    assert_eq!(
        body["keys"][1],
        json!({"kty":"EC","kid":"ec1","crv":"P-256"})
    );
}

#[tokio::test]
async fn hang_fault_does_not_block_other_routes() {
    let clerk = ClerkStandIn::new();
    let base = clerk.serve().await;
    clerk.set_jwks_fault(Fault::Hang);
    let hanging = {
        let url = format!("{base}/v1/jwks");
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(url)
                .timeout(Duration::from_millis(500))
                .send()
                .await
        })
    };
    clerk.wait_for_requests(Endpoint::Jwks, 1).await;
    let token = clerk.token("user_1").sign();
    assert_eq!(post_verify(&base, &clerk.secret_key(), &token).await.0, 200);
    let err = hanging
        .await
        .unwrap()
        .expect_err("hung request must time out");
    assert!(err.is_timeout());
    assert_eq!((clerk.jwks_requests(), clerk.verify_requests()), (1, 1));
}

#[tokio::test]
async fn other_faults_answer_as_configured() {
    let clerk = ClerkStandIn::new();
    let base = clerk.serve().await;
    let secret = clerk.secret_key();
    let client = reqwest::Client::new();
    let jwks = || {
        client
            .get(format!("{base}/v1/jwks"))
            .bearer_auth(&secret)
            .send()
    };

    clerk.set_jwks_fault(Fault::Status(503));
    assert_eq!(jwks().await.unwrap().status(), 503);
    clerk.set_jwks_fault(Fault::TooManyRequests {
        retry_after_secs: 7,
    });
    let resp = jwks().await.unwrap();
    assert_eq!(
        (
            resp.status().as_u16(),
            resp.headers()["retry-after"].to_str().unwrap()
        ),
        (429, "7")
    );
    clerk.set_jwks_fault(Fault::Garbage);
    assert_eq!(jwks().await.unwrap().text().await.unwrap(), "not json{{{");
    clerk.set_jwks_fault(Fault::Huge);
    let body = jwks().await.unwrap().bytes().await.unwrap();
    assert!(body.len() >= 10 * 1024 * 1024 && body.starts_with(br#"{"keys":["#));
    clerk.set_jwks_fault(Fault::Slow(Duration::from_millis(100)));
    let started = std::time::Instant::now();
    assert_eq!(jwks().await.unwrap().status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn clients_verify_reports_registry_status() {
    let clerk = ClerkStandIn::new();
    let base = clerk.serve().await;
    let secret = clerk.secret_key();

    let token = clerk.token("user_a").session("sess_a").sign();
    clerk.set_session_status("sess_a", "revoked");
    let (status, client) = post_verify(&base, &secret, &token).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&client["object"], &client["last_active_session_id"]),
        (&json!("client"), &json!("sess_a"))
    );
    assert_eq!(client["session_ids"], json!(["sess_a"]));
    let session = &client["sessions"][0];
    assert_eq!(
        (&session["user_id"], &session["status"]),
        (&json!("user_a"), &json!("revoked"))
    );
    assert_eq!(session["client_id"], client["id"]);

    let random_sid = clerk.token("user_b").sign();
    assert_eq!(
        post_verify(&base, &secret, &random_sid).await.1["sessions"][0]["status"],
        "active"
    );

    let spec = |id: &str, status: &str| SessionSpec {
        id: id.into(),
        user_id: "user_c".into(),
        status: status.into(),
    };
    let sessions = vec![spec("sess_x", "ended"), spec("sess_y", "active")];
    clerk.register_client(
        "client-token",
        ClientSpec {
            sessions,
            last_active_session_id: Some("sess_x".into()),
        },
    );
    let (_, client) = post_verify(&base, &secret, "client-token").await;
    assert_eq!(client["session_ids"], json!(["sess_x", "sess_y"]));
    assert_eq!(client["sessions"][0]["status"], "ended");

    let forged = clerk.token("user_a").sign_with(&ClerkStandIn::new()).sign();
    let expired = clerk
        .token("user_a")
        .issued_at(clerk.now_secs() - 120)
        .sign();
    for bad in [forged.as_str(), expired.as_str(), "not-a-token"] {
        let (status, body) = post_verify(&base, &secret, bad).await;
        assert_eq!(
            (status, &body["errors"][0]["code"]),
            (404, &json!("resource_not_found"))
        );
    }
    assert_eq!(post_verify(&base, "sk_test_wrong", &token).await.0, 401);
    let bad_body = reqwest::Client::new()
        .post(format!("{base}/v1/clients/verify"))
        .bearer_auth(&secret)
        .body("{");
    assert_eq!(bad_body.send().await.unwrap().status(), 400);
}

#[test]
fn pkcs8_round_trip_gives_same_kid_and_jwks() {
    let a = ClerkStandIn::new();
    let der = a.private_key_pkcs8();
    let b = ClerkStandIn::from_pkcs8(&der, DEFAULT_ISSUER).expect("load pkcs8");
    let c = ClerkStandIn::from_pkcs8(&der, DEFAULT_ISSUER).expect("load pkcs8");
    // The kid is derived from the public key, so loaded instances agree.
    assert_eq!(b.kid(), c.kid());
    assert!(
        b.kid().starts_with("ins_") && b.kid().len() == 4 + 16,
        "{}",
        b.kid()
    );
    assert_eq!(b.jwks_document(), c.jwks_document());
    assert_eq!(a.public_key_pem(), b.public_key_pem());
    assert_eq!(b.private_key_pkcs8(), der);
    // Secret keys stay per instance.
    assert_ne!(b.secret_key(), c.secret_key());
}

#[test]
fn pkcs8_rejects_garbage() {
    assert!(ClerkStandIn::from_pkcs8(b"not a key", DEFAULT_ISSUER).is_err());
}

#[tokio::test]
async fn token_minted_by_one_pkcs8_instance_verifies_against_another() {
    let der = ClerkStandIn::new().private_key_pkcs8();
    let minter = ClerkStandIn::from_pkcs8(&der, DEFAULT_ISSUER).expect("load pkcs8");
    let other = ClerkStandIn::from_pkcs8(&der, DEFAULT_ISSUER).expect("load pkcs8");
    let token = minter.token("user_2alice").sign();
    assert!(other.minted_claims(&token).is_some());
    assert!(ClerkStandIn::new().minted_claims(&token).is_none());

    // The full JWKS verification path, keys fetched from the *other* instance.
    let api_url = other.serve().await;
    let verifier = crate::Verifier::new(
        crate::KeySource::Jwks {
            api_url,
            secret_key: other.secret_key().into(),
        },
        crate::VerifierConfig {
            issuer: Some(DEFAULT_ISSUER.to_owned()),
            ..crate::VerifierConfig::default()
        },
    )
    .expect("verifier");
    let principal = verifier.verify(&token).await.expect("token verifies");
    assert_eq!(principal.user_id, "user_2alice");
    let stranger = ClerkStandIn::new().token("user_2alice").sign();
    assert!(verifier.verify(&stranger).await.is_err());
}

async fn post_machine(base: &str, path: &str, secret: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/{path}"))
        .bearer_auth(secret)
        .json(&body)
        .send()
        .await
        .expect("machine verify request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn machine_routes_answer_in_clerks_shapes() {
    let clerk = ClerkStandIn::new();
    let base = clerk.serve().await;
    let secret = clerk.secret_key();

    let key = clerk.mint_api_key("org_1", &["notebooks:read"]);
    assert!(key.starts_with("ak_"));
    let (status, body) =
        post_machine(&base, "api_keys/verify", &secret, json!({ "secret": key })).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            &body["object"],
            &body["type"],
            &body["subject"],
            &body["scopes"]
        ),
        (
            &json!("api_key"),
            &json!("api_key"),
            &json!("org_1"),
            &json!(["notebooks:read"])
        )
    );
    assert_eq!(
        (&body["revoked"], &body["expired"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(
        body["expiration"],
        Value::Null,
        "API keys default to never expiring"
    );
    assert_eq!(
        Some(body["id"].as_str().unwrap().to_owned()),
        clerk.machine_token_id(&key)
    );

    let oauth = clerk.mint_oauth_token("user_1", &[]);
    let (status, body) = post_machine(
        &base,
        "oauth_applications/access_tokens/verify",
        &secret,
        json!({ "access_token": oauth }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["object"], "clerk_idp_oauth_access_token");
    assert!(body["client_id"].is_string() && body["expiration"].is_i64());

    // M2M takes the machine secret key (or the instance key).
    let m2m = clerk.mint_m2m_token("mch_1", &[]);
    for credential in [clerk.machine_secret_key(), secret.clone()] {
        let (status, body) = post_machine(
            &base,
            "m2m_tokens/verify",
            &credential,
            json!({ "token": m2m }),
        )
        .await;
        assert_eq!(
            (status, &body["object"]),
            (200, &json!("machine_to_machine_token"))
        );
    }
    // ... but the API key route does not take the machine secret key.
    let (status, body) = post_machine(
        &base,
        "api_keys/verify",
        &clerk.machine_secret_key(),
        json!({ "secret": key }),
    )
    .await;
    assert_eq!(
        (status, &body["errors"][0]["code"]),
        (401, &json!("authentication_invalid"))
    );

    clerk.revoke(&key);
    clerk.expire(&oauth);
    let (_, body) = post_machine(&base, "api_keys/verify", &secret, json!({ "secret": key })).await;
    assert_eq!(
        (&body["revoked"], body["revocation_reason"].is_string()),
        (&json!(true), true)
    );
    let (_, body) = post_machine(
        &base,
        "oauth_applications/access_tokens/verify",
        &secret,
        json!({ "access_token": oauth }),
    )
    .await;
    assert_eq!(body["expired"], true);

    let (status, body) = post_machine(
        &base,
        "api_keys/verify",
        &secret,
        json!({ "secret": "ak_unknown" }),
    )
    .await;
    assert_eq!(
        (status, &body["errors"][0]["code"]),
        (404, &json!("resource_not_found"))
    );
    // A token sent to another kind's route is unknown there.
    let (status, _) =
        post_machine(&base, "m2m_tokens/verify", &secret, json!({ "token": key })).await;
    assert_eq!(status, 404);
    let (status, _) =
        post_machine(&base, "api_keys/verify", &secret, json!({ "token": key })).await;
    assert_eq!(status, 400, "wrong body member");
    assert_eq!(
        (
            clerk.requests(Endpoint::ApiKeys),
            clerk.requests(Endpoint::OAuthTokens),
            clerk.requests(Endpoint::M2MTokens)
        ),
        (5, 2, 3)
    );
}
