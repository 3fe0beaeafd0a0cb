//! Opaque, tamper-evident list cursors.
//!
//! A cursor is `base64url(created_at_micros:id) "." base64url(hmac)`; a
//! forged or edited one is a 400, never a query from an arbitrary position.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use secrecy::ExposeSecret;

use super::error::ApiError;
use crate::config::Config;
use crate::notebook::model::{NotebookId, NotebookMeta};
use crate::store::PageKey;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 200;

/// `limit` query parameter: 1..=200, default 50, anything else 400.
pub fn page_limit(raw: Option<&str>) -> Result<usize, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be an integer from 1 to 200")),
    }
}

/// The key cursors are signed with. Cursors must verify on every process and
/// across restarts, so it is derived from the instance's Clerk secret
/// material when there is some (random, per process, otherwise).
pub fn cursor_key(config: &Config) -> hmac::Key {
    let mut material = b"quire-cursor-v1:".to_vec();
    match (&config.auth.secret_key, &config.auth.key_source) {
        (Some(secret), _) => material.extend_from_slice(secret.expose_secret().as_bytes()),
        (None, clerk_auth::KeySource::Pem(pem)) => material.extend_from_slice(pem.as_bytes()),
        _ => material.extend_from_slice(&rand::random::<[u8; 32]>()),
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &material);
    hmac::Key::new(hmac::HMAC_SHA256, digest.as_ref())
}

/// The cursor that continues after `meta`.
pub fn encode_cursor(key: &hmac::Key, meta: &NotebookMeta) -> String {
    let page = PageKey::after(meta);
    let payload = format!("{}:{}", page.created_at_micros, page.id);
    let tag = hmac::sign(key, payload.as_bytes());
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    )
}

/// Checks the tag and parses the position.
pub fn decode_cursor(key: &hmac::Key, cursor: &str) -> Result<PageKey, ApiError> {
    let bad = || ApiError::bad_request("the cursor is not valid");
    let (payload_b64, tag_b64) = cursor.split_once('.').ok_or_else(bad)?;
    let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| bad())?;
    let tag = URL_SAFE_NO_PAD.decode(tag_b64).map_err(|_| bad())?;
    hmac::verify(key, &payload, &tag).map_err(|_| bad())?;
    let text = std::str::from_utf8(&payload).map_err(|_| bad())?;
    let (micros, id) = text.split_once(':').ok_or_else(bad)?;
    Ok(PageKey {
        created_at_micros: micros.parse().map_err(|_| bad())?,
        id: id.parse::<NotebookId>().map_err(|_| bad())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(page_limit(None).unwrap(), 50);
        assert_eq!(page_limit(Some("200")).unwrap(), 200);
        for bad in ["0", "201", "-1", "x", ""] {
            assert!(page_limit(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn forged_cursor_refused() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"k");
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("0:00000000-0000-0000-0000-000000000000"),
            "AAAA"
        );
        assert!(decode_cursor(&key, &forged).is_err());
        assert!(decode_cursor(&key, "garbage").is_err());
    }
}
