//! GitHub (OAuth Apps and GitHub App user tokens, GitHub Enterprise Server): its settings, and
//! the REST calls of its profile. The development provider speaks the same wire format.

use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use rocket::async_trait;
use serde::Deserialize;
use url::Url;

use super::oauth2::{OAuth2Client, OAuth2Settings, TokenAuth};
use super::{FlowParams, Profile, Provider, ProviderContext, ProviderError, TokenSet};
use crate::config::ConfigError;
use crate::provider::http_client::Answer;
use crate::secret::Secret;

/// A `kind = "github"` table.
///
/// ```toml
/// [default.social_auth.providers.github]
/// client_id = "Iv1.0123456789abcdef"
/// client_secret = "…"
/// # For GitHub Enterprise Server, or a test double:
/// authorize_url = "https://github.com/login/oauth/authorize"
/// token_url = "https://github.com/login/oauth/access_token"
/// api_url = "https://api.github.com"
/// scopes = ["read:user", "user:email"]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GithubSettings {
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub api_url: Option<String>,
    pub scopes: Option<Vec<String>>,
}

const AUTHORIZE_URL: &str = "https://github.com/login/oauth/authorize";
const TOKEN_URL: &str = "https://github.com/login/oauth/access_token";
const API_URL: &str = "https://api.github.com";

/// The kind `github`.
pub(crate) fn build(
    settings: GithubSettings,
    ctx: &ProviderContext<'_>,
) -> Result<Github, ConfigError> {
    let client_id = ctx.required("client_id", settings.client_id)?;
    let client_secret = ctx.required_secret("client_secret", settings.client_secret)?;
    let endpoints = Endpoints {
        authorize: ctx.url_or(
            "authorize_url",
            settings.authorize_url.as_deref(),
            AUTHORIZE_URL,
        )?,
        token: ctx.url_or("token_url", settings.token_url.as_deref(), TOKEN_URL)?,
        api: ctx.url_or("api_url", settings.api_url.as_deref(), API_URL)?,
    };
    let scopes = settings
        .scopes
        .unwrap_or_else(|| vec!["read:user".into(), "user:email".into()]);
    Ok(Github::new(
        client_id,
        client_secret,
        endpoints,
        scopes,
        ctx,
    ))
}

/// Where a GitHub-compatible provider is.
pub(crate) struct Endpoints {
    pub authorize: Url,
    pub token: Url,
    pub api: Url,
}

/// A GitHub-compatible provider.
pub(crate) struct Github {
    oauth: OAuth2Client,
    api_url: String,
    /// Whether its verified emails may link accounts (not the development provider's).
    vouches: bool,
}

#[derive(Deserialize)]
struct GithubUser {
    id: u64,
    login: String,
    name: Option<String>,
    avatar_url: Option<String>,
}

#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

impl Github {
    pub(crate) fn new(
        client_id: String,
        client_secret: Secret,
        endpoints: Endpoints,
        scopes: Vec<String>,
        ctx: &ProviderContext<'_>,
    ) -> Self {
        let settings = OAuth2Settings::new(
            client_id,
            client_secret,
            endpoints.authorize,
            endpoints.token,
            ctx.callback_url().clone(),
        )
        .scopes(scopes)
        // GitHub documents the credentials as form fields only.
        .token_auth(TokenAuth::Post);
        Github {
            oauth: OAuth2Client::new(settings, ctx.http().clone()),
            api_url: endpoints.api.as_str().trim_end_matches('/').to_owned(),
            vouches: true,
        }
    }

    /// The same provider, whose emails never link accounts (it signs in anyone as anyone).
    #[cfg_attr(not(feature = "dev"), allow(dead_code))]
    pub(crate) fn never_vouching(mut self) -> Self {
        self.vouches = false;
        self
    }

    async fn api(&self, path: &str, token: &Secret) -> Result<Answer, ProviderError> {
        let http = self.oauth.http();
        let request = http
            .get(&format!("{}{path}", self.api_url))
            .bearer_auth(token.expose())
            .header(ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        Ok(http.send(request).await?)
    }
}

/// Describes a failed API answer without its body (which may echo anything).
fn api_error(what: &str, answer: &Answer) -> ProviderError {
    #[derive(Deserialize)]
    struct Message {
        message: Option<String>,
    }
    let limited = answer
        .headers
        .get("x-ratelimit-remaining")
        .is_some_and(|v| v.as_bytes() == b"0");
    let message = serde_json::from_slice::<Message>(&answer.body)
        .ok()
        .and_then(|m| m.message)
        .map(|m| m.chars().take(200).collect::<String>());
    let detail = match (limited, message) {
        (true, _) => "rate limited".to_owned(),
        (false, Some(m)) => m,
        (false, None) => "no usable answer".to_owned(),
    };
    ProviderError::BadResponse(format!(
        "GitHub {what} answered {}: {detail}",
        answer.status.as_u16()
    ))
}

#[async_trait]
impl Provider for Github {
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
        let answer = self.api("/user", &tokens.access_token).await?;
        if !answer.status.is_success() {
            return Err(api_error("GET /user", &answer));
        }
        let raw: serde_json::Value = answer.json("GitHub GET /user")?;
        let user: GithubUser = serde_json::from_value(raw.clone()).map_err(|e| {
            ProviderError::BadResponse(format!("GitHub GET /user: unexpected answer ({e})"))
        })?;
        let answer = self.api("/user/emails", &tokens.access_token).await?;
        let email = match answer.status {
            s if s.is_success() => answer
                .json::<Vec<GithubEmail>>("GitHub GET /user/emails")?
                .into_iter()
                .find(|e| e.primary && e.verified)
                .map(|e| e.email),
            // Without the `user:email` scope, or for a GitHub App without the permission.
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => None,
            _ => return Err(api_error("GET /user/emails", &answer)),
        };
        Ok(Profile {
            social_id: user.id.to_string(),
            name: user
                .name
                .filter(|n| !n.trim().is_empty())
                .or(Some(user.login)),
            // Only a primary and verified address is ever taken.
            email_verified: email.is_some(),
            email,
            avatar_url: user.avatar_url,
            raw,
        })
    }

    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenSet, ProviderError> {
        self.oauth.refresh(refresh_token).await
    }

    fn vouches_for_email(&self) -> bool {
        self.vouches
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::context::with_context;

    const JWT: &str =
        "[social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\nrole = \"web_user\"\n";

    fn settings(toml: &str) -> GithubSettings {
        use rocket::figment::providers::{Format, Toml};
        rocket::figment::Figment::from(Toml::string(toml))
            .extract()
            .expect("settings")
    }

    #[test]
    fn defaults_are_github_com() {
        with_context("github", JWT, |ctx| {
            let github = build(settings("client_id = \"id\"\nclient_secret = \"s\"\n"), ctx)
                .expect("builds");
            assert_eq!(github.api_url, "https://api.github.com");
            let url = github
                .oauth
                .authorize_url(&FlowParams::new("st", &"v".repeat(43), "n"), &[]);
            assert!(
                url.as_str()
                    .starts_with("https://github.com/login/oauth/authorize?"),
                "{url}"
            );
            let query: Vec<_> = url.query_pairs().into_owned().collect();
            assert!(
                query.contains(&("scope".into(), "read:user user:email".into())),
                "{query:?}"
            );
            assert!(query.contains(&(
                "redirect_uri".into(),
                "http://127.0.0.1:8000/auth/github/callback".into()
            )));
        });
    }

    #[test]
    fn missing_and_insecure_values_name_their_key() {
        with_context("work", JWT, |ctx| {
            let e = build(settings("client_secret = \"s\"\n"), ctx)
                .err()
                .expect("refused");
            assert_eq!(e.key(), "social_auth.providers.work.client_id");
            let e = build(
                settings("client_id = \"i\"\nclient_secret = \"s\"\ntoken_url = \"http://github.example/t\"\n"),
                ctx,
            )
            .err()
            .expect("refused");
            assert_eq!(e.key(), "social_auth.providers.work.token_url");
        });
    }
}
