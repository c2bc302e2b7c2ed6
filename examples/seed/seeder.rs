//! Fills a database with users, identities, sessions and sealed provider tokens, in bulk: the
//! realistic data of the benchmarks at scale (BENCHMARKS.md), shared by `examples/seed` and the
//! test that proves the app reads what it writes (tests/it/seed.rs).
//!
//! Rows are written as the app writes them: tokens sealed by the crate's own vault (this
//! module's parent compiles `src/vault.rs`), sessions keyed by a 16-byte random `jti`, ids from
//! 1 up (the id sequences moved past them on PostgreSQL).

use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sqlx::{AnyConnection, Connection, Executor};

use super::vault::{Column, RowId, TokenVault};

/// The providers of the seeded identities, by the share of users whose first identity they
/// are (out of 10); every fourth user has a second identity.
const PRIMARY: [&str; 10] = [
    "github", "github", "github", "github", "github", "google", "google", "google", "facebook",
    "facebook",
];

/// Rows per multi-row INSERT (under SQLite's 32,766 and PostgreSQL's 65,535 bound values).
const BATCH: usize = 2_000;
/// Rows per transaction.
const TX_ROWS: usize = 100_000;

/// What to write.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Users (ids 1..=users).
    pub users: u64,
    /// Sessions revoked and not yet expired: what every instance keeps in memory.
    pub revoked: u64,
    /// Sessions that expired more than a day ago: what the purge deletes.
    pub expired: u64,
    /// Live sessions.
    pub live: u64,
    /// Unexpired sessions expire within this many seconds from now (their second half).
    pub ttl_secs: i64,
    /// Sign this many live sessions' JWTs (HS256 with `jwt_secret`), for the guard's load.
    pub jwts: u64,
    /// The app's `social_auth.jwt.secret`.
    pub jwt_secret: String,
    /// The app's `social_auth.jwt.role`.
    pub role: String,
}

impl Plan {
    /// The shares of the measurements: per user 0.2 revoked unexpired, 1 long expired
    /// and 0.3 live sessions.
    pub fn for_users(users: u64) -> Plan {
        Plan {
            users,
            revoked: users / 5,
            expired: users,
            live: users * 3 / 10,
            ttl_secs: 12 * 3600,
            jwts: 0,
            jwt_secret: String::new(),
            role: "web_user".into(),
        }
    }
}

/// What was written.
#[derive(Debug, Default)]
pub struct Report {
    pub users: u64,
    pub identities: u64,
    pub sessions: u64,
    /// The signed JWTs of live sessions (one per line in the CLI's output file).
    pub jwts: Vec<String>,
    pub secs: f64,
}

/// The seeded user `id`'s identities: (provider, social id).
pub fn identities(id: u64) -> Vec<(&'static str, String)> {
    let primary = PRIMARY[(id % 10) as usize];
    let mut out = vec![(primary, social_id(primary, id))];
    if id % 4 == 0 {
        let second = if primary == "github" {
            "google"
        } else {
            "github"
        };
        out.push((second, social_id(second, id)));
    }
    out
}

/// A provider's id for seeded user `id` (GitHub's are numeric; none collide with the fakes').
fn social_id(provider: &str, id: u64) -> String {
    match provider {
        "github" => (900_000_000 + id).to_string(),
        "google" => format!("1{id:020}"),
        _ => format!("fb{id}"),
    }
}

/// The plain access token stored for a seeded identity (tests read it back through the app).
pub fn access_token(provider: &str, id: u64) -> String {
    format!("seed-{provider}-{id}-access")
}

/// The plain refresh token of a seeded identity (Facebook has none).
pub fn refresh_token(provider: &str, id: u64) -> Option<String> {
    (provider != "facebook").then(|| format!("seed-{provider}-{id}-refresh"))
}

/// The profile of seeded user `id`: name, email.
pub fn profile(id: u64) -> (String, String) {
    (format!("Seed User {id}"), format!("seed{id}@seed.example"))
}

/// A session's `jti`, as the app makes them: 16 random bytes, base64url.
fn jti() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Spreads session `k` over the users (a fixed stride, so that users get 0, 1 or more).
fn session_user(k: u64, users: u64) -> u64 {
    (k.wrapping_mul(2_654_435_761) % users) + 1
}

/// One multi-row INSERT of `rows`, each a list of values: `$n` placeholders on PostgreSQL,
/// anonymous `?` on SQLite (which looks a `$n` up by a linear scan: quadratic in a statement of
/// thousands).
async fn insert(
    conn: &mut AnyConnection,
    head: &str,
    width: usize,
    rows: Vec<Vec<Value>>,
) -> Result<(), sqlx::Error> {
    let mut sql = String::with_capacity(head.len() + rows.len() * width * 6);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    let postgres = conn.backend_name() == "PostgreSQL";
    let mut n = 0;
    for (i, _) in rows.iter().enumerate() {
        sql.push_str(if i == 0 { "(" } else { ",(" });
        for c in 0..width {
            n += 1;
            if c > 0 {
                sql.push(',');
            }
            if postgres {
                sql.push('$');
                sql.push_str(&n.to_string());
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    let mut query = sqlx::query(&sql);
    for row in rows {
        for value in row {
            query = match value {
                Value::Int(v) => query.bind(v),
                Value::OptInt(v) => query.bind(v),
                Value::Text(v) => query.bind(v),
                Value::OptText(v) => query.bind(v),
            };
        }
    }
    query.execute(conn).await?;
    Ok(())
}

/// A bound value.
enum Value {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
}

/// Writes `rows` in batches, a transaction every [`TX_ROWS`].
async fn write_all(
    conn: &mut AnyConnection,
    head: &str,
    width: usize,
    count: u64,
    mut row: impl FnMut(u64) -> Vec<Vec<Value>>,
) -> Result<u64, sqlx::Error> {
    let mut written = 0;
    let mut next = 0;
    while next < count {
        let mut tx = conn.begin().await?;
        let mut in_tx = 0;
        let mut batch = Vec::with_capacity(BATCH);
        while next < count && in_tx < TX_ROWS {
            batch.extend(row(next));
            next += 1;
            if batch.len() >= BATCH {
                in_tx += batch.len();
                written += batch.len() as u64;
                insert(&mut tx, head, width, std::mem::take(&mut batch)).await?;
            }
        }
        if !batch.is_empty() {
            written += batch.len() as u64;
            insert(&mut tx, head, width, batch).await?;
        }
        tx.commit().await?;
    }
    Ok(written)
}

/// Writes the plan into a migrated database (the app's migrations, run by the caller), on one
/// connection.
pub async fn seed(
    conn: &mut AnyConnection,
    vault: &TokenVault,
    plan: &Plan,
) -> Result<Report, sqlx::Error> {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let begun = Instant::now();
    let now = now();
    let postgres = conn.backend_name() == "PostgreSQL";
    if !postgres {
        // A bulk load: no fsync per commit, a page cache the size of the indexes.
        conn.execute("PRAGMA synchronous = OFF; PRAGMA cache_size = -262144")
            .await?;
    }
    let users_written = write_all(
        conn,
        "INSERT INTO users (id, name, email, email_key, avatar_url, created_at, updated_at, \
         email_vouched_by)",
        8,
        plan.users,
        |i| {
            let id = i + 1;
            let (name, email) = profile(id);
            let provider = PRIMARY[(id % 10) as usize];
            let created = now - 86_400 * 365 + (id % 86_400) as i64;
            vec![vec![
                Value::Int(id as i64),
                Value::Text(name),
                Value::Text(email.clone()),
                Value::OptText((provider != "facebook").then(|| email.clone())),
                Value::Text(format!("https://avatars.seed.example/{id}")),
                Value::Int(created),
                Value::Int(created),
                Value::OptText((provider != "facebook").then(|| provider.to_owned())),
            ]]
        },
    )
    .await?;
    let mut report = Report {
        users: users_written,
        ..Report::default()
    };
    let mut identity_id = 0i64;
    report.identities = write_all(
        conn,
        "INSERT INTO social_users (id, user_id, provider, social_id, token, refresh_token, \
         token_expires_at, created_at, updated_at)",
        9,
        plan.users,
        |i| {
            let id = i + 1;
            identities(id)
                .into_iter()
                .map(|(provider, social_id)| {
                    identity_id += 1;
                    let row = RowId {
                        provider,
                        social_id: &social_id,
                    };
                    let token = vault.seal(&access_token(provider, id), Column::Token, row);
                    let refresh = refresh_token(provider, id)
                        .map(|t| vault.seal(&t, Column::RefreshToken, row));
                    let expires = match provider {
                        "google" => Some(now + 3600),
                        "facebook" => Some(now + 60 * 86_400),
                        _ => None,
                    };
                    vec![
                        Value::Int(identity_id),
                        Value::Int(id as i64),
                        Value::Text(provider.to_owned()),
                        Value::Text(social_id.clone()),
                        Value::Text(token),
                        Value::OptText(refresh),
                        Value::OptInt(expires),
                        Value::Int(now - 86_400),
                        Value::Int(now - 86_400),
                    ]
                })
                .collect()
        },
    )
    .await?;
    if postgres {
        // Explicit ids do not move an identity column's sequence: the app's next insert would
        // collide with a seeded row.
        for table in ["users", "social_users"] {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                 GREATEST((SELECT MAX(id) FROM {table}), 1))"
            ))
            .execute(&mut *conn)
            .await?;
        }
    }

    // Sessions: revoked and unexpired, long expired (a fifth of them revoked too), live.
    let users = plan.users.max(1);
    let total = plan.revoked + plan.expired + plan.live;
    let live_from = plan.revoked + plan.expired;
    let half = plan.ttl_secs / 2;
    let mut minted = Vec::new();
    let key = jsonwebtoken::EncodingKey::from_secret(plan.jwt_secret.as_bytes());
    let mut jwt_error = None;
    report.sessions = write_all(
        conn,
        "INSERT INTO sessions (jti, sub, provider, created_at, expires_at, revoked_at)",
        6,
        if plan.users == 0 { 0 } else { total },
        |k| {
            let user = session_user(k, users);
            let provider = PRIMARY[(user % 10) as usize];
            let spread = (k % 3600) as i64;
            let (created, expires, revoked) = if k < plan.revoked {
                let expires = now + half + (k as i64 % half.max(1));
                (expires - plan.ttl_secs, expires, Some(now - 600 - spread))
            } else if k < live_from {
                let created = now - 30 * 86_400 - spread;
                (
                    created,
                    created + 3600,
                    (k % 5 == 0).then_some(created + 60),
                )
            } else {
                let expires = now + half + (k as i64 % half.max(1));
                (expires - plan.ttl_secs, expires, None)
            };
            let jti = jti();
            if k >= live_from && k - live_from < plan.jwts {
                match mint(&key, &plan.role, user, provider, &jti, created, expires) {
                    Ok(token) => minted.push(token),
                    Err(e) => jwt_error = Some(e),
                }
            }
            vec![vec![
                Value::Text(jti),
                Value::Text(user.to_string()),
                Value::Text(provider.to_owned()),
                Value::Int(created),
                Value::Int(expires),
                Value::OptInt(revoked),
            ]]
        },
    )
    .await?;
    if let Some(e) = jwt_error {
        return Err(sqlx::Error::Protocol(format!(
            "a JWT could not be signed: {e}"
        )));
    }
    if plan.users == 0 {
        // Nobody to seed: tokens of users the database does not know (the guard never asks it),
        // for the guard's load on an empty database.
        for k in 0..plan.jwts {
            let user = k + 1;
            let expires = now + half + (k as i64 % half.max(1));
            let token = mint(
                &key,
                &plan.role,
                user,
                "github",
                &jti(),
                expires - plan.ttl_secs,
                expires,
            )
            .map_err(|e| sqlx::Error::Protocol(format!("a JWT could not be signed: {e}")))?;
            minted.push(token);
        }
    }
    report.jwts = minted;
    if postgres {
        conn.execute("ANALYZE users; ANALYZE social_users; ANALYZE sessions")
            .await?;
    } else {
        conn.execute("PRAGMA synchronous = NORMAL; ANALYZE").await?;
    }
    report.secs = begun.elapsed().as_secs_f64();
    Ok(report)
}

/// The JWT the app would have issued for a seeded session (the claims of `Claims`).
pub fn mint(
    key: &jsonwebtoken::EncodingKey,
    role: &str,
    user: u64,
    provider: &str,
    jti: &str,
    iat: i64,
    exp: i64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let (name, email) = profile(user);
    let claims = serde_json::json!({
        "sub": user.to_string(),
        "role": role,
        "provider": provider,
        "iat": iat,
        "exp": exp,
        "jti": jti,
        "name": name,
        "email": email,
        "avatar_url": format!("https://avatars.seed.example/{user}"),
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        key,
    )
}
