//! LinkedIn (`kind = "linkedin"`) against the fake LinkedIn: no `nonce` in its `id_token`, no
//! PKCE, `client_secret_post` although discovery does not say so, the issuer
//! `https://www.linkedin.com/oauth`, `email_verified` as a string, and its error shapes.

use rocket::http::Status;
use rocket_social_auth::testing::{
    FakeOidc, FakeOidcUser, FakeServer, IdTokenFault, OidcFault, RefreshTokens,
};
use serde_json::json;

use crate::common::*;
use crate::db_tests;
use crate::microsoft::exposed_refresh_token;
use crate::oidc::login_with;

db_tests!(linkedin_signs_in_without_nonce_or_pkce_with_client_secret_post);

const LI_CLIENT: &str = "86abc123xyz";
const LI_SECRET: &str = "WPL_AP1.li-secret";

struct LinkedIn {
    fake: FakeOidc,
    server: FakeServer,
}

async fn linkedin() -> LinkedIn {
    let fake = FakeOidc::linkedin(LI_CLIENT, LI_SECRET);
    fake.sign_in_as(
        FakeOidcUser::new("782bbtaQ", "John Doe", "doe@email.example")
            .email_verified(json!("true")),
    );
    let server = fake.clone().spawn().await.unwrap();
    LinkedIn { fake, server }
}

fn toml(l: &LinkedIn, extra: &str) -> String {
    format!(
        "[social_auth.providers.linkedin]\nclient_id = \"{LI_CLIENT}\"\nclient_secret = \"{LI_SECRET}\"\nissuer = \"{}/oauth\"\n{extra}",
        l.server.url()
    )
}

async fn linkedin_signs_in_without_nonce_or_pkce_with_client_secret_post(db: TestDb) {
    let l = linkedin().await;
    let app = TestApp::start_with(
        db,
        &format!(
            "{}[social_auth.providers.github]\nlink_by_verified_email = true\n",
            toml(&l, "link_by_verified_email = true\n")
        ),
    )
    .await;
    let start = app.client.get("/auth/linkedin").dispatch().await;
    let location = url::Url::parse(start.headers().get_one("Location").unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(location.path(), "/oauth/v2/authorization");
    assert!(
        !q.contains_key("code_challenge"),
        "no PKCE: LinkedIn refuses a web app's code_verifier"
    );
    drop(start);
    let (status, body) = login_with(&app.client, "linkedin").await;
    assert_eq!(status, Status::SeeOther, "{body}");
    let session = json(app.client.get("/auth/session").dispatch().await).await;
    assert_eq!(session["user"]["name"], "John Doe");
    let pool = app.db.pool().await;
    let social_id: String =
        sqlx::query_scalar("SELECT social_id FROM social_users WHERE provider = 'linkedin'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(social_id, "782bbtaQ");

    // `email_verified: "true"` vouches: the GitHub user with that address is linked.
    l.fake.sign_in_as(
        FakeOidcUser::new("9xYzOcto", "Octo In", "octocat@github.example")
            .email_verified(json!("true")),
    );
    app.login(&app.client).await;
    let octocat = claims(&session_jwt(&app.client).await)["sub"].clone();
    let browser = app.browser().await;
    assert_eq!(login_with(&browser, "linkedin").await.0, Status::SeeOther);
    assert_eq!(claims(&session_jwt(&browser).await)["sub"], octocat);
}

/// A nonce LinkedIn does send must be ours; the other id_token checks all hold; and the
/// client authentication it needs is `post` (Basic is refused).
#[rocket::async_test]
async fn linkedin_id_token_checks_and_client_auth() {
    let l = linkedin().await;
    let app = TestApp::start_with(TestDb::sqlite().await, &toml(&l, "")).await;
    for (fault, status) in [
        (IdTokenFault::WrongNonce, Status::BadRequest),
        (IdTokenFault::WrongIssuer, Status::BadGateway),
        (IdTokenFault::WrongAudience, Status::BadGateway),
        (IdTokenFault::Expired, Status::BadGateway),
        (IdTokenFault::BadSignature, Status::BadGateway),
    ] {
        l.fake.set_fault(Some(fault));
        let (got, body) = login_with(&app.client, "linkedin").await;
        assert_eq!(got, status, "{fault:?}: {body}");
    }
    l.fake.set_fault(None);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 0);

    let basic = app.instance(&toml(&l, "token_auth = \"basic\"\n")).await;
    let (status, body) = login_with(&basic, "linkedin").await;
    assert_eq!(
        (status, body["provider_error"].as_str()),
        (Status::BadGateway, Some("invalid_request")),
        "LinkedIn refuses Basic (it finds no client_id in the form): {body}"
    );
}

/// LinkedIn's error shapes: the cancellations at authorize, its one `invalid_request` text for
/// every code problem, 401 `invalid_client`, a rate limit; its REST 401 at userinfo leaves the
/// id_token's profile.
#[rocket::async_test]
async fn linkedin_error_shapes() {
    let l = linkedin().await;
    let app = TestApp::start_with(TestDb::sqlite().await, &toml(&l, "")).await;
    l.fake.set_denied(true);
    let (status, body) = login_with(&app.client, "linkedin").await;
    assert_eq!(
        (status, body["provider_error"].as_str()),
        (Status::BadRequest, Some("user_cancelled_login"))
    );
    l.fake.set_denied(false);
    l.fake.set_authorize_error(Some("user_cancelled_authorize"));
    let (status, body) = login_with(&app.client, "linkedin").await;
    assert_eq!(
        (status, body["provider_error"].as_str()),
        (Status::BadRequest, Some("user_cancelled_authorize"))
    );
    l.fake.set_authorize_error(None);
    for (fault, code) in [
        (
            OidcFault::Error("invalid_request".into()),
            Some("invalid_request"),
        ),
        (
            OidcFault::Error("invalid_client".into()),
            Some("invalid_client"),
        ),
        (OidcFault::RateLimited, None),
    ] {
        l.fake.set_token_fault(Some(fault.clone()));
        let (status, body) = login_with(&app.client, "linkedin").await;
        assert_eq!(status, Status::BadGateway, "{fault:?}: {body}");
        assert_eq!(body["provider_error"].as_str(), code, "{fault:?}");
    }
    l.fake.set_token_fault(None);
    l.fake
        .set_userinfo_fault(Some(OidcFault::Error("INVALID_ACCESS_TOKEN".into())));
    assert_eq!(
        login_with(&app.client, "linkedin").await.0,
        Status::SeeOther
    );
}

/// Most apps get no refresh token (the refresh route says so); an approved app's comes back
/// unchanged on refresh, its lifetime not extended.
#[rocket::async_test]
async fn linkedin_refresh_only_for_approved_apps() {
    let l = linkedin().await;
    let app = TestApp::start_with(
        TestDb::sqlite().await,
        &toml(&l, "[social_auth]\nexpose_refresh_token = true\n"),
    )
    .await;
    assert_eq!(
        login_with(&app.client, "linkedin").await.0,
        Status::SeeOther
    );
    let r = app.client.post("/auth/linkedin/refresh").dispatch().await;
    assert_ne!(r.status(), Status::Ok, "no refresh token to spend");
    drop(r);
    l.fake.set_refresh_tokens(RefreshTokens::Always);
    assert_eq!(
        login_with(&app.client, "linkedin").await.0,
        Status::SeeOther
    );
    let first = exposed_refresh_token(&app.client).await;
    let r = app.client.post("/auth/linkedin/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    drop(r);
    assert_eq!(exposed_refresh_token(&app.client).await, first);
}
