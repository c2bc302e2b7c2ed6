//! Configuration errors stop launch with a message naming the key, and never panic. (The
//! same through the demo binary: `demo/tests/it/config.rs`.)

use rocket::error::ErrorKind;
use rocket::figment::providers::{Format, Toml};

use crate::common::*;

async fn launch_error(extra: &str, profile: Option<&str>) -> Vec<String> {
    let db = TestDb::sqlite().await;
    let mut figment = figment(&db.url, "http://127.0.0.1:9", "").merge(Toml::string(extra));
    if let Some(profile) = profile {
        figment = figment.select(profile);
    }
    let error = rocket(figment)
        .ignite()
        .await
        .expect_err("launch must fail");
    match error.kind() {
        ErrorKind::FailedFairings(failures) => {
            failures.iter().map(|f| f.name.to_string()).collect()
        }
        other => panic!("unexpected launch error: {other}"),
    }
}

#[rocket::async_test]
async fn bad_configuration_fails_the_fairing() {
    let cases = [
        "[social_auth.jwt]\nalgorithm = \"XS256\"\n",
        "[social_auth.jwt]\nsecret = \"short\"\n",
        "[social_auth.jwt]\nrole = \"\"\n",
        "[social_auth.jwt]\nexp_minutes = 0\n",
        "[social_auth.providers.github]\ntoken_url = \"http://github.example/token\"\n",
        "[social_auth.providers.github]\napi_url = \"ftp://127.0.0.1/\"\n",
        "[social_auth.providers.session]\nkind = \"github\"\nclient_id = \"a\"\nclient_secret = \"b\"\n",
        "[social_auth.providers.logout]\nkind = \"github\"\nclient_id = \"a\"\nclient_secret = \"b\"\n",
        "[social_auth.providers.acme]\nclient_id = \"a\"\nclient_secret = \"b\"\n",
        "[social_auth.providers.github]\nclient_secret = \"\"\n",
        "[social_auth]\npublic_url = \"not a url\"\n",
        "[social_auth]\nbase = \"auth\"\n",
        "[social_auth]\nunknown_key = 1\n",
        "[social_auth]\nhttp_timeout_secs = \"ten\"\n",
    ];
    for extra in cases {
        assert_eq!(launch_error(extra, None).await, ["Social Auth"], "{extra}");
    }
}

#[rocket::async_test]
async fn dev_provider_is_refused_in_release() {
    let dev = "[social_auth.providers.dev]\nkind = \"dev\"\n";
    assert_eq!(launch_error(dev, Some("release")).await, ["Social Auth"]);
    // The same configuration launches in debug.
    let db = TestDb::sqlite().await;
    let figment = figment(&db.url, "http://127.0.0.1:9", dev);
    assert!(rocket(figment).ignite().await.is_ok());
}

/// Each kind reads its own keys: a key of another kind, a wrong type, a missing value or an
/// unknown kind is an error naming the key (checked as the launch checks, without launching).
#[rocket::async_test]
async fn provider_tables_are_checked_by_their_kind() {
    let db = TestDb::sqlite().await;
    let gh = "client_id = \"a\"\nclient_secret = \"b\"\n";
    for (extra, key) in [
        ("[social_auth.providers.github]\noffline = true\n".to_owned(), "social_auth.providers.github.offline"),
        (format!("[social_auth.providers.github]\n{gh}graph_url = \"https://graph.facebook.com\"\n"), "social_auth.providers.github.graph_url"),
        (format!("[social_auth.providers.github]\n{gh}scopes = \"read:user\"\n"), "social_auth.providers.github.scopes"),
        ("[social_auth.providers.github]\nclient_secret = \"\"\n".to_owned(), "social_auth.providers.github.client_secret"),
        (format!("[social_auth.providers.facebook]\n{gh}token_url = \"https://graph.facebook.com/x\"\n"), "social_auth.providers.facebook.token_url"),
        (format!("[social_auth.providers.google]\n{gh}api_url = \"https://www.googleapis.com\"\n"), "social_auth.providers.google.api_url"),
        (format!("[social_auth.providers.gitlab]\nkind = \"oidc\"\n{gh}"), "social_auth.providers.gitlab.issuer"),
        (format!("[social_auth.providers.acme]\n{gh}issuer = \"https://id.acme.example\"\n"), "social_auth.providers.acme.kind"),
        (format!("[social_auth.providers.chat]\nkind = \"myspace\"\n{gh}"), "social_auth.providers.chat.kind"),
        (format!("[social_auth.providers.discord]\n{gh}issuer = \"https://discord.com\"\n"), "social_auth.providers.discord.issuer"),
        (format!("[social_auth.providers.discord]\n{gh}scopes = [\"email\"]\n"), "social_auth.providers.discord.scopes"),
        (format!("[social_auth.providers.x]\n{gh}scopes = [\"users.read\"]\n"), "social_auth.providers.x.scopes"),
        (format!("[social_auth.providers.x]\n{gh}token_url = \"http://api.x.example/2/oauth2/token\"\n"), "social_auth.providers.x.token_url"),
        (format!("[social_auth.providers.acme]\nkind = \"oauth2\"\n{gh}authorize_url = \"https://a.example/a\"\ntoken_url = \"https://a.example/t\"\n[social_auth.providers.acme.profile]\nid = \"/id\"\n"), "social_auth.providers.acme.userinfo_url"),
        (format!("[social_auth.providers.acme]\nkind = \"oauth2\"\n{gh}authorize_url = \"https://a.example/a\"\ntoken_url = \"https://a.example/t\"\nuserinfo_url = \"https://a.example/me\"\n[social_auth.providers.acme.profile]\nid = \"/id\"\nlogin = \"/login\"\n"), "social_auth.providers.acme.profile.login"),
        (format!("[social_auth.providers.work]\nkind = \"github\"\n{gh}link_by_verified_email = \"yes\"\n"), "social_auth.providers.work.link_by_verified_email"),
    ] {
        let figment = figment(&db.url, "http://127.0.0.1:9", &extra);
        let error = rocket_social_auth::SocialAuthFairing::new()
            .check_config(&figment)
            .expect_err(&extra);
        assert!(error.to_string().contains(&format!("`{key}`")), "{extra}: {error}");
        assert_eq!(launch_error(&extra, None).await, ["Social Auth"], "{extra}");
    }
    // A table named after its kind needs no `kind`, and another name with one is the same.
    for extra in [
        format!("[social_auth.providers.github]\n{gh}"),
        format!("[social_auth.providers.work]\nkind = \"github\"\n{gh}"),
        format!("[social_auth.providers.accounts]\nkind = \"google\"\n{gh}"),
    ] {
        let figment = figment(&db.url, "http://127.0.0.1:9", &extra);
        let checked = rocket_social_auth::SocialAuthFairing::new().check_config(&figment);
        assert!(checked.is_ok(), "{extra}: {checked:?}");
    }
}
