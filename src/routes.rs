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
use crate::service::{AuthService, RefreshReply, TokenReply};

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
        logout_post
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

/// `GET {base}/<provider>[?next=/path]`: 303 to the provider with `state` and PKCE.
#[get("/<provider>?<next>", rank = 2)]
fn login(
    provider: &str,
    next: Option<String>,
    service: &State<AuthService>,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, Status> {
    let client = service.provider(provider).ok_or(Status::NotFound)?;
    let next = next.filter(|n| is_local_path(n));
    let flow = Flow::start(provider, next);
    let url = client.authorize_url(&FlowParams {
        state: &flow.state,
        pkce_verifier: &flow.verifier,
    });
    let config = service.config();
    flow.save(cookies, config.base_path(), config.secure_cookies());
    Ok(Redirect::to(String::from(url)))
}

/// `GET {base}/<provider>/callback?code&state`: finishes the login.
#[get("/<provider>/callback?<code>&<state>&<error>&<error_description>")]
async fn callback(
    provider: &str,
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    service: &State<AuthService>,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, Result<LoginError, Status>> {
    if service.provider(provider).is_none() {
        return Err(Err(Status::NotFound));
    }
    let config = service.config();
    let flow = Flow::take(cookies, config.base_path(), provider, state.as_deref())
        .map_err(|e| Ok(LoginError::Flow(e)))?;
    if let Some(code) = error {
        return Err(Ok(LoginError::Denied {
            code,
            description: error_description,
        }));
    }
    let code = code
        .filter(|c| !c.is_empty())
        .ok_or(Ok(LoginError::MissingCode))?;
    let (_user, jwt) = service
        .complete_login(provider, &code, &flow)
        .await
        .map_err(Ok)?;
    service.set_jwt_cookie(cookies, &jwt);
    let target = flow.next.unwrap_or_else(|| config.authed_url.clone());
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
    if let Some((user_id, provider)) = account(&auth) {
        if let Err(e) = service.logout(user_id, provider).await {
            log::error!("social_auth: logout could not forget the access token: {e}");
        }
    }
    service.remove_jwt_cookie(cookies);
    target
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
