//! The dev PKI as the nodes read it: identities, validity, revocation, the registry.
use super::*;
use x509_parser::prelude::*;

fn parse_pem(path: &Path) -> Vec<u8> {
    let text = fs::read(path).unwrap();
    let (_, pem) = parse_x509_pem(&text).unwrap();
    pem.contents
}

#[test]
fn writes_every_documented_file() {
    let dir = tempfile::tempdir().unwrap();
    let spec = DevPkiSpec::default();
    generate(dir.path(), &spec).unwrap();
    let mut expected = vec![
        files::CA_CERT.to_owned(),
        files::CA_KEY.to_owned(),
        files::CRL.to_owned(),
        files::HUB_CERT.to_owned(),
        files::HUB_KEY.to_owned(),
        files::ROGUE_CA_CERT.to_owned(),
        files::PSEUDONYMIZER_CERT.to_owned(),
        files::PSEUDONYMIZER_KEY.to_owned(),
        files::FEDERATION_KEY.to_owned(),
        files::OPRF_KEY.to_owned(),
        files::REQUEST_KEY.to_owned(),
        files::ORGANISATION_REGISTRY.to_owned(),
    ];
    for region in &spec.regions {
        let (c, k) = files::region_server(region);
        expected.extend([c, k]);
        let (c, k) = files::region_client(region);
        expected.extend([c, k]);
    }
    for org in spec.organisations.iter().map(|o| o.id.as_str()).chain([
        files::EXPIRED_ORG,
        files::REVOKED_ORG,
        files::ROGUE_ORG,
    ]) {
        let (c, k) = files::organisation(org);
        expected.extend([c, k]);
    }
    for name in expected {
        assert!(dir.path().join(&name).is_file(), "{name} missing");
    }
}

#[test]
fn organisation_certificate_names_the_organisation_in_a_uri_san() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &DevPkiSpec::default()).unwrap();
    let der = parse_pem(&dir.path().join("org-jgz-north.pem"));
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let sans = cert.subject_alternative_name().unwrap().unwrap();
    assert!(
        sans.value
            .general_names
            .iter()
            .any(|name| matches!(name, GeneralName::URI("urn:vix:org:jgz-north")))
    );
}

#[test]
fn crl_revokes_the_revoked_certificate_only() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &DevPkiSpec::default()).unwrap();
    let revoked = parse_pem(&dir.path().join("org-revoked.pem"));
    let (_, revoked) = X509Certificate::from_der(&revoked).unwrap();
    let good = parse_pem(&dir.path().join("org-jgz-north.pem"));
    let (_, good) = X509Certificate::from_der(&good).unwrap();
    let crl_pem = fs::read(dir.path().join(files::CRL)).unwrap();
    let (_, crl_pem) = parse_x509_pem(&crl_pem).unwrap();
    let (_, crl) = CertificateRevocationList::from_der(&crl_pem.contents).unwrap();
    let serials: Vec<_> = crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial())
        .collect();
    assert_eq!(serials, [revoked.raw_serial()]);
    assert_ne!(good.raw_serial(), revoked.raw_serial());
}

#[test]
fn expired_certificate_is_expired() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &DevPkiSpec::default()).unwrap();
    let der = parse_pem(&dir.path().join("org-expired.pem"));
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert!(!cert.validity().is_valid());
}

fn crl_of(dir: &Path) -> (Vec<Vec<u8>>, OffsetDateTime) {
    let crl_pem = fs::read(dir.join(files::CRL)).unwrap();
    let (_, crl_pem) = parse_x509_pem(&crl_pem).unwrap();
    let (_, crl) = CertificateRevocationList::from_der(&crl_pem.contents).unwrap();
    let serials = crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect();
    (serials, crl.next_update().unwrap().to_datetime())
}

fn serial_of(path: &Path) -> Vec<u8> {
    let der = parse_pem(path);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    cert.raw_serial().to_vec()
}

#[test]
fn the_crl_is_valid_for_a_week_not_for_the_life_of_the_certificates() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &DevPkiSpec::default()).unwrap();
    let (_, next_update) = crl_of(dir.path());
    let left = next_update - OffsetDateTime::now_utc();
    assert!(
        left > Duration::days(CRL_VALIDITY_DAYS) - Duration::minutes(5),
        "{left}"
    );
    assert!(left <= Duration::days(CRL_VALIDITY_DAYS), "{left}");
}

#[test]
fn renewing_the_crl_keeps_what_it_revokes_and_revoking_adds_to_it() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &DevPkiSpec::default()).unwrap();
    let revoked = serial_of(&dir.path().join("org-revoked.pem"));
    let ca = DevCa::load(dir.path()).unwrap();
    // An out-of-date CRL, as a forgotten renewal leaves it, is renewed in place.
    ca.write_crl(&["org-revoked.pem"], -Duration::days(1))
        .unwrap();
    assert!(crl_of(dir.path()).1 < OffsetDateTime::now_utc());
    let next_update = ca.renew_crl().unwrap();
    assert_eq!(crl_of(dir.path()), (vec![revoked.clone()], next_update));
    assert!(next_update > OffsetDateTime::now_utc() + Duration::days(6));

    ca.revoke("org-jgz-north.pem").unwrap();
    let jgz = serial_of(&dir.path().join("org-jgz-north.pem"));
    assert_eq!(crl_of(dir.path()).0, vec![revoked, jgz]);
}

#[test]
fn the_dev_ca_issues_custom_certificates_that_it_signed() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &DevPkiSpec::default()).unwrap();
    let ca = DevCa::load(dir.path()).unwrap();
    let mut spec = LeafSpec::client("Twee Namen", "urn:vix:org:a");
    spec.uris.push("urn:vix:org:b".into());
    spec.usages.clear();
    ca.issue(&spec, "two.pem", "two.key").unwrap();
    let der = parse_pem(&dir.path().join("two.pem"));
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let ca_der = parse_pem(&dir.path().join(files::CA_CERT));
    let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
    assert_eq!(cert.issuer(), ca_cert.subject());
    assert!(cert.verify_signature(Some(ca_cert.public_key())).is_ok());
    assert!(cert.extended_key_usage().unwrap().is_none());
    let uris: Vec<_> = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    assert_eq!(uris, ["urn:vix:org:a", "urn:vix:org:b"]);
}
