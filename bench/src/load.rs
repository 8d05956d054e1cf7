//! Closed-loop load: `callers` tasks, each calling as fast as it is answered, for a warm-up and
//! then a measured window. Latency is per acknowledged call.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::transport::Channel;

/// Whether concurrent callers share one HTTP/2 connection or each have their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Channels {
    /// One TLS connection per caller, like separate front-ends.
    PerCaller,
    /// One connection, calls multiplexed on it.
    Shared,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Phase {
    pub(crate) warm_up: Duration,
    pub(crate) measure: Duration,
}

/// What a measured window gave.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct LoadResult {
    pub(crate) callers: usize,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) seconds: f64,
    pub(crate) per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) mean_ms: f64,
}

/// The channels for `callers` callers, made by `make`.
pub(crate) fn channels(
    mode: Channels,
    callers: usize,
    make: impl Fn() -> anyhow::Result<Channel>,
) -> anyhow::Result<Vec<Channel>> {
    match mode {
        Channels::Shared => {
            let channel = make()?;
            Ok(vec![channel; callers])
        }
        Channels::PerCaller => (0..callers).map(|_| make()).collect(),
    }
}

/// Runs `op(caller, seq, channel)` from `channels.len()` callers for the warm-up, then for the
/// measured window, and summarises the window.
pub(crate) async fn run<F, Fut>(
    channels: Vec<Channel>,
    phase: Phase,
    op: F,
) -> anyhow::Result<LoadResult>
where
    F: Fn(usize, u64, Channel) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let callers = channels.len();
    let op = Arc::new(op);
    let started = Instant::now();
    let measuring_from = started + phase.warm_up;
    let until = measuring_from + phase.measure;
    let mut tasks = Vec::with_capacity(callers);
    for (caller, channel) in channels.into_iter().enumerate() {
        let op = Arc::clone(&op);
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            let mut seq = 0u64;
            loop {
                let begun = Instant::now();
                if begun >= until {
                    break;
                }
                let outcome = op(caller, seq, channel.clone()).await;
                seq += 1;
                let ended = Instant::now();
                if begun < measuring_from || ended > until {
                    continue;
                }
                match outcome {
                    Ok(()) => samples.push(ended - begun),
                    Err(error) => {
                        errors += 1;
                        first_error.get_or_insert(error);
                    }
                }
            }
            (samples, errors, first_error)
        }));
    }
    let mut samples = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let (mine, failed, error) = task.await?;
        samples.extend(mine);
        errors += failed;
        if first_error.is_none() {
            first_error = error;
        }
    }
    if samples.is_empty() {
        return Err(first_error
            .unwrap_or_else(|| anyhow::anyhow!("no call completed in the measured window")));
    }
    if let Some(error) = first_error {
        eprintln!("  {errors} calls failed; the first: {error:#}");
    }
    Ok(summarise(callers, samples, errors, phase.measure))
}

pub(crate) fn summarise(
    callers: usize,
    mut samples: Vec<Duration>,
    errors: u64,
    window: Duration,
) -> LoadResult {
    samples.sort_unstable();
    let ok = samples.len() as u64;
    let seconds = window.as_secs_f64();
    let total: Duration = samples.iter().sum();
    LoadResult {
        callers,
        ok,
        errors,
        seconds,
        per_s: ok as f64 / seconds,
        p50_ms: ms(quantile(&samples, 0.50)),
        p99_ms: ms(quantile(&samples, 0.99)),
        mean_ms: if samples.is_empty() {
            0.0
        } else {
            ms(total) / samples.len() as f64
        },
    }
}

pub(crate) fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub(crate) fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
