//! The routes of a signed-in session: session, token, refresh_token, refresh, logout; and the
//! database going away under a running app.

use rocket::http::{Header, Status};
use rocket_social_auth::testing::{TokenFault, TokenMode};

use crate::common::*;
use crate::db_tests;

db_tests!(
    session_and_token_routes,
    refresh_token_route_only_when_exposed,
    refresh_rotates_and_stores,
    refresh_refused_clears_refresh_token,
    refresh_failures_keep_tokens,
    logout_signs_out_and_forgets_access_token,
    cross_site_logout_and_refresh_are_refused,
    concurrent_refreshes_make_one_provider_call,
);

async fn row(db: &TestDb) -> (Option<String>, Option<String>) {
    let pool = db.pool().await;
    let r = sqlx::query_as("SELECT token, refresh_token FROM social_users")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    r
}

async fn session_and_token_routes(db: TestDb) {
    // The raw JWT in /auth/session is opt-in (hardening item 9).
    let app = TestApp::start_with(db, "[social_auth]\nsession_exposes_jwt = true\n").await;
    let r = app.client.get("/auth/session").dispatch().await;
    assert_eq!(r.status(), Status::Unauthorized);
    let r = app.client.get("/auth/token").dispatch().await;
    assert_eq!(r.status(), Status::Unauthorized);
    assert_eq!(
        json(r).await,
        serde_json::json!({"token": null, "status": 401})
    );

    app.login(&app.client).await;
    let r = app.client.get("/auth/token").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    let body = json(r).await;
    assert_eq!(body["status"], 200);
    assert!(app
        .fake
        .is_valid_access_token(body["token"].as_str().unwrap()));

    // The same through a Bearer header, from a client without cookies.
    let jwt = session_jwt(&app.client).await;
    let api = app.browser().await;
    let r = api
        .get("/auth/token")
        .header(Header::new("Authorization", format!("Bearer {jwt}")))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let r = api
        .get("/auth/session")
        .header(Header::new("Authorization", format!("Bearer {jwt}")))
        .dispatch()
        .await;
    assert_eq!(json(r).await["jwt"], jwt);

    // After logout the stored token is gone: 404 for a token still valid elsewhere.
    let r = api
        .post("/auth/logout")
        .header(Header::new("Authorization", format!("Bearer {jwt}")))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    let r = app.client.get("/auth/token").dispatch().await;
    assert_eq!(r.status(), Status::NotFound);
    assert_eq!(
        json(r).await,
        serde_json::json!({"token": null, "status": 404})
    );
}

async fn refresh_token_route_only_when_exposed(db: TestDb) {
    let hidden = TestApp::start(TestDb::sqlite().await).await;
    hidden.login(&hidden.client).await;
    assert_eq!(
        hidden
            .client
            .get("/auth/refresh_token")
            .dispatch()
            .await
            .status(),
        Status::NotFound
    );

    let app = TestApp::start_with(db, "[social_auth]\nexpose_refresh_token = true\n").await;
    let r = app.client.get("/auth/refresh_token").dispatch().await;
    assert_eq!(r.status(), Status::Unauthorized);
    assert_eq!(
        json(r).await,
        serde_json::json!({"refresh_token": null, "status": 401})
    );
    // An OAuth App token has no refresh token: 404 is normal.
    app.login(&app.client).await;
    let r = app.client.get("/auth/refresh_token").dispatch().await;
    assert_eq!(r.status(), Status::NotFound);
    assert_eq!(
        json(r).await,
        serde_json::json!({"refresh_token": null, "status": 404})
    );
    app.fake.set_token_mode(TokenMode::Expiring);
    app.login(&app.client).await;
    let r = app.client.get("/auth/refresh_token").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    let body = json(r).await;
    assert_eq!(body["status"], 200);
    assert!(body["refresh_token"].as_str().unwrap().starts_with("ghr_"));
}

async fn refresh_rotates_and_stores(db: TestDb) {
    let app = TestApp::start(db).await;
    let r = app.client.post("/auth/github/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Unauthorized);
    assert_eq!(json(r).await, serde_json::json!({"status": ""}));

    app.login(&app.client).await;
    let r = app.client.post("/auth/github/refresh").dispatch().await;
    assert_eq!(
        r.status(),
        Status::NotFound,
        "OAuth App tokens have no refresh token"
    );
    assert_eq!(
        json(r).await,
        serde_json::json!({"status": "no_refresh_token"})
    );

    app.fake.set_token_mode(TokenMode::Expiring);
    app.login(&app.client).await;
    let (token1, refresh1) = row(&app.db).await;
    let plain1 = plain_token(&app.client).await;
    for method in ["POST", "GET"] {
        let r = match method {
            "POST" => app.client.post("/auth/github/refresh").dispatch().await,
            // A browser's same-origin fetch (a state-changing GET needs the proof).
            _ => {
                app.client
                    .get("/auth/github/refresh")
                    .header(same_origin())
                    .dispatch()
                    .await
            }
        };
        assert_eq!(r.status(), Status::Ok, "{method}");
        assert_eq!(json(r).await, serde_json::json!({"status": "refreshed"}));
    }
    let (token2, refresh2) = row(&app.db).await;
    assert_ne!(token1, token2);
    assert_ne!(
        refresh1, refresh2,
        "GitHub rotated the refresh token and we kept the new one"
    );
    let plain2 = plain_token(&app.client).await;
    assert!(app.fake.is_valid_access_token(&plain2));
    assert!(!app.fake.is_valid_access_token(&plain1));
    assert_eq!(app.fake.refresh_calls(), 2);
    let expires: Option<i64> = sqlx::query_scalar("SELECT token_expires_at FROM social_users")
        .fetch_one(&app.db.pool().await)
        .await
        .unwrap();
    let expires = expires.expect("expiry stored");
    assert!((expires - now() - 28800).abs() < 60);

    // A provider the user has no identity with.
    let app2 = TestApp::start_with(
        TestDb::sqlite().await,
        "[social_auth.providers.work]\nkind = \"github\"\nclient_id = \"x\"\nclient_secret = \"y\"\n",
    )
    .await;
    app2.login(&app2.client).await;
    let r = app2.client.post("/auth/work/refresh").dispatch().await;
    assert_eq!(r.status(), Status::NotFound);
    assert_eq!(
        json(r).await,
        serde_json::json!({"status": "no_refresh_token"})
    );
}

async fn refresh_refused_clears_refresh_token(db: TestDb) {
    let app = TestApp::start(db).await;
    app.fake.set_token_mode(TokenMode::Expiring);
    app.login(&app.client).await;
    app.fake.revoke_all();
    let r = app.client.post("/auth/github/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Unauthorized);
    assert_eq!(
        json(r).await,
        serde_json::json!({"status": "reauthenticate"})
    );
    let (token, refresh) = row(&app.db).await;
    assert!(token.is_some());
    assert_eq!(refresh, None, "the refused refresh token is forgotten");
    let r = app.client.post("/auth/github/refresh").dispatch().await;
    assert_eq!(r.status(), Status::NotFound);
}

async fn refresh_failures_keep_tokens(db: TestDb) {
    let app = TestApp::start_with(db, "[social_auth]\nhttp_timeout_secs = 1\n").await;
    app.fake.set_token_mode(TokenMode::Expiring);
    app.login(&app.client).await;
    let before = row(&app.db).await;
    for (fault, status, code) in [
        (TokenFault::Html500, Status::BadGateway, "provider_error"),
        (TokenFault::Malformed, Status::BadGateway, "provider_error"),
        (TokenFault::Hang, Status::GatewayTimeout, "provider_timeout"),
    ] {
        app.fake.set_token_fault(Some(fault.clone()));
        let r = app.client.post("/auth/github/refresh").dispatch().await;
        assert_eq!(r.status(), status, "{fault:?}");
        assert_eq!(json(r).await["status"], code);
        assert_eq!(row(&app.db).await, before, "{fault:?}: tokens kept");
    }
}

async fn logout_signs_out_and_forgets_access_token(db: TestDb) {
    let app = TestApp::start_with(db, "[social_auth]\nlogout_url = \"/bye\"\n").await;
    // Signed out: still 303.
    let r = app.client.get("/auth/logout").dispatch().await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(r.headers().get_one("Location"), Some("/bye"));

    app.fake.set_token_mode(TokenMode::Expiring);
    for method in ["GET", "POST"] {
        app.login(&app.client).await;
        assert!(app.client.cookies().get("jwt").is_some());
        let r = match method {
            "GET" => {
                app.client
                    .get("/auth/logout")
                    .header(same_origin())
                    .dispatch()
                    .await
            }
            _ => app.client.post("/auth/logout").dispatch().await,
        };
        assert_eq!(r.status(), Status::SeeOther, "{method}");
        assert_eq!(r.headers().get_one("Location"), Some("/bye"));
        drop(r);
        assert!(
            app.client.cookies().get("jwt").is_none(),
            "{method}: cookie removed"
        );
        assert_eq!(
            app.client.get("/auth/session").dispatch().await.status(),
            Status::Unauthorized
        );
        let (token, refresh) = row(&app.db).await;
        assert_eq!(token, None, "{method}: access token forgotten");
        assert!(refresh.is_some(), "{method}: refresh token kept");
    }
}

async fn cross_site_logout_and_refresh_are_refused(db: TestDb) {
    let app = TestApp::start(db).await;
    app.fake.set_token_mode(TokenMode::Expiring);
    app.login(&app.client).await;
    let before = row(&app.db).await;
    let attacks = [
        Header::new("Sec-Fetch-Site", "cross-site"),
        Header::new("Origin", "https://evil.example"),
        Header::new("Origin", "null"),
    ];
    for h in attacks.clone() {
        let r = app
            .client
            .post("/auth/logout")
            .header(h.clone())
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::SeeOther, "{h}");
        drop(r);
        assert_eq!(
            app.client.get("/auth/session").dispatch().await.status(),
            Status::Ok,
            "{h}: still signed in"
        );
        let r = app
            .client
            .post("/auth/github/refresh")
            .header(h.clone())
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::Forbidden, "{h}");
        assert_eq!(row(&app.db).await, before, "{h}: nothing changed");
    }
    // Same-origin requests are fine.
    let r = app
        .client
        .post("/auth/github/refresh")
        .header(Header::new("Origin", "http://127.0.0.1:8000"))
        .header(Header::new("Sec-Fetch-Site", "same-origin"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
}

/// PostgreSQL behind a proxy we can cut: routes that need the database answer 503 within the
/// acquire timeout, the guard keeps working on a valid JWT, and the app recovers by itself.
#[rocket::async_test]
async fn database_down_answers_503_and_recovers() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let url = url::Url::parse(&db.url).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let target = rocket::tokio::net::lookup_host(target)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(target).await;
    let mut proxied = url.clone();
    proxied.set_port(Some(proxy.port)).unwrap();
    let proxied = db.alias(proxied.to_string());
    let app = TestApp::start_with(proxied, "[social_auth]\nrevocation_cache_secs = 1\n").await;
    app.fake.set_token_mode(TokenMode::Expiring);
    assert_eq!(app.login(&app.client).await.status(), Status::SeeOther);
    // A session revoked on another instance before the outage.
    let other = app.browser().await;
    app.fake
        .sign_in_as(rocket_social_auth::testing::FakeUser::new(9, "hubot"));
    app.login(&other).await;
    let revoked = session_jwt(&other).await;
    let other_instance = app.instance("").await;
    let r = other_instance
        .post("/auth/logout")
        .header(rocket::http::Header::new(
            "Authorization",
            format!("Bearer {revoked}"),
        ))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    rocket::tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    proxy.set_down(true);
    rocket::tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let r = app.client.get("/auth/token").dispatch().await;
    assert_eq!(r.status(), Status::ServiceUnavailable);
    assert_eq!(
        json(r).await,
        serde_json::json!({"token": null, "status": 503})
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(6));
    let r = app.client.post("/auth/github/refresh").dispatch().await;
    assert_eq!(r.status(), Status::ServiceUnavailable);
    // The guard needs no database; readiness says it is gone.
    assert_eq!(
        app.client.get("/strict").dispatch().await.status(),
        Status::Ok
    );
    let service = app
        .client
        .rocket()
        .state::<rocket_social_auth::AuthService>()
        .unwrap();
    assert!(!service.ready().await);
    // While the database is down, the last revocation list still holds.
    rocket::tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let r = app
        .client
        .get("/strict")
        .header(rocket::http::Header::new(
            "Authorization",
            format!("Bearer {revoked}"),
        ))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Unauthorized);
    // A login cannot be recorded: 503, no cookie change.
    let callback = app.authorize(&app.client, "/auth/github").await;
    let r = app
        .client
        .get(callback)
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::ServiceUnavailable);
    assert_eq!(json(r).await["error"], "database_unavailable");

    proxy.set_down(false);
    let r = app.client.get("/auth/token").dispatch().await;
    assert_eq!(r.status(), Status::Ok, "recovered without a restart");
    assert!(service.ready().await);
    drop(db);
}

/// Two instances refreshing the same rotating GitHub App token at the same moment make one
/// provider call; the other waits for the result and answers with it.
async fn concurrent_refreshes_make_one_provider_call(db: TestDb) {
    let app = TestApp::start(db).await;
    app.fake.set_token_mode(TokenMode::Expiring);
    app.login(&app.client).await;
    let jwt = session_jwt(&app.client).await;
    let other = app.instance("").await;
    app.fake
        .set_refresh_delay(Some(std::time::Duration::from_millis(400)));
    let bearer = || rocket::http::Header::new("Authorization", format!("Bearer {jwt}"));
    let (a, b) = rocket::tokio::join!(
        app.client
            .post("/auth/github/refresh")
            .header(bearer())
            .dispatch(),
        other
            .post("/auth/github/refresh")
            .header(bearer())
            .dispatch(),
    );
    assert_eq!((a.status(), b.status()), (Status::Ok, Status::Ok));
    assert_eq!(json(a).await, serde_json::json!({"status": "refreshed"}));
    assert_eq!(json(b).await, serde_json::json!({"status": "refreshed"}));
    assert_eq!(app.fake.refresh_calls(), 1, "one call to the provider");
    // The stored (rotated) refresh token is the live one: a later refresh works.
    app.fake.set_refresh_delay(None);
    let r = other
        .post("/auth/github/refresh")
        .header(bearer())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(app.fake.refresh_calls(), 2);
    assert!(app
        .fake
        .is_valid_access_token(&plain_token(&app.client).await));
}
