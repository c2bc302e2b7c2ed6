//! Metrics (issue 14 §2): what the library records through the `metrics` facade, read back
//! with metrics-util's debugging recorder. The provider is configured under its own name
//! (`metricshub`), so that the other tests of this binary, which record too, do not count.

use std::sync::OnceLock;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
use rocket_social_auth::testing::{FakeGithub, TokenMode};

use crate::common::*;

/// A recorded metric: its kind, name, sorted labels and value.
type Recorded = (MetricKind, String, Vec<(String, String)>, DebugValue);

fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this binary");
        snapshotter
    })
}

/// The metrics recorded since the last call: (kind, name, sorted labels) → value.
fn recorded() -> Vec<Recorded> {
    snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            (kind, key.name().to_owned(), labels, value)
        })
        .collect()
}

fn find<'a>(all: &'a [Recorded], name: &str, labels: &[(&str, &str)]) -> Option<&'a DebugValue> {
    all.iter()
        .find(|(_, n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, _, v)| v)
}

fn count(all: &[Recorded], name: &str, labels: &[(&str, &str)]) -> u64 {
    match find(all, name, labels) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        other => panic!("{name} is not a counter: {other:?}"),
    }
}

#[rocket::async_test]
async fn logins_provider_calls_refreshes_guard_revocations_and_rate_limits_are_recorded() {
    snapshotter();
    let db = TestDb::sqlite().await;
    let fake = FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
    fake.sign_in_as(octocat());
    fake.set_token_mode(TokenMode::Expiring);
    let server = fake.clone().spawn().await.unwrap();
    let url = server.url();
    let extra = format!(
        "[social_auth.providers.metricshub]\nkind = \"github\"\nclient_id = \"{CLIENT_ID}\"\n\
         client_secret = \"{CLIENT_SECRET}\"\nauthorize_url = \"{url}/login/oauth/authorize\"\n\
         token_url = \"{url}/login/oauth/access_token\"\napi_url = \"{url}\"\n\
         [social_auth.rate_limit]\nper_minute = 1\nburst = 4\n"
    );
    let client = Client::tracked(rocket(figment(&db.url, url, &extra)))
        .await
        .unwrap();
    recorded();

    // One login (rate limit: start and callback), a forged callback (3), a refresh (4).
    let start = client.get("/auth/metricshub").dispatch().await;
    let location = start.headers().get_one("Location").unwrap().to_owned();
    drop(start);
    let callback = provider_redirect(&location).await;
    assert_eq!(
        client.get(callback).dispatch().await.status(),
        Status::SeeOther
    );
    let r = client
        .get("/auth/metricshub/callback?code=c&state=s")
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::BadRequest);
    drop(r);
    let r = client.post("/auth/metricshub/refresh").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    drop(r);
    // Over the limit.
    let r = client.get("/auth/metricshub").dispatch().await;
    assert_eq!(r.status(), Status::TooManyRequests);
    drop(r);

    // The guard: a full check, then the cache; a forged token refused.
    for _ in 0..2 {
        assert_eq!(client.get("/strict").dispatch().await.status(), Status::Ok);
    }
    let stranger = Client::tracked(rocket(figment(&db.url, url, "")))
        .await
        .unwrap();
    let r = stranger
        .get("/strict")
        .header(Header::new("Authorization", "Bearer forged.token.here"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Unauthorized);
    drop(r);
    // A logout: the revocation list holds the session.
    let r = client.post("/auth/logout").dispatch().await;
    assert_eq!(r.status(), Status::SeeOther);
    drop(r);

    let all = recorded();
    let logins = "social_auth_logins_total";
    let hub = ("provider", "metricshub");
    assert_eq!(
        count(&all, logins, &[hub, ("outcome", "new")]),
        1,
        "{all:#?}"
    );
    assert_eq!(count(&all, logins, &[hub, ("outcome", "missing_flow")]), 1);
    assert_eq!(count(&all, logins, &[hub, ("outcome", "rate_limited")]), 1);
    let refreshes = "social_auth_refreshes_total";
    assert_eq!(count(&all, refreshes, &[hub, ("outcome", "refreshed")]), 1);
    let latency = "social_auth_provider_request_duration_seconds";
    for endpoint in ["/login/oauth/access_token", "/user"] {
        match find(&all, latency, &[hub, ("endpoint", endpoint)]) {
            Some(DebugValue::Histogram(values)) => {
                assert!(!values.is_empty() && values.iter().all(|v| v.0 > 0.0 && v.0 < 5.0))
            }
            other => panic!("{endpoint}: {other:?}"),
        }
    }
    let guard = "social_auth_guard_verifications_total";
    for result in ["verified", "remembered", "refused"] {
        assert!(count(&all, guard, &[("result", result)]) >= 1, "{result}");
    }
    assert!(count(&all, "social_auth_rate_limited_total", &[]) >= 1);
    // The gauge is one per process, and every app instance of this test binary sets it at its
    // reloads: its value is whichever instance wrote last, so only its presence is ours to see.
    match find(&all, "social_auth_revoked_sessions", &[]) {
        Some(DebugValue::Gauge(n)) => assert!(n.0 >= 0.0),
        other => panic!("{other:?}"),
    }
}
