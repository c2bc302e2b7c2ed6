//! Integration tests: the crate used the way an app uses it. One binary, many modules.

mod common;

mod config;
mod demo;
mod discovery;
mod facebook;
mod faults;
mod flows;
mod fuzz;
mod github;
mod guard;
mod hardening;
mod instances;
mod oidc;
mod ratelimit;
mod refresh;
mod security;
mod store;
