//! [`SocialAuthFairing`]: reads `[social_auth]`, opens the database, runs the migrations,
//! builds the providers and mounts the routes.

use std::collections::BTreeMap;
use std::time::Duration;

use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::{Build, Rocket};
use rocket_db_pools::Database;

use crate::config::{Config, ProviderKind, ResolvedProvider};
use crate::db::{self, AuthDb};
use crate::http::HttpClient;
use crate::jwt::{install_crypto, random_token};
use crate::provider::facebook::Facebook;
use crate::provider::github::Github;
use crate::provider::Provider;
use crate::routes::routes;
use crate::service::AuthService;
use crate::store::Store;
use crate::testing::FakeGithub;

/// Where the development provider is mounted, under `base`.
pub(crate) const DEV_MOUNT: &str = "/_dev";

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
#[derive(Debug, Default, Clone)]
pub struct SocialAuthFairing {
    _private: (),
}

impl SocialAuthFairing {
    /// The fairing with the configuration of `Rocket.toml`.
    pub fn new() -> Self {
        SocialAuthFairing::default()
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
            kind: Kind::Ignite,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        install_crypto();
        let config: Config = match rocket.figment().extract_inner("social_auth") {
            Ok(config) => config,
            Err(e) => {
                log::error!("social_auth: invalid configuration");
                rocket::config::pretty_print_error(e);
                return Err(rocket);
            }
        };
        let resolved = match config.validate(rocket.figment().profile()) {
            Ok(resolved) => resolved,
            Err(e) => {
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
        let mut rocket = rocket;
        let mut providers: BTreeMap<String, Box<dyn Provider>> = BTreeMap::new();
        for provider in resolved {
            let name = provider.name.clone();
            let callback = config.callback_url(&name);
            let client: Box<dyn Provider> = match provider.kind {
                ProviderKind::Github => Box::new(Github::new(&provider, &callback, http.clone())),
                ProviderKind::Facebook => {
                    Box::new(Facebook::new(&provider, &callback, http.clone()))
                }
                ProviderKind::Dev => {
                    let (fake, dev) = dev_provider(&config, provider);
                    rocket = rocket.manage(fake).mount(
                        format!("{}{DEV_MOUNT}", config.base_path()),
                        FakeGithub::routes(),
                    );
                    log::warn!(
                        "social_auth: the development provider `{}` signs in anyone: never enable it in production",
                        dev.name
                    );
                    Box::new(Github::new(&dev, &callback, http.clone()))
                }
            };
            providers.insert(name, client);
        }
        let base = if config.base_path().is_empty() {
            "/".to_owned()
        } else {
            config.base_path().to_owned()
        };
        let list = routes(config.expose_refresh_token);
        let service = AuthService::new(config, Store::new(pool), providers);
        Ok(rocket.manage(service).mount(base, list))
    }
}

/// The development provider: the fake GitHub mounted in the app itself, and the provider
/// configuration that points at it.
fn dev_provider(config: &Config, mut provider: ResolvedProvider) -> (FakeGithub, ResolvedProvider) {
    let secret = random_token(32);
    let root = format!(
        "{}{}{DEV_MOUNT}",
        config.public_origin(),
        config.base_path()
    );
    let fake = FakeGithub::interactive(&provider.client_id, &secret);
    provider.client_secret = secret.into();
    let parse = |path: &str| url::Url::parse(&format!("{root}{path}"));
    if let (Ok(a), Ok(t), Ok(api)) = (
        parse("/login/oauth/authorize"),
        parse("/login/oauth/access_token"),
        parse(""),
    ) {
        provider.authorize_url = a;
        provider.token_url = t;
        provider.api_url = api;
    }
    (fake, provider)
}
