//! One simulation run in process: a seeded population and a workload of simulated days against
//! a federation of real nodes, faults from the seed's schedule, the oracle's expected notices
//! against what every organisation sees through `ListMatches`, and a scan of every file for the
//! population's BSNs.
//!
//! A day runs in three steps, each ended by the federation's quiet watermark: the clock moves
//! to the day and every node sweeps (expiry, 23rd birthdays); the day's changes (withdrawals,
//! updates, erasure orders, deaths, moves), which commute; the day's registrations, which the
//! matchers may order as they like (the oracle allows for it), with the day's fault if one is
//! scheduled.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vix_node::store::database_location::DatabaseLocation;

use anyhow::Context;
use jiff::civil::Date;
use tonic::Code;
use vix_node::domain::ManualClock;
use vix_protocol::region::v1 as pb;

use crate::faults::{self, FaultKind, Scheduled};
use crate::federation::{Federation, organisation_id, region_id};
use crate::ledger::{Ledger, RegistrationAck, all_matches};
use crate::oracle::SignalRef;
use crate::population::{Population, SimRegistry, region_weights};
use crate::report::{Backlog, Day, Fault, Parameters, Report};
use crate::requests::{self, Ack, Operation, Pipeline, retrying};
use crate::workload::{Change, KINDS, Planned, Rates, Workload, organisation_region};

/// What to run. The same options give the same population, workload and fault schedule.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Options {
    pub seed: u64,
    pub regions: usize,
    pub families: usize,
    pub days: u32,
    pub first_day: Date,
    pub rates: Rates,
    /// Operations in flight at once.
    pub concurrency: usize,
    pub faults: Vec<FaultKind>,
    pub faults_per_kind: u32,
    /// How long the federation may take to become quiet after a fault is healed.
    pub convergence_max: Duration,
    /// How long a fault stays on at least (a fault's day is short in wall time).
    pub fault_hold: Duration,
    /// The nodes' maximum connection age in seconds (they send GOAWAY and the clients open
    /// new connections), when not their default of 15 minutes.
    pub connection_age_secs: Option<u64>,
    /// The hub's database when not a SQLite file in the run's folder: a PostgreSQL URL.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "shown_location"
    )]
    pub hub_database: Option<DatabaseLocation>,
    /// Called after every simulated day with the day and the signals so far.
    #[serde(skip)]
    pub on_day: Option<OnDay>,
}

/// A database location in the report as it is shown in logs: without credentials.
fn shown_location<S: serde::Serializer>(
    location: &Option<DatabaseLocation>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match location {
        Some(location) => serializer.serialize_str(&location.to_string()),
        None => serializer.serialize_none(),
    }
}

/// A progress hook: the day done and the signals so far.
#[derive(Clone)]
pub struct OnDay(pub Arc<DayHook>);

pub type DayHook = dyn Fn(&str, u64) + Send + Sync;

impl std::fmt::Debug for OnDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnDay")
    }
}

impl Options {
    /// A small run for CI: four regions, one simulated year, every in-process fault once.
    pub fn quick(seed: u64) -> Self {
        Self {
            seed,
            regions: 4,
            families: 400,
            days: 365,
            first_day: jiff::civil::date(2026, 11, 25),
            rates: Rates {
                registrations_per_year: 1_200,
                elsewhere_percent: 20,
                sibling_percent: 35,
            },
            concurrency: 16,
            faults: FaultKind::parse_list("all").unwrap_or_default(),
            faults_per_kind: 1,
            convergence_max: Duration::from_secs(60),
            fault_hold: Duration::from_millis(500),
            connection_age_secs: None,
            hub_database: None,
            on_day: None,
        }
    }

    /// The national scale of DOMAIN.md section 10: 65 regions, 300,000 signals a year.
    pub fn national(seed: u64, years: u32) -> Self {
        Self {
            regions: 65,
            families: 150_000 * years as usize,
            days: 365 * years,
            rates: Rates {
                registrations_per_year: 300_000,
                elsewhere_percent: 15,
                sibling_percent: 35,
            },
            concurrency: 48,
            faults_per_kind: 2,
            convergence_max: Duration::from_secs(300),
            fault_hold: Duration::from_secs(3),
            ..Self::quick(seed)
        }
    }
}

/// Runs the simulation in `dir` (kept for inspection).
pub async fn run(options: &Options, dir: &Path) -> anyhow::Result<Report> {
    run_with(options, dir, |_| {}).await
}

/// Like [`run`], calling `on_start` once the federation is up, before the workload (tests use it
/// to break the hub on purpose).
pub async fn run_with(
    options: &Options,
    dir: &Path,
    on_start: impl FnOnce(&Federation),
) -> anyhow::Result<Report> {
    let started = Instant::now();
    // Nodes on an earlier run's databases would answer this run's requests with that run's
    // signals (the request ids repeat with the seed).
    anyhow::ensure!(
        !dir.join("pki").exists() && !dir.join("hub.sqlite").exists(),
        "{} holds an earlier run: a run needs a folder of its own",
        dir.display()
    );
    let mut rng = fastrand::Rng::with_seed(options.seed);
    let weights = region_weights(&mut rng, options.regions);
    let population = Population::generate(&mut rng, options.families, &weights, options.first_day);
    let schedule = faults::schedule(
        options.seed,
        &options.faults,
        options.days,
        options.regions,
        options.faults_per_kind,
    );
    let report = Report {
        parameters: Parameters {
            seed: options.seed,
            mode: "in-process".into(),
            regions: options.regions,
            families: options.families,
            days: options.days,
            first_day: options.first_day.to_string(),
            concurrency: options.concurrency,
            fault_kinds: options.faults.iter().map(|k| k.name().to_owned()).collect(),
            schedule: schedule.iter().map(ToString::to_string).collect(),
            region_weights: weights
                .iter()
                .enumerate()
                .map(|(region, weight)| {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let per_year =
                        (weight * f64::from(options.rates.registrations_per_year)) as u32;
                    (region_id(region), per_year)
                })
                .collect(),
        },
        persons: population.persons.len() as u64,
        ..Report::default()
    };
    for fault in &schedule {
        tracing::info!(%fault, "fault scheduled");
    }

    // The nodes ask the in-memory registry; no registry file is written (at national size
    // it would be 600 MB of BSNs on disk for nothing).
    let persons = dir.join("persons.json");
    let registry = Arc::new(SimRegistry::new(&population)?);
    let clock = Arc::new(ManualClock::at_noon(options.first_day));
    let federation = Federation::start(
        dir,
        options.regions,
        &persons,
        registry,
        Arc::clone(&clock),
        options.connection_age_secs,
        options.hub_database.clone(),
    )
    .await?;
    on_start(&federation);

    let mut sim = Sim {
        federation,
        population: &population,
        ledger: Ledger::default(),
        report,
        started,
        concurrency: options.concurrency.max(1),
        convergence_max: options.convergence_max,
        fault_hold: options.fault_hold,
        load: vec![0; options.regions],
    };
    let mut workload = Workload::new(options.seed, options.rates.clone(), weights, &population);
    for index in 0..options.days {
        let day = options
            .first_day
            .checked_add(jiff::Span::new().days(i64::from(index)))?;
        let fault = schedule.iter().find(|fault| fault.day == index);
        sim.day(&mut workload, day, fault).await?;
        if let Some(on_day) = &options.on_day {
            (on_day.0)(&day.to_string(), sim.report.signals);
        }
    }
    sim.finish(dir).await
}

struct Sim<'p> {
    federation: Federation,
    population: &'p Population,
    ledger: Ledger,
    report: Report,
    started: Instant,
    concurrency: usize,
    convergence_max: Duration,
    fault_hold: Duration,
    load: Vec<u64>,
}

impl Sim<'_> {
    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn day(
        &mut self,
        workload: &mut Workload,
        day: Date,
        fault: Option<&Scheduled>,
    ) -> anyhow::Result<()> {
        self.federation
            .clock
            .set(vix_node::domain::Clock::now(&ManualClock::at_noon(day)));
        self.federation.sweep().await?;
        let (expired, birthdays) = self.ledger.oracle.start_day(day);
        self.ledger.operations.expired += expired;
        self.ledger.operations.birthdays += birthdays;
        self.ledger.oracle.told_today = (0, 0);
        self.quiet(self.convergence_max).await?;

        let registrations_today = workload.daily_rate();
        let changes = workload.changes(
            day,
            self.population,
            &self.ledger.oracle,
            registrations_today,
        );
        let change_count = changes.len() as u64;
        let mut pipeline = Pipeline::new(self.concurrency);
        for change in changes {
            let operation = self.change(change).await?;
            for ack in pipeline.push(operation).await? {
                self.acknowledged(ack, &mut Vec::new());
            }
        }
        for ack in pipeline.drain().await? {
            self.acknowledged(ack, &mut Vec::new());
        }
        self.quiet(self.convergence_max).await?;

        let burst = if fault.is_some() { 3 } else { 1 };
        let planned = workload.registrations(day, self.population, &self.ledger.oracle, burst);
        let count = planned.len() as u64;
        let fault_started = self.elapsed_ms();
        let down = match fault {
            Some(fault) => self.inject(fault).await?,
            None => None,
        };
        let mut phase = Vec::new();
        let mut held = Vec::new();
        let mut pipeline = Pipeline::new(self.concurrency);
        for (sent, planned) in planned.into_iter().enumerate() {
            if down == Some(planned.region()) {
                held.push(planned);
                continue;
            }
            let operation = self.register(planned)?;
            for ack in pipeline.push(operation).await? {
                self.acknowledged(ack, &mut phase);
            }
            if fault.is_some() && sent % 100 == 0 {
                self.sample_backlog().await;
            }
        }
        for ack in pipeline.drain().await? {
            self.acknowledged(ack, &mut phase);
        }
        if let Some(fault) = fault {
            let bit = self.hold(fault).await;
            self.heal(fault).await?;
            let healed = self.elapsed_ms();
            for planned in held {
                let operation = self.register(planned)?;
                for ack in pipeline.push(operation).await? {
                    self.acknowledged(ack, &mut phase);
                }
            }
            for ack in pipeline.drain().await? {
                self.acknowledged(ack, &mut phase);
            }
            let convergence = self.quiet(self.convergence_max).await?;
            // The backlog is empty again: the plot shows the fault's end, not a slope to the
            // next fault's first sample.
            self.sample_backlog().await;
            self.report.convergence_ms = self.report.convergence_ms.max(convergence);
            self.report.faults.push(Fault {
                kind: fault.kind.name().into(),
                target: match (fault.kind, bit) {
                    (FaultKind::HubDown, _) => "hub".into(),
                    (_, Some(bit)) => format!("{} ({bit})", region_id(fault.region)),
                    (_, None) => region_id(fault.region),
                },
                day: day.to_string(),
                at_ms: fault_started,
                duration_ms: healed - fault_started,
                convergence_ms: convergence,
            });
            tracing::info!(fault = %fault, convergence_ms = convergence, "fault healed");
        }
        self.ledger.close_phase(self.population, phase);
        let settle = self.quiet(self.convergence_max).await?;
        self.report.days.push(Day {
            day: day.to_string(),
            registrations: count,
            changes: change_count,
            youth_notices: self.ledger.oracle.told_today.0,
            family_notices: self.ledger.oracle.told_today.1,
            settle_ms: settle,
        });
        Ok(())
    }

    /// Starts `fault`; returns the region that is down, if one is.
    async fn inject(&mut self, fault: &Scheduled) -> anyhow::Result<Option<usize>> {
        tracing::info!(%fault, "fault injected");
        self.sample_backlog().await;
        match fault.kind {
            FaultKind::HubDown => self.federation.stop_hub().await?,
            FaultKind::RegionDown => {
                self.federation.stop_region(fault.region).await?;
                return Ok(Some(fault.region));
            }
            FaultKind::LinkCut
            | FaultKind::LinkStall
            | FaultKind::LinkDelay
            | FaultKind::Replay => self.federation.link_fault(fault.region, fault.kind)?,
            FaultKind::Kill => anyhow::bail!("kill faults need process mode"),
        }
        Ok(None)
    }

    /// Keeps `fault` on for the hold time, sampling the backlog; a replay is held until the
    /// hub's replies were really lost (bounded: an idle region sends nothing to lose). Says
    /// what a link fault did.
    async fn hold(&mut self, fault: &Scheduled) -> Option<String> {
        let from = Instant::now();
        loop {
            self.sample_backlog().await;
            let stats = self.federation.link_stats(fault.region);
            let waiting = from.elapsed() < self.fault_hold
                || (fault.kind == FaultKind::Replay
                    && stats.is_some_and(|s| s.replies_dropped == 0)
                    && from.elapsed() < 10 * self.fault_hold);
            if !waiting {
                return match fault.kind {
                    FaultKind::Replay => {
                        stats.map(|s| format!("{} reply bytes lost", s.replies_dropped))
                    }
                    FaultKind::LinkCut => stats.map(|s| format!("{} connections cut", s.cut)),
                    _ => None,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn heal(&mut self, fault: &Scheduled) -> anyhow::Result<()> {
        match fault.kind {
            FaultKind::HubDown => self.federation.start_hub().await,
            FaultKind::RegionDown => self.federation.start_region(fault.region).await,
            _ => self.federation.heal_link(fault.region),
        }
    }

    async fn sample_backlog(&mut self) {
        let (outbox, hub_unacked) = self.federation.backlog().await;
        let at_ms = self.elapsed_ms();
        self.report.backlog.push(Backlog {
            at_ms,
            outbox,
            hub_unacked,
        });
    }

    /// Waits for the federation's quiet watermark; returns how long it took (ms).
    async fn quiet(&mut self, bound: Duration) -> anyhow::Result<u64> {
        let from = Instant::now();
        let mut polls = 0u32;
        while !self.federation.is_quiet().await {
            anyhow::ensure!(
                from.elapsed() < bound,
                "the federation did not become quiet within {bound:?}"
            );
            polls += 1;
            if polls.is_multiple_of(50) {
                self.sample_backlog().await;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(u64::try_from(from.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn register(&mut self, planned: Planned) -> anyhow::Result<Operation> {
        let region = planned.region();
        self.load[region] += 1;
        let request =
            requests::registration(self.population, &planned, self.federation.clock_today());
        let client = self
            .federation
            .client(region, &organisation_id(planned.organisation))?;
        Ok(requests::registering(client, request, planned))
    }

    /// Records an acknowledged operation: registrations join this phase, changes go to the
    /// oracle at once (they commute).
    fn acknowledged(&mut self, ack: Ack, phase: &mut Vec<RegistrationAck>) {
        match ack {
            Ack::Registered(registered) => phase.push(registered),
            Ack::Changed(change) => self.ledger.changed(change),
        }
    }

    async fn change(&mut self, change: Change) -> anyhow::Result<Operation> {
        let number = |signal: &SignalRef| self.ledger.number(*signal);
        let owner = |signal: &SignalRef| self.ledger.owner(*signal);
        match &change {
            Change::Withdraw {
                signal,
                unjustified,
            } => {
                let organisation = owner(signal)?;
                let request = requests::withdrawal(number(signal)?, organisation, *unjustified);
                let client = self.federation.client(
                    organisation_region(organisation),
                    &organisation_id(organisation),
                )?;
                let what = format!(
                    "withdrawal of signal #{signal} {} (planned removal {:?}) on {}",
                    number(signal)?,
                    self.ledger.oracle.planned_removal(*signal),
                    self.federation.clock_today()
                );
                Ok(requests::withdrawing(client, request, change.clone(), what))
            }
            Change::Update {
                signal,
                planned_removal,
            } => {
                let organisation = owner(signal)?;
                let request = pb::UpdateSignalRequest {
                    signal_id: number(signal)?,
                    professional: planned_removal
                        .is_none()
                        .then(|| requests::professional(organisation, 1, true)),
                    planned_removal_date: planned_removal
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                    acting_professional_id: format!("p0-{}", organisation_id(organisation)),
                    informing: None,
                };
                let client = self.federation.client(
                    organisation_region(organisation),
                    &organisation_id(organisation),
                )?;
                Ok(Box::pin(async move {
                    // After a lost answer, the same date again is "not earlier": done.
                    retrying(
                        || {
                            let (mut client, request) = (client.clone(), request.clone());
                            async move { client.update_signal(request).await.map(|_| ()) }
                        },
                        &mut false,
                        |code| matches!(code, Code::InvalidArgument | Code::FailedPrecondition),
                    )
                    .await
                    .context("an update")?;
                    Ok(Ack::Changed(change))
                }))
            }
            Change::Erase {
                youth,
                region,
                signals,
            } => {
                let request = pb::OrderErasureRequest {
                    youth: Some(pb::order_erasure_request::Youth::Bsn(
                        self.population.person(*youth).bsn.clone(),
                    )),
                    signal_ids: signals.iter().map(number).collect::<anyhow::Result<_>>()?,
                    officer_id: "officer-1".into(),
                    reference: format!("sim-erasure-{youth}"),
                };
                let client = self.federation.officer(*region)?;
                Ok(Box::pin(async move {
                    // After a lost answer, the named signals are gone: done.
                    retrying(
                        || {
                            let (mut client, request) = (client.clone(), request.clone());
                            async move { client.order_erasure(request).await.map(|_| ()) }
                        },
                        &mut false,
                        |code| code == Code::NotFound,
                    )
                    .await
                    .context("an erasure order")?;
                    Ok(Ack::Changed(change))
                }))
            }
            Change::Death { youth } => {
                // The BRP's feed reaches every node; done here, in order, not in flight.
                self.federation
                    .record_death(&self.population.person(*youth).bsn)
                    .await?;
                Ok(Box::pin(async move { Ok(Ack::Changed(change)) }))
            }
            Change::Move { family, to } => {
                if let Some(family) = self.population.families.get(*family as usize) {
                    for person in family.parents.iter().chain(&family.children) {
                        self.federation
                            .record_move(&self.population.person(*person).bsn, *to)?;
                    }
                }
                Ok(Box::pin(async move { Ok(Ack::Changed(change)) }))
            }
        }
    }

    async fn finish(mut self, dir: &Path) -> anyhow::Result<Report> {
        let mut seen = Vec::new();
        for region in 0..self.federation.regions.len() {
            for kind in 0..KINDS.len() {
                let organisation = u32::try_from(region * KINDS.len() + kind)?;
                let mut client = self
                    .federation
                    .client(region, &organisation_id(organisation))?;
                seen.extend(all_matches(&mut client).await?);
            }
        }
        self.report.verdict = self.ledger.verdict(&seen);
        for region in &self.federation.regions {
            let db = self
                .federation
                .dir
                .join(format!("region-{}.sqlite", region.id));
            if let Some(gap) = crate::check::notices_without_email(&region.id, &db).await? {
                self.report.verdict.unexpected.push(gap);
            }
        }
        self.report.operations = self.ledger.operations.clone();
        self.report.signals = self.ledger.signals;
        self.report.load = self
            .load
            .iter()
            .enumerate()
            .map(|(region, count)| (region_id(region), *count))
            .collect();
        let wall_ms = self.elapsed_ms();
        self.federation.stop().await?;
        let bsns: HashSet<&str> = self
            .population
            .persons
            .iter()
            .map(|p| p.bsn.as_str())
            .collect();
        self.report.privacy = crate::privacy::scan(dir, &bsns)?;
        self.report.wall_ms = wall_ms;
        Ok(self.report)
    }
}
