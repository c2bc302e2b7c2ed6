//! GitLab as an OpenID provider (Doorkeeper with doorkeeper-openid_connect): the instance URL is
//! the issuer, `/oauth/*` endpoints, Doorkeeper's error texts, lower-case `bearer` and
//! `created_at` in token answers, a refresh token with every grant that rotates (the old pair
//! dies at once), strict PKCE verifiers, `sub` as a decimal string with `sub_legacy`, and the
//! profile in userinfo (the `id_token` has the documented claims only).

use rocket::http::{Method, Status};
use rocket::serde::json::{json, Value};
use serde_json::Map;
use sha2::{Digest, Sha256};

use super::dialect::{
    base_defaults, html, oauth_error, ClaimsCtx, Defaults, Dialect, DiscoveryCtx, Endpoint, Issued,
    Target, TokenError, UserinfoError,
};
use super::{ClientAuth, FakeOidc, FakeOidcUser, RefreshRotation, RefreshTokens};
use crate::testing::Raw;

pub(super) struct Gitlab;

impl FakeOidc {
    /// GitLab (gitlab.com or self-managed; the fake's URL is the instance URL and the issuer),
    /// serving `/.well-known/openid-configuration`, `/oauth/authorize`, `/oauth/token`,
    /// `/oauth/userinfo`, `/oauth/discovery/keys` and `/oauth/revoke`. Give users a decimal
    /// `sub` (GitLab's numeric user id as a string).
    ///
    /// ```no_run
    /// use rocket_social_auth::testing::{FakeOidc, FakeOidcUser};
    ///
    /// # async fn demo() {
    /// let fake = FakeOidc::gitlab("gl-app-id", "gloas-secret");
    /// fake.sign_in_as(FakeOidcUser::new("1234", "Jane Doe", "jane@example.com"));
    /// let server = fake.clone().spawn().await.expect("fake GitLab starts");
    /// // `kind = "gitlab"` with `issuer = server.url()`.
    /// # }
    /// ```
    pub fn gitlab(client_id: &str, client_secret: &str) -> Self {
        FakeOidc::build(client_id, client_secret, std::sync::Arc::new(Gitlab))
    }
}

const INVALID_GRANT: &str = "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.";
const INVALID_CLIENT: &str = "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.";

/// Doorkeeper's description of an error code (`config/locales/en.yml`).
fn doorkeeper_text(code: &str) -> &'static str {
    match code {
        "invalid_grant" => INVALID_GRANT,
        "invalid_client" => INVALID_CLIENT,
        "invalid_request" => "The request is missing a required parameter, includes an unsupported parameter value, or is otherwise malformed.",
        "unauthorized_client" => "The client is not authorized to perform this request using this method.",
        "unsupported_grant_type" => "The authorization grant type is not supported by the authorization server.",
        "invalid_scope" => "The requested scope is invalid, unknown, or malformed.",
        "access_denied" => "The resource owner or authorization server denied the request.",
        "server_error" => "The authorization server encountered an unexpected condition which prevented it from fulfilling the request.",
        "temporarily_unavailable" => "The authorization server is temporarily unable to handle the request due to a temporary overloading or maintenance of the server.",
        _ => "Injected fault.",
    }
}

fn hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The username: a `nickname` claim, else the email's local part, else `user<sub>`.
fn username(user: &FakeOidcUser) -> String {
    if let Some(Value::String(nick)) = user.extra_claims.get("nickname") {
        return nick.clone();
    }
    user.email
        .as_deref()
        .and_then(|e| e.split('@').next())
        .map_or_else(|| format!("user{}", user.sub), str::to_lowercase)
}

/// The deprecated `sub_legacy`: a hash of the user id (tied to the instance's secret).
fn sub_legacy(sub: &str) -> String {
    Sha256::digest(format!("fake-gitlab-instance:{sub}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Dialect for Gitlab {
    fn route(&self, method: &Method, path: &str) -> Option<Target> {
        let endpoint = match (method, path) {
            (&Method::Get, "/.well-known/openid-configuration") => Endpoint::Discovery,
            (&Method::Get, "/oauth/authorize") => Endpoint::Authorize,
            (&Method::Post, "/oauth/token") => Endpoint::Token,
            (&Method::Get | &Method::Post, "/oauth/userinfo") => Endpoint::Userinfo,
            (&Method::Get, "/oauth/discovery/keys") => Endpoint::Jwks,
            (&Method::Post, "/oauth/revoke") => Endpoint::Revoke,
            _ => return None,
        };
        Target::at(endpoint)
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            client_auth: vec![ClientAuth::Basic, ClientAuth::Post],
            refresh_tokens: RefreshTokens::Always,
            rotation: RefreshRotation::RotatedWithAccess,
            profile_in_userinfo_only: true,
            ..base_defaults()
        }
    }

    fn discovery(&self, d: &DiscoveryCtx<'_>) -> Value {
        let base = d.base;
        json!({
            "issuer": d.issuer,
            "authorization_endpoint": format!("{base}/oauth/authorize"),
            "token_endpoint": format!("{base}/oauth/token"),
            "revocation_endpoint": format!("{base}/oauth/revoke"),
            "introspection_endpoint": format!("{base}/oauth/introspect"),
            "userinfo_endpoint": format!("{base}/oauth/userinfo"),
            "jwks_uri": format!("{base}/oauth/discovery/keys"),
            "scopes_supported": ["api", "read_api", "read_user", "create_runner", "manage_runner", "k8s_proxy", "self_rotate", "read_repository", "write_repository", "read_registry", "write_registry", "read_virtual_registry", "write_virtual_registry", "read_observability", "write_observability", "ai_features", "sudo", "admin_mode", "read_service_ping", "openid", "profile", "email"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "grant_types_supported": ["authorization_code", "password", "client_credentials", "device_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": d.auth_methods,
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [d.alg],
            "claim_types_supported": ["normal"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "sub_legacy", "name", "nickname", "preferred_username", "email", "email_verified", "website", "profile", "picture", "groups", "groups_direct", "https://gitlab.org/claims/groups/owner", "https://gitlab.org/claims/groups/maintainer", "https://gitlab.org/claims/groups/developer"],
            "code_challenge_methods_supported": ["plain", "S256"],
        })
    }

    fn authorize_refused(&self, reason: &str) -> Raw {
        let code = if reason == "client_id" {
            "invalid_client"
        } else {
            "invalid_request"
        };
        html(
            Status::BadRequest,
            format!(
                "<!doctype html><html><body><h1>An error has occurred</h1><p>{}</p><p><code>{code}</code> ({reason})</p></body></html>",
                doorkeeper_text(code)
            ),
        )
    }

    fn check_authorize(
        &self,
        request: &super::dialect::AuthorizeRequest<'_>,
    ) -> Result<(), Box<Raw>> {
        if request.response_type != Some("code") {
            return Err(Box::new(self.authorize_refused("response_type")));
        }
        if !request.scope.split(' ').any(|s| s == "openid") {
            return Err(Box::new(self.authorize_refused("scope")));
        }
        match request.response_mode {
            None | Some("query" | "fragment" | "form_post") => Ok(()),
            Some(_) => Err(Box::new(self.authorize_refused("response_mode"))),
        }
    }

    fn strict_verifier(&self) -> bool {
        true
    }

    fn checks_refresh_redirect_uri(&self) -> bool {
        true
    }

    fn echoes_scope(&self) -> bool {
        false
    }

    fn denial(&self) -> Vec<(String, String)> {
        self.authorize_error("access_denied")
    }

    fn authorize_error(&self, code: &str) -> Vec<(String, String)> {
        vec![
            ("error".into(), code.to_owned()),
            ("error_description".into(), doorkeeper_text(code).into()),
        ]
    }

    fn code(&self) -> String {
        hex(32)
    }

    fn access_token(&self) -> String {
        hex(32)
    }

    fn refresh_token(&self) -> String {
        hex(32)
    }

    fn access_lifetime(&self) -> i64 {
        7200
    }

    fn token_answer(&self, issued: &Issued) -> Value {
        let mut answer = json!({
            "access_token": issued.access_token, "token_type": "bearer",
            "expires_in": issued.expires_in, "scope": issued.scope,
            "created_at": crate::clock::now(),
        });
        if let Some(refresh) = &issued.refresh_token {
            answer["refresh_token"] = json!(refresh);
        }
        if let Some(id_token) = &issued.id_token {
            answer["id_token"] = json!(id_token);
        }
        answer
    }

    fn token_error(&self, error: &TokenError) -> Raw {
        let (status, code) = match error {
            TokenError::InvalidClient | TokenError::MissingClientId => {
                (Status::Unauthorized, "invalid_client")
            }
            TokenError::CodeUnknown
            | TokenError::CodeUsed
            | TokenError::CodeExpired
            | TokenError::RedirectMismatch
            | TokenError::VerifierMismatch
            | TokenError::VerifierRefused
            | TokenError::RefreshInvalid => (Status::BadRequest, "invalid_grant"),
            TokenError::UnsupportedGrant => (Status::BadRequest, "unsupported_grant_type"),
            TokenError::RateLimited => return rate_limited(),
            TokenError::Injected(code) => {
                let status = if code == "invalid_client" {
                    Status::Unauthorized
                } else {
                    Status::BadRequest
                };
                return oauth_error(status, code, Some(doorkeeper_text(code)));
            }
        };
        oauth_error(status, code, Some(doorkeeper_text(code)))
    }

    fn id_token_claims(
        &self,
        claims: &mut Map<String, Value>,
        user: &FakeOidcUser,
        ctx: &ClaimsCtx<'_>,
    ) {
        let iat = claims.get("iat").cloned().unwrap_or_default();
        claims.insert("auth_time".into(), iat);
        claims.insert("sub_legacy".into(), json!(sub_legacy(&user.sub)));
        if let Some(email) = user.email.as_ref().filter(|_| ctx.has_scope("email")) {
            claims.insert("email".into(), json!(email));
            claims.insert("email_verified".into(), user.email_verified.clone());
        }
        claims.insert("groups_direct".into(), json!([]));
        if !ctx.profile_in_userinfo_only {
            let username = username(user);
            claims.insert("name".into(), json!(user.name));
            claims.insert("nickname".into(), json!(username));
            claims.insert("preferred_username".into(), json!(username));
            claims.insert("picture".into(), json!(user.picture));
        }
    }

    fn id_token_lifetime(&self) -> i64 {
        120
    }

    fn userinfo(&self, user: &FakeOidcUser, ctx: &ClaimsCtx<'_>) -> Value {
        let username = username(user);
        let mut info = json!({
            "sub": user.sub, "sub_legacy": sub_legacy(&user.sub), "name": user.name,
            "nickname": username, "preferred_username": username, "website": "",
            "profile": format!("{}/{username}", ctx.base), "picture": user.picture,
            "groups": [], "groups_direct": [],
        });
        if let Some(email) = user.email.as_ref().filter(|_| ctx.has_scope("email")) {
            info["email"] = json!(email);
            info["email_verified"] = user.email_verified.clone();
        }
        info
    }

    fn userinfo_error(&self, error: &UserinfoError) -> Raw {
        let description = match error {
            UserinfoError::RateLimited => return rate_limited(),
            UserinfoError::Injected(code) => {
                return oauth_error(Status::BadRequest, code, Some(doorkeeper_text(code)))
            }
            UserinfoError::Expired => "The access token expired",
            UserinfoError::Revoked => "The access token was revoked",
            UserinfoError::NoToken | UserinfoError::InvalidToken => "The access token is invalid",
        };
        let mut answer = oauth_error(Status::Unauthorized, "invalid_token", Some(description));
        answer.headers.push((
            "WWW-Authenticate",
            format!(r#"Bearer realm="Doorkeeper", error="invalid_token", error_description="{description}""#),
        ));
        answer
    }
}

/// GitLab's rate limit (Rack::Attack): 429, `Retry later`, with `RateLimit-*` headers.
fn rate_limited() -> Raw {
    let reset = crate::clock::now() + 60;
    Raw {
        status: Status::TooManyRequests,
        content_type: rocket::http::ContentType::Plain,
        body: "Retry later\n".into(),
        headers: vec![
            ("Retry-After", "60".into()),
            ("RateLimit-Limit", "600".into()),
            ("RateLimit-Observed", "601".into()),
            ("RateLimit-Remaining", "0".into()),
            ("RateLimit-Reset", reset.to_string()),
        ],
    }
}
