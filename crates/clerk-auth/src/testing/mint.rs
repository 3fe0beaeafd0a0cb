//! Minting of session tokens in Clerk's exact wire format.
//!
//! The defaults reproduce a real Clerk v2 session token byte for byte (header
//! member order, claim order, `nbf = iat - 10`, 60 s lifetime), so a verifier
//! that accepts these accepts Clerk's; every knob exists to produce one
//! specific malformed or hostile variant for a negative test.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::{random_hex, ClerkStandIn};

/// Clerk's default session token lifetime.
const DEFAULT_LIFETIME_SECS: i64 = 60;
/// Clerk back-dates `nbf` by this much to absorb clock skew.
const NBF_BACKDATE_SECS: i64 = 10;
const DEFAULT_AZP: &str = "http://localhost:3000";

/// Organization data of a token, in Clerk v2 terms.
#[derive(Clone, Debug)]
struct OrgSpec {
    id: String,
    slug: String,
    role: String,
    fea: String,
    per: String,
    fpm: String,
}

/// Builds one session token; start with [`ClerkStandIn::token`]. Consumes
/// itself so each step reads as a sentence in tests.
#[derive(Debug)]
pub struct TokenBuilder {
    issuer: ClerkStandIn,
    signer: Option<ClerkStandIn>,
    user_id: String,
    sid: String,
    lifetime: i64,
    iat: i64,
    azp: String,
    org: Option<OrgSpec>,
    v1: bool,
    /// `(name, Some(value))` sets, `(name, None)` removes; applied in order, last.
    claim_edits: Vec<(String, Option<Value>)>,
    header_edits: Vec<(String, Option<Value>)>,
}

impl TokenBuilder {
    pub(super) fn new(issuer: ClerkStandIn, user_id: &str) -> Self {
        Self {
            iat: issuer.now_secs(),
            issuer,
            signer: None,
            user_id: user_id.to_owned(),
            sid: format!("sess_{}", random_hex(14)),
            lifetime: DEFAULT_LIFETIME_SECS,
            azp: DEFAULT_AZP.to_owned(),
            org: None,
            v1: false,
            claim_edits: Vec::new(),
            header_edits: Vec::new(),
        }
    }

    /// Uses this session id (default: a random `sess_...`, registered active).
    pub fn session(mut self, sid: &str) -> Self {
        self.sid = sid.to_owned();
        self
    }

    /// `exp = iat + secs` (default 60); negative values mint expired tokens.
    pub fn lifetime(mut self, secs: i64) -> Self {
        self.lifetime = secs;
        self
    }

    /// Moves `iat` (default now on the stand-in's clock); `nbf` and `exp` follow it.
    pub fn issued_at(mut self, unix_secs: i64) -> Self {
        self.iat = unix_secs;
        self
    }

    /// Sets the `azp` origin (default `http://localhost:3000`).
    pub fn azp(mut self, origin: &str) -> Self {
        self.azp = origin.to_owned();
        self
    }

    /// Adds an active organization: v2 `o` claim plus top-level `fea`, or the
    /// v1 `org_*` claims after [`v1`](Self::v1).
    pub fn org(
        mut self,
        id: &str,
        slug: &str,
        role: &str,
        fea: &str,
        per: &str,
        fpm: &str,
    ) -> Self {
        let s = |v: &str| v.to_owned();
        self.org = Some(OrgSpec {
            id: s(id),
            slug: s(slug),
            role: s(role),
            fea: s(fea),
            per: s(per),
            fpm: s(fpm),
        });
        self
    }

    /// Mints the legacy v1 format (no `v`, `o`, `fea`, `sts`, `fva`).
    pub fn v1(mut self) -> Self {
        self.v1 = true;
        self
    }

    /// Sets or overrides any claim, after all defaults.
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.claim_edits.push((name.to_owned(), Some(value)));
        self
    }

    /// Removes a claim, after all defaults.
    pub fn remove_claim(mut self, name: &str) -> Self {
        self.claim_edits.push((name.to_owned(), None));
        self
    }

    /// Sets or overrides any header member (`alg`, `kid`, `crit`, `jku` ...).
    pub fn header(mut self, name: &str, value: Value) -> Self {
        self.header_edits.push((name.to_owned(), Some(value)));
        self
    }

    /// Removes a header member.
    pub fn remove_header(mut self, name: &str) -> Self {
        self.header_edits.push((name.to_owned(), None));
        self
    }

    /// Signs with `other`'s current key (an attacker key) while the header
    /// still names this stand-in's kid, unless overridden.
    pub fn sign_with(mut self, other: &ClerkStandIn) -> Self {
        self.signer = Some(other.clone());
        self
    }

    /// The claims that [`sign`](Self::sign) would sign.
    pub fn claims(&self) -> Value {
        let mut claims = self.default_claims();
        apply_edits(&mut claims, &self.claim_edits);
        Value::Object(claims)
    }

    /// The compact JWS. Registers the session id as active in the stand-in's
    /// session registry unless a status was set for it already.
    pub fn sign(self) -> String {
        self.issuer.ensure_session(&self.sid);
        let header = Value::Object(self.header_members()).to_string();
        let payload = self.claims().to_string();
        self.signer
            .as_ref()
            .unwrap_or(&self.issuer)
            .sign_raw(&header, &payload)
    }

    /// `{"alg","cat","kid","typ"}` in Clerk's order, then edits.
    fn header_members(&self) -> Map<String, Value> {
        let kid = self.issuer.kid();
        let header =
            json!({"alg": "RS256", "cat": crate::SESSION_TOKEN_CATEGORY, "kid": kid, "typ": "JWT"});
        let mut header = into_map(header);
        apply_edits(&mut header, &self.header_edits);
        header
    }

    /// Clerk's claims before edits, sorted by name as Clerk serializes them.
    fn default_claims(&self) -> Map<String, Value> {
        let mut c = into_map(json!({
            "azp": self.azp, "exp": self.iat + self.lifetime, "iat": self.iat,
            "iss": self.issuer.issuer(), "nbf": self.iat - NBF_BACKDATE_SECS,
            "sid": self.sid, "sub": self.user_id,
        }));
        if !self.v1 {
            c.extend(into_map(json!({"fva": [0, -1], "sts": "active", "v": 2})));
        }
        if let Some(org) = &self.org {
            c.extend(self.org_claims(org));
        }
        c.sort_keys();
        c
    }

    /// v2: `o` (members sorted) and `fea`; v1: `org_*` with computed permissions.
    fn org_claims(&self, org: &OrgSpec) -> Map<String, Value> {
        into_map(if self.v1 {
            json!({
                "org_id": org.id, "org_permissions": org_permissions(&org.fea, &org.per, &org.fpm),
                "org_role": format!("org:{}", org.role), "org_slug": org.slug,
            })
        } else {
            let o = json!({"fpm": org.fpm, "id": org.id, "per": org.per, "rol": org.role, "slg": org.slug});
            json!({"fea": org.fea, "o": o})
        })
    }
}

fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Applies set/remove edits in order; overriding keeps a member's position,
/// removing shifts (never swaps) so the remaining order is Clerk's.
fn apply_edits(map: &mut Map<String, Value>, edits: &[(String, Option<Value>)]) {
    for (name, value) in edits {
        match value {
            Some(v) => {
                map.insert(name.clone(), v.clone());
            }
            None => {
                map.shift_remove(name);
            }
        }
    }
}

/// Clerk's v2 -> permission list expansion (as in Clerk's JS SDK): org-scoped
/// features of `fea` (`o:name`, scope containing `o`) pair positionally with the
/// decimal bitmasks of `fpm`; bit `i` grants `per[i]`, giving `org:<feature>:<perm>`.
pub(super) fn org_permissions(fea: &str, per: &str, fpm: &str) -> Vec<String> {
    let features: Vec<&str> = fea
        .split(',')
        .filter_map(|f| f.trim().split_once(':'))
        .filter(|(scope, _)| scope.contains('o'))
        .map(|(_, name)| name)
        .collect();
    let perms: Vec<&str> = per
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let masks = fpm.split(',').map(|m| m.trim().parse::<u64>().unwrap_or(0));
    let mut out = Vec::new();
    for (feature, mask) in features.iter().zip(masks) {
        for (bit, perm) in perms.iter().enumerate().take(64) {
            if mask & (1 << bit) != 0 {
                out.push(format!("org:{feature}:{perm}"));
            }
        }
    }
    out
}

impl ClerkStandIn {
    /// The payload of `token` if it is a compact JWS signed by any key this
    /// stand-in ever held (published or not); `None` for anything else.
    pub(super) fn minted_claims(&self, token: &str) -> Option<Value> {
        let mut parts = token.split('.');
        let (header, payload, sig) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let signing_input = &token[..header.len() + 1 + payload.len()];
        let keys = self.all_keys();
        if !keys
            .iter()
            .any(|k| k.verifies(signing_input.as_bytes(), &sig))
        {
            return None;
        }
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }
}
