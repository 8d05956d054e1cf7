//! The region node's statements on SQLite: [`RegionTx`] on the writer's rusqlite connection,
//! inside the savepoint of one group commit (`store::writer`). SQLite has one writer, so the
//! writes' lock is nothing: every write already runs alone.

use std::collections::HashSet;

use jiff::Timestamp;
use jiff::civil::Date;
use rusqlite::Connection;

use super::super::dead_letter::DeadLetter;
use super::super::hub::LoggedNotice;
use super::super::hub::rows::cursor_to_db;
use super::super::hub::tx::Party;
use super::super::outbox::{CoordinationRecord, OutboxEvent};
use super::super::region::handover::{MatchCoordinationRecord, NoticeRecord};
use super::super::region::rows::{
    InformingColumns, coordination_from_row, dead_letter_from_row, dead_letter_text,
    match_coordination_record, notice_record, parse_family_keys, signal_from_row,
};
use super::super::region::tx::{NoticeParties, RegionTx};
use super::super::row::{
    Columns, parse_instant, parse_org, parse_signal_id, parse_signal_ids, parse_state,
    parse_subject, revision_to_db,
};
use super::super::sql::query;
use super::super::{ClaimedEmail, StoreError, StoredSignal, audit, told};
use super::SIGNAL_COLUMNS;
use crate::domain::audit::AuditEntry;
use crate::domain::coordination::{CoordinationChange, CoordinationState};
use crate::domain::matching::{MatchSignal, PartySignal, PlannedNotice, ToldPair};
use crate::domain::{FamilyKey, OrganisationId, RegionId, Revision, SignalId, SubjectKey};

pub(super) struct SqliteRegionTx<'c> {
    conn: &'c Connection,
}

impl<'c> SqliteRegionTx<'c> {
    pub(super) fn new(conn: &'c Connection) -> Self {
        Self { conn }
    }
}

impl RegionTx for SqliteRegionTx<'_> {
    async fn lock_writes(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn earlier_request(
        &mut self,
        organisation_id: &OrganisationId,
        request_key: &str,
    ) -> Result<Option<(SignalId, String)>, StoreError> {
        query(
            "SELECT signal_id, request_fingerprint FROM signals \
             WHERE organisation_id = ? AND request_key = ?",
        )
        .bind(organisation_id.as_str())
        .bind(request_key)
        .fetch_optional(self.conn)?
        .map(|row| {
            Ok((
                parse_signal_id(&row.text("signal_id")?)?,
                row.text("request_fingerprint")?,
            ))
        })
        .transpose()
    }

    async fn is_deceased(&mut self, subject_key: &SubjectKey) -> Result<bool, StoreError> {
        let found: Option<String> = query("SELECT subject_key FROM deceased WHERE subject_key = ?")
            .bind(subject_key.to_stored())
            .scalar_optional(self.conn)?;
        Ok(found.is_some())
    }

    async fn record_deceased(
        &mut self,
        subject_key: &SubjectKey,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO deceased (subject_key, recorded_at) VALUES (?, ?) \
             ON CONFLICT (subject_key) DO NOTHING",
        )
        .bind(subject_key.to_stored())
        .bind(now.as_microsecond())
        .execute(self.conn)?;
        Ok(())
    }

    async fn active_signal(&mut self, party: &Party) -> Result<Option<SignalId>, StoreError> {
        query(
            "SELECT signal_id FROM signals \
             WHERE organisation_id = ? AND subject_key = ? AND state = 'active' \
             ORDER BY registered_at DESC, signal_id DESC LIMIT 1",
        )
        .bind(party.organisation_id.as_str())
        .bind(party.subject_key.to_stored())
        .scalar_optional::<String>(self.conn)?
        .map(|id| parse_signal_id(&id))
        .transpose()
    }

    async fn signal(&mut self, signal_id: SignalId) -> Result<Option<StoredSignal>, StoreError> {
        load_signal(self.conn, signal_id)
    }

    async fn subject_signals(
        &mut self,
        subject_key: &SubjectKey,
    ) -> Result<Vec<SignalId>, StoreError> {
        parse_signal_ids(
            query("SELECT signal_id FROM signals WHERE subject_key = ?")
                .bind(subject_key.to_stored())
                .scalars(self.conn)?,
        )
    }

    async fn family_signals(
        &mut self,
        family_key: &FamilyKey,
    ) -> Result<Vec<SignalId>, StoreError> {
        parse_signal_ids(
            query("SELECT signal_id FROM signal_family_keys WHERE family_key = ?")
                .bind(family_key.to_stored())
                .scalars(self.conn)?,
        )
    }

    async fn rekey_subject(
        &mut self,
        old: &SubjectKey,
        new: &SubjectKey,
    ) -> Result<(), StoreError> {
        let (old, new) = (old.to_stored(), new.to_stored());
        query("UPDATE signals SET subject_key = ?2 WHERE subject_key = ?1")
            .bind(&old)
            .bind(&new)
            .execute(self.conn)?;
        // A death may be recorded under both versions already.
        query(
            "INSERT INTO deceased (subject_key, recorded_at) \
             SELECT ?2, recorded_at FROM deceased WHERE subject_key = ?1 \
             ON CONFLICT (subject_key) DO NOTHING",
        )
        .bind(&old)
        .bind(&new)
        .execute(self.conn)?;
        query("DELETE FROM deceased WHERE subject_key = ?1")
            .bind(&old)
            .execute(self.conn)?;
        Ok(())
    }

    async fn rekey_family(&mut self, old: &FamilyKey, new: &FamilyKey) -> Result<(), StoreError> {
        query("UPDATE signal_family_keys SET family_key = ?2 WHERE family_key = ?1")
            .bind(old.to_stored())
            .bind(new.to_stored())
            .execute(self.conn)?;
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

    async fn candidates(
        &mut self,
        signal: &StoredSignal,
        region_id: &RegionId,
    ) -> Result<Vec<MatchSignal>, StoreError> {
        // A youth has at most two BRP parents; a missing one binds NULL, which matches nothing.
        if signal.family_keys.len() > 2 {
            return Err(StoreError::Corrupt("more than two family keys"));
        }
        let family_key = |index: usize| signal.family_keys.get(index).map(FamilyKey::to_stored);
        let rows = query(
            "SELECT s.signal_id, s.organisation_id, s.subject_key, s.state, s.registered_at, \
                    (SELECT group_concat(f.family_key, ' ') FROM signal_family_keys f \
                     WHERE f.signal_id = s.signal_id) AS family_keys \
             FROM signals s \
             WHERE s.subject_key = ?1 \
                OR s.signal_id IN (SELECT signal_id FROM signal_family_keys \
                                   WHERE family_key IN (?2, ?3))",
        )
        .bind(signal.subject_key.to_stored())
        .bind(family_key(0))
        .bind(family_key(1))
        .fetch_all(self.conn)?;
        rows.iter()
            .map(|row| {
                let family_keys: Vec<String> = row
                    .opt_text("family_keys")?
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
                Ok(MatchSignal {
                    signal_id: parse_signal_id(&row.text("signal_id")?)?,
                    organisation_id: parse_org(&row.text("organisation_id")?)?,
                    region_id: region_id.clone(),
                    subject_key: parse_subject(&row.text("subject_key")?)?,
                    family_keys: parse_family_keys(&family_keys)?,
                    state: parse_state(&row.text("state")?)?,
                    registered_at: parse_instant(row.int("registered_at")?)?,
                    previous_keys: Default::default(),
                })
            })
            .collect()
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

    async fn insert_signal(
        &mut self,
        signal: &StoredSignal,
        request_key: &str,
        request_fingerprint: &str,
    ) -> Result<(), StoreError> {
        let informing = InformingColumns::of(&signal.informing);
        query(format!(
            "INSERT INTO signals ({SIGNAL_COLUMNS}, request_key, request_fingerprint) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(signal.signal_id.to_string())
        .bind(revision_to_db(signal.revision))
        .bind(signal.organisation_id.as_str())
        .bind(signal.organisation_name.as_str())
        .bind(signal.contact.professional_id())
        .bind(signal.contact.name())
        .bind(signal.contact.email())
        .bind(signal.contact.phone())
        .bind(signal.subject_key.to_stored())
        .bind(signal.birth_date.to_string())
        .bind(signal.registered_at.as_microsecond())
        .bind(signal.planned_removal_date.to_string())
        .bind(signal.state.as_str())
        .bind(signal.inactive_since.map(|d| d.to_string()))
        .bind(informing.kind)
        .bind(informing.parents)
        .bind(informing.youth)
        .bind(informing.informed_on)
        .bind(informing.reason)
        .bind(request_key)
        .bind(request_fingerprint)
        .execute(self.conn)?;
        for key in &signal.family_keys {
            query("INSERT INTO signal_family_keys (signal_id, family_key) VALUES (?, ?)")
                .bind(signal.signal_id.to_string())
                .bind(key.to_stored())
                .execute(self.conn)?;
        }
        Ok(())
    }

    async fn save_revision(
        &mut self,
        previous: Revision,
        signal: &StoredSignal,
    ) -> Result<bool, StoreError> {
        let informing = InformingColumns::of(&signal.informing);
        let updated = query(
            "UPDATE signals SET revision = ?, professional_id = ?, professional_name = ?, \
                 professional_email = ?, professional_phone = ?, planned_removal_date = ?, \
                 state = ?, inactive_since = ?, informing = ?, informed_parents = ?, \
                 informed_youth = ?, informed_on = ?, not_informed_reason = ? \
             WHERE signal_id = ? AND revision = ?",
        )
        .bind(revision_to_db(signal.revision))
        .bind(signal.contact.professional_id())
        .bind(signal.contact.name())
        .bind(signal.contact.email())
        .bind(signal.contact.phone())
        .bind(signal.planned_removal_date.to_string())
        .bind(signal.state.as_str())
        .bind(signal.inactive_since.map(|d| d.to_string()))
        .bind(informing.kind)
        .bind(informing.parents)
        .bind(informing.youth)
        .bind(informing.informed_on)
        .bind(informing.reason)
        .bind(signal.signal_id.to_string())
        .bind(revision_to_db(previous))
        .execute(self.conn)?;
        Ok(updated.rows_affected() == 1)
    }

    async fn delete_signal_row(&mut self, signal_id: SignalId) -> Result<(), StoreError> {
        query("DELETE FROM signals WHERE signal_id = ?")
            .bind(signal_id.to_string())
            .execute(self.conn)?;
        Ok(())
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
        let found: Option<String> = query(
            "SELECT signal_id FROM signals WHERE subject_key = ? AND organisation_id = ? LIMIT 1",
        )
        .bind(party.subject_key.to_stored())
        .bind(party.organisation_id.as_str())
        .scalar_optional(self.conn)?;
        Ok(found.is_some())
    }

    async fn insert_notice(
        &mut self,
        notice_id: &str,
        plan: &PlannedNotice,
        found_at: Timestamp,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO notices (notice_id, source, recipient_signal_id, \
                 recipient_organisation_id, recipient_subject_key, counterpart_signal_id, \
                 counterpart_organisation_id, counterpart_region_id, counterpart_subject_key, \
                 match_type, kind, found_at) \
             VALUES (?, 'node', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(notice_id)
        .bind(plan.recipient_signal_id.to_string())
        .bind(plan.recipient_organisation_id.as_str())
        .bind(plan.recipient_subject_key.to_stored())
        .bind(plan.counterpart_signal_id.to_string())
        .bind(plan.counterpart_organisation_id.as_str())
        .bind(plan.counterpart_region_id.as_str())
        .bind(plan.counterpart_subject_key.to_stored())
        .bind(plan.match_type.as_str())
        .bind(plan.kind.as_str())
        .bind(found_at.as_microsecond())
        .execute(self.conn)?;
        Ok(())
    }

    async fn repoint_notices(&mut self, from: SignalId, to: SignalId) -> Result<(), StoreError> {
        query("UPDATE notices SET counterpart_signal_id = ? WHERE counterpart_signal_id = ?")
            .bind(to.to_string())
            .bind(from.to_string())
            .execute(self.conn)?;
        query("UPDATE notices SET recipient_signal_id = ? WHERE recipient_signal_id = ?")
            .bind(to.to_string())
            .bind(from.to_string())
            .execute(self.conn)?;
        Ok(())
    }

    async fn delete_notices_showing(&mut self, signal_id: SignalId) -> Result<(), StoreError> {
        query("DELETE FROM notices WHERE counterpart_signal_id = ?")
            .bind(signal_id.to_string())
            .execute(self.conn)?;
        Ok(())
    }

    async fn delete_coordination_naming(&mut self, signal_id: SignalId) -> Result<(), StoreError> {
        query("DELETE FROM coordination WHERE signal_low = ?1 OR signal_high = ?1")
            .bind(signal_id.to_string())
            .execute(self.conn)?;
        Ok(())
    }

    async fn insert_email_job(
        &mut self,
        notice_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        query("INSERT INTO email_jobs (notice_id, created_at) VALUES (?, ?)")
            .bind(notice_id)
            .bind(now.as_microsecond())
            .execute(self.conn)?;
        Ok(())
    }

    async fn append_outbox(
        &mut self,
        event: &OutboxEvent,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(event).map_err(|_| StoreError::Corrupt("outbox event"))?;
        query("INSERT INTO outbox (signal_id, revision, event, created_at) VALUES (?, ?, ?, ?)")
            .bind(event.signal_id())
            .bind(i64::try_from(event.revision()).map_err(|_| StoreError::Corrupt("revision"))?)
            .bind(json)
            .bind(now.as_microsecond())
            .execute(self.conn)?;
        Ok(())
    }

    async fn drop_outbox_of(&mut self, signal_id: SignalId) -> Result<(), StoreError> {
        let id = signal_id.to_string();
        query("DELETE FROM outbox WHERE signal_id = ?")
            .bind(&id)
            .execute(self.conn)?;
        query("DELETE FROM dead_letters WHERE signal_id = ?")
            .bind(&id)
            .execute(self.conn)?;
        Ok(())
    }

    async fn due_for_expiry(
        &mut self,
        today: Date,
        limit: u32,
    ) -> Result<Vec<SignalId>, StoreError> {
        parse_signal_ids(
            query(
                "SELECT signal_id FROM signals \
                 WHERE state = 'active' AND planned_removal_date <= ? LIMIT ?",
            )
            .bind(today.to_string())
            .bind(i64::from(limit))
            .scalars(self.conn)?,
        )
    }

    async fn due_for_purge(
        &mut self,
        cutoff: Date,
        limit: u32,
    ) -> Result<Vec<SignalId>, StoreError> {
        parse_signal_ids(
            query(
                "SELECT signal_id FROM signals \
                 WHERE state = 'inactive' AND inactive_since <= ? LIMIT ?",
            )
            .bind(cutoff.to_string())
            .bind(i64::from(limit))
            .scalars(self.conn)?,
        )
    }

    async fn due_for_age(&mut self, cutoff: Date, limit: u32) -> Result<Vec<SignalId>, StoreError> {
        parse_signal_ids(
            query("SELECT signal_id FROM signals WHERE birth_date <= ? LIMIT ?")
                .bind(cutoff.to_string())
                .bind(i64::from(limit))
                .scalars(self.conn)?,
        )
    }

    async fn notice_parties(
        &mut self,
        notice_id: &str,
    ) -> Result<Option<NoticeParties>, StoreError> {
        query(
            "SELECT recipient_signal_id, recipient_organisation_id, counterpart_signal_id, \
                    source \
             FROM notices WHERE notice_id = ?",
        )
        .bind(notice_id)
        .fetch_optional(self.conn)?
        .map(|row| {
            Ok(NoticeParties {
                recipient_signal_id: parse_signal_id(&row.text("recipient_signal_id")?)?,
                recipient_organisation_id: parse_org(&row.text("recipient_organisation_id")?)?,
                counterpart_signal_id: parse_signal_id(&row.text("counterpart_signal_id")?)?,
                from_hub: row.text("source")? == "hub",
            })
        })
        .transpose()
    }

    async fn coordination(
        &mut self,
        low: SignalId,
        high: SignalId,
    ) -> Result<Option<CoordinationState>, StoreError> {
        query(
            "SELECT regievoerder_signal_id, regievoerder_at, regievoerder_change_id, \
                    afgestemd_low, afgestemd_high \
             FROM coordination WHERE signal_low = ? AND signal_high = ?",
        )
        .bind(low.to_string())
        .bind(high.to_string())
        .fetch_optional(self.conn)?
        .map(|row| coordination_from_row(&row))
        .transpose()
    }

    async fn save_coordination(
        &mut self,
        low: SignalId,
        high: SignalId,
        state: &CoordinationState,
    ) -> Result<(), StoreError> {
        let (named, at, change_id) = match state.regievoerder {
            Some((named, at, id)) => (
                Some(named.to_string()),
                Some(at.as_microsecond()),
                Some(id.to_string()),
            ),
            None => (None, None, None),
        };
        query(
            "INSERT INTO coordination (signal_low, signal_high, regievoerder_signal_id, \
                 regievoerder_at, regievoerder_change_id, afgestemd_low, afgestemd_high) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (signal_low, signal_high) DO UPDATE SET \
                 regievoerder_signal_id = ?3, regievoerder_at = ?4, regievoerder_change_id = ?5, \
                 afgestemd_low = ?6, afgestemd_high = ?7",
        )
        .bind(low.to_string())
        .bind(high.to_string())
        .bind(named)
        .bind(at)
        .bind(change_id)
        .bind(state.afgestemd_low)
        .bind(state.afgestemd_high)
        .execute(self.conn)?;
        Ok(())
    }

    async fn queue_coordination(&mut self, change: &CoordinationChange) -> Result<(), StoreError> {
        let json = serde_json::to_string(&CoordinationRecord::from(change))
            .map_err(|_| StoreError::Corrupt("coordination change"))?;
        query("INSERT INTO coordination_outbox (change) VALUES (?)")
            .bind(json)
            .execute(self.conn)?;
        Ok(())
    }

    async fn holds_match(
        &mut self,
        recipient: SignalId,
        counterpart: SignalId,
    ) -> Result<bool, StoreError> {
        let held: Option<String> = query(
            "SELECT notice_id FROM notices \
             WHERE recipient_signal_id = ? AND counterpart_signal_id = ? LIMIT 1",
        )
        .bind(recipient.to_string())
        .bind(counterpart.to_string())
        .scalar_optional(self.conn)?;
        Ok(held.is_some())
    }

    async fn raise_hub_cursor(&mut self, cursor: u64) -> Result<(), StoreError> {
        query("UPDATE hub_cursor SET cursor = MAX(cursor, ?) WHERE singleton = 1")
            .bind(cursor_to_db(cursor)?)
            .execute(self.conn)?;
        Ok(())
    }

    async fn notice_exists(&mut self, notice_id: &str) -> Result<bool, StoreError> {
        let seen: Option<String> = query("SELECT notice_id FROM notices WHERE notice_id = ?")
            .bind(notice_id)
            .scalar_optional(self.conn)?;
        Ok(seen.is_some())
    }

    async fn refresh_hub_notice(&mut self, notice: &LoggedNotice) -> Result<(), StoreError> {
        let counterpart = &notice.counterpart;
        query(
            "UPDATE notices SET counterpart_signal_id = ?, counterpart_organisation_name = ?, \
                 counterpart_professional_id = ?, counterpart_professional_name = ?, \
                 counterpart_professional_email = ?, counterpart_professional_phone = ?, \
                 counterpart_state = ?, counterpart_region_id = ?, \
                 recipient_signal_id = COALESCE((SELECT s.signal_id FROM signals s \
                     WHERE s.signal_id = ? \
                       AND s.organisation_id = notices.recipient_organisation_id), \
                     recipient_signal_id) \
             WHERE notice_id = ? AND source = 'hub'",
        )
        .bind(counterpart.signal_id.to_string())
        .bind(counterpart.organisation_name.as_str())
        .bind(counterpart.contact.professional_id())
        .bind(counterpart.contact.name())
        .bind(counterpart.contact.email())
        .bind(counterpart.contact.phone())
        .bind(counterpart.state.as_str())
        .bind(counterpart.region_id.as_str())
        .bind(notice.recipient_signal_id.to_string())
        .bind(&notice.notice_id)
        .execute(self.conn)?;
        Ok(())
    }

    async fn insert_hub_notice(
        &mut self,
        notice: &LoggedNotice,
        recipient: &StoredSignal,
    ) -> Result<(), StoreError> {
        let counterpart = &notice.counterpart;
        query(
            "INSERT INTO notices (notice_id, source, recipient_signal_id, \
                 recipient_organisation_id, recipient_subject_key, counterpart_signal_id, \
                 counterpart_organisation_id, counterpart_region_id, \
                 counterpart_organisation_name, counterpart_professional_id, \
                 counterpart_professional_name, counterpart_professional_email, \
                 counterpart_professional_phone, counterpart_state, match_type, kind, found_at) \
             VALUES (?, 'hub', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&notice.notice_id)
        .bind(recipient.signal_id.to_string())
        .bind(recipient.organisation_id.as_str())
        .bind(recipient.subject_key.to_stored())
        .bind(counterpart.signal_id.to_string())
        .bind(counterpart.organisation_id.as_str())
        .bind(counterpart.region_id.as_str())
        .bind(counterpart.organisation_name.as_str())
        .bind(counterpart.contact.professional_id())
        .bind(counterpart.contact.name())
        .bind(counterpart.contact.email())
        .bind(counterpart.contact.phone())
        .bind(counterpart.state.as_str())
        .bind(notice.match_type.as_str())
        .bind(notice.kind.as_str())
        .bind(notice.found_at.as_microsecond())
        .execute(self.conn)?;
        Ok(())
    }

    async fn delete_hub_notice(&mut self, notice_id: &str) -> Result<bool, StoreError> {
        let deleted = query("DELETE FROM notices WHERE notice_id = ? AND source = 'hub'")
            .bind(notice_id)
            .execute(self.conn)?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn adopt_hub_epoch(&mut self, epoch: &str) -> Result<(), StoreError> {
        query("UPDATE hub_cursor SET epoch = ? WHERE singleton = 1 AND epoch IS NULL")
            .bind(epoch)
            .execute(self.conn)?;
        Ok(())
    }

    async fn remove_outbox(&mut self, seqs: &[i64]) -> Result<(), StoreError> {
        // By seq, not by range: a retried dead letter goes back at its old place, which may
        // lie inside the range of a batch in flight.
        for seq in seqs {
            query("DELETE FROM outbox WHERE seq = ?")
                .bind(seq)
                .execute(self.conn)?;
        }
        Ok(())
    }

    async fn remove_coordination_outbox(&mut self, seqs: &[i64]) -> Result<(), StoreError> {
        for seq in seqs {
            query("DELETE FROM coordination_outbox WHERE seq = ?")
                .bind(seq)
                .execute(self.conn)?;
        }
        Ok(())
    }

    async fn quarantine_outbox(
        &mut self,
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
        .execute(self.conn)?;
        query("DELETE FROM outbox WHERE seq = ?")
            .bind(seq)
            .execute(self.conn)?;
        Ok(moved.rows_affected() == 1)
    }

    async fn quarantine_coordination(
        &mut self,
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
        .execute(self.conn)?;
        query("DELETE FROM coordination_outbox WHERE seq = ?")
            .bind(seq)
            .execute(self.conn)?;
        Ok(moved.rows_affected() == 1)
    }

    async fn keep_hub_entry(
        &mut self,
        cursor: u64,
        payload: &[u8],
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO dead_letters (source, position, payload, reason, quarantined_at) \
             VALUES ('notice_log', ?, ?, ?, ?) ON CONFLICT (source, position) DO NOTHING",
        )
        .bind(cursor_to_db(cursor)?)
        .bind(payload)
        .bind(reason)
        .bind(now.as_microsecond())
        .execute(self.conn)?;
        Ok(())
    }

    async fn dead_letter(&mut self, id: i64) -> Result<Option<DeadLetter>, StoreError> {
        query("SELECT * FROM dead_letters WHERE id = ?")
            .bind(id)
            .fetch_optional(self.conn)?
            .map(|row| dead_letter_from_row(&row))
            .transpose()
    }

    async fn requeue_outbox(&mut self, letter: &DeadLetter) -> Result<(), StoreError> {
        query(
            "INSERT INTO outbox (seq, signal_id, revision, event, created_at) \
             SELECT position, signal_id, revision, ?, quarantined_at \
             FROM dead_letters WHERE id = ?",
        )
        .bind(dead_letter_text(letter)?)
        .bind(letter.id)
        .execute(self.conn)?;
        Ok(())
    }

    async fn requeue_coordination(&mut self, letter: &DeadLetter) -> Result<(), StoreError> {
        query("INSERT INTO coordination_outbox (seq, change) VALUES (?, ?)")
            .bind(letter.position)
            .bind(dead_letter_text(letter)?)
            .execute(self.conn)?;
        Ok(())
    }

    async fn remove_dead_letter(&mut self, id: i64) -> Result<(), StoreError> {
        query("DELETE FROM dead_letters WHERE id = ?")
            .bind(id)
            .execute(self.conn)?;
        Ok(())
    }

    async fn claim_email_jobs(
        &mut self,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedEmail>, StoreError> {
        let rows = query(
            "SELECT j.notice_id, j.attempts, n.recipient_signal_id, n.recipient_organisation_id \
             FROM email_jobs j JOIN notices n ON n.notice_id = j.notice_id \
             WHERE j.sent_at IS NULL AND j.next_attempt_at <= ? \
             ORDER BY j.next_attempt_at LIMIT ?",
        )
        .bind(now.as_microsecond())
        .bind(i64::from(limit))
        .fetch_all(self.conn)?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let notice_id = row.text("notice_id")?;
            query(
                "UPDATE email_jobs SET next_attempt_at = ?, attempts = attempts + 1 \
                 WHERE notice_id = ?",
            )
            .bind(until.as_microsecond())
            .bind(&notice_id)
            .execute(self.conn)?;
            claimed.push(ClaimedEmail {
                notice_id,
                attempts: u32::try_from(row.int("attempts")?)
                    .map_err(|_| StoreError::Corrupt("email_jobs.attempts"))?,
                recipient_signal_id: parse_signal_id(&row.text("recipient_signal_id")?)?,
                recipient_organisation_id: parse_org(&row.text("recipient_organisation_id")?)?,
            });
        }
        Ok(claimed)
    }

    async fn mark_email_sent(
        &mut self,
        notice_id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let marked =
            query("UPDATE email_jobs SET sent_at = ? WHERE notice_id = ? AND sent_at IS NULL")
                .bind(now.as_microsecond())
                .bind(notice_id)
                .execute(self.conn)?;
        Ok(marked.rows_affected() == 1)
    }

    async fn reschedule_email(&mut self, notice_id: &str, at: Timestamp) -> Result<(), StoreError> {
        query("UPDATE email_jobs SET next_attempt_at = ? WHERE notice_id = ? AND sent_at IS NULL")
            .bind(at.as_microsecond())
            .bind(notice_id)
            .execute(self.conn)?;
        Ok(())
    }

    async fn drop_email_job(&mut self, notice_id: &str) -> Result<(), StoreError> {
        query("DELETE FROM email_jobs WHERE notice_id = ? AND sent_at IS NULL")
            .bind(notice_id)
            .execute(self.conn)?;
        Ok(())
    }

    async fn audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError> {
        audit::append(self.conn, entry)
    }

    async fn signals_after(
        &mut self,
        after: Option<SignalId>,
        limit: u32,
    ) -> Result<Vec<SignalId>, StoreError> {
        parse_signal_ids(
            query("SELECT signal_id FROM signals WHERE signal_id > ? ORDER BY signal_id LIMIT ?")
                .bind(after.map(|id| id.to_string()).unwrap_or_default())
                .bind(i64::from(limit))
                .scalars(self.conn)?,
        )
    }

    async fn notices_to(&mut self, signal_id: SignalId) -> Result<Vec<NoticeRecord>, StoreError> {
        query(
            "SELECT n.*, EXISTS (SELECT 1 FROM email_jobs j \
                 WHERE j.notice_id = n.notice_id AND j.sent_at IS NULL) AS email_pending \
             FROM notices n WHERE n.recipient_signal_id = ? ORDER BY n.found_at, n.notice_id",
        )
        .bind(signal_id.to_string())
        .fetch_all(self.conn)?
        .iter()
        .map(notice_record)
        .collect()
    }

    async fn coordination_of(
        &mut self,
        signal_id: SignalId,
    ) -> Result<Vec<MatchCoordinationRecord>, StoreError> {
        query(
            "SELECT * FROM coordination WHERE signal_low = ?1 \
             UNION ALL SELECT * FROM coordination WHERE signal_high = ?1",
        )
        .bind(signal_id.to_string())
        .fetch_all(self.conn)?
        .iter()
        .map(match_coordination_record)
        .collect()
    }

    async fn insert_notice_record(
        &mut self,
        recipient: &StoredSignal,
        notice: &NoticeRecord,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO notices (notice_id, source, recipient_signal_id, \
                 recipient_organisation_id, recipient_subject_key, counterpart_signal_id, \
                 counterpart_organisation_id, counterpart_region_id, counterpart_subject_key, \
                 counterpart_organisation_name, counterpart_professional_id, \
                 counterpart_professional_name, counterpart_professional_email, \
                 counterpart_professional_phone, counterpart_state, match_type, kind, found_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&notice.notice_id)
        .bind(&notice.source)
        .bind(recipient.signal_id.to_string())
        .bind(recipient.organisation_id.as_str())
        .bind(recipient.subject_key.to_stored())
        .bind(&notice.counterpart_signal_id)
        .bind(&notice.counterpart_organisation_id)
        .bind(&notice.counterpart_region_id)
        .bind(&notice.counterpart_subject_key)
        .bind(&notice.counterpart_organisation_name)
        .bind(&notice.counterpart_professional_id)
        .bind(&notice.counterpart_professional_name)
        .bind(&notice.counterpart_professional_email)
        .bind(&notice.counterpart_professional_phone)
        .bind(&notice.counterpart_state)
        .bind(&notice.match_type)
        .bind(&notice.kind)
        .bind(notice.found_at)
        .execute(self.conn)?;
        Ok(())
    }

    async fn hub_cursor(&mut self) -> Result<u64, StoreError> {
        let cursor: Option<i64> = query("SELECT cursor FROM hub_cursor WHERE singleton = 1")
            .scalar_optional(self.conn)?;
        super::super::hub::rows::parse_cursor(cursor.unwrap_or_default())
    }
}

/// One signal with its family keys, on the writer's connection.
fn load_signal(conn: &Connection, signal_id: SignalId) -> Result<Option<StoredSignal>, StoreError> {
    let row = query(format!(
        "SELECT {SIGNAL_COLUMNS} FROM signals WHERE signal_id = ?"
    ))
    .bind(signal_id.to_string())
    .fetch_optional(conn)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let keys: Vec<String> =
        query("SELECT family_key FROM signal_family_keys WHERE signal_id = ? ORDER BY family_key")
            .bind(signal_id.to_string())
            .scalars(conn)?;
    signal_from_row(&row, parse_family_keys(&keys)?).map(Some)
}
