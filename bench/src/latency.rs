//! Cross-region notice latency: hub and regions north and south as processes, linked. With a
//! background load of registrations at north, a probe registers youth X at north, then at south,
//! and times from south's `RegisterSignal` until north's `ListMatches` for its signal shows the
//! match. Baseline in the same run: a local match (two organisations of north), timed the same.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use crate::load::{LoadResult, summarise};
use crate::region::{list_matches, register, register_request_for};

/// How often the prober asks north whether the match is there.
const POLL: Duration = Duration::from_millis(2);
/// A probe that takes longer than this fails the run.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct CrossRegion {
    pub(crate) probes: usize,
    pub(crate) background_per_s_target: u32,
    pub(crate) background_per_s: f64,
    pub(crate) local: LoadResult,
    pub(crate) cross: LoadResult,
}

pub(crate) struct Channels {
    pub(crate) north_jgz: Channel,
    pub(crate) north_school: Channel,
    pub(crate) north_background: Channel,
    pub(crate) south_vt: Channel,
}

/// Registers at `background_per_s` a second at north until `stop`; returns how many.
fn background(channel: Channel, per_s: u32, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let done = Arc::new(AtomicU64::new(0));
        let mut tick =
            tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(per_s.max(1))));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            n += 1;
            let channel = channel.clone();
            let done = Arc::clone(&done);
            // Open loop: a slow answer does not hold back the next registration.
            tokio::spawn(async move {
                let request = register_request_for(
                    "school-north",
                    &format!("background-{}-{n}", std::process::id()),
                    "p2",
                );
                if register(channel, request).await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        done.load(Ordering::Relaxed)
    })
}

/// Waits until `signal_id`'s matches at north are not empty. North is another process and
/// offers no watermark to wait on, so the bench polls its API every `POLL`; that interval is
/// the measurement's resolution (2 ms against the ~15 ms measured).
async fn until_matched(north: &Channel, signal_id: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        if !list_matches(north.clone(), signal_id.to_owned())
            .await?
            .is_empty()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("no match for probe signal {signal_id} within {PROBE_TIMEOUT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

pub(crate) async fn run(
    channels: Channels,
    probes: usize,
    background_per_s: u32,
) -> anyhow::Result<CrossRegion> {
    let tag = format!("{}-{}", std::process::id(), fastrand::u32(..));
    // Connect everything first, so the first probe does not time a TLS handshake.
    register(
        channels.north_jgz.clone(),
        register_request_for("jgz-north", &format!("warm-{tag}"), "p1"),
    )
    .await?;
    list_matches(channels.north_jgz.clone(), String::new()).await?;
    register(
        channels.north_school.clone(),
        register_request_for("school-north", &format!("warm-{tag}"), "p2"),
    )
    .await?;
    register(
        channels.south_vt.clone(),
        register_request_for("vt-south", &format!("warm-{tag}"), "p9"),
    )
    .await?;

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let load = background(
        channels.north_background.clone(),
        background_per_s,
        Arc::clone(&stop),
    );

    let mut local = Vec::with_capacity(probes);
    for n in 0..probes {
        let youth = format!("local-{tag}-{n}");
        let signal = register(
            channels.north_jgz.clone(),
            register_request_for("jgz-north", &youth, "p1"),
        )
        .await?;
        let begun = Instant::now();
        register(
            channels.north_school.clone(),
            register_request_for("school-north", &youth, "p2"),
        )
        .await?;
        until_matched(&channels.north_jgz, &signal).await?;
        local.push(begun.elapsed());
    }
    let mut cross = Vec::with_capacity(probes);
    for n in 0..probes {
        let youth = format!("cross-{tag}-{n}");
        let signal = register(
            channels.north_jgz.clone(),
            register_request_for("jgz-north", &youth, "p1"),
        )
        .await?;
        let begun = Instant::now();
        register(
            channels.south_vt.clone(),
            register_request_for("vt-south", &youth, "p9"),
        )
        .await?;
        until_matched(&channels.north_jgz, &signal).await?;
        cross.push(begun.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let registered = load.await?;
    Ok(CrossRegion {
        probes,
        background_per_s_target: background_per_s,
        background_per_s: registered as f64 / elapsed.as_secs_f64(),
        local: summarise(1, local, 0, elapsed),
        cross: summarise(1, cross, 0, elapsed),
    })
}
