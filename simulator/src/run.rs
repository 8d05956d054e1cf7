//! One simulation run: a seeded population and workload against a federation of real nodes,
//! the oracle's expected notices against what every organisation sees through `ListMatches`,
//! and a scan of every database file for the population's BSNs.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use vix_node::domain::ManualClock;
use vix_protocol::region::v1 as pb;

use crate::federation::{Federation, ORGANISATION_KINDS, organisation_id};
use crate::oracle::{self, Notice, Registration, Youth};
use crate::population::Population;

/// What to run. The same seed gives the same population and workload.
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    pub seed: u64,
    pub regions: usize,
    pub families: usize,
    /// Chance (percent) that a child is signalled at all.
    pub signalled_percent: u8,
    /// Chance (percent) that an organisation of another region than the family's signals.
    pub elsewhere_percent: u8,
    /// How long the federation may take to become quiet after the workload.
    pub convergence_max: Duration,
    /// Registrations in flight at once.
    pub concurrency: usize,
    /// The hub is down for the middle third of the registrations.
    pub hub_outage: bool,
}

impl Options {
    /// A small run for CI: a few regions, a few hundred people.
    pub fn quick(seed: u64) -> Self {
        Self {
            seed,
            regions: 4,
            families: 60,
            signalled_percent: 60,
            elsewhere_percent: 30,
            convergence_max: Duration::from_secs(60),
            concurrency: 16,
            hub_outage: true,
        }
    }
}

/// What a run found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub options: Option<Options>,
    pub persons: usize,
    pub signals: usize,
    pub expected: usize,
    pub delivered: usize,
    pub missing: Vec<String>,
    pub duplicated: Vec<String>,
    pub unexpected: Vec<String>,
    pub youth_matches: usize,
    pub family_matches: usize,
    pub cross_region: usize,
    /// The faults injected, in order.
    pub faults: Vec<String>,
    pub convergence_ms: u128,
    pub wall_ms: u128,
    pub privacy_hits: Vec<String>,
}

impl Report {
    /// The oracle and the privacy scan found nothing wrong.
    pub fn passed(&self) -> bool {
        self.missing.is_empty()
            && self.duplicated.is_empty()
            && self.unexpected.is_empty()
            && self.privacy_hits.is_empty()
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
    let mut rng = fastrand::Rng::with_seed(options.seed);
    let today = jiff::civil::date(2026, 11, 25);
    let population = Population::generate(&mut rng, options.families, options.regions, today);
    let persons = dir.join("persons.json");
    std::fs::write(&persons, population.registry_json()?)
        .with_context(|| format!("writing {}", persons.display()))?;
    let clock = Arc::new(ManualClock::at_noon(today));
    let mut federation = Federation::start(dir, options.regions, &persons, clock).await?;
    on_start(&federation);
    let mut faults = Vec::new();

    // The workload: each signalled child gets one to three parties, mostly of the family's
    // region, sometimes of another (a school elsewhere, a move).
    // The workload, planned from the seed first so that it never depends on timing: each
    // signalled child gets one to three parties, mostly of the family's region, sometimes of
    // another (a school elsewhere, a move).
    let people: HashMap<&str, &crate::population::Person> = population
        .persons
        .iter()
        .map(|person| (person.bsn.as_str(), person))
        .collect();
    let mut planned = Vec::new();
    let mut region_of = HashMap::new(); // organisation -> region index
    for family in &population.families {
        for child in &family.children {
            if rng.u8(..100) >= options.signalled_percent {
                continue;
            }
            let person = people
                .get(child.as_str())
                .context("a child of the population")?;
            for _ in 0..1 + rng.usize(..3) {
                let region = if rng.u8(..100) < options.elsewhere_percent {
                    rng.usize(..options.regions)
                } else {
                    family.home
                };
                let kind = ORGANISATION_KINDS[rng.usize(..ORGANISATION_KINDS.len())];
                let organisation = organisation_id(kind, region);
                let request = pb::RegisterSignalRequest {
                    request_id: format!("sim-{}", planned.len()),
                    youth: Some(pb::register_signal_request::Youth::Bsn(child.clone())),
                    professional: Some(pb::ProfessionalContact {
                        professional_id: format!("p-{organisation}"),
                        name: format!("Professional of {organisation}"),
                        email: format!("p@{organisation}.example.nl"),
                        phone: String::new(),
                    }),
                    planned_removal_date: String::new(),
                    informing: Some(vix_tests::informing_for_birth(person.birth_date, today)),
                };
                region_of.insert(organisation.clone(), region);
                let registration = Registration {
                    organisation: organisation.clone(),
                    youth: Youth {
                        bsn: child.clone(),
                        parents: family.parents.clone(),
                    },
                };
                planned.push((region, organisation, request, registration));
            }
        }
    }

    // Registrations go with `concurrency` in flight. With the faults on, the hub is down for the
    // middle third of them (regions keep working, their outboxes wait), and region r00 is down
    // from the middle to the last sixth: its registrations queue at the simulator and come as a
    // burst when it is back, while the notices for it wait in the hub's log.
    let total = planned.len();
    let hub_outage = options.hub_outage.then_some((total / 3, 2 * total / 3));
    let region_outage = options.hub_outage.then_some((total / 2, 5 * total / 6));
    let mut sender = Sender::new(options.concurrency);
    let mut queued = Vec::new();
    for (index, (region, organisation, request, registration)) in planned.into_iter().enumerate() {
        if hub_outage.is_some_and(|(down, _)| down == index) {
            sender.drain().await?;
            federation.stop_hub().await?;
            report_fault(&mut faults, "hub down");
        }
        if hub_outage.is_some_and(|(_, up)| up == index) {
            sender.drain().await?;
            federation.start_hub().await?;
            report_fault(&mut faults, "hub back");
        }
        if region_outage.is_some_and(|(down, _)| down == index) {
            sender.drain().await?;
            federation.stop_region(0).await?;
            report_fault(&mut faults, "region r00 down");
        }
        if region_outage.is_some_and(|(_, up)| up == index) {
            sender.drain().await?;
            federation.start_region(0).await?;
            report_fault(&mut faults, "region r00 back");
            for queued in std::mem::take(&mut queued) {
                sender.send(&mut federation, queued).await?;
            }
        }
        let planned = (region, organisation, request, registration);
        if region == 0 && region_outage.is_some_and(|(down, up)| (down..up).contains(&index)) {
            queued.push(planned);
        } else {
            sender.send(&mut federation, planned).await?;
        }
    }
    sender.drain().await?;
    let Sender {
        signals,
        registrations,
        ..
    } = sender;

    let workload_done = Instant::now();
    loop {
        if federation.is_quiet().await {
            break;
        }
        anyhow::ensure!(
            workload_done.elapsed() < options.convergence_max,
            "the federation did not become quiet within {:?}",
            options.convergence_max
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let convergence = workload_done.elapsed();

    let expected = oracle::expected(&registrations);
    let mut seen: BTreeMap<Notice, usize> = BTreeMap::new();
    let organisations: BTreeSet<(usize, String)> = region_of
        .iter()
        .map(|(organisation, region)| (*region, organisation.clone()))
        .collect();
    for (region, organisation) in &organisations {
        for found in matches(&mut federation, *region, organisation).await? {
            let counterpart = found.counterpart.context("a counterpart")?;
            let (Some((own_org, own_youth)), Some((other_org, other_youth))) = (
                signals.get(&found.signal_id),
                signals.get(&counterpart.signal_id),
            ) else {
                anyhow::bail!("a match names a signal the simulation did not register");
            };
            let notice = Notice {
                recipient_organisation: own_org.clone(),
                recipient_youth: own_youth.clone(),
                counterpart_organisation: other_org.clone(),
                counterpart_youth: other_youth.clone(),
                family: found.match_type == pb::MatchType::Family as i32,
            };
            *seen.entry(notice).or_default() += 1;
        }
    }
    let describe = |notice: &Notice| {
        format!(
            "{} -> {}{} ",
            notice.recipient_organisation,
            notice.counterpart_organisation,
            if notice.family { " (family)" } else { "" }
        )
    };
    let mut report = Report {
        options: Some(options.clone()),
        persons: population.persons.len(),
        signals: registrations.len(),
        expected: expected.len(),
        delivered: seen.values().sum(),
        convergence_ms: convergence.as_millis(),
        faults,
        ..Report::default()
    };
    for notice in &expected {
        if !seen.contains_key(notice) {
            report.missing.push(describe(notice));
        }
        if notice.family {
            report.family_matches += 1;
        } else {
            report.youth_matches += 1;
        }
        if region_of.get(&notice.recipient_organisation)
            != region_of.get(&notice.counterpart_organisation)
        {
            report.cross_region += 1;
        }
    }
    for (notice, count) in &seen {
        if *count > 1 {
            report.duplicated.push(describe(notice));
        }
        if !expected.contains(notice) {
            report.unexpected.push(describe(notice));
        }
    }
    federation.stop().await?;
    let bsns: HashSet<&str> = population.persons.iter().map(|p| p.bsn.as_str()).collect();
    report.privacy_hits = privacy_scan(dir, &bsns)?;
    report.wall_ms = started.elapsed().as_millis();
    Ok(report)
}

type Planned = (usize, String, pb::RegisterSignalRequest, Registration);

/// Sends registrations with a bounded number in flight and records what was acknowledged.
struct Sender {
    concurrency: usize,
    in_flight: tokio::task::JoinSet<anyhow::Result<(String, String, String)>>,
    /// Signal id -> (organisation, youth).
    signals: HashMap<String, (String, String)>,
    /// In the order they were sent.
    registrations: Vec<Registration>,
}

impl Sender {
    fn new(concurrency: usize) -> Self {
        Self {
            concurrency: concurrency.max(1),
            in_flight: tokio::task::JoinSet::new(),
            signals: HashMap::new(),
            registrations: Vec::new(),
        }
    }

    async fn send(&mut self, federation: &mut Federation, planned: Planned) -> anyhow::Result<()> {
        let (region, organisation, request, registration) = planned;
        while self.in_flight.len() >= self.concurrency {
            self.collect().await?;
        }
        let mut client = federation.client(region, &organisation)?;
        let youth = registration.youth.bsn.clone();
        let request_id = request.request_id.clone();
        self.in_flight.spawn(async move {
            let signal = client
                .register_signal(request)
                .await
                .with_context(|| format!("registration {request_id}"))?
                .into_inner()
                .signal
                .context("a registered signal")?;
            anyhow::Ok((signal.signal_id, organisation, youth))
        });
        self.registrations.push(registration);
        Ok(())
    }

    /// Waits for one registration in flight and records it.
    async fn collect(&mut self) -> anyhow::Result<()> {
        if let Some(done) = self.in_flight.join_next().await {
            let (signal_id, organisation, youth) = done??;
            self.signals.insert(signal_id, (organisation, youth));
        }
        Ok(())
    }

    /// Waits for every registration in flight.
    async fn drain(&mut self) -> anyhow::Result<()> {
        while !self.in_flight.is_empty() {
            self.collect().await?;
        }
        Ok(())
    }
}

fn report_fault(faults: &mut Vec<String>, what: &str) {
    tracing::info!(fault = what, "fault injected");
    faults.push(what.to_owned());
}

/// Every match `organisation` sees, page by page.
async fn matches(
    federation: &mut Federation,
    region: usize,
    organisation: &str,
) -> anyhow::Result<Vec<pb::Match>> {
    let mut client = federation.client(region, organisation)?;
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_matches(pb::ListMatchesRequest {
                acting_professional_id: "sim-oracle".into(),
                page_size: 500,
                page_token,
                ..Default::default()
            })
            .await?
            .into_inner();
        all.extend(page.matches);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}

/// Runs of exactly nine ASCII digits standing alone in `bytes` (not inside a longer number or a
/// hexadecimal string such as a pseudonym, a hash or a signal id, where nine digits in a row
/// occur by chance): how a BSN written as text would look.
fn plain_numbers(bytes: &[u8]) -> impl Iterator<Item = &str> {
    bytes
        .split(|byte| !byte.is_ascii_alphanumeric())
        .filter(|word| word.len() == 9 && word.iter().all(u8::is_ascii_digit))
        .filter_map(|word| std::str::from_utf8(word).ok())
}

/// Files under `dir` (databases, their WAL and shared memory, logs) that hold one of `bsns` in
/// plain text; the person registry file, which is the BRP's, is left out. A BSN stored as a
/// binary integer would not be seen: nothing in vix stores one so.
fn privacy_scan(dir: &Path, bsns: &HashSet<&str>) -> anyhow::Result<Vec<String>> {
    let mut hits = Vec::new();
    let mut folders: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            if path.file_name().is_some_and(|name| name == "persons.json") {
                continue;
            }
            let bytes = std::fs::read(&path)?;
            if plain_numbers(&bytes).any(|number| bsns.contains(number)) {
                hits.push(path.display().to_string());
            }
        }
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::{plain_numbers, privacy_scan};

    #[test]
    fn the_privacy_scan_finds_a_bsn_in_any_file_but_the_person_registry() {
        let dir = tempfile::tempdir().unwrap();
        let bsns = std::collections::HashSet::from(["999991383"]);
        std::fs::write(dir.path().join("persons.json"), r#"[{"bsn":"999991383"}]"#).unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        std::fs::write(dir.path().join("logs/node.log"), "ok").unwrap();
        assert!(privacy_scan(dir.path(), &bsns).unwrap().is_empty());
        std::fs::write(dir.path().join("logs/node.log"), "refused bsn=999991383").unwrap();
        let hits = privacy_scan(dir.path(), &bsns).unwrap();
        assert_eq!(hits.len(), 1);
        assert!(hits[0].ends_with("node.log"), "{hits:?}");
    }

    #[test]
    fn a_bsn_is_found_as_text_but_not_inside_hex_or_longer_numbers() {
        fn found(text: &str) -> Vec<&str> {
            plain_numbers(text.as_bytes()).collect()
        }
        assert_eq!(found(r#"{"bsn":"999991383"}"#), ["999991383"]);
        assert_eq!(found("bsn 999991383\n"), ["999991383"]);
        assert!(found("v1:ab999991383cd").is_empty());
        assert!(found("2026-11-25999991383").is_empty());
        assert!(found("9999913830").is_empty());
    }
}
