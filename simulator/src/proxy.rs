//! A TCP fault proxy on loopback. The simulator puts one between each region and the hub so a
//! run can break the link the ways networks do (partition, blackhole, latency, lost replies)
//! while the nodes stay untouched: they only see a socket that misbehaves.
//!
//! One task accepts; one task per connection relays both directions in a single `select!` loop
//! that also watches the mode, so a change reaches every open connection between two reads or
//! writes, never behind a blocked `write_all`.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Bytes read per system call and direction.
const CHUNK: usize = 16 * 1024;
/// Past this many held bytes a direction stops reading, so a stalled or delayed link pushes
/// back on the sender through TCP instead of growing without bound.
const HOLD_LIMIT: usize = 1024 * 1024;

/// How the link behaves; `FaultProxy::set` switches it for open and new connections alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMode {
    /// Bytes flow both ways unchanged, half-closes included.
    Pass,
    /// A partition answering with resets: open connections are reset, new ones are accepted
    /// and reset at once without reaching upstream.
    Cut,
    /// A blackhole: connections stay open but nothing crosses. Bytes are held, not dropped,
    /// and flow on in order when the stall ends; new connections reach upstream only then.
    Stall,
    /// Every chunk is forwarded this long after the proxy read it; order is kept per direction.
    Delay(Duration),
    /// Requests reach upstream, replies are discarded. Leaving this mode resets every
    /// connection that lost a reply (a stream with a hole cannot go on), so the client resends
    /// what upstream already applied.
    DropReplies,
}

/// Counters since the proxy started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
    /// Connections reset by `Cut`, or on leaving `DropReplies` after losing a reply.
    pub cut: u64,
    pub to_upstream: u64,
    pub to_client: u64,
    pub replies_dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    open: AtomicU64,
    cut: AtomicU64,
    to_upstream: AtomicU64,
    to_client: AtomicU64,
    replies_dropped: AtomicU64,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Relaxed);
}

/// A running proxy. Cheap to clone; the proxy stops at `shutdown` or when the last clone drops.
#[derive(Clone, Debug)]
pub struct FaultProxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    addr: SocketAddr,
    /// Every task holds a receiver: a change reaches open connections at once, dropping the
    /// sender (the last handle) ends them all, and `closed()` tells `shutdown` they have ended.
    mode: watch::Sender<LinkMode>,
    /// Apart from `mode` because other clones may still hold the sender when one shuts down.
    stop: Arc<Notify>,
    counters: Arc<Counters>,
}

impl FaultProxy {
    /// Listens on a fresh loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), upstream).await
    }

    /// As `start`, on `listen`: a restarted proxy takes its old port, so clients keep their
    /// configured address.
    pub async fn start_at(listen: SocketAddr, upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (mode, mode_rx) = watch::channel(LinkMode::Pass);
        let stop = Arc::new(Notify::new());
        let counters = Arc::new(Counters::default());
        tokio::spawn(accept_loop(
            listener,
            upstream,
            mode_rx,
            Arc::clone(&stop),
            Arc::clone(&counters),
        ));
        tracing::debug!(%addr, %upstream, "fault proxy listening");
        let inner = Inner {
            addr,
            mode,
            stop,
            counters,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Takes effect at once, for open connections too.
    pub fn set(&self, mode: LinkMode) {
        tracing::info!(proxy = %self.inner.addr, ?mode, "link mode");
        self.inner.mode.send_replace(mode);
    }

    pub fn stats(&self) -> ProxyStats {
        let c = &self.inner.counters;
        ProxyStats {
            accepted: c.accepted.load(Relaxed),
            open: c.open.load(Relaxed),
            cut: c.cut.load(Relaxed),
            to_upstream: c.to_upstream.load(Relaxed),
            to_client: c.to_client.load(Relaxed),
            replies_dropped: c.replies_dropped.load(Relaxed),
        }
    }

    /// Stops listening and closes every connection; on return the port is free again.
    pub async fn shutdown(&self) {
        self.inner.stop.notify_one();
        self.inner.mode.closed().await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mut mode: watch::Receiver<LinkMode>,
    stop: Arc<Notify>,
    counters: Arc<Counters>,
) {
    // Connections live in this set so that stopping the proxy ends them too.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.notified() => break,
            // An error means every handle is gone.
            changed = mode.changed() => if changed.is_err() { break },
            Some(joined) = conns.join_next(), if !conns.is_empty() => {
                if let Err(error) = joined
                    && error.is_panic()
                {
                    tracing::error!(%error, "fault proxy connection task panicked");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    counters.accepted.fetch_add(1, Relaxed);
                    if *mode.borrow() == LinkMode::Cut {
                        counters.cut.fetch_add(1, Relaxed);
                        reset(client);
                    } else {
                        let task = connection(client, upstream, mode.clone(), Arc::clone(&counters));
                        conns.spawn(task);
                    }
                }
                Err(error) => {
                    // Out of descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "fault proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    // Refuse newcomers first; `shutdown` returns once the last receiver (ours) is gone.
    drop(listener);
    conns.shutdown().await;
    drop(mode);
}

/// Keeps `ProxyStats::open` right however the connection task ends, abort included.
struct Open(Arc<Counters>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

async fn connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut mode: watch::Receiver<LinkMode>,
    counters: Arc<Counters>,
) {
    counters.open.fetch_add(1, Relaxed);
    let _open = Open(Arc::clone(&counters));
    // A blackholed link must not reach upstream either; meanwhile the client's bytes wait in
    // its socket.
    let Ok(first) = mode.wait_for(|m| *m != LinkMode::Stall).await.map(|m| *m) else {
        return;
    };
    if first == LinkMode::Cut {
        counters.cut.fetch_add(1, Relaxed);
        reset(client);
        return;
    }
    let mut server = match TcpStream::connect(upstream).await {
        Ok(server) => server,
        Err(error) => {
            tracing::debug!(%error, %upstream, "upstream unreachable; resetting the client");
            reset(client);
            return;
        }
    };
    // Nagle would add a delay of its own to the one under test.
    for stream in [&client, &server] {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    }
    match relay(&mut client, &mut server, &mut mode, &counters).await {
        Ok(End::Closed | End::Stopped) => {}
        Ok(End::Cut) => {
            counters.cut.fetch_add(1, Relaxed);
            reset(client);
            reset(server);
        }
        Err(error) => {
            // A reset on one side becomes a reset on the other, as on a real path.
            tracing::debug!(%error, "proxied connection failed; resetting both sides");
            reset(client);
            reset(server);
        }
    }
}

/// Closes with RST rather than FIN (zero linger), as a broken link does: the peer sees
/// ECONNRESET, not a clean end of stream.
fn reset(stream: TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        tracing::debug!(%error, "could not set zero linger; closing with FIN");
    }
}

enum End {
    /// Both sides half-closed and every byte was passed on.
    Closed,
    Cut,
    /// The proxy is gone.
    Stopped,
}

/// One direction: what was read and not yet written.
#[derive(Default)]
struct Pipe {
    held: VecDeque<(Instant, Vec<u8>)>,
    /// Bytes of the front chunk already written.
    sent: usize,
    held_bytes: usize,
    /// The source half-closed; passed on once `held` is empty.
    eof: bool,
    shut: bool,
}

impl Pipe {
    fn can_read(&self) -> bool {
        !self.eof && self.held_bytes < HOLD_LIMIT
    }

    fn took(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            self.eof = true;
        } else {
            self.held.push_back((Instant::now(), bytes.to_vec()));
            self.held_bytes += bytes.len();
        }
    }

    /// None when nothing is held, or when the delay is past the clock's range: never due.
    fn due(&self, delay: Duration) -> Option<Instant> {
        self.held
            .front()
            .and_then(|(read_at, _)| read_at.checked_add(delay))
    }

    fn unsent(&self) -> Option<&[u8]> {
        self.held.front().map(|(_, bytes)| &bytes[self.sent..])
    }

    fn wrote(&mut self, n: usize) {
        self.sent += n;
        self.held_bytes -= n;
        if self.held.front().is_some_and(|(_, b)| self.sent == b.len()) {
            self.held.pop_front();
            self.sent = 0;
        }
    }

    fn discard(&mut self) -> usize {
        self.held.clear();
        self.sent = 0;
        std::mem::take(&mut self.held_bytes)
    }

    async fn pass_eof(&mut self, to: &mut (impl AsyncWrite + Unpin)) -> io::Result<()> {
        if self.eof && self.held.is_empty() && !self.shut {
            to.shutdown().await?;
            self.shut = true;
        }
        Ok(())
    }
}

async fn write_some(to: &mut (impl AsyncWrite + Unpin), bytes: Option<&[u8]>) -> io::Result<usize> {
    match bytes {
        Some(bytes) => match to.write(bytes).await? {
            0 => Err(io::ErrorKind::WriteZero.into()),
            n => Ok(n),
        },
        // Only reached by a disabled `select!` branch, which is never polled.
        None => std::future::pending().await,
    }
}

async fn relay(
    client: &mut TcpStream,
    server: &mut TcpStream,
    mode: &mut watch::Receiver<LinkMode>,
    counters: &Counters,
) -> io::Result<End> {
    let (mut client_rx, mut client_tx) = client.split();
    let (mut server_rx, mut server_tx) = server.split();
    let (mut up, mut down) = (Pipe::default(), Pipe::default());
    let (mut up_buf, mut down_buf) = (vec![0; CHUNK], vec![0; CHUNK]);
    let mut lost_replies = false;
    loop {
        let now_mode = *mode.borrow_and_update();
        if now_mode == LinkMode::Cut || (lost_replies && now_mode != LinkMode::DropReplies) {
            return Ok(End::Cut);
        }
        let (delay, up_flows, down_flows) = match now_mode {
            LinkMode::Pass => (Duration::ZERO, true, true),
            LinkMode::Delay(delay) => (delay, true, true),
            LinkMode::DropReplies => (Duration::ZERO, true, false),
            LinkMode::Stall | LinkMode::Cut => (Duration::ZERO, false, false),
        };
        if now_mode == LinkMode::DropReplies {
            let dropped = down.discard();
            lost_replies |= dropped > 0;
            add(&counters.replies_dropped, dropped);
        }
        if up_flows {
            up.pass_eof(&mut server_tx).await?;
        }
        if down_flows {
            down.pass_eof(&mut client_tx).await?;
        }
        if up.shut && down.shut {
            return Ok(End::Closed);
        }
        let now = Instant::now();
        let up_due = up.due(delay).filter(|_| up_flows);
        let down_due = down.due(delay).filter(|_| down_flows);
        let wake = [up_due, down_due]
            .into_iter()
            .flatten()
            .filter(|d| *d > now)
            .min();
        tokio::select! {
            changed = mode.changed() => if changed.is_err() { return Ok(End::Stopped) },
            read = client_rx.read(&mut up_buf), if up.can_read() => up.took(&up_buf[..read?]),
            read = server_rx.read(&mut down_buf), if down.can_read() => down.took(&down_buf[..read?]),
            n = write_some(&mut server_tx, up.unsent()), if up_due.is_some_and(|d| d <= now) => {
                let n = n?;
                up.wrote(n);
                add(&counters.to_upstream, n);
            }
            n = write_some(&mut client_tx, down.unsent()), if down_due.is_some_and(|d| d <= now) => {
                let n = n?;
                down.wrote(n);
                add(&counters.to_client, n);
            }
            () = tokio::time::sleep_until(wake.unwrap_or(now)), if wake.is_some() => {}
        }
    }
}

#[cfg(test)]
mod tests;
