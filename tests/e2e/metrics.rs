//! Prometheus's `GET /metrics` on a region node, scraped over plain HTTP on its own port and
//! parsed: the database's gauges as they stand, the counters and the RPC latency histogram.
//! Counters are the process's (other tests' nodes count into them too), so they are checked
//! as lower bounds; the gauges are read from this node's database at the scrape.

use std::collections::HashMap;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vix_tests::spawn_region_serving_metrics;

const YOUTH: &str = "999996046";

/// The status line and body of `GET path` on `addr`.
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: vix\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// Samples of the text format: `name{label="value",…}` (labels sorted) to value.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("a value in {line:?}"));
        let key = match series.split_once('{') {
            None => series.to_owned(),
            Some((name, labels)) => {
                let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                labels.sort_unstable();
                format!("{name}{{{}}}", labels.join(","))
            }
        };
        samples.insert(key, value);
    }
    samples
}

#[tokio::test]
async fn metrics_are_scraped_and_parsed() {
    let (region, metrics) = spawn_region_serving_metrics("north").await;
    region.register_bsn("jgz-north", YOUTH, "metrics-1").await;
    region
        .register_bsn("school-north", YOUTH, "metrics-2")
        .await;
    region
        .register_bsn("school-north", YOUTH, "metrics-2")
        .await;

    let (status, body) = get(metrics, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let samples = parse(&body);
    let sample = |key: &str| {
        *samples
            .get(key)
            .unwrap_or_else(|| panic!("{key} in\n{body}"))
    };
    // Gauges: this node's database at the scrape. No hub and no SMTP relay, so the events and
    // e-mails wait.
    assert_eq!(sample(r#"vix_signals{region="north",state="active"}"#), 2.0);
    assert_eq!(
        sample(r#"vix_signals{region="north",state="inactive"}"#),
        0.0
    );
    assert_eq!(sample(r#"vix_outbox_events{region="north"}"#), 2.0);
    assert_eq!(sample(r#"vix_email_queue{region="north"}"#), 2.0);
    assert_eq!(sample(r#"vix_dead_letters{region="north"}"#), 0.0);
    assert!(sample(r#"vix_forwarder_lag_seconds{region="north"}"#) >= 0.0);
    // Counters and the latency histogram.
    assert!(sample(r#"vix_registrations_total{outcome="created",region="north"}"#) >= 2.0);
    assert!(sample(r#"vix_registrations_total{outcome="replayed",region="north"}"#) >= 1.0);
    assert!(sample(r#"vix_notices_total{region="north",scope="local"}"#) >= 2.0);
    assert!(
        sample(
            r#"vix_rpc_duration_seconds_count{code="Ok",method="RegisterSignal",service="vix.region.v1.RegionService"}"#
        ) >= 3.0
    );
    assert!(body.contains("# HELP vix_registrations_total"));
    // The CRLs' nextUpdate: a week after the dev PKI wrote them, after the test's day.
    let crl_next_update = samples
        .iter()
        .find(|(key, _)| key.starts_with("vix_crl_next_update_timestamp_seconds{"))
        .map(|(_, value)| *value)
        .unwrap_or_else(|| panic!("a CRL's nextUpdate in\n{body}"));
    let today = vix_node::domain::Clock::now(region.clock.as_ref()).as_second() as f64;
    assert!(crl_next_update > today, "{crl_next_update} after {today}");
    // No contact, BSN or name in any series.
    for secret in [YOUTH, "example.nl", "Professional of"] {
        assert!(!body.contains(secret), "{secret} in the metrics");
    }

    let (status, _) = get(metrics, "/other").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    region.stop().await;
}
