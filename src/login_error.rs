//! What a failed login answers: a status, a machine-readable code, and a page or JSON naming it.

use rocket::http::{ContentType, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket::serde::json::json;

use crate::flow::FlowError;
use crate::policy::Denied;
use crate::provider::ProviderError;
use crate::store::StoreError;

/// Why a login did not complete. Every variant has a status and a code; none panics.
#[derive(Debug)]
pub(crate) enum LoginError {
    /// The flow cookie and the callback's `state` disagree (400).
    Flow(FlowError),
    /// The provider sent `error=` (the user denied access, a misconfigured app…) (400).
    Denied {
        code: String,
        description: Option<String>,
    },
    /// The callback has neither `code` nor `error` (400).
    MissingCode,
    /// The provider's token or user endpoint failed (502), or timed out (504).
    Provider(ProviderError),
    /// The database failed (503 when unavailable).
    Store(StoreError),
    /// The JWT could not be signed (500).
    Token,
    /// The app's policy refused the sign-in (403).
    PolicyDenied(Denied),
    /// A link flow finished in a browser no longer signed in as the user who started it (403).
    LinkSessionChanged,
    /// A link would take an identity from another user, or give a user a second identity of a
    /// provider (409).
    Conflict(&'static str),
    /// Too many requests from this client (429, with the seconds to wait).
    RateLimited(u64),
    /// A `POST` to the callback of a provider that does not answer with `form_post` (405):
    /// its callback is `GET` only.
    MethodNotAllowed,
    /// No provider of that name is configured: 404, answered by the app's catcher as for any
    /// unknown path.
    UnknownProvider,
}

impl LoginError {
    fn status(&self) -> Status {
        match self {
            LoginError::Flow(_)
            | LoginError::Denied { .. }
            | LoginError::MissingCode
            | LoginError::Provider(ProviderError::NonceMismatch | ProviderError::IssuerMismatch) => {
                Status::BadRequest
            }
            LoginError::Provider(ProviderError::Timeout) => Status::GatewayTimeout,
            LoginError::Provider(ProviderError::Unavailable(_)) => Status::ServiceUnavailable,
            LoginError::Provider(ProviderError::TenantNotAllowed(_)) => Status::Forbidden,
            LoginError::Provider(ProviderError::Misconfigured(_)) => Status::InternalServerError,
            LoginError::Provider(_) => Status::BadGateway,
            LoginError::Store(e) => e.status(),
            LoginError::Token => Status::InternalServerError,
            LoginError::PolicyDenied(_) | LoginError::LinkSessionChanged => Status::Forbidden,
            LoginError::Conflict(_) => Status::Conflict,
            LoginError::RateLimited(_) => Status::TooManyRequests,
            LoginError::MethodNotAllowed => Status::MethodNotAllowed,
            LoginError::UnknownProvider => Status::NotFound,
        }
    }

    /// Our code for the failure.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            LoginError::Flow(FlowError::Missing) => "missing_flow",
            LoginError::Flow(FlowError::NoState) => "missing_state",
            LoginError::Flow(FlowError::Mismatch | FlowError::Foreign) => "state_mismatch",
            LoginError::Flow(FlowError::Expired) => "flow_expired",
            LoginError::Denied { .. } => "provider_denied",
            LoginError::MissingCode => "missing_code",
            LoginError::Provider(ProviderError::Timeout) => "provider_timeout",
            LoginError::Provider(ProviderError::NonceMismatch) => "nonce_mismatch",
            LoginError::Provider(ProviderError::IssuerMismatch) => "issuer_mismatch",
            LoginError::Provider(ProviderError::Unavailable(_)) => "provider_unavailable",
            LoginError::Provider(ProviderError::TenantNotAllowed(_)) => "tenant_not_allowed",
            LoginError::Provider(ProviderError::Misconfigured(_)) => "provider_misconfigured",
            LoginError::Provider(_) => "provider_error",
            LoginError::Store(e) => e.code(),
            LoginError::Token => "token_error",
            LoginError::PolicyDenied(_) => "sign_in_denied",
            LoginError::LinkSessionChanged => "link_session_changed",
            LoginError::Conflict(code) => code,
            LoginError::RateLimited(_) => "rate_limited",
            LoginError::MethodNotAllowed => "method_not_allowed",
            LoginError::UnknownProvider => "unknown_provider",
        }
    }

    /// The provider's own error code, when it sent one.
    fn provider_code(&self) -> Option<String> {
        match self {
            LoginError::Denied { code, .. }
            | LoginError::Provider(
                ProviderError::Rejected { code, .. } | ProviderError::InvalidGrant { code, .. },
            ) => Some(sanitize(code, 64)),
            _ => None,
        }
    }

    fn message(&self) -> String {
        match self {
            LoginError::Flow(FlowError::Missing) => "No sign-in is in progress for this provider in this browser: it expired, was already used, or was started elsewhere. Please sign in again.".into(),
            LoginError::Flow(FlowError::NoState) => "The provider's answer has no state parameter. Please sign in again.".into(),
            LoginError::Flow(FlowError::Mismatch | FlowError::Foreign) => "The provider's answer does not belong to the sign-in started in this browser. Please sign in again.".into(),
            LoginError::Flow(FlowError::Expired) => "The sign-in took more than ten minutes. Please sign in again.".into(),
            LoginError::Denied { code, description } => match description {
                Some(d) => format!("The provider refused the sign-in ({}): {}", sanitize(code, 64), sanitize(d, 300)),
                None => format!("The provider refused the sign-in ({}).", sanitize(code, 64)),
            },
            LoginError::MissingCode => "The provider's answer has no authorization code.".into(),
            LoginError::Provider(
                ProviderError::Rejected { code, description }
                | ProviderError::InvalidGrant { code, description },
            ) => match description {
                Some(d) => format!("The provider refused to complete the sign-in ({}): {}", sanitize(code, 64), sanitize(d, 300)),
                None => format!("The provider refused to complete the sign-in ({}).", sanitize(code, 64)),
            },
            LoginError::Provider(ProviderError::Timeout) => "The provider did not answer in time. Please try again.".into(),
            LoginError::Provider(ProviderError::NonceMismatch) => "The provider's answer does not belong to the sign-in started in this browser. Please sign in again.".into(),
            LoginError::Provider(ProviderError::Unavailable(_)) => "The provider cannot be reached right now. Please try again shortly.".into(),
            LoginError::Provider(ProviderError::IssuerMismatch) => "The answer does not come from the provider this sign-in was started with. Please sign in again.".into(),
            LoginError::Provider(ProviderError::TenantNotAllowed(_)) => "Accounts of your organization may not sign in here.".into(),
            LoginError::Provider(ProviderError::Misconfigured(_)) => "This sign-in provider is misconfigured; the site's operator has been told.".into(),
            LoginError::Provider(e) => format!("The provider could not complete the sign-in: {}", sanitize(&e.to_string(), 300)),
            LoginError::Store(StoreError::Unavailable(_)) => "The user database is unavailable. Please try again shortly.".into(),
            LoginError::Store(_) => "The sign-in could not be recorded.".into(),
            LoginError::Token => "The session token could not be issued.".into(),
            LoginError::PolicyDenied(d) => format!("This sign-in is not allowed: {}", sanitize(d.reason(), 300)),
            LoginError::LinkSessionChanged => "The account link was started by another session. Please sign in and link again.".into(),
            LoginError::Conflict("identity_linked_elsewhere") => "This account is already linked to another user.".into(),
            LoginError::Conflict(_) => "You already have an account of this provider linked.".into(),
            LoginError::RateLimited(secs) => format!("Too many sign-in attempts. Please try again in {secs} seconds."),
            LoginError::MethodNotAllowed => "This provider's callback is a GET.".into(),
            LoginError::UnknownProvider => "There is no such provider.".into(),
        }
    }
}

/// Keeps printable characters only, at most `max` of them.
fn sanitize(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// Escapes text for HTML (element content and quoted attributes).
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Whether the client prefers JSON to HTML.
pub(crate) fn wants_json(request: &Request<'_>) -> bool {
    request.accept().is_some_and(|a| a.preferred().is_json())
}

impl<'r> Responder<'r, 'static> for LoginError {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        if let LoginError::UnknownProvider = self {
            return Err(Status::NotFound);
        }
        let status = self.status();
        match &self {
            LoginError::Store(e) => log::error!("social_auth: login failed: {e}"),
            LoginError::Provider(e @ ProviderError::Misconfigured(_)) => {
                log::error!("social_auth: login failed: {e}")
            }
            LoginError::Provider(e) => log::warn!("social_auth: login failed: {e}"),
            _ => log::info!("social_auth: login refused: {}", self.code()),
        }
        let provider_code = self.provider_code();
        let (content_type, body) = if wants_json(request) {
            let mut value =
                json!({"status": status.code, "error": self.code(), "message": self.message()});
            if let Some(code) = &provider_code {
                value["provider_error"] = json!(code);
            }
            (ContentType::JSON, value.to_string())
        } else {
            let detail = provider_code
                .map(|c| format!("<p>Provider error: <code>{}</code></p>", escape(&c)))
                .unwrap_or_default();
            let page = format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in failed</title></head>\
                 <body><h1>Sign-in failed</h1><p>{}</p>{detail}<p>Error: <code>{}</code> ({})</p>\
                 <p><a href=\"/\">Back</a></p></body></html>",
                escape(&self.message()),
                self.code(),
                status.code
            );
            (ContentType::HTML, page)
        };
        let mut response = Response::build();
        response
            .status(status)
            .header(content_type)
            .sized_body(body.len(), std::io::Cursor::new(body));
        if let LoginError::RateLimited(secs) = self {
            response.raw_header("Retry-After", secs.to_string());
        }
        if let LoginError::MethodNotAllowed = self {
            response.raw_header("Allow", "GET");
        }
        response.ok()
    }
}
