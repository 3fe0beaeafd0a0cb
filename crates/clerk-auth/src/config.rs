//! How a [`Verifier`](crate::Verifier) is configured: where keys come from
//! and which claim values are acceptable.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use secrecy::SecretString;

use crate::{Clock, ConfigError};

/// Where verification keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// `CLERK_JWT_KEY`: the instance's PEM public key. Fully offline.
    Pem(String),
    /// `{api_url}/v1/jwks`, fetched with the secret key and cached.
    Jwks {
        api_url: String,
        secret_key: SecretString,
    },
    /// Not a key source: every new token is sent to Clerk's Backend API
    /// (`POST {api_url}/v1/clients/verify`), results cached briefly. Opt-in;
    /// it costs a rate-limited round trip per new token.
    ClientsVerify {
        api_url: String,
        secret_key: SecretString,
    },
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Pem(_) => f.write_str("KeySource::Pem"),
            KeySource::Jwks { api_url, .. } => write!(f, "KeySource::Jwks({api_url})"),
            KeySource::ClientsVerify { api_url, .. } => {
                write!(f, "KeySource::ClientsVerify({api_url})")
            }
        }
    }
}

/// Tuning of the JWKS cache (defaults: 5 min TTL, 30 s cooldown, 3 s timeout).
#[derive(Debug, Clone)]
pub struct JwksOptions {
    /// A fetched key set is refreshed after this long.
    pub ttl: Duration,
    /// Fetches triggered by unknown `kid`s happen at most once per cooldown.
    pub cooldown: Duration,
    /// A JWKS request that takes longer fails.
    pub timeout: Duration,
    /// Larger JWKS responses are refused.
    pub max_bytes: usize,
}

impl Default for JwksOptions {
    fn default() -> Self {
        JwksOptions {
            ttl: Duration::from_secs(300),
            cooldown: Duration::from_secs(30),
            timeout: Duration::from_secs(3),
            max_bytes: 256 * 1024,
        }
    }
}

/// Which claims are acceptable.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Required `iss` (the Frontend API URL). `None` skips the check.
    pub issuer: Option<String>,
    /// When non-empty, `azp` must be present and one of these origins.
    pub authorized_parties: Vec<String>,
    /// When set, `aud` must contain it; when unset a token with `aud` is refused.
    pub audience: Option<String>,
    /// Tolerance applied to `exp`, `nbf` and `iat`.
    pub clock_skew: Duration,
    pub jwks: JwksOptions,
    /// Entries of the verified-token cache (0 = off): a token that verified
    /// is not RSA-checked again until it expires.
    pub verified_cache_capacity: u64,
    /// Tuning of every Backend API verification (clients.verify and machine
    /// tokens): cache TTL, coalescing, timeout, retries.
    pub remote: RemoteOptions,
    /// Where machine tokens (`ak_`, `oat_`, `mt_`) are verified; `None`
    /// refuses them as `invalid_token` without a network call.
    pub machine: Option<MachineConfig>,
    /// Where every time-dependent check reads the time ([`Clock::system`]).
    pub clock: Clock,
}

/// Verification of machine tokens against Clerk's Backend API.
#[derive(Clone)]
pub struct MachineConfig {
    /// `CLERK_API_URL`, e.g. `https://api.clerk.com`.
    pub api_url: String,
    /// `CLERK_SECRET_KEY`: authenticates API key and OAuth token checks (and
    /// M2M checks when no machine secret key is set, as Clerk's SDKs do).
    pub secret_key: SecretString,
    /// `CLERK_MACHINE_SECRET_KEY`: authenticates M2M token checks.
    pub machine_secret_key: Option<SecretString>,
}

impl MachineConfig {
    /// Machine tokens checked at `api_url` with the instance secret key.
    pub fn new(api_url: impl Into<String>, secret_key: SecretString) -> Self {
        MachineConfig {
            api_url: api_url.into(),
            secret_key,
            machine_secret_key: None,
        }
    }

    /// Uses `key` (`CLERK_MACHINE_SECRET_KEY`) for M2M token checks.
    pub fn with_machine_secret_key(mut self, key: SecretString) -> Self {
        self.machine_secret_key = Some(key);
        self
    }
}

impl std::fmt::Debug for MachineConfig {
    // Names which secrets are set, never their values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineConfig")
            .field("api_url", &self.api_url)
            .field("machine_secret_key", &self.machine_secret_key.is_some())
            .finish_non_exhaustive()
    }
}

/// Tuning of Backend API verification (clients.verify and machine tokens).
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// How long a verified token is trusted without asking Clerk again
    /// (never past the token's own `exp`).
    pub cache_ttl: Duration,
    /// Tokens remembered at most.
    pub cache_capacity: u64,
    /// One upstream attempt.
    pub timeout: Duration,
    /// Attempts per verification (429 and 5xx are retried).
    pub max_attempts: u32,
    /// Longest wait between attempts, whatever `Retry-After` says.
    pub max_retry_wait: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            cache_ttl: Duration::from_secs(30),
            cache_capacity: 100_000,
            timeout: Duration::from_secs(3),
            max_attempts: 3,
            max_retry_wait: Duration::from_secs(2),
        }
    }
}

impl Default for VerifierConfig {
    fn default() -> Self {
        VerifierConfig {
            issuer: None,
            authorized_parties: Vec::new(),
            audience: None,
            clock_skew: Duration::from_millis(5000),
            jwks: JwksOptions::default(),
            verified_cache_capacity: 0,
            remote: RemoteOptions::default(),
            machine: None,
            clock: Clock::system(),
        }
    }
}

/// Derives the Frontend API URL (the `iss` of session tokens) from a
/// publishable key: `pk_test_`/`pk_live_` + base64(`<fapi-host>$`), padded or not.
pub fn issuer_from_publishable_key(pk: &str) -> Result<String, ConfigError> {
    let invalid = |why: &str| ConfigError::Invalid {
        var: "CLERK_PUBLISHABLE_KEY",
        why: why.to_string(),
    };
    let encoded = pk
        .strip_prefix("pk_test_")
        .or_else(|| pk.strip_prefix("pk_live_"))
        .ok_or_else(|| invalid("must start with pk_test_ or pk_live_"))?;
    let decoded = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .map_err(|_| invalid("not base64"))?;
    let text = String::from_utf8(decoded).map_err(|_| invalid("not UTF-8"))?;
    let host = text
        .strip_suffix('$')
        .ok_or_else(|| invalid("does not end with $"))?;
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':');
    if !host_ok {
        return Err(invalid("not a host name"));
    }
    Ok(format!("https://{host}"))
}

/// An HTTP client for Clerk's Backend API: one timeout for the whole call,
/// and redirects never followed (they would carry our secret key elsewhere).
pub(crate) fn clerk_http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client with static settings")
}

/// `{api_url}/v1/{path}` whatever the trailing slash.
pub(crate) fn clerk_endpoint(api_url: &str, path: &str) -> String {
    format!("{}/v1/{path}", api_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_from_keys() {
        let padded = format!("pk_test_{}", STANDARD.encode("clerk.example.com$"));
        assert_eq!(
            issuer_from_publishable_key(&padded).unwrap(),
            "https://clerk.example.com"
        );
        let unpadded = format!("pk_live_{}", STANDARD_NO_PAD.encode("clerk.example.com$"));
        assert_eq!(
            issuer_from_publishable_key(&unpadded).unwrap(),
            "https://clerk.example.com"
        );
        assert!(issuer_from_publishable_key("sk_test_abc").is_err());
        let no_dollar = format!("pk_test_{}", STANDARD.encode("clerk.example.com"));
        assert!(issuer_from_publishable_key(&no_dollar).is_err());
        let evil = format!("pk_test_{}", STANDARD.encode("evil.com/path$"));
        assert!(issuer_from_publishable_key(&evil).is_err());
    }
}
