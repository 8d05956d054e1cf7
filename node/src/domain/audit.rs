//! The audit log's entries and their hash chain (DOMAIN.md section 9). Each entry's hash covers
//! the previous entry's hash and every field of its own, so an edited, removed or reordered
//! entry breaks the chain from there on. Entries hold codes and ids only: no BSN, youth name,
//! birth date, key or free text.

use std::fmt;

use jiff::Timestamp;
use ring::digest;

use super::{MunicipalityCode, OrganisationId, RegionId, SignalId};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, as a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Register,
    Update,
    Withdraw,
    Expire,
    Purge,
    /// A professional read other parties' contact details (a match list, a history notice).
    ContactLookup,
    /// A municipality exported a youth's signals (access and copy).
    Export,
    /// A municipality corrected a signal.
    Correct,
    /// A municipality ordered signals erased (objection upheld); `detail` holds its reference.
    ErasureOrder,
    /// A party named the regievoerder of a match (`signal_ids`: own, other, named).
    Regievoerder,
    /// A party marked a match afgestemd (`signal_ids`: own, other).
    Afgestemd,
    /// At the hub: a region submitted coordination changes to relay.
    SubmitCoordination,
    /// At the hub: a region submitted a batch of signal events.
    SubmitSignals,
    /// At the hub: a region opened its notice stream (`detail`: the cursor it resumed after).
    StreamNotices,
    /// At the hub: a region acknowledged its log (`detail`: up to which cursor).
    AckNotices,
    /// A leaving region handed signals to its successor (`detail`: the successor); at the hub
    /// and on the leaving node, which then deletes its copy.
    HandOver,
    /// A region took over a signal handed over by a region that left (`detail`: that region).
    Adopt,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Update => "update",
            Self::Withdraw => "withdraw",
            Self::Expire => "expire",
            Self::Purge => "purge",
            Self::ContactLookup => "contact_lookup",
            Self::Export => "export",
            Self::Correct => "correct",
            Self::ErasureOrder => "erasure_order",
            Self::Regievoerder => "regievoerder",
            Self::Afgestemd => "afgestemd",
            Self::SubmitCoordination => "submit_coordination",
            Self::SubmitSignals => "submit_signals",
            Self::StreamNotices => "stream_notices",
            Self::AckNotices => "ack_notices",
            Self::HandOver => "hand_over",
            Self::Adopt => "adopt",
        }
    }
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A professional of an organisation.
    Professional {
        organisation_id: OrganisationId,
        professional_id: String,
    },
    /// An officer of a municipality, acting on the rights of youths and parents.
    Municipality {
        code: MunicipalityCode,
        officer_id: String,
    },
    /// A region node calling the hub.
    Region(RegionId),
    /// The node itself: the lifecycle.
    System,
}

/// One entry, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub action: AuditAction,
    pub actor: Actor,
    pub signal_ids: Vec<SignalId>,
    /// A code qualifying the action (`unjustified`, `age23`, ...) or a municipality's order
    /// reference (checked to hold only letters, digits and `-_./`); never free text.
    pub detail: Option<String>,
}

/// An entry as stored, in the columns the hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub seq: i64,
    pub at_us: i64,
    pub action: String,
    pub actor_kind: String,
    pub actor_id: String,
    pub actor_person_id: String,
    pub signal_ids: String,
    pub detail: String,
}

impl AuditEntry {
    /// The stored columns of this entry at position `seq`.
    pub fn to_stored(&self, seq: i64) -> StoredEntry {
        let (actor_kind, actor_id, actor_person_id) = match &self.actor {
            Actor::Professional {
                organisation_id,
                professional_id,
            } => (
                "professional",
                organisation_id.to_string(),
                professional_id.clone(),
            ),
            Actor::Municipality { code, officer_id } => {
                ("municipality", code.to_string(), officer_id.clone())
            }
            Actor::Region(region_id) => ("region", region_id.to_string(), String::new()),
            Actor::System => ("system", String::new(), String::new()),
        };
        StoredEntry {
            seq,
            at_us: self.at.as_microsecond(),
            action: self.action.as_str().to_owned(),
            actor_kind: actor_kind.to_owned(),
            actor_id,
            actor_person_id,
            signal_ids: self
                .signal_ids
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            detail: self.detail.clone().unwrap_or_default(),
        }
    }
}

/// `SHA-256(previous hash, then each field, each followed by a 0 byte)` as hex. The 0 bytes keep
/// field boundaries unambiguous; no field can hold one.
pub fn chain_hash(previous: &str, entry: &StoredEntry) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    let seq = entry.seq.to_string();
    let at = entry.at_us.to_string();
    for field in [
        previous,
        &seq,
        &at,
        &entry.action,
        &entry.actor_kind,
        &entry.actor_id,
        &entry.actor_person_id,
        &entry.signal_ids,
        &entry.detail,
    ] {
        context.update(field.as_bytes());
        context.update(&[0]);
    }
    hex::encode(context.finish())
}

/// Where the chain is broken, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// The entry's content or predecessor no longer matches its hash: edited or reordered.
    HashMismatch { seq: i64 },
    /// Entries are missing before this one.
    Gap { after: i64, next: i64 },
    /// Entries at the end are missing: the log once reached `expected_last`.
    Truncated { last: i64, expected_last: i64 },
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HashMismatch { seq } => write!(f, "entry {seq} was changed"),
            Self::Gap { after, next } => {
                write!(f, "entries between {after} and {next} were removed")
            }
            Self::Truncated {
                last,
                expected_last,
            } => write!(f, "entries after {last} up to {expected_last} were removed"),
        }
    }
}

impl std::error::Error for ChainBreak {}

/// Checks entries in `seq` order against their stored hashes; `highest_seq` is the highest
/// sequence number ever handed out. Returns the number of entries checked.
pub fn verify_chain(
    entries: impl IntoIterator<Item = (StoredEntry, String)>,
    highest_seq: i64,
) -> Result<u64, ChainBreak> {
    let mut previous_hash = GENESIS.to_owned();
    let mut previous_seq = 0;
    let mut count = 0;
    for (entry, stored_hash) in entries {
        if entry.seq != previous_seq + 1 {
            return Err(ChainBreak::Gap {
                after: previous_seq,
                next: entry.seq,
            });
        }
        if chain_hash(&previous_hash, &entry) != stored_hash {
            return Err(ChainBreak::HashMismatch { seq: entry.seq });
        }
        previous_hash = stored_hash;
        previous_seq = entry.seq;
        count += 1;
    }
    if previous_seq != highest_seq {
        return Err(ChainBreak::Truncated {
            last: previous_seq,
            expected_last: highest_seq,
        });
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<(StoredEntry, String)> {
        let mut previous = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let entry = AuditEntry {
                    at: Timestamp::from_second(1_800_000_000 + seq).unwrap(),
                    action: AuditAction::Register,
                    actor: Actor::Professional {
                        organisation_id: OrganisationId::parse("jgz-north").unwrap(),
                        professional_id: "p1".into(),
                    },
                    signal_ids: vec![SignalId::generate()],
                    detail: None,
                }
                .to_stored(seq);
                let hash = chain_hash(&previous, &entry);
                previous = hash.clone();
                (entry, hash)
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify_chain(chain(5), 5), Ok(5));
        assert_eq!(verify_chain(Vec::new(), 0), Ok(0));
    }

    #[test]
    fn an_edited_entry_is_found() {
        let mut entries = chain(5);
        entries[2].0.actor_person_id = "someone-else".into();
        assert_eq!(
            verify_chain(entries, 5),
            Err(ChainBreak::HashMismatch { seq: 3 })
        );
    }

    #[test]
    fn a_removed_entry_is_found_in_the_middle_and_at_the_end() {
        let mut entries = chain(5);
        entries.remove(2);
        assert_eq!(
            verify_chain(entries, 5),
            Err(ChainBreak::Gap { after: 2, next: 4 })
        );
        let mut entries = chain(5);
        entries.pop();
        assert_eq!(
            verify_chain(entries, 5),
            Err(ChainBreak::Truncated {
                last: 4,
                expected_last: 5
            })
        );
    }

    #[test]
    fn a_renumbered_chain_is_found() {
        // Remove entry 3 and renumber the rest: the hashes, which cover seq, no longer match.
        let mut entries = chain(5);
        entries.remove(2);
        for (entry, _) in entries.iter_mut().skip(2) {
            entry.seq -= 1;
        }
        assert_eq!(
            verify_chain(entries, 4),
            Err(ChainBreak::HashMismatch { seq: 3 })
        );
    }
}
