//! Invariant 5: whatever was acknowledged survives `kill -9`. Starts the real `vix-node`
// Test code: a failed unwrap is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! binary, registers concurrently over mutual TLS, kills it with SIGKILL mid-load, restarts it
//! on the same database and checks every acknowledged signal, and that no registration is
//! half-written.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;
use vix_node::tls::{self, TlsFiles};
use vix_protocol::region::v1 as pb;
use vix_protocol::region::v1::region_service_client::RegionServiceClient;

/// Youths of the BRP fixture born 2008 or later, so the wall clock keeps them under 23 for years.
const YOUTHS: [&str; 8] = [
    "999991383",
    "999990408",
    "999990743",
    "999992119",
    "999992557",
    "999995807",
    "999995984",
    "999996046",
];
const CLIENTS: usize = 8;
/// More than the node can take before the kill, so every client is cut off mid-stream.
const REQUESTS_PER_CLIENT: usize = 80;
/// Kill the node once this many registrations were acknowledged...
const ACKED_BEFORE_KILL: usize = 120;
/// ...or after this long, whichever comes first.
const LOAD_TIME_MAX: Duration = Duration::from_secs(30);
const START_TIME_MAX: Duration = Duration::from_secs(30);

fn write_config(dir: &Path, pki: &Path) -> PathBuf {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/brp-test-persons.json");
    let config = format!(
        r#"
[log]
format = "text"
filter = "info"

[region]
region_id = "north"
listen = "127.0.0.1:0"
database = "{db}"
federation_key_file = "{pki}/federation.key"
federation_key_version = 1
person_registry_file = "{fixture}"
organisations = ["jgz-north", "school-north"]

[region.tls]
ca = "{pki}/ca.pem"
cert = "{pki}/region-north-server.pem"
key = "{pki}/region-north-server.key"
crls = ["{pki}/crl.pem"]
"#,
        db = dir.join("north.sqlite").display(),
        pki = pki.display(),
        fixture = fixture.display(),
    );
    let path = dir.join("north.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// Starts `vix-node region` and waits for the address it logs once it listens.
async fn start_node(config: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vix-node"))
        .arg("region")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(START_TIME_MAX, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("region node listening") {
                let addr = line
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix("addr="))
                    .unwrap();
                return addr.parse::<SocketAddr>().unwrap();
            }
        }
        panic!("vix-node exited before listening");
    })
    .await
    .expect("vix-node did not start in time");
    // Keep draining the log so the node never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

fn client(addr: SocketAddr, pki: &Path, org: &str) -> RegionServiceClient<Channel> {
    let files = TlsFiles {
        ca: pki.join("ca.pem"),
        cert: pki.join(format!("org-{org}.pem")),
        key: pki.join(format!("org-{org}.key")),
        crls: vec![],
    };
    let channel = tls::channel(addr, "localhost", tls::client_config(&files).unwrap()).unwrap();
    RegionServiceClient::new(channel)
}

fn org_of(client_index: usize) -> &'static str {
    if client_index.is_multiple_of(2) {
        "jgz-north"
    } else {
        "school-north"
    }
}

fn request(request_id: &str, youth: &str, client_index: usize) -> pb::RegisterSignalRequest {
    pb::RegisterSignalRequest {
        request_id: request_id.to_owned(),
        youth: Some(pb::register_signal_request::Youth::Bsn(youth.to_owned())),
        professional: Some(pb::ProfessionalContact {
            professional_id: format!("p{client_index}"),
            name: format!("Professional {client_index}"),
            email: format!("p{client_index}@{}.example.nl", org_of(client_index)),
            phone: String::new(),
        }),
        planned_removal_date: String::new(),
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
    let mut sent: Vec<(String, usize, &str)> = Vec::new();
    let mut tasks = Vec::new();
    for client_index in 0..CLIENTS {
        let mut client = client(addr, pki.path(), org_of(client_index));
        let acked = Arc::clone(&acked);
        let requests: Vec<(String, &str)> = (0..REQUESTS_PER_CLIENT)
            .map(|n| {
                (
                    format!("c{client_index}-n{n}"),
                    YOUTHS[(client_index + n) % YOUTHS.len()],
                )
            })
            .collect();
        sent.extend(
            requests
                .iter()
                .map(|(id, youth)| (id.clone(), client_index, *youth)),
        );
        tasks.push(tokio::spawn(async move {
            for (request_id, youth) in requests {
                match client
                    .register_signal(request(&request_id, youth, client_index))
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
        "SELECT s.signal_id, s.request_id, \
                (SELECT COUNT(*) FROM signal_family_keys f WHERE f.signal_id = s.signal_id) AS keys, \
                (SELECT COUNT(*) FROM outbox o WHERE o.signal_id = s.signal_id) AS events \
         FROM signals s",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let stored: HashMap<String, String> = rows
        .iter()
        .map(|row| (row.get("request_id"), row.get("signal_id")))
        .collect();
    for row in &rows {
        let events: i64 = row.get("events");
        let keys: i64 = row.get("keys");
        assert_eq!(events, 1, "signal without its outbox event");
        assert!(
            keys == 1 || keys == 2,
            "every fixture youth here has one or two parents: {keys}"
        );
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
    jgz.register_signal(request("before-stop", YOUTHS[0], 0))
        .await
        .unwrap();
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

    let error = refused_start(&dir.path().join("nonexistent.toml"), &[]).await;
    assert!(error.contains("nonexistent.toml"), "{error}");
    assert!(
        !dir.path().join("north.sqlite").exists(),
        "nothing was created"
    );
}
