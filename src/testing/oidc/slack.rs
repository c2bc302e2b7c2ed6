//! Sign in with Slack (OpenID Connect): errors as HTTP 200 with `"ok": false` (at the token
//! endpoint too), `ok: true` in every success, Slack's `https://slack.com/…` claims namespace
//! (team and user ids, images), subjects unique only within a workspace, a token endpoint that
//! takes a form or a JSON body, userinfo by GET or POST with the token as Bearer or a `token`
//! field, no PKCE, five-minute `id_token`s, and token rotation (12-hour access tokens, each
//! refresh revoking the previous refresh token) when the app enables it.

use rocket::http::{Method, Status};
use rocket::serde::json::{json, Value};
use serde_json::Map;

use super::dialect::{
    base_defaults, html, ClaimsCtx, Defaults, Dialect, DiscoveryCtx, Endpoint, Issued, Target,
    TokenError, UserinfoError,
};
use super::keys::random_alnum;
use super::{ClientAuth, FakeOidc, FakeOidcUser, RefreshRotation, RefreshTokens};
use crate::clock::now;
use crate::testing::{json_answer, Raw};

pub(super) struct Slack;

impl FakeOidc {
    /// Slack, issuer the fake's URL, serving `/.well-known/openid-configuration`,
    /// `/openid/connect/authorize`, `/api/openid.connect.token`, `/api/openid.connect.userInfo`
    /// and `/openid/connect/keys`. Give users a `U…` subject and, to test workspaces, a
    /// [`team`](FakeOidcUser::team). Token rotation (refresh tokens) after
    /// `set_refresh_tokens(RefreshTokens::Always)`.
    ///
    /// ```no_run
    /// use rocket_social_auth::testing::{FakeOidc, FakeOidcUser};
    ///
    /// # async fn demo() {
    /// let fake = FakeOidc::slack("25259531569.1115258246291", "slack-secret");
    /// fake.sign_in_as(FakeOidcUser::new("U0R7JM", "krane", "krane@slack-corp.example").team("T0R7GR"));
    /// let server = fake.clone().spawn().await.expect("fake Slack starts");
    /// // `kind = "slack"` with `issuer = server.url()`.
    /// # }
    /// ```
    pub fn slack(client_id: &str, client_secret: &str) -> Self {
        FakeOidc::build(client_id, client_secret, std::sync::Arc::new(Slack))
    }
}

const NS: &str = "https://slack.com/";

fn digits(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// `{"ok": false, "error": code}`, HTTP 200 as Slack answers (429 with `Retry-After` for
/// `ratelimited`).
fn slack_error(code: &str) -> Raw {
    let status = if code == "ratelimited" {
        Status::TooManyRequests
    } else {
        Status::Ok
    };
    let mut answer = json_answer(status, json!({"ok": false, "error": code}));
    if code == "ratelimited" {
        answer.headers.push(("Retry-After", "30".into()));
    }
    answer
}

fn team(user: &FakeOidcUser) -> &str {
    user.team_id.as_deref().unwrap_or("T0R7GR")
}

/// The namespaced claims of the user and their workspace.
fn slack_claims(user: &FakeOidcUser) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert(format!("{NS}user_id"), json!(user.sub));
    claims.insert(format!("{NS}team_id"), json!(team(user)));
    let avatar = user
        .picture
        .as_deref()
        .unwrap_or("https://a.slack-edge.example/avatar");
    for size in [24, 32, 48, 72, 192, 512] {
        claims.insert(
            format!("{NS}user_image_{size}"),
            json!(format!("{avatar}?s={size}")),
        );
    }
    for size in [34, 44, 68, 88, 102, 132, 230] {
        claims.insert(
            format!("{NS}team_image_{size}"),
            json!(format!("https://a.slack-edge.example/team_{size}.png")),
        );
    }
    claims.insert(format!("{NS}team_image_default"), json!(true));
    claims
}

impl Dialect for Slack {
    fn route(&self, method: &Method, path: &str) -> Option<Target> {
        let endpoint = match (method, path) {
            (&Method::Get, "/.well-known/openid-configuration") => Endpoint::Discovery,
            (&Method::Get, "/openid/connect/authorize") => Endpoint::Authorize,
            (&Method::Post, "/api/openid.connect.token") => Endpoint::Token,
            (&Method::Get | &Method::Post, "/api/openid.connect.userInfo") => Endpoint::Userinfo,
            (&Method::Get, "/openid/connect/keys") => Endpoint::Jwks,
            _ => return None,
        };
        Target::at(endpoint)
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            client_auth: vec![ClientAuth::Post, ClientAuth::Basic],
            refresh_tokens: RefreshTokens::Never,
            rotation: RefreshRotation::Rotated,
            ..base_defaults()
        }
    }

    fn discovery(&self, d: &DiscoveryCtx<'_>) -> Value {
        let base = d.base;
        json!({
            "issuer": d.issuer,
            "authorization_endpoint": format!("{base}/openid/connect/authorize"),
            "token_endpoint": format!("{base}/api/openid.connect.token"),
            "userinfo_endpoint": format!("{base}/api/openid.connect.userInfo"),
            "jwks_uri": format!("{base}/openid/connect/keys"),
            "scopes_supported": ["openid", "profile", "email"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [d.alg],
            "claims_supported": ["sub", "auth_time", "iss"],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": true,
            "token_endpoint_auth_methods_supported": d.auth_methods,
        })
    }

    fn authorize_refused(&self, reason: &str) -> Raw {
        html(
            Status::BadRequest,
            format!("<!doctype html><html><body><h1>There’s been a glitch…</h1><p>Invalid {reason}.</p></body></html>"),
        )
    }

    fn records_pkce(&self) -> bool {
        false
    }

    fn echoes_scope(&self) -> bool {
        false
    }

    fn code(&self) -> String {
        format!(
            "{}.{}.{}",
            digits(10),
            digits(13),
            random_alnum(64).to_lowercase()
        )
    }

    fn access_token(&self) -> String {
        format!(
            "xoxp-{}-{}-{}-{}",
            digits(10),
            digits(11),
            digits(13),
            random_alnum(32).to_lowercase()
        )
    }

    fn refresh_token(&self) -> String {
        format!("xoxe-1-{}", random_alnum(120))
    }

    fn access_lifetime(&self) -> i64 {
        43_200
    }

    fn accepts_json_body(&self) -> bool {
        true
    }

    fn token_answer(&self, issued: &Issued) -> Value {
        let mut answer =
            json!({"ok": true, "access_token": issued.access_token, "token_type": "Bearer"});
        if let Some(id_token) = &issued.id_token {
            answer["id_token"] = json!(id_token);
        }
        if let Some(refresh) = &issued.refresh_token {
            answer["refresh_token"] = json!(refresh);
            answer["expires_in"] = json!(issued.expires_in);
        }
        answer
    }

    fn token_error(&self, error: &TokenError) -> Raw {
        slack_error(match error {
            TokenError::InvalidClient => "bad_client_secret",
            TokenError::MissingClientId => "invalid_client_id",
            TokenError::CodeUnknown
            | TokenError::CodeUsed
            | TokenError::CodeExpired
            | TokenError::VerifierMismatch
            | TokenError::VerifierRefused => "invalid_code",
            TokenError::RedirectMismatch => "bad_redirect_uri",
            TokenError::RefreshInvalid => "invalid_refresh_token",
            TokenError::UnsupportedGrant => "invalid_grant_type",
            TokenError::RateLimited => "ratelimited",
            TokenError::Injected(code) => code,
        })
    }

    fn id_token_claims(
        &self,
        claims: &mut Map<String, Value>,
        user: &FakeOidcUser,
        _ctx: &ClaimsCtx<'_>,
    ) {
        let iat = claims.get("iat").cloned().unwrap_or_default();
        claims.insert("auth_time".into(), iat);
        claims.extend(slack_claims(user));
        claims.insert("email".into(), json!(user.email));
        claims.insert("email_verified".into(), user.email_verified.clone());
        claims.insert("date_email_verified".into(), json!(now() - 86_400 * 365));
        claims.insert("locale".into(), json!("en-US"));
        let name = user.name.clone().unwrap_or_default();
        let (given, family) = super::dialect::split_name(&name);
        claims.insert("name".into(), json!(name));
        claims.insert("given_name".into(), json!(given));
        claims.insert("family_name".into(), json!(family));
    }

    fn id_token_lifetime(&self) -> i64 {
        300
    }

    fn userinfo(&self, user: &FakeOidcUser, _ctx: &ClaimsCtx<'_>) -> Value {
        let name = user.name.clone().unwrap_or_default();
        let (given, family) = super::dialect::split_name(&name);
        let mut info = json!({
            "ok": true, "sub": user.sub, "email": user.email,
            "email_verified": user.email_verified, "date_email_verified": now() - 86_400 * 365,
            "name": name, "picture": user.picture, "given_name": given, "family_name": family,
            "locale": "en-US",
        });
        if let Some(map) = info.as_object_mut() {
            map.extend(slack_claims(user));
            map.insert(format!("{NS}team_name"), json!("Fake Workspace"));
            map.insert(format!("{NS}team_domain"), json!("fake-workspace"));
        }
        info
    }

    fn userinfo_token_field(&self) -> bool {
        true
    }

    fn userinfo_error(&self, error: &UserinfoError) -> Raw {
        slack_error(match error {
            UserinfoError::NoToken => "not_authed",
            UserinfoError::InvalidToken => "invalid_auth",
            UserinfoError::Revoked => "token_revoked",
            UserinfoError::Expired => "token_expired",
            UserinfoError::RateLimited => "ratelimited",
            UserinfoError::Injected(code) => code,
        })
    }
}
