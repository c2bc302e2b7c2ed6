//! Audit events (issue 14 §1): each kind delivered to the app's policy with its fields, stored
//! in `auth_events` when asked, listed by `GET /auth/events` for their own user only, purged
//! after `retention_days`, never holding a token, and never failing a sign-in.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rocket::figment::providers::{Format, Toml};
use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
use rocket_social_auth::testing::{FakeGithub, TokenMode};
use rocket_social_auth::{AuthEvent, AuthEventKind, Policy, RefreshOutcome, SocialAuthFairing};
use serde_json::{json, Value};

use crate::common::*;
use crate::db_tests;
use crate::security::{facebook, facebook_toml, through_provider};

db_tests!(
    every_kind_of_event_with_its_fields_and_no_token,
    events_list_only_their_own_user,
    old_events_are_purged,
    a_failing_event_store_never_fails_a_sign_in,
    events_are_not_stored_unless_asked,
);

const STORE: &str = "[social_auth.audit]\nstore = true\n";
const AGENT: &str = "AuditTest/1.0";

/// A policy that keeps every event it is handed.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<AuthEvent>>>);

impl Policy for Recorder {
    fn on_event(&self, event: &AuthEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    fn take(&self) -> Vec<AuthEvent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// The test app with `policy` on its fairing.
async fn start(db: TestDb, extra: &str, policy: Recorder) -> TestApp {
    let fake = FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
    fake.sign_in_as(octocat());
    let server = fake.clone().spawn().await.expect("fake GitHub starts");
    let client = client(&db, server.url(), extra, policy).await;
    TestApp {
        client,
        fake,
        server,
        db,
        extra: extra.to_owned(),
    }
}

async fn client(db: &TestDb, fake_url: &str, extra: &str, policy: Recorder) -> Client {
    let app = rocket::custom(figment(&db.url, fake_url, extra))
        .attach(SocialAuthFairing::new().policy(policy))
        .mount("/", probe::routes());
    Client::tracked(app).await.expect("app launches")
}

/// A whole login from 192.0.2.7 with a `User-Agent`; returns the callback's status.
async fn login(app: &TestApp, client: &Client, agent: &str) -> Status {
    let callback = app.authorize(client, "/auth/github").await;
    client
        .get(callback)
        .remote("192.0.2.7:4711".parse().unwrap())
        .header(Header::new("User-Agent", agent.to_owned()))
        .dispatch()
        .await
        .status()
}

/// A stored row: at, kind, detail, user_id, provider, session_id, ip, user_agent.
type EventRow = (
    i64,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

async fn stored_rows(db: &TestDb) -> Vec<String> {
    let pool = db.pool().await;
    let rows: Vec<EventRow> =
        sqlx::query_as(
            "SELECT at, kind, detail, user_id, provider, session_id, ip, user_agent FROM auth_events ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.into_iter().map(|r| format!("{r:?}")).collect()
}

async fn events(client: &Client) -> (Status, Value) {
    let r = client.get("/auth/events").dispatch().await;
    let status = r.status();
    (status, json(r).await)
}

async fn every_kind_of_event_with_its_fields_and_no_token(db: TestDb) {
    let fb = facebook().await;
    let recorder = Recorder::default();
    let extra = format!("{STORE}{}", facebook_toml(&fb, ""));
    let app = start(db, &extra, recorder.clone()).await;
    let long_agent = format!("{AGENT} {}", "x".repeat(500));

    // A new user, then a returning one.
    assert_eq!(
        login(&app, &app.client, &long_agent).await,
        Status::SeeOther
    );
    let first_jwt = session_jwt(&app.client).await;
    let first = claims(&first_jwt);
    let user_id: i64 = first["sub"].as_str().unwrap().parse().unwrap();
    app.fake.set_token_mode(TokenMode::Expiring);
    assert_eq!(login(&app, &app.client, AGENT).await, Status::SeeOther);
    let jwt = session_jwt(&app.client).await;
    let jti = claims(&jwt)["jti"].as_str().unwrap().to_owned();
    let access_token = plain_token(&app.client).await;

    // A refused callback: a state of no flow.
    let r = app
        .client
        .get("/auth/github/callback?code=forged-code-123&state=forged-state-456")
        .remote("192.0.2.7:4711".parse().unwrap())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::BadRequest);
    drop(r);

    // A refresh, a link and an unlink, then logout everywhere and logout.
    let r = app.client.post("/auth/github/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    drop(r);
    let start_link = app.client.post("/auth/facebook/link").dispatch().await;
    assert_eq!(
        through_provider(&app.client, start_link).await,
        Status::SeeOther
    );
    let r = app.client.post("/auth/facebook/unlink").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    drop(r);
    let r = app.client.post("/auth/logout_all").dispatch().await;
    assert_eq!(r.status(), Status::SeeOther);
    drop(r);

    let seen = recorder.take();
    let kinds: Vec<&AuthEventKind> = seen.iter().map(|e| &e.kind).collect();
    assert_eq!(
        kinds,
        [
            &AuthEventKind::SignIn { new_user: true },
            &AuthEventKind::SignIn { new_user: false },
            &AuthEventKind::SignInRefused {
                code: "missing_flow".into()
            },
            &AuthEventKind::Refresh {
                outcome: RefreshOutcome::Refreshed
            },
            &AuthEventKind::Linked,
            &AuthEventKind::Unlinked,
            &AuthEventKind::LogoutEverywhere { sessions: 2 },
            &AuthEventKind::Logout,
        ],
        "{seen:#?}"
    );
    let sign_in = &seen[0];
    assert_eq!(sign_in.user_id, Some(user_id));
    assert_eq!(sign_in.provider.as_deref(), Some("github"));
    assert_eq!(sign_in.session_id.as_deref(), first["jti"].as_str());
    assert_eq!(sign_in.ip, Some("192.0.2.7".parse().unwrap()));
    let agent = sign_in.user_agent.as_deref().unwrap();
    assert!(
        agent.starts_with(AGENT) && agent.chars().count() == 200,
        "{agent}"
    );
    assert!(now() - sign_in.at < 60);
    assert_eq!(seen[1].session_id.as_deref(), Some(jti.as_str()));
    assert_eq!(seen[1].user_agent.as_deref(), Some(AGENT));
    assert_eq!(seen[2].user_id, Some(user_id), "refused while signed in");
    assert_eq!(seen[2].provider.as_deref(), Some("github"));
    for linked in &seen[4..6] {
        assert_eq!(linked.provider.as_deref(), Some("facebook"));
        assert_eq!(linked.user_id, Some(user_id));
    }
    assert_eq!(seen[7].session_id.as_deref(), Some(jti.as_str()));

    // Stored as delivered, listed newest first; no token, code, secret or cookie anywhere.
    let rows = stored_rows(&app.db).await;
    assert_eq!(rows.len(), seen.len(), "{rows:#?}");
    let lines: Vec<String> = seen.iter().map(ToString::to_string).collect();
    assert!(lines[0].starts_with(&format!(
        "social_auth::audit event=sign_in detail=new user={user_id} provider=github session="
    )));
    for secret in [
        first_jwt.as_str(),
        jwt.as_str(),
        access_token.as_str(),
        "forged-code-123",
        "forged-state-456",
        CLIENT_SECRET,
        JWT_SECRET,
        "fb-secret",
    ] {
        for text in rows.iter().chain(&lines) {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    // The user signed in again reads them: newest first, at most 50.
    assert_eq!(login(&app, &app.client, AGENT).await, Status::SeeOther);
    let (status, body) = events(&app.client).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(body["stored"], true);
    let listed = body["events"].as_array().unwrap();
    assert_eq!(listed.len(), 9);
    assert_eq!(listed[0]["kind"], "sign_in");
    assert_eq!(listed[0]["detail"], "returning");
    assert_eq!(listed[1]["kind"], "logout");
    assert_eq!(listed[8]["detail"], "new");
    assert_eq!(listed[8]["ip"], "192.0.2.7");
    assert_eq!(listed[8]["provider"], "github");
    let listed = body.to_string();
    assert!(!listed.contains(&access_token) && !listed.contains(&jwt));
}

async fn events_list_only_their_own_user(db: TestDb) {
    let app = start(db, STORE, Recorder::default()).await;
    let (status, _) = events(&app.client).await;
    assert_eq!(status, Status::Unauthorized, "signed out");

    assert_eq!(login(&app, &app.client, AGENT).await, Status::SeeOther);
    let octo_session = claims(&session_jwt(&app.client).await)["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = app.browser().await;
    app.fake
        .sign_in_as(rocket_social_auth::testing::FakeUser::new(42, "mona").name(Some("Mona")));
    assert_eq!(login(&app, &other, "Other/2.0").await, Status::SeeOther);
    let r = other.post("/auth/logout").dispatch().await;
    assert_eq!(r.status(), Status::SeeOther);
    drop(r);
    assert_eq!(login(&app, &other, "Other/2.0").await, Status::SeeOther);

    let (_, mine) = events(&app.client).await;
    let mine = mine["events"].as_array().unwrap().clone();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["session_id"], octo_session.as_str());
    let (_, theirs) = events(&other).await;
    let theirs = theirs["events"].as_array().unwrap().clone();
    assert_eq!(theirs.len(), 3, "{theirs:?}");
    assert!(theirs
        .iter()
        .all(|e| e["user_agent"] == "Other/2.0" || e["user_agent"].is_null()));
    assert!(theirs
        .iter()
        .all(|e| e["session_id"] != octo_session.as_str()));

    // A Local token (the app's own login) has no social events: 401 as signed out.
    let local = Client::tracked(
        rocket::custom(figment(&app.db.url, app.server.url(), STORE).merge(Toml::string("")))
            .attach(SocialAuthFairing::new())
            .mount("/", probe::routes()),
    )
    .await
    .unwrap();
    let service = local
        .rocket()
        .state::<rocket_social_auth::AuthService>()
        .unwrap();
    let jwt = service
        .issue_jwt(rocket_social_auth::Identity::new("1"))
        .await
        .unwrap();
    let r = local
        .get("/auth/events")
        .header(Header::new(
            "Authorization",
            format!("Bearer {}", jwt.token),
        ))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Unauthorized);
}

async fn old_events_are_purged(db: TestDb) {
    let extra = "[social_auth.audit]\nstore = true\nretention_days = 1\n";
    let app = start(db, extra, Recorder::default()).await;
    assert_eq!(login(&app, &app.client, AGENT).await, Status::SeeOther);
    let pool = app.db.pool().await;
    for at in [now() - 2 * 86_400, now() - 3_600] {
        sqlx::query("INSERT INTO auth_events (at, kind, user_id) VALUES ($1, 'logout', 1)")
            .bind(at)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let all = "SELECT COUNT(*) FROM auth_events";
    assert_eq!(app.db.count(all).await, 3);
    // Another instance purges at its first upkeep round, right after launch.
    let _other = client(&app.db, app.server.url(), extra, Recorder::default()).await;
    let started = Instant::now();
    while app.db.count(all).await != 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the old event is purged"
        );
        rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old = format!(
        "SELECT COUNT(*) FROM auth_events WHERE at < {}",
        now() - 86_400
    );
    assert_eq!(app.db.count(&old).await, 0);
}

async fn a_failing_event_store_never_fails_a_sign_in(db: TestDb) {
    let recorder = Recorder::default();
    let app = start(db, STORE, recorder.clone()).await;
    let pool = app.db.pool().await;
    sqlx::query("DROP TABLE auth_events")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(login(&app, &app.client, AGENT).await, Status::SeeOther);
    let r = app.client.get("/strict").dispatch().await;
    assert_eq!(r.status(), Status::Ok, "signed in");
    drop(r);
    assert_eq!(login(&app, &app.client, AGENT).await, Status::SeeOther);
    let r = app.client.post("/auth/logout").dispatch().await;
    assert_eq!(r.status(), Status::SeeOther);
    drop(r);
    // The app and the log still get them.
    assert_eq!(recorder.take().len(), 3);
}

async fn events_are_not_stored_unless_asked(db: TestDb) {
    let recorder = Recorder::default();
    let app = start(db, "", recorder.clone()).await;
    assert_eq!(login(&app, &app.client, AGENT).await, Status::SeeOther);
    assert_eq!(
        recorder.take().len(),
        1,
        "delivered to the app all the same"
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM auth_events").await, 0);
    let (status, body) = events(&app.client).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(body, json!({"events": [], "stored": false}));
}

#[rocket::async_test]
async fn a_zero_retention_fails_launch_naming_the_key() {
    let db = TestDb::sqlite().await;
    let app = rocket::custom(figment(
        &db.url,
        "http://127.0.0.1:9",
        "[social_auth.audit]\nstore = true\nretention_days = 0\n",
    ))
    .attach(SocialAuthFairing::new());
    let error = Client::tracked(app).await.expect_err("launch fails");
    assert!(matches!(
        error.kind(),
        rocket::error::ErrorKind::FailedFairings(_)
    ));
    let config_error = SocialAuthFairing::new()
        .check_config(&figment(
            &db.url,
            "http://127.0.0.1:9",
            "[social_auth.audit]\nretention_days = 0\n",
        ))
        .unwrap_err();
    assert!(
        config_error
            .to_string()
            .contains("social_auth.audit.retention_days"),
        "{config_error}"
    );
}

#[rocket::async_test]
async fn an_unreachable_rate_limit_store_is_an_event() {
    let recorder = Recorder::default();
    let extra = "[social_auth.rate_limit]\nper_minute = 30\nstore = \"redis\"\n\
                 redis_url = \"redis://127.0.0.1:9\"\nredis_timeout_ms = 200\n";
    let app = start(TestDb::sqlite().await, extra, recorder.clone()).await;
    for _ in 0..3 {
        let r = app
            .client
            .get("/auth/github")
            .remote("192.0.2.9:1000".parse().unwrap())
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::SeeOther, "on_store_error = \"allow\"");
    }
    let seen = recorder.take();
    assert_eq!(
        seen.len(),
        1,
        "one event per warning, not per request: {seen:?}"
    );
    assert_eq!(seen[0].kind, AuthEventKind::RateLimitStoreUnavailable);
    assert_eq!(seen[0].ip, Some("192.0.2.9".parse().unwrap()));
}
