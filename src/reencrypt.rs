//! [`reencrypt`]: key rotation of the stored provider tokens, run beside the app (`cargo run --
//! reencrypt` in the demo).

use std::sync::Arc;

use rocket::figment::Figment;

use crate::db;
use crate::error::{Error, ErrorKind};
use crate::fairing::{read_config, vault};
use crate::jwt::install_crypto;
use crate::store::{ReencryptReport, Store, StoreError};

/// Re-encrypts every stored provider token under the first of `token_keys` (and seals tokens
/// stored in plain text), for key rotation: `cargo run -- reencrypt` in the demo.
///
/// It reads the same configuration as the fairing (`figment` is usually
/// `rocket::Config::figment()`), works in batches with compare-and-set updates, so it is safe
/// while the app serves and can be stopped and run again at any time.
///
/// ```no_run
/// # async fn rotate() -> Result<(), rocket_social_auth::Error> {
/// let report = rocket_social_auth::reencrypt(&rocket::Config::figment()).await?;
/// println!("{} tokens rewritten", report.rewritten);
/// # Ok(()) }
/// ```
pub async fn reencrypt(figment: &Figment) -> Result<ReencryptReport, Error> {
    install_crypto();
    let config = read_config(figment).map_err(|e| Error::new(ErrorKind::Config, e))?;
    let vault = vault(&config).map_err(|e| {
        Error::caused_by(ErrorKind::Config, format!("invalid configuration: {e}"), e)
    })?;
    if config.token_keys.is_empty() {
        return Err(Error::new(
            ErrorKind::Config,
            "`social_auth.token_keys` is empty: there is no key to encrypt with",
        ));
    }
    let db_figment = figment
        .focus("databases.social_auth")
        .join(("connect_timeout", 5))
        .join(("max_connections", 2));
    let pool = <crate::db::SqlxPool as rocket_db_pools::Pool>::init(&db_figment)
        .await
        .map_err(|e| match e {
            // A configuration the pool cannot read is the configuration's fault…
            rocket_db_pools::Error::Config(e) => Error::caused_by(
                ErrorKind::Config,
                format!("`databases.social_auth`: {e}"),
                e,
            ),
            // …a database that does not answer is the database's.
            rocket_db_pools::Error::Init(e) | rocket_db_pools::Error::Get(e) => Error::caused_by(
                ErrorKind::DatabaseUnavailable,
                "the database `databases.social_auth` cannot be reached",
                e,
            ),
        })?;
    if config.migrate {
        db::migrate(&pool).await.map_err(|e| match e {
            // The pool connects lazily: this is where an unreachable database shows.
            sqlx::migrate::MigrateError::Execute(e) => match StoreError::from(e) {
                StoreError::Unavailable(e) => Error::caused_by(
                    ErrorKind::DatabaseUnavailable,
                    "the database `databases.social_auth` cannot be reached",
                    e,
                ),
                other => Error::caused_by(ErrorKind::Database, "the migrations failed", other),
            },
            e => Error::caused_by(ErrorKind::Database, "the migrations failed", e),
        })?;
    }
    let store = Store::new(sqlx::AnyPool::clone(&pool), Arc::new(vault));
    let mut report = ReencryptReport::default();
    let mut after = 0;
    while let Some(last) = store.reencrypt_batch(after, 200, &mut report).await? {
        after = last;
    }
    Ok(report)
}
