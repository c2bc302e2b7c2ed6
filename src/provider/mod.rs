//! The provider interface: what every provider does in a sign-in, the values it yields, and
//! how a provider kind is built from its `[social_auth.providers.<name>]` table.
//!
//! A provider is a type that implements [`Provider`]; a *kind* is a function that builds one
//! from its typed settings, registered on the fairing with
//! [`SocialAuthFairing::provider_kind`](crate::SocialAuthFairing::provider_kind). The built-in
//! kinds (`github`, `facebook`, `google`, `oidc`, `microsoft`, `gitlab`, `linkedin`, `slack`,
//! `oauth2`, `discord`, `x`, and `dev` with its feature) are registered
//! the same way. [`OAuth2Client`] does what OAuth 2.0 providers share (the authorize URL with
//! `state` and PKCE, the code exchange, the refresh, RFC 6749 error reading), and
//! [`HttpClient`] is the HTTP client every provider call goes through (timeouts, no redirects,
//! a bounded body).
//!
//! A whole provider, outside this crate, is in the manual's
//! [adding a provider](crate#adding-a-provider) section.

use rocket::async_trait;
use url::Url;

use crate::secret::Secret;

pub(crate) mod apple;
mod configured;
mod context;
mod discord;
pub(crate) mod facebook;
pub(crate) mod github;
mod gitlab;
mod google;
mod http_client;
mod linkedin;
mod microsoft;
mod oauth2;
mod oidc;
mod registry;
mod slack;
mod x;

pub(crate) use context::Attachment;
pub use context::ProviderContext;
pub use http_client::{Answer, HttpClient, HttpError};
pub use oauth2::{OAuth2Client, OAuth2Settings, TokenAuth};
pub(crate) use registry::ProviderKinds;

/// Tokens a provider granted. `Debug` shows which are present, never a value (the `id_token`
/// is a bearer credential with the user's profile in it).
///
/// ```
/// use rocket_social_auth::provider::TokenSet;
/// use rocket_social_auth::Secret;
///
/// let tokens = TokenSet::new(Secret::new("gho_16C7e42F292c6912E7710c838347Ae178B4a"));
/// assert!(!format!("{tokens:?}").contains("gho_"));
/// assert!(tokens.refresh_token.is_none());
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct TokenSet {
    /// The access token.
    pub access_token: Secret,
    /// The refresh token, when the provider granted one.
    pub refresh_token: Option<Secret>,
    /// When the access token expires, in Unix seconds; `None` when it does not (or the
    /// provider does not say).
    pub expires_at: Option<i64>,
    /// The OpenID Connect `id_token`, as received (checked before use).
    pub id_token: Option<String>,
}

/// Who signed in, as the provider describes them.
///
/// ```
/// use rocket_social_auth::provider::Profile;
///
/// let profile = Profile::new("583231", serde_json::json!({"id": 583231}))
///     .name("The Octocat")
///     .verified_email("octocat@example.com");
/// assert!(profile.email_verified);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Profile {
    /// The provider's immutable id for the user (never a name or an email, which change).
    pub social_id: String,
    /// The display name.
    pub name: Option<String>,
    /// The email address.
    pub email: Option<String>,
    /// Whether the provider vouches for `email` (it may then link accounts, when the
    /// provider's table says `link_by_verified_email = true`).
    pub email_verified: bool,
    /// The picture's URL.
    pub avatar_url: Option<String>,
    /// The provider's profile document as it came.
    pub raw: serde_json::Value,
}

impl TokenSet {
    /// A token set with only an access token.
    pub fn new(access_token: Secret) -> Self {
        TokenSet {
            access_token,
            refresh_token: None,
            expires_at: None,
            id_token: None,
        }
    }

    /// With a refresh token.
    pub fn refresh_token(mut self, token: Option<Secret>) -> Self {
        self.refresh_token = token;
        self
    }

    /// Expiring `expires_in` seconds from now.
    pub fn expires_in(mut self, expires_in: Option<u64>) -> Self {
        self.expires_at = expires_in
            .map(|s| crate::clock::now().saturating_add(i64::try_from(s).unwrap_or(i64::MAX / 2)));
        self
    }

    /// With an OpenID Connect `id_token`.
    pub fn id_token(mut self, id_token: Option<String>) -> Self {
        self.id_token = id_token;
        self
    }
}

impl Profile {
    /// A profile with the provider's immutable user id and its raw document.
    pub fn new(social_id: impl Into<String>, raw: serde_json::Value) -> Self {
        Profile {
            social_id: social_id.into(),
            name: None,
            email: None,
            email_verified: false,
            avatar_url: None,
            raw,
        }
    }

    /// With a display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// With an email the provider does not vouch for.
    pub fn unverified_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self.email_verified = false;
        self
    }

    /// With an email the provider vouches for.
    pub fn verified_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self.email_verified = true;
        self
    }

    /// With a picture.
    pub fn avatar_url(mut self, url: impl Into<String>) -> Self {
        self.avatar_url = Some(url.into());
        self
    }
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

/// What a sign-in needs to build the authorize URL and finish the exchange: the values this
/// crate generated for it and keeps in the flow cookie.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct FlowParams<'a> {
    /// The CSRF `state`.
    pub state: &'a str,
    /// The PKCE verifier; the authorize URL carries its S256 challenge.
    pub pkce_verifier: &'a str,
    /// The OpenID Connect `nonce`.
    pub nonce: &'a str,
    /// The `user` field of a `form_post` authorization response, as it came (Apple sends the
    /// user's name in it, on the first authorization only); `None` for every other callback.
    pub form_user: Option<&'a str>,
}

impl<'a> FlowParams<'a> {
    /// The values of one flow (for a provider's own tests).
    pub fn new(state: &'a str, pkce_verifier: &'a str, nonce: &'a str) -> Self {
        FlowParams {
            state,
            pkce_verifier,
            nonce,
            form_user: None,
        }
    }

    /// With the `user` field of a `form_post` callback.
    pub fn form_user(mut self, user: Option<&'a str>) -> Self {
        self.form_user = user;
        self
    }
}

/// Why a provider call failed; it decides the answer of the route (see each variant). `Clone`:
/// one failed discovery or JWKS fetch answers every caller that waited on it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The provider answered an error, e.g. `bad_verification_code`, a used code, a rate limit
    /// (502).
    #[error("the provider refused: {code}")]
    Rejected {
        /// The provider's error code.
        code: String,
        /// Its description, when it gave one.
        description: Option<String>,
    },
    /// The grant or token is dead for good (`invalid_grant`, GitHub's `bad_refresh_token`,
    /// Facebook's code 190): the user must sign in again (401 on refresh).
    #[error("the provider refused the grant: {code}")]
    InvalidGrant {
        /// The provider's error code.
        code: String,
        /// Its description, when it gave one.
        description: Option<String>,
    },
    /// No answer within `http_timeout_secs` (504).
    #[error("the provider did not answer in time")]
    Timeout,
    /// No connection (502).
    #[error("{0}")]
    Unreachable(String),
    /// An answer we cannot use: a 5xx, HTML, malformed JSON, an API error, an `id_token` that
    /// fails a check (502).
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
    /// The user's organization (a Microsoft tenant) may not sign in here: not among
    /// `allowed_tenants`, or not of the tenant class the table names (403
    /// `tenant_not_allowed`).
    #[error("the tenant `{0}` may not sign in here")]
    TenantNotAllowed(String),
    /// What the provider publishes can never work with this table (e.g. its discovery
    /// advertises no client authentication we are configured for): the error names the key that
    /// fixes it. From [`Provider::warm_up`] it fails the launch; later, the routes answer 500
    /// `provider_misconfigured`.
    #[error("{0}")]
    Misconfigured(crate::config::ConfigError),
}

impl ProviderError {
    /// A [`BadResponse`](ProviderError::BadResponse): an answer that cannot be used.
    pub fn bad_response(what: impl std::fmt::Display) -> Self {
        ProviderError::BadResponse(what.to_string())
    }

    /// Whether the provider refused a refresh token for good (`invalid_grant`,
    /// `bad_refresh_token`): the user must sign in again.
    pub fn needs_reauthentication(&self) -> bool {
        matches!(self, ProviderError::InvalidGrant { .. })
    }
}

/// Which stored token a refresh spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshWith {
    /// The refresh token (OAuth 2).
    RefreshToken,
    /// The access token itself (Facebook's long-lived token exchange).
    AccessToken,
}

/// One provider's side of a sign-in: this crate keeps the flow (`state`, PKCE, `nonce` in a
/// flow cookie), the users, the tokens (encrypted) and the JWT; a provider only speaks to its
/// provider.
///
/// Implement it for a provider this crate does not have, and register a kind that builds it
/// with [`SocialAuthFairing::provider_kind`](crate::SocialAuthFairing::provider_kind).
/// [`OAuth2Client`] does the OAuth 2.0 parts for you.
///
/// The profile must key the user on the provider's immutable id ([`Profile::social_id`]),
/// never on a name or an email, and set [`Profile::email_verified`] only when the provider
/// vouches for the address.
///
/// ```
/// use rocket::async_trait;
/// use rocket_social_auth::provider::{
///     FlowParams, OAuth2Client, Profile, Provider, ProviderError, TokenSet,
/// };
/// use rocket_social_auth::Secret;
///
/// struct Acme {
///     oauth: OAuth2Client,
///     userinfo: String,
/// }
///
/// #[async_trait]
/// impl Provider for Acme {
///     async fn authorize_url(&self, flow: &FlowParams<'_>) -> Result<url::Url, ProviderError> {
///         Ok(self.oauth.authorize_url(flow, &[]))
///     }
///
///     async fn exchange_code(&self, code: &str, flow: &FlowParams<'_>)
///         -> Result<TokenSet, ProviderError> {
///         self.oauth.exchange_code(code, flow).await
///     }
///
///     async fn profile(&self, tokens: &TokenSet, _flow: &FlowParams<'_>)
///         -> Result<Profile, ProviderError> {
///         let http = self.oauth.http();
///         let answer = http
///             .send(http.get(&self.userinfo).bearer_auth(tokens.access_token.expose()))
///             .await?;
///         let me: serde_json::Value = answer.json("Acme GET /me")?;
///         let id = me["id"].as_u64().ok_or_else(|| ProviderError::bad_response("no id"))?;
///         Ok(Profile::new(id.to_string(), me))
///     }
///
///     async fn refresh(&self, token: &Secret) -> Result<TokenSet, ProviderError> {
///         self.oauth.refresh(token).await
///     }
/// }
/// ```
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The authorize URL the browser is sent to. It must carry `flow.state`, and the S256
    /// challenge of `flow.pkce_verifier` wherever the provider supports PKCE.
    async fn authorize_url(&self, flow: &FlowParams<'_>) -> Result<Url, ProviderError>;

    /// Exchanges the authorization code of the callback for tokens.
    async fn exchange_code(
        &self,
        code: &str,
        flow: &FlowParams<'_>,
    ) -> Result<TokenSet, ProviderError>;

    /// The profile of the tokens' user (for OpenID Connect, from the checked `id_token`).
    async fn profile(
        &self,
        tokens: &TokenSet,
        flow: &FlowParams<'_>,
    ) -> Result<Profile, ProviderError>;

    /// Which stored token [`refresh`](Self::refresh) takes. Default: the refresh token.
    fn refresh_with(&self) -> RefreshWith {
        RefreshWith::RefreshToken
    }

    /// Gets fresh tokens with the stored token named by [`refresh_with`](Self::refresh_with).
    /// Default: the provider does not refresh (the refresh route answers 502).
    async fn refresh(&self, _token: &Secret) -> Result<TokenSet, ProviderError> {
        Err(ProviderError::Rejected {
            code: "refresh_not_supported".into(),
            description: Some("this provider does not refresh tokens".into()),
        })
    }

    /// Checks the `iss` parameter of the authorization response (RFC 9207, against mix-up
    /// attacks). Default: accepted, for providers that do not send it.
    async fn check_response_issuer(&self, _iss: Option<&str>) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Whether [`Profile::email_verified`] from this provider may link accounts at all
    /// (with `link_by_verified_email = true` in its table). Default `true`; the development
    /// provider, which signs in anyone as anyone, says `false`.
    fn vouches_for_email(&self) -> bool {
        true
    }

    /// Whether the provider answers with `response_mode=form_post`: a cross-site `POST` of the
    /// authorization response to `{base}/<name>/callback` (Sign in with Apple). Only then does
    /// that route take a `POST`, which it turns into the `GET` callback (see the manual's
    /// "Sign in with Apple" section); every other provider's callback is `GET` only. Default
    /// `false`.
    fn uses_form_post(&self) -> bool {
        false
    }

    /// Called once at launch, e.g. to fetch a discovery document. A failure is logged and the
    /// app launches anyway: a provider that is down must not take the app down. The exception
    /// is [`ProviderError::Misconfigured`]: what the provider published can never work with its
    /// table, and the launch fails naming the key that fixes it.
    async fn warm_up(&self) -> Result<(), ProviderError> {
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
