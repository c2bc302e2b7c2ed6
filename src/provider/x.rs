//! X (Twitter) OAuth 2.0 user context: a confidential client with HTTP Basic and PKCE, the user
//! from `/2/users/me`, X's problem-JSON errors, and rotating refresh tokens.

use rocket::async_trait;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::http_client::Answer;
use super::oauth2::{OAuth2Client, OAuth2Settings, TokenAuth};
use super::{FlowParams, Profile, Provider, ProviderContext, ProviderError, TokenSet};
use crate::config::ConfigError;
use crate::secret::Secret;

/// A `kind = "x"` table.
///
/// ```toml
/// [default.social_auth.providers.x]
/// client_id = "…"                    # the OAuth 2.0 Client ID of a Web App
/// client_secret = "…"
/// offline = false                    # true: also `offline.access`, for refresh tokens
/// # For a test double:
/// authorize_url = "https://x.com/i/oauth2/authorize"
/// token_url = "https://api.x.com/2/oauth2/token"
/// api_url = "https://api.x.com"      # the user is at {api_url}/2/users/me
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct XSettings {
    client_id: Option<String>,
    client_secret: Option<Secret>,
    authorize_url: Option<String>,
    token_url: Option<String>,
    api_url: Option<String>,
    #[serde(default)]
    offline: bool,
}

const AUTHORIZE_URL: &str = "https://x.com/i/oauth2/authorize";
const TOKEN_URL: &str = "https://api.x.com/2/oauth2/token";
const API_URL: &str = "https://api.x.com";

/// The kind `x`.
pub(crate) fn build(settings: XSettings, ctx: &ProviderContext<'_>) -> Result<X, ConfigError> {
    let client_id = ctx.required("client_id", settings.client_id)?;
    let client_secret = ctx.required_secret("client_secret", settings.client_secret)?;
    let authorize = ctx.url_or(
        "authorize_url",
        settings.authorize_url.as_deref(),
        AUTHORIZE_URL,
    )?;
    let token = ctx.url_or("token_url", settings.token_url.as_deref(), TOKEN_URL)?;
    let api = ctx.url_or("api_url", settings.api_url.as_deref(), API_URL)?;
    let mut scopes = vec!["users.read".to_owned(), "tweet.read".to_owned()];
    if settings.offline {
        scopes.push("offline.access".into());
    }
    // X requires PKCE (on by default) and Basic for a confidential client.
    let oauth = OAuth2Settings::new(
        client_id,
        client_secret,
        authorize,
        token,
        ctx.callback_url().clone(),
    )
    .scopes(scopes)
    .token_auth(TokenAuth::Basic);
    Ok(X {
        oauth: OAuth2Client::new(oauth, ctx.http().clone()),
        api_url: api.as_str().trim_end_matches('/').to_owned(),
    })
}

/// The X provider.
pub(crate) struct X {
    oauth: OAuth2Client,
    api_url: String,
}

#[derive(Deserialize)]
struct XUser {
    /// A snowflake, as a string.
    id: String,
    name: Option<String>,
    username: Option<String>,
    profile_image_url: Option<String>,
}

/// What an X error body says: a problem (`title`, `detail`, `type`), or the documented v1
/// shape `{"errors": [{"code": 88, "message": "Rate limit exceeded"}]}`, or a partial
/// failure's first problem in `errors`.
fn said(doc: &Value) -> Option<String> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let problem = |v: &Value| {
        let kind = text(v, "type")
            .map(|t| {
                t.trim_start_matches("https://api.x.com/2/problems/")
                    .to_owned()
            })
            .filter(|t| t != "about:blank");
        let words = [text(v, "title"), text(v, "detail"), text(v, "message")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
        if words.is_empty() && kind.is_none() {
            return None;
        }
        let mut out = words.join(": ");
        if let Some(code) = v.get("code").and_then(Value::as_i64) {
            out.push_str(&format!(" (code {code})"));
        }
        if let Some(kind) = kind {
            out.push_str(&format!(" [{kind}]"));
        }
        Some(out)
    };
    problem(doc).or_else(|| {
        doc.get("errors")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
            .and_then(problem)
    })
}

fn api_error(what: &str, answer: &Answer) -> ProviderError {
    let doc: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let detail = said(&doc)
        .map(|m| m.chars().take(200).collect::<String>())
        .unwrap_or_else(|| "no usable answer".to_owned());
    ProviderError::BadResponse(format!(
        "X {what} answered {}: {detail}",
        answer.status.as_u16()
    ))
}

#[async_trait]
impl Provider for X {
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
                http.get(&format!(
                    "{}/2/users/me?user.fields=profile_image_url",
                    self.api_url
                ))
                .bearer_auth(tokens.access_token.expose()),
            )
            .await?;
        if !answer.status.is_success() {
            return Err(api_error("GET /2/users/me", &answer));
        }
        let raw: Value = answer.json("X GET /2/users/me")?;
        // A 200 without `data` is a failure told in `errors`.
        let Some(data) = raw.get("data").filter(|d| d.is_object()) else {
            return Err(api_error("GET /2/users/me", &answer));
        };
        let user: XUser = serde_json::from_value(data.clone()).map_err(|e| {
            ProviderError::BadResponse(format!("X GET /2/users/me: unexpected answer ({e})"))
        })?;
        if user.id.is_empty() || !user.id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProviderError::bad_response(
                "X GET /2/users/me: the id is no snowflake",
            ));
        }
        let mut profile = Profile::new(user.id, raw);
        profile.name = user.name.filter(|n| !n.trim().is_empty()).or(user.username);
        profile.avatar_url = user.profile_image_url;
        Ok(profile)
    }

    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenSet, ProviderError> {
        // The answer carries a new refresh token (the old one is single-use): it replaces it.
        // X refuses a spent or revoked refresh token with `invalid_request` ("Value passed for
        // the token was invalid."), not `invalid_grant`: the grant is dead all the same.
        match self.oauth.refresh(refresh_token).await {
            Err(ProviderError::Rejected { code, description }) if code == "invalid_request" => {
                Err(ProviderError::InvalidGrant { code, description })
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::said;
    use serde_json::json;

    #[test]
    fn problems_are_read_in_every_shape() {
        assert_eq!(
            said(&json!({"title":"Too Many Requests","detail":"Too Many Requests","type":"about:blank","status":429})).unwrap(),
            "Too Many Requests: Too Many Requests"
        );
        assert_eq!(
            said(&json!({"errors":[{"code":88,"message":"Rate limit exceeded"}]})).unwrap(),
            "Rate limit exceeded (code 88)"
        );
        assert_eq!(
            said(&json!({"title":"Client Forbidden","detail":"x","type":"https://api.x.com/2/problems/client-forbidden"})).unwrap(),
            "Client Forbidden: x [client-forbidden]"
        );
        assert_eq!(said(&json!({"data": null})), None);
    }
}
