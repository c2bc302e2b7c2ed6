//! Providers that speak the real providers' documented wire formats, served by Rocket on
//! loopback: the test doubles of this crate's tests and benchmarks, and (the GitHub one) the
//! development provider of the demo app. Behind the `testing` feature, off by default:
//! `[dev-dependencies] rocket_social_auth = { …, features = ["testing"] }`.
//!
//! Each fake reproduces its provider's quirks (GitHub's HTTP 200 errors and form-encoded
//! answers, Facebook's error envelope and `appsecret_proof`, Slack's `ok: false`, Microsoft's
//! templated issuer and AADSTS bodies, Apple's `form_post` and ES256 client secrets, …) and can
//! inject faults, so that a client's handling of them can be tested:
//!
//! - [`FakeGithub`], [`FakeFacebook`], [`FakeDiscord`], [`FakeX`]: OAuth 2.0 providers, one type
//!   each.
//! - [`FakeOidc`]: OpenID Connect providers, one type with a constructor per provider's dialect
//!   ([`google`](FakeOidc::google), [`generic`](FakeOidc::generic), [`gitlab`](FakeOidc::gitlab),
//!   [`linkedin`](FakeOidc::linkedin), [`slack`](FakeOidc::slack),
//!   [`microsoft`](FakeOidc::microsoft), [`apple`](FakeOidc::apple)) and each quirk a setting.
//! - [`FormPost`] reads a `response_mode=form_post` page (Apple's, Microsoft's) for tests that
//!   have no browser.
//!
//! ```no_run
//! use rocket_social_auth::testing::{FakeGithub, FakeUser};
//!
//! # async fn demo() {
//! let fake = FakeGithub::new("client-id", "client-secret");
//! fake.sign_in_as(FakeUser::new(42, "octocat").email("octocat@example.com"));
//! let server = fake.clone().spawn().await.expect("fake GitHub starts");
//! // Point `authorize_url`, `token_url` and `api_url` of the `github` provider at it:
//! println!("{}/login/oauth/authorize", server.url());
//! # }
//! ```

use std::sync::Mutex;

use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::Responder;
use rocket::serde::json::Value;
use rocket::{Build, Rocket};

use crate::login_error::escape as html_escape;

// With the `dev` feature alone, only the GitHub fake (the development provider) is built.
#[cfg(feature = "testing")]
mod discord;
#[cfg(feature = "testing")]
mod facebook;
#[cfg(feature = "testing")]
mod form_post;
mod github;
#[cfg(feature = "testing")]
mod oidc;
#[cfg(feature = "testing")]
mod x;

#[cfg(feature = "testing")]
pub use discord::{DiscordFault, DiscordRateLimitScope, FakeDiscord, FakeDiscordUser};
#[cfg(feature = "testing")]
pub use facebook::{FacebookFault, FakeFacebook, FakeFacebookUser};
#[cfg(feature = "testing")]
pub use form_post::FormPost;
pub use github::{ApiFault, FakeGithub, FakeUser, TokenFault, TokenMode};
#[cfg(feature = "testing")]
pub use oidc::{
    ClientAuth, FakeOidc, FakeOidcUser, IdTokenFault, OidcFault, RefreshRotation, RefreshTokens,
    SigningAlg,
};
#[cfg(feature = "testing")]
pub use x::{FakeX, FakeXUser, XFault, XFieldRefusal};

/// An answer of any shape, to inject as a fault: any status, any `Content-Type` (or none) and
/// any body bytes — what a broken provider, a proxy's error page or a truncated reply may send.
///
/// ```
/// use rocket_social_auth::testing::RawAnswer;
///
/// let page = RawAnswer::new(502, Some("text/html"), "<h1>Bad Gateway</h1>");
/// assert_eq!(page.status, 502);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RawAnswer {
    /// The HTTP status: 200 to 599 (a 1xx is not a final answer and would leave the client
    /// waiting).
    pub status: u16,
    /// The `Content-Type` header, sent as is; none when `None`.
    pub content_type: Option<String>,
    /// The body, sent as is.
    pub body: Vec<u8>,
}

impl RawAnswer {
    /// An answer with `status`, `content_type` and `body`.
    pub fn new(status: u16, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Self {
        RawAnswer {
            status,
            content_type: content_type.map(str::to_owned),
            body: body.into(),
        }
    }
}

impl std::fmt::Debug for RawAnswer {
    /// The body as text (lossy), its first 2000 characters.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = String::from_utf8_lossy(&self.body);
        let mut body: String = text.chars().take(2000).collect();
        if body.len() < text.len() {
            body.push_str(&format!("… ({} bytes)", self.body.len()));
        }
        f.debug_struct("RawAnswer")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body", &body)
            .finish()
    }
}

impl<'r> Responder<'r, 'static> for RawAnswer {
    fn respond_to(self, _: &'r Request<'_>) -> rocket::response::Result<'static> {
        let mut response = rocket::Response::build();
        response
            .status(Status::new(self.status))
            .sized_body(self.body.len(), std::io::Cursor::new(self.body));
        if let Some(content_type) = self.content_type {
            response.raw_header("Content-Type", content_type);
        }
        Ok(response.finalize())
    }
}

/// A running fake provider; dropping it stops the server.
#[derive(Debug)]
pub struct FakeServer {
    url: String,
    shutdown: rocket::Shutdown,
}

impl FakeServer {
    /// Its root, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.shutdown.clone().notify();
    }
}

/// A quiet Rocket configuration on `127.0.0.1` at a free port.
fn fake_config() -> rocket::Config {
    rocket::Config {
        address: std::net::Ipv4Addr::LOCALHOST.into(),
        port: 0,
        log_level: rocket::config::LogLevel::Off,
        cli_colors: false,
        shutdown: rocket::config::Shutdown {
            ctrlc: false,
            #[cfg(unix)]
            signals: Default::default(),
            grace: 1,
            mercy: 1,
            ..Default::default()
        },
        ..rocket::Config::debug_default()
    }
}

/// Launches `rocket` in the background and returns once it listens.
async fn serve(rocket: Rocket<Build>) -> Result<FakeServer, rocket::Error> {
    let (tx, rx) = rocket::tokio::sync::oneshot::channel();
    let tx = Mutex::new(Some(tx));
    let rocket = rocket
        .attach(rocket::fairing::AdHoc::on_liftoff("port", move |r| {
            let port = r.config().port;
            let shutdown = r.shutdown();
            Box::pin(async move {
                if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                    let _ = tx.send((port, shutdown));
                }
            })
        }))
        .ignite()
        .await?;
    let task = rocket::tokio::spawn(rocket.launch());
    match rx.await {
        Ok((port, shutdown)) => Ok(FakeServer {
            url: format!("http://127.0.0.1:{port}"),
            shutdown,
        }),
        Err(_) => match task.await {
            Ok(Err(e)) => Err(e),
            _ => panic!("the fake provider stopped before it started"),
        },
    }
}

/// `redirect_uri` with `pairs` added to its query, and `fragment` if any.
fn with_query(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => return "/".into(),
    };
    url.query_pairs_mut().extend_pairs(pairs);
    url.into()
}

/// An answer with any status, body and headers.
struct Raw {
    status: Status,
    content_type: ContentType,
    body: String,
    headers: Vec<(&'static str, String)>,
}

impl<'r> Responder<'r, 'static> for Raw {
    fn respond_to(self, _: &'r Request<'_>) -> rocket::response::Result<'static> {
        let mut response = rocket::Response::build();
        response
            .status(self.status)
            .header(self.content_type)
            .sized_body(self.body.len(), std::io::Cursor::new(self.body));
        for (name, value) in self.headers {
            response.header(Header::new(name, value));
        }
        Ok(response.finalize())
    }
}

fn json_answer(status: Status, value: Value) -> Raw {
    Raw {
        status,
        content_type: ContentType::new("application", "json").with_params(("charset", "utf-8")),
        body: value.to_string(),
        headers: Vec::new(),
    }
}

/// The HTTP Basic credentials of an `Authorization` header, each part form-decoded as RFC 6749
/// §2.3.1 requires.
#[cfg(feature = "testing")]
fn basic_credentials(authorization: Option<&str>) -> Option<(String, String)> {
    use base64::Engine;
    let decoded = authorization?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(decoded.trim())
        .ok()?;
    let (id, secret) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    let decode = |v: &str| {
        url::form_urlencoded::parse(format!("v={v}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

/// The token of an `Authorization: Bearer` header.
#[cfg(feature = "testing")]
fn bearer_token(authorization: Option<&str>) -> Option<String> {
    authorization?.strip_prefix("Bearer ").map(str::to_owned)
}

/// What the OAuth 2.0 fakes read of a request besides its body.
#[cfg(feature = "testing")]
struct Caller {
    basic: Option<(String, String)>,
    bearer: Option<String>,
    /// Whether the body is `application/x-www-form-urlencoded`.
    form_body: bool,
}

#[cfg(feature = "testing")]
#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for Caller {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> rocket::request::Outcome<Self, Self::Error> {
        let authorization = request.headers().get_one("Authorization");
        rocket::request::Outcome::Success(Caller {
            basic: basic_credentials(authorization),
            bearer: bearer_token(authorization),
            form_body: request.content_type().is_some_and(|c| c.is_form()),
        })
    }
}

/// A form body's fields (at most 64 KiB read), in order.
#[cfg(feature = "testing")]
async fn read_form(body: rocket::Data<'_>) -> Vec<(String, String)> {
    use rocket::data::ToByteUnit;
    match body.open(64.kibibytes()).into_bytes().await {
        Ok(bytes) => url::form_urlencoded::parse(&bytes).into_owned().collect(),
        Err(_) => Vec::new(),
    }
}

/// The first value of `name` in `pairs`.
#[cfg(feature = "testing")]
fn pair<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
