//! The shared model: a user as stored, and a sign-in as a provider described it. The store,
//! the policy and the login flow all speak these; none of them owns them.

use serde::Serialize;
use serde_json::Value;

/// A row of `users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct User {
    /// `users.id`; the JWT's `sub`.
    pub id: i64,
    /// Display name from the provider.
    pub name: Option<String>,
    /// Email from the provider (GitHub: the primary, verified one), if any.
    pub email: Option<String>,
    /// Avatar URL from the provider.
    pub avatar_url: Option<String>,
}

/// What the provider said about the person signing in.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignIn<'a> {
    /// The provider's name, e.g. `"github"`.
    pub provider: &'a str,
    /// The provider's immutable id of the user.
    pub social_id: &'a str,
    /// Display name.
    pub name: Option<&'a str>,
    /// Email.
    pub email: Option<&'a str>,
    /// Whether the provider vouches for `email` (GitHub: primary and verified; never Facebook).
    pub email_verified: bool,
    /// The provider's own profile document (GitHub's `/user`, Facebook's `/me`), for anything
    /// else a policy wants to look at.
    pub raw: &'a Value,
}
