//! The demo's operations face (issue 14): `GET /metrics` in Prometheus's text format with
//! histogram buckets after a login, the audit line in its log at Rocket's `normal` level, and
//! the account page's security log.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, Browser};

struct Demo {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[rocket::async_test]
async fn metrics_in_prometheus_text_audit_lines_in_the_log_and_the_security_log() {
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("rsa_demo_metrics_{}_{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("stdout.log");
    let child = Command::new(env!("CARGO_BIN_EXE_rocket_social_auth"))
        .current_dir(crate::root())
        .env_remove("ROCKET_CONFIG")
        .env_remove("ROCKET_PROFILE")
        .env("ROCKET_PORT", port.to_string())
        .env("ROCKET_LOG_LEVEL", "normal")
        .env("ROCKET_CLI_COLORS", "false")
        .env(
            "ROCKET_SOCIAL_AUTH",
            format!("{{public_url=\"{origin}\",audit={{store=true}}}}"),
        )
        .env(
            "ROCKET_DATABASES",
            format!(
                "{{social_auth={{url=\"sqlite://{}?mode=rwc\"}}}}",
                dir.join("demo.sqlite").display()
            ),
        )
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the demo starts");
    let _demo = Demo { child, dir };

    let mut browser = Browser::new();
    let http = browser.http.clone();
    let started = Instant::now();
    while http.get(format!("{origin}/health")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the demo answers"
        );
        rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let callback = browser.approve_dev(&origin, "alice").await;
    let (status, _, _) = browser.send(http.get(&callback)).await;
    assert_eq!(status, 303);
    let cookie = browser.cookies["jwt"].clone();
    let (_, _, page) = browser.send(http.get(format!("{origin}/"))).await;
    assert!(
        page.contains("Security log") && page.contains("sign_in (new)"),
        "{page}"
    );

    let answer = http.get(format!("{origin}/metrics")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["content-type"].to_str().unwrap(),
        "text/plain; version=0.0.4"
    );
    let text = answer.text().await.unwrap();
    for expected in [
        "# TYPE social_auth_provider_request_duration_seconds histogram",
        "social_auth_provider_request_duration_seconds_bucket{provider=\"dev\",endpoint=\"/auth/_dev/login/oauth/access_token\",le=\"0.005\"}",
        "social_auth_provider_request_duration_seconds_count{provider=\"dev\",endpoint=\"/auth/_dev/user\"}",
        "social_auth_logins_total{provider=\"dev\",outcome=\"new\"} 1",
        "social_auth_guard_verifications_total{result=\"verified\"}",
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
    assert!(!text.contains("quantile"), "histograms, not summaries");

    let logged = std::fs::read_to_string(&log).unwrap();
    let line = logged
        .lines()
        .find(|l| l.contains("social_auth::audit event=sign_in detail=new"))
        .unwrap_or_else(|| panic!("the audit line in\n{logged}"));
    assert!(
        line.contains("provider=dev") && line.contains("ip=127.0.0.1"),
        "{line}"
    );
    for audit in logged.lines().filter(|l| l.contains("social_auth::audit")) {
        assert!(
            !audit.contains(&cookie) && !audit.contains("code="),
            "{audit}"
        );
    }
}
