//! A fake Sign in with Apple on its own site for the interoperability tests (`interop/apple.mjs`):
//! [`FakeOidc::apple`] on `127.0.0.1` at a free port, its user John Appleseed, whose authorize
//! page auto-submits the `form_post` to the app's callback, cross-site.
//!
//! ```text
//! fake_apple <client_id> <team_id>   prints one JSON line {issuer, key_id, private_key}
//!                                    (the .p8 to configure the app with); runs until killed
//! ```
//!
//! An example, so that it is built with the `testing` feature and never in a library user's
//! build: `cargo build --example fake_apple`.

use std::io::Write;

use rocket_social_auth::testing::{FakeOidc, FakeOidcUser};

#[rocket::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [client_id, team_id] = args.as_slice() else {
        eprintln!("usage: fake_apple <client_id> <team_id>");
        return std::process::ExitCode::from(2);
    };
    let fake = FakeOidc::apple(client_id, team_id);
    fake.sign_in_as(FakeOidcUser::new(
        "000930.4191829df9e342f1947b54f850ba1733.1224",
        "John Appleseed",
        "x7kq2@privaterelay.appleid.com",
    ));
    let (Some(key_id), Some(private_key)) = (
        fake.apple_key_id().map(str::to_owned),
        fake.apple_private_key_pem().map(str::to_owned),
    ) else {
        eprintln!("fake_apple: the fake has no signing key");
        return std::process::ExitCode::FAILURE;
    };
    let server = match fake.spawn().await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("fake_apple: cannot serve: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let line = serde_json::json!({
        "issuer": server.url(),
        "key_id": key_id,
        "private_key": private_key,
    });
    let mut out = std::io::stdout();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        return std::process::ExitCode::FAILURE;
    }
    // Until the harness kills it.
    std::future::pending::<()>().await;
    std::process::ExitCode::SUCCESS
}
