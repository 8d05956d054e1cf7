//! Rows of the node's tables as domain values, whichever connection read them.

use crate::domain::coordination::{self, CoordinationState};
use crate::domain::informing::{InformingRecord, SafetyReason};
use crate::domain::matching::{MatchType, NoticeKind};
use crate::domain::{FamilyKey, RegionId, Revision};
use crate::store::dead_letter::{DeadLetter, DeadLetterSource};
use crate::store::region::handover::{MatchCoordinationRecord, NoticeRecord};
use crate::store::row::{
    Columns, contact_from_row, parse_date, parse_instant, parse_org, parse_org_name,
    parse_signal_id, parse_state, parse_subject,
};
use crate::store::{
    CounterpartView, LogPosition, MatchView, OutboxEntry, StoreError, StoredSignal,
};

pub(in crate::store) fn signal_from_row(
    row: &impl Columns,
    family_keys: Vec<FamilyKey>,
) -> Result<StoredSignal, StoreError> {
    let revision: i64 = row.int("revision")?;
    Ok(StoredSignal {
        signal_id: parse_signal_id(&row.text("signal_id")?)?,
        revision: u64::try_from(revision)
            .ok()
            .and_then(Revision::new)
            .ok_or(StoreError::Corrupt("revision"))?,
        organisation_id: parse_org(&row.text("organisation_id")?)?,
        organisation_name: parse_org_name(&row.text("organisation_name")?)?,
        contact: contact_from_row(row)?,
        subject_key: parse_subject(&row.text("subject_key")?)?,
        family_keys,
        birth_date: parse_date(&row.text("birth_date")?)?,
        registered_at: parse_instant(row.int("registered_at")?)?,
        planned_removal_date: parse_date(&row.text("planned_removal_date")?)?,
        state: parse_state(&row.text("state")?)?,
        inactive_since: row
            .opt_text("inactive_since")?
            .as_deref()
            .map(parse_date)
            .transpose()?,
        informing: informing_from_row(row)?,
    })
}

/// The coordination columns of a row (all NULL when nothing was coordinated yet).
pub(in crate::store) fn coordination_from_row(
    row: &impl Columns,
) -> Result<CoordinationState, StoreError> {
    let named: Option<String> = row.opt_text("regievoerder_signal_id")?;
    let regievoerder = match named {
        None => None,
        Some(named) => {
            let at: i64 = row.opt_int("regievoerder_at")?.unwrap_or_default();
            let change: Option<String> = row.opt_text("regievoerder_change_id")?;
            Some((
                parse_signal_id(&named)?,
                parse_instant(at)?,
                change
                    .as_deref()
                    .and_then(|id| uuid::Uuid::try_parse(id).ok())
                    .ok_or(StoreError::Corrupt("regievoerder_change_id"))?,
            ))
        }
    };
    Ok(CoordinationState {
        regievoerder,
        afgestemd_low: row.opt_flag("afgestemd_low")?.unwrap_or(false),
        afgestemd_high: row.opt_flag("afgestemd_high")?.unwrap_or(false),
    })
}

pub(in crate::store) fn informing_from_row(
    row: &impl Columns,
) -> Result<InformingRecord, StoreError> {
    let kind = row.text("informing")?;
    match kind.as_str() {
        "informed" => Ok(InformingRecord::Informed {
            parents: row.flag("informed_parents")?,
            youth: row.flag("informed_youth")?,
            informed_on: parse_date(
                &row.opt_text("informed_on")?
                    .ok_or(StoreError::Corrupt("informed_on"))?,
            )?,
        }),
        "not_informed" => row
            .opt_text("not_informed_reason")?
            .as_deref()
            .and_then(SafetyReason::parse)
            .map(InformingRecord::NotInformed)
            .ok_or(StoreError::Corrupt("not_informed_reason")),
        _ => Err(StoreError::Corrupt("informing")),
    }
}

pub(in crate::store) fn match_view(row: &impl Columns) -> Result<MatchView, StoreError> {
    let own = parse_signal_id(&row.text("recipient_signal_id")?)?;
    let other = parse_signal_id(&row.text("counterpart_signal_id")?)?;
    let (low, _) = coordination::ordered(own, other);
    let state = coordination_from_row(row)?;
    Ok(MatchView {
        coordination: state.view(low, own),
        notice_id: row.text("notice_id")?,
        match_type: MatchType::parse(&row.text("match_type")?)
            .ok_or(StoreError::Corrupt("match_type"))?,
        kind: NoticeKind::parse(&row.text("kind")?).ok_or(StoreError::Corrupt("kind"))?,
        signal_id: parse_signal_id(&row.text("recipient_signal_id")?)?,
        found_at: parse_instant(row.int("found_at")?)?,
        counterpart: CounterpartView {
            organisation_id: parse_org(&row.text("counterpart_organisation_id")?)?,
            organisation_name: parse_org_name(&row.text("organisation_name")?)?,
            contact: contact_from_row(row)?,
            signal_id: parse_signal_id(&row.text("counterpart_signal_id")?)?,
            state: parse_state(&row.text("state")?)?,
            region_id: RegionId::parse(&row.text("counterpart_region_id")?)
                .map_err(|_| StoreError::Corrupt("counterpart_region_id"))?,
        },
    })
}

/// Family keys as stored, each parsed.
pub(in crate::store) fn parse_family_keys(stored: &[String]) -> Result<Vec<FamilyKey>, StoreError> {
    stored
        .iter()
        .map(|key| FamilyKey::parse_stored(key).map_err(|_| StoreError::Corrupt("family_key")))
        .collect()
}

/// The informing record as its five columns.
pub(crate) struct InformingColumns {
    pub(crate) kind: &'static str,
    pub(crate) parents: bool,
    pub(crate) youth: bool,
    pub(crate) informed_on: Option<String>,
    pub(crate) reason: Option<&'static str>,
}

impl InformingColumns {
    pub(crate) fn of(record: &InformingRecord) -> Self {
        match *record {
            InformingRecord::Informed {
                parents,
                youth,
                informed_on,
            } => Self {
                kind: "informed",
                parents,
                youth,
                informed_on: Some(informed_on.to_string()),
                reason: None,
            },
            InformingRecord::NotInformed(reason) => Self {
                kind: "not_informed",
                parents: false,
                youth: false,
                informed_on: None,
                reason: Some(reason.as_str()),
            },
        }
    }
}

/// A `dead_letters` row.
pub(in crate::store) fn dead_letter_from_row(row: &impl Columns) -> Result<DeadLetter, StoreError> {
    let corrupt = || StoreError::Corrupt("dead_letters");
    Ok(DeadLetter {
        id: row.int("id")?,
        source: DeadLetterSource::parse(&row.text("source")?).ok_or_else(corrupt)?,
        position: row.int("position")?,
        signal_id: row.opt_text("signal_id")?,
        revision: row
            .opt_int("revision")?
            .map(u64::try_from)
            .transpose()
            .map_err(|_| corrupt())?,
        payload: row.blob("payload")?,
        reason: row.text("reason")?,
        quarantined_at: parse_instant(row.int("quarantined_at")?)?,
    })
}

/// The row of [`super::GAUGES_SELECT`].
pub(in crate::store) fn gauges_from_row(
    row: &impl Columns,
) -> Result<crate::store::StoreGauges, StoreError> {
    let count = |name: &str| -> Result<u64, StoreError> {
        u64::try_from(row.int(name)?).map_err(|_| StoreError::Corrupt("a count"))
    };
    Ok(crate::store::StoreGauges {
        active_signals: count("active_signals")?,
        inactive_signals: count("inactive_signals")?,
        outbox_events: count("outbox_events")?,
        oldest_outbox_event: row
            .opt_int("oldest_outbox_event")?
            .map(parse_instant)
            .transpose()?,
        dead_letters: count("dead_letters")?,
        emails_pending: count("emails_pending")?,
    })
}

/// An outbox or coordination dead letter's payload: the JSON text it was queued as.
pub(in crate::store) fn dead_letter_text(letter: &DeadLetter) -> Result<String, StoreError> {
    String::from_utf8(letter.payload.clone()).map_err(|_| StoreError::Corrupt("dead_letters"))
}

/// A `coordination_outbox` row: its place and the change.
pub(in crate::store) fn queued_coordination(
    row: &impl Columns,
) -> Result<(i64, coordination::CoordinationChange), StoreError> {
    let record: crate::store::outbox::CoordinationRecord =
        serde_json::from_str(&row.text("change")?)
            .map_err(|_| StoreError::Corrupt("coordination_outbox"))?;
    Ok((row.int("seq")?, record.into_change()?))
}

/// An `outbox` row; an event that cannot be read is handed on as `None` (a dead letter).
pub(in crate::store) fn outbox_entry(row: &impl Columns) -> Result<OutboxEntry, StoreError> {
    Ok(OutboxEntry {
        seq: row.int("seq")?,
        event: serde_json::from_str(&row.text("event")?).ok(),
    })
}

/// The `hub_cursor` row.
pub(in crate::store) fn log_position(row: &impl Columns) -> Result<LogPosition, StoreError> {
    Ok(LogPosition {
        cursor: u64::try_from(row.int("cursor")?).map_err(|_| StoreError::Corrupt("hub_cursor"))?,
        epoch: row.opt_text("epoch")?,
    })
}

/// A `notices` row (with `email_pending`) as a handover record holds it.
pub(in crate::store) fn notice_record(row: &impl Columns) -> Result<NoticeRecord, StoreError> {
    Ok(NoticeRecord {
        notice_id: row.text("notice_id")?,
        source: row.text("source")?,
        counterpart_signal_id: row.text("counterpart_signal_id")?,
        counterpart_organisation_id: row.text("counterpart_organisation_id")?,
        counterpart_region_id: row.text("counterpart_region_id")?,
        counterpart_subject_key: row.opt_text("counterpart_subject_key")?,
        counterpart_organisation_name: row.opt_text("counterpart_organisation_name")?,
        counterpart_professional_id: row.opt_text("counterpart_professional_id")?,
        counterpart_professional_name: row.opt_text("counterpart_professional_name")?,
        counterpart_professional_email: row.opt_text("counterpart_professional_email")?,
        counterpart_professional_phone: row.opt_text("counterpart_professional_phone")?,
        counterpart_state: row.opt_text("counterpart_state")?,
        match_type: row.text("match_type")?,
        kind: row.text("kind")?,
        found_at: row.int("found_at")?,
        email_pending: row.flag("email_pending")?,
    })
}

/// A `coordination` row as a handover record holds it.
pub(in crate::store) fn match_coordination_record(
    row: &impl Columns,
) -> Result<MatchCoordinationRecord, StoreError> {
    Ok(MatchCoordinationRecord::of(
        parse_signal_id(&row.text("signal_low")?)?,
        parse_signal_id(&row.text("signal_high")?)?,
        &coordination_from_row(row)?,
    ))
}
