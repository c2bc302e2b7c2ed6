//! What distinguishes one OpenID provider's wire format from another's, as hooks over the
//! generic behaviour of [`FakeOidc`](super::FakeOidc): paths, discovery, error envelopes,
//! token answers and claims. Google and the generic provider are the defaults; each other
//! provider has a file of its own.

use rocket::http::{ContentType, Method, Status};
use rocket::serde::json::{json, Value};
use serde_json::Map;

use super::keys::SigningKey;
use super::{ClientAuth, FakeOidcUser, RefreshRotation, RefreshTokens};
use crate::testing::{json_answer, Raw};

/// The endpoints a fake OpenID provider serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Discovery,
    Jwks,
    Authorize,
    Token,
    Userinfo,
    Revoke,
}

/// An endpoint, and the tenant its path names (Microsoft).
pub(super) struct Target {
    pub(super) endpoint: Endpoint,
    pub(super) tenant: Option<String>,
}

impl Target {
    pub(super) fn at(endpoint: Endpoint) -> Option<Target> {
        Some(Target {
            endpoint,
            tenant: None,
        })
    }
}

/// Where the fake is served, as the request reached it.
pub(super) struct Site<'a> {
    /// `http://` + the Host of the request + where the routes are mounted.
    pub(super) base: &'a str,
    /// The issuer fixed by `set_issuer`, if any.
    pub(super) issuer: Option<&'a str>,
    /// The tenant of the request's path (Microsoft).
    pub(super) tenant: Option<&'a str>,
    /// The tenant id that tenant names when it is a domain set with `set_tenant_domain`.
    pub(super) tenant_of_domain: Option<&'a str>,
}

/// Why a token request is refused, before the dialect says it in its own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TokenError {
    /// Wrong, missing or unaccepted client credentials.
    InvalidClient,
    /// The form has no `client_id` (credentials sent only as HTTP Basic to a provider that
    /// reads the form).
    MissingClientId,
    CodeUnknown,
    CodeUsed,
    CodeExpired,
    RedirectMismatch,
    VerifierMismatch,
    /// A `code_verifier` sent to a provider that refuses PKCE from web apps (LinkedIn).
    VerifierRefused,
    /// An unknown, used, revoked or expired refresh token.
    RefreshInvalid,
    UnsupportedGrant,
    /// An error injected by a fault, by its `error` code.
    Injected(String),
    RateLimited,
}

/// Why a userinfo request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum UserinfoError {
    NoToken,
    InvalidToken,
    Expired,
    Revoked,
    Injected(String),
    RateLimited,
}

/// The settings a dialect starts with; the setters of `FakeOidc` change them.
pub(super) struct Defaults {
    pub(super) client_auth: Vec<ClientAuth>,
    pub(super) methods_advertised: bool,
    pub(super) refresh_tokens: RefreshTokens,
    pub(super) rotation: RefreshRotation,
    pub(super) id_token_on_refresh: bool,
    pub(super) booleans_as_strings: bool,
    pub(super) profile_in_userinfo_only: bool,
}

/// The parameters of an authorization request.
pub(super) struct AuthorizeRequest<'a> {
    pub(super) response_type: Option<&'a str>,
    pub(super) response_mode: Option<&'a str>,
    pub(super) scope: &'a str,
}

/// What the token endpoint issues, for the dialect to shape.
pub(super) struct Issued {
    pub(super) access_token: String,
    pub(super) expires_in: i64,
    pub(super) refresh_token: Option<String>,
    /// Seconds the refresh token has left, when the provider says it (LinkedIn).
    pub(super) refresh_expires_in: Option<i64>,
    pub(super) id_token: Option<String>,
    pub(super) scope: String,
}

/// What the `id_token` and userinfo hooks may know.
pub(super) struct ClaimsCtx<'a> {
    /// Where the fake is served (`http://` + Host + mount point).
    pub(super) base: &'a str,
    pub(super) client_id: &'a str,
    pub(super) scope: &'a str,
    pub(super) profile_in_userinfo_only: bool,
}

impl ClaimsCtx<'_> {
    pub(super) fn has_scope(&self, scope: &str) -> bool {
        self.scope.split([' ', ',']).any(|s| s == scope)
    }
}

/// What the discovery hook may know.
pub(super) struct DiscoveryCtx<'a> {
    pub(super) base: &'a str,
    pub(super) issuer: &'a str,
    /// The tenant of the path, or the tenant id it names when it is a known domain.
    pub(super) tenant: Option<&'a str>,
    /// What `token_endpoint_auth_methods_supported` lists.
    pub(super) auth_methods: Vec<&'static str>,
    pub(super) iss_parameter: bool,
    pub(super) alg: &'static str,
}

/// One provider's wire format. The defaults are Google's (and the generic provider's).
pub(super) trait Dialect: Send + Sync {
    /// Apple's settings, for the Apple-only accessors of the fake.
    fn apple(&self) -> Option<&super::apple::Apple> {
        None
    }

    /// Which endpoint `path` (relative to where the routes are mounted) names.
    fn route(&self, method: &Method, path: &str) -> Option<Target> {
        match (method, path) {
            (&Method::Get, "/.well-known/openid-configuration") => Target::at(Endpoint::Discovery),
            (&Method::Get, "/certs") => Target::at(Endpoint::Jwks),
            (&Method::Get, "/authorize") => Target::at(Endpoint::Authorize),
            (&Method::Post, "/token") => Target::at(Endpoint::Token),
            (&Method::Get, "/userinfo") => Target::at(Endpoint::Userinfo),
            _ => None,
        }
    }

    fn defaults(&self) -> Defaults {
        base_defaults()
    }

    /// The issuer discovery announces: the fixed one, else the server's root.
    fn issuer(&self, site: &Site<'_>) -> Result<String, Box<Raw>> {
        Ok(site.issuer.unwrap_or(site.base).to_owned())
    }

    /// The `sub` of `user`'s `id_token`s and userinfo.
    fn subject(&self, user: &FakeOidcUser, _client_id: &str) -> String {
        user.sub.clone()
    }

    /// The `iss` of an `id_token` for `user`.
    fn id_token_iss(&self, site: &Site<'_>, _user: &FakeOidcUser) -> String {
        site.issuer.unwrap_or(site.base).to_owned()
    }

    fn discovery(&self, d: &DiscoveryCtx<'_>) -> Value {
        let base = d.base;
        json!({
            "issuer": d.issuer,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "userinfo_endpoint": format!("{base}/userinfo"),
            "jwks_uri": format!("{base}/certs"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [d.alg],
            "scopes_supported": ["openid", "email", "profile", "offline_access"],
            "token_endpoint_auth_methods_supported": d.auth_methods,
            "claims_supported": ["aud", "email", "email_verified", "exp", "family_name", "given_name", "iat", "iss", "name", "picture", "sub"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "authorization_response_iss_parameter_supported": d.iss_parameter,
        })
    }

    /// A key as the JWKS publishes it.
    fn jwk(&self, key: &SigningKey, _issuer: &str) -> Value {
        key.jwk.clone()
    }

    /// The length of the key ids.
    fn kid_len(&self) -> usize {
        11
    }

    /// Refuses a malformed authorization request (unknown client, bad parameter): Google and
    /// the generic provider answer a bare 400.
    fn authorize_refused(&self, _reason: &str) -> Raw {
        plain(Status::BadRequest, "")
    }

    /// Checks what the dialect allows of `response_type`, `response_mode` and `scope`.
    fn check_authorize(&self, request: &AuthorizeRequest<'_>) -> Result<(), Box<Raw>> {
        if request.response_type != Some("code") {
            return Err(Box::new(self.authorize_refused("response_type")));
        }
        if !request.scope.split(' ').any(|s| s == "openid") {
            return Err(Box::new(self.authorize_refused("scope")));
        }
        match request.response_mode {
            None | Some("query") => Ok(()),
            Some(_) => Err(Box::new(self.authorize_refused("response_mode"))),
        }
    }

    /// Whether `code_challenge` is recorded and enforced (some providers ignore PKCE).
    fn records_pkce(&self) -> bool {
        true
    }

    /// Whether a `code_verifier` must be 43 to 128 unreserved characters (RFC 7636 §4.1).
    fn strict_verifier(&self) -> bool {
        false
    }

    /// Whether a refresh that sends a `redirect_uri` must send the original one (Doorkeeper's
    /// check, GitLab).
    fn checks_refresh_redirect_uri(&self) -> bool {
        false
    }

    /// Whether a `code_verifier` at the token endpoint is refused (LinkedIn's web apps).
    fn refuses_code_verifier(&self) -> bool {
        false
    }

    /// Whether the successful authorization response repeats `scope` (Google does).
    fn echoes_scope(&self) -> bool {
        true
    }

    /// The `error` (and description) of an authorization the user declined.
    fn denial(&self) -> Vec<(String, String)> {
        vec![("error".into(), "access_denied".into())]
    }

    /// The parameters of an injected authorization error `code`.
    fn authorize_error(&self, code: &str) -> Vec<(String, String)> {
        vec![("error".into(), code.to_owned())]
    }

    /// Fields added to the authorization response the first time a user authorizes the
    /// client (Apple's `user`).
    fn first_authorization(&self, _user: &FakeOidcUser, _scope: &str) -> Option<(String, String)> {
        None
    }

    fn code(&self) -> String {
        format!("4/{}", crate::clock::random_token(30))
    }

    fn code_lifetime(&self) -> i64 {
        600
    }

    fn access_token(&self) -> String {
        format!("ya29.{}", crate::clock::random_token(40))
    }

    fn refresh_token(&self) -> String {
        format!("1//{}", crate::clock::random_token(40))
    }

    fn access_lifetime(&self) -> i64 {
        3599
    }

    /// How long a refresh token lives, when the provider bounds it (LinkedIn's 365 days).
    fn refresh_lifetime(&self) -> Option<i64> {
        None
    }

    /// Whether the token endpoint reads a JSON body as it reads a form (Slack).
    fn accepts_json_body(&self) -> bool {
        false
    }

    fn token_answer(&self, issued: &Issued) -> Value {
        let mut answer = json!({
            "access_token": issued.access_token, "expires_in": issued.expires_in,
            "token_type": "Bearer", "scope": issued.scope,
        });
        if let Some(id_token) = &issued.id_token {
            answer["id_token"] = json!(id_token);
        }
        if let Some(refresh) = &issued.refresh_token {
            answer["refresh_token"] = json!(refresh);
        }
        answer
    }

    /// Google's errors.
    fn token_error(&self, error: &TokenError) -> Raw {
        let (status, code, description) = match error {
            TokenError::InvalidClient | TokenError::MissingClientId => {
                (Status::Unauthorized, "invalid_client", "Unauthorized")
            }
            TokenError::CodeUnknown => {
                (Status::BadRequest, "invalid_grant", "Malformed auth code.")
            }
            TokenError::CodeUsed | TokenError::CodeExpired => {
                (Status::BadRequest, "invalid_grant", "Bad Request")
            }
            TokenError::RedirectMismatch => {
                (Status::BadRequest, "redirect_uri_mismatch", "Bad Request")
            }
            TokenError::VerifierMismatch | TokenError::VerifierRefused => (
                Status::BadRequest,
                "invalid_grant",
                "Invalid code verifier.",
            ),
            TokenError::RefreshInvalid => (
                Status::BadRequest,
                "invalid_grant",
                "Token has been expired or revoked.",
            ),
            TokenError::UnsupportedGrant => (
                Status::BadRequest,
                "unsupported_grant_type",
                "Invalid grant_type: ",
            ),
            TokenError::RateLimited => (
                Status::TooManyRequests,
                "rate_limit_exceeded",
                "Rate limit exceeded.",
            ),
            TokenError::Injected(code) => {
                return oauth_error(Status::BadRequest, code, Some("Injected fault."));
            }
        };
        oauth_error(status, code, Some(description))
    }

    /// The claims of an `id_token` beyond `iss`, `sub`, `aud`, `iat`, `exp`, `nonce`.
    fn id_token_claims(
        &self,
        claims: &mut Map<String, Value>,
        user: &FakeOidcUser,
        ctx: &ClaimsCtx<'_>,
    ) {
        claims.insert("azp".into(), json!(ctx.client_id));
        claims.insert("email".into(), json!(user.email));
        claims.insert("email_verified".into(), user.email_verified.clone());
        if !ctx.profile_in_userinfo_only {
            claims.insert("name".into(), json!(user.name));
            claims.insert("picture".into(), json!(user.picture));
            if let Some(name) = &user.name {
                let mut parts = name.splitn(2, ' ');
                claims.insert("given_name".into(), json!(parts.next()));
                claims.insert("family_name".into(), json!(parts.next()));
            }
        }
        if let Some(hd) = &user.hd {
            claims.insert("hd".into(), json!(hd));
        }
    }

    /// How long an `id_token` lives.
    fn id_token_lifetime(&self) -> i64 {
        3600
    }

    /// Whether the `id_token` repeats the authorization request's `nonce`.
    fn echoes_nonce(&self) -> bool {
        true
    }

    fn userinfo(&self, user: &FakeOidcUser, _ctx: &ClaimsCtx<'_>) -> Value {
        json!({"sub": user.sub, "name": user.name, "picture": user.picture, "email": user.email, "email_verified": user.email_verified, "hd": user.hd})
    }

    /// Whether userinfo also takes the token from a `token` form or query field (Slack).
    fn userinfo_token_field(&self) -> bool {
        false
    }

    fn userinfo_error(&self, error: &UserinfoError) -> Raw {
        match error {
            UserinfoError::RateLimited => oauth_error(
                Status::TooManyRequests,
                "rate_limit_exceeded",
                Some("Rate limit exceeded."),
            ),
            UserinfoError::Injected(code) => {
                oauth_error(Status::BadRequest, code, Some("Injected fault."))
            }
            _ => oauth_error(
                Status::Unauthorized,
                "invalid_request",
                Some("Invalid Credentials"),
            ),
        }
    }

    /// The answer to a successful revocation.
    fn revoke_answer(&self) -> Raw {
        json_answer(Status::Ok, json!({}))
    }

    /// The client authentication of the token and revocation endpoints, when the dialect
    /// does not use client secrets (Apple): `None` for the generic check.
    fn authenticate(
        &self,
        _form: &super::Call,
        _client_id: &str,
    ) -> Option<Result<(), TokenError>> {
        None
    }
}

/// Google and the generic provider.
pub(super) struct Standard {
    pub(super) google: bool,
}

impl Dialect for Standard {
    fn defaults(&self) -> Defaults {
        let refresh_tokens = if self.google {
            RefreshTokens::WithGoogleOffline
        } else {
            RefreshTokens::WithOfflineAccess
        };
        Defaults {
            refresh_tokens,
            ..base_defaults()
        }
    }
}

/// The generic provider's settings: HTTP Basic, a refresh token for `offline_access` and no new
/// one on refresh, boolean claims, the profile in the `id_token`.
pub(super) fn base_defaults() -> Defaults {
    Defaults {
        client_auth: vec![ClientAuth::Basic],
        methods_advertised: true,
        refresh_tokens: RefreshTokens::WithOfflineAccess,
        rotation: RefreshRotation::Kept,
        id_token_on_refresh: false,
        booleans_as_strings: false,
        profile_in_userinfo_only: false,
    }
}

/// `{"error": code, "error_description": description}` (RFC 6749 §5.2).
pub(super) fn oauth_error(status: Status, code: &str, description: Option<&str>) -> Raw {
    let mut body = json!({ "error": code });
    if let Some(description) = description {
        body["error_description"] = json!(description);
    }
    json_answer(status, body)
}

/// A text answer.
pub(super) fn plain(status: Status, body: &str) -> Raw {
    Raw {
        status,
        content_type: ContentType::Plain,
        body: body.to_owned(),
        headers: Vec::new(),
    }
}

/// An HTML page.
pub(super) fn html(status: Status, body: String) -> Raw {
    Raw {
        status,
        content_type: ContentType::HTML,
        body,
        headers: Vec::new(),
    }
}

/// A display name's first word and the rest (empty when there is none).
pub(super) fn split_name(name: &str) -> (&str, &str) {
    let mut parts = name.splitn(2, ' ');
    (parts.next().unwrap_or(""), parts.next().unwrap_or(""))
}
