//! `vix-node client` against a running region node: two organisations register the same youth,
//! each lists the match (table and JSON), one withdraws; a bad request is refused plainly.

use std::path::Path;
use std::process::Output;

use super::{region_config, start_node, stop_gracefully};

/// Runs `vix-node client` as organisation `org` of the dev PKI at `pki` against `addr`.
async fn client(pki: &Path, addr: std::net::SocketAddr, org: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_vix-node"))
        .arg("client")
        .arg("--addr")
        .arg(addr.to_string())
        .arg("--ca")
        .arg(pki.join("ca.pem"))
        .arg("--cert")
        .arg(pki.join(format!("org-{org}.pem")))
        .arg("--key")
        .arg(pki.join(format!("org-{org}.key")))
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
    let (node, addr) = start_node(&config).await;
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
