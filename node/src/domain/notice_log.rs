//! Whether a notice stream continues the log a region consumed before. The hub's log has an
//! epoch (made with its database) and an end (the highest cursor it ever gave). A region that
//! stored another epoch, or a cursor past the end, is looking at another log, e.g. a hub database
//! restored from an old backup: consuming it would skip entries or store them twice, so the
//! region stops and says so.

/// The most characters of an epoch; the hub makes 32 hex digits.
const EPOCH_LEN_MAX: usize = 64;

/// What the region stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<'a> {
    pub cursor: u64,
    /// `None` before the first stream (or on a database older than epochs).
    pub epoch: Option<&'a str>,
}

/// The head of a stream, as the hub sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head<'a> {
    pub epoch: &'a str,
    pub end_cursor: u64,
}

/// What to do with a stream whose head checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continue {
    /// The log this region consumed before.
    Same,
    /// The first stream: remember its epoch, then consume.
    Adopt,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error(
        "the hub serves notice-log epoch {served}, but this node consumed epoch {stored}: \
         the hub's database was replaced or restored"
    )]
    Epoch { stored: String, served: String },
    #[error(
        "this node stored notice-log cursor {cursor}, beyond the end of the hub's log \
         ({end_cursor}): the hub's database lost entries this node already stored"
    )]
    BeyondEnd { cursor: u64, end_cursor: u64 },
    #[error("the hub sent an invalid notice-log epoch")]
    InvalidEpoch,
}

/// Checks a stream's head against what the region stored.
pub fn check(stored: &Stored<'_>, head: &Head<'_>) -> Result<Continue, Mismatch> {
    let epoch_ok = !head.epoch.is_empty()
        && head.epoch.len() <= EPOCH_LEN_MAX
        && head.epoch.bytes().all(|b| b.is_ascii_alphanumeric());
    if !epoch_ok {
        return Err(Mismatch::InvalidEpoch);
    }
    if let Some(stored_epoch) = stored.epoch
        && stored_epoch != head.epoch
    {
        return Err(Mismatch::Epoch {
            stored: stored_epoch.to_owned(),
            served: head.epoch.to_owned(),
        });
    }
    if stored.cursor > head.end_cursor {
        return Err(Mismatch::BeyondEnd {
            cursor: stored.cursor,
            end_cursor: head.end_cursor,
        });
    }
    Ok(match stored.epoch {
        Some(_) => Continue::Same,
        None => Continue::Adopt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: &str = "0f3a9c2b7d1e4f5a8b6c0d9e2f1a3b4c";

    fn head(end_cursor: u64) -> Head<'static> {
        Head {
            epoch: EPOCH,
            end_cursor,
        }
    }

    #[test]
    fn a_first_stream_adopts_the_epoch() {
        let stored = Stored {
            cursor: 0,
            epoch: None,
        };
        assert_eq!(check(&stored, &head(0)), Ok(Continue::Adopt));
        assert_eq!(check(&stored, &head(10)), Ok(Continue::Adopt));
    }

    #[test]
    fn the_same_log_continues_up_to_its_end() {
        let stored = Stored {
            cursor: 10,
            epoch: Some(EPOCH),
        };
        assert_eq!(check(&stored, &head(10)), Ok(Continue::Same));
        assert_eq!(check(&stored, &head(11)), Ok(Continue::Same));
    }

    #[test]
    fn another_epoch_is_another_log() {
        let stored = Stored {
            cursor: 3,
            epoch: Some("another"),
        };
        let error = check(&stored, &head(100)).unwrap_err();
        assert_eq!(
            error,
            Mismatch::Epoch {
                stored: "another".into(),
                served: EPOCH.into()
            }
        );
        let message = error.to_string();
        assert!(
            message.contains("another") && message.contains(EPOCH),
            "{message}"
        );
    }

    #[test]
    fn a_cursor_beyond_the_end_is_refused_even_before_an_epoch_was_stored() {
        for epoch in [None, Some(EPOCH)] {
            let stored = Stored { cursor: 12, epoch };
            assert_eq!(
                check(&stored, &head(11)),
                Err(Mismatch::BeyondEnd {
                    cursor: 12,
                    end_cursor: 11
                })
            );
        }
    }

    #[test]
    fn an_empty_or_odd_epoch_is_refused() {
        let stored = Stored {
            cursor: 0,
            epoch: None,
        };
        for epoch in ["", "a\nb", &"a".repeat(65)] {
            let head = Head {
                epoch,
                end_cursor: 0,
            };
            assert_eq!(check(&stored, &head), Err(Mismatch::InvalidEpoch));
        }
    }
}
