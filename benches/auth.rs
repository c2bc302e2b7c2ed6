//! `cargo bench`: what authentication costs per request and per login (see BENCHMARKS.md).
//!
//! - `jwt/issue/<alg>`, `jwt/verify/<alg>`: `AuthService::issue_jwt` (which signs the token and
//!   records its revocable session: one SQLite insert) and `verify_jwt`, for every algorithm of
//!   [`algorithms`].
//! - `guard/resolve/{anonymous,cookie,bearer}`: the `SocialAuth` guard alone, on a request built
//!   beforehand (building it is not timed), for a token it has seen before (every request of a
//!   signed-in user but the first); `anonymous` (no token) is the baseline.
//!   `guard/resolve/{cookie,bearer}_first_sight`: a token it has not seen (cookie decryption and
//!   JWT verification).
//! - `guard/dispatch/{unguarded,cookie,bearer}`: a whole request through `rocket::local`, to a
//!   route without a guard (the baseline) and to one with `SocialAuth`.
//! - `callback/<db>/{full,provider_only}`: a callback through `rocket::local` against the fake
//!   GitHub on loopback, and the same three provider calls (code exchange, `GET /user`,
//!   `GET /user/emails`) made by a bare client: `full − provider_only` is the callback's own
//!   work once the provider has answered (state check, upsert, JWT, cookie). SQLite always;
//!   PostgreSQL when `BENCH_POSTGRES_URL` (or `TEST_POSTGRES_URL`) is set.
//!
//! `cargo test --bench auth` runs each benchmark once, as a test.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rocket::figment::providers::{Format, Toml};
use rocket::figment::Figment;
use rocket::http::{CookieJar, Header, Status};
use rocket::local::blocking::Client;
use rocket::request::FromRequest;
use rocket::tokio::runtime::{Builder, Runtime};
use rocket::{get, routes, State};
use rocket_social_auth::testing::{FakeGithub, FakeServer, FakeUser};
use rocket_social_auth::{AuthService, Identity, SocialAuth, SocialAuthFairing};
use sqlx::any::AnyPoolOptions;

/// The algorithms benchmarked, with the TOML each adds to `[social_auth.jwt]` (a key made by
/// `openssl genpkey`, for the asymmetric ones). Supporting one more is one more line here.
fn algorithms() -> Vec<(&'static str, String)> {
    let mut list = vec![
        ("HS256", String::new()),
        ("HS384", String::new()),
        ("HS512", String::new()),
    ];
    for (algorithm, args) in [
        (
            "RS256",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
        ),
        (
            "ES256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
        ),
        ("EdDSA", &["-algorithm", "ed25519"][..]),
    ] {
        let pem = std::process::Command::new("openssl")
            .arg("genpkey")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        match pem {
            Some(pem) => list.push((
                algorithm,
                format!("[[social_auth.jwt.keys]]\nkid = \"bench\"\nprivate_key = \"\"\"\n{pem}\"\"\"\n"),
            )),
            None => eprintln!("{algorithm}: skipped (openssl genpkey is not available)"),
        }
    }
    list
}

const CLIENT_ID: &str = "bench-client";
const CLIENT_SECRET: &str = "bench-client-secret";
const FLOW_COOKIE: &str = "social_auth_flow_github";
const CALLBACK: &str = "http://127.0.0.1:8000/auth/github/callback";

#[get("/unguarded")]
fn unguarded() -> &'static str {
    "ok"
}

#[get("/guarded")]
fn guarded(auth: SocialAuth) -> &'static str {
    if auth.is_authenticated() {
        "in"
    } else {
        "out"
    }
}

/// Signs in a user with a typical profile: the body is the JWT, the `jwt` cookie is set.
#[get("/issue")]
async fn issue(service: &State<AuthService>, cookies: &CookieJar<'_>) -> Option<String> {
    let jwt = service.issue_jwt(identity()).await.ok()?;
    service.set_jwt_cookie(cookies, &jwt);
    Some(jwt.token)
}

fn identity() -> Identity {
    Identity::new("583231")
        .provider("github")
        .name("The Octocat")
        .email("octocat@github.example")
        .avatar_url("https://avatars.example.com/u/583231")
}

/// A database for one app: a file in a fresh temporary directory, or a fresh PostgreSQL schema.
struct Db {
    url: String,
    cleanup: Option<(String, String)>,
    dir: Option<std::path::PathBuf>,
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

impl Db {
    fn sqlite() -> Db {
        let dir = std::env::temp_dir().join(format!(
            "rocket_social_auth-bench-{}-{}",
            std::process::id(),
            UNIQUE.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        Db {
            url: format!("sqlite://{}/bench.sqlite?mode=rwc", dir.display()),
            cleanup: None,
            dir: Some(dir),
        }
    }

    fn postgres(rt: &Runtime) -> Option<Db> {
        let admin = std::env::var("BENCH_POSTGRES_URL")
            .or_else(|_| std::env::var("TEST_POSTGRES_URL"))
            .ok()?;
        let schema = format!("bench_{}", std::process::id());
        rt.block_on(admin_sql(&admin, &format!("CREATE SCHEMA {schema}")));
        let sep = if admin.contains('?') { '&' } else { '?' };
        Some(Db {
            url: format!("{admin}{sep}options=-c%20search_path%3D{schema}"),
            cleanup: Some((admin, schema)),
            dir: None,
        })
    }

    fn drop_with(self, rt: &Runtime) {
        if let Some((admin, schema)) = &self.cleanup {
            rt.block_on(admin_sql(admin, &format!("DROP SCHEMA {schema} CASCADE")));
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn admin_sql(url: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("the PostgreSQL of BENCH_POSTGRES_URL answers");
    sqlx::query(sql).execute(&pool).await.expect(sql);
    pool.close().await;
}

/// The app: the fairing, the benchmark's routes, `algorithm`, the fake GitHub at `fake_url`.
fn app(db: &Db, fake_url: &str, algorithm: &str, jwt_extra: &str) -> Client {
    let toml = format!(
        r#"
secret_key = "hPRYyVRiMyxpw5sBB1XeCMN1kFsDCqKvBi2QJxBVHQk="
log_level = "off"

[databases.social_auth]
url = "{url}"

[social_auth]
public_url = "http://127.0.0.1:8000"
token_keys = ["bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]

[social_auth.jwt]
secret = "benchmark-secret-benchmark-secret-0123456789"
role = "web_user"
algorithm = "{algorithm}"
{jwt_extra}

[social_auth.providers.github]
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
authorize_url = "{fake_url}/login/oauth/authorize"
token_url = "{fake_url}/login/oauth/access_token"
api_url = "{fake_url}"
"#,
        url = db.url
    );
    let figment = Figment::from(rocket::Config::debug_default()).merge(Toml::string(&toml));
    let rocket = rocket::custom(figment)
        .attach(SocialAuthFairing::new())
        .mount("/", routes![unguarded, guarded, issue]);
    Client::untracked(rocket).expect("the app launches")
}

fn service(client: &Client) -> &AuthService {
    client
        .rocket()
        .state::<AuthService>()
        .expect("the fairing manages it")
}

/// The fake GitHub on its own runtime (serving while the benchmarks run).
fn fake_github(rt: &Runtime) -> FakeServer {
    let fake = FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
    fake.sign_in_as(
        FakeUser::new(583231, "octocat")
            .name(Some("The Octocat"))
            .email("octocat@github.example"),
    );
    rt.block_on(fake.spawn()).expect("the fake GitHub starts")
}

fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

fn jwt(c: &mut Criterion, fake_url: &str) {
    let mut group = c.benchmark_group("jwt");
    // SQLite's connections run on threads of their own: any runtime can drive the inserts.
    let rt = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    for (algorithm, extra) in algorithms() {
        let db = Db::sqlite();
        let client = app(&db, fake_url, algorithm, &extra);
        let auth = service(&client);
        let token = rt
            .block_on(auth.issue_jwt(identity()))
            .expect("a token")
            .token;
        assert!(auth.verify_jwt(&token).is_some(), "{algorithm} round-trips");
        group.bench_function(format!("issue/{algorithm}"), |b| {
            b.iter(|| rt.block_on(auth.issue_jwt(identity())))
        });
        group.bench_function(format!("verify/{algorithm}"), |b| {
            b.iter(|| auth.verify_jwt(std::hint::black_box(&token)))
        });
        drop(client);
        let _ = std::fs::remove_dir_all(db.dir.unwrap_or_default());
    }
    group.finish();
}

fn guard(c: &mut Criterion, fake_url: &str) {
    let db = Db::sqlite();
    let client = app(&db, fake_url, "HS256", "");
    let jwt_cookie = service(&client).jwt_cookie_name();
    let signed_in = client.get("/issue").dispatch();
    let cookie = signed_in
        .cookies()
        .get(jwt_cookie)
        .expect("the jwt cookie")
        .value()
        .to_owned();
    let bearer = format!("Bearer {}", signed_in.into_string().expect("the JWT"));
    for (who, cookie, bearer, expected) in [
        ("cookie", Some(&cookie), None, "in"),
        ("bearer", None, Some(&bearer), "in"),
        ("anonymous", None, None, "out"),
    ] {
        let mut request = client.get("/guarded");
        if let Some(cookie) = cookie {
            request = request.cookie((jwt_cookie, cookie.clone()));
        }
        if let Some(bearer) = bearer {
            request = request.header(Header::new("Authorization", bearer.clone()));
        }
        let answer = request.dispatch();
        assert_eq!(answer.status(), Status::Ok);
        assert_eq!(answer.into_string().as_deref(), Some(expected), "{who}");
    }

    // The guard alone. Its future never waits: a current-thread runtime polls it to the end.
    let rt = Builder::new_current_thread().build().expect("a runtime");
    let mut group = c.benchmark_group("guard/resolve");
    group.bench_function("anonymous", |b| {
        b.iter_batched_ref(
            || client.get("/guarded"),
            |request| rt.block_on(SocialAuth::from_request(request)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("cookie", |b| {
        b.iter_batched_ref(
            || client.get("/guarded").cookie((jwt_cookie, cookie.clone())),
            |request| rt.block_on(SocialAuth::from_request(request)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("bearer", |b| {
        b.iter_batched_ref(
            || {
                client
                    .get("/guarded")
                    .header(Header::new("Authorization", bearer.clone()))
            },
            |request| rt.block_on(SocialAuth::from_request(request)),
            BatchSize::SmallInput,
        )
    });
    // First sight of a token (a new login, or after a restart): the cookie's decryption and
    // the JWT's verification, as every request paid before tokens were remembered. A token
    // is issued (and the cookie encrypted) for each iteration, untimed.
    let auth = service(&client);
    let issue_rt = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    group.bench_function("cookie_first_sight", |b| {
        b.iter_batched_ref(
            || {
                let token = issue_rt
                    .block_on(auth.issue_jwt(identity()))
                    .expect("a token")
                    .token;
                client.get("/guarded").private_cookie((jwt_cookie, token))
            },
            |request| rt.block_on(SocialAuth::from_request(request)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("bearer_first_sight", |b| {
        b.iter_batched_ref(
            || {
                let token = issue_rt
                    .block_on(auth.issue_jwt(identity()))
                    .expect("a token")
                    .token;
                client
                    .get("/guarded")
                    .header(Header::new("Authorization", format!("Bearer {token}")))
            },
            |request| rt.block_on(SocialAuth::from_request(request)),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // A whole request, as the load harness sees it (without the network).
    let mut group = c.benchmark_group("guard/dispatch");
    group.bench_function("unguarded", |b| {
        b.iter(|| client.get("/unguarded").dispatch().status())
    });
    group.bench_function("cookie", |b| {
        b.iter(|| {
            client
                .get("/guarded")
                .cookie((jwt_cookie, cookie.clone()))
                .dispatch()
                .status()
        })
    });
    group.bench_function("bearer", |b| {
        b.iter(|| {
            client
                .get("/guarded")
                .header(Header::new("Authorization", bearer.clone()))
                .dispatch()
                .status()
        })
    });
    group.finish();
    drop(client);
    db.drop_with(&rt);
}

/// A started login that the provider approved: the callback's path and the flow cookie.
fn approved_login(client: &Client, rt: &Runtime, http: &reqwest::Client) -> (String, String) {
    let start = client.get("/auth/github").dispatch();
    assert_eq!(start.status(), Status::SeeOther);
    let flow = start
        .cookies()
        .get(FLOW_COOKIE)
        .expect("flow")
        .value()
        .to_owned();
    let authorize = start.headers().get_one("Location").expect("Location");
    let back = provider_redirect(rt, http, authorize);
    let back = url::Url::parse(&back).expect("a callback URL");
    (
        format!("{}?{}", back.path(), back.query().unwrap_or("")),
        flow,
    )
}

fn provider_redirect(rt: &Runtime, http: &reqwest::Client, authorize: &str) -> String {
    let answer = rt
        .block_on(http.get(authorize).send())
        .expect("the provider");
    assert_eq!(answer.status().as_u16(), 302);
    answer.headers()["location"]
        .to_str()
        .expect("Location")
        .to_owned()
}

/// What the app asks of the provider once the user is back: the code exchange (with the PKCE
/// verifier), `GET /user` and `GET /user/emails`, by a bare client.
async fn provider_calls(http: &reqwest::Client, fake_url: &str, code: &str, verifier: &str) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    let answer = http
        .post(format!("{fake_url}/login/oauth/access_token"))
        .header("Accept", "application/json")
        .form(&form)
        .send()
        .await
        .expect("the token endpoint");
    let body: serde_json::Value =
        serde_json::from_slice(&answer.bytes().await.expect("a body")).expect("JSON");
    let token = body["access_token"].as_str().expect("a token");
    for path in ["/user", "/user/emails"] {
        let answer = http
            .get(format!("{fake_url}{path}"))
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header("User-Agent", "bench")
            .send()
            .await
            .expect("the API");
        assert_eq!(answer.status().as_u16(), 200);
        let _: serde_json::Value =
            serde_json::from_slice(&answer.bytes().await.expect("a body")).expect("JSON");
    }
}

fn callback(c: &mut Criterion, fake_rt: &Runtime, fake_url: &str) {
    use base64::Engine;
    use sha2::Digest;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut dbs = vec![("sqlite", Db::sqlite())];
    dbs.extend(Db::postgres(fake_rt).map(|db| ("postgres", db)));
    let http = http_client();
    for (name, db) in dbs {
        let client = app(&db, fake_url, "HS256", "");
        let jwt_cookie = service(&client).jwt_cookie_name();
        // The first login creates the user: the benchmark measures returning users.
        let (path, flow) = approved_login(&client, fake_rt, &http);
        {
            let first = client.get(path).cookie((FLOW_COOKIE, flow)).dispatch();
            assert_eq!(first.status(), Status::SeeOther);
            assert!(first.cookies().get(jwt_cookie).is_some(), "signed in");
        }

        let mut group = c.benchmark_group(format!("callback/{name}"));
        group.sample_size(30);
        group.bench_function("full", |b| {
            b.iter_batched(
                || approved_login(&client, fake_rt, &http),
                |(path, flow)| {
                    let answer = client.get(path).cookie((FLOW_COOKIE, flow)).dispatch();
                    assert_eq!(answer.status(), Status::SeeOther);
                },
                BatchSize::PerIteration,
            )
        });
        // The bare client runs on a current-thread runtime, as the local client does.
        let rt = Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let bare = http_client();
        group.bench_function("provider_only", |b| {
            b.iter_batched(
                || {
                    let verifier = b64.encode(rand_bytes());
                    let challenge = b64.encode(sha2::Sha256::digest(verifier.as_bytes()));
                    let authorize = url::Url::parse_with_params(
                        &format!("{fake_url}/login/oauth/authorize"),
                        [
                            ("response_type", "code"),
                            ("client_id", CLIENT_ID),
                            ("state", "bench"),
                            ("code_challenge", &challenge),
                            ("code_challenge_method", "S256"),
                            ("redirect_uri", CALLBACK),
                        ],
                    )
                    .expect("a URL");
                    let back = provider_redirect(&rt, &bare, authorize.as_str());
                    let back = url::Url::parse(&back).expect("a callback URL");
                    let code = back
                        .query_pairs()
                        .find(|(k, _)| k == "code")
                        .expect("a code")
                        .1
                        .into_owned();
                    (code, verifier)
                },
                |(code, verifier)| rt.block_on(provider_calls(&bare, fake_url, &code, &verifier)),
                BatchSize::PerIteration,
            )
        });
        group.finish();
        drop(client);
        db.drop_with(fake_rt);
    }
}

fn rand_bytes() -> [u8; 32] {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

fn benches(c: &mut Criterion) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let fake_rt = Runtime::new().expect("a runtime");
    let server = fake_github(&fake_rt);
    let fake_url = server.url().to_owned();
    jwt(c, &fake_url);
    guard(c, &fake_url);
    callback(c, &fake_rt, &fake_url);
    drop(server);
}

criterion_group! {
    name = auth;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(auth);
