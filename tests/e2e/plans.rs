//! Every statement the nodes run is served by an index: a growing table must not make a request
//! slower. This test drives every flow of a federation (register, local and cross-region
//! matches, forward, notice stream and acknowledgement, update, coordination, withdrawal of both
//! kinds, rights, death, the lifecycle over years), collects every SQL statement the process ran
//! (`vix_tests::statements`, so statements of the other tests in this binary count too), and
//! asks SQLite for each statement's plan on the region and hub databases: no full scan of a
//! table that grows, and no automatic index (SQLite building an index because one is missing).

use std::path::Path;

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use vix_node::domain::{Bsn, Clock};
use vix_node::store::SignalStore;
use vix_protocol::region::v1 as pb;
use vix_tests::{TestRegion, eventually, spawn_hub, spawn_linked_region, statements};

/// Statements that may read a whole table, and why that does not grow a request's cost.
const MAY_SCAN: [(&str, &str); 5] = [
    (
        "SELECT seq, event FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM dead_letters d",
        "reads the events in key order and stops after `limit`; it steps over only the events \
         held behind a dead letter (each looked up by the dead letters' signal index)",
    ),
    (
        "SELECT seq, change FROM coordination_outbox ORDER BY seq LIMIT",
        "reads the first `limit` changes in key order and stops",
    ),
    (
        "SELECT COUNT(*) FROM outbox",
        "the forwarder's lag: the outbox holds only the backlog",
    ),
    (
        "FROM audit_log ORDER BY seq",
        "verify-audit walks the whole chain on purpose, off the request path",
    ),
    (
        "SELECT COUNT(*) FROM ",
        "row counts of a whole table, read by tests only (`row_counts`)",
    ),
];

const YOUTH: &str = "999991383";
const SIBLING: &str = "999992065";

use vix_tests::professional as contact;

async fn register(region: &TestRegion, org: &str, bsn: &str, request_id: &str) -> pb::Signal {
    region.register_bsn(org, bsn, request_id).await
}

async fn matches_of(region: &TestRegion, org: &str, signal_id: &str) -> Vec<pb::Match> {
    region
        .client(org)
        .list_matches(pb::ListMatchesRequest {
            signal_id: signal_id.into(),
            acting_professional_id: "p".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .matches
}

async fn withdraw(region: &TestRegion, org: &str, signal_id: &str, reason: pb::WithdrawReason) {
    region
        .client(org)
        .withdraw_signal(pb::WithdrawSignalRequest {
            signal_id: signal_id.into(),
            reason: reason as i32,
            acting_professional_id: "p".into(),
        })
        .await
        .unwrap();
}

/// Runs every flow once across a hub and two regions; returns the database files.
async fn every_flow() -> Vec<(String, std::path::PathBuf, tempfile::TempDir)> {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;

    // Local youth match, family match, a replay and a re-registration.
    let jgz = register(&north, "jgz-north", YOUTH, "plan-1").await;
    let school = register(&north, "school-north", YOUTH, "plan-2").await;
    register(&north, "school-north", SIBLING, "plan-3").await;
    register(&north, "jgz-north", YOUTH, "plan-1").await;
    register(&north, "jgz-north", YOUTH, "plan-4").await;
    // Cross-region: forwarded, matched at the hub, streamed back and acknowledged.
    let vt = register(&south, "vt-south", YOUTH, "plan-5").await;
    let cross = eventually("north has the cross-region match", || async {
        matches_of(&north, "jgz-north", &jgz.signal_id)
            .await
            .into_iter()
            .find(|m| {
                m.counterpart
                    .as_ref()
                    .is_some_and(|c| c.region_id == "south")
            })
    })
    .await;
    north.matches("jgz-north").await;
    north
        .client("jgz-north")
        .get_signal(pb::GetSignalRequest {
            signal_id: jgz.signal_id.clone(),
            acting_professional_id: "p".into(),
        })
        .await
        .unwrap();
    // Update (refreshes the hub's notices), then cross-region coordination.
    south
        .client("vt-south")
        .update_signal(pb::UpdateSignalRequest {
            signal_id: vt.signal_id.clone(),
            professional: Some(pb::ProfessionalContact {
                phone: "0201234567".into(),
                ..contact("vt-south")
            }),
            planned_removal_date: String::new(),
            acting_professional_id: "p".into(),
            informing: None,
        })
        .await
        .unwrap();
    north
        .client("jgz-north")
        .coordinate(pb::CoordinateRequest {
            notice_id: cross.notice_id.clone(),
            acting_professional_id: "p".into(),
            action: Some(pb::coordinate_request::Action::NameRegievoerder(
                pb::Party::Own as i32,
            )),
        })
        .await
        .unwrap();
    eventually("south sees north's regievoerder", || async {
        let seen = south.matches("vt-south").await;
        seen.iter()
            .any(|m| {
                m.coordination
                    .as_ref()
                    .is_some_and(|c| c.regievoerder == pb::Party::Counterpart as i32)
            })
            .then_some(())
    })
    .await;
    // Rights: export, correction, partial erasure.
    // 0530: where YOUTH lives, served by north.
    let mut rights = north.rights("0530");
    rights
        .clone()
        .export_youth(pb::ExportYouthRequest {
            youth: Some(pb::export_youth_request::Youth::Bsn(YOUTH.into())),
            officer_id: "officer".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    rights
        .clone()
        .correct_signal(pb::CorrectSignalRequest {
            youth: Some(pb::correct_signal_request::Youth::Bsn(YOUTH.into())),
            signal_id: school.signal_id.clone(),
            professional: Some(contact("school-north")),
            planned_removal_date: String::new(),
            informing: None,
            officer_id: "officer".into(),
            reference: "COR-1".into(),
        })
        .await
        .unwrap();
    // Withdrawals: archived at the hub and in the notices, then deleted and retracted.
    withdraw(
        &south,
        "vt-south",
        &vt.signal_id,
        pb::WithdrawReason::RiskGone,
    )
    .await;
    // A party with two signals loses one: its notices move to the other, here and at the hub.
    register(&south, "vt-south", YOUTH, "plan-5b").await;
    withdraw(
        &south,
        "vt-south",
        &vt.signal_id,
        pb::WithdrawReason::Unjustified,
    )
    .await;
    withdraw(
        &north,
        "school-north",
        &school.signal_id,
        pb::WithdrawReason::Unjustified,
    )
    .await;
    let vt2 = register(&south, "vt-south", SIBLING, "plan-6").await;
    withdraw(
        &south,
        "vt-south",
        &vt2.signal_id,
        pb::WithdrawReason::Unjustified,
    )
    .await;
    rights
        .order_erasure(pb::OrderErasureRequest {
            youth: Some(pb::order_erasure_request::Youth::Bsn(YOUTH.into())),
            signal_ids: vec![jgz.signal_id.clone()],
            officer_id: "officer".into(),
            reference: "ERA-1".into(),
        })
        .await
        .unwrap();
    // A death reported by the BRP.
    let youth = Bsn::parse(YOUTH).unwrap();
    let deceased = north
        .context
        .pseudonymiser
        .pseudonymise(vix_node::domain::YouthRef::Bsn(&youth), &[])
        .await
        .unwrap()
        .subject;
    north
        .context
        .store
        .record_death(&deceased, north.clock.now())
        .await
        .unwrap();
    // Years of lifecycle on both sides: expiry, end of archive, 23rd birthday.
    register(&south, "gp-south", SIBLING, "plan-7").await;
    for years in [1, 7, 30] {
        let day = vix_tests::test_day()
            .checked_add(jiff::Span::new().years(years))
            .unwrap();
        let noon = vix_node::domain::ManualClock::at_noon(day).now();
        north.clock.set(noon);
        south.clock.set(noon);
        hub.clock.set(noon);
        north.context.ensure_swept().await.unwrap();
        south.context.ensure_swept().await.unwrap();
        hub.context.ensure_swept().await.unwrap();
    }
    hub.quiet().await;
    // Acknowledged log entries pruned a retention period later.
    for _ in 0..2 {
        hub.clock.advance(jiff::SignedDuration::from_hours(24 * 91));
        hub.context.prune_log().await.unwrap();
    }

    let mut databases = Vec::new();
    for (name, region) in [("north", north), ("south", south)] {
        let file = region.dir.path().join(format!("region-{name}.sqlite"));
        let dir = region.stop().await;
        databases.push((format!("region {name}"), file, dir));
    }
    let file = hub.dir.path().join("hub.sqlite");
    databases.push(("hub".to_owned(), file, hub.stop().await));
    databases
}

/// The plan lines of `statement` on `conn` that show a full read of a growing table or a
/// missing index; `None` if the statement does not apply to this database.
async fn bad_plan_lines(conn: &mut SqliteConnection, statement: &str) -> Option<Vec<String>> {
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "EXPLAIN QUERY PLAN {statement}"
    )))
    .fetch_all(&mut *conn)
    .await
    .ok()?;
    Some(
        rows.into_iter()
            .map(|(_, _, _, detail)| detail)
            .filter(|detail| {
                let scans_growing = detail
                    .strip_prefix("SCAN ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .is_some_and(|table| !is_small_table_name(table));
                scans_growing || detail.contains("AUTOMATIC")
            })
            .collect(),
    )
}

/// Tables that stay small whatever the load (and the SQLite and sqlx bookkeeping). Every other
/// table grows with signals, notices or history; an alias in a plan (`SCAN n`) is not in this
/// list, so a scan through an alias counts as a scan of a growing table.
fn is_small_table_name(table: &str) -> bool {
    [
        "hub_cursor",
        "region_cursors",
        "organisations",
        "sqlite_sequence",
        "sqlite_master",
        "sqlite_schema",
        "_sqlx_migrations",
        "CONSTANT",
    ]
    .contains(&table)
}

fn is_query(statement: &str) -> bool {
    let first = statement
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH"].contains(&first.as_str())
}

async fn open_read_only(file: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(file).read_only(true))
        .await
        .unwrap()
}

#[tokio::test]
async fn every_statement_the_nodes_run_is_served_by_an_index() {
    let databases = every_flow().await;
    let seen = statements::seen();
    let queries: Vec<&String> = seen.iter().filter(|s| is_query(s)).collect();
    assert!(
        queries.len() > 40,
        "the capture saw only {} statements: {queries:#?}",
        queries.len()
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    for statement in &queries {
        // The PostgreSQL hub's statements are planned by plans_postgres.rs.
        if statements::is_postgres(statement)
            || MAY_SCAN.iter().any(|(text, _)| statement.contains(text))
        {
            continue;
        }
        let mut applies = false;
        for (name, file, _) in &databases {
            let mut conn = open_read_only(file).await;
            if let Some(bad) = bad_plan_lines(&mut conn, statement).await {
                applies = true;
                if !bad.is_empty() {
                    failures.push(format!("{name}: {statement}\n    {}", bad.join("\n    ")));
                }
            }
            conn.close().await.unwrap();
        }
        assert!(applies, "no database can plan: {statement}");
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} statements read a growing table whole or need an index:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
