//! The `[social_auth]` configuration: what `Rocket.toml` may say, its defaults, and its checks.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use rocket::figment::Profile;
use serde::Deserialize;
use url::Url;

use crate::secret::Secret;

/// Route names under `base` that a provider may not take.
pub(crate) const RESERVED_NAMES: &[&str] = &[
    "session",
    "token",
    "refresh_token",
    "logout",
    "logout_all",
    "jwks.json",
    "callback",
    "refresh",
    "link",
    "unlink",
    "me",
];

/// The JWT cookie's name on an https `public_url`: browsers keep a `__Host-` cookie only when it
/// is `Secure`, `Path=/` and without `Domain`, so a sibling subdomain cannot plant it.
const JWT_COOKIE_HOST: &str = "__Host-jwt";
/// The JWT cookie's name on plain HTTP (loopback development), where `Secure` is impossible.
const JWT_COOKIE_PLAIN: &str = "jwt";

/// The JWT secret of the repository's own `Rocket.toml` (its debug profile): published, so
/// refused in every profile but `debug`.
pub(crate) const PUBLISHED_JWT_SECRET: &str = "development-only-secret-do-not-use-in-production";

/// The only profile in which the development provider, the published JWT secret and a
/// missing `token_keys` are allowed.
pub(crate) const DEVELOPMENT_PROFILE: &str = "debug";

/// The `[default.social_auth]` table of `Rocket.toml`.
///
/// Every field but `jwt` has a default. Values can be overridden per profile
/// (`[release.social_auth]`), by `ROCKET_SOCIAL_AUTH='{jwt={secret="…"}}'` in the
/// environment, or by another file named in `ROCKET_CONFIG`.
///
/// ```toml
/// [default.social_auth]
/// base = "/auth"
/// public_url = "https://app.example.com"
/// authed_url = "/"
/// logout_url = "/"
/// http_timeout_secs = 10
/// migrate = true
/// expose_refresh_token = false
///
/// [default.social_auth.jwt]
/// secret = "at least 32 bytes of randomness, e.g. openssl rand -base64 48"
/// algorithm = "HS256"
/// role = "web_user"
/// exp_minutes = 60
///
/// [default.social_auth.providers.github]
/// client_id = "Iv1.0123456789abcdef"
/// client_secret = "…"
/// ```
///
/// ```
/// use rocket::figment::{Figment, providers::{Format, Toml}};
/// use rocket_social_auth::Config;
///
/// let figment = Figment::from(Toml::string(r#"
///     [social_auth.jwt]
///     secret = "0123456789abcdef0123456789abcdef"
///     role = "web_user"
/// "#));
/// let config: Config = figment.extract_inner("social_auth").unwrap();
/// assert_eq!(config.base, "/auth");
/// assert_eq!(config.jwt.exp_minutes, 60);
/// assert!(config.providers.is_empty());
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Where the provider routes are mounted. Default `"/auth"`.
    #[serde(default = "default_base")]
    pub base: String,
    /// The address browsers use to reach the app, without a trailing slash; the callback URL
    /// sent to providers is `{public_url}{base}/{provider}/callback`. Cookies get `Secure` when
    /// it is `https`. Default `"http://127.0.0.1:8000"`.
    #[serde(default = "default_public_url")]
    pub public_url: String,
    /// Where a finished login goes when the login had no `next`. Default `"/"`.
    #[serde(default = "default_root")]
    pub authed_url: String,
    /// Where logout goes. Default `"/"`.
    #[serde(default = "default_root")]
    pub logout_url: String,
    /// Timeout, in seconds, of every call to a provider. Default `10`.
    #[serde(default = "default_timeout")]
    pub http_timeout_secs: u64,
    /// Run this crate's migrations at launch. Default `true`.
    #[serde(default = "default_true")]
    pub migrate: bool,
    /// Mount `GET {base}/refresh_token`, which hands the provider's refresh token to the
    /// browser. Default `false`: a refresh token belongs on the server.
    #[serde(default)]
    pub expose_refresh_token: bool,
    /// Put the raw JWT in the body of `GET {base}/session` (as `jwt`), for a client that
    /// sends it as `Authorization: Bearer`. Default `false`: with it on, a script injected
    /// into the app's pages (XSS) can read a lasting token despite the cookie being HttpOnly.
    #[serde(default)]
    pub session_exposes_jwt: bool,
    /// How JWTs are signed and what they claim.
    pub jwt: JwtConfig,
    /// One table per enabled provider, keyed by its name (the `<provider>` of the routes).
    /// An absent table means the provider is off.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderTable>,
    /// Keys that encrypt provider tokens at rest: `"<kid>:<base64 of 32 random bytes>"`, the first
    /// encrypts, all decrypt (rotation). Required in the release profile when a provider is
    /// configured; in debug a random per-process key is used when empty. Default `[]`.
    #[serde(default)]
    pub token_keys: Vec<Secret>,
    /// How often, in seconds, an instance reads the sessions revoked since its last read (all
    /// of them once, at start): how stale another instance's view of a logout may be.
    /// Default `5`.
    #[serde(default = "default_revocation_cache")]
    pub revocation_cache_secs: u64,
    /// Per-client rate limit of login start, callback and refresh; absent means none.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// The header that carries the client IP when the app is behind proxies that set it (e.g.
    /// `X-Forwarded-For`, or `X-Real-IP`), read as a comma-separated list; see
    /// `trusted_proxies` for which entry is the client. Default: none, the peer address is used
    /// (a header anyone can send is never trusted by default).
    #[serde(default)]
    pub ip_header: Option<String>,
    /// How many proxies of ours append to `ip_header` (only with `ip_header`): the client is
    /// the `trusted_proxies`-th entry counting from the right, since the entries left of those
    /// our proxies wrote are whatever the client sent. With fewer entries, the leftmost (all
    /// were then written by our proxies); an entry that is not an IP address gives the peer
    /// address. At least 1; default `1` (the rightmost entry).
    ///
    /// ```toml
    /// [default.social_auth]
    /// ip_header = "X-Forwarded-For"
    /// trusted_proxies = 2   # a CDN in front of a load balancer
    /// ```
    #[serde(default)]
    pub trusted_proxies: Option<u32>,
    /// Audit events: whether they are also kept in the `auth_events` table, and how long.
    #[serde(default)]
    pub audit: crate::audit::AuditConfig,
}

/// The `[default.social_auth.rate_limit]` table.
///
/// A client is an IPv4 address or an IPv6 /64 network (an IPv4-mapped IPv6 address counts as
/// its IPv4 address): one host of IPv6 commonly holds a whole /64.
///
/// ```toml
/// [default.social_auth.rate_limit]
/// per_minute = 30       # sustained requests per client per minute
/// burst = 10            # requests allowed at once
/// max_clients = 100000  # clients remembered; the least recently seen is forgotten first
/// ```
///
/// The allowances are kept in each instance's memory unless `store = "redis"`: then every
/// instance on that Redis shares them, so ten instances allow the limit, not ten times it.
///
/// ```toml
/// [default.social_auth.rate_limit]
/// per_minute = 30
/// store = "redis"
/// redis_url = "redis://:password@10.0.0.5:6379/0"
/// redis_key_prefix = "social_auth:rl:"  # one key per client: {prefix}192.0.2.1, {prefix}2001:db8::/64
/// redis_timeout_ms = 500                # one decision's budget, connecting included
/// on_store_error = "allow"              # Redis unreachable: "allow" (logins go on) or "deny" (429)
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// Sustained requests per minute per client.
    pub per_minute: u32,
    /// Requests allowed in a burst. Default: `per_minute`.
    pub burst: Option<u32>,
    /// How many clients the limiter remembers at most (its memory bound, about 100 bytes
    /// each); beyond it the least recently seen client is forgotten, and starts again with a
    /// full allowance. At least 1; default `100000`. Only for `store = "memory"`: Redis
    /// forgets a client by itself once its allowance is full again (each key has that TTL).
    #[serde(default = "default_max_clients")]
    pub max_clients: u32,
    /// Where the allowances are kept. Default `"memory"` (per instance).
    #[serde(default)]
    pub store: RateLimitStore,
    /// The Redis of `store = "redis"` (required with it, refused without it):
    /// `redis://[[user]:password@]host[:port][/db]` or `unix:///path/to/redis.sock`. TLS
    /// (`rediss://`) is not built in. Kept out of logs and `Debug`, as it may hold a password.
    #[serde(default)]
    pub redis_url: Option<Secret>,
    /// The prefix of this limiter's Redis keys, e.g. to share one Redis between apps. Not
    /// empty; default `"social_auth:rl:"`.
    #[serde(default = "default_redis_key_prefix")]
    pub redis_key_prefix: String,
    /// How long, in milliseconds, one request waits for Redis's decision (connecting
    /// included) before `on_store_error` decides instead: a dead Redis delays a login by at
    /// most this much. At least 1; default `500`.
    #[serde(default = "default_redis_timeout_ms")]
    pub redis_timeout_ms: u64,
    /// What a request gets when Redis cannot be reached or does not answer in time. Default
    /// `"allow"`.
    #[serde(default)]
    pub on_store_error: OnStoreError,
}

/// Where a rate limit keeps its allowances (`social_auth.rate_limit.store`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RateLimitStore {
    /// In this instance's memory (the default): each instance has its own allowances.
    #[default]
    Memory,
    /// In Redis (`redis_url`): every instance on it shares the allowances.
    Redis,
}

/// What a rate-limited request gets when the limit's Redis cannot be reached or does not
/// answer within `redis_timeout_ms` (`social_auth.rate_limit.on_store_error`). Either way a
/// warning is logged, at most once every few seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum OnStoreError {
    /// Let the request through, unlimited (the default): logins keep working while Redis is
    /// down.
    #[default]
    Allow,
    /// Refuse it with 429 and `Retry-After`, as if over the limit: no login while Redis is
    /// down.
    Deny,
}

impl RateLimitConfig {
    /// Checks the keys of the store: `redis_url` goes with `store = "redis"` and is a URL the
    /// Redis client can use (the message never repeats it: it may hold a password).
    fn validate_store(&self) -> Result<(), ConfigError> {
        let key = |k: &str| format!("social_auth.rate_limit.{k}");
        match (self.store, &self.redis_url) {
            (RateLimitStore::Memory, Some(_)) => {
                return Err(ConfigError::new(
                    key("redis_url"),
                    "applies only with `store = \"redis\"`: without it the limit stays in each instance's memory; set the store or remove the URL",
                ))
            }
            (RateLimitStore::Redis, None) => {
                return Err(ConfigError::new(
                    key("redis_url"),
                    "is required with `store = \"redis\"`, e.g. \"redis://127.0.0.1:6379\"",
                ))
            }
            (RateLimitStore::Redis, Some(url)) => {
                let scheme = url.expose().split(':').next().unwrap_or_default();
                if ["rediss", "valkeys"].contains(&scheme.to_ascii_lowercase().as_str()) {
                    return Err(ConfigError::new(
                        key("redis_url"),
                        "asks for TLS (`rediss://`), which this build does not include: use `redis://` on a private network or a TLS tunnel",
                    ));
                }
                // The client's reasons are fixed texts ("Missing hostname", "Invalid database
                // number"): they never quote the URL.
                if let Err(e) = redis::Client::open(url.expose()) {
                    return Err(ConfigError::new(
                        key("redis_url"),
                        format!("is not a Redis URL (redis://[[user]:password@]host[:port][/db] or unix:///path/to/redis.sock): {e}"),
                    ));
                }
            }
            (RateLimitStore::Memory, None) => {}
        }
        if self.redis_key_prefix.is_empty() {
            return Err(ConfigError::new(
                key("redis_key_prefix"),
                "must not be empty: the limiter's keys would mix with the other keys of the Redis",
            ));
        }
        if self.redis_timeout_ms == 0 {
            return Err(ConfigError::new(
                key("redis_timeout_ms"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// One `[[default.social_auth.jwt.keys]]` entry: an asymmetric signing key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JwtKeyConfig {
    /// The key id, put in the header of the tokens it signs and in the JWKS.
    pub kid: String,
    /// A PKCS#8 PEM file with the private key.
    pub private_key_file: Option<std::path::PathBuf>,
    /// The same PEM inline (e.g. from an environment variable).
    pub private_key: Option<Secret>,
}

/// The algorithm that signs our JWTs (`social_auth.jwt.algorithm`); tokens signed with any
/// other are refused. An unknown name fails launch naming the key.
///
/// ```
/// use rocket_social_auth::JwtAlgorithm;
///
/// let alg: JwtAlgorithm = serde_json::from_str("\"ES256\"").unwrap();
/// assert_eq!(alg, JwtAlgorithm::ES256);
/// assert!(!alg.is_hmac());
/// assert_eq!(JwtAlgorithm::default().to_string(), "HS256");
/// assert!(serde_json::from_str::<JwtAlgorithm>("\"none\"").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256, keyed by `secret` (the default).
    #[default]
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSA PKCS#1 v1.5 with SHA-256, with `keys`.
    RS256,
    /// ECDSA on P-256 with SHA-256, with `keys`.
    ES256,
    /// Ed25519, with `keys`.
    EdDSA,
}

impl JwtAlgorithm {
    /// Whether it is keyed by the shared `secret` (HMAC) rather than by `keys`.
    pub fn is_hmac(self) -> bool {
        matches!(
            self,
            JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512
        )
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The `[default.social_auth.jwt]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JwtConfig {
    /// The HMAC key, at least 32 bytes; required with an HMAC algorithm. (The Django app's
    /// `JWT_SECRET`.)
    pub secret: Option<Secret>,
    /// `HS256`, `HS384`, `HS512`, or with `keys`: `RS256`, `ES256`, `EdDSA`. Default `"HS256"`.
    /// Tokens signed with any other algorithm are refused.
    #[serde(default)]
    pub algorithm: JwtAlgorithm,
    /// Asymmetric keys (with `RS256`, `ES256`, `EdDSA`): the first signs, all verify.
    #[serde(default)]
    pub keys: Vec<JwtKeyConfig>,
    /// The `iss` claim, set and verified when configured.
    pub issuer: Option<String>,
    /// The `aud` claim, set and verified when configured.
    pub audience: Option<String>,
    /// Copied into the `role` claim (PostgREST reads it). Required.
    pub role: Option<String>,
    /// Lifetime of a token and of the `jwt` cookie, in minutes. Default `60`.
    #[serde(default = "default_exp")]
    pub exp_minutes: u64,
}

/// One `[default.social_auth.providers.<name>]` table: its `kind`, whether its verified
/// emails may link accounts, and the settings of its kind (each kind documents its keys, and
/// refuses the keys it does not have).
///
/// ```toml
/// [default.social_auth.providers.work]
/// kind = "github"                 # may be left out when the table is named after its kind
/// link_by_verified_email = false
/// client_id = "Iv1.0123456789abcdef"
/// client_secret = "…"
/// ```
#[derive(Clone, Deserialize)]
#[non_exhaustive]
pub struct ProviderTable {
    /// The kind: `github`, `facebook`, `google`, `oidc`, `dev` (with the `dev` feature), or
    /// one the app registered with
    /// [`SocialAuthFairing::provider_kind`](crate::SocialAuthFairing::provider_kind). Default:
    /// the table's name, when a kind has it.
    pub kind: Option<String>,
    /// On the first login of an identity, link it to the existing user with the same email
    /// when this provider vouches for it and the email was vouched for by a provider that
    /// also has this set (GitHub: primary and verified; never Facebook nor `dev`). Default
    /// `false`: accounts are linked only explicitly.
    #[serde(default)]
    pub link_by_verified_email: bool,
    /// The other keys, read by the kind.
    #[serde(flatten)]
    pub(crate) settings: rocket::figment::value::Dict,
}

impl fmt::Debug for ProviderTable {
    /// The kind and the names of the keys, never their values (a table holds secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderTable")
            .field("kind", &self.kind)
            .field("link_by_verified_email", &self.link_by_verified_email)
            .field("keys", &self.settings.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A configuration value that stops launch; it names the offending key.
///
/// ```
/// use rocket_social_auth::ConfigError;
///
/// let error = ConfigError::new("social_auth.jwt.role", "is required");
/// assert_eq!(error.to_string(), "`social_auth.jwt.role` is required");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    key: String,
    message: String,
}

impl ConfigError {
    /// A new error about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The full key, e.g. `social_auth.jwt.secret`.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn default_base() -> String {
    "/auth".into()
}
fn default_public_url() -> String {
    "http://127.0.0.1:8000".into()
}
fn default_root() -> String {
    "/".into()
}
fn default_timeout() -> u64 {
    10
}
fn default_true() -> bool {
    true
}
fn default_exp() -> u64 {
    60
}
fn default_revocation_cache() -> u64 {
    5
}
fn default_max_clients() -> u32 {
    100_000
}
fn default_redis_key_prefix() -> String {
    "social_auth:rl:".into()
}
fn default_redis_timeout_ms() -> u64 {
    500
}

impl Config {
    /// `base` without a trailing slash (`""` when mounted at the root).
    pub(crate) fn base_path(&self) -> &str {
        self.base.trim_end_matches('/')
    }

    /// `public_url` without a trailing slash.
    pub(crate) fn public_origin(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    /// The callback URL registered with a provider.
    pub(crate) fn callback_url(&self, provider: &str) -> String {
        format!(
            "{}{}/{provider}/callback",
            self.public_origin(),
            self.base_path()
        )
    }

    /// The JWT cookie's name: `__Host-jwt` when cookies are `Secure`, else `jwt`.
    pub(crate) fn jwt_cookie_name(&self) -> &'static str {
        if self.secure_cookies() {
            JWT_COOKIE_HOST
        } else {
            JWT_COOKIE_PLAIN
        }
    }

    /// Whether cookies must be `Secure`.
    pub(crate) fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// Checks every value but the providers' settings, which their kinds check. `profile` is
    /// Rocket's profile: the published JWT secret and a missing `token_keys` are allowed only in
    /// `debug`.
    pub(crate) fn validate(&self, profile: &Profile) -> Result<(), ConfigError> {
        let development = profile.as_str() == DEVELOPMENT_PROFILE;
        let key = |k: &str| format!("social_auth.{k}");
        if !self.base.starts_with('/')
            || self.base.contains("//")
            || rocket::http::uri::Origin::parse(&self.base).is_err()
        {
            return Err(ConfigError::new(
                key("base"),
                "must be an absolute path such as \"/auth\"",
            ));
        }
        let public = Url::parse(&self.public_url)
            .map_err(|e| ConfigError::new(key("public_url"), format!("is not a valid URL: {e}")))?;
        if !matches!(public.scheme(), "http" | "https")
            || public.query().is_some()
            || public.fragment().is_some()
            || public.path() != "/"
        {
            return Err(ConfigError::new(
                key("public_url"),
                "must be an http(s) origin such as \"https://app.example.com\", without path or query",
            ));
        }
        for (k, v) in [
            ("authed_url", &self.authed_url),
            ("logout_url", &self.logout_url),
        ] {
            if rocket::http::uri::Reference::parse(v).is_err() || v.is_empty() {
                return Err(ConfigError::new(key(k), "is not a valid URL or path"));
            }
        }
        if self.http_timeout_secs == 0 {
            return Err(ConfigError::new(
                key("http_timeout_secs"),
                "must be at least 1",
            ));
        }
        self.jwt.validate()?;
        self.audit.validate()?;
        if !development
            && self
                .jwt
                .secret
                .as_ref()
                .is_some_and(|s| s.expose() == PUBLISHED_JWT_SECRET)
        {
            return Err(ConfigError::new(
                key("jwt.secret"),
                format!(
                    "is the development secret published in this crate's Rocket.toml, which anyone can sign tokens with: it is refused outside the debug profile (this is `{profile}`); set your own, e.g. from `openssl rand -base64 48`"
                ),
            ));
        }
        if self.revocation_cache_secs == 0 {
            return Err(ConfigError::new(
                key("revocation_cache_secs"),
                "must be at least 1",
            ));
        }
        if let Some(limit) = &self.rate_limit {
            if limit.per_minute == 0 || limit.burst == Some(0) {
                return Err(ConfigError::new(
                    key("rate_limit"),
                    "needs per_minute and burst of at least 1",
                ));
            }
            if limit.max_clients == 0 {
                return Err(ConfigError::new(
                    key("rate_limit.max_clients"),
                    "must be at least 1",
                ));
            }
            limit.validate_store()?;
        }
        if let Some(header) = &self.ip_header {
            if header.is_empty()
                || !header
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(ConfigError::new(key("ip_header"), "is not a header name"));
            }
        }
        match (self.trusted_proxies, &self.ip_header) {
            (Some(0), _) => {
                return Err(ConfigError::new(
                    key("trusted_proxies"),
                    "must be at least 1 (the number of proxies of yours that append to `ip_header`)",
                ))
            }
            (Some(_), None) => {
                return Err(ConfigError::new(
                    key("trusted_proxies"),
                    "needs `social_auth.ip_header`: it counts the entries of that header written by your proxies",
                ))
            }
            _ => {}
        }
        for name in self.providers.keys() {
            check_provider_name(name)?;
        }
        Ok(())
    }

    /// Checks that provider tokens have a key to be encrypted under: `token_keys` may be empty
    /// only in `debug` (a per-process key) or without providers. Checked after the providers'
    /// own checks, which say more.
    pub(crate) fn check_token_keys(&self, profile: &Profile) -> Result<(), ConfigError> {
        let development = profile.as_str() == DEVELOPMENT_PROFILE;
        let key = |k: &str| format!("social_auth.{k}");
        if self.token_keys.is_empty() && !self.providers.is_empty() && !development {
            return Err(ConfigError::new(
                key("token_keys"),
                format!("is required when a provider is configured in every profile but debug (this is `{profile}`): it encrypts provider tokens at rest: \"<kid>:<base64 of 32 random bytes>\", e.g. from `openssl rand -base64 32`"),
            ));
        }
        Ok(())
    }
}

impl JwtConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let key = |k: &str| format!("social_auth.jwt.{k}");
        if self.algorithm.is_hmac() {
            match &self.secret {
                None => return Err(ConfigError::new(key("secret"), "is required")),
                Some(s) if s.expose().len() < 32 => {
                    return Err(ConfigError::new(
                        key("secret"),
                        "is shorter than 32 bytes: use e.g. `openssl rand -base64 48`",
                    ))
                }
                Some(_) => {}
            }
            if !self.keys.is_empty() {
                return Err(ConfigError::new(
                    key("keys"),
                    format!("are for RS256, ES256 or EdDSA, not {}", self.algorithm),
                ));
            }
        } else if self.keys.is_empty() {
            return Err(ConfigError::new(
                key("keys"),
                format!("are required with {}: at least one [[social_auth.jwt.keys]] with kid and private_key_file", self.algorithm),
            ));
        }
        match self.role.as_deref().map(str::trim) {
            None | Some("") => return Err(ConfigError::new(key("role"), "is required")),
            Some(_) => {}
        }
        if self.exp_minutes == 0 {
            return Err(ConfigError::new(key("exp_minutes"), "must be at least 1"));
        }
        Ok(())
    }
}

/// A provider's name is the `<provider>` of its routes: a path segment that names no other route.
fn check_provider_name(name: &str) -> Result<(), ConfigError> {
    let key = format!("social_auth.providers.{name}");
    let valid_name = !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && !name.starts_with(['_', '-']);
    if !valid_name {
        return Err(ConfigError::new(
            key,
            "has an invalid name: use lowercase letters, digits, `_` and `-`",
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(ConfigError::new(
            key,
            format!("is named like one of the routes under `base` ({name}): choose another name"),
        ));
    }
    Ok(())
}

/// Parses a provider URL: HTTPS, or plain HTTP only when the host is loopback.
pub(crate) fn provider_url(key: &str, value: &str) -> Result<Url, ConfigError> {
    let url =
        Url::parse(value).map_err(|e| ConfigError::new(key, format!("is not a valid URL: {e}")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(ConfigError::new(
            key,
            format!("must use https (plain http is allowed only on loopback): `{value}`"),
        )),
    }
}

/// Whether a URL's host is loopback (`localhost`, `127.0.0.0/8`, `::1`).
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::figment::providers::{Format, Toml};
    use rocket::figment::Figment;

    fn config(toml: &str) -> Config {
        Figment::from(Toml::string(toml))
            .extract_inner("social_auth")
            .expect("config parses")
    }

    const JWT: &str =
        "[social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\nrole = \"web_user\"\n";

    #[test]
    fn defaults() {
        let c = config(JWT);
        assert_eq!(c.base, "/auth");
        assert_eq!(c.public_url, "http://127.0.0.1:8000");
        assert_eq!(c.authed_url, "/");
        assert_eq!(c.logout_url, "/");
        assert_eq!(c.http_timeout_secs, 10);
        assert!(c.migrate);
        assert!(!c.expose_refresh_token);
        assert_eq!(c.jwt.algorithm, JwtAlgorithm::HS256);
        assert_eq!(c.jwt.exp_minutes, 60);
        assert!(c.validate(&Profile::new("debug")).is_ok());
        assert!(c.providers.is_empty());
    }

    #[test]
    fn provider_urls_are_https_but_on_loopback() {
        assert!(provider_url("k", "http://127.0.0.1:9/x").is_ok());
        assert!(provider_url("k", "http://localhost:9/x").is_ok());
        assert!(provider_url("k", "http://[::1]:9/x").is_ok());
        let err = provider_url("k", "http://github.example.com/x").unwrap_err();
        assert_eq!(err.key(), "k");
    }

    #[test]
    fn rate_limit_defaults() {
        let c = config(&format!("{JWT}[social_auth.rate_limit]\nper_minute = 5\n"));
        let limit = c.rate_limit.as_ref().unwrap();
        assert_eq!(limit.max_clients, 100_000);
        assert_eq!(limit.burst, None);
        assert_eq!(limit.store, RateLimitStore::Memory);
        assert!(limit.redis_url.is_none());
        assert_eq!(limit.redis_key_prefix, "social_auth:rl:");
        assert_eq!(limit.redis_timeout_ms, 500);
        assert_eq!(limit.on_store_error, OnStoreError::Allow);
        assert_eq!(c.trusted_proxies, None);
        assert!(c.validate(&Profile::new("debug")).is_ok());
        let c = config(&format!(
            "{JWT}[social_auth.rate_limit]\nper_minute = 5\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:6379/2\"\non_store_error = \"deny\"\n"
        ));
        let limit = c.rate_limit.as_ref().unwrap();
        assert_eq!(limit.store, RateLimitStore::Redis);
        assert_eq!(limit.on_store_error, OnStoreError::Deny);
        assert!(c.validate(&Profile::new("debug")).is_ok());
    }

    #[test]
    fn rate_limit_store_errors_name_the_key() {
        let toml = |extra: &str| format!("{JWT}[social_auth.rate_limit]\nper_minute = 5\n{extra}");
        let error = |extra: &str| {
            config(&toml(extra))
                .validate(&Profile::new("debug"))
                .expect_err(extra)
        };
        let redis = "store = \"redis\"\n";
        for (extra, key, says) in [
            (redis.to_owned(), "redis_url", "required"),
            (
                "redis_url = \"redis://127.0.0.1\"\n".to_owned(),
                "redis_url",
                "only with",
            ),
            (
                format!("{redis}redis_url = \"rediss://:pw-in-url@redis.example\"\n"),
                "redis_url",
                "TLS",
            ),
            (
                format!("{redis}redis_url = \"http://:pw-in-url@redis.example\"\n"),
                "redis_url",
                "not a Redis URL",
            ),
            (
                format!("{redis}redis_url = \"redis://:pw-in-url@redis.example/db-one\"\n"),
                "redis_url",
                "database",
            ),
            (
                format!("{redis}redis_url = \"redis://127.0.0.1\"\nredis_key_prefix = \"\"\n"),
                "redis_key_prefix",
                "empty",
            ),
            (
                format!("{redis}redis_url = \"redis://127.0.0.1\"\nredis_timeout_ms = 0\n"),
                "redis_timeout_ms",
                "at least 1",
            ),
        ] {
            let e = error(&extra);
            assert_eq!(e.key(), format!("social_auth.rate_limit.{key}"), "{extra}");
            assert!(e.to_string().contains(says), "{extra}: {e}");
            assert!(!e.to_string().contains("pw-in-url"), "{e}");
        }
        // Unknown names are refused by the parser, which names the key (see the fairing).
        for extra in ["store = \"memcached\"\n", "on_store_error = \"maybe\"\n"] {
            let parsed = Figment::from(Toml::string(&toml(extra)))
                .extract_inner::<Config>("social_auth")
                .expect_err(extra);
            let key = extra.split(' ').next().unwrap();
            assert_eq!(parsed.path[..2], ["rate_limit", key], "{extra}");
        }
    }

    #[test]
    fn client_address_errors_name_the_key() {
        let error = |extra: &str| {
            config(&format!("{JWT}{extra}"))
                .validate(&Profile::new("debug"))
                .expect_err(extra)
        };
        let e = error("[social_auth]\ntrusted_proxies = 2\n");
        assert_eq!(e.key(), "social_auth.trusted_proxies");
        assert!(e.to_string().contains("ip_header"), "{e}");
        let e = error("[social_auth]\nip_header = \"X-Forwarded-For\"\ntrusted_proxies = 0\n");
        assert_eq!(e.key(), "social_auth.trusted_proxies");
        let e = error("[social_auth.rate_limit]\nper_minute = 5\nmax_clients = 0\n");
        assert_eq!(e.key(), "social_auth.rate_limit.max_clients");
        let ok = config(&format!(
            "{JWT}[social_auth]\nip_header = \"X-Forwarded-For\"\ntrusted_proxies = 2\n"
        ));
        assert!(ok.validate(&Profile::new("debug")).is_ok());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = config(&format!(
            "{JWT}[social_auth.providers.github]\nclient_id = \"id\"\nclient_secret = \"very-secret-value\"\n"
        ));
        let debug = format!("{c:?}");
        assert!(debug.contains("client_secret"), "{debug}");
        assert!(!debug.contains("very-secret-value"));
        let c = config(&format!(
            "{JWT}[social_auth.rate_limit]\nper_minute = 5\nstore = \"redis\"\nredis_url = \"redis://:redis-password@10.0.0.5\"\n"
        ));
        assert!(!format!("{c:?}").contains("redis-password"));
        assert!(!debug.contains("0123456789abcdef"));
    }
}
