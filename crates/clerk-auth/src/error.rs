//! Why a token was refused: a precise reason for logs, a coarse code for clients.

use thiserror::Error;

/// The precise reason a credential was refused. Log it; never send it.
///
/// Clients only ever see [`AuthError::public_code`], so an attacker learns
/// nothing about which check failed (except expiry, which RFC 6750 allows).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("no credentials")]
    Missing,
    #[error("token larger than the size cap")]
    TooLarge,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("duplicate member in {0}")]
    DuplicateMember(&'static str),
    #[error("algorithm not allowed")]
    BadAlgorithm,
    /// `alg: none` (any case): an unsigned token, named as such in the log.
    #[error("forbidden algorithm `none`: the token is unsigned")]
    AlgNone,
    #[error("kid missing")]
    MissingKid,
    #[error("kid too long")]
    KidTooLong,
    #[error("typ is not JWT")]
    BadType,
    #[error("forbidden header parameter `{0}`")]
    ForbiddenHeader(&'static str),
    #[error("not a session token (cat)")]
    NotSessionToken,
    #[error("unknown kid")]
    UnknownKid,
    #[error("bad signature")]
    BadSignature,
    #[error("invalid claims: {0}")]
    InvalidClaims(&'static str),
    #[error("token expired")]
    Expired,
    #[error("token not active yet (nbf)")]
    NotYetValid,
    #[error("token issued in the future (iat)")]
    IssuedInFuture,
    #[error("issuer mismatch")]
    BadIssuer,
    #[error("authorized party (azp) missing or not allowed")]
    BadAuthorizedParty,
    #[error("audience not accepted")]
    BadAudience,
    #[error("session is pending")]
    SessionPending,
    #[error("session not active")]
    SessionNotActive,
    #[error("session revoked")]
    Revoked,
    #[error("Clerk does not know this token")]
    UnknownToken,
    #[error("machine token revoked")]
    MachineTokenRevoked,
    /// Expired machine tokens are `invalid_token`, unlike
    /// expired session tokens, which may say `token_expired`.
    #[error("machine token expired")]
    MachineTokenExpired,
    #[error("machine tokens are not configured")]
    MachineTokensDisabled,
    #[error("verification keys unavailable: {0}")]
    KeysUnavailable(String),
    #[error("Clerk API unavailable: {0}")]
    UpstreamUnavailable(String),
}

/// What a client is told: the `code` of the JSON error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicCode {
    /// No credentials of our scheme at all (401, no `error=` in WWW-Authenticate).
    Unauthenticated,
    /// Any verification failure other than expiry (401).
    InvalidToken,
    /// The token's `exp` has passed (401).
    TokenExpired,
    /// Keys or Clerk could not be reached; retry later (503).
    AuthUnavailable,
}

impl PublicCode {
    /// The snake_case code used in JSON bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            PublicCode::Unauthenticated => "unauthenticated",
            PublicCode::InvalidToken => "invalid_token",
            PublicCode::TokenExpired => "token_expired",
            PublicCode::AuthUnavailable => "auth_unavailable",
        }
    }

    /// The one fixed message per code; the same for every underlying reason.
    pub fn message(self) -> &'static str {
        match self {
            PublicCode::Unauthenticated => "authentication required",
            PublicCode::InvalidToken => "the access token is invalid",
            PublicCode::TokenExpired => "the access token has expired",
            PublicCode::AuthUnavailable => "authentication is temporarily unavailable, retry later",
        }
    }

    /// HTTP status for this code.
    pub fn status(self) -> u16 {
        match self {
            PublicCode::AuthUnavailable => 503,
            _ => 401,
        }
    }
}

impl AuthError {
    /// The coarse code a client may see.
    pub fn public_code(&self) -> PublicCode {
        match self {
            AuthError::Missing => PublicCode::Unauthenticated,
            AuthError::Expired => PublicCode::TokenExpired,
            AuthError::KeysUnavailable(_) | AuthError::UpstreamUnavailable(_) => {
                PublicCode::AuthUnavailable
            }
            _ => PublicCode::InvalidToken,
        }
    }

    /// A short, stable label for metrics (`auth_failures_total{reason=...}`).
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::TooLarge => "too_large",
            AuthError::Malformed(_) => "malformed",
            AuthError::DuplicateMember(_) => "duplicate_member",
            AuthError::BadAlgorithm | AuthError::AlgNone => "bad_algorithm",
            AuthError::MissingKid => "missing_kid",
            AuthError::KidTooLong => "kid_too_long",
            AuthError::BadType => "bad_typ",
            AuthError::ForbiddenHeader(_) => "forbidden_header",
            AuthError::NotSessionToken => "not_session_token",
            AuthError::UnknownKid => "unknown_kid",
            AuthError::BadSignature => "bad_signature",
            AuthError::InvalidClaims(_) => "invalid_claims",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::IssuedInFuture => "iat_in_future",
            AuthError::BadIssuer => "bad_issuer",
            AuthError::BadAuthorizedParty => "bad_azp",
            AuthError::BadAudience => "bad_audience",
            AuthError::SessionPending => "session_pending",
            AuthError::SessionNotActive => "session_not_active",
            AuthError::Revoked => "revoked",
            AuthError::UnknownToken => "unknown_token",
            AuthError::MachineTokenRevoked => "machine_token_revoked",
            AuthError::MachineTokenExpired => "machine_token_expired",
            AuthError::MachineTokensDisabled => "machine_tokens_disabled",
            AuthError::KeysUnavailable(_) => "keys_unavailable",
            AuthError::UpstreamUnavailable(_) => "upstream_unavailable",
        }
    }
}

/// A verifier that cannot be built: the configuration is wrong.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{var} is invalid: {why}")]
    Invalid { var: &'static str, why: String },
}
