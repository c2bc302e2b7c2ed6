//! The test harness: databases (SQLite files and PostgreSQL schemas), the app under test wired
//! to a fake GitHub on loopback, and helpers that walk a login like a browser.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use rocket::figment::providers::{Format, Toml};
use rocket::figment::Figment;
use rocket::http::{Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket::{Build, Rocket};
use rocket_social_auth::testing::{FakeGithub, FakeServer, FakeUser};
use rocket_social_auth::SocialAuthFairing;
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

/// Rocket's `secret_key` for every test app (private cookies).
pub const SECRET_KEY: &str =
    "hPRYyVRiMyxpw5sBB1XeCMN1kFsDCqKvBi2QJxBVHQk/mcTYvWmH9p9pdRFcOpTx8pEinK+hgXv5ANZ4iUoZiw==";
/// The JWT secret of every test app.
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef0123456789";
/// The key that encrypts provider tokens at rest in every test app (so that several apps on one
/// database, like several instances, read each other's rows).
pub const TOKEN_KEY: &str = "t1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The fake GitHub's client.
pub const CLIENT_ID: &str = "test-client-id";
/// The fake GitHub's client secret.
pub const CLIENT_SECRET: &str = "test-client-secret";

/// A database for one test: a fresh SQLite file or a fresh PostgreSQL schema.
pub struct TestDb {
    pub url: String,
    pub backend: &'static str,
    cleanup: Cleanup,
}

enum Cleanup {
    None,
    File(PathBuf),
    Schema { admin_url: String, schema: String },
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{n}_{nanos}", std::process::id())
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(unique("rsa_test"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("db.sqlite");
        TestDb {
            url: format!("sqlite://{}?mode=rwc", file.display()),
            backend: "sqlite",
            cleanup: Cleanup::File(dir),
        }
    }

    /// A fresh schema in `TEST_POSTGRES_URL`, or `None` (the test is skipped) when it is not
    /// set. With `TEST_POSTGRES_REQUIRED=1` a missing URL fails the test instead.
    pub async fn postgres() -> Option<TestDb> {
        let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") else {
            if std::env::var("TEST_POSTGRES_REQUIRED").is_ok_and(|v| v == "1") {
                panic!("TEST_POSTGRES_REQUIRED=1 but TEST_POSTGRES_URL is not set");
            }
            eprintln!("skipped: TEST_POSTGRES_URL is not set");
            return None;
        };
        sqlx::any::install_default_drivers();
        let schema = unique("t").to_lowercase();
        let admin = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
            .expect("TEST_POSTGRES_URL answers");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        Some(TestDb {
            url: format!("{admin_url}{sep}options=-c%20search_path%3D{schema}"),
            backend: "postgres",
            cleanup: Cleanup::Schema { admin_url, schema },
        })
    }

    /// The same database under another URL (e.g. through a proxy); the original cleans up.
    pub fn alias(&self, url: String) -> TestDb {
        TestDb {
            url,
            backend: self.backend,
            cleanup: Cleanup::None,
        }
    }

    /// A pool of our own, to read rows as they are.
    pub async fn pool(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPoolOptions::new()
            .max_connections(2)
            .connect_with(sqlx::any::AnyConnectOptions::from_str(&self.url).unwrap())
            .await
            .unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let pool = self.pool().await;
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::None => {}
            Cleanup::File(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Schema { admin_url, schema } => {
                let (url, schema) = (admin_url.clone(), schema.clone());
                let _ = std::thread::spawn(move || {
                    let rt = rocket::tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        if let Ok(pool) =
                            AnyPoolOptions::new().max_connections(1).connect(&url).await
                        {
                            let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                                .execute(&pool)
                                .await;
                            pool.close().await;
                        }
                    })
                })
                .join();
            }
        }
    }
}

/// Runs each listed `async fn name(db: TestDb)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! db_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[rocket::async_test]
                async fn $name() {
                    super::$name($crate::common::TestDb::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[rocket::async_test]
                async fn $name() {
                    if let Some(db) = $crate::common::TestDb::postgres().await {
                        super::$name(db).await
                    }
                }
            )*
        }
    };
}

/// The app's configuration for tests, with the fake GitHub at `fake_url`.
pub fn figment(db_url: &str, fake_url: &str, extra: &str) -> Figment {
    let base = format!(
        r#"
secret_key = "{SECRET_KEY}"
log_level = "off"
cli_colors = false

[databases.social_auth]
url = "{db_url}"
connect_timeout = 2
max_connections = 8

[social_auth]
public_url = "http://127.0.0.1:8000"
http_timeout_secs = 2
token_keys = ["{TOKEN_KEY}"]

[social_auth.jwt]
secret = "{JWT_SECRET}"
role = "web_user"

[social_auth.providers.github]
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
authorize_url = "{fake_url}/login/oauth/authorize"
token_url = "{fake_url}/login/oauth/access_token"
api_url = "{fake_url}"
"#
    );
    let log_level = if std::env::var("TEST_LOG").is_ok() {
        "debug"
    } else {
        "off"
    };
    Figment::from(rocket::Config::debug_default())
        .merge(Toml::string(&base))
        .merge(Toml::string(extra))
        .merge(("log_level", log_level))
}

/// Test-only routes that show what the guards see.
pub mod probe {
    use rocket::serde::json::{json, Json, Value};
    use rocket::{get, routes, Route};
    use rocket_social_auth::{AuthUser, SocialAuth};

    #[get("/whoami")]
    fn whoami(auth: SocialAuth) -> Json<Value> {
        let kind = match &auth {
            SocialAuth::Social { .. } => "social",
            SocialAuth::Local { .. } => "local",
            _ => "anonymous",
        };
        Json(json!({"kind": kind, "provider": auth.provider(), "claims": auth.claims()}))
    }

    #[get("/strict")]
    fn strict(user: AuthUser) -> String {
        user.sub.clone()
    }

    pub fn routes() -> Vec<Route> {
        routes![whoami, strict]
    }
}

pub fn rocket(figment: Figment) -> Rocket<Build> {
    rocket::custom(figment)
        .attach(SocialAuthFairing::new())
        .mount("/", probe::routes())
}

/// An app under test, its fake GitHub, and its database.
pub struct TestApp {
    pub client: Client,
    pub fake: FakeGithub,
    pub server: FakeServer,
    pub db: TestDb,
    /// The TOML the app was started with, over the test configuration.
    pub extra: String,
}

pub fn octocat() -> FakeUser {
    FakeUser::new(583231, "octocat")
        .name(Some("The Octocat"))
        .email("octocat@github.example")
}

impl TestApp {
    pub async fn start(db: TestDb) -> TestApp {
        TestApp::start_with(db, "").await
    }

    /// An app with `extra` TOML merged over the test configuration.
    pub async fn start_with(db: TestDb, extra: &str) -> TestApp {
        let fake = FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
        fake.sign_in_as(octocat());
        let server = fake.clone().spawn().await.expect("fake GitHub starts");
        let client = Client::tracked(rocket(figment(&db.url, server.url(), extra)))
            .await
            .expect("app launches");
        TestApp {
            client,
            fake,
            server,
            db,
            extra: extra.to_owned(),
        }
    }

    /// A second browser on the same app (its own cookie jar).
    pub async fn browser(&self) -> Client {
        self.instance("").await
    }

    /// Another instance of the app on the same database and fake GitHub, with the same
    /// configuration and `extra` TOML over it.
    pub async fn instance(&self, extra: &str) -> Client {
        let figment =
            figment(&self.db.url, self.server.url(), &self.extra).merge(Toml::string(extra));
        Client::tracked(rocket(figment))
            .await
            .expect("app launches")
    }

    /// Starts a login on `client`, lets the fake provider approve it, and returns the path and
    /// query of the callback the provider redirects to.
    pub async fn authorize(&self, client: &Client, start: &str) -> String {
        let response = client.get(start).dispatch().await;
        assert_eq!(response.status(), Status::SeeOther, "login start redirects");
        let location = response.headers().get_one("Location").unwrap().to_owned();
        provider_redirect(&location).await
    }

    /// A whole login on `client`; returns the callback's response.
    pub async fn login<'c>(&self, client: &'c Client) -> LocalResponse<'c> {
        let callback = self.authorize(client, "/auth/github").await;
        client.get(callback).dispatch().await
    }
}

/// Follows the authorize URL at the provider (no redirects followed) and returns the path and
/// query of the callback it redirects to.
pub async fn provider_redirect(authorize_url: &str) -> String {
    let http = http_client();
    let answer = http
        .get(authorize_url)
        .send()
        .await
        .expect("provider answers");
    assert_eq!(answer.status().as_u16(), 302, "provider redirects back");
    let back = answer.headers()["location"].to_str().unwrap();
    let url = url::Url::parse(back).unwrap();
    assert_eq!(url.origin().ascii_serialization(), "http://127.0.0.1:8000");
    format!("{}?{}", url.path(), url.query().unwrap_or(""))
}

/// An HTTP client that follows no redirects (reqwest is built without a default TLS crypto
/// provider; the fairing installs aws-lc-rs, tests that run before one do it here).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The JSON body of a response.
pub async fn json(response: LocalResponse<'_>) -> serde_json::Value {
    let body = response.into_string().await.unwrap_or_default();
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON body, got {body:?}"))
}

/// `Sec-Fetch-Site: same-origin`, as a browser sends it on a request from our own pages.
pub fn same_origin() -> Header<'static> {
    Header::new("Sec-Fetch-Site", "same-origin")
}

/// `Accept: application/json`.
pub fn accept_json() -> Header<'static> {
    Header::new("Accept", "application/json")
}

/// Decodes and verifies a JWT with the test secret.
pub fn claims(token: &str) -> serde_json::Value {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.leeway = 0;
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes()),
        &validation,
    )
    .expect("a valid JWT")
    .claims
}

/// The JWT of the signed-in session of `client`, as its private cookie holds it (after
/// checking that `/auth/session` sees the session).
pub async fn session_jwt(client: &Client) -> String {
    let response = client.get("/auth/session").dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    let name = client
        .rocket()
        .state::<rocket_social_auth::AuthService>()
        .expect("the fairing is attached")
        .jwt_cookie_name();
    client
        .cookies()
        .get_private(name)
        .expect("the jwt cookie")
        .value()
        .to_owned()
}

/// The plain provider access token of the session of `client`, from `GET /auth/token`.
pub async fn plain_token(client: &Client) -> String {
    let response = client.get("/auth/token").dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    json(response).await["token"].as_str().unwrap().to_owned()
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A TCP forwarder that can be cut, to take a database "down" under a running app.
pub struct Proxy {
    pub port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        use std::sync::atomic::Ordering;
        use std::sync::Arc;
        let listener = rocket::tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (d, g) = (down.clone(), generation.clone());
        rocket::tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if d.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let born = g.load(Ordering::SeqCst);
                let g = g.clone();
                rocket::tokio::spawn(async move {
                    let Ok(mut outbound) = rocket::tokio::net::TcpStream::connect(target).await
                    else {
                        return;
                    };
                    let copy = rocket::tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    let cut = async {
                        while g.load(Ordering::SeqCst) == born {
                            rocket::tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    rocket::tokio::select! {
                        _ = copy => {},
                        _ = cut => {},
                    }
                });
            }
        });
        Proxy {
            port,
            down,
            generation,
        }
    }

    /// Cuts every connection and refuses new ones (`true`), or lets them through again.
    pub fn set_down(&self, down: bool) {
        use std::sync::atomic::Ordering;
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A browser: follows nothing by itself, keeps cookies.
pub struct Browser {
    pub http: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new() -> Self {
        Browser {
            http: http_client(),
            cookies: BTreeMap::new(),
        }
    }

    /// Starts a login with the development provider of the app at `origin`, picks `login` on
    /// its page and approves; returns the callback URL it redirects to (not yet followed).
    pub async fn approve_dev(&mut self, origin: &str, login: &str) -> String {
        let http = self.http.clone();
        let (status, authorize, _) = self.send(http.get(format!("{origin}/auth/dev"))).await;
        assert_eq!(status, 303);
        assert!(
            authorize.starts_with(&format!("{origin}/auth/_dev/login/oauth/authorize?")),
            "{authorize}"
        );
        let (status, _, form) = self.send(http.get(&authorize)).await;
        assert_eq!(status, 200);
        let mut fields = hidden_inputs(&form);
        fields.push(("login".into(), login.into()));
        fields.push(("decision".into(), "approve".into()));
        let (status, callback, _) = self
            .send(
                http.post(format!("{origin}/auth/_dev/login/oauth/authorize"))
                    .form(&fields),
            )
            .await;
        assert_eq!(status, 302);
        assert!(
            callback.starts_with(&format!("{origin}/auth/dev/callback?code=")),
            "{callback}"
        );
        callback
    }

    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> (u16, String, String) {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let response = request.header(COOKIE, cookie).send().await.unwrap();
        for set in response.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, location, response.text().await.unwrap())
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The hidden inputs of an HTML form, as `(name, value)`, unescaped.
pub fn hidden_inputs(page: &str) -> Vec<(String, String)> {
    page.split("<input type=\"hidden\" ")
        .skip(1)
        .map(|s| {
            let name = s
                .split("name=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let value = s
                .split("value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let value = value
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&#39;", "'")
                .replace("&amp;", "&");
            (name.to_owned(), value)
        })
        .collect()
}

/// The Redis every developer's and CI's machine runs (`.ci/run` starts it): `TEST_REDIS_URL`,
/// default `redis://127.0.0.1:6379`. Tests on it use a key prefix of their own
/// ([`redis_prefix`]), so they never meet.
pub fn shared_redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A rate-limit key prefix unique to this test and run.
pub fn redis_prefix(test: &str) -> String {
    format!("{}:", unique(&format!("rsa_test:{test}")))
}

/// `[social_auth.rate_limit]` in Redis at `url` under `prefix`: `burst` requests at once, then
/// one a minute (nothing refills during a test), with `extra` keys.
pub fn redis_limit(url: &str, prefix: &str, burst: u32, extra: &str) -> String {
    format!(
        "[social_auth.rate_limit]\nper_minute = 1\nburst = {burst}\nstore = \"redis\"\n\
         redis_url = \"{url}\"\nredis_key_prefix = \"{prefix}\"\n{extra}"
    )
}

/// `redis-cli -u url args…`: its answer, trimmed.
pub fn redis_cli(url: &str, args: &[&str]) -> String {
    let output = std::process::Command::new("redis-cli")
        .arg("-u")
        .arg(url)
        .args(args)
        .output()
        .expect("redis-cli runs (Debian: apt-get install redis-server)");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A Redis server of one test's own on a free loopback port, to stop and start again under a
/// running app: no persistence, so a restart forgets every key (and the loaded script).
pub struct OwnRedis {
    child: Option<std::process::Child>,
    port: u16,
    password: Option<String>,
}

impl OwnRedis {
    pub fn start() -> OwnRedis {
        OwnRedis::start_with(None)
    }

    /// A server that asks for `password` (`requirepass`), when one is given.
    pub fn start_with(password: Option<&str>) -> OwnRedis {
        let mut redis = OwnRedis {
            child: None,
            port: free_port(),
            password: password.map(str::to_owned),
        };
        redis.restart();
        redis
    }

    /// `redis://[default:password@]127.0.0.1:port`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://default:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Starts the server again on the same port (after [`OwnRedis::kill`]) and waits until it
    /// answers.
    pub fn restart(&mut self) {
        let port = self.port.to_string();
        let mut command = std::process::Command::new("redis-server");
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let child = command
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (Debian: apt-get install redis-server)");
        self.child = Some(child);
        let started = std::time::Instant::now();
        while redis_cli(&self.url(), &["PING"]) != "PONG" {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server answers on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL: no goodbye to its clients) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP (`pause = true`) or SIGCONT: a stopped server keeps its connections and port
    /// but answers nothing, like a Redis that hangs.
    pub fn pause(&self, pause: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let signal = if pause { "-STOP" } else { "-CONT" };
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        // SIGKILL ends a stopped (paused) process too.
        self.kill();
    }
}
