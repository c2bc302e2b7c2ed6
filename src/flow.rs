//! The login flow's state between "start" and "callback": a private cookie per provider holding
//! the CSRF `state`, the PKCE verifier and where to go next; and the rule for `next`.

use rocket::http::{Cookie, CookieJar, SameSite};
use rocket::time::{Duration, OffsetDateTime};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::jwt::{now, random_token};

/// How long a started login may take.
pub(crate) const FLOW_MAX_AGE_SECS: i64 = 600;

/// One started login.
#[derive(Serialize, Deserialize)]
pub(crate) struct Flow {
    pub provider: String,
    pub state: String,
    pub verifier: String,
    /// The OpenID Connect nonce (sent to every provider that takes one).
    #[serde(default)]
    pub nonce: String,
    pub next: Option<String>,
    pub created_at: i64,
    /// Set for a link flow: the user the identity is to be linked to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_user: Option<i64>,
}

/// Why a callback's state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlowError {
    /// No flow cookie: never started here, already used, or from another browser.
    Missing,
    /// The callback carries no `state`.
    NoState,
    /// The `state` is not the flow's.
    Mismatch,
    /// The flow is older than ten minutes.
    Expired,
    /// The flow was started for another provider.
    Foreign,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("provider", &self.provider)
            .field("next", &self.next)
            .field("created_at", &self.created_at)
            .field("link_user", &self.link_user)
            .finish_non_exhaustive()
    }
}

fn cookie_name(provider: &str) -> String {
    format!("social_auth_flow_{provider}")
}

fn cookie_path(base: &str, provider: &str) -> String {
    format!("{base}/{provider}")
}

impl Flow {
    /// A new flow with fresh random `state` and PKCE verifier.
    pub(crate) fn start(provider: &str, next: Option<String>) -> Self {
        Flow {
            provider: provider.to_owned(),
            state: random_token(32),
            // RFC 7636: 43 to 128 characters; 32 random bytes give 43.
            verifier: random_token(48),
            nonce: random_token(24),
            next,
            created_at: now(),
            link_user: None,
        }
    }

    /// Stores the flow in its private cookie: `SameSite=Lax` (it must survive the provider's
    /// cross-site redirect back), HttpOnly, ten minutes, scoped to the provider's routes.
    pub(crate) fn save(&self, cookies: &CookieJar<'_>, base: &str, secure: bool) {
        let value = serde_json::to_string(self).unwrap_or_default();
        let cookie = Cookie::build((cookie_name(&self.provider), value))
            .path(cookie_path(base, &self.provider))
            .same_site(SameSite::Lax)
            .http_only(true)
            .secure(secure)
            .max_age(Duration::seconds(FLOW_MAX_AGE_SECS))
            .expires(OffsetDateTime::now_utc() + Duration::seconds(FLOW_MAX_AGE_SECS));
        cookies.add_private(cookie);
    }

    /// Takes the flow of `provider` out of the jar (the cookie is removed whatever follows) and
    /// checks the callback's `state` against it in constant time.
    pub(crate) fn take(
        cookies: &CookieJar<'_>,
        base: &str,
        provider: &str,
        state: Option<&str>,
    ) -> Result<Flow, FlowError> {
        let name = cookie_name(provider);
        let cookie = cookies.get_private(&name);
        if cookies.get(&name).is_some() || cookie.is_some() {
            cookies.remove_private(Cookie::build(name).path(cookie_path(base, provider)));
        }
        let flow: Flow = cookie
            .and_then(|c| serde_json::from_str(c.value()).ok())
            .ok_or(FlowError::Missing)?;
        let state = state.ok_or(FlowError::NoState)?;
        if !bool::from(flow.state.as_bytes().ct_eq(state.as_bytes())) {
            return Err(FlowError::Mismatch);
        }
        if flow.provider != provider {
            return Err(FlowError::Foreign);
        }
        // `created_at` may be anything the cookie says: no overflow on the extremes.
        let age = now().checked_sub(flow.created_at);
        if !age.is_some_and(|age| (0..=FLOW_MAX_AGE_SECS).contains(&age)) {
            return Err(FlowError::Expired);
        }
        Ok(flow)
    }
}

/// `next` is honoured only as a local path: one `/` followed by neither `/` nor `\`, no
/// backslash, control character or white space anywhere, a valid URI path (and query), at most
/// 2048 bytes. Anything else is ignored by the login routes.
///
/// ```
/// # use rocket_social_auth::is_local_path;
/// assert!(is_local_path("/"));
/// assert!(is_local_path("/account?tab=1"));
/// assert!(!is_local_path("//evil.example"));
/// assert!(!is_local_path("/\\evil.example"));
/// assert!(!is_local_path("https://evil.example"));
/// assert!(!is_local_path("/\tfoo"));
/// ```
pub fn is_local_path(next: &str) -> bool {
    let bytes = next.as_bytes();
    next.len() <= 2048
        && bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && !next
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        && rocket::http::uri::Origin::parse(next).is_ok()
}
