//! Facebook login against the fake Graph API (which refuses calls without a correct
//! `appsecret_proof`), on SQLite and PostgreSQL.

use rocket::http::Status;
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket_social_auth::testing::{FacebookFault, FakeFacebook, FakeFacebookUser, FakeServer};

use crate::common::*;
use crate::db_tests;

db_tests!(
    facebook_signs_in_with_appsecret_proof,
    facebook_denied_login,
    facebook_used_code,
    facebook_graph_errors_store_nothing,
    facebook_missing_email_is_null,
    facebook_long_lived_exchange,
);

const APP_ID: &str = "fb-app-id";
const APP_SECRET: &str = "fb-app-secret";

struct FbApp {
    client: Client,
    fake: FakeFacebook,
    _server: FakeServer,
    db: TestDb,
}

fn zuck() -> FakeFacebookUser {
    FakeFacebookUser::new("10215241773831025", "Mark Example").email("mark@fb.example")
}

impl FbApp {
    async fn start(db: TestDb) -> FbApp {
        let fake = FakeFacebook::new(APP_ID, APP_SECRET);
        fake.sign_in_as(zuck());
        let server = fake.clone().spawn().await.unwrap();
        let extra = format!(
            "[social_auth]\nexpose_refresh_token = true\n[social_auth.providers.facebook]\nclient_id = \"{APP_ID}\"\nclient_secret = \"{APP_SECRET}\"\nauthorize_url = \"{0}/v19.0/dialog/oauth\"\ngraph_url = \"{0}/v19.0\"\n",
            server.url()
        );
        let client = Client::tracked(rocket(figment(&db.url, "http://127.0.0.1:9", &extra)))
            .await
            .expect("app launches");
        FbApp {
            client,
            fake,
            _server: server,
            db,
        }
    }

    /// Starts a login and returns the callback (path and query) Facebook redirects to; the
    /// `#_=_` Facebook appends stays in the browser, as fragments do.
    async fn authorize(&self, client: &Client) -> String {
        let start = client.get("/auth/facebook").dispatch().await;
        assert_eq!(start.status(), Status::SeeOther);
        let location = start.headers().get_one("Location").unwrap().to_owned();
        let answer = http_client().get(&location).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 302);
        let back = answer.headers()["location"].to_str().unwrap();
        assert!(back.ends_with("#_=_"), "{back}");
        let url = url::Url::parse(back).unwrap();
        format!("{}?{}", url.path(), url.query().unwrap())
    }

    async fn login<'c>(&self, client: &'c Client) -> LocalResponse<'c> {
        let callback = self.authorize(client).await;
        client.get(callback).header(accept_json()).dispatch().await
    }

    async fn users(&self) -> i64 {
        self.db.count("SELECT COUNT(*) FROM users").await
    }
}

async fn facebook_signs_in_with_appsecret_proof(db: TestDb) {
    let app = FbApp::start(db).await;
    let start = app.client.get("/auth/facebook").dispatch().await;
    let location = url::Url::parse(start.headers().get_one("Location").unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(location.path(), "/v19.0/dialog/oauth");
    assert_eq!(q["client_id"], APP_ID);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["scope"], "email,public_profile");
    assert_eq!(
        q["redirect_uri"],
        "http://127.0.0.1:8000/auth/facebook/callback"
    );
    assert!(q.contains_key("state"));
    drop(start);

    let done = app.login(&app.client).await;
    assert_eq!(done.status(), Status::SeeOther);
    assert_eq!(done.headers().get_one("Location"), Some("/"));
    drop(done);
    let session = json(app.client.get("/auth/session").dispatch().await).await;
    assert_eq!(session["provider"], "facebook");
    assert_eq!(session["user"]["name"], "Mark Example");
    assert_eq!(session["user"]["email"], "mark@fb.example");
    assert_eq!(
        session["user"]["avatar_url"],
        "https://platform-lookaside.fbsbx.example/10215241773831025/picture"
    );
    let pool = app.db.pool().await;
    let (social_id, token, refresh, expires): (
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
    ) = sqlx::query_as(
        "SELECT social_id, token, refresh_token, token_expires_at FROM social_users",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(social_id, "10215241773831025");
    assert!(token.unwrap().starts_with("v1."), "encrypted at rest");
    assert!(plain_token(&app.client).await.starts_with("EAAB"));
    assert_eq!(refresh, None, "Facebook has no refresh token");
    assert!((expires.unwrap() - now() - 5_183_944).abs() < 60);
    assert!(app.fake.graph_calls() >= 1);
    assert_eq!(app.fake.calls_without_proof(), 0);
}

async fn facebook_denied_login(db: TestDb) {
    let app = FbApp::start(db).await;
    app.fake.set_fault(Some(FacebookFault::Denied));
    let r = app.login(&app.client).await;
    assert_eq!(r.status(), Status::BadRequest);
    let v = json(r).await;
    assert_eq!(v["error"], "provider_denied");
    assert_eq!(v["provider_error"], "access_denied");
    assert_eq!(app.users().await, 0);
}

async fn facebook_used_code(db: TestDb) {
    let app = FbApp::start(db).await;
    let callback = app.authorize(&app.client).await;
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
    let other = Client::tracked(rocket(figment(&app.db.url, "http://127.0.0.1:9", &format!(
        "[social_auth.providers.facebook]\nclient_id = \"{APP_ID}\"\nclient_secret = \"{APP_SECRET}\"\nauthorize_url = \"{0}/v19.0/dialog/oauth\"\ngraph_url = \"{0}/v19.0\"\n",
        app._server.url()
    ))))
    .await
    .unwrap();
    let fresh = app.authorize(&other).await;
    let state = fresh
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let r = other
        .get(format!("/auth/facebook/callback?code={code}&state={state}"))
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::BadGateway);
    let v = json(r).await;
    assert_eq!(v["provider_error"], "OAuthException#100");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("This authorization code has been used."),
        "{v}"
    );
    assert!(other.cookies().get("jwt").is_none());
}

async fn facebook_graph_errors_store_nothing(db: TestDb) {
    let app = FbApp::start(db).await;
    for (fault, provider_error) in [
        (FacebookFault::MeTokenExpired, "OAuthException#190/463"),
        (FacebookFault::RateLimited, "OAuthException#4"),
    ] {
        app.fake.set_fault(Some(fault));
        let r = app.login(&app.client).await;
        assert_eq!(r.status(), Status::BadGateway, "{fault:?}");
        assert_eq!(json(r).await["provider_error"], provider_error, "{fault:?}");
    }
    assert_eq!(app.users().await, 0);
    assert_eq!(app.fake.calls_without_proof(), 0);
}

async fn facebook_missing_email_is_null(db: TestDb) {
    let app = FbApp::start(db).await;
    app.fake.sign_in_as(FakeFacebookUser::new("42", "No Mail"));
    assert_eq!(app.login(&app.client).await.status(), Status::SeeOther);
    let session = json(app.client.get("/auth/session").dispatch().await).await;
    assert_eq!(session["user"]["email"], serde_json::Value::Null);
    let pool = app.db.pool().await;
    let email: Option<String> = sqlx::query_scalar("SELECT email FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(email, None);
}

async fn facebook_long_lived_exchange(db: TestDb) {
    let app = FbApp::start(db).await;
    app.login(&app.client).await;
    let pool = app.db.pool().await;
    let row = || async {
        sqlx::query_as::<_, (Option<String>, Option<String>, Option<i64>)>(
            "SELECT token, refresh_token, token_expires_at FROM social_users",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let (before, _, _) = row().await;

    // The Django app documents 404 as normal for providers without refresh tokens.
    let r = app.client.get("/auth/refresh_token").dispatch().await;
    assert_eq!(r.status(), Status::NotFound);

    let r = app.client.post("/auth/facebook/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(json(r).await, serde_json::json!({"status": "refreshed"}));
    let (after, refresh, expires) = row().await;
    assert_ne!(before, after, "the long-lived token is stored");
    assert_eq!(refresh, None);
    assert!((expires.unwrap() - now() - 5_183_944).abs() < 60);

    // An expired token cannot be exchanged: the user must sign in again.
    app.fake.expire_tokens();
    let r = app.client.post("/auth/facebook/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Unauthorized);
    assert_eq!(
        json(r).await,
        serde_json::json!({"status": "reauthenticate"})
    );
    assert_eq!(row().await.0, None, "the dead token is forgotten");
    let r = app.client.post("/auth/facebook/refresh").dispatch().await;
    assert_eq!(r.status(), Status::NotFound);
    assert_eq!(app.fake.calls_without_proof(), 0);
}

#[rocket::async_test]
async fn facebook_configuration_is_checked() {
    let db = TestDb::sqlite().await;
    for extra in [
        "[social_auth.providers.facebook]\nclient_id = \"a\"\nclient_secret = \"b\"\ngraph_url = \"http://graph.example/v19.0\"\n",
        "[social_auth.providers.facebook]\nclient_id = \"a\"\nclient_secret = \"b\"\ntoken_url = \"https://graph.facebook.com/x\"\n",
        "[social_auth.providers.facebook]\nclient_id = \"a\"\n",
    ] {
        let result = rocket(figment(&db.url, "http://127.0.0.1:9", extra)).ignite().await;
        assert!(result.is_err(), "{extra}");
        let _ = result.map_err(|e| e.kind().to_string());
    }
}
