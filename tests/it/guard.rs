//! `SocialAuth` and `AuthUser` on cookies and Bearer headers, valid and hostile tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header as JwtHeader};
use rocket::http::{Cookie, Header, Status};
use rocket::local::asynchronous::Client;
use rocket_social_auth::{AuthService, Identity};
use serde_json::json;

use crate::common::*;

async fn kind(client: &Client, bearer: Option<&str>) -> serde_json::Value {
    let mut request = client.get("/whoami");
    if let Some(token) = bearer {
        request = request.header(Header::new("Authorization", format!("Bearer {token}")));
    }
    json(request.dispatch().await).await
}

fn sign(claims: serde_json::Value, alg: Algorithm, secret: &str) -> String {
    encode(
        &JwtHeader::new(alg),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn valid_claims() -> serde_json::Value {
    json!({"sub": "1", "role": "web_user", "provider": "github", "iat": now(), "exp": now() + 600, "jti": "j1", "name": "A"})
}

#[rocket::async_test]
async fn cookie_and_bearer_sign_in() {
    let app = TestApp::start(TestDb::sqlite().await).await;
    assert_eq!(kind(&app.client, None).await["kind"], "anonymous");
    assert_eq!(
        app.client.get("/strict").dispatch().await.status(),
        Status::Unauthorized
    );

    app.login(&app.client).await;
    let me = kind(&app.client, None).await;
    assert_eq!(me["kind"], "social");
    assert_eq!(me["claims"]["name"], "The Octocat");
    assert_eq!(
        app.client.get("/strict").dispatch().await.status(),
        Status::Ok
    );

    let jwt = session_jwt(&app.client).await;
    let api = app.browser().await;
    assert_eq!(kind(&api, Some(&jwt)).await["kind"], "social");
    let r = api
        .get("/strict")
        .header(Header::new("Authorization", format!("bearer {jwt}")))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok, "the scheme is case-insensitive");
    // A Bearer header wins over the cookie, even when it is bad.
    assert_eq!(
        kind(&app.client, Some("not-a-jwt")).await["kind"],
        "anonymous"
    );
    // The cookie's plain JWT is not accepted as a cookie: it must be Rocket-encrypted.
    let r = api
        .get("/whoami")
        .cookie(Cookie::new("jwt", jwt.clone()))
        .dispatch()
        .await;
    assert_eq!(json(r).await["kind"], "anonymous");
}

#[rocket::async_test]
async fn hostile_tokens_are_anonymous() {
    let app = TestApp::start(TestDb::sqlite().await).await;
    let good = sign(valid_claims(), Algorithm::HS256, JWT_SECRET);
    assert_eq!(kind(&app.client, Some(&good)).await["kind"], "social");

    let mut expired = valid_claims();
    expired["exp"] = json!(now() - 5);
    let wrong_secret = sign(
        valid_claims(),
        Algorithm::HS256,
        "another-secret-0123456789abcdef0123",
    );
    let other_alg = sign(valid_claims(), Algorithm::HS512, JWT_SECRET);
    let no_exp = {
        let mut c = valid_claims();
        c.as_object_mut().unwrap().remove("exp");
        sign(c, Algorithm::HS256, JWT_SECRET)
    };
    let payload = URL_SAFE_NO_PAD.encode(valid_claims().to_string());
    let alg_none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
    );
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut c = valid_claims();
        c["sub"] = json!("2");
        parts[1] = URL_SAFE_NO_PAD.encode(c.to_string());
        parts.join(".")
    };
    let cases = [
        ("expired", sign(expired, Algorithm::HS256, JWT_SECRET)),
        ("wrong secret", wrong_secret),
        ("HS512 when HS256 is configured", other_alg),
        ("no exp", no_exp),
        ("alg none", alg_none),
        ("tampered payload", tampered),
        ("garbage", "a.b.c".into()),
        ("empty", String::new()),
        ("huge", "x".repeat(100_000)),
    ];
    for (name, token) in cases {
        assert_eq!(
            kind(&app.client, Some(&token)).await["kind"],
            "anonymous",
            "{name}"
        );
        let r = app
            .client
            .get("/strict")
            .header(Header::new("Authorization", format!("Bearer {token}")))
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::Unauthorized, "{name}");
        // The same token in the (encrypted) cookie.
        let r = app
            .client
            .get("/whoami")
            .private_cookie(Cookie::new("jwt", token.clone()))
            .dispatch()
            .await;
        assert_eq!(json(r).await["kind"], "anonymous", "{name} as cookie");
    }
    // A tampered cookie (not Rocket-encrypted with our key).
    let r = app
        .client
        .get("/whoami")
        .cookie(Cookie::new("jwt", "AAAA".repeat(30)))
        .dispatch()
        .await;
    assert_eq!(json(r).await["kind"], "anonymous");
}

#[rocket::async_test]
async fn app_issued_token_is_local() {
    let app = TestApp::start(TestDb::sqlite().await).await;
    let service = app.client.rocket().state::<AuthService>().unwrap();
    let jwt = service
        .issue_jwt(Identity::new("admin-7").name("Admin"))
        .await
        .unwrap();
    assert_eq!(jwt.claims.provider, None);
    assert_eq!(jwt.claims.role, "web_user");
    let me = kind(&app.client, Some(&jwt.token)).await;
    assert_eq!(me["kind"], "local");
    assert_eq!(me["provider"], serde_json::Value::Null);
    assert_eq!(me["claims"]["sub"], "admin-7");
    let r = app
        .client
        .get("/auth/token")
        .header(Header::new(
            "Authorization",
            format!("Bearer {}", jwt.token),
        ))
        .dispatch()
        .await;
    assert_eq!(
        r.status(),
        Status::Unauthorized,
        "a local login has no provider token: it is answered as signed out"
    );
    let r = app
        .client
        .get("/auth/session")
        .header(Header::new(
            "Authorization",
            format!("Bearer {}", jwt.token),
        ))
        .dispatch()
        .await;
    let session = json(r).await;
    assert_eq!(session["user"]["id"], "admin-7");
    assert_eq!(session["provider"], serde_json::Value::Null);
}
