//! What a leaving region node hands its successor of each signal (issue 12, decommission): the
//! signal with what only the node holds (birth date, informing record), the notices addressed
//! to it with their unsent e-mails, the pairs the node told, the coordination of its matches and
//! whether the youth died. Written as JSON by the leaving node, sealed for the successor
//! (`handover_seal`), relayed by the hub unread, and checked field by field by the successor
//! before anything is stored: a record from another node is input, not a row of this one.

use serde::{Deserialize, Serialize};

use crate::domain::contact::ContactInput;
use crate::domain::coordination::{CoordinationState, ordered};
use crate::domain::matching::{MatchType, NoticeKind, ToldPair};
use crate::domain::{ProfessionalContact, RegionId, Revision, SignalId, ValidationErrors};
use crate::store::region::rows::{InformingColumns, coordination_from_row, signal_from_row};
use crate::store::row::{Columns, parse_org, parse_org_name, parse_signal_id, parse_subject};
use crate::store::{StoreError, StoredSignal};

/// The record's format; a successor refuses one it does not know.
pub(crate) const RECORD_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoverRecord {
    pub format: u32,
    pub signal: SignalRecord,
    pub notices: Vec<NoticeRecord>,
    pub told_pairs: Vec<ToldPairRecord>,
    pub coordination: Vec<MatchCoordinationRecord>,
    pub deceased: bool,
}

/// A `signals` row, by column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalRecord {
    pub signal_id: String,
    pub revision: u64,
    pub organisation_id: String,
    pub organisation_name: String,
    pub professional_id: String,
    pub professional_name: String,
    pub professional_email: String,
    pub professional_phone: Option<String>,
    pub subject_key: String,
    pub family_keys: Vec<String>,
    pub birth_date: String,
    pub registered_at: i64,
    pub planned_removal_date: String,
    pub state: String,
    pub inactive_since: Option<String>,
    pub informing: String,
    pub informed_parents: bool,
    pub informed_youth: bool,
    pub informed_on: Option<String>,
    pub not_informed_reason: Option<String>,
}

/// A `notices` row addressed to the signal, by column, and whether its e-mail is still to go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeRecord {
    pub notice_id: String,
    /// `node` (a match within the region) or `hub` (across regions).
    pub source: String,
    pub counterpart_signal_id: String,
    pub counterpart_organisation_id: String,
    pub counterpart_region_id: String,
    /// `node` notices only.
    pub counterpart_subject_key: Option<String>,
    /// `hub` notices only: the counterpart as the hub showed it.
    pub counterpart_organisation_name: Option<String>,
    pub counterpart_professional_id: Option<String>,
    pub counterpart_professional_name: Option<String>,
    pub counterpart_professional_email: Option<String>,
    pub counterpart_professional_phone: Option<String>,
    pub counterpart_state: Option<String>,
    pub match_type: String,
    pub kind: String,
    pub found_at: i64,
    pub email_pending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToldPairRecord {
    pub recipient_organisation_id: String,
    pub recipient_subject_key: String,
    pub counterpart_organisation_id: String,
    pub counterpart_subject_key: String,
    pub match_type: String,
}

/// A `coordination` row naming the signal, by column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchCoordinationRecord {
    pub signal_low: String,
    pub signal_high: String,
    pub regievoerder_signal_id: Option<String>,
    pub regievoerder_at: Option<i64>,
    pub regievoerder_change_id: Option<String>,
    pub afgestemd_low: bool,
    pub afgestemd_high: bool,
}

/// A handed-over signal, checked, as the successor stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    pub from_region: RegionId,
    pub signal: StoredSignal,
    /// Each checked: ids, types and which columns its source fills.
    pub notices: Vec<NoticeRecord>,
    /// The leaving node's pairs and the hub's pairs with this region's parties.
    pub told_pairs: Vec<ToldPair>,
    pub coordination: Vec<(SignalId, SignalId, CoordinationState)>,
    pub deceased: bool,
}

impl SignalRecord {
    pub fn of(signal: &StoredSignal) -> Self {
        let informing = InformingColumns::of(&signal.informing);
        Self {
            signal_id: signal.signal_id.to_string(),
            revision: signal.revision.get(),
            organisation_id: signal.organisation_id.to_string(),
            organisation_name: signal.organisation_name.to_string(),
            professional_id: signal.contact.professional_id().to_owned(),
            professional_name: signal.contact.name().to_owned(),
            professional_email: signal.contact.email().to_owned(),
            professional_phone: signal.contact.phone().map(str::to_owned),
            subject_key: signal.subject_key.to_stored(),
            family_keys: signal
                .family_keys
                .iter()
                .map(|key| key.to_stored())
                .collect(),
            birth_date: signal.birth_date.to_string(),
            registered_at: signal.registered_at.as_microsecond(),
            planned_removal_date: signal.planned_removal_date.to_string(),
            state: signal.state.as_str().to_owned(),
            inactive_since: signal.inactive_since.map(|date| date.to_string()),
            informing: informing.kind.to_owned(),
            informed_parents: informing.parents,
            informed_youth: informing.youth,
            informed_on: informing.informed_on,
            not_informed_reason: informing.reason.map(str::to_owned),
        }
    }
}

impl ToldPairRecord {
    pub fn of(pair: &ToldPair) -> Self {
        Self {
            recipient_organisation_id: pair.recipient_organisation_id.to_string(),
            recipient_subject_key: pair.recipient_subject_key.to_stored(),
            counterpart_organisation_id: pair.counterpart_organisation_id.to_string(),
            counterpart_subject_key: pair.counterpart_subject_key.to_stored(),
            match_type: pair.match_type.as_str().to_owned(),
        }
    }

    fn check(&self) -> Result<ToldPair, StoreError> {
        Ok(ToldPair {
            recipient_organisation_id: parse_org(&self.recipient_organisation_id)?,
            recipient_subject_key: parse_subject(&self.recipient_subject_key)?,
            counterpart_organisation_id: parse_org(&self.counterpart_organisation_id)?,
            counterpart_subject_key: parse_subject(&self.counterpart_subject_key)?,
            match_type: MatchType::parse(&self.match_type)
                .ok_or(StoreError::Corrupt("told pair match_type"))?,
        })
    }
}

impl MatchCoordinationRecord {
    pub fn of(low: SignalId, high: SignalId, state: &CoordinationState) -> Self {
        let (named, at, change) = match state.regievoerder {
            Some((named, at, change)) => (
                Some(named.to_string()),
                Some(at.as_microsecond()),
                Some(change.to_string()),
            ),
            None => (None, None, None),
        };
        Self {
            signal_low: low.to_string(),
            signal_high: high.to_string(),
            regievoerder_signal_id: named,
            regievoerder_at: at,
            regievoerder_change_id: change,
            afgestemd_low: state.afgestemd_low,
            afgestemd_high: state.afgestemd_high,
        }
    }
}

impl NoticeRecord {
    /// The record's ids and codes parse, its source fills the columns that source fills, and it
    /// is addressed to `signal_id`'s region's own signal (checked by the caller).
    fn check(&self) -> Result<(), StoreError> {
        if uuid::Uuid::try_parse(&self.notice_id).is_err() {
            return Err(StoreError::Corrupt("notice_id"));
        }
        parse_signal_id(&self.counterpart_signal_id)?;
        parse_org(&self.counterpart_organisation_id)?;
        RegionId::parse(&self.counterpart_region_id)
            .map_err(|_| StoreError::Corrupt("counterpart_region_id"))?;
        MatchType::parse(&self.match_type).ok_or(StoreError::Corrupt("match_type"))?;
        NoticeKind::parse(&self.kind).ok_or(StoreError::Corrupt("kind"))?;
        crate::store::row::parse_instant(self.found_at)?;
        match self.source.as_str() {
            "node" => {
                parse_subject(
                    self.counterpart_subject_key
                        .as_deref()
                        .ok_or(StoreError::Corrupt("counterpart_subject_key"))?,
                )?;
            }
            "hub" => {
                parse_org_name(
                    self.counterpart_organisation_name
                        .as_deref()
                        .ok_or(StoreError::Corrupt("counterpart_organisation_name"))?,
                )?;
                let mut errors = ValidationErrors::new();
                ProfessionalContact::parse(
                    ContactInput {
                        professional_id: self
                            .counterpart_professional_id
                            .as_deref()
                            .unwrap_or_default(),
                        name: self
                            .counterpart_professional_name
                            .as_deref()
                            .unwrap_or_default(),
                        email: self
                            .counterpart_professional_email
                            .as_deref()
                            .unwrap_or_default(),
                        phone: self
                            .counterpart_professional_phone
                            .as_deref()
                            .unwrap_or_default(),
                    },
                    "counterpart",
                    &mut errors,
                )
                .ok_or(StoreError::Corrupt("counterpart contact"))?;
                crate::store::row::parse_state(
                    self.counterpart_state
                        .as_deref()
                        .ok_or(StoreError::Corrupt("counterpart_state"))?,
                )?;
            }
            _ => return Err(StoreError::Corrupt("notice source")),
        }
        Ok(())
    }
}

impl HandoverRecord {
    /// Checks the record as the successor must before storing it: every field parses, and it is
    /// the signal and revision the hub said it hands over.
    pub fn check(
        self,
        from_region: RegionId,
        signal_id: SignalId,
        revision: Revision,
        hub_told_pairs: Vec<ToldPair>,
    ) -> Result<Adoption, StoreError> {
        if self.format != RECORD_FORMAT {
            return Err(StoreError::Corrupt("record format"));
        }
        let family_keys = crate::store::region::rows::parse_family_keys(&self.signal.family_keys)?;
        let signal = signal_from_row(&self.signal, family_keys)?;
        let mut errors = ValidationErrors::new();
        ProfessionalContact::parse(
            ContactInput {
                professional_id: signal.contact.professional_id(),
                name: signal.contact.name(),
                email: signal.contact.email(),
                phone: signal.contact.phone().unwrap_or_default(),
            },
            "professional",
            &mut errors,
        )
        .ok_or(StoreError::Corrupt("professional contact"))?;
        if signal.signal_id != signal_id || signal.revision != revision {
            return Err(StoreError::Corrupt("not the signal handed over"));
        }
        for notice in &self.notices {
            notice.check()?;
        }
        let mut told_pairs = self
            .told_pairs
            .iter()
            .map(ToldPairRecord::check)
            .collect::<Result<Vec<_>, _>>()?;
        told_pairs.extend(hub_told_pairs);
        let coordination = self
            .coordination
            .iter()
            .map(|record| {
                let low = parse_signal_id(&record.signal_low)?;
                let high = parse_signal_id(&record.signal_high)?;
                if (low, high) != ordered(low, high) || low == high {
                    return Err(StoreError::Corrupt("coordination pair"));
                }
                if low != signal_id && high != signal_id {
                    return Err(StoreError::Corrupt("coordination of another signal"));
                }
                Ok((low, high, coordination_from_row(record)?))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Adoption {
            from_region,
            signal,
            notices: self.notices,
            told_pairs,
            coordination,
            deceased: self.deceased,
        })
    }
}

// The records read as rows, so the node's own row parsers check them.

fn missing(name: &str) -> StoreError {
    tracing::debug!(column = name, "handover record has no such column");
    StoreError::Corrupt("handover record column")
}

impl Columns for SignalRecord {
    fn text(&self, name: &str) -> Result<String, StoreError> {
        self.opt_text(name)?.ok_or_else(|| missing(name))
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(match name {
            "signal_id" => Some(self.signal_id.clone()),
            "organisation_id" => Some(self.organisation_id.clone()),
            "organisation_name" => Some(self.organisation_name.clone()),
            "professional_id" => Some(self.professional_id.clone()),
            "professional_name" => Some(self.professional_name.clone()),
            "professional_email" => Some(self.professional_email.clone()),
            "professional_phone" => self.professional_phone.clone(),
            "subject_key" => Some(self.subject_key.clone()),
            "birth_date" => Some(self.birth_date.clone()),
            "planned_removal_date" => Some(self.planned_removal_date.clone()),
            "state" => Some(self.state.clone()),
            "inactive_since" => self.inactive_since.clone(),
            "informing" => Some(self.informing.clone()),
            "informed_on" => self.informed_on.clone(),
            "not_informed_reason" => self.not_informed_reason.clone(),
            _ => return Err(missing(name)),
        })
    }
    fn int(&self, name: &str) -> Result<i64, StoreError> {
        self.opt_int(name)?.ok_or_else(|| missing(name))
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(match name {
            "revision" => {
                Some(i64::try_from(self.revision).map_err(|_| StoreError::Corrupt("revision"))?)
            }
            "registered_at" => Some(self.registered_at),
            "informed_parents" => Some(i64::from(self.informed_parents)),
            "informed_youth" => Some(i64::from(self.informed_youth)),
            _ => return Err(missing(name)),
        })
    }
    fn blob(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        Err(missing(name))
    }
}

impl Columns for MatchCoordinationRecord {
    fn text(&self, name: &str) -> Result<String, StoreError> {
        self.opt_text(name)?.ok_or_else(|| missing(name))
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(match name {
            "signal_low" => Some(self.signal_low.clone()),
            "signal_high" => Some(self.signal_high.clone()),
            "regievoerder_signal_id" => self.regievoerder_signal_id.clone(),
            "regievoerder_change_id" => self.regievoerder_change_id.clone(),
            _ => return Err(missing(name)),
        })
    }
    fn int(&self, name: &str) -> Result<i64, StoreError> {
        self.opt_int(name)?.ok_or_else(|| missing(name))
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(match name {
            "regievoerder_at" => self.regievoerder_at,
            "afgestemd_low" => Some(i64::from(self.afgestemd_low)),
            "afgestemd_high" => Some(i64::from(self.afgestemd_high)),
            _ => return Err(missing(name)),
        })
    }
    fn blob(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        Err(missing(name))
    }
}
