//! `vix-node client` against a running region node: two organisations register the same youth,
//! each lists the match (table and JSON), one withdraws; a municipality's officer exports the
//! youth's signals and orders them erased; a bad request is refused plainly.

use std::path::Path;
use std::process::Output;

use super::{region_config, start_role_with, stop_gracefully};

/// Runs `vix-node client` as organisation `org` of the dev PKI at `pki` against `addr`.
async fn client(pki: &Path, addr: std::net::SocketAddr, org: &str, args: &[&str]) -> Output {
    client_as(pki, addr, &format!("org-{org}"), args).await
}

/// Runs `vix-node client` with the dev PKI's certificate `<name>.pem` against `addr`.
async fn client_as(pki: &Path, addr: std::net::SocketAddr, name: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_vix-node"))
        .arg("client")
        .arg("--addr")
        .arg(addr.to_string())
        .arg("--ca")
        .arg(pki.join("ca.pem"))
        .arg("--cert")
        .arg(pki.join(format!("{name}.pem")))
        .arg("--key")
        .arg(pki.join(format!("{name}.key")))
        .args(args)
        .output()
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn register<'a>(request_id: &'a str, professional: &'a str, email: &'a str) -> Vec<&'a str> {
    vec![
        "register",
        "--request-id",
        request_id,
        "--bsn",
        "999991383",
        "--professional-id",
        professional,
        "--name",
        "A. de Jong",
        "--email",
        email,
        // The youth is 18: the duty is to inform the youth.
        "--informed-youth",
        "--informed-on",
        "2026-11-20",
    ]
}

#[tokio::test]
async fn people_register_list_and_withdraw_with_the_client_and_hear_why_a_request_is_refused() {
    let pki = tempfile::tempdir().unwrap();
    vix_certs_dev::generate(pki.path(), &vix_certs_dev::DevPkiSpec::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = region_config(dir.path(), pki.path(), "north", "127.0.0.1:0", None);
    // The youth lives in municipality 0530, whose officers may exercise rights here.
    let (node, addr) = start_role_with(
        "region",
        &config,
        &[("VIX_REGION__MUNICIPALITIES", r#"["0530"]"#)],
    )
    .await;
    let pki = pki.path();

    let jgz = stdout(
        &client(
            pki,
            addr,
            "jgz-north",
            &register("cli-1", "p1", "p1@jgz.example.nl"),
        )
        .await,
    );
    assert!(jgz.starts_with("registered: signal "), "{jgz}");
    let again = stdout(
        &client(
            pki,
            addr,
            "jgz-north",
            &register("cli-1", "p1", "p1@jgz.example.nl"),
        )
        .await,
    );
    assert!(again.starts_with("replayed: signal "), "{again}");
    stdout(
        &client(
            pki,
            addr,
            "school-north",
            &register("cli-2", "s1", "s1@school.example.nl"),
        )
        .await,
    );

    let table = stdout(
        &client(
            pki,
            addr,
            "jgz-north",
            &["matches", "--professional-id", "p1"],
        )
        .await,
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("your signal"), "{table}");
    assert!(
        lines[1].contains("youth") && lines[1].contains("s1@school.example.nl"),
        "{table}"
    );
    assert_eq!(lines[2], "1 matches");

    let json = stdout(
        &client(
            pki,
            addr,
            "jgz-north",
            &["--json", "matches", "--professional-id", "p1"],
        )
        .await,
    );
    let matched: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(matched["counterpart"]["email"], "s1@school.example.nl");
    assert_eq!(matched["counterpart"]["region_id"], "north");
    let own = matched["signal_id"].as_str().unwrap().to_owned();

    let withdrawn = stdout(
        &client(
            pki,
            addr,
            "jgz-north",
            &[
                "withdraw",
                "--signal",
                &own,
                "--reason",
                "unjustified",
                "--professional-id",
                "p1",
            ],
        )
        .await,
    );
    assert_eq!(withdrawn.trim(), format!("signal {own} deleted"));

    // The municipality's officer exports the youth's signals, then orders them erased.
    let export = stdout(
        &client_as(
            pki,
            addr,
            "municipality-0530",
            &[
                "--json",
                "export",
                "--bsn",
                "999991383",
                "--officer-id",
                "o1",
            ],
        )
        .await,
    );
    let exported: Vec<serde_json::Value> = export
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(exported.len(), 1, "{export}");
    assert_eq!(exported[0]["organisation_id"], "school-north");
    let erased = stdout(
        &client_as(
            pki,
            addr,
            "municipality-0530",
            &[
                "erase",
                "--bsn",
                "999991383",
                "--officer-id",
                "o1",
                "--reference",
                "BZ-2026-17",
            ],
        )
        .await,
    );
    assert!(erased.ends_with("1 signals erased\n"), "{erased}");
    let after = stdout(
        &client_as(
            pki,
            addr,
            "municipality-0530",
            &["export", "--bsn", "999991383", "--officer-id", "o1"],
        )
        .await,
    );
    assert!(after.ends_with("0 signals\n"), "{after}");

    // Refused: the node says why, field by field, and the command fails.
    let refused = client(
        pki,
        addr,
        "jgz-north",
        &register("cli-3", "p1", "not an address"),
    )
    .await;
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("refused (InvalidArgument)"), "{said}");
    assert!(said.contains("professional.email"), "{said}");
    stop_gracefully(node).await;
}
