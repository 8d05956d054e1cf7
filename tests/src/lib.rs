//! Test harness for vix end-to-end tests: a development PKI built once per test binary, region
//! nodes started in-process on port 0 with a temporary SQLite file, and clients that speak
//! mutual TLS with any certificate of the PKI.
//!
//! `TEST_LOG=1` shows the nodes' logs; `VIX_TEST_KEEP=1` keeps the temporary folders.
#![forbid(unsafe_code)]
// A harness may stop a test with a message: that is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use jiff::civil::Date;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use vix_node::config::{HubLink, HubSettings, RegionSettings};
use vix_node::domain::ManualClock;
use vix_node::hub::HubContext;
use vix_node::region::RegionContext;
use vix_node::startup::HubNode;
use vix_node::startup::RegionNode;
use vix_node::store::hub_database::HubDatabase;
use vix_node::store::region_database::RegionDatabase;
use vix_node::tls::{self, TlsFiles};
use vix_protocol::region::v1::region_service_client::RegionServiceClient;

/// The dev PKI shared by every test of the binary (generating it takes a moment).
pub fn pki() -> &'static Path {
    static PKI: OnceLock<tempfile::TempDir> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("vix-test-pki-")
            .tempdir()
            .expect("temporary folder");
        vix_certs_dev::generate(dir.path(), &vix_certs_dev::DevPkiSpec::default())
            .expect("dev PKI");
        dir
    })
    .path()
}

/// The BRP test persons in `shared/fixtures`.
pub fn person_registry_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/brp-test-persons.json")
}

pub fn init_tracing() {
    statements::install();
}

/// The day the end-to-end tests live on, so the fixture's ages never drift.
pub fn test_day() -> Date {
    jiff::civil::date(2026, 11, 25)
}

/// Birth dates of the BRP fixture's persons, by BSN.
fn fixture_birth_dates() -> &'static HashMap<String, Date> {
    static BIRTH_DATES: OnceLock<HashMap<String, Date>> = OnceLock::new();
    BIRTH_DATES.get_or_init(|| {
        let text = std::fs::read_to_string(person_registry_file()).expect("BRP fixture");
        let persons: Vec<serde_json::Value> = serde_json::from_str(&text).expect("fixture JSON");
        persons
            .iter()
            .filter_map(|person| {
                let bsn = person["bsn"].as_str()?;
                let birth: Date = person["birth_date"].as_str()?.parse().ok()?;
                Some((bsn.to_owned(), birth))
            })
            .collect()
    })
}

/// Families of the BRP fixture with at least two children under 23: (child, sibling).
pub const FIXTURE_FAMILIES: [(&str, &str); 11] = [
    ("999991383", "999992065"),
    ("999995807", "999995832"),
    ("999996046", "999996058"),
    ("999996125", "999996137"),
    ("999996174", "999996186"),
    ("999996289", "999996290"),
    ("999996411", "999996423"),
    ("999996435", "999996447"),
    ("999996587", "999996599"),
    ("999996770", "999996782"),
    ("999999369", "999999370"),
];

/// Each fixture person's parents, by BSN.
pub fn fixture_parents() -> HashMap<String, Vec<String>> {
    let text = std::fs::read_to_string(person_registry_file()).expect("BRP fixture");
    let persons: Vec<serde_json::Value> = serde_json::from_str(&text).expect("fixture JSON");
    persons
        .iter()
        .map(|person| {
            let parents = person["parents"]
                .as_array()
                .expect("parents")
                .iter()
                .map(|parent| parent.as_str().expect("a parent's BSN").to_owned())
                .collect();
            (person["bsn"].as_str().expect("a BSN").to_owned(), parents)
        })
        .collect()
}

/// The informing record the duty asks for a youth born on `birth_date`, told on `today`
/// (DOMAIN.md section 7): parents under 12, parents and youth from 12, the youth from 16.
pub fn informing_for_birth(
    birth_date: Date,
    today: Date,
) -> vix_protocol::region::v1::InformingRecord {
    use vix_node::domain::informing::{age_on, required_audience};
    use vix_protocol::region::v1 as pb;
    let (parents, youth) = required_audience(age_on(birth_date, today));
    pb::InformingRecord {
        record: Some(pb::informing_record::Record::Informed(pb::Informed {
            parents,
            youth,
            informed_on: today.to_string(),
        })),
    }
}

/// The informing record the duty asks for the fixture person `bsn` on `today`; for a BSN the
/// fixture does not hold (the request will be refused for it), the youth alone.
pub fn informing_for(bsn: &str, today: Date) -> vix_protocol::region::v1::InformingRecord {
    let birth = fixture_birth_dates()
        .get(bsn)
        .copied()
        .unwrap_or_else(|| jiff::civil::date(2008, 1, 1));
    informing_for_birth(birth, today)
}

/// A professional of `org` with a contact derived from its id.
pub fn professional(org: &str) -> vix_protocol::region::v1::ProfessionalContact {
    vix_protocol::region::v1::ProfessionalContact {
        professional_id: format!("p-{org}"),
        name: format!("Professional of {org}"),
        email: format!("p@{org}.example.nl"),
        phone: String::new(),
    }
}

/// The organisations of the dev PKI that each region serves.
pub fn organisations_of(region: &str) -> Vec<String> {
    vix_certs_dev::DevPkiSpec::default()
        .organisations
        .into_iter()
        .filter(|org| org.region == region)
        .map(|org| org.id)
        .collect()
}

/// Writes an organisation registry into `dir`: the dev PKI's, with `moved` organisations given
/// to other regions (`(id, region)`), as a wrongly configured region might hold. Returns its path.
pub fn write_organisation_registry(dir: &Path, moved: &[(&str, &str)]) -> PathBuf {
    let spec = vix_certs_dev::DevPkiSpec::default();
    let organisations: Vec<_> = spec
        .organisations
        .into_iter()
        .map(|mut org| {
            if let Some((_, region)) = moved.iter().find(|(id, _)| *id == org.id) {
                org.region = (*region).to_owned();
            }
            org
        })
        .collect();
    let path = dir.join(vix_certs_dev::files::ORGANISATION_REGISTRY);
    std::fs::write(
        &path,
        vix_certs_dev::organisation_registry_toml(&spec.regions, &organisations),
    )
    .expect("organisation registry written");
    path
}

/// A client certificate's files in the dev PKI at `pki`, trusting its CA.
pub fn client_files_in(pki: &Path, cert: &str, key: &str) -> TlsFiles {
    TlsFiles {
        ca: pki.join(vix_certs_dev::files::CA_CERT),
        cert: pki.join(cert),
        key: pki.join(key),
        crls: vec![],
        ..Default::default()
    }
}

pub fn region_settings(region: &str, dir: &Path, hub: Option<SocketAddr>) -> RegionSettings {
    region_settings_in(
        pki(),
        &vix_certs_dev::DevPkiSpec::default(),
        &person_registry_file(),
        region,
        dir,
        hub,
    )
}

/// A region node's settings in the dev PKI at `pki` made from `spec`, with the person registry
/// `persons` (the simulator's federations use this as the tests do).
pub fn region_settings_in(
    pki: &Path,
    spec: &vix_certs_dev::DevPkiSpec,
    persons: &Path,
    region: &str,
    dir: &Path,
    hub: Option<SocketAddr>,
) -> RegionSettings {
    let (cert, key) = vix_certs_dev::files::region_server(region);
    RegionSettings {
        region_id: region.to_owned(),
        listen: "127.0.0.1:0".parse().expect("address"),
        database: dir.join(format!("region-{region}.sqlite")).into(),
        postgres: Default::default(),
        federation_key_file: Some(pki.join(vix_certs_dev::files::FEDERATION_KEY)),
        federation_key_version: Some(1),
        previous_federation_keys: Vec::new(),
        pseudonym_service: None,
        person_registry_file: persons.to_owned(),
        organisation_registry_file: pki.join(vix_certs_dev::files::ORGANISATION_REGISTRY),
        municipalities: spec
            .municipalities
            .iter()
            .filter(|m| m.region == region)
            .map(|m| m.code.clone())
            .collect(),
        tls: TlsFiles {
            ca: pki.join(vix_certs_dev::files::CA_CERT),
            cert: pki.join(cert),
            key: pki.join(key),
            crls: vec![pki.join(vix_certs_dev::files::CRL)],
            ..Default::default()
        },
        hub: hub.map(|address| {
            let (cert, key) = vix_certs_dev::files::region_client(region);
            let mut tls = client_files_in(pki, &cert, &key);
            tls.crls = vec![pki.join(vix_certs_dev::files::CRL)];
            HubLink {
                address,
                fallback_addresses: Vec::new(),
                server_name: "localhost".into(),
                tls,
                retry_delay_max_ms: 1_000,
            }
        }),
        group_commit: Default::default(),
        limits: Default::default(),
        smtp: None,
        metrics_listen: None,
        unhealthy_after_ms: 30_000,
        failpoint: None,
        adoption: None,
    }
}

/// SMTP settings for a region that mails through the test server on `port` of this machine:
/// STARTTLS required, the relay's certificate from the dev PKI, quick retries.
pub fn smtp_settings(port: u16) -> vix_node::config::SmtpSettings {
    vix_node::config::SmtpSettings {
        host: "localhost".into(),
        port,
        security: vix_node::config::SmtpSecurity::Starttls,
        sender: "Verwijsindex Noord <noreply@vix-noord.example.nl>".into(),
        credentials_file: None,
        ca_file: Some(pki().join(vix_certs_dev::files::CA_CERT)),
        batch: 50,
        retry_delay_max_ms: 200,
        poll_ms: 50,
        timeout_ms: 5_000,
        claim_ms: 2_000,
    }
}

/// A region node running in this process until dropped.
pub struct TestRegion {
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub context: Arc<RegionContext<RegionDatabase>>,
    pub dir: tempfile::TempDir,
    /// The hub and regions this one was linked with, to wait until the federation is quiet.
    federation: Option<Federation>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A region node running alone (no hub), with a fresh database.
pub async fn spawn_region(region: &str) -> TestRegion {
    spawn_region_in(region, new_dir(region), None).await
}

/// A region node linked to `hub`, with a fresh database.
pub async fn spawn_linked_region(region: &str, hub: &TestHub) -> TestRegion {
    let mut node = spawn_region_in(region, new_dir(region), Some(hub.addr)).await;
    hub.link(&mut node);
    node
}

/// The in-process nodes of one federation, held weakly: a node that stopped drops out.
#[derive(Clone, Default)]
struct Federation {
    hub: Weak<HubContext<HubDatabase>>,
    regions: Arc<Mutex<Vec<Weak<RegionContext<RegionDatabase>>>>>,
}

impl Federation {
    /// Whether everything written so far has gone as far as it goes: every region's outboxes
    /// are empty (the hub applied them) and every region stored and acknowledged its whole
    /// notice log. What the hub found before this held has been stored by its recipients.
    async fn is_quiet(&self) -> bool {
        let Some(hub) = self.hub.upgrade() else {
            return false;
        };
        let regions: Vec<_> = self
            .regions
            .lock()
            .expect("federation lock")
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        is_quiet(&hub, &regions).await
    }
}

/// Whether everything written so far in a federation of in-process nodes has gone as far as it
/// goes (see `Federation`); regions whose store is closed are left out.
pub async fn is_quiet(
    hub: &HubContext<HubDatabase>,
    regions: &[Arc<RegionContext<RegionDatabase>>],
) -> bool {
    use vix_node::store::SignalStore;
    use vix_node::store::hub::HubStore;
    {
        for region in regions {
            let store = &region.store;
            let (Ok(outbox), Ok(coordination)) = (
                store.outbox_len().await,
                store.coordination_outbox_batch(1).await,
            ) else {
                continue; // stopped: its store is closed
            };
            if outbox > 0 || !coordination.is_empty() {
                return false;
            }
        }
        for region in regions {
            if hub.store.unacked(&region.region_id).await.ok() != Some(0) {
                return false;
            }
        }
        true
    }
}

pub fn new_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("vix-test-{name}-"))
        .tempdir()
        .expect("temporary folder")
}

/// A region node on the database in `dir`: fresh, or left by a node that was stopped.
pub async fn spawn_region_in(
    region: &str,
    dir: tempfile::TempDir,
    hub: Option<SocketAddr>,
) -> TestRegion {
    spawn_region_with(region, dir, hub, |_| {}).await
}

/// Like [`spawn_region_in`], with the settings changed by `adjust` first.
pub async fn spawn_region_with(
    region: &str,
    dir: tempfile::TempDir,
    hub: Option<SocketAddr>,
    adjust: impl FnOnce(&mut RegionSettings),
) -> TestRegion {
    spawn_region_node(region, dir, hub, adjust, None).await
}

/// A region node alone (no hub) on a fresh database that also serves Prometheus's
/// `GET /metrics`; answers the node and where the metrics are.
pub async fn spawn_region_serving_metrics(region: &str) -> (TestRegion, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("bound address");
    let node = spawn_region_node(region, new_dir(region), None, |_| {}, Some(listener)).await;
    (node, addr)
}

async fn spawn_region_node(
    region: &str,
    dir: tempfile::TempDir,
    hub: Option<SocketAddr>,
    adjust: impl FnOnce(&mut RegionSettings),
    metrics: Option<tokio::net::TcpListener>,
) -> TestRegion {
    init_tracing();
    let clock = Arc::new(ManualClock::at_noon(test_day()));
    let mut settings = region_settings(region, dir.path(), hub);
    adjust(&mut settings);
    let mut node = RegionNode::build(&settings, clock.clone())
        .await
        .expect("region node builds");
    if let Some(listener) = metrics {
        node = node.with_metrics(listener);
    }
    let context = Arc::clone(node.context());
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("bound address");
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(node.run(listener, async {
        let _ = stopped.await;
    }));
    TestRegion {
        addr,
        clock,
        context,
        dir,
        federation: None,
        shutdown: Some(shutdown),
        task: Some(task),
    }
}

impl TestRegion {
    /// Waits until the federation this region was linked in is quiet (see `Federation`): a
    /// watermark after which "nothing more arrived" can be asserted, so a late duplicate would
    /// be seen.
    pub async fn quiet(&self) {
        let federation = self
            .federation
            .clone()
            .expect("a region spawned with spawn_linked_region");
        eventually("the federation quiet", || async {
            federation.is_quiet().await.then_some(())
        })
        .await;
    }

    /// A client authenticated as organisation `org` of the dev PKI (`expired`, `revoked` and
    /// `rogue` are the certificates that must be refused).
    pub fn client(&self, org: &str) -> RegionServiceClient<Channel> {
        RegionServiceClient::new(self.channel(org))
    }

    pub fn channel(&self, org: &str) -> Channel {
        let (cert, key) = vix_certs_dev::files::organisation(org);
        channel_with(self.addr, &cert, &key)
    }

    /// Entries in the node's audit log (the chain verified first): a refused request audits
    /// nothing.
    pub async fn audit_entries(&self) -> i64 {
        use vix_node::store::SignalStore;
        let entries = self
            .context
            .store
            .verify_audit()
            .await
            .expect("audit log intact");
        i64::try_from(entries).expect("entries")
    }

    /// Rows per table, to show that a refused request changed nothing.
    pub async fn row_counts(&self) -> HashMap<&'static str, i64> {
        self.context.store.row_counts().await.expect("row counts")
    }

    /// Stops the node, waits until it has closed its store, and hands back its folder so a
    /// new node can start on the same database.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("node task").expect("node stops cleanly");
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }

    /// A rights client authenticated as the municipality with CBS code `code`.
    pub fn rights(
        &self,
        code: &str,
    ) -> vix_protocol::region::v1::rights_service_client::RightsServiceClient<Channel> {
        let (cert, key) = vix_certs_dev::files::municipality(code);
        vix_protocol::region::v1::rights_service_client::RightsServiceClient::new(channel_with(
            self.addr, &cert, &key,
        ))
    }

    /// `org` registers the fixture youth `bsn` with `request_id`, its professional being
    /// [`professional`]`(org)` and the informing record the duty asks for on the test day.
    pub async fn register_bsn(
        &self,
        org: &str,
        bsn: &str,
        request_id: &str,
    ) -> vix_protocol::region::v1::Signal {
        use vix_protocol::region::v1 as pb;
        self.client(org)
            .register_signal(pb::RegisterSignalRequest {
                request_id: request_id.into(),
                youth: Some(pb::register_signal_request::Youth::Bsn(bsn.into())),
                professional: Some(professional(org)),
                planned_removal_date: String::new(),
                informing: Some(informing_for(bsn, test_day())),
            })
            .await
            .expect("RegisterSignal")
            .into_inner()
            .signal
            .expect("a signal")
    }

    /// The calling organisation's matches.
    pub async fn matches(&self, org: &str) -> Vec<vix_protocol::region::v1::Match> {
        self.client(org)
            .list_matches(vix_protocol::region::v1::ListMatchesRequest {
                acting_professional_id: "p-acting".into(),
                ..Default::default()
            })
            .await
            .expect("ListMatches")
            .into_inner()
            .matches
    }
}

impl Drop for TestRegion {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if std::env::var_os("VIX_TEST_KEEP").is_some() {
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
            eprintln!("kept {}", kept.keep().display());
        }
    }
}

/// A mutual-TLS channel to `addr` with the given certificate and key files of the dev PKI.
pub fn channel_with(addr: SocketAddr, cert: &str, key: &str) -> Channel {
    channel_in(pki(), addr, cert, key)
}

/// A mutual-TLS channel to `addr` with a certificate and key of the dev PKI at `pki`.
pub fn channel_in(pki: &Path, addr: SocketAddr, cert: &str, key: &str) -> Channel {
    let config = tls::client_config(&client_files_in(pki, cert, key)).expect("client TLS config");
    tls::channel(tls::Addresses::one(addr), "localhost", config).expect("channel")
}

/// How long `eventually` waits; `VIX_TEST_PATIENCE_MS` stretches it on a slow machine.
fn patience() -> Duration {
    let ms = std::env::var("VIX_TEST_PATIENCE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(15_000);
    Duration::from_millis(ms)
}

/// Polls `check` until it returns `Some`, for at most the patience; then fails the test.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what} after {:?}",
            patience()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn hub_settings(dir: &Path) -> HubSettings {
    hub_settings_in(pki(), dir)
}

/// The hub's settings in the dev PKI at `pki`, its database in `dir`.
pub fn hub_settings_in(pki: &Path, dir: &Path) -> HubSettings {
    HubSettings {
        listen: "127.0.0.1:0".parse().expect("address"),
        database: dir.join("hub.sqlite").into(),
        organisation_registry_file: pki.join(vix_certs_dev::files::ORGANISATION_REGISTRY),
        tls: TlsFiles {
            ca: pki.join(vix_certs_dev::files::CA_CERT),
            cert: pki.join(vix_certs_dev::files::HUB_CERT),
            key: pki.join(vix_certs_dev::files::HUB_KEY),
            crls: vec![pki.join(vix_certs_dev::files::CRL)],
            ..Default::default()
        },
        postgres: Default::default(),
        metrics_listen: None,
        group_commit: Default::default(),
        log_retention_days: 90,
        limits: Default::default(),
    }
}

/// The hub running in this process until dropped, recording every request it receives.
pub struct TestHub {
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub context: Arc<HubContext<HubDatabase>>,
    pub dir: tempfile::TempDir,
    /// Every request message the hub received, protobuf-encoded, in arrival order.
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
    /// When set, changes each notice-log entry the hub sends (a fault on the wire).
    pub tamper: Tamper,
    federation: Federation,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_hub() -> TestHub {
    spawn_hub_in(new_dir("hub")).await
}

pub async fn spawn_hub_in(dir: tempfile::TempDir) -> TestHub {
    let settings = hub_settings(dir.path());
    spawn_hub_in_at(dir, settings.listen).await
}

/// A hub on the database in `dir`, listening on `listen` (a restarted hub takes its old port,
/// the one the regions know).
pub async fn spawn_hub_in_at(dir: tempfile::TempDir, listen: SocketAddr) -> TestHub {
    spawn_hub_in_at_on(dir, listen, test_day()).await
}

/// Like [`spawn_hub_in_at`], its clock at noon on `day` from the start (before any region
/// reaches it).
pub async fn spawn_hub_in_at_on(dir: tempfile::TempDir, listen: SocketAddr, day: Date) -> TestHub {
    spawn_hub_with_on(dir, day, |settings| settings.listen = listen).await
}

/// A hub on the database in `dir`, with the settings changed by `adjust` first.
pub async fn spawn_hub_with(
    dir: tempfile::TempDir,
    adjust: impl FnOnce(&mut HubSettings),
) -> TestHub {
    spawn_hub_with_on(dir, test_day(), adjust).await
}

/// Like [`spawn_hub_with`], its clock at noon on `day` from the start.
async fn spawn_hub_with_on(
    dir: tempfile::TempDir,
    day: Date,
    adjust: impl FnOnce(&mut HubSettings),
) -> TestHub {
    init_tracing();
    let clock = Arc::new(ManualClock::at_noon(day));
    let mut settings = hub_settings(dir.path());
    adjust(&mut settings);
    let node = HubNode::build(&settings, clock.clone())
        .await
        .expect("hub builds");
    let context = Arc::clone(node.context());
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("bound address");
    let received: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let recorder = Arc::clone(&received);
    let tamper: Tamper = Arc::default();
    let federation = Federation {
        hub: Arc::downgrade(&context),
        regions: Arc::default(),
    };
    let tampering = Arc::clone(&tamper);
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(node.run_with(
        listener,
        move |api| recording::Recording::new(api, recorder, tampering),
        async {
            let _ = stopped.await;
        },
    ));
    TestHub {
        addr,
        clock,
        context,
        dir,
        received,
        tamper,
        federation,
        shutdown: Some(shutdown),
        task: Some(task),
    }
}

impl TestHub {
    /// Counts `region` in this hub's federation for [`TestRegion::quiet`].
    pub fn link(&self, region: &mut TestRegion) {
        self.federation
            .regions
            .lock()
            .expect("federation lock")
            .push(Arc::downgrade(&region.context));
        region.federation = Some(self.federation.clone());
    }

    /// Waits until this federation is quiet (see [`TestRegion::quiet`]).
    pub async fn quiet(&self) {
        eventually("the federation quiet", || async {
            self.federation.is_quiet().await.then_some(())
        })
        .await;
    }

    /// A federation client authenticated with `region`'s client certificate.
    pub fn client(
        &self,
        region: &str,
    ) -> vix_protocol::federation::v1::federation_service_client::FederationServiceClient<Channel>
    {
        let (cert, key) = vix_certs_dev::files::region_client(region);
        vix_protocol::federation::v1::federation_service_client::FederationServiceClient::new(
            channel_with(self.addr, &cert, &key),
        )
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("hub task").expect("hub stops cleanly");
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

pub mod process;
pub mod pseudonymizer;
mod recording;
pub use recording::Tamper;
pub mod smtp;
pub mod statements;
