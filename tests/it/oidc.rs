//! Google and a generic OpenID Connect provider against fake OpenID providers on loopback:
//! discovery, the code flow with state, nonce and PKCE, every `id_token` check, userinfo,
//! refresh, and a provider that is down.

use rocket::http::Status;
use rocket::local::asynchronous::Client;
use rocket_social_auth::testing::{ClientAuth, FakeOidc, FakeOidcUser, FakeServer, IdTokenFault};
use serde_json::{json, Value};

use crate::common::*;
use crate::db_tests;

db_tests!(
    google_signs_in_with_a_verified_id_token,
    google_offline_refresh_keeps_the_refresh_token,
    generic_oidc_provider_with_client_secret_post,
);

const G_CLIENT: &str = "g-client.apps.example";
const G_SECRET: &str = "g-secret";

struct Oidc {
    fake: FakeOidc,
    server: FakeServer,
}

async fn google() -> Oidc {
    let fake = FakeOidc::google(G_CLIENT, G_SECRET);
    fake.sign_in_as(FakeOidcUser::new(
        "1098765432",
        "Ada Lovelace",
        "ada@gmail.example",
    ));
    let server = fake.clone().spawn().await.unwrap();
    Oidc { fake, server }
}

fn google_toml(p: &Oidc, extra: &str) -> String {
    format!(
        "[social_auth.providers.google]\nclient_id = \"{G_CLIENT}\"\nclient_secret = \"{G_SECRET}\"\nissuer = \"{}\"\n{extra}",
        p.server.url()
    )
}

/// Walks a login with `provider` in `client`; returns the callback's status and JSON body.
pub async fn login_with(client: &Client, provider: &str) -> (Status, Value) {
    let start = client.get(format!("/auth/{provider}")).dispatch().await;
    if start.status() != Status::SeeOther {
        let status = start.status();
        return (status, json(start).await);
    }
    let location = start.headers().get_one("Location").unwrap().to_owned();
    drop(start);
    let callback = provider_redirect(&location).await;
    let done = client.get(callback).header(accept_json()).dispatch().await;
    let status = done.status();
    let body = done.into_string().await.unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn google_signs_in_with_a_verified_id_token(db: TestDb) {
    let g = google().await;
    let app = TestApp::start_with(db, &google_toml(&g, "")).await;
    assert_eq!(
        g.fake.discovery_calls(),
        1,
        "discovery is fetched at launch"
    );

    let start = app.client.get("/auth/google").dispatch().await;
    let location = url::Url::parse(start.headers().get_one("Location").unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(location.path(), "/authorize");
    assert_eq!(q["client_id"], G_CLIENT);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(
        q["redirect_uri"],
        "http://127.0.0.1:8000/auth/google/callback"
    );
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["nonce"].len() >= 32 && q["state"].len() >= 32);
    assert!(!q.contains_key("access_type"), "not offline unless asked");
    drop(start);

    let (status, _) = login_with(&app.client, "google").await;
    assert_eq!(status, Status::SeeOther);
    let session = json(app.client.get("/auth/session").dispatch().await).await;
    assert_eq!(session["provider"], "google");
    assert_eq!(session["user"]["name"], "Ada Lovelace");
    assert_eq!(session["user"]["email"], "ada@gmail.example");
    assert_eq!(
        session["user"]["avatar_url"],
        "https://lh3.example/1098765432.png"
    );
    let pool = app.db.pool().await;
    let (social_id, token): (String, String) =
        sqlx::query_as("SELECT social_id, token FROM social_users WHERE provider = 'google'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(social_id, "1098765432", "keyed on sub");
    assert!(token.starts_with("v1."));
    assert!(plain_token(&app.client).await.starts_with("ya29."));
    assert_eq!(g.fake.discovery_calls(), 1, "discovery is cached");
}

async fn google_offline_refresh_keeps_the_refresh_token(db: TestDb) {
    let g = google().await;
    let app = TestApp::start_with(
        db,
        &google_toml(
            &g,
            "offline = true\n[social_auth]\nexpose_refresh_token = true\n",
        ),
    )
    .await;
    let start = app.client.get("/auth/google").dispatch().await;
    let location = start.headers().get_one("Location").unwrap().to_owned();
    assert!(location.contains("access_type=offline") && location.contains("prompt=consent"));
    drop(start);
    assert_eq!(login_with(&app.client, "google").await.0, Status::SeeOther);
    let refresh_token = json(app.client.get("/auth/refresh_token").dispatch().await).await
        ["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(refresh_token.starts_with("1//"));
    let before = plain_token(&app.client).await;
    let r = app.client.post("/auth/google/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    assert_ne!(
        plain_token(&app.client).await,
        before,
        "new access token stored"
    );
    let kept = json(app.client.get("/auth/refresh_token").dispatch().await).await;
    assert_eq!(
        kept["refresh_token"],
        refresh_token.as_str(),
        "Google sends no new refresh token: the old one is kept"
    );

    g.fake.revoke_refresh_tokens();
    let r = app.client.post("/auth/google/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Unauthorized);
    assert_eq!(json(r).await, json!({"status": "reauthenticate"}));
}

async fn generic_oidc_provider_with_client_secret_post(db: TestDb) {
    let fake = FakeOidc::generic("gitlab-client", "gitlab-secret");
    fake.set_client_auth(ClientAuth::Post);
    fake.sign_in_as(FakeOidcUser::new(
        "42",
        "Grace Hopper",
        "grace@gitlab.example",
    ));
    let server = fake.clone().spawn().await.unwrap();
    let extra = format!(
        "[social_auth.providers.gitlab]\nkind = \"oidc\"\nissuer = \"{}\"\nclient_id = \"gitlab-client\"\nclient_secret = \"gitlab-secret\"\noffline = true\n",
        server.url()
    );
    let app = TestApp::start_with(db, &extra).await;
    let start = app.client.get("/auth/gitlab").dispatch().await;
    let location = start.headers().get_one("Location").unwrap().to_owned();
    assert!(
        location.contains("scope=openid+email+profile+offline_access"),
        "{location}"
    );
    assert!(location.contains("prompt=consent") && !location.contains("access_type"));
    drop(start);
    assert_eq!(login_with(&app.client, "gitlab").await.0, Status::SeeOther);
    let session = json(app.client.get("/auth/session").dispatch().await).await;
    assert_eq!(
        (
            session["provider"].as_str(),
            session["user"]["name"].as_str()
        ),
        (Some("gitlab"), Some("Grace Hopper"))
    );
    let r = app.client.post("/auth/gitlab/refresh").dispatch().await;
    assert_eq!(
        r.status(),
        Status::Ok,
        "offline_access gave a refresh token"
    );
    // A legacy scheme-less `iss` is Google's alone.
    fake.set_legacy_issuer(true);
    let (status, body) = login_with(&app.client, "gitlab").await;
    assert_eq!(status, Status::BadGateway, "{body}");
}

#[rocket::async_test]
async fn every_id_token_check() {
    let g = google().await;
    let app = TestApp::start_with(TestDb::sqlite().await, &google_toml(&g, "")).await;
    let cases = [
        (
            IdTokenFault::WrongAudience,
            Status::BadGateway,
            "provider_error",
        ),
        (
            IdTokenFault::ForeignAuthorizedParty,
            Status::BadGateway,
            "provider_error",
        ),
        (
            IdTokenFault::WrongNonce,
            Status::BadRequest,
            "nonce_mismatch",
        ),
        (IdTokenFault::Expired, Status::BadGateway, "provider_error"),
        (
            IdTokenFault::IssuedInTheFuture,
            Status::BadGateway,
            "provider_error",
        ),
        (
            IdTokenFault::WrongIssuer,
            Status::BadGateway,
            "provider_error",
        ),
        (
            IdTokenFault::BadSignature,
            Status::BadGateway,
            "provider_error",
        ),
        (
            IdTokenFault::UnpublishedKey,
            Status::BadGateway,
            "provider_error",
        ),
        (
            IdTokenFault::HmacWithClientSecret,
            Status::BadGateway,
            "provider_error",
        ),
        (
            IdTokenFault::HmacWithPublicKey,
            Status::BadGateway,
            "provider_error",
        ),
        (IdTokenFault::Missing, Status::BadGateway, "provider_error"),
    ];
    for (fault, status, error) in cases {
        g.fake.set_fault(Some(fault));
        let (got, body) = login_with(&app.client, "google").await;
        assert_eq!(got, status, "{fault:?}: {body}");
        assert_eq!(body["error"], error, "{fault:?}");
        assert!(
            app.client.cookies().get("jwt").is_none(),
            "{fault:?}: not signed in"
        );
    }
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM users").await,
        0,
        "nothing stored"
    );
    g.fake.set_fault(None);
    assert_eq!(
        login_with(&app.client, "google").await.0,
        Status::SeeOther,
        "and a good one passes"
    );
}

#[rocket::async_test]
async fn keys_rotate_and_google_quirks() {
    let g = google().await;
    let app = TestApp::start_with(TestDb::sqlite().await, &google_toml(&g, "")).await;
    assert_eq!(login_with(&app.client, "google").await.0, Status::SeeOther);
    assert_eq!(g.fake.jwks_calls(), 1);
    // A new key with an unknown kid: the JWKS is fetched again, once.
    g.fake.rotate_keys();
    assert_eq!(login_with(&app.client, "google").await.0, Status::SeeOther);
    assert_eq!(g.fake.jwks_calls(), 2);
    assert_eq!(login_with(&app.client, "google").await.0, Status::SeeOther);
    assert_eq!(g.fake.jwks_calls(), 2, "then cached");

    // Google's legacy `iss` without scheme.
    g.fake.set_legacy_issuer(true);
    assert_eq!(login_with(&app.client, "google").await.0, Status::SeeOther);
    g.fake.set_legacy_issuer(false);

    // Name and picture only in userinfo: completed from there.
    let mut user = FakeOidcUser::new("555", "Only Userinfo", "u@gmail.example");
    user.email_verified = json!("true");
    g.fake.sign_in_as(user);
    g.fake.set_profile_in_userinfo_only(true);
    assert_eq!(login_with(&app.client, "google").await.0, Status::SeeOther);
    let session = json(app.client.get("/auth/session").dispatch().await).await;
    assert_eq!(session["user"]["name"], "Only Userinfo");
    assert_eq!(session["user"]["avatar_url"], "https://lh3.example/555.png");

    // A user who denies: 400 naming access_denied.
    g.fake.set_denied(true);
    let (status, body) = login_with(&app.client, "google").await;
    assert_eq!(
        (status, body["provider_error"].as_str()),
        (Status::BadRequest, Some("access_denied"))
    );
}

#[rocket::async_test]
async fn string_email_verified_counts_for_linking() {
    let g = google().await;
    // Both providers trusted for linking: GitHub vouched for the stored address.
    let app = TestApp::start_with(
        TestDb::sqlite().await,
        &format!(
            "{}[social_auth.providers.github]\nlink_by_verified_email = true\n",
            google_toml(&g, "link_by_verified_email = true\n")
        ),
    )
    .await;
    app.login(&app.client).await; // octocat@github.example via GitHub
    let octocat = claims(&session_jwt(&app.client).await)["sub"].clone();
    for (verified, same_user) in [
        (json!("false"), false),
        (json!(false), false),
        (json!("true"), true),
    ] {
        let mut user = FakeOidcUser::new(
            &format!("sub-{verified}"),
            "Octo G",
            "Octocat@GitHub.example",
        );
        user.email_verified = verified.clone();
        g.fake.sign_in_as(user);
        let browser = app.browser().await;
        assert_eq!(login_with(&browser, "google").await.0, Status::SeeOther);
        let sub = claims(&session_jwt(&browser).await)["sub"].clone();
        assert_eq!(sub == octocat, same_user, "email_verified = {verified}");
    }
}

#[rocket::async_test]
async fn a_provider_that_is_down_does_not_take_the_app_down() {
    let g = google().await;
    g.fake.set_discovery_down(true);
    let app = TestApp::start_with(TestDb::sqlite().await, &google_toml(&g, "")).await;
    // The app launched; GitHub works; Google answers 503 and retries discovery on each use.
    assert_eq!(app.login(&app.client).await.status(), Status::SeeOther);
    let r = app
        .client
        .get("/auth/google")
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::ServiceUnavailable);
    assert_eq!(json(r).await["error"], "provider_unavailable");
    let calls = g.fake.discovery_calls();
    g.fake.set_discovery_down(false);
    assert_eq!(login_with(&app.client, "google").await.0, Status::SeeOther);
    assert_eq!(g.fake.discovery_calls(), calls + 1);
}

#[rocket::async_test]
async fn oidc_configuration_is_checked() {
    let db = TestDb::sqlite().await;
    for extra in [
        "[social_auth.providers.gitlab]\nkind = \"oidc\"\nclient_id = \"a\"\nclient_secret = \"b\"\n",
        "[social_auth.providers.gitlab]\nkind = \"oidc\"\nissuer = \"http://gitlab.example\"\nclient_id = \"a\"\nclient_secret = \"b\"\n",
        "[social_auth.providers.google]\nclient_id = \"a\"\nclient_secret = \"b\"\ntoken_url = \"https://oauth2.googleapis.com/token\"\n",
        "[social_auth.providers.acme]\nclient_id = \"a\"\nclient_secret = \"b\"\nissuer = \"https://id.acme.example\"\n",
    ] {
        let result = rocket(figment(&db.url, "http://127.0.0.1:9", extra)).ignite().await;
        assert!(result.is_err(), "{extra}");
        let _ = result.map_err(|e| e.kind().to_string());
    }
}

/// RFC 9207: when the provider sends `iss` in its authorization response, it must be its own
/// (a mix-up attack would bring another provider's answer to this callback).
#[rocket::async_test]
async fn the_authorization_response_issuer_is_checked() {
    let g = google().await;
    g.fake.set_iss_parameter(true);
    let app = TestApp::start_with(TestDb::sqlite().await, &google_toml(&g, "")).await;
    for (rewrite, status, error) in [
        (None, Status::SeeOther, None),
        (
            Some("https://evil.example"),
            Status::BadRequest,
            Some("issuer_mismatch"),
        ),
        (Some(""), Status::BadRequest, Some("issuer_mismatch")),
    ] {
        let r = app.client.get("/auth/google").dispatch().await;
        let location = r.headers().get_one("Location").unwrap().to_owned();
        drop(r);
        let callback = provider_redirect(&location).await;
        assert!(callback.contains("iss="), "{callback}");
        let callback = match rewrite {
            None => callback,
            Some("") => callback
                .split('&')
                .filter(|p| !p.starts_with("iss="))
                .collect::<Vec<_>>()
                .join("&"),
            Some(other) => {
                let mut url = url::Url::parse(&format!("http://x{callback}")).unwrap();
                let pairs: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if k == "iss" {
                            other.to_owned()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                url.query_pairs_mut().clear().extend_pairs(pairs);
                format!("{}?{}", url.path(), url.query().unwrap())
            }
        };
        let r = app
            .client
            .get(callback)
            .header(accept_json())
            .dispatch()
            .await;
        assert_eq!(r.status(), status, "{rewrite:?}");
        if let Some(error) = error {
            assert_eq!(json(r).await["error"], error);
        }
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 1);
}
