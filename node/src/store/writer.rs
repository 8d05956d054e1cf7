//! Group commit for SQLite's single writer.
//!
//! The writer is a thread of its own with a rusqlite connection: its statements run
//! synchronously, with prepared statements cached. Through sqlx every statement was a round trip
//! to sqlx's worker thread (about 25-30 µs on this kind of machine, most of a registration's
//! cost), and on the shared runtime each wake-up also queued behind the request tasks.
//!
//! With `synchronous=FULL`, a commit costs an fsync, and the disk does only so many of those a
//! second; one transaction per request made every write wait for its own fsync behind all the
//! others. Here one task owns the write connection. It takes every write that is queued (up to
//! [`GroupCommit::max_batch`], waiting at most [`GroupCommit::max_wait_us`] for more), runs
//! each in order inside its own savepoint of one transaction, commits once, and only then
//! answers each caller. So:
//! - a write that fails is rolled back to its savepoint and fails alone; the others commit;
//! - no caller hears of success before the commit that holds its write is on disk;
//! - if the commit itself fails, every write of the batch fails, and none of them happened;
//! - writes are applied in the order they were queued, each seeing the ones before it, as with
//!   one transaction after the other.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::StoreError;

/// How the single writer groups concurrent writes into one transaction and one fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupCommit {
    /// At most this many writes share a commit; 1 commits every write on its own.
    pub max_batch: u32,
    /// After the first write of a batch, how long (microseconds) to wait for more before
    /// committing; 0 takes only what is already queued, which adds no latency when idle.
    pub max_wait_us: u64,
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self {
            max_batch: 512,
            max_wait_us: 0,
        }
    }
}

/// One write: runs on the writer's connection inside a savepoint. The `bool` says it deleted
/// personal data, so the WAL is truncated after the commit.
pub(super) type WriteFn<T, E> = Box<dyn FnOnce(&Connection) -> Result<(T, bool), E> + Send>;

/// What the writer calls once the batch's fate is known: `Ok` if it committed.
type Completion = Box<dyn FnOnce(Result<(), Arc<rusqlite::Error>>) + Send>;

/// A write waiting in the queue, with the caller to answer.
trait Queued: Send {
    /// Runs the write in its savepoint of the batch's transaction.
    fn run(self: Box<Self>, tx: &mut Transaction<'_>) -> Ran;

    /// The batch could not even begin: the write never ran.
    fn fail(self: Box<Self>, error: Arc<rusqlite::Error>);
}

type Job = Box<dyn Queued>;

struct QueuedWrite<T, E> {
    write: WriteFn<T, E>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<T, E> Queued for QueuedWrite<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, tx: &mut Transaction<'_>) -> Ran {
        let Self { write, reply } = *self;
        let (outcome, purge_wal, poisoned) = in_savepoint(tx, write);
        let completion: Completion = Box::new(move |committed| {
            let answer = match committed {
                Ok(()) => outcome,
                // Rolled back with the batch: whatever this write did is undone.
                Err(error) => Err(E::from(StoreError::Commit(error))),
            };
            // The caller may have gone; its write stands (or fell) all the same.
            let _ = reply.send(answer);
        });
        Ran {
            completion,
            purge_wal,
            poisoned,
        }
    }

    fn fail(self: Box<Self>, error: Arc<rusqlite::Error>) {
        let _ = self.reply.send(Err(E::from(StoreError::Commit(error))));
    }
}

struct Ran {
    completion: Completion,
    /// The write deleted personal data: truncate the WAL after the commit (invariant 6).
    purge_wal: bool,
    /// The savepoint could not be released or rolled back: the transaction is in an unknown
    /// state and the whole batch must go.
    poisoned: bool,
}

/// The handle writes are sent through. The writer stops when [`Writer::close`] is called.
pub(super) struct Writer {
    jobs: Mutex<Option<flume::Sender<Job>>>,
    /// Answers when the writer's thread has closed the connection.
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
    stats: Arc<Counters>,
}

/// What the writer has done since it started: writes run and transactions committed. Their
/// ratio is the group commit's batch size.
#[derive(Debug, Default)]
struct Counters {
    writes: AtomicU64,
    commits: AtomicU64,
}

/// A reading of the writer's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub writes: u64,
    pub commits: u64,
}

/// How many writes may wait in the queue before callers wait to enqueue.
const QUEUE_DEPTH: usize = 8192;
/// How long a caller waits for room in the queue before the store answers `Busy`.
const ENQUEUE_WAIT_MAX: Duration = Duration::from_secs(10);
/// How long a statement waits for a lock held by another process (`import-mutations`).
const LOCK_WAIT_MAX: Duration = Duration::from_secs(10);
/// `PRAGMA optimize` keeps the planner's statistics current; SQLite advises running it
/// periodically on long-lived connections.
const OPTIMIZE_EVERY: Duration = Duration::from_secs(3600);
/// The WAL size (pages) at which the writer checkpoints itself: only when the checkpointer
/// cannot keep up (a reader pinning an old snapshot), so the WAL stays bounded.
const WAL_PAGES_MAX: u32 = 16_384;
/// How often the checkpointer copies the WAL into the database file. Measured against a
/// checkpoint after every commit, this gave the region more throughput and lower latency: the
/// checkpoints no longer competed with every request for the two cores.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// Prepared statements kept by the writer's connection: every statement vix writes with.
const STATEMENT_CACHE: usize = 256;

impl Writer {
    /// Opens the write connection to the (migrated) database at `path` and starts the writer
    /// on a thread of its own.
    pub(super) fn start(path: &Path, options: GroupCommit) -> Result<Self, StoreError> {
        let conn = open_connection(path)?;
        // Copying the WAL back into the database file is the checkpointer's work, on a thread
        // and connection of its own, a few times a second, so the writer does not stop for it
        // (with the default auto-checkpoint, a busy writer checkpointed about once a batch) and
        // a page written by many commits is copied once per round, not once per commit.
        conn.execute_batch(&format!("PRAGMA wal_autocheckpoint = {WAL_PAGES_MAX};"))?;
        let checkpointer = open_connection(path)?;
        // Nothing is sent on it: the writer drops its end when it stops, which stops the
        // checkpointer.
        let (writer_running, running) = flume::bounded::<()>(1);
        let checkpoints = std::thread::Builder::new()
            .name("vix-checkpoint".into())
            .spawn(move || run_checkpointer(&checkpointer, &running))
            .map_err(StoreError::WriterThread)?;
        let (jobs, queue) = flume::bounded(QUEUE_DEPTH);
        let stats = Arc::new(Counters::default());
        let (stop, stopped) = oneshot::channel();
        let counters = Arc::clone(&stats);
        std::thread::Builder::new()
            .name("vix-writer".into())
            .spawn(move || {
                run(conn, &queue, options, &counters);
                drop(writer_running);
                let _ = checkpoints.join();
                let _ = stop.send(());
            })
            .map_err(StoreError::WriterThread)?;
        Ok(Self {
            jobs: Mutex::new(Some(jobs)),
            stopped: Mutex::new(Some(stopped)),
            stats,
        })
    }

    pub(super) fn stats(&self) -> WriterStats {
        WriterStats {
            writes: self.stats.writes.load(Ordering::Relaxed),
            commits: self.stats.commits.load(Ordering::Relaxed),
        }
    }

    /// Runs `write` in the next batch; answers once that batch has committed.
    pub(super) async fn write<T, E, F>(&self, write: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.enqueue(Box::new(move |conn| {
            write(conn).map(|value| (value, false))
        }))
        .await
    }

    /// Like [`Self::write`], for a write that may delete personal data: when it says so (the
    /// `bool`), the WAL is checkpointed and truncated after the commit.
    pub(super) async fn write_purging<T, E, F>(&self, write: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<(T, bool), E> + Send + 'static,
    {
        self.enqueue(Box::new(write)).await
    }

    async fn enqueue<T, E>(&self, write: WriteFn<T, E>) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(QueuedWrite { write, reply });
        let sender = self
            .jobs
            .lock()
            .map_err(|_| StoreError::Closed)?
            .clone()
            .ok_or(StoreError::Closed)?;
        match tokio::time::timeout(ENQUEUE_WAIT_MAX, sender.send_async(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(StoreError::Closed.into()),
            Err(_) => return Err(StoreError::QueueFull.into()),
        }
        // Once queued the write will run; waiting for its answer has no deadline, so a caller
        // is never told "failed" about a write that then commits.
        answer.await.map_err(|_| E::from(StoreError::Closed))?
    }

    /// Lets the queued writes finish, then closes the connection.
    pub(super) async fn close(&self) {
        let sender = self.jobs.lock().ok().and_then(|mut jobs| jobs.take());
        drop(sender);
        let stopped = self
            .stopped
            .lock()
            .ok()
            .and_then(|mut stopped| stopped.take());
        if let Some(stopped) = stopped {
            let _ = stopped.await;
        }
    }
}

/// The writer's connection, with the settings every vix database uses: WAL, a commit on disk
/// before anyone hears of it (`synchronous=FULL`), deleted data overwritten (`secure_delete`),
/// foreign keys enforced.
fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(LOCK_WAIT_MAX)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA secure_delete = ON; PRAGMA cache_size = -65536;",
    )?;
    // Statistics for the planner from the start (0x10002: analyse what needs it, with a
    // bounded effort, also tables never analysed).
    conn.execute_batch("PRAGMA optimize = 0x10002;")?;
    Ok(conn)
}

/// Runs `write` in a savepoint: released if it succeeds, rolled back if it fails.
fn in_savepoint<T, E>(tx: &mut Transaction<'_>, write: WriteFn<T, E>) -> (Result<T, E>, bool, bool)
where
    E: From<StoreError>,
{
    let mut savepoint = match tx.savepoint() {
        Ok(savepoint) => savepoint,
        Err(error) => return (Err(E::from(StoreError::from(error))), false, true),
    };
    match write(&savepoint) {
        Ok((value, purge)) => match savepoint.commit() {
            Ok(()) => (Ok(value), purge, false),
            Err(error) => (Err(E::from(StoreError::from(error))), false, true),
        },
        Err(error) => {
            // Undo, then release the (now empty) savepoint.
            let closed = savepoint.rollback().and_then(|()| savepoint.commit());
            (Err(error), false, closed.is_err())
        }
    }
}

fn run(mut conn: Connection, queue: &flume::Receiver<Job>, options: GroupCommit, stats: &Counters) {
    let max_batch = usize::try_from(options.max_batch.max(1)).unwrap_or(usize::MAX);
    let max_wait = Duration::from_micros(options.max_wait_us);
    let mut optimized = Instant::now();
    // A deletion whose WAL could not be truncated (a reader held an old snapshot): the old
    // frames still hold what was deleted, so truncation is tried again until it succeeds.
    let mut purge_pending = false;
    loop {
        let first = if purge_pending {
            match queue.recv_timeout(CHECKPOINT_EVERY) {
                Ok(job) => job,
                Err(flume::RecvTimeoutError::Timeout) => {
                    purge_pending = !checkpoint_truncate(&conn);
                    continue;
                }
                Err(flume::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match queue.recv() {
                Ok(job) => job,
                Err(_) => break,
            }
        };
        let mut batch = vec![first];
        let deadline = Instant::now() + max_wait;
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) if max_wait.is_zero() => break,
                Err(_) => match queue.recv_deadline(deadline) {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                },
            }
        }
        purge_pending |= commit_batch(&mut conn, batch, stats);
        if purge_pending {
            purge_pending = !checkpoint_truncate(&conn);
        }
        if optimized.elapsed() >= OPTIMIZE_EVERY {
            optimize(&conn);
            optimized = Instant::now();
        }
    }
    optimize(&conn);
    if let Err((_, error)) = conn.close() {
        tracing::warn!(%error, "closing the write connection failed");
    }
}

/// Runs one batch in one transaction and answers every caller; says whether it committed and
/// whether to purge the WAL.
/// Runs and commits one batch, counts it, then answers its callers (in that order, so a caller
/// that reads the counters after its answer sees its commit). Returns whether the WAL should be
/// truncated.
fn commit_batch(conn: &mut Connection, batch: Vec<Job>, stats: &Counters) -> bool {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(error) => {
            let error = Arc::new(error);
            tracing::error!(%error, writes = batch.len(), "could not begin a write transaction");
            for job in batch {
                job.fail(Arc::clone(&error));
            }
            return false;
        }
    };
    let mut ran = Vec::with_capacity(batch.len());
    let mut poisoned = false;
    for job in batch {
        // A write that panics (a bug) must not take the writer down with it: its caller hears
        // `Closed` (its reply is dropped) and its batch is rolled back, the next one runs.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(&mut tx))) {
            Ok(done) => {
                poisoned |= done.poisoned;
                ran.push(done);
            }
            Err(_) => {
                tracing::error!("a write panicked; its batch is rolled back");
                poisoned = true;
            }
        }
    }
    let committed = if poisoned {
        let _ = tx.rollback();
        Err(Arc::new(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
            Some("a savepoint could not be closed; the batch was rolled back".to_owned()),
        )))
    } else {
        tx.commit().map_err(Arc::new)
    };
    if let Err(error) = &committed {
        tracing::error!(%error, writes = ran.len(), "group commit failed; every write of the batch failed");
    }
    let purge = committed.is_ok() && ran.iter().any(|done| done.purge_wal);
    if committed.is_ok() {
        stats.writes.fetch_add(ran.len() as u64, Ordering::Relaxed);
        stats.commits.fetch_add(1, Ordering::Relaxed);
    }
    for done in ran {
        (done.completion)(committed.clone());
    }
    purge
}

/// Copies committed WAL frames into the database file every [`CHECKPOINT_EVERY`] without
/// blocking the writer (a passive checkpoint), until the writer is gone.
fn run_checkpointer(conn: &Connection, writer_running: &flume::Receiver<()>) {
    while let Ok(()) | Err(flume::RecvTimeoutError::Timeout) =
        writer_running.recv_timeout(CHECKPOINT_EVERY)
    {
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "WAL checkpoint failed; will retry");
        }
    }
    if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(%error, "final WAL checkpoint failed");
    }
}

/// After deleting personal data: copy the WAL into the database file and truncate it. The
/// deleted rows' old page images would otherwise stay in the WAL until the next automatic
/// checkpoint; `secure_delete` has already zeroed them in the pages themselves (invariant 6).
/// Whether the WAL was checkpointed and truncated.
fn checkpoint_truncate(conn: &Connection) -> bool {
    let result = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    });
    match result {
        Ok(0) => true,
        // A reader still holds an old snapshot; the writer tries again shortly.
        Ok(busy) => {
            tracing::debug!(
                busy,
                "WAL not truncated after a deletion; a reader was active; will retry"
            );
            false
        }
        Err(error) => {
            tracing::warn!(%error, "WAL checkpoint after a deletion failed; will retry");
            false
        }
    }
}

fn optimize(conn: &Connection) {
    if let Err(error) = conn.execute_batch("PRAGMA optimize;") {
        tracing::warn!(%error, "PRAGMA optimize failed");
    }
}

/// Runs a rule on the writer's thread. Every statement of a SQLite transaction (`SqliteHubTx`,
/// `SqliteRegionTx`) is synchronous, so the rule's future is ready when first polled; one that is not would wait on something the
/// writer's thread cannot drive, and fails instead of blocking the writer.
pub(super) fn run_ready<T, E: From<StoreError>>(
    rule: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    match pin!(rule).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(StoreError::Suspended.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    async fn writer(dir: &tempfile::TempDir, group_commit: GroupCommit) -> (Writer, PathBuf) {
        let path = dir.path().join("writer.sqlite");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE rows (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES rows (id))",
            )
            .unwrap();
        (Writer::start(&path, group_commit).unwrap(), path)
    }

    /// Inserts row `id`; fails after inserting it if `fail`.
    async fn insert(writer: &Writer, id: i64, fail: bool) -> Result<i64, StoreError> {
        writer
            .write(move |tx| {
                tx.execute("INSERT INTO rows (id) VALUES (?)", [id])?;
                if fail {
                    return Err(StoreError::NotFound);
                }
                Ok(id)
            })
            .await
    }

    async fn stored(path: &Path) -> Vec<i64> {
        let conn = Connection::open(path).unwrap();
        let mut statement = conn.prepare("SELECT id FROM rows ORDER BY id").unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Long enough that writes sent together land in one batch.
    const GATHER: GroupCommit = GroupCommit {
        max_batch: 512,
        max_wait_us: 200_000,
    };

    #[tokio::test]
    async fn concurrent_writes_share_one_commit_and_a_failing_write_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = writer(&dir, GATHER).await;
        let (a, b, c) = tokio::join!(
            insert(&writer, 1, false),
            insert(&writer, 2, true),
            insert(&writer, 3, false)
        );
        assert_eq!(a.unwrap(), 1);
        assert!(matches!(b, Err(StoreError::NotFound)));
        assert_eq!(c.unwrap(), 3);
        assert_eq!(
            stored(&options).await,
            [1, 3],
            "the failed write left nothing"
        );
        assert_eq!(
            writer.stats(),
            WriterStats {
                writes: 3,
                commits: 1
            }
        );
        writer.close().await;
    }

    #[tokio::test]
    async fn a_batch_size_of_one_commits_every_write_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = writer(
            &dir,
            GroupCommit {
                max_batch: 1,
                ..GATHER
            },
        )
        .await;
        let (a, b) = tokio::join!(insert(&writer, 1, false), insert(&writer, 2, false));
        a.unwrap();
        b.unwrap();
        assert_eq!(stored(&options).await, [1, 2]);
        assert_eq!(writer.stats().commits, 2);
        writer.close().await;
    }

    #[tokio::test]
    async fn when_the_commit_fails_every_write_of_the_batch_fails_and_none_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = writer(&dir, GATHER).await;
        // A deferred foreign key is checked at COMMIT: this write's savepoint is released
        // without complaint, and the commit of the whole batch then fails.
        let dangling = writer.write(|tx| {
            tx.execute_batch(
                "PRAGMA defer_foreign_keys = ON; INSERT INTO rows (id, parent) VALUES (10, 999);",
            )?;
            Ok::<_, StoreError>(())
        });
        let (good, bad) = tokio::join!(insert(&writer, 1, false), dangling);
        assert!(matches!(good, Err(StoreError::Commit(_))), "{good:?}");
        assert!(matches!(bad, Err(StoreError::Commit(_))), "{bad:?}");
        assert!(stored(&options).await.is_empty());
        // The writer goes on with the next batch.
        insert(&writer, 2, false).await.unwrap();
        assert_eq!(stored(&options).await, [2]);
        writer.close().await;
    }

    #[tokio::test]
    async fn a_write_that_panics_fails_its_batch_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, path) = writer(&dir, GATHER).await;
        let panicking = writer.write(|tx| {
            tx.execute("INSERT INTO rows (id) VALUES (7)", [])?;
            if tx.is_autocommit() {
                return Ok::<_, StoreError>(());
            }
            panic!("a bug in a write");
        });
        let (good, bad) = tokio::join!(insert(&writer, 1, false), panicking);
        assert!(matches!(good, Err(StoreError::Commit(_))), "{good:?}");
        assert!(matches!(bad, Err(StoreError::Closed)), "{bad:?}");
        assert!(stored(&path).await.is_empty());
        insert(&writer, 2, false).await.unwrap();
        assert_eq!(stored(&path).await, [2]);
        writer.close().await;
    }

    #[tokio::test]
    async fn close_finishes_the_queued_writes_then_refuses_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = writer(&dir, GATHER).await;
        // `join!` polls in order: the insert is queued before close begins.
        let (stored_first, ()) = tokio::join!(insert(&writer, 1, false), writer.close());
        assert_eq!(stored_first.unwrap(), 1);
        assert!(matches!(
            insert(&writer, 2, false).await,
            Err(StoreError::Closed)
        ));
        assert_eq!(stored(&options).await, [1]);
    }
}
