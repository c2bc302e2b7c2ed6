//! Social login for Rocket 0.5 — GitHub, Google, Facebook and any OpenID Connect provider —
//! that ends in a JWT of your own.
//!
//! Attach [`SocialAuthFairing`], configure `[social_auth]` in `Rocket.toml`, and take
//! [`SocialAuth`] (who is signed in) or [`AuthUser`] (401 unless signed in) in your routes.
//! The JWT lives in a private cookie (`__Host-jwt` on an https `public_url`, `jwt` on plain
//! HTTP: see [`AuthService::jwt_cookie_name`]) and is also accepted as `Authorization: Bearer`.
//!
//! ```no_run
//! use rocket::{get, routes};
//! use rocket_social_auth::{AuthUser, SocialAuth, SocialAuthFairing};
//!
//! #[get("/")]
//! fn index(auth: SocialAuth) -> String {
//!     match auth.claims() {
//!         Some(claims) => format!("Hello, {}", claims.name.as_deref().unwrap_or("friend")),
//!         None => "Sign in at /auth/github".into(),
//!     }
//! }
//!
//! #[get("/me")]
//! fn me(user: AuthUser) -> String {
//!     user.sub.clone()
//! }
//!
//! #[rocket::main]
//! async fn main() {
//!     let app = rocket::build()
//!         .attach(SocialAuthFairing::new())
//!         .mount("/", routes![index, me]);
//!     if let Err(e) = app.launch().await {
//!         eprintln!("{e}");
//!         std::process::exit(1);
//!     }
//! }
//! ```
//!
//! # Configure
//!
//! Everything is read from `[social_auth]` (any Rocket profile, `ROCKET_SOCIAL_AUTH` overrides)
//! and the database from `[databases.social_auth]`; [`Config`] documents every key and its
//! default. A wrong value fails the launch with a log line naming the key; nothing panics.
//!
//! ```toml
//! [default.databases.social_auth]
//! url = "sqlite://social_auth.sqlite?mode=rwc"   # or postgres://user@host/db
//!
//! [default.social_auth]
//! base = "/auth"                          # where the routes are mounted
//! public_url = "https://app.example.com"  # callback = {public_url}{base}/{provider}/callback
//! token_keys = ["k1:<base64 of 32 bytes>"] # encrypt provider tokens at rest (required outside debug)
//! # authed_url, logout_url, http_timeout_secs, migrate, expose_refresh_token,
//! # session_exposes_jwt, revocation_cache_secs, ip_header, trusted_proxies: see Config
//!
//! [default.social_auth.jwt]
//! secret = "at least 32 random bytes"     # or algorithm = "ES256" with [[…jwt.keys]]
//! role = "web_user"
//! exp_minutes = 60
//!
//! [default.social_auth.rate_limit]        # optional, per client
//! per_minute = 30
//! # store = "redis"                       # shared by every instance, with redis_url = "redis://…"
//!
//! [default.social_auth.providers.github]  # one table per provider; absent = off
//! client_id = "…"
//! client_secret = "…"
//!
//! [default.social_auth.providers.google]
//! client_id = "…"
//! client_secret = "…"
//!
//! [default.social_auth.providers.okta]    # any OpenID Connect provider, by discovery
//! kind = "oidc"
//! issuer = "https://example.okta.com"
//! client_id = "…"
//! client_secret = "…"
//! ```
//!
//! Provider kinds: `github` (and GitHub Enterprise with `authorize_url`, `token_url`,
//! `api_url`), `facebook`, `google`, `oidc` (discovery from `issuer`), `apple` (Sign in with
//! Apple: `client_id`, `team_id`, `key_id`, `private_key_file`; its `form_post` callback is a
//! cross-site `POST`, turned into a same-site `GET`), and `dev` (the
//! development provider, with the `dev` feature, only in the debug profile on a loopback
//! `public_url`), and any kind the app registers (below). A table named after its kind need not
//! say `kind`; every table may say `link_by_verified_email`; each kind reads its other keys and
//! refuses those it does not have. [`SocialAuthFairing::check_config`] runs the launch's
//! checks without launching.
//!
//! # Use the guards
//!
//! - [`SocialAuth`] never fails: `Social { provider, claims }`, `Local { claims }` (a token
//!   your app issued with [`AuthService::issue_jwt`]) or `Anonymous`. It reads
//!   `Authorization: Bearer` first, else the session cookie, and never waits on the database.
//! - [`AuthUser`] answers 401 to anybody not signed in; it dereferences to the [`Claims`].
//! - `&State<`[`AuthService`]`>` has the helpers for code that holds a user rather than a
//!   request: the stored provider tokens, refresh, logout, unlink, and
//!   [`AuthService::issue_jwt`] for your own login.
//!
//! The routes under `base`: `GET /<provider>` (login), `/<provider>/callback`,
//! `POST /<provider>/link` and `/unlink`, `/session`, `/token`, `/<provider>/refresh`,
//! `/logout`, `POST /logout_all`, `/events` (the user's security log), and `/jwks.json` with
//! an asymmetric algorithm.
//!
//! # Operations
//!
//! Every sign-in, refusal, link, logout and refresh is an [`AuthEvent`], handed to
//! [`Policy::on_event`], logged as one `social_auth::audit …` line, and with
//! `[social_auth.audit] store = true` kept in `auth_events` ([`AuditConfig`]). Metrics are
//! recorded through the `metrics` facade (logins, provider latency, refreshes, guard
//! verifications, revocations, rate limits): install the exporter of your choice. The README
//! lists every event and metric.
//!
//! # Adding a provider
//!
//! A provider this crate does not have is a type that implements [`Provider`] (the authorize
//! URL, the code exchange, the profile, and optionally the refresh), and a *kind*: a function
//! from the typed settings of its table to the provider, registered on the fairing with
//! [`SocialAuthFairing::provider_kind`]. The crate keeps the flow (`state`, PKCE, `nonce`), the
//! users, the encrypted tokens, the refresh lease and the JWT; the provider only speaks to its
//! provider. [`provider::OAuth2Client`] does the OAuth 2.0 parts, [`provider::HttpClient`] (from
//! the [`provider::ProviderContext`]) every HTTP call, with the crate's timeouts and without
//! redirects; the context's checks name the key of a wrong value.
//!
//! ```no_run
//! use rocket::async_trait;
//! use rocket_social_auth::provider::{
//!     FlowParams, OAuth2Client, OAuth2Settings, Profile, Provider, ProviderContext,
//!     ProviderError, TokenSet,
//! };
//! use rocket_social_auth::{ConfigError, Secret, SocialAuthFairing};
//!
//! /// `[default.social_auth.providers.acme]`: `client_id`, `client_secret`, and `url`
//! /// (where Acme is; for its test double).
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct AcmeSettings {
//!     client_id: Option<String>,
//!     client_secret: Option<Secret>,
//!     url: Option<String>,
//! }
//!
//! struct Acme {
//!     oauth: OAuth2Client,
//!     me: String,
//! }
//!
//! fn acme(settings: AcmeSettings, ctx: &ProviderContext) -> Result<Acme, ConfigError> {
//!     let root = ctx.url_or("url", settings.url.as_deref(), "https://acme.example")?;
//!     let oauth = OAuth2Settings::new(
//!         ctx.required("client_id", settings.client_id)?,
//!         ctx.required_secret("client_secret", settings.client_secret)?,
//!         root.join("/oauth/authorize").map_err(|e| ConfigError::new(ctx.key("url"), e.to_string()))?,
//!         root.join("/oauth/token").map_err(|e| ConfigError::new(ctx.key("url"), e.to_string()))?,
//!         ctx.callback_url().clone(),
//!     )
//!     .scopes(vec!["profile".into(), "email".into()]);
//!     Ok(Acme {
//!         oauth: OAuth2Client::new(oauth, ctx.http().clone()),
//!         me: format!("{}/api/me", root.as_str().trim_end_matches('/')),
//!     })
//! }
//!
//! #[async_trait]
//! impl Provider for Acme {
//!     async fn authorize_url(&self, flow: &FlowParams<'_>) -> Result<url::Url, ProviderError> {
//!         Ok(self.oauth.authorize_url(flow, &[]))
//!     }
//!
//!     async fn exchange_code(&self, code: &str, flow: &FlowParams<'_>)
//!         -> Result<TokenSet, ProviderError> {
//!         self.oauth.exchange_code(code, flow).await
//!     }
//!
//!     async fn profile(&self, tokens: &TokenSet, _: &FlowParams<'_>)
//!         -> Result<Profile, ProviderError> {
//!         let http = self.oauth.http();
//!         let me: serde_json::Value = http
//!             .send(http.get(&self.me).bearer_auth(tokens.access_token.expose()))
//!             .await?
//!             .json("Acme GET /api/me")?;
//!         // Key the user on the provider's immutable id, never on a name or an email.
//!         let id = me["id"].as_str().ok_or_else(|| ProviderError::bad_response("no id"))?;
//!         let mut profile = Profile::new(id, me.clone());
//!         if let (Some(email), Some(true)) = (me["email"].as_str(), me["email_verified"].as_bool()) {
//!             profile = profile.verified_email(email);
//!         }
//!         Ok(profile)
//!     }
//!
//!     async fn refresh(&self, token: &Secret) -> Result<TokenSet, ProviderError> {
//!         self.oauth.refresh(token).await
//!     }
//! }
//!
//! #[rocket::launch]
//! fn rocket() -> _ {
//!     rocket::build().attach(SocialAuthFairing::new().provider_kind("acme", acme))
//! }
//! ```
//!
//! and in `Rocket.toml`, under any name:
//!
//! ```toml
//! [default.social_auth.providers.acme]
//! client_id = "…"
//! client_secret = "…"
//! ```
//!
//! A built-in provider is the same: one file in `src/provider/` with its settings, defaults and
//! wire logic, and one line in `src/provider/registry.rs`; its fake goes in `src/testing/`.
//! `tests/it/custom_provider.rs` signs in through a provider written outside the crate.
//!
//! # Security, in short
//!
//! State and PKCE on every flow that allows it, a nonce and full `id_token` checks for OpenID
//! Connect, RFC 9207 `iss`; `next` only as a local path; provider URLs HTTPS (plain HTTP only
//! on loopback); provider tokens encrypted at rest (AES-256-GCM, bound to their row); JWTs
//! revocable by session, refused on every instance within `revocation_cache_secs`; a Local
//! token never acts as a social user; email linking only between providers trusted for it;
//! `__Host-` cookies on https; state-changing `GET`s only with proof of our own site; an
//! optional per-client rate limit, per instance or shared by every instance through Redis.
//! The README's *Security model* says what is and is not protected.
//!
//! # Errors
//!
//! [`AuthService`]'s functions and [`reencrypt`] return [`Error`]: match on its
//! [`ErrorKind`] and read its `source()` for the cause.
//!
//! # Cargo features
//!
//! A user enables nothing to get the library; both features are off by default.
//!
//! - `testing`: the `testing` module, fake GitHub, Facebook, Discord, X and OpenID Connect
//!   (Google, GitLab, LinkedIn, Slack, Microsoft Entra ID, Apple) providers served on loopback,
//!   for an app's own tests (`[dev-dependencies] rocket_social_auth =
//!   { …, features = ["testing"] }`).
//! - `dev`: the development provider (`kind = "dev"`), a GitHub-compatible provider the app
//!   serves itself, for local development (the demo app enables it). Without it a
//!   `kind = "dev"` table fails the launch with an error naming its key.
//!
//! # Re-exports
//!
//! [`sqlx`] and [`serde_json`] appear in public signatures ([`Policy::on_user_created`],
//! [`Policy::extra_claims`]), [`url`] and [`reqwest`] in the provider interface
//! ([`Provider::authorize_url`], [`provider::HttpClient`]): use these re-exports so that the
//! versions match.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod audit;
mod client_ip;
mod clock;
mod config;
mod db;
#[cfg(feature = "dev")]
mod dev;
mod error;
mod fairing;
mod flow;
mod guard;
mod jwt;
mod login_error;
mod measure;
mod model;
mod policy;
pub mod provider;
mod ratelimit;
mod reencrypt;
mod reply;
mod routes;
mod secret;
mod service;
mod sessions;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod upkeep;
// The development provider is built on the GitHub fake: with `dev` alone, only that much of
// the fakes is compiled, and it stays private.
#[cfg(all(feature = "dev", not(feature = "testing")))]
#[allow(dead_code, unused_imports)]
mod testing;
mod vault;
mod verified_cache;

pub use audit::{AuditConfig, AuthEvent, AuthEventKind, RefreshOutcome, RevokeReason};
pub use config::{
    Config, ConfigError, JwtAlgorithm, JwtConfig, JwtKeyConfig, OnStoreError, ProviderTable,
    RateLimitConfig, RateLimitStore,
};
pub use db::{AuthDb, SqlxPool};
pub use error::{Error, ErrorKind};
pub use fairing::SocialAuthFairing;
pub use flow::is_local_path;
pub use guard::{AuthUser, SocialAuth};
pub use jwt::{Claims, Identity, IssuedJwt};
pub use model::{SignIn, User};
pub use policy::{Denied, Policy};
pub use provider::Provider;
pub use reencrypt::reencrypt;
pub use reply::{RefreshReply, TokenReply, UnlinkReply};
pub use secret::Secret;
pub use service::AuthService;
pub use store::ReencryptReport;

/// The sqlx this crate is built with: [`Policy::on_user_created`] takes its transaction.
pub use sqlx;

/// The serde_json this crate is built with: [`Policy::extra_claims`] returns its `Map`.
pub use serde_json;

/// The reqwest this crate is built with: a [`provider::HttpClient`] builds its requests.
pub use reqwest;

/// The url this crate is built with: a [`provider::Provider`] returns its authorize URL.
pub use url;
