//! [`AuthService`]: the library's functions for code that holds a user rather than a request
//! (the Django app's helpers), shared by the routes.

use std::collections::BTreeMap;

use rocket::http::{Cookie, CookieJar, SameSite, Status};
use rocket::request::Request;
use rocket::response::{self, Responder};
use rocket::serde::json::{json, Json};
use rocket::time::{Duration, OffsetDateTime};

use crate::config::Config;
use crate::error::LoginError;
use crate::flow::Flow;
use crate::guard::JWT_COOKIE;
use crate::jwt::{Claims, Identity, IssuedJwt, JwtCodec, VerifiedCache};
use crate::provider::{FlowParams, Provider, ProviderError, RefreshWith};
use crate::secret::Secret;
use crate::store::{Store, StoreError, User};

/// Errors of [`AuthService`]'s functions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database is down or unreachable.
    #[error("the database is unavailable")]
    DatabaseUnavailable,
    /// A query failed.
    #[error("database error: {0}")]
    Database(String),
    /// A JWT could not be signed.
    #[error("the token could not be signed")]
    Token,
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Error::DatabaseUnavailable,
            other => Error::Database(other.to_string()),
        }
    }
}

/// The answer of `GET {base}/token` and `GET {base}/refresh_token`, and of
/// [`AuthService::get_token`] and [`AuthService::get_refresh_token`]:
/// `{"token": "…", "status": 200}` (or `"refresh_token"`), with `null` and 401, 404 or 503.
///
/// The token is shown by [`TokenReply::token`] and in the JSON, never by `Debug`.
pub struct TokenReply {
    field: &'static str,
    value: Option<Secret>,
    status: Status,
}

impl TokenReply {
    pub(crate) fn new(field: &'static str, value: Option<Secret>, status: Status) -> Self {
        TokenReply {
            field,
            value,
            status,
        }
    }

    /// The token, when the status is 200.
    pub fn token(&self) -> Option<&str> {
        self.value.as_ref().map(Secret::expose)
    }

    /// 200, 401 (signed out), 404 (none stored) or 503 (database unavailable).
    pub fn status(&self) -> Status {
        self.status
    }

    /// The JSON body.
    pub fn to_json(&self) -> serde_json::Value {
        json!({ self.field: self.token(), "status": self.status.code })
    }
}

impl std::fmt::Debug for TokenReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReply")
            .field(self.field, &self.value)
            .field("status", &self.status.code)
            .finish()
    }
}

impl<'r> Responder<'r, 'static> for TokenReply {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        (self.status, Json(self.to_json())).respond_to(request)
    }
}

/// The answer of `{base}/<provider>/refresh` and of [`AuthService::refresh`]:
/// `{"status": "<code>"}` with the status of [`RefreshReply::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshReply {
    /// 200 `refreshed`: new tokens are stored.
    Refreshed,
    /// 401 with an empty code: nobody is signed in.
    SignedOut,
    /// 403 `forbidden`: a cross-site request.
    CrossSite,
    /// 404 `no_refresh_token`: none stored, or no identity with that provider.
    NoRefreshToken,
    /// 401 `reauthenticate`: the provider refused the refresh token, which is now forgotten.
    Reauthenticate,
    /// 502 `provider_error`: the provider failed; the stored tokens are kept.
    ProviderFailed,
    /// 504 `provider_timeout`: the provider did not answer in time; tokens kept.
    ProviderTimeout,
    /// 503 `database_unavailable`.
    DatabaseUnavailable,
}

impl RefreshReply {
    /// The HTTP status.
    pub fn status(&self) -> Status {
        match self {
            RefreshReply::Refreshed => Status::Ok,
            RefreshReply::SignedOut | RefreshReply::Reauthenticate => Status::Unauthorized,
            RefreshReply::CrossSite => Status::Forbidden,
            RefreshReply::NoRefreshToken => Status::NotFound,
            RefreshReply::ProviderFailed => Status::BadGateway,
            RefreshReply::ProviderTimeout => Status::GatewayTimeout,
            RefreshReply::DatabaseUnavailable => Status::ServiceUnavailable,
        }
    }

    /// The `status` field of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            RefreshReply::Refreshed => "refreshed",
            RefreshReply::SignedOut => "",
            RefreshReply::CrossSite => "forbidden",
            RefreshReply::NoRefreshToken => "no_refresh_token",
            RefreshReply::Reauthenticate => "reauthenticate",
            RefreshReply::ProviderFailed => "provider_error",
            RefreshReply::ProviderTimeout => "provider_timeout",
            RefreshReply::DatabaseUnavailable => "database_unavailable",
        }
    }
}

impl<'r> Responder<'r, 'static> for RefreshReply {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        (self.status(), Json(json!({ "status": self.code() }))).respond_to(request)
    }
}

/// The service behind the routes, managed by the fairing: take it as `&State<AuthService>`.
///
/// ```no_run
/// use rocket::{get, State};
/// use rocket::http::CookieJar;
/// use rocket_social_auth::{AuthService, Identity};
///
/// // An app's own (non-social) login issues a token that `SocialAuth` reads as `Local`.
/// #[get("/login/local")]
/// fn local_login(auth: &State<AuthService>, cookies: &CookieJar<'_>) -> Option<&'static str> {
///     let jwt = auth.issue_jwt(Identity::new("admin-1").name("Admin")).ok()?;
///     auth.set_jwt_cookie(cookies, &jwt);
///     Some("signed in")
/// }
/// ```
pub struct AuthService {
    config: Config,
    jwt: JwtCodec,
    verified: VerifiedCache,
    store: Store,
    providers: BTreeMap<String, Box<dyn Provider>>,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("config", &self.config)
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl AuthService {
    pub(crate) fn new(
        config: Config,
        store: Store,
        providers: BTreeMap<String, Box<dyn Provider>>,
    ) -> Self {
        AuthService {
            jwt: JwtCodec::new(&config.jwt),
            verified: VerifiedCache::default(),
            config,
            store,
            providers,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The names of the enabled providers, sorted.
    pub fn providers(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(String::as_str)
    }

    /// The path that starts a login with `provider`, e.g. `/auth/github`.
    pub fn login_path(&self, provider: &str) -> Option<String> {
        self.providers
            .contains_key(provider)
            .then(|| format!("{}/{provider}", self.config.base_path()))
    }

    pub(crate) fn provider(&self, name: &str) -> Option<&dyn Provider> {
        self.providers.get(name).map(|p| &**p)
    }

    /// Issues a JWT, e.g. for an app's own login (`provider: None`).
    pub fn issue_jwt(&self, identity: Identity) -> Result<IssuedJwt, Error> {
        self.jwt.issue(identity).map_err(|e| {
            log::error!("social_auth: {e}");
            Error::Token
        })
    }

    /// The tokens the guard verified recently.
    pub(crate) fn verified(&self) -> &VerifiedCache {
        &self.verified
    }

    /// Checks a JWT (signature, configured algorithm, expiry) and returns its claims.
    pub fn verify_jwt(&self, token: &str) -> Option<Claims> {
        self.jwt.verify(token).ok()
    }

    /// Puts a JWT in the private `jwt` cookie: `SameSite=Lax`, HttpOnly, `Secure` when
    /// `public_url` is https, with the token's lifetime.
    pub fn set_jwt_cookie(&self, cookies: &CookieJar<'_>, jwt: &IssuedJwt) {
        let lifetime = Duration::seconds(self.jwt.lifetime_secs());
        cookies.add_private(
            Cookie::build((JWT_COOKIE, jwt.token.clone()))
                .path("/")
                .same_site(SameSite::Lax)
                .http_only(true)
                .secure(self.config.secure_cookies())
                .max_age(lifetime)
                .expires(OffsetDateTime::now_utc() + lifetime),
        );
    }

    /// Removes the `jwt` cookie.
    pub fn remove_jwt_cookie(&self, cookies: &CookieJar<'_>) {
        cookies.remove_private(Cookie::build(JWT_COOKIE).path("/"));
    }

    /// The stored provider access token of `user_id`'s `provider` account, as stored (expired
    /// or not): 200, 404 when none, 503 when the database is unavailable.
    pub async fn get_token(&self, user_id: i64, provider: &str) -> TokenReply {
        match self.store.tokens(user_id, provider).await {
            Ok(Some(t)) if t.access_token.is_some() => {
                TokenReply::new("token", t.access_token, Status::Ok)
            }
            Ok(_) => TokenReply::new("token", None, Status::NotFound),
            Err(e) => TokenReply::new("token", None, store_status(e)),
        }
    }

    /// The stored refresh token, in the same shapes as [`get_token`](Self::get_token).
    pub async fn get_refresh_token(&self, user_id: i64, provider: &str) -> TokenReply {
        match self.store.tokens(user_id, provider).await {
            Ok(Some(t)) if t.refresh_token.is_some() => {
                TokenReply::new("refresh_token", t.refresh_token, Status::Ok)
            }
            Ok(_) => TokenReply::new("refresh_token", None, Status::NotFound),
            Err(e) => TokenReply::new("refresh_token", None, store_status(e)),
        }
    }

    /// Uses the stored refresh token of `user_id`'s `provider` account (for Facebook, which has
    /// none, exchanges the access token for a long-lived one) and stores what the provider
    /// answers (a provider that sends no new refresh token keeps the old one).
    pub async fn refresh(&self, user_id: i64, provider: &str) -> RefreshReply {
        let Some(client) = self.provider(provider) else {
            return RefreshReply::NoRefreshToken;
        };
        let with = client.refresh_with();
        let stored = match self.store.tokens(user_id, provider).await {
            Ok(Some(t)) => match with {
                RefreshWith::RefreshToken => t.refresh_token,
                RefreshWith::AccessToken => t.access_token,
            },
            Ok(None) => None,
            Err(e) => return refresh_store_error(e),
        };
        let Some(token) = stored else {
            return RefreshReply::NoRefreshToken;
        };
        match client.refresh(&token).await {
            Ok(tokens) => match self.store.store_refreshed(user_id, provider, &tokens).await {
                Ok(()) => RefreshReply::Refreshed,
                Err(e) => refresh_store_error(e),
            },
            Err(e) if e.needs_reauthentication() => {
                log::info!("social_auth: {provider} refused a refresh: {e}");
                let cleared = match with {
                    RefreshWith::RefreshToken => {
                        self.store.clear_refresh_token(user_id, provider).await
                    }
                    RefreshWith::AccessToken => {
                        self.store.clear_access_token(user_id, provider).await
                    }
                };
                match cleared {
                    Ok(()) => RefreshReply::Reauthenticate,
                    Err(e) => refresh_store_error(e),
                }
            }
            Err(ProviderError::Timeout) => RefreshReply::ProviderTimeout,
            Err(e) => {
                log::warn!("social_auth: {provider} refresh failed: {e}");
                RefreshReply::ProviderFailed
            }
        }
    }

    /// Logs `user_id`'s `provider` account out: forgets its access token (the refresh token
    /// stays). Removing the cookie is the caller's part ([`remove_jwt_cookie`](Self::remove_jwt_cookie)).
    pub async fn logout(&self, user_id: i64, provider: &str) -> Result<(), Error> {
        Ok(self.store.clear_access_token(user_id, provider).await?)
    }

    /// Whether the database answers (for a readiness probe).
    pub async fn ready(&self) -> bool {
        self.store.ping().await.is_ok()
    }

    /// The rest of a login once the state checked out: code exchange, profile, upsert, JWT.
    pub(crate) async fn complete_login(
        &self,
        provider: &str,
        code: &str,
        flow: &Flow,
    ) -> Result<(User, IssuedJwt), LoginError> {
        let client = self
            .provider(provider)
            .ok_or(LoginError::Flow(crate::flow::FlowError::Foreign))?;
        let params = FlowParams {
            state: &flow.state,
            pkce_verifier: &flow.verifier,
        };
        let tokens = client
            .exchange_code(code, &params)
            .await
            .map_err(LoginError::Provider)?;
        let profile = client
            .profile(&tokens)
            .await
            .map_err(LoginError::Provider)?;
        let user = self
            .store
            .upsert_login(provider, &profile, &tokens)
            .await
            .map_err(LoginError::Store)?;
        let jwt = self
            .issue_jwt(Identity {
                sub: user.id.to_string(),
                provider: Some(provider.to_owned()),
                name: user.name.clone(),
                email: user.email.clone(),
                avatar_url: user.avatar_url.clone(),
            })
            .map_err(|_| LoginError::Token)?;
        Ok((user, jwt))
    }
}

fn store_status(e: StoreError) -> Status {
    log::error!("social_auth: {e}");
    match e {
        StoreError::Unavailable(_) => Status::ServiceUnavailable,
        _ => Status::InternalServerError,
    }
}

fn refresh_store_error(e: StoreError) -> RefreshReply {
    log::error!("social_auth: {e}");
    RefreshReply::DatabaseUnavailable
}
