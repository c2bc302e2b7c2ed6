//! Audit events ([`AuthEvent`]): what happened to whose account, from where — delivered to the
//! app ([`Policy::on_event`]), as one log line each, and, opted in, to the `auth_events` table.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use rocket::request::Request;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::clock::now;
use crate::config::ConfigError;
use crate::policy::Policy;
use crate::store::Store;

/// At most this many characters of a `User-Agent` are kept.
pub(crate) const USER_AGENT_MAX: usize = 200;

/// Something that happened to an account: a sign-in, a refused sign-in, a link, a logout…
///
/// Each carries when, whose (when known), through which provider, which session (the JWT's
/// `jti`), and from where (the client address as the rate limit sees it, see `ip_header`,
/// and the first 200 characters of the `User-Agent`). It never carries a token, an
/// authorization code, a secret or a cookie.
///
/// Delivered to [`Policy::on_event`], logged as one line (`social_auth::audit event=… …` at
/// info, which Rocket's `normal` level shows), and with `[social_auth.audit] store = true`
/// written to the `auth_events` table, where `GET {base}/events` shows a user their own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthEvent {
    /// What happened.
    pub kind: AuthEventKind,
    /// When, in unix seconds.
    pub at: i64,
    /// The user (`users.id`, the JWT's `sub`), when known.
    pub user_id: Option<i64>,
    /// The provider, when there is one.
    pub provider: Option<String>,
    /// The session (the JWT's `jti`), when there is one.
    pub session_id: Option<String>,
    /// The client address, as the rate limit sees it.
    pub ip: Option<IpAddr>,
    /// The request's `User-Agent`, at most 200 characters, control characters removed.
    pub user_agent: Option<String>,
}

/// The kinds of [`AuthEvent`]; more may come (hence `#[non_exhaustive]`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthEventKind {
    /// A sign-in completed; `new_user` when it created the user.
    SignIn {
        /// Whether the sign-in created the user (else a returning user, or one linked by email).
        new_user: bool,
    },
    /// A sign-in (or link) was refused, with the `error` code its answer carries
    /// (`state_mismatch`, `provider_denied`, `sign_in_denied`, `rate_limited`, …).
    SignInRefused {
        /// The code of the answer (the README's table of failed logins).
        code: String,
    },
    /// An identity of `provider` was linked to the signed-in user.
    Linked,
    /// An identity of `provider` was removed from the user (its sessions revoked).
    Unlinked,
    /// A session was signed out.
    Logout,
    /// Every session of the user was revoked (logout everywhere).
    LogoutEverywhere {
        /// How many sessions were revoked.
        sessions: usize,
    },
    /// A session was revoked other than by its own logout.
    SessionRevoked {
        /// Why.
        reason: RevokeReason,
    },
    /// A provider refresh of the user's tokens.
    Refresh {
        /// How it ended.
        outcome: RefreshOutcome,
    },
    /// The rate limit's store (Redis) could not decide; `on_store_error` decided instead.
    /// Emitted at most once every few seconds of an outage, as its log warning.
    RateLimitStoreUnavailable,
}

/// Why a session was revoked ([`AuthEventKind::SessionRevoked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokeReason {
    /// By the user (e.g. one of their devices, from an app's own page).
    User,
    /// By the identity provider's back-channel logout.
    BackChannelLogout,
    /// A reused refresh or session token was detected.
    ReuseDetected,
}

/// How a provider refresh ended ([`AuthEventKind::Refresh`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshOutcome {
    /// New tokens stored.
    Refreshed,
    /// The provider refused the grant: the user must sign in again.
    Reauthenticate,
    /// The provider or the database failed; the tokens were kept.
    Failed,
}

impl RevokeReason {
    /// The reason's name: `user`, `back_channel_logout`, `reuse_detected`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RevokeReason::User => "user",
            RevokeReason::BackChannelLogout => "back_channel_logout",
            RevokeReason::ReuseDetected => "reuse_detected",
        }
    }
}

impl RefreshOutcome {
    /// What a refresh's reply says happened; `None` when nothing was attempted (signed out,
    /// cross-site, no refresh token).
    pub(crate) fn of(reply: &crate::reply::RefreshReply) -> Option<Self> {
        use crate::reply::RefreshReply;
        match reply {
            RefreshReply::Refreshed => Some(RefreshOutcome::Refreshed),
            RefreshReply::Reauthenticate => Some(RefreshOutcome::Reauthenticate),
            RefreshReply::ProviderFailed
            | RefreshReply::ProviderTimeout
            | RefreshReply::DatabaseUnavailable
            | RefreshReply::StorageError => Some(RefreshOutcome::Failed),
            RefreshReply::SignedOut | RefreshReply::CrossSite | RefreshReply::NoRefreshToken => {
                None
            }
        }
    }

    /// The outcome's name: `refreshed`, `reauthenticate`, `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RefreshOutcome::Refreshed => "refreshed",
            RefreshOutcome::Reauthenticate => "reauthenticate",
            RefreshOutcome::Failed => "failed",
        }
    }
}

impl AuthEventKind {
    /// The kind's name, as in the log line, the table and `GET {base}/events`: `sign_in`,
    /// `sign_in_refused`, `link`, `unlink`, `logout`, `logout_all`, `session_revoked`,
    /// `refresh`, `rate_limit_store_unavailable`.
    pub fn name(&self) -> &'static str {
        match self {
            AuthEventKind::SignIn { .. } => "sign_in",
            AuthEventKind::SignInRefused { .. } => "sign_in_refused",
            AuthEventKind::Linked => "link",
            AuthEventKind::Unlinked => "unlink",
            AuthEventKind::Logout => "logout",
            AuthEventKind::LogoutEverywhere { .. } => "logout_all",
            AuthEventKind::SessionRevoked { .. } => "session_revoked",
            AuthEventKind::Refresh { .. } => "refresh",
            AuthEventKind::RateLimitStoreUnavailable => "rate_limit_store_unavailable",
        }
    }

    /// Its detail: `new` or `returning` for a sign-in, the code of a refusal, the number of
    /// sessions of a logout everywhere, the reason of a revocation, the outcome of a refresh.
    pub fn detail(&self) -> Option<String> {
        match self {
            AuthEventKind::SignIn { new_user: true } => Some("new".into()),
            AuthEventKind::SignIn { new_user: false } => Some("returning".into()),
            AuthEventKind::SignInRefused { code } => Some(code.clone()),
            AuthEventKind::LogoutEverywhere { sessions } => Some(sessions.to_string()),
            AuthEventKind::SessionRevoked { reason } => Some(reason.as_str().into()),
            AuthEventKind::Refresh { outcome } => Some(outcome.as_str().into()),
            AuthEventKind::Linked
            | AuthEventKind::Unlinked
            | AuthEventKind::Logout
            | AuthEventKind::RateLimitStoreUnavailable => None,
        }
    }
}

impl AuthEvent {
    /// An event of `kind` now, from `client`, with nothing else known yet.
    pub(crate) fn new(kind: AuthEventKind, client: &ClientInfo) -> Self {
        AuthEvent {
            kind,
            at: now(),
            user_id: None,
            provider: None,
            session_id: None,
            ip: client.ip,
            user_agent: client.user_agent.clone(),
        }
    }

    pub(crate) fn user(mut self, user_id: Option<i64>) -> Self {
        self.user_id = user_id;
        self
    }

    pub(crate) fn provider(mut self, provider: Option<&str>) -> Self {
        self.provider = provider.map(str::to_owned);
        self
    }

    pub(crate) fn session(mut self, jti: Option<&str>) -> Self {
        self.session_id = jti.map(str::to_owned);
        self
    }

    /// The event as `GET {base}/events` shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "at": self.at,
            "kind": self.kind.name(),
            "detail": self.kind.detail(),
            "provider": self.provider,
            "session_id": self.session_id,
            "ip": self.ip.map(|ip| ip.to_string()),
            "user_agent": self.user_agent,
        })
    }
}

/// The log line: `social_auth::audit event=sign_in detail=new user=7 provider=github …`.
impl fmt::Display for AuthEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "social_auth::audit event={}", self.kind.name())?;
        if let Some(detail) = self.kind.detail() {
            write!(f, " detail={detail}")?;
        }
        if let Some(user) = self.user_id {
            write!(f, " user={user}")?;
        }
        if let Some(provider) = &self.provider {
            write!(f, " provider={provider}")?;
        }
        if let Some(session) = &self.session_id {
            write!(f, " session={session}")?;
        }
        if let Some(ip) = &self.ip {
            write!(f, " ip={ip}")?;
        }
        if let Some(ua) = &self.user_agent {
            write!(f, " user_agent={ua:?}")?;
        }
        Ok(())
    }
}

/// Who sent a request, as events record it: the client address and the truncated
/// `User-Agent`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// Of a request, the client address found as the rate limit finds it.
    pub(crate) fn of(request: &Request<'_>, client: &crate::client_ip::ClientAddress) -> Self {
        ClientInfo {
            ip: Some(client.of(request)),
            user_agent: request
                .headers()
                .get_one("User-Agent")
                .map(truncate_user_agent),
        }
    }
}

fn truncate_user_agent(ua: &str) -> String {
    ua.chars()
        .filter(|c| !c.is_control())
        .take(USER_AGENT_MAX)
        .collect()
}

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for ClientInfo {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> rocket::request::Outcome<Self, Self::Error> {
        let info = match request.rocket().state::<crate::service::AuthService>() {
            Some(service) => ClientInfo::of(request, service.client_address()),
            None => ClientInfo::default(),
        };
        rocket::request::Outcome::Success(info)
    }
}

/// The `[default.social_auth.audit]` table: whether events are also kept in the database.
///
/// ```toml
/// [default.social_auth.audit]
/// store = true          # write every event to auth_events (GET {base}/events reads them)
/// retention_days = 90   # purged after that many days
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuditConfig {
    /// Write every event to the `auth_events` table. Default `false` (events still go to
    /// the log and to [`Policy::on_event`]).
    #[serde(default)]
    pub store: bool,
    /// How many days stored events are kept. At least 1; default `90`.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

fn default_retention_days() -> u32 {
    90
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            store: false,
            retention_days: default_retention_days(),
        }
    }
}

impl AuditConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.retention_days == 0 {
            return Err(ConfigError::new(
                "social_auth.audit.retention_days",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Where events go: the app's policy, the log, and (opted in) the table.
pub(crate) struct Audit {
    policy: Arc<dyn Policy>,
    store: Option<Store>,
}

impl fmt::Debug for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Audit")
            .field("stored", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

impl Audit {
    pub(crate) fn new(policy: Arc<dyn Policy>, store: Option<Store>) -> Self {
        Audit { policy, store }
    }

    /// Whether events are written to the table.
    pub(crate) fn stores(&self) -> bool {
        self.store.is_some()
    }

    /// Hands the event to the app and the log, not the table.
    fn announce(&self, event: &AuthEvent) {
        log::info!(target: "social_auth::audit", "{event}");
        self.policy.on_event(event);
    }

    /// Delivers an event everywhere, the table write included (awaited; a failure is logged,
    /// never returned).
    pub(crate) async fn emit(&self, event: AuthEvent) {
        self.announce(&event);
        if let Some(store) = &self.store {
            if let Err(e) = store.insert_event(&event).await {
                log::warn!("social_auth: an audit event was not stored: {e}");
            }
        }
    }

    /// Delivers an event from code that cannot wait: the table write runs in a task.
    pub(crate) fn emit_detached(&self, event: AuthEvent) {
        self.announce(&event);
        if let Some(store) = self.store.clone() {
            if let Ok(runtime) = rocket::tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(e) = store.insert_event(&event).await {
                        log::warn!("social_auth: an audit event was not stored: {e}");
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_line_names_the_target_and_quotes_the_user_agent() {
        let client = ClientInfo {
            ip: Some("192.0.2.1".parse().unwrap()),
            user_agent: Some(truncate_user_agent("Mozilla\n\"x\"")),
        };
        let event = AuthEvent::new(AuthEventKind::SignIn { new_user: true }, &client)
            .user(Some(7))
            .provider(Some("github"))
            .session(Some("j1"));
        let line = event.to_string();
        assert!(line.starts_with("social_auth::audit event=sign_in detail=new user=7 provider=github session=j1 ip=192.0.2.1"), "{line}");
        assert!(line.ends_with(r#"user_agent="Mozilla\"x\"""#), "{line}");
    }

    #[test]
    fn user_agents_are_truncated() {
        let long = "a".repeat(1000);
        assert_eq!(truncate_user_agent(&long).len(), USER_AGENT_MAX);
    }

    #[test]
    fn audit_defaults() {
        let config = AuditConfig::default();
        assert!(!config.store);
        assert_eq!(config.retention_days, 90);
        let zero = AuditConfig {
            retention_days: 0,
            ..config
        };
        assert!(zero
            .validate()
            .unwrap_err()
            .to_string()
            .contains("social_auth.audit.retention_days"));
    }
}
