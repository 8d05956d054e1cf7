//! Certificate checks on top of the CA's (webpki's): the role a certificate was issued for (its
//! extended key usage), the vix identity it names, and CRLs that are re-read while the process
//! runs, with their nextUpdate enforced.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};

use super::identity::{PeerIdentity, identify};
use super::ring;

/// Why a certificate that the CA did sign is refused for the role it is presented in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error("the certificate cannot be parsed")]
    Parse,
    /// Without an EKU a certificate is good for every purpose; vix issues each certificate for
    /// one role, so a certificate without one was not issued by vix's rules.
    #[error("the certificate has no extended key usage; vix requires {0}")]
    NoExtendedKeyUsage(&'static str),
    #[error("the certificate's extended key usage does not include {0}")]
    WrongUsage(&'static str),
    #[error("the certificate does not name the {0}")]
    NotTheServer(&'static str),
}

fn refused(error: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(error))))
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Client,
    Server,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Self::Client => "clientAuth",
            Self::Server => "serverAuth",
        }
    }
}

/// The certificate must carry an EKU extension that lists `role`. webpki alone accepts a
/// certificate without the extension.
fn check_usage(cert: &CertificateDer<'_>, role: Role) -> Result<(), RoleError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(cert).map_err(|_| RoleError::Parse)?;
    let usage = parsed
        .extended_key_usage()
        .map_err(|_| RoleError::Parse)?
        .ok_or(RoleError::NoExtendedKeyUsage(role.name()))?;
    let listed = match role {
        Role::Client => usage.value.client_auth,
        Role::Server => usage.value.server_auth,
    };
    if listed {
        Ok(())
    } else {
        Err(RoleError::WrongUsage(role.name()))
    }
}

fn is_expired_crl(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(
            CertificateError::ExpiredRevocationList
                | CertificateError::ExpiredRevocationListContext { .. }
        )
    )
}

/// Builds a webpki verifier from the CA and the CRLs as they are now.
type Build<V> =
    dyn Fn(Vec<CertificateRevocationListDer<'static>>) -> Result<Arc<V>, String> + Send + Sync;

/// The CRL files of an endpoint and the webpki verifier built from their current contents.
/// [`CrlWatch::spawn`] re-reads them on a timer and on SIGHUP; a verifier built from CRLs that
/// cannot be read refuses everyone until they can (fail closed).
pub(crate) struct CrlWatch<V: ?Sized> {
    paths: Vec<PathBuf>,
    build: Box<Build<V>>,
    current: RwLock<Arc<Loaded<V>>>,
}

struct Loaded<V: ?Sized> {
    /// The files as last read (`None`: unreadable), to notice a change.
    contents: Vec<Option<Vec<u8>>>,
    verifier: Result<Arc<V>, String>,
    /// So an out-of-date CRL is logged as an error once per load, not at every handshake.
    expiry_reported: AtomicBool,
}

impl<V: ?Sized> fmt::Debug for CrlWatch<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrlWatch")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct CrlUnusable(String);

impl<V: ?Sized + Send + Sync + 'static> CrlWatch<V> {
    /// Reads the CRLs once; unlike a later reload, a failure here is an error (start-up).
    pub(crate) fn new(paths: Vec<PathBuf>, build: Box<Build<V>>) -> Result<Arc<Self>, String> {
        let contents: Vec<_> = paths.iter().map(|path| std::fs::read(path).ok()).collect();
        let verifier = Ok(Self::build_from(&paths, &contents, &build)?);
        log_loaded(&paths, &contents);
        Ok(Arc::new(Self {
            paths,
            build,
            current: RwLock::new(Arc::new(Loaded {
                contents,
                verifier,
                expiry_reported: AtomicBool::new(false),
            })),
        }))
    }

    fn build_from(
        paths: &[PathBuf],
        contents: &[Option<Vec<u8>>],
        build: &Build<V>,
    ) -> Result<Arc<V>, String> {
        let mut crls = Vec::new();
        for (path, bytes) in paths.iter().zip(contents) {
            let bytes = bytes
                .as_ref()
                .ok_or_else(|| format!("cannot read the CRL file {}", path.display()))?;
            let found = CertificateRevocationListDer::pem_slice_iter(bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| format!("{}: {error}", path.display()))?;
            // An empty file is more likely a CRL being written than a CA revoking nothing.
            if found.is_empty() {
                return Err(format!("{} holds no CRL", path.display()));
            }
            crls.extend(found);
        }
        build(crls).map_err(|error| format!("{}: {error}", display_paths(paths)))
    }

    fn current(&self) -> Arc<Loaded<V>> {
        // A panic while swapping cannot leave a half-written Arc behind: use what is there.
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The verifier to use now, or the reason every handshake is refused.
    fn verifier(&self) -> Result<(Arc<V>, Arc<Loaded<V>>), rustls::Error> {
        let loaded = self.current();
        match &loaded.verifier {
            Ok(verifier) => Ok((Arc::clone(verifier), Arc::clone(&loaded))),
            Err(error) => Err(refused(CrlUnusable(error.clone()))),
        }
    }

    /// Logs an out-of-date CRL as an error, once per load: every client is refused until a
    /// current CRL is installed, and the operator must hear why.
    fn report(&self, loaded: &Loaded<V>, error: &rustls::Error) {
        if is_expired_crl(error) && !loaded.expiry_reported.swap(true, Ordering::Relaxed) {
            tracing::error!(
                crls = %display_paths(&self.paths),
                "a CRL is past its nextUpdate: every peer certificate is refused until a current \
                 CRL is installed (it is re-read when it changes and on SIGHUP)"
            );
        }
    }

    /// Re-reads the CRL files; rebuilds the verifier if they changed (or if `force`). Returns
    /// whether it did.
    pub(crate) fn reload(&self, force: bool) -> bool {
        let contents: Vec<_> = self
            .paths
            .iter()
            .map(|path| std::fs::read(path).ok())
            .collect();
        if !force && self.current().contents == contents {
            return false;
        }
        let verifier = Self::build_from(&self.paths, &contents, &self.build);
        match &verifier {
            Ok(_) => log_loaded(&self.paths, &contents),
            Err(error) => tracing::error!(
                %error,
                "the CRLs cannot be used: every peer certificate is refused until they can"
            ),
        }
        let loaded = Arc::new(Loaded {
            contents,
            verifier,
            expiry_reported: AtomicBool::new(false),
        });
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = loaded;
        true
    }

    /// Re-reads the CRLs every `every` and on SIGHUP, for as long as a verifier uses them.
    /// Needs a Tokio runtime; without one (or without CRLs) nothing is spawned.
    pub(crate) fn spawn(self: &Arc<Self>, every: Duration) {
        if self.paths.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(crls = %display_paths(&self.paths), "no runtime: the CRLs will not be re-read");
            return;
        };
        let watch = Arc::downgrade(self);
        runtime.spawn(watch_crls(watch, every));
    }
}

async fn watch_crls<V: ?Sized + Send + Sync + 'static>(watch: Weak<CrlWatch<V>>, every: Duration) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; the CRLs are re-read on the timer only");
            None
        }
    };
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate: the CRLs were just read
    loop {
        let force = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async {
                match hangup.as_mut() {
                    Some(hangup) => hangup.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
        };
        // The endpoint is gone once nobody holds its verifier.
        let Some(watch) = watch.upgrade() else {
            return;
        };
        if force {
            tracing::info!("SIGHUP: re-reading the CRLs");
        }
        // CRLs of a large CA take a while to parse: off the runtime's worker threads.
        let _ = tokio::task::spawn_blocking(move || watch.reload(force)).await;
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn log_loaded(paths: &[PathBuf], contents: &[Option<Vec<u8>>]) {
    use x509_parser::prelude::{CertificateRevocationList, FromDer};
    for (path, bytes) in paths.iter().zip(contents) {
        let Some(bytes) = bytes else { continue };
        for der in CertificateRevocationListDer::pem_slice_iter(bytes).flatten() {
            if let Ok((_, crl)) = CertificateRevocationList::from_der(&der) {
                tracing::info!(
                    crl = %path.display(),
                    revoked = crl.iter_revoked_certificates().count(),
                    next_update = %crl.next_update().map(|t| t.to_string()).unwrap_or_default(),
                    "CRL loaded"
                );
                // Past nextUpdate every client is refused: an alert on this gauge comes first.
                if let Some(next_update) = crl.next_update() {
                    metrics::gauge!(
                        "vix_crl_next_update_timestamp_seconds",
                        "crl" => path.display().to_string(),
                    )
                    .set(next_update.timestamp() as f64);
                }
            }
        }
    }
}

/// A server's check of client certificates: the CA and its current CRLs (nextUpdate enforced),
/// the clientAuth EKU, and exactly one well-formed vix identity.
#[derive(Debug)]
pub(crate) struct ClientVerifier {
    hints: Vec<DistinguishedName>,
    crls: Arc<CrlWatch<dyn ClientCertVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientVerifier {
    pub(crate) fn new(roots: RootCertStore, crl_paths: Vec<PathBuf>) -> Result<Self, String> {
        let hints = roots.subjects();
        let roots = Arc::new(roots);
        let build = move |crls: Vec<CertificateRevocationListDer<'static>>| {
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), ring())
                .with_crls(crls)
                // A CRL past its nextUpdate no longer says who is revoked: refuse everyone.
                .enforce_revocation_expiration()
                .build()
                .map_err(|error| error.to_string())
        };
        let crls = CrlWatch::new(crl_paths, Box::new(build))?;
        Ok(Self {
            hints,
            crls,
            algorithms: ring().signature_verification_algorithms,
        })
    }

    pub(crate) fn crls(&self) -> &Arc<CrlWatch<dyn ClientCertVerifier>> {
        &self.crls
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let (webpki, loaded) = self.crls.verifier()?;
        let verified = webpki
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|error| self.crls.report(&loaded, error))?;
        check_usage(end_entity, Role::Client).map_err(refused)?;
        identify(end_entity).map_err(refused)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A client's check of server certificates: the CA and its current CRLs, the host name, the
/// serverAuth EKU and, for a region's links to the hub and the pseudonym service, their
/// identity (`urn:vix:hub`, `urn:vix:pseudonymizer`).
#[derive(Debug)]
pub(crate) struct ServerVerifier {
    crls: Arc<CrlWatch<WebPkiServerVerifier>>,
    /// Any other certificate of the CA valid for the host name (a region's server certificate,
    /// say) must not pose as the hub and receive the region's signals, nor as the pseudonym
    /// service and answer its evaluations.
    required: Option<PeerIdentity>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerVerifier {
    pub(crate) fn new(
        roots: RootCertStore,
        crl_paths: Vec<PathBuf>,
        required: Option<PeerIdentity>,
    ) -> Result<Self, String> {
        let roots = Arc::new(roots);
        let build = move |crls: Vec<CertificateRevocationListDer<'static>>| {
            WebPkiServerVerifier::builder_with_provider(Arc::clone(&roots), ring())
                .with_crls(crls)
                .enforce_revocation_expiration()
                .build()
                .map_err(|error| error.to_string())
        };
        let crls = CrlWatch::new(crl_paths, Box::new(build))?;
        Ok(Self {
            crls,
            required,
            algorithms: ring().signature_verification_algorithms,
        })
    }

    pub(crate) fn crls(&self) -> &Arc<CrlWatch<WebPkiServerVerifier>> {
        &self.crls
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (webpki, loaded) = self.crls.verifier()?;
        let verified = webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .inspect_err(|error| self.crls.report(&loaded, error))?;
        check_usage(end_entity, Role::Server).map_err(refused)?;
        if let Some(required) = &self.required
            && identify(end_entity).as_ref() != Ok(required)
        {
            return Err(refused(RoleError::NotTheServer(match required {
                PeerIdentity::Pseudonymizer => "pseudonym service (urn:vix:pseudonymizer)",
                _ => "hub (urn:vix:hub)",
            })));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
