//! Public keys we accept, and how they are read from PEM and JWKS.
//!
//! Keys are parsed once into aws-lc-rs `ParsedPublicKey`s, so a verification
//! costs one RSA public-key operation and no DER parsing.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde::Deserialize;

use crate::token::MAX_KID_LEN;

/// Smallest RSA modulus we trust.
pub(crate) const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus we verify with (bounds the cost of one check).
pub(crate) const MAX_RSA_BITS: usize = 8192;

/// A usable verification key.
pub(crate) type Key = Arc<ParsedPublicKey>;

/// The keys of one Clerk instance, by `kid`.
pub(crate) type KeyMap = HashMap<String, Key>;

/// Verifies an RS256 signature; the single place the RSA check happens.
pub(crate) fn verify_rs256(key: &ParsedPublicKey, message: &[u8], signature: &[u8]) -> bool {
    key.verify_sig(message, signature).is_ok()
}

/// Builds a key from big-endian modulus and exponent, refusing weak or absurd sizes.
fn rsa_key(n: &[u8], e: &[u8]) -> Result<Key, &'static str> {
    let n = strip_leading_zeros(n);
    let e = strip_leading_zeros(e);
    let bits = bit_len(n);
    if bits < MIN_RSA_BITS {
        return Err("RSA key shorter than 2048 bits");
    }
    if bits > MAX_RSA_BITS {
        return Err("RSA key longer than 8192 bits");
    }
    if e.is_empty() || e.len() > 8 {
        return Err("RSA exponent out of range");
    }
    RsaPublicKeyComponents { n, e }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .map(Arc::new)
        .map_err(|_| "RSA key rejected by aws-lc")
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

fn bit_len(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(&top) => n.len() * 8 - top.leading_zeros() as usize,
    }
}

/// Reads a `-----BEGIN PUBLIC KEY-----` (SPKI) or `BEGIN RSA PUBLIC KEY`
/// (PKCS#1) PEM, as found in `CLERK_JWT_KEY`. Escaped `\n` (common when the
/// PEM is pasted into a one-line env var) are accepted.
pub(crate) fn key_from_pem(pem_text: &str) -> Result<Key, String> {
    let text = pem_text.trim().replace("\\n", "\n");
    let block = pem::parse(text.as_bytes()).map_err(|e| format!("not a PEM block: {e}"))?;
    if !matches!(block.tag(), "PUBLIC KEY" | "RSA PUBLIC KEY") {
        return Err(format!("unexpected PEM tag {:?}", block.tag()));
    }
    let public = aws_lc_rs::rsa::PublicKey::from_der(block.contents())
        .map_err(|_| "not an RSA public key".to_string())?;
    rsa_key(
        public.modulus().big_endian_without_leading_zero(),
        public.exponent().big_endian_without_leading_zero(),
    )
    .map_err(str::to_string)
}

/// One JWKS entry; unknown members ignored.
#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<serde_json::Value>,
}

/// JWKS `n`/`e` are base64url; be lenient about padding only.
const JWK_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Parses a JWKS document. Unusable entries are skipped one by one (and
/// logged); the document itself must be well formed.
pub(crate) fn keys_from_jwks(body: &[u8]) -> Result<KeyMap, String> {
    let doc: Jwks = serde_json::from_slice(body).map_err(|e| format!("bad JWKS JSON: {e}"))?;
    let mut keys = KeyMap::new();
    for entry in doc.keys {
        match key_from_jwk(entry) {
            Ok((kid, key)) => {
                keys.entry(kid).or_insert(key);
            }
            Err(why) => tracing::debug!(why, "skipping JWKS entry"),
        }
    }
    Ok(keys)
}

fn key_from_jwk(entry: serde_json::Value) -> Result<(String, Key), &'static str> {
    let jwk: Jwk = serde_json::from_value(entry).map_err(|_| "malformed JWK")?;
    if jwk.kty.as_deref() != Some("RSA") {
        return Err("not an RSA key");
    }
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("key not for signatures");
    }
    if jwk.alg.as_deref().is_some_and(|a| a != "RS256") {
        return Err("key not for RS256");
    }
    let kid = jwk
        .kid
        .filter(|k| !k.is_empty() && k.len() <= MAX_KID_LEN)
        .ok_or("bad kid")?;
    let n = JWK_B64.decode(jwk.n.ok_or("no n")?).map_err(|_| "bad n")?;
    let e = JWK_B64.decode(jwk.e.ok_or("no e")?).map_err(|_| "bad e")?;
    Ok((kid, rsa_key(&n, &e)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_length() {
        assert_eq!(bit_len(&[0x80, 0]), 16);
        assert_eq!(bit_len(&[0x01, 0]), 9);
        assert_eq!(bit_len(strip_leading_zeros(&[0, 0, 0x7f])), 7);
    }

    #[test]
    fn jwks_skips_unusable_entries() {
        let body = br#"{"keys":[{"kty":"EC","kid":"a"},{"kty":"RSA","kid":"b","n":"AQAB","e":"AQAB"},{"kty":"RSA","use":"enc","kid":"c"}]}"#;
        assert!(keys_from_jwks(body).unwrap().is_empty());
        assert!(keys_from_jwks(b"[]").is_err());
    }
}
