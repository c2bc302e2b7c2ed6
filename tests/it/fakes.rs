//! The fake providers of `rocket_social_auth::testing` for Apple, Microsoft Entra ID, Discord,
//! GitLab, LinkedIn, Slack and X, driven over loopback HTTP as a client would: each one's happy
//! authorize → token → profile, and its documented error shapes and faults. (The clients' own
//! tests, against these fakes, are the proof that the library handles them.)

use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use rocket_social_auth::testing::{
    ClientAuth, DiscordFault, DiscordRateLimitScope, FakeDiscord, FakeDiscordUser, FakeOidc,
    FakeOidcUser, FakeServer, FakeX, FakeXUser, FormPost, OidcFault, RefreshTokens, SigningAlg,
    XFault, XFieldRefusal,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{http_client, now};

const REDIRECT: &str = "http://127.0.0.1:8000/auth/p/callback";

/// A provider's answer, read whole.
struct Answer {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    async fn read(response: reqwest::Response) -> Answer {
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("JSON, got {:?}", self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The query of the redirect's `Location`, in order.
    fn redirect_query(&self) -> Vec<(String, String)> {
        assert_eq!(
            self.status, 302,
            "a redirect, got {} {}",
            self.status, self.text
        );
        let location = url::Url::parse(self.header("location").unwrap()).unwrap();
        assert_eq!(
            format!(
                "{}{}",
                location.origin().ascii_serialization(),
                location.path()
            ),
            REDIRECT
        );
        location.query_pairs().into_owned().collect()
    }

    fn redirect_params(&self) -> HashMap<String, String> {
        self.redirect_query().into_iter().collect()
    }
}

async fn get(url: impl AsRef<str>) -> Answer {
    Answer::read(http_client().get(url.as_ref()).send().await.unwrap()).await
}

async fn get_bearer(url: &str, token: &str) -> Answer {
    Answer::read(
        http_client()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn post_form(url: &str, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> Answer {
    let mut request = http_client().post(url).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    Answer::read(request.send().await.unwrap()).await
}

/// A PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The payload of a JWT, unverified.
fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn header(jwt: &str) -> Value {
    let part = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Verifies `jwt` against the JWKS at `jwks_url` (the algorithm from the key's type) and
/// returns its claims.
async fn verified(jwt: &str, jwks_url: &str, audience: &str) -> Value {
    let jwks = get(jwks_url).await.json();
    let kid = header(jwt)["kid"].as_str().unwrap().to_owned();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the id_token's key is published")
        .clone();
    let alg = match jwk["kty"].as_str() {
        Some("EC") => Algorithm::ES256,
        _ => Algorithm::RS256,
    };
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).unwrap();
    let mut validation = Validation::new(alg);
    validation.set_audience(&[audience]);
    jsonwebtoken::decode::<Value>(jwt, &DecodingKey::from_jwk(&jwk).unwrap(), &validation)
        .expect("a valid id_token")
        .claims
}

async fn spawn_oidc(fake: &FakeOidc) -> FakeServer {
    fake.clone().spawn().await.unwrap()
}

/// An authorization request's URL.
fn authorize_url(endpoint: &str, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(endpoint).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    url.into()
}

// ---------------------------------------------------------------------------------------- GitLab

#[rocket::async_test]
async fn gitlab_code_flow_rotates_the_whole_pair() {
    let fake = FakeOidc::gitlab("gl-app", "gl-secret");
    fake.sign_in_as(FakeOidcUser::new("1234", "Jane Doe", "jane@example.com"));
    let server = spawn_oidc(&fake).await;
    let url = server.url();

    let discovery = get(&format!("{url}/.well-known/openid-configuration"))
        .await
        .json();
    assert_eq!(discovery["issuer"], url);
    assert_eq!(discovery["token_endpoint"], format!("{url}/oauth/token"));
    assert_eq!(
        discovery["revocation_endpoint"],
        format!("{url}/oauth/revoke")
    );
    assert_eq!(
        discovery["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        json!(["plain", "S256"])
    );

    let (verifier, challenge) = pkce();
    let authorize = get(&authorize_url(
        discovery["authorization_endpoint"].as_str().unwrap(),
        &[
            ("client_id", "gl-app"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid profile email"),
            ("state", "st"),
            ("nonce", "n-1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    ))
    .await;
    let q = authorize.redirect_params();
    assert_eq!(q["state"], "st");
    let code = &q["code"];
    let token_url = format!("{url}/oauth/token");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &verifier),
    ];
    let tokens = post_form(&token_url, &form, Some(("gl-app", "gl-secret"))).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let tokens = tokens.json();
    assert_eq!(tokens["token_type"], "bearer", "lower-case, as Doorkeeper");
    assert_eq!(tokens["expires_in"], 7200);
    assert!(tokens["created_at"].as_i64().unwrap() >= now() - 5);
    let id_token = tokens["id_token"].as_str().unwrap();
    let claims = verified(id_token, &format!("{url}/oauth/discovery/keys"), "gl-app").await;
    assert_eq!(claims["iss"], url);
    assert_eq!(claims["sub"], "1234", "the numeric id, as a string");
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["sub_legacy"].as_str().unwrap().len(), 64);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );
    assert!(claims.get("name").is_none(), "the profile is in userinfo");

    let access = tokens["access_token"].as_str().unwrap();
    let info = get_bearer(&format!("{url}/oauth/userinfo"), access)
        .await
        .json();
    assert_eq!(info["sub"], "1234");
    assert_eq!(info["nickname"], "jane");
    assert_eq!(info["name"], "Jane Doe");
    assert_eq!(info["profile"], format!("{url}/jane"));
    assert_eq!(info["groups"], json!([]));

    // Refresh: a new pair; the old refresh and access tokens die at once.
    let old_refresh = tokens["refresh_token"].as_str().unwrap();
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", old_refresh),
        ("redirect_uri", REDIRECT),
    ];
    let new = post_form(&token_url, &refresh, Some(("gl-app", "gl-secret")))
        .await
        .json();
    assert_ne!(new["refresh_token"], old_refresh);
    assert!(fake.is_valid_refresh_token(new["refresh_token"].as_str().unwrap()));
    let again = post_form(&token_url, &refresh, Some(("gl-app", "gl-secret"))).await;
    assert_eq!(
        (again.status, again.json()["error"].clone()),
        (400, json!("invalid_grant"))
    );
    let old_access = get_bearer(&format!("{url}/oauth/userinfo"), access).await;
    assert_eq!(old_access.status, 401);
    assert_eq!(
        old_access.header("www-authenticate"),
        Some(
            r#"Bearer realm="Doorkeeper", error="invalid_token", error_description="The access token was revoked""#
        )
    );
    assert_eq!(fake.refresh_calls(), 2);
}

#[rocket::async_test]
async fn gitlab_errors_are_doorkeepers() {
    let fake = FakeOidc::gitlab("gl-app", "gl-secret");
    fake.sign_in_as(FakeOidcUser::new("1234", "Jane Doe", "jane@example.com"));
    let server = spawn_oidc(&fake).await;
    let url = server.url();
    let start = |challenge: &str| {
        authorize_url(
            &format!("{url}/oauth/authorize"),
            &[
                ("client_id", "gl-app"),
                ("redirect_uri", REDIRECT),
                ("response_type", "code"),
                ("scope", "openid"),
                ("code_challenge", challenge),
                ("code_challenge_method", "plain"),
            ],
        )
    };
    let token_url = format!("{url}/oauth/token");

    // A verifier shorter than RFC 7636's 43 characters, even when it equals a plain challenge.
    let code = get(&start("too-short")).await.redirect_params()["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", "too-short"),
    ];
    let short = post_form(&token_url, &form, Some(("gl-app", "gl-secret"))).await;
    assert_eq!(short.status, 400);
    assert_eq!(short.json()["error_description"], "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.");

    let wrong = post_form(&token_url, &form, Some(("gl-app", "not-the-secret"))).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"], "invalid_client");

    fake.set_token_fault(Some(OidcFault::RateLimited));
    let limited = post_form(&token_url, &form, Some(("gl-app", "gl-secret"))).await;
    assert_eq!(
        (limited.status, limited.text.as_str()),
        (429, "Retry later\n")
    );
    assert_eq!(limited.header("retry-after"), Some("60"));
    fake.set_token_fault(None);

    fake.set_denied(true);
    let denied = get(&start(&pkce().1)).await.redirect_params();
    assert_eq!(denied["error"], "access_denied");
    assert_eq!(
        denied["error_description"],
        "The resource owner or authorization server denied the request."
    );
}

// -------------------------------------------------------------------------------------- LinkedIn

#[rocket::async_test]
async fn linkedin_posts_credentials_and_omits_the_nonce() {
    let fake = FakeOidc::linkedin("li-app", "li-secret");
    fake.sign_in_as(FakeOidcUser::new(
        "782bbtaQ",
        "John Doe",
        "doe@email.example",
    ));
    let server = spawn_oidc(&fake).await;
    let url = server.url();
    let issuer = format!("{url}/oauth");

    let discovery = get(&format!("{issuer}/.well-known/openid-configuration"))
        .await
        .json();
    assert_eq!(discovery["issuer"], issuer);
    assert!(discovery
        .get("token_endpoint_auth_methods_supported")
        .is_none());
    assert!(discovery.get("code_challenge_methods_supported").is_none());
    assert_eq!(discovery["subject_types_supported"], json!(["pairwise"]));
    assert_eq!(discovery["userinfo_endpoint"], format!("{url}/v2/userinfo"));

    let start = authorize_url(
        discovery["authorization_endpoint"].as_str().unwrap(),
        &[
            ("response_type", "code"),
            ("client_id", "li-app"),
            ("redirect_uri", REDIRECT),
            ("state", "st"),
            ("scope", "openid profile email"),
            ("nonce", "n-1"),
        ],
    );
    let token_url = discovery["token_endpoint"].as_str().unwrap().to_owned();
    let code = get(&start).await.redirect_params()["code"].clone();
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
    ];

    // HTTP Basic, what spec-following clients default to without advertised methods: refused.
    let basic = post_form(&token_url, &exchange, Some(("li-app", "li-secret"))).await;
    assert_eq!(basic.status, 400);
    assert_eq!(
        basic.json(),
        json!({"error": "invalid_request", "error_description": "A required parameter \"client_id\" is missing"})
    );
    // A code_verifier from a web app: refused.
    let verifier = pkce().0;
    let with_verifier = [
        exchange.as_slice(),
        &[
            ("client_id", "li-app"),
            ("client_secret", "li-secret"),
            ("code_verifier", &verifier),
        ],
    ]
    .concat();
    let refused = post_form(&token_url, &with_verifier, None).await;
    assert_eq!(
        (refused.status, refused.json()["error"].clone()),
        (401, json!("invalid_client"))
    );

    let post = [
        exchange.as_slice(),
        &[("client_id", "li-app"), ("client_secret", "li-secret")],
    ]
    .concat();
    let tokens = post_form(&token_url, &post, None).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let tokens = tokens.json();
    assert_eq!(tokens["scope"], "email,openid,profile");
    assert_eq!(tokens["expires_in"], 5183999);
    assert!(
        tokens.get("refresh_token").is_none(),
        "no refresh token for Sign-in apps"
    );
    let claims = verified(
        tokens["id_token"].as_str().unwrap(),
        discovery["jwks_uri"].as_str().unwrap(),
        "li-app",
    )
    .await;
    assert_eq!(claims["iss"], issuer);
    assert!(claims.get("nonce").is_none(), "LinkedIn sends no nonce");
    assert_eq!(claims["locale"], "en-US");

    let info = get_bearer(
        &format!("{url}/v2/userinfo"),
        tokens["access_token"].as_str().unwrap(),
    )
    .await
    .json();
    assert_eq!(
        info,
        json!({"sub": "782bbtaQ", "name": "John Doe", "given_name": "John", "family_name": "Doe", "picture": "https://lh3.example/782bbtaQ.png", "locale": "en-US", "email": "doe@email.example", "email_verified": true})
    );

    // Every code problem gets one text.
    let reused = post_form(&token_url, &post, None).await;
    assert_eq!(reused.status, 400);
    assert!(reused.json()["error_description"]
        .as_str()
        .unwrap()
        .starts_with(
            "Unable to retrieve access token: appid/redirect uri/code verifier does not match"
        ));
    let bad = get_bearer(&format!("{url}/v2/userinfo"), "AQX-not-a-token").await;
    assert_eq!(
        (bad.status, bad.json()),
        (
            401,
            json!({"status": 401, "serviceErrorCode": 65600, "code": "INVALID_ACCESS_TOKEN", "message": "Invalid access token"})
        )
    );

    fake.set_denied(true);
    let denied = get(&start).await.redirect_params();
    assert_eq!(denied["error"], "user_cancelled_login");
}

#[rocket::async_test]
async fn linkedin_quirks_strings_and_approved_refresh_tokens() {
    let fake = FakeOidc::linkedin("li-app", "li-secret");
    fake.set_booleans_as_strings(true);
    fake.set_refresh_tokens(RefreshTokens::Always);
    fake.sign_in_as(
        FakeOidcUser::new("782bbtaQ", "John Doe", "doe@email.example")
            .claim("locale", json!({"country": "US", "language": "en"})),
    );
    let server = spawn_oidc(&fake).await;
    let url = server.url();
    let start = authorize_url(
        &format!("{url}/oauth/v2/authorization"),
        &[
            ("response_type", "code"),
            ("client_id", "li-app"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid profile email"),
        ],
    );
    let code = get(&start).await.redirect_params()["code"].clone();
    let token_url = format!("{url}/oauth/v2/accessToken");
    let credentials = [("client_id", "li-app"), ("client_secret", "li-secret")];
    let exchange = [
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ],
        credentials.as_slice(),
    ]
    .concat();
    let tokens = post_form(&token_url, &exchange, None).await.json();
    let claims = payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["email_verified"], "true");
    assert_eq!(claims["locale"], json!({"country": "US", "language": "en"}));
    assert_eq!(tokens["refresh_token_expires_in"], 31536000);

    // The same refresh token comes back; its lifetime is not extended.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let again = post_form(
        &token_url,
        &[
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            credentials.as_slice(),
        ]
        .concat(),
        None,
    )
    .await
    .json();
    assert_eq!(again["refresh_token"], refresh);
    assert!(again["refresh_token_expires_in"].as_i64().unwrap() <= 31536000);
}

// ----------------------------------------------------------------------------------------- Slack

#[rocket::async_test]
async fn slack_json_token_request_and_namespaced_claims() {
    let fake = FakeOidc::slack("25259531569.1115258246291", "sl-secret");
    fake.sign_in_as(
        FakeOidcUser::new("U0R7JM", "krane", "krane@slack-corp.example").team("T0R7GR"),
    );
    let server = spawn_oidc(&fake).await;
    let url = server.url();

    let discovery = get(&format!("{url}/.well-known/openid-configuration"))
        .await
        .json();
    assert_eq!(
        discovery["claims_supported"],
        json!(["sub", "auth_time", "iss"])
    );
    assert_eq!(
        discovery["grant_types_supported"],
        json!(["authorization_code"])
    );
    assert!(discovery.get("code_challenge_methods_supported").is_none());
    assert_eq!(
        discovery["token_endpoint"],
        format!("{url}/api/openid.connect.token")
    );

    let start = authorize_url(
        &format!("{url}/openid/connect/authorize"),
        &[
            ("response_type", "code"),
            ("scope", "openid profile email"),
            ("client_id", "25259531569.1115258246291"),
            ("state", "st"),
            ("nonce", "n-1"),
            ("redirect_uri", REDIRECT),
        ],
    );
    let code = get(&start).await.redirect_params()["code"].clone();
    assert_eq!(code.split('.').count(), 3, "Slack's dotted codes");
    // Slack's token method takes JSON as well as a form.
    let body = json!({"client_id": "25259531569.1115258246291", "client_secret": "sl-secret", "code": code, "grant_type": "authorization_code", "redirect_uri": REDIRECT});
    let token_url = format!("{url}/api/openid.connect.token");
    let send_json = |body: Value| {
        let token_url = token_url.clone();
        async move {
            let request = http_client()
                .post(&token_url)
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
            Answer::read(request.send().await.unwrap()).await
        }
    };
    let tokens = send_json(body.clone()).await.json();
    assert_eq!(tokens["ok"], true);
    assert!(tokens["access_token"]
        .as_str()
        .unwrap()
        .starts_with("xoxp-"));
    assert!(
        tokens.get("refresh_token").is_none(),
        "no rotation unless enabled"
    );
    let claims = verified(
        tokens["id_token"].as_str().unwrap(),
        discovery["jwks_uri"].as_str().unwrap(),
        "25259531569.1115258246291",
    )
    .await;
    assert_eq!(claims["https://slack.com/team_id"], "T0R7GR");
    assert_eq!(claims["https://slack.com/user_id"], "U0R7JM");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    assert!(claims.get("picture").is_none());

    // userinfo by POST, the token in a form field.
    let access = tokens["access_token"].as_str().unwrap();
    let info = post_form(
        &format!("{url}/api/openid.connect.userInfo"),
        &[("token", access)],
        None,
    )
    .await
    .json();
    assert_eq!(info["ok"], true);
    assert_eq!(info["https://slack.com/team_domain"], "fake-workspace");
    assert_eq!(info["email_verified"], true);

    // Errors are HTTP 200 with ok: false, at the token endpoint too.
    let reused = send_json(body).await;
    assert_eq!(
        (reused.status, reused.json()),
        (200, json!({"ok": false, "error": "invalid_code"}))
    );
    let no_token = get(&format!("{url}/api/openid.connect.userInfo")).await;
    assert_eq!(
        (no_token.status, no_token.json()),
        (200, json!({"ok": false, "error": "not_authed"}))
    );
    let bad = get_bearer(&format!("{url}/api/openid.connect.userInfo"), "xoxp-nope").await;
    assert_eq!(bad.json()["error"], "invalid_auth");
    fake.expire_access_tokens();
    assert_eq!(
        get_bearer(&format!("{url}/api/openid.connect.userInfo"), access)
            .await
            .json()["error"],
        "token_expired"
    );
    fake.revoke_access_tokens();
    assert_eq!(
        get_bearer(&format!("{url}/api/openid.connect.userInfo"), access)
            .await
            .json()["error"],
        "token_revoked"
    );
    fake.set_userinfo_fault(Some(OidcFault::RateLimited));
    let limited = get_bearer(&format!("{url}/api/openid.connect.userInfo"), access).await;
    assert_eq!(
        (limited.status, limited.json()["error"].clone()),
        (429, json!("ratelimited"))
    );
    assert_eq!(limited.header("retry-after"), Some("30"));
    fake.set_token_fault(Some(OidcFault::Error("bad_redirect_uri".into())));
    let injected = send_json(json!({})).await;
    assert_eq!(
        (injected.status, injected.json()),
        (200, json!({"ok": false, "error": "bad_redirect_uri"}))
    );
}

#[rocket::async_test]
async fn slack_token_rotation_revokes_the_previous_refresh_token() {
    let fake = FakeOidc::slack("sl-app", "sl-secret");
    fake.set_refresh_tokens(RefreshTokens::Always);
    fake.sign_in_as(FakeOidcUser::new(
        "U0R7JM",
        "krane",
        "krane@slack-corp.example",
    ));
    let server = spawn_oidc(&fake).await;
    let url = server.url();
    let start = authorize_url(
        &format!("{url}/openid/connect/authorize"),
        &[
            ("response_type", "code"),
            ("scope", "openid"),
            ("client_id", "sl-app"),
            ("redirect_uri", REDIRECT),
        ],
    );
    let code = get(&start).await.redirect_params()["code"].clone();
    let token_url = format!("{url}/api/openid.connect.token");
    let tokens = post_form(
        &token_url,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
        Some(("sl-app", "sl-secret")),
    )
    .await
    .json();
    assert_eq!(tokens["expires_in"], 43200);
    let first = tokens["refresh_token"].as_str().unwrap();
    assert!(first.starts_with("xoxe-1-"));
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", first),
        ("client_id", "sl-app"),
        ("client_secret", "sl-secret"),
    ];
    let second = post_form(&token_url, &refresh, None).await.json();
    assert_eq!(second["ok"], true);
    assert_ne!(second["refresh_token"], first);
    let reused = post_form(&token_url, &refresh, None).await.json();
    assert_eq!(
        reused,
        json!({"ok": false, "error": "invalid_refresh_token"})
    );
    let wrong = post_form(
        &token_url,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first),
            ("client_id", "sl-app"),
            ("client_secret", "nope"),
        ],
        None,
    )
    .await
    .json();
    assert_eq!(wrong["error"], "bad_client_secret");
}

// ------------------------------------------------------------------------------------- Microsoft

#[rocket::async_test]
async fn microsoft_multi_tenant_discovery_and_jwks() {
    let fake = FakeOidc::microsoft("ms-app", "ms-secret");
    fake.set_tenant_domain(
        "contoso.onmicrosoft.com",
        "8eaef023-2b34-4da1-9baa-8bc8c9d6a490",
    );
    let server = spawn_oidc(&fake).await;
    let url = server.url();
    let discovery = |tenant: &str| {
        get(format!(
            "{url}/{tenant}/v2.0/.well-known/openid-configuration"
        ))
    };

    let common = discovery("common").await.json();
    assert_eq!(
        common["issuer"],
        format!("{url}/{{tenantid}}/v2.0"),
        "the templated issuer"
    );
    assert_eq!(
        common["authorization_endpoint"],
        format!("{url}/common/oauth2/v2.0/authorize")
    );
    assert_eq!(
        common["token_endpoint_auth_methods_supported"],
        json!([
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic"
        ])
    );
    assert!(common.get("code_challenge_methods_supported").is_none());
    assert_eq!(common["userinfo_endpoint"], format!("{url}/oidc/userinfo"));
    assert_eq!(
        discovery("organizations").await.json()["issuer"],
        format!("{url}/{{tenantid}}/v2.0")
    );
    assert_eq!(
        discovery("consumers").await.json()["issuer"],
        format!("{url}/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0")
    );
    assert_eq!(
        discovery("8eaef023-2b34-4da1-9baa-8bc8c9d6a490")
            .await
            .json()["issuer"],
        format!("{url}/8eaef023-2b34-4da1-9baa-8bc8c9d6a490/v2.0")
    );
    let by_domain = discovery("contoso.onmicrosoft.com").await.json();
    assert_eq!(
        by_domain["issuer"],
        format!("{url}/8eaef023-2b34-4da1-9baa-8bc8c9d6a490/v2.0"),
        "a domain names its tenant id"
    );
    assert_eq!(
        by_domain["token_endpoint"],
        format!("{url}/8eaef023-2b34-4da1-9baa-8bc8c9d6a490/oauth2/v2.0/token")
    );
    let unknown = discovery("nobody.example").await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json()["error_codes"], json!([90002]));

    let jwks = get(common["jwks_uri"].as_str().unwrap()).await.json();
    let key = &jwks["keys"][0];
    assert!(key.get("alg").is_none(), "Microsoft's keys have no alg");
    assert_eq!(key["issuer"], format!("{url}/{{tenantid}}/v2.0"));
    let certificate = STANDARD.decode(key["x5c"][0].as_str().unwrap()).unwrap();
    let thumbprint =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &certificate);
    assert_eq!(key["x5t"], URL_SAFE_NO_PAD.encode(thumbprint.as_ref()));
    let modulus = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    assert!(
        certificate.windows(modulus.len()).any(|w| w == modulus),
        "x5c certifies the same key"
    );
}

#[rocket::async_test]
async fn microsoft_id_token_names_the_users_tenant_and_refresh_tokens_replace_themselves() {
    let fake = FakeOidc::microsoft("ms-app", "ms-secret");
    let tid = "8eaef023-2b34-4da1-9baa-8bc8c9d6a490";
    fake.sign_in_as(
        FakeOidcUser::new(
            "87d349ed-44d7-43e1-9a83-5f2406dee5bd",
            "Adele Vance",
            "AdeleV@contoso.example",
        )
        .tenant(tid),
    );
    let server = spawn_oidc(&fake).await;
    let url = server.url();
    let (verifier, challenge) = pkce();
    let start = authorize_url(
        &format!("{url}/common/oauth2/v2.0/authorize"),
        &[
            ("client_id", "ms-app"),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("response_mode", "query"),
            ("scope", "openid profile email offline_access User.Read"),
            ("state", "st"),
            ("nonce", "n-1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let code = get(&start).await.redirect_params()["code"].clone();
    let token_url = format!("{url}/common/oauth2/v2.0/token");
    let credentials = [("client_id", "ms-app"), ("client_secret", "ms-secret")];
    let exchange = [
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("scope", "openid profile email offline_access"),
        ],
        credentials.as_slice(),
    ]
    .concat();
    let tokens = post_form(&token_url, &exchange, None).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let tokens = tokens.json();
    assert_eq!(tokens["scope"], "User.Read openid profile email");
    assert_eq!(tokens["ext_expires_in"], 3599);
    assert!(
        tokens["access_token"]
            .as_str()
            .unwrap()
            .starts_with("eyJ0eXAi"),
        "a JWT for Graph"
    );
    let claims = verified(
        tokens["id_token"].as_str().unwrap(),
        &format!("{url}/common/discovery/v2.0/keys"),
        "ms-app",
    )
    .await;
    assert_eq!(
        claims["iss"],
        format!("{url}/{tid}/v2.0"),
        "the template filled with tid"
    );
    assert_eq!(claims["tid"], tid);
    assert_eq!(claims["oid"], "87d349ed-44d7-43e1-9a83-5f2406dee5bd");
    assert_ne!(claims["sub"], claims["oid"], "sub is pairwise");
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(claims["email"], "AdeleV@contoso.example");
    assert!(
        claims.get("email_verified").is_none(),
        "Microsoft does not verify emails"
    );
    let info = get_bearer(
        &format!("{url}/oidc/userinfo"),
        tokens["access_token"].as_str().unwrap(),
    )
    .await
    .json();
    assert_eq!(info["sub"], claims["sub"]);

    // A new refresh token each time, and the old one still works.
    let first = tokens["refresh_token"].as_str().unwrap();
    let refresh = [
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first),
            ("scope", "openid offline_access"),
        ],
        credentials.as_slice(),
    ]
    .concat();
    let second = post_form(&token_url, &refresh, None).await.json();
    assert_ne!(second["refresh_token"], first);
    assert!(second["id_token"].is_string());
    assert_eq!(post_form(&token_url, &refresh, None).await.status, 200);

    fake.set_token_fault(Some(OidcFault::Error("AADSTS700082".into())));
    let expired = post_form(&token_url, &refresh, None).await;
    assert_eq!(expired.status, 400);
    let body = expired.json();
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"], json!([700082]));
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with("AADSTS700082: The refresh token has expired due to inactivity.")
    );
    assert!(description.contains("\r\nTrace ID: ") && description.contains("\r\nCorrelation ID: "));
    assert_eq!(
        body["error_uri"],
        "https://login.microsoftonline.com/error?code=700082"
    );
    fake.set_token_fault(Some(OidcFault::Error("AADSTS70002,70008".into())));
    let several = post_form(&token_url, &refresh, None).await;
    assert_eq!(
        (several.status, several.json()["error_codes"].clone()),
        (401, json!([70002, 70008]))
    );
    fake.set_token_fault(None);

    // Redeemed twice; a wrong secret.
    let reused = post_form(&token_url, &exchange, None).await.json();
    assert_eq!(reused["error_codes"], json!([54005]));
    let wrong = post_form(
        &token_url,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first),
            ("client_id", "ms-app"),
            ("client_secret", "nope"),
        ],
        None,
    )
    .await;
    assert_eq!(
        (wrong.status, wrong.json()["error"].clone()),
        (401, json!("invalid_client"))
    );
    let graph = get_bearer(&format!("{url}/oidc/userinfo"), "eyJ-not-one").await;
    assert_eq!(
        (graph.status, graph.json()["error"]["code"].clone()),
        (401, json!("InvalidAuthenticationToken"))
    );

    fake.set_denied(true);
    let denied = get(&start).await.redirect_params();
    assert_eq!(denied["error"], "access_denied");
    assert_eq!(
        denied["error_description"],
        "AADSTS65004: User declined to consent to access the app."
    );
}

// ----------------------------------------------------------------------------------------- Apple

const APPLE_CLIENT: &str = "com.example.web";
const APPLE_TEAM: &str = "TEAM123456";

/// A client secret as Apple specifies it, with `changes` applied to its claims.
fn apple_secret(fake: &FakeOidc, kid: Option<&str>, changes: Value) -> String {
    let mut claims = json!({"iss": APPLE_TEAM, "iat": now(), "exp": now() + 3600, "aud": "https://appleid.apple.com", "sub": APPLE_CLIENT});
    for (k, v) in changes.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.unwrap_or(fake.apple_key_id().unwrap()).to_owned());
    let key = EncodingKey::from_ec_pem(fake.apple_private_key_pem().unwrap().as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

async fn apple_authorize(url: &str, response_mode: &str) -> Answer {
    get(&authorize_url(
        &format!("{url}/auth/authorize"),
        &[
            ("client_id", APPLE_CLIENT),
            ("redirect_uri", REDIRECT),
            ("response_type", "code id_token"),
            ("response_mode", response_mode),
            ("scope", "name email"),
            ("state", "st"),
            ("nonce", "n-1"),
        ],
    ))
    .await
}

#[rocket::async_test]
async fn apple_form_post_sends_user_on_the_first_authorization_only() {
    let fake = FakeOidc::apple(APPLE_CLIENT, APPLE_TEAM);
    fake.sign_in_as(FakeOidcUser::new(
        "000930.4191829df9e342f1947b54f850ba1733.1224",
        "John Appleseed",
        "x7kq2@privaterelay.appleid.com",
    ));
    let server = spawn_oidc(&fake).await;
    let url = server.url();
    let discovery = get(&format!("{url}/.well-known/openid-configuration"))
        .await
        .json();
    assert_eq!(
        discovery["token_endpoint_auth_methods_supported"],
        json!(["client_secret_post"])
    );
    assert!(discovery.get("userinfo_endpoint").is_none());
    assert_eq!(
        discovery["revocation_endpoint"],
        format!("{url}/auth/revoke")
    );

    let page = apple_authorize(url, "form_post").await;
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(
        page.text
            .contains("<script>document.forms[0].submit();</script>"),
        "the page submits itself"
    );
    let post = FormPost::parse(&page.text).unwrap();
    assert_eq!(post.action, REDIRECT, "POSTed to the redirect_uri");
    assert_eq!(post.field("state"), Some("st"));
    let user: Value =
        serde_json::from_str(post.field("user").expect("user on the first authorization")).unwrap();
    assert_eq!(
        user,
        json!({"name": {"firstName": "John", "lastName": "Appleseed"}, "email": "x7kq2@privaterelay.appleid.com"})
    );
    let front = payload(post.field("id_token").unwrap());
    assert_eq!(front["c_hash"].as_str().unwrap().len(), 22);

    let code = post.field("code").unwrap().to_owned();
    let secret = apple_secret(&fake, None, json!({}));
    let token_url = format!("{url}/auth/token");
    let exchange = [
        ("client_id", APPLE_CLIENT),
        ("client_secret", secret.as_str()),
        ("code", code.as_str()),
        ("grant_type", "authorization_code"),
        ("redirect_uri", REDIRECT),
    ];
    let tokens = post_form(&token_url, &exchange, None).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let tokens = tokens.json();
    assert!(tokens.get("scope").is_none());
    assert_eq!(tokens["expires_in"], 3600);
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(header(id_token)["kid"].as_str().unwrap().len(), 10);
    let claims = verified(id_token, &format!("{url}/auth/keys"), APPLE_CLIENT).await;
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["nonce_supported"], true);
    assert_eq!(
        claims["email_verified"], "true",
        "strings, as Apple documents"
    );
    assert_eq!(claims["is_private_email"], "true");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        86400
    );
    assert!(claims.get("name").is_none(), "the name is only in `user`");

    // The second authorization has no `user`.
    let again = FormPost::parse(&apple_authorize(url, "form_post").await.text).unwrap();
    assert_eq!(again.field("user"), None);
    assert!(again.field("code").is_some());

    // Refresh: no new refresh token. Revoke: the refresh token is dead.
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let refresh = [
        ("client_id", APPLE_CLIENT),
        ("client_secret", secret.as_str()),
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    let refreshed = post_form(&token_url, &refresh, None).await.json();
    assert!(refreshed["access_token"].is_string());
    assert!(refreshed.get("refresh_token").is_none());
    let revoke = post_form(
        &format!("{url}/auth/revoke"),
        &[
            ("client_id", APPLE_CLIENT),
            ("client_secret", secret.as_str()),
            ("token", refresh_token),
            ("token_type_hint", "refresh_token"),
        ],
        None,
    )
    .await;
    assert_eq!((revoke.status, revoke.text.as_str()), (200, ""));
    assert_eq!(
        post_form(&token_url, &refresh, None).await.json(),
        json!({"error": "invalid_grant"})
    );
    assert_eq!(fake.revoke_calls(), 1);
}

#[rocket::async_test]
async fn apple_refuses_client_secrets_it_would_refuse() {
    let fake = FakeOidc::apple(APPLE_CLIENT, APPLE_TEAM);
    fake.sign_in_as(FakeOidcUser::new(
        "000930.4191829d",
        "John Appleseed",
        "j@example.com",
    ));
    let server = spawn_oidc(&fake).await;
    let url = server.url();
    let token_url = format!("{url}/auth/token");
    let code = FormPost::parse(&apple_authorize(url, "form_post").await.text)
        .unwrap()
        .field("code")
        .unwrap()
        .to_owned();
    let exchange = |secret: String| {
        let (token_url, code) = (token_url.clone(), code.clone());
        async move {
            let form = [
                ("client_id", APPLE_CLIENT),
                ("client_secret", secret.as_str()),
                ("code", code.as_str()),
                ("grant_type", "authorization_code"),
                ("redirect_uri", REDIRECT),
            ];
            post_form(&token_url, &form, None).await
        }
    };
    let invalid_client = json!({"error": "invalid_client"});
    let six_months = 15_777_000;
    for (why, secret) in [
        ("over six months", apple_secret(&fake, None, json!({"exp": now() + six_months + 60}))),
        ("iat to exp over six months", apple_secret(&fake, None, json!({"iat": now() - 60, "exp": now() + six_months}))),
        ("expired", apple_secret(&fake, None, json!({"iat": now() - 7200, "exp": now() - 3600}))),
        ("the fake's URL as audience", apple_secret(&fake, None, json!({"aud": url}))),
        ("another team", apple_secret(&fake, None, json!({"iss": "OTHERTEAM1"}))),
        ("another client", apple_secret(&fake, None, json!({"sub": "com.example.other"}))),
        ("another key id", apple_secret(&fake, Some("ABCDEFGHIJ"), json!({}))),
        ("HMAC", jsonwebtoken::encode(&Header::new(Algorithm::HS256), &json!({"iss": APPLE_TEAM, "iat": now(), "exp": now() + 60, "aud": "https://appleid.apple.com", "sub": APPLE_CLIENT}), &EncodingKey::from_secret(b"k")).unwrap()),
    ] {
        let answer = exchange(secret).await;
        assert_eq!((answer.status, answer.json()), (400, invalid_client.clone()), "{why}");
    }
    // HTTP Basic instead of the form: refused.
    let basic = post_form(
        &token_url,
        &[
            ("code", &code),
            ("grant_type", "authorization_code"),
            ("redirect_uri", REDIRECT),
        ],
        Some((APPLE_CLIENT, "secret")),
    )
    .await;
    assert_eq!(basic.json(), invalid_client);

    let good = apple_secret(&fake, None, json!({"exp": now() + six_months - 60}));
    assert_eq!(exchange(good.clone()).await.status, 200);
    assert_eq!(
        exchange(good.clone()).await.json(),
        json!({"error": "invalid_grant", "error_description": "The code has already been used."})
    );
    let next = FormPost::parse(&apple_authorize(url, "form_post").await.text)
        .unwrap()
        .field("code")
        .unwrap()
        .to_owned();
    fake.expire_codes();
    let form = [
        ("client_id", APPLE_CLIENT),
        ("client_secret", good.as_str()),
        ("code", next.as_str()),
        ("grant_type", "authorization_code"),
        ("redirect_uri", REDIRECT),
    ];
    assert_eq!(
        post_form(&token_url, &form, None).await.json(),
        json!({"error": "invalid_grant", "error_description": "The code has expired or has been revoked."})
    );
}

#[rocket::async_test]
async fn apple_authorization_errors() {
    let fake = FakeOidc::apple(APPLE_CLIENT, APPLE_TEAM);
    fake.sign_in_as(FakeOidcUser::new(
        "000930.4191829d",
        "John Appleseed",
        "j@example.com",
    ));
    let server = spawn_oidc(&fake).await;
    let url = server.url();
    let query = apple_authorize(url, "query").await;
    assert_eq!(query.status, 400);
    assert!(query
        .text
        .contains("response_mode must be form_post when name or email scope is requested."));

    fake.set_denied(true);
    let post = FormPost::parse(&apple_authorize(url, "form_post").await.text).unwrap();
    assert_eq!(
        post.fields,
        vec![
            ("error".to_owned(), "user_cancelled_authorize".to_owned()),
            ("state".to_owned(), "st".to_owned())
        ]
    );
}

// --------------------------------------------------------------------------- generic OIDC quirks

#[rocket::async_test]
async fn oidc_public_client_and_es256_id_tokens() {
    let fake = FakeOidc::generic("public-app", "unused");
    fake.set_client_auth(ClientAuth::None);
    fake.set_signing_alg(SigningAlg::Es256);
    fake.sign_in_as(FakeOidcUser::new("u1", "Ada", "ada@example.com"));
    let server = spawn_oidc(&fake).await;
    let url = server.url();
    let discovery = get(&format!("{url}/.well-known/openid-configuration"))
        .await
        .json();
    assert_eq!(
        discovery["token_endpoint_auth_methods_supported"],
        json!(["none"])
    );
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );

    let (verifier, challenge) = pkce();
    let code = |challenge: Option<&str>| {
        let mut params = vec![
            ("client_id", "public-app"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
        ];
        if let Some(c) = challenge {
            params.extend([("code_challenge", c), ("code_challenge_method", "S256")]);
        }
        authorize_url(&format!("{url}/authorize"), &params)
    };
    let token_url = format!("{url}/token");
    let c1 = get(&code(Some(&challenge))).await.redirect_params()["code"].clone();
    let with_secret = post_form(
        &token_url,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c1),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("client_id", "public-app"),
            ("client_secret", "unused"),
        ],
        None,
    )
    .await;
    assert_eq!(
        (with_secret.status, with_secret.json()["error"].clone()),
        (401, json!("invalid_client"))
    );
    let public = post_form(
        &token_url,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c1),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("client_id", "public-app"),
        ],
        None,
    )
    .await;
    assert_eq!(public.status, 200, "{}", public.text);
    let id_token = public.json()["id_token"].as_str().unwrap().to_owned();
    assert_eq!(header(&id_token)["alg"], "ES256");
    let jwks = get(&format!("{url}/certs")).await.json();
    let ec = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kty"] == "EC")
        .unwrap();
    assert!(ec.get("alg").is_none(), "the EC key has no alg");
    verified(&id_token, &format!("{url}/certs"), "public-app").await;

    // Without PKCE a public client has nothing to prove itself with.
    let c2 = get(&code(None)).await.redirect_params()["code"].clone();
    let bare = post_form(
        &token_url,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c2),
            ("redirect_uri", REDIRECT),
            ("client_id", "public-app"),
        ],
        None,
    )
    .await;
    assert_eq!(bare.status, 401);

    fake.omit_discovery_field("token_endpoint_auth_methods_supported");
    let omitted = get(&format!("{url}/.well-known/openid-configuration"))
        .await
        .json();
    assert!(omitted
        .get("token_endpoint_auth_methods_supported")
        .is_none());
}

// --------------------------------------------------------------------------------------- Discord

#[rocket::async_test]
async fn discord_code_flow_user_and_rotation() {
    let fake = FakeDiscord::new("1234567890", "dc-secret");
    fake.sign_in_as(
        FakeDiscordUser::new("80351110224678912", "nelly")
            .global_name("Nelly")
            .avatar("8342729096ea3675442027381ff50dfe")
            .email("nelly@discord.example", true),
    );
    let server = fake.clone().spawn().await.unwrap();
    let url = server.url();
    let (verifier, challenge) = pkce();
    let start = authorize_url(
        &format!("{url}/api/oauth2/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", "1234567890"),
            ("scope", "identify email"),
            ("state", "st"),
            ("redirect_uri", REDIRECT),
            ("prompt", "none"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let code = get(&start).await.redirect_params()["code"].clone();
    let token_url = format!("{url}/api/oauth2/token");
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &verifier),
    ];
    let tokens = post_form(&token_url, &exchange, Some(("1234567890", "dc-secret"))).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    assert!(tokens.header("x-ratelimit-bucket").is_some());
    let tokens = tokens.json();
    assert_eq!(
        (tokens["expires_in"].clone(), tokens["scope"].clone()),
        (json!(604800), json!("identify email"))
    );
    let access = tokens["access_token"].as_str().unwrap();
    let me = get_bearer(&format!("{url}/api/v10/users/@me"), access)
        .await
        .json();
    assert_eq!(me["id"], "80351110224678912", "a string snowflake");
    assert_eq!(
        (me["global_name"].clone(), me["discriminator"].clone()),
        (json!("Nelly"), json!("0"))
    );
    assert_eq!(
        (me["verified"].clone(), me["email"].clone()),
        (json!(true), json!("nelly@discord.example"))
    );
    assert_eq!(me["avatar"], "8342729096ea3675442027381ff50dfe");

    // A refresh token works once.
    let old = tokens["refresh_token"].as_str().unwrap();
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", old),
        ("client_id", "1234567890"),
        ("client_secret", "dc-secret"),
    ];
    let new = post_form(&token_url, &refresh, None).await.json();
    assert_ne!(new["refresh_token"], old);
    let reused = post_form(&token_url, &refresh, None).await;
    assert_eq!(
        (reused.status, reused.text.as_str()),
        (
            400,
            r#"{"error": "invalid_grant", "error_description": "Invalid \"refresh_token\" in request"}"#
        )
    );
    // Revoking one token revokes the whole authorization.
    let revoke = post_form(
        &format!("{url}/api/oauth2/token/revoke"),
        &[
            ("token", new["access_token"].as_str().unwrap()),
            ("token_type_hint", "access_token"),
        ],
        Some(("1234567890", "dc-secret")),
    )
    .await;
    assert_eq!(revoke.status, 200);
    assert!(!fake.is_valid_refresh_token(new["refresh_token"].as_str().unwrap()));
}

#[rocket::async_test]
async fn discord_errors_and_rate_limits() {
    let fake = FakeDiscord::new("1234567890", "dc-secret");
    fake.sign_in_as(FakeDiscordUser::new("80351110224678912", "nelly"));
    let server = fake.clone().spawn().await.unwrap();
    let url = server.url();
    let token_url = format!("{url}/api/oauth2/token");
    let start = |challenge: &str| {
        authorize_url(
            &format!("{url}/oauth2/authorize"),
            &[
                ("response_type", "code"),
                ("client_id", "1234567890"),
                ("scope", "identify"),
                ("redirect_uri", REDIRECT),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ],
        )
    };
    let short = "short-verifier";
    let short_challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(short.as_bytes()));
    let code = get(&start(&short_challenge)).await.redirect_params()["code"].clone();
    let too_short = post_form(
        &token_url,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", short),
        ],
        Some(("1234567890", "dc-secret")),
    )
    .await;
    assert_eq!(
        too_short.text,
        r#"{"error": "invalid_request", "error_description": "Invalid \"code_verifier\""}"#
    );
    let reused = post_form(
        &token_url,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
        Some(("1234567890", "dc-secret")),
    )
    .await;
    assert_eq!(
        (reused.status, reused.text.as_str()),
        (
            400,
            r#"{"error": "invalid_grant", "error_description": "Invalid \"code\" in request."}"#
        )
    );
    let json_body = Answer::read(
        http_client()
            .post(&token_url)
            .basic_auth("1234567890", Some("dc-secret"))
            .header(CONTENT_TYPE, "application/json")
            .body(r#"{"grant_type":"authorization_code"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(json_body.status, 400, "JSON bodies are refused");
    let wrong = post_form(
        &token_url,
        &[("grant_type", "refresh_token"), ("refresh_token", "x")],
        Some(("1234567890", "nope")),
    )
    .await;
    assert_eq!(
        (wrong.status, wrong.text.as_str()),
        (401, r#"{"error": "invalid_client"}"#)
    );

    // Without the email scope: neither email nor verified.
    let (verifier, challenge) = pkce();
    let code = get(&start(&challenge)).await.redirect_params()["code"].clone();
    let tokens = post_form(
        &token_url,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
        Some(("1234567890", "dc-secret")),
    )
    .await
    .json();
    let access = tokens["access_token"].as_str().unwrap();
    let me = get_bearer(&format!("{url}/api/users/@me"), access)
        .await
        .json();
    assert!(me.get("email").is_none() && me.get("verified").is_none());
    assert!(me["avatar"].is_null() && me["global_name"].is_null());
    let bad = get_bearer(&format!("{url}/api/users/@me"), "nope").await;
    assert_eq!(
        (bad.status, bad.text.as_str()),
        (401, r#"{"message": "401: Unauthorized", "code": 0}"#)
    );

    fake.set_fault(Some(DiscordFault::UserRateLimited {
        scope: DiscordRateLimitScope::User,
        retry_after: 64.57,
    }));
    let limited = get_bearer(&format!("{url}/api/users/@me"), access).await;
    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.json(),
        json!({"message": "You are being rate limited.", "retry_after": 64.57, "global": false})
    );
    assert_eq!(
        (
            limited.header("retry-after"),
            limited.header("x-ratelimit-scope")
        ),
        (Some("65"), Some("user"))
    );
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    fake.set_fault(Some(DiscordFault::TokenRateLimited {
        scope: DiscordRateLimitScope::Global,
        retry_after: 0.5,
    }));
    let global = post_form(
        &token_url,
        &[("grant_type", "refresh_token")],
        Some(("1234567890", "dc-secret")),
    )
    .await;
    assert_eq!(
        (global.status, global.header("x-ratelimit-global")),
        (429, Some("true"))
    );
    assert_eq!(global.json()["global"], true);

    fake.set_fault(Some(DiscordFault::Denied));
    let denied = get(&start(&challenge)).await.redirect_params();
    assert_eq!(denied["error"], "access_denied");
}

// --------------------------------------------------------------------------------------------- X

#[rocket::async_test]
async fn x_requires_pkce_and_basic_and_rotates_refresh_tokens() {
    let fake = FakeX::new("x-client", "x-secret");
    fake.sign_in_as(
        FakeXUser::new("2244994945", "X Developers", "xdevelopers").email("dev@x.example"),
    );
    let server = fake.clone().spawn().await.unwrap();
    let url = server.url();
    let (verifier, challenge) = pkce();
    let scope = "tweet.read users.read users.email offline.access";
    let base = [
        ("response_type", "code"),
        ("client_id", "x-client"),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "st"),
    ];
    let no_pkce = get(&authorize_url(&format!("{url}/i/oauth2/authorize"), &base)).await;
    assert_eq!(no_pkce.status, 400, "PKCE is required");
    let with = [
        base.as_slice(),
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    ]
    .concat();
    let authorize = get(&authorize_url(&format!("{url}/i/oauth2/authorize"), &with)).await;
    let query = authorize.redirect_query();
    assert_eq!(
        query[0],
        ("state".to_owned(), "st".to_owned()),
        "X sends state first"
    );
    let code = query[1].1.clone();

    let token_url = format!("{url}/2/oauth2/token");
    let exchange = [
        ("code", code.as_str()),
        ("grant_type", "authorization_code"),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &verifier),
        ("client_id", "x-client"),
    ];
    let public = post_form(&token_url, &exchange, None).await;
    assert_eq!(
        (public.status, public.json()),
        (
            401,
            json!({"error": "unauthorized_client", "error_description": "Missing valid authorization header"})
        )
    );
    let tokens = post_form(&token_url, &exchange, Some(("x-client", "x-secret")))
        .await
        .json();
    assert_eq!(
        (
            tokens["token_type"].clone(),
            tokens["expires_in"].clone(),
            tokens["scope"].clone()
        ),
        (json!("bearer"), json!(7200), json!(scope))
    );

    let access = tokens["access_token"].as_str().unwrap();
    let me = get_bearer(
        &format!("{url}/2/users/me?user.fields=profile_image_url,confirmed_email"),
        access,
    )
    .await;
    assert_eq!(me.header("x-rate-limit-limit"), Some("75"));
    assert_eq!(
        me.json()["data"],
        json!({"id": "2244994945", "name": "X Developers", "username": "xdevelopers", "profile_image_url": "https://pbs.twimg.example/profile_images/2244994945/avatar_normal.jpg", "confirmed_email": "dev@x.example"})
    );
    let plain = get_bearer(&format!("{url}/2/users/me"), access)
        .await
        .json();
    assert_eq!(
        plain,
        json!({"data": {"id": "2244994945", "name": "X Developers", "username": "xdevelopers"}})
    );

    let old = tokens["refresh_token"].as_str().unwrap();
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", old)];
    let new = post_form(&token_url, &refresh, Some(("x-client", "x-secret")))
        .await
        .json();
    assert_ne!(new["refresh_token"], old);
    let reused = post_form(&token_url, &refresh, Some(("x-client", "x-secret"))).await;
    assert_eq!(
        (reused.status, reused.json()["error_description"].clone()),
        (400, json!("Value passed for the token was invalid."))
    );
    let code_again = post_form(&token_url, &exchange, Some(("x-client", "x-secret"))).await;
    assert_eq!(
        code_again.json()["error_description"],
        "Value passed for the authorization code was invalid."
    );
}

#[rocket::async_test]
async fn x_problems_and_rate_limits() {
    let fake = FakeX::new("x-client", "x-secret");
    fake.sign_in_as(
        FakeXUser::new("2244994945", "X Developers", "xdevelopers").email("dev@x.example"),
    );
    let server = fake.clone().spawn().await.unwrap();
    let url = server.url();
    let (verifier, challenge) = pkce();
    // Without offline.access and users.email.
    let start = authorize_url(
        &format!("{url}/i/oauth2/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", "x-client"),
            ("redirect_uri", REDIRECT),
            ("scope", "tweet.read users.read"),
            ("state", "st"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let code = get(&start).await.redirect_params()["code"].clone();
    let tokens = post_form(
        &format!("{url}/2/oauth2/token"),
        &[
            ("code", &code),
            ("grant_type", "authorization_code"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
        Some(("x-client", "x-secret")),
    )
    .await
    .json();
    assert!(
        tokens.get("refresh_token").is_none(),
        "refresh tokens only with offline.access"
    );
    let access = tokens["access_token"].as_str().unwrap();
    let me = format!("{url}/2/users/me");
    let email = format!("{me}?user.fields=confirmed_email");

    let refused = get_bearer(&email, access).await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.json()["type"],
        "https://api.x.com/2/problems/field-unauthorized"
    );
    fake.set_field_refusal(XFieldRefusal::PartialErrors);
    let partial = get_bearer(&email, access).await;
    assert_eq!(partial.status, 200);
    let partial = partial.json();
    assert!(partial["data"].get("confirmed_email").is_none());
    assert_eq!(partial["errors"][0]["field"], "confirmed_email");
    let unknown = get_bearer(&format!("{me}?user.fields=shoe_size"), access).await;
    assert_eq!(
        (unknown.status, unknown.json()["type"].clone()),
        (400, json!("https://api.x.com/2/problems/invalid-request"))
    );

    let bad = get_bearer(&me, "nope").await;
    assert_eq!(bad.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        (bad.status, bad.json()),
        (
            401,
            json!({"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"})
        )
    );

    fake.set_fault(Some(XFault::UserRateLimitedV1));
    assert_eq!(
        get_bearer(&me, access).await.json(),
        json!({"errors": [{"code": 88, "message": "Rate limit exceeded"}]})
    );
    fake.set_fault(Some(XFault::UserProblem(403, "client-forbidden".into())));
    let forbidden = get_bearer(&me, access).await;
    assert_eq!(
        (forbidden.status, forbidden.json()["type"].clone()),
        (403, json!("https://api.x.com/2/problems/client-forbidden"))
    );
    fake.set_fault(None);

    // The per-user limit: over it, a 429 in the v2 shape with x-rate-limit-remaining 0.
    // Counted so far: the three calls that reached the profile.
    fake.set_user_rate_limit(3);
    let over = get_bearer(&me, access).await;
    assert_eq!(
        (over.status, over.header("x-rate-limit-remaining")),
        (429, Some("0"))
    );
    assert_eq!(over.json()["title"], "Too Many Requests");
}
