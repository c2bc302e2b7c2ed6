//! A fake OpenID Connect provider: discovery, a rotating JWKS, signed `id_token`s, userinfo, the
//! token endpoint with PKCE and refresh, and faults that break one `id_token` check at a time.
//! It speaks Google's wire format by default, and GitLab's, LinkedIn's, Slack's, Microsoft Entra
//! ID's or Apple's through a dialect (one file each); their quirks are settings of the fake. Its
//! discovery document can be rewritten field by field, and its discovery and JWKS answers held
//! back (to see what a slow provider does to its clients).

mod apple;
mod dialect;
mod gitlab;
mod keys;
mod linkedin;
mod microsoft;
mod slack;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rocket::data::{Data, ToByteUnit};
use rocket::http::{ContentType, Method, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::serde::json::{json, Value};
use rocket::tokio::sync::watch;
use rocket::{get, post, routes, Either, Route, State};
use serde_json::Map;
use sha2::{Digest, Sha256};

use super::form_post::FormPost;
use super::{fake_config, json_answer, serve, with_query, FakeServer, Raw, RawAnswer};
use crate::clock::now;
use dialect::{
    AuthorizeRequest, ClaimsCtx, Dialect, DiscoveryCtx, Endpoint, Issued, Site, TokenError,
    UserinfoError,
};
pub use keys::SigningAlg;
use keys::SigningKey;

/// A client authentication method of the token endpoint (what discovery advertises in
/// `token_endpoint_auth_methods_supported`, and what the endpoint accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`), id and secret form-encoded (RFC 6749 §2.3.1).
    Basic,
    /// Form fields (`client_secret_post`).
    Post,
    /// `none`: a public client. `client_id` in the form and no secret anywhere (a request that
    /// sends one is refused with `invalid_client`), and the authorization must have used PKCE.
    None,
}

impl ClientAuth {
    fn name(self) -> &'static str {
        match self {
            ClientAuth::Basic => "client_secret_basic",
            ClientAuth::Post => "client_secret_post",
            ClientAuth::None => "none",
        }
    }
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

/// A fault of the token endpoint ([`FakeOidc::set_token_fault`]) or of userinfo
/// ([`FakeOidc::set_userinfo_fault`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OidcFault {
    /// The provider's own error answer for this `error` code: its envelope, status and, where
    /// its documentation gives one, description. E.g. Slack's `bad_redirect_uri` (HTTP 200,
    /// `ok: false`); Microsoft's `AADSTS700082` (`invalid_grant`, the AADSTS text, `error_codes`);
    /// (`AADSTS70002,70008` for several `error_codes`); Apple's `invalid_client`; LinkedIn's
    /// `invalid_client`.
    Error(String),
    /// The provider's rate limit answer (Slack: 429 `ratelimited` with `Retry-After`; the others
    /// a 429).
    RateLimited,
    /// Answers with this, whatever the request.
    Answer(RawAnswer),
    /// Never answers.
    Hang,
}

/// Which authorizations get a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshTokens {
    /// None (LinkedIn's "Sign in" apps; Slack without token rotation).
    Never,
    /// Every one (GitLab, Apple; LinkedIn's approved apps; Slack with token rotation).
    Always,
    /// Those that asked for the `offline_access` scope (Microsoft, the generic provider).
    WithOfflineAccess,
    /// Those with `access_type=offline&prompt=consent` (Google).
    WithGoogleOffline,
}

/// What a refresh does to the refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRotation {
    /// No new refresh token: the old one stays valid (Google, Apple, the generic provider).
    Kept,
    /// A new refresh token; the old one is revoked, its access tokens live on (Slack).
    Rotated,
    /// A new refresh token; the old one and the access tokens of the old pair stop working
    /// (GitLab).
    RotatedWithAccess,
    /// A new refresh token; the old one keeps working (Microsoft: "discard it yourself").
    Reissued,
    /// The same refresh token is sent back, its lifetime not extended (LinkedIn's
    /// `refresh_token_expires_in` counts down).
    Echoed,
}

/// An account of the fake.
#[derive(Debug, Clone)]
pub struct FakeOidcUser {
    /// The stable subject. For Microsoft, the object id (`oid`): the `id_token`'s `sub` is
    /// pairwise, derived from it and the client id, as Microsoft's. For Slack, the user id
    /// (`U…`), unique only within its workspace.
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
    /// Microsoft: the user's tenant (`tid`); `None`: [`FakeOidcUser::DEFAULT_TENANT`]. Personal
    /// accounts are in [`FakeOidcUser::CONSUMERS_TENANT`].
    pub tenant_id: Option<String>,
    /// Slack: the workspace (`https://slack.com/team_id`); `None`: `T0R7GR`.
    pub team_id: Option<String>,
    /// Claims added to (or replacing) those of the `id_token` and of userinfo, e.g. Microsoft's
    /// `xms_edov`, Apple's `is_private_email`, LinkedIn's `locale` as an object.
    pub extra_claims: Map<String, Value>,
}

impl FakeOidcUser {
    /// The tenant of Microsoft users that name none.
    pub const DEFAULT_TENANT: &'static str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    /// Microsoft's tenant of personal accounts (the `consumers` tenant).
    pub const CONSUMERS_TENANT: &'static str = "9188040d-6c67-4c5b-b112-36a304b66dad";

    /// A user with a verified email, a name and a picture.
    pub fn new(sub: &str, name: &str, email: &str) -> Self {
        FakeOidcUser {
            sub: sub.to_owned(),
            email: Some(email.to_owned()),
            email_verified: json!(true),
            name: Some(name.to_owned()),
            picture: Some(format!("https://lh3.example/{sub}.png")),
            hd: None,
            tenant_id: None,
            team_id: None,
            extra_claims: Map::new(),
        }
    }

    /// Sets the Microsoft tenant (`tid`).
    pub fn tenant(mut self, tenant_id: &str) -> Self {
        self.tenant_id = Some(tenant_id.to_owned());
        self
    }

    /// Sets the Slack workspace (`team_id`).
    pub fn team(mut self, team_id: &str) -> Self {
        self.team_id = Some(team_id.to_owned());
        self
    }

    /// Sets `email_verified` as sent: `json!(false)`, `json!("true")`, …
    pub fn email_verified(mut self, value: Value) -> Self {
        self.email_verified = value;
        self
    }

    /// Removes the email (and so `email_verified` where the provider then omits it).
    pub fn without_email(mut self) -> Self {
        self.email = None;
        self
    }

    /// Adds (or replaces) a claim of the `id_token` and of userinfo.
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.extra_claims.insert(name.to_owned(), value);
        self
    }

    /// The key of the fake's account map: a subject is unique within its tenant or workspace.
    fn key(&self) -> String {
        let realm = self.tenant_id.as_deref().or(self.team_id.as_deref());
        format!("{}/{}", realm.unwrap_or(""), self.sub)
    }
}

struct Grant {
    user: String,
    redirect_uri: String,
    nonce: Option<String>,
    challenge: Option<String>,
    scope: String,
    offline: bool,
    created_at: i64,
    used: bool,
}

struct Access {
    user: String,
    scope: String,
    expires_at: i64,
    family: u64,
    revoked: bool,
}

struct Refresh {
    user: String,
    scope: String,
    family: u64,
    redirect_uri: String,
    expires_at: Option<i64>,
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
    omitted_fields: HashSet<String>,
    client_auth: Vec<ClientAuth>,
    methods_advertised: bool,
    refresh_tokens: RefreshTokens,
    rotation: RefreshRotation,
    id_token_on_refresh: bool,
    booleans_as_strings: bool,
    legacy_issuer: bool,
    profile_in_userinfo_only: bool,
    discovery_down: bool,
    denied: bool,
    authorize_error: Option<String>,
    iss_parameter: bool,
    fault: Option<IdTokenFault>,
    token_fault: Option<OidcFault>,
    userinfo_fault: Option<OidcFault>,
    keys: Vec<SigningKey>,
    users: HashMap<String, FakeOidcUser>,
    current: Option<String>,
    /// Users who authorized the client before (Apple sends `user` only the first time).
    authorized: HashSet<String>,
    codes: HashMap<String, Grant>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
    families: u64,
    /// Microsoft: verified domains and the tenant ids they name.
    tenant_domains: HashMap<String, String>,
}

#[derive(Default)]
struct Counters {
    discovery: AtomicU64,
    jwks: AtomicU64,
    authorize: AtomicU64,
    token: AtomicU64,
    refresh: AtomicU64,
    userinfo: AtomicU64,
    revoke: AtomicU64,
}

/// The fake OpenID provider's state: a cheap handle; clones share it.
///
/// ```no_run
/// use rocket_social_auth::testing::{FakeOidc, FakeOidcUser};
///
/// # async fn demo() {
/// let fake = FakeOidc::generic("client-id", "client-secret");
/// fake.sign_in_as(FakeOidcUser::new("248289761001", "Jane Doe", "jane@example.com"));
/// let server = fake.clone().spawn().await.expect("the fake starts");
/// // `kind = "oidc"` with `issuer = server.url()`; discovery is at:
/// println!("{}/.well-known/openid-configuration", server.url());
/// # }
/// ```
#[derive(Clone)]
pub struct FakeOidc {
    client_id: String,
    client_secret: String,
    dialect: Arc<dyn Dialect>,
    inner: Arc<Mutex<Inner>>,
    counters: Arc<Counters>,
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
        FakeOidc::build(
            client_id,
            client_secret,
            Arc::new(dialect::Standard { google: true }),
        )
    }

    /// A generic provider: the `offline_access` scope gives a refresh token.
    pub fn generic(client_id: &str, client_secret: &str) -> Self {
        FakeOidc::build(
            client_id,
            client_secret,
            Arc::new(dialect::Standard { google: false }),
        )
    }

    fn build(client_id: &str, client_secret: &str, dialect: Arc<dyn Dialect>) -> Self {
        let defaults = dialect.defaults();
        let key = SigningKey::generate(SigningAlg::Rs256, dialect.kid_len());
        FakeOidc {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            inner: Arc::new(Mutex::new(Inner {
                issuer: None,
                discovery_fields: HashMap::new(),
                omitted_fields: HashSet::new(),
                client_auth: defaults.client_auth,
                methods_advertised: defaults.methods_advertised,
                refresh_tokens: defaults.refresh_tokens,
                rotation: defaults.rotation,
                id_token_on_refresh: defaults.id_token_on_refresh,
                booleans_as_strings: defaults.booleans_as_strings,
                legacy_issuer: false,
                profile_in_userinfo_only: defaults.profile_in_userinfo_only,
                discovery_down: false,
                denied: false,
                authorize_error: None,
                iss_parameter: false,
                fault: None,
                token_fault: None,
                userinfo_fault: None,
                keys: vec![key],
                users: HashMap::new(),
                current: None,
                authorized: HashSet::new(),
                codes: HashMap::new(),
                access: HashMap::new(),
                refresh: HashMap::new(),
                families: 0,
                tenant_domains: HashMap::new(),
            })),
            dialect,
            counters: Arc::default(),
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
        let key = user.key();
        inner.current = Some(key.clone());
        inner.users.insert(key, user);
    }

    /// Makes `auth` the only client authentication discovery advertises and the token endpoint
    /// accepts.
    pub fn set_client_auth(&self, auth: ClientAuth) {
        self.set_client_auth_methods(&[auth]);
    }

    /// The client authentications discovery advertises, in this order, and the token endpoint
    /// accepts (a request may use one of them, never two).
    pub fn set_client_auth_methods(&self, methods: &[ClientAuth]) {
        self.lock().client_auth = methods.to_vec();
    }

    /// Whether discovery lists `token_endpoint_auth_methods_supported` (`false`: the field is
    /// absent, as LinkedIn's; the token endpoint still accepts only the methods set).
    pub fn set_auth_methods_advertised(&self, advertised: bool) {
        self.lock().methods_advertised = advertised;
    }

    /// Chooses which authorizations get a refresh token.
    pub fn set_refresh_tokens(&self, refresh: RefreshTokens) {
        self.lock().refresh_tokens = refresh;
    }

    /// Chooses what a refresh does to the refresh token.
    pub fn set_refresh_rotation(&self, rotation: RefreshRotation) {
        self.lock().rotation = rotation;
    }

    /// Whether refresh answers carry a new `id_token` (Microsoft's do).
    pub fn set_id_token_on_refresh(&self, on: bool) {
        self.lock().id_token_on_refresh = on;
    }

    /// Sends the boolean claims `email_verified` and `is_private_email` as the strings
    /// `"true"`/`"false"` (Apple's documented form; seen from LinkedIn) instead of booleans.
    pub fn set_booleans_as_strings(&self, strings: bool) {
        self.lock().booleans_as_strings = strings;
    }

    /// Signs the next `id_token`s with a new key of `alg`; the JWKS keeps the old keys.
    pub fn set_signing_alg(&self, alg: SigningAlg) {
        let key = SigningKey::generate(alg, self.dialect.kid_len());
        self.lock().keys.insert(0, key);
    }

    /// Breaks the next `id_token`s one way (`None`: well-formed again).
    pub fn set_fault(&self, fault: Option<IdTokenFault>) {
        self.lock().fault = fault;
    }

    /// Switches a token endpoint fault on (`Some`) or off; it answers code exchanges and
    /// refreshes alike.
    pub fn set_token_fault(&self, fault: Option<OidcFault>) {
        self.lock().token_fault = fault;
    }

    /// Switches a userinfo fault on (`Some`) or off.
    pub fn set_userinfo_fault(&self, fault: Option<OidcFault>) {
        self.lock().userinfo_fault = fault;
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
    /// the fake's own again, also after [`omit_discovery_field`](Self::omit_discovery_field)),
    /// e.g. a `token_endpoint` elsewhere.
    pub fn set_discovery_field(&self, field: &str, value: Option<Value>) {
        let mut inner = self.lock();
        inner.omitted_fields.remove(field);
        match value {
            Some(value) => inner.discovery_fields.insert(field.to_owned(), value),
            None => inner.discovery_fields.remove(field),
        };
    }

    /// Leaves `field` out of the discovery document.
    pub fn omit_discovery_field(&self, field: &str) {
        let mut inner = self.lock();
        inner.discovery_fields.remove(field);
        inner.omitted_fields.insert(field.to_owned());
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

    /// Makes the user decline the next authorizations, with the provider's own error (Google,
    /// Slack, GitLab: `access_denied`; Microsoft: `access_denied` with `AADSTS65004`; Apple:
    /// `user_cancelled_authorize`; LinkedIn: `user_cancelled_login`).
    pub fn set_denied(&self, denied: bool) {
        self.lock().denied = denied;
    }

    /// Makes the next authorizations end with this `error` (`None`: normally), e.g.
    /// `interaction_required`, LinkedIn's `user_cancelled_authorize`, or for Microsoft an
    /// `AADSTS…` number (`AADSTS65004`) sent with its `error` and text.
    pub fn set_authorize_error(&self, error: Option<&str>) {
        self.lock().authorize_error = error.map(str::to_owned);
    }

    /// Fixes the issuer that discovery and the `id_token`s name (default: `http://` and the
    /// Host the request came to, plus the provider's issuer path). A `{tenantid}` in it is
    /// replaced by the user's tenant in `id_token`s. The endpoints stay where they are served.
    pub fn set_issuer(&self, issuer: &str) {
        self.lock().issuer = Some(issuer.trim_end_matches('/').to_owned());
    }

    /// Microsoft: makes the tenant path `domain` (e.g. `contoso.onmicrosoft.com`) name the tenant
    /// `tenant_id`, whose id discovery then announces (a domain it does not know answers
    /// `AADSTS90002`).
    pub fn set_tenant_domain(&self, domain: &str, tenant_id: &str) {
        self.lock()
            .tenant_domains
            .insert(domain.to_lowercase(), tenant_id.to_owned());
    }

    /// Rotates the signing key: a new key (of the current algorithm) signs, the JWKS lists
    /// both.
    pub fn rotate_keys(&self) {
        let alg = match self.lock().keys[0].alg {
            Algorithm::ES256 => SigningAlg::Es256,
            _ => SigningAlg::Rs256,
        };
        let key = SigningKey::generate(alg, self.dialect.kid_len());
        self.lock().keys.insert(0, key);
    }

    /// Revokes every refresh token.
    pub fn revoke_refresh_tokens(&self) {
        self.lock().refresh.clear();
    }

    /// Revokes every access token (Slack's userinfo then answers `token_revoked`).
    pub fn revoke_access_tokens(&self) {
        for access in self.lock().access.values_mut() {
            access.revoked = true;
        }
    }

    /// Makes every access token issued so far expired (Slack: `token_expired`).
    pub fn expire_access_tokens(&self) {
        for access in self.lock().access.values_mut() {
            access.expires_at = now() - 1;
        }
    }

    /// Makes every authorization code issued so far expired (Apple's live 5 minutes, the
    /// others' 10; LinkedIn's 30).
    pub fn expire_codes(&self) {
        for grant in self.lock().codes.values_mut() {
            grant.created_at = 0;
        }
    }

    /// Forgets which users authorized the client: Apple sends `user` again on the next
    /// authorization (as after the user removed the app from their Apple ID).
    pub fn forget_authorizations(&self) {
        self.lock().authorized.clear();
    }

    /// Whether `token` is a valid access token now.
    pub fn is_valid_access_token(&self, token: &str) -> bool {
        self.lock()
            .access
            .get(token)
            .is_some_and(|a| !a.revoked && a.expires_at > now())
    }

    /// Whether `token` is a valid refresh token now.
    pub fn is_valid_refresh_token(&self, token: &str) -> bool {
        self.lock()
            .refresh
            .get(token)
            .is_some_and(|r| r.expires_at.is_none_or(|e| e > now()))
    }

    /// Discovery requests received.
    pub fn discovery_calls(&self) -> u64 {
        self.counters.discovery.load(Ordering::SeqCst)
    }

    /// JWKS requests received.
    pub fn jwks_calls(&self) -> u64 {
        self.counters.jwks.load(Ordering::SeqCst)
    }

    /// Authorization requests received.
    pub fn authorize_calls(&self) -> u64 {
        self.counters.authorize.load(Ordering::SeqCst)
    }

    /// Token requests answered (code exchanges and refreshes).
    pub fn token_calls(&self) -> u64 {
        self.counters.token.load(Ordering::SeqCst)
    }

    /// Refresh requests among them that passed client authentication.
    pub fn refresh_calls(&self) -> u64 {
        self.counters.refresh.load(Ordering::SeqCst)
    }

    /// Userinfo requests received.
    pub fn userinfo_calls(&self) -> u64 {
        self.counters.userinfo.load(Ordering::SeqCst)
    }

    /// Revocation requests received (Apple, GitLab).
    pub fn revoke_calls(&self) -> u64 {
        self.counters.revoke.load(Ordering::SeqCst)
    }

    /// The routes, to mount where the provider's root is (its paths are the provider's own, see
    /// each constructor).
    pub fn routes() -> Vec<Route> {
        routes![get_any, post_any]
    }

    /// Serves the provider on `127.0.0.1` at a free port; its issuer is the server's URL with the
    /// host the client uses (`127.0.0.1` or `localhost`), plus the provider's issuer path.
    pub async fn spawn(self) -> Result<FakeServer, rocket::Error> {
        serve(
            rocket::custom(fake_config())
                .manage(self)
                .mount("/", FakeOidc::routes()),
        )
        .await
    }
}

/// A request to the fake, as its endpoints read it.
pub(crate) struct Call {
    method: Method,
    /// The path under where the routes are mounted, still percent-encoded.
    path: String,
    query: Vec<(String, String)>,
    form: Vec<(String, String)>,
    basic: Option<(String, String)>,
    bearer: Option<String>,
    /// `http://` + Host + the mount point.
    base: String,
    content_type: Option<ContentType>,
    /// The raw `Authorization` header, if any.
    authorization: Option<String>,
}

impl Call {
    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A field of the form body.
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Call {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let mount = request
            .route()
            .map(|r| r.uri.base().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        let path = request.uri().path().as_str();
        let path = path.strip_prefix(mount.as_str()).unwrap_or(path);
        let query = request
            .uri()
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_str().as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let authorization = request
            .headers()
            .get_one("Authorization")
            .map(str::to_owned);
        let basic = super::basic_credentials(authorization.as_deref());
        let bearer = super::bearer_token(authorization.as_deref());
        let host = request.headers().get_one("Host").unwrap_or("127.0.0.1");
        Outcome::Success(Call {
            method: request.method(),
            path: if path.is_empty() {
                "/".into()
            } else {
                path.to_owned()
            },
            query,
            form: Vec::new(),
            basic,
            bearer,
            base: format!("http://{host}{mount}"),
            content_type: request.content_type().cloned(),
            authorization,
        })
    }
}

#[get("/<_..>", rank = 50)]
async fn get_any(fake: &State<FakeOidc>, call: Call) -> Either<Raw, RawAnswer> {
    fake.answer(call).await
}

#[post("/<_..>", rank = 50, data = "<body>")]
async fn post_any(
    fake: &State<FakeOidc>,
    mut call: Call,
    body: Data<'_>,
) -> Either<Raw, RawAnswer> {
    let bytes = match body.open(1.mebibytes()).into_bytes().await {
        Ok(b) => b.into_inner(),
        Err(_) => Vec::new(),
    };
    let is_json = call.content_type.as_ref().is_some_and(|c| c.is_json());
    if is_json {
        if fake.dialect.accepts_json_body() {
            if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&bytes) {
                call.form = map
                    .into_iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => (k, s),
                        other => (k, other.to_string()),
                    })
                    .collect();
            }
        }
    } else {
        call.form = url::form_urlencoded::parse(&bytes).into_owned().collect();
    }
    fake.answer(call).await
}

fn not_found() -> Raw {
    json_answer(Status::NotFound, json!({"error": "not_found"}))
}

/// The base64url of the left half of SHA-256 of `value` (`at_hash`, `c_hash`).
fn half_hash(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(value.as_bytes())[..16])
}

/// Whether `verifier` has RFC 7636's 43 to 128 unreserved characters.
fn well_formed_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// How a client authenticated.
#[derive(PartialEq, Eq)]
enum AuthBy {
    Secret,
    Public,
}

impl FakeOidc {
    async fn answer(&self, call: Call) -> Either<Raw, RawAnswer> {
        let Some(target) = self.dialect.route(&call.method, &call.path) else {
            return Either::Left(not_found());
        };
        let tenant = target.tenant.clone();
        let issuer = self.lock().issuer.clone();
        let tenant_of_domain = tenant.as_deref().and_then(|t| self.tenant_domain(t));
        let site = Site {
            base: &call.base,
            issuer: issuer.as_deref(),
            tenant: tenant.as_deref(),
            tenant_of_domain: tenant_of_domain.as_deref(),
        };
        match target.endpoint {
            Endpoint::Discovery => Either::Left(self.discovery(&site).await),
            Endpoint::Jwks => Either::Left(self.jwks(&site).await),
            Endpoint::Authorize => Either::Left(self.authorize(&call, &site)),
            Endpoint::Token => self.token(&call, &site).await,
            Endpoint::Userinfo => self.userinfo(&call).await,
            Endpoint::Revoke => Either::Left(self.revoke(&call)),
        }
    }

    fn tenant_domain(&self, domain: &str) -> Option<String> {
        self.lock()
            .tenant_domains
            .get(&domain.to_lowercase())
            .cloned()
    }

    async fn discovery(&self, site: &Site<'_>) -> Raw {
        self.counters.discovery.fetch_add(1, Ordering::SeqCst);
        self.discovery_gate.pass().await;
        let issuer = match self.dialect.issuer(site) {
            Ok(issuer) => issuer,
            Err(answer) => return *answer,
        };
        let inner = self.lock();
        if inner.discovery_down {
            return json_answer(Status::ServiceUnavailable, json!({"error": "unavailable"}));
        }
        let alg = match inner.keys[0].alg {
            Algorithm::ES256 => "ES256",
            _ => "RS256",
        };
        let mut document = self.dialect.discovery(&DiscoveryCtx {
            base: site.base,
            issuer: &issuer,
            tenant: site.tenant_of_domain.or(site.tenant),
            auth_methods: inner.client_auth.iter().map(|m| m.name()).collect(),
            iss_parameter: inner.iss_parameter,
            alg,
        });
        if let Some(map) = document.as_object_mut() {
            if !inner.methods_advertised {
                map.remove("token_endpoint_auth_methods_supported");
            }
            for (field, value) in &inner.discovery_fields {
                map.insert(field.clone(), value.clone());
            }
            for field in &inner.omitted_fields {
                map.remove(field);
            }
        }
        json_answer(Status::Ok, document)
    }

    async fn jwks(&self, site: &Site<'_>) -> Raw {
        self.counters.jwks.fetch_add(1, Ordering::SeqCst);
        self.jwks_gate.pass().await;
        let issuer = self
            .dialect
            .issuer(site)
            .unwrap_or_else(|_| site.base.to_owned());
        let keys: Vec<Value> = self
            .lock()
            .keys
            .iter()
            .map(|k| self.dialect.jwk(k, &issuer))
            .collect();
        json_answer(Status::Ok, json!({ "keys": keys }))
    }

    fn authorize(&self, call: &Call, site: &Site<'_>) -> Raw {
        self.counters.authorize.fetch_add(1, Ordering::SeqCst);
        if call.query("client_id") != Some(self.client_id.as_str()) {
            return self.dialect.authorize_refused("client_id");
        }
        let Some(redirect_uri) = call.query("redirect_uri") else {
            return self.dialect.authorize_refused("redirect_uri");
        };
        let scope = call.query("scope").unwrap_or_default();
        let response_type = call.query("response_type");
        let response_mode = call.query("response_mode");
        if let Err(refused) = self.dialect.check_authorize(&AuthorizeRequest {
            response_type,
            response_mode,
            scope,
        }) {
            return *refused;
        }
        let mut inner = self.lock();
        let mut pairs: Vec<(String, String)> = Vec::new();
        if inner.denied {
            pairs = self.dialect.denial();
        } else if let Some(error) = &inner.authorize_error {
            pairs = self.dialect.authorize_error(error);
        } else {
            let Some(user) = inner.current.clone() else {
                return dialect::plain(Status::Unauthorized, "nobody is signed in at the fake");
            };
            // Google assumes `plain` without a method; we only record S256 challenges as such.
            let code_challenge = call.query("code_challenge");
            let challenge = match call.query("code_challenge_method") {
                _ if !self.dialect.records_pkce() => None,
                Some("S256") => code_challenge.map(str::to_owned),
                _ => code_challenge.map(|c| format!("plain:{c}")),
            };
            let has_scope = |s: &str| scope.split(' ').any(|x| x == s);
            let offline = match inner.refresh_tokens {
                RefreshTokens::Never => false,
                RefreshTokens::Always => true,
                RefreshTokens::WithOfflineAccess => has_scope("offline_access"),
                RefreshTokens::WithGoogleOffline => {
                    call.query("access_type") == Some("offline")
                        && call.query("prompt") == Some("consent")
                }
            };
            let code = self.dialect.code();
            let nonce = call.query("nonce").map(str::to_owned);
            inner.codes.insert(
                code.clone(),
                Grant {
                    user: user.clone(),
                    redirect_uri: redirect_uri.to_owned(),
                    nonce: nonce.clone(),
                    challenge,
                    scope: scope.to_owned(),
                    offline,
                    created_at: now(),
                    used: false,
                },
            );
            pairs.push(("code".into(), code.clone()));
            if self.dialect.echoes_scope() {
                pairs.push(("scope".into(), scope.to_owned()));
            }
            if response_type.is_some_and(|t| t.split(' ').any(|t| t == "id_token")) {
                let input = IdTokenInput {
                    user: &user,
                    nonce: nonce.as_deref(),
                    scope,
                    access_token: None,
                    code: Some(&code),
                };
                if let Some(id_token) = self.id_token(&inner, site, &input) {
                    pairs.push(("id_token".into(), id_token));
                }
            }
            if inner.authorized.insert(user.clone()) {
                let first = inner
                    .users
                    .get(&user)
                    .and_then(|u| self.dialect.first_authorization(u, scope));
                pairs.extend(first);
            }
        }
        if let Some(state) = call.query("state") {
            pairs.push(("state".into(), state.to_owned()));
        }
        drop(inner);
        if self.lock().iss_parameter {
            let issuer = self
                .dialect
                .issuer(site)
                .unwrap_or_else(|_| site.base.to_owned());
            pairs.push(("iss".into(), issuer));
        }
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match response_mode {
            Some("form_post") => FormPost::new(redirect_uri, &borrowed).page(),
            Some("fragment") => {
                let mut fragment = url::form_urlencoded::Serializer::new(String::new());
                fragment.extend_pairs(&borrowed);
                let mut url = match url::Url::parse(redirect_uri) {
                    Ok(url) => url,
                    Err(_) => return self.dialect.authorize_refused("redirect_uri"),
                };
                url.set_fragment(Some(&fragment.finish()));
                redirect(url.as_str())
            }
            _ => redirect(&with_query(redirect_uri, &borrowed)),
        }
    }

    /// Checks the client's credentials with the methods the fake accepts.
    fn authenticate(&self, call: &Call, methods: &[ClientAuth]) -> Result<AuthBy, TokenError> {
        if let Some(verdict) = self.dialect.authenticate(call, &self.client_id) {
            return verdict.map(|()| AuthBy::Secret);
        }
        let form_id = call.field("client_id");
        let form_secret = call.field("client_secret");
        let ours = |id: &str, secret: &str| id == self.client_id && secret == self.client_secret;
        match (&call.basic, form_secret) {
            // RFC 6749 §2.3: one method per request.
            (Some(_), Some(_)) => Err(TokenError::InvalidClient),
            (Some((id, secret)), None) => {
                if !methods.contains(&ClientAuth::Basic) {
                    return Err(if form_id.is_none() {
                        TokenError::MissingClientId
                    } else {
                        TokenError::InvalidClient
                    });
                }
                if ours(id, secret) && form_id.is_none_or(|f| f == self.client_id) {
                    Ok(AuthBy::Secret)
                } else {
                    Err(TokenError::InvalidClient)
                }
            }
            (None, Some(secret)) => match form_id {
                Some(id) if methods.contains(&ClientAuth::Post) && ours(id, secret) => {
                    Ok(AuthBy::Secret)
                }
                None => Err(TokenError::MissingClientId),
                Some(_) => Err(TokenError::InvalidClient),
            },
            (None, None) => match form_id {
                Some(id) if methods.contains(&ClientAuth::None) && id == self.client_id => {
                    Ok(AuthBy::Public)
                }
                None if call.authorization.is_none() => Err(TokenError::MissingClientId),
                _ => Err(TokenError::InvalidClient),
            },
        }
    }

    async fn token(&self, call: &Call, site: &Site<'_>) -> Either<Raw, RawAnswer> {
        self.counters.token.fetch_add(1, Ordering::SeqCst);
        let fault = self.lock().token_fault.clone();
        match fault {
            None => {}
            Some(OidcFault::Error(code)) => {
                return Either::Left(self.dialect.token_error(&TokenError::Injected(code)))
            }
            Some(OidcFault::RateLimited) => {
                return Either::Left(self.dialect.token_error(&TokenError::RateLimited))
            }
            Some(OidcFault::Answer(answer)) => return Either::Right(answer),
            Some(OidcFault::Hang) => rocket::tokio::time::sleep(Duration::from_secs(3600)).await,
        }
        let methods = self.lock().client_auth.clone();
        let by = match self.authenticate(call, &methods) {
            Ok(by) => by,
            Err(e) => return Either::Left(self.dialect.token_error(&e)),
        };
        let answer = match call.field("grant_type") {
            Some("refresh_token") => self.refresh(call, site),
            Some("authorization_code") => self.exchange(call, site, by),
            _ => Err(TokenError::UnsupportedGrant),
        };
        Either::Left(match answer {
            Ok(value) => json_answer(Status::Ok, value),
            Err(e) => self.dialect.token_error(&e),
        })
    }

    fn exchange(&self, call: &Call, site: &Site<'_>, by: AuthBy) -> Result<Value, TokenError> {
        let mut inner = self.lock();
        let lifetime = self.dialect.code_lifetime();
        let grant = call
            .field("code")
            .and_then(|c| inner.codes.get_mut(c))
            .ok_or(TokenError::CodeUnknown)?;
        if grant.used {
            return Err(TokenError::CodeUsed);
        }
        if now() - grant.created_at > lifetime {
            return Err(TokenError::CodeExpired);
        }
        if call.field("redirect_uri") != Some(grant.redirect_uri.as_str()) {
            return Err(TokenError::RedirectMismatch);
        }
        let verifier = call.field("code_verifier");
        if verifier.is_some() && self.dialect.refuses_code_verifier() {
            return Err(TokenError::VerifierRefused);
        }
        if self.dialect.strict_verifier() && verifier.is_some_and(|v| !well_formed_verifier(v)) {
            return Err(TokenError::VerifierMismatch);
        }
        let verified = match (&grant.challenge, verifier) {
            (None, _) => by == AuthBy::Secret,
            (Some(c), Some(v)) if c.starts_with("plain:") => c["plain:".len()..] == *v,
            (Some(c), Some(v)) => *c == URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())),
            (Some(_), None) => false,
        };
        if !verified {
            return Err(if grant.challenge.is_none() {
                TokenError::InvalidClient
            } else {
                TokenError::VerifierMismatch
            });
        }
        grant.used = true;
        let (user, nonce, scope, offline) = (
            grant.user.clone(),
            grant.nonce.clone(),
            grant.scope.clone(),
            grant.offline,
        );
        let redirect_uri = grant.redirect_uri.clone();
        inner.families += 1;
        let family = inner.families;
        let access_token = self.issue_access(&mut inner, &user, &scope, family);
        let id_token = if inner.fault == Some(IdTokenFault::Missing) {
            None
        } else {
            let input = IdTokenInput {
                user: &user,
                nonce: nonce.as_deref(),
                scope: &scope,
                access_token: Some(&access_token),
                code: None,
            };
            self.id_token(&inner, site, &input)
        };
        let (refresh_token, refresh_expires_in) = if offline {
            let token = self.dialect.refresh_token();
            let expires_at = self.dialect.refresh_lifetime().map(|l| now() + l);
            inner.refresh.insert(
                token.clone(),
                Refresh {
                    user,
                    scope: scope.clone(),
                    family,
                    redirect_uri,
                    expires_at,
                },
            );
            (Some(token), self.dialect.refresh_lifetime())
        } else {
            (None, None)
        };
        Ok(self.dialect.token_answer(&Issued {
            access_token,
            expires_in: self.dialect.access_lifetime(),
            refresh_token,
            refresh_expires_in,
            id_token,
            scope,
        }))
    }

    fn issue_access(&self, inner: &mut Inner, user: &str, scope: &str, family: u64) -> String {
        let token = self.dialect.access_token();
        inner.access.insert(
            token.clone(),
            Access {
                user: user.to_owned(),
                scope: scope.to_owned(),
                expires_at: now() + self.dialect.access_lifetime(),
                family,
                revoked: false,
            },
        );
        token
    }

    fn refresh(&self, call: &Call, site: &Site<'_>) -> Result<Value, TokenError> {
        self.counters.refresh.fetch_add(1, Ordering::SeqCst);
        let mut inner = self.lock();
        let old = call.field("refresh_token").unwrap_or_default().to_owned();
        let Some(stored) = inner.refresh.get(&old) else {
            return Err(TokenError::RefreshInvalid);
        };
        if stored.expires_at.is_some_and(|e| e <= now()) {
            return Err(TokenError::RefreshInvalid);
        }
        // Doorkeeper (GitLab) checks a redirect_uri when one is sent.
        if self.dialect.checks_refresh_redirect_uri()
            && call
                .field("redirect_uri")
                .is_some_and(|r| r != stored.redirect_uri)
        {
            return Err(TokenError::RefreshInvalid);
        }
        let (user, scope, family, redirect_uri, expires_at) = (
            stored.user.clone(),
            stored.scope.clone(),
            stored.family,
            stored.redirect_uri.clone(),
            stored.expires_at,
        );
        let rotation = inner.rotation;
        let refresh_token = match rotation {
            RefreshRotation::Kept => None,
            RefreshRotation::Echoed => Some(old.clone()),
            RefreshRotation::Rotated
            | RefreshRotation::RotatedWithAccess
            | RefreshRotation::Reissued => {
                if rotation != RefreshRotation::Reissued {
                    inner.refresh.remove(&old);
                }
                if rotation == RefreshRotation::RotatedWithAccess {
                    for access in inner.access.values_mut().filter(|a| a.family == family) {
                        access.revoked = true;
                    }
                }
                let token = self.dialect.refresh_token();
                let expires_at = self.dialect.refresh_lifetime().map(|l| now() + l);
                inner.refresh.insert(
                    token.clone(),
                    Refresh {
                        user: user.clone(),
                        scope: scope.clone(),
                        family,
                        redirect_uri,
                        expires_at,
                    },
                );
                Some(token)
            }
        };
        let refresh_expires_in = match rotation {
            RefreshRotation::Echoed => expires_at.map(|e| e - now()),
            _ if refresh_token.is_some() => self.dialect.refresh_lifetime(),
            _ => None,
        };
        let access_token = self.issue_access(&mut inner, &user, &scope, family);
        let id_token = if inner.id_token_on_refresh {
            let input = IdTokenInput {
                user: &user,
                nonce: None,
                scope: &scope,
                access_token: Some(&access_token),
                code: None,
            };
            self.id_token(&inner, site, &input)
        } else {
            None
        };
        Ok(self.dialect.token_answer(&Issued {
            access_token,
            expires_in: self.dialect.access_lifetime(),
            refresh_token,
            refresh_expires_in,
            id_token,
            scope,
        }))
    }

    async fn userinfo(&self, call: &Call) -> Either<Raw, RawAnswer> {
        self.counters.userinfo.fetch_add(1, Ordering::SeqCst);
        let fault = self.lock().userinfo_fault.clone();
        match fault {
            None => {}
            Some(OidcFault::Error(code)) => {
                return Either::Left(self.dialect.userinfo_error(&UserinfoError::Injected(code)))
            }
            Some(OidcFault::RateLimited) => {
                return Either::Left(self.dialect.userinfo_error(&UserinfoError::RateLimited))
            }
            Some(OidcFault::Answer(answer)) => return Either::Right(answer),
            Some(OidcFault::Hang) => rocket::tokio::time::sleep(Duration::from_secs(3600)).await,
        }
        let token = call.bearer.as_deref().or_else(|| {
            self.dialect
                .userinfo_token_field()
                .then(|| call.field("token").or_else(|| call.query("token")))
                .flatten()
        });
        let inner = self.lock();
        let found = match token {
            None => Err(UserinfoError::NoToken),
            Some(token) => match inner.access.get(token) {
                None => Err(UserinfoError::InvalidToken),
                Some(a) if a.revoked => Err(UserinfoError::Revoked),
                Some(a) if a.expires_at <= now() => Err(UserinfoError::Expired),
                Some(a) => inner
                    .users
                    .get(&a.user)
                    .map(|u| (u, a.scope.as_str()))
                    .ok_or(UserinfoError::InvalidToken),
            },
        };
        Either::Left(match found {
            Ok((user, scope)) => {
                let ctx = ClaimsCtx {
                    base: &call.base,
                    client_id: &self.client_id,
                    scope,
                    profile_in_userinfo_only: inner.profile_in_userinfo_only,
                };
                let mut value = self.dialect.userinfo(user, &ctx);
                if let Some(map) = value.as_object_mut() {
                    for (k, v) in &user.extra_claims {
                        map.insert(k.clone(), v.clone());
                    }
                    if inner.booleans_as_strings {
                        stringify_booleans(map);
                    }
                }
                json_answer(Status::Ok, value)
            }
            Err(e) => self.dialect.userinfo_error(&e),
        })
    }

    fn revoke(&self, call: &Call) -> Raw {
        self.counters.revoke.fetch_add(1, Ordering::SeqCst);
        let methods = self.lock().client_auth.clone();
        if let Err(e) = self.authenticate(call, &methods) {
            return self.dialect.token_error(&e);
        }
        let mut inner = self.lock();
        if let Some(token) = call.field("token") {
            if let Some(refresh) = inner.refresh.remove(token) {
                for access in inner
                    .access
                    .values_mut()
                    .filter(|a| a.family == refresh.family)
                {
                    access.revoked = true;
                }
            } else if let Some(access) = inner.access.get_mut(token) {
                access.revoked = true;
            }
        }
        self.dialect.revoke_answer()
    }
}

/// What an `id_token` is about.
struct IdTokenInput<'a> {
    user: &'a str,
    nonce: Option<&'a str>,
    scope: &'a str,
    /// The access token issued with it (`at_hash`).
    access_token: Option<&'a str>,
    /// The code issued with it, when sent from the authorization endpoint (`c_hash`).
    code: Option<&'a str>,
}

/// `true`/`false` as `"true"`/`"false"` in the claims that some providers send as strings.
fn stringify_booleans(claims: &mut Map<String, Value>) {
    for name in ["email_verified", "is_private_email"] {
        if let Some(Value::Bool(b)) = claims.get(name) {
            let text = b.to_string();
            claims.insert(name.to_owned(), Value::String(text));
        }
    }
}

/// A 302 to `location`.
fn redirect(location: &str) -> Raw {
    Raw {
        status: Status::Found,
        content_type: ContentType::Plain,
        body: String::new(),
        headers: vec![("Location", location.to_owned())],
    }
}

impl FakeOidc {
    fn id_token(&self, inner: &Inner, site: &Site<'_>, input: &IdTokenInput<'_>) -> Option<String> {
        let user = inner.users.get(input.user)?;
        let now = now();
        let mut iss = self.dialect.id_token_iss(site, user);
        if inner.legacy_issuer {
            iss = iss
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .to_owned();
        }
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(iss));
        claims.insert(
            "sub".into(),
            json!(self.dialect.subject(user, &self.client_id)),
        );
        claims.insert("aud".into(), json!(self.client_id));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + self.dialect.id_token_lifetime()));
        if let Some(access) = input.access_token {
            claims.insert("at_hash".into(), json!(half_hash(access)));
        }
        if let Some(code) = input.code {
            claims.insert("c_hash".into(), json!(half_hash(code)));
        }
        if let Some(nonce) = input.nonce.filter(|_| self.dialect.echoes_nonce()) {
            claims.insert("nonce".into(), json!(nonce));
        }
        let ctx = ClaimsCtx {
            base: site.base,
            client_id: &self.client_id,
            scope: input.scope,
            profile_in_userinfo_only: inner.profile_in_userinfo_only,
        };
        self.dialect.id_token_claims(&mut claims, user, &ctx);
        for (k, v) in &user.extra_claims {
            claims.insert(k.clone(), v.clone());
        }
        if inner.booleans_as_strings {
            stringify_booleans(&mut claims);
        }
        let mut claims = Value::Object(claims);
        let key = &inner.keys[0];
        let mut header = Header::new(key.alg);
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
                let alg = match key.alg {
                    Algorithm::ES256 => SigningAlg::Es256,
                    _ => SigningAlg::Rs256,
                };
                unpublished = SigningKey::generate(alg, self.dialect.kid_len());
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
                hmac = EncodingKey::from_secret(&key.public_bytes);
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
