//! Hub ingest on its two backends, side by side in one run with one workload: the same number
//! of events from the same three regions (matching included), into an empty hub on SQLite, on
//! PostgreSQL with one instance, and on PostgreSQL with two instances (the regions spread over
//! them). SQLite is the baseline: each PostgreSQL figure is also printed as a ratio to it.
//! Each PostgreSQL configuration gets a schema of its own, dropped afterwards.

use std::path::Path;
use std::sync::Arc;

use vix_node::store::GroupCommit;
use vix_node::store::hub_postgres::testing::Schema;

use crate::hub;
use crate::nodes::{Federation, NodeProcess};
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
