//! Notice e-mails across `kill -9`: a region node is killed while it sends a batch of notice
//! e-mails to a slow relay, and started again. Every notice is mailed; the one duplicate
//! allowed is the mail the relay took and the node did not live to mark sent (mails go one at a
//! time, so at most one), and it carries the same Message-ID as its twin.

use std::collections::HashMap;
use std::time::Duration;

use super::{alt_youth_request, client, region_config, start_node, stop_gracefully};
use vix_tests::eventually;
use vix_tests::smtp::SmtpSink;

/// Youths registered by both organisations: two notices, two mails each.
const YOUTHS: usize = 40;

#[tokio::test]
async fn a_node_killed_mid_batch_mails_every_notice_and_at_most_one_twice() {
    let pki = tempfile::tempdir().unwrap();
    vix_certs_dev::generate(pki.path(), &vix_certs_dev::DevPkiSpec::default()).unwrap();
    let sink = SmtpSink::start_with(pki.path(), true, Duration::from_millis(25)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = region_config(dir.path(), pki.path(), "north", "127.0.0.1:0", None);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        r#"
[region.smtp]
host = "localhost"
port = {port}
security = "starttls"
sender = "Verwijsindex Noord <noreply@vix-noord.example.nl>"
ca_file = "{ca}"
retry_delay_max_ms = 200
poll_ms = 50
claim_ms = 1000
"#,
        port = sink.port,
        ca = pki.path().join("ca.pem").display(),
    ));
    std::fs::write(&config, text).unwrap();
    let db = dir.path().join("north.sqlite");

    let (node, addr) = start_node(&config).await;
    for n in 0..YOUTHS {
        for org in ["jgz-north", "school-north"] {
            client(addr, pki.path(), org)
                .register_signal(alt_youth_request(org, n))
                .await
                .unwrap();
        }
    }
    let notices = YOUTHS * 2;
    // Killed mid-batch: some mails out, most not.
    eventually("the first mails out", || async {
        (sink.messages().len() >= 10).then_some(())
    })
    .await;
    let mut node = node;
    node.kill().await.unwrap();
    let before_kill = sink.messages().len();
    assert!(before_kill < notices, "every mail went before the kill");

    let (node, _) = start_node(&config).await;
    eventually("every notice mailed and marked sent", || async {
        let unsent = vix_tests::process::count(
            &db,
            "SELECT COUNT(*) FROM email_jobs WHERE sent_at IS NULL",
            "",
        )
        .await
        .ok()?;
        (unsent == 0).then_some(())
    })
    .await;
    let mails = sink.messages();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for mail in &mails {
        *by_id
            .entry(mail.header("Message-ID").expect("a Message-ID"))
            .or_default() += 1;
    }
    assert_eq!(by_id.len(), notices, "every notice mailed");
    let twice = by_id.values().filter(|n| **n > 1).count();
    assert!(by_id.values().all(|n| *n <= 2), "{by_id:?}");
    assert!(twice <= 1, "{twice} notices mailed twice");
    eprintln!(
        "e-mail across kill -9: {before_kill} of {notices} out before the kill, {} received, {twice} twice",
        mails.len()
    );
    stop_gracefully(node).await;
}
