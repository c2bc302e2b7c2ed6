//! Property tests over everything a client controls (cookies, headers, query values of any
//! bytes and length; through the local client, and raw over TCP) and everything a provider may
//! answer (any status, content type and body): never a panic or a hang, never a 5xx but the
//! documented 502 for a provider that failed or refused.
//!
//! Each property builds its app once and runs a bounded number of cases, so that `cargo test`
//! stays fast. `PROPTEST_CASES=100000 cargo test --test it fuzz` runs a long pass (every
//! property that many cases). What a property finds is kept below as a `regression_*` test.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rocket::http::{Cookie, Header, Status};
use rocket::local::asynchronous::Client;
use rocket_social_auth::is_local_path;
use rocket_social_auth::testing::{FakeGithub, FakeServer, RawAnswer, TokenFault, TokenMode};
use serde_json::{json, Value};

use crate::common::*;
use crate::db_tests;

db_tests!(
    provider_token_answers_are_502,
    provider_user_answers_are_502_unless_usable,
    regression_nul_in_a_profile_is_a_502,
    regression_nul_in_a_refreshed_token_is_a_502,
);

/// How long one case may take before it counts as a hang.
const CASE_DEADLINE: Duration = Duration::from_secs(20);
/// The most a provider answer is read (`http::MAX_BODY`).
const MAX_BODY: usize = 1024 * 1024;
const FLOW_COOKIE: &str = "social_auth_flow_github";
const PUBLIC_ORIGIN: &str = "http://127.0.0.1:8000";

/// The cases a property runs: `PROPTEST_CASES` when set, else `default`.
fn config(default: u32) -> Config {
    let mut config = Config {
        // A failing case is kept as a named regression test instead.
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default;
    }
    config
}

/// Runs a property on a thread of its own (proptest's runner is synchronous, and its value
/// trees want a deeper stack than a test thread's); each case is a future run to completion on
/// the test's runtime within [`CASE_DEADLINE`].
async fn check<S, T, F, Fut>(default_cases: u32, strategy: fn() -> S, ctx: Arc<T>, case: F)
where
    S: Strategy + 'static,
    S::Value: Send,
    T: Send + Sync + 'static,
    F: Fn(Arc<T>, S::Value) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), TestCaseError>>,
{
    let handle = rocket::tokio::runtime::Handle::current();
    let (tx, rx) = rocket::tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("proptest".into())
        .stack_size(64 << 20)
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut runner = TestRunner::new(config(default_cases));
                runner
                    .run(&strategy(), |value| {
                        handle.block_on(async {
                            rocket::tokio::time::timeout(CASE_DEADLINE, case(ctx.clone(), value))
                                .await
                                .unwrap_or_else(|_| {
                                    Err(TestCaseError::fail("no answer in time: a hang"))
                                })
                        })
                    })
                    .map_err(|e| e.to_string())
            }));
            let _ = tx.send(outcome);
        })
        .expect("the property's thread starts");
    match rx.await.expect("the property's thread answers") {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// An app on its own database and fake GitHub, driven by an untracked client: every case
/// brings its own cookies.
struct Fuzz {
    client: Client,
    fake: FakeGithub,
    server: FakeServer,
    /// Our own pool on the app's database, to count rows.
    pool: sqlx::AnyPool,
    _db: TestDb,
    /// A valid session JWT of octocat.
    jwt: String,
    /// The same, as the encrypted `jwt` cookie value a browser sends back.
    jwt_cookie: String,
}

impl Fuzz {
    async fn start(db: TestDb) -> Fuzz {
        let fake = FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
        fake.sign_in_as(octocat());
        let server = fake.clone().spawn().await.expect("fake GitHub starts");
        let client = Client::untracked(rocket(figment(&db.url, server.url(), "")))
            .await
            .expect("app launches");
        let mut fuzz = Fuzz {
            client,
            fake,
            server,
            pool: db.pool().await,
            _db: db,
            jwt: String::new(),
            jwt_cookie: String::new(),
        };
        let login = fuzz.start_login().await;
        let done = fuzz
            .client
            .get(login.callback)
            .cookie(login.cookie)
            .dispatch()
            .await;
        assert_eq!(done.status(), Status::SeeOther);
        fuzz.jwt_cookie = done.cookies().get("jwt").unwrap().value().to_owned();
        fuzz.jwt = done
            .cookies()
            .get_private("jwt")
            .unwrap()
            .value()
            .to_owned();
        drop(done);
        fuzz
    }

    /// Starts a login and lets the fake approve it.
    async fn start_login(&self) -> Login {
        let start = self.client.get("/auth/github").dispatch().await;
        assert_eq!(start.status(), Status::SeeOther);
        let location = start.headers().get_one("Location").unwrap().to_owned();
        let cookie = start.cookies().get(FLOW_COOKIE).unwrap().clone();
        let flow = newest_flow(start.cookies().get_private(FLOW_COOKIE).unwrap().value());
        drop(start);
        Login {
            callback: provider_redirect(&location).await,
            cookie,
            flow,
        }
    }

    async fn users(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

/// The newest of the pending flows of a decrypted flow cookie (a JSON list, oldest first).
fn newest_flow(cookie: &str) -> Value {
    let flows: Value = serde_json::from_str(cookie).unwrap();
    flows.as_array().and_then(|f| f.last()).cloned().unwrap()
}

/// A login approved by the provider, not yet back at the callback.
struct Login {
    /// Path and query of the callback.
    callback: String,
    /// The flow cookie, encrypted, as the browser holds it.
    cookie: Cookie<'static>,
    /// The flow, decrypted.
    flow: Value,
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// Values that break naive code.
const NASTY: &[&str] = &[
    "",
    " ",
    "%",
    "%%",
    "%zz",
    "%00",
    "%FF%FE",
    "\0",
    "\r\n",
    "\r\nSet-Cookie: jwt=x",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "null",
    "[]",
    "{}",
    "{\"a\":",
    "Bearer",
    "bearer ",
    "Bearer  ",
    "\u{feff}",
    "\u{202e}",
    "\u{fffd}",
    "𝕏🦀",
    "//evil.example",
    "/\\evil.example",
    "https://evil.example",
    "javascript:alert(1)",
    "/",
    "/ok?x=1",
    "/%2e%2e/",
    "1e400",
    "-1",
    "9223372036854775808",
];

/// Characters that text should not contain, and sometimes does.
const CONTROL: &[char] = &[
    '\0', '\t', '\n', '\r', '\u{1b}', '\u{7f}', '\u{85}', '\u{2028}', '\u{202e}', '\u{feff}',
];

/// Text of any kind: printable unicode, any `char` (controls and NUL included), lossy bytes,
/// huge repetitions, and the usual suspects.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        6 => "\\PC{0,40}",
        2 => ("\\PC{0,8}", select(CONTROL), "\\PC{0,8}").prop_map(|(a, c, b)| format!("{a}{c}{b}")),
        3 => vec(any::<char>(), 0..24).prop_map(String::from_iter),
        2 => vec(any::<u8>(), 0..40).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => (any::<char>(), 1_000usize..60_000).prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
        3 => select(NASTY).prop_map(str::to_owned),
    ]
    .boxed()
}

/// Bytes of any kind, for query values (which may percent-encode invalid UTF-8).
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => vec(any::<u8>(), 0..40),
        4 => text().prop_map(String::into_bytes),
        1 => (any::<u8>(), 1_000usize..40_000).prop_map(|(b, n)| vec![b; n]),
    ]
}

/// How a value goes into a query: fully percent-encoded (always a valid URI), or raw where the
/// bytes allow it (`&`, `=`, `%`, `+` left as they are: the URI may not even parse).
#[derive(Debug, Clone, Copy)]
enum Enc {
    Percent,
    Raw,
}

fn encode(bytes: &[u8], enc: Enc) -> String {
    match enc {
        Enc::Percent => url::form_urlencoded::byte_serialize(bytes).collect(),
        Enc::Raw => bytes
            .iter()
            .map(|&b| match b {
                b'!'..=b'~' if b != b'#' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect(),
    }
}

fn query(params: &[(String, Vec<u8>, Enc)]) -> String {
    params
        .iter()
        .map(|(name, value, enc)| {
            format!(
                "{}={}",
                encode(name.as_bytes(), Enc::Percent),
                encode(value, *enc)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn params() -> impl Strategy<Value = Vec<(String, Vec<u8>, Enc)>> {
    let name = prop_oneof![
        8 => select(&["code", "state", "error", "error_description", "next"][..]).prop_map(str::to_owned),
        1 => text(),
    ];
    let enc = prop_oneof![3 => Just(Enc::Percent), 1 => Just(Enc::Raw)];
    vec((name, bytes(), enc), 0..6)
}

fn json_scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ]
    .boxed()
}

/// Any JSON value, a few levels deep.
fn json_value() -> BoxedStrategy<Value> {
    json_scalar()
        .prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(Value::Array),
                vec(("\\PC{0,8}", inner), 0..4)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A JWT-shaped string: three base64url parts with hostile headers and claims and a signature
/// that cannot be right.
fn jwt_shaped() -> impl Strategy<Value = String> {
    let header = prop_oneof![
        Just(json!({"alg": "HS256", "typ": "JWT"})),
        Just(json!({"alg": "none", "typ": "JWT"})),
        Just(json!({"alg": "HS512"})),
        Just(json!({"alg": "RS256"})),
        Just(json!({"alg": "HS256", "kid": "../../etc/passwd", "crit": ["exp"]})),
        json_value(),
    ];
    let claims = (json_scalar(), json_scalar(), json_scalar(), json_scalar()).prop_map(
        |(sub, provider, exp, name)| {
            json!({"sub": sub, "role": "web_user", "provider": provider, "iat": 0,
                   "exp": exp, "jti": "j", "name": name})
        },
    );
    let claims = prop_oneof![claims, json_value()];
    (header, claims, vec(any::<u8>(), 0..48), 0usize..4).prop_map(|(h, c, sig, shape)| {
        let (h, c, sig) = (
            URL_SAFE_NO_PAD.encode(h.to_string()),
            URL_SAFE_NO_PAD.encode(c.to_string()),
            URL_SAFE_NO_PAD.encode(sig),
        );
        match shape {
            0 => format!("{h}.{c}."),
            1 => format!("{h}.{c}"),
            2 => format!("{h}.{c}.{sig}.{sig}"),
            _ => format!("{h}.{c}.{sig}"),
        }
    })
}

fn token_text() -> impl Strategy<Value = String> {
    prop_oneof![2 => text(), 1 => jwt_shaped()]
}

#[derive(Debug, Clone)]
enum JwtCookie {
    /// Sent as is: Rocket cannot decrypt it.
    Raw(String),
    /// Encrypted with the app's key: decrypts to garbage.
    Private(String),
    /// The valid session, as the browser sends it back.
    Valid,
    /// The valid session JWT with one character changed, encrypted.
    Tampered(usize),
}

fn jwt_cookie() -> impl Strategy<Value = Option<JwtCookie>> {
    prop_oneof![
        3 => Just(None),
        2 => token_text().prop_map(|t| Some(JwtCookie::Raw(t))),
        3 => token_text().prop_map(|t| Some(JwtCookie::Private(t))),
        1 => Just(Some(JwtCookie::Valid)),
        1 => any::<usize>().prop_map(|i| Some(JwtCookie::Tampered(i))),
    ]
}

#[derive(Debug, Clone)]
enum Authorization {
    /// `Bearer <the valid session JWT>`.
    Valid,
    /// `Bearer <token>`.
    Bearer(String),
    /// Anything.
    Any(String),
}

fn authorization() -> impl Strategy<Value = Option<Authorization>> {
    prop_oneof![
        4 => Just(None),
        1 => Just(Some(Authorization::Valid)),
        2 => token_text().prop_map(|t| Some(Authorization::Bearer(t))),
        2 => text().prop_map(|t| Some(Authorization::Any(t))),
    ]
}

#[derive(Debug, Clone)]
enum FlowCookie {
    /// Sent as is: Rocket cannot decrypt it.
    Raw(String),
    /// Encrypted: decrypts to anything.
    Private(String),
    /// Encrypted JSON shaped like a flow (or nearly), with hostile values. Its `state` starts
    /// with `F` and has 40 characters, so that no generated query `state` matches it.
    Json(Value),
}

fn flow_json() -> impl Strategy<Value = Value> {
    let string_or_not = || prop_oneof![4 => text().prop_map(Value::String), 1 => json_scalar()];
    (
        prop_oneof![3 => Just(json!("github")), 1 => string_or_not()],
        "F[a-zA-Z0-9_-]{39}",
        string_or_not(),
        prop_oneof![Just(Value::Null), string_or_not()],
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            select(&[i64::MIN, i64::MAX, 0, -1][..]).prop_map(Value::from),
            json_scalar(),
        ],
        any::<bool>(),
    )
        .prop_map(|(provider, state, verifier, next, created_at, extra)| {
            let mut flow = json!({"provider": provider, "state": state, "verifier": verifier,
                                  "next": next, "created_at": created_at});
            if extra {
                flow["admin"] = json!(true);
            }
            flow
        })
}

fn flow_cookie() -> impl Strategy<Value = Option<FlowCookie>> {
    prop_oneof![
        2 => Just(None),
        1 => text().prop_map(|t| Some(FlowCookie::Raw(t))),
        1 => text().prop_map(|t| Some(FlowCookie::Private(t))),
        3 => flow_json().prop_map(|v| Some(FlowCookie::Json(v))),
        // The cookie holds a list of pending flows: lists of hostile flows and of anything.
        2 => vec(flow_json(), 0..7).prop_map(|v| Some(FlowCookie::Json(Value::Array(v)))),
        1 => vec(json_value(), 0..4).prop_map(|v| Some(FlowCookie::Json(Value::Array(v)))),
        1 => json_value().prop_map(|v| Some(FlowCookie::Json(v))),
    ]
}

#[derive(Debug, Clone)]
enum Target {
    Login,
    Callback,
    Session,
    Token,
    Logout {
        post: bool,
    },
    Refresh {
        post: bool,
    },
    Whoami,
    Strict,
    /// `/auth/<segment>` or `/auth/<segment>/callback`, any segment.
    Other {
        segment: Vec<u8>,
        callback: bool,
    },
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        3 => Just(Target::Login),
        6 => Just(Target::Callback),
        1 => Just(Target::Session),
        1 => Just(Target::Token),
        1 => any::<bool>().prop_map(|post| Target::Logout { post }),
        1 => any::<bool>().prop_map(|post| Target::Refresh { post }),
        1 => Just(Target::Whoami),
        1 => Just(Target::Strict),
        1 => (bytes(), any::<bool>()).prop_map(|(segment, callback)| Target::Other { segment, callback }),
    ]
}

/// One request, as hostile as a client can make it.
#[derive(Debug, Clone)]
struct Input {
    target: Target,
    params: Vec<(String, Vec<u8>, Enc)>,
    jwt: Option<JwtCookie>,
    authorization: Option<Authorization>,
    flow: Option<FlowCookie>,
    accept: Option<String>,
    origin: Option<String>,
    sec_fetch_site: Option<String>,
}

fn header_value(known: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(None),
        2 => select(known).prop_map(|v| Some(v.to_owned())),
        1 => text().prop_map(Some),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    (
        target(),
        params(),
        jwt_cookie(),
        authorization(),
        flow_cookie(),
        header_value(&[
            "application/json",
            "text/html",
            "*/*",
            "application/json;q=0",
        ]),
        header_value(&[PUBLIC_ORIGIN, "https://evil.example", "null"]),
        header_value(&["cross-site", "same-origin", "none"]),
    )
        .prop_map(
            |(target, params, jwt, authorization, flow, accept, origin, sec_fetch_site)| Input {
                target,
                params,
                jwt,
                authorization,
                flow,
                accept,
                origin,
                sec_fetch_site,
            },
        )
}

// ---------------------------------------------------------------------------------------
// Client input
// ---------------------------------------------------------------------------------------

/// The guard's reading of `Authorization` (kept in step with `guard::bearer`).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The codes a refused callback may name.
const LOGIN_ERRORS: &[&str] = &[
    "missing_flow",
    "missing_state",
    "state_mismatch",
    "flow_expired",
    "provider_denied",
    "missing_code",
];

/// The error a failed login's answer names, JSON or page.
fn named_error(body: &str) -> Option<String> {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        let named = v["error"].as_str()?;
        let message = v["message"].as_str().unwrap_or_default();
        return (!message.is_empty()).then(|| named.to_owned());
    }
    let start = body.find("<p>Error: <code>")? + "<p>Error: <code>".len();
    let end = body[start..].find("</code>")? + start;
    Some(body[start..end].to_owned())
}

async fn client_input(fuzz: Arc<Fuzz>, input: Input) -> Result<(), TestCaseError> {
    let path = match &input.target {
        Target::Login => "/auth/github".to_owned(),
        Target::Callback => "/auth/github/callback".to_owned(),
        Target::Session => "/auth/session".to_owned(),
        Target::Token => "/auth/token".to_owned(),
        Target::Logout { .. } => "/auth/logout".to_owned(),
        Target::Refresh { .. } => "/auth/github/refresh".to_owned(),
        Target::Whoami => "/whoami".to_owned(),
        Target::Strict => "/strict".to_owned(),
        Target::Other { segment, callback } => format!(
            "/auth/{}{}",
            encode(segment, Enc::Percent),
            if *callback { "/callback" } else { "" }
        ),
    };
    let uri = match query(&input.params) {
        q if q.is_empty() => path,
        q => format!("{path}?{q}"),
    };
    let valid_uri = rocket::http::uri::Origin::parse(&uri).is_ok();
    let client = &fuzz.client;
    // A logout revokes the session it signs out: give it a session of its own, so that the
    // shared one stays valid for the other cases.
    let fresh = match input.target {
        Target::Logout { .. } => {
            let service = client
                .rocket()
                .state::<rocket_social_auth::AuthService>()
                .unwrap();
            let claims = service.verify_jwt(&fuzz.jwt).unwrap();
            let identity = rocket_social_auth::Identity::new(claims.sub.clone())
                .provider(claims.provider.clone().unwrap_or_default());
            Some(service.issue_jwt(identity).await.unwrap().token)
        }
        _ => None,
    };
    let jwt = fresh.clone().unwrap_or_else(|| fuzz.jwt.clone());
    let mut request = match input.target {
        Target::Logout { post: true } | Target::Refresh { post: true } => client.post(uri),
        _ => client.get(uri),
    };
    match &input.jwt {
        None => {}
        Some(JwtCookie::Raw(t)) => request = request.cookie(Cookie::new("jwt", t.clone())),
        Some(JwtCookie::Private(t)) => {
            request = request.private_cookie(Cookie::new("jwt", t.clone()))
        }
        Some(JwtCookie::Valid) => match &fresh {
            Some(token) => request = request.private_cookie(Cookie::new("jwt", token.clone())),
            None => request = request.cookie(Cookie::new("jwt", fuzz.jwt_cookie.clone())),
        },
        Some(JwtCookie::Tampered(i)) => {
            let mut jwt = fuzz.jwt.clone().into_bytes();
            let i = i % jwt.len();
            jwt[i] = if jwt[i] == b'A' { b'B' } else { b'A' };
            let jwt = String::from_utf8(jwt).unwrap();
            request = request.private_cookie(Cookie::new("jwt", jwt));
        }
    }
    let authorization = match &input.authorization {
        None => None,
        Some(Authorization::Valid) => Some(format!("Bearer {jwt}")),
        Some(Authorization::Bearer(t)) => Some(format!("Bearer {t}")),
        Some(Authorization::Any(t)) => Some(t.clone()),
    };
    if let Some(value) = &authorization {
        request = request.header(Header::new("Authorization", value.clone()));
    }
    match &input.flow {
        None => {}
        Some(FlowCookie::Raw(t)) => request = request.cookie(Cookie::new(FLOW_COOKIE, t.clone())),
        Some(FlowCookie::Private(t)) => {
            request = request.private_cookie(Cookie::new(FLOW_COOKIE, t.clone()))
        }
        Some(FlowCookie::Json(v)) => {
            request = request.private_cookie(Cookie::new(FLOW_COOKIE, v.to_string()))
        }
    }
    for (name, value) in [
        ("Accept", &input.accept),
        ("Origin", &input.origin),
        ("Sec-Fetch-Site", &input.sec_fetch_site),
    ] {
        if let Some(value) = value {
            request = request.header(Header::new(name, value.clone()));
        }
    }

    let response = request.dispatch().await;
    let status = response.status();
    prop_assert!(status.code < 500, "{status} for {input:?}");
    if !valid_uri {
        prop_assert_eq!(status, Status::BadRequest);
        return Ok(());
    }

    let signed_in = match authorization.as_deref().and_then(bearer) {
        Some(token) => token == jwt,
        None => matches!(input.jwt, Some(JwtCookie::Valid)),
    };
    let cross_site = input
        .sec_fetch_site
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
        || input
            .origin
            .as_deref()
            .is_some_and(|o| !o.eq_ignore_ascii_case(PUBLIC_ORIGIN));
    // What a state-changing GET needs: the browser's word that it comes from our own site.
    let own_site = match input.sec_fetch_site.as_deref() {
        Some(v) => ["same-origin", "same-site", "none"]
            .iter()
            .any(|s| v.eq_ignore_ascii_case(s)),
        None => input
            .origin
            .as_deref()
            .is_some_and(|o| o.eq_ignore_ascii_case(PUBLIC_ORIGIN)),
    };
    let expect = |expected: Status| -> Result<(), TestCaseError> {
        prop_assert_eq!(status, expected, "{:?}", input);
        Ok(())
    };
    match &input.target {
        Target::Login => {
            expect(Status::SeeOther)?;
            let location = response.headers().get_one("Location").unwrap_or_default();
            let provider = format!("{}/login/oauth/authorize?", fuzz.server.url());
            prop_assert!(location.starts_with(&provider), "{}", location);
            let flows = response.cookies().get_private(FLOW_COOKIE);
            let flows: Value = serde_json::from_str(flows.as_ref().unwrap().value()).unwrap();
            for flow in flows.as_array().unwrap() {
                if let Some(next) = flow["next"].as_str() {
                    prop_assert!(is_local_path(next), "kept a non-local next: {next:?}");
                }
            }
        }
        Target::Callback => {
            expect(Status::BadRequest)?;
            let body = response.into_string().await.unwrap_or_default();
            let named = named_error(&body);
            prop_assert!(
                named.as_deref().is_some_and(|e| LOGIN_ERRORS.contains(&e)),
                "the 400 names its error: {body:?}"
            );
        }
        Target::Session | Target::Strict => expect(if signed_in {
            Status::Ok
        } else {
            Status::Unauthorized
        })?,
        Target::Token => {
            if signed_in {
                // 404 once a fuzzed logout has forgotten the stored token.
                prop_assert!(matches!(status, Status::Ok | Status::NotFound), "{status}");
            } else {
                expect(Status::Unauthorized)?;
            }
        }
        Target::Logout { .. } => expect(Status::SeeOther)?,
        Target::Refresh { post } => expect(if (*post && cross_site) || (!*post && !own_site) {
            Status::Forbidden
        } else if signed_in {
            Status::NotFound
        } else {
            Status::Unauthorized
        })?,
        Target::Whoami => {
            expect(Status::Ok)?;
            let body: Value = serde_json::from_str(&response.into_string().await.unwrap())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(body["kind"] == "social", signed_in);
        }
        Target::Other { .. } => {}
    }
    Ok(())
}

/// Any cookie, header and query value on every route: never a 5xx, and the defined answer.
#[rocket::async_test]
async fn client_input_never_5xx() {
    let fuzz = Arc::new(Fuzz::start(TestDb::sqlite().await).await);
    check(256, input, fuzz.clone(), client_input).await;
    assert!(fuzz.users().await <= 1, "nothing but octocat was stored");
}

// ---------------------------------------------------------------------------------------
// Raw bytes over TCP: what the local client cannot send
// ---------------------------------------------------------------------------------------

/// A request written byte for byte: the local client above never parses a request line or a
/// `Cookie` header; hyper and Rocket do, in production.
#[derive(Debug, Clone)]
struct RawRequest {
    method: &'static str,
    path: &'static str,
    query: Vec<u8>,
    cookie: Option<Vec<u8>>,
    authorization: Option<Vec<u8>>,
}

fn raw_request() -> impl Strategy<Value = RawRequest> {
    let paths = &[
        "/auth/github",
        "/auth/github/callback",
        "/auth/session",
        "/auth/token",
        "/auth/logout",
        "/auth/github/refresh",
        "/whoami",
        "/strict",
    ][..];
    let cookie = prop_oneof![
        1 => Just(None),
        2 => bytes().prop_map(|b| Some([b"jwt=".as_slice(), &b].concat())),
        2 => bytes().prop_map(|b| Some([format!("{FLOW_COOKIE}=").as_bytes(), &b].concat())),
        1 => bytes().prop_map(Some),
    ];
    let authorization = prop_oneof![
        2 => Just(None),
        2 => bytes().prop_map(|b| Some([b"Bearer ".as_slice(), &b].concat())),
        1 => bytes().prop_map(Some),
    ];
    (
        select(&["GET", "POST"][..]),
        select(paths),
        prop_oneof![2 => params().prop_map(|p| query(&p).into_bytes()), 1 => bytes()],
        cookie,
        authorization,
    )
        .prop_map(|(method, path, query, cookie, authorization)| RawRequest {
            method,
            path,
            query,
            cookie,
            authorization,
        })
}

/// The app served over TCP on its own database and fake GitHub.
struct Tcp {
    app: crate::faults::Served,
    _server: FakeServer,
    _db: TestDb,
}

async fn raw_request_case(tcp: Arc<Tcp>, request: RawRequest) -> Result<(), TestCaseError> {
    use rocket::tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut bytes = format!("{} {}", request.method, request.path).into_bytes();
    if !request.query.is_empty() {
        bytes.push(b'?');
        bytes.extend_from_slice(&request.query);
    }
    bytes.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n");
    for (name, value) in [
        ("Cookie", &request.cookie),
        ("Authorization", &request.authorization),
    ] {
        if let Some(value) = value {
            bytes.extend_from_slice(format!("{name}: ").as_bytes());
            bytes.extend_from_slice(value);
            bytes.extend_from_slice(b"\r\n");
        }
    }
    bytes.extend_from_slice(b"Connection: close\r\n\r\n");
    let addr = tcp.app.url.trim_start_matches("http://");
    let mut stream = rocket::tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    // The server may answer (and close) before it has read everything: that is its right.
    let _ = stream.write_all(&bytes).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&answer);
    let status: u16 = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|l| l.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| TestCaseError::fail(format!("no status line: {line:?}")))?;
    prop_assert!(status < 500, "{status}: {line:?}");
    Ok(())
}

/// Any request line, `Cookie` and `Authorization` bytes over TCP: an answer, never a 5xx, and
/// the server still serves.
#[rocket::async_test]
async fn raw_http_never_5xx() {
    let db = TestDb::sqlite().await;
    let fake = FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
    fake.sign_in_as(octocat());
    let server = fake.spawn().await.expect("fake GitHub starts");
    let app = crate::faults::serve(figment(&db.url, server.url(), "")).await;
    let tcp = Arc::new(Tcp {
        app,
        _server: server,
        _db: db,
    });
    check(128, raw_request, tcp.clone(), raw_request_case).await;
    let whoami = http_client()
        .get(format!("{}/whoami", tcp.app.url))
        .send()
        .await
        .expect("the server still serves");
    assert_eq!(whoami.status().as_u16(), 200);
}

// ---------------------------------------------------------------------------------------
// A real flow with hostile values in its cookie
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum CreatedAt {
    /// Now plus this many seconds.
    Now(i64),
    Fixed(i64),
}

/// A login approved by the provider whose flow cookie comes back with hostile values (as if
/// the cookie key had leaked): only `state` is the real one.
#[derive(Debug, Clone)]
struct HostileFlow {
    provider: Option<String>,
    next: Option<String>,
    created_at: CreatedAt,
    verifier: Option<String>,
    error: Option<String>,
}

fn hostile_flow() -> impl Strategy<Value = HostileFlow> {
    let next = prop_oneof![
        1 => Just(None),
        2 => text().prop_map(Some),
        2 => text().prop_map(|t| Some(format!("/{t}"))),
    ];
    let created_at = prop_oneof![
        6 => (-590i64..=0).prop_map(CreatedAt::Now),
        1 => (-100_000i64..=-602).prop_map(CreatedAt::Now),
        1 => (2i64..100_000).prop_map(CreatedAt::Now),
        2 => select(&[i64::MIN, i64::MIN + 1, i64::MAX, 0, -1][..]).prop_map(CreatedAt::Fixed),
        1 => any::<i64>().prop_map(CreatedAt::Fixed),
    ];
    (
        prop_oneof![6 => Just(None), 1 => text().prop_map(Some)],
        next,
        created_at,
        prop_oneof![6 => Just(None), 1 => text().prop_map(Some)],
        prop_oneof![6 => Just(None), 1 => text().prop_map(Some)],
    )
        .prop_map(
            |(provider, next, created_at, verifier, error)| HostileFlow {
                provider,
                next,
                created_at,
                verifier,
                error,
            },
        )
}

async fn hostile_flow_case(fuzz: Arc<Fuzz>, case: HostileFlow) -> Result<(), TestCaseError> {
    let login = fuzz.start_login().await;
    let now = now();
    let created_at = match case.created_at {
        CreatedAt::Now(offset) => now + offset,
        CreatedAt::Fixed(t) => t,
    };
    let provider = case.provider.clone().unwrap_or_else(|| "github".into());
    let verifier = case
        .verifier
        .clone()
        .unwrap_or_else(|| login.flow["verifier"].as_str().unwrap().to_owned());
    let flow = json!({
        "provider": provider, "state": login.flow["state"], "verifier": verifier,
        "next": case.next, "created_at": created_at,
    });
    let mut callback = login.callback.clone();
    if let Some(error) = &case.error {
        callback.push_str("&error=");
        callback.push_str(&encode(error.as_bytes(), Enc::Percent));
    }
    let response = fuzz
        .client
        .get(callback)
        .private_cookie(Cookie::build((FLOW_COOKIE, flow.to_string())).path("/auth/github"))
        .header(accept_json())
        .dispatch()
        .await;
    let status = response.status();
    prop_assert!(
        status.code < 500 || status == Status::BadGateway,
        "{status}"
    );
    let age = i128::from(now) - i128::from(created_at);
    let refused = if provider != "github" {
        Some("state_mismatch")
    } else if !(0..=600).contains(&age) {
        Some("flow_expired")
    } else if case.error.is_some() {
        Some("provider_denied")
    } else {
        None
    };
    if let Some(code) = refused {
        prop_assert_eq!(status, Status::BadRequest);
        prop_assert_eq!(&json(response).await["error"], code);
    } else if case.verifier.is_some() {
        // The provider refuses the exchange: the documented 502.
        prop_assert_eq!(status, Status::BadGateway);
        prop_assert_eq!(&json(response).await["error"], "provider_error");
    } else {
        prop_assert_eq!(status, Status::SeeOther);
        let expected = case
            .next
            .as_deref()
            .filter(|n| is_local_path(n))
            .unwrap_or("/");
        prop_assert_eq!(response.headers().get_one("Location"), Some(expected));
        prop_assert!(response.cookies().get("jwt").is_some());
    }
    Ok(())
}

/// A flow cookie with hostile values and the right `state`: 400 naming why, the provider's 502
/// for a wrong verifier, else the login with a `next` that is local or ignored.
#[rocket::async_test]
async fn hostile_flow_cookie_values() {
    let fuzz = Arc::new(Fuzz::start(TestDb::sqlite().await).await);
    check(48, hostile_flow, fuzz.clone(), hostile_flow_case).await;
    assert_eq!(fuzz.users().await, 1);
}

// ---------------------------------------------------------------------------------------
// Provider answers
// ---------------------------------------------------------------------------------------

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        2 => select(&[200u16, 201, 202, 203, 206, 301, 302, 304, 400, 401, 403, 404, 422, 429, 500, 502, 503, 504][..]),
        1 => 200u16..=599,
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        3 => select(&[
            "application/json",
            "application/json; charset=utf-8",
            "application/vnd.github+json",
            "text/html",
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/problem+json",
        ][..]).prop_map(|c| Some(c.to_owned())),
        1 => "[a-z]{1,8}/[a-z0-9.+-]{1,16}(; ?[a-z]{1,8}=[a-z0-9-]{0,8})?".prop_map(Some),
    ]
}

/// A body around the 1 MiB we read: JSON that would be valid if it were read whole.
fn huge_body(shape: &'static str) -> impl Strategy<Value = Vec<u8>> {
    select(&[MAX_BODY - 200, MAX_BODY + 1, MAX_BODY + MAX_BODY / 2][..]).prop_map(move |n| {
        let filler = "a".repeat(n.saturating_sub(shape.len()));
        shape.replace("FILL", &filler).into_bytes()
    })
}

fn hostile_string() -> impl Strategy<Value = Value> {
    prop_oneof![4 => text().prop_map(Value::String), 1 => json_scalar()]
}

fn token_body() -> impl Strategy<Value = Vec<u8>> {
    let shaped = (
        hostile_string(),
        prop_oneof![Just(json!("bearer")), hostile_string()],
        prop_oneof![Just(Value::Null), json_scalar()],
        prop_oneof![Just(Value::Null), hostile_string()],
        prop_oneof![Just(Value::Null), hostile_string()],
    )
        .prop_map(|(access, kind, expires, refresh, error)| {
            let mut v = json!({"access_token": access, "token_type": kind, "scope": "read:user"});
            for (k, x) in [
                ("expires_in", expires),
                ("refresh_token", refresh),
                ("error", error),
            ] {
                if !x.is_null() {
                    v[k] = x;
                }
            }
            v.to_string().into_bytes()
        });
    prop_oneof![
        3 => shaped,
        2 => vec(any::<u8>(), 0..128),
        2 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => text().prop_map(|t| format!("access_token={}&token_type=bearer", encode(t.as_bytes(), Enc::Percent)).into_bytes()),
        1 => Just(b"<html><body><h1>502 Bad Gateway</h1></body></html>".to_vec()),
        1 => huge_body(r#"{"access_token":"FILL","token_type":"bearer"}"#),
    ]
}

fn answer(body: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = RawAnswer> {
    (status(), content_type(), body).prop_map(|(status, content_type, body)| RawAnswer {
        status,
        content_type,
        body,
    })
}

async fn token_answer_case(fuzz: Arc<Fuzz>, answer: RawAnswer) -> Result<(), TestCaseError> {
    let users = fuzz.users().await;
    let login = fuzz.start_login().await;
    fuzz.fake
        .set_token_fault(Some(TokenFault::Answer(answer.clone())));
    let response = fuzz
        .client
        .get(login.callback)
        .cookie(login.cookie)
        .header(accept_json())
        .dispatch()
        .await;
    fuzz.fake.set_token_fault(None);
    prop_assert_eq!(response.status(), Status::BadGateway);
    prop_assert!(response.cookies().get("jwt").is_none());
    prop_assert_eq!(&json(response).await["error"], "provider_error");
    prop_assert_eq!(fuzz.users().await, users, "nothing stored");
    Ok(())
}

/// Whatever the token endpoint answers, the callback answers 502 and stores nothing (a token
/// it may accept is unknown to the provider's API).
async fn provider_token_answers_are_502(db: TestDb) {
    let fuzz = Arc::new(Fuzz::start(db).await);
    check(64, || answer(token_body()), fuzz.clone(), token_answer_case).await;
}

/// `GET /user` and `GET /user/emails` answers, as the provider may send them.
#[derive(Debug, Clone)]
struct ApiAnswers {
    user: RawAnswer,
    emails: Option<RawAnswer>,
}

fn user_body() -> impl Strategy<Value = Vec<u8>> {
    let id = prop_oneof![
        3 => any::<u64>().prop_map(Value::from),
        1 => json_scalar(),
    ];
    let shaped = (
        id,
        prop_oneof![3 => text().prop_map(Value::String), 1 => json_scalar()],
        prop_oneof![Just(Value::Null), hostile_string()],
        prop_oneof![Just(Value::Null), hostile_string()],
    )
        .prop_map(|(id, login, name, avatar_url)| {
            json!({"id": id, "login": login, "name": name, "avatar_url": avatar_url,
                   "type": "User", "email": null})
            .to_string()
            .into_bytes()
        });
    prop_oneof![
        4 => shaped,
        1 => vec(any::<u8>(), 0..128),
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => huge_body(r#"{"id":7,"login":"big","name":"FILL"}"#),
    ]
}

fn emails_body() -> impl Strategy<Value = Vec<u8>> {
    let email = (
        hostile_string(),
        prop_oneof![3 => any::<bool>().prop_map(Value::Bool), 1 => json_scalar()],
        prop_oneof![3 => any::<bool>().prop_map(Value::Bool), 1 => json_scalar()],
    )
        .prop_map(|(email, primary, verified)| {
            json!({"email": email, "primary": primary, "verified": verified, "visibility": null})
        });
    prop_oneof![
        4 => vec(email, 0..4).prop_map(|e| Value::Array(e).to_string().into_bytes()),
        1 => vec(any::<u8>(), 0..64),
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
    ]
}

fn api_answers() -> impl Strategy<Value = ApiAnswers> {
    (
        answer(user_body()),
        prop_oneof![1 => Just(None), 2 => answer(emails_body()).prop_map(Some)],
    )
        .prop_map(|(user, emails)| ApiAnswers { user, emails })
}

/// Whether our GitHub client can use these answers (a 2xx `/user` that reads as a user; a
/// 2xx `/user/emails` that reads as a list of emails, or its 403/404) and store what they say
/// (no NUL, which PostgreSQL cannot store).
fn usable(answers: &ApiAnswers) -> bool {
    #[derive(serde::Deserialize)]
    struct User {
        #[serde(rename = "id")]
        _id: u64,
        login: String,
        name: Option<String>,
        avatar_url: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Email {
        email: String,
        primary: bool,
        verified: bool,
    }
    let read = |a: &RawAnswer| (200..300).contains(&a.status) && a.body.len() <= MAX_BODY;
    let user = match serde_json::from_slice::<User>(&answers.user.body) {
        Ok(user) if read(&answers.user) => user,
        _ => return false,
    };
    let email = match &answers.emails {
        None => Some(octocat().emails[0].0.clone()),
        Some(a) if matches!(a.status, 403 | 404) => None,
        Some(a) if read(a) => match serde_json::from_slice::<Vec<Email>>(&a.body) {
            Ok(emails) => emails
                .into_iter()
                .find(|e| e.primary && e.verified)
                .map(|e| e.email),
            Err(_) => return false,
        },
        Some(_) => return false,
    };
    let name = user
        .name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(user.login);
    [Some(name), email, user.avatar_url]
        .iter()
        .flatten()
        .all(|s| !s.contains('\0'))
}

async fn api_answer_case(fuzz: Arc<Fuzz>, answers: ApiAnswers) -> Result<(), TestCaseError> {
    let users = fuzz.users().await;
    let login = fuzz.start_login().await;
    fuzz.fake.set_user_answer(Some(answers.user.clone()));
    fuzz.fake.set_emails_answer(answers.emails.clone());
    let response = fuzz
        .client
        .get(login.callback)
        .cookie(login.cookie)
        .header(accept_json())
        .dispatch()
        .await;
    fuzz.fake.set_user_answer(None);
    fuzz.fake.set_emails_answer(None);
    let status = response.status();
    // A 204 or 205 may lose its body on the way: either answer is right then.
    let bodiless = [&Some(answers.user.clone()), &answers.emails]
        .into_iter()
        .flatten()
        .any(|a| matches!(a.status, 204 | 205));
    if usable(&answers) && !(bodiless && status == Status::BadGateway) {
        prop_assert_eq!(status, Status::SeeOther);
        prop_assert!(response.cookies().get("jwt").is_some());
    } else {
        prop_assert_eq!(status, Status::BadGateway);
        prop_assert!(response.cookies().get("jwt").is_none());
        prop_assert_eq!(&json(response).await["error"], "provider_error");
        prop_assert_eq!(fuzz.users().await, users, "nothing stored");
    }
    Ok(())
}

/// Whatever the user API answers, the callback answers 502 and stores nothing, unless the
/// answer is a usable user: then the login completes, whatever the strings in it.
async fn provider_user_answers_are_502_unless_usable(db: TestDb) {
    let fuzz = Arc::new(Fuzz::start(db).await);
    check(64, api_answers, fuzz.clone(), api_answer_case).await;
}

// ---------------------------------------------------------------------------------------
// Regressions: what the properties found, kept by name
// ---------------------------------------------------------------------------------------

/// The callback redirected to the flow cookie's `next` unchecked: `Location:` empty for `""`,
/// a 500 for a `next` that is no URI. (The cookie is encrypted: this needs the secret key.)
#[rocket::async_test]
async fn regression_flow_next_is_checked_again_at_the_callback() {
    let app = TestApp::start(TestDb::sqlite().await).await;
    for next in [
        "",
        "\r\n",
        "//evil.example",
        "https://evil.example",
        "/ok\tx",
    ] {
        let callback = app.authorize(&app.client, "/auth/github").await;
        let flow = app.client.cookies().get_private(FLOW_COOKIE).unwrap();
        let mut flow = newest_flow(flow.value());
        flow["next"] = json!(next);
        let r = app
            .client
            .get(callback)
            .private_cookie(Cookie::build((FLOW_COOKIE, flow.to_string())).path("/auth/github"))
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::SeeOther, "{next:?}");
        assert_eq!(r.headers().get_one("Location"), Some("/"), "{next:?}");
    }
}

/// A flow `created_at` of `i64::MIN` overflowed the age computation: a panic, so a 500.
#[rocket::async_test]
async fn regression_flow_created_at_extremes_are_expired() {
    let app = TestApp::start(TestDb::sqlite().await).await;
    for created_at in [i64::MIN, i64::MIN + 1, i64::MAX] {
        let flow = json!({
            "provider": "github", "state": "s1", "verifier": "v".repeat(43), "next": null,
            "created_at": created_at,
        });
        let r = app
            .client
            .get("/auth/github/callback?code=c&state=s1")
            .private_cookie(Cookie::build((FLOW_COOKIE, flow.to_string())).path("/auth/github"))
            .header(accept_json())
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::BadRequest, "{created_at}");
        assert_eq!(json(r).await["error"], "flow_expired", "{created_at}");
    }
}

/// A NUL in a provider's profile reached the database: PostgreSQL refuses it (a 500), SQLite
/// stored it. Both now answer 502 and store nothing.
async fn regression_nul_in_a_profile_is_a_502(db: TestDb) {
    let app = TestApp::start(db).await;
    for (user, emails) in [
        (
            r#"{"avatar_url":"\u0000","email":null,"id":0,"login":"a","name":null}"#,
            None,
        ),
        (r#"{"id":1,"login":"x\u0000y","name":" "}"#, None),
        (
            r#"{"id":2,"login":"b"}"#,
            Some(r#"[{"email":"a\u0000@b","primary":true,"verified":true}]"#),
        ),
    ] {
        app.fake
            .set_user_answer(Some(RawAnswer::new(200, None, user)));
        app.fake
            .set_emails_answer(emails.map(|e| RawAnswer::new(200, Some("application/json"), e)));
        let callback = app.authorize(&app.client, "/auth/github").await;
        let r = app
            .client
            .get(callback)
            .header(accept_json())
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::BadGateway, "{user} {emails:?}");
        assert_eq!(json(r).await["error"], "provider_error");
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 0);
    assert!(app.client.cookies().get("jwt").is_none());
}

/// A refresh answered with a NUL in the token reached PostgreSQL: a 503 that blamed the
/// database. Now 502, the stored tokens kept.
async fn regression_nul_in_a_refreshed_token_is_a_502(db: TestDb) {
    let app = TestApp::start(db).await;
    app.fake.set_token_mode(TokenMode::Expiring);
    assert_eq!(app.login(&app.client).await.status(), Status::SeeOther);
    let stored = || async {
        let pool = app.db.pool().await;
        let row: (Option<String>, Option<String>) =
            sqlx::query_as("SELECT token, refresh_token FROM social_users")
                .fetch_one(&pool)
                .await
                .unwrap();
        row
    };
    let before = stored().await;
    assert!(plain_token(&app.client).await.starts_with("ghu_"));
    app.fake.set_token_fault(Some(TokenFault::Answer(RawAnswer::new(
        200,
        Some("application/json"),
        r#"{"access_token":"ghu_\u0000","token_type":"bearer","expires_in":28800,"refresh_token":"ghr_new"}"#,
    ))));
    let r = app.client.post("/auth/github/refresh").dispatch().await;
    assert_eq!(r.status(), Status::BadGateway);
    assert_eq!(json(r).await, json!({"status": "provider_error"}));
    assert_eq!(stored().await, before, "the stored tokens are kept");
    assert!(plain_token(&app.client).await.starts_with("ghu_"));
}
