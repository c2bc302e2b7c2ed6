//! `token_auth = "basic" | "post" | "none"` on the OpenID kinds: it overrides what discovery
//! advertises, and a discovery that can never work with the table fails the launch (naming
//! `token_auth`) instead of a provider answering 503 forever.

use rocket::http::Status;
use rocket::local::asynchronous::Client;
use rocket_social_auth::testing::{ClientAuth, FakeOidc, FakeOidcUser};

use crate::common::*;
use crate::oidc::login_with;

async fn fake(
    methods: &[ClientAuth],
    advertised: bool,
) -> (FakeOidc, rocket_social_auth::testing::FakeServer) {
    let fake = FakeOidc::generic("acme-client", "acme-secret");
    fake.set_client_auth_methods(methods);
    fake.set_auth_methods_advertised(advertised);
    fake.sign_in_as(FakeOidcUser::new(
        "42",
        "Grace Hopper",
        "grace@acme.example",
    ));
    let server = fake.clone().spawn().await.unwrap();
    (fake, server)
}

fn table(issuer: &str, secret: bool, extra: &str) -> String {
    let secret = if secret {
        "client_secret = \"acme-secret\"\n"
    } else {
        ""
    };
    format!("[social_auth.providers.acme]\nkind = \"oidc\"\nissuer = \"{issuer}\"\nclient_id = \"acme-client\"\n{secret}{extra}")
}

/// A provider whose discovery advertises only `none` (a public client with PKCE): without
/// `token_auth` the launch fails; with `token_auth = "none"` and no secret it signs in (the
/// fake refuses any secret from a public client).
#[rocket::async_test]
async fn a_discovery_advertising_only_none_fails_the_launch_until_token_auth_says_none() {
    let (_fake, server) = fake(&[ClientAuth::None], true).await;
    let db = TestDb::sqlite().await;
    let launch = Client::tracked(rocket(figment(
        &db.url,
        "http://127.0.0.1:9",
        &table(server.url(), true, ""),
    )))
    .await;
    assert!(
        launch.is_err(),
        "a discovery that can never work is a launch error, not a 503"
    );
    let _ = launch.map_err(|e| e.kind().to_string());

    let app = TestApp::start_with(db, &table(server.url(), false, "token_auth = \"none\"\n")).await;
    let (status, body) = login_with(&app.client, "acme").await;
    assert_eq!(status, Status::SeeOther, "{body}");
    let session = json(app.client.get("/auth/session").dispatch().await).await;
    assert_eq!(session["user"]["name"], "Grace Hopper");
}

/// A provider that is merely down at launch still launches (503 until it is back), even with
/// `token_auth`.
#[rocket::async_test]
async fn a_provider_down_at_launch_is_still_a_503() {
    let (fake, server) = fake(&[ClientAuth::None], true).await;
    fake.set_discovery_down(true);
    let app = TestApp::start_with(TestDb::sqlite().await, &table(server.url(), true, "")).await;
    let r = app
        .client
        .get("/auth/acme")
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::ServiceUnavailable);
    drop(r);
    // Back, and what it publishes can never work: 500 provider_misconfigured, not a 503.
    fake.set_discovery_down(false);
    let r = app
        .client
        .get("/auth/acme")
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::InternalServerError);
    assert_eq!(json(r).await["error"], "provider_misconfigured");
}

/// Discovery silent on the methods while the endpoint takes only `post` (LinkedIn's habit):
/// the default Basic is refused; `token_auth = "post"` signs in. And `basic` is sent when asked
/// even where discovery prefers `post`.
#[rocket::async_test]
async fn token_auth_overrides_what_discovery_advertises() {
    let (_fake, server) = fake(&[ClientAuth::Post], false).await;
    let app = TestApp::start_with(TestDb::sqlite().await, &table(server.url(), true, "")).await;
    let (status, body) = login_with(&app.client, "acme").await;
    assert_eq!(
        (status, body["provider_error"].as_str()),
        (Status::BadGateway, Some("invalid_client")),
        "{body}"
    );
    let post = app
        .instance(&table(server.url(), true, "token_auth = \"post\"\n"))
        .await;
    assert_eq!(login_with(&post, "acme").await.0, Status::SeeOther);

    let (_fake, server) = fake(&[ClientAuth::Post, ClientAuth::Basic], true).await;
    let app = TestApp::start_with(
        TestDb::sqlite().await,
        &table(server.url(), true, "token_auth = \"basic\"\n"),
    )
    .await;
    assert_eq!(login_with(&app.client, "acme").await.0, Status::SeeOther);
}

/// Every OpenID kind takes the key; a bad value, or a secret with `none`, names the key.
#[rocket::async_test]
async fn token_auth_is_a_key_of_every_openid_kind() {
    let db = TestDb::sqlite().await;
    let ids = "client_id = \"a\"\nclient_secret = \"b\"\n";
    for kind in ["google", "gitlab", "linkedin", "slack", "microsoft", "oidc"] {
        let issuer = if kind == "oidc" {
            "issuer = \"https://id.acme.example\"\n"
        } else {
            ""
        };
        let ok = format!(
            "[social_auth.providers.p]\nkind = \"{kind}\"\n{ids}{issuer}token_auth = \"post\"\n"
        );
        let checked = rocket_social_auth::SocialAuthFairing::new().check_config(&figment(
            &db.url,
            "http://127.0.0.1:9",
            &ok,
        ));
        assert!(checked.is_ok(), "{kind}: {checked:?}");
        for (extra, key) in [
            ("token_auth = \"jwt\"\n", "token_auth"),
            ("token_auth = \"none\"\n", "client_secret"),
        ] {
            let bad = format!("[social_auth.providers.p]\nkind = \"{kind}\"\n{ids}{issuer}{extra}");
            let error = rocket_social_auth::SocialAuthFairing::new()
                .check_config(&figment(&db.url, "http://127.0.0.1:9", &bad))
                .expect_err(&bad);
            assert!(
                error
                    .to_string()
                    .contains(&format!("`social_auth.providers.p.{key}`")),
                "{kind}: {error}"
            );
        }
    }
}
