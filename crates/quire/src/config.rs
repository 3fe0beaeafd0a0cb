//! Typed configuration: every setting has an env var (names from DESIGN.md)
//! and a flag; secrets are wrapped so they never print.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clerk_auth::{issuer_from_publishable_key, KeySource, MachineConfig, VerifierConfig};
use secrecy::SecretString;

use crate::notebook::model::Limits;
use crate::realtime::hub::RealtimeLimits;

/// Command line of the `quire` binary.
#[derive(Debug, Parser)]
#[command(
    name = "quire",
    version,
    about = "Multi-user notebook server with Clerk sign-in"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server for real: Clerk configuration is required.
    Serve(ServeArgs),
    /// Run everything locally with a stand-in Clerk (loopback only, SQLite).
    Dev(DevArgs),
}

/// Settings shared by `serve` and `dev`.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Address to listen on.
    #[arg(long, env = "QUIRE_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// `sqlite://path` (default) or `postgres://...`.
    #[arg(long, env = "QUIRE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Redis for fan-out between several processes.
    #[arg(long, env = "QUIRE_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Origins allowed for cookies, CORS and WebSockets (comma list);
    /// defaults to CLERK_AUTHORIZED_PARTIES.
    #[arg(long, env = "QUIRE_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// `text` or `json` log lines.
    #[arg(long, env = "QUIRE_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Verified tokens remembered so they are not RSA-checked again before
    /// they expire (0 turns the cache off).
    #[arg(long, env = "QUIRE_TOKEN_CACHE_CAPACITY", default_value_t = 100_000)]
    pub token_cache_capacity: u64,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub sockets: SocketArgs,
}

/// WebSocket limits and timings; defaults are [`RealtimeLimits::default`].
#[derive(Debug, Clone, Args)]
pub struct SocketArgs {
    /// Largest client message, in bytes (bigger closes with 4413).
    #[arg(long, env = "QUIRE_WS_MAX_MESSAGE_BYTES", default_value_t = 256 * 1024)]
    pub ws_max_message_bytes: usize,
    /// Sustained ops per second per socket.
    #[arg(long, env = "QUIRE_WS_OPS_PER_SEC", default_value_t = 50.0)]
    pub ws_ops_per_sec: f64,
    /// Ops a socket may send at once above the sustained rate.
    #[arg(long, env = "QUIRE_WS_OPS_BURST", default_value_t = 100.0)]
    pub ws_ops_burst: f64,
    /// Messages queued for a socket before it is closed as too slow (4429).
    #[arg(long, env = "QUIRE_WS_OUTBOUND_QUEUE", default_value_t = 256)]
    pub ws_outbound_queue: usize,
    /// Seconds between server pings.
    #[arg(long, env = "QUIRE_WS_PING_SECS", default_value_t = 20)]
    pub ws_ping_secs: u64,
    /// Seconds without a pong before the socket is closed.
    #[arg(long, env = "QUIRE_WS_PONG_TIMEOUT_SECS", default_value_t = 40)]
    pub ws_pong_timeout_secs: u64,
    /// Seconds a socket has to send its first-message auth (else 4408).
    #[arg(long, env = "QUIRE_WS_AUTH_TIMEOUT_SECS", default_value_t = 10)]
    pub ws_auth_timeout_secs: u64,
    /// Sockets one user may hold open at once, over all notebooks.
    #[arg(long, env = "QUIRE_WS_MAX_PER_USER", default_value_t = 100)]
    pub ws_max_per_user: usize,
}

impl SocketArgs {
    /// The socket limits these settings describe; the rest stay default.
    pub fn realtime_limits(&self) -> RealtimeLimits {
        RealtimeLimits {
            max_message_bytes: self.ws_max_message_bytes,
            ops_per_sec: self.ws_ops_per_sec,
            burst: self.ws_ops_burst,
            outbound_queue: self.ws_outbound_queue,
            ping_interval: Duration::from_secs(self.ws_ping_secs),
            pong_timeout: Duration::from_secs(self.ws_pong_timeout_secs),
            auth_timeout: Duration::from_secs(self.ws_auth_timeout_secs),
            max_conns_per_user: self.ws_max_per_user,
            ..RealtimeLimits::default()
        }
    }
}

/// Every limit is configurable; defaults from DESIGN.md.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Largest JSON request body.
    #[arg(long, env = "QUIRE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Largest .ipynb import.
    #[arg(long, env = "QUIRE_MAX_IMPORT_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_import_bytes: usize,
    #[arg(long, env = "QUIRE_MAX_TITLE_CHARS", default_value_t = 200)]
    pub max_title_chars: usize,
    /// Largest cell source, in UTF-8 bytes.
    #[arg(long, env = "QUIRE_MAX_SOURCE_BYTES", default_value_t = 1024 * 1024)]
    pub max_source_bytes: usize,
    #[arg(long, env = "QUIRE_MAX_CELLS", default_value_t = 5000)]
    pub max_cells: usize,
    /// Ops kept per notebook for resume.
    #[arg(long, env = "QUIRE_OP_LOG_KEEP", default_value_t = 1000)]
    pub op_log_keep: usize,
}

impl Default for LimitArgs {
    /// The same values as the flag defaults.
    fn default() -> Self {
        LimitArgs {
            max_body_bytes: 1024 * 1024,
            max_import_bytes: 16 * 1024 * 1024,
            max_title_chars: 200,
            max_source_bytes: 1024 * 1024,
            max_cells: 5000,
            op_log_keep: 1000,
        }
    }
}

impl LimitArgs {
    pub fn notebook_limits(&self) -> Limits {
        Limits {
            max_title_chars: self.max_title_chars,
            max_source_bytes: self.max_source_bytes,
            max_cells: self.max_cells,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthStrategy {
    /// Verify session tokens locally with the instance's public keys.
    Networkless,
    /// Ask Clerk's Backend API (`POST /v1/clients/verify`) for every new token.
    ClientsVerify,
}

fn secret(s: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(s.to_string()))
}

/// Clerk settings (production).
#[derive(Debug, Clone, Args)]
pub struct ClerkArgs {
    #[arg(long, env = "QUIRE_AUTH_STRATEGY", default_value = "networkless")]
    pub auth_strategy: AuthStrategy,
    #[arg(long, env = "CLERK_SECRET_KEY", value_parser = secret, hide_env_values = true)]
    pub clerk_secret_key: Option<SecretString>,
    #[arg(long, env = "CLERK_PUBLISHABLE_KEY")]
    pub clerk_publishable_key: Option<String>,
    /// PEM public key: verification with no network at all.
    #[arg(long, env = "CLERK_JWT_KEY", hide_env_values = true)]
    pub clerk_jwt_key: Option<String>,
    #[arg(long, env = "CLERK_API_URL", default_value = "https://api.clerk.com")]
    pub clerk_api_url: String,
    #[arg(long, env = "CLERK_ISSUER")]
    pub clerk_issuer: Option<String>,
    #[arg(long, env = "CLERK_AUTHORIZED_PARTIES", value_delimiter = ',')]
    pub clerk_authorized_parties: Vec<String>,
    #[arg(long, env = "CLERK_AUDIENCE")]
    pub clerk_audience: Option<String>,
    #[arg(long, env = "CLERK_CLOCK_SKEW_MS", default_value_t = 5000)]
    pub clerk_clock_skew_ms: u64,
    #[arg(long, env = "CLERK_WEBHOOK_SECRET", value_parser = secret, hide_env_values = true)]
    pub clerk_webhook_secret: Option<SecretString>,
    /// Authenticates M2M token (`mt_...`) checks; API keys and OAuth tokens
    /// are checked with `CLERK_SECRET_KEY`.
    #[arg(long, env = "CLERK_MACHINE_SECRET_KEY", value_parser = secret, hide_env_values = true)]
    pub clerk_machine_secret_key: Option<SecretString>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub clerk: ClerkArgs,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// `clients-verify` makes dev mode check tokens with the stand-in's
    /// `/v1/clients/verify`, as production would with Clerk's.
    #[arg(long, env = "QUIRE_AUTH_STRATEGY", default_value = "networkless")]
    pub auth_strategy: AuthStrategy,
    /// PKCS#8 DER file holding the stand-in's signing key: loaded if it
    /// exists, else generated and written (0600). Dev processes sharing it
    /// accept each other's tokens (a local cluster over PostgreSQL + Redis).
    #[arg(long, env = "QUIRE_DEV_KEY_FILE")]
    pub dev_key_file: Option<std::path::PathBuf>,
}

/// A start-up error that names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Clerk(#[from] clerk_auth::ConfigError),
    #[error("{0}")]
    Invalid(String),
}

/// Everything the auth layer needs, resolved and checked.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub strategy: AuthStrategy,
    pub key_source: KeySource,
    pub api_url: String,
    pub secret_key: Option<SecretString>,
    pub verifier: VerifierConfig,
    pub webhook_secret: Option<SecretString>,
    /// The browser app loads Clerk's SDK with this (None in dev).
    pub publishable_key: Option<String>,
}

impl ClerkArgs {
    /// Checks the Clerk settings; missing ones are named, never defaulted to "let everyone in".
    pub fn resolve(&self, token_cache_capacity: u64) -> Result<AuthSettings, ConfigError> {
        let issuer = match (&self.clerk_issuer, &self.clerk_publishable_key) {
            (Some(iss), _) => Some(iss.trim_end_matches('/').to_string()),
            (None, Some(pk)) => Some(issuer_from_publishable_key(pk)?),
            (None, None) => None,
        };
        let key_source = match (
            self.auth_strategy,
            &self.clerk_jwt_key,
            &self.clerk_secret_key,
        ) {
            (AuthStrategy::Networkless, Some(pem), _) => KeySource::Pem(pem.clone()),
            (AuthStrategy::Networkless, None, Some(secret)) => KeySource::Jwks {
                api_url: self.clerk_api_url.clone(),
                secret_key: secret.clone(),
            },
            (AuthStrategy::Networkless, None, None) => {
                return Err(ConfigError::Invalid(
                    "CLERK_SECRET_KEY (or CLERK_JWT_KEY) is required to verify session tokens"
                        .into(),
                ))
            }
            (AuthStrategy::ClientsVerify, _, None) => {
                return Err(ConfigError::Invalid(
                    "CLERK_SECRET_KEY is required with QUIRE_AUTH_STRATEGY=clients-verify".into(),
                ))
            }
            (AuthStrategy::ClientsVerify, _, Some(secret)) => KeySource::ClientsVerify {
                api_url: self.clerk_api_url.clone(),
                secret_key: secret.clone(),
            },
        };
        Ok(AuthSettings {
            strategy: self.auth_strategy,
            key_source,
            api_url: self.clerk_api_url.clone(),
            secret_key: self.clerk_secret_key.clone(),
            verifier: VerifierConfig {
                issuer,
                authorized_parties: self.clerk_authorized_parties.clone(),
                audience: self.clerk_audience.clone(),
                clock_skew: Duration::from_millis(self.clerk_clock_skew_ms),
                verified_cache_capacity: token_cache_capacity,
                machine: self.machine_config()?,
                ..VerifierConfig::default()
            },
            webhook_secret: self.clerk_webhook_secret.clone(),
            publishable_key: self.clerk_publishable_key.clone(),
        })
    }
}

impl ClerkArgs {
    /// Machine tokens are verified with `CLERK_SECRET_KEY` (M2M with
    /// `CLERK_MACHINE_SECRET_KEY` when set); without a secret key they are
    /// refused. A machine key without the secret key is a mistake, named.
    fn machine_config(&self) -> Result<Option<MachineConfig>, ConfigError> {
        match (&self.clerk_secret_key, &self.clerk_machine_secret_key) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(ConfigError::Invalid(
                "CLERK_MACHINE_SECRET_KEY needs CLERK_SECRET_KEY as well".into(),
            )),
            (Some(secret), machine) => {
                let config = MachineConfig::new(self.clerk_api_url.clone(), secret.clone());
                Ok(Some(match machine {
                    Some(key) => config.with_machine_secret_key(key.clone()),
                    None => config,
                }))
            }
        }
    }
}

impl AuthSettings {
    /// Networkless verification with a PEM key and an expected issuer:
    /// what tests and embedded uses need, with everything else default.
    pub fn with_pem(pem: String, issuer: Option<String>) -> AuthSettings {
        AuthSettings {
            strategy: AuthStrategy::Networkless,
            key_source: KeySource::Pem(pem),
            api_url: "https://api.clerk.com".into(),
            secret_key: None,
            verifier: VerifierConfig {
                issuer,
                ..VerifierConfig::default()
            },
            webhook_secret: None,
            publishable_key: None,
        }
    }
}

/// The resolved server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub allowed_origins: Vec<String>,
    pub limits: LimitArgs,
    pub auth: AuthSettings,
    /// Socket limits and timings.
    pub realtime: RealtimeLimits,
    /// Dev mode: the Clerk stand-in is mounted under /__dev.
    pub dev: bool,
}

impl Config {
    /// A configuration with default limits and no Redis (tests, embedding).
    pub fn new(addr: SocketAddr, database_url: String, auth: AuthSettings) -> Config {
        Config {
            addr,
            database_url,
            redis_url: None,
            allowed_origins: Vec::new(),
            limits: LimitArgs::default(),
            auth,
            realtime: RealtimeLimits::default(),
            dev: false,
        }
    }

    /// `quire serve`: production configuration, all of it checked.
    pub fn from_serve(args: &ServeArgs) -> Result<Config, ConfigError> {
        let auth = args.clerk.resolve(args.common.token_cache_capacity)?;
        let allowed_origins = if args.common.allowed_origins.is_empty() {
            args.clerk.clerk_authorized_parties.clone()
        } else {
            args.common.allowed_origins.clone()
        };
        Ok(Config {
            addr: args.common.addr,
            database_url: args
                .common
                .database_url
                .clone()
                .unwrap_or_else(|| "sqlite://quire.db".into()),
            redis_url: args.common.redis_url.clone(),
            allowed_origins: clean_origins(allowed_origins),
            limits: args.common.limits.clone(),
            auth,
            realtime: args.common.sockets.realtime_limits(),
            dev: false,
        })
    }
}

/// Origins compare as exact strings, so drop blanks and trailing slashes.
pub fn clean_origins(origins: Vec<String>) -> Vec<String> {
    origins
        .into_iter()
        .map(|o| o.trim().trim_end_matches('/').to_string())
        .filter(|o| !o.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from(args).unwrap();
        match cli.command {
            Command::Serve(s) => s,
            Command::Dev(_) => unreachable!(),
        }
    }

    #[test]
    fn limit_defaults_match_flags() {
        let args = parse(&["quire", "serve"]);
        let from_flags = format!("{:?}", args.common.limits);
        assert_eq!(from_flags, format!("{:?}", LimitArgs::default()));
    }

    #[test]
    fn socket_defaults_match_realtime_limits() {
        let args = parse(&["quire", "serve"]);
        let from_flags = format!("{:?}", args.common.sockets.realtime_limits());
        assert_eq!(from_flags, format!("{:?}", RealtimeLimits::default()));
    }

    #[test]
    fn socket_limits_come_from_flags() {
        let args = parse(&[
            "quire",
            "serve",
            "--ws-max-per-user",
            "3",
            "--ws-ping-secs",
            "7",
        ]);
        let limits = args.common.sockets.realtime_limits();
        assert_eq!(limits.max_conns_per_user, 3);
        assert_eq!(limits.ping_interval, Duration::from_secs(7));
    }

    #[test]
    fn serve_without_clerk_names_the_variable() {
        let args = parse(&["quire", "serve"]);
        let err = Config::from_serve(&args).unwrap_err().to_string();
        assert!(err.contains("CLERK_SECRET_KEY"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let args = parse(&[
            "quire",
            "serve",
            "--clerk-secret-key",
            "sk_test_supersecret",
        ]);
        let config = Config::from_serve(&args).unwrap();
        assert!(!format!("{config:?}").contains("supersecret"));
        assert!(!format!("{args:?}").contains("supersecret"));
    }

    #[test]
    fn issuer_from_publishable_key_when_not_set() {
        let pk = "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k";
        let args = parse(&[
            "quire",
            "serve",
            "--clerk-secret-key",
            "sk",
            "--clerk-publishable-key",
            pk,
        ]);
        let config = Config::from_serve(&args).unwrap();
        assert_eq!(
            config.auth.verifier.issuer.as_deref(),
            Some("https://clerk.example.com")
        );
    }
}
