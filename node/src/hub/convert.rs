//! Between `vix.federation.v1` messages and the hub's domain types. Region nodes are trusted to
//! be vix, not to be bug-free: every field is checked, and a bad batch is refused whole.

use std::str::FromStr;

use jiff::Timestamp;
use vix_protocol::federation::v1 as pb;

use super::HubError;
use crate::domain::contact::ContactInput;
use crate::domain::matching::{MatchType, NoticeKind, PreviousKeys, ToldPair};
use crate::domain::{
    FamilyKey, KeyVersion, OrganisationId, OrganisationRegistry, ProfessionalContact, RegionId,
    Revision, SignalId, SignalState, SubjectKey, ValidationErrors,
};
use crate::store::hub::{Handover, HubSignal, LogEntry, LoggedNotice, SignalEvent};

/// Largest batch a region may submit: bounds the writer's transaction and the request size.
pub(crate) const BATCH_EVENTS_MAX: usize = 500;

/// Checks a region's batch whole. A malformed event makes the batch invalid; an upsert for an
/// organisation that the registry does not give to `region_id` (unknown, or another region's)
/// makes it forbidden, each such event named by `events[i].upsert.organisation_id`, so that the
/// region sets exactly those aside; only the first of a signal is named, so its later events
/// wait behind it in the region's outbox, in order. Each upsert carries the registry's name for
/// its organisation.
pub(crate) fn parse_events(
    events: &[pb::SignalEvent],
    region_id: &RegionId,
    registry: &OrganisationRegistry,
) -> Result<Vec<SignalEvent>, HubError> {
    let mut errors = ValidationErrors::new();
    if events.len() > BATCH_EVENTS_MAX {
        errors.add(
            "events",
            format!("at most {BATCH_EVENTS_MAX} events per batch"),
        );
        return Err(errors.into());
    }
    let mut forbidden = ValidationErrors::new();
    let mut refused_signals = std::collections::HashSet::new();
    let parsed: Vec<Option<SignalEvent>> = events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let mut refused = ValidationErrors::new();
            let parsed = parse_event(
                &format!("events[{index}]"),
                event,
                Registry {
                    region_id,
                    registry,
                    forbidden: &mut refused,
                },
                &mut errors,
            );
            if !refused.is_empty() && refused_signals.insert(event.signal_id.as_str()) {
                for violation in refused.violations() {
                    forbidden.add(violation.field.clone(), violation.description.clone());
                }
            }
            parsed
        })
        .collect();
    errors.into_result()?;
    if !forbidden.is_empty() {
        return Err(HubError::Forbidden(forbidden));
    }
    Ok(parsed
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ValidationErrors::single("events", "incomplete"))?)
}

/// Who may speak for which organisation, and where refusals are collected.
struct Registry<'a> {
    region_id: &'a RegionId,
    registry: &'a OrganisationRegistry,
    forbidden: &'a mut ValidationErrors,
}

fn parse_event(
    at: &str,
    event: &pb::SignalEvent,
    registry: Registry<'_>,
    errors: &mut ValidationErrors,
) -> Option<SignalEvent> {
    let signal_id = errors.check(
        &format!("{at}.signal_id"),
        SignalId::parse(&event.signal_id),
    );
    let revision = Revision::new(event.revision);
    if revision.is_none() {
        errors.add(format!("{at}.revision"), "must be at least 1");
    }
    let (upsert, previous_keys) = match &event.change {
        None => {
            errors.add(format!("{at}.change"), "upsert or deletion is required");
            return None;
        }
        Some(pb::signal_event::Change::Deletion(_)) => (None, PreviousKeys::default()),
        Some(pb::signal_event::Change::Upsert(upsert)) => {
            let at = format!("{at}.upsert");
            let signal = parse_upsert(&at, upsert, registry, errors)?;
            let previous = parse_previous_keys(&at, upsert, signal.subject_key, errors)?;
            (Some(signal), previous)
        }
    };
    Some(SignalEvent {
        signal_id: signal_id?,
        revision: revision?,
        upsert,
        previous_keys,
    })
}

/// The keys a new signal finds with under older versions: none under its own version, and no
/// more than the live versions allow.
fn parse_previous_keys(
    at: &str,
    upsert: &pb::SignalUpsert,
    subject_key: SubjectKey,
    errors: &mut ValidationErrors,
) -> Option<PreviousKeys> {
    let older = crate::domain::LIVE_VERSIONS_MAX - 1;
    let mut complete = true;
    let mut keys = |name: &str, list: &[pb::Pseudonym], max: usize| {
        let field = format!("{at}.{name}");
        if list.len() > max {
            errors.add(&field, format!("at most {max}"));
            complete = false;
        }
        let mut parsed = Vec::new();
        for (i, key) in list.iter().enumerate().take(max) {
            match pseudonym(Some(key), &format!("{field}[{i}]"), errors) {
                Some((version, _)) if version == subject_key.version() => {
                    errors.add(
                        format!("{field}[{i}]"),
                        "is under the signal's own key version",
                    );
                    complete = false;
                }
                Some(key) => parsed.push(key),
                None => complete = false,
            }
        }
        parsed
    };
    let subject = keys(
        "previous_subject_keys",
        &upsert.previous_subject_keys,
        older,
    );
    let family = keys(
        "previous_family_keys",
        &upsert.previous_family_keys,
        2 * older,
    );
    complete.then(|| PreviousKeys {
        subject: subject
            .into_iter()
            .map(|(version, digest)| SubjectKey::new(version, digest))
            .collect(),
        family: family
            .into_iter()
            .map(|(version, digest)| FamilyKey::new(version, digest))
            .collect(),
    })
}

fn parse_upsert(
    at: &str,
    upsert: &pb::SignalUpsert,
    registry: Registry<'_>,
    errors: &mut ValidationErrors,
) -> Option<HubSignal> {
    let field = |name: &str| format!("{at}.{name}");
    let subject_key = pseudonym(upsert.subject_key.as_ref(), &field("subject_key"), errors)
        .map(|(version, digest)| SubjectKey::new(version, digest));
    if upsert.family_keys.len() > 2 {
        errors.add(field("family_keys"), "at most two (one per BRP parent)");
    }
    let family_keys: Option<Vec<FamilyKey>> = upsert
        .family_keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            pseudonym(Some(key), &field(&format!("family_keys[{i}]")), errors)
                .map(|(version, digest)| FamilyKey::new(version, digest))
        })
        .collect();
    // Two parents, two different keys: a key named twice is a region's bug, refused here
    // rather than left to the store's unique constraint (an internal error).
    if let Some(keys) = &family_keys
        && keys
            .iter()
            .enumerate()
            .any(|(i, key)| keys[..i].contains(key))
    {
        errors.add(field("family_keys"), "names the same parent twice");
    }
    let organisation_id = errors.check(
        &field("organisation_id"),
        OrganisationId::parse(&upsert.organisation_id),
    );
    // The name is the registry's: nothing a region sends can change what others are shown.
    let organisation_name = organisation_id.as_ref().and_then(|id| {
        match registry.registry.served_by(registry.region_id, id) {
            Ok(organisation) => Some(organisation.name.clone()),
            Err(refusal) => {
                registry.forbidden.add(
                    field("organisation_id"),
                    format!("{refusal}; nothing of the batch was applied"),
                );
                None
            }
        }
    });
    let contact = match &upsert.professional {
        None => {
            errors.add(field("professional"), "is required");
            None
        }
        Some(contact) => ProfessionalContact::parse(
            ContactInput {
                professional_id: &contact.professional_id,
                name: &contact.name,
                email: &contact.email,
                phone: &contact.phone,
            },
            &field("professional"),
            errors,
        ),
    };
    let registered_at = errors.check(
        &field("registered_at"),
        Timestamp::from_str(&upsert.registered_at).map_err(|_| "must be an RFC 3339 instant"),
    );
    let planned_removal_date = errors.check(
        &field("planned_removal_date"),
        date(&upsert.planned_removal_date),
    );
    let state = match pb::SignalState::try_from(upsert.state) {
        Ok(pb::SignalState::Active) => Some(SignalState::Active),
        Ok(pb::SignalState::Inactive) => Some(SignalState::Inactive),
        _ => {
            errors.add(field("state"), "must be ACTIVE or INACTIVE");
            None
        }
    };
    let inactive_since = match (state, upsert.inactive_since.as_str()) {
        (Some(SignalState::Active), "") | (None, _) => Some(None),
        (Some(SignalState::Active), _) => {
            errors.add(field("inactive_since"), "must be empty while active");
            None
        }
        (Some(SignalState::Inactive), since) => errors
            .check(&field("inactive_since"), date(since))
            .map(Some),
    };
    Some(HubSignal {
        organisation_id: organisation_id?,
        organisation_name: organisation_name?,
        contact: contact?,
        subject_key: subject_key?,
        family_keys: family_keys?,
        registered_at: registered_at?,
        planned_removal_date: planned_removal_date?,
        state: state?,
        inactive_since: inactive_since?,
    })
}

fn pseudonym(
    key: Option<&pb::Pseudonym>,
    at: &str,
    errors: &mut ValidationErrors,
) -> Option<(KeyVersion, [u8; 32])> {
    let Some(key) = key else {
        errors.add(at, "is required");
        return None;
    };
    let version = errors.check(at, KeyVersion::new(key.key_version));
    let digest = errors.check(
        at,
        <[u8; 32]>::try_from(key.digest.as_slice()).map_err(|_| "digest must be 32 bytes"),
    );
    version.zip(digest)
}

use crate::domain::validation::parse_date as date;

fn state_to_pb(state: SignalState) -> pb::SignalState {
    match state {
        SignalState::Active => pb::SignalState::Active,
        SignalState::Inactive => pb::SignalState::Inactive,
    }
}

pub(crate) fn contact_to_pb(contact: &ProfessionalContact) -> pb::ProfessionalContact {
    pb::ProfessionalContact {
        professional_id: contact.professional_id().to_owned(),
        name: contact.name().to_owned(),
        email: contact.email().to_owned(),
        phone: contact.phone().unwrap_or_default().to_owned(),
    }
}

pub(crate) fn head_to_pb(head: &crate::store::hub::LogHead) -> pb::NoticeLogEntry {
    pb::NoticeLogEntry {
        cursor: 0,
        entry: Some(pb::notice_log_entry::Entry::Head(pb::LogHead {
            epoch: head.epoch.clone(),
            end_cursor: head.end_cursor,
        })),
    }
}

pub(crate) fn entry_to_pb(entry: &LogEntry) -> pb::NoticeLogEntry {
    let body = match entry {
        LogEntry::Notice(notice) => pb::notice_log_entry::Entry::Notice(notice_to_pb(notice)),
        LogEntry::Retraction { notice_id, .. } => {
            pb::notice_log_entry::Entry::Retraction(pb::Retraction {
                notice_id: notice_id.clone(),
            })
        }
        LogEntry::Coordination { change, .. } => {
            pb::notice_log_entry::Entry::Coordination(coordination_to_pb(change))
        }
        LogEntry::Adoption { adoption, .. } => {
            pb::notice_log_entry::Entry::Adoption(pb::Adoption {
                signal_id: adoption.signal_id.to_string(),
                revision: adoption.revision.get(),
                from_region_id: adoption.from_region_id.to_string(),
                sealed_record: adoption.sealed_record.clone(),
                told_pairs: adoption.told_pairs.iter().map(told_pair_to_pb).collect(),
            })
        }
    };
    pb::NoticeLogEntry {
        cursor: entry.cursor(),
        entry: Some(body),
    }
}

/// The most signals one HandOverSignals call may carry: each is locked with its keys.
pub(crate) const HANDOVERS_MAX: usize = 100;

/// A leaving region's handovers, checked whole.
pub(crate) fn parse_handovers(
    handovers: &[pb::Handover],
) -> Result<Vec<Handover>, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    if handovers.len() > HANDOVERS_MAX {
        errors.add("handovers", format!("at most {HANDOVERS_MAX} per call"));
        return Err(errors);
    }
    let parsed: Vec<Option<Handover>> = handovers
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let at = format!("handovers[{index}]");
            let signal_id =
                errors.check(&format!("{at}.signal_id"), SignalId::parse(&item.signal_id));
            let revision = Revision::new(item.revision);
            if revision.is_none() {
                errors.add(format!("{at}.revision"), "must be at least 1");
            }
            if item.sealed_record.is_empty() {
                errors.add(format!("{at}.sealed_record"), "is required");
            }
            Some(Handover {
                signal_id: signal_id?,
                revision: revision?,
                sealed_record: item.sealed_record.clone(),
            })
        })
        .collect();
    errors.into_result()?;
    parsed
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ValidationErrors::single("handovers", "incomplete"))
}

fn match_type_to_pb(match_type: MatchType) -> pb::MatchType {
    match match_type {
        MatchType::Youth => pb::MatchType::Youth,
        MatchType::Family => pb::MatchType::Family,
    }
}

fn told_pair_to_pb(pair: &ToldPair) -> pb::ToldPair {
    let pseudonym = |key: &SubjectKey| pb::Pseudonym {
        key_version: key.version().get(),
        digest: key.digest().to_vec(),
    };
    pb::ToldPair {
        recipient_organisation_id: pair.recipient_organisation_id.to_string(),
        recipient_subject_key: Some(pseudonym(&pair.recipient_subject_key)),
        counterpart_organisation_id: pair.counterpart_organisation_id.to_string(),
        counterpart_subject_key: Some(pseudonym(&pair.counterpart_subject_key)),
        match_type: match_type_to_pb(pair.match_type).into(),
    }
}

/// A told pair of an adoption entry, checked.
pub(crate) fn told_pair_from_pb(
    pair: &pb::ToldPair,
    at: &str,
    errors: &mut ValidationErrors,
) -> Option<ToldPair> {
    let recipient_organisation_id = errors.check(
        &format!("{at}.recipient_organisation_id"),
        OrganisationId::parse(&pair.recipient_organisation_id),
    );
    let counterpart_organisation_id = errors.check(
        &format!("{at}.counterpart_organisation_id"),
        OrganisationId::parse(&pair.counterpart_organisation_id),
    );
    let recipient_subject_key = pseudonym(
        pair.recipient_subject_key.as_ref(),
        &format!("{at}.recipient_subject_key"),
        errors,
    )
    .map(|(version, digest)| SubjectKey::new(version, digest));
    let counterpart_subject_key = pseudonym(
        pair.counterpart_subject_key.as_ref(),
        &format!("{at}.counterpart_subject_key"),
        errors,
    )
    .map(|(version, digest)| SubjectKey::new(version, digest));
    let match_type = match pb::MatchType::try_from(pair.match_type) {
        Ok(pb::MatchType::Youth) => Some(MatchType::Youth),
        Ok(pb::MatchType::Family) => Some(MatchType::Family),
        _ => {
            errors.add(format!("{at}.match_type"), "unknown");
            None
        }
    };
    Some(ToldPair {
        recipient_organisation_id: recipient_organisation_id?,
        recipient_subject_key: recipient_subject_key?,
        counterpart_organisation_id: counterpart_organisation_id?,
        counterpart_subject_key: counterpart_subject_key?,
        match_type: match_type?,
    })
}

fn notice_to_pb(notice: &LoggedNotice) -> pb::Notice {
    pb::Notice {
        notice_id: notice.notice_id.clone(),
        match_type: match notice.match_type {
            MatchType::Youth => pb::MatchType::Youth,
            MatchType::Family => pb::MatchType::Family,
        }
        .into(),
        kind: match notice.kind {
            NoticeKind::Match => pb::NoticeKind::Match,
            NoticeKind::History => pb::NoticeKind::History,
        }
        .into(),
        recipient_signal_id: notice.recipient_signal_id.to_string(),
        recipient_organisation_id: notice.recipient_organisation_id.to_string(),
        found_at: notice.found_at.to_string(),
        counterpart: Some(pb::Counterpart {
            organisation_id: notice.counterpart.organisation_id.to_string(),
            organisation_name: notice.counterpart.organisation_name.to_string(),
            professional: Some(contact_to_pb(&notice.counterpart.contact)),
            signal_id: notice.counterpart.signal_id.to_string(),
            state: state_to_pb(notice.counterpart.state).into(),
            region_id: notice.counterpart.region_id.to_string(),
        }),
    }
}

pub(crate) fn coordination_to_pb(
    change: &crate::domain::coordination::CoordinationChange,
) -> pb::CoordinationChange {
    use crate::domain::coordination::ChangeKind;
    pb::CoordinationChange {
        change_id: change.change_id.to_string(),
        by_signal_id: change.by_signal.to_string(),
        other_signal_id: change.other_signal.to_string(),
        at: change.at.to_string(),
        change: Some(match change.kind {
            ChangeKind::Regievoerder(named) => {
                pb::coordination_change::Change::RegievoerderSignalId(named.to_string())
            }
            ChangeKind::Afgestemd => pb::coordination_change::Change::Afgestemd(true),
        }),
    }
}

/// Parses and checks one coordination change; `at` names its place for error messages.
pub(crate) fn coordination_from_pb(
    change: &pb::CoordinationChange,
    at: &str,
    errors: &mut ValidationErrors,
) -> Option<crate::domain::coordination::CoordinationChange> {
    use crate::domain::coordination::{ChangeKind, CoordinationChange};
    let field = |name: &str| format!("{at}.{name}");
    let change_id = errors.check(
        &field("change_id"),
        uuid::Uuid::try_parse(&change.change_id).map_err(|_| "must be a UUID"),
    );
    let by_signal = errors.check(
        &field("by_signal_id"),
        SignalId::parse(&change.by_signal_id),
    );
    let other_signal = errors.check(
        &field("other_signal_id"),
        SignalId::parse(&change.other_signal_id),
    );
    let when = errors.check(
        &field("at"),
        Timestamp::from_str(&change.at).map_err(|_| "must be an RFC 3339 instant"),
    );
    let kind = match &change.change {
        Some(pb::coordination_change::Change::RegievoerderSignalId(named)) => errors
            .check(&field("regievoerder_signal_id"), SignalId::parse(named))
            .map(ChangeKind::Regievoerder),
        Some(pb::coordination_change::Change::Afgestemd(true)) => Some(ChangeKind::Afgestemd),
        _ => {
            errors.add(
                field("change"),
                "regievoerder_signal_id or afgestemd = true is required",
            );
            None
        }
    };
    let change = CoordinationChange {
        change_id: change_id?,
        by_signal: by_signal?,
        other_signal: other_signal?,
        at: when?,
        kind: kind?,
    };
    errors.check(&field("change"), change.check())?;
    Some(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRY: &str = r#"
        regions = ["north", "south"]
        [[organisations]]
        id = "jgz-north"
        name = "JGZ Noord"
        region = "north"
        [[organisations]]
        id = "vt-south"
        name = "Veilig Thuis Zuid"
        region = "south"
    "#;

    fn upsert(org: &str) -> pb::SignalEvent {
        pb::SignalEvent {
            signal_id: SignalId::generate().to_string(),
            revision: 1,
            change: Some(pb::signal_event::Change::Upsert(pb::SignalUpsert {
                subject_key: Some(pb::Pseudonym {
                    key_version: 1,
                    digest: vec![7; 32],
                }),
                family_keys: vec![],
                organisation_id: org.into(),
                professional: Some(pb::ProfessionalContact {
                    professional_id: "p1".into(),
                    name: "A. de Jong".into(),
                    email: "a@jgz-noord.example.nl".into(),
                    phone: String::new(),
                }),
                registered_at: "2026-11-25T12:00:00Z".into(),
                planned_removal_date: "2027-11-25".into(),
                state: pb::SignalState::Active.into(),
                inactive_since: String::new(),
                previous_subject_keys: vec![],
                previous_family_keys: vec![],
            })),
        }
    }

    fn parse(region: &str, events: &[pb::SignalEvent]) -> Result<Vec<SignalEvent>, HubError> {
        let registry = OrganisationRegistry::parse_toml(REGISTRY).unwrap();
        parse_events(events, &RegionId::parse(region).unwrap(), &registry)
    }

    #[test]
    fn an_upsert_carries_the_registry_name() {
        let events = parse("north", &[upsert("jgz-north")]).unwrap();
        let signal = events[0].upsert.as_ref().unwrap();
        assert_eq!(signal.organisation_name.as_str(), "JGZ Noord");
    }

    #[test]
    fn only_the_first_refused_event_of_a_signal_is_named() {
        let first = upsert("vt-south");
        let mut later = first.clone();
        later.revision = 2;
        let error = parse("north", &[first, later, upsert("nobody")]).unwrap_err();
        let HubError::Forbidden(errors) = error else {
            panic!("forbidden, not {error:?}");
        };
        let fields: Vec<_> = errors
            .violations()
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(
            fields,
            [
                "events[0].upsert.organisation_id",
                "events[2].upsert.organisation_id"
            ]
        );
    }

    #[test]
    fn another_regions_or_an_unknown_organisation_is_refused_by_name() {
        let error = parse(
            "north",
            &[upsert("jgz-north"), upsert("vt-south"), upsert("nobody")],
        )
        .unwrap_err();
        let HubError::Forbidden(errors) = error else {
            panic!("forbidden, not {error:?}");
        };
        let named: Vec<_> = errors
            .violations()
            .iter()
            .map(|v| (v.field.as_str(), v.description.as_str()))
            .collect();
        assert_eq!(named.len(), 2, "{named:?}");
        assert_eq!(named[0].0, "events[1].upsert.organisation_id");
        assert!(named[0].1.contains("another region"), "{}", named[0].1);
        assert_eq!(named[1].0, "events[2].upsert.organisation_id");
        assert!(named[1].1.contains("not in the organisation registry"));
    }
}
