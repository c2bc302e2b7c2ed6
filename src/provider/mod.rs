//! The provider abstraction: what every provider does in a login, and the values it yields.

use rocket::async_trait;
use url::Url;

use crate::secret::Secret;

pub(crate) mod facebook;
pub(crate) mod github;
pub(crate) mod http_client;
pub(crate) mod oidc;

/// Tokens a provider granted. `Debug` shows which are present, never a value (the `id_token`
/// is a bearer credential with the user's profile in it).
#[derive(Clone)]
pub(crate) struct TokenSet {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    /// Unix seconds; `None` when the token does not expire.
    pub expires_at: Option<i64>,
    /// The OpenID Connect `id_token`, as received (checked before use).
    pub id_token: Option<String>,
}

/// Who signed in, as the provider describes them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Profile {
    /// The provider's immutable id for the user.
    pub social_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Whether the provider vouches for `email`.
    pub email_verified: bool,
    pub avatar_url: Option<String>,
    /// The provider's profile document as it came.
    pub raw: serde_json::Value,
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

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &self.access_token)
            .field("refresh_token", &self.refresh_token)
            .field("expires_at", &self.expires_at)
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
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

/// Longest display name kept (longer ones are cut): the profile rides in the JWT, and a cookie
/// over about 4 KB is silently dropped by browsers.
const MAX_NAME_CHARS: usize = 200;
/// Longest email kept (RFC 5321's limit); a longer one is not an address.
const MAX_EMAIL_BYTES: usize = 254;
/// Longest avatar URL kept; a longer one is dropped.
const MAX_AVATAR_BYTES: usize = 1024;

impl Profile {
    /// The profile, unless it cannot be stored; over-long values are cut (name) or dropped
    /// (email, avatar) so that the JWT still fits in a cookie.
    pub(crate) fn storable(mut self) -> Result<Self, ProviderError> {
        check_storable([
            Some(self.social_id.as_str()),
            self.name.as_deref(),
            self.email.as_deref(),
            self.avatar_url.as_deref(),
        ])?;
        if self.social_id.is_empty() || self.social_id.len() > 255 {
            return Err(ProviderError::BadResponse(
                "the provider's user id is empty or too long".into(),
            ));
        }
        if let Some(name) = &mut self.name {
            if let Some((cut, _)) = name.char_indices().nth(MAX_NAME_CHARS) {
                name.truncate(cut);
            }
        }
        if self
            .email
            .as_ref()
            .is_some_and(|e| e.len() > MAX_EMAIL_BYTES)
        {
            self.email = None;
            self.email_verified = false;
        }
        if self
            .avatar_url
            .as_ref()
            .is_some_and(|a| a.len() > MAX_AVATAR_BYTES)
        {
            self.avatar_url = None;
        }
        Ok(self)
    }
}

/// What a login needs to build the authorize URL and finish the exchange.
pub(crate) struct FlowParams<'a> {
    /// The CSRF `state`.
    pub state: &'a str,
    /// The PKCE verifier; the authorize URL carries its S256 challenge.
    pub pkce_verifier: &'a str,
    /// The OpenID Connect `nonce`.
    pub nonce: &'a str,
}

/// Why a provider call failed. `Clone`: one failed discovery or JWKS fetch answers every caller
/// that waited on it.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// An answer we cannot use: a 5xx, HTML, malformed JSON, an API error, an `id_token` that
    /// fails a check.
    #[error("{0}")]
    BadResponse(String),
    /// The provider's discovery document could not be had: its routes answer 503 until it can.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The `id_token`'s `nonce` is not the flow's (400, like a wrong `state`).
    #[error("the id_token's nonce does not match this sign-in")]
    NonceMismatch,
    /// The authorization response names another issuer, or none where the provider promised
    /// one (RFC 9207) (400).
    #[error("the authorization response does not come from this provider's issuer")]
    IssuerMismatch,
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
    async fn authorize_url(&self, flow: &FlowParams<'_>) -> Result<Url, ProviderError>;

    /// Exchanges the authorization code for tokens.
    async fn exchange_code(
        &self,
        code: &str,
        flow: &FlowParams<'_>,
    ) -> Result<TokenSet, ProviderError>;

    /// The profile of the token's user (for OpenID Connect, from the checked `id_token`).
    async fn profile(
        &self,
        tokens: &TokenSet,
        flow: &FlowParams<'_>,
    ) -> Result<Profile, ProviderError>;

    /// Which stored token [`refresh`](Self::refresh) takes.
    fn refresh_with(&self) -> RefreshWith {
        RefreshWith::RefreshToken
    }

    /// Gets fresh tokens with the stored token named by [`refresh_with`](Self::refresh_with).
    async fn refresh(&self, token: &Secret) -> Result<TokenSet, ProviderError>;

    /// Checks the `iss` parameter of the authorization response (RFC 9207, against mix-up
    /// attacks). Providers that do not send it accept its absence.
    async fn check_response_issuer(&self, _iss: Option<&str>) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_set_debug_prints_no_token() {
        let tokens = TokenSet {
            access_token: Secret::new("gho_access"),
            refresh_token: Some(Secret::new("ghr_refresh")),
            expires_at: Some(1),
            id_token: Some("eyJhbGciOi.the-id-token.sig".into()),
        };
        let debug = format!("{tokens:?}");
        for secret in ["gho_access", "ghr_refresh", "the-id-token"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("id_token: Some(\"[redacted]\")"), "{debug}");
    }
}
