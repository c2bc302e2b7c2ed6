//! Microsoft Entra ID (`kind = "microsoft"`) against the fake Entra ID: the templated
//! multi-tenant issuer checked with the token's `tid`, tenant rules, users keyed on
//! (`tid`, `oid`), an email that never links, rotating refresh tokens, and every AADSTS error
//! shape of the wire-format notes.

use rocket::http::Status;
use rocket_social_auth::testing::{FakeOidc, FakeOidcUser, FakeServer, IdTokenFault, OidcFault};
use serde_json::json;

use crate::common::*;
use crate::db_tests;
use crate::oidc::login_with;

db_tests!(
    microsoft_multi_tenant_signs_in_keyed_on_tenant_and_object_id,
    microsoft_offline_refresh_replaces_the_refresh_token,
    microsoft_allowed_tenants_and_tenant_classes,
);

const MS_CLIENT: &str = "00000000-0000-0000-0000-00000000c1d0";
const MS_SECRET: &str = "ms-secret";
const CONTOSO: &str = "8eaef023-2b34-4da1-9baa-8bc8c9d6a490";
const FABRIKAM: &str = "2a1b3c4d-0000-4000-8000-00000000fab1";
const ADELE: &str = "87d349ed-44d7-43e1-9a83-5f2406dee5bd";

struct Entra {
    fake: FakeOidc,
    server: FakeServer,
}

async fn entra(user: FakeOidcUser) -> Entra {
    let fake = FakeOidc::microsoft(MS_CLIENT, MS_SECRET);
    fake.sign_in_as(user);
    let server = fake.clone().spawn().await.unwrap();
    Entra { fake, server }
}

fn adele() -> FakeOidcUser {
    FakeOidcUser::new(ADELE, "Adele Vance", "AdeleV@contoso.example").tenant(CONTOSO)
}

fn toml(e: &Entra, extra: &str) -> String {
    format!(
        "[social_auth.providers.microsoft]\nclient_id = \"{MS_CLIENT}\"\nclient_secret = \"{MS_SECRET}\"\nauthority = \"{}\"\n{extra}",
        e.server.url()
    )
}

async fn social_ids(db: &TestDb) -> Vec<String> {
    let pool = db.pool().await;
    sqlx::query_scalar(
        "SELECT social_id FROM social_users WHERE provider = 'microsoft' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
}

/// The stored refresh token, as `GET /auth/refresh_token` shows it.
pub async fn exposed_refresh_token(client: &rocket::local::asynchronous::Client) -> String {
    json(client.get("/auth/refresh_token").dispatch().await).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn microsoft_multi_tenant_signs_in_keyed_on_tenant_and_object_id(db: TestDb) {
    let e = entra(adele()).await;
    let app = TestApp::start_with(db, &toml(&e, "")).await;
    let start = app.client.get("/auth/microsoft").dispatch().await;
    let location = url::Url::parse(start.headers().get_one("Location").unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(location.path(), "/common/oauth2/v2.0/authorize");
    assert_eq!(
        q["scope"], "openid email profile",
        "no offline_access unless asked"
    );
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["redirect_uri"],
        "http://127.0.0.1:8000/auth/microsoft/callback"
    );
    assert!(!q.contains_key("prompt"));
    drop(start);

    // `common` publishes `…/{tenantid}/v2.0`; the token's `iss` names Contoso's tenant.
    let (status, body) = login_with(&app.client, "microsoft").await;
    assert_eq!(status, Status::SeeOther, "{body}");
    let session = json(app.client.get("/auth/session").dispatch().await).await;
    assert_eq!(session["provider"], "microsoft");
    assert_eq!(session["user"]["name"], "Adele Vance");
    assert_eq!(session["user"]["email"], "AdeleV@contoso.example");
    assert_eq!(
        session["user"]["avatar_url"],
        serde_json::Value::Null,
        "Graph's photo URL needs the access token: no avatar"
    );
    assert_eq!(
        social_ids(&app.db).await,
        [format!("{CONTOSO}/{ADELE}")],
        "keyed on tid/oid, not the pairwise sub"
    );

    // A personal account (the consumers tenant) and another organization: users of their own.
    e.fake.sign_in_as(
        FakeOidcUser::new(ADELE, "Adele at home", "adele@outlook.example")
            .tenant(FakeOidcUser::CONSUMERS_TENANT),
    );
    let browser = app.browser().await;
    assert_eq!(login_with(&browser, "microsoft").await.0, Status::SeeOther);
    e.fake.sign_in_as(adele());
    assert_eq!(login_with(&browser, "microsoft").await.0, Status::SeeOther);
    assert_eq!(
        social_ids(&app.db).await,
        [
            format!("{CONTOSO}/{ADELE}"),
            format!("{}/{ADELE}", FakeOidcUser::CONSUMERS_TENANT)
        ],
        "the same object id in another tenant is another user; signing in again adds none"
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 2);
}

async fn microsoft_offline_refresh_replaces_the_refresh_token(db: TestDb) {
    let e = entra(adele()).await;
    let app = TestApp::start_with(
        db,
        &toml(
            &e,
            "offline = true\n[social_auth]\nexpose_refresh_token = true\n",
        ),
    )
    .await;
    let start = app.client.get("/auth/microsoft").dispatch().await;
    let location = start.headers().get_one("Location").unwrap().to_owned();
    assert!(
        location.contains("scope=openid+email+profile+offline_access"),
        "{location}"
    );
    drop(start);
    assert_eq!(
        login_with(&app.client, "microsoft").await.0,
        Status::SeeOther
    );
    let pool = app.db.pool().await;
    let stored = || {
        sqlx::query_scalar::<_, String>(
            "SELECT refresh_token FROM social_users WHERE provider = 'microsoft'",
        )
        .fetch_one(&pool)
    };
    let first = exposed_refresh_token(&app.client).await;
    let first_row = stored().await.unwrap();
    assert!(first.starts_with("0.A") && e.fake.is_valid_refresh_token(&first));

    let r = app.client.post("/auth/microsoft/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    drop(r);
    let second = exposed_refresh_token(&app.client).await;
    assert_ne!(
        second, first,
        "Microsoft's new refresh token replaces the old one"
    );
    assert_ne!(stored().await.unwrap(), first_row, "in the row");
    assert!(e.fake.is_valid_refresh_token(&second));
    assert_eq!(e.fake.refresh_calls(), 1);

    // Expired by inactivity, revoked grant, sign-in frequency: `invalid_grant`, sign in again.
    for fault in ["AADSTS700082", "AADSTS50173", "AADSTS70043"] {
        e.fake.set_token_fault(None);
        assert_eq!(
            login_with(&app.client, "microsoft").await.0,
            Status::SeeOther
        );
        e.fake.set_token_fault(Some(OidcFault::Error(fault.into())));
        let r = app.client.post("/auth/microsoft/refresh").dispatch().await;
        assert_eq!(r.status(), Status::Unauthorized, "{fault}");
        assert_eq!(
            json(r).await,
            json!({"status": "reauthenticate"}),
            "{fault}"
        );
    }
}

async fn microsoft_allowed_tenants_and_tenant_classes(db: TestDb) {
    let e = entra(adele()).await;
    let app = TestApp::start_with(
        db,
        &toml(
            &e,
            &format!("allowed_tenants = [\"{}\"]\n", CONTOSO.to_uppercase()),
        ),
    )
    .await;
    assert_eq!(
        login_with(&app.client, "microsoft").await.0,
        Status::SeeOther
    );
    e.fake.sign_in_as(
        FakeOidcUser::new(
            "11111111-2222-4333-8444-555555555555",
            "Eve",
            "eve@fabrikam.example",
        )
        .tenant(FABRIKAM),
    );
    let browser = app.browser().await;
    let (status, body) = login_with(&browser, "microsoft").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (Status::Forbidden, Some("tenant_not_allowed"))
    );
    assert!(browser.cookies().get("jwt").is_none());
    assert_eq!(social_ids(&app.db).await, [format!("{CONTOSO}/{ADELE}")]);

    // `organizations`: personal accounts are refused.
    let orgs = app
        .instance(&format!(
            "[social_auth.providers.work]\nkind = \"microsoft\"\ntenant = \"organizations\"\nclient_id = \"{MS_CLIENT}\"\nclient_secret = \"{MS_SECRET}\"\nauthority = \"{}\"\n",
            e.server.url()
        ))
        .await;
    e.fake
        .sign_in_as(adele().tenant(FakeOidcUser::CONSUMERS_TENANT));
    let (status, body) = login_with(&orgs, "work").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (Status::Forbidden, Some("tenant_not_allowed"))
    );
    e.fake.sign_in_as(adele());
    assert_eq!(
        login_with(&orgs, "work").await.0,
        Status::SeeOther,
        "a work account passes"
    );
}

/// A single tenant by id, by domain (discovery names the id), and `consumers`: each
/// discovery's concrete issuer; a token of another tenant is refused.
#[rocket::async_test]
async fn microsoft_single_tenant_by_id_domain_and_consumers() {
    let e = entra(adele()).await;
    e.fake.set_tenant_domain("contoso.example", CONTOSO);
    let tables = format!(
        "[social_auth.providers.byid]\nkind = \"microsoft\"\ntenant = \"{CONTOSO}\"\nclient_id = \"{MS_CLIENT}\"\nclient_secret = \"{MS_SECRET}\"\nauthority = \"{u}\"\n\
         [social_auth.providers.bydomain]\nkind = \"microsoft\"\ntenant = \"contoso.example\"\nclient_id = \"{MS_CLIENT}\"\nclient_secret = \"{MS_SECRET}\"\nauthority = \"{u}\"\n\
         [social_auth.providers.home]\nkind = \"microsoft\"\ntenant = \"consumers\"\nclient_id = \"{MS_CLIENT}\"\nclient_secret = \"{MS_SECRET}\"\nauthority = \"{u}\"\n",
        u = e.server.url()
    );
    let app = TestApp::start_with(TestDb::sqlite().await, &tables).await;
    for provider in ["byid", "bydomain"] {
        let (status, body) = login_with(&app.client, provider).await;
        assert_eq!(status, Status::SeeOther, "{provider}: {body}");
    }
    let (status, _) = login_with(&app.client, "home").await;
    assert_eq!(
        status,
        Status::BadGateway,
        "a work account's token is not of the consumers issuer"
    );
    e.fake
        .sign_in_as(adele().tenant(FakeOidcUser::CONSUMERS_TENANT));
    assert_eq!(login_with(&app.client, "home").await.0, Status::SeeOther);
    let (status, _) = login_with(&app.client, "byid").await;
    assert_eq!(
        status,
        Status::BadGateway,
        "another tenant's token against a single-tenant issuer"
    );
}

/// The issuer check is never skipped: a `tid` that is not the tenant of `iss`, a token with no
/// `tid`, another issuer, each a 502 with nothing stored.
#[rocket::async_test]
async fn microsoft_templated_issuer_is_checked_with_the_tokens_tenant() {
    let e = entra(adele()).await;
    let app = TestApp::start_with(TestDb::sqlite().await, &toml(&e, "")).await;
    for (user, fault) in [
        (adele().claim("tid", json!(FABRIKAM)), None),
        (adele().claim("tid", json!("{tenantid}")), None),
        (adele().claim("tid", serde_json::Value::Null), None),
        (adele(), Some(IdTokenFault::WrongIssuer)),
        (adele(), Some(IdTokenFault::WrongAudience)),
        (adele(), Some(IdTokenFault::WrongNonce)),
    ] {
        e.fake.sign_in_as(user.clone());
        e.fake.set_fault(fault);
        let (status, body) = login_with(&app.client, "microsoft").await;
        let expected = if fault == Some(IdTokenFault::WrongNonce) {
            Status::BadRequest
        } else {
            Status::BadGateway
        };
        assert_eq!(
            status, expected,
            "{:?} {fault:?}: {body}",
            user.extra_claims
        );
    }
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM users").await,
        0,
        "nothing stored"
    );
}

/// Microsoft's `email` is not verified: it never links, even with `link_by_verified_email`
/// and an `email_verified` claim.
#[rocket::async_test]
async fn microsoft_email_never_links_accounts() {
    let e = entra(
        FakeOidcUser::new(ADELE, "Octo MS", "octocat@github.example")
            .tenant(CONTOSO)
            .claim("email_verified", json!(true))
            .claim("xms_edov", json!(true)),
    )
    .await;
    let app = TestApp::start_with(
        TestDb::sqlite().await,
        &format!(
            "{}[social_auth.providers.github]\nlink_by_verified_email = true\n",
            toml(&e, "link_by_verified_email = true\n")
        ),
    )
    .await;
    app.login(&app.client).await;
    let octocat = claims(&session_jwt(&app.client).await)["sub"].clone();
    let browser = app.browser().await;
    assert_eq!(login_with(&browser, "microsoft").await.0, Status::SeeOther);
    assert_ne!(
        claims(&session_jwt(&browser).await)["sub"],
        octocat,
        "not linked"
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 2);
}

/// Every error shape of the notes: the AADSTS denial at authorize, the token endpoint's
/// AADSTS bodies (one or several `error_codes`, 401 `invalid_client`, 429), and Graph's
/// userinfo errors (the id_token's profile suffices).
#[rocket::async_test]
async fn microsoft_error_shapes() {
    let e = entra(adele()).await;
    let app = TestApp::start_with(TestDb::sqlite().await, &toml(&e, "")).await;
    e.fake.set_denied(true);
    let (status, body) = login_with(&app.client, "microsoft").await;
    assert_eq!(
        (
            status,
            body["error"].as_str(),
            body["provider_error"].as_str()
        ),
        (
            Status::BadRequest,
            Some("provider_denied"),
            Some("access_denied")
        ),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("AADSTS65004"));
    e.fake.set_denied(false);
    for code in ["consent_required", "interaction_required"] {
        e.fake.set_authorize_error(Some(code));
        let (status, body) = login_with(&app.client, "microsoft").await;
        assert_eq!(
            (status, body["provider_error"].as_str()),
            (Status::BadRequest, Some(code))
        );
    }
    e.fake.set_authorize_error(None);

    for (fault, code) in [
        ("AADSTS70000", "invalid_grant"),
        ("AADSTS54005", "invalid_grant"),
        ("AADSTS70002,70008", "invalid_client"),
        ("AADSTS7000215", "invalid_client"),
        ("AADSTS500112", "invalid_request"),
        ("AADSTS9002326", "invalid_request"),
        ("AADSTS50196", "temporarily_unavailable"),
    ] {
        e.fake.set_token_fault(Some(OidcFault::Error(fault.into())));
        let (status, body) = login_with(&app.client, "microsoft").await;
        assert_eq!(
            (
                status,
                body["error"].as_str(),
                body["provider_error"].as_str()
            ),
            (Status::BadGateway, Some("provider_error"), Some(code)),
            "{fault}: {body}"
        );
        assert!(
            !body["message"].as_str().unwrap().contains('\r'),
            "the description's CR LF are not echoed"
        );
    }
    e.fake.set_token_fault(None);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 0);

    // Graph's userinfo failing: the id_token has the profile.
    for fault in [
        OidcFault::Error("InvalidAuthenticationToken".into()),
        OidcFault::RateLimited,
    ] {
        e.fake.set_userinfo_fault(Some(fault));
        assert_eq!(
            login_with(&app.client, "microsoft").await.0,
            Status::SeeOther
        );
    }
    let session = json(app.client.get("/auth/session").dispatch().await).await;
    assert_eq!(session["user"]["name"], "Adele Vance");
}

#[rocket::async_test]
async fn microsoft_configuration_is_checked() {
    let db = TestDb::sqlite().await;
    let base = "[social_auth.providers.microsoft]\nclient_id = \"a\"\nclient_secret = \"b\"\n";
    for extra in [
        "tenant = \"not a tenant\"\n",
        "tenant = \"../evil\"\n",
        "allowed_tenants = [\"contoso\"]\n",
        "authority = \"http://login.example\"\n",
        "issuer = \"https://login.microsoftonline.com/common/v2.0\"\n",
        "scopes = [\"openid\"]\n",
        "token_auth = \"jwt\"\n",
    ] {
        let result = rocket(figment(
            &db.url,
            "http://127.0.0.1:9",
            &format!("{base}{extra}"),
        ))
        .ignite()
        .await;
        assert!(result.is_err(), "{extra}");
        let _ = result.map_err(|e| e.kind().to_string());
    }
    let missing_secret = "[social_auth.providers.microsoft]\nclient_id = \"a\"\n";
    let result = rocket(figment(&db.url, "http://127.0.0.1:9", missing_secret))
        .ignite()
        .await;
    assert!(result.is_err());
    let _ = result.map_err(|e| e.kind().to_string());
}
