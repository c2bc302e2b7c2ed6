//! GitLab (`kind = "gitlab"`) against the fake GitLab: sign-in keyed on the numeric `sub`
//! (never `sub_legacy` or the username), the profile completed from userinfo, refresh tokens
//! that rotate (the new pair replaces the old in the row), and Doorkeeper's error shapes.

use rocket::http::Status;
use rocket_social_auth::testing::{FakeOidc, FakeOidcUser, FakeServer, OidcFault};
use serde_json::json;

use crate::common::*;
use crate::db_tests;
use crate::microsoft::exposed_refresh_token;
use crate::oidc::login_with;

db_tests!(
    gitlab_signs_in_keyed_on_the_numeric_sub,
    gitlab_refresh_rotates_the_refresh_token,
);

const GL_CLIENT: &str = "gl-app-id";
const GL_SECRET: &str = "gloas-secret";

struct GitLab {
    fake: FakeOidc,
    server: FakeServer,
}

async fn gitlab() -> GitLab {
    let fake = FakeOidc::gitlab(GL_CLIENT, GL_SECRET);
    fake.sign_in_as(FakeOidcUser::new(
        "1234",
        "Sid Sijbrandij",
        "sid@gitlab.example",
    ));
    let server = fake.clone().spawn().await.unwrap();
    GitLab { fake, server }
}

fn toml(g: &GitLab, extra: &str) -> String {
    format!(
        "[social_auth.providers.gitlab]\nclient_id = \"{GL_CLIENT}\"\nclient_secret = \"{GL_SECRET}\"\nissuer = \"{}\"\n{extra}",
        g.server.url()
    )
}

async fn gitlab_signs_in_keyed_on_the_numeric_sub(db: TestDb) {
    let g = gitlab().await;
    let app = TestApp::start_with(db, &toml(&g, "offline = true\n")).await;
    let start = app.client.get("/auth/gitlab").dispatch().await;
    let location = url::Url::parse(start.headers().get_one("Location").unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(location.path(), "/oauth/authorize");
    assert_eq!(
        q["scope"], "openid email profile",
        "no offline_access: GitLab refuses scopes it does not know, and refreshes anyway"
    );
    assert!(!q.contains_key("prompt"));
    assert_eq!(q["code_challenge_method"], "S256");
    drop(start);
    let (status, body) = login_with(&app.client, "gitlab").await;
    assert_eq!(status, Status::SeeOther, "{body}");
    let session = json(app.client.get("/auth/session").dispatch().await).await;
    assert_eq!(session["user"]["name"], "Sid Sijbrandij", "from userinfo");
    assert_eq!(
        session["user"]["avatar_url"],
        "https://lh3.example/1234.png"
    );
    let pool = app.db.pool().await;
    let social_id: String =
        sqlx::query_scalar("SELECT social_id FROM social_users WHERE provider = 'gitlab'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(social_id, "1234", "the numeric user id, not sub_legacy");
}

async fn gitlab_refresh_rotates_the_refresh_token(db: TestDb) {
    let g = gitlab().await;
    let app = TestApp::start_with(
        db,
        &toml(&g, "[social_auth]\nexpose_refresh_token = true\n"),
    )
    .await;
    assert_eq!(login_with(&app.client, "gitlab").await.0, Status::SeeOther);
    let first = exposed_refresh_token(&app.client).await;
    let first_access = plain_token(&app.client).await;
    assert!(g.fake.is_valid_refresh_token(&first));
    // The fake checks that a refresh sends the original redirect_uri, as Doorkeeper does.
    let r = app.client.post("/auth/gitlab/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    drop(r);
    let second = exposed_refresh_token(&app.client).await;
    assert_ne!(second, first, "the new refresh token replaces the old one");
    assert!(
        !g.fake.is_valid_refresh_token(&first),
        "GitLab revoked the old pair"
    );
    assert!(!g.fake.is_valid_access_token(&first_access));
    assert!(g.fake.is_valid_refresh_token(&second));
    assert!(g
        .fake
        .is_valid_access_token(&plain_token(&app.client).await));
    // Again, with the stored (rotated) one.
    let r = app.client.post("/auth/gitlab/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    drop(r);
    assert_eq!(g.fake.refresh_calls(), 2);
    // A revoked refresh token: Doorkeeper's 400 invalid_grant, sign in again.
    g.fake.revoke_refresh_tokens();
    let r = app.client.post("/auth/gitlab/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Unauthorized);
    assert_eq!(json(r).await, json!({"status": "reauthenticate"}));
}

/// Doorkeeper's error shapes: the denial at authorize, 400 `invalid_grant` (a used or
/// expired code), 401 `invalid_client`, a rate limit; a userinfo failure leaves what the
/// id_token has.
#[rocket::async_test]
async fn gitlab_error_shapes() {
    let g = gitlab().await;
    let app = TestApp::start_with(TestDb::sqlite().await, &toml(&g, "")).await;
    g.fake.set_denied(true);
    let (status, body) = login_with(&app.client, "gitlab").await;
    assert_eq!(
        (status, body["provider_error"].as_str()),
        (Status::BadRequest, Some("access_denied"))
    );
    g.fake.set_denied(false);
    for (fault, code) in [
        (
            OidcFault::Error("invalid_grant".into()),
            Some("invalid_grant"),
        ),
        (
            OidcFault::Error("invalid_client".into()),
            Some("invalid_client"),
        ),
        (OidcFault::RateLimited, None),
    ] {
        g.fake.set_token_fault(Some(fault.clone()));
        let (status, body) = login_with(&app.client, "gitlab").await;
        assert_eq!(status, Status::BadGateway, "{fault:?}: {body}");
        assert_eq!(body["provider_error"].as_str(), code, "{fault:?}");
    }
    g.fake.set_token_fault(None);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 0);
    g.fake
        .set_userinfo_fault(Some(OidcFault::Error("invalid_token".into())));
    let (status, body) = login_with(&app.client, "gitlab").await;
    assert_eq!(status, Status::SeeOther, "{body}");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 1);
}

#[rocket::async_test]
async fn gitlab_configuration_is_checked() {
    let db = TestDb::sqlite().await;
    let gh = "client_id = \"a\"\nclient_secret = \"b\"\n";
    for (extra, key) in [
        (
            format!("[social_auth.providers.gitlab]\n{gh}issuer = \"http://gitlab.example\"\n"),
            "social_auth.providers.gitlab.issuer",
        ),
        (
            format!(
                "[social_auth.providers.gitlab]\n{gh}api_url = \"https://gitlab.com/api/v4\"\n"
            ),
            "social_auth.providers.gitlab.api_url",
        ),
        (
            format!("[social_auth.providers.gitlab]\n{gh}token_auth = \"jwt\"\n"),
            "social_auth.providers.gitlab.token_auth",
        ),
        (
            "[social_auth.providers.gitlab]\nclient_id = \"a\"\n".to_owned(),
            "social_auth.providers.gitlab.client_secret",
        ),
        (
            format!("[social_auth.providers.gitlab]\n{gh}token_auth = \"none\"\n"),
            "social_auth.providers.gitlab.client_secret",
        ),
    ] {
        let figment = figment(&db.url, "http://127.0.0.1:9", &extra);
        let error = rocket_social_auth::SocialAuthFairing::new()
            .check_config(&figment)
            .expect_err(&extra);
        assert!(
            error.to_string().contains(&format!("`{key}`")),
            "{extra}: {error}"
        );
    }
}
