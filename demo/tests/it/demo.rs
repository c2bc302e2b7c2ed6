//! The demo app as a newcomer runs it: `cargo run` with the repository's Rocket.toml (debug
//! profile, SQLite, the development provider), driven over real HTTP like a browser.

use std::process::{Child, Command, Stdio};

use crate::common::{free_port, Browser};
use std::time::{Duration, Instant};

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
async fn newcomer_signs_in_with_the_dev_provider() {
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("rsa_demo_{}_{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rocket_social_auth"))
        .current_dir(crate::root())
        .env_remove("ROCKET_CONFIG")
        .env_remove("ROCKET_PROFILE")
        .env("ROCKET_PORT", port.to_string())
        .env("ROCKET_LOG_LEVEL", "critical")
        .env("ROCKET_SOCIAL_AUTH", format!("{{public_url=\"{origin}\"}}"))
        .env(
            "ROCKET_DATABASES",
            format!(
                "{{social_auth={{url=\"sqlite://{}?mode=rwc\"}}}}",
                dir.join("demo.sqlite").display()
            ),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("the demo starts");
    let _demo = Demo { child, dir };

    let mut browser = Browser::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = browser.http.get(format!("{origin}/health")).send().await {
            assert_eq!(r.text().await.unwrap(), "ok");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the demo answers /health"
        );
        rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let http = browser.http.clone();
    assert_eq!(
        http.get(format!("{origin}/ready"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    let (status, _, page) = browser.send(http.get(format!("{origin}/"))).await;
    assert_eq!(status, 200);
    // Tera escapes `/` in attributes as `&#x2F;`, which browsers read back as `/`.
    let page = page.replace("&#x2F;", "/");
    assert!(
        page.contains("Sign in with dev") && page.contains("href=\"/auth/dev\""),
        "{page}"
    );
    // A button per provider with its initial as an inline badge, and no external asset.
    assert!(
        page.contains("id=\"sign-in-dev\"") && page.contains("aria-hidden=\"true\">D</span>"),
        "{page}"
    );
    for external in ["src=\"http", "href=\"http", "url(http", "<link"] {
        assert!(!page.contains(external), "{external}: {page}");
    }

    let callback = browser.approve_dev(&origin, "alice").await;
    let (status, landing, body) = browser.send(http.get(&callback)).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(landing, "/");
    assert!(browser.cookies.contains_key("jwt"));

    let (_, _, page) = browser.send(http.get(format!("{origin}/"))).await;
    assert!(
        page.contains("alice (dev)") && page.contains("id=\"logout\""),
        "{page}"
    );
    let (status, _, me) = browser.send(http.get(format!("{origin}/me"))).await;
    assert_eq!(status, 200);
    let me: serde_json::Value = serde_json::from_str(&me).unwrap();
    assert_eq!(me["name"], "alice (dev)");
    assert_eq!(me["provider"], "dev");
    assert_eq!(me["email"], "alice@dev.localhost");
    // The dev avatar loads offline: an inline SVG with the initial, not a host to reach.
    let avatar = me["avatar_url"].as_str().unwrap();
    let svg = avatar
        .strip_prefix("data:image/svg+xml;base64,")
        .expect("a data: URL");
    use base64::Engine;
    let svg = base64::engine::general_purpose::STANDARD
        .decode(svg)
        .unwrap();
    let svg = String::from_utf8(svg).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains(">A</text>"),
        "{svg}"
    );
    let page = page
        .replace("&#x2F;", "/")
        .replace("&#x3D;", "=")
        .replace("&#x2B;", "+");
    assert!(page.contains(&format!("src=\"{avatar}\"")), "{page}");
    assert!(me["id"].is_i64());

    let (status, landing, _) = browser
        .send(
            http.post(format!("{origin}/auth/logout"))
                .header("Origin", &origin),
        )
        .await;
    assert_eq!((status, landing.as_str()), (303, "/"));
    let (_, _, page) = browser.send(http.get(format!("{origin}/"))).await;
    assert!(page.contains("You are not signed in"), "{page}");
    let (status, _, body) = browser.send(http.get(format!("{origin}/me"))).await;
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["status"],
        401
    );
}
