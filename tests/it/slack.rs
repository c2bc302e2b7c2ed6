//! Slack (`kind = "slack"`) against the fake Slack: users keyed on workspace and user id
//! (`sub` is unique only within a workspace), no PKCE, HTTP 200 `ok: false` errors at the token
//! endpoint and userinfo, and token rotation (each refresh revokes the previous refresh token).

use rocket::http::Status;
use rocket_social_auth::testing::{FakeOidc, FakeOidcUser, FakeServer, OidcFault, RefreshTokens};
use serde_json::json;

use crate::common::*;
use crate::db_tests;
use crate::microsoft::exposed_refresh_token;
use crate::oidc::login_with;

db_tests!(
    slack_signs_in_keyed_on_workspace_and_user,
    slack_token_rotation_replaces_the_refresh_token,
);

const SL_CLIENT: &str = "25259531569.1115258246291";
const SL_SECRET: &str = "slack-secret";

struct Slack {
    fake: FakeOidc,
    server: FakeServer,
}

async fn slack() -> Slack {
    let fake = FakeOidc::slack(SL_CLIENT, SL_SECRET);
    fake.sign_in_as(
        FakeOidcUser::new("U0R7JM", "krane", "krane@slack-corp.example").team("T0R7GR"),
    );
    let server = fake.clone().spawn().await.unwrap();
    Slack { fake, server }
}

fn toml(s: &Slack, extra: &str) -> String {
    format!(
        "[social_auth.providers.slack]\nclient_id = \"{SL_CLIENT}\"\nclient_secret = \"{SL_SECRET}\"\nissuer = \"{}\"\n{extra}",
        s.server.url()
    )
}

async fn slack_ids(db: &TestDb) -> Vec<String> {
    let pool = db.pool().await;
    sqlx::query_scalar("SELECT social_id FROM social_users WHERE provider = 'slack' ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap()
}

async fn slack_signs_in_keyed_on_workspace_and_user(db: TestDb) {
    let s = slack().await;
    let app = TestApp::start_with(db, &toml(&s, "")).await;
    let start = app.client.get("/auth/slack").dispatch().await;
    let location = url::Url::parse(start.headers().get_one("Location").unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(location.path(), "/openid/connect/authorize");
    assert!(q["nonce"].len() >= 32, "Slack's id_token carries our nonce");
    assert!(
        !q.contains_key("code_challenge"),
        "no PKCE for a confidential client"
    );
    drop(start);
    let (status, body) = login_with(&app.client, "slack").await;
    assert_eq!(status, Status::SeeOther, "{body}");
    let session = json(app.client.get("/auth/session").dispatch().await).await;
    assert_eq!(session["user"]["name"], "krane");
    assert_eq!(session["user"]["email"], "krane@slack-corp.example");
    // The same user id in another workspace is another person.
    s.fake
        .sign_in_as(FakeOidcUser::new("U0R7JM", "other krane", "k@other.example").team("T9OTHER"));
    let browser = app.browser().await;
    assert_eq!(login_with(&browser, "slack").await.0, Status::SeeOther);
    assert_eq!(
        slack_ids(&app.db).await,
        ["T0R7GR/U0R7JM", "T9OTHER/U0R7JM"]
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 2);
}

async fn slack_token_rotation_replaces_the_refresh_token(db: TestDb) {
    let s = slack().await;
    s.fake.set_refresh_tokens(RefreshTokens::Always);
    let app = TestApp::start_with(
        db,
        &toml(&s, "[social_auth]\nexpose_refresh_token = true\n"),
    )
    .await;
    assert_eq!(login_with(&app.client, "slack").await.0, Status::SeeOther);
    let first = exposed_refresh_token(&app.client).await;
    assert!(first.starts_with("xoxe-"), "{first}");
    let r = app.client.post("/auth/slack/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    drop(r);
    let second = exposed_refresh_token(&app.client).await;
    assert_ne!(
        second, first,
        "the rotated refresh token replaces the old one"
    );
    assert!(
        !s.fake.is_valid_refresh_token(&first),
        "Slack revoked the old one"
    );
    assert!(s.fake.is_valid_refresh_token(&second));
    // `{"ok": false, "error": "invalid_refresh_token"}` (HTTP 200): sign in again.
    s.fake.revoke_refresh_tokens();
    let r = app.client.post("/auth/slack/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Unauthorized);
    assert_eq!(json(r).await, json!({"status": "reauthenticate"}));
}

/// Slack's errors are HTTP 200 `{"ok": false, "error": …}`: read as the errors they are (not
/// as a token without `access_token`); `ratelimited` is a 429; userinfo's `ok: false` leaves
/// the id_token's profile.
#[rocket::async_test]
async fn slack_error_shapes() {
    let s = slack().await;
    let app = TestApp::start_with(TestDb::sqlite().await, &toml(&s, "")).await;
    s.fake.set_denied(true);
    let (status, body) = login_with(&app.client, "slack").await;
    assert_eq!(
        (status, body["provider_error"].as_str()),
        (Status::BadRequest, Some("access_denied"))
    );
    s.fake.set_denied(false);
    for code in [
        "invalid_code",
        "bad_client_secret",
        "bad_redirect_uri",
        "invalid_client_id",
        "oauth_authorization_url_mismatch",
        "internal_error",
    ] {
        s.fake.set_token_fault(Some(OidcFault::Error(code.into())));
        let (status, body) = login_with(&app.client, "slack").await;
        assert_eq!(
            (status, body["provider_error"].as_str()),
            (Status::BadGateway, Some(code)),
            "{body}"
        );
    }
    s.fake.set_token_fault(Some(OidcFault::RateLimited));
    let (status, body) = login_with(&app.client, "slack").await;
    assert_eq!(status, Status::BadGateway, "{body}");
    s.fake.set_token_fault(None);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 0);
    for code in ["invalid_auth", "token_revoked"] {
        s.fake
            .set_userinfo_fault(Some(OidcFault::Error(code.into())));
        assert_eq!(login_with(&app.client, "slack").await.0, Status::SeeOther);
    }
    let session = json(app.client.get("/auth/session").dispatch().await).await;
    assert_eq!(session["user"]["name"], "krane");
}
