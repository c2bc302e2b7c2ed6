//! Sessions at scale: a database filled by the benchmarks' seeder (examples/seed) is read by the
//! app as its own — sealed tokens open, seeded JWTs sign in, revoked sessions are refused from
//! the start-up load on — and the purge deletes many expired sessions in batches, sparing the
//! others.

use std::time::{Duration, Instant};

use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
// What src/vault.rs takes from its parent (the crate root, in the library).
use rocket_social_auth::{ConfigError, Secret};

use crate::common::*;
use crate::db_tests;

#[path = "../../src/vault.rs"]
#[allow(dead_code)]
mod vault;

#[path = "../../examples/seed/seeder.rs"]
#[allow(dead_code)]
mod seeder;

db_tests!(
    a_seeded_database_is_the_apps_own,
    many_expired_sessions_are_purged_in_batches_sparing_the_others,
);

/// Seeds the (migrated) database of `app` with `plan`.
async fn seed(app: &TestApp, mut plan: seeder::Plan) -> seeder::Report {
    plan.jwt_secret = JWT_SECRET.into();
    let vault = vault::TokenVault::from_config(&[Secret::new(TOKEN_KEY)])
        .unwrap()
        .unwrap();
    let pool = app.db.pool().await;
    let mut conn = pool.acquire().await.unwrap();
    let report = seeder::seed(&mut conn, &vault, &plan).await.unwrap();
    drop(conn);
    pool.close().await;
    report
}

fn bearer(token: &str) -> Header<'static> {
    Header::new("Authorization", format!("Bearer {token}"))
}

async fn whoami(client: &Client, token: &str) -> serde_json::Value {
    json(client.get("/whoami").header(bearer(token)).dispatch().await).await
}

const EXPIRED: &str = "SELECT COUNT(*) FROM sessions WHERE expires_at < ";

fn expired_sql() -> String {
    format!("{EXPIRED}{}", now() - 86_400)
}

async fn a_seeded_database_is_the_apps_own(db: TestDb) {
    // The app migrates an empty database; the seeder fills it; an instance started after sees it.
    let app = TestApp::start(db).await;
    let mut plan = seeder::Plan::for_users(40);
    plan.revoked = 10;
    plan.expired = 30;
    plan.live = 12;
    plan.jwts = 5;
    let report = seed(&app, plan).await;
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 40);
    // Every fourth user has a second identity.
    assert_eq!(app.db.count("SELECT COUNT(*) FROM social_users").await, 50);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM sessions").await, 52);
    assert_eq!(report.jwts.len(), 5);
    let seeded = app.instance("").await;

    // A seeded session's JWT signs in as its user, and the provider token sealed by the seeder
    // opens in the app (the same vault, bound to the same row).
    let jwt = &report.jwts[0];
    let me = whoami(&seeded, jwt).await;
    assert_eq!(me["kind"], "social", "{me}");
    let sub: u64 = me["claims"]["sub"].as_str().unwrap().parse().unwrap();
    let provider = me["provider"].as_str().unwrap().to_owned();
    assert_eq!(me["claims"]["name"], seeder::profile(sub).0);
    let token = json(
        seeded
            .get("/auth/token")
            .header(bearer(jwt))
            .dispatch()
            .await,
    )
    .await;
    assert_eq!(
        token["token"],
        seeder::access_token(&provider, sub),
        "{token}"
    );

    // A session the seeder revoked is refused from the start: the start-up load read it.
    let pool = app.db.pool().await;
    let (jti, revoked_sub, revoked_provider, iat, exp): (String, String, String, i64, i64) =
        sqlx::query_as(
            "SELECT jti, sub, provider, created_at, expires_at FROM sessions \
             WHERE revoked_at IS NOT NULL AND expires_at > $1 LIMIT 1",
        )
        .bind(now())
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
    let user: u64 = revoked_sub.parse().unwrap();
    let revoked = seeder::mint(&key, "web_user", user, &revoked_provider, &jti, iat, exp).unwrap();
    assert_eq!(whoami(&seeded, &revoked).await["kind"], "anonymous");
    // The very same claims under a session nobody revoked are accepted (the refusal is the
    // revocation, not the token).
    let fresh = seeder::mint(
        &key,
        "web_user",
        user,
        &revoked_provider,
        "not-revoked",
        iat,
        exp,
    )
    .unwrap();
    assert_eq!(whoami(&seeded, &fresh).await["kind"], "social");

    // The seeded ids do not collide with the app's next user (PostgreSQL's sequences moved).
    let response = app.login(&app.client).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 41);
}

async fn many_expired_sessions_are_purged_in_batches_sparing_the_others(db: TestDb) {
    let app = TestApp::start(db).await;
    // 5,000 expired sessions spread over an hour of expiry: the purge's first batch spans a
    // minute of it, so nothing but a run of batches deletes them all.
    let mut plan = seeder::Plan::for_users(50);
    plan.revoked = 20;
    plan.expired = 5_000;
    plan.live = 30;
    seed(&app, plan).await;
    assert_eq!(app.db.count(&expired_sql()).await, 5_000);
    // A new instance purges at liftoff; logins go on meanwhile.
    let other = app.instance("").await;
    assert_eq!(app.login(&other).await.status(), Status::SeeOther);
    let begun = Instant::now();
    while app.db.count(&expired_sql()).await > 0 {
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "the purge ends within seconds, not at its next pass a minute later"
        );
        rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left = app
        .db
        .count(&format!(
            "SELECT COUNT(*) FROM sessions WHERE expires_at > {}",
            now()
        ))
        .await;
    assert_eq!(
        left,
        20 + 30 + 1,
        "revoked unexpired, live, and the login's own"
    );
}
