//! The holes an outside review found, each closed and pinned by a test that fails without the
//! fix: a Local token acting as a social user, email linking through an untrusted voucher,
//! state-changing GETs from other sites, sessions that outlive an unlinked identity, cacheable
//! token answers, and a logout lost to a database that refused it.

use std::time::{Duration, Instant};

use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
use rocket_social_auth::testing::{FakeGithub, FakeUser, TokenMode};
use rocket_social_auth::{AuthService, Identity};
use serde_json::json;

use crate::common::*;
use crate::db_tests;
use crate::security::{
    bearer, facebook, facebook_toml, social_rows, strict_status, through_provider,
};

db_tests!(
    a_local_token_never_acts_as_a_social_user,
    local_and_social_sessions_never_share_revocation,
    email_links_only_between_trusted_providers,
    the_dev_provider_never_vouches,
    state_changing_gets_need_proof_of_our_own_site,
    unlinking_revokes_the_sessions_it_signed_in,
    token_answers_are_not_cached,
    a_refused_logout_is_retried_until_written,
    a_database_error_is_a_500_everywhere,
);

fn service(client: &Client) -> &AuthService {
    client.rocket().state::<AuthService>().unwrap()
}

/// A JWT signed with the app's secret, as the app itself could sign one.
fn signed(sub: &str, provider: Option<&str>) -> String {
    let mut claims = json!({
        "sub": sub, "role": "web_user", "iat": now(), "exp": now() + 600, "jti": format!("j-{sub}")
    });
    if let Some(provider) = provider {
        claims["provider"] = json!(provider);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

// ---- 1. A Local token never acts as a social user ----------------------------------------

async fn a_local_token_never_acts_as_a_social_user(db: TestDb) {
    let fb = facebook().await;
    let toml = format!(
        "[social_auth]\nexpose_refresh_token = true\n{}",
        facebook_toml(&fb, "")
    );
    let app = TestApp::start_with(db, &toml).await;
    app.fake.set_token_mode(TokenMode::Expiring);
    app.login(&app.client).await;
    let id = claims(&session_jwt(&app.client).await)["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let auth = service(&app.client);

    // The app's own tokens for subjects that name user `id`, and social-looking tokens whose
    // subject is not canonical decimal (which the app cannot issue any more).
    let mut tokens = Vec::new();
    for sub in [
        id.clone(),
        format!("+{id}"),
        format!("0{id}"),
        format!(" {id}"),
    ] {
        tokens.push(auth.issue_jwt(Identity::new(sub)).await.unwrap().token);
    }
    for sub in [format!("+{id}"), format!("0{id}")] {
        assert!(
            auth.issue_jwt(Identity::new(sub.clone()).provider("github"))
                .await
                .is_err(),
            "{sub:?} is no user id"
        );
        tokens.push(signed(&sub, Some("github")));
    }
    let before = social_rows(&app.db).await;
    let attacker = app.browser().await;
    for token in &tokens {
        let signed_out = |path: &str| format!("{path} with {token}");
        let r = attacker
            .post("/auth/facebook/link")
            .header(bearer(token))
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::Unauthorized, "{}", signed_out("link"));
        let r = attacker
            .post("/auth/github/unlink")
            .header(bearer(token))
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::Unauthorized, "{}", signed_out("unlink"));
        let r = attacker
            .post("/auth/github/refresh")
            .header(bearer(token))
            .dispatch()
            .await;
        assert_eq!(
            r.status(),
            Status::Unauthorized,
            "{}",
            signed_out("refresh")
        );
        let r = attacker
            .get("/auth/github/refresh")
            .header(bearer(token))
            .header(same_origin())
            .dispatch()
            .await;
        assert_eq!(
            r.status(),
            Status::Unauthorized,
            "{}",
            signed_out("GET refresh")
        );
        for (path, field) in [
            ("/auth/token", "token"),
            ("/auth/refresh_token", "refresh_token"),
        ] {
            let r = attacker.get(path).header(bearer(token)).dispatch().await;
            assert_eq!(r.status(), Status::Unauthorized, "{}", signed_out(path));
            assert_eq!(json(r).await, json!({field: null, "status": 401}));
        }
    }
    assert_eq!(
        social_rows(&app.db).await,
        before,
        "nothing linked or unlinked"
    );
    assert_eq!(app.fake.refresh_calls(), 0, "no refresh made");

    // A link flow of user `id` finished with a Local token for the same `sub`: refused.
    let start = app.client.post("/auth/facebook/link").dispatch().await;
    let location = start.headers().get_one("Location").unwrap().to_owned();
    drop(start);
    let answer = http_client().get(&location).send().await.unwrap();
    let back = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    let r = app
        .client
        .get(format!("{}?{}", back.path(), back.query().unwrap()))
        .header(bearer(&tokens[0]))
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Forbidden);
    assert_eq!(json(r).await["error"], "link_session_changed");
    assert_eq!(social_rows(&app.db).await, before);
    let _ = &fb.fake;
}

async fn local_and_social_sessions_never_share_revocation(db: TestDb) {
    let app = TestApp::start(db).await;
    app.login(&app.client).await;
    let social = session_jwt(&app.client).await;
    let id = claims(&social)["sub"].as_str().unwrap().to_owned();
    let auth = service(&app.client);
    let local = auth
        .issue_jwt(Identity::new(id.clone()))
        .await
        .unwrap()
        .token;

    // Logout everywhere as the Local user `id` (on another instance, as an API client): the
    // social user `id` stays signed in, there and on an instance that reads the database.
    let api = app.browser().await;
    let r = api
        .post("/auth/logout_all")
        .header(bearer(&local))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    let fresh = app.instance("").await;
    for instance in [&api, &fresh] {
        assert_eq!(strict_status(instance, &local).await, Status::Unauthorized);
        assert_eq!(strict_status(instance, &social).await, Status::Ok);
    }

    // And the other way round.
    let local = auth
        .issue_jwt(Identity::new(id.clone()))
        .await
        .unwrap()
        .token;
    let r = app.client.post("/auth/logout_all").dispatch().await;
    assert_eq!(r.status(), Status::SeeOther);
    let fresh = app.instance("").await;
    for instance in [&app.client, &fresh] {
        assert_eq!(strict_status(instance, &social).await, Status::Unauthorized);
        assert_eq!(strict_status(instance, &local).await, Status::Ok);
    }
}

// ---- 2. Email linking trusts only trusted vouchers ----------------------------------------

/// A GitHub-compatible provider table named `name` on `fake`'s server.
fn github_table(name: &str, url: &str, trusted: bool) -> String {
    format!(
        "[social_auth.providers.{name}]\nkind = \"github\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nauthorize_url = \"{url}/login/oauth/authorize\"\ntoken_url = \"{url}/login/oauth/access_token\"\napi_url = \"{url}\"\nlink_by_verified_email = {trusted}\n"
    )
}

async fn sign_in_with(client: &Client, provider: &str) -> String {
    let start = client.get(format!("/auth/{provider}")).dispatch().await;
    assert_eq!(through_provider(client, start).await, Status::SeeOther);
    claims(&session_jwt(client).await)["sub"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn vouchers(db: &TestDb) -> Vec<(i64, Option<String>)> {
    let pool = db.pool().await;
    sqlx::query_as("SELECT id, email_vouched_by FROM users ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap()
}

async fn email_links_only_between_trusted_providers(db: TestDb) {
    let work = FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
    let work_server = work.clone().spawn().await.unwrap();
    let extra = format!(
        "{}{}",
        github_table("work", work_server.url(), true),
        github_table("work2", work_server.url(), true)
    );
    // `github` (the test default) is not trusted for linking.
    let app = TestApp::start_with(db, &extra).await;
    app.fake
        .sign_in_as(FakeUser::new(1, "mallory").email("victim@example.com"));
    let mallory = sign_in_with(&app.client, "github").await;

    // The victim signs in through a trusted provider with the same verified address: the
    // address was vouched for by an untrusted provider, so no link (no pre-hijack).
    work.sign_in_as(FakeUser::new(2, "victim").email("Victim@Example.com"));
    let victim = sign_in_with(&app.browser().await, "work").await;
    assert_ne!(
        victim, mallory,
        "not linked onto the untrusted voucher's user"
    );
    assert_eq!(
        vouchers(&app.db).await,
        [
            (mallory.parse().unwrap(), Some("github".into())),
            (victim.parse().unwrap(), Some("work".into()))
        ]
    );

    // Two trusted providers: linked.
    work.sign_in_as(FakeUser::new(3, "ada").email("ada@example.com"));
    let ada = sign_in_with(&app.browser().await, "work").await;
    work.sign_in_as(FakeUser::new(4, "ada-work").email("ADA@example.com"));
    assert_eq!(sign_in_with(&app.browser().await, "work2").await, ada);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 3);
}

/// An app on a real port (the development provider calls back into it over HTTP).
struct Served {
    origin: String,
    _shutdown: ShutdownOnDrop,
}

struct ShutdownOnDrop(rocket::Shutdown);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.clone().notify();
    }
}

async fn serve(db: &TestDb, fake_url: &str, extra: &str) -> Served {
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let figment = figment(&db.url, fake_url, extra)
        .merge(("port", port))
        .merge(("address", "127.0.0.1"))
        .merge(("social_auth.public_url", origin.clone()));
    let rocket = rocket(figment).ignite().await.expect("app ignites");
    let shutdown = rocket.shutdown();
    rocket::tokio::spawn(rocket.launch());
    let started = Instant::now();
    while http_client()
        .get(format!("{origin}/whoami"))
        .send()
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the app serves"
        );
        rocket::tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Served {
        origin,
        _shutdown: ShutdownOnDrop(shutdown),
    }
}

async fn the_dev_provider_never_vouches(db: TestDb) {
    let work = FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
    let work_server = work.clone().spawn().await.unwrap();
    // Both trusted for linking, as a careless configuration would have it.
    let extra = format!(
        "[social_auth.providers.dev]\nkind = \"dev\"\nlink_by_verified_email = true\n{}",
        github_table("work", work_server.url(), true)
    );
    let app = serve(&db, "http://127.0.0.1:9", &extra).await;
    let origin = &app.origin;
    let mut browser = Browser::new();
    let http = browser.http.clone();
    // Anyone can be anyone with the dev provider: "alice" claims a verified address.
    let callback = browser.approve_dev(origin, "alice").await;
    let (status, _, body) = browser.send(http.get(&callback)).await;
    assert_eq!(status, 303, "{body}");

    // The real alice, through a trusted provider: not linked onto the dev user.
    work.sign_in_as(FakeUser::new(5, "alice").email("alice@dev.localhost"));
    let mut real = Browser::new();
    let (status, authorize, _) = real.send(http.get(format!("{origin}/auth/work"))).await;
    assert_eq!(status, 303);
    let answer = http.get(&authorize).send().await.unwrap();
    let back = answer.headers()["location"].to_str().unwrap().to_owned();
    let (status, _, body) = real.send(http.get(&back)).await;
    assert_eq!(status, 303, "{body}");
    let vouchers = vouchers(&db).await;
    assert_eq!(vouchers.len(), 2, "two users: {vouchers:?}");
    assert_eq!(vouchers[0].1, None, "the dev provider vouched for nothing");
    assert_eq!(vouchers[1].1.as_deref(), Some("work"));
}

// ---- 6. State-changing GETs need proof of our own site ------------------------------------

async fn state_changing_gets_need_proof_of_our_own_site(db: TestDb) {
    let app = TestApp::start_with(db, "[social_auth]\nlogout_url = \"/bye\"\n").await;
    app.fake.set_token_mode(TokenMode::Expiring);
    app.login(&app.client).await;
    let jwt = session_jwt(&app.client).await;
    let no_proof: [&[(&str, &str)]; 6] = [
        &[],
        &[("Sec-Fetch-Site", "cross-site")],
        // The browser's word decides over a Referer that says otherwise.
        &[
            ("Sec-Fetch-Site", "cross-site"),
            ("Referer", "http://127.0.0.1:8000/"),
        ],
        &[("Origin", "https://evil.example")],
        &[("Referer", "https://evil.example/page")],
        &[("Referer", "http://127.0.0.1:8000.evil.example/")],
    ];
    let proof: [&[(&str, &str)]; 6] = [
        &[("Sec-Fetch-Site", "same-origin")],
        &[("Sec-Fetch-Site", "same-site")],
        &[("Sec-Fetch-Site", "none")],
        &[("Origin", "http://127.0.0.1:8000")],
        &[("Referer", "http://127.0.0.1:8000/account")],
        &[("Referer", "http://127.0.0.1:8000")],
    ];
    let get = |path: &'static str, headers: &'static [(&'static str, &'static str)]| {
        let mut request = app.client.get(path);
        for (name, value) in headers {
            request = request.header(Header::new(*name, *value));
        }
        request
    };
    for headers in no_proof {
        let r = get("/auth/github/refresh", headers).dispatch().await;
        assert_eq!(r.status(), Status::Forbidden, "{headers:?}");
        assert_eq!(json(r).await, json!({"status": "forbidden"}));
        let r = get("/auth/logout", headers).dispatch().await;
        assert_eq!(r.status(), Status::SeeOther, "{headers:?}");
        assert_eq!(r.headers().get_one("Location"), Some("/bye"));
        drop(r);
        assert_eq!(
            strict_status(&app.client, &jwt).await,
            Status::Ok,
            "{headers:?}"
        );
        assert!(app.client.cookies().get("jwt").is_some(), "{headers:?}");
    }
    assert_eq!(app.fake.refresh_calls(), 0, "no refresh without proof");
    for headers in proof {
        let r = get("/auth/github/refresh", headers).dispatch().await;
        assert_eq!(r.status(), Status::Ok, "{headers:?}");
    }
    // POST keeps its rule: a client that sends neither header is not a browser.
    let r = app.client.post("/auth/github/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    let r = get("/auth/logout", proof[4]).dispatch().await;
    assert_eq!(r.status(), Status::SeeOther);
    drop(r);
    assert_eq!(strict_status(&app.client, &jwt).await, Status::Unauthorized);
}

// ---- 8. Unlinking revokes what the identity signed in -------------------------------------

async fn unlinking_revokes_the_sessions_it_signed_in(db: TestDb) {
    let fb = facebook().await;
    let app = TestApp::start_with(db, &facebook_toml(&fb, "")).await;
    app.login(&app.client).await;
    let through_github = session_jwt(&app.client).await;
    let start = app.client.post("/auth/facebook/link").dispatch().await;
    assert_eq!(through_provider(&app.client, start).await, Status::SeeOther);
    let b = app.browser().await;
    let start = b.get("/auth/facebook").dispatch().await;
    assert_eq!(through_provider(&b, start).await, Status::SeeOther);
    let through_facebook = session_jwt(&b).await;
    assert_eq!(
        claims(&through_facebook)["sub"],
        claims(&through_github)["sub"]
    );
    let c = app.browser().await;
    app.login(&c).await;
    let also_github = session_jwt(&c).await;

    let r = app.client.post("/auth/facebook/unlink").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(
        strict_status(&app.client, &through_facebook).await,
        Status::Unauthorized
    );
    let other = app.instance("").await;
    assert_eq!(
        strict_status(&other, &through_facebook).await,
        Status::Unauthorized
    );
    for jwt in [&through_github, &also_github] {
        assert_eq!(strict_status(&app.client, jwt).await, Status::Ok);
        assert_eq!(strict_status(&other, jwt).await, Status::Ok);
    }

    // Unlinking the identity this very session signed in with signs it out.
    let start = app.client.post("/auth/facebook/link").dispatch().await;
    assert_eq!(through_provider(&app.client, start).await, Status::SeeOther);
    let d = app.browser().await;
    let start = d.get("/auth/facebook").dispatch().await;
    assert_eq!(through_provider(&d, start).await, Status::SeeOther);
    let own = session_jwt(&d).await;
    let r = d.post("/auth/facebook/unlink").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    drop(r);
    assert!(d.cookies().get("jwt").is_none(), "its cookie is removed");
    let fresh = app.instance("").await;
    for instance in [&d, &fresh] {
        assert_eq!(strict_status(instance, &own).await, Status::Unauthorized);
        assert_eq!(strict_status(instance, &through_github).await, Status::Ok);
    }
    let _ = &fb.fake;
}

// ---- 9. Token answers are not cached, and the JWT stays out of scripts' reach -------------

fn no_store(response: &rocket::local::asynchronous::LocalResponse<'_>) -> bool {
    response.headers().get_one("Cache-Control") == Some("no-store")
}

async fn token_answers_are_not_cached(db: TestDb) {
    let app = TestApp::start_with(db, "[social_auth]\nexpose_refresh_token = true\n").await;
    app.fake.set_token_mode(TokenMode::Expiring);
    let callback = app.login(&app.client).await;
    assert_eq!(callback.status(), Status::SeeOther);
    assert!(no_store(&callback), "the callback sets the session cookie");
    drop(callback);
    let r = app.client.get("/auth/session").dispatch().await;
    assert!(no_store(&r));
    let body = json(r).await;
    assert_eq!(body["provider"], "github");
    assert!(body.get("jwt").is_none(), "no raw JWT by default: {body}");
    for path in ["/auth/token", "/auth/refresh_token"] {
        let r = app.client.get(path).dispatch().await;
        assert_eq!(r.status(), Status::Ok, "{path}");
        assert!(no_store(&r), "{path}");
    }
    let r = app.client.post("/auth/github/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    assert!(no_store(&r));
    drop(r);
    let r = app
        .client
        .get("/auth/github/refresh")
        .header(same_origin())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    assert!(no_store(&r));
    drop(r);

    // Opted in: the raw JWT is there, the same as the cookie's.
    let exposed = app
        .instance("[social_auth]\nsession_exposes_jwt = true\n")
        .await;
    app.login(&exposed).await;
    let r = exposed.get("/auth/session").dispatch().await;
    assert!(no_store(&r));
    let jwt = json(r).await["jwt"].as_str().unwrap().to_owned();
    assert_eq!(jwt, session_jwt(&exposed).await);
}

// ---- 11. A logout that could not be recorded is not lost ----------------------------------

/// Makes the database refuse (`refuse`) or accept again every `UPDATE` of `table`: an answer
/// with an error, not an unreachable database.
pub(crate) async fn refuse_updates(db: &TestDb, table: &str, refuse: bool) {
    let pool = db.pool().await;
    let statements: Vec<String> = match (db.backend, refuse) {
        ("sqlite", true) => vec![format!(
            "CREATE TRIGGER refuse_{table} BEFORE UPDATE ON {table} \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )],
        ("sqlite", false) => vec![format!("DROP TRIGGER refuse_{table}")],
        (_, true) => vec![
            "CREATE OR REPLACE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
                .to_owned(),
            format!(
                "CREATE TRIGGER refuse_{table} BEFORE UPDATE ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION refuse_update()"
            ),
        ],
        (_, false) => vec![format!("DROP TRIGGER refuse_{table} ON {table}")],
    };
    for sql in statements {
        sqlx::query(&sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

async fn a_refused_logout_is_retried_until_written(db: TestDb) {
    let app = TestApp::start_with(db, "[social_auth]\nrevocation_cache_secs = 1\n").await;
    app.login(&app.client).await;
    let jwt = session_jwt(&app.client).await;
    let jti = claims(&jwt)["jti"].as_str().unwrap().to_owned();
    let revoked =
        format!("SELECT COUNT(*) FROM sessions WHERE jti = '{jti}' AND revoked_at IS NOT NULL");

    refuse_updates(&app.db, "sessions", true).await;
    let r = app.client.post("/auth/logout").dispatch().await;
    assert_eq!(r.status(), Status::ServiceUnavailable);
    assert_eq!(json(r).await, json!({"status": "database_unavailable"}));
    assert!(
        app.client.cookies().get("jwt").is_none(),
        "the cookie is removed"
    );
    assert_eq!(
        strict_status(&app.client, &jwt).await,
        Status::Unauthorized,
        "revoked on this instance at once"
    );
    assert_eq!(app.db.count(&revoked).await, 0, "not written yet");

    refuse_updates(&app.db, "sessions", false).await;
    let started = Instant::now();
    while app.db.count(&revoked).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the revocation is written within seconds of the database answering"
        );
        rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Another instance learns it from the database, as usual.
    let other = app.instance("").await;
    assert_eq!(strict_status(&other, &jwt).await, Status::Unauthorized);
}

// ---- One answer for a database that answers with an error (issue 11 §4) -----------------

/// A database that answers with an error is a 500 `storage_error` everywhere, and one that
/// cannot be reached a 503 `database_unavailable` (refresh and unlink said 503 for both).
async fn a_database_error_is_a_500_everywhere(db: TestDb) {
    let fb = facebook().await;
    let app = TestApp::start_with(db, &facebook_toml(&fb, "")).await;
    app.fake.set_token_mode(TokenMode::Expiring);
    app.login(&app.client).await;
    let start = app.client.post("/auth/facebook/link").dispatch().await;
    assert_eq!(through_provider(&app.client, start).await, Status::SeeOther);

    refuse_updates(&app.db, "social_users", true).await;
    let r = app.client.post("/auth/github/refresh").dispatch().await;
    assert_eq!(r.status(), Status::InternalServerError);
    assert_eq!(json(r).await, json!({"status": "storage_error"}));
    let callback = app.authorize(&app.client, "/auth/github").await;
    let r = app
        .client
        .get(callback)
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::InternalServerError);
    assert_eq!(json(r).await["error"], "storage_error");
    refuse_updates(&app.db, "social_users", false).await;

    refuse_updates(&app.db, "users", true).await;
    let r = app.client.post("/auth/facebook/unlink").dispatch().await;
    assert_eq!(r.status(), Status::InternalServerError);
    assert_eq!(json(r).await, json!({"status": "storage_error"}));
    refuse_updates(&app.db, "users", false).await;
    assert_eq!(social_rows(&app.db).await.len(), 2, "nothing unlinked");
    let _ = &fb.fake;
}
