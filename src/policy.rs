//! [`Policy`]: the app's say in a sign-in — allow or deny it, add claims, act when a user is
//! created (inside the same transaction).

use serde_json::{Map, Value};

use crate::audit::AuthEvent;
use crate::model::{SignIn, User};

/// A refused sign-in: answered with 403 and this reason, nothing stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    reason: String,
}

impl Denied {
    /// A denial with a reason shown to the user.
    pub fn new(reason: impl Into<String>) -> Self {
        Denied {
            reason: reason.into(),
        }
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Hooks an app passes to [`crate::SocialAuthFairing::policy`].
///
/// Every method has a default that does nothing, so an app implements only what it needs.
///
/// ```
/// // The crate's re-exports: the versions its signatures use.
/// use rocket_social_auth::serde_json::{json, Map, Value};
/// use rocket_social_auth::sqlx;
/// use rocket_social_auth::{Denied, Policy, SignIn, User};
///
/// /// Only people of example.com, with their team in the token, and a row in our own table.
/// struct Company;
///
/// #[rocket::async_trait]
/// impl Policy for Company {
///     async fn allow(&self, sign_in: &SignIn<'_>) -> Result<(), Denied> {
///         match sign_in.email {
///             Some(email) if sign_in.email_verified && email.ends_with("@example.com") => Ok(()),
///             _ => Err(Denied::new("Only example.com accounts may sign in.")),
///         }
///     }
///
///     fn extra_claims(&self, _user: &User, _provider: &str) -> Map<String, Value> {
///         let mut claims = Map::new();
///         claims.insert("team".into(), json!("staff"));
///         claims
///     }
///
///     async fn on_user_created(
///         &self,
///         conn: &mut sqlx::AnyConnection,
///         user: &User,
///         _sign_in: &SignIn<'_>,
///     ) -> Result<(), sqlx::Error> {
///         sqlx::query("INSERT INTO profiles (user_id) VALUES ($1)")
///             .bind(user.id)
///             .execute(conn)
///             .await
///             .map(|_| ())
///     }
/// }
/// ```
#[rocket::async_trait]
pub trait Policy: Send + Sync + 'static {
    /// Allows or denies a sign-in (and a link) before anything is stored.
    async fn allow(&self, _sign_in: &SignIn<'_>) -> Result<(), Denied> {
        Ok(())
    }

    /// Claims to add to the user's JWT. The names this crate sets are never overridden:
    /// `sub`, `role`, `provider`, `iat`, `exp`, `nbf`, `jti`, `name`, `email`, `avatar_url`,
    /// `iss` and `aud`.
    fn extra_claims(&self, _user: &User, _provider: &str) -> Map<String, Value> {
        Map::new()
    }

    /// Runs when a sign-in creates a user, inside the transaction that creates it: an error
    /// rolls the whole sign-in back.
    async fn on_user_created(
        &self,
        _conn: &mut sqlx::AnyConnection,
        _user: &User,
        _sign_in: &SignIn<'_>,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// Receives every audit event ([`AuthEvent`]): sign-ins, refused sign-ins, links,
    /// logouts, refreshes… Called on the request's task, after the fact: keep it quick (hand
    /// the event to a channel for slow work). It cannot change the outcome.
    ///
    /// ```
    /// use rocket_social_auth::{AuthEvent, AuthEventKind, Policy};
    ///
    /// struct Alerts;
    ///
    /// impl Policy for Alerts {
    ///     fn on_event(&self, event: &AuthEvent) {
    ///         if let AuthEventKind::SignInRefused { code } = &event.kind {
    ///             eprintln!("refused sign-in from {:?}: {code}", event.ip);
    ///         }
    ///     }
    /// }
    /// ```
    fn on_event(&self, _event: &AuthEvent) {}
}

/// The policy of an app that passed none: everything allowed, nothing added.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AllowAll;

impl Policy for AllowAll {}
