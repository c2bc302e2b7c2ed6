//! The demo binary killed in the middle of a login storm: the database stays consistent and
//! the app starts again. (The other faults: `tests/it/faults.rs`.)

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::common::*;
use crate::db_tests;

db_tests!(killed_during_a_login_storm_leaves_the_database_consistent);

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
            .current_dir(crate::root())
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
