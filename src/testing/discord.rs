//! The fake Discord (OAuth2, not OpenID): `/api/oauth2/authorize`, `/api/oauth2/token` (form
//! bodies only, HTTP Basic or body credentials, codes single-use for 100 seconds, PKCE with RFC
//! 7636's verifier lengths, rotating refresh tokens), `/api/oauth2/token/revoke` (which revokes
//! the whole authorization) and `/api/users/@me` (snowflake ids as strings, `global_name`, an
//! avatar hash or null, `verified`), Discord's spaced error JSON, and its rate-limit headers and
//! 429 bodies. Also served under `/api/v10`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rocket::http::{ContentType, Status};
use rocket::serde::json::{json, Value};
use rocket::{get, post, routes, Data, Either, Route, State};
use sha2::{Digest, Sha256};

use super::{
    fake_config, html_escape, pair, read_form, serve, with_query, Caller, FakeServer, Raw,
    RawAnswer,
};
use crate::clock::now;

/// A Discord account of the fake.
#[derive(Debug, Clone)]
pub struct FakeDiscordUser {
    /// The snowflake id (Discord sends it as a string; it may exceed 2^53).
    pub id: String,
    /// The unique, changeable username.
    pub username: String,
    /// The display name; `None`: `null`.
    pub global_name: Option<String>,
    /// `"0"` for users migrated to unique usernames, else the legacy four digits.
    pub discriminator: String,
    /// The avatar hash (`a_…` for an animated one); `None`: `null` (the default avatar).
    pub avatar: Option<String>,
    /// Email; sent only with the `email` scope (then `null` when the user has none).
    pub email: Option<String>,
    /// Whether the email is verified (sent with the `email` scope).
    pub verified: bool,
}

impl FakeDiscordUser {
    /// A migrated user (`discriminator: "0"`) without display name, avatar or email.
    pub fn new(id: &str, username: &str) -> Self {
        FakeDiscordUser {
            id: id.to_owned(),
            username: username.to_owned(),
            global_name: None,
            discriminator: "0".into(),
            avatar: None,
            email: None,
            verified: false,
        }
    }

    /// Sets the display name.
    pub fn global_name(mut self, name: &str) -> Self {
        self.global_name = Some(name.to_owned());
        self
    }

    /// Sets the avatar hash (`a_` + hex for an animated avatar).
    pub fn avatar(mut self, hash: &str) -> Self {
        self.avatar = Some(hash.to_owned());
        self
    }

    /// Sets the email and whether it is verified.
    pub fn email(mut self, email: &str, verified: bool) -> Self {
        self.email = Some(email.to_owned());
        self.verified = verified;
        self
    }

    /// Makes the user a legacy one with this discriminator (e.g. `"1337"`).
    pub fn legacy_discriminator(mut self, discriminator: &str) -> Self {
        self.discriminator = discriminator.to_owned();
        self
    }
}

/// Which rate limit a 429 names (`X-RateLimit-Scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscordRateLimitScope {
    /// The per-user (per-token) limit.
    User,
    /// The global limit (50 requests a second): also `X-RateLimit-Global: true` and
    /// `"global": true`.
    Global,
    /// A shared resource's limit: `"The resource is being rate limited."`.
    Shared,
}

/// A fault of the fake Discord.
#[derive(Debug, Clone, PartialEq)]
pub enum DiscordFault {
    /// The user clicks Cancel: `error=access_denied&error_description=…`.
    Denied,
    /// The token endpoint answers 429.
    TokenRateLimited {
        /// The limit named.
        scope: DiscordRateLimitScope,
        /// `retry_after` in the body (seconds, with decimals); `Retry-After` is it rounded up.
        retry_after: f64,
    },
    /// `GET /users/@me` answers 429.
    UserRateLimited {
        /// The limit named.
        scope: DiscordRateLimitScope,
        /// `retry_after` in the body (seconds, with decimals).
        retry_after: f64,
    },
    /// `GET /users/@me` answers 401 `{"message": "401: Unauthorized", "code": 0}`.
    UserUnauthorized,
    /// The token endpoint answers 400 with this `error` and `error_description`.
    TokenError {
        /// `error`, e.g. `invalid_grant`.
        error: String,
        /// `error_description`, if any.
        description: Option<String>,
    },
    /// The token endpoint answers this, whatever the request.
    TokenAnswer(RawAnswer),
    /// `GET /users/@me` answers this, whatever the request.
    UserAnswer(RawAnswer),
}

struct Grant {
    user: String,
    redirect_uri: String,
    scope: String,
    challenge: Option<String>,
    created_at: i64,
}

struct Token {
    user: String,
    scope: String,
    /// The authorization it belongs to: revoking one token revokes them all.
    grant: u64,
}

#[derive(Default)]
struct Inner {
    users: HashMap<String, FakeDiscordUser>,
    current: Option<String>,
    fault: Option<DiscordFault>,
    codes: HashMap<String, Grant>,
    access: HashMap<String, Token>,
    refresh: HashMap<String, Token>,
    grants: u64,
}

#[derive(Default)]
struct Counters {
    token: AtomicU64,
    refresh: AtomicU64,
    user: AtomicU64,
    revoke: AtomicU64,
}

/// The fake Discord's state: a cheap handle; clones share it.
///
/// ```no_run
/// use rocket_social_auth::testing::{FakeDiscord, FakeDiscordUser};
///
/// # async fn demo() {
/// let fake = FakeDiscord::new("1234567890", "discord-secret");
/// fake.sign_in_as(
///     FakeDiscordUser::new("80351110224678912", "nelly")
///         .global_name("Nelly")
///         .email("nelly@discord.example", true),
/// );
/// let server = fake.clone().spawn().await.expect("fake Discord starts");
/// // `authorize_url = {url}/api/oauth2/authorize`, `token_url = {url}/api/oauth2/token`,
/// // `api_url = {url}/api` (the user is at `{api_url}/users/@me`).
/// println!("{}/api/users/@me", server.url());
/// # }
/// ```
#[derive(Clone)]
pub struct FakeDiscord {
    client_id: String,
    client_secret: String,
    inner: Arc<Mutex<Inner>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for FakeDiscord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeDiscord")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl FakeDiscord {
    /// A provider that knows one confidential client and approves its authorizations at once
    /// for the user set by [`sign_in_as`](Self::sign_in_as).
    pub fn new(client_id: &str, client_secret: &str) -> Self {
        FakeDiscord {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            inner: Arc::default(),
            counters: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds (or replaces) `user` and approves the next authorizations for it.
    pub fn sign_in_as(&self, user: FakeDiscordUser) {
        let mut inner = self.lock();
        inner.current = Some(user.id.clone());
        inner.users.insert(user.id.clone(), user);
    }

    /// Switches a fault on (`Some`) or off.
    pub fn set_fault(&self, fault: Option<DiscordFault>) {
        self.lock().fault = fault;
    }

    /// Makes every code issued so far expired (Discord's live 100 seconds).
    pub fn expire_codes(&self) {
        for grant in self.lock().codes.values_mut() {
            grant.created_at = 0;
        }
    }

    /// Revokes every token (the user removed the app: refreshes then get `invalid_grant`).
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

    /// `GET /users/@me` requests received.
    pub fn user_calls(&self) -> u64 {
        self.counters.user.load(Ordering::SeqCst)
    }

    /// Revocation requests received.
    pub fn revoke_calls(&self) -> u64 {
        self.counters.revoke.load(Ordering::SeqCst)
    }

    /// The routes, to mount at `/api` (and `/api/v10`): `oauth2/authorize`, `oauth2/token`,
    /// `oauth2/token/revoke`, `users/@me`. The state must be managed with `rocket.manage(fake)`.
    pub fn routes() -> Vec<Route> {
        routes![authorize, token, revoke, me]
    }

    /// Serves the provider on `127.0.0.1` at a free port: the routes under `/api` and
    /// `/api/v10`, and the authorize page also at `/oauth2/authorize`.
    pub async fn spawn(self) -> Result<FakeServer, rocket::Error> {
        serve(
            rocket::custom(fake_config())
                .manage(self)
                .mount("/api", FakeDiscord::routes())
                .mount("/api/v10", FakeDiscord::routes())
                .mount("/", routes![authorize]),
        )
        .await
    }
}

/// A JSON object as Discord's errors write it, Python's way and in this order:
/// `{"error": "invalid_grant", "error_description": …}`.
fn spaced(fields: &[(&str, Value)]) -> String {
    let fields: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}: {v}", Value::String((*k).to_owned())))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

fn json_raw(status: Status, body: String) -> Raw {
    Raw {
        status,
        content_type: ContentType::JSON,
        body,
        headers: Vec::new(),
    }
}

/// A 400 (or 401) in Discord's token error shape.
fn token_error(status: Status, error: &str, description: Option<&str>) -> Raw {
    let mut fields = vec![("error", json!(error))];
    if let Some(description) = description {
        fields.push(("error_description", json!(description)));
    }
    json_raw(status, spaced(&fields))
}

/// The rate-limit headers Discord puts on every answer.
fn limit_headers(raw: &mut Raw, remaining: u32, reset_after: f64) {
    let reset = now() as f64 + reset_after;
    raw.headers.extend([
        ("X-RateLimit-Limit", "5".to_owned()),
        ("X-RateLimit-Remaining", remaining.to_string()),
        ("X-RateLimit-Reset", format!("{reset:.3}")),
        ("X-RateLimit-Reset-After", format!("{reset_after:.3}")),
        (
            "X-RateLimit-Bucket",
            "c9c1b1ec0b8d4b6bd8ea5e9f1e8b5a1d".to_owned(),
        ),
    ]);
}

fn rate_limited(scope: DiscordRateLimitScope, retry_after: f64) -> Raw {
    let message = match scope {
        DiscordRateLimitScope::Shared => "The resource is being rate limited.",
        _ => "You are being rate limited.",
    };
    let global = scope == DiscordRateLimitScope::Global;
    let mut raw = json_raw(
        Status::TooManyRequests,
        spaced(&[
            ("message", json!(message)),
            ("retry_after", json!(retry_after)),
            ("global", json!(global)),
        ]),
    );
    limit_headers(&mut raw, 0, retry_after);
    raw.headers
        .push(("Retry-After", (retry_after.ceil() as u64).to_string()));
    let scope = match scope {
        DiscordRateLimitScope::User => "user",
        DiscordRateLimitScope::Global => "global",
        DiscordRateLimitScope::Shared => "shared",
    };
    raw.headers.push(("X-RateLimit-Scope", scope.to_owned()));
    if global {
        raw.headers.push(("X-RateLimit-Global", "true".to_owned()));
    }
    raw
}

fn page(text: &str) -> Raw {
    Raw {
        status: Status::BadRequest,
        content_type: ContentType::HTML,
        body: format!(
            "<!doctype html><html><body><h1>Discord</h1><p>{}</p></body></html>",
            html_escape(text)
        ),
        headers: Vec::new(),
    }
}

fn alnum(len: usize) -> String {
    use rand::Rng;
    const SET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| SET[rng.gen_range(0..SET.len())] as char)
        .collect()
}

const SCOPES: &[&str] = &[
    "identify",
    "email",
    "guilds",
    "guilds.join",
    "guilds.members.read",
    "connections",
    "openid",
    "bot",
    "applications.commands",
    "role_connections.write",
    "messages.read",
    "gdm.join",
];

#[allow(clippy::too_many_arguments)]
#[get("/oauth2/authorize?<response_type>&<client_id>&<scope>&<state>&<redirect_uri>&<code_challenge>&<code_challenge_method>")]
fn authorize(
    fake: &State<FakeDiscord>,
    response_type: Option<&str>,
    client_id: Option<&str>,
    scope: Option<&str>,
    state: Option<&str>,
    redirect_uri: Option<&str>,
    code_challenge: Option<&str>,
    code_challenge_method: Option<&str>,
) -> Raw {
    if client_id != Some(fake.client_id.as_str()) {
        return page("Unknown Application");
    }
    let Some(redirect_uri) = redirect_uri.filter(|r| url::Url::parse(r).is_ok()) else {
        return page("Invalid OAuth2 redirect_uri");
    };
    if response_type != Some("code") {
        return page("Invalid response_type");
    }
    let scope = scope.unwrap_or_default();
    if scope.is_empty() || !scope.split(' ').all(|s| SCOPES.contains(&s)) {
        return page("Invalid scope");
    }
    if code_challenge.is_some() && code_challenge_method != Some("S256") {
        return page("Invalid code_challenge_method");
    }
    let mut inner = fake.lock();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let code;
    if inner.fault == Some(DiscordFault::Denied) {
        pairs.push(("error", "access_denied"));
        pairs.push((
            "error_description",
            "The resource owner or authorization server denied the request",
        ));
    } else {
        let Some(user) = inner.current.clone() else {
            return page("Nobody is signed in at the fake");
        };
        code = alnum(30);
        inner.codes.insert(
            code.clone(),
            Grant {
                user,
                redirect_uri: redirect_uri.to_owned(),
                scope: scope.to_owned(),
                challenge: code_challenge.map(str::to_owned),
                created_at: now(),
            },
        );
        pairs.push(("code", &code));
    }
    pairs.extend(state.map(|s| ("state", s)));
    Raw {
        status: Status::Found,
        content_type: ContentType::Plain,
        body: String::new(),
        headers: vec![("Location", with_query(redirect_uri, &pairs))],
    }
}

impl FakeDiscord {
    fn issue(&self, inner: &mut Inner, user: &str, scope: &str, grant: u64) -> Value {
        let access = alnum(30);
        let refresh = alnum(30);
        let token = |user: &str| Token {
            user: user.to_owned(),
            scope: scope.to_owned(),
            grant,
        };
        inner.access.insert(access.clone(), token(user));
        inner.refresh.insert(refresh.clone(), token(user));
        json!({"access_token": access, "token_type": "Bearer", "expires_in": 604800, "refresh_token": refresh, "scope": scope})
    }

    fn authenticated(&self, caller: &Caller, form: &[(String, String)]) -> bool {
        let ours = |id: &str, secret: &str| id == self.client_id && secret == self.client_secret;
        match (
            &caller.basic,
            pair(form, "client_id"),
            pair(form, "client_secret"),
        ) {
            (Some((id, secret)), None | Some(_), None) => ours(id, secret),
            (None, Some(id), Some(secret)) => ours(id, secret),
            _ => false,
        }
    }
}

#[post("/oauth2/token", data = "<body>")]
async fn token(
    fake: &State<FakeDiscord>,
    caller: Caller,
    body: Data<'_>,
) -> Either<Raw, RawAnswer> {
    fake.counters.token.fetch_add(1, Ordering::SeqCst);
    let fault = fake.lock().fault.clone();
    match fault {
        Some(DiscordFault::TokenRateLimited { scope, retry_after }) => {
            return Either::Left(rate_limited(scope, retry_after))
        }
        Some(DiscordFault::TokenError { error, description }) => {
            return Either::Left(token_error(
                Status::BadRequest,
                &error,
                description.as_deref(),
            ))
        }
        Some(DiscordFault::TokenAnswer(answer)) => return Either::Right(answer),
        _ => {}
    }
    let mut answer = token_answer(fake, &caller, body).await;
    limit_headers(&mut answer, 4, 1.0);
    Either::Left(answer)
}

async fn token_answer(fake: &FakeDiscord, caller: &Caller, body: Data<'_>) -> Raw {
    // Only form bodies: JSON "will return an error".
    let form = if caller.form_body {
        read_form(body).await
    } else {
        Vec::new()
    };
    let bad_grant_type = || {
        token_error(
            Status::BadRequest,
            "unsupported_grant_type",
            Some("Invalid \"grant_type\" in request."),
        )
    };
    if !caller.form_body {
        return bad_grant_type();
    }
    if !fake.authenticated(caller, &form) {
        return token_error(Status::Unauthorized, "invalid_client", None);
    }
    let mut inner = fake.lock();
    match pair(&form, "grant_type") {
        Some("authorization_code") => {
            let invalid_code = || {
                token_error(
                    Status::BadRequest,
                    "invalid_grant",
                    Some("Invalid \"code\" in request."),
                )
            };
            // Single use: a code is gone once presented.
            let Some(grant) = pair(&form, "code").and_then(|c| inner.codes.remove(c)) else {
                return invalid_code();
            };
            if now() - grant.created_at > 100 {
                return invalid_code();
            }
            if pair(&form, "redirect_uri") != Some(grant.redirect_uri.as_str()) {
                return token_error(
                    Status::BadRequest,
                    "invalid_grant",
                    Some("Invalid \"redirect_uri\" in request."),
                );
            }
            if let Some(challenge) = &grant.challenge {
                let verifier = pair(&form, "code_verifier");
                if verifier.is_some_and(|v| !(43..=128).contains(&v.len())) {
                    return token_error(
                        Status::BadRequest,
                        "invalid_request",
                        Some("Invalid \"code_verifier\""),
                    );
                }
                let s256 = verifier.map(|v| URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())));
                if s256.as_ref() != Some(challenge) {
                    return token_error(
                        Status::BadRequest,
                        "invalid_grant",
                        Some("Invalid \"code_verifier\""),
                    );
                }
            }
            inner.grants += 1;
            let grant_id = inner.grants;
            let value = fake.issue(&mut inner, &grant.user, &grant.scope, grant_id);
            json_raw(Status::Ok, value.to_string())
        }
        Some("refresh_token") => {
            fake.counters.refresh.fetch_add(1, Ordering::SeqCst);
            // Rotation: a refresh token works once.
            let Some(old) = pair(&form, "refresh_token").and_then(|t| inner.refresh.remove(t))
            else {
                return token_error(
                    Status::BadRequest,
                    "invalid_grant",
                    Some("Invalid \"refresh_token\" in request"),
                );
            };
            let value = fake.issue(&mut inner, &old.user, &old.scope, old.grant);
            json_raw(Status::Ok, value.to_string())
        }
        _ => bad_grant_type(),
    }
}

#[post("/oauth2/token/revoke", data = "<body>")]
async fn revoke(fake: &State<FakeDiscord>, caller: Caller, body: Data<'_>) -> Raw {
    fake.counters.revoke.fetch_add(1, Ordering::SeqCst);
    let form = read_form(body).await;
    if !fake.authenticated(&caller, &form) {
        return token_error(Status::Unauthorized, "invalid_client", None);
    }
    let mut inner = fake.lock();
    let token = pair(&form, "token").unwrap_or_default();
    let grant = inner
        .access
        .get(token)
        .or_else(|| inner.refresh.get(token))
        .map(|t| t.grant);
    if let Some(grant) = grant {
        // Whatever the token and its type hint: the whole authorization goes.
        inner.access.retain(|_, t| t.grant != grant);
        inner.refresh.retain(|_, t| t.grant != grant);
    }
    json_raw(Status::Ok, "{}".into())
}

#[get("/users/@me")]
fn me(fake: &State<FakeDiscord>, caller: Caller) -> Either<Raw, RawAnswer> {
    fake.counters.user.fetch_add(1, Ordering::SeqCst);
    let inner = fake.lock();
    match inner.fault.clone() {
        Some(DiscordFault::UserRateLimited { scope, retry_after }) => {
            return Either::Left(rate_limited(scope, retry_after))
        }
        Some(DiscordFault::UserAnswer(answer)) => return Either::Right(answer),
        _ => {}
    }
    let unauthorized = || {
        let mut raw = json_raw(
            Status::Unauthorized,
            spaced(&[("message", json!("401: Unauthorized")), ("code", json!(0))]),
        );
        limit_headers(&mut raw, 4, 1.0);
        Either::Left(raw)
    };
    if inner.fault == Some(DiscordFault::UserUnauthorized) {
        return unauthorized();
    }
    let token = caller.bearer.as_ref().and_then(|t| inner.access.get(t));
    let Some((user, scope)) = token
        .filter(|t| t.scope.split(' ').any(|s| s == "identify"))
        .and_then(|t| inner.users.get(&t.user).map(|u| (u, &t.scope)))
    else {
        return unauthorized();
    };
    let mut body = json!({
        "id": user.id, "username": user.username, "global_name": user.global_name,
        "discriminator": user.discriminator, "avatar": user.avatar, "bot": false,
        "mfa_enabled": false, "banner": null, "accent_color": null, "locale": "en-US",
        "flags": 0, "premium_type": 0, "public_flags": 0, "avatar_decoration_data": null,
        "collectibles": null, "primary_guild": null, "clan": null,
    });
    if scope.split(' ').any(|s| s == "email") {
        body["email"] = json!(user.email);
        body["verified"] = json!(user.verified);
    }
    let mut raw = json_raw(Status::Ok, body.to_string());
    limit_headers(&mut raw, 4, 1.0);
    Either::Left(raw)
}

#[cfg(test)]
mod tests {
    use super::spaced;
    use rocket::serde::json::json;

    #[test]
    fn errors_are_written_with_spaces_as_discord_does() {
        let body = [
            ("error", json!("invalid_grant")),
            ("error_description", json!("Invalid \"code\" in request.")),
        ];
        assert_eq!(
            spaced(&body),
            r#"{"error": "invalid_grant", "error_description": "Invalid \"code\" in request."}"#
        );
    }
}
