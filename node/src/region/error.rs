//! The one mapping from region-service errors to gRPC statuses. Causes are logged here, once;
//! the caller sees a clear message for its own mistakes and nothing internal otherwise.

use tonic::Status;

use crate::bad_request::invalid_argument;

use crate::domain::registry::RegistryError;
use crate::domain::{PseudonymError, ValidationErrors};
use crate::store::StoreError;

/// The answer to a signal id the caller may not see, whether or not it exists.
const NO_SUCH_SIGNAL: &str = "no such signal";

#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    /// The caller's certificate does not let it use this service.
    #[error("{0}")]
    PermissionDenied(String),
    #[error("invalid request: {0}")]
    Invalid(ValidationErrors),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Pseudonyms(#[from] PseudonymError),
}

impl From<ValidationErrors> for RegionError {
    fn from(errors: ValidationErrors) -> Self {
        Self::Invalid(errors)
    }
}

impl From<RegionError> for Status {
    fn from(error: RegionError) -> Self {
        match error {
            RegionError::PermissionDenied(message) => Status::permission_denied(message),
            RegionError::Invalid(errors) => invalid_argument(&errors),
            RegionError::NotFound(message) => Status::not_found(message),
            RegionError::FailedPrecondition(message) => Status::failed_precondition(message),
            // Another organisation's signal (or match) is answered exactly as a missing one:
            // a different answer would tell the caller that the id exists.
            RegionError::Store(StoreError::NotFound | StoreError::NotOwner) => {
                Status::not_found(NO_SUCH_SIGNAL)
            }
            RegionError::Store(StoreError::NoSuchMatch) => Status::not_found("no such match"),
            RegionError::Store(error @ StoreError::Deceased) => {
                Status::failed_precondition(error.to_string())
            }
            RegionError::Store(error @ StoreError::RequestMismatch) => {
                Status::failed_precondition(error.to_string())
            }
            RegionError::Store(StoreError::Lifecycle(error)) => {
                Status::failed_precondition(error.to_string())
            }
            RegionError::Store(StoreError::Informing(error)) => {
                invalid_argument(&ValidationErrors::single("informing", error.to_string()))
            }
            RegionError::Store(StoreError::RemovalDate(error)) => invalid_argument(
                &ValidationErrors::single("planned_removal_date", error.to_string()),
            ),
            RegionError::Store(error) if error.is_transient() => {
                log_cause(&error);
                Status::unavailable("the region node is busy; retry")
            }
            RegionError::Registry(error) => {
                log_cause(&error);
                Status::unavailable("the person registry is unavailable; retry")
            }
            // Nothing was stored: the caller sends the same request again later.
            RegionError::Pseudonyms(error @ PseudonymError::Unavailable(_)) => {
                tracing::warn!(error = %error, "request refused: no pseudonyms");
                Status::unavailable(
                    "the pseudonym service is unavailable; nothing was stored; retry",
                )
            }
            RegionError::Pseudonyms(error @ PseudonymError::RateLimited(_)) => {
                tracing::warn!(error = %error, "request refused: no pseudonyms");
                Status::resource_exhausted(
                    "this region's pseudonym allowance is used up; nothing was stored; retry later",
                )
            }
            RegionError::Store(error) => {
                log_cause(&error);
                Status::internal("internal error")
            }
        }
    }
}

fn log_cause(error: &(dyn std::error::Error + 'static)) {
    tracing::error!(error = %crate::telemetry::error_chain(error), "request failed");
}
