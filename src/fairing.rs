//! [`SocialAuthFairing`]: reads `[social_auth]`, opens the database, runs the migrations,
//! builds the providers and mounts the routes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::figment::Figment;
use rocket::{Build, Orbit, Rocket};
use rocket_db_pools::Database;

use crate::config::{Config, ConfigError, ProviderKind, ResolvedProvider};
use crate::db::{self, AuthDb};
use crate::error::{Error, ErrorKind};
use crate::jwt::{install_crypto, JwtCodec};
use crate::policy::{AllowAll, Policy};
use crate::provider::facebook::Facebook;
use crate::provider::github::Github;
use crate::provider::http_client::HttpClient;
use crate::provider::oidc::Oidc;
use crate::provider::Provider;
use crate::routes::routes;
use crate::service::{AuthService, ProviderEntry};
use crate::store::{LoginOptions, ReencryptReport, Store, StoreError};
use crate::vault::TokenVault;

/// The fairing that gives a Rocket app social login.
///
/// At ignite it reads `[social_auth]` and `[databases.social_auth]` from the app's figment,
/// initialises [`AuthDb`] (unless the app attached it already), runs the migrations (unless
/// `migrate = false`), and mounts the routes under `base`. A configuration error names the key
/// in the log and fails the launch; it never panics.
///
/// ```no_run
/// use rocket_social_auth::{SocialAuth, SocialAuthFairing};
///
/// #[rocket::get("/")]
/// fn index(auth: SocialAuth) -> String {
///     format!("{:?}", auth.provider())
/// }
///
/// #[rocket::main]
/// async fn main() {
///     let rocket = rocket::build()
///         .attach(SocialAuthFairing::new())
///         .mount("/", rocket::routes![index]);
///     if let Err(e) = rocket.launch().await {
///         eprintln!("launch failed: {e}");
///         std::process::exit(1);
///     }
/// }
/// ```
#[derive(Clone)]
pub struct SocialAuthFairing {
    policy: Arc<dyn Policy>,
}

impl std::fmt::Debug for SocialAuthFairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocialAuthFairing").finish_non_exhaustive()
    }
}

impl Default for SocialAuthFairing {
    fn default() -> Self {
        SocialAuthFairing {
            policy: Arc::new(AllowAll),
        }
    }
}

impl SocialAuthFairing {
    /// The fairing with the configuration of `Rocket.toml`.
    pub fn new() -> Self {
        SocialAuthFairing::default()
    }

    /// The app's [`Policy`]: allow or deny sign-ins, add claims, act on new users.
    ///
    /// ```no_run
    /// use rocket_social_auth::{Policy, SocialAuthFairing};
    ///
    /// struct OnlyStaff;
    /// impl Policy for OnlyStaff {}
    ///
    /// let fairing = SocialAuthFairing::new().policy(OnlyStaff);
    /// ```
    pub fn policy(mut self, policy: impl Policy) -> Self {
        self.policy = Arc::new(policy);
        self
    }
}

/// Reads and checks `[social_auth]`; the error names the key.
fn read_config(figment: &Figment) -> Result<(Config, Vec<ResolvedProvider>), String> {
    let config: Config = figment.extract_inner("social_auth").map_err(|e| {
        let message = e
            .clone()
            .into_iter()
            .map(|e| {
                let key = e.path.join(".");
                let key = if key.starts_with("social_auth") || key.is_empty() {
                    key
                } else {
                    format!("social_auth.{key}")
                };
                format!("`{key}`: {}", e.kind)
            })
            .collect::<Vec<_>>()
            .join("; ");
        rocket::config::pretty_print_error(e);
        format!("invalid configuration: {message}")
    })?;
    let resolved = config
        .validate(figment.profile())
        .map_err(|e| format!("invalid configuration: {e}"))?;
    Ok((config, resolved))
}

/// The token vault of a configuration; an empty `token_keys` gives a per-process key (debug).
fn vault(config: &Config) -> Result<TokenVault, ConfigError> {
    match TokenVault::from_config(&config.token_keys)? {
        Some(vault) => Ok(vault),
        None => {
            if !config.providers.is_empty() {
                log::warn!("social_auth: no token_keys configured: provider tokens are encrypted under a random key of this process and will not decrypt after a restart (development only)");
            }
            Ok(TokenVault::ephemeral())
        }
    }
}

#[rocket::async_trait]
impl Fairing for SocialAuthFairing {
    fn info(&self) -> Info {
        Info {
            name: "Social Auth",
            // Not `Shutdown`: closing the pool when shutdown is requested would fail the
            // requests still in flight during the grace period. The pool closes when the
            // instance `launch()` returns is dropped (or closed, as the demo does).
            kind: Kind::Ignite | Kind::Liftoff,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        install_crypto();
        let (config, resolved) = match read_config(rocket.figment()) {
            Ok(read) => read,
            Err(e) => {
                log::error!("social_auth: {e}");
                return Err(rocket);
            }
        };
        let (jwt, vault) = match (JwtCodec::new(&config.jwt), vault(&config)) {
            (Ok(jwt), Ok(vault)) => (jwt, vault),
            (Err(e), _) | (_, Err(e)) => {
                log::error!("social_auth: invalid configuration: {e}");
                return Err(rocket);
            }
        };
        let rocket = match rocket.state::<AuthDb>() {
            Some(_) => rocket,
            None => AuthDb::init().on_ignite(rocket).await?,
        };
        let Some(pool) = AuthDb::fetch(&rocket).map(|db| sqlx::AnyPool::clone(db)) else {
            return Err(rocket);
        };
        if config.migrate {
            if let Err(e) = db::migrate(&pool).await {
                log::error!("social_auth: the migrations failed: {e}");
                return Err(rocket);
            }
        }
        let http = match HttpClient::new(Duration::from_secs(config.http_timeout_secs)) {
            Ok(http) => http,
            Err(e) => {
                log::error!("social_auth: the HTTP client could not be built: {e}");
                return Err(rocket);
            }
        };
        // Only the development provider mounts routes of its own.
        #[cfg_attr(not(feature = "dev"), allow(unused_mut))]
        let mut rocket = rocket;
        let mut providers: BTreeMap<String, ProviderEntry> = BTreeMap::new();
        // Whose `email_verified` may link accounts: the providers trusted for it that vouch.
        let trusted_vouchers: Arc<[String]> = resolved
            .iter()
            .filter(|p| p.link_by_verified_email && p.kind != ProviderKind::Dev)
            .map(|p| p.name.clone())
            .collect();
        for provider in resolved {
            let name = provider.name.clone();
            let callback = config.callback_url(&name);
            let options = LoginOptions {
                link_by_verified_email: provider.link_by_verified_email,
                vouches: provider.kind != ProviderKind::Dev,
                trusted_vouchers: trusted_vouchers.clone(),
            };
            let client: Box<dyn Provider> = match provider.kind {
                ProviderKind::Github => Box::new(Github::new(&provider, &callback, http.clone())),
                ProviderKind::Facebook => {
                    Box::new(Facebook::new(&provider, &callback, http.clone()))
                }
                ProviderKind::Google | ProviderKind::Oidc => {
                    let oidc = Oidc::new(&provider, &callback, http.clone());
                    // Fetched now and cached; a provider that is down must not take the app
                    // down: its routes answer 503 and discovery is retried on the next use.
                    if let Err(e) = oidc.discover().await {
                        log::error!("social_auth: provider `{name}` is unavailable for now: {e}");
                    }
                    Box::new(oidc)
                }
                #[cfg(feature = "dev")]
                ProviderKind::Dev => {
                    let (mounted, dev) = crate::dev::mount(rocket, &config, provider);
                    rocket = mounted;
                    log::warn!(
                        "social_auth: the development provider `{}` signs in anyone: never enable it in production",
                        dev.name
                    );
                    Box::new(Github::new(&dev, &callback, http.clone()))
                }
                // Refused by the configuration check already; never a panic.
                #[cfg(not(feature = "dev"))]
                ProviderKind::Dev => {
                    log::error!("social_auth: invalid configuration: `social_auth.providers.{name}` is the development provider, but rocket_social_auth was built without its `dev` feature");
                    return Err(rocket);
                }
            };
            providers.insert(name, ProviderEntry { client, options });
        }
        let base = if config.base_path().is_empty() {
            "/".to_owned()
        } else {
            config.base_path().to_owned()
        };
        let list = routes(config.expose_refresh_token);
        let store = Store::new(pool, Arc::new(vault));
        let service = AuthService::new(config, jwt, store, providers, self.policy.clone());
        Ok(rocket.manage(service).mount(base, list))
    }

    async fn on_liftoff(&self, rocket: &Rocket<Orbit>) {
        if let Some(service) = rocket.state::<AuthService>() {
            let mut upkeep = service.upkeep();
            // The first load before the first request, then in the background.
            upkeep.reload().await;
            rocket::tokio::spawn(upkeep.run(rocket.shutdown()));
        }
    }
}

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
    let (config, _) = read_config(figment).map_err(|e| Error::new(ErrorKind::Config, e))?;
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
