//! The database: a `rocket_db_pools` pool over sqlx 0.8's `Any` driver, and our migrations.

use std::str::FromStr;
use std::time::Duration;

use rocket::figment::Figment;
use rocket_db_pools::Database;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, Connection, Executor};

/// The `social_auth` database (`[default.databases.social_auth]` in `Rocket.toml`).
///
/// The fairing initialises it; an app may also use it for its own queries, e.g. with
/// `rocket_db_pools::Connection<AuthDb>`. It dereferences to a [`sqlx::AnyPool`]; queries
/// use `$1`-style placeholders, which SQLite and PostgreSQL both accept.
///
/// ```no_run
/// use rocket_db_pools::Connection;
/// use rocket_social_auth::AuthDb;
///
/// #[rocket::get("/users/count")]
/// async fn count(mut db: Connection<AuthDb>) -> Option<String> {
///     let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
///         .fetch_one(&mut **db)
///         .await
///         .ok()?;
///     Some(n.to_string())
/// }
/// ```
#[derive(Database, Debug)]
#[database("social_auth")]
pub struct AuthDb(SqlxPool);

/// A sqlx 0.8 `AnyPool` behind `rocket_db_pools`' [`Pool`](rocket_db_pools::Pool) trait.
///
/// rocket_db_pools' own `sqlx_*` features pin sqlx 0.7 (RUSTSEC-2024-0363); this is the same
/// pool over sqlx 0.8. It reads `url`, `min_connections`, `max_connections`,
/// `connect_timeout` (also the acquire timeout) and `idle_timeout`; it connects lazily.
#[derive(Debug, Clone)]
pub struct SqlxPool(sqlx::AnyPool);

impl std::ops::Deref for SqlxPool {
    type Target = sqlx::AnyPool;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

#[rocket::async_trait]
impl rocket_db_pools::Pool for SqlxPool {
    type Connection = sqlx::pool::PoolConnection<Any>;
    type Error = rocket_db_pools::Error<sqlx::Error>;

    async fn init(figment: &Figment) -> Result<Self, Self::Error> {
        sqlx::any::install_default_drivers();
        let config: rocket_db_pools::Config = figment.extract()?;
        let options =
            AnyConnectOptions::from_str(&config.url).map_err(rocket_db_pools::Error::Init)?;
        let pool = AnyPoolOptions::new()
            .max_connections(u32::try_from(config.max_connections).unwrap_or(u32::MAX))
            .min_connections(config.min_connections.unwrap_or(0))
            .acquire_timeout(Duration::from_secs(config.connect_timeout))
            .idle_timeout(config.idle_timeout.map(Duration::from_secs))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    if conn.backend_name() == "SQLite" {
                        // Readers do not block the writer; a writer waits for another. In WAL
                        // mode `synchronous = NORMAL` syncs at checkpoints, not at every commit
                        // (SQLite's recommended setting for WAL): never corrupts, but a power
                        // loss (not a crash of the app) may roll back the last commits. FULL
                        // made every login wait for an fsync, one at a time.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = 10000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        Ok(SqlxPool(pool))
    }

    async fn get(&self) -> Result<Self::Connection, Self::Error> {
        self.0.acquire().await.map_err(rocket_db_pools::Error::Get)
    }

    async fn close(&self) {
        self.0.close().await;
    }
}

/// Runs our migrations: `migrations/postgres` or `migrations/sqlite` by the backend.
///
/// Versions applied by the host app's own migrations in the same database are ignored.
pub(crate) async fn migrate(pool: &sqlx::AnyPool) -> Result<(), sqlx::migrate::MigrateError> {
    let backend = pool.acquire().await?.backend_name().to_owned();
    let mut migrator = match backend.as_str() {
        "PostgreSQL" => sqlx::migrate!("migrations/postgres"),
        _ => sqlx::migrate!("migrations/sqlite"),
    };
    migrator.set_ignore_missing(true);
    migrator.run(pool).await
}

/// Whether the database answers.
pub(crate) async fn ping(pool: &sqlx::AnyPool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    conn.ping().await
}
