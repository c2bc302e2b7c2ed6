//! `kind = "oauth2"`: providers configured only by a Rocket.toml table, against the fake GitHub,
//! Discord and X as far ends: JSON pointers into their userinfo, `token_auth` and PKCE as the
//! fakes check them, RFC 6749 errors (also with HTTP 200), refresh rotation.

use rocket::http::Status;
use rocket::local::asynchronous::Client;
use rocket_social_auth::testing::{
    DiscordFault, DiscordRateLimitScope, FakeDiscord, FakeDiscordUser, FakeServer, FakeX,
    FakeXUser, RawAnswer, TokenFault,
};
use serde_json::{json, Value};

use crate::common::*;
use crate::db_tests;

db_tests!(
    a_table_alone_signs_in,
    token_auth_post_and_basic_are_what_the_provider_checks,
    pkce_on_and_off,
    token_errors_are_read_as_rfc_6749_says,
    userinfo_answers_through_the_pointers,
    refresh_rotates_the_stored_refresh_token,
);

/// An `oauth2` table named `acme` with the fake GitHub (`/user`) at `url` as its far end.
fn github_end(url: &str, extra: &str) -> String {
    format!(
        r#"[social_auth.providers.acme]
kind = "oauth2"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
authorize_url = "{url}/login/oauth/authorize"
token_url = "{url}/login/oauth/access_token"
userinfo_url = "{url}/user"
scopes = ["read:user"]
{extra}
[social_auth.providers.acme.profile]
id = "/id"
name = "/name"
email = "/email"
email_verified = "/email_verified"
avatar_url = "/avatar_url"
"#
    )
}

const X_ID: &str = "x-client";
const X_SECRET: &str = "x-secret";

async fn fake_x() -> (FakeX, FakeServer) {
    let fake = FakeX::new(X_ID, X_SECRET);
    fake.sign_in_as(FakeXUser::new("2244994945", "X Developers", "xdevelopers"));
    let server = fake.clone().spawn().await.unwrap();
    (fake, server)
}

/// A table named `xish` with the fake X as its far end.
fn x_end(url: &str, extra: &str) -> String {
    format!(
        r#"[social_auth.providers.xish]
kind = "oauth2"
client_id = "{X_ID}"
client_secret = "{X_SECRET}"
authorize_url = "{url}/i/oauth2/authorize"
token_url = "{url}/2/oauth2/token"
userinfo_url = "{url}/2/users/me?user.fields=profile_image_url"
scopes = ["users.read", "tweet.read"]
{extra}
[social_auth.providers.xish.profile]
id = "/data/id"
name = "/data/name"
avatar_url = "/data/profile_image_url"
"#
    )
}

const D_ID: &str = "1234567890";
const D_SECRET: &str = "discord-secret";

async fn fake_discord() -> (FakeDiscord, FakeServer) {
    let fake = FakeDiscord::new(D_ID, D_SECRET);
    fake.sign_in_as(
        FakeDiscordUser::new("80351110224678912", "nelly")
            .global_name("Nelly")
            .email("nelly@discord.example", true),
    );
    let server = fake.clone().spawn().await.unwrap();
    (fake, server)
}

/// A table named `chat` with the fake Discord as its far end.
fn discord_end(url: &str, extra: &str) -> String {
    format!(
        r#"[social_auth.providers.chat]
kind = "oauth2"
client_id = "{D_ID}"
client_secret = "{D_SECRET}"
authorize_url = "{url}/api/oauth2/authorize"
token_url = "{url}/api/oauth2/token"
userinfo_url = "{url}/api/users/@me"
scopes = ["identify", "email"]
{extra}
[social_auth.providers.chat.profile]
id = "/id"
name = "/username"
email = "/email"
email_verified = "/verified"
"#
    )
}

/// Walks a login with `provider` in `client`; returns the callback's status and JSON body.
async fn login_with(client: &Client, provider: &str) -> (Status, Value) {
    let start = client.get(format!("/auth/{provider}")).dispatch().await;
    assert_eq!(start.status(), Status::SeeOther, "{provider} starts");
    let location = start.headers().get_one("Location").unwrap().to_owned();
    drop(start);
    let callback = provider_redirect(&location).await;
    let done = client.get(callback).header(accept_json()).dispatch().await;
    let status = done.status();
    let body = done.into_string().await.unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn authorize_query(
    client: &Client,
    provider: &str,
) -> std::collections::HashMap<String, String> {
    let start = client.get(format!("/auth/{provider}")).dispatch().await;
    let location = url::Url::parse(start.headers().get_one("Location").unwrap()).unwrap();
    location.query_pairs().into_owned().collect()
}

async fn a_table_alone_signs_in(db: TestDb) {
    let app = TestApp::start(db).await;
    let client = app
        .instance(&github_end(app.server.url(), "token_auth = \"post\""))
        .await;
    let q = authorize_query(&client, "acme").await;
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(
        q["redirect_uri"],
        "http://127.0.0.1:8000/auth/acme/callback"
    );
    assert_eq!(q["scope"], "read:user");
    assert_eq!(q["code_challenge_method"], "S256", "PKCE by default");
    assert_eq!(q["code_challenge"].len(), 43);

    let (status, body) = login_with(&client, "acme").await;
    assert_eq!(status, Status::SeeOther, "{body}");
    let session = json(client.get("/auth/session").dispatch().await).await;
    assert_eq!(session["provider"], "acme");
    assert_eq!(session["user"]["name"], "The Octocat");
    // GitHub's `/user` has the public email and no `email_verified`: an unverified email.
    assert_eq!(session["user"]["email"], "octocat@github.example");
    let c = claims(&session_jwt(&client).await);
    assert_eq!(c["avatar_url"], "https://avatars.example.com/u/583231");
    let pool = app.db.pool().await;
    let (provider, social_id): (String, String) =
        sqlx::query_as("SELECT provider, social_id FROM social_users")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((provider.as_str(), social_id.as_str()), ("acme", "583231"));
    let key: Option<String> = sqlx::query_scalar("SELECT email_key FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(key, None, "not vouched for without email_verified = true");
    assert!(app.fake.is_valid_access_token(&plain_token(&client).await));
}

async fn token_auth_post_and_basic_are_what_the_provider_checks(db: TestDb) {
    // The fake GitHub takes only form credentials; the default (Basic) is refused with
    // GitHub's HTTP 200 error body.
    let base = TestApp::start(db).await;
    let (x, x_server) = fake_x().await;
    let app = base
        .instance(&format!(
            "{}{}",
            github_end(base.server.url(), ""),
            x_end(x_server.url(), "token_auth = \"post\"")
        ))
        .await;
    let (status, body) = login_with(&app, "acme").await;
    assert_eq!(status, Status::BadGateway, "{body}");
    assert_eq!(body["provider_error"], "incorrect_client_credentials");
    // The fake X (a confidential client) wants Basic: form credentials are refused.
    let (status, body) = login_with(&app, "xish").await;
    assert_eq!(status, Status::BadGateway, "{body}");
    assert_eq!(body["provider_error"], "unauthorized_client");
    assert_eq!(base.db.count("SELECT COUNT(*) FROM users").await, 0);

    // And each signs in with what it checks.
    let swapped = base
        .instance(&format!(
            "{}{}",
            github_end(base.server.url(), "token_auth = \"post\""),
            x_end(x_server.url(), "")
        ))
        .await;
    assert_eq!(login_with(&swapped, "acme").await.0, Status::SeeOther);
    let (status, body) = login_with(&swapped, "xish").await;
    assert_eq!(status, Status::SeeOther, "{body}");
    let session = json(swapped.get("/auth/session").dispatch().await).await;
    assert_eq!(session["user"]["name"], "X Developers");
    assert_eq!(
        session["user"]["avatar_url"],
        "https://pbs.twimg.example/profile_images/2244994945/avatar_normal.jpg"
    );
    assert!(x.is_valid_access_token(&plain_token(&swapped).await));
    assert_eq!(
        base
            .db
            .count("SELECT COUNT(*) FROM social_users WHERE provider = 'xish' AND social_id = '2244994945'")
            .await,
        1
    );
}

async fn pkce_on_and_off(db: TestDb) {
    let (_x, x_server) = fake_x().await;
    let app = TestApp::start_with(db, &x_end(x_server.url(), "pkce = false")).await;
    let start = app.client.get("/auth/xish").dispatch().await;
    let location = start.headers().get_one("Location").unwrap().to_owned();
    drop(start);
    assert!(!location.contains("code_challenge"), "{location}");
    // X requires PKCE: its authorize page refuses the request.
    let answer = http_client().get(&location).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 400);

    let on = app.instance(&x_end(x_server.url(), "pkce = true")).await;
    let q = authorize_query(&on, "xish").await;
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(login_with(&on, "xish").await.0, Status::SeeOther);

    // PKCE off against a provider that does not need it: no verifier is sent, and it works.
    let gh = app
        .instance(&github_end(
            app.server.url(),
            "pkce = false\ntoken_auth = \"post\"",
        ))
        .await;
    let q = authorize_query(&gh, "acme").await;
    assert!(!q.contains_key("code_challenge"));
    assert_eq!(login_with(&gh, "acme").await.0, Status::SeeOther);
}

async fn token_errors_are_read_as_rfc_6749_says(db: TestDb) {
    let (discord, d_server) = fake_discord().await;
    let base = TestApp::start_with(db, "[social_auth]\nhttp_timeout_secs = 1\n").await;
    let client = base
        .instance(&format!(
            "{}{}",
            discord_end(d_server.url(), ""),
            github_end(base.server.url(), "token_auth = \"post\"")
        ))
        .await;
    // Discord's spaced 400 bodies and 401.
    for (error, description) in [
        ("invalid_grant", Some("Invalid \"code\" in request.")),
        ("invalid_request", Some("Invalid \"code_verifier\"")),
        ("invalid_client", None),
    ] {
        discord.set_fault(Some(DiscordFault::TokenError {
            error: error.into(),
            description: description.map(str::to_owned),
        }));
        let (status, body) = login_with(&client, "chat").await;
        assert_eq!(status, Status::BadGateway, "{error}: {body}");
        assert_eq!(body["error"], "provider_error");
        assert_eq!(body["provider_error"], error);
    }
    // A 429 with Discord's JSON body: a 502 that says so.
    discord.set_fault(Some(DiscordFault::TokenRateLimited {
        scope: DiscordRateLimitScope::User,
        retry_after: 64.57,
    }));
    let (status, body) = login_with(&client, "chat").await;
    assert_eq!(status, Status::BadGateway, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("rate limited"),
        "{body}"
    );
    discord.set_fault(None);
    // An expired code.
    let start = client.get("/auth/chat").dispatch().await;
    let location = start.headers().get_one("Location").unwrap().to_owned();
    drop(start);
    let callback = provider_redirect(&location).await;
    discord.expire_codes();
    let r = client.get(callback).header(accept_json()).dispatch().await;
    assert_eq!(r.status(), Status::BadGateway);
    assert_eq!(json(r).await["provider_error"], "invalid_grant");

    // GitHub's HTTP 200 error body, an HTML 500, a hang.
    for (fault, status) in [
        (
            TokenFault::Error200("bad_verification_code".into()),
            Status::BadGateway,
        ),
        (TokenFault::Html500, Status::BadGateway),
        (TokenFault::Hang, Status::GatewayTimeout),
    ] {
        base.fake.set_token_fault(Some(fault.clone()));
        let (got, body) = login_with(&client, "acme").await;
        assert_eq!(got, status, "{fault:?}: {body}");
    }
    assert_eq!(base.db.count("SELECT COUNT(*) FROM users").await, 0);
    assert!(client.cookies().get("jwt").is_none());
}

async fn userinfo_answers_through_the_pointers(db: TestDb) {
    let base = TestApp::start(db).await;
    let client = base
        .instance(&github_end(
            base.server.url(),
            "token_auth = \"post\"\nlink_by_verified_email = true",
        ))
        .await;
    let fake = &base.fake;
    let answer = |v: Value| Some(RawAnswer::new(200, Some("application/json"), v.to_string()));
    // Missing, empty, null, fractional ids: 502, nothing stored.
    for doc in [
        json!({"name": "No Id"}),
        json!({"id": ""}),
        json!({"id": "   "}),
        json!({"id": null}),
        json!({"id": 1.5}),
        json!({"id": {"nested": 1}}),
    ] {
        fake.set_user_answer(answer(doc.clone()));
        let (status, body) = login_with(&client, "acme").await;
        assert_eq!(status, Status::BadGateway, "{doc}: {body}");
        assert!(body["message"].as_str().unwrap().contains("/id"), "{body}");
    }
    // Error answers: a 401 names its message, a 200 with an `error` is an error, HTML is not JSON.
    for (raw, needle) in [
        (
            RawAnswer::new(
                401,
                Some("application/json"),
                r#"{"message":"Bad credentials"}"#,
            ),
            "Bad credentials",
        ),
        (
            RawAnswer::new(
                200,
                Some("application/json"),
                r#"{"error":"invalid_token","error_description":"The access token expired"}"#,
            ),
            "The access token expired",
        ),
        (
            RawAnswer::new(500, Some("text/html"), "<html>oops</html>"),
            "500",
        ),
    ] {
        fake.set_user_answer(Some(raw));
        let (status, body) = login_with(&client, "acme").await;
        assert_eq!(status, Status::BadGateway, "{body}");
        assert!(body["message"].as_str().unwrap().contains(needle), "{body}");
    }
    assert_eq!(base.db.count("SELECT COUNT(*) FROM users").await, 0);

    // A string id; pointers that find nothing (or a non-text) give null fields; the string
    // "true" does not vouch.
    fake.set_user_answer(answer(
        json!({"id": "u-7", "name": 12, "email": "a@acme.example", "email_verified": "true"}),
    ));
    let (status, body) = login_with(&client, "acme").await;
    assert_eq!(status, Status::SeeOther, "{body}");
    let session = json(client.get("/auth/session").dispatch().await).await;
    assert_eq!(session["user"]["name"], Value::Null);
    assert_eq!(session["user"]["avatar_url"], Value::Null);
    assert_eq!(session["user"]["email"], "a@acme.example");
    let pool = base.db.pool().await;
    let key = || async {
        sqlx::query_scalar::<_, Option<String>>("SELECT u.email_key FROM users u JOIN social_users s ON s.user_id = u.id WHERE s.social_id = 'u-7'")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(key().await, None, "\"true\" is not true");
    // `true` vouches.
    fake.set_user_answer(answer(
        json!({"id": "u-7", "email": "a@acme.example", "email_verified": true}),
    ));
    assert_eq!(login_with(&client, "acme").await.0, Status::SeeOther);
    assert_eq!(key().await.as_deref(), Some("a@acme.example"));
    // A numeric id is the same user as its string.
    fake.set_user_answer(answer(json!({"id": 583231})));
    assert_eq!(login_with(&client, "acme").await.0, Status::SeeOther);
    assert_eq!(
        base.db
            .count("SELECT COUNT(*) FROM social_users WHERE social_id = '583231'")
            .await,
        1
    );
}

async fn refresh_rotates_the_stored_refresh_token(db: TestDb) {
    let (discord, d_server) = fake_discord().await;
    let app = TestApp::start_with(
        db,
        &format!(
            "[social_auth]\nexpose_refresh_token = true\n{}",
            discord_end(d_server.url(), "")
        ),
    )
    .await;
    assert_eq!(login_with(&app.client, "chat").await.0, Status::SeeOther);
    let session = json(app.client.get("/auth/session").dispatch().await).await;
    assert_eq!(session["user"]["name"], "nelly");
    let pool = app.db.pool().await;
    let stored = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT refresh_token FROM social_users WHERE provider = 'chat'",
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
    let (row1, old) = (stored().await, plain().await);
    assert!(discord.is_valid_refresh_token(&old));

    let r = app.client.post("/auth/chat/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    drop(r);
    let (row2, new) = (stored().await, plain().await);
    assert_ne!(row1, row2, "the row holds the new refresh token");
    assert_ne!(old, new);
    assert!(discord.is_valid_refresh_token(&new));
    assert!(
        !discord.is_valid_refresh_token(&old),
        "the old one is spent"
    );
    assert!(discord.is_valid_access_token(&plain_token(&app.client).await));

    // The user removed the app: the refresh is refused for good.
    discord.revoke_all();
    let r = app.client.post("/auth/chat/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Unauthorized);
    assert_eq!(json(r).await, json!({"status": "reauthenticate"}));
}
