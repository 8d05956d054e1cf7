//! The events a region node owes the hub, one per signal revision. The forwarder sends them in
//! `seq` order; `(signal_id, revision)` makes a resend harmless.
//!
//! An event holds exactly what the hub may know (ARCHITECTURE.md, Roles): pseudonyms, the
//! organisation, the professional contact and the signal's dates and state. Never a BSN, a
//! youth's birth date, or anything else about the youth.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::StoredSignal;
use crate::domain::SignalState;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum OutboxEvent {
    /// The signal as it stands at `revision`.
    Upsert(Box<SignalSnapshot>),
    /// The signal is gone; the hub keeps a tombstone so a replay cannot revive it.
    Delete { signal_id: String, revision: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalSnapshot {
    pub signal_id: String,
    pub revision: u64,
    pub subject_key: String,
    pub family_keys: Vec<String>,
    pub organisation_id: String,
    pub organisation_name: String,
    pub professional_id: String,
    pub professional_name: String,
    pub professional_email: String,
    pub professional_phone: Option<String>,
    pub registered_at: Timestamp,
    pub planned_removal_date: Date,
    pub state: String,
    pub inactive_since: Option<Date>,
}

impl OutboxEvent {
    pub fn upsert(signal: &StoredSignal) -> Self {
        Self::Upsert(Box::new(SignalSnapshot {
            signal_id: signal.signal_id.to_string(),
            revision: signal.revision.get(),
            subject_key: signal.subject_key.to_stored(),
            family_keys: signal.family_keys.iter().map(|k| k.to_stored()).collect(),
            organisation_id: signal.organisation_id.to_string(),
            organisation_name: signal.organisation_name.clone(),
            professional_id: signal.contact.professional_id().to_owned(),
            professional_name: signal.contact.name().to_owned(),
            professional_email: signal.contact.email().to_owned(),
            professional_phone: signal.contact.phone().map(str::to_owned),
            registered_at: signal.registered_at,
            planned_removal_date: signal.planned_removal_date,
            state: match signal.state {
                SignalState::Active => "active",
                SignalState::Inactive => "inactive",
            }
            .to_owned(),
            inactive_since: signal.inactive_since,
        }))
    }

    pub fn signal_id(&self) -> &str {
        match self {
            Self::Upsert(snapshot) => &snapshot.signal_id,
            Self::Delete { signal_id, .. } => signal_id,
        }
    }

    pub fn revision(&self) -> u64 {
        match self {
            Self::Upsert(snapshot) => snapshot.revision,
            Self::Delete { revision, .. } => *revision,
        }
    }
}
