//! Group commit for SQLite's single writer.
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
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Sqlite, Transaction};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

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

/// One write: runs on the writer's connection inside a savepoint.
pub(super) type WriteFn<T, E> = Box<
    dyn for<'c> FnOnce(
            &'c mut SqliteConnection,
        ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
        + Send,
>;

/// What the writer calls once the batch's fate is known: `Ok` if it committed.
type Completion = Box<dyn FnOnce(Result<(), Arc<sqlx::Error>>) + Send>;

/// A write waiting in the queue, with the caller to answer.
trait Queued: Send {
    /// Runs the write in its savepoint on `conn`, inside the batch's transaction.
    fn run<'c>(
        self: Box<Self>,
        conn: &'c mut SqliteConnection,
    ) -> Pin<Box<dyn Future<Output = Ran> + Send + 'c>>;

    /// The batch could not even begin: the write never ran.
    fn fail(self: Box<Self>, error: Arc<sqlx::Error>);
}

type Job = Box<dyn Queued>;

struct QueuedWrite<T, E> {
    write: WriteFn<(T, bool), E>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<T, E> Queued for QueuedWrite<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    fn run<'c>(
        self: Box<Self>,
        conn: &'c mut SqliteConnection,
    ) -> Pin<Box<dyn Future<Output = Ran> + Send + 'c>> {
        let Self { write, reply } = *self;
        Box::pin(async move {
            let (outcome, purge_wal, poisoned) = in_savepoint(conn, write).await;
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
        })
    }

    fn fail(self: Box<Self>, error: Arc<sqlx::Error>) {
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

/// The handle writes are sent through. Cloning is cheap; the writer stops when every handle
/// is gone or [`Writer::close`] is called.
pub(super) struct Writer {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// How many writes may wait in the queue before callers wait to enqueue.
const QUEUE_DEPTH: usize = 8192;
/// How long a caller waits for room in the queue before the store answers `Busy`.
const ENQUEUE_WAIT_MAX: Duration = Duration::from_secs(10);
/// `PRAGMA optimize` keeps the planner's statistics current; SQLite advises running it
/// periodically on long-lived connections.
const OPTIMIZE_EVERY: Duration = Duration::from_secs(3600);

impl Writer {
    /// Takes over `connection` (migrated, in WAL mode) and starts the writer task.
    pub(super) fn start(connection: SqliteConnection, options: GroupCommit) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let task = tokio::spawn(run(connection, queue, options));
        Self {
            jobs: Mutex::new(Some(jobs)),
            task: Mutex::new(Some(task)),
        }
    }

    /// Runs `write` in the next batch; answers once that batch has committed.
    pub(super) async fn write<T, E, F>(&self, write: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: for<'c> FnOnce(
                &'c mut SqliteConnection,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send
            + 'static,
    {
        self.enqueue(Box::new(move |conn| {
            Box::pin(async move { write(conn).await.map(|value| (value, false)) })
        }))
        .await
    }

    /// Like [`Self::write`], for a write that may delete personal data: when it says so (the
    /// `bool`), the WAL is checkpointed and truncated after the commit.
    pub(super) async fn write_purging<T, E, F>(&self, write: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: for<'c> FnOnce(
                &'c mut SqliteConnection,
            )
                -> Pin<Box<dyn Future<Output = Result<(T, bool), E>> + Send + 'c>>
            + Send
            + 'static,
    {
        self.enqueue(Box::new(write)).await
    }

    async fn enqueue<T, E>(&self, write: WriteFn<(T, bool), E>) -> Result<T, E>
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
        match tokio::time::timeout(ENQUEUE_WAIT_MAX, sender.send(job)).await {
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
        let task = self.task.lock().ok().and_then(|mut task| task.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// Runs `write` in a savepoint: released if it succeeds, rolled back if it fails.
async fn in_savepoint<T, E>(
    conn: &mut SqliteConnection,
    write: WriteFn<(T, bool), E>,
) -> (Result<T, E>, bool, bool)
where
    E: From<StoreError>,
{
    let mut savepoint: Transaction<'_, Sqlite> = match conn.begin().await {
        Ok(savepoint) => savepoint,
        Err(error) => return (Err(E::from(StoreError::from(error))), false, true),
    };
    match write(&mut savepoint).await {
        Ok((value, purge)) => match savepoint.commit().await {
            Ok(()) => (Ok(value), purge, false),
            Err(error) => (Err(E::from(StoreError::from(error))), false, true),
        },
        Err(error) => match savepoint.rollback().await {
            Ok(()) => (Err(error), false, false),
            Err(_) => (Err(error), false, true),
        },
    }
}

async fn run(mut conn: SqliteConnection, mut queue: mpsc::Receiver<Job>, options: GroupCommit) {
    let max_batch = usize::try_from(options.max_batch.max(1)).unwrap_or(usize::MAX);
    let max_wait = Duration::from_micros(options.max_wait_us);
    let mut optimized = Instant::now();
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + max_wait;
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) if max_wait.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(deadline, queue.recv()).await {
                    Ok(Some(job)) => batch.push(job),
                    Ok(None) | Err(_) => break,
                },
            }
        }
        let purge_wal = commit_batch(&mut conn, batch).await;
        if purge_wal {
            checkpoint_truncate(&mut conn).await;
        }
        if optimized.elapsed() >= OPTIMIZE_EVERY {
            optimize(&mut conn).await;
            optimized = Instant::now();
        }
    }
    optimize(&mut conn).await;
    if let Err(error) = conn.close().await {
        tracing::warn!(%error, "closing the write connection failed");
    }
}

/// Runs one batch in one transaction; answers every caller; says whether to purge the WAL.
async fn commit_batch(conn: &mut SqliteConnection, batch: Vec<Job>) -> bool {
    let mut ran = Vec::with_capacity(batch.len());
    let mut tx = match conn.begin().await {
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
    let mut poisoned = false;
    for job in batch {
        let done = job.run(&mut tx).await;
        poisoned |= done.poisoned;
        ran.push(done);
    }
    let committed = if poisoned {
        let _ = tx.rollback().await;
        Err(Arc::new(sqlx::Error::Protocol(
            "a savepoint could not be closed; the batch was rolled back".into(),
        )))
    } else {
        tx.commit().await.map_err(Arc::new)
    };
    if let Err(error) = &committed {
        tracing::error!(%error, writes = ran.len(), "group commit failed; every write of the batch failed");
    }
    let purge = committed.is_ok() && ran.iter().any(|done| done.purge_wal);
    for done in ran {
        (done.completion)(committed.clone());
    }
    purge
}

/// After deleting personal data: copy the WAL into the database file and truncate it. The
/// deleted rows' old page images would otherwise stay in the WAL until the next automatic
/// checkpoint; `secure_delete` has already zeroed them in the pages themselves (invariant 6).
async fn checkpoint_truncate(conn: &mut SqliteConnection) {
    let result: Result<(i64, i64, i64), sqlx::Error> =
        sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *conn)
            .await;
    match result {
        Ok((0, _, _)) => {}
        // A reader still holds an old snapshot; the next deletion or checkpoint finishes it.
        Ok((busy, _, _)) => tracing::warn!(
            busy,
            "WAL not truncated after a deletion; a reader was active"
        ),
        Err(error) => tracing::warn!(%error, "WAL checkpoint after a deletion failed"),
    }
}

async fn optimize(conn: &mut SqliteConnection) {
    if let Err(error) = sqlx::query("PRAGMA optimize").execute(&mut *conn).await {
        tracing::warn!(%error, "PRAGMA optimize failed");
    }
}

/// Opens the write connection with the options every vix database uses.
pub(super) async fn connect(
    options: &SqliteConnectOptions,
) -> Result<SqliteConnection, StoreError> {
    let mut conn = SqliteConnection::connect_with(options).await?;
    // Statistics for the planner from the start (0x10002: analyse what needs it, with a
    // bounded effort, also tables never analysed).
    sqlx::query("PRAGMA optimize=0x10002")
        .execute(&mut conn)
        .await?;
    Ok(conn)
}
