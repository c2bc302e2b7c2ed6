//! The metrics this crate records through the `metrics` facade (the app installs an exporter,
//! e.g. `metrics-exporter-prometheus`; without one, recording costs next to nothing).

use std::time::Duration;

use metrics::{counter, gauge, histogram};

/// `social_auth_logins_total{provider, outcome}`: finished callbacks (`new`, `returning`,
/// `linked`, or the error code of a refusal).
pub(crate) const LOGINS: &str = "social_auth_logins_total";
/// `social_auth_provider_request_duration_seconds{provider, endpoint}`: each HTTP call to a
/// provider, answered or not (histogram).
pub(crate) const PROVIDER_LATENCY: &str = "social_auth_provider_request_duration_seconds";
/// `social_auth_refreshes_total{provider, outcome}`: `refreshed`, `reauthenticate`, `failed`.
pub(crate) const REFRESHES: &str = "social_auth_refreshes_total";
/// `social_auth_guard_verifications_total{result}`: requests that carried a token:
/// `remembered` (the verified-token cache), `verified` (a full check), `refused`.
pub(crate) const GUARD: &str = "social_auth_guard_verifications_total";
/// `social_auth_revoked_sessions`: the revoked, unexpired sessions an instance knows (gauge).
pub(crate) const REVOKED: &str = "social_auth_revoked_sessions";
/// `social_auth_rate_limited_total`: requests refused by the rate limit (429).
pub(crate) const RATE_LIMITED: &str = "social_auth_rate_limited_total";
/// `social_auth_rate_limit_store_errors_total`: decisions the rate limit's Redis did not make
/// (`on_store_error` decided).
pub(crate) const RATE_LIMIT_STORE_ERRORS: &str = "social_auth_rate_limit_store_errors_total";

pub(crate) fn login(provider: &str, outcome: &'static str) {
    counter!(LOGINS, "provider" => provider.to_owned(), "outcome" => outcome).increment(1);
}

pub(crate) fn provider_call(provider: &str, endpoint: &str, took: Duration) {
    histogram!(PROVIDER_LATENCY, "provider" => provider.to_owned(), "endpoint" => endpoint.to_owned())
        .record(took.as_secs_f64());
}

pub(crate) fn refresh(provider: &str, outcome: &'static str) {
    counter!(REFRESHES, "provider" => provider.to_owned(), "outcome" => outcome).increment(1);
}

/// The guard's verdict on a request that carried a token. Static labels: no allocation.
#[inline]
pub(crate) fn guard(result: &'static str) {
    counter!(GUARD, "result" => result).increment(1);
}

pub(crate) fn revoked_sessions(n: usize) {
    gauge!(REVOKED).set(n as f64);
}

pub(crate) fn rate_limited() {
    counter!(RATE_LIMITED).increment(1);
}

pub(crate) fn rate_limit_store_unavailable() {
    counter!(RATE_LIMIT_STORE_ERRORS).increment(1);
}
