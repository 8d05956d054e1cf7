//! Mutual TLS for every vix endpoint: TLS 1.3 only, ALPN `h2`, client certificates required and
//! checked against the federation CA and its CRLs (ARCHITECTURE.md invariant 4).
//!
//! The peer's identity is read once, at the handshake, from the URI SAN of its certificate
//! (`urn:vix:org:<id>`, `urn:vix:region:<id>`) and handed to every request as [`PeerInfo`].
//! Request bodies never say who the caller is.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::UnixTime;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::domain::{MunicipalityCode, OrganisationId, RegionId};

/// A client that opens a TCP connection and then says nothing must not hold a slot forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in flight at once; beyond this, new connections wait in the kernel's backlog.
const HANDSHAKES_IN_FLIGHT_MAX: usize = 256;
/// Connections handed to the gRPC server but not yet picked up.
const ACCEPTED_QUEUE_LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("invalid CA certificate in {path}: {source}")]
    Ca {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("cannot build the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("invalid TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("invalid server name {0}")]
    ServerName(String),
    #[error("cannot build the server certificate verifier: {0}")]
    ServerVerifier(String),
}

/// Where an endpoint's PKI material lives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct TlsFiles {
    /// The federation CA that issued every peer's certificate.
    pub ca: PathBuf,
    /// This endpoint's own certificate (chain) and private key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CRLs of the CA; a revoked client certificate is refused.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|source| TlsError::Ca {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(roots)
}

fn read_crls(paths: &[PathBuf]) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut crls = Vec::new();
    for path in paths {
        let more = CertificateRevocationListDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|source| TlsError::Read {
                path: path.clone(),
                source,
            })?;
        crls.extend(more);
    }
    Ok(crls)
}

/// A server that requires a client certificate from the CA, not revoked by any of the CRLs.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let roots = read_roots(&files.ca)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), ring())
        .with_crls(read_crls(&files.crls)?)
        .build()?;
    let mut config = ServerConfig::builder_with_provider(ring())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(&files.cert)?, read_key(&files.key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A client that trusts only the federation CA and presents its own certificate.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    let mut config = ClientConfig::builder_with_provider(ring())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(read_roots(&files.ca)?)
        .with_client_auth_cert(read_certs(&files.cert)?, read_key(&files.key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A region's client for the hub: trusts only the federation CA, checks its CRLs, and accepts
/// only a server certificate that names the hub (`urn:vix:hub`). Any other certificate of the
/// CA valid for the host name (a region's server certificate, say) cannot pose as the hub and
/// receive the region's signals.
pub fn hub_client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    let verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(read_roots(&files.ca)?), ring())
            .with_crls(read_crls(&files.crls)?)
            .build()
            .map_err(|error| TlsError::ServerVerifier(error.to_string()))?;
    let mut config = ClientConfig::builder_with_provider(ring())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(HubVerifier { webpki: verifier }))
        .with_client_auth_cert(read_certs(&files.cert)?, read_key(&files.key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The CA's usual checks, then: the certificate must name the hub.
#[derive(Debug)]
struct HubVerifier {
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for HubVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        match identify(end_entity) {
            Ok(PeerIdentity::Hub) => Ok(verified),
            _ => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Who is calling, as its certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// An organisation system or front-end: `urn:vix:org:<id>`; the name is the subject CN.
    Organisation { id: OrganisationId, name: String },
    /// A region node calling the hub: `urn:vix:region:<id>`.
    Region(RegionId),
    /// The national hub: `urn:vix:hub`. Only ever a server.
    Hub,
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
}

/// Longest organisation name (the certificate's CN) that vix shows and sends to the hub.
pub const ORGANISATION_NAME_MAX_LEN: usize = 200;
const ORG_URN: &str = "urn:vix:org:";
const HUB_URN: &str = "urn:vix:hub";
const MUNICIPALITY_URN: &str = "urn:vix:municipality:";
const REGION_URN: &str = "urn:vix:region:";

/// Reads the vix identity from a certificate's URI SANs. Exactly one `urn:vix:org:` or
/// `urn:vix:region:` URI must be present, so a certificate can never speak for two parties.
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
            GeneralName::URI(uri) if uri.starts_with("urn:vix:") => Some(*uri),
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
        let name = common_name(&parsed)?;
        return Ok(PeerIdentity::Organisation { id, name });
    }
    if uri == HUB_URN {
        return Ok(PeerIdentity::Hub);
    }
    if let Some(id) = uri.strip_prefix(REGION_URN) {
        return RegionId::parse(id)
            .map(PeerIdentity::Region)
            .map_err(|_| IdentityError::Malformed);
    }
    Err(IdentityError::Missing)
}

/// The subject CN, which names the organisation or municipality. It travels to the hub and into
/// notices: same rule as every shown name.
fn common_name(cert: &x509_parser::prelude::X509Certificate<'_>) -> Result<String, IdentityError> {
    let name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if name.is_empty()
        || name.chars().count() > ORGANISATION_NAME_MAX_LEN
        || name.chars().any(char::is_control)
    {
        return Err(IdentityError::Malformed);
    }
    Ok(name.to_owned())
}

/// What a request knows about its connection. Inserted into every request's extensions.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote_addr: Option<SocketAddr>,
    /// The certificate's identity, or why it has none usable.
    pub identity: Result<PeerIdentity, IdentityError>,
}

/// The caller's identity as its certificate gave it, or why there is none usable (a message
/// for a PermissionDenied answer).
pub fn peer_identity<T>(request: &tonic::Request<T>) -> Result<PeerIdentity, String> {
    request
        .extensions()
        .get::<PeerInfo>()
        .ok_or_else(|| "no client certificate".to_owned())?
        .identity
        .clone()
        .map_err(|error| error.to_string())
}

/// A server-side TLS connection that carries its peer's identity into tonic.
pub struct TlsConnection {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    info: PeerInfo,
}

impl Connected for TlsConnection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Accepts TCP connections on `listener` and yields those that complete a mutual-TLS
/// handshake. Failed handshakes (wrong CA, expired, revoked) are logged and dropped; they never
/// reach a service. The stream ends when its receiver is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> ReceiverStream<Result<TlsConnection, io::Error>> {
    let (sender, receiver) = mpsc::channel(ACCEPTED_QUEUE_LEN);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT_MAX));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = Arc::clone(&handshakes).acquire_owned().await else {
                return;
            };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = sender.closed() => return,
            };
            let (tcp, remote_addr) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let sender = sender.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _ = tcp.set_nodelay(true);
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                let stream = match handshake {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::info!(%remote_addr, %error, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%remote_addr, "TLS handshake timed out");
                        return;
                    }
                };
                let identity = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(<[_]>::first)
                    .ok_or(IdentityError::Missing)
                    .and_then(identify);
                let info = PeerInfo {
                    remote_addr: Some(remote_addr),
                    identity,
                };
                let _ = sender.send(Ok(TlsConnection { stream, info })).await;
            });
        }
    });
    ReceiverStream::new(receiver)
}

/// A gRPC channel to `addr` over mutual TLS, checking that the server's certificate is valid
/// for `server_name`. Connects on first use and reconnects after failures.
pub fn channel(
    addr: SocketAddr,
    server_name: &str,
    config: Arc<ClientConfig>,
) -> Result<Channel, TlsError> {
    let server_name = ServerName::try_from(server_name.to_owned())
        .map_err(|_| TlsError::ServerName(server_name.to_owned()))?;
    // The scheme is only a label here: the connector below does the TLS.
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|_| TlsError::ServerName(addr.to_string()))?
        .connect_timeout(HANDSHAKE_TIMEOUT);
    let connector = tokio_rustls::TlsConnector::from(config);
    let connect = tower::service_fn(move |_: Uri| {
        let connector = connector.clone();
        let server_name = server_name.clone();
        async move {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(server_name, tcp).await?;
            Ok::<_, io::Error>(TokioIo::new(tls))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connect))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pki() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        vix_certs_dev::generate(dir.path(), &vix_certs_dev::DevPkiSpec::default()).unwrap();
        dir
    }

    fn first_cert(path: &Path) -> CertificateDer<'static> {
        read_certs(path).unwrap().remove(0)
    }

    #[test]
    fn identities_come_from_the_uri_san() {
        let dir = pki();
        assert_eq!(
            identify(&first_cert(&dir.path().join("org-jgz-north.pem"))),
            Ok(PeerIdentity::Organisation {
                id: OrganisationId::parse("jgz-north").unwrap(),
                name: "JGZ Noord".into()
            })
        );
        assert_eq!(
            identify(&first_cert(&dir.path().join("region-south-client.pem"))),
            Ok(PeerIdentity::Region(RegionId::parse("south").unwrap()))
        );
        // A server certificate names no caller.
        assert_eq!(
            identify(&first_cert(&dir.path().join("region-south-server.pem"))),
            Err(IdentityError::Missing)
        );
    }

    #[test]
    fn the_hub_certificate_names_the_hub() {
        let dir = pki();
        assert_eq!(
            identify(&first_cert(&dir.path().join("hub.pem"))),
            Ok(PeerIdentity::Hub)
        );
    }

    /// Serves one TLS handshake on loopback with `cert`/`key` of the dev PKI and reports
    /// whether a region's hub client accepted it.
    async fn hub_client_accepts(dir: &Path, cert: &str, key: &str) -> bool {
        let server = server_config(&TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join(cert),
            key: dir.join(key),
            crls: vec![],
        })
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = tokio_rustls::TlsAcceptor::from(server).accept(tcp).await;
        });
        let client = hub_client_config(&TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("region-north-client.pem"),
            key: dir.join("region-north-client.key"),
            crls: vec![dir.join("crl.pem")],
        })
        .unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        tokio_rustls::TlsConnector::from(client)
            .connect(name, tcp)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_region_trusts_only_the_hub_certificate_as_its_hub() {
        let dir = pki();
        assert!(hub_client_accepts(dir.path(), "hub.pem", "hub.key").await);
        // Valid for localhost and issued by the same CA, but not the hub.
        assert!(
            !hub_client_accepts(
                dir.path(),
                "region-south-server.pem",
                "region-south-server.key"
            )
            .await
        );
    }

    #[test]
    fn missing_files_are_clear_errors() {
        let files = TlsFiles {
            ca: "/nonexistent/ca.pem".into(),
            cert: "/nonexistent/c.pem".into(),
            key: "/nonexistent/c.key".into(),
            crls: vec![],
        };
        let error = server_config(&files).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
