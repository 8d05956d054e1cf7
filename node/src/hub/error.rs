//! The one mapping from hub-service errors to gRPC statuses; causes are logged here, once.

use tonic::Status;

use crate::domain::ValidationErrors;
use crate::store::StoreError;
use crate::store::hub::HubStoreError;
use crate::telemetry::error_chain;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{0}")]
    PermissionDenied(String),
    #[error("invalid request: {0}")]
    Invalid(ValidationErrors),
    /// Items of the request this region may not submit, named.
    #[error("refused: {0}")]
    Forbidden(ValidationErrors),
    /// The request cannot be applied in the state the hub is in; the caller must act first.
    #[error("{0}")]
    Precondition(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ValidationErrors> for HubError {
    fn from(errors: ValidationErrors) -> Self {
        Self::Invalid(errors)
    }
}

impl From<HubStoreError> for HubError {
    fn from(error: HubStoreError) -> Self {
        match error {
            HubStoreError::NotOwner { index } => Self::Forbidden(ValidationErrors::single(
                format!("events[{index}].signal_id"),
                "names a signal of another region; nothing of the batch was applied",
            )),
            // Named as the item of its list, so the region keeps only that one aside.
            HubStoreError::NotOwnerOfChange { index } => Self::Forbidden(ValidationErrors::single(
                format!("changes[{index}].by_signal_id"),
                "speaks for a signal of another region; nothing of the call was relayed",
            )),
            HubStoreError::LogNotConsumed { .. } => Self::Precondition(error.to_string()),
            HubStoreError::NotHandable { index, held } => {
                Self::Forbidden(ValidationErrors::single(
                    format!("handovers[{index}]"),
                    format!("{held}; nothing of the call was handed over"),
                ))
            }
            HubStoreError::Store(error) => Self::Store(error),
        }
    }
}

impl From<HubError> for Status {
    fn from(error: HubError) -> Self {
        match error {
            HubError::PermissionDenied(message) => Status::permission_denied(message),
            HubError::Invalid(errors) => crate::bad_request::invalid_argument(&errors),
            HubError::Forbidden(errors) => crate::bad_request::permission_denied(&errors),
            HubError::Precondition(message) => Status::failed_precondition(message),
            HubError::Store(error) if error.is_transient() => {
                tracing::warn!(error = %error_chain(&error), "hub store busy");
                Status::unavailable("the hub is busy; retry")
            }
            HubError::Store(error) => {
                tracing::error!(error = %error_chain(&error), "request failed");
                Status::internal("internal error")
            }
        }
    }
}
