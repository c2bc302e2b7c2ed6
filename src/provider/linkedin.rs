//! LinkedIn ("Sign In with LinkedIn using OpenID Connect"): OpenID Connect without a `nonce`
//! in its `id_token`, without PKCE for web apps, and with `client_secret_post` although its
//! discovery does not say so.

use super::oauth2::TokenAuth;
use super::oidc::{Offline, Oidc, OidcSettings, Quirks, STANDARD};
use super::ProviderContext;
use crate::config::ConfigError;

/// LinkedIn's quirks.
const LINKEDIN: Quirks = Quirks {
    // Since April 2024 (it was `https://www.linkedin.com`; its documentation still says so).
    default_issuer: Some("https://www.linkedin.com/oauth"),
    // A `code_verifier` from a web app is refused with `invalid_client`.
    pkce: false,
    // It never echoes the nonce; one it does send must match.
    nonce_echoed: false,
    // Discovery omits `token_endpoint_auth_methods_supported`, and Basic is refused.
    default_token_auth: Some(TokenAuth::Post),
    // Refresh tokens come without being asked for (no `offline_access` scope).
    offline: Offline::Implicit,
    ..STANDARD
};

/// The kind `linkedin`. Users are keyed on `sub` (opaque, pairwise per app); `email_verified`
/// may come as a boolean or the string `"true"`. Most apps get no refresh token (LinkedIn
/// grants them to approved partners only): the refresh route then answers 502.
///
/// ```toml
/// [default.social_auth.providers.linkedin]
/// client_id = "…"
/// client_secret = "…"
/// # issuer = "https://www.linkedin.com/oauth"
/// # token_auth = "post"
/// ```
pub(crate) fn build(
    settings: OidcSettings,
    ctx: &ProviderContext<'_>,
) -> Result<Oidc, ConfigError> {
    Oidc::new(settings, ctx, LINKEDIN)
}
