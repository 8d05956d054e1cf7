//! The operator's commands on real databases: `verify-audit` finds an edited and a removed
//! entry, `import-mutations` purges a deceased youth beside a running node.

use std::path::Path;
use std::process::Stdio;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tokio::process::Command;
use vix_protocol::region::v1 as pb;

use super::{
    START_TIME_MAX, client, request, start_node, start_role_with, stop_gracefully, write_config,
};

/// Runs `vix-node <command> --config <config> <args>` (with `env` overrides): (success,
/// stdout, stderr).
async fn command(
    command: &str,
    config: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let mut all = vec![std::ffi::OsStr::new("--config"), config.as_os_str()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    run(command, &all, env).await
}

/// Runs `vix-node <command> <args>` (with `env` overrides): (success, stdout, stderr).
async fn run(
    command: &str,
    args: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_vix-node"))
        .arg(command)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(START_TIME_MAX, output)
        .await
        .unwrap_or_else(|_| panic!("{command} did not finish"))
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `vix-node verify-audit` on `config` (with `env` overrides): (success, stdout, stderr).
async fn verify_audit(config: &Path, env: &[(&str, &str)]) -> (bool, String, String) {
    command("verify-audit", config, &[], env).await
}

/// Changes the database behind the node's back, as an attacker with file access could.
async fn tamper(db: &Path, statements: &[&str]) {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(db))
        .await
        .unwrap();
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(*statement))
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
}

/// A dev PKI, and region north (alone, stopped again) holding three signals of jgz-north on
/// youths `<prefix>0..2`: (pki, folder, configuration).
async fn north_with_three_signals(
    prefix: &str,
) -> (tempfile::TempDir, tempfile::TempDir, std::path::PathBuf) {
    let pki = tempfile::tempdir().unwrap();
    vix_certs_dev::generate(pki.path(), &vix_certs_dev::DevPkiSpec::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), pki.path());
    let (node, addr) = start_node(&config).await;
    let mut jgz = client(addr, pki.path(), "jgz-north");
    for n in 0..3 {
        let id = format!("{prefix}{n}");
        jgz.register_signal(request(&id.to_lowercase(), &id, 0))
            .await
            .unwrap();
    }
    stop_gracefully(node).await;
    (pki, dir, config)
}

#[tokio::test]
async fn verify_audit_finds_an_edited_and_a_removed_entry() {
    let (pki, dir, config) = north_with_three_signals("A").await;

    let db = dir.path().join("north.sqlite");
    let (intact, stdout, _) = verify_audit(&config, &[]).await;
    assert!(intact);
    assert!(stdout.contains("intact: 3 entries"), "{stdout}");

    // The triggers refuse a change through SQL...
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(&db))
        .await
        .unwrap();
    let refused = sqlx::query("UPDATE audit_log SET actor_person_id = 'x' WHERE seq = 2")
        .execute(&pool)
        .await;
    assert!(refused.is_err(), "the audit log accepted an update");
    pool.close().await;

    // ...so an attacker drops them first. A copy gets the other attack.
    let copy = dir.path().join("copy.sqlite");
    std::fs::copy(&db, &copy).unwrap();
    let tail = dir.path().join("tail.sqlite");
    std::fs::copy(&db, &tail).unwrap();
    tamper(
        &db,
        &[
            "DROP TRIGGER audit_log_no_update",
            "UPDATE audit_log SET actor_person_id = 'someone-else' WHERE seq = 2",
        ],
    )
    .await;
    let (intact, _, stderr) = verify_audit(&config, &[]).await;
    assert!(!intact);
    assert!(stderr.contains("entry 2 was changed"), "{stderr}");

    tamper(
        &copy,
        &[
            "DROP TRIGGER audit_log_no_delete",
            "DELETE FROM audit_log WHERE seq = 2",
        ],
    )
    .await;
    let (intact, _, stderr) =
        verify_audit(&config, &[("VIX_REGION__DATABASE", copy.to_str().unwrap())]).await;
    assert!(!intact);
    assert!(stderr.contains("removed"), "{stderr}");

    // Removing the newest entry is found too, and a node on that database refuses to write
    // on top of the gap (which would hide it).
    tamper(
        &tail,
        &[
            "DROP TRIGGER audit_log_no_delete",
            "DELETE FROM audit_log WHERE seq = 3",
        ],
    )
    .await;
    let tail_env = [("VIX_REGION__DATABASE", tail.to_str().unwrap())];
    let (intact, _, stderr) = verify_audit(&config, &tail_env).await;
    assert!(!intact);
    assert!(stderr.contains("after 2 up to 3 were removed"), "{stderr}");
    let (mut child, addr) = start_role_with("region", &config, &tail_env).await;
    let status = client(addr, pki.path(), "jgz-north")
        .register_signal(request("after-gap", "A9", 0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    child.start_kill().unwrap();
}

fn bsn_request(request_id: &str, bsn: &str, client_index: usize) -> pb::RegisterSignalRequest {
    let mut request = request(request_id, "unused", client_index);
    request.youth = Some(pb::register_signal_request::Youth::Bsn(bsn.into()));
    // Born 2008: from 16 the youth alone is told.
    request.informing = Some(pb::InformingRecord {
        record: Some(pb::informing_record::Record::Informed(pb::Informed {
            parents: false,
            youth: true,
            informed_on: "2026-11-01".into(),
        })),
    });
    request
}

async fn import_mutations(config: &Path, file: &Path) -> (bool, String, String) {
    let args = [
        std::ffi::OsStr::new("--config"),
        config.as_os_str(),
        std::ffi::OsStr::new("--file"),
        file.as_os_str(),
    ];
    run("import-mutations", &args, &[]).await
}

#[tokio::test]
async fn a_death_from_the_brp_purges_the_youths_signals_while_the_node_runs() {
    let youth = "999991383";
    let pki = tempfile::tempdir().unwrap();
    vix_certs_dev::generate(pki.path(), &vix_certs_dev::DevPkiSpec::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), pki.path());
    let (node, addr) = start_node(&config).await;
    let mut jgz = client(addr, pki.path(), "jgz-north");
    let mut school = client(addr, pki.path(), "school-north");
    let signal = jgz
        .register_signal(bsn_request("d1", youth, 0))
        .await
        .unwrap()
        .into_inner()
        .signal
        .unwrap();
    school
        .register_signal(bsn_request("d2", youth, 1))
        .await
        .unwrap();

    // A file with a bad second line changes nothing, and the error names the line only.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        format!("{{\"bsn\":\"{youth}\",\"death_date\":\"2026-11-20\"}}\n{{\"bsn\":\"123\"}}\n"),
    )
    .unwrap();
    let (ok, _, stderr) = import_mutations(&config, &bad).await;
    assert!(!ok);
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(!stderr.contains(youth), "the error shows a BSN");
    let get = pb::GetSignalRequest {
        signal_id: signal.signal_id.clone(),
        acting_professional_id: "p0".into(),
    };
    assert!(jgz.get_signal(get.clone()).await.is_ok());

    let good = dir.path().join("good.jsonl");
    std::fs::write(
        &good,
        format!(
            "{{\"bsn\":\"{youth}\",\"death_date\":\"2026-11-20\"}}\n{{\"bsn\":\"999992065\",\"municipality\":\"0518\"}}\n"
        ),
    )
    .unwrap();
    let (ok, stdout, stderr) = import_mutations(&config, &good).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("1 deaths (2 signals deleted), 1 changes of address"),
        "{stdout}"
    );
    assert_eq!(
        jgz.get_signal(get).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    // No new signal on the youth is accepted.
    let status = jgz
        .register_signal(bsn_request("d3", youth, 0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    // Importing the same file again is harmless.
    let (ok, stdout, _) = import_mutations(&config, &good).await;
    assert!(ok);
    assert!(stdout.contains("(0 signals deleted)"), "{stdout}");
    stop_gracefully(node).await;
}

/// Runs `vix-node hub-status --json` on `config`: one JSON object per region.
async fn hub_status(config: &Path) -> Vec<serde_json::Value> {
    let (ok, stdout, stderr) = command("hub-status", config, &["--json"], &[]).await;
    assert!(ok, "{stderr}");
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn hub_status_shows_which_regions_the_hub_has_seen_and_their_backlog() {
    let pki = tempfile::tempdir().unwrap();
    vix_certs_dev::generate(pki.path(), &vix_certs_dev::DevPkiSpec::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hub_addr = super::free_port();
    let hub_config = super::hub_config(dir.path(), pki.path(), hub_addr);
    let (hub, _) = super::start_role("hub", &hub_config).await;
    let north_config = super::region_config(
        dir.path(),
        pki.path(),
        "north",
        "127.0.0.1:0",
        Some(hub_addr),
    );
    let (north, north_addr) = start_node(&north_config).await;
    let south_config = super::region_config(
        dir.path(),
        pki.path(),
        "south",
        "127.0.0.1:0",
        Some(hub_addr),
    );
    let (south, south_addr) = start_node(&south_config).await;
    // One youth in both regions: a notice in each region's log, which each acknowledges; east
    // never came.
    for (addr, org) in [(north_addr, "jgz-north"), (south_addr, "vt-south")] {
        client(addr, pki.path(), org)
            .register_signal(super::alt_youth_request(org, 1))
            .await
            .unwrap();
    }
    let status = vix_tests::eventually("north and south seen, nothing left", || async {
        let status = hub_status(&hub_config).await;
        let settled = ["north", "south"].iter().all(|name| {
            status.iter().any(|region| {
                region["region"] == *name && region["seen"] == true && region["backlog"] == 0
            })
        });
        settled.then_some(status)
    })
    .await;
    let by_region = |name: &str| {
        status
            .iter()
            .find(|region| region["region"] == name)
            .unwrap_or_else(|| panic!("{name} in {status:?}"))
            .clone()
    };
    assert!(by_region("north")["acknowledged_cursor"].as_u64().unwrap() >= 1);
    assert_eq!(by_region("east")["seen"], false);
    assert_eq!(status.len(), 3, "{status:?}");
    stop_gracefully(north).await;
    stop_gracefully(south).await;
    stop_gracefully(hub).await;
}

/// Runs `vix-node decommission` with `args` on `config`: (success, stdout, stderr).
async fn decommission(config: &Path, args: &[&str]) -> (bool, String, String) {
    command("decommission", config, args, &[]).await
}

#[tokio::test]
async fn decommission_dry_runs_say_what_would_go_and_change_nothing() {
    let (_pki, _dir, config) = north_with_three_signals("D").await;

    for args in [
        &["--purge", "--dry-run"][..],
        &["--successor", "south", "--dry-run"][..],
    ] {
        let (ok, stdout, stderr) = decommission(&config, args).await;
        assert!(ok, "{args:?}: {stderr}");
        assert!(
            stdout.contains("holds 3 active and 0 inactive signals"),
            "{stdout}"
        );
        assert!(stdout.contains("nothing changed"), "{stdout}");
    }
    // Neither a successor nor --purge; or both: refused by the arguments.
    for args in [&[][..], &["--purge", "--successor", "south"][..]] {
        let (ok, _, stderr) = decommission(&config, args).await;
        assert!(!ok, "{args:?} accepted");
        assert!(
            stderr.contains("--purge") || stderr.contains("--successor"),
            "{stderr}"
        );
    }
    // A purge needs the hub, to delete there too: without one it refuses and deletes nothing.
    let (ok, _, stderr) = decommission(&config, &["--purge"]).await;
    assert!(!ok);
    assert!(stderr.contains("no [region.hub]"), "{stderr}");
    let (_, stdout, _) = decommission(&config, &["--purge", "--dry-run"]).await;
    assert!(stdout.contains("holds 3 active"), "{stdout}");
    let (intact, stdout, _) = verify_audit(&config, &[]).await;
    assert!(intact);
    assert!(stdout.contains("intact: 3 entries"), "{stdout}");
}

/// The pseudonym service as operators run it: `key-file` writes a private key file once,
/// `vix-node pseudonymizer` serves a region node process that takes its pseudonyms from it,
/// and `pseudonymizer-audit` verifies the audit and shows the region's volume.
#[tokio::test]
async fn the_pseudonym_service_serves_a_region_and_its_audit_shows_the_volume() {
    let pki = tempfile::tempdir().unwrap();
    vix_certs_dev::generate(pki.path(), &vix_certs_dev::DevPkiSpec::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("pseudonymizer-v1.key");
    let key_file = |out: &Path| {
        let out = out.to_owned();
        async move {
            let (ok, stdout, _) = run(
                "key-file",
                &[std::ffi::OsStr::new("--out"), out.as_os_str()],
                &[],
            )
            .await;
            (ok, stdout)
        }
    };
    let (ok, stdout) = key_file(&key).await;
    assert!(ok);
    assert!(stdout.is_empty(), "a key is never printed");
    let written = std::fs::read_to_string(&key).unwrap();
    assert_eq!(written.trim().len(), 64);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let (ok, _) = key_file(&key).await;
    assert!(!ok, "an existing key file is never overwritten");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), written);

    let service_addr = super::free_port();
    let p = pki.path().display();
    let service_config = dir.path().join("pseudonymizer.toml");
    std::fs::write(
        &service_config,
        format!(
            r#"
[pseudonymizer]
listen = "{service_addr}"
organisation_registry_file = "{p}/organisations.toml"
current_key_version = 1
audit_file = "{audit}"

[[pseudonymizer.keys]]
version = 1
file = "{key}"

[pseudonymizer.tls]
ca = "{p}/ca.pem"
cert = "{p}/pseudonymizer.pem"
key = "{p}/pseudonymizer.key"
crls = ["{p}/crl.pem"]
"#,
            audit = dir.path().join("audit.jsonl").display(),
            key = key.display(),
        ),
    )
    .unwrap();
    let (service, _) = super::start_role("pseudonymizer", &service_config).await;

    // North without a federation key: its pseudonyms come from the service.
    let north_config = super::region_config(dir.path(), pki.path(), "north", "127.0.0.1:0", None);
    let text = std::fs::read_to_string(&north_config).unwrap();
    let text = text
        .lines()
        .filter(|line| !line.starts_with("federation_key"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(
        &north_config,
        format!(
            r#"{text}

[region.pseudonym_service]
address = "{service_addr}"
server_name = "localhost"
request_key_file = "{p}/request.key"

[region.pseudonym_service.tls]
ca = "{p}/ca.pem"
cert = "{p}/region-north-client.pem"
key = "{p}/region-north-client.key"
"#
        ),
    )
    .unwrap();
    let (north, north_addr) = start_node(&north_config).await;
    for (org, n) in [("jgz-north", 1), ("school-north", 1), ("jgz-north", 2)] {
        client(north_addr, pki.path(), org)
            .register_signal(super::alt_youth_request(org, n))
            .await
            .unwrap();
    }
    // jgz-north and school-north on youth 1: a match, made with the service's pseudonyms.
    let matches = client(north_addr, pki.path(), "school-north")
        .list_matches(pb::ListMatchesRequest {
            acting_professional_id: "p1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(matches.matches.len(), 1);

    let (ok, stdout, stderr) =
        command("pseudonymizer-audit", &service_config, &["--json"], &[]).await;
    assert!(ok, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["entries"], 3);
    assert_eq!(summary["regions"]["north"]["elements_evaluated"], 3);
    assert_eq!(summary["regions"]["north"]["calls_refused"], 0);
    // An edited line is found.
    let audit = dir.path().join("audit.jsonl");
    let text = std::fs::read_to_string(&audit).unwrap();
    std::fs::write(&audit, text.replacen("\"elements\":1", "\"elements\":0", 1)).unwrap();
    let (ok, _, stderr) = command("pseudonymizer-audit", &service_config, &[], &[]).await;
    assert!(!ok);
    assert!(stderr.contains("line 1"), "{stderr}");

    stop_gracefully(north).await;
    stop_gracefully(service).await;
}
