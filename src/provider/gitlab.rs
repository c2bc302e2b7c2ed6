//! GitLab (gitlab.com or a self-managed instance) as an OpenID provider: OpenID Connect with
//! the issuer defaulting to `https://gitlab.com`, and refresh tokens that rotate.

use super::oidc::{Offline, Oidc, OidcSettings, Quirks, STANDARD};
use super::ProviderContext;
use crate::config::ConfigError;

/// GitLab's quirks.
const GITLAB: Quirks = Quirks {
    // Each instance is its own issuer: set `issuer` for a self-managed one.
    default_issuer: Some("https://gitlab.com"),
    // Doorkeeper documents `redirect_uri` (the original one) as a parameter of a refresh.
    refresh_redirect_uri: true,
    // Refresh tokens come without being asked for (no `offline_access` scope).
    offline: Offline::Implicit,
    ..STANDARD
};

/// The kind `gitlab`: a `kind = "oidc"` table whose `issuer` defaults to gitlab.com. The user
/// is keyed on `sub`, GitLab's numeric user id (never `sub_legacy` or the username); a refresh
/// "invalidates the existing access_token and refresh_token": the new pair replaces the old.
///
/// ```toml
/// [default.social_auth.providers.gitlab]
/// client_id = "…"          # the application id
/// client_secret = "…"
/// issuer = "https://gitlab.com"   # a self-managed instance: its URL
/// offline = false
/// ```
pub(crate) fn build(
    settings: OidcSettings,
    ctx: &ProviderContext<'_>,
) -> Result<Oidc, ConfigError> {
    Oidc::new(settings, ctx, GITLAB)
}
