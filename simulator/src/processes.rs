//! Process mode: the hub and every region as real `vix-node` processes on SQLite files, each
//! killed with `kill -9` at moments drawn from the seed while professionals register and
//! withdraw, and started again on its address. Nodes run on the real clock, so the workload is
//! rounds within today rather than simulated years; a professional's front-end retries a
//! request whose answer it never got with the same request id, as a real one would, and the
//! oracle takes an operation as acknowledged only once an answer came.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use tonic::Code;
use tonic::transport::Channel;
use vix_node::domain::Clock;
use vix_protocol::region::v1::region_service_client::RegionServiceClient;
use vix_tests::process::{self, NodeProcess};

use crate::federation::{organisation_id, region_id, spec};
use crate::ledger::{Ledger, RegistrationAck, all_matches};
use crate::population::{Population, region_weights};
use crate::report::{Backlog, Day, Fault, Parameters, Report};
use crate::requests::{self, Ack, Operation, Pipeline, retrying};
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

struct Node {
    role: &'static str,
    config: PathBuf,
    log: PathBuf,
    process: NodeProcess,
}

impl Node {
    async fn start(
        binary: &Path,
        role: &'static str,
        config: PathBuf,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let process = NodeProcess::start(binary, role, &config, &[], &log).await?;
        Ok(Self {
            role,
            config,
            log,
            process,
        })
    }

    async fn kill_and_restart(&mut self, binary: &Path) -> anyhow::Result<()> {
        self.process.kill_9().await?;
        self.process = NodeProcess::start(binary, self.role, &self.config, &[], &self.log).await?;
        Ok(())
    }
}

/// Runs `options` with real processes in `dir`: `options.days` rounds of today, `kills` kills.
pub async fn run(options: &Options, kills: u32, dir: &Path) -> anyhow::Result<Report> {
    let started = Instant::now();
    anyhow::ensure!(
        !dir.join("pki").exists(),
        "{} holds an earlier run: a run needs a folder of its own",
        dir.display()
    );
    let binary = process::vix_node_binary()?;
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
    let schedule = kill_schedule(
        options.seed,
        kills,
        options.days,
        options.regions,
        per_round,
    );

    let hub_addr = process::free_port()?;
    let hub_config = process::hub_config(dir, &pki, hub_addr)?;
    let mut hub = Node::start(&binary, "hub", hub_config, dir.join("hub.log")).await?;
    let mut regions = Vec::new();
    let mut clients = Vec::new();
    for region in 0..options.regions {
        let id = region_id(region);
        let listen = process::free_port()?;
        let config = process::region_config(
            dir,
            &pki,
            &id,
            &listen.to_string(),
            Some(hub_addr),
            &persons,
        )?;
        let node = Node::start(&binary, "region", config, dir.join(format!("{id}.log"))).await?;
        let mut of_region = Vec::new();
        for kind in 0..KINDS.len() {
            let organisation = organisation_id(u32::try_from(region * KINDS.len() + kind)?);
            let (cert, key) = vix_certs_dev::files::organisation(&organisation);
            of_region.push(RegionServiceClient::new(vix_tests::channel_in(
                &pki,
                node.process.addr,
                &cert,
                &key,
            )));
        }
        clients.push(of_region);
        regions.push(node);
    }
    let databases: Vec<(String, PathBuf)> = (0..options.regions)
        .map(|region| {
            (
                region_id(region),
                dir.join(format!("{}.sqlite", region_id(region))),
            )
        })
        .collect();
    let hub_db = dir.join("hub.sqlite");

    let mut report = Report {
        parameters: Parameters {
            seed: options.seed,
            mode: "process".into(),
            regions: options.regions,
            families: options.families,
            days: options.days,
            first_day: today.to_string(),
            concurrency: options.concurrency,
            fault_kinds: vec!["kill".into()],
            schedule: schedule
                .iter()
                .map(|kill| {
                    format!(
                        "round {} after {} registrations: kill -9 {}",
                        kill.round,
                        kill.after,
                        kill.target.map_or("hub".into(), region_id)
                    )
                })
                .collect(),
            region_weights: Vec::new(),
        },
        persons: population.persons.len() as u64,
        ..Report::default()
    };
    let mut ledger = Ledger::default();
    let mut load = vec![0u64; options.regions];
    let elapsed = |from: Instant| u64::try_from(from.elapsed().as_millis()).unwrap_or(u64::MAX);
    let quiet = |bound: Duration| {
        let (hub_db, databases) = (hub_db.clone(), databases.clone());
        async move {
            let from = Instant::now();
            loop {
                if process::backlog(&hub_db, &databases).await? == (0, 0) {
                    return anyhow::Ok(u64::try_from(from.elapsed().as_millis()).unwrap_or(0));
                }
                anyhow::ensure!(
                    from.elapsed() < bound,
                    "the federation did not become quiet within {bound:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    let mut kills = schedule.iter().peekable();
    for round in 0..options.days {
        // The planner's day moves on so that cases grow over the rounds; the nodes stay on
        // today, so every planned removal date is a year from today.
        let day = today.checked_add(jiff::Span::new().days(i64::from(round)))?;
        let changes = workload.changes(day, &population, &ledger.oracle, per_round);
        let change_count = changes.len() as u64;
        let mut pipeline = Pipeline::new(options.concurrency);
        for change in changes {
            let Change::Withdraw {
                signal,
                unjustified,
            } = change
            else {
                continue;
            };
            let organisation = ledger.owner(signal)?;
            let request = requests::withdrawal(ledger.number(signal)?, organisation, unjustified);
            let client = client_of(&clients, organisation)?;
            let operation: Operation = Box::pin(async move {
                let mut uncertain = false;
                // After a lost answer, "already inactive" or "not found" is the first
                // attempt's work.
                retrying(
                    || {
                        let (mut client, request) = (client.clone(), request.clone());
                        async move { client.withdraw_signal(request).await.map(|_| ()) }
                    },
                    &mut uncertain,
                    |code| matches!(code, Code::FailedPrecondition | Code::NotFound),
                )
                .await
                .context("a withdrawal")?;
                Ok(Ack::Changed(change))
            });
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
        quiet(options.convergence_max).await?;

        let planned = workload.registrations(day, &population, &ledger.oracle, 1);
        let count = planned.len() as u64;
        let mut phase: Vec<RegistrationAck> = Vec::new();
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
                let node = match kill.target {
                    None => &mut hub,
                    Some(region) => regions.get_mut(region).context("no such region")?,
                };
                node.kill_and_restart(&binary).await?;
                let (outbox, hub_unacked) = process::backlog(&hub_db, &databases).await?;
                report.backlog.push(Backlog {
                    at_ms,
                    outbox,
                    hub_unacked,
                });
                report.faults.push(Fault {
                    kind: "kill".into(),
                    target: kill.target.map_or("hub".into(), region_id),
                    day: format!("round {round}"),
                    at_ms,
                    duration_ms: elapsed(from),
                    convergence_ms: 0,
                });
            }
            let Some(mut planned) = planned else {
                break;
            };
            planned.planned_removal = today.checked_add(jiff::Span::new().years(1))?;
            load[planned.region()] += 1;
            let operation = register(&clients, &population, planned, today)?;
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
        ledger.close_phase(&population, phase);
        let settle = quiet(options.convergence_max).await?;
        // A kill's convergence: the round's settling after its last kill.
        for fault in report
            .faults
            .iter_mut()
            .filter(|f| f.day == format!("round {round}"))
        {
            fault.convergence_ms = settle;
        }
        report.convergence_ms = report.convergence_ms.max(settle);
        report.days.push(Day {
            day: format!("round {round}"),
            registrations: count,
            changes: change_count,
            youth_notices: ledger.oracle.told_today.0,
            family_notices: ledger.oracle.told_today.1,
            settle_ms: settle,
        });
        ledger.oracle.told_today = (0, 0);
        if let Some(on_day) = &options.on_day {
            (on_day.0)(&format!("round {round}"), ledger.signals);
        }
    }

    let mut seen = Vec::new();
    for of_region in &clients {
        for client in of_region {
            seen.extend(all_matches(&mut client.clone()).await?);
        }
    }
    report.verdict = ledger.verdict(&seen);
    for (region, db) in &databases {
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
    for node in regions.iter_mut().chain(std::iter::once(&mut hub)) {
        node.process.kill_9().await?;
    }
    let bsns: HashSet<&str> = population.persons.iter().map(|p| p.bsn.as_str()).collect();
    report.privacy = crate::privacy::scan(dir, &bsns)?;
    Ok(report)
}

fn client_of(
    clients: &[Vec<RegionServiceClient<Channel>>],
    organisation: u32,
) -> anyhow::Result<RegionServiceClient<Channel>> {
    let index = organisation as usize;
    clients
        .get(index / KINDS.len())
        .and_then(|of_region| of_region.get(index % KINDS.len()))
        .cloned()
        .context("no such organisation")
}

fn register(
    clients: &[Vec<RegionServiceClient<Channel>>],
    population: &Population,
    planned: Planned,
    today: jiff::civil::Date,
) -> anyhow::Result<Operation> {
    let request = requests::registration(population, &planned, today);
    let client = client_of(clients, planned.organisation)?;
    Ok(Box::pin(async move {
        let mut uncertain = false;
        let response = retrying(
            || {
                let (mut client, request) = (client.clone(), request.clone());
                async move {
                    client
                        .register_signal(request)
                        .await
                        .map(tonic::Response::into_inner)
                }
            },
            &mut uncertain,
            |_| false,
        )
        .await
        .with_context(|| format!("registration of signal #{}", planned.signal))?;
        let Some(response) = response else {
            anyhow::bail!("registration of signal #{} has no answer", planned.signal);
        };
        let signal = response.signal.context("a registered signal")?;
        Ok(Ack::Registered((
            planned,
            signal.signal_id,
            response.already_registered,
        )))
    }))
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
