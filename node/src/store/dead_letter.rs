//! What a region node could not deliver, kept aside so it never blocks what it can: an event or
//! coordination change the hub refused for good, or an entry of the hub's notice log this node
//! cannot read. The operator lists them and, once the cause is fixed, retries them
//! (`vix-node dead-letters list|retry`).

use jiff::Timestamp;

/// Where a dead letter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterSource {
    /// A signal event for the hub; the signal's later events wait behind it.
    Outbox,
    /// A coordination change for the hub.
    Coordination,
    /// An entry of the hub's notice log.
    NoticeLog,
}

impl DeadLetterSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outbox => "outbox",
            Self::Coordination => "coordination",
            Self::NoticeLog => "notice_log",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        match stored {
            "outbox" => Some(Self::Outbox),
            "coordination" => Some(Self::Coordination),
            "notice_log" => Some(Self::NoticeLog),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub source: DeadLetterSource,
    /// The event's place in its queue, or the log entry's cursor.
    pub position: i64,
    /// An outbox event's signal, whose later events wait.
    pub signal_id: Option<String>,
    pub revision: Option<u64>,
    /// As queued (JSON) or as received (protobuf bytes).
    pub payload: Vec<u8>,
    pub reason: String,
    pub quarantined_at: Timestamp,
}

/// What a retry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// Back in its queue at its old place; the forwarder sends it next.
    Requeued,
    /// A notice-log entry: the caller reads the payload again and applies it, then removes it.
    Reread(DeadLetter),
    /// No dead letter has this id.
    Unknown,
}
