//! The pure domain core: identifiers, validation, the signal and its lifecycle dates, and the
//! match rule of DOMAIN.md section 5.
//!
//! Nothing here performs I/O or reads the wall clock: no tokio, sqlx or tonic. Time comes in as a
//! value from a [`clock::Clock`], so years of lifecycle are tested in milliseconds, and the same
//! rules serve the region node and the hub.

pub mod audit;
pub mod bounds;
pub mod bsn;
pub mod clock;
pub mod contact;
pub mod coordination;
pub mod ids;
pub mod informing;
pub mod keys;
pub mod lifecycle;
pub mod mail;
pub mod matching;
pub mod notice_log;
pub mod organisations;
pub mod registry;
pub mod scope;
pub mod signal;
pub mod validation;

pub use bsn::Bsn;
pub use clock::{Clock, ManualClock, SystemClock};
pub use contact::ProfessionalContact;
pub use ids::{AltYouthId, MunicipalityCode, OrganisationId, RegionId, RequestId, SignalId};
pub use keys::{
    FamilyKey, KeyVersion, LIVE_VERSIONS_MAX, LiveKeys, PseudonymError, PseudonymFuture,
    Pseudonymiser, Pseudonyms, Rekeys, SubjectKey, Versioned, YouthRef,
};
pub use organisations::{Organisation, OrganisationName, OrganisationRegistry};
pub use signal::{Revision, SignalState, WithdrawReason};
pub use validation::{FieldViolation, ValidationErrors};
