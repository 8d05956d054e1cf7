//! The organisation registry of the federation: which organisations exist, the name each is
//! shown by, and the one region that serves it (DOMAIN.md glossary: an organisation's id
//! belongs to one region). The hub and every region node load the same file, so nothing binds
//! on first use and no name is taken from a certificate's CN or from a message.
//!
//! # Format (TOML)
//!
//! ```toml
//! # Every region of the federation.
//! regions = ["north", "south"]
//!
//! [[organisations]]
//! id = "jgz-north"          # as in the certificate's urn:vix:org:<id>
//! name = "JGZ Noord"        # shown to other parties and written into notice e-mails
//! region = "north"          # one of `regions`
//! language = "nl"           # of its notice e-mails: "nl" (the default) or "en"
//! ```
//!
//! Unknown keys, a duplicate id or region, an id or region that is not a valid identifier, a
//! name that is empty, longer than [`OrganisationName::MAX_LEN`] or holds a control character,
//! and an organisation of a region not in `regions` are refused, each naming where it is.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::Deserialize;

use super::ids::{IdError, OrganisationId, RegionId};
use super::mail::Language;

/// An organisation's display name: trimmed, 1 to [`Self::MAX_LEN`] characters, no control
/// characters. It goes into notices and e-mail headers, so it is checked wherever it enters:
/// the registry file, and a notice from the hub.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct OrganisationName(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OrganisationNameError {
    #[error("is required")]
    Empty,
    #[error("is longer than {} characters", OrganisationName::MAX_LEN)]
    TooLong,
    #[error("may not contain control characters")]
    ControlCharacter,
}

impl OrganisationName {
    pub const MAX_LEN: usize = 200;

    pub fn parse(input: &str) -> Result<Self, OrganisationNameError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(OrganisationNameError::Empty);
        }
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(OrganisationNameError::TooLong);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(OrganisationNameError::ControlCharacter);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrganisationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OrganisationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrganisationName({})", self.0)
    }
}

/// One organisation of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organisation {
    pub id: OrganisationId,
    pub name: OrganisationName,
    pub region: RegionId,
    /// The language of the notice e-mails to its professionals.
    pub language: Language,
}

/// Why a registry file is refused. Names never appear here: the index and id say where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("not a valid organisation registry: {0}")]
    Syntax(String),
    #[error("regions is empty: the federation would have no region")]
    NoRegions,
    #[error("regions[{index}] {region:?} {error}")]
    InvalidRegion {
        index: usize,
        region: String,
        error: IdError,
    },
    #[error("regions[{index}] {region:?} is listed twice")]
    DuplicateRegion { index: usize, region: String },
    #[error("organisations[{index}].id {id:?} {error}")]
    InvalidId {
        index: usize,
        id: String,
        error: IdError,
    },
    #[error("organisations[{index}].id {id:?} is listed twice")]
    DuplicateId { index: usize, id: String },
    #[error("organisations[{index}].name (of {id:?}) {error}")]
    InvalidName {
        index: usize,
        id: String,
        error: OrganisationNameError,
    },
    #[error("organisations[{index}].language {language:?} (of {id:?}) is not \"nl\" or \"en\"")]
    UnknownLanguage {
        index: usize,
        id: String,
        language: String,
    },
    #[error("organisations[{index}].region {region:?} (of {id:?}) is not one of regions")]
    UnknownRegion {
        index: usize,
        id: String,
        region: String,
    },
}

/// Why an organisation may not act for a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("names an organisation that is not in the organisation registry")]
    Unknown,
    #[error("names an organisation of another region")]
    OtherRegion,
}

/// The federation's organisations, validated whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganisationRegistry {
    regions: BTreeSet<RegionId>,
    organisations: HashMap<OrganisationId, Organisation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    regions: Vec<String>,
    #[serde(default)]
    organisations: Vec<OrganisationEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrganisationEntry {
    id: String,
    name: String,
    region: String,
    language: Option<String>,
}

impl OrganisationRegistry {
    /// Reads and checks a registry in the TOML format of the module docs; the first fault
    /// found is the error.
    pub fn parse_toml(text: &str) -> Result<Self, RegistryError> {
        let file: RegistryFile =
            toml::from_str(text).map_err(|error| RegistryError::Syntax(error.to_string()))?;
        if file.regions.is_empty() {
            return Err(RegistryError::NoRegions);
        }
        let mut regions = BTreeSet::new();
        for (index, region) in file.regions.iter().enumerate() {
            let parsed = RegionId::parse(region).map_err(|error| RegistryError::InvalidRegion {
                index,
                region: region.clone(),
                error,
            })?;
            if !regions.insert(parsed) {
                return Err(RegistryError::DuplicateRegion {
                    index,
                    region: region.clone(),
                });
            }
        }
        let mut organisations = HashMap::new();
        for (index, entry) in file.organisations.iter().enumerate() {
            let id =
                OrganisationId::parse(&entry.id).map_err(|error| RegistryError::InvalidId {
                    index,
                    id: entry.id.clone(),
                    error,
                })?;
            let name = OrganisationName::parse(&entry.name).map_err(|error| {
                RegistryError::InvalidName {
                    index,
                    id: entry.id.clone(),
                    error,
                }
            })?;
            let region = RegionId::parse(&entry.region)
                .ok()
                .filter(|region| regions.contains(region))
                .ok_or_else(|| RegistryError::UnknownRegion {
                    index,
                    id: entry.id.clone(),
                    region: entry.region.clone(),
                })?;
            if organisations.contains_key(&id) {
                return Err(RegistryError::DuplicateId {
                    index,
                    id: entry.id.clone(),
                });
            }
            let language = match &entry.language {
                None => Language::default(),
                Some(code) => {
                    Language::parse(code).map_err(|_| RegistryError::UnknownLanguage {
                        index,
                        id: entry.id.clone(),
                        language: code.clone(),
                    })?
                }
            };
            organisations.insert(
                id.clone(),
                Organisation {
                    id,
                    name,
                    region,
                    language,
                },
            );
        }
        Ok(Self {
            regions,
            organisations,
        })
    }

    /// Every region of the federation.
    pub fn regions(&self) -> &BTreeSet<RegionId> {
        &self.regions
    }

    pub fn get(&self, id: &OrganisationId) -> Option<&Organisation> {
        self.organisations.get(id)
    }

    /// The organisations `region` serves.
    pub fn of_region<'a>(&'a self, region: &'a RegionId) -> impl Iterator<Item = &'a Organisation> {
        self.organisations
            .values()
            .filter(move |organisation| &organisation.region == region)
    }

    /// The organisation `id`, if `region` may act for it: it is in the registry, and `region`
    /// serves it.
    pub fn served_by(
        &self,
        region: &RegionId,
        id: &OrganisationId,
    ) -> Result<&Organisation, Refusal> {
        let organisation = self.get(id).ok_or(Refusal::Unknown)?;
        if &organisation.region != region {
            return Err(Refusal::OtherRegion);
        }
        Ok(organisation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        regions = ["north", "south"]

        [[organisations]]
        id = "jgz-north"
        name = "  JGZ Noord "
        region = "north"

        [[organisations]]
        id = "vt-south"
        name = "Veilig Thuis Zuid"
        region = "south"
        language = "en"
    "#;

    fn id(text: &str) -> OrganisationId {
        OrganisationId::parse(text).unwrap()
    }

    fn region(text: &str) -> RegionId {
        RegionId::parse(text).unwrap()
    }

    #[test]
    fn a_good_registry_says_who_serves_whom_and_by_which_name() {
        let registry = OrganisationRegistry::parse_toml(GOOD).unwrap();
        assert_eq!(registry.regions().len(), 2);
        let jgz = registry
            .served_by(&region("north"), &id("jgz-north"))
            .unwrap();
        assert_eq!(jgz.name.as_str(), "JGZ Noord");
        assert_eq!(
            registry.served_by(&region("north"), &id("vt-south")),
            Err(Refusal::OtherRegion)
        );
        assert_eq!(
            registry.served_by(&region("north"), &id("nobody")),
            Err(Refusal::Unknown)
        );
        let south_region = region("south");
        let south: Vec<_> = registry
            .of_region(&south_region)
            .map(|o| o.id.as_str())
            .collect();
        assert_eq!(south, ["vt-south"]);
    }

    #[test]
    fn an_organisation_mails_in_dutch_unless_it_chose_english() {
        let registry = OrganisationRegistry::parse_toml(GOOD).unwrap();
        assert_eq!(
            registry.get(&id("jgz-north")).unwrap().language,
            Language::Dutch
        );
        assert_eq!(
            registry.get(&id("vt-south")).unwrap().language,
            Language::English
        );
        let error = refused(&GOOD.replace("language = \"en\"", "language = \"de\""));
        assert!(
            matches!(&error, RegistryError::UnknownLanguage { index: 1, language, .. } if language == "de"),
            "{error:?}"
        );
    }

    fn refused(text: &str) -> RegistryError {
        OrganisationRegistry::parse_toml(text).unwrap_err()
    }

    #[test]
    fn an_organisation_of_an_unknown_region_is_refused() {
        let error = refused(&GOOD.replace("region = \"south\"", "region = \"west\""));
        assert!(
            matches!(&error, RegistryError::UnknownRegion { index: 1, region, .. } if region == "west"),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("organisations[1].region"),
            "{error}"
        );
    }

    #[test]
    fn a_duplicate_id_is_refused() {
        let error = refused(&GOOD.replace("vt-south", "jgz-north"));
        assert!(
            matches!(&error, RegistryError::DuplicateId { index: 1, id } if id == "jgz-north"),
            "{error:?}"
        );
    }

    #[test]
    fn invalid_names_are_refused_without_showing_them() {
        for (name, expected) in [
            ("   ", OrganisationNameError::Empty),
            (
                "Zuid\\r\\nBcc: x@y.nl",
                OrganisationNameError::ControlCharacter,
            ),
            ("Zuid\\u0007", OrganisationNameError::ControlCharacter),
        ] {
            let error = refused(&GOOD.replace("Veilig Thuis Zuid", name));
            assert_eq!(
                error,
                RegistryError::InvalidName {
                    index: 1,
                    id: "vt-south".into(),
                    error: expected
                },
                "{name}"
            );
            assert!(!error.to_string().contains("Bcc"), "{error}");
        }
        let long = "a".repeat(201);
        assert!(matches!(
            refused(&GOOD.replace("Veilig Thuis Zuid", &long)),
            RegistryError::InvalidName {
                error: OrganisationNameError::TooLong,
                ..
            }
        ));
    }

    #[test]
    fn bad_ids_regions_and_keys_are_refused() {
        assert!(matches!(
            refused(&GOOD.replace("\"vt-south\"", "\"vt south\"")),
            RegistryError::InvalidId { index: 1, .. }
        ));
        assert!(matches!(
            refused(&GOOD.replace("[\"north\", \"south\"]", "[\"north\", \"north\"]")),
            RegistryError::DuplicateRegion { index: 1, .. }
        ));
        assert!(matches!(
            refused(&GOOD.replace("[\"north\", \"south\"]", "[\"north\", \"s/uth\"]")),
            RegistryError::InvalidRegion { index: 1, .. }
        ));
        assert_eq!(
            refused(&GOOD.replace("[\"north\", \"south\"]", "[]")),
            RegistryError::NoRegions
        );
        let typo = refused(&GOOD.replace("name = \"Veilig", "nmae = \"Veilig"));
        assert!(
            matches!(&typo, RegistryError::Syntax(why) if why.contains("nmae")),
            "{typo:?}"
        );
    }

    #[test]
    fn organisation_names_are_trimmed_and_bounded() {
        assert_eq!(OrganisationName::parse(" A ").unwrap().as_str(), "A");
        assert!(OrganisationName::parse(&"é".repeat(200)).is_ok());
        assert_eq!(
            OrganisationName::parse(&"é".repeat(201)),
            Err(OrganisationNameError::TooLong)
        );
        assert_eq!(
            OrganisationName::parse("A\u{85}B"),
            Err(OrganisationNameError::ControlCharacter)
        );
    }
}
