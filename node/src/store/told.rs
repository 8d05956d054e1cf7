//! The pairs of parties already told about each other (DOMAIN.md section 5: nobody is told
//! twice while both parties exist), in the `told_pairs` table that node and hub share in shape.
//! Kept apart from the notices, which go with the signal they name.

use std::collections::HashSet;

use rusqlite::Connection;

use super::StoreError;
use super::row::{Columns, parse_org, parse_subject};
use crate::domain::matching::{MatchType, ToldPair};
use crate::domain::{OrganisationId, SubjectKey};

/// The pairs already told in which the new signal's organisation and youth take part: that is
/// every pair the new signal could produce (the match rule's "nobody is told twice").
pub(super) fn load(
    tx: &Connection,
    organisation_id: &OrganisationId,
    subject_key: &SubjectKey,
) -> Result<HashSet<ToldPair>, StoreError> {
    let mut statement = super::sql::prepare(
        tx,
        "SELECT recipient_organisation_id, recipient_subject_key, counterpart_organisation_id, \
                counterpart_subject_key, match_type \
         FROM told_pairs WHERE recipient_organisation_id = ?1 AND recipient_subject_key = ?2 \
         UNION \
         SELECT recipient_organisation_id, recipient_subject_key, counterpart_organisation_id, \
                counterpart_subject_key, match_type \
         FROM told_pairs WHERE counterpart_organisation_id = ?1 AND counterpart_subject_key = ?2",
    )?;
    let mut rows = statement.query(rusqlite::params![
        organisation_id.as_str(),
        subject_key.to_stored()
    ])?;
    let mut pairs = HashSet::new();
    while let Some(row) = rows.next()? {
        pairs.insert(ToldPair {
            recipient_organisation_id: parse_org(&row.text("recipient_organisation_id")?)?,
            recipient_subject_key: parse_subject(&row.text("recipient_subject_key")?)?,
            counterpart_organisation_id: parse_org(&row.text("counterpart_organisation_id")?)?,
            counterpart_subject_key: parse_subject(&row.text("counterpart_subject_key")?)?,
            match_type: MatchType::parse(&row.text("match_type")?)
                .ok_or(StoreError::Corrupt("match_type"))?,
        });
    }
    Ok(pairs)
}

/// Remembers that the recipient's party was told about the counterpart's party.
pub(super) fn remember(tx: &Connection, pair: &ToldPair) -> Result<(), StoreError> {
    super::sql::prepare(
        tx,
        "INSERT INTO told_pairs (recipient_organisation_id, recipient_subject_key, \
             counterpart_organisation_id, counterpart_subject_key, match_type) \
         VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    )?
    .execute(rusqlite::params![
        pair.recipient_organisation_id.as_str(),
        pair.recipient_subject_key.to_stored(),
        pair.counterpart_organisation_id.as_str(),
        pair.counterpart_subject_key.to_stored(),
        pair.match_type.as_str(),
    ])?;
    Ok(())
}

/// Forgets every pair the party (organisation, youth) was in.
pub(super) fn forget(
    tx: &Connection,
    organisation_id: &str,
    subject_key: &str,
) -> Result<(), StoreError> {
    super::sql::prepare(
        tx,
        "DELETE FROM told_pairs \
         WHERE (recipient_organisation_id = ?1 AND recipient_subject_key = ?2) \
            OR (counterpart_organisation_id = ?1 AND counterpart_subject_key = ?2)",
    )?
    .execute([organisation_id, subject_key])?;
    Ok(())
}

/// The statements that move a party's pairs from `old` to `new`, its key under the current
/// version (a rotation): copies, keeping a pair already there, then deletes the old ones. Both
/// sides, the organisation first, so each is served by the table's indexes.
pub(super) const REKEY: [&str; 4] = [
    "INSERT INTO told_pairs (recipient_organisation_id, recipient_subject_key, \
         counterpart_organisation_id, counterpart_subject_key, match_type) \
     SELECT recipient_organisation_id, ?3, counterpart_organisation_id, counterpart_subject_key, \
            match_type \
     FROM told_pairs WHERE recipient_organisation_id = ?1 AND recipient_subject_key = ?2 \
     ON CONFLICT DO NOTHING",
    "DELETE FROM told_pairs WHERE recipient_organisation_id = ?1 AND recipient_subject_key = ?2",
    "INSERT INTO told_pairs (recipient_organisation_id, recipient_subject_key, \
         counterpart_organisation_id, counterpart_subject_key, match_type) \
     SELECT recipient_organisation_id, recipient_subject_key, counterpart_organisation_id, ?3, \
            match_type \
     FROM told_pairs WHERE counterpart_organisation_id = ?1 AND counterpart_subject_key = ?2 \
     ON CONFLICT DO NOTHING",
    "DELETE FROM told_pairs \
     WHERE counterpart_organisation_id = ?1 AND counterpart_subject_key = ?2",
];

/// Moves `organisation`'s pairs from key `old` to key `new` (see [`REKEY`]).
pub(super) fn rekey(
    tx: &Connection,
    organisation_id: &OrganisationId,
    old: &SubjectKey,
    new: &SubjectKey,
) -> Result<(), StoreError> {
    let (old, new) = (old.to_stored(), new.to_stored());
    let params = [organisation_id.as_str(), &old, &new];
    for statement in REKEY {
        // The deletions name the organisation and the old key only.
        let used = if statement.contains("?3") { 3 } else { 2 };
        super::sql::prepare(tx, statement)?.execute(rusqlite::params_from_iter(&params[..used]))?;
    }
    Ok(())
}
