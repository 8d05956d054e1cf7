//! Hub ingest and region registrations on their two backends, side by side in one run with one
//! workload each: SQLite, PostgreSQL with one instance, PostgreSQL with two instances. SQLite is
//! the baseline: each PostgreSQL figure is also printed as a ratio to it. Each PostgreSQL
//! configuration gets a schema of its own, dropped afterwards.

use std::path::Path;
use std::sync::Arc;

use vix_node::domain::RegionId;
use vix_node::store::GroupCommit;
use vix_node::store::database_location::DatabaseLocation;
use vix_node::store::postgres::PgSettings;
use vix_node::store::postgres::testing::Schema;
use vix_node::store::region_database::RegionDatabase;

use crate::hub;
use crate::nodes::{Federation, NodeProcess};
use crate::region::SHARED_YOUTH_EVERY;
use crate::report::{Report, Unit};

/// Events each configuration ingests (batches of [`hub::BATCH`]).
const EVENTS: u64 = 60_000;
const SMOKE_EVENTS: u64 = 3_000;

pub(crate) async fn compare(
    federation: &Federation,
    dir: &Path,
    postgres: &str,
    smoke: bool,
    report: &mut Report,
) -> anyhow::Result<serde_json::Value> {
    let events = if smoke { SMOKE_EVENTS } else { EVENTS };
    let maker = Arc::new(hub::EventMaker::new(events)?);
    let mut json = serde_json::Map::new();
    let mut baseline = None;
    for (name, instances) in [("sqlite", 1), ("postgres", 1), ("postgres", 2)] {
        let schema = if name == "postgres" {
            Some(Schema::create_on(postgres).await.map_err(|error| {
                anyhow::anyhow!("PostgreSQL at {postgres} for the hub comparison: {error}")
            })?)
        } else {
            None
        };
        let location = match &schema {
            Some(schema) => schema.url(),
            None => dir
                .join("backends-hub.sqlite")
                .to_string_lossy()
                .into_owned(),
        };
        let config = federation.hub_config_at(&location, GroupCommit::default());
        let mut nodes = Vec::new();
        for instance in 0..instances {
            nodes.push(
                NodeProcess::start(
                    dir,
                    &format!("hub-{name}-{instances}-{instance}"),
                    "hub",
                    &config,
                )
                .await?,
            );
        }
        let addrs: Vec<_> = nodes.iter().map(|node| node.addr).collect();
        let label = format!(
            "{name}, {instances} instance{}",
            if instances > 1 { "s" } else { "" }
        );
        let ingest =
            hub::ingest(federation, &addrs, Arc::clone(&maker), Some(events), None).await?;
        for node in nodes {
            node.stop().await?;
        }
        if let Some(schema) = schema {
            schema
                .drop()
                .await
                .map_err(|error| anyhow::anyhow!("dropping the bench schema: {error}"))?;
        }
        let ratio = baseline.map_or(1.0, |sqlite: f64| ingest.per_s / sqlite.max(1e-9));
        baseline.get_or_insert(ingest.per_s);
        println!(
            "   {label}: {:.0} events/s ({:.2}x SQLite), batch p50 {:.1} ms p99 {:.1} ms, {} \
             notices",
            ingest.per_s, ratio, ingest.batch_p50_ms, ingest.batch_p99_ms, ingest.notices
        );
        report.add(
            &format!("hub ingest from empty, {label}"),
            None,
            Unit::PerSecond,
            ingest.per_s,
        );
        json.insert(label, serde_json::to_value(&ingest)?);
    }
    Ok(serde_json::Value::Object(json))
}

/// Registrations each configuration stores (through the store, no network).
const REGISTRATIONS: u64 = 20_000;
const SMOKE_REGISTRATIONS: u64 = 1_000;
/// Concurrent registering tasks: a busy region's front-ends.
const REGISTERING_TASKS: usize = 64;

/// A region node's registrations on its two backends, side by side in one run with one
/// workload: the same number of registrations (one in ten of the second organisation's on a
/// youth of the first: a local match) from the same number of tasks into an empty database on
/// SQLite, on PostgreSQL through one store, and through two stores on one database (two node
/// instances). SQLite is the baseline.
pub(crate) async fn compare_region(
    dir: &Path,
    postgres: &str,
    smoke: bool,
    report: &mut Report,
) -> anyhow::Result<serde_json::Value> {
    let count = if smoke {
        SMOKE_REGISTRATIONS
    } else {
        REGISTRATIONS
    };
    let region = RegionId::parse("north")?;
    let mut json = serde_json::Map::new();
    let mut baseline = None;
    for (name, instances) in [("sqlite", 1), ("postgres", 1), ("postgres", 2)] {
        let schema = if name == "postgres" {
            Some(Schema::create_on(postgres).await.map_err(|error| {
                anyhow::anyhow!("PostgreSQL at {postgres} for the region comparison: {error}")
            })?)
        } else {
            None
        };
        let location = match &schema {
            Some(schema) => DatabaseLocation::Postgres(schema.url()),
            None => DatabaseLocation::Sqlite(dir.join("backends-region.sqlite")),
        };
        let mut stores = Vec::new();
        for _ in 0..instances {
            stores.push(Arc::new(
                RegionDatabase::open(
                    &location,
                    region.clone(),
                    GroupCommit::default(),
                    PgSettings::default(),
                )
                .await?,
            ));
        }
        let (filled, _) =
            crate::region::fill(&stores, count, SHARED_YOUTH_EVERY, REGISTERING_TASKS).await?;
        for store in &stores {
            store.close().await;
        }
        if let Some(schema) = schema {
            schema
                .drop()
                .await
                .map_err(|error| anyhow::anyhow!("dropping the bench schema: {error}"))?;
        }
        let label = format!(
            "{name}, {instances} instance{}",
            if instances > 1 { "s" } else { "" }
        );
        let ratio = baseline.map_or(1.0, |sqlite: f64| filled.per_s / sqlite.max(1e-9));
        baseline.get_or_insert(filled.per_s);
        println!(
            "   {label}: {:.0} registrations/s ({:.2}x SQLite), {} notices",
            filled.per_s, ratio, filled.notices
        );
        report.add(
            &format!("region registrations from empty, {label}"),
            None,
            Unit::PerSecond,
            filled.per_s,
        );
        json.insert(label, serde_json::to_value(&filled)?);
    }
    Ok(serde_json::Value::Object(json))
}
