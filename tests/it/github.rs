//! The GitHub login end to end against the fake GitHub on loopback, on SQLite and PostgreSQL.

use rocket::http::{Cookie, Status};
use rocket_social_auth::testing::{ApiFault, FakeUser, TokenFault, TokenMode};

use crate::common::*;
use crate::db_tests;

db_tests!(
    happy_path_signs_in_and_stores_user,
    second_login_updates_same_user_and_keeps_refresh_token,
    login_while_signed_in_switches_user,
    next_is_honoured_only_as_local_path,
    state_is_checked_before_anything,
    expired_and_foreign_flows_are_refused,
    provider_sent_error_is_named,
    github_http_200_error_is_a_502,
    token_endpoint_failures,
    api_failures,
    emails_unavailable_means_no_email,
    replayed_code_fails,
    concurrent_first_logins_make_one_user,
);

async fn happy_path_signs_in_and_stores_user(db: TestDb) {
    let app = TestApp::start(db).await;
    let client = &app.client;

    let start = client.get("/auth/github").dispatch().await;
    assert_eq!(start.status(), Status::SeeOther);
    let location = url::Url::parse(start.headers().get_one("Location").unwrap()).unwrap();
    assert!(location
        .as_str()
        .starts_with(&format!("{}/login/oauth/authorize?", app.server.url())));
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(
        q["redirect_uri"],
        "http://127.0.0.1:8000/auth/github/callback"
    );
    assert_eq!(q["scope"], "read:user user:email");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 32);
    let flow = start
        .cookies()
        .get("social_auth_flow_github")
        .expect("flow cookie");
    assert_eq!(flow.same_site(), Some(rocket::http::SameSite::Lax));
    assert_eq!(flow.http_only(), Some(true));
    assert_eq!(flow.max_age(), Some(rocket::time::Duration::minutes(10)));
    assert_eq!(flow.path(), Some("/auth/github"));
    assert!(
        !flow.value().contains(&q["state"].to_string()),
        "flow cookie is encrypted"
    );

    let callback = provider_redirect(location.as_str()).await;
    let done = client.get(callback).dispatch().await;
    assert_eq!(done.status(), Status::SeeOther);
    assert_eq!(done.headers().get_one("Location"), Some("/"));
    let jwt_cookie = done.cookies().get("jwt").expect("jwt cookie").clone();
    assert_eq!(jwt_cookie.same_site(), Some(rocket::http::SameSite::Lax));
    assert_eq!(jwt_cookie.http_only(), Some(true));
    assert_ne!(
        jwt_cookie.secure(),
        Some(true),
        "not Secure on an http public_url"
    );
    assert_eq!(
        jwt_cookie.max_age(),
        Some(rocket::time::Duration::minutes(60))
    );
    assert!(
        client.cookies().get("social_auth_flow_github").is_none(),
        "flow cookie removed"
    );
    drop(done);

    let session = client.get("/auth/session").dispatch().await;
    assert_eq!(session.status(), Status::Ok);
    let session = json(session).await;
    let id = session["user"]["id"].as_i64().expect("numeric id");
    assert_eq!(session["user"]["name"], "The Octocat");
    assert_eq!(session["user"]["email"], "octocat@github.example");
    assert_eq!(session["provider"], "github");
    let claims = claims(&session_jwt(client).await);
    assert_eq!(claims["sub"], id.to_string());
    assert_eq!(claims["role"], "web_user");
    assert_eq!(claims["provider"], "github");
    assert_eq!(claims["avatar_url"], "https://avatars.example.com/u/583231");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(session["expires_at"], claims["exp"]);
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));

    let pool = app.db.pool().await;
    let (user_id, social_id, token, refresh): (i64, String, Option<String>, Option<String>) =
        sqlx::query_as("SELECT user_id, social_id, token, refresh_token FROM social_users WHERE provider = 'github'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(user_id, id);
    assert_eq!(social_id, "583231", "keyed on GitHub's numeric id");
    let token = token.expect("access token stored");
    assert!(token.starts_with("v1."), "encrypted at rest: {token}");
    let plain = plain_token(client).await;
    assert!(plain.starts_with("gho_") && app.fake.is_valid_access_token(&plain));
    assert!(!token.contains(&plain), "no plain token in the database");
    assert_eq!(refresh, None);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 1);

    let me = client.get("/whoami").dispatch().await;
    let me = json(me).await;
    assert_eq!(me["kind"], "social");
    assert_eq!(me["provider"], "github");
}

async fn second_login_updates_same_user_and_keeps_refresh_token(db: TestDb) {
    let app = TestApp::start(db).await;
    app.fake.set_token_mode(TokenMode::Expiring);
    assert_eq!(app.login(&app.client).await.status(), Status::SeeOther);
    let first = claims(&session_jwt(&app.client).await);
    let pool = app.db.pool().await;
    let (token1, refresh1): (String, String) =
        sqlx::query_as("SELECT token, refresh_token FROM social_users")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(refresh1.starts_with("v1."), "encrypted at rest");

    // The same GitHub account, renamed, in another browser; this time no refresh token.
    app.fake.set_token_mode(TokenMode::OAuthApp);
    app.fake.sign_in_as(octocat().name(Some("Mona Renamed")));
    let other = app.browser().await;
    assert_eq!(app.login(&other).await.status(), Status::SeeOther);
    let second = claims(&session_jwt(&other).await);
    assert_eq!(first["sub"], second["sub"]);
    assert_eq!(second["name"], "Mona Renamed");

    let (token2, refresh2): (String, String) =
        sqlx::query_as("SELECT token, refresh_token FROM social_users")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_ne!(token1, token2, "access token updated");
    assert_eq!(refresh1, refresh2, "refresh token kept when none is sent");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM social_users").await, 1);
    let name: String = sqlx::query_scalar("SELECT name FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(name, "Mona Renamed", "profile updated");
}

async fn login_while_signed_in_switches_user(db: TestDb) {
    let app = TestApp::start(db).await;
    app.login(&app.client).await;
    let first = claims(&session_jwt(&app.client).await);
    app.fake
        .sign_in_as(FakeUser::new(9, "hubot").email("hubot@github.example"));
    assert_eq!(app.login(&app.client).await.status(), Status::SeeOther);
    let second = claims(&session_jwt(&app.client).await);
    assert_ne!(first["sub"], second["sub"]);
    assert_eq!(second["name"], "hubot");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 2);
}

async fn next_is_honoured_only_as_local_path(db: TestDb) {
    let app = TestApp::start(db).await;
    let cases = [
        ("/account%3Ftab%3D2", "/account?tab=2"),
        ("/", "/"),
        ("%2F%2Fevil.example", "/"),
        ("%2F%5Cevil.example", "/"),
        ("https%3A%2F%2Fevil.example", "/"),
        ("javascript%3Aalert(1)", "/"),
        ("%2Fa%0D%0ALocation%3A%20x", "/"),
        ("evil.example", "/"),
        ("%2F%09%2Fevil.example", "/"),
    ];
    for (next, expected) in cases {
        let callback = app
            .authorize(&app.client, &format!("/auth/github?next={next}"))
            .await;
        let done = app.client.get(callback).dispatch().await;
        assert_eq!(done.status(), Status::SeeOther, "next={next}");
        assert_eq!(
            done.headers().get_one("Location"),
            Some(expected),
            "next={next}"
        );
    }
}

async fn state_is_checked_before_anything(db: TestDb) {
    let app = TestApp::start(db).await;
    // No flow at all (a fresh browser).
    let stranger = app.browser().await;
    let r = stranger
        .get("/auth/github/callback?code=abc&state=xyz")
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::BadRequest);
    assert_eq!(json(r).await["error"], "missing_flow");

    // A wrong state: refused, nothing stored, no provider call; the pending flow is left
    // alone (a forged callback cannot cancel a login in progress).
    let callback = app.authorize(&app.client, "/auth/github").await;
    let forged = callback.replace("state=", "state=x");
    let calls = app.fake.token_calls();
    let r = app
        .client
        .get(forged)
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::BadRequest);
    assert_eq!(json(r).await["error"], "state_mismatch");
    assert_eq!(
        app.fake.token_calls(),
        calls,
        "no code exchange on a bad state"
    );

    // No state parameter.
    let second = app.authorize(&app.client, "/auth/github").await;
    let code_only = second
        .split('&')
        .filter(|p| !p.contains("state="))
        .collect::<Vec<_>>()
        .join("&");
    let r = app.client.get(code_only).dispatch().await;
    assert_eq!(r.status(), Status::BadRequest);
    let page = r.into_string().await.unwrap();
    assert!(page.contains("missing_state"), "{page}");

    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 0);
    assert!(app.client.cookies().get("jwt").is_none());

    // Neither failure spent the flow: the genuine callback still completes, once.
    let r = app.client.get(&callback).dispatch().await;
    assert_eq!(
        r.status(),
        Status::SeeOther,
        "the flow survives a mismatched callback"
    );
    drop(r);
    let r = app
        .client
        .get(callback)
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::BadRequest, "a flow completes only once");
    assert_eq!(json(r).await["error"], "state_mismatch");
}

async fn expired_and_foreign_flows_are_refused(db: TestDb) {
    let app = TestApp::start_with(
        db,
        &format!(
            "[social_auth.providers.work]\nkind = \"github\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nauthorize_url = \"http://127.0.0.1:9/a\"\ntoken_url = \"http://127.0.0.1:9/t\"\napi_url = \"http://127.0.0.1:9\"\n"
        ),
    )
    .await;
    // A flow older than ten minutes (test clients ignore Max-Age, the server does not).
    let flow = serde_json::json!({
        "provider": "github", "state": "s1", "verifier": "v".repeat(43), "next": null,
        "created_at": now() - 601,
    });
    let r = app
        .client
        .get("/auth/github/callback?code=c&state=s1")
        .private_cookie(
            Cookie::build(("social_auth_flow_github", flow.to_string())).path("/auth/github"),
        )
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::BadRequest);
    assert_eq!(json(r).await["error"], "flow_expired");

    // A flow started for `work` is no good at github's callback.
    let start = app.client.get("/auth/work").dispatch().await;
    let location = url::Url::parse(start.headers().get_one("Location").unwrap()).unwrap();
    let state = location
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let r = app
        .client
        .get(format!("/auth/github/callback?code=c&state={state}"))
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::BadRequest);
    assert_eq!(json(r).await["error"], "missing_flow");
    // Even with the cookie moved under github's name.
    let moved = serde_json::json!({
        "provider": "work", "state": state, "verifier": "v".repeat(43), "next": null, "created_at": now(),
    });
    let r = app
        .client
        .get(format!("/auth/github/callback?code=c&state={state}"))
        .private_cookie(
            Cookie::build(("social_auth_flow_github", moved.to_string())).path("/auth/github"),
        )
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::BadRequest);
    assert_eq!(json(r).await["error"], "state_mismatch");
    assert_eq!(app.fake.token_calls(), 0);
}

async fn provider_sent_error_is_named(db: TestDb) {
    let app = TestApp::start(db).await;
    for (error, accept) in [("access_denied", true), ("redirect_uri_mismatch", false)] {
        let callback = app.authorize(&app.client, "/auth/github").await;
        let state = callback
            .split("state=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_owned();
        let path = format!(
            "/auth/github/callback?error={error}&error_description=The+user+has+denied+your+application+access.&error_uri=https%3A%2F%2Fdocs.github.com&state={state}"
        );
        let mut request = app.client.get(path);
        if accept {
            request = request.header(accept_json());
        }
        let r = request.dispatch().await;
        assert_eq!(r.status(), Status::BadRequest);
        let body = r.into_string().await.unwrap();
        if accept {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"], "provider_denied");
            assert_eq!(v["provider_error"], error);
            assert_eq!(v["status"], 400);
        } else {
            assert!(body.contains(error) && body.contains("<html"), "{body}");
        }
    }
    assert_eq!(app.fake.token_calls(), 0);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 0);
}

async fn github_http_200_error_is_a_502(db: TestDb) {
    let app = TestApp::start(db).await;
    for code in [
        "bad_verification_code",
        "incorrect_client_credentials",
        "unverified_user_email",
    ] {
        app.fake
            .set_token_fault(Some(TokenFault::Error200(code.into())));
        let callback = app.authorize(&app.client, "/auth/github").await;
        let r = app
            .client
            .get(callback)
            .header(accept_json())
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::BadGateway, "{code}");
        let v = json(r).await;
        assert_eq!(v["error"], "provider_error");
        assert_eq!(v["provider_error"], code);
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 0);
    assert!(app.client.cookies().get("jwt").is_none());
}

async fn token_endpoint_failures(db: TestDb) {
    let app = TestApp::start_with(db, "[social_auth]\nhttp_timeout_secs = 1\n").await;
    for (fault, status) in [
        (TokenFault::Html500, Status::BadGateway),
        (TokenFault::Malformed, Status::BadGateway),
        (TokenFault::Endless, Status::BadGateway),
        (TokenFault::Hang, Status::GatewayTimeout),
    ] {
        app.fake.set_token_fault(Some(fault.clone()));
        let callback = app.authorize(&app.client, "/auth/github").await;
        let started = std::time::Instant::now();
        let r = app
            .client
            .get(callback)
            .header(accept_json())
            .dispatch()
            .await;
        assert_eq!(r.status(), status, "{fault:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{fault:?} answered quickly"
        );
        let v = json(r).await;
        let expected = if status == Status::GatewayTimeout {
            "provider_timeout"
        } else {
            "provider_error"
        };
        assert_eq!(v["error"], expected, "{fault:?}");
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 0);
}

async fn api_failures(db: TestDb) {
    let app = TestApp::start_with(db, "[social_auth]\nhttp_timeout_secs = 1\n").await;
    for (fault, status, needle) in [
        (
            ApiFault::UserUnauthorized,
            Status::BadGateway,
            "Bad credentials",
        ),
        (
            ApiFault::UserRateLimited,
            Status::BadGateway,
            "rate limited",
        ),
        (ApiFault::UserHang, Status::GatewayTimeout, "in time"),
    ] {
        app.fake.set_api_fault(Some(fault));
        let callback = app.authorize(&app.client, "/auth/github").await;
        let r = app
            .client
            .get(callback)
            .header(accept_json())
            .dispatch()
            .await;
        assert_eq!(r.status(), status, "{fault:?}");
        let v = json(r).await;
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{fault:?}: {v}"
        );
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 0);
}

async fn emails_unavailable_means_no_email(db: TestDb) {
    let app = TestApp::start(db).await;
    for fault in [ApiFault::EmailsForbidden, ApiFault::EmailsNotFound] {
        app.fake.set_api_fault(Some(fault));
        let r = app.login(&app.client).await;
        assert_eq!(r.status(), Status::SeeOther, "{fault:?}");
        drop(r);
        let c = claims(&session_jwt(&app.client).await);
        assert_eq!(c["email"], serde_json::Value::Null, "{fault:?}");
    }
    // An unverified or non-primary email is never taken.
    app.fake.set_api_fault(None);
    let mut user = FakeUser::new(77, "unverified");
    user.emails = vec![
        ("a@x.example".into(), true, false),
        ("b@x.example".into(), false, true),
    ];
    app.fake.sign_in_as(user);
    app.login(&app.client).await;
    let c = claims(&session_jwt(&app.client).await);
    assert_eq!(c["email"], serde_json::Value::Null);
}

async fn replayed_code_fails(db: TestDb) {
    let app = TestApp::start(db).await;
    let callback = app.authorize(&app.client, "/auth/github").await;
    let code = callback
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.client.get(callback).dispatch().await.status(),
        Status::SeeOther
    );
    // A new flow in another browser, with the spent code.
    let other = app.browser().await;
    let fresh = app.authorize(&other, "/auth/github").await;
    let state = fresh
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let r = other
        .get(format!("/auth/github/callback?code={code}&state={state}"))
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::BadGateway);
    assert_eq!(json(r).await["provider_error"], "bad_verification_code");
    assert!(other.cookies().get("jwt").is_none());
}

async fn concurrent_first_logins_make_one_user(db: TestDb) {
    let app = TestApp::start(db).await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let browser = std::sync::Arc::new(app.browser().await);
        let callback = app.authorize(&browser, "/auth/github").await;
        tasks.push((browser, callback));
    }
    let handles: Vec<_> = tasks
        .into_iter()
        .map(|(browser, callback)| {
            rocket::tokio::spawn(async move {
                let status = browser.get(callback).dispatch().await.status();
                let sub = claims(&session_jwt(&browser).await)["sub"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                (status, sub)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for h in handles {
        answers.push(h.await.unwrap());
    }
    let first = &answers[0].1;
    for (status, sub) in &answers {
        assert_eq!(*status, Status::SeeOther);
        assert_eq!(sub, first, "every login answers as the same user");
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM social_users").await, 1);
}

#[rocket::async_test]
async fn cookies_are_secure_on_an_https_public_url() {
    let app = TestApp::start_with(
        TestDb::sqlite().await,
        "[social_auth]\npublic_url = \"https://app.example\"\n",
    )
    .await;
    let start = app.client.get("/auth/github").dispatch().await;
    let location = url::Url::parse(start.headers().get_one("Location").unwrap()).unwrap();
    let redirect_uri = location
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1;
    assert_eq!(redirect_uri, "https://app.example/auth/github/callback");
    let flow = start
        .cookies()
        .get("__Secure-social_auth_flow_github")
        .unwrap();
    assert_eq!(flow.secure(), Some(true));
}

#[rocket::async_test]
async fn unknown_provider_is_404() {
    let app = TestApp::start(TestDb::sqlite().await).await;
    assert_eq!(
        app.client.get("/auth/google").dispatch().await.status(),
        Status::NotFound
    );
    assert_eq!(
        app.client
            .get("/auth/google/callback?code=a&state=b")
            .dispatch()
            .await
            .status(),
        Status::NotFound
    );
}

/// The fake is only worth its tests if it answers like GitHub: form-encoded without
/// `Accept: application/json`, errors with HTTP 200, a User-Agent required on the API.
#[rocket::async_test]
async fn the_fake_speaks_githubs_wire_format() {
    let fake = rocket_social_auth::testing::FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
    let server = fake.clone().spawn().await.unwrap();
    let http = http_client();
    let token_url = format!("{}/login/oauth/access_token", server.url());
    let form = [
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("code", "nope"),
    ];
    let r = http.post(&token_url).form(&form).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/x-www-form-urlencoded"));
    let body = r.text().await.unwrap();
    assert!(body.starts_with("error=bad_verification_code&"), "{body}");
    let r = http
        .post(&token_url)
        .header("Accept", "application/json")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["error"], "bad_verification_code");
    // Credentials in HTTP Basic only are not GitHub's documented way: refused.
    let r = http
        .post(&token_url)
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .header("Accept", "application/json")
        .form(&[("code", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.text().await.unwrap()).unwrap()["error"],
        "incorrect_client_credentials"
    );
    let r = http
        .get(format!("{}/user", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "no User-Agent");
    let r = http
        .get(format!("{}/user", server.url()))
        .header("User-Agent", "t")
        .bearer_auth("gho_unknown")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.text().await.unwrap()).unwrap()["message"],
        "Bad credentials"
    );
}

/// A provider profile of any size still gives a session cookie a browser keeps (about 4 KB):
/// the name is cut, an over-long email or avatar is dropped.
#[rocket::async_test]
async fn huge_profiles_still_fit_in_the_cookie() {
    let app = TestApp::start(TestDb::sqlite().await).await;
    let mut user = FakeUser::new(31337, "big").name(Some(&"N".repeat(100_000)));
    user.avatar_url = Some(format!("https://a.example/{}", "x".repeat(50_000)));
    user.emails = vec![(format!("{}@example.com", "e".repeat(5_000)), true, true)];
    app.fake.sign_in_as(user);
    let done = app.login(&app.client).await;
    assert_eq!(done.status(), Status::SeeOther);
    let cookie = done.cookies().get("jwt").unwrap().to_string();
    assert!(cookie.len() < 4000, "the cookie is {} bytes", cookie.len());
    drop(done);
    let session = json(app.client.get("/auth/session").dispatch().await).await;
    assert_eq!(
        session["user"]["name"].as_str().unwrap().chars().count(),
        200
    );
    assert_eq!(session["user"]["email"], serde_json::Value::Null);
    assert_eq!(session["user"]["avatar_url"], serde_json::Value::Null);
}

/// GitHub's `login` parameter picks a known account (the load harness spreads its logins over
/// many users with it); an unknown one falls back to the signed-in user.
#[rocket::async_test]
async fn the_fake_honours_the_login_parameter() {
    let fake = rocket_social_auth::testing::FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
    fake.sign_in_as(FakeUser::new(2, "hubot"));
    fake.sign_in_as(octocat());
    let server = fake.clone().spawn().await.unwrap();
    let http = http_client();
    let login_of = |login: &'static str| {
        let (http, root) = (http.clone(), server.url().to_owned());
        async move {
            let redirect_uri = "http://127.0.0.1:8000/auth/github/callback";
            let r = http
                .get(format!("{root}/login/oauth/authorize"))
                .query(&[("client_id", CLIENT_ID), ("redirect_uri", redirect_uri)])
                .query(&[("state", "s"), ("login", login)])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 302);
            let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
            let code = back.query_pairs().find(|(k, _)| k == "code").unwrap().1;
            let form = [
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("code", &*code),
                ("redirect_uri", redirect_uri),
            ];
            let token: serde_json::Value = http
                .post(format!("{root}/login/oauth/access_token"))
                .header("Accept", "application/json")
                .form(&form)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .map(|body| serde_json::from_str(&body).unwrap())
                .unwrap();
            let user: serde_json::Value = http
                .get(format!("{root}/user"))
                .header("User-Agent", "t")
                .bearer_auth(token["access_token"].as_str().unwrap())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .map(|body| serde_json::from_str(&body).unwrap())
                .unwrap();
            user["login"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(login_of("hubot").await, "hubot");
    assert_eq!(login_of("nobody").await, "octocat");
}
