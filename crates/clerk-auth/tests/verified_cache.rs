//! The verified-token cache must be invisible except in speed: a cached token
//! still expires, an edited token never borrows a cached result.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clerk_auth::testing::ClerkStandIn;
use clerk_auth::{AuthError, KeySource, Verifier, VerifierConfig};

fn verifier(standin: &ClerkStandIn) -> Verifier {
    let config = VerifierConfig {
        issuer: Some(standin.issuer()),
        verified_cache_capacity: 1000,
        ..VerifierConfig::default()
    };
    Verifier::new(KeySource::Pem(standin.public_key_pem()), config).expect("verifier")
}

#[tokio::test]
async fn cached_tokens_still_expire_with_skew() {
    let standin = ClerkStandIn::new();
    let v = verifier(&standin);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let token = standin.token("user_c").issued_at(now).lifetime(60).sign();
    let at = |secs: i64| UNIX_EPOCH + Duration::from_secs(secs as u64);
    assert!(v.verify_at(&token, at(now)).await.is_ok());
    // A hit inside exp + skew is fine; past it the cached entry must not answer.
    assert!(v.verify_at(&token, at(now + 64)).await.is_ok());
    assert_eq!(
        v.verify_at(&token, at(now + 66)).await.unwrap_err(),
        AuthError::Expired
    );
    // Nor before nbf - skew (nbf = iat - 10).
    assert_eq!(
        v.verify_at(&token, at(now - 20)).await.unwrap_err(),
        AuthError::NotYetValid
    );
}

#[tokio::test]
async fn an_edited_token_never_borrows_a_cached_result() {
    let standin = ClerkStandIn::new();
    let v = verifier(&standin);
    let token = standin.token("user_d").sign();
    assert!(v.verify(&token).await.is_ok());
    assert!(v.verify(&token).await.is_ok());
    // Same signature, different payload; and a flipped signature byte.
    let (head, sig) = token.rsplit_once('.').unwrap();
    let other = standin.token("user_e").sign();
    let (other_head, _) = other.rsplit_once('.').unwrap();
    let spliced = format!("{other_head}.{sig}");
    assert_eq!(
        v.verify(&spliced).await.unwrap_err(),
        AuthError::BadSignature
    );
    let mut flipped = sig.to_string().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = format!("{head}.{}", String::from_utf8(flipped).unwrap());
    assert_eq!(
        v.verify(&flipped).await.unwrap_err(),
        AuthError::BadSignature
    );
}
