//! Configuration errors through the demo binary, as an operator meets them: the key is named,
//! the exit code is non-zero, nothing panics. (In process: `tests/it/config.rs`.)

use std::process::{Command, Stdio};

use crate::common::*;

/// The demo binary with a configuration file of our own: prints the key, exits non-zero, no
/// panic.
fn run_demo(toml: &str, env: &[(&str, &str)]) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("rsa_cfg_{}_{}", std::process::id(), now_nanos()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("Rocket.toml");
    let templates = crate::root().join("templates");
    std::fs::write(
        &config,
        format!(
            "[default]\ntemplate_dir = \"{}\"\nport = 0\n[default.databases.social_auth]\nurl = \"sqlite://{}?mode=rwc\"\n{toml}",
            templates.display(),
            dir.join("db.sqlite").display()
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_rocket_social_auth"));
    command
        .current_dir(&dir)
        .env("ROCKET_CONFIG", &config)
        .env_remove("ROCKET_PROFILE")
        .stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    // A configuration that should fail but launches must fail the test, not hang it.
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo runs");
    let started = std::time::Instant::now();
    while child
        .try_wait()
        .expect("the demo can be waited for")
        .is_none()
    {
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let child = child.wait_with_output().expect("the demo's output");
    let _ = std::fs::remove_dir_all(&dir);
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    (child.status.code().unwrap_or(-1), output)
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn the_binary_names_the_key_and_exits_non_zero() {
    let cases = [
        (
            "[default.social_auth.jwt]\nrole = \"web_user\"\n",
            "social_auth.jwt.secret",
        ),
        (
            "[default.social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\n",
            "social_auth.jwt.role",
        ),
        (
            "[default.social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\nrole = \"r\"\nalgorithm = \"none\"\n",
            "social_auth.jwt.algorithm",
        ),
        (
            "[default.social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\nrole = \"r\"\n[default.social_auth.providers.github]\nclient_id = \"a\"\nclient_secret = \"b\"\nauthorize_url = \"http://github.example/x\"\n",
            "social_auth.providers.github.authorize_url",
        ),
        (
            "[default.social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\nrole = \"r\"\n[default.social_auth.providers.token]\nkind = \"github\"\nclient_id = \"a\"\nclient_secret = \"b\"\n",
            "social_auth.providers.token",
        ),
        (
            "[default.social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\nrole = \"r\"\n[default.social_auth]\ntrusted_proxies = 2\n",
            "social_auth.trusted_proxies",
        ),
        (
            "[default.social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\nrole = \"r\"\n[default.social_auth]\nip_header = \"X-Forwarded-For\"\ntrusted_proxies = \"two\"\n",
            "social_auth.trusted_proxies",
        ),
        (
            "[default.social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\nrole = \"r\"\n[default.social_auth.rate_limit]\nper_minute = 5\nmax_clients = 0\n",
            "social_auth.rate_limit.max_clients",
        ),
        (
            "[default.social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\nrole = \"r\"\n[default.social_auth.rate_limit]\nper_minute = 5\nstore = \"redis\"\n",
            "social_auth.rate_limit.redis_url",
        ),
        (
            "[default.social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\nrole = \"r\"\n[default.social_auth.rate_limit]\nper_minute = 5\nredis_url = \"redis://default:pw-in-url@127.0.0.1\"\n",
            "social_auth.rate_limit.redis_url",
        ),
        (
            "[default.social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\nrole = \"r\"\n[default.social_auth.rate_limit]\nper_minute = 5\nstore = \"redis\"\nredis_url = \"rediss://default:pw-in-url@redis.example\"\n",
            "social_auth.rate_limit.redis_url",
        ),
        (
            "[default.social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\nrole = \"r\"\n[default.social_auth.rate_limit]\nper_minute = 5\nstore = \"memcached\"\n",
            "social_auth.rate_limit.store",
        ),
        (
            "[default.social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\nrole = \"r\"\n[default.social_auth.rate_limit]\nper_minute = 5\non_store_error = \"maybe\"\n",
            "social_auth.rate_limit.on_store_error",
        ),
    ];
    for (toml, key) in cases {
        let (code, output) = run_demo(toml, &[]);
        assert_ne!(code, 0, "{key}: {output}");
        assert!(output.contains(key), "{key} is named: {output}");
        assert!(!output.contains("panicked"), "{key}: no panic: {output}");
        assert!(
            !output.contains("0123456789abcdef0123456789abcdef"),
            "secret not printed: {output}"
        );
        assert!(
            !output.contains("pw-in-url"),
            "password not printed: {output}"
        );
    }
}

#[test]
fn the_binary_refuses_the_dev_provider_in_release() {
    let toml = "[default.social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\nrole = \"r\"\n[default.social_auth.providers.dev]\nkind = \"dev\"\n";
    let (code, output) = run_demo(
        toml,
        &[
            ("ROCKET_PROFILE", "release"),
            ("ROCKET_SECRET_KEY", SECRET_KEY),
        ],
    );
    assert_ne!(code, 0, "{output}");
    assert!(
        output.contains("social_auth.providers.dev") && output.contains("release"),
        "{output}"
    );
    assert!(!output.contains("panicked"), "{output}");
}

/// The development allowances (the `dev` provider, the JWT secret published in this
/// repository's Rocket.toml, running without `token_keys`) hold only in the `debug` profile,
/// and the dev provider only on a loopback `public_url`; each refusal names its key.
#[test]
fn development_allowances_stay_in_debug() {
    const SECRET: &str =
        "[default.social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\nrole = \"r\"\n";
    const KEYS: &str =
        "[default.social_auth]\ntoken_keys = [\"t1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"]\n";
    const DEV: &str = "[default.social_auth.providers.dev]\nkind = \"dev\"\n";
    const GITHUB: &str =
        "[default.social_auth.providers.github]\nclient_id = \"a\"\nclient_secret = \"b\"\n";
    let published = format!(
        "[default.social_auth.jwt]\nsecret = \"{}\"\nrole = \"r\"\n",
        "development-only-secret-do-not-use-in-production"
    );
    let cases: Vec<(String, Option<&str>, &str)> = vec![
        (
            format!("{SECRET}{KEYS}{DEV}"),
            Some("production"),
            "social_auth.providers.dev",
        ),
        (
            format!("{SECRET}{KEYS}{DEV}"),
            Some("staging"),
            "social_auth.providers.dev",
        ),
        (
            format!(
                "{SECRET}{DEV}[default.social_auth]\npublic_url = \"https://app.example.com\"\n"
            ),
            None,
            "social_auth.providers.dev",
        ),
        (
            format!("{SECRET}{GITHUB}"),
            Some("staging"),
            "social_auth.token_keys",
        ),
        (
            format!("{published}{KEYS}"),
            Some("production"),
            "social_auth.jwt.secret",
        ),
        (
            format!("{SECRET}{DEV}[default.social_auth.providers.dev2]\nkind = \"dev\"\n"),
            None,
            "social_auth.providers.dev2",
        ),
    ];
    for (toml, profile, key) in cases {
        let mut env = vec![("ROCKET_SECRET_KEY", SECRET_KEY)];
        if let Some(profile) = profile {
            env.push(("ROCKET_PROFILE", profile));
        }
        let (code, output) = run_demo(&toml, &env);
        assert_ne!(code, 0, "{key} in {profile:?}: {output}");
        assert!(output.contains(key), "{key} is named: {output}");
        assert!(!output.contains("panicked"), "{key}: no panic: {output}");
    }
    // In debug the published secret and a missing token_keys are allowed (the quick start).
    let db = rocket::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    db.block_on(async {
        let db = TestDb::sqlite().await;
        let figment = figment(&db.url, "http://127.0.0.1:9", "")
            .merge(("social_auth.token_keys", Vec::<String>::new()))
            .merge((
                "social_auth.jwt.secret",
                "development-only-secret-do-not-use-in-production",
            ));
        assert!(rocket(figment).ignite().await.is_ok());
    });
}
