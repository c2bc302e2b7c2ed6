//! `kind = "discord"` against the fake Discord on loopback, on SQLite and PostgreSQL: snowflake
//! ids, display names, CDN avatars, verified emails, Discord's spaced errors and 429s, and
//! refresh rotation.

use rocket::http::Status;
use rocket::local::asynchronous::Client;
use rocket_social_auth::testing::{
    DiscordFault, DiscordRateLimitScope, FakeDiscord, FakeDiscordUser, FakeServer, RawAnswer,
};
use serde_json::{json, Value};

use crate::common::*;
use crate::db_tests;

db_tests!(
    signs_in_keyed_on_the_snowflake,
    names_avatars_and_emails,
    token_errors_are_named,
    api_errors_and_rate_limits_are_named,
    refresh_rotates_the_refresh_token,
);

const ID: &str = "1234567890";
const SECRET: &str = "discord-secret";
/// Over 2^53: an f64 would lose it.
const SNOWFLAKE: &str = "80351110224678912";

async fn fake() -> (FakeDiscord, FakeServer) {
    let fake = FakeDiscord::new(ID, SECRET);
    fake.sign_in_as(
        FakeDiscordUser::new(SNOWFLAKE, "nelly")
            .global_name("Nelly")
            .avatar("8342729096ea3675442027381ff50dfe")
            .email("nelly@discord.example", true),
    );
    let server = fake.clone().spawn().await.unwrap();
    (fake, server)
}

fn table(url: &str, extra: &str) -> String {
    format!(
        "[social_auth.providers.discord]\nclient_id = \"{ID}\"\nclient_secret = \"{SECRET}\"\nauthorize_url = \"{url}/api/oauth2/authorize\"\ntoken_url = \"{url}/api/oauth2/token\"\napi_url = \"{url}/api\"\n{extra}"
    )
}

async fn login(client: &Client) -> (Status, Value) {
    let start = client.get("/auth/discord").dispatch().await;
    assert_eq!(start.status(), Status::SeeOther);
    let location = start.headers().get_one("Location").unwrap().to_owned();
    drop(start);
    let callback = provider_redirect(&location).await;
    let done = client.get(callback).header(accept_json()).dispatch().await;
    let status = done.status();
    let body = done.into_string().await.unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn session(client: &Client) -> Value {
    json(client.get("/auth/session").dispatch().await).await
}

async fn signs_in_keyed_on_the_snowflake(db: TestDb) {
    let (fake, server) = fake().await;
    let app = TestApp::start_with(db, &table(server.url(), "link_by_verified_email = true")).await;
    let start = app.client.get("/auth/discord").dispatch().await;
    let location = url::Url::parse(start.headers().get_one("Location").unwrap()).unwrap();
    drop(start);
    assert_eq!(location.path(), "/api/oauth2/authorize");
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["scope"], "identify email");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["redirect_uri"],
        "http://127.0.0.1:8000/auth/discord/callback"
    );

    let (status, body) = login(&app.client).await;
    assert_eq!(status, Status::SeeOther, "{body}");
    let s = session(&app.client).await;
    assert_eq!(s["provider"], "discord");
    assert_eq!(s["user"]["name"], "Nelly", "global_name before username");
    assert_eq!(s["user"]["email"], "nelly@discord.example");
    assert_eq!(
        s["user"]["avatar_url"],
        format!(
            "https://cdn.discordapp.com/avatars/{SNOWFLAKE}/8342729096ea3675442027381ff50dfe.png"
        )
    );
    let pool = app.db.pool().await;
    let (social_id, key): (String, Option<String>) = sqlx::query_as(
        "SELECT s.social_id, u.email_key FROM social_users s JOIN users u ON u.id = s.user_id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(social_id, SNOWFLAKE, "the exact snowflake, as a string");
    assert_eq!(
        key.as_deref(),
        Some("nelly@discord.example"),
        "verified: vouched"
    );
    assert!(fake.is_valid_access_token(&plain_token(&app.client).await));

    // Renamed, same snowflake: the same user.
    fake.sign_in_as(FakeDiscordUser::new(SNOWFLAKE, "nelly2"));
    assert_eq!(login(&app.client).await.0, Status::SeeOther);
    assert_eq!(session(&app.client).await["user"]["name"], "nelly2");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 1);
}

async fn names_avatars_and_emails(db: TestDb) {
    let (fake, server) = fake().await;
    let app = TestApp::start_with(db, &table(server.url(), "")).await;
    // Animated avatar: .gif; no display name: the username; an unverified email: not vouched.
    fake.sign_in_as(
        FakeDiscordUser::new("175928847299117063", "mia")
            .avatar("a_fed43ab12698df65902ba06727e20c0e")
            .email("mia@discord.example", false),
    );
    assert_eq!(login(&app.client).await.0, Status::SeeOther);
    let s = session(&app.client).await;
    assert_eq!(s["user"]["name"], "mia");
    assert_eq!(
        s["user"]["avatar_url"],
        "https://cdn.discordapp.com/avatars/175928847299117063/a_fed43ab12698df65902ba06727e20c0e.gif"
    );
    assert_eq!(s["user"]["email"], "mia@discord.example");
    let key: Option<String> = sqlx::query_scalar("SELECT email_key FROM users")
        .fetch_one(&app.db.pool().await)
        .await
        .unwrap();
    assert_eq!(key, None, "an unverified email is not vouched for");

    // No avatar: the default one, by id for a migrated user, by discriminator for a legacy one.
    fake.sign_in_as(FakeDiscordUser::new("175928847299117063", "mia"));
    assert_eq!(login(&app.client).await.0, Status::SeeOther);
    let index = (175928847299117063u64 >> 22) % 6;
    assert_eq!(
        session(&app.client).await["user"]["avatar_url"],
        format!("https://cdn.discordapp.com/embed/avatars/{index}.png")
    );
    fake.sign_in_as(FakeDiscordUser::new("175928847299117063", "mia").legacy_discriminator("1337"));
    assert_eq!(login(&app.client).await.0, Status::SeeOther);
    let s = session(&app.client).await;
    assert_eq!(
        s["user"]["avatar_url"],
        "https://cdn.discordapp.com/embed/avatars/2.png"
    );
    assert_eq!(s["user"]["email"], Value::Null, "no email without one");

    // Only the `identify` scope: no email at all.
    let identify = app
        .instance("[social_auth.providers.discord]\nscopes = [\"identify\"]\n")
        .await;
    fake.sign_in_as(
        FakeDiscordUser::new("175928847299117063", "mia").email("mia@discord.example", true),
    );
    assert_eq!(login(&identify).await.0, Status::SeeOther);
    assert_eq!(session(&identify).await["user"]["email"], Value::Null);
}

async fn token_errors_are_named(db: TestDb) {
    let (fake, server) = fake().await;
    let app = TestApp::start_with(db, &table(server.url(), "")).await;
    for (error, description) in [
        ("invalid_grant", Some("Invalid \"code\" in request.")),
        ("invalid_request", Some("Invalid \"code_verifier\"")),
        ("invalid_client", None),
    ] {
        fake.set_fault(Some(DiscordFault::TokenError {
            error: error.into(),
            description: description.map(str::to_owned),
        }));
        let (status, body) = login(&app.client).await;
        assert_eq!(status, Status::BadGateway, "{error}: {body}");
        assert_eq!(body["provider_error"], error);
    }
    for scope in [
        DiscordRateLimitScope::User,
        DiscordRateLimitScope::Global,
        DiscordRateLimitScope::Shared,
    ] {
        fake.set_fault(Some(DiscordFault::TokenRateLimited {
            scope,
            retry_after: 1.5,
        }));
        let (status, body) = login(&app.client).await;
        assert_eq!(status, Status::BadGateway, "{scope:?}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("rate limited"), "{message}");
        assert!(message.contains("retry after 1.5"), "{message}");
    }
    fake.set_fault(None);
    // A code past its 100 seconds.
    let start = app.client.get("/auth/discord").dispatch().await;
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
    assert_eq!(json(r).await["provider_error"], "invalid_grant");
    // The user cancels.
    fake.set_fault(Some(DiscordFault::Denied));
    let (status, body) = login(&app.client).await;
    assert_eq!(status, Status::BadRequest, "{body}");
    assert_eq!(body["error"], "provider_denied", "{body}");
    assert_eq!(body["provider_error"], "access_denied", "{body}");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 0);
    assert!(app.client.cookies().get("jwt").is_none());
}

async fn api_errors_and_rate_limits_are_named(db: TestDb) {
    let (fake, server) = fake().await;
    let app = TestApp::start_with(db, &table(server.url(), "")).await;
    for (fault, needle) in [
        (DiscordFault::UserUnauthorized, "401: Unauthorized"),
        (
            DiscordFault::UserRateLimited {
                scope: DiscordRateLimitScope::User,
                retry_after: 64.57,
            },
            "You are being rate limited. retry after 64.57 s (user limit)",
        ),
        (
            DiscordFault::UserRateLimited {
                scope: DiscordRateLimitScope::Global,
                retry_after: 2.0,
            },
            "(global limit)",
        ),
        (
            DiscordFault::UserRateLimited {
                scope: DiscordRateLimitScope::Shared,
                retry_after: 2.0,
            },
            "The resource is being rate limited.",
        ),
        (
            DiscordFault::UserAnswer(RawAnswer::new(
                400,
                Some("application/json"),
                r#"{"code": 50035, "message": "Invalid Form Body", "errors": {}}"#,
            )),
            "Invalid Form Body",
        ),
        (
            DiscordFault::UserAnswer(RawAnswer::new(
                200,
                Some("application/json"),
                json!({"id": 80351110224678912u64, "username": "n"}).to_string(),
            )),
            "unexpected answer",
        ),
        (
            DiscordFault::UserAnswer(RawAnswer::new(
                200,
                Some("application/json"),
                json!({"id": "", "username": "n"}).to_string(),
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
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 0);
}

async fn refresh_rotates_the_refresh_token(db: TestDb) {
    let (fake, server) = fake().await;
    let app = TestApp::start_with(
        db,
        &format!(
            "[social_auth]\nexpose_refresh_token = true\n{}",
            table(server.url(), "")
        ),
    )
    .await;
    assert_eq!(login(&app.client).await.0, Status::SeeOther);
    let pool = app.db.pool().await;
    let row = || async {
        sqlx::query_as::<_, (String, String)>(
            "SELECT token, refresh_token FROM social_users WHERE provider = 'discord'",
        )
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
    let r = app.client.post("/auth/discord/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    drop(r);
    let (after, new) = (row().await, plain().await);
    assert_ne!(before.0, after.0, "new access token stored");
    assert_ne!(before.1, after.1, "new refresh token stored");
    assert!(fake.is_valid_refresh_token(&new) && !fake.is_valid_refresh_token(&old));
    assert_eq!(fake.refresh_calls(), 1);
    // Refreshing again spends the new one: rotation keeps working.
    let r = app.client.post("/auth/discord/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    drop(r);
    assert!(!fake.is_valid_refresh_token(&new));

    // The user removed the app: invalid_grant, sign in again.
    fake.revoke_all();
    let r = app.client.post("/auth/discord/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Unauthorized);
    assert_eq!(json(r).await, json!({"status": "reauthenticate"}));
}
