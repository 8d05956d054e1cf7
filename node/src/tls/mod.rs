//! Mutual TLS for every vix endpoint: TLS 1.3 only, ALPN `h2`, client certificates required and
//! checked against the federation CA and its CRLs (ARCHITECTURE.md invariant 4).
//!
//! The peer's identity is read once, at the handshake, from the URI SAN of its certificate
//! (`urn:vix:org:<id>`, `urn:vix:region:<id>`) and handed to every request as [`PeerInfo`].
//! Request bodies never say who the caller is.

//! Mutual TLS for every vix endpoint: TLS 1.3 only, ALPN `h2`, client certificates required and
//! checked against the federation CA and its CRLs (ARCHITECTURE.md invariant 4).
//!
//! The peer's identity is read once, at the handshake, from the URI SAN of its certificate
//! (`urn:vix:org:<id>`, `urn:vix:region:<id>`) and handed to every request as [`PeerInfo`].
//! Request bodies never say who the caller is.
//!
//! Certificates by role: a client certificate must carry the clientAuth EKU and exactly one
//! vix identity in lower case, a server certificate serverAuth. CRLs are re-read while the
//! endpoint runs (on a timer and on SIGHUP) and one past its nextUpdate refuses everyone. A
//! connection lives at most `max_connection_age_secs`, so a peer revoked meanwhile must
//! reconnect, and is then refused.

mod identity;
#[cfg(test)]
mod tests;
mod verify;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Uri};

pub use identity::{IdentityError, PeerIdentity, identify};
pub use verify::RoleError;
use verify::{ClientVerifier, ServerVerifier};

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
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(String),
    #[error("invalid TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("invalid server name {0}")]
    ServerName(String),
}

/// Where an endpoint's PKI material lives, and how long what it read stays trusted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
// Like every other section: a misspelt timing must stop the node, not fall back to a default.
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The federation CA that issued every peer's certificate.
    pub ca: PathBuf,
    /// This endpoint's own certificate (chain) and private key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CRLs of the CA; a revoked peer certificate is refused, and so is every peer once a CRL
    /// is past its nextUpdate.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    /// How often the CRL files are checked for a change, in seconds; they are also re-read on
    /// SIGHUP. A changed CRL applies from the next handshake.
    #[serde(default = "default_crl_reload_secs")]
    pub crl_reload_secs: u64,
    /// Server side: a connection older than this many seconds is asked to close (HTTP/2
    /// GOAWAY; requests in flight finish), so its peer reconnects and its certificate is
    /// checked again against the current CRLs. 0: connections live for ever.
    #[serde(default = "default_max_connection_age_secs")]
    pub max_connection_age_secs: u64,
    /// Server side: how long an aged connection's open requests and streams (a notice stream
    /// never ends by itself) may continue before the connection is cut.
    #[serde(default = "default_max_connection_age_grace_secs")]
    pub max_connection_age_grace_secs: u64,
}

fn default_crl_reload_secs() -> u64 {
    5
}

/// A revoked peer keeps an open connection at most this long (plus the grace) after it was
/// revoked; each reconnect costs one handshake per peer.
fn default_max_connection_age_secs() -> u64 {
    15 * 60
}

fn default_max_connection_age_grace_secs() -> u64 {
    60
}

impl Default for TlsFiles {
    /// No files (fill them in) and the default timings.
    fn default() -> Self {
        Self {
            ca: PathBuf::new(),
            cert: PathBuf::new(),
            key: PathBuf::new(),
            crls: Vec::new(),
            crl_reload_secs: default_crl_reload_secs(),
            max_connection_age_secs: default_max_connection_age_secs(),
            max_connection_age_grace_secs: default_max_connection_age_grace_secs(),
        }
    }
}

impl TlsFiles {
    fn crl_reload(&self) -> Duration {
        Duration::from_secs(self.crl_reload_secs.max(1))
    }

    fn max_connection_age(&self) -> Option<ConnectionAge> {
        (self.max_connection_age_secs > 0).then(|| ConnectionAge {
            max: Duration::from_secs(self.max_connection_age_secs),
            grace: Duration::from_secs(self.max_connection_age_grace_secs),
        })
    }
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

/// A server endpoint's TLS: the rustls configuration, whose client verifier follows the CRL
/// files, and how long a connection may live. Serve with [`ServerTls::server`] and
/// [`incoming`].
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    age: Option<ConnectionAge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConnectionAge {
    /// From here the server sends GOAWAY: no new requests on this connection.
    max: Duration,
    /// From `max` plus this, the connection is cut, whatever is still open on it.
    grace: Duration,
}

impl ServerTls {
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }

    /// A gRPC server builder that ends connections past their maximum age gracefully (tonic
    /// sends GOAWAY; the client opens a new connection for its next request). tonic's own
    /// grace setting would replace the GOAWAY by a hard close, so the hard close after the
    /// grace is done by [`incoming`]'s connections instead.
    pub fn server(&self) -> tonic::transport::Server {
        let server = tonic::transport::Server::builder();
        match self.age {
            Some(age) => server.max_connection_age(age.max),
            None => server,
        }
    }
}

/// A server that requires a client certificate from the CA for a client role, not revoked by
/// any of the CRLs; the CRLs are re-read every `crl_reload_secs` and on SIGHUP.
pub fn server_config(files: &TlsFiles) -> Result<ServerTls, TlsError> {
    server_tls(files, files.crl_reload(), files.max_connection_age())
}

/// [`server_config`] with its timings given (tests use milliseconds).
fn server_tls(
    files: &TlsFiles,
    crl_reload: Duration,
    age: Option<ConnectionAge>,
) -> Result<ServerTls, TlsError> {
    let verifier = Arc::new(
        ClientVerifier::new(read_roots(&files.ca)?, files.crls.clone())
            .map_err(TlsError::Verifier)?,
    );
    verifier.crls().spawn(crl_reload);
    let mut config = ServerConfig::builder_with_provider(ring())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(&files.cert)?, read_key(&files.key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    // A resumed session skips the certificate check: a peer revoked since its first handshake
    // would reconnect on its ticket and be let in. Every connection verifies in full instead.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(ServerTls {
        config: Arc::new(config),
        age,
    })
}

/// A client that trusts only the federation CA (and its CRLs, if given), accepts only a server
/// certificate for the server role, and presents its own certificate.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    client_tls(files, None, files.crl_reload())
}

/// A region's client for the hub: like [`client_config`], and accepts only a server
/// certificate that names the hub (`urn:vix:hub`). Any other certificate of the CA valid for
/// the host name (a region's server certificate, say) cannot pose as the hub and receive the
/// region's signals.
pub fn hub_client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    client_tls(files, Some(PeerIdentity::Hub), files.crl_reload())
}

/// A region's client for the pseudonym service: like [`hub_client_config`], for a server
/// certificate that names the service (`urn:vix:pseudonymizer`). A region must not blind its
/// identifiers for anybody else, nor take anybody else's evaluations as pseudonyms.
pub fn pseudonymizer_client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    client_tls(files, Some(PeerIdentity::Pseudonymizer), files.crl_reload())
}

fn client_tls(
    files: &TlsFiles,
    required: Option<PeerIdentity>,
    crl_reload: Duration,
) -> Result<Arc<ClientConfig>, TlsError> {
    let verifier = Arc::new(
        ServerVerifier::new(read_roots(&files.ca)?, files.crls.clone(), required)
            .map_err(TlsError::Verifier)?,
    );
    verifier.crls().spawn(crl_reload);
    let mut config = ClientConfig::builder_with_provider(ring())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(read_certs(&files.cert)?, read_key(&files.key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    // As on the server: no resumed session that would skip checking a revoked server.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
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

/// A server-side TLS connection that carries its peer's identity into tonic, and ends itself
/// once it has outlived its maximum age and the grace after it.
pub struct TlsConnection {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    info: PeerInfo,
    /// When the connection is cut; `None`: never.
    cut_at: Option<Pin<Box<tokio::time::Sleep>>>,
    cut: bool,
}

impl TlsConnection {
    /// Whether the connection has reached its end. Polling registers the waker, so a
    /// connection that only waits for its peer wakes up at the deadline.
    fn poll_cut(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.cut
            && let Some(cut_at) = self.cut_at.as_mut()
            && cut_at.as_mut().poll(cx).is_ready()
        {
            self.cut = true;
            tracing::info!(
                remote_addr = ?self.info.remote_addr,
                "connection past its maximum age and grace: closing it"
            );
        }
        self.cut
    }
}

impl Connected for TlsConnection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

fn cut_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection past its maximum age",
    )
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // End of stream: the HTTP/2 server ends the connection and every stream still open
        // on it; the peer sees the TCP connection close and reconnects.
        if self.poll_cut(cx) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.poll_cut(cx) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.poll_cut(cx) {
            return Poll::Ready(Err(cut_error()));
        }
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
        if self.poll_cut(cx) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Accepts TCP connections on `listener` and yields those that complete a mutual-TLS
/// handshake. Failed handshakes (wrong CA, expired, revoked, wrong role) are logged and
/// dropped; they never reach a service. Each connection is cut once it is older than the
/// maximum age plus grace. The stream ends when its receiver is dropped.
pub fn incoming(
    listener: TcpListener,
    tls: &ServerTls,
) -> ReceiverStream<Result<TlsConnection, io::Error>> {
    let (sender, receiver) = mpsc::channel(ACCEPTED_QUEUE_LEN);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
    let age = tls.age;
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
                let cut_at = age.map(|age| Box::pin(tokio::time::sleep(age.max + age.grace)));
                let connection = TlsConnection {
                    stream,
                    info,
                    cut_at,
                    cut: false,
                };
                let _ = sender.send(Ok(connection)).await;
            });
        }
    });
    ReceiverStream::new(receiver)
}

/// The addresses of one service's instances (the hub's, several processes on one database),
/// the preferred one first. Never empty: a channel with nowhere to connect cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    first: SocketAddr,
    /// Tried in this order after `first`; none repeats an earlier address.
    rest: Vec<SocketAddr>,
}

impl Addresses {
    /// `first`, then `fallbacks` in their order. An address given twice is kept at its first
    /// place only, so a repeated line in a configuration does not cost a second timeout.
    pub fn new(first: SocketAddr, fallbacks: impl IntoIterator<Item = SocketAddr>) -> Self {
        let mut rest: Vec<SocketAddr> = Vec::new();
        for addr in fallbacks {
            if addr != first && !rest.contains(&addr) {
                rest.push(addr);
            }
        }
        Self { first, rest }
    }

    /// A single instance.
    pub fn one(addr: SocketAddr) -> Self {
        Self {
            first: addr,
            rest: Vec::new(),
        }
    }

    /// The preferred instance.
    pub fn first(&self) -> SocketAddr {
        self.first
    }

    fn len(&self) -> usize {
        1 + self.rest.len()
    }

    fn get(&self, index: usize) -> Option<SocketAddr> {
        match index.checked_sub(1) {
            None => Some(self.first),
            Some(index) => self.rest.get(index).copied(),
        }
    }
}

/// The order in which a new connection tries `len` addresses: the one that worked last, then
/// the others from the top. Staying on a working instance keeps a region's connections (and
/// its notice stream) on one hub; after that the list's own preference holds.
fn attempt_order(len: usize, last_working: usize) -> impl Iterator<Item = usize> {
    let start = if last_working < len { last_working } else { 0 };
    std::iter::once(start).chain((0..len).filter(move |&index| index != start))
}

/// Opens connections for a [`channel`]: TCP, then the TLS handshake, to each instance in turn
/// until one completes.
#[derive(Clone)]
struct Failover {
    addrs: Arc<Addresses>,
    /// Index into `addrs` of the instance the last connection reached, shared by every
    /// connection attempt of the channel. Only a hint for the next attempt, so relaxed
    /// ordering suffices.
    in_use: Arc<AtomicUsize>,
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
    /// For each instance, TCP connect and TLS handshake together.
    timeout: Duration,
}

impl Failover {
    async fn connect(self) -> io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>> {
        let previous = self.in_use.load(Ordering::Relaxed);
        // Why each instance failed, for the error when none answers; one entry per address.
        let mut failures: Vec<String> = Vec::new();
        let mut kind = io::ErrorKind::NotConnected;
        for index in attempt_order(self.addrs.len(), previous) {
            let Some(addr) = self.addrs.get(index) else {
                continue;
            };
            let error = match tokio::time::timeout(self.timeout, self.connect_one(addr)).await {
                Ok(Ok(tls)) => {
                    if index != previous {
                        self.in_use.store(index, Ordering::Relaxed);
                        let before = self.addrs.get(previous).unwrap_or(self.addrs.first());
                        tracing::info!(
                            %addr,
                            %before,
                            instances = self.addrs.len(),
                            unreachable = %failures.join("; "),
                            "switched to another instance: the one in use could not be reached"
                        );
                    }
                    return Ok(TokioIo::new(tls));
                }
                Ok(Err(error)) => error,
                Err(_) => io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no TLS connection within {:?}", self.timeout),
                ),
            };
            tracing::debug!(%addr, %error, "instance unreachable, trying the next");
            kind = error.kind();
            failures.push(format!("{addr}: {error}"));
        }
        let tried = failures.len();
        let plural = if tried == 1 { "" } else { "es" };
        Err(io::Error::new(
            kind,
            format!(
                "none of {tried} address{plural} reachable ({})",
                failures.join("; ")
            ),
        ))
    }

    async fn connect_one(
        &self,
        addr: SocketAddr,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        self.connector.connect(self.server_name.clone(), tcp).await
    }
}

/// One instance's TCP connect and TLS handshake may take this long before the next instance is
/// tried; as long as a server waits for a handshake.
const CONNECT_TIMEOUT: Duration = HANDSHAKE_TIMEOUT;

/// A gRPC channel over mutual TLS to one of `addrs`, checking that the server's certificate is
/// valid for `server_name`. Connects on first use and reconnects after failures; each new
/// connection tries the instance that worked last, then the others in order, so a channel
/// moves on when the instance it uses stops.
pub fn channel(
    addrs: Addresses,
    server_name: &str,
    config: Arc<ClientConfig>,
) -> Result<Channel, TlsError> {
    channel_with_timeout(addrs, server_name, config, CONNECT_TIMEOUT)
}

/// [`channel`] with the per-instance timeout given (tests use milliseconds).
fn channel_with_timeout(
    addrs: Addresses,
    server_name: &str,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<Channel, TlsError> {
    let server_name = ServerName::try_from(server_name.to_owned())
        .map_err(|_| TlsError::ServerName(server_name.to_owned()))?;
    // The scheme and address are only a label here (the connector below picks the instance and
    // does the TLS); no vix server reads the request's authority. No connect timeout on the
    // endpoint: it would bound all instances together, so the connector bounds each one.
    let first = addrs.first();
    let endpoint = Endpoint::from_shared(format!("http://{first}"))
        .map_err(|_| TlsError::ServerName(first.to_string()))?;
    let failover = Failover {
        addrs: Arc::new(addrs),
        in_use: Arc::new(AtomicUsize::new(0)),
        connector: tokio_rustls::TlsConnector::from(config),
        server_name,
        timeout,
    };
    let connect = tower::service_fn(move |_: Uri| failover.clone().connect());
    Ok(endpoint.connect_with_connector_lazy(connect))
}
