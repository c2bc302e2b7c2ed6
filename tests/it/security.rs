//! The security model: tokens encrypted at rest, revocable sessions, asymmetric JWTs and JWKS,
//! account linking without takeover, cross-site refusal, policy hooks and the rate limit.
//! Each test would fail if its protection were removed.

use std::process::Command;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header as JwtHeader, Validation};
use rocket::figment::providers::{Format, Toml};
use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
use rocket_social_auth::testing::{
    FakeFacebook, FakeFacebookUser, FakeGithub, FakeServer, FakeUser, TokenMode,
};
use rocket_social_auth::{Denied, Policy, SignIn, SocialAuthFairing, User};
use serde_json::{json, Map, Value};

use crate::common::*;
use crate::db_tests;

db_tests!(
    no_plain_token_in_the_database,
    a_moved_ciphertext_does_not_decrypt,
    key_rotation_and_reencrypt,
    logout_revokes_the_jwt_everywhere,
    logout_all_revokes_every_session,
    link_and_unlink,
    linking_refuses_takeovers,
    link_by_verified_email_only_when_vouched,
    policy_denies_adds_claims_and_runs_in_the_transaction,
);

pub(crate) fn bearer(jwt: &str) -> Header<'static> {
    Header::new("Authorization", format!("Bearer {jwt}"))
}

pub(crate) async fn strict_status(client: &Client, jwt: &str) -> Status {
    client
        .get("/strict")
        .header(bearer(jwt))
        .dispatch()
        .await
        .status()
}

// ---- 1. Provider tokens encrypted at rest -------------------------------------------------

async fn no_plain_token_in_the_database(db: TestDb) {
    let app = TestApp::start_with(db, "[social_auth]\nexpose_refresh_token = true\n").await;
    app.fake.set_token_mode(TokenMode::Expiring);
    app.login(&app.client).await;
    let access = plain_token(&app.client).await;
    let refresh = json(app.client.get("/auth/refresh_token").dispatch().await).await
        ["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let pool = app.db.pool().await;
    let rows: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT token, refresh_token FROM social_users")
            .fetch_all(&pool)
            .await
            .unwrap();
    for (token, refresh_token) in rows {
        let (token, refresh_token) = (token.unwrap(), refresh_token.unwrap());
        assert!(token.starts_with("v1.t1.") && refresh_token.starts_with("v1.t1."));
        for column in [&token, &refresh_token] {
            assert!(!column.contains(&access) && !column.contains(&refresh));
        }
    }
    // Nowhere else either.
    let dump: Vec<(String,)> = sqlx::query_as(
        "SELECT COALESCE(name, '') || COALESCE(email, '') || COALESCE(avatar_url, '') FROM users",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(dump.iter().all(|(s,)| !s.contains(&access)));
}

async fn a_moved_ciphertext_does_not_decrypt(db: TestDb) {
    let app = TestApp::start(db).await;
    app.login(&app.client).await;
    let other = app.browser().await;
    app.fake.sign_in_as(FakeUser::new(9, "hubot"));
    app.login(&other).await;
    assert!(plain_token(&other).await.starts_with("gho_"));
    // Copy octocat's ciphertext into hubot's row: it is bound to octocat's row.
    let pool = app.db.pool().await;
    sqlx::query(
        "UPDATE social_users SET token = (SELECT token FROM social_users WHERE social_id = '583231') \
         WHERE social_id = '9'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let r = other.get("/auth/token").dispatch().await;
    assert_eq!(
        r.status(),
        Status::NotFound,
        "a token that does not decrypt is absent"
    );
    assert_eq!(json(r).await, json!({"token": null, "status": 404}));
    // The original row still decrypts.
    assert!(plain_token(&app.client).await.starts_with("gho_"));
}

const K2: &str = "k2:HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";

async fn key_rotation_and_reencrypt(db: TestDb) {
    let app = TestApp::start(db).await;
    app.login(&app.client).await;
    let plain = plain_token(&app.client).await;
    // A legacy row in plain text (e.g. imported from the Django app).
    let pool = app.db.pool().await;
    sqlx::query("INSERT INTO users (name, created_at, updated_at) VALUES ('legacy', 0, 0)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO social_users (user_id, provider, social_id, token, created_at, updated_at) \
         SELECT id, 'github', '4242', 'gho_legacy_plain', 0, 0 FROM users WHERE name = 'legacy'",
    )
    .execute(&pool)
    .await
    .unwrap();

    // Rotate: k2 first (encrypts), t1 still decrypts.
    let rotated = format!("[social_auth]\ntoken_keys = [\"{K2}\", \"{TOKEN_KEY}\"]\n");
    let second = app.instance(&rotated).await;
    let jwt = session_jwt(&app.client).await;
    let r = second
        .get("/auth/token")
        .header(bearer(&jwt))
        .dispatch()
        .await;
    assert_eq!(
        json(r).await["token"],
        plain.as_str(),
        "old key still decrypts"
    );

    let figment = figment(&app.db.url, app.server.url(), "").merge(Toml::string(&rotated));
    let report = rocket_social_auth::reencrypt(&figment).await.unwrap();
    assert_eq!(report.rows, 2);
    assert_eq!(report.rewritten, 2, "{report:?}");
    let again = rocket_social_auth::reencrypt(&figment).await.unwrap();
    assert_eq!(
        (again.rewritten, again.current),
        (0, 2),
        "resumable: nothing left to do"
    );
    let tokens: Vec<(String,)> = sqlx::query_as("SELECT token FROM social_users ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        tokens.iter().all(|(t,)| t.starts_with("v1.k2.")),
        "{tokens:?}"
    );

    // Only k2 now: everything still decrypts, including the once-plain legacy token.
    let only_k2 = app
        .instance(&format!("[social_auth]\ntoken_keys = [\"{K2}\"]\n"))
        .await;
    let r = only_k2
        .get("/auth/token")
        .header(bearer(&jwt))
        .dispatch()
        .await;
    assert_eq!(json(r).await["token"], plain.as_str());
    let service = only_k2
        .rocket()
        .state::<rocket_social_auth::AuthService>()
        .unwrap();
    let legacy_id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE name = 'legacy'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        service.get_token(legacy_id, "github").await.token(),
        Some("gho_legacy_plain")
    );
}

// ---- 2. Revocable sessions ------------------------------------------------------------------

async fn logout_revokes_the_jwt_everywhere(db: TestDb) {
    let app = TestApp::start(db).await;
    app.login(&app.client).await;
    let jwt = session_jwt(&app.client).await;
    let claims = claims(&jwt);
    let pool = app.db.pool().await;
    let recorded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE jti = $1")
        .bind(claims["jti"].as_str().unwrap())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(recorded, 1, "the session is recorded");

    // Another instance that reloads revocations every second.
    let other = app
        .instance("[social_auth]\nrevocation_cache_secs = 1\n")
        .await;
    let api = app.browser().await;
    assert_eq!(strict_status(&api, &jwt).await, Status::Ok);
    assert_eq!(strict_status(&other, &jwt).await, Status::Ok);
    // Seen (and remembered by the guard) on this instance too, before the logout.
    assert_eq!(strict_status(&app.client, &jwt).await, Status::Ok);

    let r = app.client.post("/auth/logout").dispatch().await;
    assert_eq!(r.status(), Status::SeeOther);
    // The instance that logged out refuses the copied JWT at once ...
    let same_instance = app
        .client
        .get("/strict")
        .header(bearer(&jwt))
        .dispatch()
        .await;
    assert_eq!(same_instance.status(), Status::Unauthorized);
    // ... and the other instance within its revocation_cache_secs.
    let started = std::time::Instant::now();
    while strict_status(&other, &jwt).await == Status::Ok {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(4),
            "revocation reached the other instance"
        );
        rocket::tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let revoked_at: Option<i64> =
        sqlx::query_scalar("SELECT revoked_at FROM sessions WHERE jti = $1")
            .bind(claims["jti"].as_str().unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(revoked_at.is_some());
    // A new login gives a new, working session.
    app.login(&app.client).await;
    let fresh = session_jwt(&app.client).await;
    assert_ne!(fresh, jwt);
    assert_eq!(strict_status(&other, &fresh).await, Status::Ok);
}

async fn logout_all_revokes_every_session(db: TestDb) {
    let app = TestApp::start_with(db, "[social_auth]\nlogout_url = \"/bye\"\n").await;
    let phone = app.browser().await;
    app.login(&app.client).await;
    app.login(&phone).await;
    let (laptop_jwt, phone_jwt) = (session_jwt(&app.client).await, session_jwt(&phone).await);
    assert_ne!(laptop_jwt, phone_jwt);
    // Cross-site: refused, nothing revoked.
    let r = app
        .client
        .post("/auth/logout_all")
        .header(Header::new("Origin", "https://evil.example"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Forbidden);
    assert_eq!(strict_status(&app.client, &phone_jwt).await, Status::Ok);

    let r = app.client.post("/auth/logout_all").dispatch().await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(r.headers().get_one("Location"), Some("/bye"));
    drop(r);
    assert!(app.client.cookies().get("jwt").is_none());
    assert_eq!(
        strict_status(&app.client, &phone_jwt).await,
        Status::Unauthorized
    );
    assert_eq!(
        strict_status(&app.client, &laptop_jwt).await,
        Status::Unauthorized
    );
    let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL")
        .fetch_one(&app.db.pool().await)
        .await
        .unwrap();
    assert_eq!(live, 0);
}

#[rocket::async_test]
async fn expired_sessions_are_purged() {
    let db = TestDb::sqlite().await;
    let app = TestApp::start(db).await;
    let pool = app.db.pool().await;
    sqlx::query("INSERT INTO sessions (jti, sub, created_at, expires_at, revoked_at) VALUES ('old', '1', 0, $1, $1)")
        .bind(now() - 3 * 86_400)
        .execute(&pool)
        .await
        .unwrap();
    // A new instance purges at liftoff, in the background.
    let _other = app.browser().await;
    let started = std::time::Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE jti = 'old'")
            .fetch_one(&pool)
            .await
            .unwrap();
        if n == 0 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "purged"
        );
        rocket::tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

// ---- 3. Asymmetric JWTs and a JWKS endpoint ---------------------------------------------------

fn openssl_key(dir: &std::path::Path, name: &str, args: &[&str]) -> std::path::PathBuf {
    let path = dir.join(name);
    let out = Command::new("openssl")
        .args(["genpkey", "-out"])
        .arg(&path)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// Verifies `token` against `jwks` with Node's own crypto: an implementation that shares nothing
/// with ours.
fn node_verifies(jwks: &Value, token: &str) -> bool {
    const SCRIPT: &str = r#"
const crypto = require('crypto');
const [jwks, token] = [JSON.parse(process.argv[1]), process.argv[2]];
const [h, p, s] = token.split('.');
const header = JSON.parse(Buffer.from(h, 'base64url'));
const jwk = jwks.keys.find(k => k.kid === header.kid);
const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
const data = Buffer.from(h + '.' + p), sig = Buffer.from(s, 'base64url');
const ok = header.alg === 'RS256' ? crypto.verify('sha256', data, key, sig)
  : header.alg === 'ES256' ? crypto.verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig)
  : header.alg === 'EdDSA' ? crypto.verify(null, data, key, sig) : false;
process.exit(ok ? 0 : 1);
"#;
    Command::new("node")
        .args(["-e", SCRIPT, &jwks.to_string(), token])
        .status()
        .expect("node runs")
        .success()
}

#[rocket::async_test]
async fn asymmetric_tokens_verify_with_the_published_jwks() {
    let dir = std::env::temp_dir().join(format!("rsa_keys_{}_{}", std::process::id(), now()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "RS256",
            Algorithm::RS256,
            vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        ),
        (
            "ES256",
            Algorithm::ES256,
            vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
        ("EdDSA", Algorithm::EdDSA, vec!["-algorithm", "ed25519"]),
    ];
    for (name, algorithm, args) in cases {
        let old = openssl_key(&dir, &format!("{name}-old.pem"), &args);
        let new = openssl_key(&dir, &format!("{name}-new.pem"), &args);
        let keys = |list: &[(&str, &std::path::PathBuf)]| {
            let mut toml = format!(
                "[social_auth.jwt]\nalgorithm = \"{name}\"\nissuer = \"https://auth.example\"\naudience = \"api\"\n"
            );
            for (kid, path) in list {
                toml.push_str(&format!(
                    "[[social_auth.jwt.keys]]\nkid = \"{kid}\"\nprivate_key_file = \"{}\"\n",
                    path.display()
                ));
            }
            toml
        };
        // The HMAC secret of the base configuration is ignored by then: only the keys count.
        let app = TestApp::start_with(TestDb::sqlite().await, &keys(&[("old", &old)])).await;
        app.login(&app.client).await;
        let old_jwt = session_jwt(&app.client).await;
        let header = jsonwebtoken::decode_header(&old_jwt).unwrap();
        assert_eq!(
            (header.alg, header.kid.as_deref()),
            (algorithm, Some("old")),
            "{name}"
        );

        // Rotation: the new key signs, the old one still verifies.
        let rotated = app.instance(&keys(&[("new", &new), ("old", &old)])).await;
        assert_eq!(
            strict_status(&rotated, &old_jwt).await,
            Status::Ok,
            "{name}: old key verifies"
        );
        let r = rotated.get("/auth/jwks.json").dispatch().await;
        assert_eq!(r.status(), Status::Ok);
        let jwks: Value = json(r).await;
        let text = jwks.to_string();
        for private in [
            "\"d\"", "\"p\"", "\"q\"", "\"dp\"", "\"dq\"", "\"qi\"", "\"k\"",
        ] {
            assert!(
                !text.contains(private),
                "{name}: no private member {private} in {text}"
            );
        }
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);

        // A token issued by the rotated instance, verified with standard verifiers.
        let service = rotated
            .rocket()
            .state::<rocket_social_auth::AuthService>()
            .unwrap();
        let issued = service
            .issue_jwt(rocket_social_auth::Identity::new("7").name("Ada"))
            .await
            .unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&issued.token)
                .unwrap()
                .kid
                .as_deref(),
            Some("new")
        );
        let set: JwkSet = serde_json::from_value(jwks.clone()).unwrap();
        let jwk = set.find("new").unwrap();
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&["api"]);
        validation.set_issuer(&["https://auth.example"]);
        let decoded = jsonwebtoken::decode::<Value>(
            &issued.token,
            &DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .expect("jsonwebtoken verifies with the JWKS");
        assert_eq!(decoded.claims["sub"], "7");
        assert!(
            node_verifies(&jwks, &issued.token),
            "{name}: Node's crypto verifies with the JWKS"
        );
        assert!(
            node_verifies(&jwks, &old_jwt),
            "{name}: and the old token with the old key"
        );
        let mut forged = issued.token.clone();
        forged.replace_range(forged.len() - 6.., "AAAAAA");
        assert!(!node_verifies(&jwks, &forged));
        assert_eq!(strict_status(&rotated, &forged).await, Status::Unauthorized);

        // Algorithm confusion: an HS256 token keyed with the public key is refused.
        let public_pem = Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&new)
            .output()
            .unwrap()
            .stdout;
        let mut hs = JwtHeader::new(Algorithm::HS256);
        hs.kid = Some("new".into());
        let confused = jsonwebtoken::encode(
            &hs,
            &json!({"sub": "1", "role": "web_user", "provider": "github", "iat": now(), "exp": now() + 600, "jti": "x", "iss": "https://auth.example", "aud": "api"}),
            &EncodingKey::from_secret(&public_pem),
        )
        .unwrap();
        assert_eq!(
            strict_status(&rotated, &confused).await,
            Status::Unauthorized,
            "{name}"
        );
        // The wrong audience or issuer is refused too.
        let other_audience = app
            .instance(&keys(&[("new", &new)]).replace("audience = \"api\"", "audience = \"other\""))
            .await;
        assert_eq!(
            strict_status(&other_audience, &issued.token).await,
            Status::Unauthorized
        );
    }
    // With an HMAC algorithm there is nothing to publish.
    let hmac = TestApp::start(TestDb::sqlite().await).await;
    assert_eq!(
        hmac.client.get("/auth/jwks.json").dispatch().await.status(),
        Status::NotFound
    );
    let _ = std::fs::remove_dir_all(dir);
}

// ---- 4. Account linking without takeover ---------------------------------------------------

pub(crate) struct Fb {
    pub fake: FakeFacebook,
    pub server: FakeServer,
}

pub(crate) async fn facebook() -> Fb {
    let fake = FakeFacebook::new("fb-app", "fb-secret");
    fake.sign_in_as(FakeFacebookUser::new("1001", "Mona Facebook").email("octocat@github.example"));
    let server = fake.clone().spawn().await.unwrap();
    Fb { fake, server }
}

pub(crate) fn facebook_toml(fb: &Fb, extra: &str) -> String {
    format!(
        "[social_auth.providers.facebook]\nclient_id = \"fb-app\"\nclient_secret = \"fb-secret\"\nauthorize_url = \"{0}/v19.0/dialog/oauth\"\ngraph_url = \"{0}/v19.0\"\n{extra}",
        fb.server.url()
    )
}

/// Follows a start (login or link) response through the provider back to our callback.
pub(crate) async fn through_provider(
    client: &Client,
    start: rocket::local::asynchronous::LocalResponse<'_>,
) -> Status {
    assert_eq!(start.status(), Status::SeeOther);
    let location = start.headers().get_one("Location").unwrap().to_owned();
    drop(start);
    let answer = http_client().get(&location).send().await.unwrap();
    let back = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    let path = format!("{}?{}", back.path(), back.query().unwrap_or(""));
    client
        .get(path)
        .header(accept_json())
        .dispatch()
        .await
        .status()
}

pub(crate) async fn social_rows(db: &TestDb) -> Vec<(i64, String, String)> {
    let pool = db.pool().await;
    sqlx::query_as(
        "SELECT user_id, provider, social_id FROM social_users ORDER BY provider, social_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
}

async fn link_and_unlink(db: TestDb) {
    let fb = facebook().await;
    let app = TestApp::start_with(db, &facebook_toml(&fb, "")).await;
    app.login(&app.client).await;
    let me = claims(&session_jwt(&app.client).await)["sub"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .unwrap();

    // Signed out or cross-site: refused.
    let stranger = app.browser().await;
    assert_eq!(
        stranger
            .post("/auth/facebook/link")
            .dispatch()
            .await
            .status(),
        Status::Unauthorized
    );
    let r = app
        .client
        .post("/auth/facebook/link")
        .header(Header::new("Sec-Fetch-Site", "cross-site"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Forbidden);

    let start = app.client.post("/auth/facebook/link").dispatch().await;
    assert_eq!(through_provider(&app.client, start).await, Status::SeeOther);
    let rows = social_rows(&app.db).await;
    assert_eq!(
        rows,
        [
            (me, "facebook".into(), "1001".into()),
            (me, "github".into(), "583231".into())
        ]
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 1);
    // Signing in with Facebook now is the same user.
    let other = app.browser().await;
    let start = other.get("/auth/facebook").dispatch().await;
    assert_eq!(through_provider(&other, start).await, Status::SeeOther);
    assert_eq!(claims(&session_jwt(&other).await)["sub"], me.to_string());

    // Unlink: cross-site refused, then done; the last identity stays.
    let r = app
        .client
        .post("/auth/facebook/unlink")
        .header(Header::new("Origin", "https://evil.example"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Forbidden);
    let r = app.client.post("/auth/facebook/unlink").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(json(r).await, json!({"status": "unlinked"}));
    let r = app.client.post("/auth/facebook/unlink").dispatch().await;
    assert_eq!(
        (r.status(), json(r).await),
        (Status::NotFound, json!({"status": "not_linked"}))
    );
    let r = app.client.post("/auth/github/unlink").dispatch().await;
    assert_eq!(r.status(), Status::Conflict);
    assert_eq!(json(r).await, json!({"status": "last_identity"}));
    assert_eq!(social_rows(&app.db).await.len(), 1);
    assert_eq!(
        stranger
            .post("/auth/github/unlink")
            .dispatch()
            .await
            .status(),
        Status::Unauthorized
    );
    let _ = &fb.fake;
}

async fn linking_refuses_takeovers(db: TestDb) {
    let fb = facebook().await;
    let app = TestApp::start_with(db, &facebook_toml(&fb, "")).await;
    // octocat (github) links the Facebook identity 1001.
    app.login(&app.client).await;
    let start = app.client.post("/auth/facebook/link").dispatch().await;
    assert_eq!(through_provider(&app.client, start).await, Status::SeeOther);
    let before = social_rows(&app.db).await;

    // hubot tries to link the same Facebook identity: 409, nothing changes.
    let hubot = app.browser().await;
    app.fake.sign_in_as(FakeUser::new(9, "hubot"));
    app.login(&hubot).await;
    let hubot_rows = social_rows(&app.db).await;
    assert_eq!(
        hubot_rows.len(),
        before.len() + 1,
        "hubot signed in with github"
    );
    let start = hubot.post("/auth/facebook/link").dispatch().await;
    assert_eq!(through_provider(&hubot, start).await, Status::Conflict);
    assert_eq!(social_rows(&app.db).await, hubot_rows);

    // octocat tries to link a second GitHub identity: 409.
    let start = app.client.post("/auth/github/link").dispatch().await;
    assert_eq!(through_provider(&app.client, start).await, Status::Conflict);
    assert_eq!(social_rows(&app.db).await, hubot_rows);

    // A link flow finished after the browser switched users is refused.
    let start = app.client.post("/auth/facebook/link").dispatch().await;
    let location = start.headers().get_one("Location").unwrap().to_owned();
    drop(start);
    let answer = http_client().get(&location).send().await.unwrap();
    let back = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    app.fake.sign_in_as(FakeUser::new(9, "hubot"));
    app.login(&app.client).await; // now hubot in this browser
    let r = app
        .client
        .get(format!("{}?{}", back.path(), back.query().unwrap()))
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(
        r.status(),
        Status::Forbidden,
        "the link belongs to octocat, hubot is signed in"
    );
    assert_eq!(json(r).await["error"], "link_session_changed");
    assert_eq!(social_rows(&app.db).await, hubot_rows);
}

async fn link_by_verified_email_only_when_vouched(db: TestDb) {
    // A second GitHub-compatible provider (say, GitHub Enterprise) that may link by email.
    let work = FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
    let work_server = work.clone().spawn().await.unwrap();
    let fb = facebook().await;
    // GitHub is trusted for linking too (the voucher of octocat's address must be); `plain`
    // is a GitHub-compatible provider that is not.
    let extra = format!(
        "[social_auth.providers.work]\nkind = \"github\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nauthorize_url = \"{0}/login/oauth/authorize\"\ntoken_url = \"{0}/login/oauth/access_token\"\napi_url = \"{0}\"\nlink_by_verified_email = true\n\
         [social_auth.providers.plain]\nkind = \"github\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nauthorize_url = \"{0}/login/oauth/authorize\"\ntoken_url = \"{0}/login/oauth/access_token\"\napi_url = \"{0}\"\n\
         [social_auth.providers.github]\nlink_by_verified_email = true\n{1}",
        work_server.url(),
        facebook_toml(&fb, "link_by_verified_email = true\n")
    );
    let app = TestApp::start_with(db, &extra).await;
    app.login(&app.client).await; // octocat@github.example, verified
    let octocat = claims(&session_jwt(&app.client).await)["sub"].clone();

    // Facebook claims the same email, but Facebook does not vouch: a new user.
    let b = app.browser().await;
    let start = b.get("/auth/facebook").dispatch().await;
    assert_eq!(through_provider(&b, start).await, Status::SeeOther);
    assert_ne!(claims(&session_jwt(&b).await)["sub"], octocat);

    // An unverified address at the linking provider: a new user.
    let mut unverified = FakeUser::new(501, "mallory");
    unverified.emails = vec![("OCTOCAT@github.example".into(), true, false)];
    work.sign_in_as(unverified);
    let c = app.browser().await;
    let start = c.get("/auth/work").dispatch().await;
    assert_eq!(through_provider(&c, start).await, Status::SeeOther);
    assert_ne!(claims(&session_jwt(&c).await)["sub"], octocat);

    // A verified address, differently cased and in fullwidth letters: linked to octocat.
    work.sign_in_as(FakeUser::new(502, "octo-work").email("ＯＣＴＯＣＡＴ@GitHub.example"));
    let d = app.browser().await;
    let start = d.get("/auth/work").dispatch().await;
    assert_eq!(through_provider(&d, start).await, Status::SeeOther);
    assert_eq!(claims(&session_jwt(&d).await)["sub"], octocat);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 3);

    // Without the option the same verified email does not link (`plain` is not opted in).
    work.sign_in_as(FakeUser::new(777, "twin").email("octocat@github.example"));
    let e = app.browser().await;
    let start = e.get("/auth/plain").dispatch().await;
    assert_eq!(through_provider(&e, start).await, Status::SeeOther);
    assert_ne!(claims(&session_jwt(&e).await)["sub"], octocat);
    let _ = &fb.fake;
}

// ---- 6. Policy hooks and rate limits ----------------------------------------------------------

struct CompanyPolicy;

#[rocket::async_trait]
impl Policy for CompanyPolicy {
    async fn allow(&self, sign_in: &SignIn<'_>) -> Result<(), Denied> {
        match sign_in.email {
            Some(e) if sign_in.email_verified && e.ends_with("@github.example") => Ok(()),
            _ => Err(Denied::new("Only github.example accounts may sign in.")),
        }
    }

    fn extra_claims(&self, user: &User, provider: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("team".into(), json!(format!("staff-{provider}")));
        m.insert("sub".into(), json!("spoofed")); // standard names are not overridden
        m.insert("uid_copy".into(), json!(user.id));
        m
    }

    async fn on_user_created(
        &self,
        conn: &mut sqlx::AnyConnection,
        user: &User,
        _sign_in: &SignIn<'_>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO app_members (user_id) VALUES ($1)")
            .bind(user.id)
            .execute(conn)
            .await
            .map(|_| ())
    }
}

async fn login_via(client: &Client) -> Status {
    let start = client.get("/auth/github").dispatch().await;
    through_provider(client, start).await
}

async fn policy_denies_adds_claims_and_runs_in_the_transaction(db: TestDb) {
    let fake = FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
    let server = fake.clone().spawn().await.unwrap();
    let client = Client::tracked(
        rocket::custom(figment(&db.url, server.url(), ""))
            .attach(SocialAuthFairing::new().policy(CompanyPolicy))
            .mount("/", probe::routes()),
    )
    .await
    .unwrap();

    // Denied: 403 page naming the reason, nothing stored.
    fake.sign_in_as(FakeUser::new(1, "outsider").email("someone@elsewhere.example"));
    let start = client.get("/auth/github").dispatch().await;
    let location = start.headers().get_one("Location").unwrap().to_owned();
    drop(start);
    let callback = provider_redirect(&location).await;
    let r = client.get(callback).dispatch().await;
    assert_eq!(r.status(), Status::Forbidden);
    let page = r.into_string().await.unwrap();
    assert!(
        page.contains("sign_in_denied") && page.contains("Only github.example accounts"),
        "{page}"
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 0);

    // The hook's table is missing: the hook fails, the whole sign-in rolls back.
    fake.sign_in_as(octocat());
    assert_eq!(login_via(&client).await, Status::InternalServerError);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM users").await,
        0,
        "no user without its app row"
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM social_users").await, 0);

    let pool = db.pool().await;
    sqlx::query("CREATE TABLE app_members (user_id BIGINT PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(login_via(&client).await, Status::SeeOther);
    let c = claims(&session_jwt(&client).await);
    assert_eq!(c["team"], "staff-github");
    assert_ne!(c["sub"], "spoofed");
    assert_eq!(c["uid_copy"].to_string(), c["sub"].as_str().unwrap());
    let member: i64 = sqlx::query_scalar("SELECT user_id FROM app_members")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(member.to_string(), c["sub"].as_str().unwrap());
    // A second sign-in of the same user does not run the hook again (no duplicate key error).
    assert_eq!(login_via(&client).await, Status::SeeOther);
}

#[rocket::async_test]
async fn rate_limit_answers_429_per_client_ip() {
    let app = TestApp::start_with(
        TestDb::sqlite().await,
        "[social_auth.rate_limit]\nper_minute = 2\nburst = 2\n",
    )
    .await;
    let from = |ip: &str| -> std::net::SocketAddr { format!("{ip}:5000").parse().unwrap() };
    for _ in 0..2 {
        let r = app
            .client
            .get("/auth/github")
            .remote(from("10.0.0.1"))
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::SeeOther);
    }
    // Rocket's default X-Real-IP is not trusted: spoofing it does not buy new attempts.
    let r = app
        .client
        .get("/auth/github")
        .remote(from("10.0.0.1"))
        .header(Header::new("X-Real-IP", "203.0.113.9"))
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::TooManyRequests);
    assert!(r.headers().get_one("Retry-After").is_some());
    assert_eq!(json(r).await["error"], "rate_limited");
    let r = app
        .client
        .get("/auth/github/callback?code=a&state=b")
        .remote(from("10.0.0.1"))
        .dispatch()
        .await;
    assert_eq!(
        r.status(),
        Status::TooManyRequests,
        "the callback counts too"
    );
    // Another client is not affected.
    let r = app
        .client
        .get("/auth/github")
        .remote(from("10.0.0.2"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::SeeOther);

    // Behind a proxy that sets X-Forwarded-For: the last address is the client.
    let proxied = app
        .instance("[social_auth]\nip_header = \"X-Forwarded-For\"\n[social_auth.rate_limit]\nper_minute = 1\nburst = 1\n")
        .await;
    let via = |client: &str| Header::new("X-Forwarded-For", format!("198.51.100.7, {client}"));
    let proxy = from("10.0.0.254");
    assert_eq!(
        proxied
            .get("/auth/github")
            .remote(proxy)
            .header(via("192.0.2.1"))
            .dispatch()
            .await
            .status(),
        Status::SeeOther
    );
    assert_eq!(
        proxied
            .get("/auth/github")
            .remote(proxy)
            .header(via("192.0.2.1"))
            .dispatch()
            .await
            .status(),
        Status::TooManyRequests
    );
    assert_eq!(
        proxied
            .get("/auth/github")
            .remote(proxy)
            .header(via("192.0.2.2"))
            .dispatch()
            .await
            .status(),
        Status::SeeOther
    );
}

#[rocket::async_test]
async fn release_requires_token_keys() {
    let db = TestDb::sqlite().await;
    let figment = figment(&db.url, "http://127.0.0.1:9", "")
        .merge(("social_auth.token_keys", Vec::<String>::new()))
        .select("release");
    let error = rocket(figment)
        .ignite()
        .await
        .expect_err("no token_keys in release");
    assert!(matches!(
        error.kind(),
        rocket::error::ErrorKind::FailedFairings(_)
    ));
    // Bad key material is a configuration error too.
    let figment = figment_with_keys(&db, &["nokid"]);
    let error = rocket(figment).ignite().await.expect_err("bad token key");
    assert!(matches!(
        error.kind(),
        rocket::error::ErrorKind::FailedFairings(_)
    ));
}

fn figment_with_keys(db: &TestDb, keys: &[&str]) -> rocket::figment::Figment {
    figment(&db.url, "http://127.0.0.1:9", "").merge(("social_auth.token_keys", keys.to_vec()))
}

/// `reencrypt` fails with a kind to match on and keeps the cause: a configuration error names
/// the key, a database that refuses connections is `DatabaseUnavailable` with the `sqlx`
/// error as its source (it was a configuration error with the cause flattened into text).
#[rocket::async_test]
async fn reencrypt_errors_keep_their_kind_and_cause() {
    use rocket_social_auth::ErrorKind;
    use std::error::Error as _;

    let db = TestDb::sqlite().await;
    let no_keys = figment(&db.url, "http://127.0.0.1:9", "")
        .merge(("social_auth.token_keys", Vec::<String>::new()));
    let e = rocket_social_auth::reencrypt(&no_keys).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("social_auth.token_keys"), "{e}");

    let refused = format!("postgres://postgres@127.0.0.1:{}/test", free_port());
    let down = figment(&refused, "http://127.0.0.1:9", "")
        .merge(("databases.social_auth.connect_timeout", 1));
    let e = rocket_social_auth::reencrypt(&down).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DatabaseUnavailable, "{e}");
    let cause = e.source().expect("the cause is kept");
    assert!(cause.downcast_ref::<sqlx::Error>().is_some(), "{cause}");
}
