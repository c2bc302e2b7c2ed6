//! Discord (OAuth2 with PKCE, the user from `/users/@me`): its settings, snowflake ids, display
//! names, CDN avatars, verified emails, and its rate-limit answers.

use rocket::async_trait;
use serde::Deserialize;
use url::Url;

use super::http_client::Answer;
use super::oauth2::{OAuth2Client, OAuth2Settings, TokenAuth};
use super::{FlowParams, Profile, Provider, ProviderContext, ProviderError, TokenSet};
use crate::config::ConfigError;
use crate::secret::Secret;

/// A `kind = "discord"` table.
///
/// ```toml
/// [default.social_auth.providers.discord]
/// client_id = "1234567890"
/// client_secret = "…"
/// scopes = ["identify", "email"]          # the default
/// # For a test double:
/// authorize_url = "https://discord.com/oauth2/authorize"
/// token_url = "https://discord.com/api/oauth2/token"
/// api_url = "https://discord.com/api"     # the user is at {api_url}/users/@me
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiscordSettings {
    client_id: Option<String>,
    client_secret: Option<Secret>,
    authorize_url: Option<String>,
    token_url: Option<String>,
    api_url: Option<String>,
    scopes: Option<Vec<String>>,
}

const AUTHORIZE_URL: &str = "https://discord.com/oauth2/authorize";
const TOKEN_URL: &str = "https://discord.com/api/oauth2/token";
const API_URL: &str = "https://discord.com/api";
const CDN: &str = "https://cdn.discordapp.com";

/// The kind `discord`.
pub(crate) fn build(
    settings: DiscordSettings,
    ctx: &ProviderContext<'_>,
) -> Result<Discord, ConfigError> {
    let client_id = ctx.required("client_id", settings.client_id)?;
    let client_secret = ctx.required_secret("client_secret", settings.client_secret)?;
    let authorize = ctx.url_or(
        "authorize_url",
        settings.authorize_url.as_deref(),
        AUTHORIZE_URL,
    )?;
    let token = ctx.url_or("token_url", settings.token_url.as_deref(), TOKEN_URL)?;
    let api = ctx.url_or("api_url", settings.api_url.as_deref(), API_URL)?;
    let scopes = settings
        .scopes
        .unwrap_or_else(|| vec!["identify".into(), "email".into()]);
    if !scopes.iter().any(|s| s == "identify") {
        return Err(ConfigError::new(
            ctx.key("scopes"),
            "must include \"identify\": without it Discord refuses `/users/@me`",
        ));
    }
    let oauth = OAuth2Settings::new(
        client_id,
        client_secret,
        authorize,
        token,
        ctx.callback_url().clone(),
    )
    .scopes(scopes)
    // Discord takes Basic or form credentials; PKCE (S256) is on, as Auth.js sends it.
    .token_auth(TokenAuth::Basic);
    Ok(Discord {
        oauth: OAuth2Client::new(oauth, ctx.http().clone()),
        api_url: api.as_str().trim_end_matches('/').to_owned(),
    })
}

/// The Discord provider.
pub(crate) struct Discord {
    oauth: OAuth2Client,
    api_url: String,
}

#[derive(Deserialize)]
struct DiscordUser {
    /// A snowflake, always a string (it may exceed 2^53).
    id: String,
    username: String,
    global_name: Option<String>,
    discriminator: Option<String>,
    avatar: Option<String>,
    email: Option<String>,
    verified: Option<bool>,
}

impl DiscordUser {
    /// The avatar's CDN URL: the hash's (`.gif` for an animated `a_` one), else the default
    /// avatar (by id for migrated users, `discriminator: "0"`; by discriminator for legacy ones).
    fn avatar_url(&self) -> Option<String> {
        if let Some(hash) = self.avatar.as_deref().filter(|h| !h.is_empty()) {
            let ext = if hash.starts_with("a_") { "gif" } else { "png" };
            return Some(format!("{CDN}/avatars/{}/{hash}.{ext}", self.id));
        }
        let legacy = self
            .discriminator
            .as_deref()
            .and_then(|d| d.parse::<u64>().ok())
            .filter(|d| *d != 0);
        let index = match legacy {
            Some(discriminator) => discriminator % 5,
            None => (self.id.parse::<u64>().ok()? >> 22) % 6,
        };
        Some(format!("{CDN}/embed/avatars/{index}.png"))
    }
}

/// Describes a failed API answer by its status and what Discord says (its `message`, and for
/// a 429 the limit's `retry_after` and whether it is global), never its whole body.
fn api_error(what: &str, answer: &Answer) -> ProviderError {
    #[derive(Deserialize)]
    struct Message {
        message: Option<String>,
        retry_after: Option<f64>,
        global: Option<bool>,
    }
    let said = serde_json::from_slice::<Message>(&answer.body).ok();
    let mut detail = said
        .as_ref()
        .and_then(|m| m.message.clone())
        .map(|m| m.chars().take(200).collect::<String>())
        .unwrap_or_else(|| "no usable answer".to_owned());
    if answer.status.as_u16() == 429 {
        let after = said.as_ref().and_then(|m| m.retry_after);
        let scope = answer
            .headers
            .get("x-ratelimit-scope")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| {
                said.as_ref()
                    .and_then(|m| m.global)
                    .filter(|g| *g)
                    .map(|_| "global".to_owned())
            });
        detail = format!(
            "rate limited: {detail}{}{}",
            after
                .map(|a| format!(" retry after {a} s"))
                .unwrap_or_default(),
            scope.map(|s| format!(" ({s} limit)")).unwrap_or_default()
        );
    }
    ProviderError::BadResponse(format!(
        "Discord {what} answered {}: {detail}",
        answer.status.as_u16()
    ))
}

#[async_trait]
impl Provider for Discord {
    async fn authorize_url(&self, flow: &FlowParams<'_>) -> Result<Url, ProviderError> {
        Ok(self.oauth.authorize_url(flow, &[]))
    }

    async fn exchange_code(
        &self,
        code: &str,
        flow: &FlowParams<'_>,
    ) -> Result<TokenSet, ProviderError> {
        self.oauth.exchange_code(code, flow).await
    }

    async fn profile(
        &self,
        tokens: &TokenSet,
        _flow: &FlowParams<'_>,
    ) -> Result<Profile, ProviderError> {
        let http = self.oauth.http();
        let answer = http
            .send(
                http.get(&format!("{}/users/@me", self.api_url))
                    .bearer_auth(tokens.access_token.expose()),
            )
            .await?;
        if !answer.status.is_success() {
            return Err(api_error("GET /users/@me", &answer));
        }
        let raw: serde_json::Value = answer.json("Discord GET /users/@me")?;
        let user: DiscordUser = serde_json::from_value(raw.clone()).map_err(|e| {
            ProviderError::BadResponse(format!("Discord GET /users/@me: unexpected answer ({e})"))
        })?;
        if user.id.is_empty() || !user.id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProviderError::bad_response(
                "Discord GET /users/@me: the id is no snowflake",
            ));
        }
        let mut profile = Profile::new(user.id.clone(), raw);
        profile.avatar_url = user.avatar_url();
        profile.name = user
            .global_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| Some(user.username.clone()));
        if let Some(email) = user.email.filter(|e| !e.trim().is_empty()) {
            // Only `verified: true` vouches for it.
            profile = if user.verified == Some(true) {
                profile.verified_email(email)
            } else {
                profile.unverified_email(email)
            };
        }
        Ok(profile)
    }

    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenSet, ProviderError> {
        // The answer carries a new refresh token (the old one is single-use): it replaces it.
        self.oauth.refresh(refresh_token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, discriminator: &str, avatar: Option<&str>) -> DiscordUser {
        DiscordUser {
            id: id.into(),
            username: "nelly".into(),
            global_name: None,
            discriminator: Some(discriminator.into()),
            avatar: avatar.map(str::to_owned),
            email: None,
            verified: None,
        }
    }

    #[test]
    fn avatars_from_the_hash_or_the_default() {
        let id = "80351110224678912";
        assert_eq!(
            user(id, "0", Some("8342729096ea3675442027381ff50dfe"))
                .avatar_url()
                .unwrap(),
            "https://cdn.discordapp.com/avatars/80351110224678912/8342729096ea3675442027381ff50dfe.png"
        );
        assert_eq!(
            user(id, "0", Some("a_fed43ab12698df65902ba06727e20c0e"))
                .avatar_url()
                .unwrap(),
            "https://cdn.discordapp.com/avatars/80351110224678912/a_fed43ab12698df65902ba06727e20c0e.gif"
        );
        // Migrated: (id >> 22) % 6 — computed on the full 64-bit id.
        let index = (80351110224678912u64 >> 22) % 6;
        assert_eq!(
            user(id, "0", None).avatar_url().unwrap(),
            format!("https://cdn.discordapp.com/embed/avatars/{index}.png")
        );
        // Legacy: discriminator % 5.
        assert_eq!(
            user(id, "1337", None).avatar_url().unwrap(),
            "https://cdn.discordapp.com/embed/avatars/2.png"
        );
    }
}
