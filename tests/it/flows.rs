//! Several logins (and links) pending in one browser, and the cookies' names: `__Host-jwt` and
//! `__Secure-social_auth_flow_<provider>` on an https `public_url`, as before on loopback HTTP.

use rocket::http::{Cookie, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket_social_auth::testing::{FakeGithub, FakeUser};
use rocket_social_auth::AuthService;
use serde_json::{json, Value};

use crate::common::*;
use crate::db_tests;

db_tests!(
    two_logins_in_two_tabs_complete_in_either_order,
    login_and_link_in_two_tabs,
    a_callback_consumes_only_its_own_flow,
    an_expired_flow_is_refused_and_only_it_removed,
    a_cross_site_start_does_not_wipe_a_pending_flow,
    the_oldest_flow_beyond_the_bound_is_dropped,
    flow_cookie_stays_under_4_kb_with_long_nexts,
    https_cookies_carry_host_and_secure_prefixes,
    http_loopback_keeps_the_cookie_names,
);

/// How many flows of one provider may be pending (documented in the README).
const BOUND: usize = 4;
const FLOW: &str = "social_auth_flow_github";
const SECURE_FLOW: &str = "__Secure-social_auth_flow_github";
const HTTPS: &str = "[social_auth]\npublic_url = \"https://app.example\"\n";

/// Starts a flow with a GET (a login) and returns the provider's authorize URL.
async fn start(client: &Client, path: &str) -> String {
    let response = client.get(path).dispatch().await;
    authorize_url(response)
}

fn authorize_url(response: LocalResponse<'_>) -> String {
    assert_eq!(response.status(), Status::SeeOther, "a flow starts");
    response.headers().get_one("Location").unwrap().to_owned()
}

/// Lets the fake provider approve (as `login`, when given) and returns the path and query of
/// the callback it redirects to, and the origin it was sent to.
async fn approve(authorize_url: &str, login: Option<&str>) -> (String, String) {
    let mut url = url::Url::parse(authorize_url).unwrap();
    if let Some(login) = login {
        url.query_pairs_mut().append_pair("login", login);
    }
    let answer = http_client().get(url).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 302, "the provider redirects back");
    let back = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    let path = format!("{}?{}", back.path(), back.query().unwrap_or(""));
    (path, back.origin().ascii_serialization())
}

/// A started and approved login: the callback to come back to.
async fn pending(client: &Client, path: &str, login: Option<&str>) -> String {
    approve(&start(client, path).await, login).await.0
}

/// The callback's answer as JSON errors: `(status, error code)`.
async fn callback_error(client: &Client, callback: &str) -> (Status, Value) {
    let r = client.get(callback).header(accept_json()).dispatch().await;
    let status = r.status();
    (status, json(r).await["error"].clone())
}

/// The `Set-Cookie` headers of a response for cookie `name`, as sent.
fn set_cookies<'a>(response: &'a LocalResponse<'_>, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}=");
    response
        .headers()
        .get("Set-Cookie")
        .filter(|h| h.starts_with(&prefix))
        .collect()
}

/// A `Set-Cookie` header's attributes, after `name=value`.
fn attributes(set_cookie: &str) -> Vec<&str> {
    set_cookie.split("; ").skip(1).collect()
}

/// The pending flows of a tracked browser, decrypted.
fn flows(client: &Client, name: &str) -> Vec<Value> {
    client
        .cookies()
        .get_private(name)
        .map(|c| serde_json::from_str::<Value>(c.value()).unwrap())
        .map(|v| v.as_array().unwrap().clone())
        .unwrap_or_default()
}

async fn signed_in_name(client: &Client) -> Value {
    claims(&session_jwt(client).await)["name"].clone()
}

fn service(client: &Client) -> &AuthService {
    client.rocket().state::<AuthService>().unwrap()
}

async fn two_logins_in_two_tabs_complete_in_either_order(db: TestDb) {
    let app = TestApp::start(db).await;
    app.fake.sign_in_as(FakeUser::new(9, "hubot"));
    app.fake.sign_in_as(octocat());
    let tabs = [
        (
            "/auth/github?next=/tab-a",
            "octocat",
            "/tab-a",
            "The Octocat",
        ),
        ("/auth/github?next=/tab-b", "hubot", "/tab-b", "hubot"),
    ];
    for order in [[0, 1], [1, 0]] {
        let browser = app.browser().await;
        let mut callbacks = Vec::new();
        for (path, login, _, _) in tabs {
            callbacks.push(pending(&browser, path, Some(login)).await);
        }
        assert_eq!(flows(&browser, FLOW).len(), 2, "both flows pending");
        for i in order {
            let r = browser.get(&callbacks[i]).dispatch().await;
            assert_eq!(r.status(), Status::SeeOther, "order {order:?}, tab {i}");
            assert_eq!(r.headers().get_one("Location"), Some(tabs[i].2));
            assert!(r.cookies().get("jwt").is_some(), "tab {i} signs in");
            drop(r);
            assert_eq!(signed_in_name(&browser).await, tabs[i].3);
        }
        assert!(
            browser.cookies().get(FLOW).is_none(),
            "both flows consumed, the cookie removed"
        );
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 2);
}

async fn login_and_link_in_two_tabs(db: TestDb) {
    // The user signs in with `work` (a second GitHub), then links GitHub in one tab while
    // another tab signs in with GitHub as hubot: two GitHub flows in one cookie.
    let work = FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
    work.sign_in_as(FakeUser::new(700, "mona-work"));
    let work_server = work.clone().spawn().await.unwrap();
    let app = TestApp::start_with(
        db,
        &format!(
            "[social_auth.providers.work]\nkind = \"github\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nauthorize_url = \"{0}/login/oauth/authorize\"\ntoken_url = \"{0}/login/oauth/access_token\"\napi_url = \"{0}\"\n",
            work_server.url()
        ),
    )
    .await;
    app.fake.sign_in_as(FakeUser::new(9, "hubot"));
    app.fake.sign_in_as(octocat());

    for link_first in [true, false] {
        let browser = app.browser().await;
        let signed_in = pending(&browser, "/auth/work", None).await;
        assert_eq!(
            browser.get(signed_in).dispatch().await.status(),
            Status::SeeOther
        );
        let me = claims(&session_jwt(&browser).await)["sub"].clone();

        let link = browser
            .post("/auth/github/link?next=/linked")
            .dispatch()
            .await;
        let link = approve(&authorize_url(link), Some("octocat")).await.0;
        let login = pending(&browser, "/auth/github?next=/hubot", Some("hubot")).await;
        assert_eq!(flows(&browser, FLOW).len(), 2, "link and login pending");

        if link_first {
            let r = browser.get(&link).dispatch().await;
            assert_eq!(r.status(), Status::SeeOther, "the link completes");
            assert_eq!(r.headers().get_one("Location"), Some("/linked"));
            drop(r);
            let r = browser.get(&login).dispatch().await;
            assert_eq!(r.status(), Status::SeeOther, "then the login");
            assert_eq!(r.headers().get_one("Location"), Some("/hubot"));
            drop(r);
            assert_eq!(signed_in_name(&browser).await, "hubot");
            let pool = app.db.pool().await;
            let mine: Vec<(String, String)> = sqlx::query_as(
                "SELECT provider, social_id FROM social_users WHERE user_id = $1 ORDER BY provider",
            )
            .bind(me.as_str().unwrap().parse::<i64>().unwrap())
            .fetch_all(&pool)
            .await
            .unwrap();
            assert_eq!(
                mine,
                [
                    ("github".into(), "583231".into()),
                    ("work".into(), "700".into())
                ],
                "octocat's GitHub is linked to the work user"
            );
        } else {
            let r = browser.get(&login).dispatch().await;
            assert_eq!(r.status(), Status::SeeOther, "the login completes");
            drop(r);
            // The link's flow was still pending (not `state_mismatch`); it belongs to the
            // user who started it, and this browser is now hubot's.
            assert_eq!(
                callback_error(&browser, &link).await,
                (Status::Forbidden, json!("link_session_changed"))
            );
        }
        assert!(browser.cookies().get(FLOW).is_none(), "both flows consumed");
    }
}

async fn a_callback_consumes_only_its_own_flow(db: TestDb) {
    let app = TestApp::start(db).await;
    let a = pending(&app.client, "/auth/github?next=/a", None).await;
    let b = pending(&app.client, "/auth/github?next=/b", None).await;

    let r = app.client.get(&b).dispatch().await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(r.headers().get_one("Location"), Some("/b"));
    drop(r);
    let left = flows(&app.client, FLOW);
    assert_eq!(left.len(), 1, "only b's flow is consumed");
    assert_eq!(left[0]["next"], "/a");
    // b again: its flow is gone, a's is not b's.
    assert_eq!(
        callback_error(&app.client, &b).await,
        (Status::BadRequest, json!("state_mismatch"))
    );
    assert_eq!(
        flows(&app.client, FLOW).len(),
        1,
        "a mismatch leaves a's flow"
    );

    let r = app.client.get(&a).dispatch().await;
    assert_eq!(r.status(), Status::SeeOther, "a still completes");
    assert_eq!(r.headers().get_one("Location"), Some("/a"));
    drop(r);
    assert!(
        app.client.cookies().get(FLOW).is_none(),
        "none left: removed"
    );
    assert_eq!(
        callback_error(&app.client, &a).await,
        (Status::BadRequest, json!("missing_flow"))
    );
}

async fn an_expired_flow_is_refused_and_only_it_removed(db: TestDb) {
    let app = TestApp::start(db).await;
    // An untracked browser: each request carries the cookie given here.
    let browser = Client::untracked(rocket(figment(&app.db.url, app.server.url(), "")))
        .await
        .unwrap();
    let start = browser.get("/auth/github").dispatch().await;
    let fresh: Vec<Value> =
        serde_json::from_str(start.cookies().get_private(FLOW).unwrap().value()).unwrap();
    let callback = approve(&authorize_url(start), None).await.0;
    let expired = json!({
        "provider": "github", "state": "s-old", "verifier": "v".repeat(43), "nonce": "n",
        "next": null, "created_at": now() - 601,
    });
    let both = Value::Array(vec![expired, fresh[0].clone()]);

    let r = browser
        .get("/auth/github/callback?code=c&state=s-old")
        .private_cookie(Cookie::build((FLOW, both.to_string())).path("/auth/github"))
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::BadRequest);
    let rest: Value = serde_json::from_str(r.cookies().get_private(FLOW).unwrap().value()).unwrap();
    assert_eq!(json(r).await["error"], "flow_expired");
    assert_eq!(
        rest,
        Value::Array(vec![fresh[0].clone()]),
        "only the expired flow is removed"
    );

    let r = browser
        .get(callback)
        .private_cookie(Cookie::build((FLOW, rest.to_string())).path("/auth/github"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::SeeOther, "the other flow completes");
    assert!(r.cookies().get("jwt").is_some());
    assert_eq!(
        app.fake.token_calls(),
        1,
        "no exchange for the expired flow"
    );
}

async fn a_cross_site_start_does_not_wipe_a_pending_flow(db: TestDb) {
    let app = TestApp::start(db).await;
    let mine = pending(&app.client, "/auth/github?next=/mine", None).await;
    // Another site sends the browser to the login start (a top-level cross-site GET).
    let r = app
        .client
        .get("/auth/github?next=/theirs")
        .header(Header::new("Sec-Fetch-Site", "cross-site"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    drop(r);
    let r = app.client.get(mine).dispatch().await;
    assert_eq!(r.status(), Status::SeeOther, "the pending login completes");
    assert_eq!(r.headers().get_one("Location"), Some("/mine"));
    assert!(r.cookies().get("jwt").is_some());
}

async fn the_oldest_flow_beyond_the_bound_is_dropped(db: TestDb) {
    let app = TestApp::start(db).await;
    let mut callbacks = Vec::new();
    for i in 0..=BOUND {
        callbacks.push(pending(&app.client, &format!("/auth/github?next=/{i}"), None).await);
    }
    let kept = flows(&app.client, FLOW);
    assert_eq!(kept.len(), BOUND, "at most {BOUND} pending");
    assert_eq!(kept[0]["next"], "/1", "the oldest went");

    // The newest completes, then the others kept, newest first; the oldest does not.
    for i in (1..=BOUND).rev() {
        let r = app.client.get(&callbacks[i]).dispatch().await;
        assert_eq!(r.status(), Status::SeeOther, "flow {i}");
        assert_eq!(r.headers().get_one("Location"), Some(&*format!("/{i}")));
    }
    assert_eq!(
        callback_error(&app.client, &callbacks[0]).await,
        (Status::BadRequest, json!("missing_flow")),
        "the oldest was dropped (every flow is used: the cookie is gone)"
    );

    // With flows still pending, the dropped one is a mismatch.
    let mut callbacks = Vec::new();
    for i in 0..=BOUND {
        callbacks.push(pending(&app.client, &format!("/auth/github?next=/{i}"), None).await);
    }
    assert_eq!(
        callback_error(&app.client, &callbacks[0]).await,
        (Status::BadRequest, json!("state_mismatch"))
    );
    let r = app.client.get(&callbacks[BOUND]).dispatch().await;
    assert_eq!(r.status(), Status::SeeOther, "the newest completes");
}

async fn flow_cookie_stays_under_4_kb_with_long_nexts(db: TestDb) {
    // The longest `next` honoured: 2048 bytes, none of them escaped in JSON.
    let long = |c: char| format!("/{}", c.to_string().repeat(2047));
    for (extra, name) in [("", FLOW), (HTTPS, SECURE_FLOW)] {
        let app = TestApp::start_with(db.alias(db.url.clone()), extra).await;
        let start_measured = |next: String| {
            let client = &app.client;
            async move {
                let path = format!("/auth/github?next={}", urlencoding(&next));
                let r = client.get(path).dispatch().await;
                let sent = set_cookies(&r, name);
                assert_eq!(sent.len(), 1, "{name}: one Set-Cookie");
                let pair = sent[0].split(';').next().unwrap();
                assert!(
                    pair.len() < 4096,
                    "{name}: name=value is {} bytes",
                    pair.len()
                );
                approve(&authorize_url(r), None).await.0
            }
        };
        // A short and a long `next` fit together: both complete.
        let short = start_measured("/short".into()).await;
        let first_long = start_measured(long('a')).await;
        assert_eq!(flows(&app.client, name).len(), 2);
        for (callback, next) in [(short, "/short".to_owned()), (first_long, long('a'))] {
            let r = app.client.get(callback).dispatch().await;
            assert_eq!(r.status(), Status::SeeOther, "{name}");
            assert_eq!(r.headers().get_one("Location"), Some(&*next), "{name}");
        }
        // Two long ones do not: the oldest go, the newest completes with its `next`.
        let mut callbacks = Vec::new();
        for c in ['b', 'c', 'd', 'e', 'f'] {
            callbacks.push((start_measured(long(c)).await, long(c)));
        }
        let (newest, next) = callbacks.pop().unwrap();
        let r = app.client.get(newest).dispatch().await;
        assert_eq!(r.status(), Status::SeeOther, "{name}");
        assert_eq!(r.headers().get_one("Location"), Some(&*next), "{name}");
        drop(r);
        for (callback, _) in callbacks {
            assert_eq!(
                callback_error(&app.client, &callback).await.1,
                "missing_flow",
                "{name}: dropped to fit"
            );
        }
    }
}

/// Percent-encodes a `next` for the login's query.
fn urlencoding(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn https_cookies_carry_host_and_secure_prefixes(db: TestDb) {
    let app = TestApp::start_with(db, HTTPS).await;
    assert_eq!(service(&app.client).jwt_cookie_name(), "__Host-jwt");

    let start = app.client.get("/auth/github").dispatch().await;
    let flow = set_cookies(&start, SECURE_FLOW);
    assert_eq!(flow.len(), 1, "{:?}", start.headers());
    let mut flow_attributes = attributes(flow[0]);
    flow_attributes.sort_unstable();
    let flow_attributes: Vec<_> = flow_attributes
        .into_iter()
        .filter(|a| !a.starts_with("Max-Age=") && !a.starts_with("Expires="))
        .collect();
    assert_eq!(
        flow_attributes,
        ["HttpOnly", "Path=/auth/github", "SameSite=Lax", "Secure"]
    );
    assert!(
        set_cookies(&start, FLOW).is_empty(),
        "no unprefixed flow cookie"
    );
    let (callback, origin) = approve(&authorize_url(start), None).await;
    assert_eq!(origin, "https://app.example");

    let done = app.client.get(callback).dispatch().await;
    assert_eq!(done.status(), Status::SeeOther);
    let jwt = set_cookies(&done, "__Host-jwt");
    assert_eq!(jwt.len(), 1, "{:?}", done.headers());
    let mut jwt_attributes: Vec<_> = attributes(jwt[0])
        .into_iter()
        .filter(|a| !a.starts_with("Max-Age=") && !a.starts_with("Expires="))
        .collect();
    jwt_attributes.sort_unstable();
    assert_eq!(
        jwt_attributes,
        ["HttpOnly", "Path=/", "SameSite=Lax", "Secure"]
    );
    assert!(set_cookies(&done, "jwt").is_empty(), "no plain jwt cookie");
    let removed = set_cookies(&done, SECURE_FLOW);
    assert!(
        removed.len() == 1 && attributes(removed[0]).contains(&"Secure"),
        "the flow cookie's removal is Secure too: {removed:?}"
    );
    drop(done);

    let me = json(app.client.get("/whoami").dispatch().await).await;
    assert_eq!(me["kind"], "social", "the guard reads __Host-jwt");
    let token = session_jwt(&app.client).await;

    // A sibling subdomain can plant `jwt` (even a valid one), not `__Host-jwt`: ignored.
    let other = app.browser().await;
    let r = other
        .get("/whoami")
        .private_cookie(Cookie::new("jwt", token.clone()))
        .dispatch()
        .await;
    assert_eq!(json(r).await["kind"], "anonymous", "a plain jwt is ignored");
    let r = other
        .get("/whoami")
        .private_cookie(Cookie::new("__Host-jwt", token))
        .dispatch()
        .await;
    assert_eq!(json(r).await["kind"], "social");

    // Logout removes `__Host-jwt` with the attributes browsers require of it.
    let out = app.client.post("/auth/logout").dispatch().await;
    let removal = set_cookies(&out, "__Host-jwt");
    assert_eq!(removal.len(), 1, "{:?}", out.headers());
    let removal_attributes = attributes(removal[0]);
    assert!(
        removal_attributes.contains(&"Secure") && removal_attributes.contains(&"Path=/"),
        "{removal:?}"
    );
    assert!(!removal[0].contains("Domain"));
}

async fn http_loopback_keeps_the_cookie_names(db: TestDb) {
    let app = TestApp::start(db).await;
    assert_eq!(service(&app.client).jwt_cookie_name(), "jwt");
    let start = app.client.get("/auth/github").dispatch().await;
    let flow = set_cookies(&start, FLOW);
    assert_eq!(flow.len(), 1);
    assert!(!attributes(flow[0]).contains(&"Secure"));
    assert!(set_cookies(&start, SECURE_FLOW).is_empty());
    let (callback, origin) = approve(&authorize_url(start), None).await;
    assert_eq!(origin, "http://127.0.0.1:8000");
    let done = app.client.get(callback).dispatch().await;
    let jwt = set_cookies(&done, "jwt");
    assert_eq!(jwt.len(), 1);
    let jwt_attributes = attributes(jwt[0]);
    assert!(jwt_attributes.contains(&"Path=/") && !jwt_attributes.contains(&"Secure"));
    assert!(set_cookies(&done, "__Host-jwt").is_empty());
    drop(done);
    let token = session_jwt(&app.client).await;

    // Only the configured name is read.
    let other = app.browser().await;
    let r = other
        .get("/whoami")
        .private_cookie(Cookie::new("__Host-jwt", token.clone()))
        .dispatch()
        .await;
    assert_eq!(json(r).await["kind"], "anonymous");
    let r = other
        .get("/whoami")
        .private_cookie(Cookie::new("jwt", token))
        .dispatch()
        .await;
    assert_eq!(json(r).await["kind"], "social");
}
