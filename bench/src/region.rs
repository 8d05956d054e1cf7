//! The region node's figures: pre-fill (bulk rows, then a few thousand through the store's own
//! register path for the local matches; or everything through `register`), then
//! `RegisterSignal`, `GetSignal` and `ListMatches` over mutual TLS against the node process.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use tokio::sync::Mutex;
use vix_node::domain::contact::ContactInput;
use vix_node::domain::informing::InformingRecord;
use vix_node::domain::{
    Clock, FamilyKey, KeyVersion, OrganisationId, OrganisationName, ProfessionalContact, RegionId,
    SignalId, SubjectKey, SystemClock, ValidationErrors,
};
use vix_node::store::sqlite::SqliteStore;
use vix_node::store::{GroupCommit, NewSignal, Registered, SignalStore};
use vix_protocol::region::v1 as pb;
use vix_protocol::region::v1::region_service_client::RegionServiceClient;

/// The organisation whose calls are measured, and the one that shares youths with it.
pub(crate) const ORG: &str = "jgz-north";
pub(crate) const OTHER_ORG: &str = "school-north";
/// Concurrent registrations while pre-filling: enough to fill the group commit's batches.
const PREFILL_TASKS: usize = 256;
/// Signal ids kept for `GetSignal` and `ListMatches`.
const SAMPLE_MAX: usize = 20_000;
/// One in this many `OTHER_ORG` signals is on a youth `ORG` registered: a local match.
pub(crate) const SHARED_YOUTH_EVERY: u64 = 10;
/// With the bulk pre-fill: signals registered through the store after the bulk rows (at most,
/// and at most a fifth of the size), every `OTHER_ORG` one on a youth of `ORG` if it can: the
/// local matches (notices) `ListMatches` reads.
const BULK_STORE_PART: u64 = 2_000;

/// What the pre-fill left: ids of `ORG`'s signals to look up, those with a match first-class.
#[derive(Debug, Default)]
pub(crate) struct Sample {
    pub(crate) signals: Vec<String>,
    pub(crate) matched: Vec<String>,
}

/// What the store part of a pre-fill did (all of it with `--prefill store`).
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Prefill {
    pub(crate) signals: u64,
    pub(crate) seconds: f64,
    pub(crate) per_s: f64,
    pub(crate) notices: u64,
    pub(crate) outbox_drain_seconds: f64,
}

/// A bulk pre-fill: the bulk rows, then the store part.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct BulkPrefill {
    pub(crate) bulk: crate::bulk::BulkFill,
    pub(crate) store: Prefill,
}

/// Pre-fills the region database with `count` signals: the node's store creates the schema,
/// the bulk loader writes all but a few thousand, and those go through [`SignalStore::register`]
/// with many shared youths, so `ORG` has local matches to list.
pub(crate) async fn prefill_bulk(
    database: &Path,
    region: &str,
    count: u64,
) -> anyhow::Result<(BulkPrefill, Sample)> {
    let store = SqliteStore::open(database, RegionId::parse(region)?, GroupCommit::default())
        .await
        .with_context(|| format!("opening {}", database.display()))?;
    store.close().await;
    let through_store = (count / 5).min(BULK_STORE_PART);
    let orgs: Vec<crate::bulk::Org> = crate::bulk::dev_orgs()
        .into_iter()
        .filter(|o| o.id == ORG || o.id == OTHER_ORG)
        .collect();
    let path = database.to_owned();
    let (bulk, bulk_sample) = tokio::task::spawn_blocking(move || {
        crate::bulk::region(&path, &orgs, count - through_store, ORG, SAMPLE_MAX)
    })
    .await??;
    let (store, mut sample) = prefill(database, region, through_store, 1).await?;
    // Lookups over the whole table, not only the last few thousand rows.
    let mut signals = bulk_sample.signals;
    signals.extend(sample.signals);
    signals.truncate(SAMPLE_MAX);
    fastrand::shuffle(&mut signals);
    sample.signals = signals;
    Ok((BulkPrefill { bulk, store }, sample))
}

fn org_name(org: &str) -> anyhow::Result<OrganisationName> {
    let name = vix_certs_dev::DevPkiSpec::default()
        .organisations
        .into_iter()
        .find(|o| o.id == org)
        .map(|o| o.name)
        .unwrap_or_else(|| org.to_owned());
    Ok(OrganisationName::parse(&name)?)
}

pub(crate) fn random_digest() -> [u8; 32] {
    let mut digest = [0u8; 32];
    fastrand::fill(&mut digest);
    digest
}

fn today() -> Date {
    vix_node::domain::clock::local_date(SystemClock.now())
}

/// Registers `count` signals in the region database at `database` through
/// [`SignalStore::register`] from many tasks (so group commit batches them), then drains the
/// outbox as if the forwarder had sent it, and closes the store. One in `shared_youth_every`
/// `OTHER_ORG` signals is on a youth `ORG` registered (a local match).
pub(crate) async fn prefill(
    database: &Path,
    region: &str,
    count: u64,
    shared_youth_every: u64,
) -> anyhow::Result<(Prefill, Sample)> {
    let store = Arc::new(
        SqliteStore::open(database, RegionId::parse(region)?, GroupCommit::default())
            .await
            .with_context(|| format!("opening {}", database.display()))?,
    );
    let filled = fill(
        &[Arc::clone(&store)],
        count,
        shared_youth_every,
        PREFILL_TASKS,
    )
    .await;
    store.close().await;
    filled
}

/// Registers `count` signals through [`SignalStore::register`] from `tasks` tasks spread over
/// `stores` (instances of one node's database), then drains the outbox as if the forwarder had
/// sent it. One in `shared_youth_every` `OTHER_ORG` signals is on a youth `ORG` registered (a
/// local match).
pub(crate) async fn fill<S: SignalStore>(
    stores: &[Arc<S>],
    count: u64,
    shared_youth_every: u64,
    tasks: usize,
) -> anyhow::Result<(Prefill, Sample)> {
    let first = stores.first().context("no store to fill")?;
    let version = KeyVersion::new(1)?;
    let orgs = [
        (OrganisationId::parse(ORG)?, org_name(ORG)?),
        (OrganisationId::parse(OTHER_ORG)?, org_name(OTHER_ORG)?),
    ];
    let mut errors = ValidationErrors::new();
    let contacts: Vec<ProfessionalContact> = ["p1", "p2"]
        .iter()
        .zip([ORG, OTHER_ORG])
        .filter_map(|(id, org)| {
            ProfessionalContact::parse(
                ContactInput {
                    professional_id: id,
                    name: "A. Bench",
                    email: &format!("{id}@{org}.example.nl"),
                    phone: "",
                },
                "professional",
                &mut errors,
            )
        })
        .collect();
    errors.into_result().context("bench contact")?;
    let today = today();
    let removal = today.checked_add(1.year())?;
    let shared = Arc::new(PrefillShared {
        next: AtomicU64::new(0),
        notices: AtomicU64::new(0),
        recent_subjects: Mutex::new(Vec::new()),
        sample: Mutex::new(Sample::default()),
    });
    let started = Instant::now();
    let mut running = Vec::new();
    for task in 0..tasks {
        let store = Arc::clone(&stores[task % stores.len()]);
        let shared = Arc::clone(&shared);
        let orgs = orgs.clone();
        let contacts = contacts.clone();
        running.push(tokio::spawn(async move {
            loop {
                let n = shared.next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return anyhow::Ok(());
                }
                let own = n.is_multiple_of(2);
                let (org, name) = &orgs[usize::from(!own)];
                let subject = if !own && (n / 2).is_multiple_of(shared_youth_every) {
                    shared.recent_subjects.lock().await.pop()
                } else {
                    None
                }
                .unwrap_or_else(|| SubjectKey::new(version, random_digest()));
                let family_keys = (0..fastrand::usize(0..=2))
                    .map(|_| FamilyKey::new(version, random_digest()))
                    .collect();
                let new = NewSignal {
                    signal_id: SignalId::generate(),
                    request_key: hex::encode(random_digest()),
                    request_fingerprint: hex::encode(random_digest()),
                    organisation_id: org.clone(),
                    organisation_name: name.clone(),
                    contact: contacts[usize::from(!own)].clone(),
                    subject_key: subject,
                    family_keys,
                    birth_date: jiff::civil::date(2016, 1, 1)
                        .checked_add(i64::from(fastrand::u16(0..1800)).days())?,
                    registered_at: SystemClock.now(),
                    planned_removal_date: removal,
                    informing: InformingRecord::Informed {
                        parents: true,
                        youth: false,
                        informed_on: today,
                    },
                    rekeys: Default::default(),
                    previous_request_fingerprints: Vec::new(),
                };
                let registered = register_retrying(store.as_ref(), new).await?;
                if let Registered::Created { signal, notices } = registered {
                    shared.notices.fetch_add(notices as u64, Ordering::Relaxed);
                    let id = signal.signal_id.to_string();
                    if own {
                        let mut recent = shared.recent_subjects.lock().await;
                        if recent.len() < 4096 {
                            recent.push(subject);
                        }
                        drop(recent);
                        let mut sample = shared.sample.lock().await;
                        if sample.signals.len() < SAMPLE_MAX {
                            sample.signals.push(id);
                        }
                    }
                }
            }
        }));
    }
    for task in running {
        task.await??;
    }
    let seconds = started.elapsed().as_secs_f64();

    let drain_started = Instant::now();
    loop {
        let batch = first.outbox_batch(10_000).await?;
        if batch.is_empty() {
            break;
        }
        first
            .outbox_remove(batch.iter().map(|entry| entry.seq).collect())
            .await?;
    }
    let outbox_drain_seconds = drain_started.elapsed().as_secs_f64();

    // The ORG signals that have a match, for ListMatches by signal.
    let org = OrganisationId::parse(ORG)?;
    let mut sample = std::mem::take(&mut *shared.sample.lock().await);
    let page = vix_node::store::MatchPage {
        after: None,
        limit: u32::try_from(SAMPLE_MAX)?,
    };
    sample.matched = first
        .matches(&org, None, page)
        .await?
        .into_iter()
        .map(|m| m.signal_id.to_string())
        .collect();
    let notices = shared.notices.load(Ordering::Relaxed);
    Ok((
        Prefill {
            signals: count,
            seconds,
            per_s: count as f64 / seconds.max(1e-9),
            notices,
            outbox_drain_seconds,
        },
        sample,
    ))
}

struct PrefillShared {
    next: AtomicU64,
    notices: AtomicU64,
    /// Subjects of `ORG`'s recent signals, which `OTHER_ORG` registers again.
    recent_subjects: Mutex<Vec<SubjectKey>>,
    sample: Mutex<Sample>,
}

/// A full write queue is back-pressure, not a failure: the store already waited for room, so
/// let the other tasks run and try again.
async fn register_retrying(store: &impl SignalStore, new: NewSignal) -> anyhow::Result<Registered> {
    loop {
        match store.register(new.clone()).await {
            Err(error) if error.is_transient() => tokio::task::yield_now().await,
            other => return Ok(other?),
        }
    }
}

/// A registration of a youth no one else has, by `ORG`.
pub(crate) fn register_request(run: &str, caller: usize, seq: u64) -> pb::RegisterSignalRequest {
    register_request_for(ORG, &format!("{run}-{caller}-{seq}"), "p1")
}

/// `org` registers the youth with alternative id `number` (born 2020: the parents are told).
pub(crate) fn register_request_for(
    org: &str,
    number: &str,
    professional: &str,
) -> pb::RegisterSignalRequest {
    pb::RegisterSignalRequest {
        request_id: format!("{org}-{number}"),
        youth: Some(pb::register_signal_request::Youth::AltYouthId(
            pb::AltYouthId {
                issuer: "bench".into(),
                number: number.into(),
                birth_date: "2020-06-01".into(),
            },
        )),
        professional: Some(pb::ProfessionalContact {
            professional_id: professional.into(),
            name: format!("Professional of {org}"),
            email: format!("{professional}@{org}.example.nl"),
            phone: String::new(),
        }),
        planned_removal_date: String::new(),
        informing: Some(pb::InformingRecord {
            record: Some(pb::informing_record::Record::Informed(pb::Informed {
                parents: true,
                youth: false,
                informed_on: today().to_string(),
            })),
        }),
    }
}

pub(crate) async fn register(
    channel: tonic::transport::Channel,
    request: pb::RegisterSignalRequest,
) -> anyhow::Result<String> {
    let response = RegionServiceClient::new(channel)
        .register_signal(request)
        .await?
        .into_inner();
    response
        .signal
        .map(|signal| signal.signal_id)
        .context("RegisterSignal answered without a signal")
}

pub(crate) async fn get(
    channel: tonic::transport::Channel,
    signal_id: String,
) -> anyhow::Result<()> {
    RegionServiceClient::new(channel)
        .get_signal(pb::GetSignalRequest {
            signal_id,
            acting_professional_id: "p1".into(),
        })
        .await?;
    Ok(())
}

pub(crate) async fn list_matches(
    channel: tonic::transport::Channel,
    signal_id: String,
) -> anyhow::Result<Vec<pb::Match>> {
    Ok(RegionServiceClient::new(channel)
        .list_matches(pb::ListMatchesRequest {
            signal_id,
            acting_professional_id: "p1".into(),
            page_size: 20,
            page_token: String::new(),
        })
        .await?
        .into_inner()
        .matches)
}

/// Now, as the nodes see it.
pub(crate) fn now() -> Timestamp {
    SystemClock.now()
}
