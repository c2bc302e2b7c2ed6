//! A user's app with rocket_social_auth's default features. It builds against the public API
//! and its re-exports (`sqlx`, `serde_json`, `url`), with a provider of its own registered on
//! the fairing; run, it checks that its provider's table is checked by its settings, and that a
//! `kind = "dev"` provider fails the launch (the `dev` feature is off) without a panic.
//! `.ci/run` reads the log for the key, `social_auth.providers.dev`.

use std::process::ExitCode;

use rocket::error::ErrorKind;
use rocket::figment::providers::{Format, Toml};
use rocket::figment::Figment;
use rocket_social_auth::provider::{
    FlowParams, OAuth2Client, OAuth2Settings, Profile, Provider, ProviderContext, ProviderError,
    TokenSet,
};
use rocket_social_auth::serde_json::{json, Map, Value};
use rocket_social_auth::{sqlx, url, ConfigError, Policy, Secret, SignIn, SocialAuthFairing, User};

/// A provider of the app's own, and its table's settings.
struct Acme(OAuth2Client);

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AcmeSettings {
    client_id: String,
    client_secret: Secret,
}

fn acme(settings: AcmeSettings, ctx: &ProviderContext<'_>) -> Result<Acme, ConfigError> {
    let oauth = OAuth2Settings::new(
        settings.client_id,
        settings.client_secret,
        ctx.url("authorize_url", "https://acme.example/authorize")?,
        ctx.url("token_url", "https://acme.example/token")?,
        ctx.callback_url().clone(),
    );
    Ok(Acme(OAuth2Client::new(oauth, ctx.http().clone())))
}

#[rocket::async_trait]
impl Provider for Acme {
    async fn authorize_url(&self, flow: &FlowParams<'_>) -> Result<url::Url, ProviderError> {
        Ok(self.0.authorize_url(flow, &[]))
    }
    async fn exchange_code(
        &self,
        code: &str,
        flow: &FlowParams<'_>,
    ) -> Result<TokenSet, ProviderError> {
        self.0.exchange_code(code, flow).await
    }
    async fn profile(
        &self,
        _tokens: &TokenSet,
        _flow: &FlowParams<'_>,
    ) -> Result<Profile, ProviderError> {
        Ok(Profile::new("1", json!({"id": "1"})))
    }
}

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

/// The configuration with the dev table, and `extra`.
fn figment(extra: &str) -> Figment {
    Figment::from(rocket::Config::debug_default()).merge(Toml::string(&format!(
        r#"
[databases.social_auth]
url = "sqlite::memory:"
[social_auth]
public_url = "http://127.0.0.1:8000"
[social_auth.jwt]
secret = "downstream-secret-0123456789abcdef0123"
role = "web_user"
{extra}"#
    )))
}

#[rocket::main]
async fn main() -> ExitCode {
    let ours = SocialAuthFairing::new().provider_kind("acme", acme);
    let table = "[social_auth.providers.acme]\nclient_id = \"a\"\nclient_secret = \"b\"\n";
    if let Err(e) = ours.check_config(&figment(table)) {
        eprintln!("downstream: our own provider's table was refused: {e}");
        return ExitCode::FAILURE;
    }
    match ours.check_config(&figment(&format!("{table}scope = \"x\"\n"))) {
        Err(e) if e.to_string().contains("`social_auth.providers.acme.scope`") => {
            println!("downstream: our own provider's settings refuse an unknown key: {e}")
        }
        other => {
            eprintln!("downstream: an unknown key of our provider was not named: {other:?}");
            return ExitCode::FAILURE;
        }
    }
    let figment = figment("[social_auth.providers.dev]\nkind = \"dev\"\n");
    let app = rocket::custom(figment).attach(ours.policy(Staff));
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
