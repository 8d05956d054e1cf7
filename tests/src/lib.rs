//! Test harness for vix end-to-end tests: a development PKI built once per test binary, region
//! nodes started in-process on port 0 with a temporary SQLite file, and clients that speak
//! mutual TLS with any certificate of the PKI.
//!
//! `TEST_LOG=1` shows the nodes' logs; `VIX_TEST_KEEP=1` keeps the temporary folders.
#![forbid(unsafe_code)]
// A harness may stop a test with a message: that is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use jiff::civil::Date;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use vix_node::config::RegionSettings;
use vix_node::domain::ManualClock;
use vix_node::region::RegionContext;
use vix_node::startup::RegionNode;
use vix_node::store::sqlite::{SqliteStore, row_counts};
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
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_test_writer()
            .try_init();
    }
}

/// The day the end-to-end tests live on, so the fixture's ages never drift.
pub fn test_day() -> Date {
    jiff::civil::date(2026, 11, 25)
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

pub fn region_settings(region: &str, dir: &Path) -> RegionSettings {
    let pki = pki();
    let (cert, key) = vix_certs_dev::files::region_server(region);
    RegionSettings {
        region_id: region.to_owned(),
        listen: "127.0.0.1:0".parse().expect("address"),
        database: dir.join(format!("region-{region}.sqlite")),
        federation_key_file: pki.join(vix_certs_dev::files::FEDERATION_KEY),
        federation_key_version: 1,
        person_registry_file: person_registry_file(),
        organisations: organisations_of(region),
        tls: TlsFiles {
            ca: pki.join(vix_certs_dev::files::CA_CERT),
            cert: pki.join(cert),
            key: pki.join(key),
            crls: vec![pki.join(vix_certs_dev::files::CRL)],
        },
    }
}

/// A region node running in this process until dropped.
pub struct TestRegion {
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub context: Arc<RegionContext<SqliteStore>>,
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_region(region: &str) -> TestRegion {
    init_tracing();
    let dir = tempfile::Builder::new()
        .prefix(&format!("vix-test-{region}-"))
        .tempdir()
        .expect("temporary folder");
    let clock = Arc::new(ManualClock::at_noon(test_day()));
    let settings = region_settings(region, dir.path());
    let node = RegionNode::build(&settings, clock.clone())
        .await
        .expect("region node builds");
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
        shutdown: Some(shutdown),
        task: Some(task),
    }
}

impl TestRegion {
    /// A client authenticated as organisation `org` of the dev PKI (`expired`, `revoked` and
    /// `rogue` are the certificates that must be refused).
    pub fn client(&self, org: &str) -> RegionServiceClient<Channel> {
        RegionServiceClient::new(self.channel(org))
    }

    pub fn channel(&self, org: &str) -> Channel {
        let (cert, key) = vix_certs_dev::files::organisation(org);
        channel_with(self.addr, &cert, &key)
    }

    /// Rows per table, to show that a refused request changed nothing.
    pub async fn row_counts(&self) -> HashMap<&'static str, i64> {
        row_counts(&self.context.store).await.expect("row counts")
    }

    /// Stops the node and waits until it has closed its store.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("node task").expect("node stops cleanly");
        }
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
    let pki = pki();
    let files = TlsFiles {
        ca: pki.join(vix_certs_dev::files::CA_CERT),
        cert: pki.join(cert),
        key: pki.join(key),
        crls: vec![],
    };
    let config = tls::client_config(&files).expect("client TLS config");
    tls::channel(addr, "localhost", config).expect("channel")
}
