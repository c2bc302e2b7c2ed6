//! The rate limit holds: IPv6 clients count by their /64, the client behind proxies is the
//! entry our `trusted_proxies` vouch for (not one the client wrote), refresh is limited too, and
//! a bad configuration fails launch. (The memory bound is shown in `src/ratelimit/memory.rs`.)
//!
//! In Redis (`store = "redis"`): instances share one allowance, a client's key expires once
//! its allowance is full again, and a Redis that is killed or hangs under a running app gives
//! what `on_store_error` says within `redis_timeout_ms`, then limiting resumes. Two demo
//! processes on one Redis: `demo/tests/it/ratelimit.rs`.

use std::time::{Duration, Instant};

use rocket::error::ErrorKind;
use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;

use crate::common::*;
use crate::db_tests;

const LIMIT_1: &str = "[social_auth.rate_limit]\nper_minute = 1\nburst = 1\n";

/// An app whose client is the `hops`-th entry from the right of `X-Forwarded-For`.
async fn behind_proxies(db: TestDb, hops: u32) -> TestApp {
    let extra = format!(
        "[social_auth]\nip_header = \"X-Forwarded-For\"\ntrusted_proxies = {hops}\n{LIMIT_1}"
    );
    TestApp::start_with(db, &extra).await
}

/// The status of a login start from `peer` with one `X-Forwarded-For` line per entry of
/// `forwarded`.
async fn start_from(client: &Client, peer: &str, forwarded: &[&str]) -> Status {
    let mut request = client
        .get("/auth/github")
        .remote(peer.parse().expect("a socket address"));
    for line in forwarded {
        request = request.header(Header::new("X-Forwarded-For", line.to_string()));
    }
    request.dispatch().await.status()
}

const OK: Status = Status::SeeOther;
const LIMITED: Status = Status::TooManyRequests;

async fn ipv6_clients_count_by_their_64(db: TestDb) {
    let app = TestApp::start_with(db, LIMIT_1).await;
    let c = &app.client;
    assert_eq!(start_from(c, "[2001:db8:1:2::1]:5000", &[]).await, OK);
    assert_eq!(
        start_from(c, "[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:5001", &[]).await,
        LIMITED,
        "another address of the same /64 shares its limit"
    );
    assert_eq!(
        start_from(c, "[2001:db8:1:3::1]:5000", &[]).await,
        OK,
        "the next /64 is another client"
    );
    // An IPv4-mapped address is its IPv4 address.
    assert_eq!(start_from(c, "[::ffff:192.0.2.1]:5000", &[]).await, OK);
    assert_eq!(start_from(c, "192.0.2.1:5000", &[]).await, LIMITED);
    assert_eq!(start_from(c, "192.0.2.2:5000", &[]).await, OK);

    // The same through a proxy header.
    let p = &app
        .instance("[social_auth]\nip_header = \"X-Forwarded-For\"\n")
        .await;
    assert_eq!(start_from(p, "10.0.0.3:80", &["2001:db8:9:9::1"]).await, OK);
    assert_eq!(
        start_from(p, "10.0.0.3:80", &["2001:db8:9:9:1:2:3:4"]).await,
        LIMITED
    );
    assert_eq!(start_from(p, "10.0.0.3:80", &["2001:db8:9:a::1"]).await, OK);
}

async fn a_forged_leftmost_entry_picks_no_key(db: TestDb) {
    // A CDN appends the client, the load balancer appends the CDN; the peer is the balancer.
    let app = behind_proxies(db, 2).await;
    let c = &app.client;
    let balancer = "10.0.0.3:80";
    assert_eq!(
        start_from(c, balancer, &["198.51.100.1, 192.0.2.1, 10.0.0.2"]).await,
        OK
    );
    assert_eq!(
        start_from(c, balancer, &["203.0.113.77, 192.0.2.1, 10.0.0.2"]).await,
        LIMITED,
        "a new forged entry does not buy new attempts"
    );
    assert_eq!(
        start_from(c, balancer, &["192.0.2.1, 10.0.0.2"]).await,
        LIMITED,
        "nor does leaving it out"
    );
    // Several header lines are one list, in order.
    assert_eq!(
        start_from(c, balancer, &["203.0.113.1", "192.0.2.1, 10.0.0.2"]).await,
        LIMITED
    );
    assert_eq!(
        start_from(c, balancer, &["203.0.113.1, 192.0.2.1", "10.0.0.2"]).await,
        LIMITED
    );
    // X-Real-IP is not read when X-Forwarded-For is the configured header.
    let spoofed = c
        .get("/auth/github")
        .remote(balancer.parse().unwrap())
        .header(Header::new("X-Forwarded-For", "192.0.2.1, 10.0.0.2"))
        .header(Header::new("X-Real-IP", "192.0.2.200"))
        .dispatch()
        .await;
    assert_eq!(spoofed.status(), LIMITED);
    // An attacker who names a victim in the forged entry is counted as themself, and the
    // victim keeps their own allowance.
    assert_eq!(
        start_from(c, balancer, &["192.0.2.5, 192.0.2.9, 10.0.0.2"]).await,
        OK
    );
    assert_eq!(
        start_from(c, balancer, &["192.0.2.5, 192.0.2.9, 10.0.0.2"]).await,
        LIMITED
    );
    assert_eq!(start_from(c, balancer, &["192.0.2.5, 10.0.0.2"]).await, OK);
    // Neither the last hop nor the peer is the client: another client through the same
    // proxies has its own allowance.
    assert_eq!(start_from(c, balancer, &["192.0.2.6, 10.0.0.2"]).await, OK);
}

async fn fewer_entries_than_trusted_proxies_give_the_leftmost(db: TestDb) {
    let app = behind_proxies(db, 3).await;
    let c = &app.client;
    assert_eq!(
        start_from(c, "10.0.0.3:80", &["192.0.2.7, 10.0.0.2"]).await,
        OK
    );
    assert_eq!(
        start_from(c, "10.0.0.4:80", &["192.0.2.7"]).await,
        LIMITED,
        "the leftmost entry is the client, whatever the peer"
    );
    assert_eq!(
        start_from(c, "10.0.0.3:80", &["192.0.2.8, 10.0.0.2"]).await,
        OK
    );
    // Without the header, the peer.
    assert_eq!(start_from(c, "10.0.0.3:80", &[]).await, OK);
    assert_eq!(start_from(c, "10.0.0.3:80", &[]).await, LIMITED);
}

async fn an_entry_that_is_no_address_gives_the_peer(db: TestDb) {
    let app = behind_proxies(db, 2).await;
    let c = &app.client;
    assert_eq!(
        start_from(c, "10.0.0.9:80", &["192.0.2.1, garbage, 10.0.0.2"]).await,
        OK
    );
    assert_eq!(
        start_from(c, "10.0.0.9:80", &["192.0.2.99, , 10.0.0.4"]).await,
        LIMITED,
        "both counted as the peer"
    );
    assert_eq!(
        start_from(c, "10.0.0.10:80", &["192.0.2.1, not-an-ip, 10.0.0.2"]).await,
        OK,
        "another peer is another client"
    );
    // Hostile values do no harm and count as the peer.
    let long = "256.1.1.1,".repeat(10_000);
    assert_eq!(start_from(c, "10.0.0.11:80", &[&long]).await, OK);
    for forwarded in [
        &["\u{1F642}, \u{0}, [::1]:x"][..],
        &["", ""],
        &[",,,,"],
        &["fe80::1%eth0, 10.0.0.2"],
    ] {
        assert_eq!(
            start_from(c, "10.0.0.11:80", forwarded).await,
            LIMITED,
            "{forwarded:?}"
        );
    }
}

async fn refresh_is_rate_limited(db: TestDb) {
    let app =
        TestApp::start_with(db, "[social_auth.rate_limit]\nper_minute = 2\nburst = 2\n").await;
    assert_eq!(app.login(&app.client).await.status(), Status::SeeOther);
    let refresh = |post: bool, peer: &str| {
        let peer = peer.parse().unwrap();
        let request = if post {
            app.client.post("/auth/github/refresh")
        } else {
            // A state-changing GET from our own pages (hardening item 6).
            app.client.get("/auth/github/refresh").header(same_origin())
        };
        request.remote(peer).header(accept_json()).dispatch()
    };
    for post in [true, false] {
        let r = refresh(post, "192.0.2.1:5000").await;
        assert_ne!(r.status(), Status::TooManyRequests, "within the limit");
        assert_ne!(json(r).await["status"], "rate_limited");
    }
    for post in [true, false] {
        let r = refresh(post, "192.0.2.1:5000").await;
        assert_eq!(r.status(), Status::TooManyRequests, "post: {post}");
        let wait: u64 = r
            .headers()
            .get_one("Retry-After")
            .expect("Retry-After")
            .parse()
            .expect("seconds");
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(json(r).await, serde_json::json!({"status": "rate_limited"}));
    }
    // Login start shares the allowance; another client is not affected.
    assert_eq!(
        start_from(&app.client, "192.0.2.1:5000", &[]).await,
        LIMITED
    );
    let r = refresh(true, "192.0.2.2:5000").await;
    assert_ne!(r.status(), Status::TooManyRequests);
    // A provider that is off is still 404, limited or not.
    let r = app
        .client
        .post("/auth/gitlab/refresh")
        .remote("192.0.2.1:5000".parse().unwrap())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::NotFound);
}

async fn bad_client_address_config_fails_launch(db: TestDb) {
    let launch = |extra: &str| {
        let figment = figment(&db.url, "http://127.0.0.1:9", extra);
        async move { rocket(figment).ignite().await }
    };
    for extra in [
        "[social_auth]\ntrusted_proxies = 2\n",
        "[social_auth]\nip_header = \"X-Forwarded-For\"\ntrusted_proxies = 0\n",
        "[social_auth]\nip_header = \"X-Forwarded-For\"\ntrusted_proxies = -1\n",
        "[social_auth]\nip_header = \"X-Forwarded-For\"\ntrusted_proxies = \"two\"\n",
        "[social_auth]\nip_header = \"X-Forwarded-For\"\ntrusted_proxies = 4294967296\n",
        "[social_auth.rate_limit]\nper_minute = 5\nmax_clients = 0\n",
        "[social_auth.rate_limit]\nper_minute = 5\nmax_clients = -5\n",
        "[social_auth.rate_limit]\nper_minute = 5\nmax_clients = 1.5\n",
    ] {
        match launch(extra).await {
            Err(error) => match error.kind() {
                ErrorKind::FailedFairings(failures) => {
                    assert_eq!(failures[0].name, "Social Auth", "{extra}")
                }
                other => panic!("{extra}: unexpected launch error: {other}"),
            },
            Ok(_) => panic!("{extra}: launched"),
        }
    }
    // The same keys with good values launch.
    let good = "[social_auth]\nip_header = \"X-Forwarded-For\"\ntrusted_proxies = 2\n\
                [social_auth.rate_limit]\nper_minute = 5\nmax_clients = 10\n";
    if let Err(error) = launch(good).await {
        panic!("a good configuration fails: {}", error.kind());
    }
}

db_tests!(
    ipv6_clients_count_by_their_64,
    a_forged_leftmost_entry_picks_no_key,
    fewer_entries_than_trusted_proxies_give_the_leftmost,
    an_entry_that_is_no_address_gives_the_peer,
    refresh_is_rate_limited,
    bad_client_address_config_fails_launch,
);

/// Starts from `peer` on each of `instances` in turn, `requests` times: how many each let
/// through.
async fn alternate(instances: &[&Client], peer: &str, requests: usize) -> Vec<usize> {
    let mut allowed = vec![0; instances.len()];
    for n in 0..requests {
        match start_from(instances[n % instances.len()], peer, &[]).await {
            OK => allowed[n % instances.len()] += 1,
            LIMITED => {}
            other => panic!("login start answered {other}"),
        }
    }
    allowed
}

/// The seconds of `Retry-After` of a 429 login start from `peer`, and its JSON `error`.
async fn refusal(client: &Client, peer: &str) -> (u64, String) {
    let r = client
        .get("/auth/github")
        .remote(peer.parse().unwrap())
        .header(accept_json())
        .dispatch()
        .await;
    assert_eq!(r.status(), LIMITED);
    let wait = r.headers().get_one("Retry-After").expect("Retry-After");
    let wait = wait.parse().expect("seconds");
    (
        wait,
        json(r).await["error"].as_str().unwrap_or("").to_owned(),
    )
}

/// A login start from `peer`, and how long it took.
async fn timed(client: &Client, peer: &str) -> (Status, Duration) {
    let started = Instant::now();
    let status = start_from(client, peer, &[]).await;
    (status, started.elapsed())
}

/// Waits until Redis limits again behind `client` (a fresh client's third request within its
/// burst of 2 is refused), at most 15 s.
async fn limiting_resumes(client: &Client, tag: u8) {
    let started = Instant::now();
    for n in 0.. {
        let peer = format!("198.51.{tag}.{n}:5000");
        if alternate(&[client], &peer, 3).await == [2] {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "limiting resumes after Redis is back"
        );
        rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[rocket::async_test]
async fn instances_on_one_redis_share_one_allowance() {
    let url = shared_redis_url();
    let prefix = redis_prefix("share");
    // A generous timeout: this test counts, and a loaded machine must not turn a slow answer
    // into an allowed request.
    let extra = redis_limit(&url, &prefix, 3, "redis_timeout_ms = 5000\n");
    let app = TestApp::start_with(TestDb::sqlite().await, &extra).await;
    let other = app.instance("").await;
    assert_eq!(
        alternate(&[&app.client, &other], "192.0.2.1:5000", 10).await,
        [2, 1],
        "three in all (the burst), not three on each instance"
    );
    let (wait, error) = refusal(&other, "192.0.2.1:5001").await;
    assert!((50..=60).contains(&wait), "one request a minute: {wait}");
    assert_eq!(error, "rate_limited");
    // Another client has its own allowance; an IPv6 client is its /64, on either instance.
    assert_eq!(start_from(&other, "192.0.2.2:5000", &[]).await, OK);
    assert_eq!(
        alternate(&[&app.client, &other], "[2001:db8:1:2::1]:5000", 4).await,
        [2, 1]
    );
    assert_eq!(
        start_from(&other, "[2001:db8:1:2:ffff::9]:5000", &[]).await,
        LIMITED
    );

    // One key per client under the prefix, each expiring when its allowance is full again
    // (three requests of one a minute: in three minutes).
    let keys = redis_cli(&url, &["--scan", "--pattern", &format!("{prefix}*")]);
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.sort_unstable();
    let named = |client: &str| format!("{prefix}{client}");
    assert_eq!(
        keys,
        [
            named("192.0.2.1"),
            named("192.0.2.2"),
            named("2001:db8:1:2::/64")
        ]
    );
    let ttl: i64 = redis_cli(&url, &["PTTL", &named("192.0.2.1")])
        .parse()
        .unwrap();
    assert!((170_000..=180_000).contains(&ttl), "PTTL {ttl}");

    // The same two instances in memory: each has its own allowance, twice the limit.
    let memory = TestApp::start_with(
        TestDb::sqlite().await,
        "[social_auth.rate_limit]\nper_minute = 1\nburst = 3\n",
    )
    .await;
    let second = memory.instance("").await;
    assert_eq!(
        alternate(&[&memory.client, &second], "192.0.2.1:5000", 10).await,
        [3, 3]
    );
}

#[rocket::async_test]
async fn an_allowance_refills_and_an_idle_client_leaves_redis() {
    let url = shared_redis_url();
    let prefix = redis_prefix("refill");
    // One request every 500 ms, two at once.
    let extra = format!(
        "[social_auth.rate_limit]\nper_minute = 120\nburst = 2\nstore = \"redis\"\n\
         redis_url = \"{url}\"\nredis_key_prefix = \"{prefix}\"\nredis_timeout_ms = 5000\n"
    );
    let app = TestApp::start_with(TestDb::sqlite().await, &extra).await;
    let c = &app.client;
    let key = format!("{prefix}192.0.2.1");
    assert_eq!(alternate(&[c], "192.0.2.1:5000", 3).await, [2]);
    assert_eq!(
        refusal(c, "192.0.2.1:5000").await,
        (1, "rate_limited".into())
    );
    let ttl: i64 = redis_cli(&url, &["PTTL", &key]).parse().unwrap();
    assert!((1..=1_000).contains(&ttl), "PTTL {ttl}");
    // 600 ms later one request's allowance is back, and only one.
    rocket::tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(alternate(&[c], "192.0.2.1:5000", 2).await, [1]);
    // Idle, the key expires as the allowance fills up: Redis does not keep idle clients.
    let started = Instant::now();
    while redis_cli(&url, &["EXISTS", &key]) == "1" {
        assert!(started.elapsed() < Duration::from_secs(5), "{key} expires");
        rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        alternate(&[c], "192.0.2.1:5000", 3).await,
        [2],
        "a full allowance"
    );
}

#[rocket::async_test]
async fn redis_killed_under_a_running_app_allows_or_denies_then_limits_again() {
    let mut redis = OwnRedis::start();
    let prefix = redis_prefix("killed");
    let extra = redis_limit(&redis.url(), &prefix, 2, "redis_timeout_ms = 300\n");
    let allow = TestApp::start_with(TestDb::sqlite().await, &extra).await;
    let deny = allow
        .instance("[social_auth.rate_limit]\non_store_error = \"deny\"\n")
        .await;
    let peer = "192.0.2.1:5000";
    assert_eq!(alternate(&[&allow.client, &deny], peer, 3).await, [1, 1]);

    redis.kill();
    // "allow": the limited client gets through, promptly, and a whole login works.
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(start_from(&allow.client, peer, &[]).await, OK);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(allow.login(&allow.client).await.status(), Status::SeeOther);
    let me = json(allow.client.get("/whoami").dispatch().await).await;
    assert_eq!(me["kind"], "social", "signed in while Redis is down");
    // "deny": even a new client is refused as over the limit, with one request's wait.
    let started = Instant::now();
    assert_eq!(
        refusal(&deny, "192.0.2.9:5000").await,
        (60, "rate_limited".into())
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    redis.restart();
    limiting_resumes(&allow.client, 1).await;
    limiting_resumes(&deny, 2).await;
}

#[rocket::async_test]
async fn a_redis_that_hangs_delays_a_login_by_the_timeout_only() {
    let redis = OwnRedis::start();
    let prefix = redis_prefix("hangs");
    let extra = redis_limit(&redis.url(), &prefix, 2, "redis_timeout_ms = 300\n");
    let allow = TestApp::start_with(TestDb::sqlite().await, &extra).await;
    let deny = allow
        .instance("[social_auth.rate_limit]\non_store_error = \"deny\"\n")
        .await;
    // Connected and limiting.
    assert_eq!(
        alternate(&[&allow.client, &deny], "192.0.2.1:5000", 3).await,
        [1, 1]
    );

    redis.pause(true);
    let (status, took) = timed(&allow.client, "192.0.2.1:5000").await;
    assert_eq!(status, OK, "allow: through, limited client or not");
    assert!(
        (Duration::from_millis(290)..Duration::from_secs(2)).contains(&took),
        "waited for the timeout only: {took:?}"
    );
    let (status, took) = timed(&deny, "192.0.2.2:5000").await;
    assert_eq!(status, LIMITED, "deny: refused, new client or not");
    assert!(
        (Duration::from_millis(290)..Duration::from_secs(2)).contains(&took),
        "{took:?}"
    );

    redis.pause(false);
    limiting_resumes(&allow.client, 3).await;
    limiting_resumes(&deny, 4).await;
}

#[rocket::async_test]
async fn bad_store_config_fails_launch_and_a_redis_down_at_launch_does_not() {
    let db = TestDb::sqlite().await;
    let launch = |extra: &str| {
        let figment = figment(&db.url, "http://127.0.0.1:9", extra);
        async move { rocket(figment).ignite().await }
    };
    let limit = "[social_auth.rate_limit]\nper_minute = 5\n";
    let redis = "store = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\n";
    for extra in [
        "store = \"redis\"\n".to_owned(),
        "redis_url = \"redis://127.0.0.1:6379\"\n".to_owned(),
        "store = \"memcached\"\n".to_owned(),
        "store = \"Redis \"\n".to_owned(),
        "on_store_error = \"maybe\"\n".to_owned(),
        "store = \"redis\"\nredis_url = \"rediss://redis.example:6380\"\n".to_owned(),
        "store = \"redis\"\nredis_url = \"not a url\"\n".to_owned(),
        "store = \"redis\"\nredis_url = 6379\n".to_owned(),
        format!("{redis}redis_timeout_ms = 0\n"),
        format!("{redis}redis_timeout_ms = -1\n"),
        format!("{redis}redis_key_prefix = \"\"\n"),
    ] {
        match launch(&format!("{limit}{extra}")).await {
            Err(error) => match error.kind() {
                ErrorKind::FailedFairings(failures) => {
                    assert_eq!(failures[0].name, "Social Auth", "{extra}")
                }
                other => panic!("{extra}: unexpected launch error: {other}"),
            },
            Ok(_) => panic!("{extra}: launched"),
        }
    }
    // Nothing listens on port 1: the app launches all the same, and logins go on.
    let down = format!("{limit}store = \"redis\"\nredis_url = \"redis://127.0.0.1:1\"\n");
    let client = Client::tracked(rocket(figment(&db.url, "http://127.0.0.1:9", &down)))
        .await
        .expect("launches without its Redis");
    assert_eq!(start_from(&client, "192.0.2.1:5000", &[]).await, OK);
}
