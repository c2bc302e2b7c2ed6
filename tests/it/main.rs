//! Integration tests: the crate used the way an app uses it. One binary, many modules. The
//! tests that run the demo binary are the demo's: `demo/tests/it/`.

mod common;

mod config;
mod discovery;
mod facebook;
mod faults;
mod flows;
mod fuzz;
mod github;
mod guard;
mod hardening;
mod oidc;
mod ratelimit;
mod refresh;
mod security;
mod seed;
mod store;
