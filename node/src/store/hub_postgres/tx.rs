//! The hub's statements on PostgreSQL: [`HubTx`] in one transaction of a pool connection, with
//! the locks that let several hub instances write at once.
//!
//! Locks are taken in one global order, so two transactions never wait for each other in a
//! circle: (1) the lifecycle sweep's lock; (2) the signals a write names; (3) the keys (youth and
//! family pseudonyms) those signals are stored under or arrive with; (4) at commit, the heads
//! of the regions' logs it appends to, in region order; (5) the end of the audit chain. Each
//! group is taken in sorted order in one statement.
//!
//! Why advisory locks on keys: matching is exactly-once only if two new signals that could match
//! are not both inserted without seeing each other. Under READ COMMITTED neither sees the other's
//! uncommitted row, and a unique index cannot express "shares a key". Every signal a write
//! touches is locked with every key it is stored under, so two writes that could find each other,
//! or touch the same notice (whose two signals share a key), run one after the other, and the
//! second reads what the first committed. `SERIALIZABLE` would also be correct, but it turns
//! the busiest keys' conflicts into aborted batches that the regions resend; waiting is cheaper.
//! The locks are transaction-scoped (`pg_advisory_xact_lock`): a connection lost mid-write
//! releases them with its transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::Timestamp;
use jiff::civil::Date;
use ring::digest;
use sqlx::Transaction;
use sqlx::postgres::{PgRow, Postgres};

use super::super::StoreError;
use super::super::hub::rows::{
    cursor_to_db, due_signal, parse_cursor, parse_region, parse_revision, revision_to_db,
    stored_signal, told_pairs_to_text,
};
use super::super::hub::tx::{
    DueSignal, EntryKind, HubTx, Known, LogTarget, NewNotice, NotedAck, Party, StoredHubSignal,
};
use super::super::hub::{HubSignal, LoggedAdoption};
use super::super::row::{
    Columns, parse_instant, parse_org, parse_signal_id, parse_state, parse_subject,
};
use crate::domain::audit::AuditEntry;
use crate::domain::coordination::{ChangeKind, CoordinationChange};
use crate::domain::matching::{PartySignal, PreviousKeys, ToldPair};
use crate::domain::{FamilyKey, OrganisationId, RegionId, Revision, SignalId, SubjectKey};

/// The channel on which a commit that appended to a region's log wakes every instance's
/// notice streams.
pub(super) const LOG_CHANNEL: &str = "vix_region_log";

/// The sweep's advisory lock, in the two-integer key space (apart from the signal and key
/// locks, which are single `bigint`s): "vix" and 1.
const SWEEP_LOCK: (i32, i32) = (0x0076_6978, 1);

/// A signal id or a key as an advisory lock: the first 8 bytes of a SHA-256 over a label and
/// the value, so ids and keys never share a lock by construction, only by a 2^-64 chance (which
/// costs a wait, never correctness).
fn lock_id(label: &str, value: &str) -> i64 {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(label.as_bytes());
    context.update(&[0]);
    context.update(value.as_bytes());
    let hash = context.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_ref()[..8]);
    i64::from_be_bytes(first)
}

async fn lock_all(
    tx: &mut Transaction<'static, Postgres>,
    mut locks: Vec<i64>,
) -> Result<(), StoreError> {
    if locks.is_empty() {
        return Ok(());
    }
    locks.sort_unstable();
    locks.dedup();
    // unnest yields the array's order, so the locks are taken in sorted order.
    sqlx::query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k")
        .bind(&locks)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The signals on a set of keys, by key and by id.
#[derive(Default)]
struct OnKeys {
    keys: HashSet<String>,
    by_key: HashMap<String, HashSet<SignalId>>,
    signals: HashMap<SignalId, StoredHubSignal>,
}

impl OnKeys {
    fn keys_of(signal: &HubSignal) -> impl Iterator<Item = String> + '_ {
        std::iter::once(signal.subject_key.to_stored())
            .chain(signal.family_keys.iter().map(|key| key.to_stored()))
    }

    fn add(&mut self, stored: StoredHubSignal) {
        for key in Self::keys_of(&stored.signal) {
            self.by_key.entry(key).or_default().insert(stored.signal_id);
        }
        self.signals.insert(stored.signal_id, stored);
    }

    fn remove(&mut self, signal_id: SignalId) {
        if let Some(stored) = self.signals.remove(&signal_id) {
            for key in Self::keys_of(&stored.signal) {
                if let Some(ids) = self.by_key.get_mut(&key) {
                    ids.remove(&signal_id);
                }
            }
        }
    }

    /// The signals on `signal`'s keys and `previous`, if every one of them was read.
    fn candidates(
        &self,
        signal: &HubSignal,
        previous: &PreviousKeys,
    ) -> Option<Vec<StoredHubSignal>> {
        let keys: Vec<String> = Self::keys_of(signal)
            .chain(previous_keys(previous))
            .collect();
        if !keys.iter().all(|key| self.keys.contains(key)) {
            return None;
        }
        let ids: HashSet<SignalId> = keys
            .iter()
            .filter_map(|key| self.by_key.get(key))
            .flatten()
            .copied()
            .collect();
        Some(
            ids.iter()
                .filter_map(|id| self.signals.get(id))
                .cloned()
                .collect(),
        )
    }
}

fn previous_keys(previous: &PreviousKeys) -> impl Iterator<Item = String> + '_ {
    previous
        .subject
        .iter()
        .map(SubjectKey::to_stored)
        .chain(previous.family.iter().map(FamilyKey::to_stored))
}

pub(super) struct PgHubTx {
    tx: Transaction<'static, Postgres>,
    /// What this transaction knows of the signals it locked, read in one statement with the
    /// locks and kept up to date by its own writes: no other writer changes a locked signal,
    /// so a batch asks the database once, not once per event.
    known: HashMap<SignalId, Option<Known>>,
    /// The signals stored under the keys this transaction locked, read in two statements with
    /// the locks and kept up to date by its own writes (no other writer changes a signal on a
    /// locked key): a batch's matching reads them here, not once per event.
    on_keys: OnKeys,
    /// Log entries per region, in the order appended; numbered and written at commit.
    log: BTreeMap<String, Vec<(EntryKind, String)>>,
    /// Audit entries in order; chained and written at commit.
    audit: Vec<AuditEntry>,
}

impl PgHubTx {
    pub(super) fn new(tx: Transaction<'static, Postgres>) -> Self {
        Self {
            tx,
            known: HashMap::new(),
            on_keys: OnKeys::default(),
            log: BTreeMap::new(),
            audit: Vec::new(),
        }
    }

    /// Numbers and writes the log entries (region heads in region order), chains the audit
    /// entries, wakes the other instances' streams, and commits.
    pub(super) async fn commit(mut self) -> Result<(), StoreError> {
        let logged = !self.log.is_empty();
        for (region_id, entries) in std::mem::take(&mut self.log) {
            let count = i64::try_from(entries.len()).map_err(|_| StoreError::Corrupt("log"))?;
            // The head's row stays locked until commit: see migration 0001 (region_heads).
            let last: i64 = sqlx::query_scalar(
                "INSERT INTO region_heads (region_id, last_cursor) VALUES ($1, $2) \
                 ON CONFLICT (region_id) \
                 DO UPDATE SET last_cursor = region_heads.last_cursor + EXCLUDED.last_cursor \
                 RETURNING last_cursor",
            )
            .bind(&region_id)
            .bind(count)
            .fetch_one(&mut *self.tx)
            .await?;
            let first = last - count + 1;
            let cursors: Vec<i64> = (first..=last).collect();
            let (kinds, ids): (Vec<&str>, Vec<String>) = entries
                .into_iter()
                .map(|(kind, id)| (kind.as_str(), id))
                .unzip();
            sqlx::query(
                "INSERT INTO region_log (region_id, cursor, entry, notice_id) \
                 SELECT $1, c, e, n FROM unnest($2::bigint[], $3::text[], $4::text[]) AS u(c, e, n)",
            )
            .bind(&region_id)
            .bind(&cursors)
            .bind(&kinds)
            .bind(&ids)
            .execute(&mut *self.tx)
            .await?;
        }
        super::super::postgres::append_audit(&mut self.tx, std::mem::take(&mut self.audit)).await?;
        if logged {
            // Delivered to the listeners when (and only if) the transaction commits.
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(LOG_CHANNEL)
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await?;
        Ok(())
    }

    fn conn(&mut self) -> &mut sqlx::PgConnection {
        &mut self.tx
    }
}

fn log_targets(rows: &[PgRow]) -> Result<Vec<LogTarget>, StoreError> {
    rows.iter()
        .map(|row| {
            Ok(LogTarget {
                region_id: parse_region(&row.text("recipient_region_id")?)?,
                notice_id: row.text("notice_id")?,
            })
        })
        .collect()
}

/// The ids of the signals on a youth's keys ($1) or on one of its family keys ($2): two index
/// lookups.
/// PostgreSQL plans `subject_key = $1 OR signal_id IN (…)` as a scan of every signal, and a
/// join of these ids to the signals as a hash join over all of them while the table's
/// statistics are older than its growth (seen: 8 ms an event at 60,000 signals); the rows are
/// read by id in a second statement, only when there are any.
const CANDIDATE_IDS: &str = "SELECT signal_id FROM signals WHERE subject_key = ANY($1) \
     UNION \
     SELECT signal_id FROM signal_family_keys WHERE family_key = ANY($2)";

const SIGNALS_BY_ID: &str = "SELECT s.*, \
            (SELECT string_agg(f.family_key, ' ') FROM signal_family_keys f \
             WHERE f.signal_id = s.signal_id) AS family_keys \
     FROM signals s WHERE s.signal_id = ANY($1)";

/// The columns of a [`DueSignal`], as a literal (sqlx takes only static statements).
macro_rules! due_columns {
    () => {
        "signal_id, region_id, revision, state, planned_removal_date, inactive_since"
    };
}

impl HubTx for PgHubTx {
    async fn lock(&mut self, signals: &[SignalId], keys: &[String]) -> Result<(), StoreError> {
        let ids: Vec<String> = signals.iter().map(SignalId::to_string).collect();
        lock_all(
            &mut self.tx,
            ids.iter().map(|id| lock_id("signal", id)).collect(),
        )
        .await?;
        // Read once the signals are locked: a signal being inserted by another instance is
        // visible now, with its keys (which never change).
        let rows = sqlx::query(
            "SELECT signal_id, region_id, NULL::bigint AS revision, NULL AS key \
             FROM tombstones WHERE signal_id = ANY($1) \
             UNION ALL \
             SELECT signal_id, region_id, revision, subject_key FROM signals \
             WHERE signal_id = ANY($1) \
             UNION ALL \
             SELECT signal_id, NULL, NULL, family_key FROM signal_family_keys \
             WHERE signal_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(self.conn())
        .await?;
        for id in signals {
            self.known.insert(*id, None);
        }
        let mut stored = Vec::new();
        for row in &rows {
            let signal_id = parse_signal_id(&row.text("signal_id")?)?;
            stored.extend(row.opt_text("key")?);
            // A family key's row says nothing else.
            let Some(region_id) = row.opt_text("region_id")? else {
                continue;
            };
            let region_id = parse_region(&region_id)?;
            let known = match row.opt_int("revision")? {
                None => Known::Tombstone { region_id },
                Some(revision) => Known::Live {
                    region_id,
                    revision: parse_revision(revision)?,
                },
            };
            // A tombstone is final, whatever else is read.
            let entry = self.known.entry(signal_id).or_default();
            if !matches!(entry, Some(Known::Tombstone { .. })) {
                *entry = Some(known);
            }
        }
        lock_all(
            &mut self.tx,
            keys.iter()
                .chain(&stored)
                .map(|key| lock_id("key", key))
                .collect(),
        )
        .await?;
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = keys.to_vec();
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT signal_id FROM signals WHERE subject_key = ANY($1) \
             UNION \
             SELECT signal_id FROM signal_family_keys WHERE family_key = ANY($1)",
        )
        .bind(&keys)
        .fetch_all(self.conn())
        .await?;
        let rows = if ids.is_empty() {
            Vec::new()
        } else {
            sqlx::query(SIGNALS_BY_ID)
                .bind(&ids)
                .fetch_all(self.conn())
                .await?
        };
        self.on_keys.keys.extend(keys);
        for row in &rows {
            self.on_keys.add(stored_signal(row)?);
        }
        Ok(())
    }

    async fn lock_sweep(&mut self) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(SWEEP_LOCK.0)
            .bind(SWEEP_LOCK.1)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    async fn known(&mut self, signal_id: SignalId) -> Result<Option<Known>, StoreError> {
        if let Some(known) = self.known.get(&signal_id) {
            return Ok(known.clone());
        }
        // Not locked by this transaction: read it as it stands.
        let rows = sqlx::query(
            "SELECT region_id, NULL::bigint AS revision FROM tombstones WHERE signal_id = $1 \
             UNION ALL \
             SELECT region_id, revision FROM signals WHERE signal_id = $1",
        )
        .bind(signal_id.to_string())
        .fetch_all(self.conn())
        .await?;
        let mut known = None;
        for row in &rows {
            let region_id = parse_region(&row.text("region_id")?)?;
            match row.opt_int("revision")? {
                None => return Ok(Some(Known::Tombstone { region_id })),
                Some(revision) => {
                    known = Some(Known::Live {
                        region_id,
                        revision: parse_revision(revision)?,
                    });
                }
            }
        }
        Ok(known)
    }

    async fn insert_signal(
        &mut self,
        new: &StoredHubSignal,
        revision: Revision,
    ) -> Result<(), StoreError> {
        let signal = &new.signal;
        let family_keys: Vec<String> = signal.family_keys.iter().map(|k| k.to_stored()).collect();
        // One round trip for the signal and its family keys (the foreign key is checked at
        // the end of the statement, after the signal's row is in).
        sqlx::query(
            "WITH inserted AS ( \
                 INSERT INTO signals (signal_id, region_id, revision, organisation_id, \
                     organisation_name, professional_id, professional_name, \
                     professional_email, professional_phone, subject_key, registered_at, \
                     planned_removal_date, state, inactive_since) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 RETURNING signal_id) \
             INSERT INTO signal_family_keys (signal_id, family_key) \
             SELECT inserted.signal_id, k FROM inserted, unnest($15::text[]) AS k",
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
        .bind(&family_keys)
        .execute(self.conn())
        .await?;
        self.on_keys.add(new.clone());
        self.known.insert(
            new.signal_id,
            Some(Known::Live {
                region_id: new.region_id.clone(),
                revision,
            }),
        );
        Ok(())
    }

    async fn update_signal(
        &mut self,
        signal_id: SignalId,
        revision: Revision,
        signal: &HubSignal,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE signals SET revision = $1, organisation_name = $2, professional_id = $3, \
                 professional_name = $4, professional_email = $5, professional_phone = $6, \
                 planned_removal_date = $7, state = $8, inactive_since = $9 \
             WHERE signal_id = $10",
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
        .execute(self.conn())
        .await?;
        if let Some(Some(Known::Live {
            revision: known, ..
        })) = self.known.get_mut(&signal_id)
        {
            *known = revision;
        }
        if let Some(stored) = self.on_keys.signals.get_mut(&signal_id) {
            // Keys and registration never change; the rest is the new revision's.
            stored.signal = HubSignal {
                subject_key: stored.signal.subject_key,
                family_keys: stored.signal.family_keys.clone(),
                registered_at: stored.signal.registered_at,
                ..signal.clone()
            };
        }
        Ok(())
    }

    async fn expire_signal(
        &mut self,
        signal_id: SignalId,
        inactive_since: Date,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE signals SET state = 'inactive', inactive_since = $1 WHERE signal_id = $2",
        )
        .bind(inactive_since.to_string())
        .bind(signal_id.to_string())
        .execute(self.conn())
        .await?;
        if let Some(stored) = self.on_keys.signals.get_mut(&signal_id) {
            stored.signal.state = crate::domain::SignalState::Inactive;
            stored.signal.inactive_since = Some(inactive_since);
        }
        Ok(())
    }

    async fn delete_signal_row(&mut self, signal_id: SignalId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM signals WHERE signal_id = $1")
            .bind(signal_id.to_string())
            .execute(self.conn())
            .await?;
        self.known.insert(signal_id, None);
        self.on_keys.remove(signal_id);
        Ok(())
    }

    async fn insert_tombstone(
        &mut self,
        signal_id: SignalId,
        region_id: &RegionId,
        revision: Revision,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO tombstones (signal_id, region_id, revision) VALUES ($1, $2, $3)")
            .bind(signal_id.to_string())
            .bind(region_id.as_str())
            .bind(revision_to_db(revision))
            .execute(self.conn())
            .await?;
        self.known.insert(
            signal_id,
            Some(Known::Tombstone {
                region_id: region_id.clone(),
            }),
        );
        Ok(())
    }

    async fn party_of(&mut self, signal_id: SignalId) -> Result<Option<Party>, StoreError> {
        sqlx::query("SELECT organisation_id, subject_key FROM signals WHERE signal_id = $1")
            .bind(signal_id.to_string())
            .fetch_optional(self.conn())
            .await?
            .map(|row| {
                Ok(Party {
                    organisation_id: parse_org(&row.text("organisation_id")?)?,
                    subject_key: parse_subject(&row.text("subject_key")?)?,
                })
            })
            .transpose()
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
        .fetch_all(self.conn())
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
        Ok(sqlx::query(
            "SELECT 1 FROM signals WHERE subject_key = $1 AND organisation_id = $2 LIMIT 1",
        )
        .bind(party.subject_key.to_stored())
        .bind(party.organisation_id.as_str())
        .fetch_optional(self.conn())
        .await?
        .is_some())
    }

    async fn candidates(
        &mut self,
        signal: &HubSignal,
        previous: &PreviousKeys,
    ) -> Result<Vec<StoredHubSignal>, StoreError> {
        if let Some(candidates) = self.on_keys.candidates(signal, previous) {
            return Ok(candidates);
        }
        let subject_keys: Vec<String> = std::iter::once(&signal.subject_key)
            .chain(&previous.subject)
            .map(SubjectKey::to_stored)
            .collect();
        let family_keys: Vec<String> = signal
            .family_keys
            .iter()
            .chain(&previous.family)
            .map(FamilyKey::to_stored)
            .collect();
        let ids: Vec<String> = sqlx::query_scalar(CANDIDATE_IDS)
            .bind(&subject_keys)
            .bind(&family_keys)
            .fetch_all(self.conn())
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query(SIGNALS_BY_ID)
            .bind(&ids)
            .fetch_all(self.conn())
            .await?
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
        let stored_keys: Vec<String> = family_keys.iter().map(FamilyKey::to_stored).collect();
        sqlx::query("UPDATE signals SET subject_key = $1 WHERE signal_id = $2")
            .bind(subject_key.to_stored())
            .bind(signal_id.to_string())
            .execute(self.conn())
            .await?;
        sqlx::query("DELETE FROM signal_family_keys WHERE signal_id = $1")
            .bind(signal_id.to_string())
            .execute(self.conn())
            .await?;
        sqlx::query(
            "INSERT INTO signal_family_keys (signal_id, family_key) \
             SELECT $1, k FROM unnest($2::text[]) AS k",
        )
        .bind(signal_id.to_string())
        .bind(&stored_keys)
        .execute(self.conn())
        .await?;
        // The read-ahead of signals by key no longer knows every signal on the new keys.
        for key in std::iter::once(subject_key.to_stored()).chain(stored_keys) {
            self.on_keys.keys.remove(&key);
        }
        if let Some(mut stored) = self.on_keys.signals.get(&signal_id).cloned() {
            self.on_keys.remove(signal_id);
            stored.signal.subject_key = *subject_key;
            stored.signal.family_keys = family_keys.to_vec();
            self.on_keys.add(stored);
        }
        Ok(())
    }

    async fn rekey_told(
        &mut self,
        organisation: &OrganisationId,
        old: &SubjectKey,
        new: &SubjectKey,
    ) -> Result<(), StoreError> {
        crate::store::postgres::rekey_told(self.conn(), organisation, old, new).await
    }

    async fn told_pairs(&mut self, party: &Party) -> Result<HashSet<ToldPair>, StoreError> {
        crate::store::postgres::told_pairs(self.conn(), party).await
    }

    async fn remember_told(&mut self, pair: &ToldPair) -> Result<(), StoreError> {
        crate::store::postgres::remember_told(self.conn(), pair).await
    }

    async fn forget_told(&mut self, party: &Party) -> Result<(), StoreError> {
        crate::store::postgres::forget_told(self.conn(), party).await
    }

    async fn insert_notice(&mut self, notice: NewNotice<'_>) -> Result<(), StoreError> {
        let plan = notice.plan;
        let shown = &notice.counterpart.signal;
        sqlx::query(
            "INSERT INTO notices (notice_id, recipient_region_id, recipient_signal_id, \
                 recipient_organisation_id, recipient_subject_key, counterpart_signal_id, \
                 counterpart_region_id, counterpart_organisation_id, counterpart_subject_key, \
                 counterpart_organisation_name, counterpart_professional_id, \
                 counterpart_professional_name, counterpart_professional_email, \
                 counterpart_professional_phone, counterpart_state, match_type, kind, found_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                     $17, $18)",
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
        .execute(self.conn())
        .await?;
        Ok(())
    }

    async fn notices_showing(&mut self, signal_id: SignalId) -> Result<Vec<LogTarget>, StoreError> {
        let rows = sqlx::query(
            "SELECT recipient_region_id, notice_id FROM notices \
             WHERE counterpart_signal_id = $1 ORDER BY found_at, notice_id",
        )
        .bind(signal_id.to_string())
        .fetch_all(self.conn())
        .await?;
        log_targets(&rows)
    }

    async fn refresh_notices_showing(&mut self, signal_id: SignalId) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE notices SET \
                 counterpart_organisation_name = s.organisation_name, \
                 counterpart_professional_id = s.professional_id, \
                 counterpart_professional_name = s.professional_name, \
                 counterpart_professional_email = s.professional_email, \
                 counterpart_professional_phone = s.professional_phone, \
                 counterpart_state = s.state \
             FROM signals s \
             WHERE s.signal_id = $1 AND notices.counterpart_signal_id = $1",
        )
        .bind(signal_id.to_string())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    async fn notices_naming(&mut self, signal_id: SignalId) -> Result<Vec<LogTarget>, StoreError> {
        let rows = sqlx::query(
            "SELECT recipient_region_id, notice_id, found_at FROM notices \
             WHERE recipient_signal_id = $1 \
             UNION \
             SELECT recipient_region_id, notice_id, found_at FROM notices \
             WHERE counterpart_signal_id = $1 \
             ORDER BY found_at, notice_id",
        )
        .bind(signal_id.to_string())
        .fetch_all(self.conn())
        .await?;
        log_targets(&rows)
    }

    async fn repoint_notices(&mut self, from: SignalId, to: SignalId) -> Result<(), StoreError> {
        let (from, to) = (from.to_string(), to.to_string());
        sqlx::query(
            "UPDATE notices SET counterpart_signal_id = s.signal_id, \
                 counterpart_organisation_name = s.organisation_name, \
                 counterpart_professional_id = s.professional_id, \
                 counterpart_professional_name = s.professional_name, \
                 counterpart_professional_email = s.professional_email, \
                 counterpart_professional_phone = s.professional_phone, \
                 counterpart_state = s.state \
             FROM signals s \
             WHERE s.signal_id = $2 AND notices.counterpart_signal_id = $1",
        )
        .bind(&from)
        .bind(&to)
        .execute(self.conn())
        .await?;
        sqlx::query("UPDATE notices SET recipient_signal_id = $2 WHERE recipient_signal_id = $1")
            .bind(&from)
            .bind(&to)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    async fn delete_notices_naming(&mut self, signal_id: SignalId) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM notices WHERE recipient_signal_id = $1 OR counterpart_signal_id = $1",
        )
        .bind(signal_id.to_string())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    async fn delete_coordination_naming(&mut self, signal_id: SignalId) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM coordination_changes WHERE by_signal_id = $1 OR other_signal_id = $1",
        )
        .bind(signal_id.to_string())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    async fn insert_coordination(
        &mut self,
        change: &CoordinationChange,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO coordination_changes (change_id, by_signal_id, other_signal_id, at, \
                 regievoerder_signal_id) VALUES ($1, $2, $3, $4, $5) \
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
        .execute(self.conn())
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn region_of(&mut self, signal_id: SignalId) -> Result<Option<RegionId>, StoreError> {
        sqlx::query_scalar::<_, String>("SELECT region_id FROM signals WHERE signal_id = $1")
            .bind(signal_id.to_string())
            .fetch_optional(self.conn())
            .await?
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
        self.log
            .entry(region_id.as_str().to_owned())
            .or_default()
            .push((kind, id.to_owned()));
        Ok(())
    }

    async fn due_for_expiry(
        &mut self,
        today: Date,
        limit: u32,
    ) -> Result<Vec<DueSignal>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            due_columns!(),
            // In index order, so even the generic plan (whatever $1 is) walks the index from
            // its start and stops at the limit.
            " FROM signals WHERE state = 'active' AND planned_removal_date <= $1 \
             ORDER BY planned_removal_date LIMIT $2"
        ))
        .bind(today.to_string())
        .bind(i64::from(limit))
        .fetch_all(self.conn())
        .await?
        .iter()
        .map(due_signal)
        .collect()
    }

    async fn due_for_purge(
        &mut self,
        cutoff: Date,
        limit: u32,
    ) -> Result<Vec<DueSignal>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            due_columns!(),
            " FROM signals WHERE state = 'inactive' AND inactive_since <= $1 \
             ORDER BY inactive_since LIMIT $2"
        ))
        .bind(cutoff.to_string())
        .bind(i64::from(limit))
        .fetch_all(self.conn())
        .await?
        .iter()
        .map(due_signal)
        .collect()
    }

    async fn due_signal(&mut self, signal_id: SignalId) -> Result<Option<DueSignal>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            due_columns!(),
            " FROM signals WHERE signal_id = $1"
        ))
        .bind(signal_id.to_string())
        .fetch_optional(self.conn())
        .await?
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
        sqlx::query(
            "INSERT INTO region_cursors (region_id, acked_cursor, noted_cursor, noted_at) \
             VALUES ($1, $2, 0, $3) \
             ON CONFLICT (region_id) DO UPDATE \
             SET acked_cursor = GREATEST(region_cursors.acked_cursor, EXCLUDED.acked_cursor)",
        )
        .bind(region_id.as_str())
        .bind(cursor_to_db(cursor)?)
        .bind(now.as_microsecond())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    async fn acks_noted_before(
        &mut self,
        noted_before: Timestamp,
    ) -> Result<Vec<NotedAck>, StoreError> {
        sqlx::query("SELECT region_id, noted_cursor FROM region_cursors WHERE noted_at <= $1")
            .bind(noted_before.as_microsecond())
            .fetch_all(self.conn())
            .await?
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
        sqlx::query(
            "DELETE FROM adoptions WHERE adoption_id IN (SELECT notice_id FROM region_log \
             WHERE region_id = $1 AND cursor <= $2 AND entry = 'adoption')",
        )
        .bind(region_id.as_str())
        .bind(cursor_to_db(through)?)
        .execute(self.conn())
        .await?;
        Ok(
            sqlx::query("DELETE FROM region_log WHERE region_id = $1 AND cursor <= $2")
                .bind(region_id.as_str())
                .bind(cursor_to_db(through)?)
                .execute(self.conn())
                .await?
                .rows_affected(),
        )
    }

    async fn note_ack(&mut self, region_id: &RegionId, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE region_cursors SET noted_cursor = acked_cursor, noted_at = $1 \
             WHERE region_id = $2",
        )
        .bind(now.as_microsecond())
        .bind(region_id.as_str())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    async fn audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.audit.push(entry.clone());
        Ok(())
    }

    async fn hub_signal(
        &mut self,
        signal_id: SignalId,
    ) -> Result<Option<(StoredHubSignal, Revision)>, StoreError> {
        sqlx::query(SIGNALS_BY_ID)
            .bind(vec![signal_id.to_string()])
            .fetch_optional(self.conn())
            .await?
            .map(|row| Ok((stored_signal(&row)?, parse_revision(row.int("revision")?)?)))
            .transpose()
    }

    async fn lock_log_end(&mut self, region_id: &RegionId) -> Result<Option<u64>, StoreError> {
        // The head's row, locked until this transaction ends: another instance's entries for
        // this region wait (see migration 0001, region_heads).
        sqlx::query_scalar::<_, i64>(
            "SELECT last_cursor FROM region_heads WHERE region_id = $1 FOR UPDATE",
        )
        .bind(region_id.as_str())
        .fetch_optional(self.conn())
        .await?
        .map(parse_cursor)
        .transpose()
    }

    async fn move_signal(
        &mut self,
        signal_id: SignalId,
        successor: &RegionId,
    ) -> Result<(), StoreError> {
        let id = signal_id.to_string();
        for statement in [
            "UPDATE signals SET region_id = $1 WHERE signal_id = $2",
            "UPDATE notices SET recipient_region_id = $1 WHERE recipient_signal_id = $2",
            "UPDATE notices SET counterpart_region_id = $1 WHERE counterpart_signal_id = $2",
        ] {
            sqlx::query(statement)
                .bind(successor.as_str())
                .bind(&id)
                .execute(self.conn())
                .await?;
        }
        self.known.remove(&signal_id);
        Ok(())
    }

    async fn insert_adoption(
        &mut self,
        adoption_id: &str,
        adoption: &LoggedAdoption,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO adoptions (adoption_id, signal_id, revision, from_region_id, \
                 sealed_record, told_pairs) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(adoption_id)
        .bind(adoption.signal_id.to_string())
        .bind(revision_to_db(adoption.revision))
        .bind(adoption.from_region_id.as_str())
        .bind(&adoption.sealed_record)
        .bind(told_pairs_to_text(&adoption.told_pairs))
        .execute(self.conn())
        .await?;
        Ok(())
    }
}
