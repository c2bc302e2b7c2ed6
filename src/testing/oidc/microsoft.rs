//! Microsoft Entra ID (the identity platform's v2.0 endpoints): the tenant in every path,
//! the templated issuer `…/{tenantid}/v2.0` in the discovery of `common` and `organizations`
//! (concrete for `consumers` and a tenant), `id_token`s whose `iss` names the user's `tid`, a
//! pairwise `sub` next to the `oid`, no verified email, refresh tokens that replace themselves
//! (the old one still works), AADSTS error bodies, Graph's OIDC userinfo, and JWKs with `x5t`,
//! `x5c` and `issuer` but no `alg`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rocket::http::{Method, Status};
use rocket::serde::json::{json, Value};
use serde_json::Map;
use sha2::{Digest, Sha256};

use super::dialect::{
    base_defaults, html, AuthorizeRequest, ClaimsCtx, Defaults, Dialect, DiscoveryCtx, Endpoint,
    Issued, Site, Target, TokenError, UserinfoError,
};
use super::keys::SigningKey;
use super::{ClientAuth, FakeOidc, FakeOidcUser, RefreshRotation, RefreshTokens};
use crate::clock::{now, random_token};
use crate::testing::{json_answer, Raw};

pub(super) struct Microsoft;

impl FakeOidc {
    /// Microsoft Entra ID; the fake's URL is the authority (`https://login.microsoftonline.com`).
    /// Per tenant (`common`, `organizations`, `consumers`, a tenant id, or a domain set with
    /// [`set_tenant_domain`](Self::set_tenant_domain)) it serves
    /// `/{tenant}/v2.0/.well-known/openid-configuration`, `/{tenant}/oauth2/v2.0/authorize`,
    /// `/{tenant}/oauth2/v2.0/token` and `/{tenant}/discovery/v2.0/keys`; and Graph's
    /// `/oidc/userinfo`. A user's `sub` is their object id (`oid`), their
    /// [`tenant`](FakeOidcUser::tenant) the `tid`. The fake signs in whoever is set, whatever the
    /// tenant of the path: checking the tenant is the client's job.
    ///
    /// ```no_run
    /// use rocket_social_auth::testing::{FakeOidc, FakeOidcUser};
    ///
    /// # async fn demo() {
    /// let fake = FakeOidc::microsoft("00000000-0000-0000-0000-00000000c1d0", "ms-secret");
    /// fake.sign_in_as(
    ///     FakeOidcUser::new("87d349ed-44d7-43e1-9a83-5f2406dee5bd", "Adele Vance", "AdeleV@contoso.example")
    ///         .tenant("8eaef023-2b34-4da1-9baa-8bc8c9d6a490"),
    /// );
    /// let server = fake.clone().spawn().await.expect("fake Entra ID starts");
    /// // `kind = "microsoft"` with `authority = server.url()`; multi-tenant discovery:
    /// println!("{}/common/v2.0/.well-known/openid-configuration", server.url());
    /// # }
    /// ```
    pub fn microsoft(client_id: &str, client_secret: &str) -> Self {
        FakeOidc::build(client_id, client_secret, std::sync::Arc::new(Microsoft))
    }
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn guid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `YYYY-MM-DD HH:MM:SSZ` of a unix time, as AADSTS bodies write it.
fn timestamp(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// An AADSTS error: its `error`, HTTP status and text, by number.
fn aadsts(number: u32) -> (&'static str, Status, String) {
    let issued = timestamp(now() - 86_400 * 91);
    let (error, status, text) = match number {
        70000 => ("invalid_grant", 400, "The provided value for the 'code' parameter is not valid. The code has expired.".to_owned()),
        54005 => ("invalid_grant", 400, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.".to_owned()),
        9002313 => ("invalid_grant", 400, "Invalid request. Request is malformed or invalid.".to_owned()),
        50148 => ("invalid_grant", 400, "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.".to_owned()),
        700082 => ("invalid_grant", 400, format!("The refresh token has expired due to inactivity. The token was issued on {issued} and was inactive for 90.00:00:00.")),
        50173 => ("invalid_grant", 400, format!("The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '{issued}' and the TokensValidFrom date (before which tokens are not valid) for this user is '{}'.", timestamp(now() - 3600))),
        70043 => ("invalid_grant", 400, format!("The refresh token has expired or is invalid due to sign-in frequency checks by conditional access. The token was issued on {issued} and the maximum allowed lifetime for this request is 3600.")),
        500112 => ("invalid_request", 400, "The reply address does not match the reply address provided when requesting Authorization code.".to_owned()),
        9002327 => ("invalid_request", 400, "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via cross-origin requests.".to_owned()),
        9002326 => ("invalid_request", 400, "Cross-origin token redemption is permitted only for the 'Single-Page Application' client-type.".to_owned()),
        900144 => ("invalid_request", 400, "The request body must contain the following parameter: 'client_id'.".to_owned()),
        7000215 => ("invalid_client", 401, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.".to_owned()),
        70003 => ("unsupported_grant_type", 400, "The app requested an unsupported grant type.".to_owned()),
        65004 => ("access_denied", 400, "User declined to consent to access the app.".to_owned()),
        65001 => ("consent_required", 400, "The user or administrator has not consented to use the application.".to_owned()),
        50076 => ("interaction_required", 400, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the app.".to_owned()),
        50196 => ("temporarily_unavailable", 429, "The server terminated an operation because it encountered a client request loop. Please contact your app vendor.".to_owned()),
        70002 => ("invalid_client", 401, "Error validating credentials.".to_owned()),
        70008 => ("invalid_grant", 400, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.".to_owned()),
        90002 => ("invalid_tenant", 400, "Tenant not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.".to_owned()),
        _ => ("invalid_request", 400, "Injected fault.".to_owned()),
    };
    (error, Status::new(status), text)
}

/// The AADSTS numbers of an injected `error`: `AADSTS700082` names one, `AADSTS70002,70008`
/// several (the first gives `error` and the text); a bare code gets the usual number of that
/// error.
fn numbers_of(code: &str) -> Vec<u32> {
    if let Some(list) = code.strip_prefix("AADSTS") {
        let numbers: Vec<u32> = list
            .split(',')
            .filter_map(|n| n.trim().trim_start_matches("AADSTS").parse().ok())
            .collect();
        if !numbers.is_empty() {
            return numbers;
        }
    }
    vec![match code {
        "invalid_grant" => 70000,
        "invalid_client" => 7000215,
        "unsupported_grant_type" => 70003,
        "access_denied" => 65004,
        "consent_required" => 65001,
        "interaction_required" => 50076,
        "temporarily_unavailable" => 50196,
        _ => 900144,
    }]
}

/// The token endpoint's error body for AADSTS `numbers` (the first one's `error` and text).
fn aadsts_answer(numbers: &[u32]) -> Raw {
    let number = numbers.first().copied().unwrap_or(900144);
    let (error, status, text) = aadsts(number);
    let (trace, correlation, ts) = (guid(), guid(), timestamp(now()));
    let mut answer = json_answer(
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{number}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {ts}"),
            "error_codes": numbers,
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={number}"),
        }),
    );
    if status == Status::TooManyRequests {
        answer.headers.push(("Retry-After", "30".into()));
    }
    answer
}

/// Graph's error envelope.
fn graph_error(status: Status, code: &str, message: &str) -> Raw {
    let mut answer = json_answer(
        status,
        json!({"error": {"code": code, "message": message, "innerError": {
            "date": timestamp(now()).replace(' ', "T"), "request-id": guid(), "client-request-id": guid(),
        }}}),
    );
    if status == Status::TooManyRequests {
        answer.headers.push(("Retry-After", "30".into()));
    }
    answer
}

fn tid(user: &FakeOidcUser) -> &str {
    user.tenant_id
        .as_deref()
        .unwrap_or(FakeOidcUser::DEFAULT_TENANT)
}

/// A string shaped like Microsoft's JWT access tokens (for Graph: never to be validated by
/// the client).
fn jwt_shaped() -> String {
    let header = format!(
        r#"{{"typ":"JWT","nonce":"{}","alg":"RS256","x5t":"{}","kid":"{}"}}"#,
        random_token(32),
        random_token(20),
        random_token(20)
    );
    let payload = format!(
        r#"{{"aud":"00000003-0000-0000-c000-000000000000","iss":"https://sts.windows.net/","iat":{},"uti":"{}"}}"#,
        now(),
        random_token(16)
    );
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload),
        random_token(192)
    )
}

impl Dialect for Microsoft {
    fn route(&self, method: &Method, path: &str) -> Option<Target> {
        if path == "/oidc/userinfo" && matches!(method, &Method::Get | &Method::Post) {
            return Target::at(Endpoint::Userinfo);
        }
        let (tenant, rest) = path.strip_prefix('/')?.split_once('/')?;
        let endpoint = match (method, rest) {
            (&Method::Get, "v2.0/.well-known/openid-configuration") => Endpoint::Discovery,
            (&Method::Get, "oauth2/v2.0/authorize") => Endpoint::Authorize,
            (&Method::Post, "oauth2/v2.0/token") => Endpoint::Token,
            (&Method::Get, "discovery/v2.0/keys") => Endpoint::Jwks,
            _ => return None,
        };
        Some(Target {
            endpoint,
            tenant: Some(tenant.to_owned()),
        })
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            client_auth: vec![ClientAuth::Post, ClientAuth::Basic],
            refresh_tokens: RefreshTokens::WithOfflineAccess,
            rotation: RefreshRotation::Reissued,
            id_token_on_refresh: true,
            ..base_defaults()
        }
    }

    fn issuer(&self, site: &Site<'_>) -> Result<String, Box<Raw>> {
        if let Some(issuer) = site.issuer {
            return Ok(issuer.to_owned());
        }
        let base = site.base;
        let tenant = site.tenant.unwrap_or("common").to_lowercase();
        let id = match tenant.as_str() {
            "common" | "organizations" => "{tenantid}".to_owned(),
            "consumers" => FakeOidcUser::CONSUMERS_TENANT.to_owned(),
            t if is_guid(t) => t.to_owned(),
            _ => match site.tenant_of_domain {
                Some(id) => id.to_owned(),
                None => return Err(Box::new(aadsts_answer(&[90002]))),
            },
        };
        Ok(format!("{base}/{id}/v2.0"))
    }

    fn id_token_iss(&self, site: &Site<'_>, user: &FakeOidcUser) -> String {
        match site.issuer {
            Some(issuer) => issuer.replace("{tenantid}", tid(user)),
            None => format!("{}/{}/v2.0", site.base, tid(user)),
        }
    }

    fn subject(&self, user: &FakeOidcUser, client_id: &str) -> String {
        // Pairwise: another app sees another `sub` for the same `oid`.
        let digest = Sha256::digest(format!("{client_id}\n{}", user.sub).as_bytes());
        URL_SAFE_NO_PAD.encode(digest)
    }

    fn discovery(&self, d: &DiscoveryCtx<'_>) -> Value {
        let (base, tenant) = (d.base, d.tenant.unwrap_or("common"));
        let methods: Vec<&str> = if d.auth_methods == ["client_secret_post", "client_secret_basic"]
        {
            vec![
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ]
        } else {
            d.auth_methods.clone()
        };
        json!({
            "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": methods,
            "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": [d.alg],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": d.issuer,
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": format!("{base}/oidc/userinfo"),
            "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{base}/{tenant}/oauth2/v2.0/logout"),
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": format!("{base}/{tenant}/kerberos"),
            "tenant_region_scope": null,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        })
    }

    fn jwk(&self, key: &SigningKey, issuer: &str) -> Value {
        let mut jwk = key.jwk_with_certificate();
        if let Some(map) = jwk.as_object_mut() {
            map.remove("alg");
            map.insert("issuer".into(), json!(issuer));
        }
        jwk
    }

    fn kid_len(&self) -> usize {
        27
    }

    fn authorize_refused(&self, reason: &str) -> Raw {
        let number = match reason {
            "client_id" => 700016,
            "redirect_uri" => 50011,
            _ => 900144,
        };
        html(
            Status::BadRequest,
            format!("<!doctype html><html><body><h1>Sign in</h1><p>Sorry, but we’re having trouble signing you in.</p><p>AADSTS{number}: invalid {reason}.</p></body></html>"),
        )
    }

    fn check_authorize(&self, request: &AuthorizeRequest<'_>) -> Result<(), Box<Raw>> {
        if !matches!(request.response_type, Some("code" | "code id_token")) {
            return Err(Box::new(self.authorize_refused("response_type")));
        }
        if !request.scope.split(' ').any(|s| s == "openid") {
            return Err(Box::new(self.authorize_refused("scope")));
        }
        match request.response_mode {
            None | Some("query" | "fragment" | "form_post") => Ok(()),
            Some(_) => Err(Box::new(self.authorize_refused("response_mode"))),
        }
    }

    fn echoes_scope(&self) -> bool {
        false
    }

    fn denial(&self) -> Vec<(String, String)> {
        self.authorize_error("AADSTS65004")
    }

    fn authorize_error(&self, code: &str) -> Vec<(String, String)> {
        let number = numbers_of(code)[0];
        let (error, _, text) = aadsts(number);
        vec![
            ("error".into(), error.to_owned()),
            (
                "error_description".into(),
                format!("AADSTS{number}: {text}"),
            ),
        ]
    }

    fn code(&self) -> String {
        format!("0.A{}", random_token(400))
    }

    fn access_token(&self) -> String {
        jwt_shaped()
    }

    fn refresh_token(&self) -> String {
        format!("0.A{}", random_token(600))
    }

    fn token_answer(&self, issued: &Issued) -> Value {
        let mut scopes = vec!["User.Read"];
        scopes.extend(
            issued
                .scope
                .split(' ')
                .filter(|s| matches!(*s, "openid" | "profile" | "email")),
        );
        let mut answer = json!({
            "token_type": "Bearer", "scope": scopes.join(" "),
            "expires_in": issued.expires_in, "ext_expires_in": issued.expires_in,
            "access_token": issued.access_token,
        });
        if let Some(refresh) = &issued.refresh_token {
            answer["refresh_token"] = json!(refresh);
        }
        if let Some(id_token) = &issued.id_token {
            answer["id_token"] = json!(id_token);
        }
        answer
    }

    fn token_error(&self, error: &TokenError) -> Raw {
        let number = match error {
            TokenError::InvalidClient => 7000215,
            TokenError::MissingClientId => 900144,
            TokenError::CodeUnknown => 9002313,
            TokenError::CodeUsed => 54005,
            TokenError::CodeExpired => 70000,
            TokenError::RedirectMismatch => 500112,
            TokenError::VerifierMismatch | TokenError::VerifierRefused => 50148,
            TokenError::RefreshInvalid => 50173,
            TokenError::UnsupportedGrant => 70003,
            TokenError::RateLimited => 50196,
            TokenError::Injected(code) => return aadsts_answer(&numbers_of(code)),
        };
        aadsts_answer(&[number])
    }

    fn id_token_claims(
        &self,
        claims: &mut Map<String, Value>,
        user: &FakeOidcUser,
        ctx: &ClaimsCtx<'_>,
    ) {
        let iat = claims.get("iat").cloned().unwrap_or_default();
        claims.insert("nbf".into(), iat);
        claims.insert("ver".into(), json!("2.0"));
        claims.insert("oid".into(), json!(user.sub));
        claims.insert("tid".into(), json!(tid(user)));
        if ctx.has_scope("profile") {
            claims.insert("name".into(), json!(user.name));
            claims.insert("preferred_username".into(), json!(user.email));
        }
        if ctx.has_scope("email") {
            if let Some(email) = &user.email {
                // Not verified: Microsoft sends no `email_verified` unless configured.
                claims.insert("email".into(), json!(email));
            }
        }
        claims.insert("sid".into(), json!(guid()));
        claims.insert("uti".into(), json!(random_token(16)));
        claims.insert("rh".into(), json!(format!("1.A{}.", random_token(30))));
        claims.insert("aio".into(), json!(random_token(60)));
    }

    fn userinfo(&self, user: &FakeOidcUser, ctx: &ClaimsCtx<'_>) -> Value {
        let name = user.name.clone().unwrap_or_default();
        let (given, family) = super::dialect::split_name(&name);
        let mut info = json!({
            "sub": self.subject(user, ctx.client_id), "name": name,
            "family_name": family, "given_name": given,
            "picture": "https://graph.microsoft.com/v1.0/me/photo/$value",
        });
        if let Some(email) = user.email.as_ref().filter(|_| ctx.has_scope("email")) {
            info["email"] = json!(email);
        }
        info
    }

    fn userinfo_error(&self, error: &UserinfoError) -> Raw {
        match error {
            UserinfoError::RateLimited => graph_error(
                Status::TooManyRequests,
                "TooManyRequests",
                "Too many requests.",
            ),
            UserinfoError::Injected(code) => {
                graph_error(Status::BadRequest, code, "Injected fault.")
            }
            UserinfoError::Expired => graph_error(
                Status::Unauthorized,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            ),
            UserinfoError::NoToken | UserinfoError::InvalidToken | UserinfoError::Revoked => {
                graph_error(
                    Status::Unauthorized,
                    "InvalidAuthenticationToken",
                    "Access token validation failure.",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::timestamp;

    #[test]
    fn aadsts_timestamps_are_utc_dates() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00Z");
        assert_eq!(timestamp(1_599_037_880), "2020-09-02 09:11:20Z");
        assert_eq!(timestamp(951_782_400), "2000-02-29 00:00:00Z");
    }
}
