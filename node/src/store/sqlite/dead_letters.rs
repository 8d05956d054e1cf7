//! The dead-letter table of a region node (`store::dead_letter`): quarantine, list, retry.

use jiff::Timestamp;
use rusqlite::Connection;
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};

use super::super::StoreError;
use super::super::dead_letter::{DeadLetter, DeadLetterSource, Retried};
use super::super::row::parse_instant;
use super::super::sql::query;

/// Moves outbox event `seq` to the dead letters; its signal's later events wait behind it.
/// Returns false if the event is no longer queued (e.g. its signal was deleted meanwhile).
pub(super) fn quarantine_outbox(
    tx: &Connection,
    seq: i64,
    reason: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let moved = query(
        "INSERT INTO dead_letters \
             (source, position, signal_id, revision, payload, reason, quarantined_at) \
         SELECT 'outbox', seq, signal_id, revision, CAST(event AS BLOB), ?, ? \
         FROM outbox WHERE seq = ?",
    )
    .bind(reason)
    .bind(now.as_microsecond())
    .bind(seq)
    .execute(tx)?;
    query("DELETE FROM outbox WHERE seq = ?")
        .bind(seq)
        .execute(tx)?;
    Ok(moved.rows_affected() == 1)
}

/// Moves coordination change `seq` to the dead letters.
pub(super) fn quarantine_coordination(
    tx: &Connection,
    seq: i64,
    reason: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let moved = query(
        "INSERT INTO dead_letters (source, position, payload, reason, quarantined_at) \
         SELECT 'coordination', seq, CAST(change AS BLOB), ?, ? \
         FROM coordination_outbox WHERE seq = ?",
    )
    .bind(reason)
    .bind(now.as_microsecond())
    .bind(seq)
    .execute(tx)?;
    query("DELETE FROM coordination_outbox WHERE seq = ?")
        .bind(seq)
        .execute(tx)?;
    Ok(moved.rows_affected() == 1)
}

/// Keeps a notice-log entry this node cannot read, and moves the hub cursor past it so the
/// stream goes on. Received again (a replay), it is kept once.
pub(super) fn quarantine_hub_entry(
    tx: &Connection,
    cursor: u64,
    payload: &[u8],
    reason: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let cursor = i64::try_from(cursor).map_err(|_| StoreError::Corrupt("cursor"))?;
    query(
        "INSERT INTO dead_letters (source, position, payload, reason, quarantined_at) \
         VALUES ('notice_log', ?, ?, ?, ?) ON CONFLICT (source, position) DO NOTHING",
    )
    .bind(cursor)
    .bind(payload)
    .bind(reason)
    .bind(now.as_microsecond())
    .execute(tx)?;
    query("UPDATE hub_cursor SET cursor = MAX(cursor, ?) WHERE singleton = 1")
        .bind(cursor)
        .execute(tx)?;
    Ok(())
}

/// Puts an outbox or coordination dead letter back in its queue at its old place; hands a
/// notice-log entry back to the caller to read again.
pub(super) fn retry(tx: &Connection, id: i64) -> Result<Retried, StoreError> {
    let Some(row) = query("SELECT * FROM dead_letters WHERE id = ?")
        .bind(id)
        .fetch_optional(tx)?
    else {
        return Ok(Retried::Unknown);
    };
    let source: String = row.try_get("source")?;
    let source = DeadLetterSource::parse(&source).ok_or(StoreError::Corrupt("dead_letters"))?;
    let position: i64 = row.try_get("position")?;
    let payload: Vec<u8> = row.try_get("payload")?;
    let text =
        || String::from_utf8(payload.clone()).map_err(|_| StoreError::Corrupt("dead_letters"));
    match source {
        DeadLetterSource::Outbox => {
            query(
                "INSERT INTO outbox (seq, signal_id, revision, event, created_at) \
                 SELECT position, signal_id, revision, ?, quarantined_at \
                 FROM dead_letters WHERE id = ?",
            )
            .bind(text()?)
            .bind(id)
            .execute(tx)?;
        }
        DeadLetterSource::Coordination => {
            query("INSERT INTO coordination_outbox (seq, change) VALUES (?, ?)")
                .bind(position)
                .bind(text()?)
                .execute(tx)?;
        }
        DeadLetterSource::NoticeLog => {
            return Ok(Retried::Reread(DeadLetter {
                id,
                source,
                position,
                signal_id: None,
                revision: None,
                payload,
                reason: row.try_get("reason")?,
                quarantined_at: parse_instant(row.try_get("quarantined_at")?)?,
            }));
        }
    }
    remove(tx, id)?;
    Ok(Retried::Requeued)
}

pub(super) fn remove(tx: &Connection, id: i64) -> Result<(), StoreError> {
    query("DELETE FROM dead_letters WHERE id = ?")
        .bind(id)
        .execute(tx)?;
    Ok(())
}

/// The oldest `limit` dead letters after `after_id`.
pub(super) async fn list(
    reader: &SqlitePool,
    after_id: i64,
    limit: u32,
) -> Result<Vec<DeadLetter>, StoreError> {
    let rows = sqlx::query("SELECT * FROM dead_letters WHERE id > ? ORDER BY id LIMIT ?")
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(reader)
        .await?;
    rows.iter().map(dead_letter).collect()
}

pub(super) async fn count(reader: &SqlitePool) -> Result<u64, StoreError> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters")
        .fetch_one(reader)
        .await?;
    u64::try_from(count).map_err(|_| StoreError::Corrupt("dead_letters"))
}

fn dead_letter(row: &SqliteRow) -> Result<DeadLetter, StoreError> {
    let source: String = row.try_get("source")?;
    let revision: Option<i64> = row.try_get("revision")?;
    Ok(DeadLetter {
        id: row.try_get("id")?,
        source: DeadLetterSource::parse(&source).ok_or(StoreError::Corrupt("dead_letters"))?,
        position: row.try_get("position")?,
        signal_id: row.try_get("signal_id")?,
        revision: revision
            .map(u64::try_from)
            .transpose()
            .map_err(|_| StoreError::Corrupt("dead_letters"))?,
        payload: row.try_get("payload")?,
        reason: row.try_get("reason")?,
        quarantined_at: parse_instant(row.try_get("quarantined_at")?)?,
    })
}
