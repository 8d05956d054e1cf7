//! `vix-sim`: runs a simulation and says whether the federation kept its promise.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use vix_node::store::database_location::DatabaseLocation;
use vix_sim::faults::FaultKind;
use vix_sim::progress::Progress;
use vix_sim::report::Report;
use vix_sim::run::{OnDay, Options, run};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "vix simulator: real nodes, a synthetic population, faults, an oracle"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    /// Every node a task of this process, on one simulated clock.
    InProcess,
    /// Every node a real `vix-node` process on the real clock, killed with `kill -9` (rounds
    /// of today instead of days; `--days` counts the rounds).
    Process,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One run; exits non-zero if a notice is missing, duplicated or unexpected, or a BSN is
    /// found in plain text in any file a node wrote.
    Run {
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 65)]
        regions: usize,
        /// Simulated years.
        #[arg(long, default_value_t = 3)]
        years: u32,
        /// Simulated days instead of years (process mode: rounds, default 12).
        #[arg(long)]
        days: Option<u32>,
        /// Families in the population (default: 150,000 a year; process mode 40,000).
        #[arg(long)]
        families: Option<usize>,
        /// New signals a year, nationally.
        #[arg(long, default_value_t = 300_000)]
        rate: u32,
        /// Faults: outage, partition, kill, all, none, or kinds by name (comma-separated).
        #[arg(long, default_value = "all")]
        faults: String,
        /// Each fault kind this many times.
        #[arg(long, default_value_t = 2)]
        faults_per_kind: u32,
        #[arg(long, value_enum, default_value_t = Mode::InProcess)]
        mode: Mode,
        /// Process mode: this many `kill -9`, of the hub or a region, at moments from the seed.
        #[arg(long, default_value_t = 24)]
        kills: u32,
        /// Operations in flight at once.
        #[arg(long, default_value_t = 48)]
        concurrency: usize,
        /// The small run CI does: 4 regions, one year (other sizes are ignored).
        #[arg(long)]
        quick: bool,
        /// Where the nodes' files and the reports go (kept); a temporary folder if absent.
        #[arg(long)]
        out: Option<PathBuf>,
        /// In process: the hub on this database (`postgres://…`, an empty database or schema)
        /// instead of a SQLite file in the run's folder. The privacy scan reads files only.
        #[arg(long)]
        hub_database: Option<DatabaseLocation>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Command::Run {
        seed,
        regions,
        years,
        days,
        families,
        rate,
        faults,
        faults_per_kind,
        mode,
        kills,
        concurrency,
        quick,
        out,
        hub_database,
    } = Args::parse().command;
    anyhow::ensure!(
        hub_database.is_none() || matches!(mode, Mode::InProcess),
        "--hub-database is for --mode in-process"
    );
    let faults = FaultKind::parse_list(&faults)?;
    anyhow::ensure!(
        matches!(mode, Mode::Process) || !faults.contains(&FaultKind::Kill),
        "kill faults need --mode process (in process there is no process to kill)"
    );
    let mut options = if quick {
        Options::quick(seed)
    } else {
        let mut options = Options::national(seed, years);
        options.regions = regions;
        options.rates.registrations_per_year = rate;
        let process = matches!(mode, Mode::Process);
        // Process mode counts rounds of today, not days, and every process reads the registry
        // file: a dozen rounds and a smaller population unless asked otherwise.
        options.days = days.unwrap_or(if process { 12 } else { options.days });
        options.families = families.unwrap_or(if process {
            40_000
        } else {
            150_000 * (options.days as usize).div_ceil(365)
        });
        options.faults_per_kind = faults_per_kind;
        options.concurrency = concurrency;
        options
    };
    options.faults = faults;
    options.hub_database = hub_database;
    let temporary;
    let dir = match out {
        Some(out) => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            out
        }
        None => {
            temporary = tempfile::tempdir()?;
            temporary.path().to_owned()
        }
    };
    // Every node's log goes to one file in the run's folder, so the privacy scan reads it.
    let log = std::fs::File::create(dir.join("nodes.log"))
        .with_context(|| format!("creating {}", dir.join("nodes.log").display()))?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::sync::Mutex::new(log))
        .with_ansi(false)
        .init();
    announce(&options, matches!(mode, Mode::Process).then_some(kills));
    let progress = Arc::new(Progress::new(u64::from(options.days), false));
    let hook = Arc::clone(&progress);
    options.on_day = Some(OnDay(Arc::new(move |day, signals| hook.day(day, signals))));
    let report = match mode {
        Mode::InProcess => run(&options, &dir).await,
        Mode::Process => vix_sim::processes::run(&options, kills, &dir).await,
    };
    progress.finish();
    let report = report?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(dir.join("report.html"), vix_sim::html::render(&report))?;
    print_summary(&report, &dir);
    anyhow::ensure!(report.passed(), "the oracle or the privacy scan failed");
    Ok(())
}

/// The seed and the drawn schedule before anything runs, so a failed run is reproducible
/// from its first lines.
#[allow(clippy::print_stdout)] // the command's answer, for the tester
fn announce(options: &Options, kills: Option<u32>) {
    println!(
        "vix-sim: seed {}, {} regions, {} days from {}, {} signals a year, {} families",
        options.seed,
        options.regions,
        options.days,
        options.first_day,
        options.rates.registrations_per_year,
        options.families
    );
    if let Some(kills) = kills {
        let per_round = (options.rates.registrations_per_year as usize).div_ceil(365);
        for kill in vix_sim::processes::kill_schedule(
            options.seed,
            kills,
            options.days,
            options.regions,
            per_round,
        ) {
            println!(
                "  round {} after {} registrations: kill -9 {}",
                kill.round,
                kill.after,
                kill.target
                    .map_or_else(|| "hub".to_owned(), vix_sim::federation::region_id)
            );
        }
        for fault in vix_sim::processes::other_faults(options) {
            println!("  round {fault}");
        }
        return;
    }
    for fault in vix_sim::faults::schedule(
        options.seed,
        &options.faults,
        options.days,
        options.regions,
        options.faults_per_kind,
    ) {
        println!("  fault {fault}");
    }
}

#[allow(clippy::print_stdout)] // the command's answer, for the tester
fn print_summary(report: &Report, dir: &std::path::Path) {
    println!("{}", vix_sim::summary::table(report));
    println!(
        "reports: {} and {}",
        dir.join("report.json").display(),
        dir.join("report.html").display()
    );
}
