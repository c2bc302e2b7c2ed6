//! Sign in with Apple (`kind = "apple"`): OpenID Connect against Apple's discovery, with a
//! client secret we mint (an ES256 JWT signed with the team's `.p8` key), `form_post` answers,
//! and the user's name taken from the one-time `user` field of the first authorization.
//!
//! Apple's quirks handled here: no `client_secret` to configure (the JWT is minted, cached
//! and renewed after half of its 30-day life, well within Apple's six-month limit, its `aud`
//! always `https://appleid.apple.com`); client credentials in the form body (Apple's discovery
//! advertises only `client_secret_post`); `response_mode=form_post`, required with the `name`
//! and `email` scopes, whose cross-site `POST` the callback route turns into a same-site `GET`
//! (see [`Provider::uses_form_post`]); `email_verified` and `is_private_email` as the strings
//! `"true"`/`"false"` or booleans; a refresh token that never rotates (the stored one is kept).

use std::fmt;
use std::sync::{Mutex, PoisonError};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rocket::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use super::oidc::{MintSecret, Offline, Oidc, Quirks, STANDARD};
use super::{FlowParams, Profile, Provider, ProviderContext, ProviderError, TokenSet};
use crate::config::ConfigError;
use crate::secret::Secret;

/// Apple's issuer, and the audience of every client secret (wherever `issuer` points).
const APPLE: &str = "https://appleid.apple.com";

/// How long a minted client secret is valid: 30 days (Apple allows six months at most).
const SECRET_LIFETIME_SECS: i64 = 30 * 86_400;
/// A cached client secret is replaced once it is this old: half its lifetime, so that one in
/// use has always 15 days left (clock skew, a slow deploy).
const SECRET_RENEW_AFTER_SECS: i64 = SECRET_LIFETIME_SECS / 2;
// Never close to Apple's limit of six months (15,777,000 s), checked when compiling.
const _: () = assert!(SECRET_LIFETIME_SECS < 15_777_000 / 4);

/// Apple's quirks as an OpenID provider.
const APPLE_QUIRKS: Quirks = Quirks {
    default_issuer: Some(APPLE),
    bare_issuer: false,
    // Apple always sends a refresh token, and `offline` is not a key of this kind.
    offline: Offline::Implicit,
    ..STANDARD
};

/// A `kind = "apple"` table.
///
/// ```toml
/// [default.social_auth.providers.apple]
/// client_id = "com.example.web"         # the Services ID
/// team_id = "ABCDE12345"                # 10 characters, from the developer account
/// key_id = "XYZ987WVU6"                 # the Key ID of the Sign in with Apple key
/// private_key_file = "AuthKey_XYZ987WVU6.p8"   # or private_key = "-----BEGIN PRIVATE KEY-----…"
/// scopes = ["name", "email"]            # the default
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppleSettings {
    client_id: Option<String>,
    team_id: Option<String>,
    key_id: Option<String>,
    private_key_file: Option<String>,
    private_key: Option<Secret>,
    scopes: Option<Vec<String>>,
    issuer: Option<String>,
}

/// The kind `apple`.
pub(crate) fn build(
    settings: AppleSettings,
    ctx: &ProviderContext<'_>,
) -> Result<Apple, ConfigError> {
    let client_id = ctx.required("client_id", settings.client_id.clone())?;
    let team_id = apple_id(ctx, "team_id", settings.team_id)?;
    let key_id = apple_id(ctx, "key_id", settings.key_id)?;
    let (field, pem) = match (settings.private_key, settings.private_key_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                ctx.key("private_key"),
                "and private_key_file are both set: give one of them",
            ))
        }
        (Some(pem), None) => (
            "private_key",
            ctx.required_secret("private_key", Some(pem))?,
        ),
        (None, Some(path)) => {
            let path = ctx.required("private_key_file", Some(path))?;
            let pem = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::new(
                    ctx.key("private_key_file"),
                    format!("cannot be read ({path}): {e}"),
                )
            })?;
            ("private_key_file", Secret::new(pem))
        }
        (None, None) => {
            return Err(ConfigError::new(
                ctx.key("private_key"),
                "is required (or private_key_file): the .p8 key of Sign in with Apple",
            ))
        }
    };
    let not_a_key = || {
        ConfigError::new(
            ctx.key(field),
            "is not a PKCS#8 P-256 private key (the .p8 file Apple gives, \"-----BEGIN PRIVATE KEY-----\")",
        )
    };
    crate::jwt::install_crypto();
    let key = EncodingKey::from_ec_pem(pem.expose().trim().as_bytes()).map_err(|_| not_a_key())?;
    let minter = ClientSecretJwt {
        team_id,
        key_id,
        client_id: client_id.clone(),
        key,
        cached: Mutex::new(None),
    };
    // A key that parses may still not sign ES256 (another curve): found now, not at a login.
    minter.mint(crate::clock::now()).map_err(|_| not_a_key())?;
    let scopes = settings
        .scopes
        .unwrap_or_else(|| vec!["name".into(), "email".into()]);
    if let Some(bad) = scopes
        .iter()
        .find(|s| !matches!(s.as_str(), "name" | "email" | "openid"))
    {
        return Err(ConfigError::new(
            ctx.key("scopes"),
            format!("has `{bad}`: Apple knows only \"name\", \"email\" (and \"openid\")"),
        ));
    }
    let oidc = Oidc::with_minted_secret(
        ctx,
        APPLE_QUIRKS,
        (settings.issuer, Some(client_id), Some(scopes)),
        Box::new(minter),
    )?
    .response_mode("form_post");
    Ok(Apple { oidc })
}

/// A Team ID or Key ID: ten letters or digits, as Apple's developer account shows them.
fn apple_id(
    ctx: &ProviderContext<'_>,
    field: &str,
    value: Option<String>,
) -> Result<String, ConfigError> {
    let value = ctx.required(field, value)?;
    if value.len() != 10 || !value.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ConfigError::new(
            ctx.key(field),
            "is 10 letters or digits, as Apple's developer account shows it",
        ));
    }
    Ok(value)
}

/// The client secret Apple specifies: an ES256 JWT with `kid` = the Key ID, `iss` = the Team
/// ID, `sub` = the Services ID, `aud` = `https://appleid.apple.com`; minted once and reused
/// until it is [`SECRET_RENEW_AFTER_SECS`] old.
struct ClientSecretJwt {
    team_id: String,
    key_id: String,
    client_id: String,
    key: EncodingKey,
    /// The secret in use and when it was minted.
    cached: Mutex<Option<(Secret, i64)>>,
}

impl fmt::Debug for ClientSecretJwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecretJwt")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ClientSecretJwt {
    /// A new secret, issued at `now`.
    fn mint(&self, now: i64) -> Result<Secret, ProviderError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let claims = json!({
            "iss": self.team_id,
            "iat": now,
            "exp": now + SECRET_LIFETIME_SECS,
            "aud": APPLE,
            "sub": self.client_id,
        });
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map(Secret::new)
            .map_err(|e| ProviderError::bad_response(format!("the client secret: {e}")))
    }

    /// The secret to send at `now`: the cached one, or a new one when it is due for renewal
    /// (or minted in the future: a clock that went back).
    fn at(&self, now: i64) -> Result<Secret, ProviderError> {
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((secret, minted)) = cached.as_ref() {
            if (0..SECRET_RENEW_AFTER_SECS).contains(&(now - minted)) {
                return Ok(secret.clone());
            }
        }
        let secret = self.mint(now)?;
        *cached = Some((secret.clone(), now));
        Ok(secret)
    }
}

impl MintSecret for ClientSecretJwt {
    fn client_secret(&self) -> Result<Secret, ProviderError> {
        self.at(crate::clock::now())
    }
}

/// Sign in with Apple.
pub(crate) struct Apple {
    oidc: Oidc,
}

/// The display name in the `user` field of a first authorization:
/// `{"name":{"firstName":"John","lastName":"Appleseed"},"email":"…"}`.
fn name_of(user: &str) -> Option<String> {
    let user: Value = serde_json::from_str(user).ok()?;
    let part = |p: &str| user["name"][p].as_str().map(str::trim).unwrap_or("");
    let name = [part("firstName"), part("lastName")]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!name.is_empty()).then_some(name)
}

#[async_trait]
impl Provider for Apple {
    async fn authorize_url(&self, flow: &FlowParams<'_>) -> Result<Url, ProviderError> {
        self.oidc.authorize_url(flow).await
    }

    async fn exchange_code(
        &self,
        code: &str,
        flow: &FlowParams<'_>,
    ) -> Result<TokenSet, ProviderError> {
        self.oidc.exchange_code(code, flow).await
    }

    /// The `id_token`'s claims (checked as for any OpenID provider), with the name from the
    /// `user` field when the callback had one: Apple puts no name in the `id_token` and sends
    /// `user` on the first authorization only (a stored name is then kept on later sign-ins).
    /// The email is the `id_token`'s, never the unsigned `user` field's.
    async fn profile(
        &self,
        tokens: &TokenSet,
        flow: &FlowParams<'_>,
    ) -> Result<Profile, ProviderError> {
        let mut profile = self.oidc.profile(tokens, flow).await?;
        if let Some(name) = flow.form_user.and_then(name_of) {
            profile.name = Some(name);
        }
        // Apple publishes no picture.
        profile.avatar_url = None;
        Ok(profile)
    }

    /// Apple's refresh: an access token (and maybe an `id_token`), never a new refresh token,
    /// so the stored one is kept.
    async fn refresh(&self, token: &Secret) -> Result<TokenSet, ProviderError> {
        self.oidc.refresh(token).await
    }

    async fn check_response_issuer(&self, iss: Option<&str>) -> Result<(), ProviderError> {
        self.oidc.check_response_issuer(iss).await
    }

    /// Apple vouches for its emails (`email_verified`), private relay addresses
    /// (`…@privaterelay.appleid.com`) included: each reaches the user, and is unique to them and
    /// to this team, so it can only link to an account another trusted provider vouched for at
    /// the same address.
    fn vouches_for_email(&self) -> bool {
        true
    }

    fn uses_form_post(&self) -> bool {
        true
    }

    async fn warm_up(&self) -> Result<(), ProviderError> {
        self.oidc.warm_up().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::context::with_context;

    /// A P-256 key in PKCS#8 PEM, as a `.p8` file holds it (made for these tests only).
    const P8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgspMSnybD8d+JWHhy
yRedlFLfBtI0ZF6Zrj4o19h3iO6hRANCAARJLe1vwLxbsWRD8l0zxSEI4rJyo6R/
rtYHosnXcVYniJCbWQAwNFea/zFR3Kzxp8GmCoatZZ2/J7W7XT7VAseh
-----END PRIVATE KEY-----";

    fn minter() -> ClientSecretJwt {
        crate::jwt::install_crypto();
        ClientSecretJwt {
            team_id: "TEAM123456".into(),
            key_id: "KEY1234567".into(),
            client_id: "com.example.web".into(),
            key: EncodingKey::from_ec_pem(P8.as_bytes()).unwrap(),
            cached: Mutex::new(None),
        }
    }

    fn decoded(secret: &Secret) -> (jsonwebtoken::Header, Value) {
        use base64::Engine;
        let header = jsonwebtoken::decode_header(secret.expose()).unwrap();
        let payload = secret.expose().split('.').nth(1).unwrap();
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        (header, serde_json::from_slice(&payload).unwrap())
    }

    #[test]
    fn the_client_secret_is_the_jwt_apple_specifies() {
        let t = 1_700_000_000;
        let secret = minter().at(t).unwrap();
        let (header, claims) = decoded(&secret);
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("KEY1234567"));
        assert_eq!(
            claims,
            json!({"iss": "TEAM123456", "iat": t, "exp": t + 30 * 86_400,
                   "aud": "https://appleid.apple.com", "sub": "com.example.web"})
        );
        // Raw R‖S (64 bytes), as JWS ES256 wants, not DER.
        let signature = secret.expose().rsplit('.').next().unwrap();
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap();
        assert_eq!(raw.len(), 64);
        assert!(!format!("{:?}", minter()).contains("PRIVATE"));
    }

    #[test]
    fn the_client_secret_is_cached_then_renewed_after_half_its_life() {
        let m = minter();
        let t = 1_700_000_000;
        let first = m.at(t).unwrap();
        assert_eq!(m.at(t + 1).unwrap().expose(), first.expose());
        assert_eq!(
            m.at(t + SECRET_RENEW_AFTER_SECS - 1).unwrap().expose(),
            first.expose()
        );
        let renewed = m.at(t + SECRET_RENEW_AFTER_SECS).unwrap();
        assert_ne!(renewed.expose(), first.expose());
        assert_eq!(decoded(&renewed).1["iat"], t + SECRET_RENEW_AFTER_SECS);
        // A clock that went back gets a fresh secret, not one issued in its future.
        let back = m.at(t).unwrap();
        assert_eq!(decoded(&back).1["iat"], t);
    }

    #[test]
    fn the_name_comes_from_the_user_field() {
        let user =
            r#"{"name":{"firstName":"John","lastName":"Appleseed"},"email":"j@example.com"}"#;
        assert_eq!(name_of(user).as_deref(), Some("John Appleseed"));
        assert_eq!(
            name_of(r#"{"name":{"firstName":" Jo "}}"#).as_deref(),
            Some("Jo")
        );
        for none in [r#"{"email":"j@example.com"}"#, "not json", r#"{"name":{}}"#] {
            assert_eq!(name_of(none), None, "{none}");
        }
    }

    const JWT: &str = "[social_auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\n";

    fn config_error(table: &str) -> ConfigError {
        use rocket::figment::providers::{Format, Toml};
        crate::jwt::install_crypto();
        with_context("apple", JWT, |ctx| {
            let settings: AppleSettings = rocket::figment::Figment::from(Toml::string(table))
                .extract()
                .expect("settings parse");
            build(settings, ctx).err().expect("refused")
        })
    }

    #[test]
    fn bad_tables_name_the_key() {
        let key = toml_escape(P8);
        let ok =
            "client_id = \"com.example.web\"\nteam_id = \"TEAM123456\"\nkey_id = \"KEY1234567\"";
        let cases = [
            (ok.to_string(), "social_auth.providers.apple.private_key"),
            (
                format!("{ok}\nprivate_key = \"not a key\""),
                "social_auth.providers.apple.private_key",
            ),
            (
                format!("{ok}\nprivate_key_file = \"/nonexistent/AuthKey.p8\""),
                "social_auth.providers.apple.private_key_file",
            ),
            (
                format!("{ok}\nprivate_key = \"{key}\"\nprivate_key_file = \"k.p8\""),
                "social_auth.providers.apple.private_key",
            ),
            (
                format!("client_id = \"c\"\nteam_id = \"short\"\nkey_id = \"KEY1234567\"\nprivate_key = \"{key}\""),
                "social_auth.providers.apple.team_id",
            ),
            (
                format!("client_id = \"c\"\nteam_id = \"TEAM123456\"\nprivate_key = \"{key}\""),
                "social_auth.providers.apple.key_id",
            ),
            (
                format!("team_id = \"TEAM123456\"\nkey_id = \"KEY1234567\"\nprivate_key = \"{key}\""),
                "social_auth.providers.apple.client_id",
            ),
            (
                format!("{ok}\nprivate_key = \"{key}\"\nscopes = [\"profile\"]"),
                "social_auth.providers.apple.scopes",
            ),
            (
                format!("{ok}\nprivate_key = \"{key}\"\nissuer = \"http://apple.example\""),
                "social_auth.providers.apple.issuer",
            ),
        ];
        use rocket::figment::providers::{Format, Toml};
        let with_secret = format!("{ok}\nprivate_key = \"{key}\"\nclient_secret = \"s\"");
        let refused = rocket::figment::Figment::from(Toml::string(&with_secret))
            .extract::<AppleSettings>()
            .unwrap_err();
        assert!(refused.to_string().contains("client_secret"), "{refused}");
        for (table, expected) in cases {
            let error = config_error(&table);
            assert_eq!(error.key(), expected, "{table}: {error}");
            assert!(!error.to_string().contains("MIGHAgEA"), "{error}");
        }
    }

    fn toml_escape(pem: &str) -> String {
        pem.replace('\n', "\\n")
    }
}
