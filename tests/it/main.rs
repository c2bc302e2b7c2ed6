//! Integration tests: the crate used the way an app uses it. One binary, many modules.

mod common;

mod config;
mod demo;
mod discovery;
mod facebook;
mod faults;
mod fuzz;
mod github;
mod guard;
mod instances;
mod oidc;
mod refresh;
mod security;
mod store;
