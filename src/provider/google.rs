//! Google: OpenID Connect with Google's quirks, which are all here: the default issuer, the
//! scheme-less issuer its `id_token`s may carry, and `access_type=offline` for a refresh token.

use super::oidc::{Offline, Oidc, OidcSettings, Quirks, STANDARD};
use super::ProviderContext;
use crate::config::ConfigError;

/// Google's quirks.
const GOOGLE: Quirks = Quirks {
    default_issuer: Some("https://accounts.google.com"),
    // "The value of iss in the ID token is equal to accounts.google.com or
    // https://accounts.google.com."
    bare_issuer: true,
    // Google ignores `offline_access`; it takes `access_type=offline` (and `prompt=consent` to
    // send a refresh token again on a later consent).
    offline: Offline::AccessType,
    ..STANDARD
};

/// The kind `google`: a `kind = "oidc"` table whose `issuer` defaults to Google's.
///
/// ```toml
/// [default.social_auth.providers.google]
/// client_id = "….apps.googleusercontent.com"
/// client_secret = "…"
/// offline = false   # true: ask for a refresh token
/// ```
pub(crate) fn build(
    settings: OidcSettings,
    ctx: &ProviderContext<'_>,
) -> Result<Oidc, ConfigError> {
    Oidc::new(settings, ctx, GOOGLE)
}
