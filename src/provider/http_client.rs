//! The one HTTP client every provider call goes through: no redirects, a timeout, a body cap,
//! and an `error` field in a 2xx body treated as the error it is.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use oauth2::{HttpRequest, HttpResponse};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, USER_AGENT};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use super::ProviderError;

/// The most we read of a provider's answer.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// What went wrong on the wire.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// No answer within `http_timeout_secs`.
    #[error("the provider did not answer in time")]
    Timeout,
    /// Could not connect or the connection broke.
    #[error("the provider could not be reached: {0}")]
    Unreachable(String),
    /// The answer was larger than we read.
    #[error("the provider's answer exceeds {MAX_BODY} bytes")]
    TooLarge,
    /// The request could not be built.
    #[error("bad request to the provider: {0}")]
    Request(String),
}

impl From<HttpError> for ProviderError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Timeout => ProviderError::Timeout,
            other => ProviderError::Unreachable(other.to_string()),
        }
    }
}

/// An answer read in full (up to 1 MiB).
#[derive(Debug)]
#[non_exhaustive]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, read in full.
    pub body: Vec<u8>,
}

impl Answer {
    /// Parses a JSON body, or says what came instead.
    /// `what` names the call in the error, e.g. `"Acme GET /me"`.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ProviderError::BadResponse(format!("{what}: unexpected answer ({e})")))
    }
}

/// The HTTP client of every provider call: it follows no redirects (a provider's answer
/// cannot send our secrets elsewhere), gives up after `http_timeout_secs`, and reads at most
/// 1 MiB of an answer. A provider gets it from [`ProviderContext::http`](super::ProviderContext::http).
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
    /// The provider whose calls these are: the `provider` label of their latency metric.
    provider: std::sync::Arc<str>,
}

impl HttpClient {
    pub(crate) fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        let mut headers = HeaderMap::new();
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("rocket_social_auth/", env!("CARGO_PKG_VERSION"))),
        );
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .default_headers(headers)
            .build()?;
        Ok(HttpClient {
            inner,
            provider: "".into(),
        })
    }

    /// The same client, its calls measured as `provider`'s.
    pub(crate) fn labelled(&self, provider: &str) -> Self {
        HttpClient {
            inner: self.inner.clone(),
            provider: provider.into(),
        }
    }

    /// A request builder on the shared client.
    /// A GET request to `url`, to finish with headers or a query and [`send`](Self::send).
    pub fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.inner.get(url)
    }

    /// A POST request to `url`, to finish with a form or a body and [`send`](Self::send).
    pub fn post(&self, url: &str) -> reqwest::RequestBuilder {
        self.inner.post(url)
    }

    /// Sends a request built by [`get`](Self::get) or [`post`](Self::post) and reads its
    /// answer (any status) in full, up to 1 MiB.
    ///
    /// Each call's duration is recorded as `social_auth_provider_request_duration_seconds`
    /// with the provider and the URL's path as its `endpoint`.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, HttpError> {
        let request = request.build().map_err(classify)?;
        // The path of a URL from the configuration or the provider's discovery: few distinct
        // values, never a token (those travel in headers and bodies).
        let endpoint = request.url().path().to_owned();
        let started = std::time::Instant::now();
        let answer = self.execute(request).await;
        crate::measure::provider_call(&self.provider, &endpoint, started.elapsed());
        answer
    }

    async fn execute(&self, request: reqwest::Request) -> Result<Answer, HttpError> {
        let mut response = self.inner.execute(request).await.map_err(classify)?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY as u64)
        {
            return Err(HttpError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// The same as [`send`](Self::send) for oauth2's requests, with one correction: a 2xx JSON
    /// body with an `error` field (GitHub's way of failing) becomes a 400 so that oauth2 reads it
    /// as the OAuth error it is.
    async fn send_oauth(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let request =
            reqwest::Request::try_from(request).map_err(|e| HttpError::Request(e.to_string()))?;
        let answer = self
            .send(reqwest::RequestBuilder::from_parts(
                self.inner.clone(),
                request,
            ))
            .await?;
        let mut status = answer.status;
        if status.is_success() && has_error_field(&answer.body) {
            status = StatusCode::BAD_REQUEST;
        }
        let mut response = http::Response::builder().status(status.as_u16());
        if let Some(headers) = response.headers_mut() {
            for (name, value) in &answer.headers {
                if name == CONTENT_TYPE {
                    headers.insert(
                        http::header::CONTENT_TYPE,
                        value
                            .as_bytes()
                            .try_into()
                            .map_err(|_| HttpError::Request("content type".into()))?,
                    );
                }
            }
        }
        response
            .body(answer.body)
            .map_err(|e| HttpError::Request(e.to_string()))
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send_oauth(request))
    }
}

fn has_error_field(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        error: Option<serde_json::Value>,
    }
    serde_json::from_slice::<Probe>(body).is_ok_and(|p| p.error.is_some())
}

fn classify(e: reqwest::Error) -> HttpError {
    if e.is_timeout() {
        HttpError::Timeout
    } else if e.is_builder() {
        HttpError::Request(e.to_string())
    } else {
        // The URL is ours (from the configuration); no token is ever in it.
        HttpError::Unreachable(e.without_url().to_string())
    }
}
