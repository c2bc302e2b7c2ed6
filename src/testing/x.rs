//! The fake X (Twitter) OAuth 2.0 user context: `/i/oauth2/authorize` (PKCE required, S256 or
//! plain; `state` at most 500 characters), `/2/oauth2/token` (a confidential client with HTTP
//! Basic, 30-second codes, refresh tokens only with `offline.access`, each usable once),
//! `/2/oauth2/revoke`, and `/2/users/me` (`{"data": {…}}`, string ids, `user.fields`,
//! `confirmed_email` only with `users.email`), with X's problem JSON, its two 429 shapes and its
//! `x-rate-limit-*` headers (75 requests per 15 minutes per user).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rocket::http::{ContentType, Status};
use rocket::serde::json::{json, Value};
use rocket::{get, post, routes, Data, Either, Route, State};
use sha2::{Digest, Sha256};

use super::{fake_config, pair, read_form, serve, with_query, Caller, FakeServer, Raw, RawAnswer};
use crate::clock::{now, random_token};

/// An X account of the fake.
#[derive(Debug, Clone)]
pub struct FakeXUser {
    /// The id (a snowflake, as a string).
    pub id: String,
    /// The display name.
    pub name: String,
    /// The handle (changeable; never a key).
    pub username: String,
    /// `profile_image_url`, sent when `user.fields` asks for it.
    pub profile_image_url: Option<String>,
    /// `confirmed_email` (X only has confirmed ones), sent when asked for and the token has
    /// `users.email`.
    pub confirmed_email: Option<String>,
}

impl FakeXUser {
    /// A user with a profile image and no email.
    pub fn new(id: &str, name: &str, username: &str) -> Self {
        FakeXUser {
            id: id.to_owned(),
            name: name.to_owned(),
            username: username.to_owned(),
            profile_image_url: Some(format!(
                "https://pbs.twimg.example/profile_images/{id}/avatar_normal.jpg"
            )),
            confirmed_email: None,
        }
    }

    /// Sets the confirmed email.
    pub fn email(mut self, email: &str) -> Self {
        self.confirmed_email = Some(email.to_owned());
        self
    }
}

/// How `GET /2/users/me` refuses `confirmed_email` to a token without `users.email` (X's
/// documentation does not say which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XFieldRefusal {
    /// The whole answer is a 403 `field-unauthorized` problem (the default).
    Problem,
    /// A 200 with `data` (without the field) and the problem in `errors` (a partial failure).
    PartialErrors,
}

/// A fault of the fake X.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XFault {
    /// The user cancels: `error=access_denied&state=…`.
    Denied,
    /// `GET /2/users/me` answers 429 as v2 endpoints are seen to:
    /// `{"title":"Too Many Requests","detail":"Too Many Requests","type":"about:blank","status":429}`.
    UserRateLimited,
    /// `GET /2/users/me` answers 429 as documented: `{"errors":[{"code":88,"message":"Rate limit exceeded"}]}`.
    UserRateLimitedV1,
    /// `GET /2/users/me` answers a problem of type `https://api.x.com/2/problems/<problem>`
    /// with this status, e.g. `(403, "client-forbidden")`, `(429, "usage-capped")`.
    UserProblem(u16, String),
    /// The token endpoint answers 400 `{"error": …, "error_description": …}`.
    TokenError(String, String),
    /// The token endpoint answers this, whatever the request.
    TokenAnswer(RawAnswer),
    /// `GET /2/users/me` answers this, whatever the request.
    UserAnswer(RawAnswer),
}

struct Grant {
    user: String,
    redirect_uri: String,
    scope: String,
    /// `S256:<challenge>` or `plain:<verifier>`.
    challenge: String,
    created_at: i64,
}

struct Token {
    user: String,
    scope: String,
}

struct Inner {
    users: HashMap<String, FakeXUser>,
    current: Option<String>,
    fault: Option<XFault>,
    field_refusal: XFieldRefusal,
    rate_limit: u32,
    /// Per user: (window start, calls in the window).
    calls: HashMap<String, (i64, u32)>,
    codes: HashMap<String, Grant>,
    access: HashMap<String, Token>,
    refresh: HashMap<String, Token>,
}

#[derive(Default)]
struct Counters {
    token: AtomicU64,
    refresh: AtomicU64,
    user: AtomicU64,
    revoke: AtomicU64,
}

/// The fake X's state: a cheap handle; clones share it.
///
/// ```no_run
/// use rocket_social_auth::testing::{FakeX, FakeXUser};
///
/// # async fn demo() {
/// let fake = FakeX::new("x-client-id", "x-client-secret");
/// fake.sign_in_as(FakeXUser::new("2244994945", "X Developers", "xdevelopers"));
/// let server = fake.clone().spawn().await.expect("fake X starts");
/// // `authorize_url = {url}/i/oauth2/authorize`, `token_url = {url}/2/oauth2/token`,
/// // `api_url = {url}` (the user is at `{api_url}/2/users/me`).
/// println!("{}/2/users/me", server.url());
/// # }
/// ```
#[derive(Clone)]
pub struct FakeX {
    client_id: String,
    client_secret: String,
    inner: Arc<Mutex<Inner>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for FakeX {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeX")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl FakeX {
    /// A provider that knows one confidential client (a Web App: HTTP Basic at the token
    /// endpoint) and approves its authorizations at once for the user set by
    /// [`sign_in_as`](Self::sign_in_as).
    pub fn new(client_id: &str, client_secret: &str) -> Self {
        FakeX {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            inner: Arc::new(Mutex::new(Inner {
                users: HashMap::new(),
                current: None,
                fault: None,
                field_refusal: XFieldRefusal::Problem,
                rate_limit: 75,
                calls: HashMap::new(),
                codes: HashMap::new(),
                access: HashMap::new(),
                refresh: HashMap::new(),
            })),
            counters: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds (or replaces) `user` and approves the next authorizations for it.
    pub fn sign_in_as(&self, user: FakeXUser) {
        let mut inner = self.lock();
        inner.current = Some(user.id.clone());
        inner.users.insert(user.id.clone(), user);
    }

    /// Switches a fault on (`Some`) or off.
    pub fn set_fault(&self, fault: Option<XFault>) {
        self.lock().fault = fault;
    }

    /// Chooses how `confirmed_email` is refused to a token without `users.email`.
    pub fn set_field_refusal(&self, refusal: XFieldRefusal) {
        self.lock().field_refusal = refusal;
    }

    /// Sets the `GET /2/users/me` limit per user and 15 minutes (default 75); the next call
    /// over it answers 429.
    pub fn set_user_rate_limit(&self, limit: u32) {
        self.lock().rate_limit = limit;
    }

    /// Makes every code issued so far expired (X's live 30 seconds).
    pub fn expire_codes(&self) {
        for grant in self.lock().codes.values_mut() {
            grant.created_at = 0;
        }
    }

    /// Revokes every token.
    pub fn revoke_all(&self) {
        let mut inner = self.lock();
        inner.access.clear();
        inner.refresh.clear();
    }

    /// Whether `token` is a valid access token now.
    pub fn is_valid_access_token(&self, token: &str) -> bool {
        self.lock().access.contains_key(token)
    }

    /// Whether `token` is a valid refresh token now.
    pub fn is_valid_refresh_token(&self, token: &str) -> bool {
        self.lock().refresh.contains_key(token)
    }

    /// Token requests received (code exchanges and refreshes).
    pub fn token_calls(&self) -> u64 {
        self.counters.token.load(Ordering::SeqCst)
    }

    /// Refresh requests among them that passed client authentication.
    pub fn refresh_calls(&self) -> u64 {
        self.counters.refresh.load(Ordering::SeqCst)
    }

    /// `GET /2/users/me` requests received.
    pub fn user_calls(&self) -> u64 {
        self.counters.user.load(Ordering::SeqCst)
    }

    /// Revocation requests received.
    pub fn revoke_calls(&self) -> u64 {
        self.counters.revoke.load(Ordering::SeqCst)
    }

    /// The routes, to mount at `/`: `i/oauth2/authorize` (x.com's), `2/oauth2/token`,
    /// `2/oauth2/revoke`, `2/users/me` (api.x.com's). The state must be managed with
    /// `rocket.manage(fake)`.
    pub fn routes() -> Vec<Route> {
        routes![authorize, token, revoke, me]
    }

    /// Serves the provider on `127.0.0.1` at a free port.
    pub async fn spawn(self) -> Result<FakeServer, rocket::Error> {
        serve(
            rocket::custom(fake_config())
                .manage(self)
                .mount("/", FakeX::routes()),
        )
        .await
    }
}

fn json_raw(status: Status, content_type: ContentType, value: &Value) -> Raw {
    Raw {
        status,
        content_type,
        body: value.to_string(),
        headers: Vec::new(),
    }
}

fn problem_json() -> ContentType {
    ContentType::new("application", "problem+json")
}

/// An RFC 6749 error of the token endpoint.
fn oauth_error(status: Status, error: &str, description: &str) -> Raw {
    json_raw(
        status,
        ContentType::JSON,
        &json!({"error": error, "error_description": description}),
    )
}

/// A v2 problem (RFC 7807-like): `title`, `detail`, `type`, `status`.
fn problem(status: u16, kind: &str, title: &str, detail: &str) -> Raw {
    let kind = if kind == "about:blank" {
        kind.to_owned()
    } else {
        format!("https://api.x.com/2/problems/{kind}")
    };
    json_raw(
        Status::new(status),
        problem_json(),
        &json!({"title": title, "detail": detail, "type": kind, "status": status}),
    )
}

/// The title X gives a problem type.
fn title(kind: &str) -> &'static str {
    match kind {
        "invalid-request" => "Invalid Request",
        "resource-not-found" => "Not Found Error",
        "not-authorized-for-resource" => "Authorization Error",
        "client-forbidden" => "Client Forbidden",
        "usage-capped" => "UsageCapExceeded",
        "rate-limit-exceeded" => "Too Many Requests",
        "field-unauthorized" | "not-authorized-for-field" => "Field Authorization Error",
        "resource-unavailable" => "Resource Unavailable",
        "disallowed-resource" => "Disallowed Resource",
        _ => "Problem",
    }
}

fn page(text: &str) -> Raw {
    Raw {
        status: Status::BadRequest,
        content_type: ContentType::HTML,
        body: format!("<!doctype html><html><body><h1>Something went wrong</h1><p>You weren’t able to give access to the App. Go back and try logging in again.</p><!-- {text} --></body></html>"),
        headers: Vec::new(),
    }
}

const SCOPES: &[&str] = &[
    "tweet.read",
    "tweet.write",
    "tweet.moderate.write",
    "users.email",
    "users.read",
    "follows.read",
    "follows.write",
    "offline.access",
    "space.read",
    "mute.read",
    "mute.write",
    "like.read",
    "like.write",
    "list.read",
    "list.write",
    "block.read",
    "block.write",
    "bookmark.read",
    "bookmark.write",
    "media.write",
];

#[allow(clippy::too_many_arguments)]
#[get("/i/oauth2/authorize?<response_type>&<client_id>&<redirect_uri>&<scope>&<state>&<code_challenge>&<code_challenge_method>")]
fn authorize(
    fake: &State<FakeX>,
    response_type: Option<&str>,
    client_id: Option<&str>,
    redirect_uri: Option<&str>,
    scope: Option<&str>,
    state: Option<&str>,
    code_challenge: Option<&str>,
    code_challenge_method: Option<&str>,
) -> Raw {
    if client_id != Some(fake.client_id.as_str()) || response_type != Some("code") {
        return page("client_id or response_type");
    }
    let Some(redirect_uri) = redirect_uri.filter(|r| url::Url::parse(r).is_ok()) else {
        return page("redirect_uri");
    };
    let scope = scope.unwrap_or_default();
    if scope.is_empty() || !scope.split(' ').all(|s| SCOPES.contains(&s)) {
        return page("scope");
    }
    let Some(state) = state.filter(|s| s.len() <= 500) else {
        return page("state");
    };
    // PKCE is required.
    let challenge = match (code_challenge, code_challenge_method) {
        (Some(c), Some("S256")) => format!("S256:{c}"),
        (Some(c), Some("plain")) => format!("plain:{c}"),
        _ => return page("code_challenge"),
    };
    let mut inner = fake.lock();
    let code;
    let pairs: Vec<(&str, &str)> = if inner.fault == Some(XFault::Denied) {
        vec![("error", "access_denied"), ("state", state)]
    } else {
        let Some(user) = inner.current.clone() else {
            return page("nobody is signed in at the fake");
        };
        code = random_token(64);
        inner.codes.insert(
            code.clone(),
            Grant {
                user,
                redirect_uri: redirect_uri.to_owned(),
                scope: scope.to_owned(),
                challenge,
                created_at: now(),
            },
        );
        // X puts `state` first.
        vec![("state", state), ("code", &code)]
    };
    Raw {
        status: Status::Found,
        content_type: ContentType::Plain,
        body: String::new(),
        headers: vec![("Location", with_query(redirect_uri, &pairs))],
    }
}

impl FakeX {
    fn issue(&self, inner: &mut Inner, user: &str, scope: &str) -> Value {
        let access = random_token(68);
        let token = || Token {
            user: user.to_owned(),
            scope: scope.to_owned(),
        };
        inner.access.insert(access.clone(), token());
        let mut answer = json!({"token_type": "bearer", "expires_in": 7200, "access_token": access, "scope": scope});
        if scope.split(' ').any(|s| s == "offline.access") {
            let refresh = random_token(68);
            inner.refresh.insert(refresh.clone(), token());
            answer["refresh_token"] = json!(refresh);
        }
        answer
    }

    /// A confidential client authenticates with HTTP Basic.
    fn authenticated(&self, caller: &Caller) -> bool {
        caller
            .basic
            .as_ref()
            .is_some_and(|(id, secret)| *id == self.client_id && *secret == self.client_secret)
    }
}

fn unauthorized_client() -> Raw {
    oauth_error(
        Status::Unauthorized,
        "unauthorized_client",
        "Missing valid authorization header",
    )
}

#[post("/2/oauth2/token", data = "<body>")]
async fn token(fake: &State<FakeX>, caller: Caller, body: Data<'_>) -> Either<Raw, RawAnswer> {
    fake.counters.token.fetch_add(1, Ordering::SeqCst);
    let fault = fake.lock().fault.clone();
    match fault {
        Some(XFault::TokenError(error, description)) => {
            return Either::Left(oauth_error(Status::BadRequest, &error, &description))
        }
        Some(XFault::TokenAnswer(answer)) => return Either::Right(answer),
        _ => {}
    }
    let form = if caller.form_body {
        read_form(body).await
    } else {
        Vec::new()
    };
    if !fake.authenticated(&caller) {
        return Either::Left(unauthorized_client());
    }
    let mut inner = fake.lock();
    let answer = match pair(&form, "grant_type") {
        Some("authorization_code") => {
            let invalid = || {
                oauth_error(
                    Status::BadRequest,
                    "invalid_request",
                    "Value passed for the authorization code was invalid.",
                )
            };
            let grant = pair(&form, "code").and_then(|c| inner.codes.remove(c));
            match grant {
                Some(g)
                    if now() - g.created_at <= 30
                        && pair(&form, "redirect_uri") == Some(g.redirect_uri.as_str())
                        && verifies(&g.challenge, pair(&form, "code_verifier")) =>
                {
                    let value = fake.issue(&mut inner, &g.user, &g.scope);
                    json_raw(Status::Ok, ContentType::JSON, &value)
                }
                _ => invalid(),
            }
        }
        Some("refresh_token") => {
            fake.counters.refresh.fetch_add(1, Ordering::SeqCst);
            // Single use: the old refresh token goes.
            match pair(&form, "refresh_token").and_then(|t| inner.refresh.remove(t)) {
                Some(old) => {
                    let value = fake.issue(&mut inner, &old.user, &old.scope);
                    json_raw(Status::Ok, ContentType::JSON, &value)
                }
                None => oauth_error(
                    Status::BadRequest,
                    "invalid_request",
                    "Value passed for the token was invalid.",
                ),
            }
        }
        _ => oauth_error(
            Status::BadRequest,
            "invalid_request",
            "Missing required parameter [grant_type].",
        ),
    };
    Either::Left(answer)
}

fn verifies(challenge: &str, verifier: Option<&str>) -> bool {
    let Some(verifier) = verifier else {
        return false;
    };
    match challenge.split_once(':') {
        Some(("S256", c)) => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == c,
        Some(("plain", c)) => verifier == c,
        _ => false,
    }
}

#[post("/2/oauth2/revoke", data = "<body>")]
async fn revoke(fake: &State<FakeX>, caller: Caller, body: Data<'_>) -> Raw {
    fake.counters.revoke.fetch_add(1, Ordering::SeqCst);
    let form = read_form(body).await;
    if !fake.authenticated(&caller) {
        return unauthorized_client();
    }
    let mut inner = fake.lock();
    if let Some(token) = pair(&form, "token") {
        inner.access.remove(token);
        inner.refresh.remove(token);
    }
    json_raw(Status::Ok, ContentType::JSON, &json!({"revoked": true}))
}

const USER_FIELDS: &[&str] = &[
    "affiliation",
    "confirmed_email",
    "connection_status",
    "created_at",
    "description",
    "entities",
    "id",
    "is_identity_verified",
    "location",
    "most_recent_tweet_id",
    "name",
    "parody",
    "pinned_tweet_id",
    "profile_banner_url",
    "profile_image_url",
    "protected",
    "public_metrics",
    "receives_your_dm",
    "subscription",
    "subscription_type",
    "url",
    "username",
    "verified",
    "verified_followers_count",
    "verified_type",
    "withheld",
];

#[get("/2/users/me")]
fn me(
    fake: &State<FakeX>,
    caller: Caller,
    uri: &rocket::http::uri::Origin<'_>,
) -> Either<Raw, RawAnswer> {
    // `user.fields` is no Rust name: read it from the query.
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_str().as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let user_fields = pair(&query, "user.fields");
    fake.counters.user.fetch_add(1, Ordering::SeqCst);
    let mut inner = fake.lock();
    match inner.fault.clone() {
        Some(XFault::UserAnswer(answer)) => return Either::Right(answer),
        Some(XFault::UserRateLimited) => {
            return Either::Left(problem(
                429,
                "about:blank",
                "Too Many Requests",
                "Too Many Requests",
            ))
        }
        Some(XFault::UserRateLimitedV1) => {
            return Either::Left(json_raw(
                Status::TooManyRequests,
                ContentType::JSON,
                &json!({"errors": [{"code": 88, "message": "Rate limit exceeded"}]}),
            ))
        }
        Some(XFault::UserProblem(status, kind)) => {
            let title = title(&kind);
            return Either::Left(problem(status, &kind, title, "Injected fault."));
        }
        _ => {}
    }
    let Some((user_id, scope)) = caller
        .bearer
        .as_ref()
        .and_then(|t| inner.access.get(t))
        .map(|t| (t.user.clone(), t.scope.clone()))
    else {
        return Either::Left(problem(401, "about:blank", "Unauthorized", "Unauthorized"));
    };
    let scoped = |s: &str| scope.split(' ').any(|x| x == s);
    if !scoped("users.read") || !scoped("tweet.read") {
        return Either::Left(problem(403, "about:blank", "Forbidden", "Forbidden"));
    }
    // Per-user limit: 75 calls per 15-minute window.
    let (limit, now) = (inner.rate_limit, now());
    let window = inner.calls.entry(user_id.clone()).or_insert((now, 0));
    if now - window.0 >= 900 {
        *window = (now, 0);
    }
    window.1 += 1;
    let (used, reset) = (window.1, window.0 + 900);
    let headers = vec![
        ("x-rate-limit-limit", limit.to_string()),
        (
            "x-rate-limit-remaining",
            limit.saturating_sub(used).to_string(),
        ),
        ("x-rate-limit-reset", reset.to_string()),
    ];
    let with_headers = |mut raw: Raw| {
        raw.headers.extend(headers.clone());
        Either::Left(raw)
    };
    if used > limit {
        return with_headers(problem(
            429,
            "about:blank",
            "Too Many Requests",
            "Too Many Requests",
        ));
    }
    let fields: Vec<&str> = user_fields
        .map(|f| f.split(',').collect())
        .unwrap_or_default();
    if let Some(bad) = fields.iter().find(|f| !USER_FIELDS.contains(f)) {
        let mut raw = problem(
            400,
            "invalid-request",
            "Invalid Request",
            "One or more parameters to your request was invalid.",
        );
        raw.body = json!({
            "errors": [{"parameters": {"user.fields": [bad]}, "message": format!("The `user.fields` query parameter value [{bad}] is not one of [{}]", USER_FIELDS.join(","))}],
            "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.x.com/2/problems/invalid-request",
        })
        .to_string();
        return with_headers(raw);
    }
    let Some(user) = inner.users.get(&user_id) else {
        return Either::Left(problem(401, "about:blank", "Unauthorized", "Unauthorized"));
    };
    let mut data = json!({"id": user.id, "name": user.name, "username": user.username});
    if fields.contains(&"profile_image_url") {
        data["profile_image_url"] = json!(user.profile_image_url);
    }
    let mut errors = Vec::new();
    if fields.contains(&"confirmed_email") {
        if scoped("users.email") {
            if let Some(email) = &user.confirmed_email {
                data["confirmed_email"] = json!(email);
            }
        } else {
            let refused = json!({
                "resource_id": user.id, "resource_type": "user", "field": "confirmed_email",
                "section": "data", "title": "Field Authorization Error",
                "detail": "Sorry, you are not authorized to access 'confirmed_email' on a User.",
                "type": "https://api.x.com/2/problems/field-unauthorized",
            });
            if inner.field_refusal == XFieldRefusal::Problem {
                let body = json!({
                    "title": "Field Authorization Error", "type": "https://api.x.com/2/problems/field-unauthorized",
                    "status": 403, "detail": "Sorry, you are not authorized to access 'confirmed_email' on a User.",
                    "errors": [refused],
                });
                return with_headers(json_raw(Status::Forbidden, problem_json(), &body));
            }
            errors.push(refused);
        }
    }
    let mut body = json!({ "data": data });
    if !errors.is_empty() {
        body["errors"] = Value::Array(errors);
    }
    with_headers(json_raw(Status::Ok, ContentType::JSON, &body))
}
