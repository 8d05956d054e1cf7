//! `vix-bench`: real vix nodes (this binary run as `vix-bench serve hub|region`) over mutual TLS
//! on loopback with SQLite `synchronous=FULL`, measured from this process. Every figure is
//! printed beside a baseline of the same run (the disk's raw fsync rate; one commit per request
//! against group commit; the smallest size against the biggest; a local match against a
//! cross-region one) and written to a JSON file.
//!
//! `cargo run --release -p vix-bench -- --out bench-results.json`; `--smoke` runs everything at
//! tiny sizes in seconds (CI). The databases are pre-filled by a bulk loader (`--prefill bulk`,
//! the default: rows written with rusqlite before the node starts, reported as a bulk-load rate,
//! not acknowledged writes) or through the nodes' own paths (`--prefill store`, slow at millions).
#![forbid(unsafe_code)]
// A benchmark program reports on stdout: the table is its output.
#![allow(clippy::print_stdout)]

mod backends;
mod bulk;
mod hub;
mod latency;
mod load;
mod nodes;
mod pseudonyms;
mod region;
mod report;
mod serve;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use vix_node::store::GroupCommit;
use vix_node::store::hub_sqlite::HubSqliteStore;

use crate::load::{Channels, Phase};
use crate::nodes::{Federation, NodeProcess, database_bytes};
use crate::report::{Report, Unit};

#[derive(Debug, Parser)]
#[command(
    about = "vix benchmark: real nodes over mutual TLS, figures as ratios to in-run baselines"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench-results.json")]
    out: PathBuf,
    /// Stored signals at which everything is measured, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,2100000")]
    sizes: Vec<u64>,
    /// Length of each measured window.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// How the databases are pre-filled before the measured phases: `bulk` writes the rows
    /// with rusqlite into the node's schema before the node starts (fast; its rate is a bulk
    /// load, not acknowledged writes), `store` goes through the region store's `register` and
    /// the hub's `SubmitSignals` (slow at millions).
    #[arg(long, value_enum, default_value = "bulk")]
    prefill: bulk::PrefillMode,
    /// Cross-region latency probes (and as many local ones).
    #[arg(long, default_value_t = 200)]
    probes: usize,
    /// Background registrations per second at north while probing.
    #[arg(long, default_value_t = 100)]
    background: u32,
    /// Concurrent callers' connections: one TLS connection per caller (like separate
    /// front-ends; the default), or one shared HTTP/2 connection, whose single client task and
    /// TLS stream may bound the load before the node does. Not yet compared side by side.
    #[arg(long, value_enum, default_value = "per-caller")]
    channels: Channels,
    /// Tiny sizes, one-second phases, few probes: the whole program in seconds (CI).
    #[arg(long)]
    smoke: bool,
    /// The data folder (databases, configs, node logs, PKI); a temporary one if not given.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the temporary data folder.
    #[arg(long)]
    keep: bool,
    /// The nodes' log filter (`[log] filter`); `RUST_LOG` in the environment overrides it.
    #[arg(long, default_value = "warn")]
    node_log: String,
    /// The PostgreSQL server for the hub-backend comparison (a schema of its own per run,
    /// dropped after); `VIX_TEST_POSTGRES` in the environment, else the local server.
    #[arg(
        long,
        env = "VIX_TEST_POSTGRES",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node as `vix-node` does (the bench starts its nodes this way).
    Serve {
        #[arg(value_enum)]
        role: serve::Role,
        #[arg(long)]
        config: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::Serve { role, config }) = &args.command {
        return serve::serve(*role, config).await;
    }
    let settings = Settings::from_args(&args)?;
    let temporary;
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            temporary = tempfile_dir()?;
            temporary.clone()
        }
    };
    let outcome = run(&settings, &dir).await;
    if args.dir.is_none() {
        if args.keep || outcome.is_err() {
            eprintln!("data kept in {}", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let json = outcome?;
    std::fs::write(&args.out, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("\nresults written to {}", args.out.display());
    Ok(())
}

/// A fresh folder under the system's temporary folder (not removed on a failure, for the logs).
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "vix-bench-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

struct Settings {
    smoke: bool,
    sizes: Vec<u64>,
    phase: Phase,
    fsync_window: Duration,
    probes: usize,
    background: u32,
    channels: Channels,
    prefill: bulk::PrefillMode,
    node_log: String,
    postgres: String,
    register_callers: Vec<usize>,
    read_callers: Vec<usize>,
}

impl Settings {
    fn from_args(args: &Args) -> anyhow::Result<Self> {
        let seconds = if args.smoke { 1.0 } else { args.seconds };
        if !(seconds > 0.0 && seconds.is_finite()) {
            anyhow::bail!("--seconds must be positive");
        }
        let mut sizes = if args.smoke {
            vec![200, 400]
        } else {
            args.sizes.clone()
        };
        sizes.sort_unstable();
        sizes.dedup();
        if sizes.is_empty() {
            anyhow::bail!("--sizes is empty");
        }
        Ok(Self {
            smoke: args.smoke,
            sizes,
            phase: Phase {
                warm_up: Duration::from_secs_f64(if args.smoke { 0.2 } else { 1.0 }),
                measure: Duration::from_secs_f64(seconds),
            },
            fsync_window: Duration::from_secs_f64(if args.smoke { 0.5 } else { 2.0 }),
            probes: if args.smoke { 5 } else { args.probes.max(1) },
            background: args.background,
            channels: args.channels,
            prefill: args.prefill,
            node_log: args.node_log.clone(),
            postgres: args.postgres.clone(),
            register_callers: vec![1, 8, 32],
            read_callers: vec![1, 8],
        })
    }
}

fn step(message: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "== {message}");
    let _ = stdout.flush();
}

async fn run(settings: &Settings, dir: &Path) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let federation = Federation::create(dir, &settings.node_log)?;
    let mut report = Report::default();

    step("raw fsync baseline");
    report.fsync_per_s = fsync_rate(dir, settings.fsync_window)?;
    println!("   {:.0} fsyncs/s", report.fsync_per_s);

    step("pseudonyms: HMAC beside the oblivious PRF (RFC 9497)");
    let pseudonyms = pseudonyms::compare(settings.smoke, &mut report)?;
    step("pseudonyms: the pseudonym service over mutual TLS");
    let wire = pseudonyms::over_the_wire(settings.smoke, &federation.pki, dir, &mut report).await?;

    let mut per_size = Vec::new();
    for &size in &settings.sizes {
        let step_dir = dir.join(format!("size-{size}"));
        std::fs::create_dir_all(&step_dir)?;
        let region = region_step(settings, &federation, &step_dir, size, &mut report).await?;
        let hub = hub_step(settings, &federation, &step_dir, size, &mut report).await?;
        per_size.push(serde_json::json!({ "signals": size, "region": region, "hub": hub }));
    }

    step("cross-region notice latency");
    let cross = cross_region_step(settings, &federation, dir, &mut report).await?;

    step("hub ingest on SQLite and on PostgreSQL (one and two instances)");
    let backends = backends::compare(
        &federation,
        dir,
        &settings.postgres,
        settings.smoke,
        &mut report,
    )
    .await?;

    step("region registrations on SQLite and on PostgreSQL (one and two instances)");
    let region_backends =
        backends::compare_region(dir, &settings.postgres, settings.smoke, &mut report).await?;

    report.print();
    Ok(serde_json::json!({
        "meta": {
            "smoke": settings.smoke,
            "sizes": settings.sizes,
            "seconds": settings.phase.measure.as_secs_f64(),
            "channels": settings.channels,
            "prefill": settings.prefill,
            "node_log": settings.node_log,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "run_seconds": started.elapsed().as_secs_f64(),
            "synchronous": "FULL",
        },
        "fsync_per_s": report.fsync_per_s,
        "sizes": per_size,
        "cross_region": cross,
        "hub_backends": backends,
        "region_backends": region_backends,
        "pseudonyms": pseudonyms,
        "pseudonyms_over_the_wire": wire,
        "figures": report.figures,
        "size_ratios": report.size_ratios(),
    }))
}

/// 4 KiB appends, each followed by `fdatasync`, for `window`: the disk's commit rate.
fn fsync_rate(dir: &Path, window: Duration) -> anyhow::Result<f64> {
    let path = dir.join("fsync-probe.bin");
    let mut file = std::fs::File::create(&path)?;
    let block = [0x5au8; 4096];
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < window {
        file.write_all(&block)?;
        file.sync_data()?;
        count += 1;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(rate)
}

/// Group commit as configured by default, and one commit (and fsync) per request: the baseline.
fn commit_modes() -> [(&'static str, GroupCommit); 2] {
    [
        ("group commit", GroupCommit::default()),
        (
            "max_batch=1",
            GroupCommit {
                max_batch: 1,
                max_wait_us: 0,
            },
        ),
    ]
}

async fn region_step(
    settings: &Settings,
    federation: &Federation,
    dir: &Path,
    size: u64,
    report: &mut Report,
) -> anyhow::Result<serde_json::Value> {
    let database = dir.join("region-north.sqlite");
    step(&format!(
        "region north: pre-filling {size} signals ({:?})",
        settings.prefill
    ));
    let (prefill, sample) = match settings.prefill {
        bulk::PrefillMode::Bulk => {
            let (prefill, sample) = region::prefill_bulk(&database, "north", size).await?;
            let bulk = &prefill.bulk;
            println!(
                "   bulk load (not acknowledged writes): {} signals ({} active, {} inactive) and \
                 {} family keys in {:.1} s ({:.1} s of it rebuilding indexes): {:.0} signals/s, \
                 {:.0} rows/s",
                bulk.signals,
                bulk.active,
                bulk.inactive,
                bulk.family_key_rows,
                bulk.seconds,
                bulk.index_seconds,
                bulk.signals_per_s,
                bulk.rows_per_s
            );
            let store = &prefill.store;
            println!(
                "   then {} through the store's register: {:.0} signals/s ({} local notices)",
                store.signals, store.per_s, store.notices
            );
            report.add(
                "region prefill (bulk load, not acked) signals",
                Some(size),
                Unit::PerSecond,
                bulk.signals_per_s,
            );
            report.add(
                "region prefill (bulk load, not acked) rows",
                Some(size),
                Unit::PerSecond,
                bulk.rows_per_s,
            );
            (serde_json::to_value(&prefill)?, sample)
        }
        bulk::PrefillMode::Store => {
            let (prefill, sample) =
                region::prefill(&database, "north", size, region::SHARED_YOUTH_EVERY).await?;
            println!(
                "   {:.0} signals/s ({:.1} s, {} local notices; outbox drained in {:.1} s)",
                prefill.per_s, prefill.seconds, prefill.notices, prefill.outbox_drain_seconds
            );
            report.add(
                "region prefill (store register)",
                Some(size),
                Unit::PerSecond,
                prefill.per_s,
            );
            (serde_json::to_value(&prefill)?, sample)
        }
    };
    let signals = Arc::new(sample.signals);
    let matched = Arc::new(if sample.matched.is_empty() {
        (*signals).clone()
    } else {
        sample.matched
    });
    // Every registration acknowledged, warm-up included: they are stored too.
    let registered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut modes = serde_json::Map::new();
    let mut memory = None;
    for (mode, group_commit) in commit_modes() {
        let base = mode != "group commit";
        nodes::warm_page_cache(&database)?;
        let node = NodeProcess::start(
            dir,
            &format!("region-north-{}", if base { "single" } else { "group" }),
            "region",
            &federation.region_config("north", &database, group_commit, None),
        )
        .await?;
        let mut results = serde_json::Map::new();
        let suffix = if base { " [max_batch=1]" } else { "" };
        let name = |what: &str, callers: usize, figure: &str| {
            format!("region {what} c{callers} {figure}{suffix}")
        };
        let add = |report: &mut Report, name: String, unit: Unit, value: f64| {
            report.add(&name, Some(size), unit, value);
        };
        let run_tag = format!("{}-{size}-{}", fastrand::u32(..), u8::from(base));
        for &callers in &settings.register_callers {
            step(&format!("region {mode}: RegisterSignal, {callers} callers"));
            let channels = load::channels(settings.channels, callers, || {
                federation.org_channel(node.addr, region::ORG)
            })?;
            let tag = format!("{run_tag}-c{callers}");
            let counter = Arc::clone(&registered);
            let result = load::run(channels, settings.phase, move |caller, seq, channel| {
                let request = region::register_request(&tag, caller, seq);
                let counter = Arc::clone(&counter);
                async move {
                    region::register(channel, request).await?;
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                }
            })
            .await?;
            println!(
                "   {:.0}/s  p50 {:.2} ms  p99 {:.2} ms",
                result.per_s, result.p50_ms, result.p99_ms
            );
            add(
                report,
                name("register", callers, "/s"),
                Unit::PerSecond,
                result.per_s,
            );
            add(
                report,
                name("register", callers, "p50"),
                Unit::Millis,
                result.p50_ms,
            );
            add(
                report,
                name("register", callers, "p99"),
                Unit::Millis,
                result.p99_ms,
            );
            results.insert(
                format!("register_c{callers}"),
                serde_json::to_value(&result)?,
            );
        }
        for &callers in &settings.read_callers {
            for (what, ids) in [("get", &signals), ("list_matches", &matched)] {
                if ids.is_empty() {
                    continue;
                }
                step(&format!("region {mode}: {what}, {callers} callers"));
                let channels = load::channels(settings.channels, callers, || {
                    federation.org_channel(node.addr, region::ORG)
                })?;
                let ids = Arc::clone(ids);
                let list = what == "list_matches";
                let result = load::run(channels, settings.phase, move |caller, seq, channel| {
                    let index = (caller as u64 * 7919 + seq * 104_729) as usize % ids.len();
                    let id = ids[index].clone();
                    async move {
                        if list {
                            region::list_matches(channel, id).await.map(|_| ())
                        } else {
                            region::get(channel, id).await
                        }
                    }
                })
                .await?;
                println!(
                    "   {:.0}/s  p50 {:.2} ms  p99 {:.2} ms",
                    result.per_s, result.p50_ms, result.p99_ms
                );
                add(
                    report,
                    name(what, callers, "/s"),
                    Unit::PerSecond,
                    result.per_s,
                );
                add(
                    report,
                    name(what, callers, "p50"),
                    Unit::Millis,
                    result.p50_ms,
                );
                results.insert(format!("{what}_c{callers}"), serde_json::to_value(&result)?);
            }
        }
        if !base {
            let measured = node.memory()?;
            memory = Some(measured);
        }
        node.stop().await?;
        modes.insert(mode.to_owned(), serde_json::Value::Object(results));
    }
    // Group commit against one commit per request, figure by figure.
    let base_names: Vec<(usize, String)> = report
        .figures
        .iter()
        .enumerate()
        .filter(|(_, f)| f.size == Some(size) && f.name.ends_with(" [max_batch=1]"))
        .map(|(i, f)| (i, f.name.trim_end_matches(" [max_batch=1]").to_owned()))
        .collect();
    for (base_index, name) in base_names {
        let base_value = report.figures[base_index].value;
        let base_name = report.figures[base_index].name.clone();
        if let Some(figure) = report
            .figures
            .iter_mut()
            .find(|f| f.size == Some(size) && f.name == name)
        {
            figure.baseline = Some(base_name);
            figure.vs_baseline = (base_value != 0.0).then(|| figure.value / base_value);
        }
    }
    let stored = size + registered.load(std::sync::atomic::Ordering::Relaxed);
    let bytes = database_bytes(&database);
    let memory = memory.context("region memory")?;
    report.add("region RSS", Some(size), Unit::Megabytes, mb(memory.rss));
    report.add(
        "region peak RSS (VmHWM)",
        Some(size),
        Unit::Megabytes,
        mb(memory.hwm),
    );
    report.add(
        "region database bytes/signal",
        Some(size),
        Unit::Bytes,
        bytes as f64 / stored as f64,
    );
    Ok(serde_json::json!({
        "prefill": prefill,
        "modes": modes,
        "rss_bytes": memory.rss,
        "hwm_bytes": memory.hwm,
        "database_bytes": bytes,
        "signals_stored_about": stored,
    }))
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

async fn hub_step(
    settings: &Settings,
    federation: &Federation,
    dir: &Path,
    size: u64,
    report: &mut Report,
) -> anyhow::Result<serde_json::Value> {
    let database = dir.join("hub.sqlite");
    let maker = Arc::new(hub::EventMaker::new(size)?);
    let mut json = serde_json::Map::new();
    let mut stored = 0u64;
    let mut memory = None;
    if settings.prefill == bulk::PrefillMode::Bulk {
        step(&format!("hub: bulk load of {size} signals (pre-fill)"));
        HubSqliteStore::open(&database, GroupCommit::default())
            .await
            .with_context(|| format!("opening {}", database.display()))?
            .close()
            .await;
        let path = database.clone();
        let digests = Arc::clone(&maker);
        let fill = tokio::task::spawn_blocking(move || {
            bulk::hub(&path, &bulk::dev_orgs(), size, |kind| digests.digest(kind))
        })
        .await??;
        stored += fill.signals;
        println!(
            "   bulk load (not acknowledged writes): {} signals ({} active, {} inactive) and {} \
             family keys in {:.1} s ({:.1} s of it rebuilding indexes): {:.0} signals/s, {:.0} \
             rows/s",
            fill.signals,
            fill.active,
            fill.inactive,
            fill.family_key_rows,
            fill.seconds,
            fill.index_seconds,
            fill.signals_per_s,
            fill.rows_per_s
        );
        report.add(
            "hub prefill (bulk load, not acked) signals",
            Some(size),
            Unit::PerSecond,
            fill.signals_per_s,
        );
        report.add(
            "hub prefill (bulk load, not acked) rows",
            Some(size),
            Unit::PerSecond,
            fill.rows_per_s,
        );
        json.insert("prefill".into(), serde_json::to_value(&fill)?);
    }
    for (mode, group_commit) in commit_modes() {
        let base = mode != "group commit";
        nodes::warm_page_cache(&database)?;
        let node = NodeProcess::start(
            dir,
            &format!("hub-{}", if base { "single" } else { "group" }),
            "hub",
            &federation.hub_config(&database, group_commit),
        )
        .await?;
        if !base && settings.prefill == bulk::PrefillMode::Store {
            step(&format!(
                "hub: ingest of {size} events from 3 regions (pre-fill)"
            ));
            let fill = hub::ingest(
                federation,
                &[node.addr],
                Arc::clone(&maker),
                Some(size),
                None,
            )
            .await?;
            stored += fill.events;
            println!(
                "   {:.0} events/s ({:.1} s, {} notices)",
                fill.per_s, fill.seconds, fill.notices
            );
            report.add(
                "hub prefill ingest",
                Some(size),
                Unit::PerSecond,
                fill.per_s,
            );
            json.insert("prefill".into(), serde_json::to_value(&fill)?);
        }
        step(&format!("hub {mode}: ingest at {size} signals"));
        let window = hub::ingest(
            federation,
            &[node.addr],
            Arc::clone(&maker),
            None,
            Some(settings.phase.measure),
        )
        .await?;
        stored += window.events;
        println!(
            "   {:.0} events/s, batch p50 {:.1} ms p99 {:.1} ms, {} notices",
            window.per_s, window.batch_p50_ms, window.batch_p99_ms, window.notices
        );
        let suffix = if base { " [max_batch=1]" } else { "" };
        report.add(
            &format!("hub ingest{suffix}"),
            Some(size),
            Unit::PerSecond,
            window.per_s,
        );
        report.add(
            &format!("hub batch of {} p50{suffix}", hub::BATCH),
            Some(size),
            Unit::Millis,
            window.batch_p50_ms,
        );
        if !base {
            report.add(
                "hub: national year (300,000 events)",
                Some(size),
                Unit::Seconds,
                300_000.0 / window.per_s.max(1e-9),
            );
            memory = Some(node.memory()?);
        }
        node.stop().await?;
        json.insert(mode.to_owned(), serde_json::to_value(&window)?);
    }
    let group = report
        .figures
        .iter()
        .find(|f| f.size == Some(size) && f.name == "hub ingest")
        .map(|f| f.value);
    let single = report
        .figures
        .iter()
        .find(|f| f.size == Some(size) && f.name == "hub ingest [max_batch=1]")
        .map(|f| f.value);
    if let (Some(group), Some(single)) = (group, single)
        && let Some(figure) = report
            .figures
            .iter_mut()
            .find(|f| f.size == Some(size) && f.name == "hub ingest")
    {
        figure.baseline = Some("hub ingest [max_batch=1]".into());
        figure.vs_baseline = (single != 0.0).then(|| group / single);
    }
    let memory = memory.context("hub memory")?;
    let bytes = database_bytes(&database);
    report.add("hub RSS", Some(size), Unit::Megabytes, mb(memory.rss));
    report.add(
        "hub peak RSS (VmHWM)",
        Some(size),
        Unit::Megabytes,
        mb(memory.hwm),
    );
    report.add(
        "hub database bytes/signal",
        Some(size),
        Unit::Bytes,
        bytes as f64 / stored as f64,
    );
    json.insert("rss_bytes".into(), memory.rss.into());
    json.insert("hwm_bytes".into(), memory.hwm.into());
    json.insert("database_bytes".into(), bytes.into());
    json.insert("signals_stored".into(), stored.into());
    Ok(serde_json::Value::Object(json))
}

async fn cross_region_step(
    settings: &Settings,
    federation: &Federation,
    dir: &Path,
    report: &mut Report,
) -> anyhow::Result<serde_json::Value> {
    let dir = dir.join("federation");
    std::fs::create_dir_all(&dir)?;
    let group_commit = GroupCommit::default();
    let hub = NodeProcess::start(
        &dir,
        "hub",
        "hub",
        &federation.hub_config(&dir.join("hub.sqlite"), group_commit),
    )
    .await?;
    let north = NodeProcess::start(
        &dir,
        "region-north",
        "region",
        &federation.region_config(
            "north",
            &dir.join("region-north.sqlite"),
            group_commit,
            Some(hub.addr),
        ),
    )
    .await?;
    let south = NodeProcess::start(
        &dir,
        "region-south",
        "region",
        &federation.region_config(
            "south",
            &dir.join("region-south.sqlite"),
            group_commit,
            Some(hub.addr),
        ),
    )
    .await?;
    let channels = latency::Channels {
        north_jgz: federation.org_channel(north.addr, "jgz-north")?,
        north_school: federation.org_channel(north.addr, "school-north")?,
        north_background: federation.org_channel(north.addr, "school-north")?,
        south_vt: federation.org_channel(south.addr, "vt-south")?,
    };
    let result = latency::run(channels, settings.probes, settings.background).await;
    // Stop the nodes whatever happened; the regions first, so the hub's streams end cleanly.
    let stopped = [north.stop().await, south.stop().await, hub.stop().await];
    let result = result?;
    for stop in stopped {
        stop?;
    }
    println!(
        "   local p50 {:.2} ms p99 {:.2} ms; cross-region p50 {:.2} ms p99 {:.2} ms; background {:.0}/s",
        result.local.p50_ms,
        result.local.p99_ms,
        result.cross.p50_ms,
        result.cross.p99_ms,
        result.background_per_s
    );
    report.add(
        "local match notice p50",
        None,
        Unit::Millis,
        result.local.p50_ms,
    );
    report.add(
        "local match notice p99",
        None,
        Unit::Millis,
        result.local.p99_ms,
    );
    report.add_vs(
        "cross-region notice p50",
        None,
        Unit::Millis,
        result.cross.p50_ms,
        "local match notice p50",
    );
    report.add_vs(
        "cross-region notice p99",
        None,
        Unit::Millis,
        result.cross.p99_ms,
        "local match notice p99",
    );
    Ok(serde_json::to_value(&result)?)
}
