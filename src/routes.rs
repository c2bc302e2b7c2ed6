//! The routes mounted under `base`: login start and callback, link and unlink, session,
//! the provider tokens, refresh, logout and logout everywhere, the user's events, and the
//! JWKS; with the request guards only routes use (cross-site, own-site proof, rate limit) and
//! `Cache-Control: no-store`.

use rocket::form::{Form, FromForm, Lenient};
use rocket::http::{CookieJar, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Redirect, Responder};
use rocket::serde::json::{json, Json, Value};
use rocket::{get, post, routes, Route, State};

use crate::audit::{AuthEvent, AuthEventKind, ClientInfo, RefreshOutcome};
use crate::flow::{is_local_path, stash_form_user, take_form_user, Flow};
use crate::guard::{resolve, SocialAuth};
use crate::jwt::Claims;
use crate::login_error::LoginError;
use crate::provider::FlowParams;
use crate::reply::{RefreshReply, Refusal, TokenReply, UnlinkReply};
use crate::service::AuthService;

/// The routes; `/refresh_token` only when `expose_refresh_token` is on.
pub(crate) fn routes(expose_refresh_token: bool) -> Vec<Route> {
    let mut list = routes![
        login,
        callback,
        callback_post,
        session,
        token,
        refresh_get,
        refresh_post,
        logout_get,
        logout_post,
        logout_all,
        link,
        unlink,
        jwks,
        events
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

/// Whether a request proves that it comes from our own site, as a state-changing `GET` must:
/// `Sec-Fetch-Site` is `same-origin`, `same-site` or `none` (typed in the address bar, a
/// bookmark), or, from a browser that does not send it, the `Origin` or `Referer` is
/// `public_url`. A request with none of these proves nothing (unlike [`CrossSite`], which
/// lets non-browser clients through on `POST`).
pub(crate) struct OwnSite(pub bool);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for OwnSite {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let headers = request.headers();
        let own = match headers.get_one("Sec-Fetch-Site") {
            // The browser's own word decides when it gives it.
            Some(site) => ["same-origin", "same-site", "none"]
                .iter()
                .any(|s| site.eq_ignore_ascii_case(s)),
            None => request
                .rocket()
                .state::<AuthService>()
                .is_some_and(|service| {
                    let origin = service.config().public_origin();
                    let from_origin = headers
                        .get_one("Origin")
                        .is_some_and(|o| o.eq_ignore_ascii_case(origin));
                    let from_referer = headers.get_one("Referer").is_some_and(|r| {
                        r.get(..origin.len())
                            .is_some_and(|head| head.eq_ignore_ascii_case(origin))
                            && matches!(r.as_bytes().get(origin.len()), None | Some(b'/'))
                    });
                    from_origin || from_referer
                }),
        };
        Outcome::Success(OwnSite(own))
    }
}

/// A response with `Cache-Control: no-store`: every answer that carries a token (a JWT, a
/// provider token, or the cookie that holds one) is kept out of caches.
pub(crate) struct NoStore<R>(pub R);

impl<'r, 'o: 'r, R: Responder<'r, 'o>> Responder<'r, 'o> for NoStore<R> {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'o> {
        let mut response = self.0.respond_to(request)?;
        response.set_raw_header("Cache-Control", "no-store");
        Ok(response)
    }
}

/// The rate limit's verdict for this request: `Some(seconds to wait)` when over the limit.
pub(crate) struct Throttle(Option<u64>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Throttle {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let limit = request
            .rocket()
            .state::<AuthService>()
            .and_then(AuthService::rate_limit);
        let wait = match limit {
            Some(limit) => limit.check(request).await.err(),
            None => None,
        };
        Outcome::Success(Throttle(wait))
    }
}

impl Throttle {
    /// Lets a login request through: 404 for a provider that is off, 429 over the rate limit.
    fn admit(&self, service: &AuthService, provider: &str) -> Result<(), LoginError> {
        if service.provider(provider).is_none() {
            return Err(LoginError::UnknownProvider);
        }
        match self.0 {
            Some(wait) => Err(LoginError::RateLimited(wait)),
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
) -> Result<Redirect, LoginError> {
    let client = service
        .provider(provider)
        .ok_or(LoginError::UnknownProvider)?;
    let next = next.filter(|n| is_local_path(n));
    let mut flow = Flow::start(provider, next);
    flow.link_user = link_user;
    let url = client
        .authorize_url(&FlowParams {
            state: &flow.state,
            pkce_verifier: &flow.verifier,
            nonce: &flow.nonce,
            form_user: None,
        })
        .await
        .map_err(LoginError::Provider)?;
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
    auth: SocialAuth,
    client: ClientInfo,
    service: &State<AuthService>,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, LoginError> {
    let started = match throttle.admit(service, provider) {
        Ok(()) => start_flow(service, provider, next, None, cookies).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &started {
        refused(service, provider, &auth, &client, e).await;
    }
    started
}

/// Records a refused sign-in (not a 404 for a provider that is off: its name is anybody's).
async fn refused(
    service: &AuthService,
    provider: &str,
    auth: &SocialAuth,
    client: &ClientInfo,
    error: &LoginError,
) {
    if matches!(error, LoginError::UnknownProvider) {
        return;
    }
    crate::measure::login(provider, error.code());
    let kind = AuthEventKind::SignInRefused {
        code: error.code().to_owned(),
    };
    let event = AuthEvent::new(kind, client)
        .user(auth.claims().and_then(Claims::user_id))
        .provider(Some(provider));
    service.audit().emit(event).await;
}

/// `GET {base}/events`: the signed-in user's last 50 stored events, newest first:
/// `{"events": [{"at", "kind", "detail", "provider", "session_id", "ip", "user_agent"}],
/// "stored": true}` (`"stored": false` and no events without `[social_auth.audit] store`);
/// 401 signed out or a Local session.
#[get("/events")]
async fn events(auth: SocialAuth, service: &State<AuthService>) -> NoStore<JsonAnswer> {
    NoStore(match account(&auth) {
        None => Err(Refusal::Code(Status::Unauthorized, "")),
        Some(_) if !service.audit().stores() => Ok(Json(json!({"events": [], "stored": false}))),
        Some((user_id, _)) => match service.recent_events(user_id).await {
            Ok(events) => Ok(Json(json!({"events": events, "stored": true}))),
            Err(e) => {
                log::error!("social_auth: {e}");
                Err(Refusal::DATABASE_UNAVAILABLE)
            }
        },
    })
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
) -> Result<Redirect, Refusal> {
    let unknown = Refusal::Code(Status::NotFound, "unknown_provider");
    if service.provider(provider).is_none() {
        return Err(unknown);
    }
    if cross_site.0 {
        return Err(Refusal::CROSS_SITE);
    }
    if let Some(wait) = throttle.0 {
        return Err(Refusal::RateLimited(wait));
    }
    let Some(user_id) = auth.claims().and_then(Claims::user_id) else {
        return Err(Refusal::Code(Status::Unauthorized, ""));
    };
    start_flow(service, provider, next, Some(user_id), cookies)
        .await
        .map_err(|e| match e {
            LoginError::Provider(_) => {
                Refusal::Code(Status::ServiceUnavailable, "provider_unavailable")
            }
            _ => unknown,
        })
}

/// `POST {base}/<provider>/unlink`: removes that identity, unless it is the last one, and
/// revokes the sessions signed in through it (this one too, whose cookie then goes).
#[post("/<provider>/unlink")]
async fn unlink(
    provider: &str,
    auth: SocialAuth,
    cross_site: CrossSite,
    client: ClientInfo,
    service: &State<AuthService>,
    cookies: &CookieJar<'_>,
) -> UnlinkReply {
    if cross_site.0 {
        return UnlinkReply::CrossSite;
    }
    let Some(user_id) = auth.claims().and_then(Claims::user_id) else {
        return UnlinkReply::SignedOut;
    };
    let reply = service.unlink(user_id, provider).await;
    if reply == UnlinkReply::Unlinked {
        let event = AuthEvent::new(AuthEventKind::Unlinked, &client)
            .user(Some(user_id))
            .provider(Some(provider))
            .session(auth.claims().map(|c| c.jti.as_str()));
        service.audit().emit(event).await;
        if auth.provider() == Some(provider) {
            service.remove_jwt_cookie(cookies);
        }
    }
    reply
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
    client: ClientInfo,
    service: &State<AuthService>,
    cookies: &CookieJar<'_>,
) -> NoStore<Result<Redirect, LoginError>> {
    let finished = finish_login(
        provider,
        code,
        state,
        error,
        error_description,
        iss,
        &auth,
        throttle,
        &client,
        service,
        cookies,
    )
    .await;
    if let Err(e) = &finished {
        refused(service, provider, &auth, &client, e).await;
    }
    NoStore(finished)
}

/// The fields of a `form_post` authorization response that the callback reads; the others
/// (Apple's `id_token`) are ignored: the token endpoint's `id_token` is the one checked.
#[derive(FromForm)]
struct FormPostResponse {
    code: Option<String>,
    state: Option<String>,
    user: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
}

/// `POST {base}/<provider>/callback`, only for a provider that answers with `form_post`
/// (Apple; 405 for every other): the provider's page POSTs the authorization response from its
/// own site, so the browser sends no `SameSite=Lax` cookie, and the flow cookie is not here.
/// Nothing is decided here: the answer is a 303 to the `GET` callback with `code`, `state`,
/// `error`, `error_description` and `iss` in the query (a top-level `GET`, which carries the
/// flow cookie), where `state` is checked against the flow as for every provider. The `user`
/// field (a name and an email) goes into a short-lived private cookie bound to its `state`,
/// never into the URL.
#[post("/<provider>/callback", data = "<form>")]
async fn callback_post(
    provider: &str,
    form: Form<Lenient<FormPostResponse>>,
    service: &State<AuthService>,
    cookies: &CookieJar<'_>,
) -> NoStore<Result<Redirect, LoginError>> {
    let Some(client) = service.provider(provider) else {
        return NoStore(Err(LoginError::UnknownProvider));
    };
    if !client.uses_form_post() {
        return NoStore(Err(LoginError::MethodNotAllowed));
    }
    let form = form.into_inner().into_inner();
    let config = service.config();
    if let (Some(state), Some(user)) = (&form.state, &form.user) {
        stash_form_user(
            cookies,
            config.base_path(),
            provider,
            state,
            user,
            config.secure_cookies(),
        );
    }
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in [
        ("code", form.code),
        ("state", form.state),
        ("error", form.error),
        ("error_description", form.error_description),
        ("iss", form.iss),
    ] {
        if let Some(value) = value {
            query.append_pair(key, &value);
        }
    }
    let target = format!(
        "{}/{provider}/callback?{}",
        config.base_path(),
        query.finish()
    );
    NoStore(Ok(Redirect::to(target)))
}

/// The callback's work: check the flow, exchange the code, sign in (or link).
#[allow(clippy::too_many_arguments)]
async fn finish_login(
    provider: &str,
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
    auth: &SocialAuth,
    throttle: Throttle,
    client: &ClientInfo,
    service: &AuthService,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, LoginError> {
    throttle.admit(service, provider)?;
    let config = service.config();
    let (base, secure) = (config.base_path(), config.secure_cookies());
    let form_post = service
        .provider(provider)
        .is_some_and(|client| client.uses_form_post());
    let form_user = form_post
        .then(|| take_form_user(cookies, base, provider, state.as_deref(), secure))
        .flatten();
    let mut flow =
        Flow::take(cookies, base, provider, state.as_deref(), secure).map_err(LoginError::Flow)?;
    flow.form_user = form_user;
    if let Some(client) = service.provider(provider) {
        client
            .check_response_issuer(iss.as_deref())
            .await
            .map_err(LoginError::Provider)?;
    }
    if let Some(code) = error {
        return Err(LoginError::Denied {
            code,
            description: error_description,
        });
    }
    let code = code
        .filter(|c| !c.is_empty())
        .ok_or(LoginError::MissingCode)?;
    let jwt = service
        .complete_login(provider, &code, &flow, auth.claims(), client)
        .await?;
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
///
/// The raw `jwt` is in the body only with `session_exposes_jwt = true`.
#[get("/session")]
fn session(request_auth: SessionToken, service: &State<AuthService>) -> NoStore<JsonAnswer> {
    NoStore(session_body(request_auth, service))
}

/// A JSON answer: 200 with its body, or a refusal.
type JsonAnswer = Result<Json<Value>, Refusal>;

fn session_body(request_auth: SessionToken, service: &AuthService) -> JsonAnswer {
    let (auth, token) = (request_auth.auth, request_auth.token);
    let claims = auth.claims().ok_or(Refusal::NoSession)?;
    let id: Value = claims
        .user_id()
        .map_or_else(|| json!(claims.sub), |id| json!(id));
    let mut body = json!({
        "user": {
            "id": id,
            "name": claims.name,
            "email": claims.email,
            "avatar_url": claims.avatar_url,
        },
        "provider": claims.provider,
        "expires_at": claims.exp,
    });
    if service.config().session_exposes_jwt {
        body["jwt"] = json!(token);
    }
    Ok(Json(body))
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

/// `GET {base}/token`: the stored provider access token of the signed-in social account (a
/// Local session has none: 401, as signed out).
#[get("/token")]
async fn token(auth: SocialAuth, service: &State<AuthService>) -> NoStore<TokenReply> {
    NoStore(match account(&auth) {
        Some((user_id, provider)) => service.get_token(user_id, provider).await,
        None => TokenReply::new("token", None, Status::Unauthorized),
    })
}

/// `GET {base}/refresh_token` (only when exposed): the stored refresh token.
#[get("/refresh_token")]
async fn refresh_token(auth: SocialAuth, service: &State<AuthService>) -> NoStore<TokenReply> {
    NoStore(match account(&auth) {
        Some((user_id, provider)) => service.get_refresh_token(user_id, provider).await,
        None => TokenReply::new("refresh_token", None, Status::Unauthorized),
    })
}

/// Refreshes the signed-in social user's tokens with `provider` (a Local session: 401, as
/// signed out); `cross_site` has been decided by the method's rule.
async fn refresh(
    provider: &str,
    auth: SocialAuth,
    cross_site: bool,
    throttle: Throttle,
    client: ClientInfo,
    service: &AuthService,
) -> NoStore<Result<RefreshReply, Refusal>> {
    NoStore(if service.provider(provider).is_none() {
        Err(Refusal::NotFound)
    } else if cross_site {
        Ok(RefreshReply::CrossSite)
    } else if let Some(wait) = throttle.0 {
        Err(Refusal::RateLimited(wait))
    } else {
        match auth.claims().and_then(Claims::user_id) {
            Some(user_id) => {
                let reply = service.refresh(user_id, provider).await;
                if let Some(outcome) = RefreshOutcome::of(&reply) {
                    let event = AuthEvent::new(AuthEventKind::Refresh { outcome }, &client)
                        .user(Some(user_id))
                        .provider(Some(provider))
                        .session(auth.claims().map(|c| c.jti.as_str()));
                    service.audit().emit(event).await;
                }
                Ok(reply)
            }
            None => Ok(RefreshReply::SignedOut),
        }
    })
}

/// `GET {base}/<provider>/refresh`: only with proof that the request comes from our own
/// site ([`OwnSite`]), else 403.
#[get("/<provider>/refresh")]
async fn refresh_get(
    provider: &str,
    auth: SocialAuth,
    own_site: OwnSite,
    throttle: Throttle,
    client: ClientInfo,
    service: &State<AuthService>,
) -> NoStore<Result<RefreshReply, Refusal>> {
    refresh(provider, auth, !own_site.0, throttle, client, service).await
}

/// `POST {base}/<provider>/refresh`.
#[post("/<provider>/refresh")]
async fn refresh_post(
    provider: &str,
    auth: SocialAuth,
    cross_site: CrossSite,
    throttle: Throttle,
    client: ClientInfo,
    service: &State<AuthService>,
) -> NoStore<Result<RefreshReply, Refusal>> {
    refresh(provider, auth, cross_site.0, throttle, client, service).await
}

/// Signs the request's session out (unless `cross_site`) and sends the browser to
/// `logout_url`. When the database refuses the revocation, the cookie is still removed and the
/// session refused here at once (the write is retried), and the answer is 503.
async fn logout(
    auth: SocialAuth,
    cross_site: bool,
    client: &ClientInfo,
    service: &AuthService,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, Refusal> {
    let target = Redirect::to(service.config().logout_url.clone());
    if cross_site {
        return Ok(target);
    }
    service.remove_jwt_cookie(cookies);
    if let Some(claims) = auth.claims() {
        let written = service.logout(claims).await;
        let event = AuthEvent::new(AuthEventKind::Logout, client)
            .user(claims.user_id())
            .provider(claims.provider.as_deref())
            .session(Some(&claims.jti));
        service.audit().emit(event).await;
        if let Err(e) = written {
            log::error!("social_auth: logout not recorded yet (retrying): {e}");
            return Err(Refusal::DATABASE_UNAVAILABLE);
        }
    }
    Ok(target)
}

/// `POST {base}/logout_all`: revokes every session of the signed-in user, then as logout.
#[post("/logout_all")]
async fn logout_all(
    auth: SocialAuth,
    cross_site: CrossSite,
    client: ClientInfo,
    service: &State<AuthService>,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, Refusal> {
    if cross_site.0 {
        return Err(Refusal::CROSS_SITE);
    }
    if let Some(claims) = auth.claims() {
        match service.logout_all(claims).await {
            Ok(sessions) => {
                let kind = AuthEventKind::LogoutEverywhere { sessions };
                let event = AuthEvent::new(kind, &client)
                    .user(claims.user_id())
                    .provider(claims.provider.as_deref())
                    .session(Some(&claims.jti));
                service.audit().emit(event).await;
            }
            Err(e) => {
                log::error!("social_auth: logout_all failed: {e}");
                return Err(Refusal::DATABASE_UNAVAILABLE);
            }
        }
    }
    logout(auth, false, &client, service, cookies).await
}

/// `GET {base}/logout`: 303 to `logout_url`; signs out only when the request proves it comes
/// from our own site ([`OwnSite`]): a cross-site link or image cannot sign anybody out.
#[get("/logout")]
async fn logout_get(
    auth: SocialAuth,
    own_site: OwnSite,
    client: ClientInfo,
    service: &State<AuthService>,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, Refusal> {
    logout(auth, !own_site.0, &client, service, cookies).await
}

/// `POST {base}/logout`: signs out unless cross-site ([`CrossSite`]).
#[post("/logout")]
async fn logout_post(
    auth: SocialAuth,
    cross_site: CrossSite,
    client: ClientInfo,
    service: &State<AuthService>,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, Refusal> {
    logout(auth, cross_site.0, &client, service, cookies).await
}
