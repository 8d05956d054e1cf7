//! The hub's statements on SQLite: [`HubTx`] on the writer's rusqlite connection, inside the
//! savepoint of one group commit (`store::writer`). SQLite has one writer, so the locks are
//! nothing: every write already runs alone.

use std::collections::HashSet;

use jiff::Timestamp;
use jiff::civil::Date;
use rusqlite::Connection;

use super::super::hub::rows::{
    cursor_to_db, due_signal, parse_cursor, parse_region, parse_revision, revision_to_db,
    stored_signal, told_pairs_to_text,
};
use super::super::hub::tx::{
    DueSignal, EntryKind, FAMILY_KEYS_MAX, HubTx, Known, LogTarget, NewNotice, NotedAck, Party,
    SUBJECT_KEYS_MAX, StoredHubSignal,
};
use super::super::hub::{HubSignal, LoggedAdoption};
use super::super::row::{Columns, parse_instant, parse_signal_id, parse_state};
use super::super::sql::{OwnedRow, query};
use super::super::{StoreError, told};
use crate::domain::audit::AuditEntry;
use crate::domain::coordination::{ChangeKind, CoordinationChange};
use crate::domain::matching::{PartySignal, PreviousKeys, ToldPair};
use crate::domain::{FamilyKey, OrganisationId, RegionId, Revision, SignalId, SubjectKey};

pub(super) struct SqliteHubTx<'c> {
    conn: &'c Connection,
}

impl<'c> SqliteHubTx<'c> {
    pub(super) fn new(conn: &'c Connection) -> Self {
        Self { conn }
    }
}

fn log_targets(rows: Vec<OwnedRow>) -> Result<Vec<LogTarget>, StoreError> {
    rows.iter()
        .map(|row| {
            Ok(LogTarget {
                region_id: parse_region(&row.text("recipient_region_id")?)?,
                notice_id: row.text("notice_id")?,
            })
        })
        .collect()
}

const DUE_COLUMNS: &str =
    "signal_id, region_id, revision, state, planned_removal_date, inactive_since";

impl HubTx for SqliteHubTx<'_> {
    async fn lock(&mut self, _signals: &[SignalId], _keys: &[String]) -> Result<(), StoreError> {
        Ok(())
    }

    async fn lock_sweep(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn known(&mut self, signal_id: SignalId) -> Result<Option<Known>, StoreError> {
        let id = signal_id.to_string();
        if let Some(owner) = query("SELECT region_id FROM tombstones WHERE signal_id = ?")
            .bind(&id)
            .scalar_optional::<String>(self.conn)?
        {
            return Ok(Some(Known::Tombstone {
                region_id: parse_region(&owner)?,
            }));
        }
        query("SELECT region_id, revision FROM signals WHERE signal_id = ?")
            .bind(&id)
            .fetch_optional(self.conn)?
            .map(|row| {
                Ok(Known::Live {
                    region_id: parse_region(&row.text("region_id")?)?,
                    revision: parse_revision(row.int("revision")?)?,
                })
            })
            .transpose()
    }

    async fn insert_signal(
        &mut self,
        new: &StoredHubSignal,
        revision: Revision,
    ) -> Result<(), StoreError> {
        let signal = &new.signal;
        query(
            "INSERT INTO signals (signal_id, region_id, revision, organisation_id, \
                 organisation_name, professional_id, professional_name, professional_email, \
                 professional_phone, subject_key, registered_at, planned_removal_date, state, \
                 inactive_since) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(new.signal_id.to_string())
        .bind(new.region_id.as_str())
        .bind(revision_to_db(revision))
        .bind(signal.organisation_id.as_str())
        .bind(signal.organisation_name.as_str())
        .bind(signal.contact.professional_id())
        .bind(signal.contact.name())
        .bind(signal.contact.email())
        .bind(signal.contact.phone())
        .bind(signal.subject_key.to_stored())
        .bind(signal.registered_at.as_microsecond())
        .bind(signal.planned_removal_date.to_string())
        .bind(signal.state.as_str())
        .bind(signal.inactive_since.map(|d| d.to_string()))
        .execute(self.conn)?;
        for key in &signal.family_keys {
            query("INSERT INTO signal_family_keys (signal_id, family_key) VALUES (?, ?)")
                .bind(new.signal_id.to_string())
                .bind(key.to_stored())
                .execute(self.conn)?;
        }
        Ok(())
    }

    async fn update_signal(
        &mut self,
        signal_id: SignalId,
        revision: Revision,
        signal: &HubSignal,
    ) -> Result<(), StoreError> {
        query(
            "UPDATE signals SET revision = ?, organisation_name = ?, professional_id = ?, \
                 professional_name = ?, professional_email = ?, professional_phone = ?, \
                 planned_removal_date = ?, state = ?, inactive_since = ? \
             WHERE signal_id = ?",
        )
        .bind(revision_to_db(revision))
        .bind(signal.organisation_name.as_str())
        .bind(signal.contact.professional_id())
        .bind(signal.contact.name())
        .bind(signal.contact.email())
        .bind(signal.contact.phone())
        .bind(signal.planned_removal_date.to_string())
        .bind(signal.state.as_str())
        .bind(signal.inactive_since.map(|d| d.to_string()))
        .bind(signal_id.to_string())
        .execute(self.conn)?;
        Ok(())
    }

    async fn expire_signal(
        &mut self,
        signal_id: SignalId,
        inactive_since: Date,
    ) -> Result<(), StoreError> {
        query("UPDATE signals SET state = 'inactive', inactive_since = ? WHERE signal_id = ?")
            .bind(inactive_since.to_string())
            .bind(signal_id.to_string())
            .execute(self.conn)?;
        Ok(())
    }

    async fn delete_signal_row(&mut self, signal_id: SignalId) -> Result<(), StoreError> {
        query("DELETE FROM signals WHERE signal_id = ?")
            .bind(signal_id.to_string())
            .execute(self.conn)?;
        Ok(())
    }

    async fn insert_tombstone(
        &mut self,
        signal_id: SignalId,
        region_id: &RegionId,
        revision: Revision,
    ) -> Result<(), StoreError> {
        query("INSERT INTO tombstones (signal_id, region_id, revision) VALUES (?, ?, ?)")
            .bind(signal_id.to_string())
            .bind(region_id.as_str())
            .bind(revision_to_db(revision))
            .execute(self.conn)?;
        Ok(())
    }

    async fn party_of(&mut self, signal_id: SignalId) -> Result<Option<Party>, StoreError> {
        query("SELECT organisation_id, subject_key FROM signals WHERE signal_id = ?")
            .bind(signal_id.to_string())
            .fetch_optional(self.conn)?
            .map(|row| {
                Ok(Party {
                    organisation_id: super::super::row::parse_org(&row.text("organisation_id")?)?,
                    subject_key: super::super::row::parse_subject(&row.text("subject_key")?)?,
                })
            })
            .transpose()
    }

    async fn party_signals(
        &mut self,
        party: &Party,
        except: SignalId,
    ) -> Result<Vec<PartySignal>, StoreError> {
        query(
            "SELECT signal_id, state, registered_at FROM signals \
             WHERE subject_key = ? AND organisation_id = ? AND signal_id <> ?",
        )
        .bind(party.subject_key.to_stored())
        .bind(party.organisation_id.as_str())
        .bind(except.to_string())
        .fetch_all(self.conn)?
        .iter()
        .map(|row| {
            Ok(PartySignal {
                signal_id: parse_signal_id(&row.text("signal_id")?)?,
                state: parse_state(&row.text("state")?)?,
                registered_at: parse_instant(row.int("registered_at")?)?,
            })
        })
        .collect()
    }

    async fn party_exists(&mut self, party: &Party) -> Result<bool, StoreError> {
        Ok(
            query("SELECT 1 FROM signals WHERE subject_key = ? AND organisation_id = ? LIMIT 1")
                .bind(party.subject_key.to_stored())
                .bind(party.organisation_id.as_str())
                .fetch_optional(self.conn)?
                .is_some(),
        )
    }

    async fn candidates(
        &mut self,
        signal: &HubSignal,
        previous: &PreviousKeys,
    ) -> Result<Vec<StoredHubSignal>, StoreError> {
        // One statement text for every signal: the subject keys padded with the current one,
        // the family keys with NULL, which matches nothing.
        let subject: Vec<String> = std::iter::once(&signal.subject_key)
            .chain(&previous.subject)
            .map(SubjectKey::to_stored)
            .collect();
        let family: Vec<String> = signal
            .family_keys
            .iter()
            .chain(&previous.family)
            .map(FamilyKey::to_stored)
            .collect();
        if subject.len() > SUBJECT_KEYS_MAX || family.len() > FAMILY_KEYS_MAX {
            return Err(StoreError::Corrupt("more keys than live versions allow"));
        }
        let mut statement = query(
            "SELECT s.*, \
                    (SELECT group_concat(f.family_key, ' ') FROM signal_family_keys f \
                     WHERE f.signal_id = s.signal_id) AS family_keys \
             FROM signals s \
             WHERE s.subject_key IN (?1, ?2, ?3) \
                OR s.signal_id IN (SELECT signal_id FROM signal_family_keys \
                                   WHERE family_key IN (?4, ?5, ?6, ?7, ?8, ?9))",
        );
        for index in 0..SUBJECT_KEYS_MAX {
            statement = statement.bind(subject.get(index).unwrap_or(&subject[0]).clone());
        }
        for index in 0..FAMILY_KEYS_MAX {
            statement = statement.bind(family.get(index).cloned());
        }
        statement
            .fetch_all(self.conn)?
            .iter()
            .map(stored_signal)
            .collect()
    }

    async fn rekey_signal(
        &mut self,
        signal_id: SignalId,
        subject_key: &SubjectKey,
        family_keys: &[FamilyKey],
    ) -> Result<(), StoreError> {
        query("UPDATE signals SET subject_key = ? WHERE signal_id = ?")
            .bind(subject_key.to_stored())
            .bind(signal_id.to_string())
            .execute(self.conn)?;
        query("DELETE FROM signal_family_keys WHERE signal_id = ?")
            .bind(signal_id.to_string())
            .execute(self.conn)?;
        for key in family_keys {
            query("INSERT INTO signal_family_keys (signal_id, family_key) VALUES (?, ?)")
                .bind(signal_id.to_string())
                .bind(key.to_stored())
                .execute(self.conn)?;
        }
        Ok(())
    }

    async fn rekey_told(
        &mut self,
        organisation: &OrganisationId,
        old: &SubjectKey,
        new: &SubjectKey,
    ) -> Result<(), StoreError> {
        told::rekey(self.conn, organisation, old, new)
    }

    async fn told_pairs(&mut self, party: &Party) -> Result<HashSet<ToldPair>, StoreError> {
        told::load(self.conn, &party.organisation_id, &party.subject_key)
    }

    async fn remember_told(&mut self, pair: &ToldPair) -> Result<(), StoreError> {
        told::remember(self.conn, pair)
    }

    async fn forget_told(&mut self, party: &Party) -> Result<(), StoreError> {
        told::forget(
            self.conn,
            party.organisation_id.as_str(),
            &party.subject_key.to_stored(),
        )
    }

    async fn insert_notice(&mut self, notice: NewNotice<'_>) -> Result<(), StoreError> {
        let plan = notice.plan;
        let shown = &notice.counterpart.signal;
        query(
            "INSERT INTO notices (notice_id, recipient_region_id, recipient_signal_id, \
                 recipient_organisation_id, recipient_subject_key, counterpart_signal_id, \
                 counterpart_region_id, counterpart_organisation_id, counterpart_subject_key, \
                 counterpart_organisation_name, counterpart_professional_id, \
                 counterpart_professional_name, counterpart_professional_email, \
                 counterpart_professional_phone, counterpart_state, match_type, kind, found_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(notice.notice_id)
        .bind(notice.recipient_region_id.as_str())
        .bind(plan.recipient_signal_id.to_string())
        .bind(plan.recipient_organisation_id.as_str())
        .bind(plan.recipient_subject_key.to_stored())
        .bind(plan.counterpart_signal_id.to_string())
        .bind(notice.counterpart.region_id.as_str())
        .bind(plan.counterpart_organisation_id.as_str())
        .bind(plan.counterpart_subject_key.to_stored())
        .bind(shown.organisation_name.as_str())
        .bind(shown.contact.professional_id())
        .bind(shown.contact.name())
        .bind(shown.contact.email())
        .bind(shown.contact.phone())
        .bind(shown.state.as_str())
        .bind(plan.match_type.as_str())
        .bind(plan.kind.as_str())
        .bind(notice.found_at.as_microsecond())
        .execute(self.conn)?;
        Ok(())
    }

    async fn notices_showing(&mut self, signal_id: SignalId) -> Result<Vec<LogTarget>, StoreError> {
        log_targets(
            query(
                "SELECT recipient_region_id, notice_id FROM notices \
                 WHERE counterpart_signal_id = ? ORDER BY found_at",
            )
            .bind(signal_id.to_string())
            .fetch_all(self.conn)?,
        )
    }

    async fn refresh_notices_showing(&mut self, signal_id: SignalId) -> Result<(), StoreError> {
        query(
            "UPDATE notices SET \
                 counterpart_organisation_name = s.organisation_name, \
                 counterpart_professional_id = s.professional_id, \
                 counterpart_professional_name = s.professional_name, \
                 counterpart_professional_email = s.professional_email, \
                 counterpart_professional_phone = s.professional_phone, \
                 counterpart_state = s.state \
             FROM signals s \
             WHERE s.signal_id = ?1 AND notices.counterpart_signal_id = ?1",
        )
        .bind(signal_id.to_string())
        .execute(self.conn)?;
        Ok(())
    }

    async fn notices_naming(&mut self, signal_id: SignalId) -> Result<Vec<LogTarget>, StoreError> {
        log_targets(
            query(
                "SELECT recipient_region_id, notice_id FROM notices \
                 WHERE recipient_signal_id = ?1 OR counterpart_signal_id = ?1 ORDER BY found_at",
            )
            .bind(signal_id.to_string())
            .fetch_all(self.conn)?,
        )
    }

    async fn repoint_notices(&mut self, from: SignalId, to: SignalId) -> Result<(), StoreError> {
        let (from, to) = (from.to_string(), to.to_string());
        query(
            "UPDATE notices SET counterpart_signal_id = s.signal_id, \
                 counterpart_organisation_name = s.organisation_name, \
                 counterpart_professional_id = s.professional_id, \
                 counterpart_professional_name = s.professional_name, \
                 counterpart_professional_email = s.professional_email, \
                 counterpart_professional_phone = s.professional_phone, \
                 counterpart_state = s.state \
             FROM signals s \
             WHERE s.signal_id = ?2 AND notices.counterpart_signal_id = ?1",
        )
        .bind(&from)
        .bind(&to)
        .execute(self.conn)?;
        query("UPDATE notices SET recipient_signal_id = ?2 WHERE recipient_signal_id = ?1")
            .bind(&from)
            .bind(&to)
            .execute(self.conn)?;
        Ok(())
    }

    async fn delete_notices_naming(&mut self, signal_id: SignalId) -> Result<(), StoreError> {
        query("DELETE FROM notices WHERE recipient_signal_id = ?1 OR counterpart_signal_id = ?1")
            .bind(signal_id.to_string())
            .execute(self.conn)?;
        Ok(())
    }

    async fn delete_coordination_naming(&mut self, signal_id: SignalId) -> Result<(), StoreError> {
        query("DELETE FROM coordination_changes WHERE by_signal_id = ?1 OR other_signal_id = ?1")
            .bind(signal_id.to_string())
            .execute(self.conn)?;
        Ok(())
    }

    async fn insert_coordination(
        &mut self,
        change: &CoordinationChange,
    ) -> Result<bool, StoreError> {
        let inserted = query(
            "INSERT INTO coordination_changes (change_id, by_signal_id, other_signal_id, at, \
                 regievoerder_signal_id) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (change_id) DO NOTHING",
        )
        .bind(change.change_id.to_string())
        .bind(change.by_signal.to_string())
        .bind(change.other_signal.to_string())
        .bind(change.at.as_microsecond())
        .bind(match change.kind {
            ChangeKind::Regievoerder(named) => Some(named.to_string()),
            ChangeKind::Afgestemd => None,
        })
        .execute(self.conn)?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn region_of(&mut self, signal_id: SignalId) -> Result<Option<RegionId>, StoreError> {
        query("SELECT region_id FROM signals WHERE signal_id = ?")
            .bind(signal_id.to_string())
            .scalar_optional::<String>(self.conn)?
            .as_deref()
            .map(parse_region)
            .transpose()
    }

    async fn log(
        &mut self,
        region_id: &RegionId,
        kind: EntryKind,
        id: &str,
    ) -> Result<(), StoreError> {
        // One writer: AUTOINCREMENT's cursors commit in the order they are handed out.
        query("INSERT INTO region_log (region_id, notice_id, entry) VALUES (?, ?, ?)")
            .bind(region_id.as_str())
            .bind(id)
            .bind(kind.as_str())
            .execute(self.conn)?;
        Ok(())
    }

    async fn due_for_expiry(
        &mut self,
        today: Date,
        limit: u32,
    ) -> Result<Vec<DueSignal>, StoreError> {
        query(format!(
            "SELECT {DUE_COLUMNS} FROM signals \
             WHERE state = 'active' AND planned_removal_date <= ? LIMIT ?"
        ))
        .bind(today.to_string())
        .bind(i64::from(limit))
        .fetch_all(self.conn)?
        .iter()
        .map(due_signal)
        .collect()
    }

    async fn due_for_purge(
        &mut self,
        cutoff: Date,
        limit: u32,
    ) -> Result<Vec<DueSignal>, StoreError> {
        query(format!(
            "SELECT {DUE_COLUMNS} FROM signals \
             WHERE state = 'inactive' AND inactive_since <= ? LIMIT ?"
        ))
        .bind(cutoff.to_string())
        .bind(i64::from(limit))
        .fetch_all(self.conn)?
        .iter()
        .map(due_signal)
        .collect()
    }

    async fn due_signal(&mut self, signal_id: SignalId) -> Result<Option<DueSignal>, StoreError> {
        query(format!(
            "SELECT {DUE_COLUMNS} FROM signals WHERE signal_id = ?"
        ))
        .bind(signal_id.to_string())
        .fetch_optional(self.conn)?
        .as_ref()
        .map(due_signal)
        .transpose()
    }

    async fn raise_ack(
        &mut self,
        region_id: &RegionId,
        cursor: u64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO region_cursors (region_id, acked_cursor, noted_cursor, noted_at) \
             VALUES (?1, ?2, 0, ?3) \
             ON CONFLICT (region_id) DO UPDATE \
             SET acked_cursor = MAX(acked_cursor, excluded.acked_cursor)",
        )
        .bind(region_id.as_str())
        .bind(cursor_to_db(cursor)?)
        .bind(now.as_microsecond())
        .execute(self.conn)?;
        Ok(())
    }

    async fn acks_noted_before(
        &mut self,
        noted_before: Timestamp,
    ) -> Result<Vec<NotedAck>, StoreError> {
        query("SELECT region_id, noted_cursor FROM region_cursors WHERE noted_at <= ?")
            .bind(noted_before.as_microsecond())
            .fetch_all(self.conn)?
            .iter()
            .map(|row| {
                Ok(NotedAck {
                    region_id: parse_region(&row.text("region_id")?)?,
                    noted_cursor: parse_cursor(row.int("noted_cursor")?)?,
                })
            })
            .collect()
    }

    async fn prune_region_log(
        &mut self,
        region_id: &RegionId,
        through: u64,
    ) -> Result<u64, StoreError> {
        // The sealed records of adoptions delivered go with their entries.
        query(
            "DELETE FROM adoptions WHERE adoption_id IN (SELECT notice_id FROM region_log \
             WHERE region_id = ? AND cursor <= ? AND entry = 'adoption')",
        )
        .bind(region_id.as_str())
        .bind(cursor_to_db(through)?)
        .execute(self.conn)?;
        Ok(
            query("DELETE FROM region_log WHERE region_id = ? AND cursor <= ?")
                .bind(region_id.as_str())
                .bind(cursor_to_db(through)?)
                .execute(self.conn)?
                .rows_affected(),
        )
    }

    async fn note_ack(&mut self, region_id: &RegionId, now: Timestamp) -> Result<(), StoreError> {
        query(
            "UPDATE region_cursors SET noted_cursor = acked_cursor, noted_at = ? \
             WHERE region_id = ?",
        )
        .bind(now.as_microsecond())
        .bind(region_id.as_str())
        .execute(self.conn)?;
        Ok(())
    }

    async fn audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError> {
        super::super::audit::append(self.conn, entry)
    }

    async fn hub_signal(
        &mut self,
        signal_id: SignalId,
    ) -> Result<Option<(StoredHubSignal, Revision)>, StoreError> {
        query(
            "SELECT s.*, \
                    (SELECT group_concat(f.family_key, ' ') FROM signal_family_keys f \
                     WHERE f.signal_id = s.signal_id) AS family_keys \
             FROM signals s WHERE s.signal_id = ?1",
        )
        .bind(signal_id.to_string())
        .fetch_optional(self.conn)?
        .map(|row| Ok((stored_signal(&row)?, parse_revision(row.int("revision")?)?)))
        .transpose()
    }

    async fn lock_log_end(&mut self, region_id: &RegionId) -> Result<Option<u64>, StoreError> {
        // One writer: nobody appends beside this transaction.
        let end: Option<Option<i64>> =
            query("SELECT MAX(cursor) FROM region_log WHERE region_id = ?")
                .bind(region_id.as_str())
                .scalar_optional(self.conn)?;
        end.flatten().map(parse_cursor).transpose()
    }

    async fn move_signal(
        &mut self,
        signal_id: SignalId,
        successor: &RegionId,
    ) -> Result<(), StoreError> {
        let id = signal_id.to_string();
        query("UPDATE signals SET region_id = ? WHERE signal_id = ?")
            .bind(successor.as_str())
            .bind(&id)
            .execute(self.conn)?;
        query("UPDATE notices SET recipient_region_id = ? WHERE recipient_signal_id = ?")
            .bind(successor.as_str())
            .bind(&id)
            .execute(self.conn)?;
        query("UPDATE notices SET counterpart_region_id = ? WHERE counterpart_signal_id = ?")
            .bind(successor.as_str())
            .bind(&id)
            .execute(self.conn)?;
        Ok(())
    }

    async fn insert_adoption(
        &mut self,
        adoption_id: &str,
        adoption: &LoggedAdoption,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO adoptions (adoption_id, signal_id, revision, from_region_id, \
                 sealed_record, told_pairs) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(adoption_id)
        .bind(adoption.signal_id.to_string())
        .bind(revision_to_db(adoption.revision))
        .bind(adoption.from_region_id.as_str())
        .bind(adoption.sealed_record.clone())
        .bind(told_pairs_to_text(&adoption.told_pairs))
        .execute(self.conn)?;
        Ok(())
    }
}
