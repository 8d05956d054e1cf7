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
    pub professional_id: String,
    pub professional_name: String,
    pub professional_email: String,
    pub professional_phone: Option<String>,
    pub registered_at: Timestamp,
    pub planned_removal_date: Date,
    pub state: String,
    pub inactive_since: Option<Date>,
    /// A new signal's keys under older live key versions, for the hub to find with (a key
    /// rotation under way); never stored there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_subject_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_family_keys: Vec<String>,
}

impl OutboxEvent {
    pub fn upsert(signal: &StoredSignal) -> Self {
        Self::Upsert(Box::new(SignalSnapshot {
            signal_id: signal.signal_id.to_string(),
            revision: signal.revision.get(),
            subject_key: signal.subject_key.to_stored(),
            family_keys: signal.family_keys.iter().map(|k| k.to_stored()).collect(),
            organisation_id: signal.organisation_id.to_string(),
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
            previous_subject_keys: Vec::new(),
            previous_family_keys: Vec::new(),
        }))
    }

    /// The upsert of a new signal, with the keys it finds with under older versions.
    pub fn finding_with(mut self, previous: &crate::domain::matching::PreviousKeys) -> Self {
        if let Self::Upsert(snapshot) = &mut self {
            snapshot.previous_subject_keys =
                previous.subject.iter().map(|key| key.to_stored()).collect();
            snapshot.previous_family_keys =
                previous.family.iter().map(|key| key.to_stored()).collect();
        }
        self
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

/// A coordination change as queued for the hub: ids, an instant and the change; nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinationRecord {
    pub change_id: String,
    pub by_signal_id: String,
    pub other_signal_id: String,
    pub at: Timestamp,
    /// Set when the change names a regievoerder; otherwise the change marks afgestemd.
    pub regievoerder_signal_id: Option<String>,
}

impl From<&crate::domain::coordination::CoordinationChange> for CoordinationRecord {
    fn from(change: &crate::domain::coordination::CoordinationChange) -> Self {
        use crate::domain::coordination::ChangeKind;
        Self {
            change_id: change.change_id.to_string(),
            by_signal_id: change.by_signal.to_string(),
            other_signal_id: change.other_signal.to_string(),
            at: change.at,
            regievoerder_signal_id: match change.kind {
                ChangeKind::Regievoerder(named) => Some(named.to_string()),
                ChangeKind::Afgestemd => None,
            },
        }
    }
}

impl CoordinationRecord {
    pub fn into_change(
        self,
    ) -> Result<crate::domain::coordination::CoordinationChange, super::StoreError> {
        use crate::domain::SignalId;
        use crate::domain::coordination::{ChangeKind, CoordinationChange};
        let corrupt = || super::StoreError::Corrupt("coordination change");
        let id = |text: &str| SignalId::parse(text).map_err(|_| corrupt());
        Ok(CoordinationChange {
            change_id: uuid::Uuid::try_parse(&self.change_id).map_err(|_| corrupt())?,
            by_signal: id(&self.by_signal_id)?,
            other_signal: id(&self.other_signal_id)?,
            at: self.at,
            kind: match &self.regievoerder_signal_id {
                Some(named) => ChangeKind::Regievoerder(id(named)?),
                None => ChangeKind::Afgestemd,
            },
        })
    }
}
