//! The rate limit holds: IPv6 clients count by their /64, the client behind proxies is the
//! entry our `trusted_proxies` vouch for (not one the client wrote), refresh is limited too, and
//! a bad configuration fails launch. (The memory bound is shown in `src/ratelimit.rs`.)

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
