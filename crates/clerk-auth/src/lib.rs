//! Verification of Clerk session tokens, done once and done right.
//!
//! The whole crate exists for one call: [`Verifier::verify`], which turns the
//! bearer token of an HTTP request or a WebSocket into a [`Principal`] or a
//! precise [`AuthError`]. It never makes a network call per request: the
//! public key comes from a PEM (`CLERK_JWT_KEY`) or from Clerk's JWKS, cached
//! by [`jwks::JwksCache`]. The checks are Clerk's rules for verifying a
//! session token by hand (RS256 with the instance's key, `exp`/`nbf`/`iat`
//! with a small clock skew, `iss` = the Frontend API URL, `azp` among the
//! authorized parties, `sts` not pending), made strict, and everything cheap
//! (size, shape, header, key lookup) happens before the RSA signature check.
//! [`webhook`] verifies the Svix signatures on Clerk's webhooks.
//!
//! Features: `axum` adds [`extract`]: finding the token in a request (header
//! or `__session` cookie) and the RFC 6750 parts of refusing it; `testing` adds [`testing::ClerkStandIn`], a local Clerk that mints real
//! RS256 session tokens and serves `/v1/jwks` and `/v1/clients/verify`.
//!
//! Machine tokens (`ak_` API keys, `oat_` OAuth access tokens, `mt_` M2M
//! tokens; see [`MachineConfig`]) are recognised by prefix and checked by
//! Clerk's Backend API, answers cached briefly; the stand-in mints them and
//! serves their verify routes too. Time is read from an injectable [`Clock`].

mod backend;
mod cache;
mod claims;
mod clock;
pub mod config;
mod error;
mod json;
pub mod jwks;
mod keys;
mod machine;
mod principal;
mod remote;
mod token;
mod verifier;
pub mod webhook;

#[cfg(feature = "axum")]
pub mod extract;
#[cfg(feature = "testing")]
pub mod testing;

pub use clock::Clock;
pub use config::{
    issuer_from_publishable_key, KeySource, MachineConfig, RemoteOptions, VerifierConfig,
};
pub use error::{AuthError, ConfigError, PublicCode};
pub use principal::{Actor, Org, Principal, SubjectKind, TokenKind, NEVER_EXPIRES};
pub use verifier::Verifier;

/// Header `cat` value Clerk puts on session tokens.
pub const SESSION_TOKEN_CATEGORY: &str = "cl_B7d4PD111AAA";
/// Tokens longer than this are rejected before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
