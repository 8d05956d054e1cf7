//! The person registry port: the BRP stand-in that tells the node a youth's birth date, BRP
//! parents, date of death and municipality. Only the node asks it; the hub never sees any of this.

use jiff::civil::Date;

use super::{Bsn, MunicipalityCode};

/// What the node needs to know about a person, and nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// `None` when the BRP does not know it; such a youth cannot be checked and is refused.
    pub birth_date: Option<Date>,
    pub death_date: Option<Date>,
    /// Current legal parents with a BSN (0–2), the basis of family keys.
    pub parents: Vec<Bsn>,
    /// The municipality where the person lives: the one that handles their rights
    /// (DOMAIN.md section 8). `None` when the BRP lists none.
    pub municipality: Option<MunicipalityCode>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("person registry unavailable: {0}")]
    Unavailable(String),
}

pub trait PersonRegistry: Send + Sync + 'static {
    /// `Ok(None)` when the BSN is not registered.
    fn lookup(&self, bsn: &Bsn) -> Result<Option<Person>, RegistryError>;
}
