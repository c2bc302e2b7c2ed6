//! Sign in with Apple (web, Services ID): `response_mode=form_post` (required with the `name` and
//! `email` scopes) answered by a page whose form POSTs `code`, `state`, `id_token` and, on the
//! first authorization only, `user` (a JSON string with the name) to the `redirect_uri`,
//! cross-site; a client secret that is an ES256 JWT the client signs (checked as Apple checks
//! it); client credentials in the form only; Apple's bare `{"error": …}` bodies; RS256
//! `id_token`s with 10-character key ids, `nonce_supported`, and `email_verified` /
//! `is_private_email` as strings; a refresh token that never rotates; `/auth/revoke`.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use rocket::http::{Method, Status};
use rocket::serde::json::{json, Value};
use serde_json::Map;

use super::dialect::{
    base_defaults, html, AuthorizeRequest, ClaimsCtx, Defaults, Dialect, DiscoveryCtx, Endpoint,
    Issued, Target, TokenError,
};
use super::keys::{p256_pair, p256_public_jwk, random_alnum};
use super::{Call, ClientAuth, FakeOidc, FakeOidcUser, RefreshRotation, RefreshTokens};
use crate::clock::random_token;
use crate::testing::{json_answer, Raw};

/// The audience Apple requires in client secrets, wherever the fake is served.
const APPLE_AUDIENCE: &str = "https://appleid.apple.com";
/// The longest a client secret may live: six months (`exp` − `iat`, and `exp` − now).
const MAX_SECRET_LIFETIME: i64 = 15_777_000;

pub(super) struct Apple {
    team_id: String,
    key_id: String,
    /// The `.p8` the developer downloads: PKCS#8 PEM of a P-256 key.
    private_key_pem: String,
    decoding: DecodingKey,
}

impl FakeOidc {
    /// Sign in with Apple for one Services ID (`client_id`) of the team `team_id`; issuer the
    /// fake's URL, serving `/.well-known/openid-configuration`, `/auth/authorize`, `/auth/token`,
    /// `/auth/keys` and `/auth/revoke` (no userinfo). The fake makes the team's signing key:
    /// configure the client with [`apple_key_id`](Self::apple_key_id) and
    /// [`apple_private_key_pem`](Self::apple_private_key_pem). Client secrets must be ES256 JWTs
    /// with that `kid`, `iss` = the team id, `sub` = the client id, `aud` =
    /// `https://appleid.apple.com` (wherever the fake runs) and `exp` at most six months after
    /// `iat` and after now; else `invalid_client`. `redirect_uri`s on loopback over plain HTTP
    /// are accepted (Apple's are HTTPS domain names only).
    ///
    /// ```no_run
    /// use rocket_social_auth::testing::{FakeOidc, FakeOidcUser};
    ///
    /// # async fn demo() {
    /// let fake = FakeOidc::apple("com.example.web", "TEAM123456");
    /// fake.sign_in_as(FakeOidcUser::new(
    ///     "000930.4191829df9e342f1947b54f850ba1733.1224", "John Appleseed", "j@privaterelay.appleid.com",
    /// ));
    /// let key_id = fake.apple_key_id().unwrap().to_owned();
    /// let p8 = fake.apple_private_key_pem().unwrap().to_owned();
    /// let server = fake.clone().spawn().await.expect("fake Apple starts");
    /// // `kind = "apple"` with `issuer = server.url()`, `team_id`, `key_id`, `private_key = p8`.
    /// # let _ = (key_id, p8, server);
    /// # }
    /// ```
    pub fn apple(client_id: &str, team_id: &str) -> Self {
        let (private_key_pem, encoding): (String, EncodingKey) = p256_pair();
        let key_id = random_alnum(10).to_uppercase();
        let jwk = p256_public_jwk(&encoding, &key_id);
        let decoding = serde_json::from_value(jwk)
            .ok()
            .and_then(|jwk| DecodingKey::from_jwk(&jwk).ok())
            .expect("the public key of a fresh P-256 key");
        let dialect = Apple {
            team_id: team_id.to_owned(),
            key_id,
            private_key_pem,
            decoding,
        };
        FakeOidc::build(client_id, "", std::sync::Arc::new(dialect))
    }

    /// Apple only: the Key ID of the team's signing key (the `kid` of client secrets).
    pub fn apple_key_id(&self) -> Option<&str> {
        self.dialect.apple().map(|a| a.key_id.as_str())
    }

    /// Apple only: the team's signing key as the `.p8` file holds it (PKCS#8 PEM, P-256).
    pub fn apple_private_key_pem(&self) -> Option<&str> {
        self.dialect.apple().map(|a| a.private_key_pem.as_str())
    }
}

impl Apple {
    /// Checks a client secret as Apple does.
    fn check_secret(&self, client_id: &str, secret: &str) -> Result<(), TokenError> {
        let header = jsonwebtoken::decode_header(secret).map_err(|_| TokenError::InvalidClient)?;
        if header.alg != Algorithm::ES256 || header.kid.as_deref() != Some(self.key_id.as_str()) {
            return Err(TokenError::InvalidClient);
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[APPLE_AUDIENCE]);
        validation.set_issuer(&[&self.team_id]);
        validation.sub = Some(client_id.to_owned());
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Value>(secret, &self.decoding, &validation)
            .map_err(|_| TokenError::InvalidClient)?
            .claims;
        let (iat, exp) = (claims["iat"].as_i64(), claims["exp"].as_i64());
        let (Some(iat), Some(exp)) = (iat, exp) else {
            return Err(TokenError::InvalidClient);
        };
        if exp - iat > MAX_SECRET_LIFETIME || exp - crate::clock::now() > MAX_SECRET_LIFETIME {
            return Err(TokenError::InvalidClient);
        }
        Ok(())
    }
}

/// Apple's error body: `{"error": code}`, with a description for some.
fn apple_error(code: &str, description: Option<&str>) -> Raw {
    let mut body = json!({ "error": code });
    if let Some(description) = description {
        body["error_description"] = json!(description);
    }
    json_answer(Status::BadRequest, body)
}

fn apple_token(prefix: char) -> String {
    format!(
        "{prefix}{}.0.{}.{}",
        random_alnum(32).to_lowercase(),
        random_alnum(4).to_lowercase(),
        random_token(16)
    )
}

fn has(scope: &str, name: &str) -> bool {
    scope.split(' ').any(|s| s == name)
}

impl Dialect for Apple {
    fn apple(&self) -> Option<&Apple> {
        Some(self)
    }

    fn route(&self, method: &Method, path: &str) -> Option<Target> {
        let endpoint = match (method, path) {
            (&Method::Get, "/.well-known/openid-configuration") => Endpoint::Discovery,
            (&Method::Get, "/auth/authorize") => Endpoint::Authorize,
            (&Method::Post, "/auth/token") => Endpoint::Token,
            (&Method::Get, "/auth/keys") => Endpoint::Jwks,
            (&Method::Post, "/auth/revoke") => Endpoint::Revoke,
            _ => return None,
        };
        Target::at(endpoint)
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            client_auth: vec![ClientAuth::Post],
            refresh_tokens: RefreshTokens::Always,
            rotation: RefreshRotation::Kept,
            booleans_as_strings: true,
            ..base_defaults()
        }
    }

    fn discovery(&self, d: &DiscoveryCtx<'_>) -> Value {
        let base = d.base;
        json!({
            "issuer": d.issuer,
            "authorization_endpoint": format!("{base}/auth/authorize"),
            "token_endpoint": format!("{base}/auth/token"),
            "revocation_endpoint": format!("{base}/auth/revoke"),
            "jwks_uri": format!("{base}/auth/keys"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": [d.alg],
            "scopes_supported": ["openid", "email", "name"],
            "token_endpoint_auth_methods_supported": d.auth_methods,
            "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "is_private_email", "iss", "nonce", "nonce_supported", "real_user_status", "sub", "transfer_sub"],
        })
    }

    fn kid_len(&self) -> usize {
        10
    }

    fn authorize_refused(&self, reason: &str) -> Raw {
        let text = match reason {
            "client_id" => "invalid_client",
            "redirect_uri" => "Invalid redirect_uri",
            "form_post" => "response_mode must be form_post when name or email scope is requested.",
            "response_mode" => "Invalid response mode",
            "scope" => "invalid_scope",
            _ => "invalid_request",
        };
        html(
            Status::BadRequest,
            format!("<!doctype html><html><body><h1>Your request could not be completed because of an error.</h1><p>{text}</p></body></html>"),
        )
    }

    fn check_authorize(&self, request: &AuthorizeRequest<'_>) -> Result<(), Box<Raw>> {
        let mut types: Vec<&str> = request.response_type.unwrap_or("").split(' ').collect();
        types.sort_unstable();
        if types != ["code"] && types != ["code", "id_token"] {
            return Err(Box::new(self.authorize_refused("response_type")));
        }
        let scope = request.scope;
        if !scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .all(|s| matches!(s, "name" | "email" | "openid"))
        {
            return Err(Box::new(self.authorize_refused("scope")));
        }
        let mode = request.response_mode.unwrap_or("query");
        if (has(scope, "name") || has(scope, "email")) && mode != "form_post" {
            return Err(Box::new(self.authorize_refused("form_post")));
        }
        if !matches!(mode, "query" | "fragment" | "form_post")
            || (types.len() == 2 && mode == "query")
        {
            return Err(Box::new(self.authorize_refused("response_mode")));
        }
        Ok(())
    }

    fn echoes_scope(&self) -> bool {
        false
    }

    fn denial(&self) -> Vec<(String, String)> {
        vec![("error".into(), "user_cancelled_authorize".into())]
    }

    fn first_authorization(&self, user: &FakeOidcUser, scope: &str) -> Option<(String, String)> {
        if !has(scope, "name") && !has(scope, "email") {
            return None;
        }
        let mut value = Map::new();
        if has(scope, "name") {
            let name = user.name.clone().unwrap_or_default();
            let (first, last) = super::dialect::split_name(&name);
            value.insert("name".into(), json!({"firstName": first, "lastName": last}));
        }
        if let Some(email) = user.email.as_ref().filter(|_| has(scope, "email")) {
            value.insert("email".into(), json!(email));
        }
        Some(("user".into(), Value::Object(value).to_string()))
    }

    fn code(&self) -> String {
        apple_token('c')
    }

    fn code_lifetime(&self) -> i64 {
        300
    }

    fn access_token(&self) -> String {
        apple_token('a')
    }

    fn refresh_token(&self) -> String {
        apple_token('r')
    }

    fn access_lifetime(&self) -> i64 {
        3600
    }

    fn token_answer(&self, issued: &Issued) -> Value {
        let mut answer = json!({
            "access_token": issued.access_token, "token_type": "Bearer", "expires_in": issued.expires_in,
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
        match error {
            // Apple reportedly throttles repeated refresh-token checks as `invalid_client`.
            TokenError::InvalidClient | TokenError::MissingClientId | TokenError::RateLimited => {
                apple_error("invalid_client", None)
            }
            TokenError::CodeUnknown | TokenError::CodeExpired => apple_error(
                "invalid_grant",
                Some("The code has expired or has been revoked."),
            ),
            TokenError::CodeUsed => {
                apple_error("invalid_grant", Some("The code has already been used."))
            }
            TokenError::RedirectMismatch
            | TokenError::VerifierMismatch
            | TokenError::VerifierRefused
            | TokenError::RefreshInvalid => apple_error("invalid_grant", None),
            TokenError::UnsupportedGrant => apple_error("unsupported_grant_type", None),
            TokenError::Injected(code) => apple_error(code, None),
        }
    }

    fn id_token_claims(
        &self,
        claims: &mut Map<String, Value>,
        user: &FakeOidcUser,
        ctx: &ClaimsCtx<'_>,
    ) {
        let iat = claims.get("iat").cloned().unwrap_or_default();
        claims.insert("auth_time".into(), iat);
        if claims.contains_key("nonce") {
            claims.insert("nonce_supported".into(), json!(true));
        }
        if let Some(email) = user.email.as_ref().filter(|_| ctx.has_scope("email")) {
            let relay = email.ends_with("@privaterelay.appleid.com");
            claims.insert("email".into(), json!(email));
            claims.insert("email_verified".into(), user.email_verified.clone());
            claims.insert("is_private_email".into(), json!(relay));
        }
    }

    fn id_token_lifetime(&self) -> i64 {
        86_400
    }

    fn revoke_answer(&self) -> Raw {
        super::dialect::plain(Status::Ok, "")
    }

    fn authenticate(&self, call: &Call, client_id: &str) -> Option<Result<(), TokenError>> {
        let verdict = match (call.field("client_id"), call.field("client_secret")) {
            (Some(id), Some(secret)) if id == client_id => self.check_secret(client_id, secret),
            _ => Err(TokenError::InvalidClient),
        };
        Some(verdict)
    }
}
