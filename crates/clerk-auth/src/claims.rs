//! Step 5 and 6: claims of a token whose signature already checked out.
//!
//! Parsed with a strict typed struct (wrong types are errors, duplicates were
//! refused before), validated in the order Clerk's SDKs check them, then turned into a
//! [`Principal`] from either the v1 or the v2 token format.

use serde::Deserialize;

use crate::json::{check_object, ObjectError};
use crate::{Actor, AuthError, Org, Principal, TokenKind, VerifierConfig};

/// Latest `exp`/`nbf`/`iat` we accept: 9999-12-31. Beyond it is garbage.
const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

#[derive(Deserialize)]
struct Claims {
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    sub: Option<String>,
    sid: Option<String>,
    iss: Option<String>,
    azp: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    sts: Option<String>,
    v: Option<i64>,
    // v2 organization
    o: Option<OrgV2>,
    fea: Option<String>,
    // v1 organization
    org_id: Option<String>,
    org_slug: Option<String>,
    org_role: Option<String>,
    org_permissions: Option<Vec<String>>,
    act: Option<Actor>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct OrgV2 {
    id: String,
    slg: Option<String>,
    rol: Option<String>,
    per: Option<String>,
    fpm: Option<String>,
}

/// A principal and the earliest time (Unix seconds, `max(nbf, iat)`) its
/// token counts as valid, for the verified-token cache.
pub(crate) struct Verified {
    pub principal: Principal,
    pub not_before: Option<i64>,
}

/// Validates the payload and builds the principal. `now_ms` is Unix milliseconds.
pub(crate) fn principal_from_payload(
    payload: &[u8],
    config: &VerifierConfig,
    now_ms: i64,
) -> Result<Verified, AuthError> {
    check_object(payload).map_err(|e| match e {
        ObjectError::Duplicate => AuthError::DuplicateMember("claims"),
        ObjectError::NotObject => AuthError::InvalidClaims("not a JSON object"),
    })?;
    let claims: Claims =
        serde_json::from_slice(payload).map_err(|_| AuthError::InvalidClaims("types"))?;
    let exp = check_times(&claims, config, now_ms)?;
    let user_id = non_empty(claims.sub.as_deref(), "sub")?;
    let session_id = non_empty(claims.sid.as_deref(), "sid")?;
    check_issuer(&claims, config)?;
    check_azp(&claims, config)?;
    check_audience(&claims, config)?;
    if claims.sts.as_deref() == Some("pending") {
        return Err(AuthError::SessionPending);
    }
    let org = match claims.v {
        None | Some(1) => org_v1(&claims),
        Some(2) => org_v2(&claims),
        Some(_) => return Err(AuthError::InvalidClaims("unknown version")),
    };
    let not_before = claims.nbf.max(claims.iat);
    Ok(Verified {
        principal: Principal {
            subject: user_id.clone(),
            user_id,
            session_id,
            org,
            actor: claims.act,
            expires_at: exp,
            kind: TokenKind::Session,
            scopes: Vec::new(),
        },
        not_before,
    })
}

/// `exp` required; skew applies to `exp`, `nbf` and `iat` alike (Clerk's
/// comparisons: expired when `exp <= now - skew`, early when `nbf > now + skew`).
/// A negative `exp` is a time before 1970: expired like any past `exp`.
fn check_times(c: &Claims, config: &VerifierConfig, now_ms: i64) -> Result<i64, AuthError> {
    let skew = config.clock_skew.as_millis() as i64;
    let exp = c.exp.ok_or(AuthError::InvalidClaims("exp missing"))?;
    if exp < 0 {
        return Err(AuthError::Expired);
    }
    for t in [Some(exp), c.nbf, c.iat].into_iter().flatten() {
        if !(0..=MAX_NUMERIC_DATE).contains(&t) {
            return Err(AuthError::InvalidClaims("time out of range"));
        }
    }
    if exp * 1000 <= now_ms - skew {
        return Err(AuthError::Expired);
    }
    if c.nbf.is_some_and(|nbf| nbf * 1000 > now_ms + skew) {
        return Err(AuthError::NotYetValid);
    }
    if c.iat.is_some_and(|iat| iat * 1000 > now_ms + skew) {
        return Err(AuthError::IssuedInFuture);
    }
    Ok(exp)
}

fn non_empty(value: Option<&str>, what: &'static str) -> Result<String, AuthError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(AuthError::InvalidClaims(what)),
    }
}

fn check_issuer(c: &Claims, config: &VerifierConfig) -> Result<(), AuthError> {
    match &config.issuer {
        Some(want) if c.iss.as_deref() != Some(want.as_str()) => Err(AuthError::BadIssuer),
        _ => Ok(()),
    }
}

fn check_azp(c: &Claims, config: &VerifierConfig) -> Result<(), AuthError> {
    if config.authorized_parties.is_empty() {
        return Ok(());
    }
    match c.azp.as_deref() {
        Some(azp) if config.authorized_parties.iter().any(|p| p == azp) => Ok(()),
        _ => Err(AuthError::BadAuthorizedParty),
    }
}

fn check_audience(c: &Claims, config: &VerifierConfig) -> Result<(), AuthError> {
    let Some(aud) = &c.aud else {
        return match config.audience {
            Some(_) => Err(AuthError::BadAudience),
            None => Ok(()),
        };
    };
    let Some(want) = &config.audience else {
        return Err(AuthError::BadAudience);
    };
    let ok = match aud {
        Audience::One(a) => a == want,
        Audience::Many(list) => list.iter().any(|a| a == want),
    };
    if ok {
        Ok(())
    } else {
        Err(AuthError::BadAudience)
    }
}

/// v1 tokens carry `org_id`/`org_slug`/`org_role`/`org_permissions`.
fn org_v1(c: &Claims) -> Option<Org> {
    let id = c.org_id.clone().filter(|id| !id.is_empty())?;
    Some(Org {
        id,
        slug: c.org_slug.clone(),
        role: c.org_role.as_deref().map(normalize_role),
        permissions: c.org_permissions.clone().unwrap_or_default(),
    })
}

/// v2 tokens carry `o: {id, slg, rol, per, fpm}` and a top-level `fea`.
fn org_v2(c: &Claims) -> Option<Org> {
    let o = c.o.as_ref().filter(|o| !o.id.is_empty())?;
    Some(Org {
        id: o.id.clone(),
        slug: o.slg.clone(),
        role: o.rol.as_deref().map(normalize_role),
        permissions: org_permissions(
            c.fea.as_deref().unwrap_or(""),
            o.per.as_deref().unwrap_or(""),
            o.fpm.as_deref().unwrap_or(""),
        ),
    })
}

/// Roles always read `org:<role>`.
fn normalize_role(role: &str) -> String {
    if role.starts_with("org:") {
        role.to_string()
    } else {
        format!("org:{role}")
    }
}

/// Clerk's v2 permission encoding, computed as its SDKs do: the org-scoped
/// features of `fea` (scope part containing `o`), and for feature i the
/// decimal bitmask `fpm[i]`, whose bit j grants permission `per[j]`.
pub(crate) fn org_permissions(fea: &str, per: &str, fpm: &str) -> Vec<String> {
    if per.is_empty() || fpm.is_empty() {
        return Vec::new();
    }
    let features = fea.split(',').map(str::trim).filter_map(|f| {
        let (scope, name) = f.split_once(':')?;
        scope.contains('o').then_some(name)
    });
    let permissions: Vec<&str> = per.split(',').map(str::trim).collect();
    let masks = fpm.split(',').map(|m| m.trim().parse::<u64>().unwrap_or(0));
    let mut out = Vec::new();
    for (feature, mask) in features.zip(masks) {
        for (bit, permission) in permissions.iter().enumerate().take(64) {
            if mask >> bit & 1 == 1 {
                out.push(format!("org:{feature}:{permission}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_as_clerk_computes_them() {
        assert_eq!(
            org_permissions("o:notebooks,o:billing", "manage,read", "3,2"),
            [
                "org:notebooks:manage",
                "org:notebooks:read",
                "org:billing:read"
            ]
        );
        // User-scoped features are not org features and do not consume a mask.
        assert_eq!(
            org_permissions("u:profile,o:notebooks", "manage,read", "2"),
            ["org:notebooks:read"]
        );
        assert!(org_permissions("o:a", "", "1").is_empty());
    }

    #[test]
    fn roles_normalized() {
        assert_eq!(normalize_role("admin"), "org:admin");
        assert_eq!(normalize_role("org:admin"), "org:admin");
    }
}
