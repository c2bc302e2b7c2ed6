//! A fake OpenID Connect provider in Google's image: discovery, a rotating RS256 JWKS, signed
//! `id_token`s, userinfo, the token endpoint with PKCE and refresh (no new refresh token, as
//! Google), Google's error bodies, and faults that break one `id_token` check at a time. Its
//! discovery document can be rewritten field by field, and its discovery and JWKS answers held
//! back (to see what a slow provider does to its clients).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rocket::form::{Form, FromForm};
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::Redirect;
use rocket::serde::json::{json, Value};
use rocket::tokio::sync::watch;
use rocket::{get, post, routes, Route, State};
use sha2::{Digest, Sha256};

use super::{fake_config, json_answer, serve, with_query, FakeServer, Raw};
use crate::clock::{now, random_token};

/// How the fake wants clients to authenticate at its token endpoint (what discovery advertises).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`).
    Basic,
    /// Form fields (`client_secret_post`).
    Post,
}

/// One way to break the next `id_token`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenFault {
    /// `aud` is another client.
    WrongAudience,
    /// `aud` lists our client and another, and `azp` is the other.
    ForeignAuthorizedParty,
    /// `nonce` is not the one of the authorization request.
    WrongNonce,
    /// Expired an hour ago.
    Expired,
    /// Issued an hour in the future.
    IssuedInTheFuture,
    /// `iss` is another issuer.
    WrongIssuer,
    /// The signature does not match.
    BadSignature,
    /// Signed by a key that is never published.
    UnpublishedKey,
    /// HS256, keyed with the client secret (algorithm confusion).
    HmacWithClientSecret,
    /// HS256, keyed with the public key's modulus (algorithm confusion).
    HmacWithPublicKey,
    /// The token endpoint answers without an `id_token`.
    Missing,
}

/// An account of the fake.
#[derive(Debug, Clone)]
pub struct FakeOidcUser {
    /// The stable subject.
    pub sub: String,
    /// Email.
    pub email: Option<String>,
    /// `email_verified` as the provider sends it: `true`, `false` or the string `"true"`.
    pub email_verified: Value,
    /// Display name.
    pub name: Option<String>,
    /// Picture URL.
    pub picture: Option<String>,
    /// Google Workspace domain.
    pub hd: Option<String>,
}

impl FakeOidcUser {
    /// A user with a verified email, a name and a picture.
    pub fn new(sub: &str, name: &str, email: &str) -> Self {
        FakeOidcUser {
            sub: sub.to_owned(),
            email: Some(email.to_owned()),
            email_verified: json!(true),
            name: Some(name.to_owned()),
            picture: Some(format!("https://lh3.example/{sub}.png")),
            hd: None,
        }
    }
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
    modulus: Vec<u8>,
}

fn rsa_key() -> SigningKey {
    let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
    let der = pair.as_der().expect("PKCS#8");
    let body = STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("RSA PEM");
    let kid = random_token(8);
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("JWK");
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
    let jwk = serde_json::to_value(&jwk).unwrap_or_default();
    let modulus = jwk["n"]
        .as_str()
        .and_then(|n| URL_SAFE_NO_PAD.decode(n).ok())
        .unwrap_or_default();
    SigningKey {
        kid,
        encoding,
        jwk,
        modulus,
    }
}

struct Grant {
    sub: String,
    redirect_uri: String,
    nonce: Option<String>,
    challenge: Option<String>,
    scope: String,
    offline: bool,
    created_at: i64,
    used: bool,
}

/// Holds one endpoint's answers while paused, and counts the requests it holds.
struct Gate {
    paused: watch::Sender<bool>,
    waiting: AtomicU64,
}

/// Counts a held request down when it goes, answered or dropped.
struct Held<'a>(&'a AtomicU64);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Gate {
    fn new() -> Self {
        Gate {
            paused: watch::channel(false).0,
            waiting: AtomicU64::new(0),
        }
    }

    fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    /// Returns at once unless paused; else when resumed.
    async fn pass(&self) {
        let mut paused = self.paused.subscribe();
        if !*paused.borrow_and_update() {
            return;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _held = Held(&self.waiting);
        let _ = paused.wait_for(|p| !p).await;
    }
}

struct Inner {
    issuer: Option<String>,
    discovery_fields: HashMap<String, Value>,
    client_auth: ClientAuth,
    google: bool,
    legacy_issuer: bool,
    profile_in_userinfo_only: bool,
    discovery_down: bool,
    denied: bool,
    iss_parameter: bool,
    fault: Option<IdTokenFault>,
    keys: Vec<SigningKey>,
    users: HashMap<String, FakeOidcUser>,
    current: Option<String>,
    codes: HashMap<String, Grant>,
    access: HashMap<String, String>,
    refresh: HashMap<String, String>,
}

/// The fake OpenID provider's state: a cheap handle; clones share it.
#[derive(Clone)]
pub struct FakeOidc {
    client_id: String,
    client_secret: String,
    inner: Arc<Mutex<Inner>>,
    discovery_calls: Arc<AtomicU64>,
    jwks_calls: Arc<AtomicU64>,
    token_calls: Arc<AtomicU64>,
    discovery_gate: Arc<Gate>,
    jwks_gate: Arc<Gate>,
}

impl std::fmt::Debug for FakeOidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeOidc")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl FakeOidc {
    /// A Google-like provider (`access_type=offline` gives a refresh token) that knows one
    /// client, authenticates it with HTTP Basic, and approves logins at once for the user set by
    /// [`sign_in_as`](Self::sign_in_as).
    pub fn google(client_id: &str, client_secret: &str) -> Self {
        FakeOidc::build(client_id, client_secret, true)
    }

    /// A generic provider: the `offline_access` scope gives a refresh token.
    pub fn generic(client_id: &str, client_secret: &str) -> Self {
        FakeOidc::build(client_id, client_secret, false)
    }

    fn build(client_id: &str, client_secret: &str, google: bool) -> Self {
        FakeOidc {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            inner: Arc::new(Mutex::new(Inner {
                issuer: None,
                discovery_fields: HashMap::new(),
                client_auth: ClientAuth::Basic,
                google,
                legacy_issuer: false,
                profile_in_userinfo_only: false,
                discovery_down: false,
                denied: false,
                iss_parameter: false,
                fault: None,
                keys: vec![rsa_key()],
                users: HashMap::new(),
                current: None,
                codes: HashMap::new(),
                access: HashMap::new(),
                refresh: HashMap::new(),
            })),
            discovery_calls: Arc::new(AtomicU64::new(0)),
            jwks_calls: Arc::new(AtomicU64::new(0)),
            token_calls: Arc::new(AtomicU64::new(0)),
            discovery_gate: Arc::new(Gate::new()),
            jwks_gate: Arc::new(Gate::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds (or replaces) `user` and approves the next logins for it.
    pub fn sign_in_as(&self, user: FakeOidcUser) {
        let mut inner = self.lock();
        inner.current = Some(user.sub.clone());
        inner.users.insert(user.sub.clone(), user);
    }

    /// Chooses the client authentication discovery advertises and the token endpoint accepts.
    pub fn set_client_auth(&self, auth: ClientAuth) {
        self.lock().client_auth = auth;
    }

    /// Breaks the next `id_token`s one way (`None`: well-formed again).
    pub fn set_fault(&self, fault: Option<IdTokenFault>) {
        self.lock().fault = fault;
    }

    /// Sends `iss` without its scheme, as Google's `accounts.google.com`.
    pub fn set_legacy_issuer(&self, legacy: bool) {
        self.lock().legacy_issuer = legacy;
    }

    /// Leaves name and picture out of the `id_token`: only userinfo has them.
    pub fn set_profile_in_userinfo_only(&self, only: bool) {
        self.lock().profile_in_userinfo_only = only;
    }

    /// Makes discovery answer 503 (`true`) or work again.
    pub fn set_discovery_down(&self, down: bool) {
        self.lock().discovery_down = down;
    }

    /// Sets `field` of the discovery document to `value` over what the fake sends (`None`:
    /// the fake's own again), e.g. a `token_endpoint` elsewhere.
    pub fn set_discovery_field(&self, field: &str, value: Option<Value>) {
        let mut inner = self.lock();
        match value {
            Some(value) => inner.discovery_fields.insert(field.to_owned(), value),
            None => inner.discovery_fields.remove(field),
        };
    }

    /// Holds discovery answers (`true`) until called with `false`; the requests are counted
    /// in [`discovery_calls`](Self::discovery_calls) when they arrive.
    pub fn set_discovery_paused(&self, paused: bool) {
        self.discovery_gate.set_paused(paused);
    }

    /// Holds JWKS answers (`true`) until called with `false`; the requests are counted in
    /// [`jwks_calls`](Self::jwks_calls) when they arrive.
    pub fn set_jwks_paused(&self, paused: bool) {
        self.jwks_gate.set_paused(paused);
    }

    /// Discovery requests held now.
    pub fn discovery_waiting(&self) -> u64 {
        self.discovery_gate.waiting.load(Ordering::SeqCst)
    }

    /// JWKS requests held now.
    pub fn jwks_waiting(&self) -> u64 {
        self.jwks_gate.waiting.load(Ordering::SeqCst)
    }

    /// Sends `iss` in authorization responses and advertises it (RFC 9207).
    pub fn set_iss_parameter(&self, on: bool) {
        self.lock().iss_parameter = on;
    }

    /// Makes the user deny the next authorizations.
    pub fn set_denied(&self, denied: bool) {
        self.lock().denied = denied;
    }

    /// Fixes the issuer (default: `http://` and the Host the request came to).
    pub fn set_issuer(&self, issuer: &str) {
        self.lock().issuer = Some(issuer.trim_end_matches('/').to_owned());
    }

    /// Rotates the signing key: a new key signs, the JWKS lists both.
    pub fn rotate_keys(&self) {
        self.lock().keys.insert(0, rsa_key());
    }

    /// Revokes every refresh token.
    pub fn revoke_refresh_tokens(&self) {
        self.lock().refresh.clear();
    }

    /// Discovery requests received.
    pub fn discovery_calls(&self) -> u64 {
        self.discovery_calls.load(Ordering::SeqCst)
    }

    /// JWKS requests received.
    pub fn jwks_calls(&self) -> u64 {
        self.jwks_calls.load(Ordering::SeqCst)
    }

    /// Token requests answered.
    pub fn token_calls(&self) -> u64 {
        self.token_calls.load(Ordering::SeqCst)
    }

    /// The routes, to mount at the issuer's path: `.well-known/openid-configuration`,
    /// `authorize`, `token`, `userinfo`, `certs`.
    pub fn routes() -> Vec<Route> {
        routes![discovery, authorize, token, userinfo, certs]
    }

    /// Serves the provider on `127.0.0.1` at a free port; its issuer is the server's URL with the
    /// host the client uses (`127.0.0.1` or `localhost`).
    pub async fn spawn(self) -> Result<FakeServer, rocket::Error> {
        serve(
            rocket::custom(fake_config())
                .manage(self)
                .mount("/", FakeOidc::routes()),
        )
        .await
    }

    fn issuer(&self, host: &HostHeader) -> String {
        self.lock()
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{}", host.0))
    }

    fn id_token(&self, inner: &Inner, issuer: &str, grant: &Grant) -> Option<String> {
        let user = inner.users.get(&grant.sub)?;
        let now = now();
        let iss = if inner.legacy_issuer {
            issuer
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .to_owned()
        } else {
            issuer.to_owned()
        };
        let mut claims = json!({
            "iss": iss, "sub": user.sub, "aud": self.client_id, "azp": self.client_id,
            "iat": now, "exp": now + 3600, "at_hash": random_token(16),
            "email": user.email, "email_verified": user.email_verified,
        });
        if let Some(nonce) = &grant.nonce {
            claims["nonce"] = json!(nonce);
        }
        if !inner.profile_in_userinfo_only {
            claims["name"] = json!(user.name);
            claims["picture"] = json!(user.picture);
            if let Some(name) = &user.name {
                let mut parts = name.splitn(2, ' ');
                claims["given_name"] = json!(parts.next());
                claims["family_name"] = json!(parts.next());
            }
        }
        if let Some(hd) = &user.hd {
            claims["hd"] = json!(hd);
        }
        let key = &inner.keys[0];
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        let mut signing = &key.encoding;
        let unpublished;
        let hmac;
        match inner.fault {
            None | Some(IdTokenFault::BadSignature) | Some(IdTokenFault::Missing) => {}
            Some(IdTokenFault::WrongAudience) => claims["aud"] = json!("someone-else"),
            Some(IdTokenFault::ForeignAuthorizedParty) => {
                claims["aud"] = json!([self.client_id, "someone-else"]);
                claims["azp"] = json!("someone-else");
            }
            Some(IdTokenFault::WrongNonce) => claims["nonce"] = json!("not-the-nonce"),
            Some(IdTokenFault::Expired) => {
                claims["iat"] = json!(now - 7200);
                claims["exp"] = json!(now - 3600);
            }
            Some(IdTokenFault::IssuedInTheFuture) => {
                claims["iat"] = json!(now + 3600);
                claims["exp"] = json!(now + 7200);
            }
            Some(IdTokenFault::WrongIssuer) => claims["iss"] = json!("https://issuer.evil.example"),
            Some(IdTokenFault::UnpublishedKey) => {
                unpublished = rsa_key();
                header.kid = Some(unpublished.kid.clone());
                signing = &unpublished.encoding;
            }
            Some(IdTokenFault::HmacWithClientSecret) => {
                header = Header::new(Algorithm::HS256);
                header.kid = Some(key.kid.clone());
                hmac = EncodingKey::from_secret(self.client_secret.as_bytes());
                signing = &hmac;
            }
            Some(IdTokenFault::HmacWithPublicKey) => {
                header = Header::new(Algorithm::HS256);
                header.kid = Some(key.kid.clone());
                hmac = EncodingKey::from_secret(&key.modulus);
                signing = &hmac;
            }
        }
        let mut token = jsonwebtoken::encode(&header, &claims, signing).ok()?;
        if inner.fault == Some(IdTokenFault::BadSignature) {
            // Sign another payload: a valid signature, for other claims.
            let mut other = claims.clone();
            other["sub"] = json!("someone-else");
            let forged = jsonwebtoken::encode(&header, &other, signing).ok()?;
            let signature = forged.rsplit('.').next()?.to_owned();
            token = format!("{}.{signature}", token.rsplit_once('.')?.0);
        }
        Some(token)
    }
}

/// The Host a request came to.
struct HostHeader(String);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for HostHeader {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let host = request
            .headers()
            .get_one("Host")
            .unwrap_or("127.0.0.1")
            .to_owned();
        Outcome::Success(HostHeader(host))
    }
}

#[get("/.well-known/openid-configuration")]
async fn discovery(fake: &State<FakeOidc>, host: HostHeader) -> Raw {
    fake.discovery_calls.fetch_add(1, Ordering::SeqCst);
    fake.discovery_gate.pass().await;
    let issuer = fake.issuer(&host);
    let inner = fake.lock();
    if inner.discovery_down {
        return json_answer(Status::ServiceUnavailable, json!({"error": "unavailable"}));
    }
    let auth = match inner.client_auth {
        ClientAuth::Basic => "client_secret_basic",
        ClientAuth::Post => "client_secret_post",
    };
    let mut document = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "jwks_uri": format!("{issuer}/certs"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "offline_access"],
            "token_endpoint_auth_methods_supported": [auth],
            "claims_supported": ["aud", "email", "email_verified", "exp", "family_name", "given_name", "iat", "iss", "name", "picture", "sub"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "authorization_response_iss_parameter_supported": inner.iss_parameter,
    });
    for (field, value) in &inner.discovery_fields {
        document[field.as_str()] = value.clone();
    }
    json_answer(Status::Ok, document)
}

#[get("/certs")]
async fn certs(fake: &State<FakeOidc>) -> Raw {
    fake.jwks_calls.fetch_add(1, Ordering::SeqCst);
    fake.jwks_gate.pass().await;
    let keys: Vec<Value> = fake.lock().keys.iter().map(|k| k.jwk.clone()).collect();
    json_answer(Status::Ok, json!({ "keys": keys }))
}

#[allow(clippy::too_many_arguments)]
#[get("/authorize?<client_id>&<redirect_uri>&<response_type>&<scope>&<state>&<nonce>&<code_challenge>&<code_challenge_method>&<access_type>&<prompt>")]
fn authorize(
    fake: &State<FakeOidc>,
    host: HostHeader,
    client_id: Option<&str>,
    redirect_uri: Option<&str>,
    response_type: Option<&str>,
    scope: Option<&str>,
    state: Option<&str>,
    nonce: Option<&str>,
    code_challenge: Option<&str>,
    code_challenge_method: Option<&str>,
    access_type: Option<&str>,
    prompt: Option<&str>,
) -> Result<Redirect, Status> {
    if client_id != Some(fake.client_id.as_str()) || response_type != Some("code") {
        return Err(Status::BadRequest);
    }
    let redirect_uri = redirect_uri.ok_or(Status::BadRequest)?;
    let scope = scope.unwrap_or_default();
    if !scope.split(' ').any(|s| s == "openid") {
        return Err(Status::BadRequest);
    }
    let mut inner = fake.lock();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let code;
    if inner.denied {
        pairs.push(("error", "access_denied"));
    } else {
        let sub = inner.current.clone().ok_or(Status::Unauthorized)?;
        // Google assumes `plain` without a method; we only record S256 challenges as such.
        let challenge = match code_challenge_method {
            Some("S256") => code_challenge.map(str::to_owned),
            _ => code_challenge.map(|c| format!("plain:{c}")),
        };
        let offline = if inner.google {
            access_type == Some("offline") && prompt == Some("consent")
        } else {
            scope.split(' ').any(|s| s == "offline_access")
        };
        code = format!("4/{}", random_token(30));
        inner.codes.insert(
            code.clone(),
            Grant {
                sub,
                redirect_uri: redirect_uri.to_owned(),
                nonce: nonce.map(str::to_owned),
                challenge,
                scope: scope.to_owned(),
                offline,
                created_at: now(),
                used: false,
            },
        );
        pairs.push(("code", &code));
        pairs.push(("scope", scope));
    }
    pairs.extend(state.map(|s| ("state", s)));
    let issuer;
    if inner.iss_parameter {
        drop(inner);
        issuer = fake.issuer(&host);
        pairs.push(("iss", &issuer));
    }
    Ok(Redirect::found(with_query(redirect_uri, &pairs)))
}

#[derive(FromForm)]
struct TokenForm<'r> {
    grant_type: Option<&'r str>,
    code: Option<&'r str>,
    redirect_uri: Option<&'r str>,
    code_verifier: Option<&'r str>,
    refresh_token: Option<&'r str>,
    client_id: Option<&'r str>,
    client_secret: Option<&'r str>,
}

/// HTTP Basic credentials, if any.
struct BasicAuth(Option<(String, String)>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for BasicAuth {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let credentials = request
            .headers()
            .get_one("Authorization")
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b| STANDARD.decode(b.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                let (id, secret) = s.split_once(':')?;
                let decode = |v: &str| {
                    url::form_urlencoded::parse(format!("v={v}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                };
                Some((decode(id)?, decode(secret)?))
            });
        Outcome::Success(BasicAuth(credentials))
    }
}

fn google_error(status: Status, error: &str, description: &str) -> Raw {
    json_answer(
        status,
        json!({"error": error, "error_description": description}),
    )
}

#[post("/token", data = "<form>")]
fn token(
    fake: &State<FakeOidc>,
    form: Form<TokenForm<'_>>,
    basic: BasicAuth,
    host: HostHeader,
) -> Raw {
    fake.token_calls.fetch_add(1, Ordering::SeqCst);
    let issuer = fake.issuer(&host);
    let mut inner = fake.lock();
    let authenticated = match inner.client_auth {
        ClientAuth::Basic => {
            basic.0.as_ref().map(|(i, s)| (i.as_str(), s.as_str()))
                == Some((fake.client_id.as_str(), fake.client_secret.as_str()))
        }
        ClientAuth::Post => {
            basic.0.is_none()
                && form.client_id == Some(fake.client_id.as_str())
                && form.client_secret == Some(fake.client_secret.as_str())
        }
    };
    if !authenticated {
        return google_error(Status::Unauthorized, "invalid_client", "Unauthorized");
    }
    match form.grant_type {
        Some("refresh_token") => {
            let Some(sub) = form
                .refresh_token
                .and_then(|t| inner.refresh.get(t))
                .cloned()
            else {
                return google_error(
                    Status::BadRequest,
                    "invalid_grant",
                    "Token has been expired or revoked.",
                );
            };
            let access = format!("ya29.{}", random_token(40));
            inner.access.insert(access.clone(), sub);
            // Google sends no new refresh token on refresh.
            json_answer(
                Status::Ok,
                json!({"access_token": access, "expires_in": 3599, "scope": "openid https://www.googleapis.com/auth/userinfo.email", "token_type": "Bearer"}),
            )
        }
        Some("authorization_code") => {
            let Some(grant) = form.code.and_then(|c| inner.codes.get_mut(c)) else {
                return google_error(Status::BadRequest, "invalid_grant", "Malformed auth code.");
            };
            if grant.used || now() - grant.created_at > 600 {
                return google_error(Status::BadRequest, "invalid_grant", "Bad Request");
            }
            if form.redirect_uri != Some(grant.redirect_uri.as_str()) {
                return google_error(Status::BadRequest, "redirect_uri_mismatch", "Bad Request");
            }
            let verified = match (&grant.challenge, form.code_verifier) {
                (None, _) => true,
                (Some(c), Some(v)) if c.starts_with("plain:") => c["plain:".len()..] == *v,
                (Some(c), Some(v)) => *c == URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())),
                (Some(_), None) => false,
            };
            if !verified {
                return google_error(
                    Status::BadRequest,
                    "invalid_grant",
                    "Invalid code verifier.",
                );
            }
            grant.used = true;
            let grant = Grant {
                sub: grant.sub.clone(),
                redirect_uri: grant.redirect_uri.clone(),
                nonce: grant.nonce.clone(),
                challenge: None,
                scope: grant.scope.clone(),
                offline: grant.offline,
                created_at: grant.created_at,
                used: true,
            };
            let access = format!("ya29.{}", random_token(40));
            inner.access.insert(access.clone(), grant.sub.clone());
            let mut answer = json!({
                "access_token": access, "expires_in": 3599, "token_type": "Bearer", "scope": grant.scope,
            });
            if inner.fault != Some(IdTokenFault::Missing) {
                answer["id_token"] = json!(fake.id_token(&inner, &issuer, &grant));
            }
            if grant.offline {
                let refresh = format!("1//{}", random_token(40));
                inner.refresh.insert(refresh.clone(), grant.sub.clone());
                answer["refresh_token"] = json!(refresh);
            }
            json_answer(Status::Ok, answer)
        }
        _ => google_error(
            Status::BadRequest,
            "unsupported_grant_type",
            "Invalid grant_type: ",
        ),
    }
}

#[get("/userinfo")]
fn userinfo(fake: &State<FakeOidc>, bearer: BearerToken) -> Raw {
    let inner = fake.lock();
    let user = bearer
        .0
        .as_ref()
        .and_then(|t| inner.access.get(t))
        .and_then(|sub| inner.users.get(sub));
    match user {
        Some(u) => json_answer(
            Status::Ok,
            json!({"sub": u.sub, "name": u.name, "picture": u.picture, "email": u.email, "email_verified": u.email_verified, "hd": u.hd}),
        ),
        None => google_error(
            Status::Unauthorized,
            "invalid_request",
            "Invalid Credentials",
        ),
    }
}

/// A Bearer token, if any.
struct BearerToken(Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for BearerToken {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let token = request
            .headers()
            .get_one("Authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_owned);
        Outcome::Success(BearerToken(token))
    }
}
