//! LinkedIn's "Sign In with LinkedIn using OpenID Connect": the issuer
//! `https://www.linkedin.com/oauth` (the fake's URL + `/oauth`), discovery without
//! `token_endpoint_auth_methods_supported` while the token endpoint refuses HTTP Basic, no
//! `nonce` in the `id_token`, no PKCE for web apps (a `code_verifier` is refused), comma-separated
//! scopes, one error text for every code problem, LinkedIn's REST error envelope at userinfo,
//! and refresh tokens only for approved apps.

use rocket::http::{Method, Status};
use rocket::serde::json::{json, Value};
use serde_json::Map;

use super::dialect::{
    base_defaults, html, oauth_error, split_name, ClaimsCtx, Defaults, Dialect, DiscoveryCtx,
    Endpoint, Issued, Site, Target, TokenError, UserinfoError,
};
use super::{ClientAuth, FakeOidc, FakeOidcUser, RefreshRotation, RefreshTokens};
use crate::clock::random_token;
use crate::testing::{json_answer, Raw};

pub(super) struct Linkedin;

impl FakeOidc {
    /// LinkedIn, issuer `{url}/oauth`, serving `/oauth/.well-known/openid-configuration`,
    /// `/oauth/v2/authorization`, `/oauth/v2/accessToken`, `/v2/userinfo` (api.linkedin.com's)
    /// and `/oauth/openid/jwks`. Refresh tokens only after
    /// `set_refresh_tokens(RefreshTokens::Always)` (an app approved for programmatic refresh
    /// tokens; the same token comes back, its 365 days counting down).
    ///
    /// ```no_run
    /// use rocket_social_auth::testing::{FakeOidc, FakeOidcUser};
    ///
    /// # async fn demo() {
    /// let fake = FakeOidc::linkedin("78li-client", "li-secret");
    /// fake.sign_in_as(FakeOidcUser::new("782bbtaQ", "John Doe", "doe@email.example"));
    /// let server = fake.clone().spawn().await.expect("fake LinkedIn starts");
    /// // `kind = "linkedin"` with `issuer = "{url}/oauth"`.
    /// println!("{}/oauth", server.url());
    /// # }
    /// ```
    pub fn linkedin(client_id: &str, client_secret: &str) -> Self {
        FakeOidc::build(client_id, client_secret, std::sync::Arc::new(Linkedin))
    }
}

/// What LinkedIn says about any problem with a code (expired, used, another redirect URI,
/// another app).
const CODE_PROBLEM: &str = "Unable to retrieve access token: appid/redirect uri/code verifier does not match authorization code. Or authorization code expired. Or external member binding exists";

/// LinkedIn's REST error envelope.
fn rest_error(status: Status, service_code: u32, code: &str, message: &str) -> Raw {
    json_answer(
        status,
        json!({"status": status.code, "serviceErrorCode": service_code, "code": code, "message": message}),
    )
}

fn issuer(site: &Site<'_>) -> String {
    site.issuer
        .map_or_else(|| format!("{}/oauth", site.base), str::to_owned)
}

impl Dialect for Linkedin {
    fn route(&self, method: &Method, path: &str) -> Option<Target> {
        let endpoint = match (method, path) {
            (&Method::Get, "/oauth/.well-known/openid-configuration") => Endpoint::Discovery,
            (&Method::Get, "/oauth/v2/authorization") => Endpoint::Authorize,
            (&Method::Post, "/oauth/v2/accessToken") => Endpoint::Token,
            (&Method::Get, "/v2/userinfo") => Endpoint::Userinfo,
            (&Method::Get, "/oauth/openid/jwks") => Endpoint::Jwks,
            _ => return None,
        };
        Target::at(endpoint)
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            client_auth: vec![ClientAuth::Post],
            methods_advertised: false,
            refresh_tokens: RefreshTokens::Never,
            rotation: RefreshRotation::Echoed,
            ..base_defaults()
        }
    }

    fn issuer(&self, site: &Site<'_>) -> Result<String, Box<Raw>> {
        Ok(issuer(site))
    }

    fn id_token_iss(&self, site: &Site<'_>, _user: &FakeOidcUser) -> String {
        issuer(site)
    }

    fn discovery(&self, d: &DiscoveryCtx<'_>) -> Value {
        let base = d.base;
        json!({
            "issuer": d.issuer,
            "authorization_endpoint": format!("{base}/oauth/v2/authorization"),
            "token_endpoint": format!("{base}/oauth/v2/accessToken"),
            "userinfo_endpoint": format!("{base}/v2/userinfo"),
            "jwks_uri": format!("{base}/oauth/openid/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": [d.alg],
            "scopes_supported": ["openid", "profile", "email"],
            "claims_supported": ["iss", "aud", "iat", "exp", "sub", "name", "given_name", "family_name", "picture", "email", "email_verified", "locale"],
            // Absent unless `set_auth_methods_advertised(true)`.
            "token_endpoint_auth_methods_supported": d.auth_methods,
        })
    }

    fn authorize_refused(&self, reason: &str) -> Raw {
        let text = match reason {
            "client_id" => "The passed in client_id is invalid",
            "redirect_uri" => "The redirect_uri does not match the registered value",
            "scope" => "Scope is not authorized for your application",
            _ => "Invalid request",
        };
        html(
            Status::BadRequest,
            format!("<!doctype html><html><body><h1>Bummer, something went wrong.</h1><p>{text}</p></body></html>"),
        )
    }

    fn records_pkce(&self) -> bool {
        false
    }

    fn refuses_code_verifier(&self) -> bool {
        true
    }

    fn echoes_scope(&self) -> bool {
        false
    }

    fn echoes_nonce(&self) -> bool {
        false
    }

    fn denial(&self) -> Vec<(String, String)> {
        self.authorize_error("user_cancelled_login")
    }

    fn authorize_error(&self, code: &str) -> Vec<(String, String)> {
        let description = match code {
            "user_cancelled_login" => "The user cancelled LinkedIn login",
            "user_cancelled_authorize" => "The user cancelled the authorization",
            "unauthorized_scope_error" => {
                "Scope \"r_emailaddress\" is not authorized for your application"
            }
            _ => "Injected fault.",
        };
        vec![
            ("error".into(), code.to_owned()),
            ("error_description".into(), description.into()),
        ]
    }

    fn code(&self) -> String {
        format!("AQ{}", random_token(96))
    }

    fn code_lifetime(&self) -> i64 {
        1800
    }

    fn access_token(&self) -> String {
        format!("AQX{}", random_token(120))
    }

    fn refresh_token(&self) -> String {
        format!("AQW{}", random_token(120))
    }

    fn access_lifetime(&self) -> i64 {
        5_183_999
    }

    fn refresh_lifetime(&self) -> Option<i64> {
        Some(31_536_000)
    }

    fn token_answer(&self, issued: &Issued) -> Value {
        let mut scopes: Vec<&str> = issued
            .scope
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .collect();
        scopes.sort_unstable();
        let mut answer = json!({
            "access_token": issued.access_token, "expires_in": issued.expires_in,
            "scope": scopes.join(","), "token_type": "Bearer",
        });
        if let Some(id_token) = &issued.id_token {
            answer["id_token"] = json!(id_token);
        }
        if let Some(refresh) = &issued.refresh_token {
            answer["refresh_token"] = json!(refresh);
            answer["refresh_token_expires_in"] = json!(issued.refresh_expires_in);
        }
        answer
    }

    fn token_error(&self, error: &TokenError) -> Raw {
        match error {
            TokenError::InvalidClient | TokenError::VerifierRefused => oauth_error(
                Status::Unauthorized,
                "invalid_client",
                Some("Client authentication failed"),
            ),
            TokenError::MissingClientId => oauth_error(
                Status::BadRequest,
                "invalid_request",
                Some("A required parameter \"client_id\" is missing"),
            ),
            TokenError::CodeUnknown
            | TokenError::CodeUsed
            | TokenError::CodeExpired
            | TokenError::RedirectMismatch
            | TokenError::VerifierMismatch => {
                oauth_error(Status::BadRequest, "invalid_request", Some(CODE_PROBLEM))
            }
            TokenError::RefreshInvalid => oauth_error(
                Status::BadRequest,
                "invalid_request",
                Some("The provided refresh token is invalid, expired or revoked"),
            ),
            TokenError::UnsupportedGrant => oauth_error(
                Status::BadRequest,
                "unsupported_grant_type",
                Some("grant_type is not supported"),
            ),
            TokenError::RateLimited => rate_limited(),
            TokenError::Injected(code) => {
                let status = if code == "invalid_client" {
                    Status::Unauthorized
                } else {
                    Status::BadRequest
                };
                let description = match code.as_str() {
                    "invalid_client" => "Client authentication failed",
                    "invalid_request" => CODE_PROBLEM,
                    _ => "Injected fault.",
                };
                oauth_error(status, code, Some(description))
            }
        }
    }

    fn id_token_claims(
        &self,
        claims: &mut Map<String, Value>,
        user: &FakeOidcUser,
        ctx: &ClaimsCtx<'_>,
    ) {
        for (k, v) in profile(user, ctx) {
            claims.insert(k, v);
        }
    }

    fn userinfo(&self, user: &FakeOidcUser, ctx: &ClaimsCtx<'_>) -> Value {
        let mut info = Map::new();
        info.insert("sub".into(), json!(user.sub));
        info.extend(profile(user, ctx));
        Value::Object(info)
    }

    fn userinfo_error(&self, error: &UserinfoError) -> Raw {
        match error {
            UserinfoError::RateLimited => rate_limited(),
            UserinfoError::Revoked => rest_error(
                Status::Unauthorized,
                65601,
                "REVOKED_ACCESS_TOKEN",
                "The token used in the request has been revoked by the user",
            ),
            UserinfoError::Expired => rest_error(
                Status::Unauthorized,
                65602,
                "EXPIRED_ACCESS_TOKEN",
                "The token used in the request has expired",
            ),
            UserinfoError::Injected(code) => {
                rest_error(Status::Forbidden, 100, code, "Injected fault.")
            }
            UserinfoError::NoToken | UserinfoError::InvalidToken => rest_error(
                Status::Unauthorized,
                65600,
                "INVALID_ACCESS_TOKEN",
                "Invalid access token",
            ),
        }
    }
}

/// The profile claims the granted scopes release (`profile`: names, picture, locale; `email`:
/// email and `email_verified`).
fn profile(user: &FakeOidcUser, ctx: &ClaimsCtx<'_>) -> Map<String, Value> {
    let mut claims = Map::new();
    if ctx.has_scope("profile") {
        if let Some(name) = &user.name {
            let (given, family) = split_name(name);
            claims.insert("name".into(), json!(name));
            claims.insert("given_name".into(), json!(given));
            claims.insert("family_name".into(), json!(family));
        }
        claims.insert("picture".into(), json!(user.picture));
        claims.insert("locale".into(), json!("en-US"));
    }
    if let Some(email) = user.email.as_ref().filter(|_| ctx.has_scope("email")) {
        claims.insert("email".into(), json!(email));
        claims.insert("email_verified".into(), user.email_verified.clone());
    }
    claims
}

/// LinkedIn's throttle answer.
fn rate_limited() -> Raw {
    rest_error(
        Status::TooManyRequests,
        101,
        "TOO_MANY_REQUESTS",
        "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.",
    )
}
