//! Hub ingest: the bench acts as regions north, south and east (their client certificates) and
//! sends `SubmitSignals` batches concurrently. A fraction of the events shares a subject or a
//! family key with events of other regions, so the hub's matcher finds matches and logs notices.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jiff::ToSpan;
use vix_protocol::federation::v1 as pb;
use vix_protocol::federation::v1::federation_service_client::FederationServiceClient;

use crate::nodes::Federation;
use crate::region::random_digest;

pub(crate) const REGIONS: [&str; 3] = ["north", "south", "east"];
/// Events per `SubmitSignals` (the hub takes at most 500).
pub(crate) const BATCH: usize = 500;
/// Per cent of events whose subject key, and of family keys, come from a shared pool.
const SHARED_PERCENT: u32 = 5;

/// Makes the events: random keys, and shared ones from a pool sized so that each pooled key
/// turns up about twice over `expected` events (most of those pairs are across regions).
pub(crate) struct EventMaker {
    pool: u64,
    removal: String,
    registered_at: String,
}

impl EventMaker {
    pub(crate) fn new(expected: u64) -> anyhow::Result<Self> {
        let now = crate::region::now();
        let today = vix_node::domain::clock::local_date(now);
        Ok(Self {
            pool: (expected * u64::from(SHARED_PERCENT) / 100 / 2).max(1),
            removal: today.checked_add(1.year())?.to_string(),
            registered_at: now.to_string(),
        })
    }

    fn key(&self, kind: u8) -> pb::Pseudonym {
        pb::Pseudonym {
            key_version: 1,
            digest: self.digest(kind).to_vec(),
        }
    }

    /// A key digest of `kind` (subject or family): random, or from the shared pool.
    pub(crate) fn digest(&self, kind: u8) -> [u8; 32] {
        if fastrand::u32(0..100) < SHARED_PERCENT {
            let mut digest = [kind; 32];
            digest[..8].copy_from_slice(&fastrand::u64(0..self.pool).to_be_bytes());
            digest
        } else {
            random_digest()
        }
    }

    /// Zero to two family keys, distinct (as a region node sends them).
    fn family_keys(&self) -> Vec<pb::Pseudonym> {
        let mut keys: Vec<pb::Pseudonym> = (0..fastrand::usize(0..=2))
            .map(|_| self.key(0xfa))
            .collect();
        keys.sort_by(|a, b| a.digest.cmp(&b.digest));
        keys.dedup();
        keys
    }

    pub(crate) fn event(&self, region: &str) -> pb::SignalEvent {
        let org = match region {
            "north" => "jgz-north",
            "south" => "vt-south",
            _ => "wijkteam-east",
        };
        pb::SignalEvent {
            signal_id: uuid_like(),
            revision: 1,
            change: Some(pb::signal_event::Change::Upsert(pb::SignalUpsert {
                subject_key: Some(self.key(0x51)),
                family_keys: self.family_keys(),
                organisation_id: org.to_owned(),
                professional: Some(pb::ProfessionalContact {
                    professional_id: "p1".into(),
                    name: "A. Bench".into(),
                    email: format!("p1@{org}.example.nl"),
                    phone: String::new(),
                }),
                registered_at: self.registered_at.clone(),
                planned_removal_date: self.removal.clone(),
                state: pb::SignalState::Active.into(),
                inactive_since: String::new(),
                previous_subject_keys: vec![],
                previous_family_keys: vec![],
            })),
        }
    }
}

/// A random (version 4) UUID, as the nodes make signal ids.
fn uuid_like() -> String {
    let mut bytes = random_digest();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(&bytes[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Ingest {
    pub(crate) events: u64,
    pub(crate) notices: u64,
    pub(crate) seconds: f64,
    pub(crate) per_s: f64,
    /// Batch round trip, p50 and p99.
    pub(crate) batch_p50_ms: f64,
    pub(crate) batch_p99_ms: f64,
}

/// Sends events from the three regions at once until `total` events were applied, or, with
/// `window`, for that long. Every region sends one batch at a time, like its forwarder; with
/// several hub instances, the regions are spread over them in turn.
pub(crate) async fn ingest(
    federation: &Federation,
    hubs: &[SocketAddr],
    maker: Arc<EventMaker>,
    total: Option<u64>,
    window: Option<Duration>,
) -> anyhow::Result<Ingest> {
    let sent = Arc::new(AtomicU64::new(0));
    let notices = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (index, region) in REGIONS.into_iter().enumerate() {
        let hub = *hubs
            .get(index % hubs.len().max(1))
            .ok_or_else(|| anyhow::anyhow!("no hub to send to"))?;
        let mut client = FederationServiceClient::new(federation.region_channel(hub, region)?);
        let maker = Arc::clone(&maker);
        let sent = Arc::clone(&sent);
        let notices = Arc::clone(&notices);
        tasks.push(tokio::spawn(async move {
            let mut rounds = Vec::new();
            loop {
                if window.is_some_and(|window| started.elapsed() >= window) {
                    break;
                }
                let size = match total {
                    Some(total) => {
                        let claimed = sent.fetch_add(BATCH as u64, Ordering::Relaxed);
                        if claimed >= total {
                            break;
                        }
                        usize::try_from((total - claimed).min(BATCH as u64))?
                    }
                    None => {
                        sent.fetch_add(BATCH as u64, Ordering::Relaxed);
                        BATCH
                    }
                };
                let events = (0..size).map(|_| maker.event(region)).collect();
                let begun = Instant::now();
                let response = client
                    .submit_signals(pb::SubmitSignalsRequest {
                        region_id: region.to_owned(),
                        events,
                    })
                    .await?
                    .into_inner();
                rounds.push(begun.elapsed());
                notices.fetch_add(u64::from(response.notices), Ordering::Relaxed);
                if response.applied as usize != size {
                    anyhow::bail!(
                        "the hub applied {} of {size} events from {region}",
                        response.applied
                    );
                }
            }
            anyhow::Ok(rounds)
        }));
    }
    let mut rounds = Vec::new();
    for task in tasks {
        rounds.extend(task.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let events = match total {
        Some(total) => total,
        None => sent.load(Ordering::Relaxed),
    };
    rounds.sort_unstable();
    Ok(Ingest {
        events,
        notices: notices.load(Ordering::Relaxed),
        seconds,
        per_s: events as f64 / seconds.max(1e-9),
        batch_p50_ms: crate::load::ms(crate::load::quantile(&rounds, 0.50)),
        batch_p99_ms: crate::load::ms(crate::load::quantile(&rounds, 0.99)),
    })
}
