//! GitHub (OAuth Apps and GitHub App user tokens), and the development provider that speaks
//! the same wire format.

use oauth2::basic::{BasicClient, BasicErrorResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, TokenResponse, TokenUrl,
};
use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use rocket::async_trait;
use serde::Deserialize;
use url::Url;

use super::{FlowParams, Profile, Provider, ProviderError, TokenSet};
use crate::clock::now;
use crate::config::ResolvedProvider;
use crate::provider::http_client::{Answer, HttpClient, HttpError};
use crate::secret::Secret;

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// A GitHub-compatible provider.
pub(crate) struct Github {
    client: Client,
    api_url: String,
    scopes: Vec<String>,
    http: HttpClient,
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
    pub(crate) fn new(config: &ResolvedProvider, redirect_uri: &str, http: HttpClient) -> Self {
        let client = BasicClient::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(config.client_secret.expose().to_owned()))
            .set_auth_uri(AuthUrl::from_url(config.authorize_url.clone()))
            .set_token_uri(TokenUrl::from_url(config.token_url.clone()))
            // GitHub documents the credentials as form fields only.
            .set_auth_type(AuthType::RequestBody)
            .set_redirect_uri(
                RedirectUrl::new(redirect_uri.to_owned()).unwrap_or_else(|_| {
                    RedirectUrl::from_url(Url::parse("http://127.0.0.1/").expect("static URL"))
                }),
            );
        Github {
            client,
            api_url: config.api_url.as_str().trim_end_matches('/').to_owned(),
            scopes: config.scopes.clone(),
            http,
        }
    }

    async fn api(&self, path: &str, token: &Secret) -> Result<Answer, ProviderError> {
        let request = self
            .http
            .get(&format!("{}{path}", self.api_url))
            .bearer_auth(token.expose())
            .header(ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        Ok(self.http.send(request).await?)
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

pub(crate) fn token_error(e: RequestTokenError<HttpError, BasicErrorResponse>) -> ProviderError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let code = r.error().as_ref().to_owned();
            let description = r.error_description().cloned();
            match code.as_str() {
                "invalid_grant" | "bad_refresh_token" => {
                    ProviderError::InvalidGrant { code, description }
                }
                _ => ProviderError::Rejected { code, description },
            }
        }
        RequestTokenError::Request(e) => e.into(),
        RequestTokenError::Parse(_, _) => {
            ProviderError::BadResponse("the token endpoint's answer is not a token".into())
        }
        RequestTokenError::Other(m) => {
            ProviderError::BadResponse(format!("the token endpoint's answer is unusable: {m}"))
        }
    }
}

pub(crate) fn token_set<T: TokenResponse>(token: &T) -> TokenSet {
    TokenSet {
        access_token: Secret::new(token.access_token().secret().clone()),
        refresh_token: token
            .refresh_token()
            .map(|t| Secret::new(t.secret().clone())),
        expires_at: token
            .expires_in()
            .map(|d| now().saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2))),
        id_token: None,
    }
}

#[async_trait]
impl Provider for Github {
    async fn authorize_url(&self, flow: &FlowParams<'_>) -> Result<Url, ProviderError> {
        let verifier = PkceCodeVerifier::new(flow.pkce_verifier.to_owned());
        let state = flow.state.to_owned();
        let (url, _) = self
            .client
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(self.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier))
            .url();
        Ok(url)
    }

    async fn exchange_code(
        &self,
        code: &str,
        flow: &FlowParams<'_>,
    ) -> Result<TokenSet, ProviderError> {
        let token = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(token_set(&token))
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
        let token = self
            .client
            .exchange_refresh_token(&RefreshToken::new(refresh_token.expose().to_owned()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(token_set(&token))
    }
}
