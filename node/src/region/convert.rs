//! Between `vix.region.v1` messages and the domain: parsing at the edge (every bad field is
//! reported, none is trusted) and rendering stored signals and matches for the caller.

use jiff::civil::Date;
use vix_protocol::region::v1 as pb;

use crate::domain::contact::ContactInput;
use crate::domain::coordination::Party;
use crate::domain::informing::{self, InformingRecord, SafetyReason};
use crate::domain::matching::{MatchType, NoticeKind};
use crate::domain::signal::{self, check_youth};
use crate::domain::{
    AltYouthId, Bsn, ProfessionalContact, RequestId, SignalId, SignalState, ValidationErrors,
    WithdrawReason,
};
use crate::store::{Acting, MatchView, StoredSignal};

/// The youth a registration is about.
#[derive(Debug)]
pub(crate) enum Youth {
    Bsn(Bsn),
    /// No BSN: the caller gives the birth date, checked here.
    Alt {
        id: AltYouthId,
        birth_date: Date,
    },
}

#[derive(Debug)]
pub(crate) struct RegisterInput {
    pub(crate) request_id: RequestId,
    /// Checked against the age once the birth date is known (for a BSN: from the registry).
    pub(crate) informing: InformingRecord,
    pub(crate) youth: Youth,
    pub(crate) contact: ProfessionalContact,
    /// As the caller asked it, for the request fingerprint.
    pub(crate) requested_removal_date: Option<Date>,
    pub(crate) planned_removal_date: Date,
}

pub(crate) use crate::domain::validation::parse_date;

/// Parses an informing record's form; whether it fits the youth's age is checked later.
pub(crate) fn parse_informing(
    record: Option<&pb::InformingRecord>,
    errors: &mut ValidationErrors,
) -> Option<InformingRecord> {
    match record.and_then(|record| record.record.as_ref()) {
        None => {
            errors.add(
                "informing",
                "is required: informed, or not_informed with a reason",
            );
            None
        }
        Some(pb::informing_record::Record::Informed(informed)) => {
            if !informed.parents && !informed.youth {
                errors.add(
                    "informing.informed",
                    "names no one; use not_informed with a reason",
                );
                return None;
            }
            errors
                .check(
                    "informing.informed.informed_on",
                    parse_date(&informed.informed_on),
                )
                .map(|informed_on| InformingRecord::Informed {
                    parents: informed.parents,
                    youth: informed.youth,
                    informed_on,
                })
        }
        Some(pb::informing_record::Record::NotInformed(not_informed)) => {
            match pb::NotInformedReason::try_from(not_informed.reason) {
                Ok(pb::NotInformedReason::YouthSafety) => {
                    Some(InformingRecord::NotInformed(SafetyReason::YouthSafety))
                }
                Ok(pb::NotInformedReason::ProfessionalSafety) => Some(
                    InformingRecord::NotInformed(SafetyReason::ProfessionalSafety),
                ),
                _ => {
                    errors.add(
                        "informing.not_informed.reason",
                        "must be YOUTH_SAFETY or PROFESSIONAL_SAFETY",
                    );
                    None
                }
            }
        }
    }
}

pub(crate) fn informing_to_pb(record: &InformingRecord) -> pb::InformingRecord {
    let record = match *record {
        InformingRecord::Informed {
            parents,
            youth,
            informed_on,
        } => pb::informing_record::Record::Informed(pb::Informed {
            parents,
            youth,
            informed_on: informed_on.to_string(),
        }),
        InformingRecord::NotInformed(reason) => {
            pb::informing_record::Record::NotInformed(pb::NotInformed {
                reason: match reason {
                    SafetyReason::YouthSafety => pb::NotInformedReason::YouthSafety,
                    SafetyReason::ProfessionalSafety => pb::NotInformedReason::ProfessionalSafety,
                }
                .into(),
            })
        }
    };
    pb::InformingRecord {
        record: Some(record),
    }
}

fn optional_date(input: &str) -> Result<Option<Date>, &'static str> {
    if input.is_empty() {
        Ok(None)
    } else {
        parse_date(input).map(Some)
    }
}

pub(crate) fn parse_contact(
    contact: Option<&pb::ProfessionalContact>,
    errors: &mut ValidationErrors,
) -> Option<ProfessionalContact> {
    let Some(contact) = contact else {
        errors.add("professional", "is required");
        return None;
    };
    ProfessionalContact::parse(
        ContactInput {
            professional_id: &contact.professional_id,
            name: &contact.name,
            email: &contact.email,
            phone: &contact.phone,
        },
        "professional",
        errors,
    )
}

/// Checks every field of a registration against the rules of DOMAIN.md section 3 that need no
/// registry: all bad fields are reported together.
pub(crate) fn parse_register(
    request: &pb::RegisterSignalRequest,
    today: Date,
) -> Result<RegisterInput, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let request_id = errors.check("request_id", RequestId::parse(&request.request_id));
    let youth = match &request.youth {
        None => {
            errors.add("youth", "either bsn or alt_youth_id is required");
            None
        }
        Some(pb::register_signal_request::Youth::Bsn(bsn)) => {
            errors.check("bsn", Bsn::parse(bsn)).map(Youth::Bsn)
        }
        Some(pb::register_signal_request::Youth::AltYouthId(alt)) => {
            let id = errors.check("alt_youth_id", AltYouthId::parse(&alt.issuer, &alt.number));
            let birth_date = errors
                .check("alt_youth_id.birth_date", parse_date(&alt.birth_date))
                .and_then(|birth_date| {
                    errors
                        .check("alt_youth_id.birth_date", check_youth(birth_date, today))
                        .map(|()| birth_date)
                });
            id.zip(birth_date)
                .map(|(id, birth_date)| Youth::Alt { id, birth_date })
        }
    };
    let contact = parse_contact(request.professional.as_ref(), &mut errors);
    let informing = parse_informing(request.informing.as_ref(), &mut errors);
    if let (Some(Youth::Alt { birth_date, .. }), Some(record)) = (&youth, informing) {
        errors.check(
            "informing",
            informing::check(record, *birth_date, today, today),
        );
    }
    let requested = errors.check(
        "planned_removal_date",
        optional_date(&request.planned_removal_date),
    );
    let planned = requested.and_then(|requested| {
        errors.check(
            "planned_removal_date",
            signal::planned_removal_date(today, requested),
        )
    });
    errors.into_result()?;
    match (request_id, youth, contact, informing, requested, planned) {
        (
            Some(request_id),
            Some(youth),
            Some(contact),
            Some(informing),
            Some(requested),
            Some(planned),
        ) => Ok(RegisterInput {
            request_id,
            informing,
            youth,
            contact,
            requested_removal_date: requested,
            planned_removal_date: planned,
        }),
        // Every None above recorded an error, so this is unreachable; stay total anyway.
        _ => Err(ValidationErrors::single("request", "is incomplete")),
    }
}

/// The professional acting, whom the audit log records.
pub(crate) fn parse_acting(
    organisation_id: &crate::domain::OrganisationId,
    professional_id: &str,
    errors: &mut ValidationErrors,
) -> Option<Acting> {
    errors
        .check(
            "acting_professional_id",
            crate::domain::contact::parse_professional_id(professional_id),
        )
        .map(|professional_id| Acting {
            organisation_id: organisation_id.clone(),
            professional_id,
        })
}

pub(crate) fn parse_withdraw(
    request: &pb::WithdrawSignalRequest,
    organisation_id: &crate::domain::OrganisationId,
) -> Result<(Acting, SignalId, WithdrawReason), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let signal_id = errors.check("signal_id", SignalId::parse(&request.signal_id));
    let acting = parse_acting(
        organisation_id,
        &request.acting_professional_id,
        &mut errors,
    );
    let reason = match pb::WithdrawReason::try_from(request.reason) {
        Ok(pb::WithdrawReason::Unjustified) => Some(WithdrawReason::Unjustified),
        Ok(pb::WithdrawReason::RiskGone) => Some(WithdrawReason::RiskGone),
        Ok(pb::WithdrawReason::Unspecified) | Err(_) => {
            errors.add("reason", "must be UNJUSTIFIED or RISK_GONE");
            None
        }
    };
    errors.into_result()?;
    match (acting, signal_id, reason) {
        (Some(acting), Some(signal_id), Some(reason)) => Ok((acting, signal_id, reason)),
        _ => Err(ValidationErrors::single("request", "is incomplete")),
    }
}

pub(crate) struct UpdateInput {
    pub(crate) informing: Option<InformingRecord>,
    pub(crate) acting: Acting,
    pub(crate) signal_id: SignalId,
    pub(crate) contact: Option<ProfessionalContact>,
    pub(crate) planned_removal_date: Option<Date>,
}

pub(crate) fn parse_update(
    request: &pb::UpdateSignalRequest,
    organisation_id: &crate::domain::OrganisationId,
) -> Result<UpdateInput, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let signal_id = errors.check("signal_id", SignalId::parse(&request.signal_id));
    let acting = parse_acting(
        organisation_id,
        &request.acting_professional_id,
        &mut errors,
    );
    let contact = request
        .professional
        .as_ref()
        .and_then(|contact| parse_contact(Some(contact), &mut errors));
    let planned = errors.check(
        "planned_removal_date",
        optional_date(&request.planned_removal_date),
    );
    let informing = request
        .informing
        .as_ref()
        .and_then(|record| parse_informing(Some(record), &mut errors));
    if request.professional.is_none()
        && request.planned_removal_date.is_empty()
        && request.informing.is_none()
    {
        errors.add(
            "professional",
            "nothing to update: give professional, planned_removal_date or informing",
        );
    }
    errors.into_result()?;
    match (acting, signal_id, planned) {
        (Some(acting), Some(signal_id), Some(planned_removal_date)) => Ok(UpdateInput {
            informing,
            acting,
            signal_id,
            contact,
            planned_removal_date,
        }),
        _ => Err(ValidationErrors::single("request", "is incomplete")),
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

fn state_to_pb(state: SignalState) -> pb::SignalState {
    match state {
        SignalState::Active => pb::SignalState::Active,
        SignalState::Inactive => pb::SignalState::Inactive,
    }
}

pub(crate) fn signal_to_pb(signal: &StoredSignal) -> pb::Signal {
    pb::Signal {
        signal_id: signal.signal_id.to_string(),
        revision: signal.revision.get(),
        organisation_id: signal.organisation_id.to_string(),
        organisation_name: signal.organisation_name.to_string(),
        professional: Some(contact_to_pb(&signal.contact)),
        registered_at: signal.registered_at.to_string(),
        planned_removal_date: signal.planned_removal_date.to_string(),
        state: state_to_pb(signal.state).into(),
        inactive_since: signal
            .inactive_since
            .map(|date| date.to_string())
            .unwrap_or_default(),
        informing: Some(informing_to_pb(&signal.informing)),
    }
}

pub(crate) fn match_to_pb(view: &MatchView) -> pb::Match {
    pb::Match {
        notice_id: view.notice_id.clone(),
        match_type: match view.match_type {
            MatchType::Youth => pb::MatchType::Youth,
            MatchType::Family => pb::MatchType::Family,
        }
        .into(),
        kind: match view.kind {
            NoticeKind::Match => pb::NoticeKind::Match,
            NoticeKind::History => pb::NoticeKind::History,
        }
        .into(),
        signal_id: view.signal_id.to_string(),
        found_at: view.found_at.to_string(),
        counterpart: Some(pb::Counterpart {
            organisation_id: view.counterpart.organisation_id.to_string(),
            organisation_name: view.counterpart.organisation_name.to_string(),
            professional: Some(contact_to_pb(&view.counterpart.contact)),
            signal_id: view.counterpart.signal_id.to_string(),
            state: state_to_pb(view.counterpart.state).into(),
            region_id: view.counterpart.region_id.to_string(),
        }),
        coordination: Some(pb::Coordination {
            regievoerder: match view.coordination.regievoerder {
                None => pb::Party::Unspecified,
                Some(Party::Own) => pb::Party::Own,
                Some(Party::Counterpart) => pb::Party::Counterpart,
            }
            .into(),
            afgestemd_own: view.coordination.afgestemd_own,
            afgestemd_counterpart: view.coordination.afgestemd_counterpart,
        }),
    }
}

/// The page a ListMatches request asks for. The token is the last match of the previous page
/// (`<found_at in microseconds>.<notice id>`): it names a notice of the caller only, and a
/// forged one at most skips or repeats the caller's own matches.
pub(crate) fn parse_match_page(
    page_size: u32,
    page_token: &str,
    errors: &mut ValidationErrors,
) -> Option<crate::store::MatchPage> {
    use crate::domain::bounds::{MATCH_PAGE_DEFAULT, MATCH_PAGE_MAX, page_size as bounded};
    let limit = errors.check(
        "page_size",
        bounded(page_size, MATCH_PAGE_DEFAULT, MATCH_PAGE_MAX),
    )?;
    if page_token.is_empty() {
        return Some(crate::store::MatchPage { after: None, limit });
    }
    let position = page_token
        .split_once('.')
        .and_then(|(found_at, notice_id)| {
            let found_at = found_at.parse::<i64>().ok()?;
            let found_at = jiff::Timestamp::from_microsecond(found_at).ok()?;
            uuid::Uuid::try_parse(notice_id).ok()?;
            Some(crate::store::MatchPosition {
                found_at,
                notice_id: notice_id.to_owned(),
            })
        });
    match position {
        Some(position) => Some(crate::store::MatchPage {
            after: Some(position),
            limit,
        }),
        None => {
            errors.add(
                "page_token",
                "is not a token from a previous ListMatches response",
            );
            None
        }
    }
}

/// The token that continues after `last`.
pub(crate) fn match_page_token(last: &crate::store::MatchPosition) -> String {
    format!("{}.{}", last.found_at.as_microsecond(), last.notice_id)
}

/// The page an ExportYouth request asks for. The token is the last signal of the previous page
/// (`<registered_at in microseconds>.<signal id>`); pages are read within the youth's signals
/// only, so a forged token at most skips or repeats the youth's own signals.
pub(crate) fn parse_export_page(
    page_size: u32,
    page_token: &str,
    errors: &mut ValidationErrors,
) -> Option<crate::store::SignalPage> {
    use crate::domain::bounds::{EXPORT_PAGE_DEFAULT, EXPORT_PAGE_MAX, page_size as bounded};
    let limit = errors.check(
        "page_size",
        bounded(page_size, EXPORT_PAGE_DEFAULT, EXPORT_PAGE_MAX),
    )?;
    if page_token.is_empty() {
        return Some(crate::store::SignalPage { after: None, limit });
    }
    let position = page_token
        .split_once('.')
        .and_then(|(registered_at, signal_id)| {
            let registered_at = registered_at.parse::<i64>().ok()?;
            Some(crate::store::SignalPosition {
                registered_at: jiff::Timestamp::from_microsecond(registered_at).ok()?,
                signal_id: SignalId::parse(signal_id).ok()?,
            })
        });
    match position {
        Some(position) => Some(crate::store::SignalPage {
            after: Some(position),
            limit,
        }),
        None => {
            errors.add(
                "page_token",
                "is not a token from a previous ExportYouth response",
            );
            None
        }
    }
}

/// The token that continues after `last`.
pub(crate) fn export_page_token(last: &StoredSignal) -> String {
    format!("{}.{}", last.registered_at.as_microsecond(), last.signal_id)
}
