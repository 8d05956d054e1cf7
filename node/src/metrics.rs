//! Prometheus metrics: the process's recorder (the `metrics` facade, rendered by
//! `metrics-exporter-prometheus`) and `GET /metrics` on a listener of its own, apart from the
//! mutual-TLS APIs. Counters and histograms are recorded where things happen; gauges that are
//! a count in the database (signals by state, queues) are read when Prometheus scrapes, by the
//! node's collector. Metric names and labels never hold a BSN, a name or a contact.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// Seconds: from a quarter millisecond to half a minute.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];
/// Events per hub batch.
const BATCH_BUCKETS: [f64; 9] = [1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0];

/// Gauges read when Prometheus scrapes.
pub type Collect = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The process's recorder, installed on first use; every node of the process (tests run
/// several) records into it, the region nodes' figures told apart by their `region` label.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full("vix_hub_batch_events".into()),
                    &BATCH_BUCKETS,
                )
            });
        match builder.map(PrometheusBuilder::build_recorder) {
            Ok(recorder) => {
                let handle = recorder.handle();
                // Fails only if another recorder was installed first; then this one's figures
                // are simply not recorded.
                if metrics::set_global_recorder(recorder).is_err() {
                    tracing::warn!("another metrics recorder is installed; vix records nothing");
                }
                describe();
                handle
            }
            // The buckets are constants: a build error is a programming error, not a state.
            Err(error) => {
                tracing::error!(%error, "metrics recorder not built");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}

/// Describes the metrics for Prometheus's `# HELP` lines.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "vix_registrations_total",
        "RegisterSignal calls by outcome: created, replayed, already_active"
    );
    describe_counter!(
        "vix_notices_total",
        "Notices found for this region, by scope (local, cross_region) and match type"
    );
    describe_gauge!("vix_signals", "Signals stored, by state");
    describe_gauge!("vix_outbox_events", "Events waiting for the hub");
    describe_gauge!(
        "vix_forwarder_lag_seconds",
        "Age of the oldest event waiting for the hub"
    );
    describe_gauge!("vix_dead_letters", "Dead letters waiting for an operator");
    describe_gauge!("vix_email_queue", "Notice e-mails waiting to be sent");
    describe_counter!("vix_emails_sent_total", "Notice e-mails the relay accepted");
    describe_counter!(
        "vix_email_failures_total",
        "Notice e-mails the relay refused or could not be reached for (tried again later)"
    );
    describe_histogram!(
        "vix_rpc_duration_seconds",
        metrics::Unit::Seconds,
        "gRPC calls by service, method and status code"
    );
    describe_gauge!(
        "vix_crl_next_update_timestamp_seconds",
        "When each loaded CRL's nextUpdate is (Unix time); past it every client is refused"
    );
    describe_counter!(
        "vix_hub_notices_total",
        "Notices the hub found between regions"
    );
    describe_histogram!(
        "vix_scrape_collect_seconds",
        metrics::Unit::Seconds,
        "Time a scrape took to read the gauges from the database"
    );
    describe_histogram!(
        "vix_hub_batch_events",
        "Events per batch a region submitted to the hub"
    );
    describe_histogram!(
        "vix_hub_batch_apply_seconds",
        metrics::Unit::Seconds,
        "Time the hub took to apply a region's batch"
    );
}

/// Serves `GET /metrics` on `listener` until `shutdown`: each scrape runs `collect`, then
/// renders every metric in Prometheus's text format. Anything else is 404.
pub async fn serve(
    listener: TcpListener,
    collect: Collect,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let collect = Arc::clone(&collect);
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let collect = Arc::clone(&collect);
                async move { Ok::<_, Infallible>(answer(request, collect).await) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "metrics connection ended");
            }
        });
    }
}

async fn answer(request: Request<Incoming>, collect: Collect) -> Response<Full<Bytes>> {
    if request.method() != Method::GET || request.uri().path() != "/metrics" {
        let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    }
    let started = Instant::now();
    collect().await;
    metrics::histogram!("vix_scrape_collect_seconds").record(started.elapsed().as_secs_f64());
    let mut response = Response::new(Full::new(Bytes::from(handle().render())));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// Records each gRPC call's duration (until its answer begins) by service, method and status
/// code in `vix_rpc_duration_seconds`. A call of a method no service has is recorded as method
/// `unimplemented`, so a caller cannot make up label values.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

type Answer<R, E> = Pin<Box<dyn Future<Output = Result<Response<R>, E>> + Send>>;

impl<S, B, R> tower::Service<Request<B>> for RpcMetrics<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Answer<R, S::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            // A failed call is answered in the headers alone (trailers-only); an answered one
            // carries its status in the trailers, after the body: OK as far as headers go.
            let code = tonic::Status::from_header_map(response.headers())
                .map_or(tonic::Code::Ok, |status| status.code());
            let (service, method) = path
                .trim_start_matches('/')
                .split_once('/')
                .unwrap_or(("", ""));
            let (service, method) = if code == tonic::Code::Unimplemented {
                ("unimplemented".to_owned(), "unimplemented".to_owned())
            } else {
                (service.to_owned(), method.to_owned())
            };
            metrics::histogram!(
                "vix_rpc_duration_seconds",
                "service" => service,
                "method" => method,
                "code" => format!("{code:?}"),
            )
            .record(started.elapsed().as_secs_f64());
            Ok(response)
        })
    }
}
