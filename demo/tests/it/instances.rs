//! Several instances on one PostgreSQL: two demo-app processes on different ports sharing the
//! database, `secret_key` and `token_keys`, behind an imaginary load balancer.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rocket_social_auth::testing::{FakeGithub, TokenMode};

use crate::common::*;

struct Instance {
    child: Child,
    origin: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(config: &std::path::Path, port: u16) -> Instance {
    let child = Command::new(env!("CARGO_BIN_EXE_rocket_social_auth"))
        .env("ROCKET_CONFIG", config)
        .env("ROCKET_PORT", port.to_string())
        .env_remove("ROCKET_PROFILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("the app starts");
    let instance = Instance {
        child,
        origin: format!("http://127.0.0.1:{port}"),
    };
    let http = http_client();
    let started = Instant::now();
    while http
        .get(format!("{}/health", instance.origin))
        .send()
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "instance on {port} answers"
        );
        rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    }
    instance
}

#[rocket::async_test]
async fn two_instances_share_logins_revocations_and_refreshes() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let fake = FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
    fake.sign_in_as(octocat());
    let provider = fake.clone().spawn().await.unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    // The load balancer's address is A's here: both instances call it their public_url.
    let public = format!("http://127.0.0.1:{port_a}");
    let dir = std::env::temp_dir().join(format!("rsa_inst_{}_{port_a}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("Rocket.toml");
    let p = provider.url();
    std::fs::write(
        &config,
        format!(
            r#"[default]
address = "127.0.0.1"
secret_key = "{SECRET_KEY}"
log_level = "critical"
template_dir = "{templates}"
[default.databases.social_auth]
url = "{db}"
[default.social_auth]
public_url = "{public}"
token_keys = ["{TOKEN_KEY}"]
session_exposes_jwt = true
revocation_cache_secs = 1
http_timeout_secs = 5
[default.social_auth.jwt]
secret = "{JWT_SECRET}"
role = "web_user"
[default.social_auth.providers.github]
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
authorize_url = "{p}/login/oauth/authorize"
token_url = "{p}/login/oauth/access_token"
api_url = "{p}"
"#,
            templates = crate::root().join("templates").display(),
            db = db.url,
        ),
    )
    .unwrap();
    let a = start(&config, port_a).await;
    let b = start(&config, port_b).await;

    // A login started on A completes on B.
    let mut browser = Browser::new();
    let http = browser.http.clone();
    let (status, authorize, _) = browser
        .send(http.get(format!("{}/auth/github", a.origin)))
        .await;
    assert_eq!(status, 303);
    let answer = http.get(&authorize).send().await.unwrap();
    let callback = answer.headers()["location"]
        .to_str()
        .unwrap()
        .replace(&a.origin, &b.origin);
    assert!(callback.starts_with(&format!("{}/auth/github/callback?", b.origin)));
    let (status, landing, body) = browser.send(http.get(&callback)).await;
    assert_eq!((status, landing.as_str()), (303, "/"), "{body}");
    for instance in [&a, &b] {
        let (status, _, me) = browser
            .send(http.get(format!("{}/me", instance.origin)))
            .await;
        assert_eq!(status, 200, "signed in on {}", instance.origin);
        assert!(me.contains("The Octocat"));
    }

    // A session revoked through A is refused by B within revocation_cache_secs.
    let (_, _, session) = browser
        .send(http.get(format!("{}/auth/session", b.origin)))
        .await;
    let jwt = serde_json::from_str::<serde_json::Value>(&session).unwrap()["jwt"]
        .as_str()
        .unwrap()
        .to_owned();
    let me_b = |jwt: String| {
        let http = http.clone();
        let origin = b.origin.clone();
        async move {
            http.get(format!("{origin}/me"))
                .bearer_auth(jwt)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(me_b(jwt.clone()).await, 200);
    let (status, _, _) = browser
        .send(
            http.post(format!("{}/auth/logout", a.origin))
                .header("Origin", &public),
        )
        .await;
    assert_eq!(status, 303);
    let revoked_at = Instant::now();
    while me_b(jwt.clone()).await == 200 {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(3),
            "B refuses within the staleness"
        );
        rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Both instances refreshing the same rotating token at once: one provider call.
    fake.set_token_mode(TokenMode::Expiring);
    let mut browser = Browser::new();
    let (_, authorize, _) = browser
        .send(http.get(format!("{}/auth/github", a.origin)))
        .await;
    let answer = http.get(&authorize).send().await.unwrap();
    let callback = answer.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(browser.send(http.get(&callback)).await.0, 303);
    let (_, _, session) = browser
        .send(http.get(format!("{}/auth/session", a.origin)))
        .await;
    let jwt = serde_json::from_str::<serde_json::Value>(&session).unwrap()["jwt"]
        .as_str()
        .unwrap()
        .to_owned();
    fake.set_refresh_delay(Some(Duration::from_millis(500)));
    let refresh = |origin: String| {
        let (http, jwt) = (http.clone(), jwt.clone());
        async move {
            let r = http
                .post(format!("{origin}/auth/github/refresh"))
                .bearer_auth(jwt)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let before = fake.refresh_calls();
    let (ra, rb) = rocket::tokio::join!(refresh(a.origin.clone()), refresh(b.origin.clone()));
    assert_eq!(ra, (200, r#"{"status":"refreshed"}"#.to_owned()));
    assert_eq!(rb, (200, r#"{"status":"refreshed"}"#.to_owned()));
    assert_eq!(
        fake.refresh_calls() - before,
        1,
        "one refresh call to the provider"
    );
    drop((a, b));
    let _ = std::fs::remove_dir_all(dir);
}
