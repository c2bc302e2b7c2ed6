//! Faults with a defined answer: a provider that refuses connections, an exhausted pool, a
//! process killed in the middle of a login storm, and a graceful shutdown with a login in
//! flight. None may panic or hang.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use rocket::figment::Figment;
use rocket::http::Status;
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket::{Ignite, Rocket};
use rocket_social_auth::testing::{FakeGithub, TokenFault, TokenMode};
use rocket_social_auth::AuthDb;

use crate::common::*;
use crate::db_tests;

db_tests!(
    provider_refusing_connections_is_a_quick_502,
    pool_exhausted_answers_503_after_the_acquire_timeout,
    killed_during_a_login_storm_leaves_the_database_consistent,
    graceful_shutdown_lets_an_in_flight_login_finish,
);

/// A port on loopback where nothing listens (yet).
/// Like [`TestApp::start_with`], with extra TOML that may name the fake's URL.
async fn start_app(db: TestDb, extra: impl FnOnce(&str) -> String) -> TestApp {
    let fake = FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
    fake.sign_in_as(octocat());
    let server = fake.clone().spawn().await.expect("fake GitHub starts");
    let extra = extra(server.url());
    let client = Client::tracked(rocket(figment(&db.url, server.url(), &extra)))
        .await
        .expect("app launches");
    TestApp {
        client,
        fake,
        server,
        db,
        extra,
    }
}

async fn token_rows(db: &TestDb) -> Vec<(String, Option<String>, Option<String>)> {
    let pool = db.pool().await;
    let rows = sqlx::query_as(
        "SELECT provider, token, refresh_token FROM social_users ORDER BY provider, id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

/// Connection refused at the API, then at the token endpoint: 502 `provider_error` at once,
/// nothing stored; a refresh that cannot reach the provider keeps the stored tokens.
async fn provider_refusing_connections_is_a_quick_502(db: TestDb) {
    let closed = free_port();
    // `work` exchanges codes at the fake, but nothing listens where its API should be.
    let app = start_app(db, |fake| {
        format!(
            "[social_auth.providers.work]\nkind = \"github\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nauthorize_url = \"{fake}/login/oauth/authorize\"\ntoken_url = \"{fake}/login/oauth/access_token\"\napi_url = \"http://127.0.0.1:{closed}\"\n"
        )
    })
    .await;
    app.fake.set_token_mode(TokenMode::Expiring);
    assert_eq!(app.login(&app.client).await.status(), Status::SeeOther);
    let signed_in = session_jwt(&app.client).await;
    let before = token_rows(&app.db).await;
    assert_eq!(before.len(), 1);

    // The API refuses.
    let callback = app.authorize(&app.client, "/auth/work").await;
    let started = Instant::now();
    let r = app
        .client
        .get(callback)
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::BadGateway);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered at once"
    );
    assert_eq!(json(r).await["error"], "provider_error");

    // The whole provider goes away: a login in progress and a refresh.
    let callback = app.authorize(&app.client, "/auth/github").await;
    let fake_addr = app.server.url().trim_start_matches("http://").to_owned();
    let TestApp {
        client,
        fake,
        server,
        db,
        ..
    } = app;
    drop(server);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&fake_addr).is_ok() {
        assert!(Instant::now() < deadline, "the fake provider stops");
        rocket::tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = fake.token_calls();
    let started = Instant::now();
    let r = client.get(callback).header(accept_json()).dispatch().await;
    assert_eq!(r.status(), Status::BadGateway);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered at once"
    );
    let body = json(r).await;
    assert_eq!(body["error"], "provider_error", "{body}");
    assert_eq!(fake.token_calls(), calls, "nothing reached the provider");

    let started = Instant::now();
    let r = client.post("/auth/github/refresh").dispatch().await;
    assert_eq!(r.status(), Status::BadGateway);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered at once"
    );
    assert_eq!(
        json(r).await,
        serde_json::json!({"status": "provider_error"})
    );

    assert_eq!(token_rows(&db).await, before, "nothing stored or lost");
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(
        session_jwt(&client).await,
        signed_in,
        "the failed login left the session alone"
    );
}

async fn answer(r: LocalResponse<'_>) -> (Status, serde_json::Value) {
    (r.status(), json(r).await)
}

/// The only connection held elsewhere: every request that needs the database (token, refresh,
/// a login's callback) answers 503 after the acquire timeout (`connect_timeout`), side by side
/// rather than one after another, and the app serves again as soon as the connection returns.
async fn pool_exhausted_answers_503_after_the_acquire_timeout(db: TestDb) {
    let app = TestApp::start_with(
        db,
        "[databases.social_auth]\nmax_connections = 1\nconnect_timeout = 1\n",
    )
    .await;
    app.fake.set_token_mode(TokenMode::Expiring);
    assert_eq!(app.login(&app.client).await.status(), Status::SeeOther);
    let pool = app
        .client
        .rocket()
        .state::<AuthDb>()
        .expect("the fairing manages AuthDb");
    let callback = app.authorize(&app.client, "/auth/github").await;
    let held = pool.acquire().await.expect("the only connection");

    let started = Instant::now();
    let tokens = rocket::futures::future::join_all(
        (0..6).map(|_| async { answer(app.client.get("/auth/token").dispatch().await).await }),
    );
    let refresh = async { answer(app.client.post("/auth/github/refresh").dispatch().await).await };
    let login = async {
        let r = app.client.get(callback).header(accept_json());
        answer(r.dispatch().await).await
    };
    let (tokens, refresh, login) = rocket::tokio::join!(tokens, refresh, login);
    let elapsed = started.elapsed();
    for (status, body) in tokens {
        assert_eq!(status, Status::ServiceUnavailable);
        assert_eq!(body, serde_json::json!({"token": null, "status": 503}));
    }
    assert_eq!(
        refresh,
        (
            Status::ServiceUnavailable,
            serde_json::json!({"status": "database_unavailable"})
        )
    );
    assert_eq!(login.0, Status::ServiceUnavailable);
    assert_eq!(login.1["error"], "database_unavailable");
    assert!(
        elapsed >= Duration::from_millis(900),
        "waited for the acquire timeout: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(2500),
        "eight requests waited side by side, not in a queue: {elapsed:?}"
    );
    // The guard needs no connection.
    assert_eq!(
        app.client.get("/strict").dispatch().await.status(),
        Status::Ok
    );

    drop(held);
    let started = Instant::now();
    let r = app.client.get("/auth/token").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    assert!(started.elapsed() < Duration::from_millis(500));
}

/// The demo binary on a database of ours and a free port, as an operator runs it.
struct Demo {
    child: Child,
    origin: String,
}

impl Demo {
    fn spawn(db_url: &str) -> Demo {
        let port = free_port();
        let origin = format!("http://127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_rocket_social_auth"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("ROCKET_CONFIG")
            .env_remove("ROCKET_PROFILE")
            .env("ROCKET_PORT", port.to_string())
            .env("ROCKET_LOG_LEVEL", "off")
            .env("ROCKET_SOCIAL_AUTH", format!("{{public_url=\"{origin}\"}}"))
            .env(
                "ROCKET_DATABASES",
                format!("{{social_auth={{url=\"{db_url}\",max_connections=8}}}}"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the demo starts");
        Demo { child, origin }
    }

    async fn ready(&self, http: &reqwest::Client) {
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{}/ready", self.origin)).send().await {
                if r.status().as_u16() == 200 {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the demo becomes ready"
            );
            rocket::tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One login with the demo's development provider as `login`, the way a browser does it
/// (without fetching the provider's page: its form is posted directly).
async fn dev_login(http: &reqwest::Client, origin: &str, login: &str) -> Result<(), String> {
    let err = |e: reqwest::Error| e.to_string();
    let start = http
        .get(format!("{origin}/auth/dev"))
        .send()
        .await
        .map_err(err)?;
    if start.status().as_u16() != 303 {
        return Err(format!("login start answered {}", start.status()));
    }
    let mut cookies = BTreeMap::new();
    for set in start.headers().get_all(SET_COOKIE) {
        let set = set.to_str().map_err(|e| e.to_string())?;
        let pair = set.split(';').next().unwrap_or_default();
        if let Some((name, value)) = pair.split_once('=') {
            cookies.insert(name.to_owned(), value.to_owned());
        }
    }
    let authorize = start
        .headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .ok_or("no Location")?;
    let authorize = url::Url::parse(authorize).map_err(|e| e.to_string())?;
    let mut form: Vec<(String, String)> = authorize
        .query_pairs()
        .filter(|(k, _)| ["client_id", "redirect_uri", "state", "code_challenge"].contains(&&**k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    form.push(("login".into(), login.into()));
    form.push(("decision".into(), "approve".into()));
    let approved = http
        .post(format!("{origin}/auth/_dev/login/oauth/authorize"))
        .form(&form)
        .send()
        .await
        .map_err(err)?;
    let callback = approved
        .headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| format!("approval answered {}", approved.status()))?
        .to_owned();
    let cookie = cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let done = http
        .get(callback)
        .header(COOKIE, cookie)
        .send()
        .await
        .map_err(err)?;
    match done.status().as_u16() {
        303 => Ok(()),
        other => Err(format!(
            "callback answered {other}: {}",
            done.text().await.unwrap_or_default()
        )),
    }
}

/// What must hold of the tables whatever happened to the process.
async fn assert_consistent(db: &TestDb, committed: u64) {
    let orphans = db
        .count(
            "SELECT COUNT(*) FROM users u WHERE NOT EXISTS \
             (SELECT 1 FROM social_users s WHERE s.user_id = u.id)",
        )
        .await;
    assert_eq!(orphans, 0, "no user without a social account");
    let dangling = db
        .count(
            "SELECT COUNT(*) FROM social_users s WHERE NOT EXISTS \
             (SELECT 1 FROM users u WHERE u.id = s.user_id)",
        )
        .await;
    assert_eq!(dangling, 0, "no social account without a user");
    let half = db
        .count(
            "SELECT COUNT(*) FROM users WHERE name IS NULL OR email IS NULL OR avatar_url IS NULL",
        )
        .await
        + db.count(
            "SELECT COUNT(*) FROM social_users WHERE token IS NULL OR social_id = '' \
                 OR provider <> 'dev'",
        )
        .await;
    assert_eq!(half, 0, "no half-written row");
    let users = db.count("SELECT COUNT(*) FROM users").await;
    assert!(
        users >= committed as i64,
        "every login answered 303 is stored: {users} users, {committed} logins"
    );
    if db.backend == "sqlite" {
        let pool = db.pool().await;
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        assert_eq!(check, "ok");
    }
}

/// Many concurrent first logins, each a new user, and SIGKILL in the middle: no user without
/// its social account, no half-written row, every answered login kept; the app starts again
/// on the same database and serves logins.
async fn killed_during_a_login_storm_leaves_the_database_consistent(db: TestDb) {
    let http = http_client();
    let mut demo = Demo::spawn(&db.url);
    demo.ready(&http).await;

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let browsers: Vec<_> = (0..16)
        .map(|b| {
            let (http, origin) = (http.clone(), demo.origin.clone());
            let (stop, committed, failures) = (stop.clone(), committed.clone(), failures.clone());
            rocket::tokio::spawn(async move {
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match dev_login(&http, &origin, &format!("storm-{b}-{n}")).await {
                        Ok(()) => {
                            committed.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) if !stop.load(Ordering::SeqCst) => {
                            failures.lock().unwrap().push(e);
                            break;
                        }
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    while committed.load(Ordering::SeqCst) < 40 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the storm makes progress: {:?}",
            failures.lock().unwrap()
        );
        rocket::tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // SIGKILL, with logins in every stage of flight.
    stop.store(true, Ordering::SeqCst);
    demo.child.kill().expect("SIGKILL");
    demo.child.wait().unwrap();
    for browser in browsers {
        browser.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "no login failed before the kill: {failures:?}"
    );
    let committed = committed.load(Ordering::SeqCst);
    assert_consistent(&db, committed).await;

    // A restart on the same database serves logins.
    let demo = Demo::spawn(&db.url);
    demo.ready(&http).await;
    dev_login(&http, &demo.origin, "after-restart")
        .await
        .expect("a login after the restart");
    drop(demo);
    assert_consistent(&db, committed + 1).await;
}

/// The app served over TCP, with its shutdown handle.
pub struct Served {
    pub url: String,
    pub shutdown: rocket::Shutdown,
    pub task: rocket::tokio::task::JoinHandle<Result<Rocket<Ignite>, rocket::Error>>,
}

/// Launches `figment` (port 0) on loopback and returns once it listens.
pub async fn serve(figment: Figment) -> Served {
    let (tx, rx) = rocket::tokio::sync::oneshot::channel();
    let tx = Mutex::new(Some(tx));
    let figment = figment
        .merge(("port", 0))
        .merge(("shutdown.ctrlc", false))
        .merge(("shutdown.signals", Vec::<String>::new()))
        .merge(("shutdown.grace", 2))
        .merge(("shutdown.mercy", 1));
    let rocket = rocket(figment).attach(rocket::fairing::AdHoc::on_liftoff("port", move |r| {
        let (port, shutdown) = (r.config().port, r.shutdown());
        Box::pin(async move {
            if let Some(tx) = tx.lock().unwrap().take() {
                let _ = tx.send((port, shutdown));
            }
        })
    }));
    let task = rocket::tokio::spawn(rocket.launch());
    let (port, shutdown) = rx.await.expect("the app launches");
    Served {
        url: format!("http://127.0.0.1:{port}"),
        shutdown,
        task,
    }
}

/// Shutdown requested while a login waits on a slow provider: the login still completes with
/// its normal answer (303, the `jwt` cookie, the user stored) and the server then stops.
async fn graceful_shutdown_lets_an_in_flight_login_finish(db: TestDb) {
    let fake = FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
    fake.sign_in_as(octocat());
    let server = fake.clone().spawn().await.expect("fake GitHub starts");
    let app = serve(figment(&db.url, server.url(), "")).await;
    let http = http_client();

    let start = http
        .get(format!("{}/auth/github", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status().as_u16(), 303);
    let flow = start.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let callback = provider_redirect(start.headers()[LOCATION].to_str().unwrap()).await;

    fake.set_token_fault(Some(TokenFault::Slow(Duration::from_millis(1000))));
    let calls = fake.token_calls();
    let in_flight = rocket::tokio::spawn({
        let (http, url) = (http.clone(), format!("{}{callback}", app.url));
        async move { http.get(url).header(COOKIE, flow).send().await }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.token_calls() == calls {
        assert!(Instant::now() < deadline, "the login reaches the provider");
        rocket::tokio::time::sleep(Duration::from_millis(5)).await;
    }
    app.shutdown.notify();

    let done = in_flight
        .await
        .unwrap()
        .expect("the in-flight login gets an answer");
    assert_eq!(done.status().as_u16(), 303, "{:?}", done.text().await);
    assert_eq!(done.headers()[LOCATION], "/");
    assert!(done
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("jwt=")));
    let stopped = rocket::tokio::time::timeout(Duration::from_secs(6), app.task)
        .await
        .expect("the server stops after its grace period")
        .unwrap();
    assert!(stopped.is_ok(), "a graceful shutdown: {stopped:?}");
    assert!(
        http.get(format!("{}/health", app.url))
            .send()
            .await
            .is_err(),
        "no new connection after shutdown"
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(db.count("SELECT COUNT(*) FROM social_users").await, 1);
}
