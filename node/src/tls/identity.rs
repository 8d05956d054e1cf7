//! The vix identity a certificate carries in its URI SAN: exactly one, in its one spelling.

use rustls::pki_types::CertificateDer;

use crate::domain::{MunicipalityCode, OrganisationId, RegionId};

/// Who is calling, as its certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// An organisation system or front-end: `urn:vix:org:<id>`. Its name is the organisation
    /// registry's, never the certificate's CN: a certificate with the right URI SAN and another
    /// organisation's CN must not put that name in front of anybody.
    Organisation(OrganisationId),
    /// A region node calling the hub: `urn:vix:region:<id>`.
    Region(RegionId),
    /// The national hub: `urn:vix:hub`. Only ever a server.
    Hub,
    /// The national pseudonym service: `urn:vix:pseudonymizer`. Only ever a server.
    Pseudonymizer,
    /// A municipality acting on the rights of youths and parents: `urn:vix:municipality:<code>`.
    Municipality {
        code: MunicipalityCode,
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the certificate cannot be parsed")]
    Parse,
    #[error(
        "the certificate names no vix identity (urn:vix:org:, urn:vix:region:, urn:vix:municipality:)"
    )]
    Missing,
    #[error("the certificate names more than one vix identity")]
    Ambiguous,
    #[error("the certificate's vix identity is malformed")]
    Malformed,
    #[error("the certificate's vix identity is not written in lower case")]
    NotLowerCase,
}

/// Longest municipality name (the certificate's CN) that vix accepts.
const MUNICIPALITY_NAME_MAX_LEN: usize = 200;
const VIX_URN: &str = "urn:vix:";
const ORG_URN: &str = "urn:vix:org:";
const HUB_URN: &str = "urn:vix:hub";
const PSEUDONYMIZER_URN: &str = "urn:vix:pseudonymizer";
const MUNICIPALITY_URN: &str = "urn:vix:municipality:";
const REGION_URN: &str = "urn:vix:region:";

/// Reads the vix identity from a certificate's URI SANs. Exactly one `urn:vix:` URI must be
/// present, so a certificate can never speak for two parties.
///
/// RFC 8141 makes the `urn` scheme and the `vix` namespace case-insensitive, so `URN:VIX:ORG:x`
/// is a vix URN too: it counts towards "exactly one", and it is refused rather than read,
/// because a certificate that other software may read as naming a different party (or that
/// hides a second identity from a case-sensitive reader) must not be accepted by anyone.
pub fn identify(cert: &CertificateDer<'_>) -> Result<PeerIdentity, IdentityError> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(cert).map_err(|_| IdentityError::Parse)?;
    let sans = parsed
        .subject_alternative_name()
        .map_err(|_| IdentityError::Parse)?
        .ok_or(IdentityError::Missing)?;
    let mut identities = sans
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) if starts_with_ignoring_case(uri, VIX_URN) => Some(*uri),
            _ => None,
        });
    let uri = identities.next().ok_or(IdentityError::Missing)?;
    if identities.next().is_some() {
        return Err(IdentityError::Ambiguous);
    }
    if let Some(code) = uri.strip_prefix(MUNICIPALITY_URN) {
        let code = MunicipalityCode::parse(code).map_err(|_| IdentityError::Malformed)?;
        let name = common_name(&parsed)?;
        return Ok(PeerIdentity::Municipality { code, name });
    }
    if let Some(id) = uri.strip_prefix(ORG_URN) {
        let id = OrganisationId::parse(id).map_err(|_| IdentityError::Malformed)?;
        return Ok(PeerIdentity::Organisation(id));
    }
    if uri == HUB_URN {
        return Ok(PeerIdentity::Hub);
    }
    if uri == PSEUDONYMIZER_URN {
        return Ok(PeerIdentity::Pseudonymizer);
    }
    if let Some(id) = uri.strip_prefix(REGION_URN) {
        return RegionId::parse(id)
            .map(PeerIdentity::Region)
            .map_err(|_| IdentityError::Malformed);
    }
    // Not one of the four in their exact spelling: another case of a known kind, or an unknown
    // kind of vix URN. Neither may pass as "no identity".
    let known_kind = [MUNICIPALITY_URN, ORG_URN, REGION_URN]
        .iter()
        .any(|prefix| starts_with_ignoring_case(uri, prefix))
        || uri.eq_ignore_ascii_case(HUB_URN)
        || uri.eq_ignore_ascii_case(PSEUDONYMIZER_URN);
    if known_kind || uri.to_ascii_lowercase() != uri {
        return Err(IdentityError::NotLowerCase);
    }
    Err(IdentityError::Malformed)
}

fn starts_with_ignoring_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// The subject CN, which names the municipality: same rule as every shown name.
fn common_name(cert: &x509_parser::prelude::X509Certificate<'_>) -> Result<String, IdentityError> {
    let name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if name.is_empty()
        || name.chars().count() > MUNICIPALITY_NAME_MAX_LEN
        || name.chars().any(char::is_control)
    {
        return Err(IdentityError::Malformed);
    }
    Ok(name.to_owned())
}
