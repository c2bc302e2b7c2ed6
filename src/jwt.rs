//! The JWT this crate issues for each login: its claims, how it is signed and checked.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clock::{now, random_token};
use crate::config::{ConfigError, JwtAlgorithm, JwtConfig, JwtKeyConfig};

/// The claims of a JWT issued by this crate.
///
/// `provider` is absent for a token issued by the app for its own (non-social) login
/// through [`crate::AuthService::issue_jwt`]. The profile rides along so that a guard can
/// answer without a database. Claims added by a [`crate::Policy`] are in `extra`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Claims {
    /// The user id, as a string (`users.id` for a social login).
    pub sub: String,
    /// The configured role (`social_auth.jwt.role`), for PostgREST and the like.
    pub role: String,
    /// The provider the user signed in with; `None` for an app's own login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds.
    pub exp: i64,
    /// A unique id of this token: its session, which logout revokes.
    pub jti: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Email address, when the provider gave one.
    #[serde(default)]
    pub email: Option<String>,
    /// Avatar URL.
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// Issuer (`social_auth.jwt.issuer`), when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience (`social_auth.jwt.audience`), when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Claims added by the app's policy.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Claims {
    /// The user id (`users.id`) of a **social** session: `None` for a token without a
    /// `provider` claim (an app's own, Local, login) whatever its `sub` says, and `None` unless
    /// `sub` is canonical decimal (`[1-9][0-9]*` within `i64`: not `"+7"`, `"007"` or `" 7"`).
    ///
    /// Every route and helper that acts on a user's social accounts (link, unlink, refresh,
    /// the provider tokens) takes the user from here, so that an app's own token for a user
    /// named `"7"` can never act as social user 7.
    ///
    /// ```
    /// use rocket_social_auth::Claims;
    ///
    /// let social: Claims = serde_json::from_value(serde_json::json!({
    ///     "sub": "7", "role": "web_user", "provider": "github",
    ///     "iat": 0, "exp": 1, "jti": "j"
    /// })).unwrap();
    /// assert_eq!(social.user_id(), Some(7));
    ///
    /// let mut local = social.clone();
    /// local.provider = None;
    /// assert_eq!(local.user_id(), None, "a Local token is never a social user");
    ///
    /// let mut padded = social.clone();
    /// padded.sub = "+7".into();
    /// assert_eq!(padded.user_id(), None, "only canonical decimal");
    /// ```
    pub fn user_id(&self) -> Option<i64> {
        self.provider.as_ref()?;
        canonical_user_id(&self.sub)
    }
}

/// `sub` as a user id when it is canonical decimal: `[1-9][0-9]*`, within `i64`.
pub(crate) fn canonical_user_id(sub: &str) -> Option<i64> {
    let bytes = sub.as_bytes();
    let canonical =
        matches!(bytes.first(), Some(b'1'..=b'9')) && bytes.iter().all(u8::is_ascii_digit);
    if canonical {
        sub.parse().ok()
    } else {
        None
    }
}

/// Names an app's extra claims may not take.
pub(crate) const RESERVED_CLAIMS: &[&str] = &[
    "sub",
    "role",
    "provider",
    "iat",
    "exp",
    "nbf",
    "jti",
    "name",
    "email",
    "avatar_url",
    "iss",
    "aud",
];

/// Who a token is for: the input of [`crate::AuthService::issue_jwt`].
///
/// ```
/// use rocket_social_auth::Identity;
///
/// let identity = Identity::new("42").name("Ada").email("ada@example.com");
/// assert_eq!(identity.sub, "42");
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Identity {
    /// The `sub` claim.
    pub sub: String,
    /// The `provider` claim; `None` for an app's own login.
    pub provider: Option<String>,
    /// The `name` claim.
    pub name: Option<String>,
    /// The `email` claim.
    pub email: Option<String>,
    /// The `avatar_url` claim.
    pub avatar_url: Option<String>,
    /// More claims; the standard names above are not overridden.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Identity {
    /// An identity with only a subject.
    pub fn new(sub: impl Into<String>) -> Self {
        Identity {
            sub: sub.into(),
            ..Identity::default()
        }
    }

    /// Sets the `provider` claim (a token that [`crate::SocialAuth`] reads as a social login
    /// with that provider).
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the email.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets the avatar URL.
    pub fn avatar_url(mut self, url: impl Into<String>) -> Self {
        self.avatar_url = Some(url.into());
        self
    }
}

/// A token and its claims, as issued.
#[derive(Clone)]
pub struct IssuedJwt {
    /// The encoded token.
    pub token: String,
    /// What it claims.
    pub claims: Claims,
}

impl std::fmt::Debug for IssuedJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedJwt")
            .field("token", &"[redacted]")
            .field("claims", &self.claims)
            .finish()
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid token: {0}")]
pub(crate) struct JwtError(#[from] jsonwebtoken::errors::Error);

/// Signs and checks tokens with the configured keys and algorithm.
pub(crate) struct JwtCodec {
    algorithm: Algorithm,
    signing_kid: Option<String>,
    encoding: EncodingKey,
    /// `(kid, key)`; one key without kid for HMAC.
    decoding: Vec<(Option<String>, DecodingKey)>,
    /// The public keys as a JWK set; `None` for HMAC.
    jwks: Option<serde_json::Value>,
    validation: Validation,
    role: String,
    lifetime_secs: i64,
    issuer: Option<String>,
    audience: Option<String>,
}

/// Installs jsonwebtoken's crypto provider; harmless when already installed.
pub(crate) fn install_crypto() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn algorithm(algorithm: JwtAlgorithm) -> Algorithm {
    match algorithm {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// Reads one asymmetric key: its PEM from the file or inline.
fn load_key(
    index: usize,
    key: &JwtKeyConfig,
    algorithm: Algorithm,
) -> Result<(EncodingKey, DecodingKey, serde_json::Value), ConfigError> {
    let path = format!("social_auth.jwt.keys[{index}]");
    let valid_kid = !key.kid.is_empty()
        && key.kid.len() <= 64
        && key
            .kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !valid_kid {
        return Err(ConfigError::new(
            format!("{path}.kid"),
            "must be 1 to 64 letters, digits, `_`, `-` or `.`",
        ));
    }
    let pem = match (&key.private_key_file, &key.private_key) {
        (Some(file), None) => std::fs::read(file).map_err(|e| {
            ConfigError::new(
                format!("{path}.private_key_file"),
                format!("cannot be read ({}): {e}", file.display()),
            )
        })?,
        (None, Some(inline)) => inline.expose().as_bytes().to_vec(),
        _ => {
            return Err(ConfigError::new(
                path,
                "needs exactly one of private_key_file and private_key",
            ))
        }
    };
    let bad = |what: &str| {
        ConfigError::new(
            format!("{path}.private_key"),
            format!("is not a PKCS#8 PEM {what} private key"),
        )
    };
    let encoding = match algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).map_err(|_| bad("RSA"))?,
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).map_err(|_| bad("P-256"))?,
        _ => EncodingKey::from_ed_pem(&pem).map_err(|_| bad("Ed25519"))?,
    };
    let mut jwk = Jwk::from_encoding_key(&encoding, algorithm).map_err(|_| bad("usable"))?;
    jwk.common.key_id = Some(key.kid.clone());
    jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| bad("usable"))?;
    // Prove the pair works before accepting it.
    let probe = jsonwebtoken::encode(
        &Header::new(algorithm),
        &serde_json::json!({"exp": i64::MAX / 2, "sub": "probe"}),
        &encoding,
    )
    .map_err(|_| bad("usable"))?;
    let mut check = Validation::new(algorithm);
    check.validate_aud = false;
    jsonwebtoken::decode::<serde_json::Value>(&probe, &decoding, &check)
        .map_err(|_| bad("matching"))?;
    let public = serde_json::to_value(&jwk).map_err(|_| bad("usable"))?;
    Ok((encoding, decoding, public))
}

impl JwtCodec {
    /// Builds the codec from a configuration that passed `validate`; reading the keys may fail.
    pub(crate) fn new(config: &JwtConfig) -> Result<Self, ConfigError> {
        install_crypto();
        let algorithm = algorithm(config.algorithm);
        let mut validation = Validation::new(algorithm);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_aud = config.audience.is_some();
        if let Some(aud) = &config.audience {
            validation.set_audience(&[aud]);
        }
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
        }
        let (signing_kid, encoding, decoding, jwks) = if config.keys.is_empty() {
            let secret = config.secret.as_ref().map(|s| s.expose()).unwrap_or("");
            (
                None,
                EncodingKey::from_secret(secret.as_bytes()),
                vec![(None, DecodingKey::from_secret(secret.as_bytes()))],
                None,
            )
        } else {
            let mut first = None;
            let mut decoding: Vec<(Option<String>, DecodingKey)> = Vec::new();
            let mut public = Vec::new();
            for (i, key) in config.keys.iter().enumerate() {
                if decoding
                    .iter()
                    .any(|(k, _)| k.as_deref() == Some(key.kid.as_str()))
                {
                    return Err(ConfigError::new(
                        format!("social_auth.jwt.keys[{i}].kid"),
                        format!("repeats `{}`", key.kid),
                    ));
                }
                let (enc, dec, jwk) = load_key(i, key, algorithm)?;
                if first.is_none() {
                    first = Some(enc);
                }
                decoding.push((Some(key.kid.clone()), dec));
                public.push(jwk);
            }
            let encoding = first.expect("at least one key");
            (
                Some(config.keys[0].kid.clone()),
                encoding,
                decoding,
                Some(serde_json::json!({ "keys": public })),
            )
        };
        Ok(JwtCodec {
            algorithm,
            signing_kid,
            encoding,
            decoding,
            jwks,
            validation,
            role: config.role.clone().unwrap_or_default(),
            lifetime_secs: (config.exp_minutes as i64).saturating_mul(60),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        })
    }

    /// How long an issued token lives, in seconds.
    pub(crate) fn lifetime_secs(&self) -> i64 {
        self.lifetime_secs
    }

    /// The public keys as a JWK set (`None` with an HMAC algorithm).
    pub(crate) fn jwks(&self) -> Option<&serde_json::Value> {
        self.jwks.as_ref()
    }

    /// Issues a token for `identity`, valid from now for the configured lifetime.
    pub(crate) fn issue(&self, identity: Identity) -> Result<IssuedJwt, JwtError> {
        self.issue_as(identity, random_token(16), now())
    }

    /// The `jti` and `iat` a token about to be issued will have (its session is recorded first).
    pub(crate) fn next_session(&self) -> (String, i64, i64) {
        let iat = now();
        (random_token(16), iat, iat + self.lifetime_secs)
    }

    /// Issues a token with a given `jti`, issued at `iat`.
    pub(crate) fn issue_as(
        &self,
        identity: Identity,
        jti: String,
        iat: i64,
    ) -> Result<IssuedJwt, JwtError> {
        let mut extra = identity.extra;
        extra.retain(|k, _| !RESERVED_CLAIMS.contains(&k.as_str()));
        let claims = Claims {
            sub: identity.sub,
            role: self.role.clone(),
            provider: identity.provider,
            iat,
            exp: iat + self.lifetime_secs,
            jti,
            name: identity.name,
            email: identity.email,
            avatar_url: identity.avatar_url,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            extra,
        };
        let mut header = Header::new(self.algorithm);
        header.kid = self.signing_kid.clone();
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)?;
        Ok(IssuedJwt { token, claims })
    }

    /// Checks signature, algorithm (pinned; never taken from the token), key id, expiry, and
    /// issuer and audience when configured; returns the claims.
    pub(crate) fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        let key = match self.decoding.as_slice() {
            [(None, key)] => key,
            keys => {
                let kid = jsonwebtoken::decode_header(token)?.kid;
                keys.iter()
                    .find(|(k, _)| k.is_some() && *k == kid)
                    .map(|(_, key)| key)
                    .ok_or_else(|| {
                        JwtError(jsonwebtoken::errors::ErrorKind::InvalidSignature.into())
                    })?
            }
        };
        Ok(jsonwebtoken::decode::<Claims>(token, key, &self.validation)?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn codec(alg: &str) -> JwtCodec {
        JwtCodec::new(&JwtConfig {
            secret: Some(Secret::new("0123456789abcdef0123456789abcdef")),
            algorithm: serde_json::from_value(serde_json::json!(alg)).unwrap(),
            keys: Vec::new(),
            issuer: None,
            audience: None,
            role: Some("web_user".into()),
            exp_minutes: 5,
        })
        .unwrap()
    }

    #[test]
    fn round_trip_carries_every_claim() {
        let c = codec("HS256");
        let issued = c
            .issue(Identity {
                provider: Some("github".into()),
                ..Identity::new("7").name("Ada").email("a@x.io")
            })
            .unwrap();
        let claims = c.verify(&issued.token).unwrap();
        assert_eq!(claims, issued.claims);
        assert_eq!(claims.role, "web_user");
        assert_eq!(claims.exp - claims.iat, 300);
        assert_eq!(claims.user_id(), Some(7));
        assert!(!format!("{issued:?}").contains(&issued.token));
    }

    #[test]
    fn only_canonical_decimal_is_a_user_id() {
        for ok in ["1", "7", "583231", "9223372036854775807"] {
            assert_eq!(canonical_user_id(ok), ok.parse().ok(), "{ok}");
        }
        for bad in [
            "",
            "0",
            "+7",
            "-7",
            "007",
            " 7",
            "7 ",
            "7\n",
            "0x7",
            "7.0",
            "1e3",
            "\u{0667}",
            "9223372036854775808",
            "99999999999999999999",
        ] {
            assert_eq!(canonical_user_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn algorithm_is_pinned() {
        let token = codec("HS512").issue(Identity::new("1")).unwrap().token;
        assert!(codec("HS256").verify(&token).is_err());
    }
}
