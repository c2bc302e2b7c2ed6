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
const DEVELOPMENT_PROFILE: &str = "debug";

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
    pub providers: BTreeMap<String, ProviderConfig>,
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
    /// full allowance. At least 1; default `100000`.
    #[serde(default = "default_max_clients")]
    pub max_clients: u32,
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

/// The kind of a provider; the tables named `github`, `facebook`, `google` and `dev` need not
/// say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ProviderKind {
    /// GitHub (OAuth App or GitHub App user tokens), or GitHub Enterprise Server.
    Github,
    /// Facebook Login and the Graph API.
    Facebook,
    /// Google (OpenID Connect, with Google's quirks).
    Google,
    /// Any OpenID Connect provider, found by discovery from its `issuer` (GitLab, Microsoft
    /// Entra, Okta, Keycloak, Auth0, …).
    Oidc,
    /// The development provider: a GitHub-compatible provider served by the app itself, which
    /// signs in local test users without any account. Refused in the release profile, and
    /// unless the crate is built with its `dev` feature.
    Dev,
}

/// One `[default.social_auth.providers.<name>]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// The kind; taken from the name when the table is `github`, `facebook` or `dev`.
    pub kind: Option<ProviderKind>,
    /// The OAuth client id (Facebook: the app id). Required (but for `dev`).
    pub client_id: Option<String>,
    /// The OAuth client secret (Facebook: the app secret). Required (but for `dev`).
    pub client_secret: Option<Secret>,
    /// Authorization endpoint. GitHub default `https://github.com/login/oauth/authorize`;
    /// Facebook default `https://www.facebook.com/v19.0/dialog/oauth`.
    pub authorize_url: Option<String>,
    /// Token endpoint (GitHub). Default `https://github.com/login/oauth/access_token`.
    pub token_url: Option<String>,
    /// REST API root (GitHub). Default `https://api.github.com`.
    pub api_url: Option<String>,
    /// Graph API root (Facebook). Default `https://graph.facebook.com/v19.0`.
    pub graph_url: Option<String>,
    /// Scopes asked for. GitHub default `["read:user", "user:email"]`; Facebook default
    /// `["email", "public_profile"]`.
    pub scopes: Option<Vec<String>>,
    /// The OpenID issuer (Google, `kind = "oidc"`); discovery is at
    /// `{issuer}/.well-known/openid-configuration`. Google default `https://accounts.google.com`.
    pub issuer: Option<String>,
    /// Ask for a refresh token (Google: `access_type=offline&prompt=consent`; other OpenID
    /// providers: the `offline_access` scope and `prompt=consent`). Default `false`.
    #[serde(default)]
    pub offline: bool,
    /// On the first login of an identity, link it to the existing user with the same email if
    /// this provider vouches for the email (GitHub: primary and verified; never Facebook).
    /// Default `false`: accounts are linked only explicitly.
    #[serde(default)]
    pub link_by_verified_email: bool,
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

/// A provider table after its checks: kind resolved, URLs parsed.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedProvider {
    pub name: String,
    pub kind: ProviderKind,
    pub client_id: String,
    pub client_secret: Secret,
    pub authorize_url: Url,
    pub token_url: Url,
    pub api_url: Url,
    pub scopes: Vec<String>,
    pub link_by_verified_email: bool,
    /// OpenID: ask for a refresh token.
    pub offline: bool,
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

    /// Checks every value and resolves the providers. `profile` is Rocket's profile: the
    /// development provider, the published JWT secret and a missing `token_keys` are allowed
    /// only in `debug`.
    pub(crate) fn validate(&self, profile: &Profile) -> Result<Vec<ResolvedProvider>, ConfigError> {
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
        let resolved = self
            .providers
            .iter()
            .map(|(name, p)| p.resolve(name, profile, &public))
            .collect::<Result<Vec<_>, _>>()?;
        let mut dev = resolved.iter().filter(|p| p.kind == ProviderKind::Dev);
        if let (Some(first), Some(second)) = (dev.next(), dev.next()) {
            return Err(ConfigError::new(
                key(&format!("providers.{}", second.name)),
                format!(
                    "is a second development provider (`{}` is one already): configure one at most",
                    first.name
                ),
            ));
        }
        if self.token_keys.is_empty() && !self.providers.is_empty() && !development {
            return Err(ConfigError::new(
                key("token_keys"),
                format!("is required when a provider is configured in every profile but debug (this is `{profile}`): it encrypts provider tokens at rest: \"<kid>:<base64 of 32 random bytes>\", e.g. from `openssl rand -base64 32`"),
            ));
        }
        Ok(resolved)
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

impl ProviderConfig {
    fn resolve(
        &self,
        name: &str,
        profile: &Profile,
        public_url: &Url,
    ) -> Result<ResolvedProvider, ConfigError> {
        let key = |k: &str| format!("social_auth.providers.{name}{k}");
        let valid_name = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            && !name.starts_with(['_', '-']);
        if !valid_name {
            return Err(ConfigError::new(
                key(""),
                "has an invalid name: use lowercase letters, digits, `_` and `-`",
            ));
        }
        if RESERVED_NAMES.contains(&name) {
            return Err(ConfigError::new(
                key(""),
                format!(
                    "is named like one of the routes under `base` ({name}): choose another name"
                ),
            ));
        }
        let kind =
            match (self.kind, name) {
                (Some(kind), _) => kind,
                (None, "github") => ProviderKind::Github,
                (None, "facebook") => ProviderKind::Facebook,
                (None, "google") => ProviderKind::Google,
                (None, "dev") => ProviderKind::Dev,
                (None, _) => return Err(ConfigError::new(
                    key(".kind"),
                    "is required for a provider not named after its kind (\"github\", \"facebook\", \"google\" or \"dev\"); use kind = \"oidc\" for any OpenID Connect provider",
                )),
            };
        if kind == ProviderKind::Dev {
            if !cfg!(feature = "dev") {
                return Err(ConfigError::new(
                    key(""),
                    "is the development provider, but rocket_social_auth was built without its `dev` feature: enable it (`features = [\"dev\"]`) for local development, or remove this table",
                ));
            }
            if profile.as_str() != DEVELOPMENT_PROFILE {
                return Err(ConfigError::new(
                    key(""),
                    format!("is the development provider, which signs in anyone: it is allowed only in the debug profile (this is `{profile}`)"),
                ));
            }
            if !is_loopback(public_url) {
                return Err(ConfigError::new(
                    key(""),
                    format!("is the development provider, which signs in anyone: it is allowed only when `social_auth.public_url` is a loopback address (this is `{public_url}`)"),
                ));
            }
            // Its URLs are the app's own; filled in by the fairing.
            let placeholder = Url::parse("http://127.0.0.1/").expect("static URL");
            return Ok(ResolvedProvider {
                name: name.into(),
                kind,
                client_id: self.client_id.clone().unwrap_or_else(|| "dev".into()),
                client_secret: self.client_secret.clone().unwrap_or_default(),
                authorize_url: placeholder.clone(),
                token_url: placeholder.clone(),
                api_url: placeholder,
                scopes: self
                    .scopes
                    .clone()
                    .unwrap_or_else(|| vec!["read:user".into(), "user:email".into()]),
                link_by_verified_email: self.link_by_verified_email,
                offline: self.offline,
            });
        }
        let client_id = match self.client_id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => return Err(ConfigError::new(key(".client_id"), "is required")),
        };
        let client_secret = match &self.client_secret {
            Some(s) if !s.is_empty() => s.clone(),
            _ => return Err(ConfigError::new(key(".client_secret"), "is required")),
        };
        let url = |field: &str, value: &Option<String>, default: &str| {
            provider_url(
                &key(&format!(".{field}")),
                value.as_deref().unwrap_or(default),
            )
        };
        let unused = |field: &str, value: &Option<String>| match value {
            Some(_) => Err(ConfigError::new(
                key(&format!(".{field}")),
                format!("is not used by a {kind:?} provider"),
            )),
            None => Ok(()),
        };
        let (authorize_url, token_url, api_url, scopes) = match kind {
            ProviderKind::Google | ProviderKind::Oidc => {
                for (field, value) in [
                    ("authorize_url", &self.authorize_url),
                    ("token_url", &self.token_url),
                    ("api_url", &self.api_url),
                    ("graph_url", &self.graph_url),
                ] {
                    unused(field, value)?;
                }
                let issuer = match (kind, &self.issuer) {
                    (_, Some(issuer)) => url("issuer", &Some(issuer.clone()), "")?,
                    (ProviderKind::Google, None) => {
                        url("issuer", &None, "https://accounts.google.com")?
                    }
                    _ => {
                        return Err(ConfigError::new(
                            key(".issuer"),
                            "is required for an OpenID Connect provider (discovery is at {issuer}/.well-known/openid-configuration)",
                        ))
                    }
                };
                // Endpoints come from discovery; the issuer stands in until then.
                (
                    issuer.clone(),
                    issuer.clone(),
                    issuer,
                    vec!["openid", "email", "profile"],
                )
            }
            ProviderKind::Facebook => {
                unused("issuer", &self.issuer)?;
                unused("token_url", &self.token_url)?;
                unused("api_url", &self.api_url)?;
                let graph = url(
                    "graph_url",
                    &self.graph_url,
                    "https://graph.facebook.com/v19.0",
                )?;
                let token = Url::parse(&format!(
                    "{}/oauth/access_token",
                    graph.as_str().trim_end_matches('/')
                ))
                .map_err(|e| ConfigError::new(key(".graph_url"), e.to_string()))?;
                (
                    url(
                        "authorize_url",
                        &self.authorize_url,
                        "https://www.facebook.com/v19.0/dialog/oauth",
                    )?,
                    token,
                    graph,
                    vec!["email", "public_profile"],
                )
            }
            _ => {
                unused("graph_url", &self.graph_url)?;
                unused("issuer", &self.issuer)?;
                (
                    url(
                        "authorize_url",
                        &self.authorize_url,
                        "https://github.com/login/oauth/authorize",
                    )?,
                    url(
                        "token_url",
                        &self.token_url,
                        "https://github.com/login/oauth/access_token",
                    )?,
                    url("api_url", &self.api_url, "https://api.github.com")?,
                    vec!["read:user", "user:email"],
                )
            }
        };
        Ok(ResolvedProvider {
            name: name.into(),
            kind,
            client_id,
            client_secret,
            authorize_url,
            token_url,
            // GitHub: the REST API root; Facebook: the Graph API root; OpenID: the issuer.
            api_url,
            scopes: self
                .scopes
                .clone()
                .unwrap_or_else(|| scopes.into_iter().map(String::from).collect()),
            link_by_verified_email: self.link_by_verified_email,
            offline: self.offline,
        })
    }
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
        assert!(c.validate(&Profile::new("debug")).unwrap().is_empty());
    }

    #[test]
    fn github_defaults_and_loopback_rule() {
        let c = config(&format!(
            "{JWT}[social_auth.providers.github]\nclient_id = \"id\"\nclient_secret = \"s\"\n"
        ));
        let p = &c.validate(&Profile::new("debug")).unwrap()[0];
        assert_eq!(p.kind, ProviderKind::Github);
        assert_eq!(
            p.token_url.as_str(),
            "https://github.com/login/oauth/access_token"
        );
        assert_eq!(p.scopes, ["read:user", "user:email"]);
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
        assert_eq!(c.trusted_proxies, None);
        assert!(c.validate(&Profile::new("debug")).is_ok());
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
        assert!(!debug.contains("very-secret-value"));
        assert!(!debug.contains("0123456789abcdef"));
    }
}
