//! A development PKI for vix, written into one folder. Never for production: the CA key is
//! written next to the certificates so developers can issue more.
//!
//! # Files
//!
//! | file | what it is |
//! | --- | --- |
//! | `ca.pem`, `ca.key` | the federation's development CA |
//! | `crl.pem` | the CA's certificate revocation list, valid for [`CRL_VALIDITY_DAYS`]; it revokes `org-revoked.pem` |
//! | `hub.pem`, `hub.key` | hub server certificate (`localhost`, `127.0.0.1`, `urn:vix:hub`) |
//! | `pseudonymizer.pem`, `pseudonymizer.key` | pseudonym service server certificate (`localhost`, `127.0.0.1`, `urn:vix:pseudonymizer`) |
//! | `pseudonymizer-v1.key` | the pseudonym service's development OPRF key, version 1 (64 hex characters) |
//! | `request.key` | a development key for the regions' idempotency keys when they use the pseudonym service (64 hex characters) |
//! | `region-<id>-server.pem`, `.key` | a region node's server certificate (`localhost`, `127.0.0.1`) |
//! | `region-<id>-client.pem`, `.key` | a region node's client certificate for the hub (`urn:vix:region:<id>`) |
//! | `org-<id>.pem`, `.key` | an organisation's client certificate (`urn:vix:org:<id>`, CN = its name) |
//! | `municipality-<code>.pem`, `.key` | a municipality's client certificate (`urn:vix:municipality:<code>`), for the rights of youths and parents |
//! | `org-expired.pem`, `.key` | organisation client certificate whose validity ended 30 days ago |
//! | `org-revoked.pem`, `.key` | organisation client certificate listed in `crl.pem` |
//! | `rogue-ca.pem` | a second CA that nobody trusts |
//! | `rogue-org.pem`, `.key` | a client certificate from the rogue CA, claiming `urn:vix:org:rogue` |
//! | `federation.key` | the development federation key for pseudonyms (64 hex characters), shared by the dev regions |
//! | `organisations.toml` | the federation's organisation registry (regions; each organisation's id, name and region), loaded by the hub and every region |
//!
//! Private keys are PKCS#8 PEM, ECDSA P-256.
//!
//! A CRL has a nextUpdate and the nodes refuse every client once it has passed, as they would
//! in production; [`DevCa::renew_crl`] re-issues it from `ca.key` (the binary does so on every
//! run without `--force`), and [`DevCa::revoke`] adds a certificate to it.
#![forbid(unsafe_code)]

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
/// Re-exported so that tests can say how long a certificate or CRL is valid.
pub use time;
use time::{Duration, OffsetDateTime};

mod registry;
pub use registry::{organisation_registry_toml, write_organisation_registry};

/// How long a CRL of the dev CA is valid: a week, like a production CA that re-issues its CRL
/// daily, so a forgotten renewal shows up (the nodes fail closed) rather than never.
pub const CRL_VALIDITY_DAYS: i64 = 7;

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
                // Where the fixture youth 999991383 lives (the README's example).
                DevMunicipality {
                    code: "0530".into(),
                    name: "Gemeente Hellevoetsluis".into(),
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
    #[error("could not read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid {what}")]
    Parse { path: PathBuf, what: &'static str },
}

/// File names inside a dev PKI folder; see the crate docs for what each holds.
pub mod files {
    pub const CA_CERT: &str = "ca.pem";
    pub const CA_KEY: &str = "ca.key";
    pub const CRL: &str = "crl.pem";
    pub const HUB_CERT: &str = "hub.pem";
    pub const HUB_KEY: &str = "hub.key";
    pub const PSEUDONYMIZER_CERT: &str = "pseudonymizer.pem";
    pub const PSEUDONYMIZER_KEY: &str = "pseudonymizer.key";
    pub const OPRF_KEY: &str = "pseudonymizer-v1.key";
    pub const REQUEST_KEY: &str = "request.key";
    pub const ROGUE_CA_CERT: &str = "rogue-ca.pem";
    pub const FEDERATION_KEY: &str = "federation.key";
    pub const ORGANISATION_REGISTRY: &str = "organisations.toml";
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

    let mut pseudonymizer_sans = server_sans();
    pseudonymizer_sans.push(uri("urn:vix:pseudonymizer")?);
    let pseudonymizer = Leaf::server("vix pseudonym service", pseudonymizer_sans);
    writer.leaf(
        files::PSEUDONYMIZER_CERT,
        files::PSEUDONYMIZER_KEY,
        &pseudonymizer,
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

    let revoked = vec![RevokedCertParams {
        serial_number: revoked_serial,
        revocation_time: valid_from,
        reason_code: Some(RevocationReason::KeyCompromise),
        invalidity_date: None,
    }];
    write_crl(dir, &ca, revoked, Duration::days(CRL_VALIDITY_DAYS))?;

    let rogue = new_ca("rogue CA", valid_from, valid_until)?;
    writer.file(files::ROGUE_CA_CERT, rogue.pem().as_bytes())?;
    let (cert, key) = files::organisation(files::ROGUE_ORG);
    let rogue_org = Leaf::client("Rogue Organisatie", uri("urn:vix:org:rogue")?);
    writer.leaf(&cert, &key, &rogue_org, &rogue, valid_from, valid_until)?;

    for secret in [files::FEDERATION_KEY, files::OPRF_KEY, files::REQUEST_KEY] {
        writer.secret(secret, &random_hex_key()?)?;
    }
    write_organisation_registry(dir, spec)
}

/// 32 random bytes as a line of hexadecimal: the key files' format. (The pseudonym service
/// derives its key from them, RFC 9497 DeriveKeyPair.)
fn random_hex_key() -> Result<Vec<u8>, DevPkiError> {
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| DevPkiError::Random)?;
    Ok(format!("{}\n", hex::encode(key)).into_bytes())
}

/// Signs a CRL listing `revoked`, valid from an hour ago (clock skew) for `next_update` from
/// now, and replaces `crl.pem` atomically: a node re-reading it never sees half a file.
fn write_crl(
    dir: &Path,
    ca: &Issuer<'_, KeyPair>,
    revoked: Vec<RevokedCertParams>,
    next_update: Duration,
) -> Result<OffsetDateTime, DevPkiError> {
    let now = OffsetDateTime::now_utc();
    // X.509 times have whole seconds: return the time as the CRL states it.
    let next_update = now + next_update;
    let next_update = next_update.replace_nanosecond(0).unwrap_or(next_update);
    let crl = CertificateRevocationListParams {
        this_update: (now - Duration::hours(1)).min(next_update - Duration::seconds(1)),
        next_update,
        crl_number: crl_number(now),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(ca)?;
    let path = dir.join(files::CRL);
    let temporary = dir.join(format!(".{}.tmp", files::CRL));
    fs::write(&temporary, crl.pem()?.as_bytes())
        .and_then(|()| fs::rename(&temporary, &path))
        .map_err(|source| DevPkiError::Write { path, source })?;
    Ok(next_update)
}

/// CRL numbers must increase with every CRL the CA issues; the issue time in nanoseconds does.
fn crl_number(now: OffsetDateTime) -> SerialNumber {
    let nanos = u64::try_from(now.unix_timestamp_nanos()).unwrap_or(u64::MAX);
    SerialNumber::from_slice(&nanos.to_be_bytes())
}

/// What a certificate issued by [`DevCa::issue`] may be used for (its extended key usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    ClientAuth,
    ServerAuth,
}

/// A certificate to issue from the dev CA, mostly for tests of what the nodes must refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafSpec {
    pub common_name: String,
    /// URI SANs (`urn:vix:...`), in this order.
    pub uris: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    /// Extended key usages; empty means the certificate has no EKU extension at all.
    pub usages: Vec<Usage>,
    /// Start and end of validity, relative to now.
    pub valid_from: Duration,
    pub valid_until: Duration,
}

impl LeafSpec {
    /// A client certificate named `uri`, valid from an hour ago for a day.
    pub fn client(common_name: &str, uri: &str) -> Self {
        Self {
            common_name: common_name.to_owned(),
            uris: vec![uri.to_owned()],
            dns_names: vec![],
            ip_addresses: vec![],
            usages: vec![Usage::ClientAuth],
            valid_from: -Duration::hours(1),
            valid_until: Duration::days(1),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1, valid from an hour ago for a day.
    pub fn server(common_name: &str) -> Self {
        Self {
            common_name: common_name.to_owned(),
            uris: vec![],
            dns_names: vec!["localhost".to_owned()],
            ip_addresses: vec![[127, 0, 0, 1].into()],
            usages: vec![Usage::ServerAuth],
            valid_from: -Duration::hours(1),
            valid_until: Duration::days(1),
        }
    }
}

/// The dev CA of a folder written by [`generate`], loaded from `ca.pem` and `ca.key`, to issue
/// more certificates and CRLs.
pub struct DevCa {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl DevCa {
    pub fn load(dir: &Path) -> Result<Self, DevPkiError> {
        let cert = read_text(&dir.join(files::CA_CERT))?;
        let key = read_text(&dir.join(files::CA_KEY))?;
        let key = KeyPair::from_pem(&key)?;
        let issuer = Issuer::from_ca_cert_pem(&cert, key)?;
        Ok(Self {
            dir: dir.to_owned(),
            issuer,
        })
    }

    /// Issues `leaf` into `cert_file` and `key_file` of the folder.
    pub fn issue(
        &self,
        leaf: &LeafSpec,
        cert_file: &str,
        key_file: &str,
    ) -> Result<(), DevPkiError> {
        let mut sans = Vec::new();
        for name in &leaf.dns_names {
            sans.push(SanType::DnsName(name.as_str().try_into()?));
        }
        sans.extend(leaf.ip_addresses.iter().copied().map(SanType::IpAddress));
        for value in &leaf.uris {
            sans.push(uri(value)?);
        }
        let usages = leaf
            .usages
            .iter()
            .map(|usage| match usage {
                Usage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
                Usage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
            })
            .collect();
        let now = OffsetDateTime::now_utc();
        let writer = Writer { dir: &self.dir };
        writer.leaf_with(
            cert_file,
            key_file,
            &leaf.common_name,
            sans,
            usages,
            &self.issuer,
            now + leaf.valid_from,
            now + leaf.valid_until,
        )?;
        Ok(())
    }

    /// Re-issues `crl.pem` with the same revoked certificates, valid for [`CRL_VALIDITY_DAYS`]
    /// from now. Returns the new nextUpdate.
    pub fn renew_crl(&self) -> Result<OffsetDateTime, DevPkiError> {
        let revoked = self.revoked()?;
        write_crl(
            &self.dir,
            &self.issuer,
            revoked,
            Duration::days(CRL_VALIDITY_DAYS),
        )
    }

    /// Adds the certificate in `cert_file` (a file of the folder) to `crl.pem` and re-issues it.
    pub fn revoke(&self, cert_file: &str) -> Result<OffsetDateTime, DevPkiError> {
        let mut revoked = self.revoked()?;
        let serial = certificate_serial(&self.dir.join(cert_file))?;
        if !revoked.iter().any(|entry| entry.serial_number == serial) {
            revoked.push(RevokedCertParams {
                serial_number: serial,
                revocation_time: OffsetDateTime::now_utc(),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            });
        }
        write_crl(
            &self.dir,
            &self.issuer,
            revoked,
            Duration::days(CRL_VALIDITY_DAYS),
        )
    }

    /// Replaces `crl.pem` with one that revokes exactly `cert_files` and whose nextUpdate is
    /// `next_update` from now (negative: a CRL already out of date).
    pub fn write_crl(&self, cert_files: &[&str], next_update: Duration) -> Result<(), DevPkiError> {
        let revoked = cert_files
            .iter()
            .map(|file| {
                Ok(RevokedCertParams {
                    serial_number: certificate_serial(&self.dir.join(file))?,
                    revocation_time: OffsetDateTime::now_utc() + next_update.min(Duration::ZERO)
                        - Duration::hours(2),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, DevPkiError>>()?;
        write_crl(&self.dir, &self.issuer, revoked, next_update)?;
        Ok(())
    }

    /// The entries of the current `crl.pem` (none if there is no CRL yet).
    fn revoked(&self) -> Result<Vec<RevokedCertParams>, DevPkiError> {
        use x509_parser::prelude::{CertificateRevocationList, FromDer, parse_x509_pem};
        let path = self.dir.join(files::CRL);
        if !path.exists() {
            return Ok(vec![]);
        }
        let text = fs::read(&path).map_err(|source| DevPkiError::Read {
            path: path.clone(),
            source,
        })?;
        let invalid = || DevPkiError::Parse {
            path: path.clone(),
            what: "CRL",
        };
        let (_, pem) = parse_x509_pem(&text).map_err(|_| invalid())?;
        let (_, crl) = CertificateRevocationList::from_der(&pem.contents).map_err(|_| invalid())?;
        Ok(crl
            .iter_revoked_certificates()
            .map(|entry| RevokedCertParams {
                serial_number: SerialNumber::from_slice(strip_sign_byte(entry.raw_serial())),
                revocation_time: entry.revocation_date.to_datetime(),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect())
    }
}

/// A DER integer's content may start with a 0 byte that only marks it positive; rcgen adds that
/// byte itself, so it is dropped to keep the serial the same.
fn strip_sign_byte(serial: &[u8]) -> &[u8] {
    match serial {
        [0, rest @ ..] if !rest.is_empty() => rest,
        _ => serial,
    }
}

fn read_text(path: &Path) -> Result<String, DevPkiError> {
    fs::read_to_string(path).map_err(|source| DevPkiError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certificate_serial(path: &Path) -> Result<SerialNumber, DevPkiError> {
    use x509_parser::prelude::{FromDer, X509Certificate, parse_x509_pem};
    let text = fs::read(path).map_err(|source| DevPkiError::Read {
        path: path.to_owned(),
        source,
    })?;
    let invalid = || DevPkiError::Parse {
        path: path.to_owned(),
        what: "certificate",
    };
    let (_, pem) = parse_x509_pem(&text).map_err(|_| invalid())?;
    let (_, cert) = X509Certificate::from_der(&pem.contents).map_err(|_| invalid())?;
    Ok(SerialNumber::from_slice(strip_sign_byte(cert.raw_serial())))
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
        self.leaf_with(
            cert_file,
            key_file,
            &leaf.common_name,
            leaf.sans.clone(),
            vec![leaf.usage.clone()],
            issuer,
            not_before,
            not_after,
        )
    }

    #[allow(clippy::too_many_arguments)] // one call per kind of leaf; a struct adds nothing
    fn leaf_with(
        &self,
        cert_file: &str,
        key_file: &str,
        common_name: &str,
        sans: Vec<SanType>,
        usages: Vec<ExtendedKeyUsagePurpose>,
        issuer: &Issuer<'_, KeyPair>,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<SerialNumber, DevPkiError> {
        let key = KeyPair::generate()?;
        let serial = random_serial()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name);
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages;
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
mod tests;
