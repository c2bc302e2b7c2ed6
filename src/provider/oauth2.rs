//! What OAuth 2.0 providers share: the authorize URL with `state` and PKCE S256, the code
//! exchange and the refresh with the client's authentication, and RFC 6749 error reading.

use oauth2::basic::{BasicClient, BasicErrorResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, TokenResponse, TokenUrl,
};
use url::Url;

use super::http_client::{HttpClient, HttpError};
use super::{FlowParams, ProviderError, TokenSet};
use crate::secret::Secret;

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TokenAuth {
    /// HTTP Basic with the client id and secret (`client_secret_basic`, RFC 6749's default).
    #[default]
    Basic,
    /// The client id and secret as form fields (`client_secret_post`).
    Post,
    /// No secret: a public client, which PKCE protects (`none`).
    None,
}

/// The settings of an [`OAuth2Client`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OAuth2Settings {
    /// The client id.
    pub client_id: String,
    /// The client secret (unused with [`TokenAuth::None`]).
    pub client_secret: Secret,
    /// The authorization endpoint.
    pub authorize_url: Url,
    /// The token endpoint.
    pub token_url: Url,
    /// The callback URL ([`ProviderContext::callback_url`](super::ProviderContext::callback_url)).
    pub redirect_uri: Url,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// How the scopes are joined in the authorize URL: `" "` as RFC 6749 says.
    pub scope_separator: &'static str,
    /// How the client authenticates at the token endpoint. Default [`TokenAuth::Basic`].
    pub token_auth: TokenAuth,
    /// Send a PKCE S256 challenge and verifier. Default `true`.
    pub pkce: bool,
}

impl OAuth2Settings {
    /// Settings with Basic authentication, PKCE, and no scopes.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: Secret,
        authorize_url: Url,
        token_url: Url,
        redirect_uri: Url,
    ) -> Self {
        OAuth2Settings {
            client_id: client_id.into(),
            client_secret,
            authorize_url,
            token_url,
            redirect_uri,
            scopes: Vec::new(),
            scope_separator: " ",
            token_auth: TokenAuth::Basic,
            pkce: true,
        }
    }

    /// With these scopes.
    pub fn scopes(mut self, scopes: Vec<String>) -> Self {
        self.scopes = scopes;
        self
    }

    /// With this client authentication.
    pub fn token_auth(mut self, auth: TokenAuth) -> Self {
        self.token_auth = auth;
        self
    }
}

/// An OAuth 2.0 client (RFC 6749, with PKCE from RFC 7636) on the crate's [`HttpClient`]: what a
/// [`Provider`](super::Provider) of the authorization-code flow needs besides its profile call.
///
/// Token errors are read as RFC 6749 says, including an `error` body answered with HTTP 200
/// (GitHub's habit): `invalid_grant` (and GitHub's `bad_refresh_token`) is
/// [`ProviderError::InvalidGrant`], any other code [`ProviderError::Rejected`].
///
/// ```
/// use rocket_social_auth::provider::{FlowParams, OAuth2Client, OAuth2Settings, ProviderContext};
/// use rocket_social_auth::{ConfigError, Secret};
///
/// fn client(ctx: &ProviderContext) -> Result<OAuth2Client, ConfigError> {
///     let settings = OAuth2Settings::new(
///         "client-id",
///         Secret::new("client-secret"),
///         ctx.url("authorize_url", "https://acme.example/oauth/authorize")?,
///         ctx.url("token_url", "https://acme.example/oauth/token")?,
///         ctx.callback_url().clone(),
///     )
///     .scopes(vec!["profile".into()]);
///     Ok(OAuth2Client::new(settings, ctx.http().clone()))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct OAuth2Client {
    client: Client,
    scopes: Vec<String>,
    scope_separator: &'static str,
    pkce: bool,
    http: HttpClient,
}

impl OAuth2Client {
    /// A client with `settings`, calling through `http`.
    pub fn new(settings: OAuth2Settings, http: HttpClient) -> Self {
        let mut client = BasicClient::new(ClientId::new(settings.client_id))
            .set_auth_uri(AuthUrl::from_url(settings.authorize_url))
            .set_token_uri(TokenUrl::from_url(settings.token_url))
            .set_redirect_uri(RedirectUrl::from_url(settings.redirect_uri));
        match settings.token_auth {
            TokenAuth::Basic => {
                client = client
                    .set_client_secret(ClientSecret::new(
                        settings.client_secret.expose().to_owned(),
                    ))
                    .set_auth_type(AuthType::BasicAuth);
            }
            TokenAuth::Post => {
                client = client
                    .set_client_secret(ClientSecret::new(
                        settings.client_secret.expose().to_owned(),
                    ))
                    .set_auth_type(AuthType::RequestBody);
            }
            // Without a secret, the client id goes in the form.
            TokenAuth::None => client = client.set_auth_type(AuthType::RequestBody),
        }
        OAuth2Client {
            client,
            scopes: settings.scopes,
            scope_separator: settings.scope_separator,
            pkce: settings.pkce,
            http,
        }
    }

    /// The HTTP client it calls through, for the provider's own calls (the profile).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The authorize URL: client id, redirect URI, `response_type=code`, the scopes, `state`,
    /// the PKCE S256 challenge (unless PKCE is off), then `extra` parameters.
    pub fn authorize_url(&self, flow: &FlowParams<'_>, extra: &[(&str, &str)]) -> Url {
        let state = flow.state.to_owned();
        let mut request = self.client.authorize_url(move || CsrfToken::new(state));
        if !self.scopes.is_empty() {
            request = request.add_scope(Scope::new(self.scopes.join(self.scope_separator)));
        }
        if self.pkce {
            let verifier = PkceCodeVerifier::new(flow.pkce_verifier.to_owned());
            request =
                request.set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier));
        }
        for (name, value) in extra {
            request = request.add_extra_param(*name, *value);
        }
        request.url().0
    }

    /// Exchanges the callback's authorization code for tokens (with the PKCE verifier).
    pub async fn exchange_code(
        &self,
        code: &str,
        flow: &FlowParams<'_>,
    ) -> Result<TokenSet, ProviderError> {
        let mut request = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()));
        if self.pkce {
            request =
                request.set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.to_owned()));
        }
        let token = request
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(token_set(&token))
    }

    /// Spends a refresh token for fresh tokens.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenSet, ProviderError> {
        let token = self
            .client
            .exchange_refresh_token(&RefreshToken::new(refresh_token.expose().to_owned()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(token_set(&token))
    }
}

/// Reads a failed token request: RFC 6749 §5.2 errors, the connection's, or an answer that
/// is not a token.
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
        RequestTokenError::Parse(_, body) => ProviderError::BadResponse(match named(&body) {
            Some(m) => format!("the token endpoint's answer is not a token: {m}"),
            None => "the token endpoint's answer is not a token".into(),
        }),
        RequestTokenError::Other(m) => {
            ProviderError::BadResponse(format!("the token endpoint's answer is unusable: {m}"))
        }
    }
}

/// What a JSON answer that is no RFC 6749 error says of itself, e.g. Discord's 429
/// `{"message": "You are being rate limited.", "retry_after": 64.57}` or a problem JSON's
/// `title` and `detail`; cut short, as the body may echo anything.
fn named(body: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = |k: &str| doc.get(k).and_then(serde_json::Value::as_str);
    let mut said = [text("message"), text("title"), text("detail")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ");
    if said.is_empty() {
        return None;
    }
    if let Some(after) = doc.get("retry_after").and_then(serde_json::Value::as_f64) {
        said.push_str(&format!(" (retry after {after} s)"));
    }
    Some(said.chars().take(200).collect())
}

/// The tokens of a token answer.
pub(crate) fn token_set<T: TokenResponse>(token: &T) -> TokenSet {
    TokenSet::new(Secret::new(token.access_token().secret().clone()))
        .refresh_token(
            token
                .refresh_token()
                .map(|t| Secret::new(t.secret().clone())),
        )
        .expires_in(token.expires_in().map(|d| d.as_secs()))
}
