//! Every statement the hub and the region node run on PostgreSQL is served by an index. Every
//! flow of the hub store runs once on a fresh schema (new signals and matches, a newer revision
//! and the refresh of its notices, deletion with notices moved and with notices retracted,
//! coordination, the notice log, acknowledgements, pruning, the sweep over years, the audit
//! chain), and every flow of the region store on another (`plans_postgres_region`); each
//! statement run (captured by `vix_tests::statements`, with those of the other PostgreSQL tests
//! in this binary) is then planned on a hub schema and a region schema, each filled with 20,000
//! signals and their rows, statistics gathered. A statement must be one of them (it prepares
//! there), and PostgreSQL's generic plan (the one that does not depend on the values) must not
//! scan a table that grows.

use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Row};
use vix_node::domain::contact::ContactInput;
use vix_node::domain::coordination::{ChangeKind, CoordinationChange};
use vix_node::domain::{
    FamilyKey, KeyVersion, OrganisationId, OrganisationName, ProfessionalContact, RegionId,
    Revision, SignalId, SignalState, SubjectKey, ValidationErrors,
};
use vix_node::store::hub::{HubSignal, HubStore, SignalEvent};
use vix_node::store::postgres::testing::Schema;
use vix_tests::statements;

use crate::plans_postgres_region;

/// Hub tables that grow with the federation: a scan of any of them makes a request slower.
const GROWING: [&str; 7] = [
    "signals",
    "signal_family_keys",
    "tombstones",
    "notices",
    "told_pairs",
    "region_log",
    "coordination_changes",
];

/// Statements that may read a whole table, and why that does not grow a request's cost.
const MAY_SCAN: [(&str, &str); 5] = [
    (
        "SELECT COUNT(*) FROM email_jobs WHERE sent_at IS NULL",
        "the e-mail queue's length: unsent mail only (a partial index), a metric",
    ),
    (
        "FROM audit_log ORDER BY seq",
        "verify-audit walks the whole chain on purpose, off the request path",
    ),
    ("SELECT COUNT(*) FROM notices", "read by tests only"),
    (
        "SELECT (SELECT COUNT(*) FROM signals) AS signals",
        "the region's row counts, read by tests only",
    ),
    (
        "SELECT COUNT(*) FROM dead_letters",
        "the operator's count of dead letters (`vix-node dead-letters`), off the request path",
    ),
];

fn signal(org: &str, youth: u8, family: u8, state: SignalState) -> HubSignal {
    let v1 = KeyVersion::new(1).unwrap();
    let mut errors = ValidationErrors::new();
    let contact = ProfessionalContact::parse(
        ContactInput {
            professional_id: "p1",
            name: "A. Plan",
            email: "p1@plan.example.nl",
            phone: "",
        },
        "professional",
        &mut errors,
    )
    .unwrap();
    HubSignal {
        organisation_id: OrganisationId::parse(org).unwrap(),
        organisation_name: OrganisationName::parse(org).unwrap(),
        contact,
        subject_key: SubjectKey::new(v1, [youth; 32]),
        family_keys: vec![FamilyKey::new(v1, [family; 32])],
        registered_at: "2026-11-25T10:00:00Z".parse().unwrap(),
        planned_removal_date: jiff::civil::date(2027, 11, 25),
        state,
        inactive_since: None,
    }
}

fn event(id: SignalId, revision: u64, signal: Option<HubSignal>) -> SignalEvent {
    SignalEvent {
        signal_id: id,
        revision: Revision::new(revision).unwrap(),
        upsert: signal,
        previous_keys: Default::default(),
    }
}

/// Every flow of the hub store once.
async fn every_flow(schema: &Schema) {
    let store = schema.open().await.unwrap();
    let (north, south) = (
        RegionId::parse("north").unwrap(),
        RegionId::parse("south").unwrap(),
    );
    let now: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
    let (a, a2, b, c) = (
        SignalId::generate(),
        SignalId::generate(),
        SignalId::generate(),
        SignalId::generate(),
    );
    let active = SignalState::Active;
    store
        .submit(
            &north,
            vec![event(a, 1, Some(signal("jgz-north", 1, 9, active)))],
            now,
        )
        .await
        .unwrap();
    store
        .submit(
            &south,
            vec![
                event(b, 1, Some(signal("vt-south", 1, 9, active))),
                event(c, 1, Some(signal("gp-south", 2, 9, active))),
            ],
            now,
        )
        .await
        .unwrap();
    // A newer revision refreshes the notices showing it; a second signal of the party, then
    // the first deleted: its notices move; the last one deleted: they are retracted.
    store
        .submit(
            &north,
            vec![event(a, 2, Some(signal("jgz-north", 1, 9, active)))],
            now,
        )
        .await
        .unwrap();
    store
        .submit(
            &north,
            vec![event(a2, 1, Some(signal("jgz-north", 1, 9, active)))],
            now,
        )
        .await
        .unwrap();
    store
        .submit(&north, vec![event(a, 3, None)], now)
        .await
        .unwrap();
    store
        .submit_coordination(
            &south,
            vec![CoordinationChange {
                change_id: uuid::Uuid::new_v4(),
                by_signal: b,
                other_signal: a2,
                at: now,
                kind: ChangeKind::Regievoerder(b),
            }],
            now,
        )
        .await
        .unwrap();
    store
        .submit(&north, vec![event(a2, 2, None)], now)
        .await
        .unwrap();
    let page = store.log_after(&south, 0, 100).await.unwrap();
    store
        .ack(&south, page.read_through.unwrap_or(0), now)
        .await
        .unwrap();
    store.log_head().await.unwrap();
    store.unacked(&south).await.unwrap();
    store.prune_log(now, now).await.unwrap();
    // Expiry a year on, end of archive five years after that.
    store
        .sweep(jiff::civil::date(2027, 12, 1), 100)
        .await
        .unwrap();
    store
        .sweep(jiff::civil::date(2033, 12, 1), 100)
        .await
        .unwrap();
    store.verify_audit().await.unwrap();
    store.close().await;
}

/// A schema with 20,000 signals across three regions, their family keys, notices, told pairs,
/// log entries, tombstones and coordination changes, statistics gathered.
async fn filled() -> Schema {
    let schema = Schema::create().await.unwrap();
    schema.open().await.unwrap().close().await;
    let mut conn = PgConnection::connect_with(&schema.options().unwrap())
        .await
        .unwrap();
    for statement in [
        "INSERT INTO signals SELECT 's' || n, (ARRAY['north','south','east'])[n % 3 + 1], 1, \
             'org' || (n % 50), 'Org', 'p1', 'P', 'p@x.nl', NULL, 'k' || (n / 2), \
             1764000000000000 + n, '2028-01-01', \
             CASE WHEN n % 4 = 0 THEN 'inactive' ELSE 'active' END, \
             CASE WHEN n % 4 = 0 THEN '2026-01-01' END \
         FROM generate_series(1, 20000) n",
        "INSERT INTO signal_family_keys SELECT 's' || n, 'f' || (n / 3) FROM generate_series(1, 20000) n",
        "INSERT INTO tombstones SELECT 't' || n, 'north', 2 FROM generate_series(1, 20000) n",
        "INSERT INTO notices SELECT 'n' || n, 'north', 's' || n, 'org1', 'k' || n, \
             's' || (n + 1), 'south', 'org2', 'k' || (n + 1), 'Org', 'p1', 'P', 'p@x.nl', NULL, \
             'active', 'youth', 'match', n FROM generate_series(1, 20000) n",
        "INSERT INTO told_pairs SELECT 'org1', 'k' || n, 'org2', 'k' || (n + 1), 'youth' \
         FROM generate_series(1, 20000) n",
        "INSERT INTO region_log SELECT (ARRAY['north','south','east'])[n % 3 + 1], n, 'n' || n, \
             'notice' FROM generate_series(1, 20000) n",
        "INSERT INTO coordination_changes SELECT 'c' || n, 's' || n, 's' || (n + 1), n, NULL \
         FROM generate_series(1, 20000) n",
        "ANALYZE",
    ] {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    schema
}

/// PostgreSQL's generic plan of `statement` on `conn`'s schema; `None` when it does not
/// prepare there (a statement of the other store).
async fn generic_plan(conn: &mut PgConnection, statement: &str) -> Option<String> {
    let parameters = (1..=30)
        .rev()
        .find(|n| statement.contains(&format!("${n}")))
        .unwrap_or(0);
    sqlx::query(AssertSqlSafe(format!("PREPARE vix_plan AS {statement}")))
        .execute(&mut *conn)
        .await
        .ok()?;
    let arguments = vec!["NULL"; parameters].join(", ");
    let execute = if parameters == 0 {
        "EXPLAIN EXECUTE vix_plan".to_owned()
    } else {
        format!("EXPLAIN EXECUTE vix_plan({arguments})")
    };
    let plan: Vec<String> = sqlx::query(AssertSqlSafe(execute))
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>(0))
        .collect();
    sqlx::query("DEALLOCATE vix_plan")
        .execute(&mut *conn)
        .await
        .unwrap();
    Some(plan.join("\n"))
}

/// A connection to `schema` that plans every statement generically.
async fn planner(schema: &Schema) -> PgConnection {
    let mut conn = PgConnection::connect_with(&schema.options().unwrap())
        .await
        .unwrap();
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

#[tokio::test]
async fn every_statement_of_the_postgresql_stores_is_served_by_an_index() {
    vix_tests::init_tracing();
    let flows = Schema::create()
        .await
        .expect("PostgreSQL for the plan test (VIX_TEST_POSTGRES)");
    every_flow(&flows).await;
    flows.drop().await.unwrap();
    let region_flows = Schema::create().await.unwrap();
    plans_postgres_region::every_flow(&region_flows).await;
    region_flows.drop().await.unwrap();
    let (hub_schema, region_schema) = (filled().await, plans_postgres_region::filled().await);
    let (mut hub, mut region) = (planner(&hub_schema).await, planner(&region_schema).await);
    let mut checked = 0;
    let mut scans = Vec::new();
    let mut strangers = Vec::new();
    for statement in statements::seen() {
        let postgres = statements::is_postgres(&statement);
        let planned = ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH"]
            .iter()
            .any(|verb| statement.starts_with(verb));
        if !postgres || !planned || MAY_SCAN.iter().any(|(s, _)| statement.contains(s)) {
            continue;
        }
        let plans = [
            (generic_plan(&mut hub, &statement).await, &GROWING[..]),
            (
                generic_plan(&mut region, &statement).await,
                &plans_postgres_region::GROWING[..],
            ),
        ];
        if plans.iter().all(|(plan, _)| plan.is_none()) {
            strangers.push(statement.clone());
            continue;
        }
        checked += 1;
        for (plan, growing) in plans {
            let Some(plan) = plan else { continue };
            for table in growing {
                if plan.contains(&format!("Seq Scan on {table} ")) {
                    scans.push(format!("{statement}\n{plan}"));
                }
            }
        }
    }
    hub.close().await.unwrap();
    region.close().await.unwrap();
    hub_schema.drop().await.unwrap();
    region_schema.drop().await.unwrap();
    assert!(
        strangers.is_empty(),
        "statements that prepare on neither schema:\n\n{}",
        strangers.join("\n\n")
    );
    assert!(
        checked >= 70,
        "only {checked} PostgreSQL statements were seen"
    );
    assert!(
        scans.is_empty(),
        "statements that scan a growing table:\n\n{}",
        scans.join("\n\n")
    );
    eprintln!("{checked} PostgreSQL statements of hub and region, each served by an index");
}
