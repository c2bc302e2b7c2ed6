//! Facebook Login and the Graph API: code exchange, `/me` with `appsecret_proof`, the error
//! envelope, and the long-lived token exchange that stands in for a refresh.

use aws_lc_rs::hmac;
use rocket::async_trait;
use serde::Deserialize;
use url::Url;

use super::{FlowParams, Profile, Provider, ProviderContext, ProviderError, RefreshWith, TokenSet};
use crate::clock::now;
use crate::config::ConfigError;
use crate::provider::http_client::{Answer, HttpClient};
use crate::secret::Secret;

/// A `kind = "facebook"` table.
///
/// ```toml
/// [default.social_auth.providers.facebook]
/// client_id = "1234567890"        # the app id
/// client_secret = "…"             # the app secret
/// authorize_url = "https://www.facebook.com/v19.0/dialog/oauth"
/// graph_url = "https://graph.facebook.com/v19.0"
/// scopes = ["email", "public_profile"]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FacebookSettings {
    client_id: Option<String>,
    client_secret: Option<Secret>,
    authorize_url: Option<String>,
    graph_url: Option<String>,
    scopes: Option<Vec<String>>,
}

/// The kind `facebook`.
pub(crate) fn build(
    settings: FacebookSettings,
    ctx: &ProviderContext<'_>,
) -> Result<Facebook, ConfigError> {
    let graph = ctx.url_or(
        "graph_url",
        settings.graph_url.as_deref(),
        "https://graph.facebook.com/v19.0",
    )?;
    Ok(Facebook {
        client_id: ctx.required("client_id", settings.client_id)?,
        client_secret: ctx.required_secret("client_secret", settings.client_secret)?,
        authorize_url: ctx.url_or(
            "authorize_url",
            settings.authorize_url.as_deref(),
            "https://www.facebook.com/v19.0/dialog/oauth",
        )?,
        graph_url: graph.as_str().trim_end_matches('/').to_owned(),
        scopes: settings
            .scopes
            .unwrap_or_else(|| vec!["email".into(), "public_profile".into()]),
        redirect_uri: ctx.callback_url().to_string(),
        http: ctx.http().clone(),
    })
}

/// A Facebook app.
pub(crate) struct Facebook {
    client_id: String,
    client_secret: Secret,
    authorize_url: Url,
    graph_url: String,
    scopes: Vec<String>,
    redirect_uri: String,
    http: HttpClient,
}

/// `appsecret_proof`: lowercase hex of HMAC-SHA256 keyed by the app secret over the token.
pub(crate) fn appsecret_proof(app_secret: &str, access_token: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, app_secret.as_bytes());
    hmac::sign(&key, access_token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<i64>,
}

#[derive(Deserialize)]
struct Me {
    id: String,
    name: Option<String>,
    email: Option<String>,
    picture: Option<Picture>,
}

#[derive(Deserialize)]
struct Picture {
    data: Option<PictureData>,
}

#[derive(Deserialize)]
struct PictureData {
    url: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    message: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<i64>,
    error_subcode: Option<i64>,
}

/// Reads Facebook's error envelope: code 190 (a bad or expired token) means the grant is
/// dead; everything else (a used code, rate limits 4 and 17, …) is a refusal.
fn graph_error(what: &str, answer: &Answer) -> ProviderError {
    let Ok(Envelope { error }) = serde_json::from_slice::<Envelope>(&answer.body) else {
        return ProviderError::BadResponse(format!(
            "Facebook {what} answered {} without its error envelope",
            answer.status.as_u16()
        ));
    };
    let mut code = format!(
        "{}#{}",
        error.kind.as_deref().unwrap_or("GraphError"),
        error.code.unwrap_or(0)
    );
    if let Some(sub) = error.error_subcode {
        code.push_str(&format!("/{sub}"));
    }
    let description = error.message;
    if error.code == Some(190) {
        ProviderError::InvalidGrant { code, description }
    } else {
        ProviderError::Rejected { code, description }
    }
}

impl Facebook {
    async fn token_call(
        &self,
        what: &str,
        query: &[(&str, &str)],
    ) -> Result<TokenSet, ProviderError> {
        let request = self
            .http
            .get(&format!("{}/oauth/access_token", self.graph_url))
            .query(query);
        let answer = self.http.send(request).await?;
        if !answer.status.is_success() {
            return Err(graph_error(what, &answer));
        }
        let token: TokenAnswer = answer.json(&format!("Facebook {what}"))?;
        Ok(TokenSet {
            access_token: Secret::new(token.access_token),
            refresh_token: None,
            expires_at: token.expires_in.map(|s| now().saturating_add(s)),
            id_token: None,
        })
    }
}

#[async_trait]
impl Provider for Facebook {
    async fn authorize_url(&self, flow: &FlowParams<'_>) -> Result<Url, ProviderError> {
        // Facebook's code flow has no PKCE (only its OIDC flow, marked as testing): state only.
        let mut url = self.authorize_url.clone();
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("state", flow.state)
            .append_pair("response_type", "code")
            .append_pair("scope", &self.scopes.join(","));
        Ok(url)
    }

    async fn exchange_code(
        &self,
        code: &str,
        _flow: &FlowParams<'_>,
    ) -> Result<TokenSet, ProviderError> {
        self.token_call(
            "code exchange",
            &[
                ("client_id", &self.client_id),
                ("redirect_uri", &self.redirect_uri),
                ("client_secret", self.client_secret.expose()),
                ("code", code),
            ],
        )
        .await
    }

    async fn profile(
        &self,
        tokens: &TokenSet,
        _flow: &FlowParams<'_>,
    ) -> Result<Profile, ProviderError> {
        let token = tokens.access_token.expose();
        let proof = appsecret_proof(self.client_secret.expose(), token);
        let request = self.http.get(&format!("{}/me", self.graph_url)).query(&[
            ("fields", "id,name,email,picture"),
            ("access_token", token),
            ("appsecret_proof", &proof),
        ]);
        let answer = self.http.send(request).await?;
        if !answer.status.is_success() {
            return Err(graph_error("GET /me", &answer));
        }
        let raw: serde_json::Value = answer.json("Facebook GET /me")?;
        let me: Me = serde_json::from_value(raw.clone()).map_err(|e| {
            ProviderError::BadResponse(format!("Facebook GET /me: unexpected answer ({e})"))
        })?;
        Ok(Profile {
            social_id: me.id,
            name: me.name,
            email: me.email,
            // Facebook does not vouch for emails: never used to link accounts.
            email_verified: false,
            avatar_url: me.picture.and_then(|p| p.data).and_then(|d| d.url),
            raw,
        })
    }

    fn refresh_with(&self) -> RefreshWith {
        RefreshWith::AccessToken
    }

    async fn refresh(&self, access_token: &Secret) -> Result<TokenSet, ProviderError> {
        self.token_call(
            "long-lived token exchange",
            &[
                ("grant_type", "fb_exchange_token"),
                ("client_id", &self.client_id),
                ("client_secret", self.client_secret.expose()),
                ("fb_exchange_token", access_token.expose()),
            ],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::appsecret_proof;

    #[test]
    fn proof_is_hex_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            appsecret_proof("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
