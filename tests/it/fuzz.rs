//! Bad input: what a client or a provider may send, and the answers it gets.

use rocket::http::{Cookie, Status};
use rocket_social_auth::testing::{RawAnswer, TokenFault, TokenMode};
use serde_json::{json, Value};

use crate::common::*;
use crate::db_tests;

db_tests!(
    regression_nul_in_a_profile_is_a_502,
    regression_nul_in_a_refreshed_token_is_a_502,
);

const FLOW_COOKIE: &str = "social_auth_flow_github";

// ---------------------------------------------------------------------------------------
// Regressions: what the properties found, kept by name
// ---------------------------------------------------------------------------------------

/// The callback redirected to the flow cookie's `next` unchecked: `Location:` empty for `""`,
/// a 500 for a `next` that is no URI. (The cookie is encrypted: this needs the secret key.)
#[rocket::async_test]
async fn regression_flow_next_is_checked_again_at_the_callback() {
    let app = TestApp::start(TestDb::sqlite().await).await;
    for next in [
        "",
        "\r\n",
        "//evil.example",
        "https://evil.example",
        "/ok\tx",
    ] {
        let callback = app.authorize(&app.client, "/auth/github").await;
        let flow = app.client.cookies().get_private(FLOW_COOKIE).unwrap();
        let mut flow: Value = serde_json::from_str(flow.value()).unwrap();
        flow["next"] = json!(next);
        let r = app
            .client
            .get(callback)
            .private_cookie(Cookie::build((FLOW_COOKIE, flow.to_string())).path("/auth/github"))
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::SeeOther, "{next:?}");
        assert_eq!(r.headers().get_one("Location"), Some("/"), "{next:?}");
    }
}

/// A flow `created_at` of `i64::MIN` overflowed the age computation: a panic, so a 500.
#[rocket::async_test]
async fn regression_flow_created_at_extremes_are_expired() {
    let app = TestApp::start(TestDb::sqlite().await).await;
    for created_at in [i64::MIN, i64::MIN + 1, i64::MAX] {
        let flow = json!({
            "provider": "github", "state": "s1", "verifier": "v".repeat(43), "next": null,
            "created_at": created_at,
        });
        let r = app
            .client
            .get("/auth/github/callback?code=c&state=s1")
            .private_cookie(Cookie::build((FLOW_COOKIE, flow.to_string())).path("/auth/github"))
            .header(accept_json())
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::BadRequest, "{created_at}");
        assert_eq!(json(r).await["error"], "flow_expired", "{created_at}");
    }
}

/// A NUL in a provider's profile reached the database: PostgreSQL refuses it (a 500), SQLite
/// stored it. Both now answer 502 and store nothing.
async fn regression_nul_in_a_profile_is_a_502(db: TestDb) {
    let app = TestApp::start(db).await;
    for (user, emails) in [
        (
            r#"{"avatar_url":"\u0000","email":null,"id":0,"login":"a","name":null}"#,
            None,
        ),
        (r#"{"id":1,"login":"x\u0000y","name":" "}"#, None),
        (
            r#"{"id":2,"login":"b"}"#,
            Some(r#"[{"email":"a\u0000@b","primary":true,"verified":true}]"#),
        ),
    ] {
        app.fake
            .set_user_answer(Some(RawAnswer::new(200, None, user)));
        app.fake
            .set_emails_answer(emails.map(|e| RawAnswer::new(200, Some("application/json"), e)));
        let callback = app.authorize(&app.client, "/auth/github").await;
        let r = app
            .client
            .get(callback)
            .header(accept_json())
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::BadGateway, "{user} {emails:?}");
        assert_eq!(json(r).await["error"], "provider_error");
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 0);
    assert!(app.client.cookies().get("jwt").is_none());
}

/// A refresh answered with a NUL in the token reached PostgreSQL: a 503 that blamed the
/// database. Now 502, the stored tokens kept.
async fn regression_nul_in_a_refreshed_token_is_a_502(db: TestDb) {
    let app = TestApp::start(db).await;
    app.fake.set_token_mode(TokenMode::Expiring);
    assert_eq!(app.login(&app.client).await.status(), Status::SeeOther);
    let stored =
        "SELECT COUNT(*) FROM social_users WHERE token LIKE 'ghu_%' AND refresh_token LIKE 'ghr_%'";
    assert_eq!(app.db.count(stored).await, 1);
    app.fake.set_token_fault(Some(TokenFault::Answer(RawAnswer::new(
        200,
        Some("application/json"),
        r#"{"access_token":"ghu_\u0000","token_type":"bearer","expires_in":28800,"refresh_token":"ghr_new"}"#,
    ))));
    let r = app.client.post("/auth/github/refresh").dispatch().await;
    assert_eq!(r.status(), Status::BadGateway);
    assert_eq!(json(r).await, json!({"status": "provider_error"}));
    assert_eq!(app.db.count(stored).await, 1, "the stored tokens are kept");
}
