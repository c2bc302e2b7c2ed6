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
//! # Cargo features
//!
//! A user enables nothing to get the library; both features are off by default.
//!
//! - `testing`: the `testing` module, fake GitHub, Facebook and OpenID Connect providers
//!   served on loopback, for an app's own tests (`[dev-dependencies] rocket_social_auth =
//!   { …, features = ["testing"] }`).
//! - `dev`: the development provider (`kind = "dev"`), a GitHub-compatible provider the app
//!   serves itself, for local development (the demo app enables it). Without it a
//!   `kind = "dev"` table fails the launch with an error naming its key.
//!
//! # Re-exports
//!
//! [`sqlx`] and [`serde_json`] appear in public signatures ([`Policy::on_user_created`],
//! [`Policy::extra_claims`]): use these re-exports so that the versions match.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

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
mod model;
mod policy;
mod provider;
mod ratelimit;
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

pub use config::{
    Config, ConfigError, JwtAlgorithm, JwtConfig, JwtKeyConfig, ProviderConfig, ProviderKind,
    RateLimitConfig,
};
pub use db::{AuthDb, SqlxPool};
pub use error::{Error, ErrorKind};
pub use fairing::{reencrypt, SocialAuthFairing};
pub use flow::is_local_path;
pub use guard::{AuthUser, SocialAuth};
pub use jwt::{Claims, Identity, IssuedJwt};
pub use model::{SignIn, User};
pub use policy::{Denied, Policy};
pub use reply::{RefreshReply, TokenReply, UnlinkReply};
pub use secret::Secret;
pub use service::AuthService;
pub use store::ReencryptReport;

/// The sqlx this crate is built with: [`Policy::on_user_created`] takes its transaction.
pub use sqlx;

/// The serde_json this crate is built with: [`Policy::extra_claims`] returns its `Map`.
pub use serde_json;
