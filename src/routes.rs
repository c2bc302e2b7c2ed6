//! The routes mounted under `base`: login start, callback, session, token, refresh, logout.

use rocket::http::{CookieJar, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::Redirect;
use rocket::serde::json::{json, Json, Value};
use rocket::{get, post, routes, Route, State};

use crate::error::LoginError;
use crate::flow::{is_local_path, Flow};
use crate::guard::{resolve, SocialAuth};
use crate::provider::FlowParams;
use crate::service::{AuthService, RefreshReply, TokenReply, UnlinkReply};

/// The routes; `/refresh_token` only when `expose_refresh_token` is on.
pub(crate) fn routes(expose_refresh_token: bool) -> Vec<Route> {
    let mut list = routes![
        login,
        callback,
        session,
        token,
        refresh_get,
        refresh_post,
        logout_get,
        logout_post,
        logout_all,
        link,
        unlink,
        jwks
    ];
    if expose_refresh_token {
        list.extend(routes![refresh_token]);
    }
    list
}

/// Whether a request comes from another site: `Sec-Fetch-Site: cross-site`, or an `Origin`
/// other than `public_url`. A request with neither header (a non-browser client) is not.
pub(crate) struct CrossSite(pub bool);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CrossSite {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let headers = request.headers();
        let fetch_site = headers
            .get_one("Sec-Fetch-Site")
            .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"));
        let foreign_origin = match (
            headers.get_one("Origin"),
            request.rocket().state::<AuthService>(),
        ) {
            (Some(origin), Some(service)) => {
                !origin.eq_ignore_ascii_case(service.config().public_origin())
            }
            (Some(_), None) => true,
            (None, _) => false,
        };
        Outcome::Success(CrossSite(fetch_site || foreign_origin))
    }
}

/// The rate limit's verdict for this request: `Some(seconds to wait)` when over the limit.
pub(crate) struct Throttle(Option<u64>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Throttle {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let wait = request
            .rocket()
            .state::<AuthService>()
            .and_then(AuthService::rate_limit)
            .and_then(|limit| limit.check(request).err());
        Outcome::Success(Throttle(wait))
    }
}

impl Throttle {
    /// Lets a login request through: 404 for a provider that is off, 429 over the rate limit.
    fn admit(
        &self,
        service: &AuthService,
        provider: &str,
    ) -> Result<(), Result<LoginError, Status>> {
        if service.provider(provider).is_none() {
            return Err(Err(Status::NotFound));
        }
        match self.0 {
            Some(wait) => Err(Ok(LoginError::RateLimited(wait))),
            None => Ok(()),
        }
    }
}

/// Starts a flow (a login, or a link to `link_user`) and sends the browser to the provider.
async fn start_flow(
    service: &AuthService,
    provider: &str,
    next: Option<String>,
    link_user: Option<i64>,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, Result<LoginError, Status>> {
    let client = service.provider(provider).ok_or(Err(Status::NotFound))?;
    let next = next.filter(|n| is_local_path(n));
    let mut flow = Flow::start(provider, next);
    flow.link_user = link_user;
    let url = client
        .authorize_url(&FlowParams {
            state: &flow.state,
            pkce_verifier: &flow.verifier,
            nonce: &flow.nonce,
        })
        .await
        .map_err(|e| Ok(LoginError::Provider(e)))?;
    let config = service.config();
    flow.save(cookies, config.base_path(), config.secure_cookies());
    Ok(Redirect::to(String::from(url)))
}

/// `GET {base}/<provider>[?next=/path]`: 303 to the provider with `state` and PKCE.
#[get("/<provider>?<next>", rank = 2)]
async fn login(
    provider: &str,
    next: Option<String>,
    throttle: Throttle,
    service: &State<AuthService>,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, Result<LoginError, Status>> {
    throttle.admit(service, provider)?;
    start_flow(service, provider, next, None, cookies).await
}

/// `POST {base}/<provider>/link[?next=/path]`: starts a flow whose callback links that identity
/// to the signed-in user.
#[post("/<provider>/link?<next>")]
async fn link(
    provider: &str,
    next: Option<String>,
    auth: SocialAuth,
    cross_site: CrossSite,
    throttle: Throttle,
    service: &State<AuthService>,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, (Status, Json<Value>)> {
    let refuse = |status: Status, code: &str| (status, Json(json!({ "status": code })));
    if service.provider(provider).is_none() {
        return Err(refuse(Status::NotFound, "unknown_provider"));
    }
    if cross_site.0 {
        return Err(refuse(Status::Forbidden, "forbidden"));
    }
    if throttle.0.is_some() {
        return Err(refuse(Status::TooManyRequests, "rate_limited"));
    }
    let Some(user_id) = auth.claims().and_then(|c| c.user_id()) else {
        return Err(refuse(Status::Unauthorized, ""));
    };
    match start_flow(service, provider, next, Some(user_id), cookies).await {
        Ok(redirect) => Ok(redirect),
        Err(Ok(LoginError::Provider(_))) => {
            Err(refuse(Status::ServiceUnavailable, "provider_unavailable"))
        }
        Err(_) => Err(refuse(Status::NotFound, "unknown_provider")),
    }
}

/// `POST {base}/<provider>/unlink`: removes that identity, unless it is the last one.
#[post("/<provider>/unlink")]
async fn unlink(
    provider: &str,
    auth: SocialAuth,
    cross_site: CrossSite,
    service: &State<AuthService>,
) -> UnlinkReply {
    if cross_site.0 {
        return UnlinkReply::CrossSite;
    }
    match auth.claims().and_then(|c| c.user_id()) {
        Some(user_id) => service.unlink(user_id, provider).await,
        None => UnlinkReply::SignedOut,
    }
}

/// `GET {base}/jwks.json`: the public keys that verify our tokens; 404 with an HMAC algorithm.
#[get("/jwks.json")]
fn jwks(service: &State<AuthService>) -> Option<Json<Value>> {
    service.jwks().cloned().map(Json)
}

/// `GET {base}/<provider>/callback?code&state`: finishes the login.
#[allow(clippy::too_many_arguments)]
#[get("/<provider>/callback?<code>&<state>&<error>&<error_description>&<iss>")]
async fn callback(
    provider: &str,
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
    auth: SocialAuth,
    throttle: Throttle,
    service: &State<AuthService>,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, Result<LoginError, Status>> {
    throttle.admit(service, provider)?;
    let config = service.config();
    let (base, secure) = (config.base_path(), config.secure_cookies());
    let flow = Flow::take(cookies, base, provider, state.as_deref(), secure)
        .map_err(|e| Ok(LoginError::Flow(e)))?;
    if let Some(client) = service.provider(provider) {
        client
            .check_response_issuer(iss.as_deref())
            .await
            .map_err(|e| Ok(LoginError::Provider(e)))?;
    }
    if let Some(code) = error {
        return Err(Ok(LoginError::Denied {
            code,
            description: error_description,
        }));
    }
    let code = code
        .filter(|c| !c.is_empty())
        .ok_or(Ok(LoginError::MissingCode))?;
    let jwt = service
        .complete_login(provider, &code, &flow, auth.claims())
        .await
        .map_err(Ok)?;
    if let Some(jwt) = jwt {
        service.set_jwt_cookie(cookies, &jwt);
    }
    // The flow is ours (encrypted), but its `next` is checked again rather than trusted.
    let target = flow
        .next
        .filter(|n| is_local_path(n))
        .unwrap_or_else(|| config.authed_url.clone());
    Ok(Redirect::to(target))
}

/// `GET {base}/session`: the signed-in user and token, for SPAs.
#[get("/session")]
fn session(request_auth: SessionToken) -> Result<Json<Value>, (Status, Json<Value>)> {
    let unauthenticated = || {
        (
            Status::Unauthorized,
            Json(json!({"user": null, "status": 401})),
        )
    };
    let (auth, token) = (request_auth.auth, request_auth.token);
    let claims = auth.claims().ok_or_else(unauthenticated)?;
    let id: Value = claims
        .user_id()
        .map_or_else(|| json!(claims.sub), |id| json!(id));
    Ok(Json(json!({
        "user": {
            "id": id,
            "name": claims.name,
            "email": claims.email,
            "avatar_url": claims.avatar_url,
        },
        "provider": claims.provider,
        "jwt": token,
        "expires_at": claims.exp,
    })))
}

/// The guard's answer and the token it read.
struct SessionToken {
    auth: SocialAuth,
    token: Option<String>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for SessionToken {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let resolved = resolve(request);
        Outcome::Success(SessionToken {
            auth: resolved.auth(),
            token: resolved.token().map(str::to_owned),
        })
    }
}

/// The signed-in social account: `(user id, provider)`, if any.
fn account(auth: &SocialAuth) -> Option<(i64, &str)> {
    match auth {
        SocialAuth::Social { provider, claims } => Some((claims.user_id()?, provider)),
        _ => None,
    }
}

/// `GET {base}/token`: the stored provider access token.
#[get("/token")]
async fn token(auth: SocialAuth, service: &State<AuthService>) -> TokenReply {
    if !auth.is_authenticated() {
        return TokenReply::new("token", None, Status::Unauthorized);
    }
    match account(&auth) {
        Some((user_id, provider)) => service.get_token(user_id, provider).await,
        None => TokenReply::new("token", None, Status::NotFound),
    }
}

/// `GET {base}/refresh_token` (only when exposed): the stored refresh token.
#[get("/refresh_token")]
async fn refresh_token(auth: SocialAuth, service: &State<AuthService>) -> TokenReply {
    if !auth.is_authenticated() {
        return TokenReply::new("refresh_token", None, Status::Unauthorized);
    }
    match account(&auth) {
        Some((user_id, provider)) => service.get_refresh_token(user_id, provider).await,
        None => TokenReply::new("refresh_token", None, Status::NotFound),
    }
}

async fn refresh(
    provider: &str,
    auth: SocialAuth,
    cross_site: CrossSite,
    service: &AuthService,
) -> Result<RefreshReply, Status> {
    if service.provider(provider).is_none() {
        return Err(Status::NotFound);
    }
    if cross_site.0 {
        return Ok(RefreshReply::CrossSite);
    }
    let Some(claims) = auth.claims() else {
        return Ok(RefreshReply::SignedOut);
    };
    match claims.user_id() {
        Some(user_id) => Ok(service.refresh(user_id, provider).await),
        None => Ok(RefreshReply::NoRefreshToken),
    }
}

/// `GET {base}/<provider>/refresh`.
#[get("/<provider>/refresh")]
async fn refresh_get(
    provider: &str,
    auth: SocialAuth,
    cross_site: CrossSite,
    service: &State<AuthService>,
) -> Result<RefreshReply, Status> {
    refresh(provider, auth, cross_site, service).await
}

/// `POST {base}/<provider>/refresh`.
#[post("/<provider>/refresh")]
async fn refresh_post(
    provider: &str,
    auth: SocialAuth,
    cross_site: CrossSite,
    service: &State<AuthService>,
) -> Result<RefreshReply, Status> {
    refresh(provider, auth, cross_site, service).await
}

async fn logout(
    auth: SocialAuth,
    cross_site: CrossSite,
    service: &AuthService,
    cookies: &CookieJar<'_>,
) -> Redirect {
    let target = Redirect::to(service.config().logout_url.clone());
    if cross_site.0 {
        return target;
    }
    if let Some(claims) = auth.claims() {
        if let Err(e) = service.logout(claims).await {
            log::error!("social_auth: logout could not be recorded: {e}");
        }
    }
    service.remove_jwt_cookie(cookies);
    target
}

/// `POST {base}/logout_all`: revokes every session of the signed-in user, then as logout.
#[post("/logout_all")]
async fn logout_all(
    auth: SocialAuth,
    cross_site: CrossSite,
    service: &State<AuthService>,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, (Status, Json<Value>)> {
    if cross_site.0 {
        return Err((Status::Forbidden, Json(json!({"status": "forbidden"}))));
    }
    if let Some(claims) = auth.claims() {
        if let Err(e) = service.logout_all(&claims.sub).await {
            log::error!("social_auth: logout_all failed: {e}");
            return Err((
                Status::ServiceUnavailable,
                Json(json!({"status": "database_unavailable"})),
            ));
        }
    }
    Ok(logout(auth, CrossSite(false), service, cookies).await)
}

/// `GET {base}/logout`: 303 to `logout_url`; signs out unless cross-site.
#[get("/logout")]
async fn logout_get(
    auth: SocialAuth,
    cross_site: CrossSite,
    service: &State<AuthService>,
    cookies: &CookieJar<'_>,
) -> Redirect {
    logout(auth, cross_site, service, cookies).await
}

/// `POST {base}/logout`.
#[post("/logout")]
async fn logout_post(
    auth: SocialAuth,
    cross_site: CrossSite,
    service: &State<AuthService>,
    cookies: &CookieJar<'_>,
) -> Redirect {
    logout(auth, cross_site, service, cookies).await
}
