//! Black-box negative suite of the verifier: one table of hostile or broken
//! tokens, each run against a verifier that demonstrably accepts the
//! baseline valid token, each with its expected public code and precise reason.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clerk_auth::testing::ClerkStandIn;
use clerk_auth::{
    AuthError, KeySource, PublicCode, Verifier, VerifierConfig, SESSION_TOKEN_CATEGORY,
};
use rsa::pkcs1v15::{SigningKey, VerifyingKey};
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding, Signer, Verifier as _};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

const USER: &str = "user_2victim";
const AZP: &str = "http://localhost:3000";
const AUDIENCE: &str = "quire-api";
const WEAK_KID: &str = "ins_weak_1024";

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The three segments of a compact JWS.
fn segments(token: &str) -> [String; 3] {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {token}");
    [parts[0].into(), parts[1].into(), parts[2].into()]
}

/// Clerk's header for `kid`, as a JSON object to edit.
fn header(kid: &str) -> Value {
    json!({"alg": "RS256", "cat": SESSION_TOKEN_CATEGORY, "kid": kid, "typ": "JWT"})
}

/// The JWK (n/e) of a stand-in's current key, derived from its PEM without
/// any network request.
fn jwk_of(standin: &ClerkStandIn) -> Value {
    let block = pem::parse(standin.public_key_pem()).expect("PEM");
    let public = aws_lc_rs::rsa::PublicKey::from_der(block.contents()).expect("RSA SPKI");
    json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": standin.kid(),
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    })
}

/// A fresh valid token whose signature segment contains `ch` (minting until
/// one does; each token has a random sid, so signatures differ).
fn token_with_sig_char(standin: &ClerkStandIn, ch: char) -> String {
    for _ in 0..500 {
        let t = standin.token(USER).sign();
        if segments(&t)[2].contains(ch) {
            return t;
        }
    }
    panic!("no signature containing {ch:?} in 500 tokens");
}

/// Replaces the payload segment of `token` with `payload` (keeps header and signature).
fn with_payload(token: &str, payload: &Value) -> String {
    let [h, _, s] = segments(token);
    format!("{h}.{}.{s}", b64(payload.to_string()))
}

/// Which verifier a case runs against.
#[derive(Clone, Copy, Debug)]
enum Cfg {
    /// issuer + authorized parties configured, no audience.
    Main,
    /// as `Main`, plus `audience = AUDIENCE`.
    Aud,
}

struct Case {
    name: &'static str,
    cfg: Cfg,
    token: String,
    code: PublicCode,
    /// The precise reason (every case here is deterministic).
    reason: AuthError,
}

fn bad(name: &'static str, token: String, reason: AuthError) -> Case {
    Case {
        name,
        cfg: Cfg::Main,
        token,
        code: PublicCode::InvalidToken,
        reason,
    }
}

fn bad_aud(name: &'static str, token: String, reason: AuthError) -> Case {
    Case {
        name,
        cfg: Cfg::Aud,
        token,
        code: PublicCode::InvalidToken,
        reason,
    }
}

fn expired(name: &'static str, token: String) -> Case {
    Case {
        name,
        cfg: Cfg::Main,
        token,
        code: PublicCode::TokenExpired,
        reason: AuthError::Expired,
    }
}

#[tokio::test]
async fn every_hostile_or_broken_token_is_refused() {
    let standin = ClerkStandIn::new();
    let attacker = ClerkStandIn::new();
    let attacker_url = attacker.serve().await;

    // A deliberately weak RSA-1024 key, published in the real JWKS under its own kid.
    let mut rng = rsa::rand_core::OsRng;
    let weak = rsa::RsaPrivateKey::new(&mut rng, 1024).expect("RSA-1024 keygen");
    assert_eq!(weak.n().bits(), 1024);
    standin.add_raw_jwk(json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": WEAK_KID,
        "n": b64(weak.n().to_bytes_be()), "e": b64(weak.e().to_bytes_be()),
    }));
    let api_url = standin.serve().await;

    // The weak key really is served by the JWKS the verifier reads.
    let served: Value = reqwest::Client::new()
        .get(format!("{api_url}/v1/jwks"))
        .bearer_auth(standin.secret_key())
        .send()
        .await
        .expect("jwks request")
        .json()
        .await
        .expect("jwks json");
    assert!(
        served["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == WEAK_KID),
        "weak key not published: {served}"
    );

    let jwks = || KeySource::Jwks {
        api_url: api_url.clone(),
        secret_key: standin.secret_key().into(),
    };
    let main_cfg = VerifierConfig {
        issuer: Some(standin.issuer()),
        authorized_parties: vec![AZP.to_string()],
        ..VerifierConfig::default()
    };
    let aud_cfg = VerifierConfig {
        audience: Some(AUDIENCE.to_string()),
        ..main_cfg.clone()
    };
    let main = Verifier::new(jwks(), main_cfg).unwrap();
    let aud = Verifier::new(jwks(), aud_cfg).unwrap();

    // Baselines: both verifiers accept a genuine token (this also warms their caches).
    let baseline_main = || standin.token(USER).sign();
    let baseline_aud = || standin.token(USER).claim("aud", json!(AUDIENCE)).sign();
    assert_eq!(
        main.verify(&baseline_main())
            .await
            .expect("baseline (main)")
            .user_id,
        USER
    );
    assert_eq!(
        aud.verify(&baseline_aud())
            .await
            .expect("baseline (aud)")
            .user_id,
        USER
    );

    let kid = standin.kid();
    let t = now();
    let valid = baseline_main();
    let [vh, vp, vs] = segments(&valid);
    let claims = standin.token(USER).claims();
    let claims_text = claims.to_string();
    let header_text = header(&kid).to_string();
    let raw = |h: &Value, p: &str| standin.sign_raw(&h.to_string(), p);
    let with_header = |edit: &dyn Fn(&mut Value)| {
        let mut h = header(&kid);
        edit(&mut h);
        raw(&h, &claims_text)
    };

    // HS256 "signed" with the RSA public key PEM as the HMAC secret.
    let hs256 = {
        let mut h = header(&kid);
        h["alg"] = json!("HS256");
        let input = format!("{}.{}", b64(h.to_string()), b64(&claims_text));
        let key = hmac::Key::new(hmac::HMAC_SHA256, standin.public_key_pem().as_bytes());
        format!("{input}.{}", b64(hmac::sign(&key, input.as_bytes())))
    };

    // Signature bytes, for truncation / prefixing.
    let sig = URL_SAFE_NO_PAD.decode(&vs).unwrap();
    assert_eq!(sig.len(), 256);

    // Non-canonical last character: same value bits, a non-zero unused bit.
    let non_canonical = {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        assert_eq!(vs.len(), 342);
        let last = *vs.as_bytes().last().unwrap();
        let v = ALPHABET.iter().position(|&c| c == last).unwrap();
        assert_eq!(
            v & 0x0f,
            0,
            "canonical encodings leave the 4 unused bits zero"
        );
        let changed = ALPHABET[v | 1] as char;
        format!("{vh}.{vp}.{}{changed}", &vs[..vs.len() - 1])
    };

    // Attacker-controlled key material.
    let mut attacker_jwk = jwk_of(&attacker);
    attacker_jwk["kid"] = json!(attacker.kid());
    let jwks_url = format!("{attacker_url}/v1/jwks");

    // A token correctly signed with the weak key (checked independently).
    let weak_token = {
        let input = format!(
            "{}.{}",
            b64(header(WEAK_KID).to_string()),
            b64(&claims_text)
        );
        let signer = SigningKey::<Sha256>::new(weak.clone());
        let signature = signer.sign(input.as_bytes());
        VerifyingKey::<Sha256>::new(weak.to_public_key())
            .verify(input.as_bytes(), &signature)
            .expect("weak signature verifies on its own");
        format!("{input}.{}", b64(signature.to_vec()))
    };

    // A payload that is an array laid out in the claim struct's field order:
    // a serde struct happily reads a sequence, a JWT claims set must be an object.
    let array_claims = json!([
        t + 60,
        null,
        null,
        USER,
        "sess_array",
        standin.issuer(),
        AZP,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null
    ]);

    use AuthError::*;
    let cases: Vec<Case> = vec![
        // ----- algorithm -----
        bad("alg none, empty signature", format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), vp),
            AlgNone),
        bad("alg none with a signature", with_header(&|h| h["alg"] = json!("none")), AlgNone),
        bad("alg NONE", with_header(&|h| h["alg"] = json!("NONE")), AlgNone),
        bad("alg RS512", with_header(&|h| h["alg"] = json!("RS512")), BadAlgorithm),
        bad("alg PS256", with_header(&|h| h["alg"] = json!("PS256")), BadAlgorithm),
        bad("alg lowercase rs256", with_header(&|h| h["alg"] = json!("rs256")), BadAlgorithm),
        bad("alg HS256 keyed with the public PEM", hs256, BadAlgorithm),
        bad("alg missing", with_header(&|h| { h.as_object_mut().unwrap().remove("alg"); }),
            Malformed("header json")),
        // ----- signature -----
        bad("payload edited after signing",
            with_payload(&valid, &{ let mut c = claims.clone(); c["sub"] = json!("user_2admin"); c }),
            BadSignature),
        bad("header edited after signing",
            format!("{}.{vp}.{vs}", b64(json!({"alg":"RS256","kid":kid}).to_string())), BadSignature),
        bad("signature truncated", format!("{vh}.{vp}.{}", b64(&sig[..128])), BadSignature),
        bad("signature removed (empty third segment)", format!("{vh}.{vp}."), Malformed("empty segment")),
        bad("signature zero-prefixed", format!("{vh}.{vp}.{}", b64([&[0u8][..], &sig].concat())), BadSignature),
        bad("signature of another token", {
            let other = segments(&baseline_main())[2].clone();
            format!("{vh}.{vp}.{other}")
        }, BadSignature),
        bad("signature all zeros", format!("{vh}.{vp}.{}", b64([0u8; 256])), BadSignature),
        // ----- shape -----
        bad("empty token", String::new(), Malformed("segment count")),
        bad("2 segments", format!("{vh}.{vp}"), Malformed("segment count")),
        bad("4 segments", format!("{valid}.{vs}"), Malformed("segment count")),
        bad("5 segments", format!("{vh}.{vp}.{vs}.{vh}.{vp}"), Malformed("segment count")),
        bad("empty header segment", format!(".{vp}.{vs}"), Malformed("empty segment")),
        // ----- base64url strictness -----
        bad("trailing = padding on signature", format!("{valid}=="), Malformed("alphabet")),
        bad("= padding on payload", format!("{vh}.{vp}=.{vs}"), Malformed("alphabet")),
        bad("standard alphabet '+'", {
            let tok = token_with_sig_char(&standin, '-');
            let [h, p, s] = segments(&tok);
            format!("{h}.{p}.{}", s.replace('-', "+"))
        }, Malformed("alphabet")),
        bad("standard alphabet '/'", {
            let tok = token_with_sig_char(&standin, '_');
            let [h, p, s] = segments(&tok);
            format!("{h}.{p}.{}", s.replace('_', "/"))
        }, Malformed("alphabet")),
        bad("space inside payload", format!("{vh}.{} {}.{vs}", &vp[..8], &vp[8..]), Malformed("alphabet")),
        bad("newline inside signature", format!("{vh}.{vp}.{}\n{}", &vs[..100], &vs[100..]), Malformed("alphabet")),
        bad("trailing newline", format!("{valid}\n"), Malformed("alphabet")),
        bad("leading space", format!(" {valid}"), Malformed("alphabet")),
        bad("non-canonical trailing bits", non_canonical, Malformed("signature encoding")),
        bad("header segment of impossible length (4n+1)", {
            let pad = "A".repeat((5 - vh.len() % 4) % 4);
            assert_eq!((vh.len() + pad.len()) % 4, 1);
            format!("{vh}{pad}.{vp}.{vs}")
        }, Malformed("header encoding")),
        // ----- header content -----
        bad("duplicate kid in header",
            standin.sign_raw(&format!(r#"{{"alg":"RS256","cat":"{SESSION_TOKEN_CATEGORY}","kid":"{kid}","kid":"{kid}","typ":"JWT"}}"#), &claims_text),
            DuplicateMember("header")),
        bad("duplicate alg in header (RS256 then none)",
            standin.sign_raw(&format!(r#"{{"alg":"RS256","kid":"{kid}","alg":"none"}}"#), &claims_text),
            DuplicateMember("header")),
        bad("header is not JSON", standin.sign_raw("{\"alg\":\"RS256\",", &claims_text), Malformed("header json")),
        bad("header is an array in field order",
            standin.sign_raw(&json!(["RS256", kid]).to_string(), &claims_text), Malformed("header json")),
        bad("crit", with_header(&|h| h["crit"] = json!(["exp"])), ForbiddenHeader("crit")),
        bad("crit null", with_header(&|h| h["crit"] = Value::Null), ForbiddenHeader("crit")),
        bad("typ at+jwt", with_header(&|h| h["typ"] = json!("at+jwt")), BadType),
        bad("typ lowercase jwt", with_header(&|h| h["typ"] = json!("jwt")), BadType),
        bad("cty", with_header(&|h| h["cty"] = json!("JWT")), ForbiddenHeader("cty")),
        bad("zip", with_header(&|h| h["zip"] = json!("DEF")), ForbiddenHeader("zip")),
        bad("x5c", with_header(&|h| h["x5c"] = json!(["MIIB"])), ForbiddenHeader("x5c")),
        bad("non-session cat", with_header(&|h| h["cat"] = json!("cl_oauth_token")), NotSessionToken),
        // ----- kid -----
        bad("kid missing", with_header(&|h| { h.as_object_mut().unwrap().remove("kid"); }), MissingKid),
        bad("kid empty", with_header(&|h| h["kid"] = json!("")), MissingKid),
        bad("kid is a number", with_header(&|h| h["kid"] = json!(1)), Malformed("header json")),
        bad("kid path traversal", with_header(&|h| h["kid"] = json!("../../etc/passwd")), UnknownKid),
        bad("kid SQL injection", with_header(&|h| h["kid"] = json!("' OR 1=1 --")), UnknownKid),
        bad("kid 10 KB (whole token over the cap)", with_header(&|h| h["kid"] = json!("k".repeat(10 * 1024))), TooLarge),
        bad("kid 200 chars", with_header(&|h| h["kid"] = json!("k".repeat(200))), KidTooLong),
        bad("kid unknown", with_header(&|h| h["kid"] = json!("ins_2unknownkid")), UnknownKid),
        // ----- key substitution -----
        bad("embedded jwk with the attacker's key, signed with it",
            standin.token(USER).header("kid", json!(attacker.kid())).header("jwk", attacker_jwk.clone())
                .sign_with(&attacker).sign(),
            ForbiddenHeader("jwk")),
        bad("embedded jwk under the real kid, signed by the attacker",
            standin.token(USER).header("jwk", { let mut j = attacker_jwk.clone(); j["kid"] = json!(kid); j })
                .sign_with(&attacker).sign(),
            ForbiddenHeader("jwk")),
        bad("jku pointing at the attacker's JWKS",
            standin.token(USER).header("kid", json!(attacker.kid())).header("jku", json!(jwks_url))
                .sign_with(&attacker).sign(),
            ForbiddenHeader("jku")),
        bad("x5u pointing at the attacker's server",
            standin.token(USER).header("kid", json!(attacker.kid())).header("x5u", json!(jwks_url))
                .sign_with(&attacker).sign(),
            ForbiddenHeader("x5u")),
        bad("attacker key reusing the real kid", standin.token(USER).sign_with(&attacker).sign(), BadSignature),
        bad("attacker key under its own kid",
            standin.token(USER).header("kid", json!(attacker.kid())).sign_with(&attacker).sign(), UnknownKid),
        bad("weak 1024-bit key published in the JWKS", weak_token, UnknownKid),
        // ----- payload shape -----
        bad("oversized token (> 8 KiB)", standin.token(USER).claim("pad", json!("a".repeat(9000))).sign(), TooLarge),
        bad("payload is an array", standin.sign_raw(&header_text, "[1,2,3]"), InvalidClaims("not a JSON object")),
        bad("payload is an array in claim-struct field order",
            standin.sign_raw(&header_text, &array_claims.to_string()), InvalidClaims("not a JSON object")),
        bad("payload is a string", standin.sign_raw(&header_text, r#""user_2victim""#), InvalidClaims("not a JSON object")),
        bad("payload is a number", standin.sign_raw(&header_text, "42"), InvalidClaims("not a JSON object")),
        bad("payload is not JSON", standin.sign_raw(&header_text, "{\"sub\":"), InvalidClaims("not a JSON object")),
        bad("duplicate sub in payload", standin.sign_raw(&header_text,
                &claims_text.replacen('{', r#"{"sub":"user_2admin","#, 1)),
            DuplicateMember("claims")),
        bad("duplicate sub via escape", standin.sign_raw(&header_text,
                &claims_text.replacen('{', r#"{"s\u0075b":"user_2admin","#, 1)),
            DuplicateMember("claims")),
        bad("duplicate id inside o", standin.sign_raw(&header_text,
                &claims_text.replacen('{', r#"{"o":{"id":"org_a","rol":"admin","id":"org_b"},"#, 1)),
            DuplicateMember("claims")),
        // ----- exp / nbf / iat -----
        bad("exp missing", standin.token(USER).remove_claim("exp").sign(), InvalidClaims("exp missing")),
        expired("exp in the past", standin.token(USER).issued_at(t - 120).sign()),
        bad("exp as string", standin.token(USER).claim("exp", json!((t + 60).to_string())).sign(), InvalidClaims("types")),
        bad("exp 1e20", standin.token(USER).claim("exp", json!(1e20)).sign(), InvalidClaims("types")),
        bad("exp 99999999999999999999", standin.sign_raw(&header_text,
                &claims_text.replacen(&format!(r#""exp":{}"#, claims["exp"]), r#""exp":99999999999999999999"#, 1)),
            InvalidClaims("types")),
        expired("exp negative", standin.token(USER).claim("exp", json!(-1)).sign()),
        expired("exp very negative", standin.token(USER).claim("exp", json!(i64::MIN)).sign()),
        bad("exp past year 9999", standin.token(USER).claim("exp", json!(253_402_300_800i64)).sign(),
            InvalidClaims("time out of range")),
        bad("exp fractional", standin.token(USER).claim("exp", json!(t as f64 + 60.5)).sign(), InvalidClaims("types")),
        bad("nbf in the future beyond skew", standin.token(USER).claim("nbf", json!(t + 60)).sign(), NotYetValid),
        bad("iat in the future beyond skew", standin.token(USER).claim("iat", json!(t + 60)).sign(), IssuedInFuture),
        bad("nbf negative", standin.token(USER).claim("nbf", json!(-5)).sign(), InvalidClaims("time out of range")),
        // ----- iss / azp / aud -----
        bad("iss missing", standin.token(USER).remove_claim("iss").sign(), BadIssuer),
        bad("iss wrong", standin.token(USER).claim("iss", json!("https://clerk.evil.example")).sign(), BadIssuer),
        bad("iss with trailing slash", standin.token(USER).claim("iss", json!(format!("{}/", standin.issuer()))).sign(),
            BadIssuer),
        bad("iss as array", standin.token(USER).claim("iss", json!([standin.issuer()])).sign(), InvalidClaims("types")),
        bad("azp missing", standin.token(USER).remove_claim("azp").sign(), BadAuthorizedParty),
        bad("azp unlisted", standin.token(USER).azp("https://evil.example").sign(), BadAuthorizedParty),
        bad("azp empty", standin.token(USER).azp("").sign(), BadAuthorizedParty),
        bad("aud present, audience unset", standin.token(USER).claim("aud", json!(AUDIENCE)).sign(), BadAudience),
        bad_aud("aud not matching", standin.token(USER).claim("aud", json!("other-api")).sign(), BadAudience),
        bad_aud("aud array without ours", standin.token(USER).claim("aud", json!(["a", "b"])).sign(), BadAudience),
        bad_aud("aud missing, audience set", standin.token(USER).sign(), BadAudience),
        // ----- sub / sid / session -----
        bad("sub missing", standin.token(USER).remove_claim("sub").sign(), InvalidClaims("sub")),
        bad("sub empty", standin.token("").sign(), InvalidClaims("sub")),
        bad("sub a number", standin.token(USER).claim("sub", json!(42)).sign(), InvalidClaims("types")),
        bad("sid missing", standin.token(USER).remove_claim("sid").sign(), InvalidClaims("sid")),
        bad("sid empty", standin.token(USER).session("").sign(), InvalidClaims("sid")),
        bad("sts pending", standin.token(USER).claim("sts", json!("pending")).sign(), SessionPending),
        bad("unknown token version", standin.token(USER).claim("v", json!(3)).sign(), InvalidClaims("unknown version")),
        bad("o is a string", standin.token(USER).claim("o", json!("org_1")).sign(), InvalidClaims("types")),
        bad("act without sub", standin.token(USER).claim("act", json!({"iss": "x"})).sign(), InvalidClaims("types")),
    ];

    assert!(cases.len() >= 45, "only {} cases", cases.len());

    let mut failures = Vec::new();
    for case in &cases {
        let (verifier, baseline) = match case.cfg {
            Cfg::Main => (&main, baseline_main()),
            Cfg::Aud => (&aud, baseline_aud()),
        };
        // The verifier this case runs against still accepts a genuine token.
        if let Err(e) = verifier.verify(&baseline).await {
            failures.push(format!(
                "{}: baseline refused before the case: {e:?}",
                case.name
            ));
            continue;
        }
        match verifier.verify(&case.token).await {
            Ok(p) => failures.push(format!("{}: ACCEPTED as {p:?}", case.name)),
            Err(e) => {
                if e.public_code() != case.code {
                    failures.push(format!(
                        "{}: public code {:?}, want {:?} ({e:?})",
                        case.name,
                        e.public_code(),
                        case.code
                    ));
                }
                if e != case.reason {
                    failures.push(format!(
                        "{}: reason {e:?}, want {:?}",
                        case.name, case.reason
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // No header ever made the verifier fetch a key from a URL it names.
    assert_eq!(
        attacker.jwks_requests(),
        0,
        "verifier fetched the attacker's JWKS"
    );
    eprintln!("{} negative cases passed", cases.len());
}
