//! The provider abstraction: what every provider does in a login, and the values it yields.

use rocket::async_trait;
use url::Url;

use crate::secret::Secret;

pub(crate) mod facebook;
pub(crate) mod github;

/// Tokens a provider granted.
#[derive(Debug, Clone)]
pub(crate) struct TokenSet {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    /// Unix seconds; `None` when the token does not expire.
    pub expires_at: Option<i64>,
}

/// Who signed in, as the provider describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Profile {
    /// The provider's immutable id for the user.
    pub social_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub avatar_url: Option<String>,
}

/// PostgreSQL cannot store a NUL character in text (SQLite can): a provider answer with one
/// is an answer we cannot use, on either database.
fn check_storable<'a>(
    values: impl IntoIterator<Item = Option<&'a str>>,
) -> Result<(), ProviderError> {
    if values.into_iter().flatten().any(|v| v.contains('\0')) {
        return Err(ProviderError::BadResponse(
            "the provider's answer contains a NUL character".into(),
        ));
    }
    Ok(())
}

impl TokenSet {
    /// The tokens, unless they cannot be stored.
    pub(crate) fn storable(self) -> Result<Self, ProviderError> {
        check_storable([
            Some(self.access_token.expose()),
            self.refresh_token.as_ref().map(Secret::expose),
        ])?;
        Ok(self)
    }
}

impl Profile {
    /// The profile, unless it cannot be stored.
    pub(crate) fn storable(self) -> Result<Self, ProviderError> {
        check_storable([
            Some(self.social_id.as_str()),
            self.name.as_deref(),
            self.email.as_deref(),
            self.avatar_url.as_deref(),
        ])?;
        Ok(self)
    }
}

/// What a login needs to build the authorize URL and finish the exchange.
pub(crate) struct FlowParams<'a> {
    /// The CSRF `state`.
    pub state: &'a str,
    /// The PKCE verifier; the authorize URL carries its S256 challenge.
    pub pkce_verifier: &'a str,
}

/// Why a provider call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProviderError {
    /// The provider answered an error, e.g. `bad_verification_code`, a used code, a rate limit.
    #[error("the provider refused: {code}")]
    Rejected {
        code: String,
        description: Option<String>,
    },
    /// The grant or token is dead for good (`invalid_grant`, GitHub's `bad_refresh_token`,
    /// Facebook's code 190): the user must sign in again.
    #[error("the provider refused the grant: {code}")]
    InvalidGrant {
        code: String,
        description: Option<String>,
    },
    /// No answer within `http_timeout_secs`.
    #[error("the provider did not answer in time")]
    Timeout,
    /// No connection.
    #[error("{0}")]
    Unreachable(String),
    /// An answer we cannot use: a 5xx, HTML, malformed JSON, an API error.
    #[error("{0}")]
    BadResponse(String),
}

impl ProviderError {
    /// Whether the provider refused a refresh token for good (`invalid_grant`,
    /// `bad_refresh_token`): the user must sign in again.
    pub(crate) fn needs_reauthentication(&self) -> bool {
        matches!(self, ProviderError::InvalidGrant { .. })
    }
}

/// Which stored token a refresh spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshWith {
    /// The refresh token (OAuth 2).
    RefreshToken,
    /// The access token itself (Facebook's long-lived token exchange).
    AccessToken,
}

/// One provider's side of a login.
#[async_trait]
pub(crate) trait Provider: Send + Sync {
    /// The authorize URL the browser is sent to.
    fn authorize_url(&self, flow: &FlowParams<'_>) -> Url;

    /// Exchanges the authorization code for tokens.
    async fn exchange_code(
        &self,
        code: &str,
        flow: &FlowParams<'_>,
    ) -> Result<TokenSet, ProviderError>;

    /// Fetches the profile of the token's user.
    async fn profile(&self, tokens: &TokenSet) -> Result<Profile, ProviderError>;

    /// Which stored token [`refresh`](Self::refresh) takes.
    fn refresh_with(&self) -> RefreshWith {
        RefreshWith::RefreshToken
    }

    /// Gets fresh tokens with the stored token named by [`refresh_with`](Self::refresh_with).
    async fn refresh(&self, token: &Secret) -> Result<TokenSet, ProviderError>;
}
