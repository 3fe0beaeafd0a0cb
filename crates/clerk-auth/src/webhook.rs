//! Svix webhook signatures: how Clerk signs the webhooks it sends.
//!
//! The scheme is small: an HMAC-SHA256, keyed by the base64 secret after
//! `whsec_`, over `"{svix-id}.{svix-timestamp}.{body}"`, sent as
//! space-separated `v1,<base64>` entries in `svix-signature`. Comparison is
//! constant time (aws-lc-rs `hmac::verify`); timestamps more than
//! [`TOLERANCE_SECS`] from now are refused, so a captured delivery cannot be
//! replayed later.
//!
//! Written here rather than taken from the `svix` crate, re-evaluated for
//! this move: svix 2.9.1 (the newest) bundles Svix's whole HTTP API client
//! (hyper client, rustls, nix, rand 0.10) with no feature to leave it out,
//! needs Rust 1.88 (this workspace supports 1.85), and does not compile
//! against hyper-util 0.1.21 (its proxy connector expects boxed errors where
//! hyper-util now returns typed ones). Verification alone is the forty lines
//! below, checked against Svix's published test vector.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::HeaderMap;

/// Timestamps further than this from now are refused (replay window).
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// Why a delivery was refused (logged, never sent).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing or unreadable header {0}")]
    Header(&'static str),
    #[error("timestamp outside the tolerance")]
    Timestamp,
    #[error("no matching v1 signature")]
    Signature,
}

/// A verifier for one endpoint secret (Clerk's "Signing Secret"). Its
/// `Debug` never shows the key.
pub struct WebhookVerifier {
    key: hmac::Key,
}

impl std::fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookVerifier([redacted])")
    }
}

impl WebhookVerifier {
    /// From a `whsec_<base64>` secret (the prefix is optional).
    pub fn new(secret: &str) -> Option<Self> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = STANDARD.decode(encoded).ok().filter(|k| !k.is_empty())?;
        Some(WebhookVerifier {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
        })
    }

    /// The `v1,<base64>` signature of a delivery (tests and tools sign with it).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = hmac::sign(&self.key, &signed_content(id, timestamp, body));
        format!("v1,{}", STANDARD.encode(tag.as_ref()))
    }

    /// Checks headers and body as of `now` (Unix seconds).
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), SignatureError> {
        let id = header(headers, "svix-id")?;
        let timestamp: i64 = header(headers, "svix-timestamp")?
            .trim()
            .parse()
            .map_err(|_| SignatureError::Header("svix-timestamp"))?;
        if (now - timestamp).abs() > TOLERANCE_SECS {
            return Err(SignatureError::Timestamp);
        }
        let content = signed_content(id, timestamp, body);
        let matched = header(headers, "svix-signature")?
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|b64| STANDARD.decode(b64).ok())
            .any(|tag| hmac::verify(&self.key, &content, &tag).is_ok());
        if matched {
            Ok(())
        } else {
            Err(SignatureError::Signature)
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, SignatureError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or(SignatureError::Header(name))
}

fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    content
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Svix's published reference example.
    #[test]
    fn matches_svix_reference_vector() {
        let v = WebhookVerifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            v.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn verify_rules() {
        let v = WebhookVerifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"type":"user.deleted"}"#;
        let mut h = HeaderMap::new();
        h.insert("svix-id", "msg_1".parse().unwrap());
        h.insert("svix-timestamp", "1000".parse().unwrap());
        let sig = v.sign("msg_1", 1000, body);
        h.insert(
            "svix-signature",
            format!("v1,bm9wZQ== {sig}").parse().unwrap(),
        );
        assert_eq!(v.verify(&h, body, 1000), Ok(()));
        assert_eq!(v.verify(&h, b"{}", 1000), Err(SignatureError::Signature));
        assert_eq!(
            v.verify(&h, body, 1000 + TOLERANCE_SECS + 1),
            Err(SignatureError::Timestamp)
        );
        let other = WebhookVerifier::new("whsec_c2VjcmV0").unwrap();
        assert_eq!(other.verify(&h, body, 1000), Err(SignatureError::Signature));
        h.remove("svix-id");
        assert_eq!(
            v.verify(&h, body, 1000),
            Err(SignatureError::Header("svix-id"))
        );
    }

    #[test]
    fn future_timestamps_are_refused_too() {
        let v = WebhookVerifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = b"{}";
        let mut h = HeaderMap::new();
        h.insert("svix-id", "msg_1".parse().unwrap());
        h.insert("svix-timestamp", "2000".parse().unwrap());
        h.insert(
            "svix-signature",
            v.sign("msg_1", 2000, body).parse().unwrap(),
        );
        assert_eq!(v.verify(&h, body, 2000 - TOLERANCE_SECS), Ok(()));
        assert_eq!(
            v.verify(&h, body, 2000 - TOLERANCE_SECS - 1),
            Err(SignatureError::Timestamp)
        );
        h.insert("svix-timestamp", "soon".parse().unwrap());
        assert_eq!(
            v.verify(&h, body, 2000),
            Err(SignatureError::Header("svix-timestamp"))
        );
    }

    #[test]
    fn secrets_must_be_base64_and_stay_out_of_debug() {
        assert!(WebhookVerifier::new("whsec_not base64!").is_none());
        assert!(WebhookVerifier::new("whsec_").is_none());
        let bare = WebhookVerifier::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            bare.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(format!("{bare:?}"), "WebhookVerifier([redacted])");
    }
}
