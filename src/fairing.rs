//! [`SocialAuthFairing`]: reads `[social_auth]`, builds the providers through their kinds, opens
//! the database, runs the migrations and mounts the routes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::figment::Figment;
use rocket::{Build, Orbit, Rocket};
use rocket_db_pools::Database;

use crate::config::{Config, ConfigError};
use crate::db::{self, AuthDb};
use crate::error::{Error, ErrorKind};
use crate::jwt::{install_crypto, JwtCodec};
use crate::policy::{AllowAll, Policy};
use crate::provider::{Attachment, HttpClient, Provider, ProviderContext, ProviderKinds};
use crate::routes::routes;
use crate::service::{AuthService, ProviderEntry};
use crate::store::{LoginOptions, Store};
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
    kinds: ProviderKinds,
}

impl std::fmt::Debug for SocialAuthFairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocialAuthFairing")
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

impl Default for SocialAuthFairing {
    fn default() -> Self {
        SocialAuthFairing {
            policy: Arc::new(AllowAll),
            kinds: ProviderKinds::default(),
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

    /// Registers the provider kind `kind`: a `[social_auth.providers.<name>]` table that says
    /// `kind = "<kind>"` (or is named `<kind>`) is deserialized into `S` — every key but
    /// `kind` and `link_by_verified_email`; put `#[serde(deny_unknown_fields)]` on it so that
    /// a mistyped key fails the launch — and `build` makes its provider. An error of either
    /// fails the launch, naming the key. Registering a kind again, built-in or not, replaces it.
    ///
    /// ```no_run
    /// use rocket::async_trait;
    /// use rocket_social_auth::provider::{
    ///     FlowParams, OAuth2Client, OAuth2Settings, Profile, Provider, ProviderContext,
    ///     ProviderError, TokenSet,
    /// };
    /// use rocket_social_auth::{ConfigError, Secret, SocialAuthFairing};
    ///
    /// /// `[default.social_auth.providers.acme]`, with `client_id` and `client_secret`.
    /// #[derive(serde::Deserialize)]
    /// #[serde(deny_unknown_fields)]
    /// struct AcmeSettings {
    ///     client_id: String,
    ///     client_secret: Secret,
    /// }
    ///
    /// struct Acme(OAuth2Client);
    ///
    /// #[async_trait]
    /// impl Provider for Acme {
    ///     async fn authorize_url(&self, flow: &FlowParams<'_>)
    ///         -> Result<url::Url, ProviderError> {
    ///         Ok(self.0.authorize_url(flow, &[]))
    ///     }
    ///     async fn exchange_code(&self, code: &str, flow: &FlowParams<'_>)
    ///         -> Result<TokenSet, ProviderError> {
    ///         self.0.exchange_code(code, flow).await
    ///     }
    ///     async fn profile(&self, tokens: &TokenSet, _: &FlowParams<'_>)
    ///         -> Result<Profile, ProviderError> {
    ///         let http = self.0.http();
    ///         let me: serde_json::Value = http
    ///             .send(http.get("https://api.acme.example/me")
    ///                 .bearer_auth(tokens.access_token.expose()))
    ///             .await?
    ///             .json("Acme GET /me")?;
    ///         let id = me["id"].as_str().ok_or_else(|| ProviderError::bad_response("no id"))?;
    ///         Ok(Profile::new(id, me.clone()))
    ///     }
    /// }
    ///
    /// fn acme(settings: AcmeSettings, ctx: &ProviderContext) -> Result<Acme, ConfigError> {
    ///     let oauth = OAuth2Settings::new(
    ///         settings.client_id,
    ///         settings.client_secret,
    ///         ctx.url("authorize_url", "https://acme.example/oauth/authorize")?,
    ///         ctx.url("token_url", "https://acme.example/oauth/token")?,
    ///         ctx.callback_url().clone(),
    ///     );
    ///     Ok(Acme(OAuth2Client::new(oauth, ctx.http().clone())))
    /// }
    ///
    /// let fairing = SocialAuthFairing::new().provider_kind("acme", acme);
    /// ```
    pub fn provider_kind<S, P, F>(mut self, kind: &str, build: F) -> Self
    where
        S: serde::de::DeserializeOwned,
        P: Provider,
        F: Fn(S, &ProviderContext<'_>) -> Result<P, ConfigError> + Send + Sync + 'static,
    {
        self.kinds.register(kind, build);
        self
    }

    /// Checks the `[social_auth]` configuration of `figment` as the launch would, without a
    /// database or a network call: every key, the JWT keys, the token keys, and every
    /// provider's table through its kind (those registered on this fairing too). The error,
    /// of kind [`ErrorKind::Config`], names the key.
    ///
    /// ```
    /// use rocket::figment::{Figment, providers::{Format, Toml}};
    /// use rocket_social_auth::{ErrorKind, SocialAuthFairing};
    ///
    /// let figment = Figment::from(Toml::string(r#"
    ///     [social_auth.jwt]
    ///     secret = "0123456789abcdef0123456789abcdef"
    ///     role = "web_user"
    ///     [social_auth.providers.github]
    ///     client_id = "Iv1.0123456789abcdef"
    ///     client_secret = "…"
    ///     scope = ["read:user"]
    /// "#));
    /// let error = SocialAuthFairing::new().check_config(&figment).unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::Config);
    /// assert!(error.to_string().contains("`social_auth.providers.github.scope`"));
    /// ```
    pub fn check_config(&self, figment: &Figment) -> Result<(), Error> {
        install_crypto();
        self.prepare(figment).map(|_| ())
    }

    /// Everything the launch needs that the configuration alone gives.
    fn prepare(&self, figment: &Figment) -> Result<Prepared, Error> {
        let invalid = |e: ConfigError| {
            Error::caused_by(ErrorKind::Config, format!("invalid configuration: {e}"), e)
        };
        let config = read_config(figment).map_err(|e| Error::new(ErrorKind::Config, e))?;
        let jwt = JwtCodec::new(&config.jwt).map_err(invalid)?;
        let vault = vault(&config).map_err(invalid)?;
        let http = HttpClient::new(Duration::from_secs(config.http_timeout_secs)).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("the HTTP client could not be built: {e}"),
            )
        })?;
        let (providers, attachments) = self
            .build_providers(&config, figment.profile(), &http)
            .map_err(invalid)?;
        config
            .check_token_keys(figment.profile())
            .map_err(invalid)?;
        Ok(Prepared {
            config,
            jwt,
            vault,
            providers,
            attachments,
        })
    }

    /// Builds every configured provider (before any database work, so that a wrong table
    /// fails the launch at once), with what they add to the app.
    fn build_providers(
        &self,
        config: &Config,
        profile: &rocket::figment::Profile,
        http: &HttpClient,
    ) -> Result<(BTreeMap<String, ProviderEntry>, Vec<Attachment>), ConfigError> {
        let mut built = Vec::new();
        let mut attachments = Vec::new();
        let mut single: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, table) in &config.providers {
            let kind = self.kinds.kind_of(name, table.kind.as_deref())?;
            if self.kinds.is_single(kind) {
                if let Some(first) = single.insert(kind, name) {
                    return Err(ConfigError::new(
                        format!("social_auth.providers.{name}"),
                        format!("is a second `{kind}` provider (`{first}` is one already): configure one at most"),
                    ));
                }
            }
            let ctx = ProviderContext::new(name, config, profile, http.clone())?;
            let client = self.kinds.build(kind, &table.settings, &ctx)?;
            attachments.extend(ctx.into_attachments());
            built.push((name.clone(), table.link_by_verified_email, client));
        }
        // Whose `email_verified` may link accounts: the providers trusted for it that vouch.
        let trusted_vouchers: Arc<[String]> = built
            .iter()
            .filter(|(_, trusted, client)| *trusted && client.vouches_for_email())
            .map(|(name, _, _)| name.clone())
            .collect();
        let providers = built
            .into_iter()
            .map(|(name, link_by_verified_email, client)| {
                let options = LoginOptions {
                    link_by_verified_email,
                    vouches: client.vouches_for_email(),
                    trusted_vouchers: trusted_vouchers.clone(),
                };
                (name, ProviderEntry { client, options })
            })
            .collect();
        Ok((providers, attachments))
    }
}

/// What the launch needs that the configuration alone gives.
struct Prepared {
    config: Config,
    jwt: JwtCodec,
    vault: TokenVault,
    providers: BTreeMap<String, ProviderEntry>,
    attachments: Vec<Attachment>,
}

/// Reads and checks `[social_auth]`; the error names the key.
pub(crate) fn read_config(figment: &Figment) -> Result<Config, String> {
    let config: Config = figment.extract_inner("social_auth").map_err(|e| {
        let message = e
            .clone()
            .into_iter()
            .map(|e| {
                // The path is relative to `social_auth`, or starts with it; through a provider
                // table's flattened keys, figment puts it last.
                let parts: Vec<&str> = e
                    .path
                    .iter()
                    .map(String::as_str)
                    .filter(|p| *p != "social_auth")
                    .collect();
                let key = match parts.as_slice() {
                    [] => "social_auth".to_owned(),
                    parts => format!("social_auth.{}", parts.join(".")),
                };
                format!("`{key}`: {}", e.kind)
            })
            .collect::<Vec<_>>()
            .join("; ");
        rocket::config::pretty_print_error(e);
        format!("invalid configuration: {message}")
    })?;
    config
        .validate(figment.profile())
        .map_err(|e| format!("invalid configuration: {e}"))?;
    Ok(config)
}

/// The token vault of a configuration; an empty `token_keys` gives a per-process key (debug).
pub(crate) fn vault(config: &Config) -> Result<TokenVault, ConfigError> {
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
        let Prepared {
            config,
            jwt,
            vault,
            providers,
            attachments,
        } = match self.prepare(rocket.figment()) {
            Ok(prepared) => prepared,
            Err(e) => {
                log::error!("social_auth: {e}");
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
        for (name, entry) in &providers {
            match entry.client.warm_up().await {
                Ok(()) => {}
                // What it publishes can never work with its table: fail, naming the key.
                Err(crate::provider::ProviderError::Misconfigured(e)) => {
                    log::error!("social_auth: provider `{name}`: {e}");
                    return Err(rocket);
                }
                Err(e) => log::error!("social_auth: provider `{name}` is unavailable for now: {e}"),
            }
        }
        let rocket = attachments
            .into_iter()
            .fold(rocket, |rocket, attach| attach(rocket));
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
