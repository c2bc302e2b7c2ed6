//! Sign in with Apple against the fake Apple on loopback, through a browser that keeps
//! `SameSite` as browsers do: the cross-site `form_post` (no Lax cookie on it) turned into a
//! same-site `GET`, the minted ES256 client secret, the name from the first authorization's
//! `user` field (kept on later sign-ins), `email_verified` as strings or booleans, every
//! documented error, and a refresh that keeps the refresh token (Apple does not rotate).

use std::collections::BTreeMap;

use rocket::http::{Cookie, SameSite, Status};
use rocket::local::asynchronous::{Client, LocalRequest};
use rocket_social_auth::testing::{FakeOidc, FakeOidcUser, FakeServer, FormPost, OidcFault};
use serde_json::{json, Value};

use crate::common::*;
use crate::db_tests;

db_tests!(
    apple_signs_in_through_a_cross_site_form_post,
    apple_keeps_the_first_name_and_vouches_for_its_emails,
    apple_refresh_keeps_the_refresh_token,
    apple_refuses_forged_replayed_and_flowless_callbacks,
    apple_token_and_id_token_errors,
);

const CLIENT: &str = "com.example.web";
const TEAM: &str = "TEAM123456";
const SUB: &str = "000930.4191829df9e342f1947b54f850ba1733.1224";

struct Apple {
    fake: FakeOidc,
    server: FakeServer,
}

async fn apple() -> Apple {
    let fake = FakeOidc::apple(CLIENT, TEAM);
    fake.sign_in_as(FakeOidcUser::new(
        SUB,
        "John Appleseed",
        "x7kq2@privaterelay.appleid.com",
    ));
    let server = fake.clone().spawn().await.unwrap();
    Apple { fake, server }
}

fn apple_toml(a: &Apple, extra: &str) -> String {
    format!(
        "[social_auth.providers.apple]\nclient_id = \"{CLIENT}\"\nteam_id = \"{TEAM}\"\nkey_id = \"{}\"\nprivate_key = \"\"\"{}\"\"\"\nissuer = \"{}\"\n{extra}",
        a.fake.apple_key_id().unwrap(),
        a.fake.apple_private_key_pem().unwrap(),
        a.server.url()
    )
}

/// One stored cookie: its value, path and `SameSite`.
struct Stored {
    value: String,
    path: String,
    same_site: Option<SameSite>,
}

/// A browser on the app: keeps the cookies it is given and sends them as a browser does, by
/// path, and without the `Lax`/`Strict` ones on a cross-site `POST`.
struct Browser {
    client: Client,
    jar: Jar,
}

/// The browser's cookies.
#[derive(Default)]
struct Jar {
    cookies: BTreeMap<String, Stored>,
}

impl Jar {
    /// Sends `request` to `path` with the cookies a browser would send, keeps those it gets;
    /// returns the status, the `Location`, the body and the names of the cookies sent.
    async fn send(
        &mut self,
        request: LocalRequest<'_>,
        path: &str,
        cross_site_post: bool,
    ) -> (Status, String, String, Vec<String>) {
        let mut request = request.header(accept_json());
        let mut sent = Vec::new();
        for (name, c) in &self.cookies {
            let lax = matches!(c.same_site, Some(SameSite::Lax | SameSite::Strict) | None);
            if path.starts_with(&c.path) && !(cross_site_post && lax) {
                request = request.cookie(Cookie::new(name.clone(), c.value.clone()));
                sent.push(name.clone());
            }
        }
        let response = request.dispatch().await;
        for cookie in response.cookies().iter() {
            let gone =
                cookie.value().is_empty() || cookie.max_age().is_some_and(|age| age.is_zero());
            if gone {
                self.cookies.remove(cookie.name());
            } else {
                self.cookies.insert(
                    cookie.name().to_owned(),
                    Stored {
                        value: cookie.value().to_owned(),
                        path: cookie.path().unwrap_or("/").to_owned(),
                        same_site: cookie.same_site(),
                    },
                );
            }
        }
        let status = response.status();
        let location = response
            .headers()
            .get_one("Location")
            .unwrap_or_default()
            .to_owned();
        let body = response.into_string().await.unwrap_or_default();
        (status, location, body, sent)
    }
}

impl Browser {
    async fn new(db: &TestDb, a: &Apple, extra: &str) -> (Browser, FakeServer) {
        let github = rocket_social_auth::testing::FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
        let github_server = github.spawn().await.unwrap();
        let figment = figment(&db.url, github_server.url(), &apple_toml(a, extra));
        let client = Client::untracked(rocket(figment))
            .await
            .expect("app launches");
        (
            Browser {
                client,
                jar: Jar::default(),
            },
            github_server,
        )
    }

    async fn get(&mut self, path: &str) -> (Status, String, String, Vec<String>) {
        let request = self.client.get(path.to_owned());
        let bare = path.split('?').next().unwrap().to_owned();
        self.jar.send(request, &bare, false).await
    }

    /// The provider's page POSTs its form to us from its own site.
    async fn cross_site_post(&mut self, post: &FormPost) -> (Status, String, String, Vec<String>) {
        let path = url::Url::parse(&post.action).unwrap().path().to_owned();
        let request = self
            .client
            .post(path.clone())
            .header(rocket::http::ContentType::Form)
            .header(rocket::http::Header::new("Sec-Fetch-Site", "cross-site"))
            .header(rocket::http::Header::new(
                "Origin",
                "https://appleid.apple.com",
            ))
            .body(post.body());
        self.jar.send(request, &path, true).await
    }

    /// Starts a sign-in and returns the fake Apple's form_post page's form.
    async fn authorize(&mut self) -> FormPost {
        let (status, location, _, _) = self.get("/auth/apple").await;
        assert_eq!(status, Status::SeeOther);
        let page = http_client().get(&location).send().await.unwrap();
        assert_eq!(page.status().as_u16(), 200);
        FormPost::parse(&page.text().await.unwrap()).expect("a form_post page")
    }

    /// A whole sign-in: the cross-site POST, then the GET it redirects to; that GET's answer.
    async fn sign_in(&mut self) -> (Status, Value) {
        let post = self.authorize().await;
        self.finish(&post).await
    }

    async fn finish(&mut self, post: &FormPost) -> (Status, Value) {
        let (status, location, _, _) = self.cross_site_post(post).await;
        assert_eq!(
            status,
            Status::SeeOther,
            "the POST redirects to the GET callback"
        );
        let (status, _, body, _) = self.get(&location).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    async fn session(&mut self) -> Value {
        let (_, _, body, _) = self.get("/auth/session").await;
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }
}

async fn users_row(db: &TestDb) -> (Option<String>, Option<String>, Option<String>) {
    let pool = db.pool().await;
    let row = sqlx::query_as("SELECT name, email, email_vouched_by FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    row
}

async fn tokens_row(db: &TestDb) -> (String, Option<String>) {
    let pool = db.pool().await;
    let row = sqlx::query_as("SELECT token, refresh_token FROM social_users")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    row
}

async fn apple_signs_in_through_a_cross_site_form_post(db: TestDb) {
    let a = apple().await;
    let (mut browser, _github) = Browser::new(&db, &a, "").await;
    assert_eq!(a.fake.discovery_calls(), 1, "discovery at launch");

    let (status, location, _, _) = browser.get("/auth/apple").await;
    assert_eq!(status, Status::SeeOther);
    let url = url::Url::parse(&location).unwrap();
    let q: BTreeMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(url.path(), "/auth/authorize");
    assert_eq!(q["client_id"], CLIENT);
    assert_eq!(q["response_mode"], "form_post");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["scope"], "name email");
    assert_eq!(
        q["redirect_uri"],
        "http://127.0.0.1:8000/auth/apple/callback"
    );
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["nonce"].len() >= 32 && q["state"].len() >= 32);
    let flow_cookie = browser
        .jar
        .cookies
        .get("social_auth_flow_apple")
        .expect("flow cookie");
    assert_eq!(
        flow_cookie.same_site,
        Some(SameSite::Lax),
        "Lax, as for every provider"
    );

    let page = http_client().get(&location).send().await.unwrap();
    let post = FormPost::parse(&page.text().await.unwrap()).unwrap();
    assert!(
        post.field("user").is_some(),
        "the first authorization has `user`"
    );

    // The cross-site POST carries no Lax cookie: nothing is decided on it.
    let (status, location, _, sent) = browser.cross_site_post(&post).await;
    assert_eq!(status, Status::SeeOther);
    assert!(
        sent.is_empty(),
        "no Lax cookie on a cross-site POST: {sent:?}"
    );
    let target = url::Url::parse(&format!("http://127.0.0.1:8000{location}")).unwrap();
    assert_eq!(target.path(), "/auth/apple/callback");
    let back: BTreeMap<_, _> = target.query_pairs().into_owned().collect();
    assert_eq!(back.get("code").map(String::as_str), post.field("code"));
    assert_eq!(back.get("state").map(String::as_str), post.field("state"));
    assert!(
        !location.contains("Appleseed")
            && !location.contains("privaterelay")
            && !back.contains_key("user"),
        "the name and email stay out of the URL: {location}"
    );
    assert!(!back.contains_key("id_token"));
    let (status, _, body, _) = browser.get("/auth/session").await;
    assert_eq!(status, Status::Unauthorized, "not signed in yet: {body}");
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 0);

    // The GET it redirects to is a top-level navigation: the Lax flow cookie comes along.
    let (status, landed, _, sent) = browser.get(&location).await;
    assert_eq!(status, Status::SeeOther, "signed in");
    assert_eq!(landed, "/");
    assert!(
        sent.contains(&"social_auth_flow_apple".to_owned()),
        "{sent:?}"
    );
    assert!(
        sent.contains(&"social_auth_form_apple".to_owned()),
        "{sent:?}"
    );
    assert!(
        !browser.jar.cookies.contains_key("social_auth_flow_apple"),
        "flow used"
    );
    assert!(
        !browser.jar.cookies.contains_key("social_auth_form_apple"),
        "user field used"
    );

    let session = browser.session().await;
    assert_eq!(session["provider"], "apple");
    assert_eq!(session["user"]["name"], "John Appleseed");
    assert_eq!(session["user"]["email"], "x7kq2@privaterelay.appleid.com");
    assert_eq!(session["user"]["avatar_url"], Value::Null);
    let pool = db.pool().await;
    let (social_id,): (String,) =
        sqlx::query_as("SELECT social_id FROM social_users WHERE provider = 'apple'")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(social_id, SUB, "keyed on the id_token's sub");
    assert_eq!(
        a.fake.token_calls(),
        1,
        "the minted client secret was accepted"
    );
}

async fn apple_keeps_the_first_name_and_vouches_for_its_emails(db: TestDb) {
    let a = apple().await;
    let (mut browser, _github) = Browser::new(&db, &a, "link_by_verified_email = true\n").await;
    assert_eq!(browser.sign_in().await.0, Status::SeeOther);
    assert_eq!(
        users_row(&db).await,
        (
            Some("John Appleseed".into()),
            Some("x7kq2@privaterelay.appleid.com".into()),
            Some("apple".into())
        ),
        "email_verified \"true\" (a string) vouches, private relay included"
    );

    // Apple sends `user` only on the first authorization: the stored name is kept.
    let post = browser.authorize().await;
    assert_eq!(post.field("user"), None);
    assert_eq!(browser.finish(&post).await.0, Status::SeeOther);
    assert_eq!(browser.session().await["user"]["name"], "John Appleseed");
    assert_eq!(users_row(&db).await.0.as_deref(), Some("John Appleseed"));
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 1);

    // Booleans as booleans, and `email_verified: false` (Apple at Work & School): not vouched.
    a.fake.set_booleans_as_strings(false);
    assert_eq!(browser.sign_in().await.0, Status::SeeOther);
    assert_eq!(users_row(&db).await.2.as_deref(), Some("apple"));
    a.fake.sign_in_as(
        FakeOidcUser::new(SUB, "John Appleseed", "john@school.example")
            .email_verified(json!("false")),
    );
    assert_eq!(browser.sign_in().await.0, Status::SeeOther);
    let (_, email, vouched) = users_row(&db).await;
    assert_eq!(
        (email.as_deref(), vouched),
        (Some("john@school.example"), None)
    );

    // A forged `user` cookie field cannot ride another flow: it is bound to its state.
    let post = browser.authorize().await;
    let (status, location, _, _) = browser
        .cross_site_post(&FormPost::new(
            &post.action,
            &[
                ("state", "someone-elses-state"),
                ("user", r#"{"name":{"firstName":"Mallory","lastName":"X"}}"#),
            ],
        ))
        .await;
    assert_eq!(status, Status::SeeOther);
    assert_eq!(browser.get(&location).await.0, Status::BadRequest);
    assert_eq!(browser.finish(&post).await.0, Status::SeeOther);
    assert_eq!(users_row(&db).await.0.as_deref(), Some("John Appleseed"));
}

async fn apple_refresh_keeps_the_refresh_token(db: TestDb) {
    let a = apple().await;
    let (mut browser, _github) = Browser::new(&db, &a, "").await;
    assert_eq!(browser.sign_in().await.0, Status::SeeOther);
    let (access, refresh) = tokens_row(&db).await;
    assert!(refresh.is_some(), "Apple grants a refresh token");
    let post = browser
        .client
        .post("/auth/apple/refresh")
        .header(same_origin());
    let (status, _, body, _) = browser.jar.send(post, "/auth/apple/refresh", false).await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(a.fake.refresh_calls(), 1);
    let (new_access, kept) = tokens_row(&db).await;
    assert_ne!(new_access, access, "a new access token is stored");
    assert_eq!(
        kept, refresh,
        "Apple sends no new refresh token: the stored one is kept"
    );

    // Revoked (the user removed the app, changed password): invalid_grant, sign in again.
    a.fake.revoke_refresh_tokens();
    let post = browser
        .client
        .post("/auth/apple/refresh")
        .header(same_origin());
    let (status, _, body, _) = browser.jar.send(post, "/auth/apple/refresh", false).await;
    assert_eq!(
        (status, body.as_str()),
        (Status::Unauthorized, r#"{"status":"reauthenticate"}"#)
    );
}

async fn apple_refuses_forged_replayed_and_flowless_callbacks(db: TestDb) {
    let a = apple().await;
    let (mut browser, _github) = Browser::new(&db, &a, "").await;

    // A forged state: refused on the GET, where the flow is.
    let post = browser.authorize().await;
    let mut forged = post.clone();
    for (k, v) in &mut forged.fields {
        if k == "state" {
            *v = "forged-state".into();
        }
    }
    let (status, body) = browser.finish(&forged).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (Status::BadRequest, Some("state_mismatch"))
    );
    assert_eq!(a.fake.token_calls(), 0, "no exchange on a forged state");

    // A POST without a flow (another browser, e.g. a login CSRF): refused.
    let (mut stranger, _g) = Browser::new(&db, &a, "").await;
    let (status, body) = stranger.finish(&post).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (Status::BadRequest, Some("missing_flow"))
    );
    assert_eq!(a.fake.token_calls(), 0);

    // The real one signs in; replaying it is refused (the flow is spent) ...
    assert_eq!(browser.finish(&post).await.0, Status::SeeOther);
    let (status, body) = browser.finish(&post).await;
    assert_eq!(status, Status::BadRequest, "{body}");
    // ... and its code with a fresh flow's state is refused by Apple.
    let fresh = browser.authorize().await;
    let replay = FormPost::new(
        &fresh.action,
        &[
            ("state", fresh.field("state").unwrap()),
            ("code", post.field("code").unwrap()),
        ],
    );
    let (status, body) = browser.finish(&replay).await;
    assert_eq!(status, Status::BadGateway, "{body}");
    assert_eq!(body["provider_error"], "invalid_grant");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("The code has already been used."));
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 1);

    // The user cancels at Apple: `error=user_cancelled_authorize` in the form.
    a.fake.set_denied(true);
    let cancelled = browser.authorize().await;
    assert_eq!(cancelled.field("error"), Some("user_cancelled_authorize"));
    let (status, body) = browser.finish(&cancelled).await;
    assert_eq!(status, Status::BadRequest);
    assert_eq!(
        (body["error"].as_str(), body["provider_error"].as_str()),
        (Some("provider_denied"), Some("user_cancelled_authorize"))
    );
    a.fake.set_denied(false);

    // A POST to the callback of a provider that does not use form_post: 405, GET only.
    let github_post = FormPost::new(
        "http://127.0.0.1:8000/auth/github/callback",
        &[("code", "c"), ("state", "s")],
    );
    let (status, _, body, _) = browser.cross_site_post(&github_post).await;
    assert_eq!(status, Status::MethodNotAllowed);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "method_not_allowed"
    );
    let response = browser
        .client
        .post("/auth/github/callback")
        .header(rocket::http::ContentType::Form)
        .body("code=c&state=s")
        .dispatch()
        .await;
    assert_eq!(response.headers().get_one("Allow"), Some("GET"));
    drop(response);
    let unknown = FormPost::new("http://127.0.0.1:8000/auth/nope/callback", &[("code", "c")]);
    assert_eq!(browser.cross_site_post(&unknown).await.0, Status::NotFound);
}

async fn apple_token_and_id_token_errors(db: TestDb) {
    let a = apple().await;
    let (mut browser, _github) = Browser::new(&db, &a, "").await;
    // Expired code: Apple's description is shown.
    let post = browser.authorize().await;
    a.fake.expire_codes();
    let (status, body) = browser.finish(&post).await;
    assert_eq!(status, Status::BadGateway, "{body}");
    assert_eq!(body["provider_error"], "invalid_grant");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("The code has expired or has been revoked."),
        "{body}"
    );

    // Apple's other token errors, each named.
    for error in [
        "invalid_client",
        "invalid_request",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    ] {
        a.fake.set_token_fault(Some(OidcFault::Error(error.into())));
        let (status, body) = browser.sign_in().await;
        assert_eq!(status, Status::BadGateway, "{error}: {body}");
        assert_eq!(body["provider_error"], error, "{error}");
    }
    a.fake.set_token_fault(None);

    // id_token checks: nonce, audience, issuer, expiry, signature.
    use rocket_social_auth::testing::IdTokenFault;
    for (fault, want) in [
        (IdTokenFault::WrongNonce, Status::BadRequest),
        (IdTokenFault::WrongAudience, Status::BadGateway),
        (IdTokenFault::WrongIssuer, Status::BadGateway),
        (IdTokenFault::Expired, Status::BadGateway),
        (IdTokenFault::BadSignature, Status::BadGateway),
        (IdTokenFault::Missing, Status::BadGateway),
    ] {
        a.fake.set_fault(Some(fault));
        let (status, body) = browser.sign_in().await;
        assert_eq!(status, want, "{fault:?}: {body}");
    }
    a.fake.set_fault(None);
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(
        browser.sign_in().await.0,
        Status::SeeOther,
        "and then it works"
    );
}

#[rocket::async_test]
async fn apple_tables_with_a_client_secret_or_a_bad_key_fail_the_launch() {
    let a = apple().await;
    let db = TestDb::sqlite().await;
    let good = apple_toml(&a, "");
    assert!(rocket(figment(&db.url, "http://127.0.0.1:9", &good))
        .ignite()
        .await
        .is_ok());
    for bad in [
        apple_toml(&a, "client_secret = \"s\"\n"),
        good.replace(TEAM, "TEAM"),
        good.replace(
            "-----BEGIN PRIVATE KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\nAAAA",
        ),
        apple_toml(&a, "private_key_file = \"/nonexistent/AuthKey.p8\"\n"),
    ] {
        let error = rocket(figment(&db.url, "http://127.0.0.1:9", &bad))
            .ignite()
            .await
            .expect_err("launch must fail");
        assert!(
            matches!(error.kind(), rocket::error::ErrorKind::FailedFairings(_)),
            "{bad}: {error}"
        );
    }
}
