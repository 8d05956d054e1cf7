//! `vix.region.v1.RightsService`: the rights of youths and parents (DOMAIN.md section 8), for the
//! officers of the municipalities this region serves, each for the youths living in it. Shares
//! the region API's error mapping.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use vix_protocol::region::v1 as pb;
use vix_protocol::region::v1::rights_service_server::RightsService;

use super::{RegionContext, RegionError, convert};
use crate::domain::audit::{Actor, AuditAction, AuditEntry};
use crate::domain::bounds;
use crate::domain::scope::{self, Residence};
use crate::domain::{
    AltYouthId, Bsn, LiveKeys, MunicipalityCode, SignalId, SubjectKey, ValidationErrors, YouthRef,
};
use crate::store::{SignalStore, SignalUpdate};
use crate::tls::{self, PeerIdentity};

/// Longest order or case reference a municipality may give.
const REFERENCE_MAX_LEN: usize = 64;

pub struct RightsApi<S> {
    context: Arc<RegionContext<S>>,
}

impl<S> RightsApi<S> {
    pub fn new(context: Arc<RegionContext<S>>) -> Self {
        Self { context }
    }
}

/// The calling municipality, from its certificate.
fn municipality<S, T>(
    context: &RegionContext<S>,
    request: &Request<T>,
) -> Result<MunicipalityCode, RegionError> {
    let identity = tls::peer_identity(request).map_err(RegionError::PermissionDenied)?;
    match identity {
        PeerIdentity::Municipality { code, .. } if context.municipalities.contains(&code) => {
            Ok(code)
        }
        PeerIdentity::Municipality { .. } => Err(RegionError::PermissionDenied(
            "this municipality is not served by this region".into(),
        )),
        _ => Err(RegionError::PermissionDenied(
            "only municipality certificates may use the rights API".into(),
        )),
    }
}

/// An order reference: an identifier, not free text, so it cannot carry personal data.
pub(crate) fn parse_reference(input: &str, errors: &mut ValidationErrors) -> Option<String> {
    let ok = !input.is_empty()
        && input.len() <= REFERENCE_MAX_LEN
        && input
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if !ok {
        errors.add(
            "reference",
            "is required: letters, digits, '-', '_', '.', '/'; at most 64",
        );
        return None;
    }
    Some(input.to_owned())
}

pub(crate) fn parse_officer(
    code: &MunicipalityCode,
    input: &str,
    errors: &mut ValidationErrors,
) -> Option<Actor> {
    errors
        .check(
            "officer_id",
            crate::domain::contact::parse_professional_id(input),
        )
        .map(|officer_id| Actor::Municipality {
            code: code.clone(),
            officer_id,
        })
}

enum YouthInput<'a> {
    Bsn(&'a str),
    Alt(&'a pb::AltYouthId),
}

/// The youth a rights request names, parsed.
enum NamedYouth {
    Bsn(Bsn),
    Alt(AltYouthId),
}

fn parse_youth(youth: Option<YouthInput<'_>>, errors: &mut ValidationErrors) -> Option<NamedYouth> {
    match youth {
        None => {
            errors.add("youth", "either bsn or alt_youth_id is required");
            None
        }
        Some(YouthInput::Bsn(bsn)) => errors.check("bsn", Bsn::parse(bsn)).map(NamedYouth::Bsn),
        Some(YouthInput::Alt(alt)) => errors
            .check("alt_youth_id", AltYouthId::parse(&alt.issuer, &alt.number))
            .map(NamedYouth::Alt),
    }
}

impl<S: SignalStore> RightsApi<S> {
    /// The youth's subject keys under every live version, once `code` is shown to act for
    /// them (`domain::scope`): an officer of another municipality is refused before anything of
    /// the youth is read or pseudonymised.
    async fn youth_in_scope(
        &self,
        code: &MunicipalityCode,
        youth: &NamedYouth,
    ) -> Result<LiveKeys<SubjectKey>, RegionError> {
        let (residence, youth) = match youth {
            NamedYouth::Bsn(bsn) => (
                Residence::Registered(
                    self.context
                        .registry
                        .lookup(bsn)?
                        .and_then(|person| person.municipality),
                ),
                YouthRef::Bsn(bsn),
            ),
            NamedYouth::Alt(id) => (Residence::Unregistered, YouthRef::Alt(id)),
        };
        scope::check(code, &residence).map_err(|error| {
            tracing::info!(municipality = %code, "rights request for a youth of another municipality refused");
            RegionError::PermissionDenied(error.to_string())
        })?;
        let pseudonyms = self.context.pseudonymiser.pseudonymise(youth, &[]).await?;
        Ok(pseudonyms.subject)
    }

    async fn export(
        &self,
        request: Request<pb::ExportYouthRequest>,
    ) -> Result<pb::ExportYouthResponse, RegionError> {
        let code = municipality(&self.context, &request)?;
        self.context.ensure_swept().await?;
        let body = request.get_ref();
        let mut errors = ValidationErrors::new();
        let youth = body.youth.as_ref().map(|youth| match youth {
            pb::export_youth_request::Youth::Bsn(bsn) => YouthInput::Bsn(bsn),
            pb::export_youth_request::Youth::AltYouthId(alt) => YouthInput::Alt(alt),
        });
        let youth = parse_youth(youth, &mut errors);
        let actor = parse_officer(&code, &body.officer_id, &mut errors);
        let page = convert::parse_export_page(body.page_size, &body.page_token, &mut errors);
        errors.into_result()?;
        let (Some(youth), Some(actor), Some(page)) = (youth, actor, page) else {
            return Err(ValidationErrors::single("request", "is incomplete").into());
        };
        let subject_keys = self.youth_in_scope(&code, &youth).await?;
        let limit = page.limit;
        let signals = self
            .context
            .store
            .signals_of_subject(&subject_keys, page)
            .await?;
        let mut exported = Vec::with_capacity(signals.len());
        for signal in &signals {
            let notices = self
                .context
                .store
                .matches(
                    &signal.organisation_id,
                    Some(signal.signal_id),
                    crate::store::MatchPage::all(),
                )
                .await?;
            exported.push(pb::ExportedSignal {
                signal: Some(convert::signal_to_pb(signal)),
                notices: notices.iter().map(convert::match_to_pb).collect(),
            });
        }
        let next_page_token = match signals.last() {
            Some(last) if signals.len() >= usize::try_from(limit).unwrap_or(usize::MAX) => {
                convert::export_page_token(last)
            }
            _ => String::new(),
        };
        // Logged before the data goes out: one entry per page, naming that page's signals.
        self.context
            .store
            .record_audit(AuditEntry {
                at: self.context.clock.now(),
                action: AuditAction::Export,
                actor,
                signal_ids: signals.iter().map(|s| s.signal_id).collect(),
                detail: None,
            })
            .await?;
        tracing::info!(municipality = %code, signals = exported.len(), "youth exported");
        Ok(pb::ExportYouthResponse {
            signals: exported,
            next_page_token,
        })
    }

    async fn correct(
        &self,
        request: Request<pb::CorrectSignalRequest>,
    ) -> Result<pb::CorrectSignalResponse, RegionError> {
        let code = municipality(&self.context, &request)?;
        self.context.ensure_swept().await?;
        let body = request.get_ref();
        let mut errors = ValidationErrors::new();
        let youth = body.youth.as_ref().map(|youth| match youth {
            pb::correct_signal_request::Youth::Bsn(bsn) => YouthInput::Bsn(bsn),
            pb::correct_signal_request::Youth::AltYouthId(alt) => YouthInput::Alt(alt),
        });
        let youth = parse_youth(youth, &mut errors);
        let signal_id = errors.check("signal_id", SignalId::parse(&body.signal_id));
        let contact = body
            .professional
            .as_ref()
            .and_then(|contact| convert::parse_contact(Some(contact), &mut errors));
        let planned = match body.planned_removal_date.as_str() {
            "" => Some(None),
            date => errors
                .check("planned_removal_date", convert::parse_date(date))
                .map(Some),
        };
        let informing = body
            .informing
            .as_ref()
            .and_then(|record| convert::parse_informing(Some(record), &mut errors));
        if body.professional.is_none()
            && body.planned_removal_date.is_empty()
            && body.informing.is_none()
        {
            errors.add(
                "professional",
                "nothing to correct: give professional, planned_removal_date or informing",
            );
        }
        let actor = parse_officer(&code, &body.officer_id, &mut errors);
        let reference = parse_reference(&body.reference, &mut errors);
        errors.into_result()?;
        let (
            Some(youth),
            Some(signal_id),
            Some(planned_removal_date),
            Some(actor),
            Some(reference),
        ) = (youth, signal_id, planned, actor, reference)
        else {
            return Err(ValidationErrors::single("request", "is incomplete").into());
        };
        let subject_keys = self.youth_in_scope(&code, &youth).await?;
        let correction = SignalUpdate {
            contact,
            planned_removal_date,
            informing,
        };
        let signal = self
            .context
            .store
            .correct(
                &subject_keys,
                signal_id,
                correction,
                &actor,
                &reference,
                self.context.clock.now(),
            )
            .await?;
        self.context.outbox_ready.notify_one();
        tracing::info!(municipality = %code, %signal_id, "signal corrected");
        Ok(pb::CorrectSignalResponse {
            signal: Some(convert::signal_to_pb(&signal)),
        })
    }

    async fn erase(
        &self,
        request: Request<pb::OrderErasureRequest>,
    ) -> Result<pb::OrderErasureResponse, RegionError> {
        let code = municipality(&self.context, &request)?;
        self.context.ensure_swept().await?;
        let body = request.get_ref();
        let mut errors = ValidationErrors::new();
        let youth = body.youth.as_ref().map(|youth| match youth {
            pb::order_erasure_request::Youth::Bsn(bsn) => YouthInput::Bsn(bsn),
            pb::order_erasure_request::Youth::AltYouthId(alt) => YouthInput::Alt(alt),
        });
        let youth = parse_youth(youth, &mut errors);
        // Bounded before each id is parsed, so a huge list costs nothing more.
        let only: Option<Vec<SignalId>> = match errors.check(
            "signal_ids",
            bounds::list_len(body.signal_ids.len(), bounds::ERASURE_SIGNAL_IDS_MAX),
        ) {
            None => None,
            Some(()) => body
                .signal_ids
                .iter()
                .enumerate()
                .map(|(i, id)| errors.check(&format!("signal_ids[{i}]"), SignalId::parse(id)))
                .collect(),
        };
        let actor = parse_officer(&code, &body.officer_id, &mut errors);
        let reference = parse_reference(&body.reference, &mut errors);
        errors.into_result()?;
        let (Some(youth), Some(only), Some(actor), Some(reference)) =
            (youth, only, actor, reference)
        else {
            return Err(ValidationErrors::single("request", "is incomplete").into());
        };
        let subject_keys = self.youth_in_scope(&code, &youth).await?;
        let erased = self
            .context
            .store
            .erase(
                &subject_keys,
                &only,
                &actor,
                &reference,
                self.context.clock.now(),
            )
            .await?;
        self.context.outbox_ready.notify_one();
        tracing::info!(municipality = %code, erased = erased.len(), "erasure order carried out");
        Ok(pb::OrderErasureResponse {
            erased_signal_ids: erased.iter().map(ToString::to_string).collect(),
        })
    }
}

#[tonic::async_trait]
impl<S: SignalStore> RightsService for RightsApi<S> {
    async fn export_youth(
        &self,
        request: Request<pb::ExportYouthRequest>,
    ) -> Result<Response<pb::ExportYouthResponse>, Status> {
        Ok(Response::new(self.export(request).await?))
    }

    async fn correct_signal(
        &self,
        request: Request<pb::CorrectSignalRequest>,
    ) -> Result<Response<pb::CorrectSignalResponse>, Status> {
        Ok(Response::new(self.correct(request).await?))
    }

    async fn order_erasure(
        &self,
        request: Request<pb::OrderErasureRequest>,
    ) -> Result<Response<pb::OrderErasureResponse>, Status> {
        Ok(Response::new(self.erase(request).await?))
    }
}
