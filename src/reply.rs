//! What the JSON routes answer: the token, refresh and unlink replies (also
//! [`crate::AuthService`]'s results), and [`Refusal`], the one error answer of the JSON routes.
//! (The browser's sign-in routes answer [`LoginError`](crate::login_error::LoginError), a page
//! or JSON.)

use rocket::http::Status;
use rocket::request::Request;
use rocket::response::{self, Responder};
use rocket::serde::json::{json, Json};

use crate::secret::Secret;

/// The answer of `GET {base}/token` and `GET {base}/refresh_token`, and of
/// [`AuthService::get_token`](crate::AuthService::get_token) and [`AuthService::get_refresh_token`](crate::AuthService::get_refresh_token):
/// `{"token": "…", "status": 200}` (or `"refresh_token"`), with `null` and 401, 404 or 503.
///
/// The token is shown by [`TokenReply::token`] and in the JSON, never by `Debug`.
pub struct TokenReply {
    field: &'static str,
    value: Option<Secret>,
    status: Status,
}

impl TokenReply {
    pub(crate) fn new(field: &'static str, value: Option<Secret>, status: Status) -> Self {
        TokenReply {
            field,
            value,
            status,
        }
    }

    /// The token, when the status is 200.
    pub fn token(&self) -> Option<&str> {
        self.value.as_ref().map(Secret::expose)
    }

    /// 200, 401 (signed out), 404 (none stored) or 503 (database unavailable).
    pub fn status(&self) -> Status {
        self.status
    }

    /// The JSON body.
    pub fn to_json(&self) -> serde_json::Value {
        json!({ self.field: self.token(), "status": self.status.code })
    }
}

impl std::fmt::Debug for TokenReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReply")
            .field(self.field, &self.value)
            .field("status", &self.status.code)
            .finish()
    }
}

impl<'r> Responder<'r, 'static> for TokenReply {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        (self.status, Json(self.to_json())).respond_to(request)
    }
}

/// The answer of `{base}/<provider>/refresh` and of [`AuthService::refresh`](crate::AuthService::refresh):
/// `{"status": "<code>"}` with the status of [`RefreshReply::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshReply {
    /// 200 `refreshed`: new tokens are stored.
    Refreshed,
    /// 401 with an empty code: nobody is signed in.
    SignedOut,
    /// 403 `forbidden`: a cross-site request.
    CrossSite,
    /// 404 `no_refresh_token`: none stored, or no identity with that provider.
    NoRefreshToken,
    /// 401 `reauthenticate`: the provider refused the refresh token, which is now forgotten.
    Reauthenticate,
    /// 502 `provider_error`: the provider failed; the stored tokens are kept.
    ProviderFailed,
    /// 504 `provider_timeout`: the provider did not answer in time; tokens kept.
    ProviderTimeout,
    /// 503 `database_unavailable`.
    DatabaseUnavailable,
    /// 500 `storage_error`: the database answered with an error.
    StorageError,
}

impl RefreshReply {
    /// The HTTP status.
    pub fn status(&self) -> Status {
        match self {
            RefreshReply::Refreshed => Status::Ok,
            RefreshReply::SignedOut | RefreshReply::Reauthenticate => Status::Unauthorized,
            RefreshReply::CrossSite => Status::Forbidden,
            RefreshReply::NoRefreshToken => Status::NotFound,
            RefreshReply::ProviderFailed => Status::BadGateway,
            RefreshReply::ProviderTimeout => Status::GatewayTimeout,
            RefreshReply::DatabaseUnavailable => Status::ServiceUnavailable,
            RefreshReply::StorageError => Status::InternalServerError,
        }
    }

    /// The `status` field of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            RefreshReply::Refreshed => "refreshed",
            RefreshReply::SignedOut => "",
            RefreshReply::CrossSite => "forbidden",
            RefreshReply::NoRefreshToken => "no_refresh_token",
            RefreshReply::Reauthenticate => "reauthenticate",
            RefreshReply::ProviderFailed => "provider_error",
            RefreshReply::ProviderTimeout => "provider_timeout",
            RefreshReply::DatabaseUnavailable => "database_unavailable",
            RefreshReply::StorageError => "storage_error",
        }
    }
}

impl<'r> Responder<'r, 'static> for RefreshReply {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        (self.status(), Json(json!({ "status": self.code() }))).respond_to(request)
    }
}

/// The answer of `POST {base}/<provider>/unlink`: `{"status": "<code>"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnlinkReply {
    /// 200 `unlinked`.
    Unlinked,
    /// 401 with an empty code: nobody is signed in.
    SignedOut,
    /// 403 `forbidden`: a cross-site request.
    CrossSite,
    /// 404 `not_linked`: the user has no identity with that provider.
    NotLinked,
    /// 409 `last_identity`: the last identity cannot be removed.
    LastIdentity,
    /// 503 `database_unavailable`.
    DatabaseUnavailable,
    /// 500 `storage_error`: the database answered with an error.
    StorageError,
}

impl UnlinkReply {
    /// The HTTP status.
    pub fn status(&self) -> Status {
        match self {
            UnlinkReply::Unlinked => Status::Ok,
            UnlinkReply::SignedOut => Status::Unauthorized,
            UnlinkReply::CrossSite => Status::Forbidden,
            UnlinkReply::NotLinked => Status::NotFound,
            UnlinkReply::LastIdentity => Status::Conflict,
            UnlinkReply::DatabaseUnavailable => Status::ServiceUnavailable,
            UnlinkReply::StorageError => Status::InternalServerError,
        }
    }

    /// The `status` field of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            UnlinkReply::Unlinked => "unlinked",
            UnlinkReply::SignedOut => "",
            UnlinkReply::CrossSite => "forbidden",
            UnlinkReply::NotLinked => "not_linked",
            UnlinkReply::LastIdentity => "last_identity",
            UnlinkReply::DatabaseUnavailable => "database_unavailable",
            UnlinkReply::StorageError => "storage_error",
        }
    }
}

impl<'r> Responder<'r, 'static> for UnlinkReply {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        (self.status(), Json(json!({ "status": self.code() }))).respond_to(request)
    }
}

/// Why a JSON route refused (link, logout, logout everywhere, session, refresh): its one error
/// answer, a status with `{"status": "<code>"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 404 from the app's catcher, as for any unknown path: a provider that is off.
    NotFound,
    /// `status` with `{"status": code}`.
    Code(Status, &'static str),
    /// 429 `{"status": "rate_limited"}` with `Retry-After`.
    RateLimited(u64),
    /// 401 `{"user": null, "status": 401}`: `GET {base}/session` without a session.
    NoSession,
}

impl Refusal {
    /// 503 `database_unavailable`.
    pub(crate) const DATABASE_UNAVAILABLE: Refusal =
        Refusal::Code(Status::ServiceUnavailable, "database_unavailable");
    /// 403 `forbidden`: a cross-site request.
    pub(crate) const CROSS_SITE: Refusal = Refusal::Code(Status::Forbidden, "forbidden");
}

impl<'r> Responder<'r, 'static> for Refusal {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        match self {
            Refusal::NotFound => Err(Status::NotFound),
            Refusal::Code(status, code) => {
                (status, Json(json!({ "status": code }))).respond_to(request)
            }
            Refusal::RateLimited(wait) => {
                let mut response = (
                    Status::TooManyRequests,
                    Json(json!({"status": "rate_limited"})),
                )
                    .respond_to(request)?;
                response.set_raw_header("Retry-After", wait.to_string());
                Ok(response)
            }
            Refusal::NoSession => (
                Status::Unauthorized,
                Json(json!({"user": null, "status": 401})),
            )
                .respond_to(request),
        }
    }
}
