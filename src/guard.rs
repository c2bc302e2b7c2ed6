//! The request guards: [`SocialAuth`] (who is signed in, never fails) and [`AuthUser`] (401
//! when nobody is).

use std::convert::Infallible;
use std::ops::Deref;
use std::sync::Arc;

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::{Ignite, Rocket, Sentinel};

use crate::jwt::Claims;
use crate::measure;
use crate::service::AuthService;
use crate::verified_cache::{TokenSource, Verified};

/// Who sent a request: the three answers of the Django app's `is_auth_social(request)`.
///
/// The JWT comes from `Authorization: Bearer …` when that header is present, else from the
/// private cookie [`AuthService::jwt_cookie_name`] (`__Host-jwt` on an https `public_url`,
/// `jwt` on plain HTTP; only that name is read). A missing, tampered, expired or wrongly signed token (including
/// `alg: none` and any algorithm other than the configured one) is [`SocialAuth::Anonymous`].
/// The guard never fails and never touches the database; it runs once per request.
///
/// ```no_run
/// use rocket::get;
/// use rocket_social_auth::SocialAuth;
///
/// #[get("/hello")]
/// fn hello(auth: SocialAuth) -> String {
///     match auth {
///         SocialAuth::Social { provider, claims } => {
///             format!("Hello {} (via {provider})", claims.name.unwrap_or_default())
///         }
///         SocialAuth::Local { claims } => format!("Hello user {}", claims.sub),
///         _ => "Hello stranger".into(),
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocialAuth {
    /// Signed in through a provider.
    Social {
        /// The provider's name, e.g. `"github"`.
        provider: String,
        /// The token's claims.
        claims: Claims,
    },
    /// Signed in by the app's own login: a valid JWT without a `provider` claim, issued with
    /// [`AuthService::issue_jwt`].
    Local {
        /// The token's claims.
        claims: Claims,
    },
    /// No valid token.
    Anonymous,
}

impl SocialAuth {
    /// The claims, when signed in.
    pub fn claims(&self) -> Option<&Claims> {
        match self {
            SocialAuth::Social { claims, .. } | SocialAuth::Local { claims } => Some(claims),
            SocialAuth::Anonymous => None,
        }
    }

    /// The provider's name, when signed in through one.
    pub fn provider(&self) -> Option<&str> {
        match self {
            SocialAuth::Social { provider, .. } => Some(provider),
            _ => None,
        }
    }

    /// Whether anybody is signed in.
    pub fn is_authenticated(&self) -> bool {
        !matches!(self, SocialAuth::Anonymous)
    }
}

/// What the guard found, cached for the request: the verified token, if any.
pub(crate) struct Resolved(Option<Arc<Verified>>);

impl Resolved {
    /// Who sent the request.
    pub(crate) fn auth(&self) -> SocialAuth {
        match &self.0 {
            None => SocialAuth::Anonymous,
            Some(verified) => {
                let claims = verified.claims.clone();
                match claims.provider.clone() {
                    Some(provider) => SocialAuth::Social { provider, claims },
                    None => SocialAuth::Local { claims },
                }
            }
        }
    }

    /// The valid token the request carried.
    pub(crate) fn token(&self) -> Option<&str> {
        self.0.as_ref().map(|v| v.token.as_str())
    }
}

fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Resolves the request's token once and caches the answer.
pub(crate) fn resolve<'r>(request: &'r Request<'_>) -> &'r Resolved {
    request.local_cache(|| {
        let Some(service) = request.rocket().state::<AuthService>() else {
            return Resolved(None);
        };
        let cookie_name = service.jwt_cookie_name();
        let (source, raw) = match request.headers().get_one("Authorization").and_then(bearer) {
            Some(token) => (TokenSource::Bearer, token),
            None => match request.cookies().get(cookie_name) {
                Some(cookie) => (TokenSource::Cookie, cookie.value()),
                None => return Resolved(None),
            },
        };
        if let Some(hit) = service.verified().get(source, raw) {
            // A remembered token may have been revoked since (logout, here or elsewhere).
            if service.is_revoked(&hit.claims.jti) {
                measure::guard("refused");
                return Resolved(None);
            }
            measure::guard("remembered");
            return Resolved(Some(hit));
        }
        let token = match source {
            TokenSource::Bearer => raw.to_owned(),
            TokenSource::Cookie => match request.cookies().get_private(cookie_name) {
                Some(cookie) => cookie.value().to_owned(),
                None => {
                    measure::guard("refused");
                    return Resolved(None);
                }
            },
        };
        let Some(claims) = service.verify_jwt(&token) else {
            measure::guard("refused");
            return Resolved(None);
        };
        measure::guard("verified");
        let verified = Arc::new(Verified { token, claims });
        service.verified().insert(source, raw, verified.clone());
        Resolved(Some(verified))
    })
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for SocialAuth {
    type Error = Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(resolve(request).auth())
    }
}

impl Sentinel for SocialAuth {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        rocket.state::<AuthService>().is_none()
    }
}

/// A signed-in user; routes that take it answer 401 to anybody else.
///
/// It dereferences to the token's [`Claims`].
///
/// ```no_run
/// use rocket::get;
/// use rocket_social_auth::AuthUser;
///
/// #[get("/private")]
/// fn private(user: AuthUser) -> String {
///     format!("user {} via {:?}", user.sub, user.provider)
/// }
/// ```
#[derive(Clone)]
pub struct AuthUser {
    /// Shared with the request's cache: taking the guard copies nothing.
    verified: Arc<Verified>,
}

impl AuthUser {
    /// The token's claims.
    pub fn claims(&self) -> &Claims {
        &self.verified.claims
    }
}

impl Deref for AuthUser {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.verified.claims
    }
}

impl PartialEq for AuthUser {
    fn eq(&self, other: &Self) -> bool {
        self.claims() == other.claims()
    }
}

impl Eq for AuthUser {}

impl std::fmt::Debug for AuthUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthUser")
            .field("claims", self.claims())
            .finish()
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthUser {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        match &resolve(request).0 {
            Some(verified) => Outcome::Success(AuthUser {
                verified: verified.clone(),
            }),
            None => Outcome::Error((Status::Unauthorized, ())),
        }
    }
}

impl Sentinel for AuthUser {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        rocket.state::<AuthService>().is_none()
    }
}
