//! The login flows' state between "start" and "callback": a private cookie per provider holding
//! the pending flows (each its CSRF `state`, PKCE verifier, nonce and where to go next); and the
//! rule for `next`.
//!
//! One cookie holds up to [`MAX_PENDING_FLOWS`] flows, so that logins (or links) started in
//! several tabs all complete, in any order, and a cross-site `GET {base}/<provider>` adds a
//! flow rather than replacing the pending one. A callback consumes only the flow whose `state`
//! it carries.

use rocket::http::{Cookie, CookieJar, SameSite};
use rocket::time::{Duration, OffsetDateTime};
use serde::{Deserialize, Serialize};
use subtle::{Choice, ConstantTimeEq};

use crate::clock::{now, random_token};

/// How long a started login may take.
pub(crate) const FLOW_MAX_AGE_SECS: i64 = 600;

/// How many flows of one provider may be pending in one browser; starting one more drops the
/// oldest.
pub(crate) const MAX_PENDING_FLOWS: usize = 4;

/// Browsers keep a cookie only when its name and value together are under 4096 bytes.
const COOKIE_LIMIT: usize = 4096;

/// Whether a cookie named `name` whose value encrypts `plain` bytes stays under
/// [`COOKIE_LIMIT`] as sent in `Set-Cookie`.
///
/// A Rocket private cookie is `base64(nonce ‖ AES-256-GCM(value) ‖ tag)`: a 12-byte nonce and a
/// 16-byte tag, padded base64. `Set-Cookie` then percent-encodes `/` and `=` (three bytes each):
/// at most two `=` of padding, and the `/`s of random base64, one character in 64 on average;
/// one in 16 is allowed for (near the limit, some 3,600 characters, the chance of more is below
/// e^-100).
fn fits(name: &str, plain: usize) -> bool {
    let base64 = (plain + 12 + 16).div_ceil(3) * 4;
    let encoded = base64 + base64 / 8 + 4;
    name.len() + 1 + encoded < COOKIE_LIMIT
}

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
    /// The `user` field of this flow's `form_post` callback (Apple's name, first authorization
    /// only), from [`take_form_user`]; never in the flow cookie.
    #[serde(skip)]
    pub form_user: Option<String>,
}

/// Why a callback's state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlowError {
    /// No flow cookie: never started here, already used, or from another browser.
    Missing,
    /// The callback carries no `state`.
    NoState,
    /// The `state` is none of the pending flows'.
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

/// The flow cookie's name: `__Secure-` prefixed when cookies are `Secure` (browsers then
/// refuse it from plain HTTP and without `Secure`).
fn cookie_name(provider: &str, secure: bool) -> String {
    let prefix = if secure { "__Secure-" } else { "" };
    format!("{prefix}social_auth_flow_{provider}")
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
            // RFC 7636: 43 to 128 characters; 48 random bytes give 64.
            verifier: random_token(48),
            nonce: random_token(24),
            next,
            created_at: now(),
            link_user: None,
            form_user: None,
        }
    }

    /// Whether the flow may still complete: younger than ten minutes (and not from the future).
    fn is_live(&self, now: i64) -> bool {
        // `created_at` may be anything the cookie says: no overflow on the extremes.
        now.checked_sub(self.created_at)
            .is_some_and(|age| (0..=FLOW_MAX_AGE_SECS).contains(&age))
    }

    /// Adds the flow to its provider's private cookie, after the pending ones that are still
    /// live, keeping the newest [`MAX_PENDING_FLOWS`] that fit in a cookie. A flow whose `next`
    /// alone would not fit loses its `next` (the login then lands on `authed_url`).
    pub(crate) fn save(mut self, cookies: &CookieJar<'_>, base: &str, secure: bool) {
        let jar = FlowJar::new(cookies, base, &self.provider, secure);
        let mut flows = jar.read();
        if !fits(&jar.name, serialized_len(std::slice::from_ref(&self))) {
            self.next = None;
        }
        flows.push(self);
        jar.write(flows);
    }

    /// Takes the flow whose `state` is the callback's out of `provider`'s cookie, compared in
    /// constant time, and checks it. Only that flow is consumed (the cookie is rewritten with
    /// the others, or removed when none is left), whatever follows; a callback whose `state`
    /// matches no flow (or that has none) leaves the cookie alone.
    pub(crate) fn take(
        cookies: &CookieJar<'_>,
        base: &str,
        provider: &str,
        state: Option<&str>,
        secure: bool,
    ) -> Result<Flow, FlowError> {
        let jar = FlowJar::new(cookies, base, provider, secure);
        let mut flows = jar.read();
        if flows.is_empty() {
            // Absent, or nothing usable in it (another key, not JSON): gone either way.
            jar.remove();
            return Err(FlowError::Missing);
        }
        let state = state.ok_or(FlowError::NoState)?;
        let index = position_of(&flows, state).ok_or(FlowError::Mismatch)?;
        let flow = flows.remove(index);
        jar.write(flows);
        if flow.provider != provider {
            return Err(FlowError::Foreign);
        }
        if !flow.is_live(now()) {
            return Err(FlowError::Expired);
        }
        Ok(flow)
    }
}

/// The index of the flow whose `state` is `state`: every flow is compared, each in constant time.
fn position_of(flows: &[Flow], state: &str) -> Option<usize> {
    let mut found = None;
    for (i, flow) in flows.iter().enumerate() {
        let equal: Choice = flow.state.as_bytes().ct_eq(state.as_bytes());
        if bool::from(equal) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

/// The JSON length of a list of flows (what the cookie encrypts).
fn serialized_len(flows: &[Flow]) -> usize {
    serde_json::to_vec(flows).map_or(usize::MAX, |v| v.len())
}

/// One provider's flow cookie in a request's jar.
struct FlowJar<'a, 'r> {
    cookies: &'a CookieJar<'r>,
    provider: String,
    name: String,
    path: String,
    secure: bool,
}

impl<'a, 'r> FlowJar<'a, 'r> {
    fn new(cookies: &'a CookieJar<'r>, base: &str, provider: &str, secure: bool) -> Self {
        FlowJar {
            cookies,
            provider: provider.to_owned(),
            name: cookie_name(provider, secure),
            path: cookie_path(base, provider),
            secure,
        }
    }

    /// The pending flows, oldest first: a JSON list of flows, or one flow (a cookie written
    /// before flows were listed). Entries that are not flows are skipped; none when the cookie
    /// is absent or does not decrypt.
    fn read(&self) -> Vec<Flow> {
        let Some(cookie) = self.cookies.get_private(&self.name) else {
            return Vec::new();
        };
        match serde_json::from_str::<serde_json::Value>(cookie.value()) {
            Ok(serde_json::Value::Array(items)) => items
                .into_iter()
                .filter_map(|item| serde_json::from_value(item).ok())
                .collect(),
            Ok(one @ serde_json::Value::Object(_)) => {
                serde_json::from_value(one).into_iter().collect()
            }
            _ => Vec::new(),
        }
    }

    /// Stores `flows` (oldest first) once the dead ones are pruned: the newest
    /// [`MAX_PENDING_FLOWS`] that fit, or no cookie when none is left.
    fn write(&self, mut flows: Vec<Flow>) {
        let now = now();
        flows.retain(|f| f.provider == self.provider && f.is_live(now));
        let excess = flows.len().saturating_sub(MAX_PENDING_FLOWS);
        flows.drain(..excess);
        while !flows.is_empty() && !fits(&self.name, serialized_len(&flows)) {
            flows.remove(0);
        }
        if flows.is_empty() {
            self.remove();
            return;
        }
        let value = serde_json::to_string(&flows).unwrap_or_default();
        // `SameSite=Lax`: it must survive the provider's cross-site redirect back.
        let cookie = Cookie::build((self.name.clone(), value))
            .path(self.path.clone())
            .same_site(SameSite::Lax)
            .http_only(true)
            .secure(self.secure)
            .max_age(Duration::seconds(FLOW_MAX_AGE_SECS))
            .expires(OffsetDateTime::now_utc() + Duration::seconds(FLOW_MAX_AGE_SECS));
        self.cookies.add_private(cookie);
    }

    /// Removes the cookie, when the request carried one.
    fn remove(&self) {
        if self.cookies.get(&self.name).is_some() {
            self.cookies.remove_private(
                Cookie::build(self.name.clone())
                    .path(self.path.clone())
                    .secure(self.secure),
            );
        }
    }
}

/// How long the `user` field of a `form_post` callback is kept for the `GET` it redirects to.
const FORM_USER_MAX_AGE_SECS: i64 = 120;

/// Longest `user` field kept (Apple's is a name and an email, some 150 bytes).
const MAX_FORM_USER_BYTES: usize = 2048;

/// The `user` field of a form_post callback, with the `state` it came with.
#[derive(Serialize, Deserialize)]
struct FormUser {
    state: String,
    user: String,
    at: i64,
}

/// The name of the cookie that carries a `form_post`'s `user` field to the `GET` callback, and
/// its path (that callback only).
fn form_user_cookie(base: &str, provider: &str, secure: bool) -> (String, String) {
    let prefix = if secure { "__Secure-" } else { "" };
    (
        format!("{prefix}social_auth_form_{provider}"),
        format!("{base}/{provider}/callback"),
    )
}

/// Keeps the `user` field of a cross-site `form_post` callback for the same-site `GET` it is
/// redirected to, in a private (encrypted) `SameSite=Lax` cookie of that callback's path that
/// lives [`FORM_USER_MAX_AGE_SECS`], bound to the callback's `state`: the name and email in it
/// stay out of URLs and logs, and only the flow of that `state` may read it.
pub(crate) fn stash_form_user(
    cookies: &CookieJar<'_>,
    base: &str,
    provider: &str,
    state: &str,
    user: &str,
    secure: bool,
) {
    // Our states are 43 characters; a longer one matches no flow, and the cookie must fit.
    if user.len() > MAX_FORM_USER_BYTES || state.len() > 256 {
        log::warn!(
            "social_auth: a form_post `user` field over {MAX_FORM_USER_BYTES} bytes, or with a \
             `state` over 256, is ignored"
        );
        return;
    }
    let (name, path) = form_user_cookie(base, provider, secure);
    let value = FormUser {
        state: state.to_owned(),
        user: user.to_owned(),
        at: now(),
    };
    let cookie = Cookie::build((name, serde_json::to_string(&value).unwrap_or_default()))
        .path(path)
        .same_site(SameSite::Lax)
        .http_only(true)
        .secure(secure)
        .max_age(Duration::seconds(FORM_USER_MAX_AGE_SECS));
    cookies.add_private(cookie);
}

/// The `user` field [`stash_form_user`] kept for the callback of `state`, if any (compared in
/// constant time, and younger than [`FORM_USER_MAX_AGE_SECS`]); the cookie is removed either
/// way.
pub(crate) fn take_form_user(
    cookies: &CookieJar<'_>,
    base: &str,
    provider: &str,
    state: Option<&str>,
    secure: bool,
) -> Option<String> {
    let (name, path) = form_user_cookie(base, provider, secure);
    let cookie = cookies.get_private(&name)?;
    cookies.remove_private(Cookie::build(name).path(path).secure(secure));
    let kept: FormUser = serde_json::from_str(cookie.value()).ok()?;
    let state = state?;
    let age = now().checked_sub(kept.at)?;
    (bool::from(kept.state.as_bytes().ct_eq(state.as_bytes()))
        && (0..=FORM_USER_MAX_AGE_SECS).contains(&age))
    .then_some(kept.user)
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
