//! Writing and verifying the SQLite audit log. Entries are appended inside the transaction of
//! the change they record, so a change is never committed without its entry.

use std::path::Path;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqlitePoolOptions};

use super::StoreError;
use super::row::Columns;
use crate::domain::audit::{
    AuditEntry, ChainBreak, GENESIS, StoredEntry, chain_hash, verify_chain,
};

/// Appends `entry` after the last one, chaining its hash.
pub(super) fn append(conn: &rusqlite::Connection, entry: &AuditEntry) -> Result<(), StoreError> {
    // The highest seq ever handed out (AUTOINCREMENT remembers it after the rows are gone),
    // and that entry's hash by its key, in one statement: constant cost, however long the log.
    let (previous_seq, previous_hash): (i64, Option<String>) = super::sql::prepare(
        conn,
        "WITH last AS (SELECT seq FROM sqlite_sequence WHERE name = 'audit_log') \
             SELECT COALESCE((SELECT seq FROM last), 0), \
                    (SELECT hash FROM audit_log WHERE seq = (SELECT seq FROM last))",
    )?
    .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let previous_hash = match previous_hash {
        Some(hash) => hash,
        None if previous_seq == 0 => GENESIS.to_owned(),
        // If entries at the end were removed, continuing the chain from the last remaining
        // one would hide it: refuse to write until an operator has looked (verify-audit says
        // where).
        None => {
            tracing::error!(
                highest = previous_seq,
                "audit log entries were removed; refusing to append"
            );
            return Err(StoreError::Corrupt("audit log truncated"));
        }
    };
    let stored = entry.to_stored(previous_seq + 1);
    let hash = chain_hash(&previous_hash, &stored);
    super::sql::prepare(
        conn,
        "INSERT INTO audit_log (seq, at, action, actor_kind, actor_id, actor_person_id, \
             signal_ids, detail, hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(rusqlite::params![
        stored.seq,
        stored.at_us,
        stored.action,
        stored.actor_kind,
        stored.actor_id,
        stored.actor_person_id,
        stored.signal_ids,
        stored.detail,
        hash,
    ])?;
    Ok(())
}

/// The highest seq ever handed out: AUTOINCREMENT remembers it after the rows are gone.
async fn highest_seq(conn: &mut SqliteConnection) -> Result<i64, StoreError> {
    let highest: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'")
            .fetch_optional(&mut *conn)
            .await?;
    Ok(highest.unwrap_or(0))
}

#[derive(Debug, thiserror::Error)]
pub enum AuditVerifyError {
    #[error("the audit log is broken: {0}")]
    Broken(#[from] ChainBreak),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Walks the whole chain; returns the number of intact entries. Rows and the highest seq are
/// read in one transaction, so a node appending meanwhile cannot look like a removal.
pub async fn verify(pool: &SqlitePool) -> Result<u64, AuditVerifyError> {
    let mut tx = pool.begin().await.map_err(StoreError::from)?;
    let highest = highest_seq(&mut tx).await?;
    let rows = sqlx::query(
        "SELECT seq, at, action, actor_kind, actor_id, actor_person_id, signal_ids, \
                detail, hash \
         FROM audit_log ORDER BY seq",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(StoreError::from)?;
    tx.rollback().await.map_err(StoreError::from)?;
    let entries = rows
        .iter()
        .map(stored_entry)
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(verify_chain(entries, highest)?)
}

/// An `audit_log` row (either backend's) with its stored hash.
pub(super) fn stored_entry(row: &impl Columns) -> Result<(StoredEntry, String), StoreError> {
    Ok((
        StoredEntry {
            seq: row.int("seq")?,
            at_us: row.int("at")?,
            action: row.text("action")?,
            actor_kind: row.text("actor_kind")?,
            actor_id: row.text("actor_id")?,
            actor_person_id: row.text("actor_person_id")?,
            signal_ids: row.text("signal_ids")?,
            detail: row.text("detail")?,
        },
        row.text("hash")?,
    ))
}

/// Verifies the audit log of the database file at `path`, opened read-only so a running node
/// is not disturbed.
pub async fn verify_file(path: &Path) -> Result<u64, AuditVerifyError> {
    if !path.is_file() {
        return Err(StoreError::Corrupt("no database file at the configured path").into());
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(path).read_only(true))
        .await
        .map_err(StoreError::from)?;
    let verified = verify(&pool).await;
    pool.close().await;
    verified
}
