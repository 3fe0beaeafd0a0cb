//! Steps 1 and 2 of verification: size, shape and header of a compact JWS.
//!
//! Everything here is cheap and happens before any key lookup or RSA math,
//! so garbage is refused for the price of a few comparisons.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use crate::json::{check_object, present, ObjectError};
use crate::{AuthError, MAX_TOKEN_BYTES, SESSION_TOKEN_CATEGORY};

/// Longest `kid` we look up; Clerk's are ~30 characters.
pub(crate) const MAX_KID_LEN: usize = 128;

/// A token whose shape and header passed; nothing about it is trusted yet.
pub(crate) struct Unverified<'a> {
    pub kid: String,
    /// `base64(header) "." base64(payload)`: the bytes the signature covers.
    pub signing_input: &'a [u8],
    /// Decoded payload; read only after the signature checks out.
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
}

/// The header members we act on. Unknown members (`cat`, `oiat`, ...) are
/// allowed; the ones that would let the token choose its own key, or that we
/// do not implement, are refused by presence.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    cat: Option<String>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    #[serde(default, deserialize_with = "present")]
    cty: bool,
    #[serde(default, deserialize_with = "present")]
    zip: bool,
    #[serde(default, deserialize_with = "present")]
    jku: bool,
    #[serde(default, deserialize_with = "present")]
    x5u: bool,
    #[serde(default, deserialize_with = "present")]
    jwk: bool,
    #[serde(default, deserialize_with = "present")]
    x5c: bool,
}

/// Checks size, shape and header; decodes the three segments.
pub(crate) fn parse(token: &str) -> Result<Unverified<'_>, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLarge);
    }
    let (header_b64, payload_b64, signature_b64) = split(token)?;
    let header = decode_segment(header_b64, "header encoding")?;
    // The header is judged before the empty-signature complaint, so an
    // `alg: none` token is logged as what it is, an unsigned token.
    let kid = check_header(&header)?;
    if signature_b64.is_empty() {
        return Err(AuthError::Malformed("empty segment"));
    }
    let payload = decode_segment(payload_b64, "payload encoding")?;
    let signature = decode_segment(signature_b64, "signature encoding")?;
    let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
    Ok(Unverified {
        kid,
        signing_input,
        payload,
        signature,
    })
}

/// Exactly three segments of the base64url alphabet, no padding; the header
/// and payload non-empty (an empty signature is refused after the header).
fn split(token: &str) -> Result<(&str, &str, &str), AuthError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("segment count"));
    };
    for part in [h, p] {
        if part.is_empty() {
            return Err(AuthError::Malformed("empty segment"));
        }
    }
    for part in [h, p, s] {
        if !part.bytes().all(is_base64url) {
            return Err(AuthError::Malformed("alphabet"));
        }
    }
    Ok((h, p, s))
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Strict decoding: no padding, canonical trailing bits.
fn decode_segment(segment: &str, what: &'static str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthError::Malformed(what))
}

/// Step 2 (the header), in the order the checks run; returns the `kid`.
fn check_header(bytes: &[u8]) -> Result<String, AuthError> {
    check_object(bytes).map_err(|e| match e {
        ObjectError::Duplicate => AuthError::DuplicateMember("header"),
        ObjectError::NotObject => AuthError::Malformed("header json"),
    })?;
    let header: Header =
        serde_json::from_slice(bytes).map_err(|_| AuthError::Malformed("header json"))?;
    if header.alg.eq_ignore_ascii_case("none") {
        return Err(AuthError::AlgNone);
    }
    if header.alg != "RS256" {
        return Err(AuthError::BadAlgorithm);
    }
    for (name, is_present) in [
        ("crit", header.crit),
        ("cty", header.cty),
        ("zip", header.zip),
        ("jku", header.jku),
        ("x5u", header.x5u),
        ("jwk", header.jwk),
        ("x5c", header.x5c),
    ] {
        if is_present {
            return Err(AuthError::ForbiddenHeader(name));
        }
    }
    if header.typ.as_deref().is_some_and(|t| t != "JWT") {
        return Err(AuthError::BadType);
    }
    if header
        .cat
        .as_deref()
        .is_some_and(|c| c != SESSION_TOKEN_CATEGORY)
    {
        return Err(AuthError::NotSessionToken);
    }
    match header.kid {
        None => Err(AuthError::MissingKid),
        Some(kid) if kid.is_empty() => Err(AuthError::MissingKid),
        Some(kid) if kid.len() > MAX_KID_LEN => Err(AuthError::KidTooLong),
        Some(kid) => Ok(kid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str) -> String {
        format!("{}.{}.{}", b64(header), b64("{}"), b64("sig"))
    }

    #[test]
    fn accepts_clerk_header() {
        let t =
            token(r#"{"alg":"RS256","cat":"cl_B7d4PD111AAA","kid":"ins_1","typ":"JWT","oiat":1}"#);
        assert_eq!(parse(&t).unwrap().kid, "ins_1");
    }

    #[test]
    fn header_rules() {
        let cases = [
            (r#"{"alg":"none","kid":"k"}"#, AuthError::AlgNone),
            (r#"{"alg":"HS256","kid":"k"}"#, AuthError::BadAlgorithm),
            (r#"{"alg":"RS256"}"#, AuthError::MissingKid),
            (r#"{"alg":"RS256","kid":""}"#, AuthError::MissingKid),
            (
                r#"{"alg":"RS256","kid":"k","crit":null}"#,
                AuthError::ForbiddenHeader("crit"),
            ),
            (
                r#"{"alg":"RS256","kid":"k","typ":"at+jwt"}"#,
                AuthError::BadType,
            ),
            (
                r#"{"alg":"RS256","kid":"k","cat":"cl_other"}"#,
                AuthError::NotSessionToken,
            ),
            (
                r#"{"alg":"RS256","kid":"k","kid":"j"}"#,
                AuthError::DuplicateMember("header"),
            ),
            (r#"[1]"#, AuthError::Malformed("header json")),
        ];
        for (header, want) in cases {
            assert_eq!(parse(&token(header)).err(), Some(want), "{header}");
        }
    }

    #[test]
    fn shape_rules() {
        let good = token(r#"{"alg":"RS256","kid":"k"}"#);
        assert!(parse(&good).is_ok());
        assert_eq!(
            parse("a.b").err(),
            Some(AuthError::Malformed("segment count"))
        );
        assert_eq!(
            parse(&format!("{good}.x")).err(),
            Some(AuthError::Malformed("segment count"))
        );
        assert_eq!(
            parse(&format!("{good}=")).err(),
            Some(AuthError::Malformed("alphabet"))
        );
        assert_eq!(
            parse(&good.replace('.', "..")).err(),
            Some(AuthError::Malformed("segment count"))
        );
        assert_eq!(parse(&"a".repeat(9000)).err(), Some(AuthError::TooLarge));
        let (head, _) = good.rsplit_once('.').unwrap();
        assert_eq!(
            parse(&format!("{head}.")).err(),
            Some(AuthError::Malformed("empty segment"))
        );
    }

    #[test]
    fn alg_none_is_named_before_the_empty_signature() {
        let unsigned = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64("{}"));
        let err = parse(&unsigned).err().unwrap();
        assert_eq!(err, AuthError::AlgNone);
        assert!(err.to_string().contains("`none`"), "{err}");
    }
}
