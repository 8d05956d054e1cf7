//! A region node's PostgreSQL store, for suppliers who run their node on PostgreSQL, with one
//! or more node instances on one database. What is decided is in [`super::region::rules`], as
//! for SQLite; this module runs those rules in PostgreSQL transactions ([`tx`]) and reads.
//!
//! Writes take one lock for the node's database (see [`tx::PgRegionTx`]), so they run one at a
//! time as on SQLite, whichever instance takes them; reads run side by side.

use crate::store::region::decommission::{self, HandoverPage};
use crate::store::region::handover::Adoption;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool};

use self::tx::PgRegionTx;
use super::audit::AuditVerifyError;
use super::dead_letter::{DeadLetter, Retried};
use super::hub::{LogEntry, LoggedNotice};
use super::postgres::PgSettings;
use super::region::rows::{
    dead_letter_from_row, log_position, match_view, outbox_entry, parse_family_keys,
    queued_coordination, signal_from_row,
};
use super::region::rules;
use super::region::tx::RegionTx;
use super::row::parse_signal_id;
use super::{
    Acting, ClaimedEmail, HubLogApplied, LogPosition, MatchPage, MatchView, NewSignal,
    NoticeDelivery, OutboxEntry, Registered, SignalPage, SignalStore, SignalUpdate, StoreError,
    StoredSignal, SweepReport, Withdrawn,
};
use crate::domain::audit::{Actor, AuditAction, AuditEntry};
use crate::domain::coordination::{CoordinationAction, CoordinationChange};
use crate::domain::{LiveKeys, OrganisationId, RegionId, SignalId, SubjectKey, WithdrawReason};

mod tx;

/// The columns of a signal row, in the order the statements bind them.
macro_rules! signal_columns {
    () => {
        "signal_id, revision, organisation_id, organisation_name, professional_id, \
         professional_name, professional_email, professional_phone, subject_key, birth_date, \
         registered_at, planned_removal_date, state, inactive_since, informing, \
         informed_parents, informed_youth, informed_on, not_informed_reason"
    };
}
pub(crate) use signal_columns;

/// A notice with its counterpart as it stands and the pair's coordination; callers add the
/// WHERE and ORDER BY.
const MATCH_VIEW_SELECT: &str = "SELECT n.notice_id, n.match_type, n.kind, \
        n.recipient_signal_id, n.found_at, n.counterpart_signal_id, \
        n.counterpart_organisation_id, n.counterpart_region_id, \
        COALESCE(c.organisation_name, n.counterpart_organisation_name) AS organisation_name, \
        COALESCE(c.professional_id, n.counterpart_professional_id) AS professional_id, \
        COALESCE(c.professional_name, n.counterpart_professional_name) AS professional_name, \
        COALESCE(c.professional_email, n.counterpart_professional_email) \
            AS professional_email, \
        CASE WHEN c.signal_id IS NULL THEN n.counterpart_professional_phone \
             ELSE c.professional_phone END AS professional_phone, \
        COALESCE(c.state, n.counterpart_state) AS state, \
        k.regievoerder_signal_id, k.regievoerder_at, k.regievoerder_change_id, \
        k.afgestemd_low, k.afgestemd_high \
    FROM notices n LEFT JOIN signals c \
         ON n.source = 'node' AND c.signal_id = n.counterpart_signal_id \
    LEFT JOIN coordination k \
         ON k.signal_low = LEAST(n.recipient_signal_id, n.counterpart_signal_id) \
        AND k.signal_high = GREATEST(n.recipient_signal_id, n.counterpart_signal_id)";

pub struct PgRegionStore {
    pool: PgPool,
    /// Every signal on this node belongs to this region.
    region_id: RegionId,
}

impl PgRegionStore {
    /// Connects to the database at `url` (`postgres://…`) and brings its schema up to date.
    pub async fn open(
        url: &str,
        region_id: RegionId,
        settings: PgSettings,
    ) -> Result<Self, StoreError> {
        Self::open_with(PgConnectOptions::from_str(url)?, region_id, settings).await
    }

    /// As [`Self::open`], from parsed options (tests set a schema of their own this way).
    pub async fn open_with(
        options: PgConnectOptions,
        region_id: RegionId,
        settings: PgSettings,
    ) -> Result<Self, StoreError> {
        let pool = super::postgres::connect(options, &settings).await?;
        // sqlx's migrator holds an advisory lock while it runs, so instances starting together
        // migrate once.
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool, region_id })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Gathers the planner's statistics of the region's tables every hour until `stopping`
    /// turns true (see [`super::postgres::maintain`]).
    pub async fn maintain(&self, stopping: tokio::sync::watch::Receiver<bool>) {
        super::postgres::maintain(
            &self.pool,
            "ANALYZE signals, signal_family_keys, notices, told_pairs, email_jobs, coordination, \
             deceased, dead_letters",
            stopping,
        )
        .await;
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin(&self) -> Result<PgRegionTx, StoreError> {
        Ok(PgRegionTx::new(self.pool.begin().await?, &self.region_id))
    }

    /// Rows per table: for tests that check that a refused request changed nothing.
    pub async fn row_counts(
        &self,
    ) -> Result<std::collections::HashMap<&'static str, i64>, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM signals) AS signals, \
                    (SELECT COUNT(*) FROM signal_family_keys) AS signal_family_keys, \
                    (SELECT COUNT(*) FROM notices) AS notices, \
                    (SELECT COUNT(*) FROM email_jobs) AS email_jobs, \
                    (SELECT COUNT(*) FROM outbox) AS outbox, \
                    (SELECT COUNT(*) FROM told_pairs) AS told_pairs, \
                    (SELECT COUNT(*) FROM coordination) AS coordination",
        )
        .fetch_one(&self.pool)
        .await?;
        let mut counts = std::collections::HashMap::new();
        for table in [
            "signals",
            "signal_family_keys",
            "notices",
            "email_jobs",
            "outbox",
            "told_pairs",
            "coordination",
        ] {
            counts.insert(table, row.try_get::<i64, _>(table)?);
        }
        Ok(counts)
    }
}

impl SignalStore for PgRegionStore {
    async fn register(&self, new: NewSignal) -> Result<Registered, StoreError> {
        let mut tx = self.begin().await?;
        let registered = rules::register(&mut tx, new, &self.region_id).await?;
        tx.commit().await?;
        Ok(registered)
    }

    async fn signal(&self, signal_id: SignalId) -> Result<Option<StoredSignal>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load_signal_on(&mut conn, signal_id).await
    }

    async fn matches(
        &self,
        organisation_id: &OrganisationId,
        signal_id: Option<SignalId>,
        page: MatchPage,
    ) -> Result<Vec<MatchView>, StoreError> {
        let (found_at, notice_id) = match &page.after {
            Some(after) => (after.found_at.as_microsecond(), after.notice_id.clone()),
            None => (i64::MIN, String::new()),
        };
        // Two statements, each a range of its own index (as on SQLite).
        let sql = match signal_id {
            None => sqlx::AssertSqlSafe(format!(
                "{MATCH_VIEW_SELECT} WHERE n.recipient_organisation_id = $1 \
                 AND (n.found_at, n.notice_id) > ($2, $3) \
                 ORDER BY n.found_at, n.notice_id LIMIT $4"
            )),
            Some(_) => sqlx::AssertSqlSafe(format!(
                "{MATCH_VIEW_SELECT} WHERE n.recipient_signal_id = $5 \
                 AND n.recipient_organisation_id = $1 \
                 AND (n.found_at, n.notice_id) > ($2, $3) \
                 ORDER BY n.found_at, n.notice_id LIMIT $4"
            )),
        };
        let mut query = sqlx::query(sql)
            .bind(organisation_id.as_str())
            .bind(found_at)
            .bind(notice_id)
            .bind(i64::from(page.limit));
        if let Some(signal_id) = signal_id {
            query = query.bind(signal_id.to_string());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(match_view).collect()
    }

    async fn withdraw(
        &self,
        acting: &Acting,
        signal_id: SignalId,
        reason: WithdrawReason,
        now: Timestamp,
    ) -> Result<Withdrawn, StoreError> {
        let mut tx = self.begin().await?;
        let withdrawn = rules::withdraw(&mut tx, acting, signal_id, reason, now).await?;
        tx.commit().await?;
        Ok(withdrawn)
    }

    async fn update(
        &self,
        acting: &Acting,
        signal_id: SignalId,
        update: SignalUpdate,
        now: Timestamp,
    ) -> Result<StoredSignal, StoreError> {
        let mut tx = self.begin().await?;
        let updated = rules::update(&mut tx, acting, signal_id, update, now).await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn record_death(
        &self,
        subject_keys: &LiveKeys<SubjectKey>,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        let mut tx = self.begin().await?;
        let deleted = rules::record_death(&mut tx, subject_keys, now).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn coordinate(
        &self,
        acting: &Acting,
        notice_id: &str,
        action: CoordinationAction,
        now: Timestamp,
    ) -> Result<MatchView, StoreError> {
        let mut tx = self.begin().await?;
        let change = rules::coordinate(&mut tx, acting, notice_id, action, now).await?;
        tx.commit().await?;
        self.matches(
            &acting.organisation_id,
            Some(change.by_signal),
            MatchPage::all(),
        )
        .await?
        .into_iter()
        .find(|view| view.notice_id == notice_id)
        .ok_or(StoreError::NoSuchMatch)
    }

    async fn coordination_outbox_batch(
        &self,
        limit: u32,
    ) -> Result<Vec<(i64, CoordinationChange)>, StoreError> {
        let rows = sqlx::query("SELECT seq, change FROM coordination_outbox ORDER BY seq LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(queued_coordination).collect()
    }

    async fn coordination_outbox_remove(&self, seqs: Vec<i64>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.lock_writes().await?;
        tx.remove_coordination_outbox(&seqs).await?;
        tx.commit().await
    }

    async fn signals_of_subject(
        &self,
        subject_keys: &LiveKeys<SubjectKey>,
        page: SignalPage,
    ) -> Result<Vec<StoredSignal>, StoreError> {
        let (registered_at, signal_id) = match &page.after {
            Some(after) => (
                after.registered_at.as_microsecond(),
                after.signal_id.to_string(),
            ),
            None => (i64::MIN, String::new()),
        };
        let padded = subject_keys.padded();
        let mut conn = self.pool.acquire().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT signal_id FROM signals WHERE subject_key IN ($1, $2, $3) \
             AND (registered_at, signal_id) > ($4, $5) \
             ORDER BY registered_at, signal_id LIMIT $6",
        )
        .bind(padded[0].to_stored())
        .bind(padded[1].to_stored())
        .bind(padded[2].to_stored())
        .bind(registered_at)
        .bind(signal_id)
        .bind(i64::from(page.limit))
        .fetch_all(&mut *conn)
        .await?;
        let mut signals = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(signal) = load_signal_on(&mut conn, parse_signal_id(&id)?).await? {
                signals.push(signal);
            }
        }
        Ok(signals)
    }

    async fn correct(
        &self,
        subject_keys: &LiveKeys<SubjectKey>,
        signal_id: SignalId,
        correction: SignalUpdate,
        actor: &Actor,
        reference: &str,
        now: Timestamp,
    ) -> Result<StoredSignal, StoreError> {
        let mut tx = self.begin().await?;
        let corrected = rules::correct(
            &mut tx,
            subject_keys,
            signal_id,
            correction,
            actor,
            reference,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(corrected)
    }

    async fn erase(
        &self,
        subject_keys: &LiveKeys<SubjectKey>,
        only: &[SignalId],
        actor: &Actor,
        reference: &str,
        now: Timestamp,
    ) -> Result<Vec<SignalId>, StoreError> {
        let mut tx = self.begin().await?;
        let erased = rules::erase(&mut tx, subject_keys, only, actor, reference, now).await?;
        tx.commit().await?;
        Ok(erased)
    }

    async fn record_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.audit(&entry).await?;
        tx.commit().await
    }

    async fn record_lookup(
        &self,
        acting: &Acting,
        signal_ids: Vec<SignalId>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.record_audit(AuditEntry {
            at: now,
            action: AuditAction::ContactLookup,
            actor: acting.actor(),
            signal_ids,
            detail: None,
        })
        .await
    }

    async fn verify_audit(&self) -> Result<u64, AuditVerifyError> {
        super::postgres::verify_audit(&self.pool).await
    }

    async fn outbox_len(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(&self.pool)
            .await?;
        u64::try_from(count).map_err(|_| StoreError::Corrupt("outbox"))
    }

    async fn outbox_batch(&self, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        // Events held behind a dead letter stay in the outbox and are stepped over here.
        let rows = sqlx::query(
            "SELECT seq, event FROM outbox o \
             WHERE NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.signal_id = o.signal_id) \
             ORDER BY seq LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(outbox_entry).collect()
    }

    async fn outbox_remove(&self, seqs: Vec<i64>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.lock_writes().await?;
        tx.remove_outbox(&seqs).await?;
        tx.commit().await
    }

    async fn hub_log_position(&self) -> Result<LogPosition, StoreError> {
        let row = sqlx::query("SELECT cursor, epoch FROM hub_cursor WHERE singleton = 1")
            .fetch_one(&self.pool)
            .await?;
        log_position(&row)
    }

    async fn adopt_hub_epoch(&self, epoch: String) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.lock_writes().await?;
        tx.adopt_hub_epoch(&epoch).await?;
        tx.commit().await
    }

    async fn quarantine_outbox(
        &self,
        seq: i64,
        reason: String,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        tx.lock_writes().await?;
        let moved = tx.quarantine_outbox(seq, &reason, now).await?;
        tx.commit().await?;
        Ok(moved)
    }

    async fn quarantine_coordination(
        &self,
        seq: i64,
        reason: String,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        tx.lock_writes().await?;
        let moved = tx.quarantine_coordination(seq, &reason, now).await?;
        tx.commit().await?;
        Ok(moved)
    }

    async fn quarantine_hub_entry(
        &self,
        cursor: u64,
        payload: Vec<u8>,
        reason: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        rules::quarantine_hub_entry(&mut tx, cursor, &payload, &reason, now).await?;
        tx.commit().await
    }

    async fn dead_letters(&self, after_id: i64, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query("SELECT * FROM dead_letters WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(dead_letter_from_row).collect()
    }

    async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters")
            .fetch_one(&self.pool)
            .await?;
        u64::try_from(count).map_err(|_| StoreError::Corrupt("dead_letters"))
    }

    async fn retry_dead_letter(&self, id: i64) -> Result<Retried, StoreError> {
        let mut tx = self.begin().await?;
        let retried = rules::retry_dead_letter(&mut tx, id).await?;
        tx.commit().await?;
        Ok(retried)
    }

    async fn remove_dead_letter(&self, id: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.lock_writes().await?;
        tx.remove_dead_letter(id).await?;
        tx.commit().await
    }

    async fn store_hub_notice(
        &self,
        notice: LoggedNotice,
        now: Timestamp,
    ) -> Result<NoticeDelivery, StoreError> {
        let mut tx = self.begin().await?;
        let delivery = rules::store_hub_notice(&mut tx, notice, now).await?;
        tx.commit().await?;
        Ok(delivery)
    }

    async fn sweep(&self, today: Date, limit: u32) -> Result<SweepReport, StoreError> {
        let mut tx = self.begin().await?;
        let report = rules::sweep(&mut tx, today, limit).await?;
        tx.commit().await?;
        Ok(report)
    }

    async fn claim_emails(
        &self,
        now: Timestamp,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedEmail>, StoreError> {
        let mut tx = self.begin().await?;
        let claimed = rules::claim_emails(&mut tx, now, lease, limit).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn email_sent(
        &self,
        notice_id: &str,
        recipient: &Acting,
        signal_ids: Vec<SignalId>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let marked = rules::email_sent(&mut tx, notice_id, recipient, signal_ids, now).await?;
        tx.commit().await?;
        Ok(marked)
    }

    async fn email_retry(&self, notice_id: &str, at: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.lock_writes().await?;
        tx.reschedule_email(notice_id, at).await?;
        tx.commit().await
    }

    async fn email_dropped(&self, notice_id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.lock_writes().await?;
        tx.drop_email_job(notice_id).await?;
        tx.commit().await
    }

    async fn emails_pending(&self) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM email_jobs WHERE sent_at IS NULL")
                .fetch_one(&self.pool)
                .await?;
        u64::try_from(count).map_err(|_| StoreError::Corrupt("email_jobs"))
    }

    async fn gauges(&self) -> Result<super::StoreGauges, StoreError> {
        let row = sqlx::query(super::region::GAUGES_SELECT)
            .fetch_one(&self.pool)
            .await?;
        super::region::rows::gauges_from_row(&row)
    }

    async fn store_hub_log(
        &self,
        entries: Vec<LogEntry>,
        now: Timestamp,
    ) -> Result<Vec<HubLogApplied>, StoreError> {
        let mut tx = self.begin().await?;
        let applied = rules::store_hub_log(&mut tx, entries, now).await?;
        tx.commit().await?;
        Ok(applied)
    }
    async fn handover_page(
        &self,
        after: Option<SignalId>,
        limit: u32,
    ) -> Result<HandoverPage, StoreError> {
        let mut tx = self.begin().await?;
        let page = decommission::handover_page(&mut tx, after, limit).await?;
        tx.commit().await?;
        Ok(page)
    }

    async fn handed_over(
        &self,
        signal_ids: Vec<SignalId>,
        successor: RegionId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        decommission::handed_over(&mut tx, &signal_ids, &successor, now).await?;
        tx.commit().await
    }

    async fn purge_page(&self, limit: u32, now: Timestamp) -> Result<u32, StoreError> {
        let mut tx = self.begin().await?;
        let purged = decommission::purge_page(&mut tx, limit, now).await?;
        tx.commit().await?;
        Ok(purged)
    }

    async fn adopt(
        &self,
        cursor: u64,
        adoption: Adoption,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let adopted = decommission::adopt(&mut tx, cursor, adoption, now).await?;
        tx.commit().await?;
        Ok(adopted)
    }
}

/// Family keys of a signal, read on `conn`.
async fn family_keys(
    conn: &mut sqlx::PgConnection,
    signal_id: SignalId,
) -> Result<Vec<crate::domain::FamilyKey>, StoreError> {
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT family_key FROM signal_family_keys WHERE signal_id = $1 ORDER BY family_key",
    )
    .bind(signal_id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    parse_family_keys(&keys)
}

/// One signal with its family keys, read on `conn`.
pub(super) async fn load_signal_on(
    conn: &mut sqlx::PgConnection,
    signal_id: SignalId,
) -> Result<Option<StoredSignal>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        signal_columns!(),
        " FROM signals WHERE signal_id = $1"
    ))
    .bind(signal_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let keys = family_keys(conn, signal_id).await?;
    signal_from_row(&row, keys).map(Some)
}
