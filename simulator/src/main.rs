//! `vix-sim`: runs a simulation and says whether the federation kept its promise.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vix_sim::run::{Options, Report, run};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "vix simulator: real nodes, a synthetic population, an oracle"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One run; exits non-zero if a notice is missing, duplicated or unexpected, or a BSN is
    /// found in plain text in any file a node wrote.
    Run {
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 4)]
        regions: usize,
        #[arg(long, default_value_t = 60)]
        families: usize,
        /// Registrations in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// No hub outage in the middle third of the workload.
        #[arg(long)]
        no_faults: bool,
        /// The small run CI does (overrides regions and families).
        #[arg(long)]
        quick: bool,
        /// Where the nodes' files and `report.json` go (kept); a temporary folder if absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Command::Run {
        seed,
        regions,
        families,
        concurrency,
        no_faults,
        quick,
        out,
    } = Args::parse().command;
    let mut options = Options::quick(seed);
    if !quick {
        options.regions = regions;
        options.families = families;
    }
    options.concurrency = concurrency;
    options.hub_outage = !no_faults;
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
    let report = run(&options, &dir).await?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    summary(&report, &dir);
    anyhow::ensure!(report.passed(), "the oracle or the privacy scan failed");
    Ok(())
}

#[allow(clippy::print_stdout)] // the command's answer, for the tester
fn summary(report: &Report, dir: &std::path::Path) {
    println!("seed {:?}", report.options.as_ref().map(|o| o.seed));
    println!(
        "{} persons, {} signals; notices expected {}, delivered {} ({} youth, {} family, {} cross-region)",
        report.persons,
        report.signals,
        report.expected,
        report.delivered,
        report.youth_matches,
        report.family_matches,
        report.cross_region
    );
    println!(
        "missing {}, duplicated {}, unexpected {}; privacy scan hits {}",
        report.missing.len(),
        report.duplicated.len(),
        report.unexpected.len(),
        report.privacy_hits.len()
    );
    for line in report
        .missing
        .iter()
        .map(|n| format!("missing: {n}"))
        .chain(report.duplicated.iter().map(|n| format!("duplicated: {n}")))
        .chain(report.unexpected.iter().map(|n| format!("unexpected: {n}")))
        .chain(report.privacy_hits.iter().map(|f| format!("BSN in: {f}")))
        .take(50)
    {
        println!("  {line}");
    }
    println!("faults: {}", report.faults.join(", "));
    println!(
        "converged in {} ms; wall {} ms ({:.0} signals/s); report {}",
        report.convergence_ms,
        report.wall_ms,
        report.signals as f64 * 1000.0 / report.wall_ms.max(1) as f64,
        dir.join("report.json").display()
    );
}
