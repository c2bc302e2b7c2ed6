//! Key rotation through the demo binary: `rocket_social_auth reencrypt`. (The rest of the
//! security model: `tests/it/security.rs`.)

use std::process::Command;

use crate::common::*;

/// The key rotated to (the same as in `tests/it/security.rs`).
const K2: &str = "k2:HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";

#[rocket::async_test]
async fn the_binary_reencrypts() {
    let dir = std::env::temp_dir().join(format!("rsa_reenc_{}_{}", std::process::id(), now()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("Rocket.toml");
    let url = format!("sqlite://{}?mode=rwc", dir.join("db.sqlite").display());
    std::fs::write(
        &config,
        format!(
            "[default.databases.social_auth]\nurl = \"{url}\"\n[default.social_auth]\ntoken_keys = [\"{K2}\"]\n[default.social_auth.jwt]\nsecret = \"{JWT_SECRET}\"\nrole = \"r\"\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_rocket_social_auth"))
            .args(args)
            .current_dir(&dir)
            .env("ROCKET_CONFIG", &config)
            .env_remove("ROCKET_PROFILE")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!text.contains("panicked"), "{text}");
        (out.status.success(), text)
    };
    // A fresh database: the migrations run, there is nothing to do.
    let (ok, text) = run(&["reencrypt"]);
    assert!(ok, "{text}");
    assert!(text.contains("reencrypt: 0 rows"), "{text}");
    // A plain-text token (from before encryption, or imported): sealed under k2.
    let db = TestDb::sqlite().await.alias(url);
    let pool = db.pool().await;
    sqlx::query("INSERT INTO users (name, created_at, updated_at) VALUES ('legacy', 0, 0)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO social_users (user_id, provider, social_id, token, created_at, updated_at) \
         SELECT id, 'github', '1', 'gho_plain', 0, 0 FROM users",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (ok, text) = run(&["reencrypt"]);
    assert!(ok, "{text}");
    assert!(text.contains("1 values rewritten"), "{text}");
    let token: String = sqlx::query_scalar("SELECT token FROM social_users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(token.starts_with("v1.k2.") && !token.contains("gho_plain"));
    pool.close().await;
    let (ok, text) = run(&["frobnicate"]);
    assert!(!ok && text.contains("unknown command"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}
