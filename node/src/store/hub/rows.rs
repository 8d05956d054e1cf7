//! Reading the hub's rows back into domain types, once for both backends: their tables have the
//! same columns (text, 64-bit integers), so a row reads the same by name whichever driver
//! returned it ([`Columns`]).

use super::tx::{DueSignal, StoredHubSignal};
use super::{HubSignal, LogEntry, LogPage, LoggedAdoption, LoggedNotice};
use crate::domain::coordination::{ChangeKind, CoordinationChange};
use crate::domain::matching::{MatchType, NoticeKind, ToldPair};
use crate::domain::{FamilyKey, RegionId, Revision, SubjectKey};
use crate::store::row::{
    Columns, contact_from_row, parse_date, parse_instant, parse_org, parse_org_name,
    parse_signal_id, parse_state, parse_subject,
};
use crate::store::{CounterpartView, StoreError};

/// The columns [`log_page`] reads: each log entry with its notice or its coordination change.
/// The backends add their `WHERE … ORDER BY cursor LIMIT …` (placeholders differ).
macro_rules! log_entries_select {
    () => {
        "SELECT l.cursor, l.entry, l.notice_id AS log_notice_id, n.notice_id, n.match_type, \
                n.kind, n.recipient_signal_id, n.recipient_organisation_id, n.found_at, \
                n.counterpart_signal_id, n.counterpart_region_id, \
                n.counterpart_organisation_id, \
                n.counterpart_organisation_name AS organisation_name, \
                n.counterpart_professional_id AS professional_id, \
                n.counterpart_professional_name AS professional_name, \
                n.counterpart_professional_email AS professional_email, \
                n.counterpart_professional_phone AS professional_phone, \
                n.counterpart_state, k.by_signal_id AS k_by, \
                k.other_signal_id AS k_other, k.at AS k_at, \
                k.regievoerder_signal_id AS k_named, a.signal_id AS a_signal, \
                a.revision AS a_revision, a.from_region_id AS a_from, \
                a.sealed_record AS a_sealed, a.told_pairs AS a_pairs \
         FROM region_log l \
         LEFT JOIN notices n ON l.entry = 'notice' AND n.notice_id = l.notice_id \
         LEFT JOIN coordination_changes k \
              ON l.entry = 'coordination' AND k.change_id = l.notice_id \
         LEFT JOIN adoptions a ON l.entry = 'adoption' AND a.adoption_id = l.notice_id"
    };
}
pub(in crate::store) use log_entries_select;

pub(in crate::store) fn parse_region(stored: &str) -> Result<RegionId, StoreError> {
    RegionId::parse(stored).map_err(|_| StoreError::Corrupt("region_id"))
}

pub(in crate::store) fn parse_revision(stored: i64) -> Result<Revision, StoreError> {
    u64::try_from(stored)
        .ok()
        .and_then(Revision::new)
        .ok_or(StoreError::Corrupt("revision"))
}

pub(in crate::store) fn revision_to_db(revision: Revision) -> i64 {
    i64::try_from(revision.get()).unwrap_or(i64::MAX)
}

pub(in crate::store) fn cursor_to_db(cursor: u64) -> Result<i64, StoreError> {
    i64::try_from(cursor).map_err(|_| StoreError::Corrupt("cursor"))
}

pub(in crate::store) fn parse_cursor(stored: i64) -> Result<u64, StoreError> {
    u64::try_from(stored).map_err(|_| StoreError::Corrupt("cursor"))
}

fn opt_date(row: &impl Columns, name: &str) -> Result<Option<jiff::civil::Date>, StoreError> {
    row.opt_text(name)?.as_deref().map(parse_date).transpose()
}

/// A `signals` row with its family keys (space-separated, in column `family_keys`).
pub(in crate::store) fn stored_signal(row: &impl Columns) -> Result<StoredHubSignal, StoreError> {
    let family_keys = row
        .opt_text("family_keys")?
        .unwrap_or_default()
        .split_whitespace()
        .map(|key| FamilyKey::parse_stored(key).map_err(|_| StoreError::Corrupt("family_key")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StoredHubSignal {
        signal_id: parse_signal_id(&row.text("signal_id")?)?,
        region_id: parse_region(&row.text("region_id")?)?,
        signal: HubSignal {
            organisation_id: parse_org(&row.text("organisation_id")?)?,
            organisation_name: parse_org_name(&row.text("organisation_name")?)?,
            contact: contact_from_row(row)?,
            subject_key: parse_subject(&row.text("subject_key")?)?,
            family_keys,
            registered_at: parse_instant(row.int("registered_at")?)?,
            planned_removal_date: parse_date(&row.text("planned_removal_date")?)?,
            state: parse_state(&row.text("state")?)?,
            inactive_since: opt_date(row, "inactive_since")?,
        },
    })
}

/// The lifecycle columns of a `signals` row.
pub(in crate::store) fn due_signal(row: &impl Columns) -> Result<DueSignal, StoreError> {
    Ok(DueSignal {
        signal_id: parse_signal_id(&row.text("signal_id")?)?,
        region_id: parse_region(&row.text("region_id")?)?,
        revision: parse_revision(row.int("revision")?)?,
        state: parse_state(&row.text("state")?)?,
        planned_removal_date: parse_date(&row.text("planned_removal_date")?)?,
        inactive_since: opt_date(row, "inactive_since")?,
    })
}

/// A page of a region's log from its rows: each log entry joined with its notice or its
/// coordination change (the columns of the backends' `log_after` statements).
pub(in crate::store) fn log_page<R: Columns>(
    rows: &[R],
    limit: u32,
) -> Result<LogPage, StoreError> {
    let mut page = LogPage {
        full: rows.len() == limit as usize,
        ..LogPage::default()
    };
    for row in rows {
        let cursor = parse_cursor(row.int("cursor")?)?;
        page.read_through = Some(cursor);
        let entry = row.text("entry")?;
        if entry == "coordination" {
            if let Some(by) = row.opt_text("k_by")? {
                let change = CoordinationChange {
                    change_id: uuid::Uuid::try_parse(&row.text("log_notice_id")?)
                        .map_err(|_| StoreError::Corrupt("change_id"))?,
                    by_signal: parse_signal_id(&by)?,
                    other_signal: parse_signal_id(&row.text("k_other")?)?,
                    at: parse_instant(row.int("k_at")?)?,
                    kind: match row.opt_text("k_named")? {
                        Some(named) => ChangeKind::Regievoerder(parse_signal_id(&named)?),
                        None => ChangeKind::Afgestemd,
                    },
                };
                page.entries.push(LogEntry::Coordination { cursor, change });
            }
        } else if entry == "adoption" {
            if let Some(signal) = row.opt_text("a_signal")? {
                page.entries.push(LogEntry::Adoption {
                    cursor,
                    adoption: Box::new(LoggedAdoption {
                        signal_id: parse_signal_id(&signal)?,
                        revision: parse_revision(row.int("a_revision")?)?,
                        from_region_id: parse_region(&row.text("a_from")?)?,
                        sealed_record: row.blob("a_sealed")?,
                        told_pairs: parse_told_pairs(&row.text("a_pairs")?)?,
                    }),
                });
            }
        } else if entry == "retraction" {
            page.entries.push(LogEntry::Retraction {
                cursor,
                notice_id: row.text("log_notice_id")?,
            });
        } else if row.opt_text("notice_id")?.is_some() {
            page.entries
                .push(LogEntry::Notice(Box::new(logged_notice(row, cursor)?)));
        }
        // else: the notice was deleted before delivery; nothing to send.
    }
    Ok(page)
}

fn logged_notice(row: &impl Columns, cursor: u64) -> Result<LoggedNotice, StoreError> {
    Ok(LoggedNotice {
        cursor,
        notice_id: row.text("notice_id")?,
        match_type: MatchType::parse(&row.text("match_type")?)
            .ok_or(StoreError::Corrupt("match_type"))?,
        kind: NoticeKind::parse(&row.text("kind")?).ok_or(StoreError::Corrupt("kind"))?,
        recipient_signal_id: parse_signal_id(&row.text("recipient_signal_id")?)?,
        recipient_organisation_id: parse_org(&row.text("recipient_organisation_id")?)?,
        found_at: parse_instant(row.int("found_at")?)?,
        counterpart: CounterpartView {
            organisation_id: parse_org(&row.text("counterpart_organisation_id")?)?,
            organisation_name: parse_org_name(&row.text("organisation_name")?)?,
            contact: contact_from_row(row)?,
            signal_id: parse_signal_id(&row.text("counterpart_signal_id")?)?,
            state: parse_state(&row.text("counterpart_state")?)?,
            region_id: parse_region(&row.text("counterpart_region_id")?)?,
        },
    })
}

/// Told pairs as an adoption row keeps them: one per line, five fields separated by spaces
/// (organisation ids, stored keys and match types hold none).
pub(in crate::store) fn told_pairs_to_text(pairs: &[ToldPair]) -> String {
    pairs
        .iter()
        .map(|pair| {
            format!(
                "{} {} {} {} {}\n",
                pair.recipient_organisation_id.as_str(),
                pair.recipient_subject_key.to_stored(),
                pair.counterpart_organisation_id.as_str(),
                pair.counterpart_subject_key.to_stored(),
                pair.match_type.as_str()
            )
        })
        .collect()
}

pub(in crate::store) fn parse_told_pairs(text: &str) -> Result<Vec<ToldPair>, StoreError> {
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let [
                recipient,
                recipient_key,
                counterpart,
                counterpart_key,
                match_type,
            ] = fields.as_slice()
            else {
                return Err(StoreError::Corrupt("told_pairs"));
            };
            let key = |stored: &str| {
                SubjectKey::parse_stored(stored).map_err(|_| StoreError::Corrupt("told_pairs"))
            };
            Ok(ToldPair {
                recipient_organisation_id: parse_org(recipient)?,
                recipient_subject_key: key(recipient_key)?,
                counterpart_organisation_id: parse_org(counterpart)?,
                counterpart_subject_key: key(counterpart_key)?,
                match_type: MatchType::parse(match_type)
                    .ok_or(StoreError::Corrupt("told_pairs"))?,
            })
        })
        .collect()
}
