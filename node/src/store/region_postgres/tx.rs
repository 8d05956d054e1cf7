//! A region node's statements on PostgreSQL: [`RegionTx`] in one transaction of a pool
//! connection.
//!
//! Why one lock for every write, where the hub locks keys: the rules were written for one
//! writer at a time (a registration matches against everything committed before it; a deletion
//! moves notices among a party's signals; the hub's log is applied in order), and a region
//! node's writes are a region's professionals and one hub stream, not the nation's. So every
//! write transaction first takes one transaction-scoped advisory lock for the node's database
//! (`lock_writes`): several node instances on one database write one after the other, as
//! SQLite's single writer does, and each reads what the one before committed. Reads take no
//! lock. The lock goes with its transaction, also when the connection is lost; a writer that
//! waits longer than `lock_timeout` is answered `Unavailable`.

use std::collections::HashSet;

use jiff::Timestamp;
use jiff::civil::Date;
use ring::digest;
use sqlx::Transaction;
use sqlx::postgres::Postgres;

use super::load_signal_on;
use crate::domain::audit::AuditEntry;
use crate::domain::coordination::{CoordinationChange, CoordinationState};
use crate::domain::matching::{MatchSignal, PartySignal, PlannedNotice, ToldPair};
use crate::domain::{FamilyKey, OrganisationId, RegionId, Revision, SignalId, SubjectKey};
use crate::store::dead_letter::DeadLetter;
use crate::store::hub::LoggedNotice;
use crate::store::hub::rows::cursor_to_db;
use crate::store::hub::tx::Party;
use crate::store::outbox::{CoordinationRecord, OutboxEvent};
use crate::store::region::handover::{MatchCoordinationRecord, NoticeRecord};
use crate::store::region::rows::{
    InformingColumns, coordination_from_row, dead_letter_from_row, dead_letter_text,
    match_coordination_record, notice_record, parse_family_keys,
};
use crate::store::region::tx::{NoticeParties, RegionTx};
use crate::store::row::{
    Columns, parse_instant, parse_org, parse_signal_id, parse_signal_ids, parse_state,
    parse_subject, revision_to_db,
};
use crate::store::{ClaimedEmail, StoreError, StoredSignal};

/// The writes' lock of the node of `region_id`: the first 8 bytes of a SHA-256 over a label
/// and the region, so nodes of several regions on one server do not wait for each other.
fn writes_lock(region_id: &RegionId) -> i64 {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(b"vix region writes");
    context.update(&[0]);
    context.update(region_id.as_str().as_bytes());
    let hash = context.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_ref()[..8]);
    i64::from_be_bytes(first)
}

pub(super) struct PgRegionTx {
    tx: Transaction<'static, Postgres>,
    lock: i64,
    locked: bool,
    /// Entries to chain at commit: the chain's end is locked once, for as short as possible.
    audit: Vec<AuditEntry>,
}

impl PgRegionTx {
    pub(super) fn new(tx: Transaction<'static, Postgres>, region_id: &RegionId) -> Self {
        Self {
            tx,
            lock: writes_lock(region_id),
            locked: false,
            audit: Vec::new(),
        }
    }

    /// Chains the audit entries and commits.
    pub(super) async fn commit(mut self) -> Result<(), StoreError> {
        crate::store::postgres::append_audit(&mut self.tx, std::mem::take(&mut self.audit)).await?;
        self.tx.commit().await?;
        Ok(())
    }
}

impl RegionTx for PgRegionTx {
    async fn lock_writes(&mut self) -> Result<(), StoreError> {
        if !self.locked {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(self.lock)
                .execute(&mut *self.tx)
                .await?;
            self.locked = true;
        }
        Ok(())
    }

    async fn earlier_request(
        &mut self,
        organisation_id: &OrganisationId,
        request_key: &str,
    ) -> Result<Option<(SignalId, String)>, StoreError> {
        sqlx::query(
            "SELECT signal_id, request_fingerprint FROM signals \
             WHERE organisation_id = $1 AND request_key = $2",
        )
        .bind(organisation_id.as_str())
        .bind(request_key)
        .fetch_optional(&mut *self.tx)
        .await?
        .map(|row| {
            Ok((
                parse_signal_id(&row.text("signal_id")?)?,
                row.text("request_fingerprint")?,
            ))
        })
        .transpose()
    }

    async fn is_deceased(&mut self, subject_key: &SubjectKey) -> Result<bool, StoreError> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT subject_key FROM deceased WHERE subject_key = $1")
                .bind(subject_key.to_stored())
                .fetch_optional(&mut *self.tx)
                .await?;
        Ok(found.is_some())
    }

    async fn record_deceased(
        &mut self,
        subject_key: &SubjectKey,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO deceased (subject_key, recorded_at) VALUES ($1, $2) \
             ON CONFLICT (subject_key) DO NOTHING",
        )
        .bind(subject_key.to_stored())
        .bind(now.as_microsecond())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn active_signal(&mut self, party: &Party) -> Result<Option<SignalId>, StoreError> {
        sqlx::query_scalar::<_, String>(
            "SELECT signal_id FROM signals \
             WHERE subject_key = $1 AND organisation_id = $2 AND state = 'active' \
             ORDER BY registered_at DESC, signal_id DESC LIMIT 1",
        )
        .bind(party.subject_key.to_stored())
        .bind(party.organisation_id.as_str())
        .fetch_optional(&mut *self.tx)
        .await?
        .map(|id| parse_signal_id(&id))
        .transpose()
    }

    async fn signal(&mut self, signal_id: SignalId) -> Result<Option<StoredSignal>, StoreError> {
        load_signal_on(&mut self.tx, signal_id).await
    }

    async fn subject_signals(
        &mut self,
        subject_key: &SubjectKey,
    ) -> Result<Vec<SignalId>, StoreError> {
        parse_signal_ids(
            sqlx::query_scalar("SELECT signal_id FROM signals WHERE subject_key = $1")
                .bind(subject_key.to_stored())
                .fetch_all(&mut *self.tx)
                .await?,
        )
    }

    async fn family_signals(
        &mut self,
        family_key: &FamilyKey,
    ) -> Result<Vec<SignalId>, StoreError> {
        sqlx::query_scalar::<_, String>(
            "SELECT signal_id FROM signal_family_keys WHERE family_key = $1",
        )
        .bind(family_key.to_stored())
        .fetch_all(&mut *self.tx)
        .await?
        .iter()
        .map(|id| parse_signal_id(id))
        .collect()
    }

    async fn rekey_subject(
        &mut self,
        old: &SubjectKey,
        new: &SubjectKey,
    ) -> Result<(), StoreError> {
        let (old, new) = (old.to_stored(), new.to_stored());
        sqlx::query("UPDATE signals SET subject_key = $2 WHERE subject_key = $1")
            .bind(&old)
            .bind(&new)
            .execute(&mut *self.tx)
            .await?;
        // A death may be recorded under both versions already.
        sqlx::query(
            "INSERT INTO deceased (subject_key, recorded_at) \
             SELECT $2, recorded_at FROM deceased WHERE subject_key = $1 \
             ON CONFLICT (subject_key) DO NOTHING",
        )
        .bind(&old)
        .bind(&new)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query("DELETE FROM deceased WHERE subject_key = $1")
            .bind(&old)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn rekey_family(&mut self, old: &FamilyKey, new: &FamilyKey) -> Result<(), StoreError> {
        sqlx::query("UPDATE signal_family_keys SET family_key = $2 WHERE family_key = $1")
            .bind(old.to_stored())
            .bind(new.to_stored())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn rekey_told(
        &mut self,
        organisation: &OrganisationId,
        old: &SubjectKey,
        new: &SubjectKey,
    ) -> Result<(), StoreError> {
        crate::store::postgres::rekey_told(&mut self.tx, organisation, old, new).await
    }

    async fn candidates(
        &mut self,
        signal: &StoredSignal,
        region_id: &RegionId,
    ) -> Result<Vec<MatchSignal>, StoreError> {
        let family_keys: Vec<String> = signal
            .family_keys
            .iter()
            .map(FamilyKey::to_stored)
            .collect();
        // Two index lookups joined by UNION: an OR of the two conditions is a scan.
        let rows = sqlx::query(
            "SELECT s.signal_id, s.organisation_id, s.subject_key, s.state, s.registered_at, \
                    (SELECT string_agg(f.family_key, ' ') FROM signal_family_keys f \
                     WHERE f.signal_id = s.signal_id) AS family_keys \
             FROM signals s \
             WHERE s.signal_id IN (SELECT signal_id FROM signals WHERE subject_key = $1 \
                                   UNION \
                                   SELECT signal_id FROM signal_family_keys \
                                   WHERE family_key = ANY($2))",
        )
        .bind(signal.subject_key.to_stored())
        .bind(&family_keys)
        .fetch_all(&mut *self.tx)
        .await?;
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
        crate::store::postgres::told_pairs(&mut self.tx, party).await
    }

    async fn remember_told(&mut self, pair: &ToldPair) -> Result<(), StoreError> {
        crate::store::postgres::remember_told(&mut self.tx, pair).await
    }

    async fn forget_told(&mut self, party: &Party) -> Result<(), StoreError> {
        crate::store::postgres::forget_told(&mut self.tx, party).await
    }

    async fn insert_signal(
        &mut self,
        signal: &StoredSignal,
        request_key: &str,
        request_fingerprint: &str,
    ) -> Result<(), StoreError> {
        let informing = InformingColumns::of(&signal.informing);
        let family_keys: Vec<String> = signal
            .family_keys
            .iter()
            .map(FamilyKey::to_stored)
            .collect();
        // The signal and its family keys in one statement: one round trip.
        sqlx::query(concat!(
            "WITH signal AS (INSERT INTO signals (",
            super::signal_columns!(),
            ", request_key, request_fingerprint) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                     $17, $18, $19, $20, $21) RETURNING signal_id) \
             INSERT INTO signal_family_keys (signal_id, family_key) \
             SELECT signal.signal_id, key FROM signal, unnest($22::text[]) AS key"
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
        .bind(&family_keys)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn save_revision(
        &mut self,
        previous: Revision,
        signal: &StoredSignal,
    ) -> Result<bool, StoreError> {
        let informing = InformingColumns::of(&signal.informing);
        let updated = sqlx::query(
            "UPDATE signals SET revision = $1, professional_id = $2, professional_name = $3, \
                 professional_email = $4, professional_phone = $5, planned_removal_date = $6, \
                 state = $7, inactive_since = $8, informing = $9, informed_parents = $10, \
                 informed_youth = $11, informed_on = $12, not_informed_reason = $13 \
             WHERE signal_id = $14 AND revision = $15",
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
        .execute(&mut *self.tx)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn delete_signal_row(&mut self, signal_id: SignalId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM signals WHERE signal_id = $1")
            .bind(signal_id.to_string())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn party_signals(
        &mut self,
        party: &Party,
        except: SignalId,
    ) -> Result<Vec<PartySignal>, StoreError> {
        sqlx::query(
            "SELECT signal_id, state, registered_at FROM signals \
             WHERE subject_key = $1 AND organisation_id = $2 AND signal_id <> $3",
        )
        .bind(party.subject_key.to_stored())
        .bind(party.organisation_id.as_str())
        .bind(except.to_string())
        .fetch_all(&mut *self.tx)
        .await?
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
        let found: Option<String> = sqlx::query_scalar(
            "SELECT signal_id FROM signals \
             WHERE subject_key = $1 AND organisation_id = $2 LIMIT 1",
        )
        .bind(party.subject_key.to_stored())
        .bind(party.organisation_id.as_str())
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(found.is_some())
    }

    async fn insert_notice(
        &mut self,
        notice_id: &str,
        plan: &PlannedNotice,
        found_at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO notices (notice_id, source, recipient_signal_id, \
                 recipient_organisation_id, recipient_subject_key, counterpart_signal_id, \
                 counterpart_organisation_id, counterpart_region_id, counterpart_subject_key, \
                 match_type, kind, found_at) \
             VALUES ($1, 'node', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn repoint_notices(&mut self, from: SignalId, to: SignalId) -> Result<(), StoreError> {
        for statement in [
            "UPDATE notices SET counterpart_signal_id = $1 WHERE counterpart_signal_id = $2",
            "UPDATE notices SET recipient_signal_id = $1 WHERE recipient_signal_id = $2",
        ] {
            sqlx::query(statement)
                .bind(to.to_string())
                .bind(from.to_string())
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    async fn delete_notices_showing(&mut self, signal_id: SignalId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM notices WHERE counterpart_signal_id = $1")
            .bind(signal_id.to_string())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn delete_coordination_naming(&mut self, signal_id: SignalId) -> Result<(), StoreError> {
        for statement in [
            "DELETE FROM coordination WHERE signal_low = $1",
            "DELETE FROM coordination WHERE signal_high = $1",
        ] {
            sqlx::query(statement)
                .bind(signal_id.to_string())
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    async fn insert_email_job(
        &mut self,
        notice_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO email_jobs (notice_id, created_at) VALUES ($1, $2)")
            .bind(notice_id)
            .bind(now.as_microsecond())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn append_outbox(
        &mut self,
        event: &OutboxEvent,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(event).map_err(|_| StoreError::Corrupt("outbox event"))?;
        sqlx::query(
            "INSERT INTO outbox (signal_id, revision, event, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(event.signal_id())
        .bind(i64::try_from(event.revision()).map_err(|_| StoreError::Corrupt("revision"))?)
        .bind(json)
        .bind(now.as_microsecond())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn drop_outbox_of(&mut self, signal_id: SignalId) -> Result<(), StoreError> {
        for statement in [
            "DELETE FROM outbox WHERE signal_id = $1",
            "DELETE FROM dead_letters WHERE signal_id = $1",
        ] {
            sqlx::query(statement)
                .bind(signal_id.to_string())
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    async fn due_for_expiry(
        &mut self,
        today: Date,
        limit: u32,
    ) -> Result<Vec<SignalId>, StoreError> {
        parse_signal_ids(
            sqlx::query_scalar(
                "SELECT signal_id FROM signals \
                 WHERE state = 'active' AND planned_removal_date <= $1 \
                 ORDER BY state, planned_removal_date LIMIT $2",
            )
            .bind(today.to_string())
            .bind(i64::from(limit))
            .fetch_all(&mut *self.tx)
            .await?,
        )
    }

    async fn due_for_purge(
        &mut self,
        cutoff: Date,
        limit: u32,
    ) -> Result<Vec<SignalId>, StoreError> {
        parse_signal_ids(
            sqlx::query_scalar(
                "SELECT signal_id FROM signals \
                 WHERE inactive_since IS NOT NULL AND inactive_since <= $1 \
                 ORDER BY inactive_since LIMIT $2",
            )
            .bind(cutoff.to_string())
            .bind(i64::from(limit))
            .fetch_all(&mut *self.tx)
            .await?,
        )
    }

    async fn due_for_age(&mut self, cutoff: Date, limit: u32) -> Result<Vec<SignalId>, StoreError> {
        parse_signal_ids(
            sqlx::query_scalar(
                "SELECT signal_id FROM signals WHERE birth_date <= $1 \
                 ORDER BY birth_date LIMIT $2",
            )
            .bind(cutoff.to_string())
            .bind(i64::from(limit))
            .fetch_all(&mut *self.tx)
            .await?,
        )
    }

    async fn notice_parties(
        &mut self,
        notice_id: &str,
    ) -> Result<Option<NoticeParties>, StoreError> {
        sqlx::query(
            "SELECT recipient_signal_id, recipient_organisation_id, counterpart_signal_id, \
                    source \
             FROM notices WHERE notice_id = $1",
        )
        .bind(notice_id)
        .fetch_optional(&mut *self.tx)
        .await?
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
        sqlx::query(
            "SELECT regievoerder_signal_id, regievoerder_at, regievoerder_change_id, \
                    afgestemd_low, afgestemd_high \
             FROM coordination WHERE signal_low = $1 AND signal_high = $2",
        )
        .bind(low.to_string())
        .bind(high.to_string())
        .fetch_optional(&mut *self.tx)
        .await?
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
        sqlx::query(
            "INSERT INTO coordination (signal_low, signal_high, regievoerder_signal_id, \
                 regievoerder_at, regievoerder_change_id, afgestemd_low, afgestemd_high) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (signal_low, signal_high) DO UPDATE SET \
                 regievoerder_signal_id = $3, regievoerder_at = $4, regievoerder_change_id = $5, \
                 afgestemd_low = $6, afgestemd_high = $7",
        )
        .bind(low.to_string())
        .bind(high.to_string())
        .bind(named)
        .bind(at)
        .bind(change_id)
        .bind(state.afgestemd_low)
        .bind(state.afgestemd_high)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn queue_coordination(&mut self, change: &CoordinationChange) -> Result<(), StoreError> {
        let json = serde_json::to_string(&CoordinationRecord::from(change))
            .map_err(|_| StoreError::Corrupt("coordination change"))?;
        sqlx::query("INSERT INTO coordination_outbox (change) VALUES ($1)")
            .bind(json)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn holds_match(
        &mut self,
        recipient: SignalId,
        counterpart: SignalId,
    ) -> Result<bool, StoreError> {
        let held: Option<String> = sqlx::query_scalar(
            "SELECT notice_id FROM notices \
             WHERE recipient_signal_id = $1 AND counterpart_signal_id = $2 LIMIT 1",
        )
        .bind(recipient.to_string())
        .bind(counterpart.to_string())
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(held.is_some())
    }

    async fn raise_hub_cursor(&mut self, cursor: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE hub_cursor SET cursor = GREATEST(cursor, $1) WHERE singleton = 1")
            .bind(cursor_to_db(cursor)?)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn notice_exists(&mut self, notice_id: &str) -> Result<bool, StoreError> {
        let seen: Option<String> =
            sqlx::query_scalar("SELECT notice_id FROM notices WHERE notice_id = $1")
                .bind(notice_id)
                .fetch_optional(&mut *self.tx)
                .await?;
        Ok(seen.is_some())
    }

    async fn refresh_hub_notice(&mut self, notice: &LoggedNotice) -> Result<(), StoreError> {
        let counterpart = &notice.counterpart;
        sqlx::query(
            "UPDATE notices SET counterpart_signal_id = $1, counterpart_organisation_name = $2, \
                 counterpart_professional_id = $3, counterpart_professional_name = $4, \
                 counterpart_professional_email = $5, counterpart_professional_phone = $6, \
                 counterpart_state = $7, counterpart_region_id = $10, \
                 recipient_signal_id = COALESCE((SELECT s.signal_id FROM signals s \
                     WHERE s.signal_id = $8 \
                       AND s.organisation_id = notices.recipient_organisation_id), \
                     recipient_signal_id) \
             WHERE notice_id = $9 AND source = 'hub'",
        )
        .bind(counterpart.signal_id.to_string())
        .bind(counterpart.organisation_name.as_str())
        .bind(counterpart.contact.professional_id())
        .bind(counterpart.contact.name())
        .bind(counterpart.contact.email())
        .bind(counterpart.contact.phone())
        .bind(counterpart.state.as_str())
        .bind(notice.recipient_signal_id.to_string())
        .bind(&notice.notice_id)
        .bind(counterpart.region_id.as_str())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn insert_hub_notice(
        &mut self,
        notice: &LoggedNotice,
        recipient: &StoredSignal,
    ) -> Result<(), StoreError> {
        let counterpart = &notice.counterpart;
        sqlx::query(
            "INSERT INTO notices (notice_id, source, recipient_signal_id, \
                 recipient_organisation_id, recipient_subject_key, counterpart_signal_id, \
                 counterpart_organisation_id, counterpart_region_id, \
                 counterpart_organisation_name, counterpart_professional_id, \
                 counterpart_professional_name, counterpart_professional_email, \
                 counterpart_professional_phone, counterpart_state, match_type, kind, found_at) \
             VALUES ($1, 'hub', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     $16)",
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
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn delete_hub_notice(&mut self, notice_id: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM notices WHERE notice_id = $1 AND source = 'hub'")
            .bind(notice_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn adopt_hub_epoch(&mut self, epoch: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE hub_cursor SET epoch = $1 WHERE singleton = 1 AND epoch IS NULL")
            .bind(epoch)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn remove_outbox(&mut self, seqs: &[i64]) -> Result<(), StoreError> {
        // By seq, not by range: a retried dead letter goes back at its old place, which may
        // lie inside the range of a batch in flight.
        sqlx::query("DELETE FROM outbox WHERE seq = ANY($1)")
            .bind(seqs)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn remove_coordination_outbox(&mut self, seqs: &[i64]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM coordination_outbox WHERE seq = ANY($1)")
            .bind(seqs)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn quarantine_outbox(
        &mut self,
        seq: i64,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let moved = sqlx::query(
            "WITH moved AS (DELETE FROM outbox WHERE seq = $1 \
                            RETURNING seq, signal_id, revision, event) \
             INSERT INTO dead_letters \
                 (source, position, signal_id, revision, payload, reason, quarantined_at) \
             SELECT 'outbox', seq, signal_id, revision, convert_to(event, 'UTF8'), $2, $3 \
             FROM moved",
        )
        .bind(seq)
        .bind(reason)
        .bind(now.as_microsecond())
        .execute(&mut *self.tx)
        .await?;
        Ok(moved.rows_affected() == 1)
    }

    async fn quarantine_coordination(
        &mut self,
        seq: i64,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let moved = sqlx::query(
            "WITH moved AS (DELETE FROM coordination_outbox WHERE seq = $1 \
                            RETURNING seq, change) \
             INSERT INTO dead_letters (source, position, payload, reason, quarantined_at) \
             SELECT 'coordination', seq, convert_to(change, 'UTF8'), $2, $3 FROM moved",
        )
        .bind(seq)
        .bind(reason)
        .bind(now.as_microsecond())
        .execute(&mut *self.tx)
        .await?;
        Ok(moved.rows_affected() == 1)
    }

    async fn keep_hub_entry(
        &mut self,
        cursor: u64,
        payload: &[u8],
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO dead_letters (source, position, payload, reason, quarantined_at) \
             VALUES ('notice_log', $1, $2, $3, $4) ON CONFLICT (source, position) DO NOTHING",
        )
        .bind(cursor_to_db(cursor)?)
        .bind(payload)
        .bind(reason)
        .bind(now.as_microsecond())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn dead_letter(&mut self, id: i64) -> Result<Option<DeadLetter>, StoreError> {
        sqlx::query("SELECT * FROM dead_letters WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?
            .map(|row| dead_letter_from_row(&row))
            .transpose()
    }

    async fn requeue_outbox(&mut self, letter: &DeadLetter) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO outbox (seq, signal_id, revision, event, created_at) \
             SELECT position, signal_id, revision, $1, quarantined_at \
             FROM dead_letters WHERE id = $2",
        )
        .bind(dead_letter_text(letter)?)
        .bind(letter.id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn requeue_coordination(&mut self, letter: &DeadLetter) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO coordination_outbox (seq, change) VALUES ($1, $2)")
            .bind(letter.position)
            .bind(dead_letter_text(letter)?)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn remove_dead_letter(&mut self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM dead_letters WHERE id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn claim_email_jobs(
        &mut self,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedEmail>, StoreError> {
        // Three lookups by key rather than one statement: planned without knowing the batch
        // size, a join of the due jobs with their notices became a scan of both tables.
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT notice_id FROM email_jobs WHERE sent_at IS NULL AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(now.as_microsecond())
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let attempts: Vec<(String, i32)> = sqlx::query_as(
            "UPDATE email_jobs SET next_attempt_at = $1, attempts = attempts + 1 \
             WHERE notice_id = ANY($2) RETURNING notice_id, attempts - 1",
        )
        .bind(until.as_microsecond())
        .bind(&due)
        .fetch_all(&mut *self.tx)
        .await?;
        let attempts: std::collections::HashMap<String, i32> = attempts.into_iter().collect();
        let rows = sqlx::query(
            "SELECT notice_id, recipient_signal_id, recipient_organisation_id FROM notices \
             WHERE notice_id = ANY($1)",
        )
        .bind(&due)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                let notice_id = row.text("notice_id")?;
                let tries = attempts
                    .get(&notice_id)
                    .copied()
                    .ok_or(StoreError::Corrupt("email_jobs"))?;
                Ok(ClaimedEmail {
                    attempts: u32::try_from(tries)
                        .map_err(|_| StoreError::Corrupt("email_jobs.attempts"))?,
                    recipient_signal_id: parse_signal_id(&row.text("recipient_signal_id")?)?,
                    recipient_organisation_id: parse_org(&row.text("recipient_organisation_id")?)?,
                    notice_id,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Oldest first, as they were due.
        claimed.sort_by_key(|job| due.iter().position(|id| *id == job.notice_id));
        Ok(claimed)
    }

    async fn mark_email_sent(
        &mut self,
        notice_id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let marked = sqlx::query(
            "UPDATE email_jobs SET sent_at = $1 WHERE notice_id = $2 AND sent_at IS NULL",
        )
        .bind(now.as_microsecond())
        .bind(notice_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(marked.rows_affected() == 1)
    }

    async fn reschedule_email(&mut self, notice_id: &str, at: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE email_jobs SET next_attempt_at = $1 WHERE notice_id = $2 AND sent_at IS NULL",
        )
        .bind(at.as_microsecond())
        .bind(notice_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn drop_email_job(&mut self, notice_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM email_jobs WHERE notice_id = $1 AND sent_at IS NULL")
            .bind(notice_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.audit.push(entry.clone());
        Ok(())
    }

    async fn signals_after(
        &mut self,
        after: Option<SignalId>,
        limit: u32,
    ) -> Result<Vec<SignalId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT signal_id FROM signals WHERE signal_id > $1 ORDER BY signal_id LIMIT $2",
        )
        .bind(after.map(|id| id.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?;
        parse_signal_ids(ids)
    }

    async fn notices_to(&mut self, signal_id: SignalId) -> Result<Vec<NoticeRecord>, StoreError> {
        sqlx::query(
            "SELECT n.*, EXISTS (SELECT 1 FROM email_jobs j \
                 WHERE j.notice_id = n.notice_id AND j.sent_at IS NULL) AS email_pending \
             FROM notices n WHERE n.recipient_signal_id = $1 ORDER BY n.found_at, n.notice_id",
        )
        .bind(signal_id.to_string())
        .fetch_all(&mut *self.tx)
        .await?
        .iter()
        .map(notice_record)
        .collect()
    }

    async fn coordination_of(
        &mut self,
        signal_id: SignalId,
    ) -> Result<Vec<MatchCoordinationRecord>, StoreError> {
        sqlx::query(
            "SELECT * FROM coordination WHERE signal_low = $1 \
             UNION ALL SELECT * FROM coordination WHERE signal_high = $1",
        )
        .bind(signal_id.to_string())
        .fetch_all(&mut *self.tx)
        .await?
        .iter()
        .map(match_coordination_record)
        .collect()
    }

    async fn insert_notice_record(
        &mut self,
        recipient: &StoredSignal,
        notice: &NoticeRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO notices (notice_id, source, recipient_signal_id, \
                 recipient_organisation_id, recipient_subject_key, counterpart_signal_id, \
                 counterpart_organisation_id, counterpart_region_id, counterpart_subject_key, \
                 counterpart_organisation_name, counterpart_professional_id, \
                 counterpart_professional_name, counterpart_professional_email, \
                 counterpart_professional_phone, counterpart_state, match_type, kind, found_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                     $17, $18)",
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
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn hub_cursor(&mut self) -> Result<u64, StoreError> {
        let cursor: Option<i64> =
            sqlx::query_scalar("SELECT cursor FROM hub_cursor WHERE singleton = 1")
                .fetch_optional(&mut *self.tx)
                .await?;
        crate::store::hub::rows::parse_cursor(cursor.unwrap_or_default())
    }
}
