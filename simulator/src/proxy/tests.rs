//! The proxy over real loopback TCP, each mode on open and new connections.

use std::io::ErrorKind::ConnectionReset;

use tokio::time::{sleep, timeout};

use super::*;

/// Only a hung proxy gets near this.
const LIMIT: Duration = Duration::from_secs(10);
/// That nothing crosses a link can only be seen over a window; this is the window.
const QUIET: Duration = Duration::from_millis(200);

/// The upstream is a bare listener, not an echo server, so a test holds both ends of each
/// connection and sees each direction on its own.
struct Rig {
    proxy: FaultProxy,
    upstream: TcpListener,
}

impl Rig {
    async fn new() -> Self {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = FaultProxy::start(upstream.local_addr().unwrap())
            .await
            .unwrap();
        Self { proxy, upstream }
    }

    /// A client through the proxy, and the upstream end of the same connection.
    async fn pair(&self) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(self.proxy.addr()).await.unwrap();
        (client, self.accept().await)
    }

    async fn accept(&self) -> TcpStream {
        timeout(LIMIT, self.upstream.accept())
            .await
            .unwrap()
            .unwrap()
            .0
    }

    async fn eventually(&self, what: &str, done: impl Fn(ProxyStats) -> bool) {
        let wait = async {
            while !done(self.proxy.stats()) {
                sleep(Duration::from_millis(5)).await;
            }
        };
        let stats = || self.proxy.stats();
        timeout(LIMIT, wait)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}: {:?}", stats()));
    }
}

async fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).await.unwrap();
}

async fn receive(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    timeout(LIMIT, stream.read_exact(&mut bytes))
        .await
        .unwrap()
        .unwrap();
    bytes
}

async fn round_trip(client: &mut TcpStream, server: &mut TcpStream) {
    send(client, b"ping").await;
    assert_eq!(receive(server, 4).await, b"ping");
    send(server, b"pong").await;
    assert_eq!(receive(client, 4).await, b"pong");
}

/// Waits for the stream to end without another byte; `Some(kind)` if it ended in an error.
async fn ends(stream: &mut TcpStream) -> Option<io::ErrorKind> {
    let mut buf = [0; 64];
    match timeout(LIMIT, stream.read(&mut buf)).await.unwrap() {
        Ok(0) => None,
        Ok(n) => panic!("{n} bytes arrived on a link that should be closed"),
        Err(error) => Some(error.kind()),
    }
}

async fn quiet(stream: &mut TcpStream) {
    let mut buf = [0; 1];
    let read = timeout(QUIET, stream.read(&mut buf)).await;
    assert!(read.is_err(), "bytes crossed a stalled link: {read:?}");
}

#[tokio::test]
async fn pass_carries_bytes_both_ways_and_half_closes() {
    let rig = Rig::new().await;
    let (client, mut server) = rig.pair().await;
    let request: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let reply: Vec<u8> = request.iter().rev().copied().collect();
    let (mut client_rx, mut client_tx) = client.into_split();
    let talk = async {
        tokio::join!(
            async {
                client_tx.write_all(&request).await.unwrap();
                client_tx.shutdown().await.unwrap();
            },
            // read_to_end returns only once the client's FIN has crossed; the server can
            // still reply after it, so the close was a half-close.
            async {
                let mut got = Vec::new();
                server.read_to_end(&mut got).await.unwrap();
                assert!(got == request, "request changed on the way");
                server.write_all(&reply).await.unwrap();
                server.shutdown().await.unwrap();
            },
            async {
                let mut got = Vec::new();
                client_rx.read_to_end(&mut got).await.unwrap();
                assert!(got == reply, "reply changed on the way");
            },
        )
    };
    timeout(LIMIT, talk).await.unwrap();
    rig.eventually("counts and close", |s| {
        s == ProxyStats {
            accepted: 1,
            to_upstream: 1_000_000,
            to_client: 1_000_000,
            ..ProxyStats::default()
        }
    })
    .await;
}

#[tokio::test]
async fn cut_resets_open_and_new_connections_until_the_link_returns() {
    let rig = Rig::new().await;
    let (mut client, mut server) = rig.pair().await;
    round_trip(&mut client, &mut server).await;
    rig.proxy.set(LinkMode::Cut);
    assert_eq!(ends(&mut client).await, Some(ConnectionReset));
    assert_eq!(ends(&mut server).await, Some(ConnectionReset));
    let mut refused = TcpStream::connect(rig.proxy.addr()).await.unwrap();
    assert_eq!(ends(&mut refused).await, Some(ConnectionReset));
    rig.eventually("two cuts", |s| s.cut == 2 && s.accepted == 2 && s.open == 0)
        .await;
    rig.proxy.set(LinkMode::Pass);
    // Had the refused connection reached upstream, this pair's upstream end would be it,
    // and the round trip would fail.
    let (mut client, mut server) = rig.pair().await;
    round_trip(&mut client, &mut server).await;
}

#[tokio::test]
async fn stall_holds_bytes_both_ways_then_releases_them_in_order() {
    let rig = Rig::new().await;
    let (mut client, mut server) = rig.pair().await;
    round_trip(&mut client, &mut server).await;
    rig.proxy.set(LinkMode::Stall);
    send(&mut client, b"up-1 ").await;
    send(&mut server, b"down-1 ").await;
    let mut late = TcpStream::connect(rig.proxy.addr()).await.unwrap();
    send(&mut late, b"late").await;
    let no_upstream = async {
        let accepted = timeout(QUIET, rig.upstream.accept()).await;
        assert!(accepted.is_err(), "a stalled connection reached upstream");
    };
    tokio::join!(
        quiet(&mut client),
        quiet(&mut server),
        quiet(&mut late),
        no_upstream
    );
    send(&mut client, b"up-2").await;
    send(&mut server, b"down-2").await;
    rig.proxy.set(LinkMode::Pass);
    assert_eq!(receive(&mut server, 9).await, b"up-1 up-2");
    assert_eq!(receive(&mut client, 13).await, b"down-1 down-2");
    assert_eq!(receive(&mut rig.accept().await, 4).await, b"late");
    round_trip(&mut client, &mut server).await;
    assert_eq!(rig.proxy.stats().cut, 0);
}

#[tokio::test]
async fn delay_forwards_each_chunk_the_delay_after_it_was_read_in_order() {
    const DELAY: Duration = Duration::from_millis(150);
    let rig = Rig::new().await;
    let (mut client, mut server) = rig.pair().await;
    round_trip(&mut client, &mut server).await;
    rig.proxy.set(LinkMode::Delay(DELAY));
    let first_sent = Instant::now();
    send(&mut client, b"first ").await;
    // Spacing the chunks shows the delay runs per chunk, not once per burst.
    sleep(DELAY / 2).await;
    let second_sent = Instant::now();
    for chunk in [&b"second "[..], b"third ", b"fourth"] {
        send(&mut client, chunk).await;
    }
    assert_eq!(receive(&mut server, 6).await, b"first ");
    assert!(first_sent.elapsed() >= DELAY);
    assert_eq!(receive(&mut server, 19).await, b"second third fourth");
    assert!(second_sent.elapsed() >= DELAY);
    let reply_sent = Instant::now();
    send(&mut server, b"reply").await;
    assert_eq!(receive(&mut client, 5).await, b"reply");
    assert!(reply_sent.elapsed() >= DELAY);
}

#[tokio::test]
async fn drop_replies_passes_requests_and_cuts_the_connections_that_lost_replies() {
    let rig = Rig::new().await;
    let (mut client, mut server) = rig.pair().await;
    let (mut idle_client, mut idle_server) = rig.pair().await;
    round_trip(&mut client, &mut server).await;
    rig.proxy.set(LinkMode::DropReplies);
    send(&mut client, b"batch").await;
    assert_eq!(receive(&mut server, 5).await, b"batch");
    send(&mut server, b"applied").await;
    rig.eventually("the reply dropped", |s| s.replies_dropped == 7)
        .await;
    rig.proxy.set(LinkMode::Pass);
    // The reply never arrives: the client sees a reset, so it must resend the batch.
    assert_eq!(ends(&mut client).await, Some(ConnectionReset));
    assert_eq!(ends(&mut server).await, Some(ConnectionReset));
    rig.eventually("one cut", |s| s.cut == 1).await;
    round_trip(&mut idle_client, &mut idle_server).await;
}

#[tokio::test]
async fn shutdown_closes_everything_and_a_restart_keeps_the_port() {
    let rig = Rig::new().await;
    let (mut client, mut server) = rig.pair().await;
    let addr = rig.proxy.addr();
    timeout(LIMIT, rig.proxy.shutdown()).await.unwrap();
    ends(&mut client).await;
    ends(&mut server).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listening after shutdown"
    );
    let upstream = rig.upstream.local_addr().unwrap();
    let restarted = FaultProxy::start_at(addr, upstream).await.unwrap();
    assert_eq!(restarted.addr(), addr);
    let (mut client, mut server) = rig.pair().await;
    round_trip(&mut client, &mut server).await;
}

#[tokio::test]
async fn the_proxy_stops_when_its_last_handle_drops() {
    let Rig { proxy, upstream } = Rig::new().await;
    let rig = Rig {
        proxy: proxy.clone(),
        upstream,
    };
    let (mut client, mut server) = rig.pair().await;
    drop(proxy);
    round_trip(&mut client, &mut server).await;
    let addr = rig.proxy.addr();
    drop(rig.proxy);
    ends(&mut client).await;
    ends(&mut server).await;
    let refused = async {
        while TcpStream::connect(addr).await.is_ok() {
            sleep(Duration::from_millis(5)).await;
        }
    };
    timeout(LIMIT, refused).await.unwrap();
}
