//! Discovery cannot point our secrets elsewhere, and a slow or hostile provider cannot hold up
//! logins: endpoints from discovery are `https` (plain `http` only on loopback, for a loopback
//! issuer); discovery and JWKS fetches are single-flight; unknown `kid`s refetch the JWKS at
//! most once per floor. Driven by an untracked client, so that several flows of one app can be
//! in flight at once, each with its own flow cookie.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rocket::futures::future::join_all;
use rocket::http::{Cookie, Status};
use rocket::local::asynchronous::Client;
use rocket_social_auth::testing::{FakeGithub, FakeOidc, FakeOidcUser, FakeServer, IdTokenFault};
use serde_json::{json, Value};

use crate::common::*;
use crate::db_tests;

db_tests!(
    plain_http_elsewhere_in_discovery_makes_the_provider_unavailable,
    a_burst_of_unknown_kids_makes_one_jwks_fetch,
    a_slow_jwks_refetch_does_not_hold_up_a_known_kid,
    concurrent_logins_share_one_discovery_fetch,
);

const G_CLIENT: &str = "g-client.apps.example";
const G_SECRET: &str = "g-secret";
const FLOW_COOKIE: &str = "social_auth_flow_google";

/// An app with a Google provider at a fake OpenID provider on loopback.
struct App {
    client: Client,
    fake: FakeOidc,
    _oidc: FakeServer,
    _github: FakeServer,
    db: TestDb,
}

/// A login the provider approved, not yet back at the callback.
struct Approved {
    callback: String,
    cookie: Cookie<'static>,
}

/// A Google-like fake; configure it before [`App::start`] for what discovery sees at launch.
fn google() -> FakeOidc {
    let fake = FakeOidc::google(G_CLIENT, G_SECRET);
    fake.sign_in_as(FakeOidcUser::new(
        "1098765432",
        "Ada Lovelace",
        "ada@gmail.example",
    ));
    fake
}

impl App {
    /// Launches the app on `db` with `fake` as its `google` provider and `extra` TOML.
    async fn start(db: TestDb, fake: FakeOidc, extra: &str) -> App {
        let oidc = fake
            .clone()
            .spawn()
            .await
            .expect("fake OpenID provider starts");
        let github = FakeGithub::new(CLIENT_ID, CLIENT_SECRET)
            .spawn()
            .await
            .expect("fake GitHub starts");
        let toml = format!(
            "[social_auth.providers.google]\nclient_id = \"{G_CLIENT}\"\nclient_secret = \"{G_SECRET}\"\nissuer = \"{}\"\n{extra}",
            oidc.url()
        );
        let client = Client::untracked(rocket(figment(&db.url, github.url(), &toml)))
            .await
            .expect("app launches");
        App {
            client,
            fake,
            _oidc: oidc,
            _github: github,
            db,
        }
    }

    /// `GET /auth/google` as JSON: its status and body.
    async fn start_login(&self) -> (Status, Value) {
        let r = self
            .client
            .get("/auth/google")
            .header(accept_json())
            .dispatch()
            .await;
        let status = r.status();
        let body = r.into_string().await.unwrap_or_default();
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// Starts a login and lets the provider approve it (no code exchanged yet: the `id_token`
    /// is made when the callback exchanges the code).
    async fn approve(&self) -> Approved {
        let start = self.client.get("/auth/google").dispatch().await;
        assert_eq!(start.status(), Status::SeeOther, "login start redirects");
        let location = start.headers().get_one("Location").unwrap().to_owned();
        let cookie = start.cookies().get(FLOW_COOKIE).unwrap().clone();
        drop(start);
        Approved {
            callback: provider_redirect(&location).await,
            cookie,
        }
    }

    /// Brings an approved login back to the callback; its status and JSON body.
    async fn finish(&self, login: Approved) -> (Status, Value) {
        let r = self
            .client
            .get(login.callback)
            .cookie(login.cookie)
            .header(accept_json())
            .dispatch()
            .await;
        let status = r.status();
        let body = r.into_string().await.unwrap_or_default();
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    async fn login(&self) -> (Status, Value) {
        let login = self.approve().await;
        self.finish(login).await
    }
}

/// Waits (a few seconds at most) until `held()` reports a request held at the fake.
async fn until_held(held: impl Fn() -> u64, what: &str) {
    for _ in 0..500 {
        if held() > 0 {
            return;
        }
        rocket::tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {what} request reached the provider");
}

/// A loopback `http` issuer whose document names a plain `http` endpoint off loopback, for
/// each endpoint in turn: the provider stays unavailable (503, discovery retried on each use),
/// and the app and its other providers run; a clean document then makes it available.
async fn plain_http_elsewhere_in_discovery_makes_the_provider_unavailable(db: TestDb) {
    let fake = google();
    fake.set_discovery_field("token_endpoint", Some(json!("http://idp.example/token")));
    let app = App::start(db, fake, "").await;
    assert_eq!(
        app.fake.discovery_calls(),
        1,
        "discovery was tried at launch"
    );
    for field in [
        "token_endpoint",
        "authorization_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
    ] {
        for other in [
            "token_endpoint",
            "authorization_endpoint",
            "userinfo_endpoint",
            "jwks_uri",
        ] {
            app.fake.set_discovery_field(other, None);
        }
        app.fake
            .set_discovery_field(field, Some(json!(format!("http://idp.example/{field}"))));
        let calls = app.fake.discovery_calls();
        let (status, body) = app.start_login().await;
        assert_eq!(status, Status::ServiceUnavailable, "{field}: {body}");
        assert_eq!(body["error"], "provider_unavailable", "{field}");
        assert_eq!(
            app.fake.discovery_calls(),
            calls + 1,
            "{field}: retried on use"
        );
    }
    app.fake.set_discovery_field("jwks_uri", None);
    assert_eq!(
        app.login().await.0,
        Status::SeeOther,
        "a clean document is used"
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 1);
}

/// Eight callbacks at once whose `id_token`s name unknown keys make one JWKS fetch, not
/// eight; within the floor another unknown key is refused without a fetch; a known key still
/// signs in.
async fn a_burst_of_unknown_kids_makes_one_jwks_fetch(db: TestDb) {
    // Eight callbacks at once on a loaded machine: a timeout would be a false failure.
    let app = App::start(db, google(), "[social_auth]\nhttp_timeout_secs = 10\n").await;
    assert_eq!(app.login().await.0, Status::SeeOther);
    assert_eq!(app.fake.jwks_calls(), 1);

    app.fake.set_fault(Some(IdTokenFault::UnpublishedKey));
    let mut burst = Vec::new();
    for _ in 0..8 {
        burst.push(app.approve().await);
    }
    let answers = join_all(burst.into_iter().map(|login| app.finish(login))).await;
    for (status, body) in &answers {
        assert_eq!(*status, Status::BadGateway, "{body}");
        assert_eq!(body["error"], "provider_error");
    }
    assert_eq!(app.fake.jwks_calls(), 2, "one refetch for the whole burst");

    let (status, body) = app.login().await;
    assert_eq!(status, Status::BadGateway, "{body}");
    assert_eq!(
        app.fake.jwks_calls(),
        2,
        "within the floor: refused, no fetch"
    );

    app.fake.set_fault(None);
    assert_eq!(app.login().await.0, Status::SeeOther);
    assert_eq!(app.fake.jwks_calls(), 2, "a known kid needs no fetch");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 1);
}

/// A callback whose unknown `kid` makes a JWKS refetch that the provider holds; meanwhile a
/// login signed with a known key completes, while that refetch is still pending and its
/// callback not answered (ordering, not timing: before the fix, the second login waited for
/// the first callback's fetch to give up).
async fn a_slow_jwks_refetch_does_not_hold_up_a_known_kid(db: TestDb) {
    let app = App::start(db, google(), "[social_auth]\nhttp_timeout_secs = 10\n").await;
    assert_eq!(app.login().await.0, Status::SeeOther);
    assert_eq!(app.fake.jwks_calls(), 1);

    let slow = app.approve().await;
    let known = app.approve().await;
    app.fake.set_fault(Some(IdTokenFault::UnpublishedKey));
    app.fake.set_jwks_paused(true);
    let slow_done = AtomicBool::new(false);
    let slow_callback = async {
        let answer = app.finish(slow).await;
        slow_done.store(true, Ordering::SeqCst);
        answer
    };
    let known_login = async {
        until_held(|| app.fake.jwks_waiting(), "JWKS").await;
        // The slow callback's id_token is made; this one is signed with the known key.
        app.fake.set_fault(None);
        let answer = app.finish(known).await;
        let pending = (app.fake.jwks_waiting(), slow_done.load(Ordering::SeqCst));
        app.fake.set_jwks_paused(false);
        (answer, pending)
    };
    let ((slow_status, slow_body), ((status, body), pending)) =
        rocket::tokio::join!(slow_callback, known_login);
    assert_eq!(status, Status::SeeOther, "{body}");
    assert_eq!(
        pending,
        (1, false),
        "the known kid signed in while the refetch was still held"
    );
    assert_eq!(slow_status, Status::BadGateway, "{slow_body}");
    assert_eq!(app.fake.jwks_calls(), 2);
}

/// Discovery failed at launch; five logins arrive while the retry is held: they all wait on
/// that one fetch and share its answer, failure (503) or success, instead of one fetch each.
async fn concurrent_logins_share_one_discovery_fetch(db: TestDb) {
    let fake = google();
    fake.set_discovery_down(true);
    let app = App::start(db, fake, "").await;
    let launch = app.fake.discovery_calls();
    assert_eq!(launch, 1);

    for (down, status, fetches) in [
        (true, Status::ServiceUnavailable, launch + 1),
        (false, Status::SeeOther, launch + 2),
    ] {
        app.fake.set_discovery_down(down);
        app.fake.set_discovery_paused(true);
        let logins = join_all((0..5).map(|_| app.start_login()));
        let release = async {
            until_held(|| app.fake.discovery_waiting(), "discovery").await;
            // Let every login reach the fetch in flight (they need no I/O to get there).
            rocket::tokio::time::sleep(Duration::from_millis(200)).await;
            app.fake.set_discovery_paused(false);
        };
        let (answers, ()) = rocket::tokio::join!(logins, release);
        for (got, body) in &answers {
            assert_eq!(*got, status, "discovery down: {down}: {body}");
        }
        assert_eq!(
            app.fake.discovery_calls(),
            fetches,
            "discovery down: {down}: one fetch for all"
        );
    }
    assert_eq!(app.login().await.0, Status::SeeOther);
    assert_eq!(app.fake.discovery_calls(), launch + 2, "then cached");
}
