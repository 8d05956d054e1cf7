//! The gRPC form of a refused request, shared by every service: `INVALID_ARGUMENT` with a
//! message naming the fields and a `google.rpc.BadRequest` listing each one.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::ValidationErrors;

pub(crate) fn invalid_argument(errors: &ValidationErrors) -> Status {
    with_violations(Code::InvalidArgument, errors)
}

/// `PERMISSION_DENIED` for named items of a request (a region's event about another region's
/// signal), so the caller can tell which ones and let the others through.
pub(crate) fn permission_denied(errors: &ValidationErrors) -> Status {
    with_violations(Code::PermissionDenied, errors)
}

fn with_violations(code: Code, errors: &ValidationErrors) -> Status {
    let violations: Vec<_> = errors
        .violations()
        .iter()
        .map(|v| tonic_types::FieldViolation::new(v.field.clone(), v.description.clone()))
        .collect();
    Status::with_error_details(
        code,
        errors.to_string(),
        ErrorDetails::with_bad_request(violations),
    )
}
