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
        "[social_auth.providers.gitlab]\nclient_id = \"a\"\nclient_secret = \"b\"\n",
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
