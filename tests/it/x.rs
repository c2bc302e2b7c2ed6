//! `kind = "x"` against the fake X on loopback, on SQLite and PostgreSQL: PKCE and HTTP Basic
//! as X requires them, the user from `/2/users/me`, X's problem JSON and 429 shapes, and
//! refresh rotation with `offline = true`.

use rocket::http::Status;
use rocket::local::asynchronous::Client;
use rocket_social_auth::testing::{FakeServer, FakeX, FakeXUser, RawAnswer, XFault};
use serde_json::{json, Value};

use crate::common::*;
use crate::db_tests;

db_tests!(
    signs_in_with_pkce_and_basic,
    token_errors_are_named,
    problems_are_read_and_named,
    offline_refresh_rotates_the_refresh_token,
);

const ID: &str = "x-client-id";
const SECRET: &str = "x-client-secret";
const USER_ID: &str = "2244994945";

async fn fake() -> (FakeX, FakeServer) {
    let fake = FakeX::new(ID, SECRET);
    fake.sign_in_as(FakeXUser::new(USER_ID, "X Developers", "xdevelopers"));
    let server = fake.clone().spawn().await.unwrap();
    (fake, server)
}

fn table(url: &str, extra: &str) -> String {
    format!(
        "[social_auth.providers.x]\nclient_id = \"{ID}\"\nclient_secret = \"{SECRET}\"\nauthorize_url = \"{url}/i/oauth2/authorize\"\ntoken_url = \"{url}/2/oauth2/token\"\napi_url = \"{url}\"\n{extra}"
    )
}

async fn login(client: &Client) -> (Status, Value) {
    let start = client.get("/auth/x").dispatch().await;
    assert_eq!(start.status(), Status::SeeOther);
    let location = start.headers().get_one("Location").unwrap().to_owned();
    drop(start);
    let callback = provider_redirect(&location).await;
    let done = client.get(callback).header(accept_json()).dispatch().await;
    let status = done.status();
    let body = done.into_string().await.unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn signs_in_with_pkce_and_basic(db: TestDb) {
    let (fake, server) = fake().await;
    let app = TestApp::start_with(db, &table(server.url(), "")).await;
    let start = app.client.get("/auth/x").dispatch().await;
    let location = url::Url::parse(start.headers().get_one("Location").unwrap()).unwrap();
    drop(start);
    assert_eq!(location.path(), "/i/oauth2/authorize");
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(
        q["scope"], "users.read tweet.read",
        "no offline.access unless asked"
    );
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["state"].len() <= 500);

    let (status, body) = login(&app.client).await;
    assert_eq!(status, Status::SeeOther, "{body}");
    let s = json(app.client.get("/auth/session").dispatch().await).await;
    assert_eq!(s["provider"], "x");
    assert_eq!(s["user"]["name"], "X Developers");
    assert_eq!(s["user"]["email"], Value::Null);
    assert_eq!(
        s["user"]["avatar_url"],
        format!("https://pbs.twimg.example/profile_images/{USER_ID}/avatar_normal.jpg")
    );
    let pool = app.db.pool().await;
    let (social_id, refresh): (String, Option<String>) =
        sqlx::query_as("SELECT social_id, refresh_token FROM social_users")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(social_id, USER_ID, "keyed on data.id, not the username");
    assert_eq!(refresh, None, "no refresh token without offline.access");
    assert!(fake.is_valid_access_token(&plain_token(&app.client).await));

    // The handle changes, the id does not: the same user.
    fake.sign_in_as(FakeXUser::new(USER_ID, "Renamed", "xdevs2"));
    assert_eq!(login(&app.client).await.0, Status::SeeOther);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 1);

    // Without offline, refresh has nothing to spend.
    let r = app.client.post("/auth/x/refresh").dispatch().await;
    assert_ne!(r.status(), Status::Ok);
}

async fn token_errors_are_named(db: TestDb) {
    let (fake, server) = fake().await;
    let app = TestApp::start_with(db, &table(server.url(), "")).await;
    // A code past its 30 seconds.
    let start = app.client.get("/auth/x").dispatch().await;
    let location = start.headers().get_one("Location").unwrap().to_owned();
    drop(start);
    let callback = provider_redirect(&location).await;
    fake.expire_codes();
    let r = app
        .client
        .get(callback)
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::BadGateway);
    let v = json(r).await;
    assert_eq!(v["provider_error"], "invalid_request", "{v}");
    for (error, description) in [
        (
            "invalid_request",
            "Value passed for the authorization code was invalid.",
        ),
        ("unauthorized_client", "Missing valid authorization header"),
    ] {
        fake.set_fault(Some(XFault::TokenError(error.into(), description.into())));
        let (status, body) = login(&app.client).await;
        assert_eq!(status, Status::BadGateway, "{error}: {body}");
        assert_eq!(body["provider_error"], error);
    }
    // The user cancels.
    fake.set_fault(Some(XFault::Denied));
    let (status, body) = login(&app.client).await;
    assert_eq!(status, Status::BadRequest, "{body}");
    assert_eq!(body["provider_error"], "access_denied");
    // A wrong secret: X refuses the Basic credentials.
    fake.set_fault(None);
    let wrong = app
        .instance("[social_auth.providers.x]\nclient_secret = \"not-it\"\n")
        .await;
    let (status, body) = login(&wrong).await;
    assert_eq!(status, Status::BadGateway, "{body}");
    assert_eq!(body["provider_error"], "unauthorized_client");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 0);
}

async fn problems_are_read_and_named(db: TestDb) {
    let (fake, server) = fake().await;
    let app = TestApp::start_with(db, &table(server.url(), "")).await;
    for (fault, needle) in [
        (XFault::UserRateLimited, "429: Too Many Requests"),
        (XFault::UserRateLimitedV1, "Rate limit exceeded (code 88)"),
        (
            XFault::UserProblem(403, "client-forbidden".into()),
            "403: Client Forbidden: Injected fault. [client-forbidden]",
        ),
        (
            XFault::UserProblem(429, "usage-capped".into()),
            "[usage-capped]",
        ),
        (
            XFault::UserProblem(401, "not-authorized-for-resource".into()),
            "Authorization Error",
        ),
        (
            // A 200 without `data`: the failure is in `errors`.
            XFault::UserAnswer(RawAnswer::new(
                200,
                Some("application/json"),
                json!({"errors": [{"title": "Not Found Error", "detail": "Could not find user", "type": "https://api.x.com/2/problems/resource-not-found"}]}).to_string(),
            )),
            "Not Found Error: Could not find user [resource-not-found]",
        ),
        (
            XFault::UserAnswer(RawAnswer::new(
                200,
                Some("application/json"),
                json!({"data": {"id": "", "name": "n", "username": "n"}}).to_string(),
            )),
            "no snowflake",
        ),
    ] {
        fake.set_fault(Some(fault.clone()));
        let (status, body) = login(&app.client).await;
        assert_eq!(status, Status::BadGateway, "{fault:?}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(needle), "{fault:?}: {message}");
    }
    // The per-user limit, with X's headers, ends in the same named 429.
    fake.set_fault(None);
    fake.set_user_rate_limit(0);
    let (status, body) = login(&app.client).await;
    assert_eq!(status, Status::BadGateway);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("Too Many Requests"));
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 0);
}

async fn offline_refresh_rotates_the_refresh_token(db: TestDb) {
    let (fake, server) = fake().await;
    let app = TestApp::start_with(
        db,
        &format!(
            "[social_auth]\nexpose_refresh_token = true\n{}",
            table(server.url(), "offline = true")
        ),
    )
    .await;
    let start = app.client.get("/auth/x").dispatch().await;
    assert!(start
        .headers()
        .get_one("Location")
        .unwrap()
        .contains("scope=users.read+tweet.read+offline.access"));
    drop(start);
    assert_eq!(login(&app.client).await.0, Status::SeeOther);
    let pool = app.db.pool().await;
    let row = || async {
        sqlx::query_scalar::<_, String>("SELECT refresh_token FROM social_users")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let plain = || async {
        json(app.client.get("/auth/refresh_token").dispatch().await).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (before, old) = (row().await, plain().await);
    let r = app.client.post("/auth/x/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    drop(r);
    let (after, new) = (row().await, plain().await);
    assert_ne!(before, after, "the row holds the new refresh token");
    assert!(fake.is_valid_refresh_token(&new) && !fake.is_valid_refresh_token(&old));
    assert!(fake.is_valid_access_token(&plain_token(&app.client).await));

    // X answers a spent or revoked refresh token with `invalid_request`: sign in again.
    fake.revoke_all();
    let r = app.client.post("/auth/x/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Unauthorized);
    assert_eq!(json(r).await, json!({"status": "reauthenticate"}));
}
