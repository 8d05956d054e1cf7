//! The gRPC form of a refused request, shared by every service: `INVALID_ARGUMENT` with a
//! message naming the fields and a `google.rpc.BadRequest` listing each one.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::ValidationErrors;

pub(crate) fn invalid_argument(errors: &ValidationErrors) -> Status {
    let violations: Vec<_> = errors
        .violations()
        .iter()
        .map(|v| tonic_types::FieldViolation::new(v.field.clone(), v.description.clone()))
        .collect();
    Status::with_error_details(
        Code::InvalidArgument,
        errors.to_string(),
        ErrorDetails::with_bad_request(violations),
    )
}
