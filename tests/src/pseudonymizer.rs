//! The pseudonym service running in this process, recording every request it receives, and
//! the region settings that use it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use prost::Message;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};
use vix_node::config::{
    KeyFileSetting, PseudonymServiceLink, PseudonymizerSettings, RegionSettings,
};
use vix_node::domain::ManualClock;
use vix_node::startup::PseudonymizerNode;
use vix_node::tls::TlsFiles;
use vix_protocol::pseudonym::v1 as pb;
use vix_protocol::pseudonym::v1::pseudonym_service_server::PseudonymService;

use crate::{init_tracing, pki, test_day};

/// The service's settings in the dev PKI, its audit file in `dir`, one key version (the dev
/// PKI's seed file).
pub fn pseudonymizer_settings(dir: &Path) -> PseudonymizerSettings {
    let pki = pki();
    PseudonymizerSettings {
        listen: "127.0.0.1:0".parse().expect("address"),
        organisation_registry_file: pki.join(vix_certs_dev::files::ORGANISATION_REGISTRY),
        tls: TlsFiles {
            ca: pki.join(vix_certs_dev::files::CA_CERT),
            cert: pki.join(vix_certs_dev::files::PSEUDONYMIZER_CERT),
            key: pki.join(vix_certs_dev::files::PSEUDONYMIZER_KEY),
            crls: vec![pki.join(vix_certs_dev::files::CRL)],
            ..Default::default()
        },
        keys: vec![KeyFileSetting {
            version: 1,
            file: pki.join(vix_certs_dev::files::OPRF_KEY),
        }],
        current_key_version: 1,
        audit_file: dir.join("pseudonymizer-audit.jsonl"),
        rate_limit: Default::default(),
        metrics_listen: None,
        limits: Default::default(),
    }
}

/// Makes `settings` take their pseudonyms from the service at `addr` instead of the
/// federation key.
pub fn use_pseudonymizer(settings: &mut RegionSettings, addr: SocketAddr) {
    let pki = pki();
    let (cert, key) = vix_certs_dev::files::region_client(&settings.region_id);
    settings.federation_key_file = None;
    settings.federation_key_version = None;
    settings.pseudonym_service = Some(PseudonymServiceLink {
        address: addr,
        server_name: "localhost".into(),
        tls: TlsFiles {
            ca: pki.join(vix_certs_dev::files::CA_CERT),
            cert: pki.join(cert),
            key: pki.join(key),
            crls: vec![pki.join(vix_certs_dev::files::CRL)],
            ..Default::default()
        },
        request_key_file: pki.join(vix_certs_dev::files::REQUEST_KEY),
        timeout_ms: 5_000,
    });
}

/// The pseudonym service running in this process until dropped.
pub struct TestPseudonymizer {
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub settings: PseudonymizerSettings,
    /// Every request message the service received, protobuf-encoded, in arrival order.
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A service on `settings` (its `listen` may be a port a stopped service had).
pub async fn spawn_pseudonymizer(settings: PseudonymizerSettings) -> TestPseudonymizer {
    init_tracing();
    let clock = Arc::new(ManualClock::at_noon(test_day()));
    let node =
        PseudonymizerNode::build(&settings, clock.clone()).expect("pseudonym service builds");
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("bound address");
    let received: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let recorder = Arc::clone(&received);
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(node.run_with(
        listener,
        move |api| Recording {
            inner: api,
            received: recorder,
        },
        async {
            let _ = stopped.await;
        },
    ));
    TestPseudonymizer {
        addr,
        clock,
        settings,
        received,
        shutdown: Some(shutdown),
        task: Some(task),
    }
}

impl TestPseudonymizer {
    /// Stops the service and waits until its port is free.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("pseudonym service task")
                .expect("pseudonym service stops cleanly");
        }
    }
}

impl Drop for TestPseudonymizer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

struct Recording<T> {
    inner: T,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

#[tonic::async_trait]
impl<T: PseudonymService> PseudonymService for Recording<T> {
    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        self.received
            .lock()
            .expect("recorder lock")
            .push(request.get_ref().encode_to_vec());
        self.inner.evaluate(request).await
    }
}
