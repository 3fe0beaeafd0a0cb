//! The verified identity a token stands for: what the rest of the server sees.

use serde::{Deserialize, Serialize};

/// Who is calling, as proven by a verified token of any kind.
///
/// Built only by the verifier, so holding one means the token behind it
/// passed every check. Session tokens fill every field as before and add
/// `kind: Session`, `subject` = the user id, no scopes. Machine tokens (API
/// keys, OAuth access tokens, M2M tokens) say who acts in `subject`, which
/// may be a user, an organization or a machine: authorize by
/// [`subject_kind`](Self::subject_kind) and `subject`, never by `user_id`
/// alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The id that acts. For session tokens the Clerk user id (`sub`), e.g.
    /// `user_2abc...`; for machine tokens the token's subject, which is an
    /// `org_...` or `mch_...` id when no user acts (equal to `subject`, so
    /// code that keys on it never mistakes an organization for a user id it
    /// knows; use [`acting_user`](Self::acting_user) for "which user, if any").
    pub user_id: String,
    /// Clerk session id (`sid`), e.g. `sess_2abc...`; for machine tokens the
    /// token's own id (not its secret), so per-session revocation still keys.
    pub session_id: String,
    /// The active organization, if the session has one.
    pub org: Option<Org>,
    /// Set when someone is impersonating the user (`act`).
    pub actor: Option<Actor>,
    /// The token's `exp`, in seconds since the Unix epoch. A machine token
    /// that never expires reports [`NEVER_EXPIRES`].
    pub expires_at: i64,
    /// Which kind of token proved this.
    pub kind: TokenKind,
    /// Who acts: `user_...`, `org_...` or `mch_...`.
    pub subject: String,
    /// The machine token's scopes; empty for session tokens (and for machine
    /// tokens issued without scopes, which carry the subject's full rights).
    pub scopes: Vec<String>,
}

/// `expires_at` of a machine token without an expiration: 9999-12-31T23:59:59Z,
/// the latest time the verifier accepts anywhere.
pub const NEVER_EXPIRES: i64 = 253_402_300_799;

/// The kind of bearer token, as Clerk's SDKs name them in `acceptsToken`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum TokenKind {
    /// A session token (RS256 JWT), verified without a network call.
    #[serde(rename = "user")]
    Session,
    /// An API key (`ak_...`).
    #[serde(rename = "api_key")]
    ApiKey,
    /// An OAuth access token issued by Clerk as identity provider (`oat_...`).
    #[serde(rename = "oauth")]
    OAuth,
    /// A machine-to-machine token (`mt_...`).
    #[serde(rename = "m2m")]
    M2M,
}

impl TokenKind {
    /// The name used in JSON (`/me`'s `kind`): `user`, `api_key`, `oauth`, `m2m`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "user",
            TokenKind::ApiKey => "api_key",
            TokenKind::OAuth => "oauth",
            TokenKind::M2M => "m2m",
        }
    }
}

/// What kind of Clerk object a subject id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    User,
    Organization,
    Machine,
}

impl SubjectKind {
    /// The kind of `id` by its Clerk prefix; `None` for anything else.
    pub fn of(id: &str) -> Option<SubjectKind> {
        let (prefix, rest) = id.split_once('_')?;
        if rest.is_empty() {
            return None;
        }
        match prefix {
            "user" => Some(SubjectKind::User),
            "org" => Some(SubjectKind::Organization),
            "mch" => Some(SubjectKind::Machine),
            _ => None,
        }
    }
}

impl Principal {
    /// The kind of `subject`. The verifier refuses tokens whose subject is
    /// not `user_`/`org_`/`mch_` shaped, so this is always known for a
    /// verified principal; `User` is the fallback for hand-built ones.
    pub fn subject_kind(&self) -> SubjectKind {
        SubjectKind::of(&self.subject).unwrap_or(SubjectKind::User)
    }

    /// The user who acts, if a user acts (session tokens, and machine tokens
    /// whose subject is a user).
    pub fn acting_user(&self) -> Option<&str> {
        (self.subject_kind() == SubjectKind::User).then_some(self.subject.as_str())
    }

    /// Whether a machine token (not a session) proved this principal.
    pub fn is_machine(&self) -> bool {
        self.kind != TokenKind::Session
    }
}

/// The session's active organization, normalized across token versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Org {
    pub id: String,
    pub slug: Option<String>,
    /// Always in Clerk's `org:<role>` form.
    pub role: Option<String>,
    /// `org:<feature>:<permission>` strings.
    pub permissions: Vec<String>,
}

/// The impersonator (`act` claim). Typed, never flattened: unknown members are
/// ignored rather than carried along into authorization decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}
