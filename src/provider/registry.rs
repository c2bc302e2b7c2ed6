//! The provider kinds an app knows: each a builder from a `[social_auth.providers.<name>]`
//! table's typed settings to a [`Provider`]; the built-in ones, and those an app registers.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rocket::figment::value::{Dict, Value};
use serde::de::DeserializeOwned;

use super::context::ProviderContext;
use super::Provider;
use crate::config::ConfigError;

type Builder =
    dyn Fn(&Value, &ProviderContext<'_>) -> Result<Box<dyn Provider>, ConfigError> + Send + Sync;

/// One kind: its builder, and whether an app may configure more than one table of it.
#[derive(Clone)]
struct Kind {
    build: Arc<Builder>,
    single: bool,
}

/// The kinds, by name.
#[derive(Clone)]
pub(crate) struct ProviderKinds {
    kinds: BTreeMap<String, Kind>,
}

impl fmt::Debug for ProviderKinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.kinds.keys()).finish()
    }
}

impl Default for ProviderKinds {
    /// The built-in kinds. A new built-in provider is one file in `provider/` and one line
    /// here.
    fn default() -> Self {
        let mut kinds = ProviderKinds {
            kinds: BTreeMap::new(),
        };
        kinds.register("github", super::github::build);
        kinds.register("facebook", super::facebook::build);
        kinds.register("google", super::google::build);
        kinds.register("oidc", super::oidc::build);
        kinds.register("microsoft", super::microsoft::build);
        kinds.register("gitlab", super::gitlab::build);
        kinds.register("linkedin", super::linkedin::build);
        kinds.register("slack", super::slack::build);
        kinds.register("oauth2", super::configured::build);
        kinds.register("discord", super::discord::build);
        kinds.register("x", super::x::build);
        kinds.register("apple", super::apple::build);
        #[cfg(feature = "dev")]
        kinds.register_single("dev", crate::dev::build);
        kinds
    }
}

impl ProviderKinds {
    /// Registers (or replaces) the kind `name`: a table of it is deserialized into `S` (its
    /// keys but `kind` and `link_by_verified_email`) and built by `build`.
    pub(crate) fn register<S, P, F>(&mut self, name: &str, build: F)
    where
        S: DeserializeOwned,
        P: Provider,
        F: Fn(S, &ProviderContext<'_>) -> Result<P, ConfigError> + Send + Sync + 'static,
    {
        self.insert(name, build, false);
    }

    /// Registers a kind of which at most one table may be configured.
    #[cfg_attr(not(feature = "dev"), allow(dead_code))]
    fn register_single<S, P, F>(&mut self, name: &str, build: F)
    where
        S: DeserializeOwned,
        P: Provider,
        F: Fn(S, &ProviderContext<'_>) -> Result<P, ConfigError> + Send + Sync + 'static,
    {
        self.insert(name, build, true);
    }

    fn insert<S, P, F>(&mut self, name: &str, build: F, single: bool)
    where
        S: DeserializeOwned,
        P: Provider,
        F: Fn(S, &ProviderContext<'_>) -> Result<P, ConfigError> + Send + Sync + 'static,
    {
        let kind = name.to_owned();
        let build = move |table: &Value, ctx: &ProviderContext<'_>| {
            let settings: S = table
                .deserialize()
                .map_err(|e| settings_error(&kind, ctx, e))?;
            Ok(Box::new(build(settings, ctx)?) as Box<dyn Provider>)
        };
        self.kinds.insert(
            name.to_owned(),
            Kind {
                build: Arc::new(build),
                single,
            },
        );
    }

    /// The kind of table `name`: what it says, else its name when a kind has it.
    pub(crate) fn kind_of<'k>(
        &self,
        name: &'k str,
        said: Option<&'k str>,
    ) -> Result<&'k str, ConfigError> {
        let key = |k: &str| format!("social_auth.providers.{name}{k}");
        if !cfg!(feature = "dev")
            && said.unwrap_or(name) == "dev"
            && !self.kinds.contains_key("dev")
        {
            return Err(ConfigError::new(
                key(""),
                "is the development provider, but rocket_social_auth was built without its `dev` feature: enable it (`features = [\"dev\"]`) for local development, or remove this table",
            ));
        }
        match said {
            Some(kind) if self.kinds.contains_key(kind) => Ok(kind),
            Some(kind) => Err(ConfigError::new(
                key(".kind"),
                format!(
                    "is `{kind}`, which is not a provider kind this app knows: one of {}",
                    self.names()
                ),
            )),
            None if self.kinds.contains_key(name) => Ok(name),
            None => Err(ConfigError::new(
                key(".kind"),
                format!(
                    "is required for a provider not named after its kind (one of {}); use kind = \"oidc\" for any OpenID Connect provider",
                    self.names()
                ),
            )),
        }
    }

    /// Whether at most one table of `kind` may be configured.
    pub(crate) fn is_single(&self, kind: &str) -> bool {
        self.kinds.get(kind).is_some_and(|k| k.single)
    }

    /// Builds the provider of a table of `kind` (a name [`kind_of`](Self::kind_of) gave).
    pub(crate) fn build(
        &self,
        kind: &str,
        settings: &Dict,
        ctx: &ProviderContext<'_>,
    ) -> Result<Box<dyn Provider>, ConfigError> {
        let Some(entry) = self.kinds.get(kind) else {
            return Err(ConfigError::new(ctx.key("kind"), "is not a known kind"));
        };
        (entry.build)(&Value::from(settings.clone()), ctx)
    }

    fn names(&self) -> String {
        self.kinds
            .keys()
            .map(|k| format!("\"{k}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A table that does not deserialize into its kind's settings, as the first error with its
/// full key.
fn settings_error(kind: &str, ctx: &ProviderContext<'_>, e: rocket::figment::Error) -> ConfigError {
    let Some(e) = e.into_iter().next() else {
        return ConfigError::new(ctx.key(""), "is not valid");
    };
    let path = e.path.join(".");
    // The path may or may not end with the field already.
    let field = |f: &str| {
        if path.is_empty() {
            ctx.key(f)
        } else if path == f || path.ends_with(&format!(".{f}")) {
            ctx.key(&path)
        } else {
            ctx.key(&format!("{path}.{f}"))
        }
    };
    use rocket::figment::error::Kind as E;
    match &e.kind {
        E::UnknownField(f, expected) => ConfigError::new(
            field(f),
            format!(
                "is not a key of a `{kind}` provider (its keys: kind, link_by_verified_email, {})",
                expected.join(", ")
            ),
        ),
        E::MissingField(f) => ConfigError::new(field(f), "is required"),
        other if path.is_empty() => {
            ConfigError::new(ctx.key("").trim_end_matches('.'), other.to_string())
        }
        other => ConfigError::new(ctx.key(&path), other.to_string()),
    }
}
