//! [`Error`]: what [`crate::AuthService`]'s functions and [`crate::reencrypt`] fail with — a
//! kind to match on, and the cause it came from.

use std::error::Error as StdError;
use std::fmt;

use crate::store::StoreError;

/// What went wrong, to match on. More kinds may come: match with a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The database is down, unreachable, or no connection came in time (a 503 in routes).
    DatabaseUnavailable,
    /// The database answered with an error (a failed query or migration).
    Database,
    /// A JWT could not be signed.
    Token,
    /// The configuration is invalid; the message names the key.
    Config,
    /// The identity cannot be issued a token: a `provider` with a `sub` that is not one of our
    /// user ids (canonical decimal).
    Identity,
}

/// An error of this crate's functions: its [`kind`](Error::kind), a message, and the
/// underlying error as [`source`](StdError::source) (a `sqlx::Error`, a
/// [`crate::ConfigError`], a migration error…), kept rather than flattened into text.
///
/// ```
/// use rocket_social_auth::{Error, ErrorKind};
///
/// fn explain(e: &Error) -> &'static str {
///     match e.kind() {
///         ErrorKind::DatabaseUnavailable => "try again shortly",
///         ErrorKind::Config => "fix the configuration",
///         _ => "see the logs",
///     }
/// }
/// # let _ = explain;
/// ```
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` described by `message`, without a cause.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same, caused by `source`.
    pub(crate) fn caused_by(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Error {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(e) => Error::caused_by(
                ErrorKind::DatabaseUnavailable,
                "the database is unavailable",
                e,
            ),
            StoreError::Query(e) => Error::caused_by(ErrorKind::Database, "a query failed", e),
            StoreError::Hook(e) => Error::caused_by(
                ErrorKind::Database,
                "the app's on_user_created hook failed",
                e,
            ),
            StoreError::Conflict => Error::new(ErrorKind::Database, "concurrent login conflict"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_kept() {
        let e = Error::from(StoreError::Unavailable(sqlx::Error::PoolTimedOut));
        assert_eq!(e.kind(), ErrorKind::DatabaseUnavailable);
        assert_eq!(e.to_string(), "the database is unavailable");
        let cause = e.source().expect("a cause");
        assert!(cause.downcast_ref::<sqlx::Error>().is_some(), "{cause}");
    }
}
