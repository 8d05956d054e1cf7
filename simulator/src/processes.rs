//! Process mode: the hub and every region as real `vix-node` processes on SQLite files, each
//! region reaching the hub through a fault proxy of the simulator. Nodes run on the real clock,
//! so the workload is rounds within today rather than simulated years. Faults: `kill -9` of
//! the hub or a region at moments drawn from the seed (started again on its address), and the
//! in-process vocabulary (hub or region down, links cut, stalled, delayed, replies lost) on
//! rounds drawn from the seed. A professional's front-end sends a request whose answer it never
//! got again with the same request id, as a real one would; the oracle takes an operation as
//! acknowledged only once an answer came.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use tonic::transport::Channel;
use vix_node::domain::Clock;
use vix_protocol::region::v1::region_service_client::RegionServiceClient;
use vix_tests::process::{self, NodeProcess};

use crate::faults::{self, FaultKind, Scheduled};
use crate::federation::{LINK_DELAY, organisation_id, region_id, spec};
use crate::ledger::{Ledger, RegistrationAck, all_matches};
use crate::population::{Population, region_weights};
use crate::proxy::{FaultProxy, LinkMode};
use crate::report::{Backlog, Day, Fault, Parameters, Report};
use crate::requests::{self, Ack, Operation, Pipeline};
use crate::run::Options;
use crate::workload::{Change, KINDS, Planned, Workload};

/// One `kill -9` of the schedule: in round `round`, after `after` of its registrations were
/// sent, the hub (`None`) or a region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    pub round: u32,
    pub after: usize,
    pub target: Option<usize>,
}

/// `kills` kills over `rounds` rounds, drawn from the seed, in order.
pub fn kill_schedule(
    seed: u64,
    kills: u32,
    rounds: u32,
    regions: usize,
    per_round: usize,
) -> Vec<Kill> {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x4b49_4c4c_0000_0009);
    let mut schedule: Vec<Kill> = (0..kills)
        .map(|_| Kill {
            round: rng.u32(..rounds.max(1)),
            after: rng.usize(..per_round.max(1)),
            target: rng.usize(..=regions).checked_sub(1),
        })
        .collect();
    schedule.sort_by_key(|kill| (kill.round, kill.after));
    schedule
}

/// The other faults of a process run: the in-process vocabulary on rounds drawn from the seed.
pub fn other_faults(options: &Options) -> Vec<Scheduled> {
    let kinds: Vec<FaultKind> = options
        .faults
        .iter()
        .copied()
        .filter(|kind| *kind != FaultKind::Kill)
        .collect();
    faults::schedule(
        options.seed,
        &kinds,
        options.days,
        options.regions,
        options.faults_per_kind,
    )
}

struct Node {
    role: &'static str,
    config: PathBuf,
    log: PathBuf,
    /// `None` while it is down on purpose.
    process: Option<NodeProcess>,
}

impl Node {
    async fn start(
        binary: &Path,
        role: &'static str,
        config: PathBuf,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let mut node = Self {
            role,
            config,
            log,
            process: None,
        };
        node.up(binary).await?;
        Ok(node)
    }

    async fn up(&mut self, binary: &Path) -> anyhow::Result<()> {
        if self.process.is_none() {
            self.process =
                Some(NodeProcess::start(binary, self.role, &self.config, &[], &self.log).await?);
        }
        Ok(())
    }

    async fn kill_9(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.process.take() {
            process.kill_9().await?;
        }
        Ok(())
    }

    async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.process.take() {
            process.stop().await?;
        }
        Ok(())
    }
}

/// The running federation of processes.
struct Cluster {
    binary: PathBuf,
    hub: Node,
    regions: Vec<Node>,
    /// The fault proxy on each region's way to the hub.
    links: Vec<FaultProxy>,
    /// Per region, a client per organisation kind.
    clients: Vec<Vec<RegionServiceClient<Channel>>>,
    hub_db: PathBuf,
    databases: Vec<(String, PathBuf)>,
}

impl Cluster {
    async fn start(dir: &Path, pki: &Path, persons: &Path, regions: usize) -> anyhow::Result<Self> {
        let binary = process::vix_node_binary()?;
        let hub_addr = process::free_port()?;
        let hub_config = process::hub_config(dir, pki, hub_addr)?;
        let hub = Node::start(&binary, "hub", hub_config, dir.join("hub.log")).await?;
        let mut cluster = Self {
            binary,
            hub,
            regions: Vec::new(),
            links: Vec::new(),
            clients: Vec::new(),
            hub_db: dir.join("hub.sqlite"),
            databases: Vec::new(),
        };
        for region in 0..regions {
            let id = region_id(region);
            let link = FaultProxy::start(hub_addr).await?;
            let listen = process::free_port()?;
            let config = process::region_config(
                dir,
                pki,
                &id,
                &listen.to_string(),
                Some(link.addr()),
                persons,
            )?;
            let node = Node::start(
                &cluster.binary,
                "region",
                config,
                dir.join(format!("{id}.log")),
            )
            .await?;
            let mut of_region = Vec::new();
            for kind in 0..KINDS.len() {
                let organisation = organisation_id(u32::try_from(region * KINDS.len() + kind)?);
                let (cert, key) = vix_certs_dev::files::organisation(&organisation);
                of_region.push(RegionServiceClient::new(vix_tests::channel_in(
                    pki, listen, &cert, &key,
                )));
            }
            cluster.clients.push(of_region);
            cluster.regions.push(node);
            cluster.links.push(link);
            cluster
                .databases
                .push((id.clone(), dir.join(format!("{id}.sqlite"))));
        }
        Ok(cluster)
    }

    fn node(&mut self, target: Option<usize>) -> anyhow::Result<&mut Node> {
        match target {
            None => Ok(&mut self.hub),
            Some(region) => self.regions.get_mut(region).context("no such region"),
        }
    }

    fn client(&self, organisation: u32) -> anyhow::Result<RegionServiceClient<Channel>> {
        let index = organisation as usize;
        self.clients
            .get(index / KINDS.len())
            .and_then(|of_region| of_region.get(index % KINDS.len()))
            .cloned()
            .context("no such organisation")
    }

    async fn backlog(&self) -> anyhow::Result<(u64, u64)> {
        process::backlog(&self.hub_db, &self.databases).await
    }

    /// Waits for the quiet watermark; returns how long it took (ms).
    async fn quiet(&self, bound: Duration) -> anyhow::Result<u64> {
        let from = Instant::now();
        while self.backlog().await? != (0, 0) {
            anyhow::ensure!(
                from.elapsed() < bound,
                "the federation did not become quiet within {bound:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(u64::try_from(from.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Starts `fault`; returns the region that is down, if one is.
    async fn inject(&mut self, fault: &Scheduled) -> anyhow::Result<Option<usize>> {
        let mode = match fault.kind {
            FaultKind::HubDown => {
                self.hub.stop().await?;
                return Ok(None);
            }
            FaultKind::RegionDown => {
                self.node(Some(fault.region))?.stop().await?;
                return Ok(Some(fault.region));
            }
            FaultKind::LinkCut => LinkMode::Cut,
            FaultKind::LinkStall => LinkMode::Stall,
            FaultKind::LinkDelay => LinkMode::Delay(LINK_DELAY),
            FaultKind::Replay => LinkMode::DropReplies,
            FaultKind::Kill => anyhow::bail!("kills have their own schedule"),
        };
        self.links
            .get(fault.region)
            .context("no such region")?
            .set(mode);
        Ok(None)
    }

    async fn heal(&mut self, fault: &Scheduled) -> anyhow::Result<()> {
        let binary = self.binary.clone();
        match fault.kind {
            FaultKind::HubDown => self.hub.up(&binary).await,
            FaultKind::RegionDown => self.node(Some(fault.region))?.up(&binary).await,
            _ => {
                self.links
                    .get(fault.region)
                    .context("no such region")?
                    .set(LinkMode::Pass);
                Ok(())
            }
        }
    }

    async fn shutdown(&mut self) -> anyhow::Result<()> {
        for node in self
            .regions
            .iter_mut()
            .chain(std::iter::once(&mut self.hub))
        {
            node.kill_9().await?;
        }
        for link in &self.links {
            link.shutdown().await;
        }
        Ok(())
    }
}

/// Runs `options` with real processes in `dir`: `options.days` rounds of today, `kills` kills,
/// and `options.faults` (other than kills) on rounds drawn from the seed.
pub async fn run(options: &Options, kills: u32, dir: &Path) -> anyhow::Result<Report> {
    let started = Instant::now();
    anyhow::ensure!(
        !dir.join("pki").exists(),
        "{} holds an earlier run: a run needs a folder of its own",
        dir.display()
    );
    let today = vix_node::domain::SystemClock.today();
    let mut rng = fastrand::Rng::with_seed(options.seed);
    let weights = region_weights(&mut rng, options.regions);
    let population = Population::generate(&mut rng, options.families, &weights, today);
    let persons = dir.join("persons.json");
    std::fs::write(&persons, population.registry_json()?)
        .with_context(|| format!("writing {}", persons.display()))?;
    let pki = dir.join("pki");
    vix_certs_dev::generate(&pki, &spec(options.regions)).context("the simulation's PKI")?;

    let mut workload = Workload::new(
        options.seed,
        options.rates.clone(),
        weights.clone(),
        &population,
    );
    workload.only_withdrawals = true;
    let per_round = workload.daily_rate().max(1);
    let kill_plan = kill_schedule(
        options.seed,
        kills,
        options.days,
        options.regions,
        per_round,
    );
    let fault_plan = other_faults(options);
    let mut cluster = Cluster::start(dir, &pki, &persons, options.regions).await?;

    let mut report = Report {
        parameters: Parameters {
            seed: options.seed,
            mode: "process".into(),
            regions: options.regions,
            families: options.families,
            days: options.days,
            first_day: today.to_string(),
            concurrency: options.concurrency,
            fault_kinds: options.faults.iter().map(|k| k.name().to_owned()).collect(),
            schedule: kill_plan
                .iter()
                .map(|kill| {
                    format!(
                        "round {} after {} registrations: kill -9 {}",
                        kill.round,
                        kill.after,
                        kill.target.map_or("hub".into(), region_id)
                    )
                })
                .chain(fault_plan.iter().map(|fault| format!("round {fault}")))
                .collect(),
            region_weights: Vec::new(),
        },
        persons: population.persons.len() as u64,
        ..Report::default()
    };
    let mut ledger = Ledger::default();
    let mut load = vec![0u64; options.regions];
    let elapsed = |from: Instant| u64::try_from(from.elapsed().as_millis()).unwrap_or(u64::MAX);

    let mut kills = kill_plan.iter().peekable();
    for round in 0..options.days {
        let round_name = format!("round {round}");
        // The planner's day moves on so that cases grow over the rounds; the nodes stay on
        // today, so every planned removal date is a year from today.
        let day = today.checked_add(jiff::Span::new().days(i64::from(round)))?;
        let changes = workload.changes(day, &population, &ledger.oracle, per_round);
        let change_count = changes.len() as u64;
        let mut pipeline = Pipeline::new(options.concurrency);
        for change in changes {
            let operation = withdrawal(&cluster, &ledger, change)?;
            for ack in pipeline.push(operation).await? {
                if let Ack::Changed(change) = ack {
                    ledger.changed(change);
                }
            }
        }
        for ack in pipeline.drain().await? {
            if let Ack::Changed(change) = ack {
                ledger.changed(change);
            }
        }
        cluster.quiet(options.convergence_max).await?;

        let fault = fault_plan.iter().find(|fault| fault.day == round);
        let burst = if fault.is_some() { 3 } else { 1 };
        let planned = workload.registrations(day, &population, &ledger.oracle, burst);
        let count = planned.len() as u64;
        let fault_started = elapsed(started);
        let down = match fault {
            Some(fault) => cluster.inject(fault).await?,
            None => None,
        };
        let mut phase: Vec<RegistrationAck> = Vec::new();
        let mut held = Vec::new();
        let total = planned.len();
        // Kills drawn past the round's last registration come after it, with the round's
        // work still in flight.
        let moments = planned.into_iter().map(Some).chain(std::iter::once(None));
        for (sent, planned) in moments.enumerate() {
            while let Some(kill) =
                kills.next_if(|kill| kill.round == round && (kill.after <= sent || sent == total))
            {
                let from = Instant::now();
                let at_ms = elapsed(started);
                let binary = cluster.binary.clone();
                // A node down for this round's fault stays down: the kill hits the hub
                // instead of a region that is down, region r00 instead of a hub that is down.
                let target = if cluster.node(kill.target)?.process.is_some() {
                    kill.target
                } else {
                    kill.target.map_or(Some(0), |_| None)
                };
                let node = cluster.node(target)?;
                node.kill_9().await?;
                node.up(&binary).await?;
                let (outbox, hub_unacked) = cluster.backlog().await?;
                report.backlog.push(Backlog {
                    at_ms,
                    outbox,
                    hub_unacked,
                });
                report.faults.push(Fault {
                    kind: FaultKind::Kill.name().into(),
                    target: target.map_or("hub".into(), region_id),
                    day: round_name.clone(),
                    at_ms,
                    duration_ms: elapsed(from),
                    convergence_ms: 0,
                });
            }
            let Some(mut planned) = planned else {
                break;
            };
            planned.planned_removal = today.checked_add(jiff::Span::new().years(1))?;
            if down == Some(planned.region()) {
                held.push(planned);
                continue;
            }
            load[planned.region()] += 1;
            let operation = register(&cluster, &population, planned, today)?;
            for ack in pipeline.push(operation).await? {
                if let Ack::Registered(registered) = ack {
                    phase.push(registered);
                }
            }
        }
        for ack in pipeline.drain().await? {
            if let Ack::Registered(registered) = ack {
                phase.push(registered);
            }
        }
        if let Some(fault) = fault {
            let hold_from = Instant::now();
            while hold_from.elapsed() < options.fault_hold {
                let (outbox, hub_unacked) = cluster.backlog().await?;
                report.backlog.push(Backlog {
                    at_ms: elapsed(started),
                    outbox,
                    hub_unacked,
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            cluster.heal(fault).await?;
            let healed = elapsed(started);
            for planned in held {
                load[planned.region()] += 1;
                let operation = register(&cluster, &population, planned, today)?;
                for ack in pipeline.push(operation).await? {
                    if let Ack::Registered(registered) = ack {
                        phase.push(registered);
                    }
                }
            }
            for ack in pipeline.drain().await? {
                if let Ack::Registered(registered) = ack {
                    phase.push(registered);
                }
            }
            let convergence = cluster.quiet(options.convergence_max).await?;
            let (outbox, hub_unacked) = cluster.backlog().await?;
            report.backlog.push(Backlog {
                at_ms: elapsed(started),
                outbox,
                hub_unacked,
            });
            report.faults.push(Fault {
                kind: fault.kind.name().into(),
                target: if fault.kind == FaultKind::HubDown {
                    "hub".into()
                } else {
                    region_id(fault.region)
                },
                day: round_name.clone(),
                at_ms: fault_started,
                duration_ms: healed - fault_started,
                convergence_ms: convergence,
            });
        }
        ledger.close_phase(&population, phase);
        let settle = cluster.quiet(options.convergence_max).await?;
        for fault in report
            .faults
            .iter_mut()
            .filter(|f| f.day == round_name && f.kind == FaultKind::Kill.name())
        {
            fault.convergence_ms = settle;
        }
        report.convergence_ms = report
            .faults
            .iter()
            .map(|f| f.convergence_ms)
            .max()
            .unwrap_or(0);
        report.days.push(Day {
            day: round_name.clone(),
            registrations: count,
            changes: change_count,
            youth_notices: ledger.oracle.told_today.0,
            family_notices: ledger.oracle.told_today.1,
            settle_ms: settle,
        });
        ledger.oracle.told_today = (0, 0);
        if let Some(on_day) = &options.on_day {
            (on_day.0)(&round_name, ledger.signals);
        }
    }

    let mut seen = Vec::new();
    for of_region in &cluster.clients {
        for client in of_region {
            seen.extend(all_matches(&mut client.clone()).await?);
        }
    }
    report.verdict = ledger.verdict(&seen);
    for (region, db) in &cluster.databases {
        if let Some(gap) = crate::check::notices_without_email(region, db).await? {
            report.verdict.unexpected.push(gap);
        }
    }
    report.operations = ledger.operations.clone();
    report.signals = ledger.signals;
    report.load = load
        .iter()
        .enumerate()
        .map(|(region, count)| (region_id(region), *count))
        .collect();
    report.wall_ms = elapsed(started);
    cluster.shutdown().await?;
    let bsns: HashSet<&str> = population.persons.iter().map(|p| p.bsn.as_str()).collect();
    report.privacy = crate::privacy::scan(dir, &bsns)?;
    Ok(report)
}

/// A withdrawal (the only change real processes get) as an operation that retries.
fn withdrawal(cluster: &Cluster, ledger: &Ledger, change: Change) -> anyhow::Result<Operation> {
    let Change::Withdraw {
        signal,
        unjustified,
    } = change
    else {
        anyhow::bail!("process mode makes only withdrawals");
    };
    let organisation = ledger.owner(signal)?;
    let request = requests::withdrawal(ledger.number(signal)?, organisation, unjustified);
    Ok(requests::withdrawing(
        cluster.client(organisation)?,
        request,
        change,
        "a withdrawal".into(),
    ))
}

fn register(
    cluster: &Cluster,
    population: &Population,
    planned: Planned,
    today: jiff::civil::Date,
) -> anyhow::Result<Operation> {
    let request = requests::registration(population, &planned, today);
    Ok(requests::registering(
        cluster.client(planned.organisation)?,
        request,
        planned,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kill_schedule_follows_the_seed_and_hits_hub_and_regions() {
        let one = kill_schedule(3, 24, 12, 5, 40);
        assert_eq!(one, kill_schedule(3, 24, 12, 5, 40));
        assert_eq!(one.len(), 24);
        assert!(one.iter().any(|k| k.target.is_none()));
        assert!(one.iter().any(|k| k.target.is_some()));
        assert!(
            one.windows(2)
                .all(|w| (w[0].round, w[0].after) <= (w[1].round, w[1].after))
        );
        assert_ne!(one, kill_schedule(4, 24, 12, 5, 40));
    }
}
