//! Whose rights a municipality may exercise (DOMAIN.md section 8): those of the youths living
//! in it, as the person registry says. An officer of another municipality is refused before
//! anything about the youth is read or changed.

use super::MunicipalityCode;

/// Where the youth named in a rights request lives, as far as this node can know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Residence {
    /// A youth with a BSN: the municipality the person registry lists (`None` when the registry
    /// does not know the person or lists no municipality).
    Registered(Option<MunicipalityCode>),
    /// A youth without a BSN (an alternative id): no person registry knows them.
    Unregistered,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Also when the registry does not know the youth: the answer must not tell the officer
    /// whether a BSN exists or where its person lives.
    #[error("the person registry does not list this youth in the calling municipality")]
    NotResident,
}

/// May `caller` act for a youth living at `residence`?
///
/// **vix decision:** a youth without a BSN is in no registry, so no municipality can be shown
/// to be theirs; every municipality this region serves may act for them (the region's own
/// check, done before this one). Refusing all would leave these youths without their rights.
pub fn check(caller: &MunicipalityCode, residence: &Residence) -> Result<(), ScopeError> {
    match residence {
        Residence::Registered(Some(municipality)) if municipality == caller => Ok(()),
        Residence::Registered(_) => Err(ScopeError::NotResident),
        Residence::Unregistered => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(code: &str) -> MunicipalityCode {
        MunicipalityCode::parse(code).unwrap()
    }

    #[test]
    fn the_municipality_where_the_youth_lives_may_act() {
        assert_eq!(
            check(&code("0530"), &Residence::Registered(Some(code("0530")))),
            Ok(())
        );
    }

    #[test]
    fn another_municipality_may_not() {
        assert_eq!(
            check(&code("0014"), &Residence::Registered(Some(code("0530")))),
            Err(ScopeError::NotResident)
        );
    }

    #[test]
    fn a_youth_unknown_to_the_registry_is_nobodys() {
        assert_eq!(
            check(&code("0014"), &Residence::Registered(None)),
            Err(ScopeError::NotResident)
        );
    }

    #[test]
    fn a_youth_without_a_bsn_is_any_served_municipalitys() {
        assert_eq!(check(&code("0014"), &Residence::Unregistered), Ok(()));
    }
}
