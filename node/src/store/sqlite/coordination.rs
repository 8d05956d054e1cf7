//! Coordination of a match on the region node (regievoerder, afgestemd): a party's own change,
//! queued for the hub when the match crosses regions, merged into the pair's one state.

use jiff::Timestamp;
use rusqlite::Connection;

use super::super::row::{Columns, parse_signal_id};
use super::super::sql::query;
use super::super::{Acting, StoreError, audit, outbox};
use super::rows::coordination_from_row;
use crate::domain::audit::{AuditAction, AuditEntry};
use crate::domain::coordination::{
    ChangeKind, CoordinationAction, CoordinationChange, CoordinationState, Party,
};

/// Records a party's coordination change on one of its matches; returns the change.
pub(super) fn coordinate(
    tx: &Connection,
    acting: &Acting,
    notice_id: &str,
    action: CoordinationAction,
    now: Timestamp,
) -> Result<CoordinationChange, StoreError> {
    let notice = query(
        "SELECT recipient_signal_id, recipient_organisation_id, counterpart_signal_id, source \
         FROM notices WHERE notice_id = ?",
    )
    .bind(notice_id)
    .fetch_optional(tx)?
    .ok_or(StoreError::NoSuchMatch)?;
    if notice.try_get::<String>("recipient_organisation_id")? != acting.organisation_id.as_str() {
        // Another organisation's notice is answered as a missing one: no probing of ids.
        return Err(StoreError::NoSuchMatch);
    }
    let own = parse_signal_id(&notice.text("recipient_signal_id")?)?;
    let other = parse_signal_id(&notice.text("counterpart_signal_id")?)?;
    let kind = match action {
        CoordinationAction::NameRegievoerder(Party::Own) => ChangeKind::Regievoerder(own),
        CoordinationAction::NameRegievoerder(Party::Counterpart) => ChangeKind::Regievoerder(other),
        CoordinationAction::MarkAfgestemd => ChangeKind::Afgestemd,
    };
    let change = CoordinationChange {
        change_id: uuid::Uuid::new_v4(),
        by_signal: own,
        other_signal: other,
        at: now,
        kind,
    };
    merge_coordination(tx, &change)?;
    if notice.try_get::<String>("source")? == "hub" {
        let json = serde_json::to_string(&outbox::CoordinationRecord::from(&change))
            .map_err(|_| StoreError::Corrupt("coordination change"))?;
        query("INSERT INTO coordination_outbox (change) VALUES (?)")
            .bind(json)
            .execute(tx)?;
    }
    let (action, mut signal_ids) = match kind {
        ChangeKind::Regievoerder(named) => (AuditAction::Regievoerder, vec![own, other, named]),
        ChangeKind::Afgestemd => (AuditAction::Afgestemd, vec![own, other]),
    };
    signal_ids.dedup();
    let entry = AuditEntry {
        at: now,
        action,
        actor: acting.actor(),
        signal_ids,
        detail: None,
    };
    audit::append(tx, &entry)?;
    Ok(change)
}

/// Loads, merges `change` into, and stores the coordination of its pair.
pub(super) fn merge_coordination(
    tx: &Connection,
    change: &CoordinationChange,
) -> Result<(), StoreError> {
    let (low, high) = change.pair();
    let row = query(
        "SELECT regievoerder_signal_id, regievoerder_at, regievoerder_change_id, afgestemd_low, \
                afgestemd_high \
         FROM coordination WHERE signal_low = ? AND signal_high = ?",
    )
    .bind(low.to_string())
    .bind(high.to_string())
    .fetch_optional(tx)?;
    let mut state = match &row {
        Some(row) => coordination_from_row(row)?,
        None => CoordinationState::default(),
    };
    state.apply(low, change);
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
    .execute(tx)?;
    Ok(())
}
