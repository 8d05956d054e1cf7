//! A development PKI for vix, written into one folder. Never for production: the CA key is
//! written next to the certificates so developers can issue more.
//!
//! # Files
//!
//! | file | what it is |
//! | --- | --- |
//! | `ca.pem`, `ca.key` | the federation's development CA |
//! | `crl.pem` | the CA's certificate revocation list; it revokes `org-revoked.pem` |
//! | `hub.pem`, `hub.key` | hub server certificate (`localhost`, `127.0.0.1`, `urn:vix:hub`) |
//! | `region-<id>-server.pem`, `.key` | a region node's server certificate (`localhost`, `127.0.0.1`) |
//! | `region-<id>-client.pem`, `.key` | a region node's client certificate for the hub (`urn:vix:region:<id>`) |
//! | `org-<id>.pem`, `.key` | an organisation's client certificate (`urn:vix:org:<id>`, CN = its name) |
//! | `municipality-<code>.pem`, `.key` | a municipality's client certificate (`urn:vix:municipality:<code>`), for the rights of youths and parents |
//! | `org-expired.pem`, `.key` | organisation client certificate whose validity ended 30 days ago |
//! | `org-revoked.pem`, `.key` | organisation client certificate listed in `crl.pem` |
//! | `rogue-ca.pem` | a second CA that nobody trusts |
//! | `rogue-org.pem`, `.key` | a client certificate from the rogue CA, claiming `urn:vix:org:rogue` |
//! | `federation.key` | the development federation key for pseudonyms (64 hex characters), shared by the dev regions |
//!
//! Private keys are PKCS#8 PEM, ECDSA P-256.
#![forbid(unsafe_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use time::{Duration, OffsetDateTime};

/// One organisation of the development federation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevOrganisation {
    pub id: String,
    pub name: String,
    pub region: String,
}

/// One municipality of the development federation: it handles the rights of youths living there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevMunicipality {
    /// The CBS municipality code, four digits.
    pub code: String,
    pub name: String,
    pub region: String,
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevPkiSpec {
    pub regions: Vec<String>,
    pub organisations: Vec<DevOrganisation>,
    pub municipalities: Vec<DevMunicipality>,
    /// How long the good certificates stay valid.
    pub validity_days: i64,
}

impl Default for DevPkiSpec {
    /// Three regions with two organisations each: the dev setup runs north and south, the
    /// end-to-end tests need a third.
    fn default() -> Self {
        let org = |id: &str, name: &str, region: &str| DevOrganisation {
            id: id.to_owned(),
            name: name.to_owned(),
            region: region.to_owned(),
        };
        Self {
            regions: vec!["north".into(), "south".into(), "east".into()],
            organisations: vec![
                org("jgz-north", "JGZ Noord", "north"),
                org("school-north", "Noorderpoort College", "north"),
                org("vt-south", "Veilig Thuis Zuid", "south"),
                org("gp-south", "Huisartsenpraktijk Zuid", "south"),
                org("wijkteam-east", "Wijkteam Oost", "east"),
                org("school-east", "Oosterlicht College", "east"),
            ],
            municipalities: vec![
                DevMunicipality {
                    code: "0014".into(),
                    name: "Gemeente Groningen".into(),
                    region: "north".into(),
                },
                DevMunicipality {
                    code: "0363".into(),
                    name: "Gemeente Amsterdam".into(),
                    region: "south".into(),
                },
                DevMunicipality {
                    code: "0153".into(),
                    name: "Gemeente Enschede".into(),
                    region: "east".into(),
                },
            ],
            validity_days: 398,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DevPkiError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("could not write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the system random generator failed")]
    Random,
}

/// File names inside a dev PKI folder; see the crate docs for what each holds.
pub mod files {
    pub const CA_CERT: &str = "ca.pem";
    pub const CA_KEY: &str = "ca.key";
    pub const CRL: &str = "crl.pem";
    pub const HUB_CERT: &str = "hub.pem";
    pub const HUB_KEY: &str = "hub.key";
    pub const ROGUE_CA_CERT: &str = "rogue-ca.pem";
    pub const FEDERATION_KEY: &str = "federation.key";
    /// Organisation ids of the three certificates that must be refused.
    pub const EXPIRED_ORG: &str = "expired";
    pub const REVOKED_ORG: &str = "revoked";
    pub const ROGUE_ORG: &str = "rogue";

    pub fn region_server(region: &str) -> (String, String) {
        (
            format!("region-{region}-server.pem"),
            format!("region-{region}-server.key"),
        )
    }

    pub fn region_client(region: &str) -> (String, String) {
        (
            format!("region-{region}-client.pem"),
            format!("region-{region}-client.key"),
        )
    }

    pub fn organisation(org: &str) -> (String, String) {
        (format!("org-{org}.pem"), format!("org-{org}.key"))
    }

    pub fn municipality(code: &str) -> (String, String) {
        (
            format!("municipality-{code}.pem"),
            format!("municipality-{code}.key"),
        )
    }
}

/// Writes a complete development PKI into `dir` (created if missing), replacing what is there.
pub fn generate(dir: &Path, spec: &DevPkiSpec) -> Result<(), DevPkiError> {
    fs::create_dir_all(dir).map_err(|source| DevPkiError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let now = OffsetDateTime::now_utc();
    let valid_from = now - Duration::hours(1);
    let valid_until = now + Duration::days(spec.validity_days);
    let writer = Writer { dir };

    let ca = new_ca("vix development CA", valid_from, valid_until)?;
    writer.cert_and_key(files::CA_CERT, files::CA_KEY, &ca.pem(), ca.key())?;

    let localhost: rcgen::string::Ia5String = "localhost".try_into()?;
    let server_sans = || {
        vec![
            SanType::DnsName(localhost.clone()),
            SanType::IpAddress([127, 0, 0, 1].into()),
        ]
    };

    let mut hub_sans = server_sans();
    hub_sans.push(uri("urn:vix:hub")?);
    let hub = Leaf::server("vix hub", hub_sans);
    writer.leaf(
        files::HUB_CERT,
        files::HUB_KEY,
        &hub,
        &ca,
        valid_from,
        valid_until,
    )?;

    for region in &spec.regions {
        let (cert, key) = files::region_server(region);
        let server = Leaf::server(&format!("vix region {region}"), server_sans());
        writer.leaf(&cert, &key, &server, &ca, valid_from, valid_until)?;
        let (cert, key) = files::region_client(region);
        let client = Leaf::client(
            &format!("vix region {region}"),
            uri(&format!("urn:vix:region:{region}"))?,
        );
        writer.leaf(&cert, &key, &client, &ca, valid_from, valid_until)?;
    }

    for org in &spec.organisations {
        let (cert, key) = files::organisation(&org.id);
        let client = Leaf::client(&org.name, uri(&format!("urn:vix:org:{}", org.id))?);
        writer.leaf(&cert, &key, &client, &ca, valid_from, valid_until)?;
    }

    for municipality in &spec.municipalities {
        let (cert, key) = files::municipality(&municipality.code);
        let client = Leaf::client(
            &municipality.name,
            uri(&format!("urn:vix:municipality:{}", municipality.code))?,
        );
        writer.leaf(&cert, &key, &client, &ca, valid_from, valid_until)?;
    }

    // The certificates that must be refused: expired, revoked, and from a CA nobody trusts.
    let (cert, key) = files::organisation(files::EXPIRED_ORG);
    let expired = Leaf::client("Verlopen Organisatie", uri("urn:vix:org:expired")?);
    writer.leaf(
        &cert,
        &key,
        &expired,
        &ca,
        now - Duration::days(60),
        now - Duration::days(30),
    )?;

    let (cert, key) = files::organisation(files::REVOKED_ORG);
    let revoked = Leaf::client("Ingetrokken Organisatie", uri("urn:vix:org:revoked")?);
    let revoked_serial = writer.leaf(&cert, &key, &revoked, &ca, valid_from, valid_until)?;

    let crl = CertificateRevocationListParams {
        this_update: valid_from,
        next_update: valid_until,
        crl_number: random_serial()?,
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: revoked_serial,
            revocation_time: valid_from,
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca)?;
    writer.file(files::CRL, crl.pem()?.as_bytes())?;

    let rogue = new_ca("rogue CA", valid_from, valid_until)?;
    writer.file(files::ROGUE_CA_CERT, rogue.pem().as_bytes())?;
    let (cert, key) = files::organisation(files::ROGUE_ORG);
    let rogue_org = Leaf::client("Rogue Organisatie", uri("urn:vix:org:rogue")?);
    writer.leaf(&cert, &key, &rogue_org, &rogue, valid_from, valid_until)?;

    let mut federation_key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut federation_key)
        .map_err(|_| DevPkiError::Random)?;
    writer.secret(
        files::FEDERATION_KEY,
        format!("{}\n", hex::encode(federation_key)).as_bytes(),
    )?;
    Ok(())
}

fn uri(value: &str) -> Result<SanType, DevPkiError> {
    Ok(SanType::URI(value.try_into()?))
}

fn random_serial() -> Result<SerialNumber, DevPkiError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| DevPkiError::Random)?;
    bytes[0] &= 0x7f; // a positive DER integer
    Ok(SerialNumber::from_slice(&bytes))
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "vix development");
    name.push(DnType::CommonName, common_name);
    name
}

fn new_ca(
    common_name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertifiedIssuer<'static, KeyPair>, DevPkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial()?);
    Ok(CertifiedIssuer::self_signed(params, KeyPair::generate()?)?)
}

/// An end-entity certificate to issue.
struct Leaf {
    common_name: String,
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
}

impl Leaf {
    fn server(common_name: &str, sans: Vec<SanType>) -> Self {
        Self {
            common_name: common_name.to_owned(),
            sans,
            usage: ExtendedKeyUsagePurpose::ServerAuth,
        }
    }

    fn client(common_name: &str, identity: SanType) -> Self {
        Self {
            common_name: common_name.to_owned(),
            sans: vec![identity],
            usage: ExtendedKeyUsagePurpose::ClientAuth,
        }
    }
}

struct Writer<'a> {
    dir: &'a Path,
}

impl Writer<'_> {
    /// Issues `leaf` from `issuer`, writes it, and returns its serial number.
    fn leaf(
        &self,
        cert_file: &str,
        key_file: &str,
        leaf: &Leaf,
        issuer: &Issuer<'_, KeyPair>,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<SerialNumber, DevPkiError> {
        let key = KeyPair::generate()?;
        let serial = random_serial()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(&leaf.common_name);
        params.subject_alt_names = leaf.sans.clone();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![leaf.usage.clone()];
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(serial.clone());
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, issuer)?;
        self.cert_and_key(cert_file, key_file, &cert.pem(), &key)?;
        Ok(serial)
    }

    fn cert_and_key(
        &self,
        cert_file: &str,
        key_file: &str,
        cert_pem: &str,
        key: &KeyPair,
    ) -> Result<(), DevPkiError> {
        self.file(cert_file, cert_pem.as_bytes())?;
        self.secret(key_file, key.serialize_pem().as_bytes())
    }

    fn file(&self, name: &str, contents: &[u8]) -> Result<(), DevPkiError> {
        let path = self.dir.join(name);
        fs::write(&path, contents).map_err(|source| DevPkiError::Write { path, source })
    }

    /// Writes a private key readable by its owner only.
    fn secret(&self, name: &str, contents: &[u8]) -> Result<(), DevPkiError> {
        let path = self.dir.join(name);
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let write = |path: &Path| -> std::io::Result<()> {
            let mut file = options.open(path)?;
            file.write_all(contents)?;
            file.sync_all()
        };
        write(&path).map_err(|source| DevPkiError::Write { path, source })
    }
}

#[cfg(test)]
mod tests {
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
            files::FEDERATION_KEY.to_owned(),
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
}
