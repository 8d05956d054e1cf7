//! Reading stored values back into domain types. A value the domain refuses means the database
//! was changed behind vix's back: that is `StoreError::Corrupt`, never a panic.

use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::StoreError;
use crate::domain::{
    OrganisationId, OrganisationName, ProfessionalContact, Revision, SignalId, SignalState,
    SubjectKey,
};

pub(super) fn revision_to_db(revision: Revision) -> i64 {
    i64::try_from(revision.get()).unwrap_or(i64::MAX)
}

pub(super) fn parse_signal_id(stored: &str) -> Result<SignalId, StoreError> {
    SignalId::parse(stored).map_err(|_| StoreError::Corrupt("signal_id"))
}

pub(super) fn parse_signal_ids(stored: Vec<String>) -> Result<Vec<SignalId>, StoreError> {
    stored.iter().map(|id| parse_signal_id(id)).collect()
}

pub(super) fn parse_org(stored: &str) -> Result<OrganisationId, StoreError> {
    OrganisationId::parse(stored).map_err(|_| StoreError::Corrupt("organisation_id"))
}

pub(super) fn parse_org_name(stored: &str) -> Result<OrganisationName, StoreError> {
    OrganisationName::parse(stored).map_err(|_| StoreError::Corrupt("organisation_name"))
}

pub(super) fn parse_subject(stored: &str) -> Result<SubjectKey, StoreError> {
    SubjectKey::parse_stored(stored).map_err(|_| StoreError::Corrupt("subject_key"))
}

pub(super) fn parse_date(stored: &str) -> Result<Date, StoreError> {
    Date::from_str(stored).map_err(|_| StoreError::Corrupt("date"))
}

pub(super) fn parse_instant(stored: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(stored).map_err(|_| StoreError::Corrupt("instant"))
}

pub(super) fn parse_state(stored: &str) -> Result<SignalState, StoreError> {
    SignalState::parse(stored).ok_or(StoreError::Corrupt("state"))
}

pub(super) fn contact_from_row(row: &impl Columns) -> Result<ProfessionalContact, StoreError> {
    Ok(ProfessionalContact::from_stored(
        row.text("professional_id")?,
        row.text("professional_name")?,
        row.text("professional_email")?,
        row.opt_text("professional_phone")?,
    ))
}

/// A result row by column name, whichever driver read it: SQLite's readers use sqlx's pool, its
/// writer thread rusqlite, PostgreSQL sqlx. Parsing into domain types is written once over this.
pub(super) trait Columns {
    fn text(&self, name: &str) -> Result<String, StoreError>;
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, name: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError>;
    fn blob(&self, name: &str) -> Result<Vec<u8>, StoreError>;
    fn flag(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.int(name)? != 0)
    }
    fn opt_flag(&self, name: &str) -> Result<Option<bool>, StoreError> {
        Ok(self.opt_int(name)?.map(|value| value != 0))
    }
}

impl Columns for SqliteRow {
    fn text(&self, name: &str) -> Result<String, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn int(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn blob(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self.try_get(name)?)
    }
}

// PostgreSQL stores flags as BOOLEAN, SQLite as 0 or 1.
impl Columns for PgRow {
    fn flag(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn opt_flag(&self, name: &str) -> Result<Option<bool>, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn text(&self, name: &str) -> Result<String, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn int(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn blob(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self.try_get(name)?)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, name: &str) -> Result<String, StoreError> {
        Ok(self.get(name)?)
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.get(name)?)
    }
    fn int(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self.get(name)?)
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.get(name)?)
    }
    fn blob(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self.get(name)?)
    }
}
