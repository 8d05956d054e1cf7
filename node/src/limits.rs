//! Bounds on what one peer may ask of a server: the largest message per service, the calls one
//! connection may carry at once, and how long a call may take to answer. Without them one
//! client could hold a node's memory (a huge message), its tasks (thousands of streams on one
//! connection) or its connections (a call that never answers).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tonic::Status;
use tonic::codegen::http;

/// The region API's largest request: a registration is about 1 KiB (contact fields are bounded),
/// so 64 KiB leaves room without letting one message cost much.
pub const REGION_REQUEST_MAX_BYTES: usize = 64 * 1024;
/// The region API's largest response: a page of 500 matches with contacts is well under 1 MiB.
pub const REGION_RESPONSE_MAX_BYTES: usize = 4 * 1024 * 1024;
/// The rights API's largest request: an erasure order names at most 100 signal ids.
pub const RIGHTS_REQUEST_MAX_BYTES: usize = 64 * 1024;
/// The rights API's largest response: an export page of 500 signals, each with its notices.
pub const RIGHTS_RESPONSE_MAX_BYTES: usize = 16 * 1024 * 1024;
/// The federation API's largest request: a batch of at most 500 events of about 1 KiB each.
pub const FEDERATION_REQUEST_MAX_BYTES: usize = 2 * 1024 * 1024;
/// The federation API's largest response: one notice-log entry, or a batch's counts.
pub const FEDERATION_RESPONSE_MAX_BYTES: usize = 1024 * 1024;
/// An evaluation call of the pseudonym service: its largest batch of elements, framed.
pub const PSEUDONYM_REQUEST_MAX_BYTES: usize = 64 * 1024;
/// Its answer: every element under every live key version.
pub const PSEUDONYM_RESPONSE_MAX_BYTES: usize = 256 * 1024;

/// Per-connection and per-call bounds of a server (`[region.limits]`, `[hub.limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// Calls (HTTP/2 streams) one connection may have open at once; the client holds back
    /// more until one ends. The hub's notice stream counts as one while it is open.
    pub max_concurrent_streams: u32,
    /// How long a call may take until its answer begins; then it ends with DEADLINE_EXCEEDED.
    /// A server stream (the hub's notice stream) is bounded only until its first message is
    /// ready: its later messages may follow for as long as the stream stays open.
    pub request_timeout_ms: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 64,
            request_timeout_ms: 30_000,
        }
    }
}

impl ServerLimits {
    /// A server builder with these bounds, on top of `server`.
    pub fn apply(
        &self,
        server: tonic::transport::Server,
    ) -> tonic::transport::Server<
        tower::layer::util::Stack<BoundsLayer, tower::layer::util::Identity>,
    > {
        server
            .max_concurrent_streams(self.max_concurrent_streams)
            .layer(BoundsLayer {
                timeout: Duration::from_millis(self.request_timeout_ms),
            })
    }
}

/// Bounds each call: ends it with DEADLINE_EXCEEDED when its answer has not begun within the
/// timeout, and reports a request message above the service's limit as RESOURCE_EXHAUSTED.
///
/// Not tonic's `Server::timeout`: that one ends a call with CANCELLED, which tells the client
/// nothing about why. Like tonic's, it bounds the response future only (until the headers), so
/// a long-lived server stream is not cut.
#[derive(Debug, Clone, Copy)]
pub struct BoundsLayer {
    timeout: Duration,
}

impl<S> tower::Layer<S> for BoundsLayer {
    type Service = Bounded<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bounded {
            inner,
            timeout: self.timeout,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Bounded<S> {
    inner: S,
    timeout: Duration,
}

type BoxedResponse<E> =
    Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Bounded<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxedResponse<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answer = self.inner.call(request);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(mut response)) => {
                    too_large_as_resource_exhausted(response.headers_mut());
                    Ok(response)
                }
                Ok(Err(error)) => Err(error),
                Err(_) => {
                    tracing::warn!(?timeout, "a call did not answer within the request timeout");
                    Ok(Status::deadline_exceeded(format!(
                        "no answer within the request timeout of {} ms",
                        timeout.as_millis()
                    ))
                    .into_http())
                }
            }
        })
    }
}

/// tonic refuses a request message above `max_decoding_message_size` with OUT_OF_RANGE, a code
/// meant for a value outside a valid range; gRPC's own implementations use RESOURCE_EXHAUSTED
/// for a message too large, which tells a client that retrying the same message is useless. A
/// refused unary request is answered in the headers alone (trailers-only), which is where this
/// looks.
fn too_large_as_resource_exhausted(headers: &mut http::HeaderMap) {
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    if status.code() != tonic::Code::OutOfRange
        || !status
            .message()
            .contains("decoded message length too large")
    {
        return;
    }
    let replaced = Status::resource_exhausted(format!(
        "the request message is too large for this service: {}",
        status.message()
    ));
    if replaced.add_header(headers).is_err() {
        tracing::warn!("could not rewrite a too-large message status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_too_large_request_becomes_resource_exhausted() {
        let mut headers = http::HeaderMap::new();
        Status::out_of_range(
            "Error, decoded message length too large: found 70000 bytes, the limit is: 65536 bytes",
        )
        .add_header(&mut headers)
        .unwrap();
        too_large_as_resource_exhausted(&mut headers);
        let status = Status::from_header_map(&headers).unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("the limit is: 65536 bytes"));
    }

    #[test]
    fn other_statuses_are_left_alone() {
        for status in [
            Status::out_of_range("page beyond the end"),
            Status::invalid_argument("decoded message length too large"),
        ] {
            let mut headers = http::HeaderMap::new();
            status.add_header(&mut headers).unwrap();
            too_large_as_resource_exhausted(&mut headers);
            let after = Status::from_header_map(&headers).unwrap();
            assert_eq!(after.code(), status.code());
        }
        let mut headers = http::HeaderMap::new();
        too_large_as_resource_exhausted(&mut headers);
        assert!(headers.is_empty());
    }
}
