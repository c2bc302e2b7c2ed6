//! The demo app: `cargo run` at the repository root, then open <http://127.0.0.1:8000> and sign
//! in with the development provider. Everything reusable lives in the library; this file only
//! wires it.

use std::process::ExitCode;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rocket::http::{ContentType, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket::serde::json::{json, Json, Value};
use rocket::{catch, catchers, get, routes, Build, Rocket, State};
use rocket_db_pools::Database;
use rocket_dyn_templates::{context, Template};
use rocket_social_auth::serde_json;
use rocket_social_auth::{AuthDb, AuthService, AuthUser, SocialAuth, SocialAuthFairing};
use serde::Serialize;

/// The home page: sign-in buttons, or who is signed in (the account page) with their
/// security log, the last events of their account.
#[get("/")]
async fn index(auth: SocialAuth, service: &State<AuthService>) -> Template {
    let providers: Vec<Value> = service
        .providers()
        .map(|name| {
            let (label, color) = brand(name);
            let initial = label
                .chars()
                .next()
                .unwrap_or('?')
                .to_uppercase()
                .to_string();
            json!({"name": name, "label": label, "initial": initial, "color": color,
                   "url": service.login_path(name)})
        })
        .collect();
    let base = service.config().base.trim_end_matches('/').to_owned();
    let events = match auth.claims().and_then(|c| c.user_id()) {
        Some(user_id) => service.recent_events(user_id).await.unwrap_or_default(),
        None => Vec::new(),
    };
    Template::render(
        "index",
        context! {
            user: auth.claims(),
            provider: auth.provider(),
            providers,
            events,
            logout_url: format!("{base}/logout"),
        },
    )
}

/// How the sign-in page shows provider `name`: a label and the colour of its initial's badge
/// (no logo files: the page loads no external asset). Unknown names show as they are.
fn brand(name: &str) -> (String, &'static str) {
    let known = match name {
        "github" => Some(("GitHub", "#24292f")),
        "google" => Some(("Google", "#4285f4")),
        "facebook" => Some(("Facebook", "#1877f2")),
        "discord" => Some(("Discord", "#5865f2")),
        "x" => Some(("X", "#000000")),
        "apple" => Some(("Apple", "#000000")),
        "microsoft" => Some(("Microsoft", "#2f2f2f")),
        "gitlab" => Some(("GitLab", "#fc6d26")),
        "linkedin" => Some(("LinkedIn", "#0a66c2")),
        "slack" => Some(("Slack", "#4a154b")),
        _ => None,
    };
    match known {
        Some((label, color)) => (label.to_owned(), color),
        None => (name.to_owned(), "#6b7280"),
    }
}

/// The body of `/me`: serialized straight from the claims (the keys in the order the former
/// `json!` map gave them, so the bytes are the same).
#[derive(Serialize)]
struct Me<'a> {
    avatar_url: &'a Option<String>,
    email: &'a Option<String>,
    id: Id<'a>,
    name: &'a Option<String>,
    provider: &'a Option<String>,
}

/// A social user's numeric id, else the `sub` as it is.
#[derive(Serialize)]
#[serde(untagged)]
enum Id<'a> {
    Number(i64),
    Text(&'a str),
}

/// The signed-in user, as JSON; 401 otherwise.
#[get("/me")]
fn me(user: AuthUser) -> Result<(ContentType, String), Status> {
    let me = Me {
        avatar_url: &user.avatar_url,
        email: &user.email,
        id: user.user_id().map_or(Id::Text(&user.sub), Id::Number),
        name: &user.name,
        provider: &user.provider,
    };
    let body = serde_json::to_string(&me).map_err(|_| Status::InternalServerError)?;
    Ok((ContentType::JSON, body))
}

/// Liveness: no guard, no database.
#[get("/health")]
fn health() -> &'static str {
    "ok"
}

/// Readiness: 200 when the database answers, 503 when it does not.
#[get("/ready")]
async fn ready(service: &State<AuthService>) -> (Status, &'static str) {
    if service.ready().await {
        (Status::Ok, "ready")
    } else {
        (Status::ServiceUnavailable, "database unavailable")
    }
}

/// An answer in Prometheus's text format, `text/plain; version=0.0.4`.
struct Prometheus(String);

impl<'r> Responder<'r, 'static> for Prometheus {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        Response::build()
            .raw_header("Content-Type", "text/plain; version=0.0.4")
            .sized_body(self.0.len(), std::io::Cursor::new(self.0))
            .ok()
    }
}

/// The library's metrics (and any the app records) in Prometheus's text format. Public here
/// for the demo: in production keep it on an internal port or behind the network's rules.
#[get("/metrics")]
fn metrics(handle: &State<PrometheusHandle>) -> Prometheus {
    Prometheus(handle.render())
}

/// The Prometheus recorder: latencies (`*_seconds`) as histograms with these buckets, not
/// summaries. Installed once per process.
fn prometheus() -> Option<PrometheusHandle> {
    const BUCKETS: [f64; 12] = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| eprintln!("warning: no /metrics: {e}"))
        .ok()
}

#[catch(401)]
fn unauthorized() -> Json<Value> {
    Json(json!({"error": "unauthorized", "status": 401}))
}

fn rocket() -> Rocket<Build> {
    let app = rocket::build()
        .attach(SocialAuthFairing::new())
        .attach(Template::fairing())
        .mount("/", routes![index, me, health, ready])
        .register("/", catchers![unauthorized]);
    match prometheus() {
        Some(handle) => app.manage(handle).mount("/", routes![metrics]),
        None => app,
    }
}

/// `cargo run -- reencrypt`: rewrites every stored provider token under the first of
/// `token_keys`. Safe while the app serves; run it again to resume.
async fn reencrypt() -> ExitCode {
    match rocket_social_auth::reencrypt(&rocket::Config::figment()).await {
        Ok(report) => {
            println!(
                "reencrypt: {} rows, {} values rewritten, {} already current, {} changed meanwhile (left to the app), {} undecryptable",
                report.rows, report.rewritten, report.current, report.skipped, report.undecryptable
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            let mut message = format!("error: reencrypt: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                message.push_str(&format!(": {c}"));
                cause = c.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

#[rocket::main]
async fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    match command.as_deref() {
        None => match rocket().launch().await {
            Ok(rocket) => {
                // Every request has finished: disconnect from the database cleanly.
                if let Some(db) = AuthDb::fetch(&rocket) {
                    db.close().await;
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                let reason = e.pretty_print();
                eprintln!("error: {reason}");
                ExitCode::FAILURE
            }
        },
        Some("reencrypt") => reencrypt().await,
        Some(other) => {
            eprintln!(
                "error: unknown command `{other}`; run without arguments to serve, or `reencrypt`"
            );
            ExitCode::FAILURE
        }
    }
}
