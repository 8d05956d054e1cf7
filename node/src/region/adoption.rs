//! Opening the signals a region that left the federation handed to this one: only from a
//! region this node's operator named as a predecessor, sealed for this node's handover key, for
//! this region, this signal and this revision, and every field checked before it is stored.

use std::collections::HashSet;
use std::path::Path;

use crate::config::AdoptionSettings;
use crate::domain::RegionId;
use crate::handover_seal::{HandoverSecret, SealContext, SealError};
use crate::store::hub::LoggedAdoption;
use crate::store::region::handover::{Adoption, HandoverRecord};

/// What this node needs to adopt: its handover secret and the regions it takes over from.
pub struct Adopter {
    secret: HandoverSecret,
    predecessors: HashSet<RegionId>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdopterError {
    #[error("handover key {path}: {source}")]
    Key {
        path: String,
        #[source]
        source: SealError,
    },
    #[error("[region.adoption] predecessors: {0:?} is not a region id")]
    Predecessor(String),
}

impl Adopter {
    pub fn load(settings: &AdoptionSettings) -> Result<Self, AdopterError> {
        Self::from_parts(&settings.key_file, &settings.predecessors)
    }

    fn from_parts(key_file: &Path, predecessors: &[String]) -> Result<Self, AdopterError> {
        let secret = HandoverSecret::load(key_file).map_err(|source| AdopterError::Key {
            path: key_file.display().to_string(),
            source,
        })?;
        let predecessors = predecessors
            .iter()
            .map(|id| RegionId::parse(id).map_err(|_| AdopterError::Predecessor(id.clone())))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            secret,
            predecessors,
        })
    }

    /// Opens and checks `adoption`, handed to `own_region`; the reason it cannot be stored
    /// otherwise (kept with the entry as a dead letter).
    pub fn open(
        &self,
        own_region: &RegionId,
        adoption: &LoggedAdoption,
    ) -> Result<Adoption, String> {
        open(Some(self), own_region, adoption)
    }
}

/// As [`Adopter::open`]; without an adopter, says the node takes over from no region.
pub fn open(
    adopter: Option<&Adopter>,
    own_region: &RegionId,
    adoption: &LoggedAdoption,
) -> Result<Adoption, String> {
    let Some(adopter) = adopter else {
        return Err(format!(
            "a signal handed over by {}: this node adopts none ([region.adoption] is not set)",
            adoption.from_region_id
        ));
    };
    if !adopter.predecessors.contains(&adoption.from_region_id) {
        return Err(format!(
            "a signal handed over by {}, which [region.adoption] predecessors does not name",
            adoption.from_region_id
        ));
    }
    let signal_id = adoption.signal_id.to_string();
    let plaintext = adopter
        .secret
        .open(
            &adoption.sealed_record,
            &SealContext {
                from_region: adoption.from_region_id.as_str(),
                to_region: own_region.as_str(),
                signal_id: &signal_id,
                revision: adoption.revision.get(),
            },
        )
        .map_err(|error| format!("the handed-over record does not open: {error}"))?;
    let record: HandoverRecord = serde_json::from_slice(&plaintext)
        .map_err(|error| format!("the handed-over record is not a record: {error}"))?;
    let mut opened = record
        .check(
            adoption.from_region_id.clone(),
            adoption.signal_id,
            adoption.revision,
            adoption.told_pairs.clone(),
        )
        .map_err(|error| format!("the handed-over record is invalid: {error}"))?;
    // A match within the leaving region names a signal that is handed over to this region too.
    for notice in &mut opened.notices {
        if notice.source == "node" {
            notice.counterpart_region_id = own_region.to_string();
        }
    }
    Ok(opened)
}
