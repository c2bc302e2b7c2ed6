//! [`AuthService`]: the library's functions for code that holds a user rather than a request
//! (the Django app's helpers), shared by the routes.

use std::collections::BTreeMap;
use std::sync::Arc;

use rocket::http::{Cookie, CookieJar, SameSite, Status};
use rocket::request::Request;
use rocket::response::{self, Responder};
use rocket::serde::json::{json, Json};
use rocket::time::{Duration, OffsetDateTime};

use crate::client_ip::ClientAddress;
use crate::config::Config;
use crate::error::{Error, ErrorKind};
use crate::flow::Flow;
use crate::jwt::{canonical_user_id, Claims, Identity, IssuedJwt, JwtCodec, VerifiedCache};
use crate::login_error::LoginError;
use crate::policy::Policy;
use crate::provider::{FlowParams, Profile, Provider, ProviderError, RefreshWith, TokenSet};
use crate::ratelimit::RateLimit;
use crate::secret::Secret;
use crate::sessions::{RevocationList, UnwrittenLogout, UnwrittenLogouts};
use crate::store::{
    sign_in, LinkOutcome, LoginOptions, NewSession, Store, StoreError, UnlinkOutcome,
};
use crate::vault::Column;

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

/// The answer of `POST {base}/<provider>/unlink`: `{"status": "<code>"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnlinkReply {
    /// 200 `unlinked`.
    Unlinked,
    /// 401 with an empty code: nobody is signed in.
    SignedOut,
    /// 403 `forbidden`: a cross-site request.
    CrossSite,
    /// 404 `not_linked`: the user has no identity with that provider.
    NotLinked,
    /// 409 `last_identity`: the last identity cannot be removed.
    LastIdentity,
    /// 503 `database_unavailable`.
    DatabaseUnavailable,
}

impl UnlinkReply {
    /// The HTTP status.
    pub fn status(&self) -> Status {
        match self {
            UnlinkReply::Unlinked => Status::Ok,
            UnlinkReply::SignedOut => Status::Unauthorized,
            UnlinkReply::CrossSite => Status::Forbidden,
            UnlinkReply::NotLinked => Status::NotFound,
            UnlinkReply::LastIdentity => Status::Conflict,
            UnlinkReply::DatabaseUnavailable => Status::ServiceUnavailable,
        }
    }

    /// The `status` field of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            UnlinkReply::Unlinked => "unlinked",
            UnlinkReply::SignedOut => "",
            UnlinkReply::CrossSite => "forbidden",
            UnlinkReply::NotLinked => "not_linked",
            UnlinkReply::LastIdentity => "last_identity",
            UnlinkReply::DatabaseUnavailable => "database_unavailable",
        }
    }
}

impl<'r> Responder<'r, 'static> for UnlinkReply {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        (self.status(), Json(json!({ "status": self.code() }))).respond_to(request)
    }
}

/// One enabled provider.
pub(crate) struct ProviderEntry {
    pub client: Box<dyn Provider>,
    pub options: LoginOptions,
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
/// async fn local_login(auth: &State<AuthService>, cookies: &CookieJar<'_>) -> Option<&'static str> {
///     let jwt = auth.issue_jwt(Identity::new("admin-1").name("Admin")).await.ok()?;
///     auth.set_jwt_cookie(cookies, &jwt);
///     Some("signed in")
/// }
/// ```
pub struct AuthService {
    config: Config,
    jwt: JwtCodec,
    verified: VerifiedCache,
    store: Store,
    providers: BTreeMap<String, ProviderEntry>,
    policy: Arc<dyn Policy>,
    revocations: Arc<RevocationList>,
    unwritten: Arc<UnwrittenLogouts>,
    rate_limit: Option<Arc<RateLimit>>,
    /// The JWT cookie's name, chosen once from `public_url` (the guard reads it per request).
    jwt_cookie: &'static str,
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
        jwt: JwtCodec,
        store: Store,
        providers: BTreeMap<String, ProviderEntry>,
        policy: Arc<dyn Policy>,
    ) -> Self {
        let rate_limit = config.rate_limit.as_ref().map(|c| {
            let client = ClientAddress::new(config.ip_header.clone(), config.trusted_proxies);
            Arc::new(RateLimit::new(c, client))
        });
        AuthService {
            jwt,
            verified: VerifiedCache::default(),
            jwt_cookie: config.jwt_cookie_name(),
            config,
            store,
            providers,
            policy,
            revocations: Arc::default(),
            unwritten: Arc::default(),
            rate_limit,
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
        self.providers.get(name).map(|p| &*p.client)
    }

    pub(crate) fn rate_limit(&self) -> Option<&RateLimit> {
        self.rate_limit.as_deref()
    }

    pub(crate) fn jwks(&self) -> Option<&serde_json::Value> {
        self.jwt.jwks()
    }

    /// Issues a JWT and records its session (so that logout can revoke it), e.g. for an app's
    /// own login (`provider: None`, read as [`SocialAuth::Local`](crate::SocialAuth::Local)).
    ///
    /// A token with a `provider` is a social session of user `sub`: `sub` must then be one of
    /// our user ids in canonical decimal, else an error of kind [`ErrorKind::Identity`].
    pub async fn issue_jwt(&self, identity: Identity) -> Result<IssuedJwt, Error> {
        if identity.provider.is_some() && canonical_user_id(&identity.sub).is_none() {
            return Err(Error::new(
                ErrorKind::Identity,
                "invalid identity: a token with a provider must have a user id (canonical decimal) as its sub",
            ));
        }
        let jwt = self
            .jwt
            .issue(identity)
            .map_err(|e| Error::caused_by(ErrorKind::Token, "the token could not be signed", e))?;
        let c = &jwt.claims;
        self.store
            .record_session(&c.jti, &c.sub, c.provider.as_deref(), c.iat, c.exp)
            .await?;
        Ok(jwt)
    }

    /// The tokens the guard verified recently.
    pub(crate) fn verified(&self) -> &VerifiedCache {
        &self.verified
    }

    /// Whether a session was revoked (logout, logout_all), on this or (within
    /// `revocation_cache_secs`) another instance.
    pub(crate) fn is_revoked(&self, jti: &str) -> bool {
        self.revocations.is_revoked(jti)
    }

    /// Checks a JWT (signature, configured algorithm and key, expiry, issuer and audience when
    /// configured, not revoked) and returns its claims.
    pub fn verify_jwt(&self, token: &str) -> Option<Claims> {
        let claims = self.jwt.verify(token).ok()?;
        (!self.revocations.is_revoked(&claims.jti)).then_some(claims)
    }

    /// The name of the private cookie that holds the JWT: `__Host-jwt` when `public_url` is
    /// https, `jwt` on plain HTTP (loopback development).
    ///
    /// Browsers accept a `__Host-` cookie only when it is `Secure`, has `Path=/` and no
    /// `Domain`: a sibling subdomain cannot plant one for this host. With the `__Host-` name in
    /// force the guard reads only that cookie, and a planted `jwt` is ignored.
    ///
    /// ```no_run
    /// use rocket::http::CookieJar;
    /// use rocket::{get, State};
    /// use rocket_social_auth::AuthService;
    ///
    /// // Whether the browser holds a session cookie at all (valid or not).
    /// #[get("/has_cookie")]
    /// fn has_cookie(auth: &State<AuthService>, cookies: &CookieJar<'_>) -> &'static str {
    ///     match cookies.get(auth.jwt_cookie_name()) {
    ///         Some(_) => "a session cookie",
    ///         None => "no session cookie",
    ///     }
    /// }
    /// ```
    pub fn jwt_cookie_name(&self) -> &'static str {
        self.jwt_cookie
    }

    /// Puts a JWT in the private [`jwt_cookie_name`](Self::jwt_cookie_name) cookie:
    /// `SameSite=Lax`, HttpOnly, `Path=/`, no `Domain`, `Secure` when `public_url` is https,
    /// with the token's lifetime.
    pub fn set_jwt_cookie(&self, cookies: &CookieJar<'_>, jwt: &IssuedJwt) {
        let lifetime = Duration::seconds(self.jwt.lifetime_secs());
        cookies.add_private(
            Cookie::build((self.jwt_cookie, jwt.token.clone()))
                .path("/")
                .same_site(SameSite::Lax)
                .http_only(true)
                .secure(self.config.secure_cookies())
                .max_age(lifetime)
                .expires(OffsetDateTime::now_utc() + lifetime),
        );
    }

    /// Removes the [`jwt_cookie_name`](Self::jwt_cookie_name) cookie (`Secure` on https:
    /// browsers ignore a `__Host-` removal without it).
    pub fn remove_jwt_cookie(&self, cookies: &CookieJar<'_>) {
        cookies.remove_private(
            Cookie::build(self.jwt_cookie)
                .path("/")
                .secure(self.config.secure_cookies()),
        );
    }

    /// The stored provider access token of `user_id`'s `provider` account, as stored (expired
    /// or not): 200, 404 when none (or it does not decrypt), 503 when the database is
    /// unavailable.
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
    ///
    /// Concurrent refreshes of one account (several instances, several tabs) make one provider
    /// call: the first takes a short lease on the row (compare-and-set, no lock held across the
    /// call), the others wait for its result and answer with it. This matters for providers that
    /// rotate refresh tokens (GitHub Apps): a second call with the old token would fail and sign
    /// the user out.
    pub async fn refresh(&self, user_id: i64, provider: &str) -> RefreshReply {
        let Some(client) = self.provider(provider) else {
            return RefreshReply::NoRefreshToken;
        };
        let with = client.refresh_with();
        let timeout = self.config.http_timeout_secs as i64;
        let deadline = std::time::Instant::now()
            + std::time::Duration::from_secs(self.config.http_timeout_secs.saturating_mul(2) + 5);
        let owner = crate::jwt::random_token(12);
        let mut first_version = None;
        loop {
            let state = match self.store.refresh_state(user_id, provider).await {
                Ok(Some(state)) => state,
                Ok(None) => return RefreshReply::NoRefreshToken,
                Err(e) => return refresh_store_error(e),
            };
            let token = match with {
                RefreshWith::RefreshToken => state.tokens.refresh_token.as_ref(),
                RefreshWith::AccessToken => state.tokens.access_token.as_ref(),
            };
            match (first_version, token) {
                // Another caller finished while we waited: its result is ours.
                (Some(v), Some(_)) if v != state.version => return RefreshReply::Refreshed,
                (Some(v), None) if v != state.version => return RefreshReply::Reauthenticate,
                _ => {}
            }
            let Some(token) = token else {
                return RefreshReply::NoRefreshToken;
            };
            first_version.get_or_insert(state.version);
            if !state.leased {
                match self
                    .store
                    .take_refresh_lease(user_id, provider, state.version, &owner, timeout + 5)
                    .await
                {
                    Ok(true) => {
                        return self
                            .refresh_leased(client, with, token, user_id, provider, &state, &owner)
                            .await
                    }
                    Ok(false) => {}
                    Err(e) => return refresh_store_error(e),
                }
            }
            if std::time::Instant::now() > deadline {
                return RefreshReply::ProviderTimeout;
            }
            rocket::tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The provider call of a refresh, under the lease.
    #[allow(clippy::too_many_arguments)]
    async fn refresh_leased(
        &self,
        client: &dyn Provider,
        with: RefreshWith,
        token: &Secret,
        user_id: i64,
        provider: &str,
        state: &crate::store::RefreshState,
        owner: &str,
    ) -> RefreshReply {
        let outcome = client.refresh(token).await;
        let release = || async {
            if let Err(e) = self
                .store
                .release_refresh_lease(user_id, provider, owner)
                .await
            {
                log::warn!("social_auth: refresh lease not released (it expires): {e}");
            }
        };
        match outcome.and_then(TokenSet::storable) {
            Ok(tokens) => match self
                .store
                .store_refreshed(user_id, provider, &state.tokens.social_id, &tokens)
                .await
            {
                Ok(()) => RefreshReply::Refreshed,
                Err(e) => refresh_store_error(e),
            },
            Err(e) if e.needs_reauthentication() => {
                log::info!("social_auth: {provider} refused a refresh: {e}");
                let column = match with {
                    RefreshWith::RefreshToken => Column::RefreshToken,
                    RefreshWith::AccessToken => Column::Token,
                };
                match self.store.clear_token(user_id, provider, column).await {
                    Ok(()) => RefreshReply::Reauthenticate,
                    Err(e) => refresh_store_error(e),
                }
            }
            Err(ProviderError::Timeout) => {
                release().await;
                RefreshReply::ProviderTimeout
            }
            Err(e) => {
                log::warn!("social_auth: {provider} refresh failed: {e}");
                release().await;
                RefreshReply::ProviderFailed
            }
        }
    }

    /// Logs a session out: revokes it (the same JWT is refused from now on, on every instance
    /// within `revocation_cache_secs`) and, for a social login, forgets the provider access
    /// token (the refresh token stays). Removing the cookie is the caller's part
    /// ([`remove_jwt_cookie`](Self::remove_jwt_cookie)).
    ///
    /// The session is refused on this instance at once, whatever the database says. When the
    /// database refuses the write, the error says so and the write is retried in the
    /// background (about every second) until it lands, after which other instances learn it
    /// as usual; a retry still pending when this instance stops is lost.
    pub async fn logout(&self, claims: &Claims) -> Result<(), Error> {
        self.revocations.add([(claims.jti.clone(), claims.exp)]);
        let logout = UnwrittenLogout {
            jti: claims.jti.clone(),
            account: claims.user_id().zip(claims.provider.clone()),
        };
        if let Err(e) = write_logout(&self.store, &logout).await {
            self.unwritten.push(logout);
            return Err(e.into());
        }
        Ok(())
    }

    /// Revokes every session of the signed-in user (logout everywhere) and returns how many:
    /// for a social session every social session of that user, for an app's own (Local)
    /// session every Local session with the same `sub` — never the other kind.
    pub async fn logout_all(&self, claims: &Claims) -> Result<usize, Error> {
        let revoked = match claims.user_id() {
            Some(user_id) => {
                self.store
                    .revoke_all_sessions(&user_id.to_string(), true)
                    .await?
            }
            None if claims.provider.is_none() => {
                self.store.revoke_all_sessions(&claims.sub, false).await?
            }
            // A social claim without a canonical user id was never issued by us.
            None => Vec::new(),
        };
        let n = revoked.len();
        self.revocations.add(revoked);
        Ok(n)
    }

    /// Removes `user_id`'s identity with `provider`, unless it is the last one, and revokes
    /// every session that was signed in through it.
    pub async fn unlink(&self, user_id: i64, provider: &str) -> UnlinkReply {
        match self.store.unlink(user_id, provider).await {
            Ok(UnlinkOutcome::Unlinked(revoked)) => {
                self.revocations.add(revoked);
                UnlinkReply::Unlinked
            }
            Ok(UnlinkOutcome::NotLinked) => UnlinkReply::NotLinked,
            Ok(UnlinkOutcome::LastIdentity) => UnlinkReply::LastIdentity,
            Err(e) => {
                log::error!("social_auth: {e}");
                UnlinkReply::DatabaseUnavailable
            }
        }
    }

    /// Whether the database answers (for a readiness probe).
    pub async fn ready(&self) -> bool {
        self.store.ping().await.is_ok()
    }

    /// The background upkeep of this instance: owned handles a task can keep.
    pub(crate) fn upkeep(&self) -> Upkeep {
        Upkeep {
            store: self.store.clone(),
            revocations: self.revocations.clone(),
            unwritten: self.unwritten.clone(),
            rate_limit: self.rate_limit.clone(),
            every: std::time::Duration::from_secs(self.config.revocation_cache_secs),
        }
    }

    /// The rest of a login once the state checked out: code exchange, profile, policy, then
    /// either a sign-in (upsert, JWT, session) or, for a link flow, a link to the signed-in user.
    pub(crate) async fn complete_login(
        &self,
        provider: &str,
        code: &str,
        flow: &Flow,
        current: Option<&Claims>,
    ) -> Result<Option<IssuedJwt>, LoginError> {
        let entry = self
            .providers
            .get(provider)
            .ok_or(LoginError::Flow(crate::flow::FlowError::Foreign))?;
        // A link flow belongs to the user who started it, still signed in.
        if let Some(link_user) = flow.link_user {
            if current.and_then(Claims::user_id) != Some(link_user) {
                return Err(LoginError::LinkSessionChanged);
            }
        }
        let params = FlowParams {
            state: &flow.state,
            pkce_verifier: &flow.verifier,
            nonce: &flow.nonce,
        };
        let tokens = entry
            .client
            .exchange_code(code, &params)
            .await
            .and_then(TokenSet::storable)
            .map_err(LoginError::Provider)?;
        let profile = entry
            .client
            .profile(&tokens, &params)
            .await
            .and_then(Profile::storable)
            .map_err(LoginError::Provider)?;
        self.policy
            .allow(&sign_in(provider, &profile))
            .await
            .map_err(LoginError::PolicyDenied)?;
        if let Some(user_id) = flow.link_user {
            return match self
                .store
                .link_identity(user_id, provider, &profile, &tokens)
                .await
                .map_err(LoginError::Store)?
            {
                LinkOutcome::Linked => Ok(None),
                LinkOutcome::TakenByOther => Err(LoginError::Conflict("identity_linked_elsewhere")),
                LinkOutcome::ProviderAlreadyLinked => {
                    Err(LoginError::Conflict("provider_already_linked"))
                }
            };
        }
        // The JWT's session is recorded with the login, in one transaction (one statement for a
        // returning user on PostgreSQL).
        let (jti, iat, expires_at) = self.jwt.next_session();
        let session = NewSession {
            jti: jti.clone(),
            created_at: iat,
            expires_at,
        };
        let (user, _created) = self
            .store
            .upsert_login(
                provider,
                &profile,
                &tokens,
                &entry.options,
                &*self.policy,
                &session,
            )
            .await
            .map_err(LoginError::Store)?;
        let identity = Identity {
            sub: user.id.to_string(),
            provider: Some(provider.to_owned()),
            name: user.name.clone(),
            email: user.email.clone(),
            avatar_url: user.avatar_url.clone(),
            extra: self.policy.extra_claims(&user, provider),
        };
        let jwt = self.jwt.issue_as(identity, jti, iat).map_err(|e| {
            log::error!("social_auth: {e}");
            LoginError::Token
        })?;
        Ok(Some(jwt))
    }
}

/// Reloads the revoked sessions every `revocation_cache_secs` (keeping the last set while the
/// database is down), and about once a minute purges long-expired sessions and idle rate-limit
/// entries.
pub(crate) struct Upkeep {
    store: Store,
    revocations: Arc<RevocationList>,
    unwritten: Arc<UnwrittenLogouts>,
    rate_limit: Option<Arc<RateLimit>>,
    every: std::time::Duration,
}

impl Upkeep {
    /// One reload.
    pub(crate) async fn reload(&self) {
        match self.store.revoked_sessions().await {
            Ok(loaded) => self.revocations.replace(loaded),
            Err(e) => log::warn!("social_auth: revoked sessions not reloaded: {e}"),
        }
    }

    /// Writes the logouts the database refused, about every second while it still refuses,
    /// until `shutdown` resolves.
    pub(crate) async fn retry_logouts(
        store: Store,
        unwritten: Arc<UnwrittenLogouts>,
        shutdown: rocket::Shutdown,
    ) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let mut failed = Vec::new();
            for logout in unwritten.take() {
                if let Err(e) = write_logout(&store, &logout).await {
                    log::warn!("social_auth: a logout is still not recorded (retrying): {e}");
                    failed.push(logout);
                }
            }
            unwritten.requeue(failed);
            let wait = if unwritten.is_empty() {
                // Nothing to do until a logout fails.
                std::time::Duration::from_secs(3600)
            } else {
                std::time::Duration::from_secs(1)
            };
            rocket::tokio::select! {
                _ = &mut shutdown => return,
                _ = unwritten.pushed() => {}
                _ = rocket::tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Runs until `shutdown` resolves.
    pub(crate) async fn run(self, shutdown: rocket::Shutdown) {
        rocket::tokio::spawn(Upkeep::retry_logouts(
            self.store.clone(),
            self.unwritten.clone(),
            shutdown.clone(),
        ));
        let purge_every = (60 / self.every.as_secs().max(1)).max(1);
        let mut shutdown = std::pin::pin!(shutdown);
        let mut tick: u64 = 0;
        loop {
            self.reload().await;
            if tick % purge_every == 0 {
                if let Err(e) = self.store.purge_sessions(86_400).await {
                    log::warn!("social_auth: expired sessions not purged: {e}");
                }
                if let Some(limit) = &self.rate_limit {
                    limit.forget_idle();
                }
            }
            tick = tick.wrapping_add(1);
            rocket::tokio::select! {
                _ = &mut shutdown => return,
                _ = rocket::tokio::time::sleep(self.every) => {}
            }
        }
    }
}

/// Records a logout: the session revoked, the provider access token forgotten.
async fn write_logout(store: &Store, logout: &UnwrittenLogout) -> Result<(), StoreError> {
    store.revoke_session(&logout.jti).await?;
    if let Some((user_id, provider)) = &logout.account {
        store.clear_token(*user_id, provider, Column::Token).await?;
    }
    Ok(())
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
