//! The pairs of parties already told about each other (DOMAIN.md section 5: nobody is told
//! twice while both parties exist), in the `told_pairs` table that node and hub share in shape.
//! Kept apart from the notices, which go with the signal they name.

use std::collections::HashSet;

use sqlx::Row;
use sqlx::sqlite::SqliteConnection;

use super::StoreError;
use super::row::{parse_org, parse_subject};
use crate::domain::matching::{MatchType, PlannedNotice, ToldPair};
use crate::domain::{OrganisationId, SubjectKey};

/// The pairs already told in which the new signal's organisation and youth take part: that is
/// every pair the new signal could produce (the match rule's "nobody is told twice").
pub(super) async fn load(
    tx: &mut SqliteConnection,
    organisation_id: &OrganisationId,
    subject_key: &SubjectKey,
) -> Result<HashSet<ToldPair>, StoreError> {
    let rows = sqlx::query(
        "SELECT recipient_organisation_id, recipient_subject_key, counterpart_organisation_id, \
                counterpart_subject_key, match_type \
         FROM told_pairs WHERE recipient_organisation_id = ?1 AND recipient_subject_key = ?2 \
         UNION \
         SELECT recipient_organisation_id, recipient_subject_key, counterpart_organisation_id, \
                counterpart_subject_key, match_type \
         FROM told_pairs WHERE counterpart_organisation_id = ?1 AND counterpart_subject_key = ?2",
    )
    .bind(organisation_id.as_str())
    .bind(subject_key.to_stored())
    .fetch_all(&mut *tx)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ToldPair {
                recipient_organisation_id: parse_org(row.try_get("recipient_organisation_id")?)?,
                recipient_subject_key: parse_subject(row.try_get("recipient_subject_key")?)?,
                counterpart_organisation_id: parse_org(
                    row.try_get("counterpart_organisation_id")?,
                )?,
                counterpart_subject_key: parse_subject(row.try_get("counterpart_subject_key")?)?,
                match_type: MatchType::parse(row.try_get("match_type")?)
                    .ok_or(StoreError::Corrupt("match_type"))?,
            })
        })
        .collect()
}

/// Remembers that the recipient's party was told about the counterpart's party.
pub(super) async fn remember(
    tx: &mut SqliteConnection,
    notice: &PlannedNotice,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO told_pairs (recipient_organisation_id, recipient_subject_key, \
             counterpart_organisation_id, counterpart_subject_key, match_type) \
         VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(notice.recipient_organisation_id.as_str())
    .bind(notice.recipient_subject_key.to_stored())
    .bind(notice.counterpart_organisation_id.as_str())
    .bind(notice.counterpart_subject_key.to_stored())
    .bind(notice.match_type.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// After a deletion: if the party (organisation, youth) has no signal left, it no longer
/// exists, and the pairs it was in may be told again (DOMAIN.md section 5).
pub(super) async fn forget_party_if_gone(
    tx: &mut SqliteConnection,
    organisation_id: &str,
    subject_key: &str,
) -> Result<(), StoreError> {
    let left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM signals WHERE organisation_id = ? AND subject_key = ?",
    )
    .bind(organisation_id)
    .bind(subject_key)
    .fetch_one(&mut *tx)
    .await?;
    if left == 0 {
        sqlx::query(
            "DELETE FROM told_pairs \
             WHERE (recipient_organisation_id = ?1 AND recipient_subject_key = ?2) \
                OR (counterpart_organisation_id = ?1 AND counterpart_subject_key = ?2)",
        )
        .bind(organisation_id)
        .bind(subject_key)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
