//! Faults with a defined answer: a provider that refuses connections, an exhausted pool, and a
//! graceful shutdown with a login in flight. None may panic or hang. (A process killed in the
//! middle of a login storm: `demo/tests/it/faults.rs`.)

use std::sync::Mutex;
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
