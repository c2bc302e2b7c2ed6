//! The shared rate limit with demo-app processes, as an operator runs several instances: two
//! processes on one Redis let a client through as often as the limit says, not twice; and a
//! Redis outage under a running process is one warning in its log, not one a request. (In
//! process, with a Redis killed and hung: `tests/it/ratelimit.rs`.)

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A demo process with the repository's Rocket.toml (debug profile, the development provider)
/// on a SQLite database of its own and a free port, with `rate_limit` as its
/// `[social_auth.rate_limit]` (inline TOML), its log in `log`.
struct Demo {
    child: Child,
    origin: String,
    dir: PathBuf,
}

impl Demo {
    async fn start(rate_limit: &str, log: Option<&Path>) -> Demo {
        let port = free_port();
        let origin = format!("http://127.0.0.1:{port}");
        let dir = std::env::temp_dir().join(format!("rsa_rl_{}_{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (stdout, stderr, level) = match log {
            Some(path) => {
                let file = std::fs::File::create(path).unwrap();
                (file.try_clone().unwrap().into(), file.into(), "normal")
            }
            None => (Stdio::null(), Stdio::null(), "off"),
        };
        let child = Command::new(env!("CARGO_BIN_EXE_rocket_social_auth"))
            .current_dir(crate::root())
            .env_remove("ROCKET_CONFIG")
            .env_remove("ROCKET_PROFILE")
            .env("ROCKET_PORT", port.to_string())
            .env("ROCKET_LOG_LEVEL", level)
            .env("ROCKET_CLI_COLORS", "false")
            .env(
                "ROCKET_SOCIAL_AUTH",
                format!("{{public_url=\"{origin}\",rate_limit={rate_limit}}}"),
            )
            .env(
                "ROCKET_DATABASES",
                format!(
                    "{{social_auth={{url=\"sqlite://{}?mode=rwc\"}}}}",
                    dir.join("demo.sqlite").display()
                ),
            )
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("the demo starts");
        let demo = Demo { child, origin, dir };
        let http = http_client();
        let started = Instant::now();
        while http
            .get(format!("{}/health", demo.origin))
            .send()
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{} answers",
                demo.origin
            );
            rocket::tokio::time::sleep(Duration::from_millis(50)).await;
        }
        demo
    }

    /// A login start with the development provider (from 127.0.0.1, as every request here):
    /// its status and `Retry-After`.
    async fn start_login(&self, http: &reqwest::Client) -> (u16, Option<u64>) {
        let r = http
            .get(format!("{}/auth/dev", self.origin))
            .send()
            .await
            .expect("the demo answers");
        let wait = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        (r.status().as_u16(), wait)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `[social_auth.rate_limit]` inline: `burst` at once, then one a minute, in Redis at `url`.
fn limit(url: &str, prefix: &str, burst: u32, timeout_ms: u32) -> String {
    format!(
        "{{per_minute=1,burst={burst},store=\"redis\",redis_url=\"{url}\",\
         redis_key_prefix=\"{prefix}\",redis_timeout_ms={timeout_ms}}}"
    )
}

/// Two processes, one Redis: the client's burst of 3 is let through once in all. (Processes
/// rather than two Rocket instances in one test process, because that is what an operator
/// runs: nothing but Redis is shared, not even a runtime or an allocator.)
#[rocket::async_test]
async fn two_processes_on_one_redis_allow_the_limit_not_twice_it() {
    let prefix = redis_prefix("demo_share");
    // Generous: this test counts, and a slow answer must not become an allowed request.
    let rate_limit = limit(&shared_redis_url(), &prefix, 3, 5_000);
    let a = Demo::start(&rate_limit, None).await;
    let b = Demo::start(&rate_limit, None).await;
    let http = http_client();
    let mut allowed = [0, 0];
    for n in 0..10 {
        let (status, wait) = [&a, &b][n % 2].start_login(&http).await;
        match status {
            303 => allowed[n % 2] += 1,
            429 => {
                let wait = wait.expect("Retry-After");
                assert!((50..=60).contains(&wait), "one request a minute: {wait}");
            }
            other => panic!("login start answered {other}"),
        }
    }
    assert_eq!(allowed, [2, 1], "three in all, from both processes");
}

/// Redis killed under a running process (`allow`): every login start goes through, the log
/// says so once (not once a request, and without the URL's password); Redis restarted:
/// limiting resumes and the log says so once.
#[rocket::async_test]
async fn a_redis_outage_is_one_warning_in_the_log_not_one_a_request() {
    let mut redis = OwnRedis::start_with(Some("pw-of-the-test-redis"));
    let prefix = redis_prefix("demo_outage");
    let dir = std::env::temp_dir().join(format!("rsa_rl_log_{}", redis_prefix("log")));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("demo.log");
    let demo = Demo::start(&limit(&redis.url(), &prefix, 2, 300), Some(&log)).await;
    let http = http_client();
    let statuses = |n| {
        let (demo, http) = (&demo, &http);
        async move {
            let mut statuses = Vec::new();
            for _ in 0..n {
                statuses.push(demo.start_login(http).await.0);
            }
            statuses
        }
    };
    assert_eq!(statuses(3).await, [303, 303, 429], "limited through Redis");

    redis.kill();
    assert_eq!(statuses(30).await, [303; 30], "on_store_error = \"allow\"");
    redis.restart();
    let started = Instant::now();
    while demo.start_login(&http).await.0 != 429 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "limiting resumes"
        );
        rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(demo);

    let log = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let lines = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    assert_eq!(lines("the rate limit's Redis did not decide"), 1, "{log}");
    assert_eq!(lines("on_store_error = \"allow\""), 1, "{log}");
    assert_eq!(lines("the rate limit's Redis answers again"), 1, "{log}");
    assert!(!log.contains("pw-of-the-test-redis"), "{log}");
}
