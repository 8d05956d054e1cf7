//! Entry points for the coverage-guided fuzz targets in `fuzz/` (not an API for anything else).
//!
//! Each takes the raw bytes a network peer or a file could hold, runs them through the same
//! parsing and validation the node uses, and returns the outcome as text. A panic anywhere is a
//! bug: every input must end in `Ok` or a clear `Err`. Where a parsed value is rendered back
//! (to a wire message or a page token), the rendering must parse again to the same value; those
//! checks panic on purpose, so that the fuzzer reports them.
//!
//! The handlers of GetSignal, ListMatches, Coordinate and the rights calls check their fields
//! inline; the functions here follow them step by step with the same building blocks.

use std::sync::LazyLock;

use jiff::ToSpan;
use jiff::civil::Date;
use prost::Message;
use vix_protocol::federation::v1 as fed;
use vix_protocol::region::v1 as pb;

use crate::domain::{
    AltYouthId, Bsn, KeyVersion, MunicipalityCode, OrganisationId, OrganisationRegistry, RegionId,
    SignalId, ValidationErrors,
};
use crate::hub::convert as hub_convert;
use crate::pseudonym::HmacPseudonymiser;
use crate::region::convert;
use crate::region::rights;

/// What one input came to: `Ok` with a short description, or the error as the node shows it.
pub type Outcome = Result<String, String>;

/// The region API messages the `region_request` target decodes, chosen by the input's first byte.
pub const REGION_KINDS: [&str; 9] = [
    "RegisterSignal",
    "UpdateSignal",
    "WithdrawSignal",
    "ListMatches",
    "GetSignal",
    "Coordinate",
    "ExportYouth",
    "CorrectSignal",
    "OrderErasure",
];

/// The federation messages the `federation_request` target decodes, by the first byte.
pub const FEDERATION_KINDS: [&str; 2] = ["SubmitSignals", "SubmitCoordination"];

/// The organisation that calls the region API, as its certificate would name it.
const ORGANISATION: &str = "jgz-north";
/// The municipality whose officer calls the rights API.
const MUNICIPALITY: &str = "0518";
/// The first `today` a region request can see; two input bytes add up to 65535 days.
const TODAY_BASE: Date = Date::constant(2000, 1, 1);

fn errors(errors: ValidationErrors) -> String {
    errors.to_string()
}

const NOT_PROTOBUF: &str = "not a protobuf message";

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, String> {
    M::decode(bytes).map_err(|error| format!("{NOT_PROTOBUF}: {error}"))
}

/// A region API request: byte 0 picks the message (see [`REGION_KINDS`]), bytes 1–2 the day
/// the node takes as today, the rest is the protobuf body.
pub fn region_request(data: &[u8]) -> Outcome {
    let [kind, day_high, day_low, body @ ..] = data else {
        return Err("too short".to_owned());
    };
    let days = i64::from(u16::from_be_bytes([*day_high, *day_low]));
    let today = TODAY_BASE
        .checked_add(days.days())
        .map_err(|error| format!("no such day: {error}"))?;
    let organisation_id = OrganisationId::parse(ORGANISATION).map_err(|e| e.to_string())?;
    let municipality = MunicipalityCode::parse(MUNICIPALITY).map_err(|e| e.to_string())?;
    let outcome = region_body(*kind, body, today, &organisation_id, &municipality);
    // prost's own decoding errors may quote a field key; the node's checks must quote nothing.
    if let Err(error) = &outcome
        && !error.starts_with(NOT_PROTOBUF)
    {
        assert_no_bsn(error);
    }
    outcome
}

/// An error is logged and sent back: it never repeats a submitted value, so no BSN (nine
/// digits) can be in it.
fn assert_no_bsn(error: &str) {
    let longest = error
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(longest < 9, "an error holds a number like a BSN: {error}");
}

fn region_body(
    kind: u8,
    body: &[u8],
    today: Date,
    organisation_id: &OrganisationId,
    municipality: &MunicipalityCode,
) -> Outcome {
    match usize::from(kind) % REGION_KINDS.len() {
        0 => register(&decode(body)?, today),
        1 => update(&decode(body)?, organisation_id),
        2 => convert::parse_withdraw(&decode(body)?, organisation_id)
            .map(|(acting, signal_id, reason)| format!("{acting:?} {signal_id} {reason:?}"))
            .map_err(errors),
        3 => list_matches(&decode(body)?, organisation_id),
        4 => get_signal(&decode(body)?, organisation_id),
        5 => coordinate(&decode(body)?, organisation_id),
        6 => export_youth(&decode(body)?, municipality),
        7 => correct_signal(&decode(body)?, municipality),
        _ => order_erasure(&decode(body)?, municipality),
    }
}

/// A parsed contact and informing record must come back unchanged through the wire form.
fn check_round_trips(
    contact: Option<&crate::domain::ProfessionalContact>,
    informing: Option<&crate::domain::informing::InformingRecord>,
) {
    if let Some(contact) = contact {
        let mut errors = ValidationErrors::new();
        let again = convert::parse_contact(Some(&convert::contact_to_pb(contact)), &mut errors);
        assert_eq!(
            again.as_ref(),
            Some(contact),
            "contact round trip: {errors}"
        );
    }
    if let Some(informing) = informing {
        let mut errors = ValidationErrors::new();
        let again =
            convert::parse_informing(Some(&convert::informing_to_pb(informing)), &mut errors);
        assert_eq!(
            again.as_ref(),
            Some(informing),
            "informing round trip: {errors}"
        );
    }
}

fn register(request: &pb::RegisterSignalRequest, today: Date) -> Outcome {
    let input = convert::parse_register(request, today).map_err(errors)?;
    check_round_trips(Some(&input.contact), Some(&input.informing));
    Ok(format!("{input:?}"))
}

fn update(request: &pb::UpdateSignalRequest, organisation_id: &OrganisationId) -> Outcome {
    let input = convert::parse_update(request, organisation_id).map_err(errors)?;
    check_round_trips(input.contact.as_ref(), input.informing.as_ref());
    Ok(format!(
        "{:?} {} {:?}",
        input.acting, input.signal_id, input.planned_removal_date
    ))
}

/// As `RegionApi::list_matches` checks its request.
fn list_matches(request: &pb::ListMatchesRequest, organisation_id: &OrganisationId) -> Outcome {
    let mut errors = ValidationErrors::new();
    let signal_id = match request.signal_id.as_str() {
        "" => None,
        id => errors.check("signal_id", SignalId::parse(id)),
    };
    let acting = convert::parse_acting(
        organisation_id,
        &request.acting_professional_id,
        &mut errors,
    );
    let page = convert::parse_match_page(request.page_size, &request.page_token, &mut errors);
    errors.into_result().map_err(self::errors)?;
    let (Some(acting), Some(page)) = (acting, page) else {
        return Err("request is incomplete".to_owned());
    };
    if let Some(after) = &page.after {
        // The token of the next page names the same place.
        let token = convert::match_page_token(after);
        let mut errors = ValidationErrors::new();
        let again = convert::parse_match_page(page.limit, &token, &mut errors);
        assert_eq!(
            again.as_ref(),
            Some(&page),
            "page token round trip: {errors}"
        );
    }
    Ok(format!("{signal_id:?} {acting:?} {page:?}"))
}

/// As `RegionApi::get` checks its request.
fn get_signal(request: &pb::GetSignalRequest, organisation_id: &OrganisationId) -> Outcome {
    let mut errors = ValidationErrors::new();
    let signal_id = errors.check("signal_id", SignalId::parse(&request.signal_id));
    let acting = convert::parse_acting(
        organisation_id,
        &request.acting_professional_id,
        &mut errors,
    );
    errors.into_result().map_err(self::errors)?;
    match (signal_id, acting) {
        (Some(signal_id), Some(acting)) => Ok(format!("{signal_id} {acting:?}")),
        _ => Err("request is incomplete".to_owned()),
    }
}

/// As `RegionApi::coordinate` checks its request.
fn coordinate(request: &pb::CoordinateRequest, organisation_id: &OrganisationId) -> Outcome {
    use crate::domain::coordination::{CoordinationAction, Party};
    let mut errors = ValidationErrors::new();
    if uuid::Uuid::try_parse(&request.notice_id).is_err() {
        errors.add("notice_id", "is not a notice id (a UUID)");
    }
    let acting = convert::parse_acting(
        organisation_id,
        &request.acting_professional_id,
        &mut errors,
    );
    let action = match request.action {
        Some(pb::coordinate_request::Action::NameRegievoerder(party)) => {
            match pb::Party::try_from(party) {
                Ok(pb::Party::Own) => Some(CoordinationAction::NameRegievoerder(Party::Own)),
                Ok(pb::Party::Counterpart) => {
                    Some(CoordinationAction::NameRegievoerder(Party::Counterpart))
                }
                _ => {
                    errors.add("name_regievoerder", "must be OWN or COUNTERPART");
                    None
                }
            }
        }
        Some(pb::coordinate_request::Action::MarkAfgestemd(true)) => {
            Some(CoordinationAction::MarkAfgestemd)
        }
        _ => {
            errors.add(
                "action",
                "name_regievoerder or mark_afgestemd = true is required",
            );
            None
        }
    };
    errors.into_result().map_err(self::errors)?;
    match (acting, action) {
        (Some(acting), Some(action)) => Ok(format!("{acting:?} {action:?}")),
        _ => Err("request is incomplete".to_owned()),
    }
}

/// A fixed federation key: the rights calls pseudonymise the youth they name.
static PSEUDONYMISER: LazyLock<Option<HmacPseudonymiser>> = LazyLock::new(|| {
    let version = KeyVersion::new(1).ok()?;
    HmacPseudonymiser::new(&[7; 32], version).ok()
});

enum YouthInput<'a> {
    Bsn(&'a str),
    Alt(&'a pb::AltYouthId),
}

/// As `RightsApi::subject_key`.
fn subject_key(
    youth: Option<YouthInput<'_>>,
    errors: &mut ValidationErrors,
) -> Option<crate::domain::SubjectKey> {
    let pseudonymiser = PSEUDONYMISER.as_ref()?;
    match youth {
        None => {
            errors.add("youth", "either bsn or alt_youth_id is required");
            None
        }
        Some(YouthInput::Bsn(bsn)) => errors
            .check("bsn", Bsn::parse(bsn))
            .map(|bsn| pseudonymiser.subject_key(&bsn)),
        Some(YouthInput::Alt(alt)) => errors
            .check("alt_youth_id", AltYouthId::parse(&alt.issuer, &alt.number))
            .map(|id| pseudonymiser.alt_subject_keys(&id).current()),
    }
}

/// As `RightsApi::export` checks its request.
fn export_youth(request: &pb::ExportYouthRequest, code: &MunicipalityCode) -> Outcome {
    let mut errors = ValidationErrors::new();
    let youth = request.youth.as_ref().map(|youth| match youth {
        pb::export_youth_request::Youth::Bsn(bsn) => YouthInput::Bsn(bsn),
        pb::export_youth_request::Youth::AltYouthId(alt) => YouthInput::Alt(alt),
    });
    let subject_key = subject_key(youth, &mut errors);
    let actor = rights::parse_officer(code, &request.officer_id, &mut errors);
    errors.into_result().map_err(self::errors)?;
    match (subject_key, actor) {
        (Some(subject_key), Some(actor)) => Ok(format!("{subject_key:?} {actor:?}")),
        _ => Err("request is incomplete".to_owned()),
    }
}

/// As `RightsApi::correct` checks its request.
fn correct_signal(request: &pb::CorrectSignalRequest, code: &MunicipalityCode) -> Outcome {
    let mut errors = ValidationErrors::new();
    let signal_id = errors.check("signal_id", SignalId::parse(&request.signal_id));
    let contact = request
        .professional
        .as_ref()
        .and_then(|contact| convert::parse_contact(Some(contact), &mut errors));
    let planned = match request.planned_removal_date.as_str() {
        "" => Some(None),
        date => errors
            .check("planned_removal_date", convert::parse_date(date))
            .map(Some),
    };
    let informing = request
        .informing
        .as_ref()
        .and_then(|record| convert::parse_informing(Some(record), &mut errors));
    if request.professional.is_none()
        && request.planned_removal_date.is_empty()
        && request.informing.is_none()
    {
        errors.add(
            "professional",
            "nothing to correct: give professional, planned_removal_date or informing",
        );
    }
    let actor = rights::parse_officer(code, &request.officer_id, &mut errors);
    let reference = rights::parse_reference(&request.reference, &mut errors);
    errors.into_result().map_err(self::errors)?;
    check_round_trips(contact.as_ref(), informing.as_ref());
    match (signal_id, planned, actor, reference) {
        (Some(signal_id), Some(planned), Some(actor), Some(reference)) => {
            Ok(format!("{signal_id} {planned:?} {actor:?} {reference}"))
        }
        _ => Err("request is incomplete".to_owned()),
    }
}

/// As `RightsApi::erase` checks its request.
fn order_erasure(request: &pb::OrderErasureRequest, code: &MunicipalityCode) -> Outcome {
    let mut errors = ValidationErrors::new();
    let youth = request.youth.as_ref().map(|youth| match youth {
        pb::order_erasure_request::Youth::Bsn(bsn) => YouthInput::Bsn(bsn),
        pb::order_erasure_request::Youth::AltYouthId(alt) => YouthInput::Alt(alt),
    });
    let subject_key = subject_key(youth, &mut errors);
    let only: Option<Vec<SignalId>> = request
        .signal_ids
        .iter()
        .enumerate()
        .map(|(i, id)| errors.check(&format!("signal_ids[{i}]"), SignalId::parse(id)))
        .collect();
    let actor = rights::parse_officer(code, &request.officer_id, &mut errors);
    let reference = rights::parse_reference(&request.reference, &mut errors);
    errors.into_result().map_err(self::errors)?;
    match (subject_key, only, actor, reference) {
        (Some(subject_key), Some(only), Some(actor), Some(reference)) => Ok(format!(
            "{subject_key:?} {} signals {actor:?} {reference}",
            only.len()
        )),
        _ => Err("request is incomplete".to_owned()),
    }
}

/// The organisation registry the hub checks a fuzzed batch against, and the calling region.
const FEDERATION_REGISTRY: &str = r#"
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
const FEDERATION_CALLER: &str = "south";

/// A request of a region to the hub: byte 0 picks the message (see [`FEDERATION_KINDS`]), the
/// rest is the protobuf body.
pub fn federation_request(data: &[u8]) -> Outcome {
    let [kind, body @ ..] = data else {
        return Err("too short".to_owned());
    };
    match usize::from(*kind) % FEDERATION_KINDS.len() {
        0 => {
            let request: fed::SubmitSignalsRequest = decode(body)?;
            static REGISTRY: LazyLock<Result<OrganisationRegistry, String>> = LazyLock::new(|| {
                OrganisationRegistry::parse_toml(FEDERATION_REGISTRY).map_err(|e| e.to_string())
            });
            let registry = REGISTRY.as_ref().map_err(Clone::clone)?;
            let caller = RegionId::parse(FEDERATION_CALLER).map_err(|e| e.to_string())?;
            let events = hub_convert::parse_events(&request.events, &caller, registry)
                .map_err(|error| error.to_string())?;
            Ok(format!("{} events", events.len()))
        }
        _ => {
            let request: fed::SubmitCoordinationRequest = decode(body)?;
            submit_coordination(&request)
        }
    }
}

/// As `HubApi::coordinate` checks its request.
fn submit_coordination(request: &fed::SubmitCoordinationRequest) -> Outcome {
    let changes = &request.changes;
    if changes.len() > hub_convert::BATCH_EVENTS_MAX {
        return Err("too many changes".to_owned());
    }
    let mut errors = ValidationErrors::new();
    let parsed: Vec<_> = changes
        .iter()
        .enumerate()
        .map(|(i, change)| {
            hub_convert::coordination_from_pb(change, &format!("changes[{i}]"), &mut errors)
        })
        .collect();
    errors.into_result().map_err(self::errors)?;
    let parsed: Vec<_> = parsed.into_iter().flatten().collect();
    for change in &parsed {
        // The hub relays a change to the other region in the same form.
        let mut errors = ValidationErrors::new();
        let again = hub_convert::coordination_from_pb(
            &hub_convert::coordination_to_pb(change),
            "again",
            &mut errors,
        );
        assert_eq!(
            again.as_ref(),
            Some(change),
            "coordination round trip: {errors}"
        );
    }
    Ok(format!("{} changes", parsed.len()))
}

/// One entry of the hub's notice log as a region node receives it (or reads it back from a
/// dead letter): a protobuf `NoticeLogEntry`. What the region accepts, the hub's rendering of it must give back.
pub fn notice_log_entry(data: &[u8]) -> Outcome {
    let entry = crate::region::notice_consumer::entry_from_bytes(data)
        .map_err(|error| error.to_string())?;
    let again = crate::region::notice_consumer::entry_from_pb(hub_convert::entry_to_pb(&entry));
    match again {
        Ok(again) => assert_eq!(again, entry, "notice log entry round trip"),
        Err(error) => panic!("notice log entry round trip: {error}"),
    }
    Ok(format!("{entry:?}"))
}

/// The configuration: TOML text, then (after a NUL byte, if any) `VIX_` variables, one
/// `NAME=value` a line.
pub fn config(data: &[u8]) -> Outcome {
    let text = std::str::from_utf8(data).map_err(|error| error.to_string())?;
    let (toml, env) = text.split_once('\0').unwrap_or((text, ""));
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    crate::config::load_str(toml, env)
        .map(|settings| format!("{settings:?}"))
        .map_err(|error| error.to_string())
}

/// The person registry file (JSON).
pub fn person_registry(data: &[u8]) -> Outcome {
    let text = std::str::from_utf8(data).map_err(|error| error.to_string())?;
    crate::person_registry::JsonPersonRegistry::from_json(text, "fuzz.json")
        .map(|registry| format!("{} persons", registry.len()))
        .map_err(|error| error.to_string())
}

/// The BRP mutations file (JSON lines).
pub fn mutations(data: &[u8]) -> Outcome {
    let text = std::str::from_utf8(data).map_err(|error| error.to_string())?;
    let outcome = crate::mutations::parse(text)
        .map(|mutations| format!("{} mutations", mutations.len()))
        .map_err(|error| error.to_string());
    if let Err(error) = &outcome {
        assert_no_bsn(error);
    }
    outcome
}

/// One fuzz target's entry point.
pub type Target = fn(&[u8]) -> Outcome;

/// The fuzz targets by name, as `fuzz/fuzz_targets/` and `fuzz/seeds/` name them.
pub const TARGETS: [(&str, Target); 6] = [
    ("region_request", region_request),
    ("federation_request", federation_request),
    ("notice_log_entry", notice_log_entry),
    ("config", config),
    ("person_registry", person_registry),
    ("mutations", mutations),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed seed of every fuzz target is a valid example: it must be accepted, so
    /// the seeds keep reaching the deep paths as the parsers change.
    #[test]
    fn every_seed_is_accepted() {
        let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
        let mut count = 0;
        for (target, run) in TARGETS {
            let dir = seeds.join(target);
            let mut entries: Vec<_> = std::fs::read_dir(&dir)
                .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
                .map(|entry| entry.unwrap().path())
                .collect();
            entries.sort();
            assert!(!entries.is_empty(), "no seeds for {target}");
            for path in entries {
                let data = std::fs::read(&path).unwrap();
                if let Err(error) = run(&data) {
                    panic!("{}: {error}", path.display());
                }
                count += 1;
            }
        }
        assert!(count >= TARGETS.len());
    }

    #[test]
    fn garbage_is_an_error() {
        for (target, run) in TARGETS {
            // Not UTF-8, and a protobuf varint cut short.
            let data = b"\xff\xff\xff\xff";
            assert!(run(data).is_err(), "{target} accepted {data:?}");
        }
    }
}
