//! Time from `RegisterSignal` at one region to the notice stored at the other region, through
//! forwarder, hub matcher and notice stream, over real mutual TLS on loopback (hub and two
//! regions in this process, SQLite with `synchronous=FULL`).
//!
//! Baseline, measured in the same run: a local match, whose notices are stored before
//! `RegisterSignal` returns. The figure to watch is the ratio.
//!
//! `cargo bench -p vix-tests --bench federation_latency` (`VIX_BENCH_MATCHES`, default 1000).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Duration;

use tokio::time::Instant;
use vix_protocol::region::v1 as pb;
use vix_tests::{TestRegion, eventually, spawn_hub, spawn_linked_region};

fn request(org: &str, youth: &str) -> pb::RegisterSignalRequest {
    pb::RegisterSignalRequest {
        request_id: format!("{org}-{youth}"),
        youth: Some(pb::register_signal_request::Youth::AltYouthId(
            pb::AltYouthId {
                issuer: "bench".into(),
                number: youth.into(),
                birth_date: "2020-06-01".into(),
            },
        )),
        professional: Some(pb::ProfessionalContact {
            professional_id: "p1".into(),
            name: format!("Professional of {org}"),
            email: format!("p1@{org}.example.nl"),
            phone: String::new(),
        }),
        planned_removal_date: String::new(),
        // Under 12: the parents were told.
        informing: Some(pb::InformingRecord {
            record: Some(pb::informing_record::Record::Informed(pb::Informed {
                parents: true,
                youth: false,
                informed_on: "2026-11-01".into(),
            })),
        }),
    }
}

async fn register(region: &TestRegion, org: &str, youth: &str) {
    region
        .client(org)
        .register_signal(request(org, youth))
        .await
        .unwrap();
}

struct Summary {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

fn summarise(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[index]
    };
    let total: Duration = samples.iter().sum();
    Summary {
        p50: at(0.50),
        p99: at(0.99),
        mean: total / u32::try_from(samples.len()).unwrap(),
    }
}

#[tokio::main]
async fn main() {
    let matches: usize = std::env::var("VIX_BENCH_MATCHES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;

    // Set-up, untimed: the other party of every match, already known where it is needed.
    for n in 0..matches {
        register(&south, "vt-south", &format!("X{n}")).await;
        register(&north, "school-north", &format!("L{n}")).await;
    }
    eventually("the south signals at the hub", || async {
        (south.row_counts().await["outbox"] == 0).then_some(())
    })
    .await;

    // Baseline: a local match is stored when RegisterSignal returns.
    let mut jgz = north.client("jgz-north");
    let mut local = Vec::with_capacity(matches);
    for n in 0..matches {
        let started = Instant::now();
        jgz.register_signal(request("jgz-north", &format!("L{n}")))
            .await
            .unwrap();
        local.push(started.elapsed());
    }

    // Cross-region: from RegisterSignal at north until south has stored its notice.
    let mut stored = south.context.notices_stored.subscribe();
    let before = *stored.borrow_and_update();
    let mut cross = Vec::with_capacity(matches);
    for n in 0..matches {
        let started = Instant::now();
        jgz.register_signal(request("jgz-north", &format!("X{n}")))
            .await
            .unwrap();
        let target = before + u64::try_from(n).unwrap() + 1;
        while *stored.borrow_and_update() < target {
            tokio::time::timeout(Duration::from_secs(30), stored.changed())
                .await
                .expect("notice stored within 30 s")
                .unwrap();
        }
        cross.push(started.elapsed());
    }

    let local = summarise(local);
    let cross = summarise(cross);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "federation_latency: {matches} matches, hub + 2 regions in one process, loopback mTLS, SQLite synchronous=FULL"
    );
    println!(
        "  local match (baseline)   p50 {:7.2} ms  p99 {:7.2} ms  mean {:7.2} ms",
        ms(local.p50),
        ms(local.p99),
        ms(local.mean)
    );
    println!(
        "  cross-region to stored   p50 {:7.2} ms  p99 {:7.2} ms  mean {:7.2} ms",
        ms(cross.p50),
        ms(cross.p99),
        ms(cross.mean)
    );
    println!(
        "  ratio cross/local        p50 {:7.2}x    p99 {:7.2}x",
        ms(cross.p50) / ms(local.p50),
        ms(cross.p99) / ms(local.p99)
    );
}
