//! `vix-node`: runs a vix role. Reads the configuration, sets up logging, binds, serves until
//! SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

mod client;
use clap::{Parser, Subcommand};
use vix_node::domain::SystemClock;
use vix_node::startup::{HubNode, PseudonymizerNode, RegionNode};
use vix_node::store::database_location::DatabaseLocation;
use vix_node::store::hub::HubStore;
use vix_node::store::region_database::{RegionDatabase, verify_audit_at};
use vix_node::{config, telemetry};

#[derive(Debug, Parser)]
#[command(version, about = "vix federated Verwijsindex node")]
struct Args {
    #[command(subcommand)]
    role: Role,
}

#[derive(Debug, Subcommand)]
enum Role {
    /// Run a region node: the region API for organisations, on SQLite or PostgreSQL.
    Region {
        /// TOML configuration file; `VIX_` variables override it (`VIX_REGION__LISTEN`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Apply BRP mutations (deaths, changes of address) to a region node's database: a death
    /// purges the youth's signals. The node may be running; the file is checked whole first.
    ImportMutations {
        /// The region node's TOML configuration.
        #[arg(long)]
        config: Option<PathBuf>,
        /// One JSON object per line: {"bsn": ..., "death_date": ...} or {"bsn": ..., "municipality": ...}.
        #[arg(long)]
        file: PathBuf,
    },
    /// Check the hash chain of a node's audit log; exits non-zero if it is broken.
    VerifyAudit {
        /// The region node's or hub's TOML configuration (its database is checked).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// What a region node could not deliver: events the hub refused for good, notice-log
    /// entries this node could not read. The node may be running.
    DeadLetters {
        /// The region node's TOML configuration.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Talk to a region node as an organisation (client certificate): register, list matches,
    /// withdraw. A table, or JSON with --json.
    Client(Box<client::Client>),
    /// For the hub's operator: every region of the federation, whether the hub has seen it
    /// acknowledge its notice log, and its backlog (entries not acknowledged yet). The hub may
    /// be running.
    HubStatus {
        /// The hub's TOML configuration.
        #[arg(long)]
        config: Option<PathBuf>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Instead: how many pseudonyms (subject and family keys) the hub holds under each key
        /// version, the federation's as the regions sent them. A key rotation's progress: an
        /// old version may be retired once it has none.
        #[arg(long)]
        key_versions: bool,
    },
    /// For a region that takes over the signals of a region leaving the federation: writes a
    /// new handover secret to FILE (readable by its owner only) and prints its public key, for
    /// the leaving region's operator. Name the file in `[region.adoption] key_file`.
    HandoverKey {
        #[arg(long)]
        out: PathBuf,
    },
    /// The region leaves the federation: hand every signal to a successor region through the
    /// hub, then delete this node's copy; or, with --purge, delete every signal on node and hub.
    /// Run with the node stopped (for a handover: after the organisation registry gives this
    /// region's organisations to the successor). A rerun goes on where a stopped run ended.
    Decommission {
        /// The leaving region node's TOML configuration.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The region that takes the signals over.
        #[arg(long, required_unless_present = "purge", conflicts_with = "purge")]
        successor: Option<String>,
        /// The successor's handover public key (64 hex characters, from its operator).
        #[arg(long, required_unless_present_any = ["dry_run", "purge"], conflicts_with = "purge")]
        successor_key: Option<String>,
        /// No successor: delete every signal here and at the hub (notices naming them are
        /// retracted everywhere); the audit log stays.
        #[arg(long)]
        purge: bool,
        /// Say what would be handed over; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the pseudonym service: evaluates the regions' blinded identifiers (RFC 9497), with a
    /// rate limit and an audit of volume per region. Run by the national operator, apart from
    /// the hub.
    Pseudonymizer {
        /// TOML configuration file; `VIX_` variables override it (`VIX_PSEUDONYMIZER__LISTEN`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check the hash chain of the pseudonym service's audit file and show each region's volume
    /// (calls, elements evaluated, calls refused); exits non-zero if the chain is broken.
    PseudonymizerAudit {
        /// The pseudonym service's TOML configuration (its `audit_file` is checked).
        #[arg(long)]
        config: Option<PathBuf>,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Writes 32 random bytes as hexadecimal to a new FILE readable by its owner only: a key
    /// version of the pseudonym service, or a region's request key. An existing file is never
    /// overwritten. Nothing is printed.
    KeyFile {
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the national hub: the federation API for the region nodes, on SQLite or PostgreSQL.
    Hub {
        /// TOML configuration file; `VIX_` variables override it (`VIX_HUB__LISTEN`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum DeadLetterAction {
    /// Every dead letter with its source, place and reason; the count last.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back (after fixing their cause): events at their old place in the
    /// outbox, notice-log entries read again.
    Retry {
        /// The ids shown by `list`.
        #[arg(required_unless_present = "all")]
        ids: Vec<i64>,
        /// Every dead letter.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.role {
        Role::Region { config } => {
            let settings = config::load(config.as_deref(), std::env::vars())?;
            telemetry::init(&settings.log, std::env::var("RUST_LOG").ok());
            let region = settings
                .region
                .context("the configuration has no [region] section")?;
            let mut node = RegionNode::build(&region, Arc::new(SystemClock)).await?;
            if let Some(address) = region.metrics_listen {
                node = node.with_metrics(bind(address, "region.metrics_listen").await?);
            }
            let shutdown = shutdown_signal()?;
            let listener = tokio::net::TcpListener::bind(region.listen)
                .await
                .with_context(|| format!("binding {}", region.listen))?;
            node.run(listener, shutdown).await
        }
        Role::ImportMutations { config, file } => {
            let settings = config::load(config.as_deref(), std::env::vars())?;
            telemetry::init(&settings.log, std::env::var("RUST_LOG").ok());
            let region = settings
                .region
                .context("the configuration has no [region] section")?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let mutations = vix_node::mutations::parse(&text)
                .with_context(|| format!("checking {}", file.display()))?;
            let pseudonymiser = vix_node::startup::pseudonymiser(&region)?;
            let region_id =
                vix_node::domain::RegionId::parse(&region.region_id).context("region.region_id")?;
            let store = RegionDatabase::open(
                &region.database,
                region_id,
                region.group_commit,
                region.postgres,
            )
            .await
            .with_context(|| format!("opening {}", region.database))?;
            let now = vix_node::domain::Clock::now(&SystemClock);
            let report =
                vix_node::mutations::apply(&store, pseudonymiser.as_ref(), &mutations, now).await?;
            store.close().await;
            report_import(&report);
            Ok(())
        }
        Role::Pseudonymizer { config } => {
            let settings = config::load(config.as_deref(), std::env::vars())?;
            telemetry::init(&settings.log, std::env::var("RUST_LOG").ok());
            let service = settings
                .pseudonymizer
                .context("the configuration has no [pseudonymizer] section")?;
            let mut node = PseudonymizerNode::build(&service, Arc::new(SystemClock))?;
            if let Some(address) = service.metrics_listen {
                node = node.with_metrics(bind(address, "pseudonymizer.metrics_listen").await?);
            }
            let shutdown = shutdown_signal()?;
            let listener = bind(service.listen, "pseudonymizer.listen").await?;
            node.run(listener, shutdown).await
        }
        Role::PseudonymizerAudit { config, json } => {
            let settings = config::load(config.as_deref(), std::env::vars())?;
            let service = settings
                .pseudonymizer
                .context("the configuration has no [pseudonymizer] section")?;
            let summary = vix_node::pseudonymizer::audit::verify(&service.audit_file)?;
            print_audit_volume(&summary, json)?;
            Ok(())
        }
        Role::KeyFile { out } => {
            vix_node::secret_file::write_new_key32(&out)?;
            eprintln!("wrote a new key to {}", out.display());
            Ok(())
        }
        Role::HandoverKey { out } => handover_key(&out),
        Role::Decommission {
            config,
            successor,
            successor_key,
            // clap requires --successor or --purge and allows only one: no successor is a purge.
            purge: _,
            dry_run,
        } => {
            let settings = config::load(config.as_deref(), std::env::vars())?;
            telemetry::init(&settings.log, std::env::var("RUST_LOG").ok());
            let region = settings
                .region
                .context("the configuration has no [region] section")?;
            let successor = successor
                .map(|id| vix_node::domain::RegionId::parse(&id).context("--successor"))
                .transpose()?;
            let node = RegionNode::build(&region, Arc::new(SystemClock)).await?;
            let result =
                decommission(&node, successor.as_ref(), successor_key.as_deref(), dry_run).await;
            node.context().store.close().await;
            result
        }
        Role::DeadLetters { config, action } => {
            let settings = config::load(config.as_deref(), std::env::vars())?;
            telemetry::init(&settings.log, std::env::var("RUST_LOG").ok());
            let region = settings
                .region
                .context("the configuration has no [region] section")?;
            let region_id =
                vix_node::domain::RegionId::parse(&region.region_id).context("region.region_id")?;
            let adopter = region
                .adoption
                .as_ref()
                .map(vix_node::region::adoption::Adopter::load)
                .transpose()?;
            let own_region = region_id.clone();
            let store = RegionDatabase::open(
                &region.database,
                region_id,
                region.group_commit,
                region.postgres,
            )
            .await
            .with_context(|| format!("opening {}", region.database))?;
            let result = dead_letters(&store, &own_region, adopter.as_ref(), action).await;
            store.close().await;
            result
        }
        Role::VerifyAudit { config } => {
            let settings = config::load(config.as_deref(), std::env::vars())?;
            let (database, entries) = match (&settings.region, &settings.hub) {
                (Some(region), _) => {
                    let region_id = vix_node::domain::RegionId::parse(&region.region_id)
                        .context("region.region_id")?;
                    let entries = verify_audit_at(&region.database, region_id).await;
                    (&region.database, entries)
                }
                (None, Some(hub)) => {
                    let entries = match &hub.database {
                        DatabaseLocation::Sqlite(path) => {
                            vix_node::store::audit::verify_file(path).await
                        }
                        DatabaseLocation::Postgres(url) => {
                            let store = vix_node::store::hub_postgres::PgHubStore::open(
                                url,
                                Default::default(),
                            )
                            .await
                            .with_context(|| format!("opening {}", hub.database))?;
                            let verified = store.verify_audit().await;
                            store.close().await;
                            verified
                        }
                    };
                    (&hub.database, entries)
                }
                (None, None) => anyhow::bail!("the configuration has no [region] or [hub] section"),
            };
            let entries = entries.with_context(|| format!("verifying {database}"))?;
            report_intact(database, entries);
            Ok(())
        }
        Role::Client(client) => client.run().await,
        Role::HubStatus {
            config,
            json,
            key_versions,
        } => {
            let settings = config::load(config.as_deref(), std::env::vars())?;
            let hub = settings
                .hub
                .context("the configuration has no [hub] section")?;
            let registry = vix_node::startup::load_organisation_registry(
                &hub.organisation_registry_file,
                "hub.organisation_registry_file",
            )?;
            let store = vix_node::store::hub_database::HubDatabase::open(
                &hub.database,
                hub.group_commit,
                hub.postgres,
            )
            .await
            .with_context(|| format!("opening {}", hub.database))?;
            let status = if key_versions {
                print_key_versions(&store, json).await
            } else {
                hub_status(&store, registry.regions(), json).await
            };
            store.close().await;
            status
        }
        Role::Hub { config } => {
            let settings = config::load(config.as_deref(), std::env::vars())?;
            telemetry::init(&settings.log, std::env::var("RUST_LOG").ok());
            let hub = settings
                .hub
                .context("the configuration has no [hub] section")?;
            let mut node = HubNode::build(&hub, Arc::new(SystemClock)).await?;
            if let Some(address) = hub.metrics_listen {
                node = node.with_metrics(bind(address, "hub.metrics_listen").await?);
            }
            let shutdown = shutdown_signal()?;
            let listener = tokio::net::TcpListener::bind(hub.listen)
                .await
                .with_context(|| format!("binding {}", hub.listen))?;
            node.run(listener, shutdown).await
        }
    }
}

#[allow(clippy::print_stdout)] // the command's answer, for the operator
fn print_audit_volume(
    summary: &vix_node::pseudonymizer::audit::Summary,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(summary)?);
        return Ok(());
    }
    let span = match (summary.first, summary.last) {
        (Some(first), Some(last)) => format!(", {first} to {last}"),
        _ => String::new(),
    };
    println!("audit chain intact: {} entries{span}", summary.entries);
    println!(
        "{:<16}  {:>10}  {:>18}  {:>13}",
        "region", "calls", "elements evaluated", "calls refused"
    );
    for (region, volume) in &summary.regions {
        println!(
            "{:<16}  {:>10}  {:>18}  {:>13}",
            region, volume.calls, volume.elements_evaluated, volume.calls_refused
        );
    }
    Ok(())
}

#[allow(clippy::print_stdout)] // the command's answer, for the operator
async fn print_key_versions(
    store: &vix_node::store::hub_database::HubDatabase,
    json: bool,
) -> anyhow::Result<()> {
    let versions = store.key_versions().await?;
    if !json {
        println!("{:>11}  {:>12}", "key version", "pseudonyms");
    }
    for (version, count) in versions {
        if json {
            println!(
                "{}",
                serde_json::json!({ "key_version": version, "pseudonyms": count })
            );
        } else {
            println!("{version:>11}  {count:>12}");
        }
    }
    Ok(())
}

#[allow(clippy::print_stdout)] // the command's answer, for the operator
async fn hub_status(
    store: &vix_node::store::hub_database::HubDatabase,
    regions: &std::collections::BTreeSet<vix_node::domain::RegionId>,
    json: bool,
) -> anyhow::Result<()> {
    let acknowledged: std::collections::HashMap<_, _> =
        store.acknowledged().await?.into_iter().collect();
    let head = store.log_head().await?;
    if !json {
        println!(
            "{:<16}  {:<5}  {:>14}  {:>8}",
            "region", "seen", "acknowledged", "backlog"
        );
    }
    for region in regions {
        let backlog = store.unacked(region).await?;
        let acked = acknowledged.get(region).copied();
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "region": region.as_str(),
                    "seen": acked.is_some(),
                    "acknowledged_cursor": acked.unwrap_or(0),
                    "backlog": backlog,
                })
            );
        } else {
            println!(
                "{:<16}  {:<5}  {:>14}  {:>8}",
                region.as_str(),
                if acked.is_some() { "yes" } else { "no" },
                acked.unwrap_or(0),
                backlog
            );
        }
    }
    if !json {
        println!("log end: cursor {}", head.end_cursor);
    }
    Ok(())
}

async fn bind(
    address: std::net::SocketAddr,
    setting: &str,
) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {setting} {address}"))
}

#[allow(clippy::print_stdout)] // the command's answer, for the operator
fn handover_key(out: &std::path::Path) -> anyhow::Result<()> {
    let secret = vix_node::handover_seal::HandoverSecret::write_new(out)?;
    println!("{}", secret.public_key().to_hex());
    Ok(())
}

#[allow(clippy::print_stdout)] // the command's answer, for the operator
async fn decommission(
    node: &RegionNode,
    successor: Option<&vix_node::domain::RegionId>,
    successor_key: Option<&str>,
    dry_run: bool,
) -> anyhow::Result<()> {
    let context = node.context();
    let held = vix_node::decommission::holdings(&context.store).await?;
    let signals = held.active_signals + held.inactive_signals;
    println!(
        "region {} holds {} active and {} inactive signals; {} events not forwarded, \
         {} dead letters, {} e-mails not sent; notice log stored through cursor {}",
        context.region_id,
        held.active_signals,
        held.inactive_signals,
        held.outbox_events,
        held.dead_letters,
        held.emails_pending,
        held.log_cursor
    );
    if dry_run {
        match successor {
            Some(successor) => println!(
                "dry run: would forward the outbox, then hand {signals} signals to {successor} \
                 with their notices (unsent e-mails go with them) and delete them here; \
                 nothing changed"
            ),
            None => println!(
                "dry run: would delete {signals} signals here and at the hub, with every notice \
                 naming them in every region; nothing changed"
            ),
        }
        if held.dead_letters > 0 {
            println!("the dead letters must be resolved first (vix-node dead-letters)");
        }
        return Ok(());
    }
    let hub = node
        .hub()
        .context("the configuration has no [region.hub]: there is no hub to reach")?
        .clone();
    let Some(successor) = successor else {
        let purged = vix_node::decommission::purge(Arc::clone(context), hub).await?;
        println!(
            "deleted {} signals here and forwarded {} events to the hub; the audit log stays",
            purged.deleted, purged.forwarded
        );
        return Ok(());
    };
    let key = vix_node::handover_seal::HandoverPublicKey::parse(
        successor_key.context("--successor-key is required")?,
    )
    .context("--successor-key")?;
    let handed = vix_node::decommission::run(Arc::clone(context), hub, successor, &key).await?;
    let left = vix_node::decommission::holdings(&context.store).await?;
    println!(
        "forwarded {} events; handed {} signals to {successor} ({} handed over before); \
         {} signals left here",
        handed.forwarded,
        handed.handed_over,
        handed.ignored,
        left.active_signals + left.inactive_signals
    );
    Ok(())
}

#[allow(clippy::print_stdout)] // the command's answer, for the operator
async fn dead_letters(
    store: &RegionDatabase,
    region_id: &vix_node::domain::RegionId,
    adopter: Option<&vix_node::region::adoption::Adopter>,
    action: DeadLetterAction,
) -> anyhow::Result<()> {
    use vix_node::dead_letters::RetryOutcome;
    match action {
        DeadLetterAction::List { json } => {
            let letters = vix_node::dead_letters::list(store).await?;
            for letter in &letters {
                if json {
                    let line = serde_json::json!({
                        "id": letter.id,
                        "source": letter.source.as_str(),
                        "position": letter.position,
                        "signal_id": letter.signal_id,
                        "revision": letter.revision,
                        "quarantined_at": letter.quarantined_at.to_string(),
                        "reason": letter.reason,
                    });
                    println!("{line}");
                } else {
                    println!(
                        "{:>6}  {:<12}  {:>10}  {:<36}  {}  {}",
                        letter.id,
                        letter.source.as_str(),
                        letter.position,
                        letter.signal_id.as_deref().unwrap_or("-"),
                        letter.quarantined_at,
                        letter.reason
                    );
                }
            }
            if !json {
                println!("{} dead letters", letters.len());
            }
            Ok(())
        }
        DeadLetterAction::Retry { ids, all } => {
            let ids = if all {
                vix_node::dead_letters::list(store)
                    .await?
                    .iter()
                    .map(|letter| letter.id)
                    .collect()
            } else {
                ids
            };
            let now = vix_node::domain::Clock::now(&SystemClock);
            let outcomes =
                vix_node::dead_letters::retry(store, &ids, region_id, adopter, now).await?;
            let mut failed = false;
            for (id, outcome) in outcomes {
                match outcome {
                    RetryOutcome::Requeued => println!("{id}: back in the queue"),
                    RetryOutcome::Stored => println!("{id}: read and stored"),
                    RetryOutcome::StillUnreadable(why) => {
                        failed = true;
                        println!("{id}: still unreadable, kept: {why}");
                    }
                    RetryOutcome::Unknown => {
                        failed = true;
                        println!("{id}: no such dead letter");
                    }
                }
            }
            if failed {
                anyhow::bail!("some dead letters were not retried");
            }
            Ok(())
        }
    }
}

#[allow(clippy::print_stdout)] // the command's answer, for the operator
fn report_import(report: &vix_node::mutations::ImportReport) {
    println!(
        "mutations applied: {} deaths ({} signals deleted), {} changes of address (nothing to do)",
        report.deaths, report.signals_deleted, report.moves
    );
}

#[allow(clippy::print_stdout)] // the command's answer, for the operator
fn report_intact(database: &DatabaseLocation, entries: u64) {
    println!("audit log of {database} intact: {entries} entries");
}

/// Listens for SIGTERM and Ctrl-C (SIGINT) from now on; the future completes on either.
/// SIGHUP is taken too, and does not end the node. The
/// handlers are installed here, before the node listens: installed when the future is first
/// polled, a SIGTERM sent as soon as the node answered was seen killing it instead.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
    // SIGHUP re-reads the CRLs (`tls`), where CRLs are configured; listened for here too so
    // that it never ends a node that has none (its default action would).
    let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    Ok(async move {
        loop {
            tokio::select! {
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
                _ = hangup.recv() => tracing::info!("SIGHUP: CRLs re-read where configured"),
            }
        }
        tracing::info!("shutting down");
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    Ok(async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down");
    })
}
