//! The bulk pre-fill: rows written straight into a node's SQLite file with rusqlite before the
//! node process starts on it, so a database of 2,100,000 signals is ready in minutes, not hours.
//! The schema is the node's own (its store opened the file once and ran the migrations); every
//! row is what `register` (region) or `insert_signal`/`bind_organisation` (hub) would have
//! written, parseable by the node. This is a benchmark's pre-fill, not acknowledged writes:
//! the load runs with `synchronous=OFF` and its rate is reported as a bulk-load rate only.
//!
//! Not written by the bulk load: notices and told pairs between bulk rows, audit entries of
//! their registrations, outbox rows (the old pre-fill drained the outbox anyway). The measured
//! phases then match new signals against the bulk rows as usual.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp, ToSpan};
use rusqlite::{Connection, params};
use vix_node::domain::{FamilyKey, KeyVersion, SignalId, SubjectKey};

/// Rows per transaction.
const CHUNK: u64 = 50_000;
/// Active signals per 2.1 of the live set (DOMAIN.md section 10: 0.6 M active, 1.5 M inactive).
const ACTIVE_SHARE: f64 = 0.6 / 2.1;
/// Per cent of signals on a youth some other professional already has a signal on.
const SAME_YOUTH_PERCENT: u32 = 10;
/// Per cent of new youths who are a sibling of a recent youth with parents (share its keys).
const SIBLING_PERCENT: u32 = 20;
/// Recent youths kept for the two above.
const RECENT: usize = 4096;

/// How the databases are pre-filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PrefillMode {
    /// Rows written with rusqlite into the node's schema before it starts (not acknowledged).
    Bulk,
    /// Through the node's own paths: the region store's `register`, `SubmitSignals` at the hub.
    Store,
}

/// What a bulk load wrote and how fast.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct BulkFill {
    pub(crate) signals: u64,
    pub(crate) active: u64,
    pub(crate) inactive: u64,
    pub(crate) family_key_rows: u64,
    /// Rows of every table, signals included.
    pub(crate) rows: u64,
    /// Inserting the rows, rebuilding the indexes and the final checkpoint.
    pub(crate) seconds: f64,
    pub(crate) signals_per_s: f64,
    pub(crate) rows_per_s: f64,
    pub(crate) index_seconds: f64,
}

impl BulkFill {
    fn finish(mut self, started: Instant) -> Self {
        self.seconds = started.elapsed().as_secs_f64();
        self.signals_per_s = self.signals as f64 / self.seconds.max(1e-9);
        self.rows_per_s = self.rows as f64 / self.seconds.max(1e-9);
        self
    }
}

/// An organisation as the bulk rows name it.
#[derive(Debug, Clone)]
pub(crate) struct Org {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) region: String,
}

/// The organisations of the dev PKI (three regions, two each).
pub(crate) fn dev_orgs() -> Vec<Org> {
    vix_certs_dev::DevPkiSpec::default()
        .organisations
        .into_iter()
        .map(|o| Org {
            id: o.id,
            name: o.name,
            region: o.region,
        })
        .collect()
}

/// Opens a database the node's store has created, for the load only: WAL as the node keeps it,
/// `synchronous=OFF` (a bench's pre-fill, not an acknowledged write: a crash just means a new
/// run) and a big page cache.
fn open(database: &Path) -> anyhow::Result<Connection> {
    let conn =
        Connection::open(database).with_context(|| format!("opening {}", database.display()))?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-1000000; \
         PRAGMA temp_store=MEMORY; PRAGMA foreign_keys=OFF;",
    )?;
    Ok(conn)
}

/// Drops the secondary indexes of `tables` (those the migrations made), to build them once by
/// sorting after the load instead of growing them row by row; returns their `CREATE` statements.
fn drop_indexes(conn: &Connection, tables: &[&str]) -> anyhow::Result<Vec<(String, String)>> {
    let mut indexes = Vec::new();
    let mut statement = conn.prepare(
        "SELECT name, sql FROM sqlite_master \
         WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
    )?;
    for table in tables {
        let rows = statement.query_map([table], |row| Ok((row.get(0)?, row.get(1)?)))?;
        for row in rows {
            indexes.push(row?);
        }
    }
    drop(statement);
    for (name, _) in &indexes {
        conn.execute_batch(&format!("DROP INDEX \"{name}\""))?;
    }
    Ok(indexes)
}

fn recreate_indexes(conn: &Connection, indexes: &[(String, String)]) -> anyhow::Result<f64> {
    let started = Instant::now();
    for (name, sql) in indexes {
        conn.execute_batch(sql)
            .with_context(|| format!("recreating index {name}"))?;
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(started.elapsed().as_secs_f64())
}

/// One signal's dates: registered at, planned removal date R, and for an inactive (expired)
/// one its inactive-since date (= R). Active: registered in the last 360 days, R a year after
/// (in the future). Inactive: expired 2 to 1,800 days ago, so the 5-year archive has not ended.
struct Dates {
    registered_at: Timestamp,
    registered_on: Date,
    removal: Date,
    inactive_since: Option<Date>,
}

fn dates(now: Timestamp, active: bool) -> anyhow::Result<Dates> {
    let back_days = if active {
        fastrand::i64(0..360)
    } else {
        fastrand::i64(2..1800) + 366
    };
    let registered_at = now
        .checked_sub(SignedDuration::from_hours(24 * back_days))?
        .checked_sub(SignedDuration::from_secs(fastrand::i64(0..86_400)))?;
    let registered_on = vix_node::domain::clock::local_date(registered_at);
    let removal = registered_on.checked_add(1.year())?;
    Ok(Dates {
        registered_at,
        registered_on,
        removal,
        inactive_since: (!active).then_some(removal),
    })
}

/// Youths and their parents' keys: a share of the signals is on a youth some other professional
/// already has (several professionals on one youth), a share of new youths are siblings of a
/// recent one (its family keys), the rest are new youths with 0-2 parents.
struct Youths<F: FnMut(u8) -> [u8; 32]> {
    version: KeyVersion,
    digest: F,
    /// Recent youths: subject key, family keys, and the organisation that registered them.
    recent: Vec<(String, Vec<String>, usize)>,
}

impl<F: FnMut(u8) -> [u8; 32]> Youths<F> {
    fn new(digest: F) -> anyhow::Result<Self> {
        Ok(Self {
            version: KeyVersion::new(1)?,
            digest,
            recent: Vec::with_capacity(RECENT),
        })
    }

    /// A subject key and its family keys, as `to_stored()` writes them, for a signal of
    /// organisation `org` (never on a youth `org` itself registered recently).
    fn next(&mut self, org: usize) -> (String, Vec<String>) {
        if !self.recent.is_empty() && fastrand::u32(0..100) < SAME_YOUTH_PERCENT {
            let (subject, family, by) = &self.recent[fastrand::usize(..self.recent.len())];
            if *by != org {
                return (subject.clone(), family.clone());
            }
        }
        let subject = SubjectKey::new(self.version, (self.digest)(0x51)).to_stored();
        let with_parents: Vec<usize> = (0..self.recent.len().min(8))
            .map(|_| fastrand::usize(..self.recent.len()))
            .filter(|&i| !self.recent[i].1.is_empty())
            .collect();
        let family = match with_parents.first() {
            Some(&i) if fastrand::u32(0..100) < SIBLING_PERCENT => {
                let mut keys = self.recent[i].1.clone();
                // A half-sibling shares one parent.
                if keys.len() == 2 && fastrand::bool() {
                    keys.truncate(1);
                }
                keys
            }
            _ => {
                let mut keys: Vec<String> = (0..fastrand::usize(0..=2))
                    .map(|_| FamilyKey::new(self.version, (self.digest)(0xfa)).to_stored())
                    .collect();
                keys.sort_unstable();
                keys.dedup();
                keys
            }
        };
        let youth = (subject.clone(), family.clone(), org);
        if self.recent.len() < RECENT {
            self.recent.push(youth);
        } else {
            let slot = fastrand::usize(..RECENT);
            self.recent[slot] = youth;
        }
        (subject, family)
    }
}

/// What the region bulk load leaves for the measured phases.
#[derive(Debug, Default)]
pub(crate) struct RegionSample {
    /// Ids of `sample_org`'s bulk signals, spread over the whole load.
    pub(crate) signals: Vec<String>,
}

/// Writes `count` signals of `orgs` (alternating) into the region database at `database`,
/// whose schema the node's store has created. Keeps up to `sample_max` ids of `sample_org`'s.
pub(crate) fn region(
    database: &Path,
    orgs: &[Org],
    count: u64,
    sample_org: &str,
    sample_max: usize,
) -> anyhow::Result<(BulkFill, RegionSample)> {
    let started = Instant::now();
    let mut conn = open(database)?;
    let indexes = drop_indexes(&conn, &["signals", "signal_family_keys"])?;
    let now = crate::region::now();
    let mut youths = Youths::new(|_| crate::region::random_digest())?;
    let mut fill = BulkFill::default();
    let mut sample = RegionSample::default();
    // Keep every `stride`-th sample signal, so the sample spans the table.
    let stride = (count / 2 / sample_max.max(1) as u64).max(1);
    let mut seen_sample_org = 0u64;
    let mut written = 0u64;
    while written < count {
        let chunk = CHUNK.min(count - written);
        let tx = conn.transaction()?;
        {
            let mut signal = tx.prepare_cached(
                "INSERT INTO signals (signal_id, revision, organisation_id, organisation_name, \
                     professional_id, professional_name, professional_email, \
                     professional_phone, subject_key, birth_date, registered_at, \
                     planned_removal_date, state, inactive_since, informing, informed_parents, \
                     informed_youth, informed_on, not_informed_reason, request_key, \
                     request_fingerprint) \
                 VALUES (?, 1, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?;
            let mut family = tx.prepare_cached(
                "INSERT OR IGNORE INTO signal_family_keys (signal_id, family_key) VALUES (?, ?)",
            )?;
            for n in written..written + chunk {
                let org_index = (n % orgs.len() as u64) as usize;
                let org = &orgs[org_index];
                let active = fastrand::f64() < ACTIVE_SHARE;
                let dates = dates(now, active)?;
                let (subject, family_keys) = youths.next(org_index);
                // Born up to 15 years before the registration: the 23rd birthday is years away.
                let birth = dates
                    .registered_on
                    .checked_sub(i64::from(fastrand::u16(0..15 * 365)).days())?;
                let informed = fastrand::u32(0..10) != 0;
                let signal_id = SignalId::generate().to_string();
                let professional = format!("p{}", fastrand::u8(1..=20));
                signal.execute(params![
                    signal_id,
                    org.id,
                    org.name,
                    professional,
                    "A. Bench",
                    format!("{professional}@{}.example.nl", org.id),
                    subject,
                    birth.to_string(),
                    dates.registered_at.as_microsecond(),
                    dates.removal.to_string(),
                    if active { "active" } else { "inactive" },
                    dates.inactive_since.map(|d| d.to_string()),
                    if informed { "informed" } else { "not_informed" },
                    informed,
                    false,
                    informed.then(|| dates.registered_on.to_string()),
                    (!informed).then_some("youth_safety"),
                    hex::encode(crate::region::random_digest()),
                    hex::encode(crate::region::random_digest()),
                ])?;
                for key in &family_keys {
                    fill.family_key_rows += family.execute(params![signal_id, key])? as u64;
                }
                if active {
                    fill.active += 1;
                } else {
                    fill.inactive += 1;
                }
                if org.id == sample_org {
                    if seen_sample_org.is_multiple_of(stride) && sample.signals.len() < sample_max {
                        sample.signals.push(signal_id);
                    }
                    seen_sample_org += 1;
                }
            }
        }
        tx.commit()?;
        written += chunk;
    }
    fill.signals = count;
    fill.rows = fill.signals + fill.family_key_rows;
    fill.index_seconds = recreate_indexes(&conn, &indexes)?;
    conn.close().map_err(|(_, error)| error)?;
    Ok((fill.finish(started), sample))
}

/// Writes `count` signals spread over `orgs` (and so over their regions) into the hub database
/// at `database`, whose schema the hub's store has created (the organisations' regions come
/// from the registry the hub loads). `digest(kind)` makes the key digests (the ingest's maker,
/// so the measured ingest finds matches among these signals).
pub(crate) fn hub(
    database: &Path,
    orgs: &[Org],
    count: u64,
    digest: impl FnMut(u8) -> [u8; 32],
) -> anyhow::Result<BulkFill> {
    let started = Instant::now();
    let mut conn = open(database)?;
    let mut fill = BulkFill::default();
    let indexes = drop_indexes(&conn, &["signals", "signal_family_keys"])?;
    let now = crate::region::now();
    let mut youths = Youths::new(digest)?;
    let mut written = 0u64;
    while written < count {
        let chunk = CHUNK.min(count - written);
        let tx = conn.transaction()?;
        {
            let mut signal = tx.prepare_cached(
                "INSERT INTO signals (signal_id, region_id, revision, organisation_id, \
                     organisation_name, professional_id, professional_name, professional_email, \
                     professional_phone, subject_key, registered_at, planned_removal_date, \
                     state, inactive_since) \
                 VALUES (?, ?, 1, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)",
            )?;
            let mut family = tx.prepare_cached(
                "INSERT OR IGNORE INTO signal_family_keys (signal_id, family_key) VALUES (?, ?)",
            )?;
            for _ in 0..chunk {
                let org_index = fastrand::usize(..orgs.len());
                let org = &orgs[org_index];
                let active = fastrand::f64() < ACTIVE_SHARE;
                let dates = dates(now, active)?;
                let (subject, family_keys) = youths.next(org_index);
                let signal_id = SignalId::generate().to_string();
                let professional = format!("p{}", fastrand::u8(1..=20));
                signal.execute(params![
                    signal_id,
                    org.region,
                    org.id,
                    org.name,
                    professional,
                    "A. Bench",
                    format!("{professional}@{}.example.nl", org.id),
                    subject,
                    dates.registered_at.as_microsecond(),
                    dates.removal.to_string(),
                    if active { "active" } else { "inactive" },
                    dates.inactive_since.map(|d| d.to_string()),
                ])?;
                for key in &family_keys {
                    fill.family_key_rows += family.execute(params![signal_id, key])? as u64;
                }
                if active {
                    fill.active += 1;
                } else {
                    fill.inactive += 1;
                }
            }
        }
        tx.commit()?;
        written += chunk;
    }
    fill.signals = count;
    fill.rows += fill.signals + fill.family_key_rows;
    fill.index_seconds = recreate_indexes(&conn, &indexes)?;
    conn.close().map_err(|(_, error)| error)?;
    Ok(fill.finish(started))
}
