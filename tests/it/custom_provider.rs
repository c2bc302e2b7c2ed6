//! A provider written outside the crate, against its public API only: its own settings, a kind
//! registered on the fairing, a table in a Rocket.toml file, and a whole sign-in through it.
//!
//! "Acme" is a GitHub-like OAuth 2.0 provider whose profile is only `GET {api}/user`; the
//! fake GitHub of `rocket_social_auth::testing` plays it.

use rocket::async_trait;
use rocket::figment::providers::{Format, Toml};
use rocket::figment::Figment;
use rocket::http::Status;
use rocket::local::asynchronous::Client;
use rocket_social_auth::provider::{
    FlowParams, OAuth2Client, OAuth2Settings, Profile, Provider, ProviderContext, ProviderError,
    TokenAuth, TokenSet,
};
use rocket_social_auth::testing::{FakeGithub, FakeServer, FakeUser};
use rocket_social_auth::{ConfigError, Secret, SocialAuthFairing};
use serde::Deserialize;

use crate::common::*;
use crate::db_tests;

/// The `[default.social_auth.providers.<name>]` table of `kind = "acme"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcmeSettings {
    client_id: Option<String>,
    client_secret: Option<Secret>,
    /// Where Acme is; `https://acme.example` by default.
    url: Option<String>,
}

struct Acme {
    oauth: OAuth2Client,
    user_url: String,
}

fn acme(settings: AcmeSettings, ctx: &ProviderContext<'_>) -> Result<Acme, ConfigError> {
    let root = ctx.url_or("url", settings.url.as_deref(), "https://acme.example")?;
    let root = root.as_str().trim_end_matches('/');
    let oauth = OAuth2Settings::new(
        ctx.required("client_id", settings.client_id)?,
        ctx.required_secret("client_secret", settings.client_secret)?,
        ctx.url("url", &format!("{root}/login/oauth/authorize"))?,
        ctx.url("url", &format!("{root}/login/oauth/access_token"))?,
        ctx.callback_url().clone(),
    )
    .scopes(vec!["read:user".into()])
    .token_auth(TokenAuth::Post);
    Ok(Acme {
        oauth: OAuth2Client::new(oauth, ctx.http().clone()),
        user_url: format!("{root}/user"),
    })
}

#[async_trait]
impl Provider for Acme {
    async fn authorize_url(&self, flow: &FlowParams<'_>) -> Result<url::Url, ProviderError> {
        Ok(self.oauth.authorize_url(flow, &[("allow_signup", "false")]))
    }

    async fn exchange_code(
        &self,
        code: &str,
        flow: &FlowParams<'_>,
    ) -> Result<TokenSet, ProviderError> {
        self.oauth.exchange_code(code, flow).await
    }

    async fn profile(
        &self,
        tokens: &TokenSet,
        _flow: &FlowParams<'_>,
    ) -> Result<Profile, ProviderError> {
        let http = self.oauth.http();
        let answer = http
            .send(
                http.get(&self.user_url)
                    .bearer_auth(tokens.access_token.expose()),
            )
            .await?;
        if !answer.status.is_success() {
            return Err(ProviderError::bad_response(format!(
                "Acme GET /user answered {}",
                answer.status
            )));
        }
        let user: serde_json::Value = answer.json("Acme GET /user")?;
        let id = user["id"]
            .as_u64()
            .ok_or_else(|| ProviderError::bad_response("Acme GET /user: no id"))?;
        let mut profile = Profile::new(id.to_string(), user.clone());
        if let Some(login) = user["login"].as_str() {
            profile = profile.name(login);
        }
        Ok(profile)
    }

    async fn refresh(&self, token: &Secret) -> Result<TokenSet, ProviderError> {
        self.oauth.refresh(token).await
    }
}

/// A Rocket.toml on disk with the test configuration and `table`, read as an app reads it.
fn rocket_toml(db: &TestDb, table: &str) -> (RemovedOnDrop, Figment) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "rocket-social-auth-acme-{}-{n}.toml",
        std::process::id()
    ));
    let toml = format!(
        "[default]\nsecret_key = \"{SECRET_KEY}\"\nlog_level = \"off\"\n\
         [default.databases.social_auth]\nurl = \"{}\"\n\
         [default.social_auth]\ntoken_keys = [\"{TOKEN_KEY}\"]\n\
         [default.social_auth.jwt]\nsecret = \"{JWT_SECRET}\"\nrole = \"web_user\"\n{table}",
        db.url
    );
    std::fs::write(&path, toml).expect("Rocket.toml written");
    let figment = Figment::from(rocket::Config::debug_default())
        .merge(Toml::file(&path).nested())
        .select("debug");
    (RemovedOnDrop(path), figment)
}

/// A file removed when the test ends.
struct RemovedOnDrop(std::path::PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn fake_acme() -> (FakeGithub, FakeServer) {
    let fake = FakeGithub::new("acme-client", "acme-secret");
    fake.sign_in_as(FakeUser::new(4242, "wile-e").email("wile@acme.example"));
    let server = fake.clone().spawn().await.expect("fake Acme starts");
    (fake, server)
}

fn acme_table(name: &str, url: &str) -> String {
    format!(
        "[default.social_auth.providers.{name}]\nkind = \"acme\"\nclient_id = \"acme-client\"\nclient_secret = \"acme-secret\"\nurl = \"{url}\"\n"
    )
}

async fn an_outside_provider_signs_in(db: TestDb) {
    let (_fake, server) = fake_acme().await;
    let (_file, figment) = rocket_toml(&db, &acme_table("roadrunner", server.url()));
    let app = rocket::custom(figment).attach(SocialAuthFairing::new().provider_kind("acme", acme));
    let client = Client::tracked(app).await.expect("the app launches");

    let start = client.get("/auth/roadrunner").dispatch().await;
    assert_eq!(start.status(), Status::SeeOther);
    let location = start.headers().get_one("Location").unwrap().to_owned();
    drop(start);
    let authorize = url::Url::parse(&location).unwrap();
    let query: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    let has = |k: &str, v: &str| query.iter().any(|(a, b)| a == k && b == v);
    assert!(has("allow_signup", "false"), "{location}");
    assert!(has("code_challenge_method", "S256"), "{location}");
    assert!(
        has(
            "redirect_uri",
            "http://127.0.0.1:8000/auth/roadrunner/callback"
        ),
        "{location}"
    );

    let callback = provider_redirect(&location).await;
    let done = client.get(callback).dispatch().await;
    assert_eq!(done.status(), Status::SeeOther, "signed in");
    drop(done);
    let jwt = claims(&session_jwt(&client).await);
    assert_eq!(jwt["provider"], "roadrunner");
    assert_eq!(jwt["name"], "wile-e", "{jwt}");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM social_users WHERE provider = 'roadrunner' AND social_id = '4242'")
            .await,
        1
    );
}

async fn an_outside_provider_table_is_checked(db: TestDb) {
    let (_fake, server) = fake_acme().await;
    let url = server.url();
    for (table, registered, key) in [
        // Its own keys are refused when mistyped…
        (
            format!("{}scope = \"x\"\n", acme_table("acme", url)),
            true,
            "social_auth.providers.acme.scope",
        ),
        // …required when it says so…
        (
            format!(
                "[default.social_auth.providers.acme]\nclient_secret = \"s\"\nurl = \"{url}\"\n"
            ),
            true,
            "social_auth.providers.acme.client_id",
        ),
        // …and its URLs are https but on loopback, through the context's checks.
        (
            acme_table("acme", "http://acme.example"),
            true,
            "social_auth.providers.acme.url",
        ),
        // A kind nobody registered is a launch error, never another kind's defaults.
        (
            acme_table("acme", url),
            false,
            "social_auth.providers.acme.kind",
        ),
    ] {
        let (_file, figment) = rocket_toml(&db, &table);
        let fairing = if registered {
            SocialAuthFairing::new().provider_kind("acme", acme)
        } else {
            SocialAuthFairing::new()
        };
        let error = fairing.check_config(&figment).expect_err(&table);
        assert_eq!(
            error.kind(),
            rocket_social_auth::ErrorKind::Config,
            "{table}"
        );
        assert!(error.to_string().contains(&format!("`{key}`")), "{error}");
        let launch = rocket::custom(figment).attach(fairing).ignite().await;
        assert!(
            matches!(
                launch.map_err(|e| e.kind().to_string()),
                Err(e) if e.contains("fairing")
            ),
            "{table}"
        );
    }
    // The same table launches once its kind is registered.
    let (_file, figment) = rocket_toml(&db, &acme_table("acme", url));
    let fairing = SocialAuthFairing::new().provider_kind("acme", acme);
    assert!(fairing.check_config(&figment).is_ok());
}

db_tests!(
    an_outside_provider_signs_in,
    an_outside_provider_table_is_checked
);
