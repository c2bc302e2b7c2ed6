//! [`AuthService`]: the library's functions for code that holds a user rather than a request
//! (the Django app's helpers), shared by the routes.

use std::collections::BTreeMap;
use std::sync::Arc;

use rocket::http::{Cookie, CookieJar, SameSite, Status};
use rocket::time::{Duration, OffsetDateTime};

use crate::audit::Audit;
use crate::client_ip::ClientAddress;
use crate::config::Config;
use crate::error::{Error, ErrorKind};
use crate::jwt::{canonical_user_id, Claims, Identity, IssuedJwt, JwtCodec};
use crate::policy::Policy;
use crate::provider::Provider;
use crate::ratelimit::RateLimit;
use crate::reply::{TokenReply, UnlinkReply};
use crate::sessions::{RevocationList, UnwrittenLogout, UnwrittenLogouts};
use crate::store::{LoginOptions, Store, StoreError, UnlinkOutcome};
use crate::upkeep::{write_logout, Upkeep};
use crate::verified_cache::VerifiedCache;

mod login;
mod refresh;

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
    /// Where audit events go.
    audit: Arc<Audit>,
    /// How the client address of a request is found (the rate limit's and the events' rule).
    client_address: ClientAddress,
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
        let client_address = ClientAddress::new(config.ip_header.clone(), config.trusted_proxies);
        let audit = Arc::new(Audit::new(
            policy.clone(),
            config.audit.store.then(|| store.clone()),
        ));
        let rate_limit = config.rate_limit.as_ref().map(|c| {
            Arc::new(RateLimit::new(
                c,
                client_address.clone(),
                Some(audit.clone()),
            ))
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
            audit,
            client_address,
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

    /// Where audit events go.
    pub(crate) fn audit(&self) -> &Audit {
        &self.audit
    }

    /// How a request's client address is found.
    pub(crate) fn client_address(&self) -> &ClientAddress {
        &self.client_address
    }

    /// `user_id`'s last 50 stored audit events, newest first, as `GET {base}/events` lists
    /// them: `{"at", "kind", "detail", "provider", "session_id", "ip", "user_agent"}` (see
    /// [`AuthEvent`](crate::AuthEvent)). Empty unless `[social_auth.audit] store = true`.
    pub async fn recent_events(&self, user_id: i64) -> Result<Vec<serde_json::Value>, Error> {
        if !self.audit.stores() {
            return Ok(Vec::new());
        }
        Ok(self.store.events_of(user_id, 50).await?)
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
            Err(e) if e.is_unavailable() => {
                log::error!("social_auth: {e}");
                UnlinkReply::DatabaseUnavailable
            }
            Err(e) => {
                log::error!("social_auth: {e}");
                UnlinkReply::StorageError
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
            event_retention_days: self
                .audit
                .stores()
                .then_some(self.config.audit.retention_days),
            every: std::time::Duration::from_secs(self.config.revocation_cache_secs),
            since: None,
        }
    }
}

fn store_status(e: StoreError) -> Status {
    log::error!("social_auth: {e}");
    e.status()
}
