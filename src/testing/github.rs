//! The fake GitHub: OAuth App and GitHub App (expiring, rotating) tokens, HTTP 200 errors,
//! form-encoded answers without `Accept: application/json`, a `User-Agent`-guarded API.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rocket::form::{Form, FromForm};
use rocket::http::{ContentType, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::content::RawHtml;
use rocket::response::stream::ByteStream;
use rocket::response::Redirect;
use rocket::serde::json::{json, Value};
use rocket::{get, post, routes, Either, Route, State};
use sha2::{Digest, Sha256};

use super::{fake_config, html_escape, json_answer, serve, with_query, FakeServer, Raw, RawAnswer};
use crate::clock::{now, random_token};

/// An account of the fake provider.
#[derive(Debug, Clone)]
pub struct FakeUser {
    /// GitHub's numeric id.
    pub id: u64,
    /// The login (mutable on GitHub; never used as a key).
    pub login: String,
    /// Display name; GitHub's may be null.
    pub name: Option<String>,
    /// Avatar URL.
    pub avatar_url: Option<String>,
    /// What `GET /user/emails` lists: `(email, primary, verified)`.
    pub emails: Vec<(String, bool, bool)>,
}

impl FakeUser {
    /// A user with a name equal to its login and no email.
    pub fn new(id: u64, login: &str) -> Self {
        FakeUser {
            id,
            login: login.to_owned(),
            name: Some(login.to_owned()),
            avatar_url: Some(format!("https://avatars.example.com/u/{id}")),
            emails: Vec::new(),
        }
    }

    /// Adds a primary, verified email.
    pub fn email(mut self, email: &str) -> Self {
        self.emails.push((email.to_owned(), true, true));
        self
    }

    /// Sets the display name (`None`: GitHub's `null`).
    pub fn name(mut self, name: Option<&str>) -> Self {
        self.name = name.map(str::to_owned);
        self
    }
}

/// Which kind of token the provider issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    /// OAuth App: `gho_` tokens that never expire, no refresh token.
    OAuthApp,
    /// GitHub App with expiring user tokens: `ghu_` tokens for 8 hours and rotating `ghr_`
    /// refresh tokens.
    Expiring,
}

/// A fault of the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFault {
    /// Answers HTTP 200 with `{"error": <code>, ...}` to every request.
    Error200(String),
    /// HTTP 500 with an HTML page.
    Html500,
    /// HTTP 200, `application/json`, but not JSON.
    Malformed,
    /// Never answers.
    Hang,
    /// An endless JSON body.
    Endless,
    /// Answers with this, whatever the request.
    Answer(RawAnswer),
    /// Answers normally, after this delay (a slow provider, not a dead one).
    Slow(Duration),
}

/// A fault of the REST API (`/user`, `/user/emails`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFault {
    /// `GET /user` answers 401 Bad credentials.
    UserUnauthorized,
    /// `GET /user` answers 403 with `x-ratelimit-remaining: 0`.
    UserRateLimited,
    /// `GET /user` never answers.
    UserHang,
    /// `GET /user/emails` answers 403 (no `user:email` scope).
    EmailsForbidden,
    /// `GET /user/emails` answers 404 (a GitHub App without the permission).
    EmailsNotFound,
}

struct Grant {
    login: String,
    redirect_uri: String,
    challenge: Option<String>,
    created_at: i64,
}

#[derive(Default)]
struct Inner {
    users: HashMap<String, FakeUser>,
    current: Option<String>,
    auto_approve: bool,
    mode: Option<TokenMode>,
    token_fault: Option<TokenFault>,
    api_fault: Option<ApiFault>,
    refresh_delay: Option<Duration>,
    user_answer: Option<RawAnswer>,
    emails_answer: Option<RawAnswer>,
    codes: HashMap<String, Grant>,
    access: HashMap<String, String>,
    refresh: HashMap<String, String>,
}

/// The fake provider's state: a cheap handle; clones share it.
#[derive(Clone)]
pub struct FakeGithub {
    client_id: String,
    client_secret: String,
    inner: Arc<Mutex<Inner>>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    token: AtomicU64,
    refresh: AtomicU64,
    user: AtomicU64,
}

impl std::fmt::Debug for FakeGithub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGithub")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl FakeGithub {
    /// A provider that knows one OAuth client. It approves authorizations at once (as GitHub
    /// does for an app the user already authorized) for the user set by
    /// [`sign_in_as`](Self::sign_in_as), and issues OAuth App tokens.
    pub fn new(client_id: &str, client_secret: &str) -> Self {
        let inner = Inner {
            auto_approve: true,
            mode: Some(TokenMode::OAuthApp),
            ..Inner::default()
        };
        FakeGithub {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            inner: Arc::new(Mutex::new(inner)),
            counters: Arc::new(Counters::default()),
        }
    }

    /// The development provider: asks on a page which local user to sign in as.
    #[cfg(feature = "dev")]
    pub(crate) fn interactive(client_id: &str, client_secret: &str) -> Self {
        let fake = FakeGithub::new(client_id, client_secret);
        fake.lock().auto_approve = false;
        fake
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds (or replaces) `user` and approves the next authorizations for it.
    pub fn sign_in_as(&self, user: FakeUser) {
        let mut inner = self.lock();
        inner.current = Some(user.login.clone());
        inner.users.insert(user.login.clone(), user);
    }

    /// Chooses OAuth App or expiring GitHub App tokens for the next grants.
    pub fn set_token_mode(&self, mode: TokenMode) {
        self.lock().mode = Some(mode);
    }

    /// Switches a token endpoint fault on (`Some`) or off.
    pub fn set_token_fault(&self, fault: Option<TokenFault>) {
        self.lock().token_fault = fault;
    }

    /// Makes refresh requests take `delay` before they are answered (to overlap them).
    pub fn set_refresh_delay(&self, delay: Option<Duration>) {
        self.lock().refresh_delay = delay;
    }

    /// Switches an API fault on (`Some`) or off.
    pub fn set_api_fault(&self, fault: Option<ApiFault>) {
        self.lock().api_fault = fault;
    }

    /// Makes `GET /user` answer `answer` (`Some`) whatever the request, or normally (`None`).
    pub fn set_user_answer(&self, answer: Option<RawAnswer>) {
        self.lock().user_answer = answer;
    }

    /// Makes `GET /user/emails` answer `answer` (`Some`) whatever the request, or normally
    /// (`None`).
    pub fn set_emails_answer(&self, answer: Option<RawAnswer>) {
        self.lock().emails_answer = answer;
    }

    /// Makes every access and refresh token issued so far invalid (a revoked authorization).
    pub fn revoke_all(&self) {
        let mut inner = self.lock();
        inner.access.clear();
        inner.refresh.clear();
    }

    /// Whether `token` is a valid access token now.
    pub fn is_valid_access_token(&self, token: &str) -> bool {
        self.lock().access.contains_key(token)
    }

    /// How many token requests (code and refresh) were answered.
    pub fn token_calls(&self) -> u64 {
        self.counters.token.load(Ordering::SeqCst)
    }

    /// How many refresh requests were answered.
    pub fn refresh_calls(&self) -> u64 {
        self.counters.refresh.load(Ordering::SeqCst)
    }

    /// How many `GET /user` requests were answered.
    pub fn user_calls(&self) -> u64 {
        self.counters.user.load(Ordering::SeqCst)
    }

    /// The routes, to mount anywhere: `GET`/`POST login/oauth/authorize`,
    /// `POST login/oauth/access_token`, `GET user`, `GET user/emails`. The state must be managed
    /// with `rocket.manage(fake)`.
    pub fn routes() -> Vec<Route> {
        routes![authorize, approve, access_token, user, emails]
    }

    /// Serves the provider on `127.0.0.1` at a free port, until the returned server is dropped.
    pub async fn spawn(self) -> Result<FakeServer, rocket::Error> {
        serve(
            rocket::custom(fake_config())
                .manage(self)
                .mount("/", FakeGithub::routes()),
        )
        .await
    }
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A stable id for a login typed on the development page.
fn dev_id(login: &str) -> u64 {
    // FNV-1a, folded into GitHub's id range.
    let hash = login.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    1_000_000 + hash % 1_000_000_000
}

/// GitHub's `login` parameter suggests the account to sign in with: when it names a user the
/// fake knows, an auto-approved authorization is for that user (load tests use it to spread
/// logins over many identities); otherwise for the one set by `sign_in_as`.
#[allow(clippy::too_many_arguments)]
#[get("/login/oauth/authorize?<client_id>&<redirect_uri>&<state>&<code_challenge>&<code_challenge_method>&<scope>&<login>")]
fn authorize(
    fake: &State<FakeGithub>,
    client_id: Option<&str>,
    redirect_uri: Option<&str>,
    state: Option<&str>,
    code_challenge: Option<&str>,
    code_challenge_method: Option<&str>,
    scope: Option<&str>,
    login: Option<&str>,
) -> Result<Result<Redirect, RawHtml<String>>, Status> {
    if client_id != Some(fake.client_id.as_str()) {
        return Err(Status::NotFound);
    }
    let redirect_uri = redirect_uri.ok_or(Status::BadRequest)?;
    if code_challenge.is_some() && code_challenge_method != Some("S256") {
        return Err(Status::BadRequest);
    }
    let inner = fake.lock();
    if inner.auto_approve {
        let login = login
            .filter(|l| inner.users.contains_key(*l))
            .map(str::to_owned)
            .or_else(|| inner.current.clone())
            .ok_or(Status::Unauthorized)?;
        drop(inner);
        let code = fake.grant(&login, redirect_uri, code_challenge);
        let mut pairs = vec![("code", code.as_str())];
        pairs.extend(state.map(|s| ("state", s)));
        return Ok(Ok(Redirect::found(with_query(redirect_uri, &pairs))));
    }
    drop(inner);
    let hidden = |name: &str, value: Option<&str>| {
        value.map_or(String::new(), |v| {
            format!(
                r#"<input type="hidden" name="{name}" value="{}">"#,
                html_escape(v)
            )
        })
    };
    Ok(Err(RawHtml(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Development sign-in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}input,button{{font-size:1rem;padding:.4rem}}</style></head>
<body><h1>Development provider</h1>
<p>This page stands in for GitHub while you develop: no account is needed. Sign in as any local
user; the same name always gives the same user. Asked scopes: <code>{scope}</code>.</p>
<form method="post" action="authorize">
{client_id}{redirect_uri}{state}{challenge}
<p><label>Login <input name="login" value="dev" required maxlength="39" pattern="[A-Za-z0-9-]+"></label></p>
<p><button type="submit" name="decision" value="approve">Sign in</button>
<button type="submit" name="decision" value="deny">Deny</button></p>
</form></body></html>"#,
        scope = html_escape(scope.unwrap_or("")),
        client_id = hidden("client_id", Some(&fake.client_id)),
        redirect_uri = hidden("redirect_uri", Some(redirect_uri)),
        state = hidden("state", state),
        challenge = hidden("code_challenge", code_challenge),
    ))))
}

#[derive(FromForm)]
struct ApproveForm<'r> {
    client_id: &'r str,
    redirect_uri: &'r str,
    state: Option<&'r str>,
    code_challenge: Option<&'r str>,
    login: &'r str,
    decision: &'r str,
}

#[post("/login/oauth/authorize", data = "<form>")]
fn approve(fake: &State<FakeGithub>, form: Form<ApproveForm<'_>>) -> Result<Redirect, Status> {
    if form.client_id != fake.client_id {
        return Err(Status::NotFound);
    }
    let mut pairs = Vec::new();
    let code;
    if form.decision == "approve" {
        let login: String = form
            .login
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(39)
            .collect();
        if login.is_empty() {
            return Err(Status::BadRequest);
        }
        let mut user = FakeUser::new(dev_id(&login), &login)
            .email(&format!("{login}@dev.localhost"))
            .name(Some(&format!("{login} (dev)")));
        // A picture that loads offline: an inline SVG of the initial, no host to reach.
        user.avatar_url = Some(initial_avatar(&login));
        fake.lock().users.insert(login.clone(), user);
        code = fake.grant(&login, form.redirect_uri, form.code_challenge);
        pairs.push(("code", code.as_str()));
    } else {
        pairs.push(("error", "access_denied"));
        pairs.push((
            "error_description",
            "The user has denied your application access.",
        ));
    }
    pairs.extend(form.state.map(|s| ("state", s)));
    Ok(Redirect::found(with_query(form.redirect_uri, &pairs)))
}

/// A `data:` URL of a small SVG: `login`'s initial on a colour of its own.
fn initial_avatar(login: &str) -> String {
    let initial = login.chars().next().map_or('?', |c| c.to_ascii_uppercase());
    let hue = login
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()))
        % 360;
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64"><rect width="64" height="64" fill="hsl({hue},55%,45%)"/><text x="32" y="43" font-family="sans-serif" font-size="30" text-anchor="middle" fill="#fff">{initial}</text></svg>"##
    );
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}

impl FakeGithub {
    fn grant(&self, login: &str, redirect_uri: &str, challenge: Option<&str>) -> String {
        let code = random_token(15);
        self.lock().codes.insert(
            code.clone(),
            Grant {
                login: login.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                challenge: challenge.map(str::to_owned),
                created_at: now(),
            },
        );
        code
    }

    fn issue_tokens(&self, inner: &mut Inner, login: &str) -> Value {
        match inner.mode.unwrap_or(TokenMode::OAuthApp) {
            TokenMode::OAuthApp => {
                let token = format!("gho_{}", random_token(27));
                inner.access.insert(token.clone(), login.to_owned());
                json!({"access_token": token, "scope": "read:user,user:email", "token_type": "bearer"})
            }
            TokenMode::Expiring => {
                let token = format!("ghu_{}", random_token(27));
                let refresh = format!("ghr_{}", random_token(57));
                inner.access.insert(token.clone(), login.to_owned());
                inner.refresh.insert(refresh.clone(), login.to_owned());
                json!({
                    "access_token": token, "expires_in": 28800, "refresh_token": refresh,
                    "refresh_token_expires_in": 15897600, "scope": "", "token_type": "bearer"
                })
            }
        }
    }
}

/// Whether the client asked for JSON (else GitHub answers form-encoded).
struct WantsJson(bool);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for WantsJson {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let json = request
            .headers()
            .get("Accept")
            .any(|a| a.contains("application/json"));
        Outcome::Success(WantsJson(json))
    }
}

#[derive(FromForm)]
struct TokenForm<'r> {
    client_id: Option<&'r str>,
    client_secret: Option<&'r str>,
    code: Option<&'r str>,
    redirect_uri: Option<&'r str>,
    code_verifier: Option<&'r str>,
    grant_type: Option<&'r str>,
    refresh_token: Option<&'r str>,
}

fn github_error(code: &str, description: &str) -> Value {
    json!({
        "error": code,
        "error_description": description,
        "error_uri": format!("https://docs.github.com/apps/troubleshooting-oauth-app-access-token-request-errors/#{}", code.replace('_', "-")),
    })
}

fn token_answer(value: Value, wants_json: bool) -> Raw {
    if wants_json {
        return json_answer(Status::Ok, value);
    }
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    if let Value::Object(map) = value {
        for (k, v) in map {
            match v {
                Value::String(s) => form.append_pair(&k, &s),
                other => form.append_pair(&k, &other.to_string()),
            };
        }
    }
    Raw {
        status: Status::Ok,
        content_type: ContentType::Form,
        body: form.finish(),
        headers: Vec::new(),
    }
}

#[post("/login/oauth/access_token", data = "<form>")]
async fn access_token(
    fake: &State<FakeGithub>,
    form: Form<TokenForm<'_>>,
    wants_json: WantsJson,
) -> Result<Raw, Either<RawAnswer, ByteStream![Vec<u8>]>> {
    fake.counters.token.fetch_add(1, Ordering::SeqCst);
    let fault = fake.lock().token_fault.clone();
    match fault {
        None => {}
        Some(TokenFault::Error200(code)) => {
            return Ok(token_answer(
                github_error(&code, "Injected fault."),
                wants_json.0,
            ))
        }
        Some(TokenFault::Html500) => {
            return Ok(Raw {
                status: Status::InternalServerError,
                content_type: ContentType::HTML,
                body: "<html><body><h1>Unicorn!</h1></body></html>".into(),
                headers: Vec::new(),
            })
        }
        Some(TokenFault::Malformed) => {
            return Ok(Raw {
                status: Status::Ok,
                content_type: ContentType::JSON,
                body: "{\"access_token\": ".into(),
                headers: Vec::new(),
            })
        }
        Some(TokenFault::Hang) => {
            rocket::tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Some(TokenFault::Endless) => {
            return Err(Either::Right(ByteStream! {
                yield b"{\"access_token\":\"".to_vec();
                loop {
                    yield vec![b'a'; 64 * 1024];
                }
            }))
        }
        Some(TokenFault::Answer(answer)) => return Err(Either::Left(answer)),
        Some(TokenFault::Slow(delay)) => rocket::tokio::time::sleep(delay).await,
    }
    let answer = |v| Ok(token_answer(v, wants_json.0));
    if form.client_id != Some(fake.client_id.as_str())
        || form.client_secret != Some(fake.client_secret.as_str())
    {
        return answer(github_error(
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
        ));
    }
    let delay = fake.lock().refresh_delay;
    if let (Some(delay), Some("refresh_token")) = (delay, form.grant_type) {
        rocket::tokio::time::sleep(delay).await;
    }
    let mut inner = fake.lock();
    if form.grant_type == Some("refresh_token") {
        fake.counters.refresh.fetch_add(1, Ordering::SeqCst);
        let login = form.refresh_token.and_then(|t| inner.refresh.remove(t));
        let Some(login) = login else {
            return answer(github_error(
                "bad_refresh_token",
                "The refresh token passed is incorrect or expired.",
            ));
        };
        // Rotation: the old access token stops working too.
        inner.access.retain(|_, l| *l != login);
        inner.mode = Some(TokenMode::Expiring);
        let value = fake.issue_tokens(&mut inner, &login);
        return answer(value);
    }
    let grant = form.code.and_then(|c| inner.codes.remove(c));
    let Some(grant) = grant.filter(|g| now() - g.created_at <= 600) else {
        return answer(github_error(
            "bad_verification_code",
            "The code passed is incorrect or expired.",
        ));
    };
    if form.redirect_uri.is_some_and(|r| r != grant.redirect_uri) {
        return answer(github_error(
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
        ));
    }
    if let Some(challenge) = &grant.challenge {
        if form.code_verifier.map(s256).as_ref() != Some(challenge) {
            return answer(github_error(
                "bad_verification_code",
                "The code passed is incorrect or expired.",
            ));
        }
    }
    let value = fake.issue_tokens(&mut inner, &grant.login);
    answer(value)
}

/// The caller of the REST API, from its headers.
struct ApiCaller {
    user_agent: bool,
    token: Option<String>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ApiCaller {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let token = request.headers().get_one("Authorization").and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("token "))
                .map(str::to_owned)
        });
        Outcome::Success(ApiCaller {
            user_agent: request.headers().get_one("User-Agent").is_some(),
            token,
        })
    }
}

impl FakeGithub {
    fn api_user(&self, caller: &ApiCaller) -> Result<FakeUser, Box<Raw>> {
        if !caller.user_agent {
            return Err(Box::new(json_answer(
                Status::Forbidden,
                json!({"message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes."}),
            )));
        }
        let inner = self.lock();
        caller
            .token
            .as_ref()
            .and_then(|t| inner.access.get(t))
            .and_then(|login| inner.users.get(login))
            .cloned()
            .ok_or_else(|| {
                Box::new(json_answer(
                    Status::Unauthorized,
                    json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}),
                ))
            })
    }
}

#[get("/user")]
async fn user(fake: &State<FakeGithub>, caller: ApiCaller) -> Result<Raw, RawAnswer> {
    fake.counters.user.fetch_add(1, Ordering::SeqCst);
    let injected = fake.lock().user_answer.clone();
    match injected {
        Some(answer) => Err(answer),
        None => Ok(user_answer(fake, caller).await),
    }
}

async fn user_answer(fake: &FakeGithub, caller: ApiCaller) -> Raw {
    let fault = fake.lock().api_fault;
    match fault {
        Some(ApiFault::UserUnauthorized) => {
            return json_answer(
                Status::Unauthorized,
                json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
            )
        }
        Some(ApiFault::UserRateLimited) => {
            let mut answer = json_answer(
                Status::Forbidden,
                json!({"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}),
            );
            answer.headers.push(("x-ratelimit-remaining", "0".into()));
            answer
                .headers
                .push(("x-ratelimit-reset", (now() + 3600).to_string()));
            return answer;
        }
        Some(ApiFault::UserHang) => rocket::tokio::time::sleep(Duration::from_secs(3600)).await,
        _ => {}
    }
    match fake.api_user(&caller) {
        Ok(u) => {
            let public_email = u.emails.iter().find(|e| e.1 && e.2).map(|e| e.0.clone());
            json_answer(
                Status::Ok,
                json!({
                    "login": u.login, "id": u.id, "node_id": format!("MDQ6VXNlcj{}", u.id),
                    "avatar_url": u.avatar_url, "type": "User", "site_admin": false,
                    "name": u.name, "email": public_email,
                }),
            )
        }
        Err(e) => *e,
    }
}

#[get("/user/emails")]
fn emails(fake: &State<FakeGithub>, caller: ApiCaller) -> Result<Raw, RawAnswer> {
    let injected = fake.lock().emails_answer.clone();
    match injected {
        Some(answer) => Err(answer),
        None => Ok(emails_answer(fake, caller)),
    }
}

fn emails_answer(fake: &FakeGithub, caller: ApiCaller) -> Raw {
    let fault = fake.lock().api_fault;
    match fault {
        Some(ApiFault::EmailsForbidden) => {
            return json_answer(
                Status::Forbidden,
                json!({"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user", "status": "403"}),
            )
        }
        Some(ApiFault::EmailsNotFound) => {
            return json_answer(
                Status::NotFound,
                json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}),
            )
        }
        _ => {}
    }
    match fake.api_user(&caller) {
        Ok(u) => json_answer(
            Status::Ok,
            Value::Array(
                u.emails
                    .iter()
                    .map(|(email, primary, verified)| {
                        let visibility = if *primary { json!("private") } else { Value::Null };
                        json!({"email": email, "primary": primary, "verified": verified, "visibility": visibility})
                    })
                    .collect(),
            ),
        ),
        Err(e) => *e,
    }
}
