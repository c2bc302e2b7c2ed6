//! `kind = "oauth2"`: any OAuth 2.0 provider by configuration, its endpoints in the table and
//! its profile read from the userinfo document with RFC 6901 JSON pointers.

use reqwest::header::ACCEPT;
use rocket::async_trait;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::http_client::Answer;
use super::oauth2::{OAuth2Client, OAuth2Settings, TokenAuth};
use super::{FlowParams, Profile, Provider, ProviderContext, ProviderError, TokenSet};
use crate::config::ConfigError;
use crate::secret::Secret;

/// A `kind = "oauth2"` table.
///
/// ```toml
/// [default.social_auth.providers.acme]
/// kind = "oauth2"
/// client_id = "…"
/// client_secret = "…"
/// authorize_url = "https://acme.example/oauth/authorize"   # required
/// token_url = "https://acme.example/oauth/token"           # required
/// userinfo_url = "https://api.acme.example/me"             # required
/// scopes = ["profile", "email"]      # default: none
/// pkce = true                        # default true (S256)
/// token_auth = "basic"               # "post", or "none" (a public client, PKCE required)
/// [default.social_auth.providers.acme.profile]               # RFC 6901 JSON pointers
/// id = "/id"                         # required; a number or a string
/// name = "/name"
/// email = "/email"
/// email_verified = "/email_verified" # only `true` vouches
/// avatar_url = "/avatar_url"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfiguredSettings {
    client_id: Option<String>,
    client_secret: Option<Secret>,
    authorize_url: Option<String>,
    token_url: Option<String>,
    userinfo_url: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    pkce: Option<bool>,
    #[serde(default)]
    token_auth: TokenAuth,
    profile: Option<PointerSettings>,
}

/// The `profile` sub-table: where each field is in the userinfo document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PointerSettings {
    id: Option<String>,
    name: Option<String>,
    email: Option<String>,
    email_verified: Option<String>,
    avatar_url: Option<String>,
}

/// The profile's JSON pointers, checked.
#[derive(Debug, Clone)]
struct Pointers {
    id: String,
    name: Option<String>,
    email: Option<String>,
    email_verified: Option<String>,
    avatar_url: Option<String>,
}

/// The kind `oauth2`.
pub(crate) fn build(
    settings: ConfiguredSettings,
    ctx: &ProviderContext<'_>,
) -> Result<Configured, ConfigError> {
    let client_id = ctx.required("client_id", settings.client_id)?;
    let client_secret = match settings.token_auth {
        TokenAuth::None => {
            if settings.client_secret.is_some() {
                return Err(ConfigError::new(
                    ctx.key("client_secret"),
                    "is set while token_auth = \"none\" (a public client) would not send it: remove it or choose token_auth = \"basic\" or \"post\"",
                ));
            }
            Secret::new("")
        }
        _ => ctx.required_secret("client_secret", settings.client_secret)?,
    };
    let pkce = settings.pkce.unwrap_or(true);
    if !pkce && settings.token_auth == TokenAuth::None {
        return Err(ConfigError::new(
            ctx.key("pkce"),
            "must be true for a public client (token_auth = \"none\"): nothing else protects its codes",
        ));
    }
    let url = |field: &str, value: Option<String>| -> Result<Url, ConfigError> {
        let value = ctx.required(field, value)?;
        ctx.url(field, &value)
    };
    let authorize = url("authorize_url", settings.authorize_url)?;
    let token = url("token_url", settings.token_url)?;
    let userinfo = url("userinfo_url", settings.userinfo_url)?;
    let Some(profile) = settings.profile else {
        return Err(ConfigError::new(
            ctx.key("profile.id"),
            "is required: the JSON pointer to the user's immutable id in the userinfo answer, e.g. \"/id\"",
        ));
    };
    let pointer = |field: &str, value: Option<String>| -> Result<Option<String>, ConfigError> {
        match value {
            None => Ok(None),
            Some(p) if p.is_empty() || p.starts_with('/') => Ok(Some(p)),
            Some(p) => Err(ConfigError::new(
                ctx.key(&format!("profile.{field}")),
                format!(
                    "is `{p}`, not an RFC 6901 JSON pointer: it must start with `/`, e.g. \"/{p}\""
                ),
            )),
        }
    };
    let pointers = Pointers {
        id: pointer("id", profile.id)?.ok_or_else(|| {
            ConfigError::new(
                ctx.key("profile.id"),
                "is required: the JSON pointer to the user's immutable id, e.g. \"/id\"",
            )
        })?,
        name: pointer("name", profile.name)?,
        email: pointer("email", profile.email)?,
        email_verified: pointer("email_verified", profile.email_verified)?,
        avatar_url: pointer("avatar_url", profile.avatar_url)?,
    };
    let mut oauth = OAuth2Settings::new(
        client_id,
        client_secret,
        authorize,
        token,
        ctx.callback_url().clone(),
    )
    .scopes(settings.scopes)
    .token_auth(settings.token_auth);
    oauth.pkce = pkce;
    Ok(Configured {
        oauth: OAuth2Client::new(oauth, ctx.http().clone()),
        userinfo: userinfo.to_string(),
        pointers,
    })
}

/// An OAuth 2.0 provider described by its table.
pub(crate) struct Configured {
    oauth: OAuth2Client,
    userinfo: String,
    pointers: Pointers,
}

/// A text at `pointer`, or `None` when it finds nothing, `null`, a non-text or a blank.
fn text(doc: &Value, pointer: Option<&str>) -> Option<String> {
    doc.pointer(pointer?)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The user's id at `pointer`: a non-empty string or an integer.
fn id_at(doc: &Value, pointer: &str) -> Result<String, ProviderError> {
    let id = match doc.pointer(pointer) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    };
    id.ok_or_else(|| {
        ProviderError::BadResponse(format!(
            "the userinfo answer has no user id at `{pointer}` (a non-empty string or an integer)"
        ))
    })
}

/// Describes a failed userinfo answer by its status and the error it names (RFC 6750's
/// `error`, or a `message`), never its whole body.
fn userinfo_error(answer: &Answer) -> ProviderError {
    let doc: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let named = [
        "/error_description",
        "/error",
        "/message",
        "/detail",
        "/title",
    ]
    .iter()
    .find_map(|p| text(&doc, Some(p)))
    .or_else(|| {
        answer
            .headers
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
    .map(|m| m.chars().take(200).collect::<String>())
    .unwrap_or_else(|| "no usable answer".to_owned());
    ProviderError::BadResponse(format!(
        "the userinfo endpoint answered {}: {named}",
        answer.status.as_u16()
    ))
}

#[async_trait]
impl Provider for Configured {
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
                http.get(&self.userinfo)
                    .bearer_auth(tokens.access_token.expose())
                    .header(ACCEPT, "application/json"),
            )
            .await?;
        if !answer.status.is_success() {
            return Err(userinfo_error(&answer));
        }
        let doc: Value = answer.json("the userinfo endpoint")?;
        // An RFC 6749-style error answered with a 2xx is still an error.
        if doc.get("error").is_some_and(|e| !e.is_null()) {
            return Err(userinfo_error(&answer));
        }
        let p = &self.pointers;
        let email = text(&doc, p.email.as_deref());
        let verified = email.is_some()
            && p.email_verified
                .as_deref()
                .and_then(|ptr| doc.pointer(ptr))
                .is_some_and(|v| v == &Value::Bool(true));
        Ok(Profile {
            social_id: id_at(&doc, &p.id)?,
            name: text(&doc, p.name.as_deref()),
            email,
            email_verified: verified,
            avatar_url: text(&doc, p.avatar_url.as_deref()),
            raw: doc,
        })
    }

    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenSet, ProviderError> {
        self.oauth.refresh(refresh_token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::context::with_context;
    use serde_json::json;

    const JWT: &str =
        "[social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\nrole = \"web_user\"\n";

    const FULL: &str = "client_id = \"id\"\nclient_secret = \"s\"\nauthorize_url = \"https://acme.example/a\"\ntoken_url = \"https://acme.example/t\"\nuserinfo_url = \"https://acme.example/me\"\n";

    /// The settings of `toml`, or whether it fails to deserialize.
    fn settings(toml: &str) -> Result<ConfiguredSettings, Box<rocket::figment::Error>> {
        use rocket::figment::providers::{Format, Toml};
        rocket::figment::Figment::from(Toml::string(toml))
            .extract()
            .map_err(Box::new)
    }

    fn refused(toml: &str) -> String {
        crate::jwt::install_crypto();
        with_context("acme", JWT, |ctx| {
            build(settings(toml).expect("parses"), ctx)
                .err()
                .expect("refused")
                .key()
                .to_owned()
        })
    }

    #[test]
    fn defaults_are_pkce_and_basic() {
        crate::jwt::install_crypto();
        with_context("acme", JWT, |ctx| {
            let p = build(
                settings(&format!("{FULL}[profile]\nid = \"/id\"\n")).unwrap(),
                ctx,
            )
            .expect("builds");
            let url = p
                .oauth
                .authorize_url(&FlowParams::new("st", &"v".repeat(43), "n"), &[]);
            let q: Vec<_> = url.query_pairs().into_owned().collect();
            assert!(q.contains(&("code_challenge_method".into(), "S256".into())));
            assert!(!q.iter().any(|(k, _)| k == "scope"), "no scopes by default");
            assert_eq!(p.pointers.name, None);
        });
    }

    #[test]
    fn each_wrong_key_is_named() {
        let with = |extra: &str| format!("{FULL}{extra}");
        assert_eq!(refused(FULL), "social_auth.providers.acme.profile.id");
        assert_eq!(
            refused(&with("[profile]\nname = \"/name\"\n")),
            "social_auth.providers.acme.profile.id"
        );
        assert_eq!(
            refused(&with("[profile]\nid = \"id\"\n")),
            "social_auth.providers.acme.profile.id"
        );
        assert_eq!(
            refused(&with("[profile]\nid = \"/id\"\nemail = \"email\"\n")),
            "social_auth.providers.acme.profile.email"
        );
        assert_eq!(
            refused(&FULL.replace(
                "userinfo_url = \"https://acme.example/me\"\n",
                "[profile]\nid = \"/id\"\n"
            )),
            "social_auth.providers.acme.userinfo_url"
        );
        assert_eq!(
            refused(&FULL.replace("https://acme.example/t", "http://acme.example/t")),
            "social_auth.providers.acme.token_url"
        );
        assert_eq!(
            refused(&with(
                "pkce = false\ntoken_auth = \"none\"\n[profile]\nid = \"/id\"\n"
            )),
            "social_auth.providers.acme.client_secret"
        );
        assert_eq!(
            refused(&format!(
                "{}pkce = false\ntoken_auth = \"none\"\n[profile]\nid = \"/id\"\n",
                FULL.replace("client_secret = \"s\"\n", "")
            )),
            "social_auth.providers.acme.pkce"
        );
        assert!(settings(&with("[profile]\nid = \"/id\"\nlogin = \"/x\"\n")).is_err());
    }

    #[test]
    fn pointers_read_ids_texts_and_only_a_true_verification() {
        let doc =
            json!({"user": {"id": 42, "login": "a"}, "sid": " 7 ", "f": 1.5, "e": "", "v": "true"});
        assert_eq!(id_at(&doc, "/user/id").unwrap(), "42");
        assert_eq!(id_at(&doc, "/sid").unwrap(), "7");
        for missing in ["/f", "/e", "/nothing", "/user"] {
            assert!(id_at(&doc, missing).is_err(), "{missing}");
        }
        assert_eq!(text(&doc, Some("/user/login")).as_deref(), Some("a"));
        assert_eq!(text(&doc, Some("/user/id")), None, "a number is no text");
        assert_eq!(text(&doc, Some("/nothing")), None);
        assert_eq!(text(&doc, None), None);
    }
}
