//! Integration tests: the crate used the way an app uses it. One binary, many modules. The
//! tests that run the demo binary are the demo's: `demo/tests/it/`.

mod common;

mod apple;
mod audit;
mod config;
mod custom_provider;
mod discord;
mod discovery;
mod facebook;
mod fakes;
mod faults;
mod flows;
mod fuzz;
mod github;
mod gitlab;
mod guard;
mod hardening;
mod linkedin;
mod metrics;
mod microsoft;
mod oauth2;
mod oidc;
mod ratelimit;
mod refresh;
mod security;
mod seed;
mod slack;
mod store;
mod token_auth;
mod x;
