//! Strict JSON helpers for token headers and claims.
//!
//! serde_json silently keeps the last of duplicate object members, and
//! `#[derive(Deserialize)]` only notices duplicates of the fields it knows.
//! Two parsers that disagree on which `sub` wins is a classic JWT confusion,
//! so every header and payload is first walked by [`check_no_duplicates`].
//! No crate offers this as an option of serde_json, hence the small visitor.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Fails if any JSON object anywhere in `bytes` repeats a member name, or if
/// `bytes` is not one JSON value.
pub(crate) fn check_no_duplicates(bytes: &[u8]) -> Result<(), serde_json::Error> {
    serde_json::from_slice::<NoDuplicates>(bytes).map(|_| ())
}

/// Why [`check_object`] refused a header or claims set.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ObjectError {
    /// Some object repeats a member name.
    Duplicate,
    /// Not JSON, or JSON but not an object at top level (RFC 7515/7519
    /// require objects; a serde struct would happily read an array).
    NotObject,
}

/// One JSON object, with no repeated member name anywhere inside it.
pub(crate) fn check_object(bytes: &[u8]) -> Result<(), ObjectError> {
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ObjectError::NotObject);
    }
    // The visitor's only data error is the duplicate; the rest is bad JSON.
    check_no_duplicates(bytes).map_err(|e| {
        if e.is_data() {
            ObjectError::Duplicate
        } else {
            ObjectError::NotObject
        }
    })
}

/// A JSON value of any shape, accepted only when no object repeats a key.
struct NoDuplicates;

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
        // Token objects have a handful of members: a linear scan beats hashing.
        let mut seen: Vec<Cow<'de, str>> = Vec::with_capacity(16);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom("duplicate member"));
            }
            seen.push(key);
            map.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }
}

/// `deserialize_with` helper: true when the member is present, whatever its
/// value (even `null`). Used for header members whose mere presence is fatal.
pub(crate) fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_duplicates_at_any_depth() {
        assert!(check_no_duplicates(br#"{"a":1,"b":{"c":[{"d":1}]}}"#).is_ok());
        assert!(check_no_duplicates(br#"{"a":1,"a":2}"#).is_err());
        assert!(check_no_duplicates(br#"{"o":{"id":"x","id":"y"}}"#).is_err());
        assert!(check_no_duplicates(br#"[{"k":1,"k":1}]"#).is_err());
        // Escapes are decoded before comparing: "\u0061" is "a".
        assert!(check_no_duplicates(br#"{"a":1,"\u0061":2}"#).is_err());
    }

    #[test]
    fn objects_only() {
        assert_eq!(check_object(br#" {"a":1}"#), Ok(()));
        assert_eq!(
            check_object(br#"{"a":1,"a":2}"#),
            Err(ObjectError::Duplicate)
        );
        for bad in [
            &br#"["RS256","k"]"#[..],
            b"42",
            br#""s""#,
            b"{\"a\":",
            b"",
            b"{} x",
        ] {
            assert_eq!(check_object(bad), Err(ObjectError::NotObject), "{bad:?}");
        }
    }

    #[test]
    fn rejects_trailing_data() {
        assert!(check_no_duplicates(br#"{"a":1} {"a":2}"#).is_err());
    }
}
