//! The region's pseudonymisers: [`HmacPseudonymiser`] with federation keys on the node, for one
//! machine or a development federation, and [`remote::RemotePseudonymiser`], which blinds each
//! identifier and has the pseudonym service evaluate it (RFC 9497), so no region can compute a
//! pseudonym alone.
//!
//! Both hash the same message for an identifier: a label per kind of identifier, then each part
//! after a zero byte. The labels keep a subject key, an alternative subject key and a family key
//! apart, and (inside the blinded element) the service cannot tell which kind it evaluates.

mod hmac;
pub mod remote;

pub use hmac::{FederationKeyError, HmacPseudonymiser};

pub(crate) const SUBJECT_LABEL: &[u8] = b"vix/subject/v1";
pub(crate) const ALT_SUBJECT_LABEL: &[u8] = b"vix/alt-subject/v1";
pub(crate) const FAMILY_LABEL: &[u8] = b"vix/family/v1";
pub(crate) const REQUEST_LABEL: &[u8] = b"vix/request/v1";

/// `label || 0x00 || part || 0x00 || part …`: no part holds a zero byte (digits, registry ids),
/// so two different identifiers never give one message.
pub(crate) fn message(label: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut message =
        Vec::with_capacity(label.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    message.extend_from_slice(label);
    for part in parts {
        message.push(0);
        message.extend_from_slice(part);
    }
    message
}
