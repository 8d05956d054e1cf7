//! The region node's side of the hub's notice log: a notice stored (or, sent again, refreshed
//! or moved) with its e-mail job, a retraction, a coordination change relayed from another
//! region; each moves the hub cursor in the same savepoint.

use jiff::Timestamp;
use rusqlite::Connection;

use super::super::StoreError;
use super::super::hub::LoggedNotice;
use super::super::sql::query;
use super::super::{NoticeDelivery, StoredSignal};
use super::coordination::merge_coordination;
use super::write::{insert_email_job, load_signal};
use crate::domain::SignalState;
use crate::domain::coordination::CoordinationChange;
use crate::domain::lifecycle::{self, Due, LifecycleDates};

pub(super) fn apply_hub_coordination(
    tx: &Connection,
    change: CoordinationChange,
    cursor: u64,
) -> Result<bool, StoreError> {
    let cursor = i64::try_from(cursor).map_err(|_| StoreError::Corrupt("cursor"))?;
    query("UPDATE hub_cursor SET cursor = MAX(cursor, ?) WHERE singleton = 1")
        .bind(cursor)
        .execute(tx)?;
    // Only for a match this node still holds: a notice to its signal about the other.
    let held: Option<String> = query(
        "SELECT notice_id FROM notices \
         WHERE recipient_signal_id = ? AND counterpart_signal_id = ? LIMIT 1",
    )
    .bind(change.other_signal.to_string())
    .bind(change.by_signal.to_string())
    .scalar_optional(tx)?;
    if held.is_some() {
        merge_coordination(tx, &change)?;
    }
    Ok(held.is_some())
}

pub(super) fn store_hub_notice(
    tx: &Connection,
    notice: LoggedNotice,
    now: Timestamp,
) -> Result<NoticeDelivery, StoreError> {
    let cursor = i64::try_from(notice.cursor).map_err(|_| StoreError::Corrupt("cursor"))?;
    query("UPDATE hub_cursor SET cursor = MAX(cursor, ?) WHERE singleton = 1")
        .bind(cursor)
        .execute(tx)?;
    let seen: Option<String> = query("SELECT notice_id FROM notices WHERE notice_id = ?")
        .bind(&notice.notice_id)
        .scalar_optional(tx)?;
    let delivery = if seen.is_some() {
        // Sent again: the hub refreshed the counterpart's contact or state.
        let counterpart = &notice.counterpart;
        // It may also have moved: to the signal that now stands for the counterpart's party,
        // or (agreeing with this node, which moved its copy itself) for the recipient's.
        query(
            "UPDATE notices SET counterpart_signal_id = ?, counterpart_organisation_name = ?, \
                 counterpart_professional_id = ?, counterpart_professional_name = ?, \
                 counterpart_professional_email = ?, counterpart_professional_phone = ?, \
                 counterpart_state = ?, \
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
        .bind(notice.recipient_signal_id.to_string())
        .bind(&notice.notice_id)
        .execute(tx)?;
        NoticeDelivery::Duplicate
    } else {
        match load_signal(tx, notice.recipient_signal_id)? {
            Some(recipient) if recipient.organisation_id == notice.recipient_organisation_id => {
                insert_hub_notice(tx, &notice, &recipient)?;
                // The owner of an inactive signal gets no notice e-mail (invariant 3), also
                // when today's sweep has not reached the signal yet.
                let dates = LifecycleDates {
                    state: recipient.state,
                    planned_removal_date: recipient.planned_removal_date,
                    inactive_since: recipient.inactive_since,
                    birth_date: Some(recipient.birth_date),
                };
                let emailed = lifecycle::due(dates, crate::domain::clock::local_date(now))
                    == Due::Nothing
                    && recipient.state == SignalState::Active;
                if emailed {
                    insert_email_job(tx, &notice.notice_id, now)?;
                }
                NoticeDelivery::Stored { emailed }
            }
            Some(_) => {
                tracing::warn!(
                    notice_id = %notice.notice_id,
                    "hub notice names a recipient of another organisation; dropped"
                );
                NoticeDelivery::Dropped
            }
            None => NoticeDelivery::Dropped,
        }
    };
    Ok(delivery)
}

pub(super) fn retract_hub_notice(
    tx: &Connection,
    notice_id: &str,
    cursor: u64,
) -> Result<(bool, bool), StoreError> {
    let cursor = i64::try_from(cursor).map_err(|_| StoreError::Corrupt("cursor"))?;
    query("UPDATE hub_cursor SET cursor = MAX(cursor, ?) WHERE singleton = 1")
        .bind(cursor)
        .execute(tx)?;
    let deleted = query("DELETE FROM notices WHERE notice_id = ? AND source = 'hub'")
        .bind(notice_id)
        .execute(tx)?;
    let held = deleted.rows_affected() > 0;
    Ok((held, held))
}

/// Stores a notice found by the hub, with the counterpart as the hub sent it.
fn insert_hub_notice(
    tx: &Connection,
    notice: &LoggedNotice,
    recipient: &StoredSignal,
) -> Result<(), StoreError> {
    let counterpart = &notice.counterpart;
    query(
        "INSERT INTO notices (notice_id, source, recipient_signal_id, recipient_organisation_id, \
             recipient_subject_key, counterpart_signal_id, counterpart_organisation_id, \
             counterpart_region_id, counterpart_organisation_name, counterpart_professional_id, \
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
    .execute(tx)?;
    Ok(())
}
