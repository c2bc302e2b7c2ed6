//! Bad input: what a client or a provider may send, and the answers it gets.

use rocket::http::{Cookie, Status};
use serde_json::{json, Value};

use crate::common::*;

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
