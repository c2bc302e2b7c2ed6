//! Google and any OpenID Connect provider: discovery (cached, retried while it fails), the code
//! flow with `state`, `nonce` and PKCE S256, the token endpoint's advertised client
//! authentication, and `id_token` verification against the provider's JWKS.

use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeVerifier, RedirectUrl, RefreshToken, StandardRevocableToken,
    StandardTokenResponse, TokenUrl,
};
use rocket::async_trait;
use rocket::tokio::sync::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subtle::ConstantTimeEq;
use url::Url;

use super::github::{token_error, token_set};
use super::{FlowParams, Profile, Provider, ProviderError, TokenSet};
use crate::config::{provider_url, ResolvedProvider};
use crate::http::HttpClient;
use crate::jwt::now;
use crate::secret::Secret;

/// Seconds of clock skew allowed on `exp` and `iat`.
const LEEWAY: u64 = 60;

/// The `id_token` field of a token answer.
#[derive(Clone, Serialize, Deserialize)]
struct IdTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl std::fmt::Debug for IdTokenFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdTokenFields([redacted])")
    }
}

impl ExtraTokenFields for IdTokenFields {}

type TokenAnswer = StandardTokenResponse<IdTokenFields, BasicTokenType>;
type Client = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// What discovery told us.
#[derive(Debug)]
struct Metadata {
    issuer: String,
    authorization: Url,
    token: Url,
    userinfo: Option<Url>,
    jwks_uri: Url,
    auth: AuthType,
    /// RFC 9207: the provider puts `iss` in every authorization response.
    iss_parameter: bool,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
    jwks_uri: String,
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// An OpenID provider (Google is one with a default issuer and its own quirks).
pub(crate) struct Oidc {
    name: String,
    google: bool,
    issuer: Url,
    client_id: String,
    client_secret: Secret,
    redirect_uri: String,
    scopes: Vec<String>,
    offline: bool,
    http: HttpClient,
    metadata: Mutex<Option<Arc<Metadata>>>,
    keys: Mutex<Option<Arc<JwkSet>>>,
}

fn bad(what: impl std::fmt::Display) -> ProviderError {
    ProviderError::BadResponse(format!("the id_token is not acceptable: {what}"))
}

/// The algorithm a key is for: its `alg` when it has one, else what its type implies. The
/// token's own header never decides.
fn key_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if let Some(alg) = jwk.common.key_algorithm {
        return match alg {
            KeyAlgorithm::RS256 => Some(Algorithm::RS256),
            KeyAlgorithm::RS384 => Some(Algorithm::RS384),
            KeyAlgorithm::RS512 => Some(Algorithm::RS512),
            KeyAlgorithm::PS256 => Some(Algorithm::PS256),
            KeyAlgorithm::ES256 => Some(Algorithm::ES256),
            KeyAlgorithm::ES384 => Some(Algorithm::ES384),
            KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
            _ => None, // HMAC and anything unknown: never for an id_token
        };
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        _ => None,
    }
}

/// `email_verified` may be a boolean or, in older Google samples, the string `"true"`.
fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

impl Oidc {
    pub(crate) fn new(config: &ResolvedProvider, redirect_uri: &str, http: HttpClient) -> Self {
        Oidc {
            name: config.name.clone(),
            google: config.kind == crate::config::ProviderKind::Google,
            issuer: config.api_url.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            redirect_uri: redirect_uri.to_owned(),
            scopes: config.scopes.clone(),
            offline: config.offline,
            http,
            metadata: Mutex::new(None),
            keys: Mutex::new(None),
        }
    }

    /// Fetches the discovery document now (at launch); on failure the provider answers 503 and
    /// tries again on its next use.
    pub(crate) async fn discover(&self) -> Result<(), ProviderError> {
        self.metadata().await.map(|_| ())
    }

    async fn metadata(&self) -> Result<Arc<Metadata>, ProviderError> {
        let mut cached = self.metadata.lock().await;
        if let Some(metadata) = cached.as_ref() {
            return Ok(metadata.clone());
        }
        let metadata = Arc::new(self.fetch_metadata().await.map_err(|e| {
            log::error!(
                "social_auth: discovery of provider `{}` failed: {e}",
                self.name
            );
            ProviderError::Unavailable(e.to_string())
        })?);
        *cached = Some(metadata.clone());
        Ok(metadata)
    }

    async fn fetch_metadata(&self) -> Result<Metadata, ProviderError> {
        let issuer = self.issuer.as_str().trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let answer = self.http.send(self.http.get(&url)).await?;
        if !answer.status.is_success() {
            return Err(ProviderError::BadResponse(format!(
                "discovery answered {}",
                answer.status.as_u16()
            )));
        }
        let doc: Discovery = answer.json("discovery")?;
        if doc.issuer.trim_end_matches('/') != issuer {
            return Err(ProviderError::BadResponse(format!(
                "discovery names the issuer `{}`, not `{issuer}`",
                doc.issuer
            )));
        }
        let endpoint = |field: &str, value: &str| {
            provider_url(field, value).map_err(|e| ProviderError::BadResponse(e.to_string()))
        };
        let methods = doc
            .token_endpoint_auth_methods_supported
            .unwrap_or_default();
        // client_secret_basic is the default when the provider says nothing.
        let auth = if methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic") {
            AuthType::BasicAuth
        } else if methods.iter().any(|m| m == "client_secret_post") {
            AuthType::RequestBody
        } else {
            return Err(ProviderError::BadResponse(format!(
                "the token endpoint supports none of client_secret_basic, client_secret_post: {methods:?}"
            )));
        };
        Ok(Metadata {
            issuer: doc.issuer,
            authorization: endpoint("authorization_endpoint", &doc.authorization_endpoint)?,
            token: endpoint("token_endpoint", &doc.token_endpoint)?,
            userinfo: doc
                .userinfo_endpoint
                .as_deref()
                .map(|u| endpoint("userinfo_endpoint", u))
                .transpose()?,
            jwks_uri: endpoint("jwks_uri", &doc.jwks_uri)?,
            auth,
            iss_parameter: doc.authorization_response_iss_parameter_supported,
        })
    }

    /// The provider's keys; fetched again when asked to (an unknown `kid`: keys rotate).
    async fn keys(&self, metadata: &Metadata, refetch: bool) -> Result<Arc<JwkSet>, ProviderError> {
        let mut cached = self.keys.lock().await;
        if let (Some(keys), false) = (cached.as_ref(), refetch) {
            return Ok(keys.clone());
        }
        let answer = self
            .http
            .send(self.http.get(metadata.jwks_uri.as_str()))
            .await?;
        if !answer.status.is_success() {
            return Err(bad(format!("the JWKS answered {}", answer.status.as_u16())));
        }
        let keys: Arc<JwkSet> = Arc::new(answer.json("JWKS")?);
        *cached = Some(keys.clone());
        Ok(keys)
    }

    async fn key_for(&self, metadata: &Metadata, kid: Option<&str>) -> Result<Jwk, ProviderError> {
        let pick = |keys: &JwkSet| match kid {
            Some(kid) => keys.find(kid).cloned(),
            None if keys.keys.len() == 1 => keys.keys.first().cloned(),
            None => None,
        };
        if let Some(key) = pick(&*self.keys(metadata, false).await?) {
            return Ok(key);
        }
        pick(&*self.keys(metadata, true).await?)
            .ok_or_else(|| bad(format!("no published key has the id {kid:?}")))
    }

    fn client(&self, metadata: &Metadata) -> Client {
        oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.client_secret.expose().to_owned()))
            .set_auth_uri(AuthUrl::from_url(metadata.authorization.clone()))
            .set_token_uri(TokenUrl::from_url(metadata.token.clone()))
            .set_auth_type(metadata.auth.clone())
            .set_redirect_uri(RedirectUrl::from_url(
                Url::parse(&self.redirect_uri)
                    .unwrap_or_else(|_| Url::parse("http://127.0.0.1/").expect("static URL")),
            ))
    }

    /// The issuers an `id_token` may name: discovery's, and for Google its scheme-less form
    /// (`accounts.google.com`).
    fn issuers(&self, metadata: &Metadata) -> Vec<String> {
        let mut issuers = vec![metadata.issuer.clone()];
        if self.google {
            let bare = metadata
                .issuer
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            issuers.push(bare.to_owned());
        }
        issuers
    }

    /// Verifies the `id_token`: signature by a published key whose algorithm the key decides,
    /// issuer, audience, authorized party, expiry and issue time, nonce.
    async fn verify(&self, id_token: &str, nonce: &str) -> Result<Value, ProviderError> {
        let metadata = self.metadata().await?;
        let header = jsonwebtoken::decode_header(id_token).map_err(bad)?;
        let jwk = self.key_for(&metadata, header.kid.as_deref()).await?;
        let algorithm =
            key_algorithm(&jwk).ok_or_else(|| bad("the key's algorithm is not usable"))?;
        if header.alg != algorithm {
            return Err(bad(format!(
                "signed with {:?}, but the key is for {algorithm:?}",
                header.alg
            )));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(bad)?;
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY;
        validation.set_audience(&[&self.client_id]);
        validation.set_issuer(&self.issuers(&metadata));
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Value>(id_token, &key, &validation)
            .map_err(bad)?
            .claims;
        let iat = claims["iat"].as_i64().ok_or_else(|| bad("no iat"))?;
        if iat > now() + LEEWAY as i64 {
            return Err(bad("issued in the future"));
        }
        let several_audiences = claims["aud"].as_array().is_some_and(|a| a.len() > 1);
        match claims["azp"].as_str() {
            Some(azp) if azp != self.client_id => {
                return Err(bad("authorized party is another client"))
            }
            None if several_audiences => return Err(bad("several audiences and no azp")),
            _ => {}
        }
        let matches = claims["nonce"]
            .as_str()
            .is_some_and(|n| bool::from(n.as_bytes().ct_eq(nonce.as_bytes())));
        if !matches {
            return Err(ProviderError::NonceMismatch);
        }
        if claims["sub"].as_str().is_none_or(str::is_empty) {
            return Err(bad("no sub"));
        }
        Ok(claims)
    }

    /// Completes missing profile claims from userinfo (whose `sub` must be the same).
    async fn complete(&self, claims: &mut Value, access_token: &Secret) {
        let missing = ["name", "email", "picture"]
            .iter()
            .any(|c| claims[*c].as_str().is_none());
        let Ok(metadata) = self.metadata().await else {
            return;
        };
        let (true, Some(userinfo)) = (missing, metadata.userinfo.as_ref()) else {
            return;
        };
        let request = self
            .http
            .get(userinfo.as_str())
            .bearer_auth(access_token.expose());
        let info: Value = match self.http.send(request).await {
            Ok(answer) if answer.status.is_success() => match answer.json("userinfo") {
                Ok(info) => info,
                Err(e) => return log::warn!("social_auth: {} userinfo: {e}", self.name),
            },
            Ok(answer) => {
                return log::warn!(
                    "social_auth: {} userinfo answered {}",
                    self.name,
                    answer.status.as_u16()
                )
            }
            Err(e) => return log::warn!("social_auth: {} userinfo: {e}", self.name),
        };
        if info["sub"] != claims["sub"] {
            return log::warn!(
                "social_auth: {} userinfo is about another subject",
                self.name
            );
        }
        for claim in [
            "name",
            "email",
            "email_verified",
            "picture",
            "given_name",
            "family_name",
            "hd",
        ] {
            if claims[claim].is_null() && !info[claim].is_null() {
                claims[claim] = info[claim].clone();
            }
        }
    }
}

#[async_trait]
impl Provider for Oidc {
    async fn authorize_url(&self, flow: &FlowParams<'_>) -> Result<Url, ProviderError> {
        let metadata = self.metadata().await?;
        let mut scopes = self.scopes.clone();
        if self.offline && !self.google && !scopes.iter().any(|s| s == "offline_access") {
            scopes.push("offline_access".into());
        }
        let verifier = PkceCodeVerifier::new(flow.pkce_verifier.to_owned());
        let challenge = oauth2::PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        let mut url = metadata.authorization.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("scope", &scopes.join(" "))
                .append_pair("state", flow.state)
                .append_pair("nonce", flow.nonce)
                .append_pair("code_challenge", challenge.as_str())
                .append_pair("code_challenge_method", "S256");
            if self.offline {
                if self.google {
                    q.append_pair("access_type", "offline");
                }
                q.append_pair("prompt", "consent");
            }
        }
        Ok(url)
    }

    async fn exchange_code(
        &self,
        code: &str,
        flow: &FlowParams<'_>,
    ) -> Result<TokenSet, ProviderError> {
        let metadata = self.metadata().await?;
        let answer = self
            .client(&metadata)
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let mut tokens = token_set(&answer);
        tokens.id_token = answer.extra_fields().id_token.clone();
        Ok(tokens)
    }

    async fn profile(
        &self,
        tokens: &TokenSet,
        flow: &FlowParams<'_>,
    ) -> Result<Profile, ProviderError> {
        let id_token = tokens
            .id_token
            .as_deref()
            .ok_or_else(|| bad("the token endpoint sent none"))?;
        let mut claims = self.verify(id_token, flow.nonce).await?;
        self.complete(&mut claims, &tokens.access_token).await;
        let text = |c: &str| claims[c].as_str().map(str::to_owned);
        Ok(Profile {
            social_id: text("sub").unwrap_or_default(),
            name: text("name"),
            email: text("email"),
            email_verified: truthy(claims.get("email_verified")),
            avatar_url: text("picture"),
            raw: claims,
        })
    }

    async fn check_response_issuer(&self, iss: Option<&str>) -> Result<(), ProviderError> {
        let metadata = self.metadata().await?;
        match iss {
            Some(iss) if iss == metadata.issuer => Ok(()),
            None if !metadata.iss_parameter => Ok(()),
            _ => Err(ProviderError::IssuerMismatch),
        }
    }

    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenSet, ProviderError> {
        let metadata = self.metadata().await?;
        let answer = self
            .client(&metadata)
            .exchange_refresh_token(&RefreshToken::new(refresh_token.expose().to_owned()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(token_set(&answer))
    }
}
