//! The fake Facebook: the Login dialog, the Graph API's token and `/me` endpoints, its error
//! envelope, and `appsecret_proof` enforced on every call made with a user token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rocket::response::Redirect;
use rocket::serde::json::{json, Value};
use rocket::{get, routes, Route, State};

use super::{fake_config, json_answer, serve, with_query, FakeServer, Raw};
use crate::clock::{now, random_token};
use crate::provider::facebook::appsecret_proof;
use rocket::http::Status;

/// A Facebook account of the fake.
#[derive(Debug, Clone)]
pub struct FakeFacebookUser {
    /// The app-scoped user id (a string of digits).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Email; `None` when the user has none or did not grant it (the field is then absent).
    pub email: Option<String>,
    /// `picture.data.url`.
    pub picture_url: String,
}

impl FakeFacebookUser {
    /// A user without email.
    pub fn new(id: &str, name: &str) -> Self {
        FakeFacebookUser {
            id: id.to_owned(),
            name: name.to_owned(),
            email: None,
            picture_url: format!("https://platform-lookaside.fbsbx.example/{id}/picture"),
        }
    }

    /// Sets the email.
    pub fn email(mut self, email: &str) -> Self {
        self.email = Some(email.to_owned());
        self
    }
}

/// A fault of the fake Facebook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FacebookFault {
    /// The user cancels the dialog: `error=access_denied&error_reason=user_denied…#_=_`.
    Denied,
    /// `/me` answers code 190, subcode 463: the token has expired.
    MeTokenExpired,
    /// Every Graph call answers code 4: application request limit reached (transient).
    RateLimited,
}

struct Token {
    user: String,
    expires_at: i64,
}

#[derive(Default)]
struct Inner {
    users: HashMap<String, FakeFacebookUser>,
    current: Option<String>,
    fault: Option<FacebookFault>,
    /// code → (user id, redirect_uri, used)
    codes: HashMap<String, (String, String, bool)>,
    tokens: HashMap<String, Token>,
}

/// The fake Facebook's state: a cheap handle; clones share it.
#[derive(Clone)]
pub struct FakeFacebook {
    app_id: String,
    app_secret: String,
    inner: Arc<Mutex<Inner>>,
    graph_calls: Arc<AtomicU64>,
    without_proof: Arc<AtomicU64>,
}

impl std::fmt::Debug for FakeFacebook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeFacebook")
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

impl FakeFacebook {
    /// A provider that knows one app and approves its logins at once for the user set by
    /// [`sign_in_as`](Self::sign_in_as).
    pub fn new(app_id: &str, app_secret: &str) -> Self {
        FakeFacebook {
            app_id: app_id.to_owned(),
            app_secret: app_secret.to_owned(),
            inner: Arc::default(),
            graph_calls: Arc::default(),
            without_proof: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds (or replaces) `user` and approves the next logins for it.
    pub fn sign_in_as(&self, user: FakeFacebookUser) {
        let mut inner = self.lock();
        inner.current = Some(user.id.clone());
        inner.users.insert(user.id.clone(), user);
    }

    /// Switches a fault on (`Some`) or off.
    pub fn set_fault(&self, fault: Option<FacebookFault>) {
        self.lock().fault = fault;
    }

    /// Makes every token issued so far expired.
    pub fn expire_tokens(&self) {
        for token in self.lock().tokens.values_mut() {
            token.expires_at = now() - 1;
        }
    }

    /// How many Graph calls were made with a user token.
    pub fn graph_calls(&self) -> u64 {
        self.graph_calls.load(Ordering::SeqCst)
    }

    /// How many of those lacked a correct `appsecret_proof` (refused, as Facebook does when
    /// the app requires it).
    pub fn calls_without_proof(&self) -> u64 {
        self.without_proof.load(Ordering::SeqCst)
    }

    /// The routes, to mount at `/v19.0`: `dialog/oauth`, `oauth/access_token`, `me`.
    pub fn routes() -> Vec<Route> {
        routes![dialog, access_token, me]
    }

    /// Serves the provider on `127.0.0.1` at a free port; the authorize URL is
    /// `{url}/v19.0/dialog/oauth` and the Graph root `{url}/v19.0`.
    pub async fn spawn(self) -> Result<FakeServer, rocket::Error> {
        serve(
            rocket::custom(fake_config())
                .manage(self)
                .mount("/v19.0", FakeFacebook::routes()),
        )
        .await
    }

    /// Checks the proof of a call made with a user token; `Some` is the refusal.
    fn check_proof(&self, token: &str, proof: Option<&str>) -> Option<Raw> {
        self.graph_calls.fetch_add(1, Ordering::SeqCst);
        match proof {
            Some(p) if p == appsecret_proof(&self.app_secret, token) => None,
            Some(_) => {
                self.without_proof.fetch_add(1, Ordering::SeqCst);
                Some(fb_error(
                    "Invalid appsecret_proof provided in the API argument",
                    "GraphMethodException",
                    100,
                    None,
                    false,
                ))
            }
            None => {
                self.without_proof.fetch_add(1, Ordering::SeqCst);
                Some(fb_error(
                    "API calls from the server require an appsecret_proof argument",
                    "GraphMethodException",
                    100,
                    None,
                    false,
                ))
            }
        }
    }

    fn issue(&self, inner: &mut Inner, user: String) -> Value {
        let token = format!("EAAB{}", random_token(40));
        let expires_in = 5_183_944;
        inner.tokens.insert(
            token.clone(),
            Token {
                user,
                expires_at: now() + expires_in,
            },
        );
        json!({"access_token": token, "token_type": "bearer", "expires_in": expires_in})
    }
}

fn fb_error(message: &str, kind: &str, code: u32, subcode: Option<u32>, transient: bool) -> Raw {
    let mut error = json!({"message": message, "type": kind, "code": code, "fbtrace_id": format!("A{}", random_token(8))});
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    if transient {
        error["is_transient"] = json!(true);
    }
    json_answer(Status::BadRequest, json!({ "error": error }))
}

fn rate_limited() -> Raw {
    fb_error(
        "(#4) Application request limit reached",
        "OAuthException",
        4,
        None,
        true,
    )
}

#[get("/dialog/oauth?<client_id>&<redirect_uri>&<state>&<response_type>")]
fn dialog(
    fake: &State<FakeFacebook>,
    client_id: Option<&str>,
    redirect_uri: Option<&str>,
    state: Option<&str>,
    response_type: Option<&str>,
) -> Result<Redirect, Status> {
    if client_id != Some(fake.app_id.as_str()) || response_type != Some("code") {
        return Err(Status::BadRequest);
    }
    let redirect_uri = redirect_uri.ok_or(Status::BadRequest)?;
    let mut inner = fake.lock();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let code;
    if inner.fault == Some(FacebookFault::Denied) {
        pairs.extend([
            ("error", "access_denied"),
            ("error_code", "200"),
            ("error_description", "Permissions error"),
            ("error_reason", "user_denied"),
        ]);
    } else {
        let user = inner.current.clone().ok_or(Status::Unauthorized)?;
        code = format!("AQ{}", random_token(30));
        inner
            .codes
            .insert(code.clone(), (user, redirect_uri.to_owned(), false));
        pairs.push(("code", &code));
    }
    pairs.extend(state.map(|s| ("state", s)));
    // Facebook appends an empty fragment to its redirects.
    Ok(Redirect::found(format!(
        "{}#_=_",
        with_query(redirect_uri, &pairs)
    )))
}

#[allow(clippy::too_many_arguments)]
#[get("/oauth/access_token?<client_id>&<client_secret>&<redirect_uri>&<code>&<grant_type>&<fb_exchange_token>")]
fn access_token(
    fake: &State<FakeFacebook>,
    client_id: Option<&str>,
    client_secret: Option<&str>,
    redirect_uri: Option<&str>,
    code: Option<&str>,
    grant_type: Option<&str>,
    fb_exchange_token: Option<&str>,
) -> Raw {
    if fake.lock().fault == Some(FacebookFault::RateLimited) {
        return rate_limited();
    }
    if client_id != Some(fake.app_id.as_str()) || client_secret != Some(fake.app_secret.as_str()) {
        return fb_error(
            "Error validating client secret.",
            "OAuthException",
            1,
            None,
            false,
        );
    }
    let mut inner = fake.lock();
    if grant_type == Some("fb_exchange_token") {
        let Some(token) = fb_exchange_token.and_then(|t| inner.tokens.get(t)) else {
            return fb_error(
                "Invalid OAuth access token - Cannot parse access token",
                "OAuthException",
                190,
                None,
                false,
            );
        };
        if token.expires_at <= now() {
            return fb_error(
                "Error validating access token: Session has expired on Friday, 27-Nov-26 10:00:00 PST.",
                "OAuthException",
                190,
                Some(463),
                false,
            );
        }
        let user = token.user.clone();
        let value = fake.issue(&mut inner, user);
        return json_answer(Status::Ok, value);
    }
    let Some((user, registered, used)) = code.and_then(|c| inner.codes.get_mut(c)) else {
        return fb_error(
            "Invalid verification code format.",
            "OAuthException",
            100,
            None,
            false,
        );
    };
    if *used {
        return fb_error(
            "This authorization code has been used.",
            "OAuthException",
            100,
            None,
            false,
        );
    }
    if redirect_uri != Some(registered.as_str()) {
        return fb_error(
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
            "OAuthException",
            100,
            None,
            false,
        );
    }
    *used = true;
    let user = user.clone();
    let value = fake.issue(&mut inner, user);
    json_answer(Status::Ok, value)
}

#[get("/me?<fields>&<access_token>&<appsecret_proof>")]
fn me(
    fake: &State<FakeFacebook>,
    fields: Option<&str>,
    access_token: Option<&str>,
    appsecret_proof: Option<&str>,
) -> Raw {
    let Some(token) = access_token else {
        return fb_error(
            "An active access token must be used to query information about the current user.",
            "OAuthException",
            2500,
            None,
            false,
        );
    };
    if let Some(refused) = fake.check_proof(token, appsecret_proof) {
        return refused;
    }
    let inner = fake.lock();
    match inner.fault {
        Some(FacebookFault::RateLimited) => return rate_limited(),
        Some(FacebookFault::MeTokenExpired) => return fb_error(
            "Error validating access token: Session has expired on Friday, 27-Nov-26 10:00:00 PST.",
            "OAuthException",
            190,
            Some(463),
            false,
        ),
        _ => {}
    }
    let user = match inner.tokens.get(token) {
        Some(t) if t.expires_at > now() => inner.users.get(&t.user),
        Some(_) => {
            return fb_error(
                "Error validating access token: Session has expired.",
                "OAuthException",
                190,
                Some(463),
                false,
            )
        }
        None => None,
    };
    let Some(user) = user else {
        return fb_error(
            "Invalid OAuth access token data.",
            "OAuthException",
            190,
            Some(467),
            false,
        );
    };
    let fields: Vec<&str> = fields.unwrap_or("id,name").split(',').collect();
    let mut answer = json!({"id": user.id});
    if fields.contains(&"name") {
        answer["name"] = json!(user.name);
    }
    if let (true, Some(email)) = (fields.contains(&"email"), &user.email) {
        answer["email"] = json!(email);
    }
    if fields.contains(&"picture") {
        answer["picture"] = json!({"data": {"height": 50, "is_silhouette": false, "url": user.picture_url, "width": 50}});
    }
    json_answer(Status::Ok, answer)
}
