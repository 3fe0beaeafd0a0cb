//! A local Clerk stand-in, for tests and for local development servers.
//!
//! [`ClerkStandIn`] owns real RSA-2048 signing keys and mints session tokens
//! that are byte-compatible with Clerk's (see [`TokenBuilder`]), so the
//! verifier is exercised with genuine RS256 signatures instead of mocks. It
//! also mints machine tokens (API keys, OAuth access tokens, M2M tokens) and
//! serves the Backend API routes a verifier talks to, `GET /v1/jwks`,
//! `POST /v1/clients/verify` and the three machine-token verify routes (see
//! [`ClerkStandIn::router`]), with switchable [`Fault`]s per [`Endpoint`] so
//! the unhappy paths (outage, rate limit, hang, garbage) can be tested
//! deterministically, and per-endpoint request counts. Its idea of "now"
//! comes from a [`Clock`] shared with the verifier under test. Nothing here is
//! meant for production use: the default issuer ends in `.invalid` so no real
//! configuration accepts it.

mod faults;
mod machine;
mod mint;
mod server;
#[cfg(test)]
mod tests;

pub use faults::{Fault, Gate};
pub use mint::TokenBuilder;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _, UnparsedPublicKey};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::Clock;

/// Issuer used by [`ClerkStandIn::new`]; `.invalid` can never resolve, so a
/// production deployment cannot be tricked into trusting dev tokens.
pub const DEFAULT_ISSUER: &str = "https://clerk.stand-in.invalid";

/// A client that `POST /v1/clients/verify` returns for a registered client
/// token; lets tests model multi-session clients precisely.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    /// Sessions of the client, in the order they are reported.
    pub sessions: Vec<SessionSpec>,
    /// What Clerk reports as `last_active_session_id`.
    pub last_active_session_id: Option<String>,
}

/// One session of a [`ClientSpec`].
#[derive(Clone, Debug)]
pub struct SessionSpec {
    /// Session id (`sess_...`).
    pub id: String,
    /// User id (`user_...`).
    pub user_id: String,
    /// Clerk session status: `active`, `revoked`, `ended`, `expired`, `pending`, ...
    pub status: String,
}

/// A Backend API route of the stand-in, for faults and request counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /v1/jwks`
    Jwks,
    /// `POST /v1/clients/verify`
    ClientsVerify,
    /// `POST /v1/api_keys/verify`
    ApiKeys,
    /// `POST /v1/oauth_applications/access_tokens/verify`
    OAuthTokens,
    /// `POST /v1/m2m_tokens/verify`
    M2MTokens,
}

/// One RSA key and the `kid` it is published under.
struct SigningKey {
    kid: String,
    pair: KeyPair,
}

impl SigningKey {
    fn generate() -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA-2048 key generation failed");
        Self {
            kid: format!("ins_{}", random_hex(14)),
            pair,
        }
    }

    /// Loads a key from PKCS#8 DER; the kid is derived from the public key
    /// (`ins_` + first 16 hex digits of SHA-256 of the modulus), so every
    /// instance built from the same key publishes the same kid.
    fn from_pkcs8(pkcs8_der: &[u8]) -> Result<Self, aws_lc_rs::error::KeyRejected> {
        let pair = KeyPair::from_pkcs8(pkcs8_der)?;
        let modulus = pair
            .public_key()
            .modulus()
            .big_endian_without_leading_zero();
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, modulus);
        let hex: String = hash.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self {
            kid: format!("ins_{hex}"),
            pair,
        })
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut sig,
            )
            .expect("RSA signing failed");
        sig
    }

    fn verifies(&self, message: &[u8], sig: &[u8]) -> bool {
        let public = self.pair.public_key().as_ref();
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public)
            .verify(message, sig)
            .is_ok()
    }

    /// The JWK exactly as Clerk's `/v1/jwks` lists it (member order included).
    fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        json!({
            "use": "sig",
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        })
    }

    fn public_key_pem(&self) -> String {
        let der = self
            .pair
            .public_key()
            .as_der()
            .expect("SPKI encoding failed");
        let pem = pem::Pem::new("PUBLIC KEY", der.as_ref());
        pem::encode_config(
            &pem,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }
}

/// A key the stand-in made; only `published` ones appear in the JWKS.
struct KeyEntry {
    key: Arc<SigningKey>,
    published: bool,
}

impl KeyEntry {
    fn new(key: SigningKey) -> Self {
        let key = Arc::new(key);
        Self {
            key,
            published: true,
        }
    }
}

/// Everything mutable; guarded by one `std::sync::Mutex`, never held across `.await`.
#[derive(Default)]
struct State {
    /// Newest first; `keys[0]` is the signing key.
    keys: Vec<KeyEntry>,
    raw_jwks: Vec<Value>,
    faults: HashMap<Endpoint, Fault>,
    requests: HashMap<Endpoint, usize>,
    session_status: HashMap<String, String>,
    clients: HashMap<String, ClientSpec>,
    /// Minted machine tokens by secret.
    machine_tokens: HashMap<String, machine::MachineToken>,
    clock: Clock,
}

#[derive(Default)]
struct Inner {
    issuer: String,
    secret_key: String,
    machine_secret_key: String,
    state: Mutex<State>,
    /// Woken on every request, for [`ClerkStandIn::wait_for_requests`].
    request_seen: tokio::sync::Notify,
}

/// A local Clerk: signing keys, a JWKS, a `clients.verify` endpoint and fault
/// injection. Cheap to clone (all clones share one instance), so a test can
/// keep a handle while the server task owns another.
#[derive(Clone)]
pub struct ClerkStandIn {
    inner: Arc<Inner>,
}

impl Default for ClerkStandIn {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ClerkStandIn {
    // Deliberately omits the secret key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClerkStandIn")
            .field("issuer", &self.inner.issuer)
            .field("kid", &self.kid())
            .finish()
    }
}

impl ClerkStandIn {
    /// A fresh instance with issuer [`DEFAULT_ISSUER`] and a random secret key.
    pub fn new() -> Self {
        Self::with_issuer(DEFAULT_ISSUER)
    }

    /// A fresh instance whose tokens carry `issuer` as `iss` (the Frontend API URL).
    pub fn with_issuer(issuer: &str) -> Self {
        Self::with_key(SigningKey::generate(), issuer)
    }

    /// An instance signing with `key`; the Backend API secret key is random.
    fn with_key(key: SigningKey, issuer: &str) -> Self {
        let state = State {
            keys: vec![KeyEntry::new(key)],
            ..State::default()
        };
        let inner = Inner {
            issuer: issuer.to_owned(),
            secret_key: format!("sk_test_stand_in_{}", random_hex(16)),
            machine_secret_key: format!("ak_machine_stand_in_{}", random_hex(16)),
            state: Mutex::new(state),
            ..Inner::default()
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// An instance whose signing key is loaded from PKCS#8 DER (see
    /// [`private_key_pkcs8`](Self::private_key_pkcs8)); the kid is derived
    /// from the public key, so several processes sharing the key file mint
    /// tokens each other's verifiers accept. The secret key stays random.
    pub fn from_pkcs8(
        pkcs8_der: &[u8],
        issuer: &str,
    ) -> Result<Self, aws_lc_rs::error::KeyRejected> {
        Ok(Self::with_key(SigningKey::from_pkcs8(pkcs8_der)?, issuer))
    }

    /// The current signing key as PKCS#8 v1 DER (secret material: dev and
    /// tests only), loadable with [`from_pkcs8`](Self::from_pkcs8).
    pub fn private_key_pkcs8(&self) -> Vec<u8> {
        let der: Pkcs8V1Der<'static> = self
            .signing_key()
            .pair
            .as_der()
            .expect("PKCS#8 encoding failed");
        der.as_ref().to_vec()
    }

    /// The `iss` claim of minted tokens.
    pub fn issuer(&self) -> String {
        self.inner.issuer.clone()
    }

    /// A publishable key that encodes this issuer the way Clerk does:
    /// `pk_test_` + base64(`<issuer host>$`), so issuer derivation can be tested.
    pub fn publishable_key(&self) -> String {
        let host = self
            .inner
            .issuer
            .split_once("://")
            .map_or(&*self.inner.issuer, |(_, rest)| rest);
        format!(
            "pk_test_{}",
            STANDARD.encode(format!("{}$", host.trim_end_matches('/')))
        )
    }

    /// The Backend API secret key (`Authorization: Bearer` of both routes).
    pub fn secret_key(&self) -> String {
        self.inner.secret_key.clone()
    }

    /// The `kid` of the current signing key.
    pub fn kid(&self) -> String {
        self.signing_key().kid.clone()
    }

    /// The current signing key as an SPKI PEM, i.e. what `CLERK_JWT_KEY` holds.
    pub fn public_key_pem(&self) -> String {
        self.signing_key().public_key_pem()
    }

    /// Starts signing with a new key under a new kid, like a Clerk key rotation;
    /// the old key stays in the JWKS until [`retire_key`](Self::retire_key).
    pub fn rotate_key(&self) -> String {
        let entry = KeyEntry::new(SigningKey::generate()); // slow: outside the lock
        let kid = entry.key.kid.clone();
        self.state().keys.insert(0, entry);
        kid
    }

    /// Stops publishing `kid` in the JWKS (it still signs if it is current,
    /// which models "token signed by a key Clerk no longer lists").
    pub fn retire_key(&self, kid: &str) {
        for entry in self.state().keys.iter_mut().filter(|e| e.key.kid == kid) {
            entry.published = false;
        }
    }

    /// Appends a JWKS entry served verbatim after the stand-in's own keys
    /// (weak RSA, EC, `use: enc`, junk ...), to test key filtering.
    pub fn add_raw_jwk(&self, jwk: Value) {
        self.state().raw_jwks.push(jwk);
    }

    /// Fault applied to every following `GET /v1/jwks`.
    pub fn set_jwks_fault(&self, f: Fault) {
        self.set_fault(Endpoint::Jwks, f);
    }

    /// Fault applied to every following `POST /v1/clients/verify`.
    pub fn set_verify_fault(&self, f: Fault) {
        self.set_fault(Endpoint::ClientsVerify, f);
    }

    /// Fault applied to the following requests to `endpoint`.
    pub fn set_fault(&self, endpoint: Endpoint, f: Fault) {
        self.state().faults.insert(endpoint, f);
    }

    /// Number of `GET /v1/jwks` received, whatever the outcome; shows caching
    /// and refetch cooldowns work.
    pub fn jwks_requests(&self) -> usize {
        self.requests(Endpoint::Jwks)
    }

    /// Number of `POST /v1/clients/verify` received, whatever the outcome;
    /// shows result caching and call coalescing work.
    pub fn verify_requests(&self) -> usize {
        self.requests(Endpoint::ClientsVerify)
    }

    /// Requests `endpoint` received, whatever the outcome.
    pub fn requests(&self, endpoint: Endpoint) -> usize {
        self.state().requests.get(&endpoint).copied().unwrap_or(0)
    }

    /// Returns once `endpoint` has received at least `n` requests: an event
    /// to await instead of sleeping until a request "must have" arrived.
    pub async fn wait_for_requests(&self, endpoint: Endpoint, n: usize) {
        loop {
            let seen = self.inner.request_seen.notified();
            tokio::pin!(seen);
            seen.as_mut().enable();
            if self.requests(endpoint) >= n {
                return;
            }
            seen.await;
        }
    }

    /// Makes the stand-in read time from `clock` (minted `iat`, machine
    /// token expiry, clients.verify expiry); share it with the verifier
    /// under test so both agree on "now".
    pub fn set_clock(&self, clock: Clock) {
        self.state().clock = clock;
    }

    /// The stand-in's clock.
    pub fn clock(&self) -> Clock {
        self.state().clock.clone()
    }

    /// The Backend API routes (`/v1/jwks`, `/v1/clients/verify`, the machine
    /// token verify routes), relative so the dev server can nest them under `/__dev`.
    pub fn router(&self) -> axum::Router {
        server::router(self.clone())
    }

    /// Serves [`router`](Self::router) on an ephemeral loopback port for the
    /// life of the current Tokio runtime; returns the base URL to use as
    /// `CLERK_API_URL`.
    pub async fn serve(&self) -> String {
        server::serve(self.router()).await
    }

    /// Starts a session token for `user_id` with Clerk's v2 defaults.
    pub fn token(&self, user_id: &str) -> TokenBuilder {
        TokenBuilder::new(self.clone(), user_id)
    }

    /// RS256 signature of `signing_input` with the current key.
    pub fn sign(&self, signing_input: &[u8]) -> Vec<u8> {
        self.signing_key().sign(signing_input)
    }

    /// Signs the exact header and payload bytes given (no re-serialization),
    /// for duplicate-member, whitespace and odd-JSON tests.
    pub fn sign_raw(&self, header_json: &str, payload_json: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header_json.as_bytes()),
            URL_SAFE_NO_PAD.encode(payload_json.as_bytes())
        );
        let sig = self.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// Sets what `clients.verify` reports as the status of `session_id`.
    pub fn set_session_status(&self, session_id: &str, status: &str) {
        self.state()
            .session_status
            .insert(session_id.to_owned(), status.to_owned());
    }

    /// Makes `clients.verify` answer `client` for `client_token` (takes
    /// precedence over minted-token resolution).
    pub fn register_client(&self, client_token: &str, client: ClientSpec) {
        self.state().clients.insert(client_token.to_owned(), client);
    }

    // ----- crate-internal helpers -----

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn signing_key(&self) -> Arc<SigningKey> {
        Arc::clone(&self.state().keys[0].key)
    }

    fn all_keys(&self) -> Vec<Arc<SigningKey>> {
        self.state()
            .keys
            .iter()
            .map(|e| Arc::clone(&e.key))
            .collect()
    }

    /// Registers `sid` as active unless a status was set already.
    fn ensure_session(&self, sid: &str) {
        self.state()
            .session_status
            .entry(sid.to_owned())
            .or_insert_with(|| "active".to_owned());
    }

    fn session_status(&self, sid: &str) -> String {
        self.state()
            .session_status
            .get(sid)
            .cloned()
            .unwrap_or_else(|| "active".to_owned())
    }

    fn now_ms(&self) -> i64 {
        self.state().clock.unix_ms()
    }

    fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Counts a request and wakes [`wait_for_requests`](Self::wait_for_requests).
    fn count_request(&self, endpoint: Endpoint) {
        *self.state().requests.entry(endpoint).or_default() += 1;
        self.inner.request_seen.notify_waiters();
    }

    /// The fault for this request to `endpoint` (consuming one of a [`Fault::Times`]).
    fn take_fault(&self, endpoint: Endpoint) -> Fault {
        let mut state = self.state();
        let Some(fault) = state.faults.get_mut(&endpoint) else {
            return Fault::None;
        };
        match fault {
            Fault::Times(n, inner) => {
                let inner = (**inner).clone();
                *n = n.saturating_sub(1);
                if *n == 0 {
                    *fault = Fault::None;
                }
                inner
            }
            other => other.clone(),
        }
    }

    fn registered_client(&self, token: &str) -> Option<ClientSpec> {
        self.state().clients.get(token).cloned()
    }

    fn jwks_document(&self) -> Value {
        let (published, raw) = {
            let state = self.state();
            let published: Vec<_> = state
                .keys
                .iter()
                .filter(|e| e.published)
                .map(|e| Arc::clone(&e.key))
                .collect();
            (published, state.raw_jwks.clone())
        };
        let keys: Vec<Value> = published.iter().map(|k| k.jwk()).chain(raw).collect();
        json!({ "keys": keys })
    }
}

/// `n` random bytes as lowercase hex.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).expect("system RNG failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
