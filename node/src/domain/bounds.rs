//! How much one request may ask for: page sizes and the length of lists in a request. Each
//! bound keeps one request's cost (rows read, audit row written, message built) independent of
//! how much the node holds; the API refuses a request above a bound, naming the field.

/// `ListMatches`: matches per page when the caller names no size.
pub const MATCH_PAGE_DEFAULT: u32 = 100;
/// `ListMatches`: the most matches one page may hold.
pub const MATCH_PAGE_MAX: u32 = 500;
/// `ExportYouth`: signals per page when the officer names no size.
pub const EXPORT_PAGE_DEFAULT: u32 = 100;
/// `ExportYouth`: the most signals one page may hold (each with its notices).
pub const EXPORT_PAGE_MAX: u32 = 500;
/// `OrderErasure`: the most signal ids one order may name; an order for more erases all of the
/// youth's signals (an empty list) or comes in parts.
pub const ERASURE_SIGNAL_IDS_MAX: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BoundError {
    #[error("must be at most {max}")]
    PageTooLarge { max: u32 },
    #[error("may hold at most {max} items, not {len}")]
    TooMany { len: usize, max: usize },
}

/// The page size to use for a requested `page_size`: `default` for 0 (proto3's "absent"), the
/// request itself up to `max`, refused above it.
pub fn page_size(requested: u32, default: u32, max: u32) -> Result<u32, BoundError> {
    match requested {
        0 => Ok(default),
        size if size > max => Err(BoundError::PageTooLarge { max }),
        size => Ok(size),
    }
}

/// Refuses a list in a request that is longer than `max`.
pub fn list_len(len: usize, max: usize) -> Result<(), BoundError> {
    if len > max {
        return Err(BoundError::TooMany { len, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_the_default_and_the_maximum_is_allowed() {
        assert_eq!(page_size(0, 100, 500), Ok(100));
        assert_eq!(page_size(1, 100, 500), Ok(1));
        assert_eq!(page_size(500, 100, 500), Ok(500));
    }

    #[test]
    fn above_the_maximum_is_refused() {
        assert_eq!(
            page_size(501, 100, 500),
            Err(BoundError::PageTooLarge { max: 500 })
        );
        assert_eq!(
            page_size(MATCH_PAGE_MAX + 1, MATCH_PAGE_DEFAULT, MATCH_PAGE_MAX),
            Err(BoundError::PageTooLarge { max: 500 })
        );
        assert_eq!(
            page_size(u32::MAX, EXPORT_PAGE_DEFAULT, EXPORT_PAGE_MAX),
            Err(BoundError::PageTooLarge { max: 500 })
        );
    }

    #[test]
    fn a_list_up_to_its_maximum_is_allowed() {
        assert_eq!(list_len(0, ERASURE_SIGNAL_IDS_MAX), Ok(()));
        assert_eq!(list_len(100, ERASURE_SIGNAL_IDS_MAX), Ok(()));
        assert_eq!(
            list_len(101, ERASURE_SIGNAL_IDS_MAX),
            Err(BoundError::TooMany { len: 101, max: 100 })
        );
        assert_eq!(
            BoundError::TooMany { len: 101, max: 100 }.to_string(),
            "may hold at most 100 items, not 101"
        );
    }
}
