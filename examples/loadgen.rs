//! The load generator of the load harness (`scripts/bench-load`, see BENCHMARKS.md): the parts
//! that wrk cannot do — whole logins, which need cookies and three hops — plus the fake GitHub
//! the demo app logs in against, the bare-provider ceiling, and the start-up clock.
//!
//! ```text
//! loadgen fake [--users N]           serve the fake GitHub on a free loopback port; prints
//!                                    url=, client_id=, client_secret=; runs until SIGTERM
//! loadgen free-port                  prints a free loopback port
//! loadgen wait --url U --since-ns T  polls U until it answers 200; prints the ms since T (unix ns)
//! loadgen session --app U            one login; prints cookie= (the private `jwt` cookie) and jwt=
//! loadgen logins --app U   [load]    whole logins: start -> provider authorize -> callback
//! loadgen provider --fake U [load]   the same provider round-trips with no app in between:
//!                                    authorize, token, GET /user, GET /user/emails
//! loadgen scalar --db URL --sql S    prints the one integer the query answers (SQLite or
//!                                    PostgreSQL), e.g. the expired sessions left to purge
//! load: --concurrency C (32) --secs S (10) --warmup-secs W (2) --users N (1000)
//!       --pids name=pid,... (CPU per operation of those processes) --pg (and of PostgreSQL)
//! ```
//!
//! `logins` and `provider` print one line of `key=value` (ops, rate, p50_ms, p99_ms, errors,
//! cpu_us_per_op.<name>) and exit non-zero if a single operation failed.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use reqwest::header::{
    HeaderMap, HeaderName, ACCEPT, AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE, USER_AGENT,
};
use rocket::tokio;
use rocket_social_auth::testing::{FakeGithub, FakeUser};
use sha2::{Digest, Sha256};

const CLIENT_ID: &str = "bench-client";
const CLIENT_SECRET: &str = "bench-client-secret";
/// The callback the bare provider round-trips register (the fake only checks it is echoed).
const BARE_REDIRECT: &str = "http://127.0.0.1:9/auth/github/callback";

type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!(
            "usage: loadgen fake|free-port|wait|session|logins|provider|scalar [--key value]..."
        );
        return ExitCode::from(2);
    };
    let opts = match Opts::parse(rest) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    // reqwest is built without a TLS crypto provider of its own.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command.as_str() {
            "fake" => fake(&opts).await,
            "free-port" => free_port(),
            "wait" => wait(&opts).await,
            "session" => session(&opts).await,
            "logins" | "provider" => load(command == "logins", &opts).await,
            "scalar" => scalar(&opts).await,
            other => Err(format!("unknown command {other:?}")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen {command}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--key value` pairs, and `--flag` alone.
struct Opts(HashMap<String, String>);

impl Opts {
    fn parse(args: &[String]) -> Res<Opts> {
        let mut map = HashMap::new();
        let mut it = args.iter().peekable();
        while let Some(arg) = it.next() {
            let key = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {arg:?}"))?;
            let value = match it.peek() {
                Some(v) if !v.starts_with("--") => it.next().cloned().unwrap_or_default(),
                _ => String::new(),
            };
            map.insert(key.to_owned(), value);
        }
        Ok(Opts(map))
    }

    fn str(&self, key: &str) -> Res<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("--{key} is required"))
    }

    fn num(&self, key: &str, default: f64) -> Res<f64> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{key}: not a number: {v:?}")),
        }
    }

    fn flag(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
}

/// One integer from the database (through sqlx, which both backends share).
async fn scalar(opts: &Opts) -> Res<()> {
    use sqlx::{ConnectOptions, Connection};
    use std::str::FromStr;
    sqlx::any::install_default_drivers();
    let options =
        sqlx::any::AnyConnectOptions::from_str(opts.str("db")?).map_err(|e| e.to_string())?;
    let mut conn = options.connect().await.map_err(|e| e.to_string())?;
    let n: i64 = sqlx::query_scalar(opts.str("sql")?)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    conn.close().await.map_err(|e| e.to_string())?;
    println!("{n}");
    Ok(())
}

fn user_login(i: u64) -> String {
    format!("user{i}")
}

/// The fake GitHub, with `--users` accounts that `login=` picks from.
async fn fake(opts: &Opts) -> Res<()> {
    let users = opts.num("users", 1000.0)? as u64;
    let fake = FakeGithub::new(CLIENT_ID, CLIENT_SECRET);
    for i in 0..users.max(1) {
        fake.sign_in_as(
            FakeUser::new(10_000_000 + i, &user_login(i))
                .name(Some(&format!("Bench User {i}")))
                .email(&format!("{}@bench.example", user_login(i))),
        );
    }
    let server = fake.spawn().await.map_err(|e| e.to_string())?;
    println!("url={}", server.url());
    println!("client_id={CLIENT_ID}");
    println!("client_secret={CLIENT_SECRET}");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(server);
    Ok(())
}

fn free_port() -> Res<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    println!(
        "{}",
        listener.local_addr().map_err(|e| e.to_string())?.port()
    );
    Ok(())
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Polls `--url` (a new connection each time, every millisecond) until it answers 200.
async fn wait(opts: &Opts) -> Res<()> {
    let url = opts.str("url")?;
    let since: u128 = opts
        .str("since-ns")?
        .parse()
        .map_err(|_| "--since-ns: not a number")?;
    let timeout = Duration::from_millis(opts.num("timeout-ms", 20_000.0)? as u64);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let begun = Instant::now();
    loop {
        if let Ok(r) = http.get(url).send().await {
            if r.status().as_u16() == 200 {
                let elapsed = unix_ns().saturating_sub(since);
                println!("{:.1}", elapsed as f64 / 1e6);
                return Ok(());
            }
        }
        if begun.elapsed() > timeout {
            return Err(format!("{url} did not answer 200 within {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A client like a browser's, for one virtual user: keep-alive, no redirects followed.
fn client() -> Res<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())
}

/// An answer read in full.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: HeaderName) -> Res<String> {
        self.headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| format!("no {name} header (status {})", self.status))
    }

    /// The `name=value` of the cookie `name` it sets.
    fn set_cookie(&self, name: &str) -> Res<String> {
        let prefix = format!("{name}=");
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&prefix))
            .and_then(|v| v.split(';').next())
            .map(str::to_owned)
            .ok_or_else(|| format!("no {name} cookie (status {})", self.status))
    }
}

/// Sends, reads the whole body (so that the connection is reused) and checks the status.
async fn send(request: reqwest::RequestBuilder, want: u16) -> Res<Reply> {
    let r = request.send().await.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.map_err(|e| e.to_string())?.to_vec();
    if status != want {
        let text = String::from_utf8_lossy(&body);
        return Err(format!(
            "answered {status}, not {want}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// One whole login of `user` on the app at `app`: returns the `jwt=…` cookie.
async fn login(http: &reqwest::Client, app: &str, user: &str) -> Res<String> {
    let start = send(http.get(format!("{app}/auth/github")), 303).await?;
    let flow = start.set_cookie("social_auth_flow_github")?;
    let authorize = format!("{}&login={user}", start.header(LOCATION)?);
    let approved = send(http.get(authorize), 302).await?;
    let back = url::Url::parse(&approved.header(LOCATION)?).map_err(|e| e.to_string())?;
    let callback = format!("{app}{}?{}", back.path(), back.query().unwrap_or(""));
    let done = send(http.get(callback).header(COOKIE, flow), 303).await?;
    done.set_cookie("jwt")
}

/// One login, then the session's raw JWT: what the harness replays to wrk.
async fn session(opts: &Opts) -> Res<()> {
    let app = opts.str("app")?;
    let http = client()?;
    let cookie = login(&http, app, &user_login(0)).await?;
    let reply = send(
        http.get(format!("{app}/auth/session"))
            .header(COOKIE, &cookie),
        200,
    )
    .await?;
    let session = json(&reply.body)?;
    let jwt = session["jwt"].as_str().ok_or("no jwt in /auth/session")?;
    println!("cookie={}", cookie.trim_start_matches("jwt="));
    println!("jwt={jwt}");
    Ok(())
}

fn random(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

fn json(body: &[u8]) -> Res<serde_json::Value> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// What the app's provider client and the user's browser ask of the provider in one login,
/// asked directly: authorize (with PKCE), the code exchange, `GET /user`, `GET /user/emails`.
async fn provider_round_trip(http: &reqwest::Client, fake: &str, user: &str) -> Res<()> {
    let (state, verifier) = (random(32), random(48));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let authorize = http.get(format!("{fake}/login/oauth/authorize")).query(&[
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("state", &state),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("redirect_uri", BARE_REDIRECT),
        ("scope", "read:user user:email"),
        ("login", user),
    ]);
    let approved = send(authorize, 302).await?;
    let back = url::Url::parse(&approved.header(LOCATION)?).map_err(|e| e.to_string())?;
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or("no code")?;
    let exchange = http
        .post(format!("{fake}/login/oauth/access_token"))
        .header(ACCEPT, "application/json")
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", BARE_REDIRECT),
            ("code_verifier", &verifier),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ]);
    let token = json(&send(exchange, 200).await?.body)?["access_token"]
        .as_str()
        .ok_or("no access_token")?
        .to_owned();
    for path in ["/user", "/user/emails"] {
        let api = http
            .get(format!("{fake}{path}"))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header(USER_AGENT, "loadgen");
        json(&send(api, 200).await?.body)?;
    }
    Ok(())
}

/// CPU time (user + system) of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields after it start past the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The CPU ticks of every `postgres` process (the server and its backends).
fn postgres_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .filter_map(|pid| cpu_ticks(&pid))
        .sum()
}

/// Snapshot of the CPU ticks of the watched processes.
fn cpu_snapshot(pids: &[(String, String)], pg: bool) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = pids
        .iter()
        .map(|(name, pid)| (name.clone(), cpu_ticks(pid).unwrap_or(0)))
        .collect();
    out.push(("loadgen".into(), cpu_ticks("self").unwrap_or(0)));
    if pg {
        out.push(("postgres".into(), postgres_ticks()));
    }
    out
}

/// Nearest-rank percentile, in milliseconds.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e3
}

/// `--concurrency` virtual users doing whole logins (or the bare provider round-trips) back to
/// back for `--warmup-secs` (not counted) and then `--secs`.
async fn load(logins: bool, opts: &Opts) -> Res<()> {
    let target = if logins {
        opts.str("app")?
    } else {
        opts.str("fake")?
    }
    .trim_end_matches('/')
    .to_owned();
    let concurrency = opts.num("concurrency", 32.0)?.max(1.0) as u64;
    let secs = opts.num("secs", 10.0)?;
    let warmup = Duration::from_secs_f64(opts.num("warmup-secs", 2.0)?);
    let users = opts.num("users", 1000.0)?.max(1.0) as u64;
    let pids: Vec<(String, String)> = opts
        .0
        .get("pids")
        .map(|list| {
            list.split(',')
                .filter_map(|p| p.split_once('='))
                .map(|(n, p)| (n.to_owned(), p.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let pg = opts.flag("pg");

    let begun = Instant::now();
    let measure_from = begun + warmup;
    let until = measure_from + Duration::from_secs_f64(secs);
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new((0u64, None::<String>)));
    let cpu_before = Arc::new(Mutex::new(None));
    let mut tasks = Vec::new();
    for client_no in 0..concurrency {
        let (target, latencies, errors) = (target.clone(), latencies.clone(), errors.clone());
        let (cpu_before, pids) = (cpu_before.clone(), pids.clone());
        let http = client()?;
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut i = client_no;
            loop {
                let start = Instant::now();
                if start >= until {
                    break;
                }
                if start >= measure_from {
                    let mut before = cpu_before.lock().unwrap_or_else(|p| p.into_inner());
                    if before.is_none() {
                        *before = Some((Instant::now(), cpu_snapshot(&pids, pg)));
                    }
                }
                // Users are spread over the pool; most logins are of returning users.
                let user = user_login(i.wrapping_mul(7919) % users);
                i += concurrency;
                let result = if logins {
                    login(&http, &target, &user).await.map(drop)
                } else {
                    provider_round_trip(&http, &target, &user).await
                };
                if start < measure_from {
                    if let Err(e) = result {
                        let mut errors = errors.lock().unwrap_or_else(|p| p.into_inner());
                        errors.0 += 1;
                        errors.1.get_or_insert(e);
                    }
                    continue;
                }
                match result {
                    Ok(()) => mine.push(start.elapsed()),
                    Err(e) => {
                        let mut errors = errors.lock().unwrap_or_else(|p| p.into_inner());
                        errors.0 += 1;
                        errors.1.get_or_insert(e);
                    }
                }
            }
            latencies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(mine);
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())?;
    }
    let cpu_after = cpu_snapshot(&pids, pg);
    let mut all = std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner()));
    all.sort_unstable();
    let (error_count, first_error) = errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let ops = all.len() as f64;
    // Operations are counted by when they started: inside the window of `--secs`.
    let window = (until - measure_from).as_secs_f64();
    let mut line = format!(
        "ops={} secs={window:.2} rate={:.1} p50_ms={:.2} p99_ms={:.2} errors={error_count}",
        all.len(),
        ops / window,
        percentile(&all, 50.0),
        percentile(&all, 99.0),
    );
    let ticks_per_sec = 100.0; // USER_HZ on Linux.
    if let Some((_, before)) = cpu_before.lock().unwrap_or_else(|p| p.into_inner()).take() {
        for ((name, b), (_, a)) in before.iter().zip(&cpu_after) {
            let us = a.saturating_sub(*b) as f64 / ticks_per_sec * 1e6;
            line.push_str(&format!(" cpu_us_per_op.{name}={:.0}", us / ops.max(1.0)));
        }
    }
    println!("{line}");
    if let Some(e) = first_error {
        return Err(format!("{error_count} operations failed; the first: {e}"));
    }
    if all.is_empty() {
        return Err("no operation completed".into());
    }
    Ok(())
}
