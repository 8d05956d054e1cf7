//! The pseudonym service (`vix-node pseudonymizer`, issue 13): evaluates the oblivious PRF of
//! RFC 9497 on elements the regions blinded. It never sees a BSN, and no region sees its keys:
//! a pseudonym exists only where a region and this service worked together, one element at a
//! time, counted per region ([`audit`]) and limited per region ([`rate`]).
//!
//! What a compromised service, region or hub each learns is in `deploy/THREAT_MODEL.md`.

pub mod audit;
pub mod keys;
pub mod rate;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use vix_protocol::pseudonym::v1 as pb;
use vix_protocol::pseudonym::v1::pseudonym_service_server::{
    PseudonymService, PseudonymServiceServer,
};

use crate::domain::clock::Clock;
use crate::domain::{RegionId, ValidationErrors};
use crate::oprf::{ELEMENT_LEN, OprfError};
use crate::telemetry::error_chain;
use crate::tls::{self, PeerIdentity};
use audit::{AuditError, AuditLog, Outcome};
use keys::KeyRing;
use rate::{Buckets, Exhausted};

/// The most elements one call may carry: a region's batch of registrations, not a table.
pub const BATCH_MAX: usize = 1_000;

/// What the service holds while it runs.
pub struct PseudonymizerContext {
    pub keys: KeyRing,
    /// The regions of the organisation registry: the only certificates served.
    pub regions: HashSet<RegionId>,
    pub clock: Arc<dyn Clock>,
    buckets: Mutex<Buckets>,
    audit: Mutex<AuditLog>,
}

impl PseudonymizerContext {
    pub fn new(
        keys: KeyRing,
        regions: HashSet<RegionId>,
        clock: Arc<dyn Clock>,
        buckets: Buckets,
        audit: AuditLog,
    ) -> Self {
        Self {
            keys,
            regions,
            clock,
            buckets: Mutex::new(buckets),
            audit: Mutex::new(audit),
        }
    }

    /// Records a refused call. A failure to write it is logged, not answered: the refusal
    /// stands either way.
    fn audit_refusal(&self, region: &RegionId, elements: u32, outcome: Outcome) {
        let written = self
            .audit
            .lock()
            .map_err(|_| "the audit lock is poisoned".to_owned())
            .and_then(|mut log| {
                log.append(self.clock.now(), region, elements, Vec::new(), outcome)
                    .map_err(|error| error_chain(&error))
            });
        if let Err(error) = written {
            tracing::error!(%region, error, "audit: a refused call could not be recorded");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PseudonymizerError {
    #[error("{0}")]
    PermissionDenied(String),
    #[error("invalid request: {0}")]
    Invalid(ValidationErrors),
    #[error(transparent)]
    Exhausted(#[from] Exhausted),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("{0}")]
    Internal(String),
}

/// The one mapping from the service's errors to gRPC statuses; causes are logged here, once.
impl From<PseudonymizerError> for Status {
    fn from(error: PseudonymizerError) -> Self {
        match error {
            PseudonymizerError::PermissionDenied(message) => Status::permission_denied(message),
            PseudonymizerError::Invalid(errors) => crate::bad_request::invalid_argument(&errors),
            PseudonymizerError::Exhausted(exhausted) => {
                let retry_after = match exhausted {
                    Exhausted::Wait { retry_after, .. } => Some(retry_after),
                    Exhausted::Larger { .. } => None,
                };
                Status::with_error_details(
                    Code::ResourceExhausted,
                    exhausted.to_string(),
                    ErrorDetails::with_retry_info(retry_after),
                )
            }
            // No pseudonym leaves unless its call is on disk in the audit.
            PseudonymizerError::Audit(error) => {
                tracing::error!(error = %error_chain(&error), "audit: an evaluation could not be recorded; refused");
                Status::unavailable("the pseudonym service cannot record its audit; retry")
            }
            PseudonymizerError::Internal(message) => {
                tracing::error!(error = message, "evaluation failed");
                Status::internal("internal error")
            }
        }
    }
}

pub struct PseudonymizerApi {
    context: Arc<PseudonymizerContext>,
}

impl PseudonymizerApi {
    pub fn new(context: Arc<PseudonymizerContext>) -> Self {
        Self { context }
    }

    fn caller<T>(&self, request: &Request<T>) -> Result<RegionId, PseudonymizerError> {
        let identity = tls::peer_identity(request).map_err(PseudonymizerError::PermissionDenied)?;
        let PeerIdentity::Region(region) = identity else {
            return Err(PseudonymizerError::PermissionDenied(
                "only region certificates may use the pseudonym service".into(),
            ));
        };
        if !self.context.regions.contains(&region) {
            return Err(PseudonymizerError::PermissionDenied(
                "this region is not part of the federation".into(),
            ));
        }
        Ok(region)
    }

    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<pb::EvaluateResponse, PseudonymizerError> {
        let region = self.caller(&request)?;
        let blinded = request.into_inner().blinded;
        let mut errors = ValidationErrors::new();
        if blinded.is_empty() || blinded.len() > BATCH_MAX {
            errors.add("blinded", format!("give 1 to {BATCH_MAX} elements"));
        }
        for (index, element) in blinded.iter().enumerate().take(BATCH_MAX) {
            if element.len() != ELEMENT_LEN {
                errors.add(
                    format!("blinded[{index}]"),
                    format!("is not {ELEMENT_LEN} bytes"),
                );
            }
        }
        // At most BATCH_MAX, so it fits.
        let elements = u32::try_from(blinded.len()).unwrap_or(u32::MAX);
        if !errors.is_empty() {
            self.refused(&region, elements, Outcome::Invalid, "invalid");
            return Err(PseudonymizerError::Invalid(errors));
        }
        let now = self.context.clock.now();
        let taken = self
            .context
            .buckets
            .lock()
            .map_err(|_| PseudonymizerError::Internal("the rate-limit lock is poisoned".into()))?
            .take(&region, elements, now);
        if let Err(exhausted) = taken {
            self.refused(&region, elements, Outcome::RateLimited, "rate_limit");
            tracing::warn!(%region, elements, "evaluation refused: rate limit");
            return Err(exhausted.into());
        }
        let context = Arc::clone(&self.context);
        let caller = region.clone();
        // Scalar multiplications and an fsync: off the async threads.
        let evaluated = tokio::task::spawn_blocking(move || {
            let evaluations = match context.keys.evaluate(&blinded) {
                Ok(evaluations) => evaluations,
                Err(OprfError::BatchElement { index }) => {
                    return Ok(Err(index));
                }
                Err(error) => return Err(PseudonymizerError::Internal(error.to_string())),
            };
            let versions = evaluations
                .iter()
                .map(|(version, _)| version.get())
                .collect();
            context
                .audit
                .lock()
                .map_err(|_| PseudonymizerError::Internal("the audit lock is poisoned".into()))?
                .append(now, &caller, elements, versions, Outcome::Evaluated)?;
            Ok(Ok(evaluations))
        })
        .await
        .map_err(|error| PseudonymizerError::Internal(error.to_string()))??;
        let evaluations = match evaluated {
            Ok(evaluations) => evaluations,
            Err(index) => {
                self.refused(&region, elements, Outcome::Invalid, "invalid");
                return Err(PseudonymizerError::Invalid(ValidationErrors::single(
                    format!("blinded[{index}]"),
                    "is not a ristretto255 element",
                )));
            }
        };
        metrics::counter!("vix_pseudonym_elements_total", "region" => region.to_string())
            .increment(u64::from(elements));
        tracing::debug!(%region, elements, "evaluated");
        Ok(pb::EvaluateResponse {
            evaluations: evaluations
                .into_iter()
                .map(|(version, evaluated)| pb::KeyEvaluation {
                    key_version: version.get(),
                    evaluated: evaluated.iter().map(|element| element.to_vec()).collect(),
                })
                .collect(),
        })
    }

    fn refused(&self, region: &RegionId, elements: u32, outcome: Outcome, reason: &'static str) {
        metrics::counter!(
            "vix_pseudonym_refusals_total",
            "region" => region.to_string(),
            "reason" => reason,
        )
        .increment(1);
        self.context.audit_refusal(region, elements, outcome);
    }
}

#[tonic::async_trait]
impl PseudonymService for PseudonymizerApi {
    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        Ok(Response::new(
            PseudonymizerApi::evaluate(self, request).await?,
        ))
    }
}

/// What the service's port serves, besides health and reflection.
const SERVICES: &[&str] = &[vix_protocol::pseudonym::v1::pseudonym_service_server::SERVICE_NAME];

/// Serves the pseudonym service on `listener` until `shutdown` completes. `api` is normally
/// [`PseudonymizerApi`]; tests may wrap it to observe what the service receives.
pub async fn run<T: PseudonymService>(
    listener: TcpListener,
    tls: tls::ServerTls,
    limits: crate::limits::ServerLimits,
    api: T,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<PseudonymServiceServer<T>>()
        .await;
    limits
        .apply(tls.server())
        .layer(crate::metrics::RpcMetricsLayer)
        .add_service(health_service)
        .add_optional_service(crate::reflection::v1(SERVICES))
        .add_optional_service(crate::reflection::v1alpha(SERVICES))
        .add_service(
            PseudonymServiceServer::new(api)
                .max_decoding_message_size(crate::limits::PSEUDONYM_REQUEST_MAX_BYTES)
                .max_encoding_message_size(crate::limits::PSEUDONYM_RESPONSE_MAX_BYTES),
        )
        .serve_with_incoming_shutdown(tls::incoming(listener, &tls), shutdown)
        .await
}
