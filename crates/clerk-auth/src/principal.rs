//! The verified identity a token stands for: what the rest of the server sees.

use serde::{Deserialize, Serialize};

/// Who is calling, as proven by a verified session token.
///
/// Built only by the verifier (from v1 or v2 claims), so holding one means the
/// token behind it passed every check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// Clerk user id (`sub`), e.g. `user_2abc...`.
    pub user_id: String,
    /// Clerk session id (`sid`), e.g. `sess_2abc...`.
    pub session_id: String,
    /// The active organization, if the session has one.
    pub org: Option<Org>,
    /// Set when someone is impersonating the user (`act`).
    pub actor: Option<Actor>,
    /// The token's `exp`, in seconds since the Unix epoch.
    pub expires_at: i64,
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
