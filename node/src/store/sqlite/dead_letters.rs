//! Reading the dead-letter table of a region node (`store::dead_letter`).

use sqlx::sqlite::SqlitePool;

use super::super::StoreError;
use super::super::dead_letter::DeadLetter;
use super::super::region::rows::dead_letter_from_row;

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
    rows.iter().map(dead_letter_from_row).collect()
}

pub(super) async fn count(reader: &SqlitePool) -> Result<u64, StoreError> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters")
        .fetch_one(reader)
        .await?;
    u64::try_from(count).map_err(|_| StoreError::Corrupt("dead_letters"))
}
