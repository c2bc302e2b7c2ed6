//! The development provider (feature `dev`, `kind = "dev"`): the fake GitHub of the `testing`
//! module in its interactive mode (a page that signs in any login name), mounted in the app
//! itself under `{base}/_dev`, and the GitHub provider that points at it. Allowed only in the
//! debug profile with a loopback `public_url`; its emails never link accounts.

use serde::Deserialize;
use url::Url;

use crate::clock::random_token;
use crate::config::{ConfigError, DEVELOPMENT_PROFILE};
use crate::provider::github::{Endpoints, Github};
use crate::provider::ProviderContext;
use crate::testing::FakeGithub;

/// Where the development provider is mounted, under `base`.
const DEV_MOUNT: &str = "/_dev";

/// A `kind = "dev"` table: nothing is required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DevSettings {
    /// The client id the fake expects. Default `"dev"`.
    client_id: Option<String>,
    /// The scopes asked for. Default GitHub's.
    scopes: Option<Vec<String>>,
}

/// The kind `dev`: mounts the fake GitHub (with a client secret of this process) in the app,
/// and returns the GitHub provider that points at it.
pub(crate) fn build(
    settings: DevSettings,
    ctx: &ProviderContext<'_>,
) -> Result<Github, ConfigError> {
    let key = ctx.key("");
    let key = key.trim_end_matches('.');
    if ctx.profile().as_str() != DEVELOPMENT_PROFILE {
        return Err(ConfigError::new(
            key,
            format!(
                "is the development provider, which signs in anyone: it is allowed only in the debug profile (this is `{}`)",
                ctx.profile()
            ),
        ));
    }
    if !ctx.public_url_is_loopback() {
        return Err(ConfigError::new(
            key,
            format!(
                "is the development provider, which signs in anyone: it is allowed only when `social_auth.public_url` is a loopback address (this is `{}`)",
                ctx.public_url()
            ),
        ));
    }
    let config = ctx.config();
    let client_id = settings.client_id.unwrap_or_else(|| "dev".into());
    let secret = random_token(32);
    let root = format!(
        "{}{}{DEV_MOUNT}",
        config.public_origin(),
        config.base_path()
    );
    let parse = |path: &str| {
        Url::parse(&format!("{root}{path}"))
            .map_err(|e| ConfigError::new(key, format!("cannot be mounted at `{root}`: {e}")))
    };
    let endpoints = Endpoints {
        authorize: parse("/login/oauth/authorize")?,
        token: parse("/login/oauth/access_token")?,
        api: parse("")?,
    };
    let fake = FakeGithub::interactive(&client_id, &secret);
    let mount = format!("{}{DEV_MOUNT}", config.base_path());
    ctx.attach(Box::new(move |rocket| {
        rocket.manage(fake).mount(mount, FakeGithub::routes())
    }));
    log::warn!(
        "social_auth: the development provider `{}` signs in anyone: never enable it in production",
        ctx.name()
    );
    let scopes = settings
        .scopes
        .unwrap_or_else(|| vec!["read:user".into(), "user:email".into()]);
    Ok(Github::new(client_id, secret.into(), endpoints, scopes, ctx).never_vouching())
}
