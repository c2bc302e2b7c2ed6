//! [`ProviderContext`]: what building a provider from its table may use besides its settings
//! (its name and keys, the callback URL, the HTTP client, the profile), and the checks every
//! provider's settings share.

use std::cell::RefCell;
use std::fmt;

use rocket::figment::Profile;
use rocket::{Build, Rocket};
use url::Url;

use super::http_client::HttpClient;
use crate::config::{is_loopback, provider_url, Config, ConfigError};
use crate::secret::Secret;

/// Something a provider adds to the app at ignite (the development provider mounts its pages).
pub(crate) type Attachment = Box<dyn FnOnce(Rocket<Build>) -> Rocket<Build> + Send>;

/// What the builder of a provider kind gets besides its settings: the provider's name and
/// keys, its callback URL, the HTTP client every provider call goes through, and Rocket's
/// profile. Its checks return [`ConfigError`]s that name the key, so that a wrong table fails
/// the launch saying what to fix.
///
/// ```
/// use rocket_social_auth::provider::ProviderContext;
/// use rocket_social_auth::ConfigError;
///
/// fn check(ctx: &ProviderContext, client_id: Option<String>) -> Result<String, ConfigError> {
///     // `social_auth.providers.<name>.client_id is required` when it is missing or blank.
///     ctx.required("client_id", client_id)
/// }
/// ```
pub struct ProviderContext<'a> {
    name: &'a str,
    config: &'a Config,
    profile: &'a Profile,
    callback: Url,
    http: HttpClient,
    attachments: RefCell<Vec<Attachment>>,
}

impl fmt::Debug for ProviderContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderContext")
            .field("name", &self.name)
            .field("callback", &self.callback.as_str())
            .finish_non_exhaustive()
    }
}

impl<'a> ProviderContext<'a> {
    pub(crate) fn new(
        name: &'a str,
        config: &'a Config,
        profile: &'a Profile,
        http: HttpClient,
    ) -> Result<Self, ConfigError> {
        let callback = Url::parse(&config.callback_url(name)).map_err(|e| {
            ConfigError::new(
                format!("social_auth.providers.{name}"),
                format!("gives no valid callback URL: {e}"),
            )
        })?;
        Ok(ProviderContext {
            name,
            config,
            profile,
            callback,
            http: http.labelled(name),
            attachments: RefCell::new(Vec::new()),
        })
    }

    /// The provider's name: its table's, and the `<provider>` of its routes.
    pub fn name(&self) -> &str {
        self.name
    }

    /// The full name of a key of the provider's table, for a [`ConfigError`]:
    /// `social_auth.providers.<name>.<field>`.
    pub fn key(&self, field: &str) -> String {
        format!("social_auth.providers.{}.{field}", self.name)
    }

    /// The callback URL to register with the provider and send as `redirect_uri`:
    /// `{public_url}{base}/<name>/callback`.
    pub fn callback_url(&self) -> &Url {
        &self.callback
    }

    /// The HTTP client for every call to the provider.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Rocket's profile (`debug`, `release`, …).
    pub fn profile(&self) -> &Profile {
        self.profile
    }

    /// The app's `public_url`.
    pub fn public_url(&self) -> &str {
        self.config.public_origin()
    }

    /// Parses the provider URL `value` of key `field`: `https`, or plain `http` only on
    /// loopback (a local test provider), so that codes, tokens and secrets never cross the
    /// network in the clear.
    ///
    /// ```
    /// # use rocket_social_auth::provider::ProviderContext;
    /// # fn f(ctx: &ProviderContext) {
    /// assert!(ctx.url("token_url", "https://acme.example/token").is_ok());
    /// assert!(ctx.url("token_url", "http://127.0.0.1:8080/token").is_ok());
    /// let error = ctx.url("token_url", "http://acme.example/token").unwrap_err();
    /// assert!(error.key().ends_with(".token_url"));
    /// # }
    /// ```
    pub fn url(&self, field: &str, value: &str) -> Result<Url, ConfigError> {
        provider_url(&self.key(field), value)
    }

    /// [`url`](Self::url) of `value`, or of `default` when the key is absent.
    pub fn url_or(
        &self,
        field: &str,
        value: Option<&str>,
        default: &str,
    ) -> Result<Url, ConfigError> {
        self.url(field, value.unwrap_or(default))
    }

    /// A required text: an error naming the key when it is absent or blank.
    pub fn required(&self, field: &str, value: Option<String>) -> Result<String, ConfigError> {
        match value {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
            _ => Err(ConfigError::new(self.key(field), "is required")),
        }
    }

    /// A required secret: an error naming the key when it is absent or empty.
    pub fn required_secret(
        &self,
        field: &str,
        value: Option<Secret>,
    ) -> Result<Secret, ConfigError> {
        match value {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(ConfigError::new(self.key(field), "is required")),
        }
    }

    /// The configuration of the whole `[social_auth]` table.
    #[cfg_attr(not(feature = "dev"), allow(dead_code))]
    pub(crate) fn config(&self) -> &Config {
        self.config
    }

    /// Whether `public_url` is a loopback address.
    #[cfg_attr(not(feature = "dev"), allow(dead_code))]
    pub(crate) fn public_url_is_loopback(&self) -> bool {
        Url::parse(&self.config.public_url).is_ok_and(|u| is_loopback(&u))
    }

    /// Adds to the app at ignite, e.g. the development provider's pages.
    #[cfg_attr(not(feature = "dev"), allow(dead_code))]
    pub(crate) fn attach(&self, attachment: Attachment) {
        self.attachments.borrow_mut().push(attachment);
    }

    pub(crate) fn into_attachments(self) -> Vec<Attachment> {
        self.attachments.into_inner()
    }
}

/// A context for provider `name` of `toml` (a `[social_auth]` table), for unit tests.
#[cfg(test)]
pub(crate) fn with_context<R>(
    name: &str,
    toml: &str,
    f: impl FnOnce(&ProviderContext<'_>) -> R,
) -> R {
    use rocket::figment::providers::{Format, Toml};
    let config: Config = rocket::figment::Figment::from(Toml::string(toml))
        .extract_inner("social_auth")
        .expect("config parses");
    crate::jwt::install_crypto();
    let profile = Profile::new("debug");
    let http = HttpClient::new(std::time::Duration::from_secs(1)).expect("client");
    let ctx = ProviderContext::new(name, &config, &profile, http).expect("context");
    f(&ctx)
}
