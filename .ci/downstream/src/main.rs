//! A user's app with rocket_social_auth's default features. It builds against the public API
//! and its re-exports (`sqlx`, `serde_json`); run, it checks that a `kind = "dev"` provider
//! fails the launch (the `dev` feature is off) without a panic. `.ci/run` reads the log for
//! the key, `social_auth.providers.dev`.

use std::process::ExitCode;

use rocket::error::ErrorKind;
use rocket::figment::providers::{Format, Toml};
use rocket::figment::Figment;
use rocket_social_auth::serde_json::{json, Map, Value};
use rocket_social_auth::{sqlx, Policy, SignIn, SocialAuthFairing, User};

/// A policy written against the re-exports.
struct Staff;

#[rocket::async_trait]
impl Policy for Staff {
    fn extra_claims(&self, _user: &User, _provider: &str) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("team".into(), json!("staff"));
        claims
    }

    async fn on_user_created(
        &self,
        _conn: &mut sqlx::AnyConnection,
        _user: &User,
        _sign_in: &SignIn<'_>,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

#[rocket::main]
async fn main() -> ExitCode {
    let figment = Figment::from(rocket::Config::debug_default()).merge(Toml::string(
        r#"
[databases.social_auth]
url = "sqlite::memory:"
[social_auth]
public_url = "http://127.0.0.1:8000"
[social_auth.jwt]
secret = "downstream-secret-0123456789abcdef0123"
role = "web_user"
[social_auth.providers.dev]
kind = "dev"
"#,
    ));
    let app = rocket::custom(figment).attach(SocialAuthFairing::new().policy(Staff));
    match app.ignite().await {
        Ok(_) => {
            eprintln!("downstream: a `dev` provider launched without the `dev` feature");
            ExitCode::FAILURE
        }
        Err(e) => match e.kind() {
            ErrorKind::FailedFairings(failed) if failed.iter().any(|f| f.name == "Social Auth") => {
                println!("downstream: the launch failed in the Social Auth fairing, as it must");
                ExitCode::SUCCESS
            }
            other => {
                eprintln!("downstream: unexpected launch error: {other}");
                ExitCode::FAILURE
            }
        },
    }
}
