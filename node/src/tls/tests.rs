//! Certificates by role, over real mutual TLS on loopback: each rule is checked by a call that
//! must be refused, beside a call that must be served. Conditions that take effect later (a CRL
//! re-read, a connection's maximum age) are waited for with a deadline, never a fixed sleep.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use vix_certs_dev::time::Duration as Span;
use vix_certs_dev::{DevCa, LeafSpec, Usage};

use super::*;
use crate::domain::{OrganisationId, RegionId};

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
        Ok(PeerIdentity::Organisation(
            OrganisationId::parse("jgz-north").unwrap()
        ))
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

#[test]
fn the_pseudonymizer_certificate_names_the_pseudonym_service() {
    let dir = pki();
    assert_eq!(
        identify(&first_cert(&dir.path().join("pseudonymizer.pem"))),
        Ok(PeerIdentity::Pseudonymizer)
    );
}

/// Which of a region's clients a handshake is made with.
#[derive(Clone, Copy)]
enum RegionClient {
    Hub,
    Pseudonymizer,
}

async fn hub_client_accepts(dir: &Path, cert: &str, key: &str) -> bool {
    region_client_accepts(dir, RegionClient::Hub, cert, key).await
}

/// Serves one TLS handshake on loopback with `cert`/`key` of the dev PKI and reports
/// whether the region's `client` accepted it.
async fn region_client_accepts(dir: &Path, client: RegionClient, cert: &str, key: &str) -> bool {
    let server = server_config(&TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(cert),
        key: dir.join(key),
        ..Default::default()
    })
    .unwrap()
    .config();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = tokio_rustls::TlsAcceptor::from(server).accept(tcp).await;
    });
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("region-north-client.pem"),
        key: dir.join("region-north-client.key"),
        crls: vec![dir.join("crl.pem")],
        ..Default::default()
    };
    let client = match client {
        RegionClient::Hub => hub_client_config(&files),
        RegionClient::Pseudonymizer => pseudonymizer_client_config(&files),
    }
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
    // Nor may the pseudonym service pose as the hub, or the hub as the pseudonym service.
    assert!(!hub_client_accepts(dir.path(), "pseudonymizer.pem", "pseudonymizer.key").await);
    let service = RegionClient::Pseudonymizer;
    assert!(
        region_client_accepts(
            dir.path(),
            service,
            "pseudonymizer.pem",
            "pseudonymizer.key"
        )
        .await
    );
    assert!(!region_client_accepts(dir.path(), service, "hub.pem", "hub.key").await);
}

#[test]
fn missing_files_are_clear_errors() {
    let files = TlsFiles {
        ca: "/nonexistent/ca.pem".into(),
        cert: "/nonexistent/c.pem".into(),
        key: "/nonexistent/c.key".into(),
        ..Default::default()
    };
    let error = server_config(&files).unwrap_err();
    assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
}

/// The dev CA's client and server certificate files of `name` (without `.pem`/`.key`).
fn pair(name: &str) -> (String, String) {
    (format!("{name}.pem"), format!("{name}.key"))
}

/// Issues `spec` from the dev CA in `dir` as `<name>.pem`/`.key`.
fn issue(dir: &Path, name: &str, spec: &LeafSpec) {
    let (cert, key) = pair(name);
    DevCa::load(dir).unwrap().issue(spec, &cert, &key).unwrap();
}

fn server_files(dir: &Path, name: &str) -> TlsFiles {
    let (cert, key) = pair(name);
    TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(cert),
        key: dir.join(key),
        crls: vec![dir.join("crl.pem")],
        ..Default::default()
    }
}

/// CRLs re-read quickly, so a test waits milliseconds for a change to apply.
const QUICK_RELOAD: Duration = Duration::from_millis(50);

/// A gRPC server (the health service) over mutual TLS on 127.0.0.1, port 0.
struct TestServer {
    addr: SocketAddr,
    /// Connections that completed the handshake.
    connections: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

async fn serve(tls: ServerTls) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    let incoming = incoming(listener, &tls).map(move |connection| {
        counted.fetch_add(1, Ordering::SeqCst);
        connection
    });
    let (_, health) = tonic_health::server::health_reporter();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        tls.server()
            .add_service(health)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            })
            .await
    });
    TestServer {
        addr,
        connections,
        _stop: stop,
    }
}

/// A server with `name`'s certificate, the dev CRL re-read every [`QUICK_RELOAD`].
async fn serve_as(dir: &Path, name: &str) -> TestServer {
    serve(server_tls(&server_files(dir, name), QUICK_RELOAD, None).unwrap()).await
}

/// A health client presenting `name`'s certificate, on a channel of its own.
fn client(server: &TestServer, dir: &Path, name: &str) -> HealthClient<Channel> {
    let (cert, key) = pair(name);
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(cert),
        key: dir.join(key),
        ..Default::default()
    };
    let config = client_config(&files).unwrap();
    HealthClient::new(channel(Addresses::one(server.addr), "localhost", config).unwrap())
}

async fn check(client: &mut HealthClient<Channel>) -> Result<(), tonic::Status> {
    client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|_| ())
}

/// One call as `name` on a new connection.
async fn call_as(server: &TestServer, dir: &Path, name: &str) -> Result<(), tonic::Status> {
    check(&mut client(server, dir, name)).await
}

fn is_refused(result: &Result<(), tonic::Status>) -> bool {
    // A refused handshake never reaches a service: a transport failure, not PermissionDenied.
    matches!(result, Err(status) if matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled
    ))
}

fn assert_refused(result: Result<(), tonic::Status>, what: &str) {
    assert!(is_refused(&result), "{what}: {result:?}");
}

/// Waits until `condition` holds, for at most ten seconds.
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const SERVER: &str = "region-north-server";
const JGZ: &str = "org-jgz-north";
const SCHOOL: &str = "org-school-north";

#[tokio::test]
async fn a_client_certificate_without_the_client_auth_eku_is_refused() {
    let dir = pki();
    let mut no_eku = LeafSpec::client("Zonder Rol", "urn:vix:org:no-eku");
    no_eku.usages.clear();
    issue(dir.path(), "no-eku", &no_eku);
    let mut server_eku = LeafSpec::client("Verkeerde Rol", "urn:vix:org:server-eku");
    server_eku.usages = vec![Usage::ServerAuth];
    issue(dir.path(), "server-eku", &server_eku);
    let server = serve_as(dir.path(), SERVER).await;

    call_as(&server, dir.path(), JGZ).await.unwrap();
    assert_refused(call_as(&server, dir.path(), "no-eku").await, "no EKU");
    assert_refused(
        call_as(&server, dir.path(), "server-eku").await,
        "serverAuth only",
    );
    // A server certificate of the federation is not a client certificate either.
    assert_refused(call_as(&server, dir.path(), SERVER).await, "server cert");
}

#[tokio::test]
async fn a_server_certificate_without_the_server_auth_eku_is_refused() {
    let dir = pki();
    let mut no_eku = LeafSpec::server("vix zonder rol");
    no_eku.usages.clear();
    issue(dir.path(), "server-no-eku", &no_eku);
    let mut client_eku = LeafSpec::server("vix verkeerde rol");
    client_eku.usages = vec![Usage::ClientAuth];
    issue(dir.path(), "server-client-eku", &client_eku);

    let good = serve_as(dir.path(), SERVER).await;
    call_as(&good, dir.path(), JGZ).await.unwrap();
    for name in ["server-no-eku", "server-client-eku"] {
        let server = serve_as(dir.path(), name).await;
        assert_refused(call_as(&server, dir.path(), JGZ).await, name);
    }
}

#[tokio::test]
async fn a_certificate_not_yet_valid_is_refused() {
    let dir = pki();
    let mut early = LeafSpec::client("Te Vroeg", "urn:vix:org:early");
    early.valid_from = Span::days(1);
    early.valid_until = Span::days(2);
    issue(dir.path(), "early", &early);
    let server = serve_as(dir.path(), SERVER).await;

    call_as(&server, dir.path(), JGZ).await.unwrap();
    assert_refused(call_as(&server, dir.path(), "early").await, "not yet valid");
}

#[tokio::test]
async fn a_certificate_with_two_vix_identities_is_refused() {
    let dir = pki();
    let twins = [
        ("two-orgs", "urn:vix:org:a", "urn:vix:org:b"),
        ("org-and-region", "urn:vix:org:a", "urn:vix:region:north"),
        ("org-and-hub", "urn:vix:org:a", "urn:vix:hub"),
        (
            "org-and-municipality",
            "urn:vix:org:a",
            "urn:vix:municipality:0014",
        ),
    ];
    for (name, first, second) in twins {
        let mut spec = LeafSpec::client("Twee Namen", first);
        spec.uris.push(second.to_owned());
        issue(dir.path(), name, &spec);
        let cert = first_cert(&dir.path().join(format!("{name}.pem")));
        assert_eq!(identify(&cert), Err(IdentityError::Ambiguous), "{name}");
    }
    let server = serve_as(dir.path(), SERVER).await;

    call_as(&server, dir.path(), JGZ).await.unwrap();
    for (name, ..) in twins {
        assert_refused(call_as(&server, dir.path(), name).await, name);
    }
}

#[tokio::test]
async fn a_vix_identity_in_another_letter_case_is_refused() {
    let dir = pki();
    let spellings = [
        (
            "upper",
            vec!["URN:VIX:ORG:jgz-north"],
            IdentityError::NotLowerCase,
        ),
        (
            "kind",
            vec!["urn:vix:Org:jgz-north"],
            IdentityError::NotLowerCase,
        ),
        ("hub", vec!["urn:vix:HUB"], IdentityError::NotLowerCase),
        (
            "scheme",
            vec!["Urn:vix:org:jgz-north"],
            IdentityError::NotLowerCase,
        ),
        // A reader that ignores case sees two identities; one that does not sees one.
        (
            "hidden",
            vec!["urn:vix:org:jgz-north", "URN:VIX:ORG:vt-south"],
            IdentityError::Ambiguous,
        ),
    ];
    for (name, uris, error) in &spellings {
        let mut spec = LeafSpec::client("JGZ Noord", uris[0]);
        spec.uris = uris.iter().map(|uri| (*uri).to_owned()).collect();
        issue(dir.path(), name, &spec);
        let cert = first_cert(&dir.path().join(format!("{name}.pem")));
        assert_eq!(identify(&cert).as_ref(), Err(error), "{name}");
    }
    let server = serve_as(dir.path(), SERVER).await;

    call_as(&server, dir.path(), JGZ).await.unwrap();
    for (name, ..) in &spellings {
        assert_refused(call_as(&server, dir.path(), name).await, name);
    }
}

#[tokio::test]
async fn a_newly_revoked_client_is_refused_on_its_next_handshake_without_a_restart() {
    let dir = pki();
    let server = serve_as(dir.path(), SERVER).await;
    call_as(&server, dir.path(), JGZ).await.unwrap();

    DevCa::load(dir.path())
        .unwrap()
        .revoke(&pair(JGZ).0)
        .unwrap();
    eventually("the revoked certificate is refused", || async {
        is_refused(&call_as(&server, dir.path(), JGZ).await)
    })
    .await;
    call_as(&server, dir.path(), SCHOOL).await.unwrap();
    // The dev PKI's revoked certificate stays revoked in the re-issued CRL.
    assert_refused(
        call_as(&server, dir.path(), "org-revoked").await,
        "revoked before",
    );
}

#[tokio::test]
async fn a_revoked_client_cannot_resume_its_earlier_session() {
    let dir = pki();
    let server = serve_as(dir.path(), SERVER).await;
    // One client configuration, so its session cache would offer the first session's ticket.
    let (cert, key) = pair(JGZ);
    let config = client_config(&TlsFiles {
        ca: dir.path().join("ca.pem"),
        cert: dir.path().join(cert),
        key: dir.path().join(key),
        ..Default::default()
    })
    .unwrap();
    let connect = || {
        let addrs = Addresses::one(server.addr);
        HealthClient::new(channel(addrs, "localhost", Arc::clone(&config)).unwrap())
    };
    check(&mut connect()).await.unwrap();

    DevCa::load(dir.path())
        .unwrap()
        .revoke(&pair(JGZ).0)
        .unwrap();
    eventually("the revoked client's new connection is refused", || async {
        is_refused(&check(&mut connect()).await)
    })
    .await;
}

#[tokio::test]
async fn sighup_re_reads_the_crls() {
    use tokio::signal::unix::{SignalKind, signal};
    let dir = pki();
    // The timer alone would take an hour.
    let tls = server_tls(
        &server_files(dir.path(), SERVER),
        Duration::from_secs(3600),
        None,
    )
    .unwrap();
    let server = serve(tls).await;
    call_as(&server, dir.path(), JGZ).await.unwrap();
    // Listening here too makes sure SIGHUP cannot end the test process, whichever task has
    // registered first.
    let _hangup = signal(SignalKind::hangup()).unwrap();

    DevCa::load(dir.path())
        .unwrap()
        .revoke(&pair(JGZ).0)
        .unwrap();
    eventually("SIGHUP makes the revoked certificate refused", || async {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        is_refused(&call_as(&server, dir.path(), JGZ).await)
    })
    .await;
    call_as(&server, dir.path(), SCHOOL).await.unwrap();
}

#[tokio::test]
async fn a_crl_past_its_next_update_refuses_every_client_until_it_is_renewed() {
    let dir = pki();
    let server = serve_as(dir.path(), SERVER).await;
    call_as(&server, dir.path(), JGZ).await.unwrap();

    let ca = DevCa::load(dir.path()).unwrap();
    ca.write_crl(&["org-revoked.pem"], -Span::hours(1)).unwrap();
    eventually("a valid certificate is refused (fail closed)", || async {
        is_refused(&call_as(&server, dir.path(), JGZ).await)
    })
    .await;

    ca.renew_crl().unwrap();
    eventually("the renewed CRL is used", || async {
        call_as(&server, dir.path(), JGZ).await.is_ok()
    })
    .await;
    assert_refused(
        call_as(&server, dir.path(), "org-revoked").await,
        "still revoked",
    );
}

#[tokio::test]
async fn an_unreadable_crl_refuses_every_client_until_it_is_fixed() {
    let dir = pki();
    let server = serve_as(dir.path(), SERVER).await;
    call_as(&server, dir.path(), JGZ).await.unwrap();

    std::fs::write(dir.path().join("crl.pem"), "not a CRL").unwrap();
    eventually("a valid certificate is refused (fail closed)", || async {
        is_refused(&call_as(&server, dir.path(), JGZ).await)
    })
    .await;

    DevCa::load(dir.path())
        .unwrap()
        .write_crl(&["org-revoked.pem"], Span::days(7))
        .unwrap();
    eventually("the fixed CRL is used", || async {
        call_as(&server, dir.path(), JGZ).await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn a_revoked_peer_with_an_open_connection_is_refused_once_it_has_reached_its_maximum_age() {
    let dir = pki();
    let age = ConnectionAge {
        max: Duration::from_millis(300),
        grace: Duration::from_millis(300),
    };
    let tls = server_tls(&server_files(dir.path(), SERVER), QUICK_RELOAD, Some(age)).unwrap();
    let server = serve(tls).await;
    // Long-lived channels, as the region's forwarder and notice consumer keep them.
    let mut revoked = client(&server, dir.path(), JGZ);
    let mut kept = client(&server, dir.path(), SCHOOL);
    check(&mut revoked).await.unwrap();
    check(&mut kept).await.unwrap();

    DevCa::load(dir.path())
        .unwrap()
        .revoke(&pair(JGZ).0)
        .unwrap();
    eventually("the revoked peer's reconnection is refused", || {
        // A clone shares the channel's connection.
        let mut revoked = revoked.clone();
        async move { is_refused(&check(&mut revoked).await) }
    })
    .await;

    // The other peer's channel reconnects by itself each time: no call fails.
    let before = server.connections.load(Ordering::SeqCst);
    eventually("the kept peer has reconnected twice", || {
        let mut kept = kept.clone();
        let connections = Arc::clone(&server.connections);
        async move {
            check(&mut kept).await.unwrap();
            connections.load(Ordering::SeqCst) >= before + 2
        }
    })
    .await;
}

#[tokio::test]
async fn a_stream_still_open_after_the_maximum_age_and_grace_is_cut() {
    let dir = pki();
    let age = ConnectionAge {
        max: Duration::from_millis(200),
        grace: Duration::from_millis(200),
    };
    let tls = server_tls(&server_files(dir.path(), SERVER), QUICK_RELOAD, Some(age)).unwrap();
    let server = serve(tls).await;
    let started = Instant::now();
    // Watch never ends by itself, like the hub's notice stream.
    let mut watch = client(&server, dir.path(), JGZ)
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(watch.message().await.unwrap().is_some(), "the first status");
    let ended = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("the stream is cut");
    assert!(!matches!(ended, Ok(Some(_))), "{ended:?}");
    assert!(started.elapsed() >= age.max + age.grace);
}

#[test]
fn a_new_connection_tries_the_instance_that_worked_last_then_the_list_in_order() {
    let order = |len, last| attempt_order(len, last).collect::<Vec<_>>();
    assert_eq!(order(1, 0), [0]);
    assert_eq!(order(3, 0), [0, 1, 2]);
    assert_eq!(order(3, 1), [1, 0, 2]);
    assert_eq!(order(3, 2), [2, 0, 1]);
    // An index past the end (never stored, but harmless) starts from the top.
    assert_eq!(order(2, 5), [0, 1]);
}

#[test]
fn an_address_listed_twice_is_tried_once() {
    let [a, b, c]: [SocketAddr; 3] =
        ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"].map(|addr| addr.parse().unwrap());
    let addrs = Addresses::new(a, [b, a, c, b]);
    assert_eq!(addrs.len(), 3);
    assert_eq!(
        (0..4).map(|index| addrs.get(index)).collect::<Vec<_>>(),
        [Some(a), Some(b), Some(c), None]
    );
}

/// An address on 127.0.0.1 where nothing listens: connecting is refused at once.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A hung instance: accepts TCP connections and never answers the TLS handshake, so only the
/// connect timeout ends an attempt there. Counts the connections it accepted.
async fn hung_instance() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(tcp);
        }
    });
    (addr, accepted)
}

/// Short, so a hung instance costs a test little; long enough for a loaded machine's handshake.
const QUICK_CONNECT: Duration = Duration::from_secs(2);

/// A health client as `JGZ` on one channel to `addrs`, each tried for [`QUICK_CONNECT`].
fn failover_client(dir: &Path, addrs: &[SocketAddr]) -> HealthClient<Channel> {
    let (cert, key) = pair(JGZ);
    let config = client_config(&TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(cert),
        key: dir.join(key),
        ..Default::default()
    })
    .unwrap();
    let (first, rest) = addrs.split_first().unwrap();
    let addrs = Addresses::new(*first, rest.iter().copied());
    HealthClient::new(channel_with_timeout(addrs, "localhost", config, QUICK_CONNECT).unwrap())
}

#[tokio::test]
async fn a_refused_or_hung_instance_is_passed_over() {
    let dir = pki();
    let server = serve_as(dir.path(), SERVER).await;
    let (hung, _) = hung_instance().await;
    let mut client = failover_client(dir.path(), &[closed_port().await, hung, server.addr]);

    check(&mut client).await.unwrap();
    check(&mut client).await.unwrap();
    // Both calls on one connection, to the third address.
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_channel_stays_on_the_instance_that_worked() {
    let dir = pki();
    let (hung, attempts) = hung_instance().await;
    // Connections end after a few hundred milliseconds, so the channel reconnects often.
    let age = ConnectionAge {
        max: Duration::from_millis(300),
        grace: Duration::from_millis(300),
    };
    let tls = server_tls(&server_files(dir.path(), SERVER), QUICK_RELOAD, Some(age)).unwrap();
    let server = serve(tls).await;
    let client = failover_client(dir.path(), &[hung, server.addr]);
    check(&mut client.clone()).await.unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 1);

    eventually("the channel has reconnected twice", || {
        let mut client = client.clone();
        let connections = Arc::clone(&server.connections);
        async move {
            // A request can meet a connection the server is closing for its age and fail
            // (seen under load); the next one reconnects. Where it reconnects is the point.
            let answered = check(&mut client).await.is_ok();
            answered && connections.load(Ordering::SeqCst) >= 3
        }
    })
    .await;
    // Each reconnection went straight to the working instance, past the hung preferred one.
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_instance_whose_certificate_is_refused_is_passed_over() {
    let dir = pki();
    // Valid for localhost and issued by the federation CA, but not the hub's certificate.
    let impostor = serve_as(dir.path(), "region-south-server").await;
    let hub = serve_as(dir.path(), "hub").await;
    let config = hub_client_config(&TlsFiles {
        ca: dir.path().join("ca.pem"),
        cert: dir.path().join("region-north-client.pem"),
        key: dir.path().join("region-north-client.key"),
        ..Default::default()
    })
    .unwrap();
    let addrs = Addresses::new(impostor.addr, [hub.addr]);
    let mut client =
        HealthClient::new(channel_with_timeout(addrs, "localhost", config, QUICK_CONNECT).unwrap());

    check(&mut client).await.unwrap();
    assert_eq!(hub.connections.load(Ordering::SeqCst), 1);
    // The client refused the impostor's certificate, so no connection to it was completed.
    assert_eq!(impostor.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_channel_moves_to_the_next_instance_when_the_one_in_use_stops() {
    let dir = pki();
    let first = serve_as(dir.path(), SERVER).await;
    let second = serve_as(dir.path(), SERVER).await;
    let client = failover_client(dir.path(), &[first.addr, second.addr]);
    check(&mut client.clone()).await.unwrap();
    assert_eq!(first.connections.load(Ordering::SeqCst), 1);
    assert_eq!(second.connections.load(Ordering::SeqCst), 0);

    // The first instance stops: its connection is closed and its port refuses.
    drop(first);
    // A call may fail while tonic finds its connection closed; a later one reconnects.
    eventually("a call is served by the second instance", || {
        let mut client = client.clone();
        let connections = Arc::clone(&second.connections);
        async move { check(&mut client).await.is_ok() && connections.load(Ordering::SeqCst) > 0 }
    })
    .await;
    check(&mut client.clone()).await.unwrap();
    assert_eq!(second.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn with_every_instance_down_a_call_fails_clearly_within_the_timeouts() {
    let dir = pki();
    let closed = closed_port().await;
    let (hung, _) = hung_instance().await;
    let mut client = failover_client(dir.path(), &[closed, hung]);

    // Two instances, each bounded by QUICK_CONNECT: well within this.
    let result = tokio::time::timeout(Duration::from_secs(20), check(&mut client))
        .await
        .expect("the call ends instead of hanging");
    let status = result.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let message = status.message();
    assert!(
        message.contains("none of 2 addresses reachable"),
        "the error names how many were tried: {message}"
    );
    // And why each failed.
    assert!(message.contains(&format!("{closed}: ")), "{message}");
    assert!(
        message.contains(&format!("{hung}: no TLS connection within")),
        "{message}"
    );
}
