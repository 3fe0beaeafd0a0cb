//! [`Verifier`]: the one verification path for HTTP and WebSocket alike.

use std::sync::Arc;
use std::time::SystemTime;

use crate::cache::VerifiedCache;
use crate::claims::principal_from_payload;
use crate::clock::unix_millis;
use crate::jwks::JwksCache;
use crate::keys::{key_from_pem, verify_rs256, Key};
use crate::machine::{self, MachineVerifier};
use crate::remote::ClientsVerify;
use crate::{token, AuthError, ConfigError, KeySource, Principal, TokenKind, VerifierConfig};

/// Verifies Clerk session tokens without a network call per request, and
/// machine tokens (`ak_`, `oat_`, `mt_`) through Clerk's Backend API.
///
/// Cheap to clone; keep one per Clerk instance in application state.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: VerifierConfig,
    keys: Keys,
    verified: Option<VerifiedCache>,
    machine: Option<MachineVerifier>,
}

enum Keys {
    /// `CLERK_JWT_KEY`: one key, any `kid` (as Clerk's SDKs do), no network.
    Pem(Key),
    Jwks(JwksCache),
    /// No keys: Clerk's API decides (opt-in strategy).
    Remote(ClientsVerify),
}

impl Verifier {
    /// Builds a verifier; a bad PEM is a configuration error, not a 401 later.
    pub fn new(source: KeySource, config: VerifierConfig) -> Result<Self, ConfigError> {
        let keys = match source {
            KeySource::Pem(pem) => {
                Keys::Pem(key_from_pem(&pem).map_err(|why| ConfigError::Invalid {
                    var: "CLERK_JWT_KEY",
                    why,
                })?)
            }
            KeySource::Jwks {
                api_url,
                secret_key,
            } => Keys::Jwks(JwksCache::with_clock(
                &api_url,
                secret_key,
                config.jwks.clone(),
                config.clock.clone(),
            )),
            KeySource::ClientsVerify {
                api_url,
                secret_key,
            } => Keys::Remote(ClientsVerify::new(
                &api_url,
                secret_key,
                config.remote.clone(),
                config.clock.clone(),
            )),
        };
        let verified = (config.verified_cache_capacity > 0)
            .then(|| VerifiedCache::new(config.verified_cache_capacity));
        let machine = config
            .machine
            .as_ref()
            .map(|m| MachineVerifier::new(m, config.remote.clone(), config.clock.clone()));
        Ok(Verifier {
            inner: Arc::new(Inner {
                config,
                keys,
                verified,
                machine,
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &VerifierConfig {
        &self.inner.config
    }

    /// The JWKS cache, when keys come from the JWKS.
    pub fn jwks(&self) -> Option<&JwksCache> {
        match &self.inner.keys {
            Keys::Jwks(cache) => Some(cache),
            Keys::Pem(_) | Keys::Remote(_) => None,
        }
    }

    /// Verifies `token` now (by the configured clock). See [`Verifier::verify_at`].
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_at(token, self.inner.config.clock.now()).await
    }

    /// Verifies `token` as of `now`: shape and header, key, signature, then
    /// claims, in that order; nothing in the payload is read before the
    /// signature checks out. A token already verified (when the verified
    /// cache is on) costs a hash and a comparison instead.
    ///
    /// A machine token (by prefix) is checked by Clerk instead, its result
    /// cached by the configured clock; `now` is unused for it, as it is with
    /// the clients.verify strategy.
    pub async fn verify_at(&self, token: &str, now: SystemTime) -> Result<Principal, AuthError> {
        if let Some(kind) = machine::kind_of(token) {
            return self.verify_machine(kind, token).await;
        }
        if let Keys::Remote(remote) = &self.inner.keys {
            return remote.verify(token).await;
        }
        let now_ms = unix_millis(now);
        if let Some(hit) = self
            .inner
            .verified
            .as_ref()
            .and_then(|c| c.get(token, now_ms))
        {
            return Ok(hit);
        }
        let unverified = token::parse(token)?;
        let key = self.key(&unverified.kid).await?;
        if !verify_rs256(&key, unverified.signing_input, &unverified.signature) {
            return Err(AuthError::BadSignature);
        }
        let verified = principal_from_payload(&unverified.payload, &self.inner.config, now_ms)?;
        if let Some(cache) = &self.inner.verified {
            let skew = self.inner.config.clock_skew.as_millis() as i64;
            let from = verified.not_before.map_or(i64::MIN, |t| t * 1000 - skew);
            cache.insert(token, &verified.principal, from, skew, now_ms);
        }
        Ok(verified.principal)
    }

    /// Machine tokens go to Clerk, or are refused without a call when not configured.
    async fn verify_machine(&self, kind: TokenKind, token: &str) -> Result<Principal, AuthError> {
        match &self.inner.machine {
            Some(verifier) => verifier.verify(kind, token).await,
            None => Err(AuthError::MachineTokensDisabled),
        }
    }

    /// Whether keys are available (for readiness probes); fetches when cold.
    /// The clients.verify strategy has no keys and is always ready.
    pub async fn ready(&self) -> Result<(), AuthError> {
        match &self.inner.keys {
            Keys::Pem(_) | Keys::Remote(_) => Ok(()),
            Keys::Jwks(cache) => cache.ensure_loaded().await,
        }
    }

    async fn key(&self, kid: &str) -> Result<Key, AuthError> {
        match &self.inner.keys {
            Keys::Pem(key) => Ok(key.clone()),
            Keys::Jwks(cache) => cache.key(kid).await,
            Keys::Remote(_) => Err(AuthError::KeysUnavailable(
                "no keys in clients.verify mode".into(),
            )),
        }
    }
}
