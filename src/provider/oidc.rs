//! Any OpenID Connect provider (and, with its quirks, Google): discovery (cached, retried while it fails), the code
//! flow with `state`, `nonce` and PKCE S256, the token endpoint's advertised client
//! authentication, and `id_token` verification against the provider's JWKS.
//!
//! Discovery cannot point our secrets elsewhere: every endpoint it names must be `https`
//! (plain `http` only on loopback, and only when the configured issuer is itself loopback
//! `http`). Discovery and the JWKS are fetched single-flight: callers that need a fetch in
//! flight share its result, callers that have what they need never wait on it, and unknown
//! `kid`s refetch the JWKS at most once per [`JWKS_REFETCH_FLOOR`].

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeVerifier, RedirectUrl, RefreshToken, StandardRevocableToken,
    StandardTokenResponse, TokenUrl,
};
use rocket::async_trait;
use rocket::tokio::sync::OnceCell;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subtle::ConstantTimeEq;
use url::Url;

use super::microsoft::{is_guid, Tenancy, TENANT_TEMPLATE};
use super::oauth2::{token_error, token_set, TokenAuth};
use super::{FlowParams, Profile, Provider, ProviderContext, ProviderError, TokenSet};
use crate::clock::now;
use crate::config::{is_loopback, ConfigError};
use crate::provider::http_client::HttpClient;
use crate::secret::Secret;

/// A `kind = "oidc"` table (and `google`, `gitlab`, `linkedin`, `slack`, whose `issuer` has a
/// default).
///
/// ```toml
/// [default.social_auth.providers.acme]
/// kind = "oidc"
/// issuer = "https://id.acme.example"   # discovery is at {issuer}/.well-known/openid-configuration
/// client_id = "…"
/// client_secret = "…"                  # not with token_auth = "none"
/// scopes = ["openid", "email", "profile"]
/// offline = false                      # ask for a refresh token
/// token_auth = "basic"                 # or "post", "none"; default: what discovery advertises
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OidcSettings {
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret: Option<Secret>,
    pub(crate) issuer: Option<String>,
    pub(crate) scopes: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) offline: bool,
    pub(crate) token_auth: Option<TokenAuth>,
}

/// How an OpenID provider departs from the specification, or adds to it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quirks {
    /// The issuer when the table names none; `None`: `issuer` is required.
    pub default_issuer: Option<&'static str>,
    /// `id_token`s may name the issuer without its scheme (Google's `accounts.google.com`).
    pub bare_issuer: bool,
    /// How a refresh token is asked for when `offline = true`.
    pub offline: Offline,
    /// Send a PKCE S256 challenge and verifier (LinkedIn refuses a `code_verifier` from a web
    /// app; Slack's confidential clients take none).
    pub pkce: bool,
    /// The `id_token` carries our `nonce`. `false` for LinkedIn alone, which never echoes
    /// one: a `nonce` it does send must still match.
    pub nonce_echoed: bool,
    /// The client authentication when neither the table (`token_auth`) nor discovery says
    /// (LinkedIn: `client_secret_post`, as Basic is refused and discovery is silent).
    pub default_token_auth: Option<TokenAuth>,
    /// Which claims make the user's immutable id.
    pub subject: Subject,
    /// The provider vouches for `email_verified` (Microsoft does not: its `email` is mutable
    /// and unverified, so it never links accounts).
    pub vouches_for_email: bool,
    /// The picture claim is an image a browser can load (Microsoft's userinfo `picture` is a
    /// Graph URL that needs the access token).
    pub picture: bool,
    /// A refresh re-sends the callback URL (GitLab's Doorkeeper documents it as required).
    pub refresh_redirect_uri: bool,
    /// A refresh re-sends the scopes (Microsoft, as its refresh documentation asks).
    pub refresh_scope: bool,
    /// Token error codes that mean the grant is dead for good, besides `invalid_grant`
    /// (Slack's `invalid_refresh_token`).
    pub dead_grant_codes: &'static [&'static str],
}

/// Which claims of the `id_token` key the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject {
    /// `sub`, as the specification says.
    Sub,
    /// Microsoft: `{tid}/{oid}`, the tenant and the object id (the same for every app of the
    /// tenant; `sub` is pairwise, per app).
    TenantObject,
    /// Slack: `{team_id}/{user_id}` from its `https://slack.com/` claims (`sub` is unique only
    /// within a workspace).
    SlackTeamUser,
}

/// How a provider is asked for a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offline {
    /// OpenID Connect's way: the `offline_access` scope and `prompt=consent`.
    Scope,
    /// Google's: `access_type=offline` and `prompt=consent`.
    AccessType,
    /// Nothing to ask: the provider grants a refresh token when the app is set up for one
    /// (GitLab always; Slack with token rotation; LinkedIn for approved apps), and refuses an
    /// `offline_access` scope it does not know.
    Implicit,
}

/// The specification, without quirks.
pub(crate) const STANDARD: Quirks = Quirks {
    default_issuer: None,
    bare_issuer: false,
    offline: Offline::Scope,
    pkce: true,
    nonce_echoed: true,
    default_token_auth: None,
    subject: Subject::Sub,
    vouches_for_email: true,
    picture: true,
    refresh_redirect_uri: false,
    refresh_scope: false,
    dead_grant_codes: &[],
};

/// The kind `oidc`.
pub(crate) fn build(
    settings: OidcSettings,
    ctx: &ProviderContext<'_>,
) -> Result<Oidc, ConfigError> {
    Oidc::new(settings, ctx, STANDARD)
}

/// Seconds of clock skew allowed on `exp` and `iat`.
const LEEWAY: u64 = 60;

/// The least time between two JWKS refetches caused by an unknown `kid`: 30 seconds.
///
/// Keys rotate, so an `id_token` whose `kid` is not in the cached JWKS makes us fetch the JWKS
/// again; but a burst of callbacks with made-up `kid`s must not make a fetch each. The first
/// such refetch happens at once (so a rotation is picked up by the first login that needs it);
/// within this floor after it, an unknown `kid` is refused like any other bad `id_token` (502),
/// without a fetch. Concurrent unknown `kid`s share the one refetch in flight, and a known `kid`
/// never waits on it.
pub(crate) const JWKS_REFETCH_FLOOR: Duration = Duration::from_secs(30);

/// The `id_token` field of a token answer.
#[derive(Clone, Serialize, Deserialize)]
struct IdTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl std::fmt::Debug for IdTokenFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdTokenFields([redacted])")
    }
}

impl ExtraTokenFields for IdTokenFields {}

type TokenAnswer = StandardTokenResponse<IdTokenFields, BasicTokenType>;
type Client = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// What discovery told us.
#[derive(Debug)]
struct Metadata {
    issuer: String,
    authorization: Url,
    token: Url,
    userinfo: Option<Url>,
    jwks_uri: Url,
    auth: TokenAuth,
    /// RFC 9207: the provider puts `iss` in every authorization response.
    iss_parameter: bool,
}

/// The discovery document's fields we use.
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
    jwks_uri: String,
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// Why a discovery document is refused (the provider stays unavailable, and discovery is
/// tried again on its next use).
#[derive(Debug, thiserror::Error)]
enum DiscoveryError {
    /// The document is another issuer's.
    #[error("discovery names the issuer `{found}`, not `{expected}`")]
    OtherIssuer { found: String, expected: String },
    /// An endpoint is not a URL.
    #[error("discovery's `{field}` is not a valid URL: {reason}")]
    InvalidUrl {
        field: &'static str,
        reason: url::ParseError,
    },
    /// An endpoint would take our client secret, a code or a token over plain `http`.
    #[error(
        "discovery's `{field}` must use https (plain http only on loopback, and only when the \
         configured issuer is loopback http): `{url}`"
    )]
    Insecure { field: &'static str, url: String },
    /// The token endpoint supports no client authentication we speak: set `token_auth`.
    #[error(
        "discovery advertises only the client authentication {0:?} at the token endpoint, none \
         of client_secret_basic, client_secret_post; set `token_auth` to one it takes \
         (\"none\" for a public client with PKCE)"
    )]
    NoClientAuth(Vec<String>),
    /// The issuer's discovery is not that of the tenant the table names (Microsoft).
    #[error("discovery names the issuer `{found}`, which is not that of the tenant `{tenant}`")]
    OtherTenant { found: String, tenant: String },
}

impl From<DiscoveryError> for ProviderError {
    fn from(e: DiscoveryError) -> Self {
        ProviderError::BadResponse(e.to_string())
    }
}

/// A refused discovery document of provider `name`: one that can never work with the table is
/// [`ProviderError::Misconfigured`], naming the key that fixes it (and fails the launch); any
/// other keeps the provider unavailable until discovery is tried again.
fn refused_discovery(name: &str, e: DiscoveryError) -> ProviderError {
    match e {
        e @ DiscoveryError::NoClientAuth(_) => ProviderError::Misconfigured(ConfigError::new(
            format!("social_auth.providers.{name}.token_auth"),
            e.to_string(),
        )),
        e => e.into(),
    }
}

/// The client authentication `methods` (discovery's `token_endpoint_auth_methods_supported`)
/// leave us, unless the table's `configured` one overrides them: `client_secret_basic` (the
/// default when discovery says nothing), else `client_secret_post`, else `fallback`.
fn client_auth(
    configured: Option<TokenAuth>,
    fallback: Option<TokenAuth>,
    methods: Option<Vec<String>>,
) -> Result<TokenAuth, DiscoveryError> {
    if let Some(auth) = configured {
        return Ok(auth);
    }
    let methods = methods.unwrap_or_default();
    let has = |m: &str| methods.iter().any(|x| x == m);
    match fallback {
        Some(auth) if methods.is_empty() => Ok(auth),
        _ if methods.is_empty() || has("client_secret_basic") => Ok(TokenAuth::Basic),
        _ if has("client_secret_post") => Ok(TokenAuth::Post),
        _ => Err(DiscoveryError::NoClientAuth(methods)),
    }
}

/// An endpoint named by the discovery document of `issuer`: `https`, or plain `http` on
/// loopback when the configured issuer is itself loopback `http` (a local development
/// provider). An `https` issuer's document never sends the client secret, a code or a token
/// over plain `http`, not even to loopback.
fn discovered_endpoint(
    issuer: &Url,
    field: &'static str,
    value: &str,
) -> Result<Url, DiscoveryError> {
    let url = Url::parse(value).map_err(|reason| DiscoveryError::InvalidUrl { field, reason })?;
    let loopback_issuer = issuer.scheme() == "http" && is_loopback(issuer);
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback_issuer && is_loopback(&url) => Ok(url),
        _ => Err(DiscoveryError::Insecure {
            field,
            url: value.to_owned(),
        }),
    }
}

impl Metadata {
    /// What the discovery document `doc` of the configured `issuer` tells us, once it passes
    /// the checks: its issuer is ours (or, for a Microsoft `tenancy`, its tenant's), its
    /// endpoints are [`discovered_endpoint`]s, its token endpoint takes a client authentication
    /// we speak (the table's `token_auth` overrides what it advertises).
    fn from_discovery(
        issuer: &Url,
        doc: Discovery,
        token_auth: Option<TokenAuth>,
        quirks: &Quirks,
        tenancy: Option<&Tenancy>,
    ) -> Result<Metadata, DiscoveryError> {
        match tenancy {
            Some(tenancy) => {
                if !tenancy.accepts_discovered_issuer(&doc.issuer) {
                    return Err(DiscoveryError::OtherTenant {
                        found: doc.issuer,
                        tenant: tenancy.tenant.clone(),
                    });
                }
            }
            None => {
                let expected = issuer.as_str().trim_end_matches('/');
                if doc.issuer.trim_end_matches('/') != expected {
                    return Err(DiscoveryError::OtherIssuer {
                        found: doc.issuer,
                        expected: expected.to_owned(),
                    });
                }
            }
        }
        let endpoint = |field, value: &str| discovered_endpoint(issuer, field, value);
        let auth = client_auth(
            token_auth,
            quirks.default_token_auth,
            doc.token_endpoint_auth_methods_supported,
        )?;
        Ok(Metadata {
            authorization: endpoint("authorization_endpoint", &doc.authorization_endpoint)?,
            token: endpoint("token_endpoint", &doc.token_endpoint)?,
            userinfo: doc
                .userinfo_endpoint
                .as_deref()
                .map(|u| endpoint("userinfo_endpoint", u))
                .transpose()?,
            jwks_uri: endpoint("jwks_uri", &doc.jwks_uri)?,
            issuer: doc.issuer,
            auth,
            iss_parameter: doc.authorization_response_iss_parameter_supported,
        })
    }
}

/// One network fetch whose result every caller that needs it shares.
type Flight<T> = Arc<OnceCell<Result<Arc<T>, ProviderError>>>;

/// A document fetched over the network (discovery, the JWKS): the last one fetched and the
/// fetch in flight, if any. Its std mutex is held only to read or swap these fields, never
/// across an `.await`: a caller that has what it needs never waits on the network.
struct Fetched<T> {
    state: Mutex<FetchState<T>>,
}

/// The fields behind [`Fetched`]'s mutex.
struct FetchState<T> {
    /// The last document fetched, and the number of the fetch that brought it.
    current: Option<(u64, Arc<T>)>,
    /// The fetch in flight: its number, and the cell its result lands in.
    flight: Option<(u64, Flight<T>)>,
    /// Fetches started so far (the last one's number).
    started: u64,
    /// When the last refetch forced by an unknown `kid` started (JWKS only).
    last_forced: Option<Instant>,
}

/// What a caller whose `kid` is not in the keys it looked at does next.
enum Refetch<T> {
    /// Keys newer than those it looked at have landed since: look there, fetch nothing.
    Newer(Arc<T>),
    /// Wait on this fetch: the one in flight, or one just started.
    Join(u64, Flight<T>),
    /// Within [`JWKS_REFETCH_FLOOR`] of the last forced refetch: refused, no fetch.
    Refuse,
}

impl<T> FetchState<T> {
    fn new() -> Self {
        FetchState {
            current: None,
            flight: None,
            started: 0,
            last_forced: None,
        }
    }

    /// The fetch in flight, or a new one.
    fn join(&mut self) -> (u64, Flight<T>) {
        if let Some((id, flight)) = &self.flight {
            return (*id, flight.clone());
        }
        self.started += 1;
        let flight = Flight::default();
        self.flight = Some((self.started, flight.clone()));
        (self.started, flight)
    }

    /// After a miss in the document of fetch `seen`, at `now`: look at a newer document if one
    /// landed since, else join the fetch in flight, else start one unless the last forced
    /// refetch started less than `floor` ago.
    fn refetch(&mut self, seen: u64, now: Instant, floor: Duration) -> Refetch<T> {
        if let Some((id, newer)) = &self.current {
            if *id != seen {
                return Refetch::Newer(newer.clone());
            }
        }
        if let Some((id, flight)) = &self.flight {
            return Refetch::Join(*id, flight.clone());
        }
        if self
            .last_forced
            .is_some_and(|last| now.saturating_duration_since(last) < floor)
        {
            return Refetch::Refuse;
        }
        self.last_forced = Some(now);
        let (id, flight) = self.join();
        Refetch::Join(id, flight)
    }

    /// Records how fetch `id` ended: a document replaces the current one; the flight is over
    /// either way (the next caller that needs one starts another).
    fn land(&mut self, id: u64, result: &Result<Arc<T>, ProviderError>) {
        if let Ok(doc) = result {
            self.current = Some((id, doc.clone()));
        }
        if self.flight.as_ref().is_some_and(|(f, _)| *f == id) {
            self.flight = None;
        }
    }
}

impl<T> Fetched<T> {
    fn new() -> Self {
        Fetched {
            state: Mutex::new(FetchState::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FetchState<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current document and its fetch's number, or the fetch to wait on for one.
    fn current_or_join(&self) -> Result<(u64, Arc<T>), (u64, Flight<T>)> {
        let mut state = self.lock();
        match &state.current {
            Some((id, doc)) => Ok((*id, doc.clone())),
            None => Err(state.join()),
        }
    }

    /// Waits on fetch `id`: the first caller to get here runs `fetch`, the others share its
    /// result (a failure too). Should that caller go away (its request dropped), the next
    /// waiter runs its own `fetch`.
    async fn wait<F, Fut>(
        &self,
        id: u64,
        flight: Flight<T>,
        fetch: F,
    ) -> Result<Arc<T>, ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        flight
            .get_or_init(|| async move {
                let result = fetch().await.map(Arc::new);
                self.lock().land(id, &result);
                result
            })
            .await
            .clone()
    }
}

/// A client secret a provider makes itself for each use (Apple's ES256 JWT), rather than one
/// the table gives.
pub(crate) trait MintSecret: Send + Sync {
    /// The client secret to send now.
    fn client_secret(&self) -> Result<Secret, ProviderError>;
}

/// How the client authenticates at the token endpoint.
enum Credential {
    /// None: a public client (`token_auth = "none"`), which PKCE protects.
    Public,
    /// The table's `client_secret`.
    Fixed(Secret),
    /// Made by the provider for each use.
    Minted(Box<dyn MintSecret>),
}

/// An OpenID provider.
pub(crate) struct Oidc {
    name: String,
    quirks: Quirks,
    issuer: Url,
    client_id: String,
    credential: Credential,
    /// The table's `token_auth`, which overrides discovery.
    token_auth: Option<TokenAuth>,
    /// Microsoft's tenant rules, when the kind is `microsoft`.
    tenancy: Option<Tenancy>,
    redirect_uri: String,
    scopes: Vec<String>,
    offline: bool,
    /// `response_mode` of the authorize URL (Apple's `form_post`); `None`: the default.
    response_mode: Option<&'static str>,
    http: HttpClient,
    /// Discovery: fetched once, retried on use while it fails.
    metadata: Fetched<Metadata>,
    /// The JWKS: fetched on first use, again for an unknown `kid` (see [`JWKS_REFETCH_FLOOR`]).
    keys: Fetched<JwkSet>,
}

fn bad(what: impl std::fmt::Display) -> ProviderError {
    ProviderError::BadResponse(format!("the id_token is not acceptable: {what}"))
}

/// The algorithm a key is for: its `alg` when it has one, else what its type implies. The
/// token's own header never decides.
fn key_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if let Some(alg) = jwk.common.key_algorithm {
        return match alg {
            KeyAlgorithm::RS256 => Some(Algorithm::RS256),
            KeyAlgorithm::RS384 => Some(Algorithm::RS384),
            KeyAlgorithm::RS512 => Some(Algorithm::RS512),
            KeyAlgorithm::PS256 => Some(Algorithm::PS256),
            KeyAlgorithm::ES256 => Some(Algorithm::ES256),
            KeyAlgorithm::ES384 => Some(Algorithm::ES384),
            KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
            _ => None, // HMAC and anything unknown: never for an id_token
        };
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        _ => None,
    }
}

/// `email_verified` may be a boolean or, in older Google samples, the string `"true"`.
fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

impl Oidc {
    /// The provider of a table, with a provider's `quirks`.
    pub(crate) fn new(
        settings: OidcSettings,
        ctx: &ProviderContext<'_>,
        quirks: Quirks,
    ) -> Result<Self, ConfigError> {
        let (token_auth, secret) = (settings.token_auth, settings.client_secret);
        let credential = || match (token_auth, secret) {
            (Some(TokenAuth::None), None) => Ok(Credential::Public),
            (Some(TokenAuth::None), Some(_)) => Err(ConfigError::new(
                ctx.key("client_secret"),
                "must not be set with token_auth = \"none\" (a public client sends no secret)",
            )),
            (_, secret) => ctx
                .required_secret("client_secret", secret)
                .map(Credential::Fixed),
        };
        let mut oidc = Self::with_credential(
            ctx,
            quirks,
            (settings.issuer, settings.client_id, settings.scopes),
            settings.offline,
            credential,
        )?;
        if token_auth == Some(TokenAuth::None) && !quirks.pkce {
            return Err(ConfigError::new(
                ctx.key("token_auth"),
                "cannot be \"none\" for this provider: a public client needs PKCE, which it does not take",
            ));
        }
        oidc.token_auth = token_auth;
        Ok(oidc)
    }

    /// A provider whose client secret `mint` makes for each use (no `client_secret` key), from
    /// its table's `issuer`, `client_id` and `scopes`.
    pub(crate) fn with_minted_secret(
        ctx: &ProviderContext<'_>,
        quirks: Quirks,
        table: (Option<String>, Option<String>, Option<Vec<String>>),
        mint: Box<dyn MintSecret>,
    ) -> Result<Self, ConfigError> {
        Self::with_credential(ctx, quirks, table, false, || Ok(Credential::Minted(mint)))
    }

    /// With `response_mode` in the authorize URL (Apple's `form_post`).
    pub(crate) fn response_mode(mut self, mode: &'static str) -> Self {
        self.response_mode = Some(mode);
        self
    }

    fn with_credential(
        ctx: &ProviderContext<'_>,
        quirks: Quirks,
        (issuer, client_id, scopes): (Option<String>, Option<String>, Option<Vec<String>>),
        offline: bool,
        credential: impl FnOnce() -> Result<Credential, ConfigError>,
    ) -> Result<Self, ConfigError> {
        let issuer = match (issuer.as_deref(), quirks.default_issuer) {
            (Some(issuer), _) | (None, Some(issuer)) => ctx.url("issuer", issuer)?,
            (None, None) => {
                return Err(ConfigError::new(
                    ctx.key("issuer"),
                    "is required for an OpenID Connect provider (discovery is at {issuer}/.well-known/openid-configuration)",
                ))
            }
        };
        Ok(Oidc {
            name: ctx.name().to_owned(),
            quirks,
            client_id: ctx.required("client_id", client_id)?,
            credential: credential()?,
            token_auth: None,
            tenancy: None,
            issuer,
            redirect_uri: ctx.callback_url().to_string(),
            scopes: scopes
                .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]),
            offline,
            response_mode: None,
            http: ctx.http().clone(),
            metadata: Fetched::new(),
            keys: Fetched::new(),
        })
    }

    /// With Microsoft's tenant rules.
    pub(crate) fn with_tenancy(mut self, tenancy: Tenancy) -> Self {
        self.tenancy = Some(tenancy);
        self
    }

    /// Fetches the discovery document now (at launch); on failure the provider answers 503 and
    /// tries again on its next use.
    pub(crate) async fn discover(&self) -> Result<(), ProviderError> {
        self.metadata().await.map(|_| ())
    }

    /// Discovery's answer: the cached one, else that of the fetch in flight (one for every
    /// caller that waits, failed or not), else of a new fetch.
    async fn metadata(&self) -> Result<Arc<Metadata>, ProviderError> {
        let (id, flight) = match self.metadata.current_or_join() {
            Ok((_, metadata)) => return Ok(metadata),
            Err(flight) => flight,
        };
        let fetch = || async {
            self.fetch_metadata().await.map_err(|e| {
                log::error!(
                    "social_auth: discovery of provider `{}` failed: {e}",
                    self.name
                );
                match e {
                    e @ ProviderError::Misconfigured(_) => e,
                    e => ProviderError::Unavailable(e.to_string()),
                }
            })
        };
        self.metadata.wait(id, flight, fetch).await
    }

    async fn fetch_metadata(&self) -> Result<Metadata, ProviderError> {
        let issuer = self.issuer.as_str().trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let answer = self.http.send(self.http.get(&url)).await?;
        if !answer.status.is_success() {
            return Err(ProviderError::BadResponse(format!(
                "discovery answered {}",
                answer.status.as_u16()
            )));
        }
        Metadata::from_discovery(
            &self.issuer,
            answer.json("discovery")?,
            self.token_auth,
            &self.quirks,
            self.tenancy.as_ref(),
        )
        .map_err(|e| refused_discovery(&self.name, e))
    }

    /// Fetches the provider's keys.
    async fn fetch_keys(&self, metadata: &Metadata) -> Result<JwkSet, ProviderError> {
        let answer = self
            .http
            .send(self.http.get(metadata.jwks_uri.as_str()))
            .await
            .map_err(|e| {
                log::warn!("social_auth: the JWKS of provider `{}`: {e}", self.name);
                ProviderError::from(e)
            })?;
        if !answer.status.is_success() {
            log::warn!(
                "social_auth: the JWKS of provider `{}` answered {}",
                self.name,
                answer.status.as_u16()
            );
            return Err(bad(format!("the JWKS answered {}", answer.status.as_u16())));
        }
        answer.json("JWKS")
    }

    /// The published key an `id_token` names: from the cached JWKS, else (keys rotate) from the
    /// JWKS fetched again, at most once per [`JWKS_REFETCH_FLOOR`] for unknown `kid`s.
    async fn key_for(&self, metadata: &Metadata, kid: Option<&str>) -> Result<Jwk, ProviderError> {
        let pick = |keys: &JwkSet| match kid {
            Some(kid) => keys.find(kid).cloned(),
            None if keys.keys.len() == 1 => keys.keys.first().cloned(),
            None => None,
        };
        let fetch = || self.fetch_keys(metadata);
        let (seen, keys) = match self.keys.current_or_join() {
            Ok(current) => current,
            Err((id, flight)) => (id, self.keys.wait(id, flight, fetch).await?),
        };
        if let Some(key) = pick(&keys) {
            return Ok(key);
        }
        let next = self
            .keys
            .lock()
            .refetch(seen, Instant::now(), JWKS_REFETCH_FLOOR);
        let keys = match next {
            Refetch::Newer(keys) => keys,
            Refetch::Join(id, flight) => self.keys.wait(id, flight, fetch).await?,
            Refetch::Refuse => {
                log::warn!(
                    "social_auth: an id_token of provider `{}` names the unknown key {kid:?}; \
                     the JWKS was fetched again less than {}s ago, so not now",
                    self.name,
                    JWKS_REFETCH_FLOOR.as_secs()
                );
                return Err(bad(format!("no published key has the id {kid:?}")));
            }
        };
        pick(&keys).ok_or_else(|| bad(format!("no published key has the id {kid:?}")))
    }

    fn client(&self, metadata: &Metadata) -> Result<Client, ProviderError> {
        let mut client = oauth2::Client::new(ClientId::new(self.client_id.clone()));
        // A public client (`none`) sends its id in the form and no secret.
        if let TokenAuth::Basic | TokenAuth::Post = metadata.auth {
            let secret = match &self.credential {
                Credential::Public => None,
                Credential::Fixed(secret) => Some(secret.expose().to_owned()),
                Credential::Minted(mint) => Some(mint.client_secret()?.expose().to_owned()),
            };
            if let Some(secret) = secret {
                client = client.set_client_secret(ClientSecret::new(secret));
            }
        }
        let auth_type = match metadata.auth {
            TokenAuth::Basic => AuthType::BasicAuth,
            _ => AuthType::RequestBody,
        };
        Ok(client
            .set_auth_uri(AuthUrl::from_url(metadata.authorization.clone()))
            .set_token_uri(TokenUrl::from_url(metadata.token.clone()))
            .set_auth_type(auth_type)
            .set_redirect_uri(RedirectUrl::from_url(
                Url::parse(&self.redirect_uri)
                    .unwrap_or_else(|_| Url::parse("http://127.0.0.1/").expect("static URL")),
            )))
    }

    /// The issuers an `id_token` may name: discovery's, and with [`Quirks::bare_issuer`] its
    /// scheme-less form (Google's `accounts.google.com`).
    fn issuers(&self, metadata: &Metadata) -> Vec<String> {
        let mut issuers = vec![metadata.issuer.clone()];
        if self.quirks.bare_issuer {
            let bare = metadata
                .issuer
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            issuers.push(bare.to_owned());
        }
        issuers
    }

    /// Verifies the `id_token`: signature by a published key whose algorithm the key decides,
    /// issuer, audience, authorized party, expiry and issue time, nonce.
    async fn verify(&self, id_token: &str, nonce: &str) -> Result<Value, ProviderError> {
        let metadata = self.metadata().await?;
        let header = jsonwebtoken::decode_header(id_token).map_err(bad)?;
        let jwk = self.key_for(&metadata, header.kid.as_deref()).await?;
        let algorithm =
            key_algorithm(&jwk).ok_or_else(|| bad("the key's algorithm is not usable"))?;
        if header.alg != algorithm {
            return Err(bad(format!(
                "signed with {:?}, but the key is for {algorithm:?}",
                header.alg
            )));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(bad)?;
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY;
        validation.set_audience(&[&self.client_id]);
        // A templated issuer (Microsoft's `…/{tenantid}/v2.0`) is checked below, once the
        // token's `tid` is known; every other issuer here.
        let templated = metadata.issuer.contains(TENANT_TEMPLATE);
        if !templated {
            validation.set_issuer(&self.issuers(&metadata));
        }
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Value>(id_token, &key, &validation)
            .map_err(bad)?
            .claims;
        if templated {
            // Never skipped: the issuer is the template with the token's own tenant in it.
            let tid = claims["tid"]
                .as_str()
                .filter(|t| is_guid(t))
                .ok_or_else(|| bad("no tenant id (tid) for the templated issuer"))?;
            let expected = metadata.issuer.replace(TENANT_TEMPLATE, tid);
            if claims["iss"].as_str() != Some(expected.as_str()) {
                return Err(bad("the issuer is not that of the token's tenant"));
            }
        }
        let iat = claims["iat"].as_i64().ok_or_else(|| bad("no iat"))?;
        if iat > now() + LEEWAY as i64 {
            return Err(bad("issued in the future"));
        }
        let several_audiences = claims["aud"].as_array().is_some_and(|a| a.len() > 1);
        match claims["azp"].as_str() {
            Some(azp) if azp != self.client_id => {
                return Err(bad("authorized party is another client"))
            }
            None if several_audiences => return Err(bad("several audiences and no azp")),
            _ => {}
        }
        let matches = match claims["nonce"].as_str() {
            Some(n) => bool::from(n.as_bytes().ct_eq(nonce.as_bytes())),
            // LinkedIn never echoes the nonce; its id_token comes straight from the token
            // endpoint, for the code this flow's `state` vouched for.
            None => !self.quirks.nonce_echoed && claims.get("nonce").is_none(),
        };
        if !matches {
            return Err(ProviderError::NonceMismatch);
        }
        if let Some(tenancy) = &self.tenancy {
            tenancy.check(&claims)?;
        }
        if claims["sub"].as_str().is_none_or(str::is_empty) {
            return Err(bad("no sub"));
        }
        Ok(claims)
    }

    /// The scopes of the authorize URL: the table's, with `offline_access` when `offline` asks
    /// for a refresh token that way.
    fn requested_scopes(&self) -> Vec<String> {
        let mut scopes = self.scopes.clone();
        if self.offline
            && self.quirks.offline == Offline::Scope
            && !scopes.iter().any(|s| s == "offline_access")
        {
            scopes.push("offline_access".into());
        }
        scopes
    }

    /// A failed token request, with the provider's own codes for a dead grant.
    fn token_error(
        &self,
        e: oauth2::RequestTokenError<crate::provider::HttpError, BasicErrorResponse>,
    ) -> ProviderError {
        match token_error(e) {
            ProviderError::Rejected { code, description }
                if self.quirks.dead_grant_codes.contains(&code.as_str()) =>
            {
                ProviderError::InvalidGrant { code, description }
            }
            e => e,
        }
    }

    /// Completes missing profile claims from userinfo (whose `sub` must be the same).
    async fn complete(&self, claims: &mut Value, access_token: &Secret) {
        let missing = ["name", "email", "picture"]
            .iter()
            .any(|c| claims[*c].as_str().is_none());
        let Ok(metadata) = self.metadata().await else {
            return;
        };
        let (true, Some(userinfo)) = (missing, metadata.userinfo.as_ref()) else {
            return;
        };
        let request = self
            .http
            .get(userinfo.as_str())
            .bearer_auth(access_token.expose());
        let info: Value = match self.http.send(request).await {
            Ok(answer) if answer.status.is_success() => match answer.json("userinfo") {
                Ok(info) => info,
                Err(e) => return log::warn!("social_auth: {} userinfo: {e}", self.name),
            },
            Ok(answer) => {
                return log::warn!(
                    "social_auth: {} userinfo answered {}",
                    self.name,
                    answer.status.as_u16()
                )
            }
            Err(e) => return log::warn!("social_auth: {} userinfo: {e}", self.name),
        };
        if info["sub"] != claims["sub"] {
            return log::warn!(
                "social_auth: {} userinfo is about another subject",
                self.name
            );
        }
        for claim in [
            "name",
            "email",
            "email_verified",
            "picture",
            "given_name",
            "family_name",
            "hd",
        ] {
            if claims[claim].is_null() && !info[claim].is_null() {
                claims[claim] = info[claim].clone();
            }
        }
    }
}

#[async_trait]
impl Provider for Oidc {
    async fn authorize_url(&self, flow: &FlowParams<'_>) -> Result<Url, ProviderError> {
        let metadata = self.metadata().await?;
        let scopes = self.requested_scopes();
        let verifier = PkceCodeVerifier::new(flow.pkce_verifier.to_owned());
        let challenge = oauth2::PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        let mut url = metadata.authorization.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("scope", &scopes.join(" "))
                .append_pair("state", flow.state)
                .append_pair("nonce", flow.nonce);
            if self.quirks.pkce {
                q.append_pair("code_challenge", challenge.as_str())
                    .append_pair("code_challenge_method", "S256");
            }
            if let Some(mode) = self.response_mode {
                q.append_pair("response_mode", mode);
            }
            if self.offline && self.quirks.offline != Offline::Implicit {
                if self.quirks.offline == Offline::AccessType {
                    q.append_pair("access_type", "offline");
                }
                q.append_pair("prompt", "consent");
            }
        }
        Ok(url)
    }

    async fn exchange_code(
        &self,
        code: &str,
        flow: &FlowParams<'_>,
    ) -> Result<TokenSet, ProviderError> {
        let metadata = self.metadata().await?;
        let client = self.client(&metadata)?;
        let mut request = client.exchange_code(AuthorizationCode::new(code.to_owned()));
        if self.quirks.pkce {
            request =
                request.set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.to_owned()));
        }
        let answer = request
            .request_async(&self.http)
            .await
            .map_err(|e| self.token_error(e))?;
        let mut tokens = token_set(&answer);
        tokens.id_token = answer.extra_fields().id_token.clone();
        Ok(tokens)
    }

    async fn profile(
        &self,
        tokens: &TokenSet,
        flow: &FlowParams<'_>,
    ) -> Result<Profile, ProviderError> {
        let id_token = tokens
            .id_token
            .as_deref()
            .ok_or_else(|| bad("the token endpoint sent none"))?;
        let mut claims = self.verify(id_token, flow.nonce).await?;
        self.complete(&mut claims, &tokens.access_token).await;
        let text = |c: &str| claims[c].as_str().map(str::to_owned);
        let both = |a: &str, b: &str| match (text(a), text(b)) {
            (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => Ok(format!("{a}/{b}")),
            _ => Err(bad(format!("no {a} and {b}"))),
        };
        let social_id = match self.quirks.subject {
            Subject::Sub => text("sub").unwrap_or_default(),
            Subject::TenantObject => both("tid", "oid")?,
            Subject::SlackTeamUser => {
                both("https://slack.com/team_id", "https://slack.com/user_id")?
            }
        };
        Ok(Profile {
            social_id,
            name: text("name").filter(|n| !n.is_empty()),
            email: text("email"),
            email_verified: self.quirks.vouches_for_email && truthy(claims.get("email_verified")),
            avatar_url: text("picture").filter(|_| self.quirks.picture),
            raw: claims,
        })
    }

    /// Fetched now and cached; a provider that is down must not take the app down: its routes
    /// answer 503 and discovery is retried on the next use.
    async fn warm_up(&self) -> Result<(), ProviderError> {
        self.discover().await
    }

    async fn check_response_issuer(&self, iss: Option<&str>) -> Result<(), ProviderError> {
        let metadata = self.metadata().await?;
        match iss {
            Some(iss) if iss == metadata.issuer => Ok(()),
            None if !metadata.iss_parameter => Ok(()),
            _ => Err(ProviderError::IssuerMismatch),
        }
    }

    fn vouches_for_email(&self) -> bool {
        self.quirks.vouches_for_email
    }

    /// A rotated refresh token (GitLab, Microsoft, Slack) comes back in the answer and replaces
    /// the stored one; without one, the old one is kept.
    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenSet, ProviderError> {
        let metadata = self.metadata().await?;
        let client = self.client(&metadata)?;
        let token = RefreshToken::new(refresh_token.expose().to_owned());
        let mut request = client.exchange_refresh_token(&token);
        if self.quirks.refresh_redirect_uri {
            request = request.add_extra_param("redirect_uri", self.redirect_uri.clone());
        }
        if self.quirks.refresh_scope {
            request = request.add_scope(oauth2::Scope::new(self.requested_scopes().join(" ")));
        }
        let answer = request
            .request_async(&self.http)
            .await
            .map_err(|e| self.token_error(e))?;
        Ok(token_set(&answer))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use rocket::tokio::sync::Notify;
    use serde_json::json;

    use super::*;

    /// A discovery document of `issuer` whose endpoints are at `base`, with `field` set to
    /// `value` when given.
    fn document(issuer: &str, base: &str, field: Option<(&str, &str)>) -> Discovery {
        let mut doc = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "userinfo_endpoint": format!("{base}/userinfo"),
            "jwks_uri": format!("{base}/certs"),
        });
        if let Some((field, value)) = field {
            doc[field] = json!(value);
        }
        serde_json::from_value(doc).expect("a discovery document")
    }

    fn from_doc(issuer: &Url, doc: Discovery) -> Result<Metadata, DiscoveryError> {
        Metadata::from_discovery(issuer, doc, None, &STANDARD, None)
    }

    #[test]
    fn token_auth_overrides_discovery_and_an_unusable_list_is_refused() {
        let list = |m: &[&str]| Some(m.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let cases = [
            (None, None, None, Some(TokenAuth::Basic)),
            (
                None,
                None,
                list(&["client_secret_post"]),
                Some(TokenAuth::Post),
            ),
            (
                None,
                None,
                list(&["client_secret_post", "client_secret_basic"]),
                Some(TokenAuth::Basic),
            ),
            (None, None, list(&["none"]), None),
            (None, None, list(&["private_key_jwt"]), None),
            (
                Some(TokenAuth::None),
                None,
                list(&["none"]),
                Some(TokenAuth::None),
            ),
            (
                Some(TokenAuth::Post),
                None,
                list(&["client_secret_basic"]),
                Some(TokenAuth::Post),
            ),
            (None, Some(TokenAuth::Post), None, Some(TokenAuth::Post)),
            (
                None,
                Some(TokenAuth::Post),
                list(&["client_secret_basic"]),
                Some(TokenAuth::Basic),
            ),
        ];
        for (configured, fallback, methods, expected) in cases {
            let got = client_auth(configured, fallback, methods.clone()).ok();
            assert_eq!(got, expected, "{configured:?} {fallback:?} {methods:?}");
        }
        let err = client_auth(None, None, list(&["none"])).unwrap_err();
        assert!(err.to_string().contains("set `token_auth`"), "{err}");
        match refused_discovery("acme", err) {
            ProviderError::Misconfigured(e) => assert!(
                e.to_string()
                    .starts_with("`social_auth.providers.acme.token_auth`"),
                "{e}"
            ),
            other => panic!("{other:?}"),
        }
        let other = DiscoveryError::OtherIssuer {
            found: "https://evil.example".into(),
            expected: "https://idp.example".into(),
        };
        assert!(matches!(
            refused_discovery("acme", other),
            ProviderError::BadResponse(_)
        ));
    }

    const FIELDS: [&str; 4] = [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
    ];

    #[test]
    fn an_https_issuer_never_gets_plain_http_endpoints() {
        let issuer = Url::parse("https://idp.example").unwrap();
        for field in FIELDS {
            for value in [
                "http://127.0.0.1:9/x",
                "http://localhost:9/x",
                "http://[::1]:9/x",
                "http://idp.example/x",
                "ftp://idp.example/x",
            ] {
                let doc = document(
                    "https://idp.example",
                    "https://idp.example",
                    Some((field, value)),
                );
                match from_doc(&issuer, doc) {
                    Err(DiscoveryError::Insecure { field: f, url }) => {
                        assert_eq!((f, url.as_str()), (field, value));
                    }
                    other => panic!("{field} = {value}: {other:?}"),
                }
            }
        }
        let doc = document("https://idp.example", "https://idp.example", None);
        assert!(from_doc(&issuer, doc).is_ok());
    }

    #[test]
    fn a_loopback_https_issuer_gets_no_plain_http_either() {
        let issuer = Url::parse("https://127.0.0.1:8443").unwrap();
        let doc = document(
            "https://127.0.0.1:8443",
            "https://127.0.0.1:8443",
            Some(("token_endpoint", "http://127.0.0.1:8080/token")),
        );
        assert!(matches!(
            from_doc(&issuer, doc),
            Err(DiscoveryError::Insecure {
                field: "token_endpoint",
                ..
            })
        ));
    }

    #[test]
    fn a_loopback_http_issuer_may_name_loopback_http_but_nothing_else_plain() {
        let issuer = Url::parse("http://127.0.0.1:9").unwrap();
        for base in [
            "http://127.0.0.1:9",
            "http://localhost:10",
            "https://idp.example",
        ] {
            let doc = document("http://127.0.0.1:9", base, None);
            assert!(from_doc(&issuer, doc).is_ok(), "{base}");
        }
        for field in FIELDS {
            let doc = document(
                "http://127.0.0.1:9",
                "http://127.0.0.1:9",
                Some((field, "http://idp.example/x")),
            );
            let err = from_doc(&issuer, doc).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("`{field}` must use https")),
                "{err}"
            );
        }
    }

    #[test]
    fn a_document_of_another_issuer_or_with_a_bad_url_is_refused() {
        let issuer = Url::parse("https://idp.example").unwrap();
        let doc = document("https://evil.example", "https://idp.example", None);
        assert!(matches!(
            from_doc(&issuer, doc),
            Err(DiscoveryError::OtherIssuer { .. })
        ));
        let doc = document(
            "https://idp.example/",
            "https://idp.example",
            Some(("jwks_uri", "not a url")),
        );
        assert!(matches!(
            from_doc(&issuer, doc),
            Err(DiscoveryError::InvalidUrl {
                field: "jwks_uri",
                ..
            })
        ));
    }

    fn keys_landed(id: u64) -> FetchState<u64> {
        let mut state = FetchState::new();
        let (first, _) = state.join();
        state.land(first, &Ok(Arc::new(0)));
        while state.started < id {
            let (next, _) = state.join();
            state.land(next, &Ok(Arc::new(next)));
        }
        state
    }

    #[test]
    fn the_first_unknown_kid_refetches_then_the_floor_holds_until_it_has_passed() {
        let floor = Duration::from_secs(30);
        let t0 = Instant::now();
        let mut state = keys_landed(1);
        let Refetch::Join(id, _) = state.refetch(1, t0, floor) else {
            panic!("the first unknown kid refetches");
        };
        assert_eq!(id, 2);
        state.land(id, &Ok(Arc::new(2)));
        assert!(state.flight.is_none());
        let just_before = t0 + floor - Duration::from_millis(1);
        assert!(matches!(
            state.refetch(2, just_before, floor),
            Refetch::Refuse
        ));
        assert_eq!(state.started, 2, "refused without a fetch");
        assert!(matches!(
            state.refetch(2, t0 + floor, floor),
            Refetch::Join(3, _)
        ));
    }

    #[test]
    fn a_miss_joins_the_refetch_in_flight_or_looks_at_newer_keys() {
        let floor = Duration::from_secs(30);
        let now = Instant::now();
        let mut state = keys_landed(1);
        let Refetch::Join(id, _) = state.refetch(1, now, floor) else {
            panic!("refetch");
        };
        // A burst while it is in flight: every miss joins it, none starts another.
        for _ in 0..5 {
            assert!(matches!(state.refetch(1, now, floor), Refetch::Join(i, _) if i == id));
        }
        assert_eq!(state.started, id);
        // A failed refetch still counts for the floor.
        state.land(id, &Err(ProviderError::Timeout));
        assert!(matches!(state.refetch(1, now, floor), Refetch::Refuse));
        // A miss in keys older than the current ones looks at those, whatever the floor.
        let mut state = keys_landed(3);
        assert!(matches!(state.refetch(2, now, floor), Refetch::Newer(k) if *k == 3));
    }

    #[rocket::async_test]
    async fn callers_share_the_fetch_in_flight_and_those_who_have_keys_do_not_wait() {
        let fetched: Fetched<u64> = Fetched::new();
        let calls = AtomicU64::new(0);
        let release = Notify::new();
        let fetch = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            release.notified().await;
            Err::<u64, _>(ProviderError::Timeout)
        };
        // Five callers with nothing cached: one fetch, and its failure answers all of them.
        let waiters = (0..5).map(|_| async {
            let (id, flight) = fetched.current_or_join().expect_err("nothing cached");
            fetched.wait(id, flight, fetch).await
        });
        let all = rocket::futures::future::join_all(waiters);
        let releaser = async {
            while calls.load(Ordering::SeqCst) == 0 {
                rocket::tokio::task::yield_now().await;
            }
            release.notify_one();
        };
        let (results, ()) = rocket::tokio::join!(all, releaser);
        assert!(results
            .iter()
            .all(|r| matches!(r, Err(ProviderError::Timeout))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Once a document landed, a refetch in flight holds up no one who has it.
        let (id, flight) = fetched
            .current_or_join()
            .expect_err("the failure was not cached");
        let landed = fetched.wait(id, flight, || async { Ok(7) }).await;
        assert!(matches!(landed.as_deref(), Ok(7)));
        let forced = fetched
            .lock()
            .refetch(id, Instant::now(), JWKS_REFETCH_FLOOR);
        let Refetch::Join(forced_id, forced) = forced else {
            panic!("the first forced refetch starts");
        };
        let slow = fetched.wait(forced_id, forced, || async {
            release.notified().await;
            Ok(8)
        });
        let meanwhile = async {
            rocket::tokio::task::yield_now().await;
            // The refetch is pending (its fetch waits on `release`); the cached keys are there.
            let current = fetched.current_or_join().ok().map(|(_, doc)| *doc);
            release.notify_one();
            current
        };
        let (slow, meanwhile) = rocket::tokio::join!(slow, meanwhile);
        assert_eq!(meanwhile, Some(7), "read while the refetch was in flight");
        assert!(matches!(slow.as_deref(), Ok(8)));
        assert!(matches!(fetched.current_or_join(), Ok((_, doc)) if *doc == 8));
    }
}
