//! The seeder of the benchmarks at scale (`scripts/seed`, BENCHMARKS.md): fills an empty SQLite
//! or PostgreSQL database with users, their identities (GitHub, Google, Facebook), sessions (a
//! share revoked and unexpired, a share long expired, the rest live) and provider tokens sealed
//! as the app seals them; optionally signs JWTs of live sessions for the guard's load.
//!
//! ```text
//! seed --db URL --users N --token-key KID:BASE64 [--revoked R] [--expired E] [--live L]
//!      [--ttl-secs S] [--jwt-secret SECRET --role ROLE --jwts K --jwt-out FILE]
//! ```
//!
//! Defaults per user: 0.2 revoked unexpired, 1 long-expired and 0.3 live sessions; unexpired
//! sessions expire in the second half of the next `--ttl-secs` (12 h). The app's migrations are
//! run first; the database must hold no users. With `--users 0`, `--jwts` signs tokens of users
//! the database does not know (the guard never asks it) and writes nothing.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::str::FromStr;

use rocket::tokio;
use sqlx::any::AnyConnectOptions;
use sqlx::{ConnectOptions, Connection};

// What src/vault.rs takes from its parent (the crate root, in the library).
use rocket_social_auth::{ConfigError, Secret};

#[path = "../../src/vault.rs"]
#[allow(dead_code)]
mod vault;

mod seeder;

type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("seed: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn args() -> Res<HashMap<String, String>> {
    let mut map = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let key = arg
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {arg:?}"))?;
        let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
        map.insert(key.to_owned(), value);
    }
    Ok(map)
}

fn num(args: &HashMap<String, String>, key: &str, default: u64) -> Res<u64> {
    match args.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("--{key}: not a number: {v:?}")),
    }
}

async fn run() -> Res<()> {
    let args = args()?;
    let url = args.get("db").ok_or("--db URL is required")?;
    let users = num(&args, "users", 0)?;
    let mut plan = seeder::Plan::for_users(users);
    plan.revoked = num(&args, "revoked", plan.revoked)?;
    plan.expired = num(&args, "expired", plan.expired)?;
    plan.live = num(&args, "live", plan.live)?;
    plan.ttl_secs = num(&args, "ttl-secs", plan.ttl_secs as u64)? as i64;
    plan.jwts = num(&args, "jwts", 0)?;
    if users > 0 {
        plan.jwts = plan.jwts.min(plan.live);
    }
    if plan.jwts > 0 {
        plan.jwt_secret = args
            .get("jwt-secret")
            .ok_or("--jwts needs --jwt-secret (the app's social_auth.jwt.secret)")?
            .clone();
        args.get("jwt-out").ok_or("--jwts needs --jwt-out FILE")?;
    }
    if let Some(role) = args.get("role") {
        plan.role = role.clone();
    }
    let key = args
        .get("token-key")
        .ok_or("--token-key KID:BASE64 is required (the app's first social_auth.token_keys)")?;
    let vault = vault::TokenVault::from_config(&[Secret::new(key.as_str())])
        .map_err(|e| format!("--token-key: {e}"))?
        .ok_or("--token-key: no key")?;

    sqlx::any::install_default_drivers();
    let options = AnyConnectOptions::from_str(url).map_err(|e| format!("--db: {e}"))?;
    let mut conn = options.connect().await.map_err(|e| format!("{url}: {e}"))?;
    let mut migrator = if conn.backend_name() == "PostgreSQL" {
        sqlx::migrate!("migrations/postgres")
    } else {
        sqlx::migrate!("migrations/sqlite")
    };
    migrator.set_ignore_missing(true);
    migrator
        .run(&mut conn)
        .await
        .map_err(|e| format!("the migrations failed: {e}"))?;
    let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    if existing > 0 {
        return Err(format!(
            "the database already holds {existing} users: seed an empty one"
        ));
    }
    let report = seeder::seed(&mut conn, &vault, &plan)
        .await
        .map_err(|e| e.to_string())?;
    conn.close().await.map_err(|e| e.to_string())?;
    if let Some(path) = args.get("jwt-out") {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| format!("--jwt-out {path}: {e}"))?,
        );
        for jwt in &report.jwts {
            writeln!(out, "{jwt}").map_err(|e| e.to_string())?;
        }
        out.flush().map_err(|e| e.to_string())?;
    }
    println!(
        "users={} identities={} sessions={} revoked={} expired={} live={} jwts={} secs={:.1}",
        report.users,
        report.identities,
        report.sessions,
        plan.revoked,
        plan.expired,
        plan.live,
        report.jwts.len(),
        report.secs
    );
    Ok(())
}
