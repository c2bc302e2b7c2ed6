//! Sign in with Slack: OpenID Connect whose errors are HTTP 200 `{"ok": false, "error": …}`,
//! whose users are keyed on their workspace and user ids (Slack's `https://slack.com/` claims),
//! without PKCE, and with rotating refresh tokens when the app enables token rotation.

use super::oidc::{Offline, Oidc, OidcSettings, Quirks, Subject, STANDARD};
use super::ProviderContext;
use crate::config::ConfigError;

/// Slack's quirks.
const SLACK: Quirks = Quirks {
    default_issuer: Some("https://slack.com"),
    // PKCE is for Slack's public clients; with a client secret it is not sent.
    pkce: false,
    // `sub` is unique only within a workspace.
    subject: Subject::SlackTeamUser,
    // `{"ok": false, "error": "invalid_refresh_token"}`: the grant is dead, sign in again.
    dead_grant_codes: &["invalid_refresh_token", "token_revoked", "token_expired"],
    // Refresh tokens come without being asked for (no `offline_access` scope).
    offline: Offline::Implicit,
    ..STANDARD
};

/// The kind `slack`. The user is `{team_id}/{user_id}`; the token endpoint's `ok: false`
/// errors (HTTP 200) are read as errors, not as a token without `access_token`.
///
/// ```toml
/// [default.social_auth.providers.slack]
/// client_id = "25259531569.1115258246291"
/// client_secret = "…"
/// # issuer = "https://slack.com"
/// ```
pub(crate) fn build(
    settings: OidcSettings,
    ctx: &ProviderContext<'_>,
) -> Result<Oidc, ConfigError> {
    Oidc::new(settings, ctx, SLACK)
}
