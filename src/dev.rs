//! The development provider (feature `dev`): the fake GitHub of the `testing` module, in its
//! interactive mode (a page that signs in any login name), mounted in the app itself under
//! `{base}/_dev`, and the provider configuration that points at it. The configuration check
//! allows it only in the debug profile with a loopback `public_url`.

use rocket::{Build, Rocket};

use crate::clock::random_token;
use crate::config::{Config, ResolvedProvider};
use crate::testing::FakeGithub;

/// Where the development provider is mounted, under `base`.
const DEV_MOUNT: &str = "/_dev";

/// Mounts the fake GitHub (with a client secret of this process) in `rocket`, and returns the
/// provider configuration that points at it.
pub(crate) fn mount(
    rocket: Rocket<Build>,
    config: &Config,
    mut provider: ResolvedProvider,
) -> (Rocket<Build>, ResolvedProvider) {
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
    let rocket = rocket.manage(fake).mount(
        format!("{}{DEV_MOUNT}", config.base_path()),
        FakeGithub::routes(),
    );
    (rocket, provider)
}
