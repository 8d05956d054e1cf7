//! `vix-node dead-letters`: what a region node could not deliver, for the operator. Listing shows
//! each dead letter with its reason; a retry puts an outbox event or coordination change back at
//! its old place in its queue (the forwarder of a running node sends it within a second), or
//! reads a notice-log entry again with this node's code (after an upgrade) and stores it.

use jiff::Timestamp;

use crate::domain::RegionId;
use crate::region::adoption::Adopter;
use crate::region::notice_consumer::entry_from_bytes;
use crate::store::dead_letter::{DeadLetter, Retried};
use crate::store::hub::LogEntry;
use crate::store::{SignalStore, StoreError};

/// Dead letters listed per page.
const PAGE_LEN: u32 = 500;

/// What became of one retried dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Back in its queue.
    Requeued,
    /// A notice-log entry read and stored.
    Stored,
    /// A notice-log entry still unreadable; it stays a dead letter.
    StillUnreadable(String),
    /// No dead letter has this id.
    Unknown,
}

/// Every dead letter, oldest first.
pub async fn list<S: SignalStore>(store: &S) -> Result<Vec<DeadLetter>, StoreError> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = store.dead_letters(after, PAGE_LEN).await?;
        let Some(last) = page.last() else {
            return Ok(all);
        };
        after = last.id;
        all.extend(page);
    }
}

/// Retries the dead letters `ids`, in the order given.
/// A handed-over signal kept aside (no `[region.adoption]` then, or another predecessor) is
/// opened with `adopter` for `own_region`, as the notice consumer would.
pub async fn retry<S: SignalStore>(
    store: &S,
    ids: &[i64],
    own_region: &RegionId,
    adopter: Option<&Adopter>,
    now: Timestamp,
) -> Result<Vec<(i64, RetryOutcome)>, StoreError> {
    let mut outcomes = Vec::with_capacity(ids.len());
    for &id in ids {
        let outcome = match store.retry_dead_letter(id).await? {
            Retried::Requeued => RetryOutcome::Requeued,
            Retried::Unknown => RetryOutcome::Unknown,
            Retried::Reread(letter) => match entry_from_bytes(&letter.payload) {
                Ok(LogEntry::Adoption { cursor, adoption }) => {
                    match crate::region::adoption::open(adopter, own_region, &adoption) {
                        Ok(opened) => {
                            // The cursor stays where it is (raised only, past this entry).
                            store.adopt(cursor, opened, now).await?;
                            store.remove_dead_letter(id).await?;
                            RetryOutcome::Stored
                        }
                        Err(reason) => RetryOutcome::StillUnreadable(reason),
                    }
                }
                Ok(entry) => {
                    // Stored first: a crash in between leaves the dead letter, and storing the
                    // entry again changes nothing.
                    store.store_hub_log(vec![entry], now).await?;
                    store.remove_dead_letter(id).await?;
                    RetryOutcome::Stored
                }
                Err(malformed) => RetryOutcome::StillUnreadable(malformed.errors.to_string()),
            },
        };
        outcomes.push((id, outcome));
    }
    Ok(outcomes)
}
