//! What the PostgreSQL stores (hub and region node) share: their settings, how they connect,
//! the audit chain's end, and test schemas.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Row};

use super::StoreError;
use super::audit::AuditVerifyError;
use super::hub::tx::Party;
use super::row::{Columns, parse_org, parse_subject};
use crate::domain::audit::{AuditEntry, chain_hash, verify_chain};
use crate::domain::matching::{MatchType, ToldPair};
use crate::domain::{OrganisationId, SubjectKey};

/// How a node uses its PostgreSQL database (`[hub.postgres]`, `[region.postgres]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PgSettings {
    /// Connections per instance. At the hub a region's batch holds one for its transaction, a
    /// notice stream one per page read; at a region node a write or a read holds one.
    pub max_connections: u32,
    /// How long a request waits for a free connection (milliseconds) before it is answered
    /// `Unavailable`: with the database gone, callers hear so quickly instead of hanging.
    pub acquire_timeout_ms: u64,
    /// Hub only: how often (milliseconds) the notice streams read their logs even without a
    /// notification: a notification sent while this instance's listening connection was being
    /// re-established is lost, and this bounds how late an entry can be.
    pub log_poll_ms: u64,
}

impl Default for PgSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout_ms: 5_000,
            log_poll_ms: 1_000,
        }
    }
}

/// A pool on `options` as vix uses PostgreSQL.
pub(super) async fn connect(
    options: PgConnectOptions,
    settings: &PgSettings,
) -> Result<PgPool, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections.max(2))
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        // A connection the server ended (a restart, pg_terminate_backend) is found before a
        // request is given it, not by the request.
        .test_before_acquire(true)
        // Short statements on indexes: compiling them (JIT) costs more than it saves, and
        // was seen adding 200 ms to a statement planned on stale statistics. Each
        // execution is planned for its values and the tables as they are now: a prepared
        // statement's generic plan, made once while a table was small, is otherwise kept
        // until the next ANALYZE, and was seen scanning 24,500 signals per lookup where
        // autovacuum is off. Every statement is logged at TRACE, as SQLite's, for the
        // query-plan test.
        .connect_with(
            options
                .options([
                    ("jit", "off"),
                    ("plan_cache_mode", "force_custom_plan"),
                    // A writer waits this long for a lock, then answers `Unavailable`
                    // (SQLSTATE 55P03) rather than queueing behind a stuck transaction.
                    ("lock_timeout", "10s"),
                ])
                .log_statements(log::LevelFilter::Trace),
        )
        .await?;
    Ok(pool)
}

/// How often [`maintain`] gathers statistics.
const STATISTICS_EVERY: Duration = Duration::from_secs(3600);

/// Runs `analyze` (an `ANALYZE` of the store's growing tables) every hour until `stopping`
/// turns true, as SQLite's `PRAGMA optimize` does: where autovacuum is off or behind, the
/// store's own statistics keep its lookups on their indexes. Not at start-up: a new store's
/// tables are empty, and statistics of empty tables mislead the planner once they grow.
pub(super) async fn maintain(
    pool: &PgPool,
    analyze: &'static str,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(STATISTICS_EVERY) => {}
            _ = stopping.changed() => {}
        }
        if *stopping.borrow() {
            return;
        }
        if let Err(error) = sqlx::query(analyze).execute(pool).await {
            tracing::warn!(error = %crate::telemetry::error_chain(&error), "gathering statistics failed; will retry");
        }
    }
}

/// Appends `entries` to the audit log, chained after its end, and moves the end. The end is
/// one row, locked by this transaction until it ends, so entries of concurrent writers form
/// one chain in commit order.
pub(super) async fn append_audit(
    conn: &mut PgConnection,
    entries: Vec<AuditEntry>,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE singleton = 1 FOR UPDATE")
        .fetch_one(&mut *conn)
        .await?;
    let mut seq: i64 = head.try_get("seq")?;
    let mut hash: String = head.try_get("hash")?;
    for entry in entries {
        seq += 1;
        let stored = entry.to_stored(seq);
        hash = chain_hash(&hash, &stored);
        sqlx::query(
            "INSERT INTO audit_log (seq, at, action, actor_kind, actor_id, actor_person_id, \
                 signal_ids, detail, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(stored.seq)
        .bind(stored.at_us)
        .bind(&stored.action)
        .bind(&stored.actor_kind)
        .bind(&stored.actor_id)
        .bind(&stored.actor_person_id)
        .bind(&stored.signal_ids)
        .bind(&stored.detail)
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE singleton = 1")
        .bind(seq)
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Walks the whole audit chain; returns the number of intact entries.
pub(super) async fn verify_audit(pool: &PgPool) -> Result<u64, AuditVerifyError> {
    // One snapshot: an instance appending meanwhile cannot look like a removal.
    let mut tx = pool.begin().await.map_err(StoreError::from)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    let highest: i64 = sqlx::query_scalar("SELECT seq FROM audit_head WHERE singleton = 1")
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    let rows = sqlx::query(
        "SELECT seq, at, action, actor_kind, actor_id, actor_person_id, signal_ids, detail, hash \
         FROM audit_log ORDER BY seq",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(StoreError::from)?;
    tx.rollback().await.map_err(StoreError::from)?;
    let entries = rows
        .iter()
        .map(super::audit::stored_entry)
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(verify_chain(entries, highest)?)
}

/// The pairs already told in which `party` takes part, on either side (DOMAIN.md section 5:
/// nobody is told twice while both parties exist); hub and region node keep them alike.
pub(super) async fn told_pairs(
    conn: &mut PgConnection,
    party: &Party,
) -> Result<HashSet<ToldPair>, StoreError> {
    sqlx::query(
        "SELECT recipient_organisation_id, recipient_subject_key, counterpart_organisation_id, \
                counterpart_subject_key, match_type \
         FROM told_pairs WHERE recipient_organisation_id = $1 AND recipient_subject_key = $2 \
         UNION \
         SELECT recipient_organisation_id, recipient_subject_key, counterpart_organisation_id, \
                counterpart_subject_key, match_type \
         FROM told_pairs WHERE counterpart_organisation_id = $1 AND counterpart_subject_key = $2",
    )
    .bind(party.organisation_id.as_str())
    .bind(party.subject_key.to_stored())
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| {
        Ok(ToldPair {
            recipient_organisation_id: parse_org(&row.text("recipient_organisation_id")?)?,
            recipient_subject_key: parse_subject(&row.text("recipient_subject_key")?)?,
            counterpart_organisation_id: parse_org(&row.text("counterpart_organisation_id")?)?,
            counterpart_subject_key: parse_subject(&row.text("counterpart_subject_key")?)?,
            match_type: MatchType::parse(&row.text("match_type")?)
                .ok_or(StoreError::Corrupt("match_type"))?,
        })
    })
    .collect()
}

/// Remembers that the recipient's party was told about the counterpart's party.
pub(super) async fn remember_told(
    conn: &mut PgConnection,
    pair: &ToldPair,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO told_pairs (recipient_organisation_id, recipient_subject_key, \
             counterpart_organisation_id, counterpart_subject_key, match_type) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(pair.recipient_organisation_id.as_str())
    .bind(pair.recipient_subject_key.to_stored())
    .bind(pair.counterpart_organisation_id.as_str())
    .bind(pair.counterpart_subject_key.to_stored())
    .bind(pair.match_type.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Forgets every pair `party` was in: it has no signal left.
pub(super) async fn forget_told(conn: &mut PgConnection, party: &Party) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM told_pairs \
         WHERE (recipient_organisation_id = $1 AND recipient_subject_key = $2) \
            OR (counterpart_organisation_id = $1 AND counterpart_subject_key = $2)",
    )
    .bind(party.organisation_id.as_str())
    .bind(party.subject_key.to_stored())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves `organisation`'s told pairs from key `old` to key `new`: the statements of
/// `told::REKEY` (one text for both databases, in PostgreSQL's placeholders).
pub(super) async fn rekey_told(
    conn: &mut PgConnection,
    organisation_id: &OrganisationId,
    old: &SubjectKey,
    new: &SubjectKey,
) -> Result<(), StoreError> {
    let (old, new) = (old.to_stored(), new.to_stored());
    for statement in super::told::REKEY {
        // Constant text with its placeholders renamed: nothing of a caller's goes into it.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.replace('?', "$")))
            .bind(organisation_id.as_str())
            .bind(&old);
        // The deletions name the organisation and the old key only.
        if statement.contains("?3") {
            query = query.bind(&new);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A schema of its own on a test PostgreSQL server, so tests run side by side on one database.
pub mod testing {
    use std::str::FromStr;

    use sqlx::postgres::{PgConnectOptions, PgConnection};
    use sqlx::{AssertSqlSafe, Connection};

    use super::PgSettings;
    use crate::domain::RegionId;
    use crate::store::StoreError;
    use crate::store::hub_postgres::PgHubStore;
    use crate::store::region_postgres::PgRegionStore;

    /// The server tests use: `VIX_TEST_POSTGRES`, or the one this project's machines run.
    pub fn server_url() -> String {
        std::env::var("VIX_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    #[derive(Debug, Clone)]
    pub struct Schema {
        url: String,
        name: String,
    }

    impl Schema {
        /// Creates an empty schema with a fresh name on [`server_url`].
        pub async fn create() -> Result<Self, StoreError> {
            Self::create_on(&server_url()).await
        }

        /// Creates an empty schema with a fresh name on the server at `url`.
        pub async fn create_on(url: &str) -> Result<Self, StoreError> {
            let url = url.to_owned();
            let name = format!("vix_{}", uuid::Uuid::new_v4().simple());
            let mut admin = PgConnection::connect(&url).await?;
            sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
                .execute(&mut admin)
                .await?;
            admin.close().await?;
            Ok(Self { url, name })
        }

        /// Connection options whose every table lives in this schema; the connections carry
        /// the schema's name as their application name, so a test can find and end them.
        pub fn options(&self) -> Result<PgConnectOptions, StoreError> {
            Ok(PgConnectOptions::from_str(&self.url)?
                .options([("search_path", &self.name)])
                .application_name(&self.name))
        }

        pub fn name(&self) -> &str {
            &self.name
        }

        /// Ends every server session of this schema's connections, as a database restart or
        /// an operator would; returns how many were ended.
        pub async fn terminate_sessions(&self) -> Result<u64, StoreError> {
            let mut admin = PgConnection::connect(&self.url).await?;
            let ended: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1 AND pid <> pg_backend_pid()) AS ended",
            )
            .bind(&self.name)
            .fetch_one(&mut admin)
            .await?;
            admin.close().await?;
            Ok(u64::try_from(ended).unwrap_or(0))
        }

        /// The URL a `vix-node` process is given for this schema.
        pub fn url(&self) -> String {
            let separator = if self.url.contains('?') { '&' } else { '?' };
            format!(
                "{}{separator}options=-c%20search_path%3D{name}&application_name={name}",
                self.url,
                name = self.name
            )
        }

        /// A hub store on this schema.
        pub async fn open(&self) -> Result<PgHubStore, StoreError> {
            PgHubStore::open_with(self.options()?, PgSettings::default()).await
        }

        /// A region node's store on this schema.
        pub async fn open_region(&self, region_id: RegionId) -> Result<PgRegionStore, StoreError> {
            PgRegionStore::open_with(self.options()?, region_id, PgSettings::default()).await
        }

        pub async fn drop(self) -> Result<(), StoreError> {
            let mut admin = PgConnection::connect(&self.url).await?;
            sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.name)))
                .execute(&mut admin)
                .await?;
            admin.close().await?;
            Ok(())
        }
    }
}
