//! The real `vix-node` processes: invariant 5 (whatever was acknowledged survives `kill -9`) for
//! a region node alone and for the federation (hub and regions killed mid-stream and
//! mid-forward), graceful shutdown on SIGTERM, and refusal of a bad configuration at start-up.
// Test code: a failed unwrap is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tokio::process::{Child, Command};
use tonic::transport::Channel;
use vix_node::domain::{KeyVersion, OrganisationId, Pseudonymiser, RequestId};
use vix_node::pseudonym::HmacPseudonymiser;
use vix_node::tls::{self, TlsFiles};
use vix_protocol::region::v1 as pb;
use vix_protocol::region::v1::region_service_client::RegionServiceClient;

mod client;
mod federation;
mod mail;
mod operator;
mod postgres_hubs;

const CLIENTS: usize = 8;
/// More than the node can take before the kill, so every client is cut off mid-stream.
const REQUESTS_PER_CLIENT: usize = 80;
/// Kill the node once this many registrations were acknowledged...
const ACKED_BEFORE_KILL: usize = 120;
/// ...or after this long, whichever comes first.
const LOAD_TIME_MAX: Duration = Duration::from_secs(30);
use vix_tests::process::{self, START_TIME_MAX};

fn write_config(dir: &Path, pki: &Path) -> PathBuf {
    region_config(dir, pki, "north", "127.0.0.1:0", None)
}

/// Writes `<region>.toml` in `dir` for a region node on `listen` with the BRP fixture persons,
/// linked to `hub` if given.
fn region_config(
    dir: &Path,
    pki: &Path,
    region: &str,
    listen: &str,
    hub: Option<SocketAddr>,
) -> PathBuf {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/brp-test-persons.json");
    process::region_config(dir, pki, region, listen, hub, &fixture).unwrap()
}

fn hub_config(dir: &Path, pki: &Path, listen: SocketAddr) -> PathBuf {
    process::hub_config(dir, pki, listen).unwrap()
}

fn free_port() -> SocketAddr {
    process::free_port().unwrap()
}

/// Starts the region node of `config`.
async fn start_node(config: &Path) -> (Child, SocketAddr) {
    start_role("region", config).await
}

/// Starts `vix-node <role>` and waits for the address it logs once it listens.
async fn start_role(role: &str, config: &Path) -> (Child, SocketAddr) {
    start_role_with(role, config, &[]).await
}

/// Like `start_role`, with `VIX_` overrides in the environment.
async fn start_role_with(role: &str, config: &Path, env: &[(&str, &str)]) -> (Child, SocketAddr) {
    let (child, addr, _log) = start_role_watching(role, config, env).await;
    (child, addr)
}

/// Like `start_role_with`, also handing over the node's log lines from then on. The log is
/// kept beside the configuration (`<name>.log`, appended across restarts).
async fn start_role_watching(
    role: &str,
    config: &Path,
    env: &[(&str, &str)],
) -> (
    Child,
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let node = process::NodeProcess::start(
        Path::new(env!("CARGO_BIN_EXE_vix-node")),
        role,
        config,
        env,
        &config.with_extension("log"),
    )
    .await
    .unwrap();
    (node.child, node.addr, node.lines)
}

fn client(addr: SocketAddr, pki: &Path, org: &str) -> RegionServiceClient<Channel> {
    let files = TlsFiles {
        ca: pki.join("ca.pem"),
        cert: pki.join(format!("org-{org}.pem")),
        key: pki.join(format!("org-{org}.key")),
        crls: vec![],
        ..Default::default()
    };
    let config = tls::client_config(&files).unwrap();
    let channel = tls::channel(tls::Addresses::one(addr), "localhost", config).unwrap();
    RegionServiceClient::new(channel)
}

fn org_of(client_index: usize) -> &'static str {
    if client_index.is_multiple_of(2) {
        "jgz-north"
    } else {
        "school-north"
    }
}

/// A registration of the youth without a BSN numbered `youth`: the test decides exactly which
/// registrations meet (both organisations of a client pair register the same youths).
fn request(request_id: &str, youth: &str, client_index: usize) -> pb::RegisterSignalRequest {
    pb::RegisterSignalRequest {
        request_id: request_id.to_owned(),
        youth: Some(pb::register_signal_request::Youth::AltYouthId(
            pb::AltYouthId {
                issuer: "durability".into(),
                number: youth.to_owned(),
                birth_date: "2020-06-01".into(),
            },
        )),
        professional: Some(pb::ProfessionalContact {
            professional_id: format!("p{client_index}"),
            name: format!("Professional {client_index}"),
            email: format!("p{client_index}@{}.example.nl", org_of(client_index)),
            phone: String::new(),
        }),
        planned_removal_date: String::new(),
        // Under 12: the parents were told.
        informing: Some(pb::InformingRecord {
            record: Some(pb::informing_record::Record::Informed(pb::Informed {
                parents: true,
                youth: false,
                informed_on: "2026-11-01".into(),
            })),
        }),
    }
}

#[tokio::test]
async fn acknowledged_signals_survive_kill_9_and_nothing_is_half_written() {
    let pki = tempfile::tempdir().unwrap();
    vix_certs_dev::generate(pki.path(), &vix_certs_dev::DevPkiSpec::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), pki.path());

    let (mut node, addr) = start_node(&config).await;

    // request_id -> (client, signal_id) for every acknowledged registration.
    let acked: Arc<Mutex<BTreeMap<String, (usize, String)>>> = Arc::default();
    let mut sent: Vec<(String, usize, String)> = Vec::new();
    let mut tasks = Vec::new();
    for client_index in 0..CLIENTS {
        let mut client = client(addr, pki.path(), org_of(client_index));
        let acked = Arc::clone(&acked);
        let requests: Vec<(String, String)> = (0..REQUESTS_PER_CLIENT)
            .map(|n| {
                (
                    format!("c{client_index}-n{n}"),
                    format!("D{}-{n}", client_index / 2),
                )
            })
            .collect();
        sent.extend(
            requests
                .iter()
                .map(|(id, youth)| (id.clone(), client_index, youth.clone())),
        );
        tasks.push(tokio::spawn(async move {
            for (request_id, youth) in requests {
                match client
                    .register_signal(request(&request_id, &youth, client_index))
                    .await
                {
                    Ok(response) => {
                        let signal = response.into_inner().signal.unwrap();
                        acked
                            .lock()
                            .unwrap()
                            .insert(request_id, (client_index, signal.signal_id));
                    }
                    // The node is gone: this request and the rest are unacknowledged.
                    Err(_) => return,
                }
            }
        }));
    }

    let deadline = tokio::time::Instant::now() + LOAD_TIME_MAX;
    while acked.lock().unwrap().len() < ACKED_BEFORE_KILL && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.start_kill().unwrap(); // SIGKILL: no shutdown, no flush
    node.wait().await.unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= ACKED_BEFORE_KILL / 2,
        "too little load before the kill: {}",
        acked.len()
    );

    let (node, addr) = start_node(&config).await;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| client(addr, pki.path(), org_of(i)))
        .collect();

    // Every acknowledged signal is there, for its owner, unchanged.
    for (request_id, (client_index, signal_id)) in &acked {
        let signal = clients[*client_index]
            .clone()
            .get_signal(pb::GetSignalRequest {
                acting_professional_id: "p-acting".into(),
                signal_id: signal_id.clone(),
            })
            .await
            .unwrap_or_else(|status| panic!("acknowledged {request_id} lost: {status:?}"))
            .into_inner()
            .signal
            .unwrap();
        assert_eq!(
            signal.professional.unwrap().professional_id,
            format!("p{client_index}")
        );
    }

    // Nothing is half-written: each stored signal has its family keys and its outbox event,
    // and the file passes SQLite's own check.
    let db = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(dir.path().join("north.sqlite"))
                .read_only(true),
        )
        .await
        .unwrap();
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");
    let rows = sqlx::query(
        "SELECT s.signal_id, s.request_key, s.organisation_id, \
                (SELECT COUNT(*) FROM signal_family_keys f WHERE f.signal_id = s.signal_id) AS keys, \
                (SELECT COUNT(*) FROM outbox o WHERE o.signal_id = s.signal_id) AS events \
         FROM signals s",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    // The node keeps only a keyed hash of each request_id; recompute it to find the requests.
    let keys = HmacPseudonymiser::from_file(
        &pki.path().join("federation.key"),
        KeyVersion::new(1).unwrap(),
    )
    .unwrap();
    let request_key = |org: &str, request_id: &str| {
        hex::encode(keys.request_key(
            &OrganisationId::parse(org).unwrap(),
            &RequestId::parse(request_id).unwrap(),
        ))
    };
    let by_key: HashMap<String, String> = rows
        .iter()
        .map(|row| (row.get("request_key"), row.get("signal_id")))
        .collect();
    let stored: HashMap<String, String> = sent
        .iter()
        .filter_map(|(request_id, client_index, _)| {
            by_key
                .get(&request_key(org_of(*client_index), request_id))
                .map(|signal_id| (request_id.clone(), signal_id.clone()))
        })
        .collect();
    assert_eq!(
        stored.len(),
        rows.len(),
        "every stored signal answers a sent request"
    );
    for row in &rows {
        let events: i64 = row.get("events");
        assert_eq!(events, 1, "signal without its outbox event");
    }
    // A youth held by both organisations of a pair has exactly its two notices; a youth held by
    // one has none. A registration torn by the kill would break this.
    let youths = sqlx::query(
        "SELECT subject_key, COUNT(DISTINCT organisation_id) AS organisations, \
                (SELECT COUNT(*) FROM notices n WHERE n.recipient_subject_key = s.subject_key) \
                    AS notices, \
                (SELECT COUNT(*) FROM email_jobs e JOIN notices n USING (notice_id) \
                 WHERE n.recipient_subject_key = s.subject_key) AS emails \
         FROM signals s GROUP BY subject_key",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    for youth in &youths {
        let organisations: i64 = youth.get("organisations");
        let expected = if organisations == 2 { 2 } else { 0 };
        assert_eq!(youth.get::<i64, _>("notices"), expected);
        assert_eq!(youth.get::<i64, _>("emails"), expected);
    }
    let outbox: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        outbox,
        i64::try_from(rows.len()).unwrap(),
        "outbox event without its signal"
    );
    for (request_id, (_, signal_id)) in &acked {
        assert_eq!(stored.get(request_id), Some(signal_id));
    }

    // Resending every request, as clients do after a failure, creates nothing twice: what was
    // stored (acknowledged or not) is replayed, the rest is registered now.
    for (request_id, client_index, youth) in &sent {
        let response = clients[*client_index]
            .clone()
            .register_signal(request(request_id, youth, *client_index))
            .await
            .unwrap()
            .into_inner();
        let signal_id = response.signal.unwrap().signal_id;
        match stored.get(request_id) {
            Some(before) => {
                assert!(response.replayed, "{request_id}");
                assert_eq!(&signal_id, before);
            }
            None => assert!(!response.replayed, "{request_id}"),
        }
    }
    let signals: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signals")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(signals, i64::try_from(sent.len()).unwrap());
    eprintln!(
        "durability: {} acknowledged before kill -9, {} stored, {} resent",
        acked.len(),
        stored.len(),
        sent.len()
    );
    stop_gracefully(node).await;
}

/// Sends SIGTERM and expects a clean exit within a bound.
async fn stop_gracefully(mut node: Child) {
    let pid = node.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), node.wait())
        .await
        .expect("vix-node did not stop within 10 s of SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn sigterm_stops_the_node_cleanly() {
    let pki = tempfile::tempdir().unwrap();
    vix_certs_dev::generate(pki.path(), &vix_certs_dev::DevPkiSpec::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), pki.path());
    let (node, addr) = start_node(&config).await;
    let mut jgz = client(addr, pki.path(), "jgz-north");
    jgz.register_signal(request("before-stop", "S0", 0))
        .await
        .unwrap();
    stop_gracefully(node).await;
}

#[tokio::test]
async fn sighup_does_not_end_a_node_without_crls() {
    let pki = tempfile::tempdir().unwrap();
    vix_certs_dev::generate(pki.path(), &vix_certs_dev::DevPkiSpec::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), pki.path());
    let text = std::fs::read_to_string(&config).unwrap();
    let without_crls: String = text
        .lines()
        .filter(|line| !line.starts_with("crls"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_ne!(text, without_crls, "the configuration had CRLs to remove");
    std::fs::write(&config, without_crls).unwrap();
    let (mut node, addr) = start_node(&config).await;
    let pid = node.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    // Still serving after the signal: a registration is answered.
    client(addr, pki.path(), "jgz-north")
        .register_signal(request("after-hup", "S0", 0))
        .await
        .unwrap();
    assert!(
        node.try_wait().unwrap().is_none(),
        "the node ended on SIGHUP"
    );
    stop_gracefully(node).await;
}

/// Runs `vix-node region` with `config` and `env`, expecting it to refuse to start.
async fn refused_start(config: &Path, env: &[(&str, &str)]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_vix-node"))
        .arg("region")
        .arg("--config")
        .arg(config)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(START_TIME_MAX, output)
        .await
        .expect("vix-node with a bad configuration did not exit")
        .unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn a_bad_configuration_stops_the_node_with_a_clear_error() {
    let pki = tempfile::tempdir().unwrap();
    vix_certs_dev::generate(pki.path(), &vix_certs_dev::DevPkiSpec::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), pki.path());

    let error = refused_start(&config, &[("VIX_REGION__LISTEN", "not-an-address")]).await;
    assert!(error.contains("listen"), "{error}");

    let error = refused_start(&config, &[("VIX_REGION__REGION_ID", "no spaces allowed")]).await;
    assert!(error.contains("region_id"), "{error}");

    let missing = dir.path().join("missing.key");
    let error = refused_start(
        &config,
        &[("VIX_REGION__FEDERATION_KEY_FILE", missing.to_str().unwrap())],
    )
    .await;
    assert!(error.contains("missing.key"), "{error}");

    // The organisation registry is checked whole before anything is opened.
    let registry = dir.path().join("organisations.toml");
    std::fs::write(
        &registry,
        "regions = [\"north\"]\n\
         [[organisations]]\nid = \"jgz-north\"\nname = \"JGZ Noord\"\nregion = \"north\"\n\
         [[organisations]]\nid = \"jgz-north\"\nname = \"JGZ Noord 2\"\nregion = \"north\"\n",
    )
    .unwrap();
    let error = refused_start(
        &config,
        &[(
            "VIX_REGION__ORGANISATION_REGISTRY_FILE",
            registry.to_str().unwrap(),
        )],
    )
    .await;
    assert!(
        error.contains("organisation_registry_file")
            && error.contains("organisations[1].id \"jgz-north\" is listed twice"),
        "{error}"
    );
    let error = refused_start(&config, &[("VIX_REGION__REGION_ID", "west")]).await;
    assert!(
        error.contains("\"west\" is not a region of the organisation registry"),
        "{error}"
    );

    let error = refused_start(&dir.path().join("nonexistent.toml"), &[]).await;
    assert!(error.contains("nonexistent.toml"), "{error}");
    assert!(
        !dir.path().join("north.sqlite").exists(),
        "nothing was created"
    );
}

/// Youths without a BSN, so the test controls exactly which pairs match: each is registered
/// once in the north and once in the south, which makes exactly one cross-region youth match.
fn alt_youth_request(org: &str, n: usize) -> pb::RegisterSignalRequest {
    pb::RegisterSignalRequest {
        request_id: format!("{org}-{n}"),
        youth: Some(pb::register_signal_request::Youth::AltYouthId(
            pb::AltYouthId {
                issuer: "kill9".into(),
                number: format!("Y{n}"),
                birth_date: "2020-06-01".into(),
            },
        )),
        professional: Some(pb::ProfessionalContact {
            professional_id: "p1".into(),
            name: format!("Professional of {org}"),
            email: format!("p1@{org}.example.nl"),
            phone: String::new(),
        }),
        planned_removal_date: String::new(),
        // Under 12: the parents were told.
        informing: Some(pb::InformingRecord {
            record: Some(pb::informing_record::Record::Informed(pb::Informed {
                parents: true,
                youth: false,
                informed_on: "2026-11-01".into(),
            })),
        }),
    }
}
