//! The development and test person registry: the BRP stand-in, loaded from a JSON file in the
//! format of `shared/fixtures/brp-test-persons.json`. Held in memory, keyed by the BSN's
//! pseudonym-free digits only inside this process.

use std::collections::HashMap;
use std::path::Path;

use jiff::civil::Date;
use serde::Deserialize;

use crate::domain::registry::{Person, PersonRegistry, RegistryError};
use crate::domain::{Bsn, MunicipalityCode};

#[derive(Debug, thiserror::Error)]
pub enum RegistryFileError {
    #[error("cannot read the person registry file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Where and what kind of fault, never serde's message: it quotes the value it choked
    /// on, which may be a BSN.
    #[error(
        "the person registry file {path} is not valid JSON of persons: {kind} at line {line}, column {column}"
    )]
    Parse {
        path: String,
        kind: &'static str,
        line: usize,
        column: usize,
    },
    #[error("the person registry file {path} has an entry {index} whose BSN fails the 11-proof")]
    Bsn { path: String, index: usize },
    #[error(
        "the person registry file {path} has an entry {index} whose municipality is not a \
         four-digit code"
    )]
    Municipality { path: String, index: usize },
}

#[derive(Deserialize)]
struct Entry {
    bsn: String,
    birth_date: Option<Date>,
    death_date: Option<Date>,
    #[serde(default)]
    parents: Vec<String>,
    #[serde(default)]
    municipality: Option<String>,
}

/// Persons in memory, keyed by BSN.
pub struct JsonPersonRegistry {
    persons: HashMap<Bsn, Person>,
}

impl JsonPersonRegistry {
    pub fn from_file(path: &Path) -> Result<Self, RegistryFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RegistryFileError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_json(&text, &shown)
    }

    /// Parses the text of a registry file; `shown` names the file in errors.
    pub fn from_json(text: &str, shown: &str) -> Result<Self, RegistryFileError> {
        let entries: Vec<Entry> =
            serde_json::from_str(text).map_err(|error| RegistryFileError::Parse {
                path: shown.to_owned(),
                kind: match error.classify() {
                    serde_json::error::Category::Io => "a read error",
                    serde_json::error::Category::Syntax => "a syntax error",
                    serde_json::error::Category::Data => "a value of the wrong type or shape",
                    serde_json::error::Category::Eof => "an early end",
                },
                line: error.line(),
                column: error.column(),
            })?;
        let mut persons = HashMap::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            let bad = || RegistryFileError::Bsn {
                path: shown.to_owned(),
                index,
            };
            let bsn = Bsn::parse(&entry.bsn).map_err(|_| bad())?;
            let parents = entry
                .parents
                .iter()
                .map(|parent| Bsn::parse(parent))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| bad())?;
            let municipality = entry
                .municipality
                .as_deref()
                .map(MunicipalityCode::parse)
                .transpose()
                .map_err(|_| RegistryFileError::Municipality {
                    path: shown.to_owned(),
                    index,
                })?;
            persons.insert(
                bsn,
                Person {
                    birth_date: entry.birth_date,
                    death_date: entry.death_date,
                    parents,
                    municipality,
                },
            );
        }
        Ok(Self { persons })
    }

    pub fn len(&self) -> usize {
        self.persons.len()
    }

    pub fn is_empty(&self) -> bool {
        self.persons.is_empty()
    }
}

impl PersonRegistry for JsonPersonRegistry {
    fn lookup(&self, bsn: &Bsn) -> Result<Option<Person>, RegistryError> {
        Ok(self.persons.get(bsn).cloned())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_parse_error_never_quotes_a_bsn() {
        let error = JsonPersonRegistry::from_json(r#"[{"bsn": 999991383}]"#, "persons.json")
            .err()
            .unwrap()
            .to_string();
        assert!(!error.contains("999991383"), "{error}");
        assert!(error.contains("line 1"), "{error}");
    }

    use super::*;
    use jiff::civil::date;

    fn fixture() -> JsonPersonRegistry {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/brp-test-persons.json"
        );
        JsonPersonRegistry::from_file(Path::new(path)).unwrap()
    }

    #[test]
    fn loads_the_fixture_with_parents_and_deaths() {
        let registry = fixture();
        assert_eq!(registry.len(), 677);
        let youth = registry
            .lookup(&Bsn::parse("999991383").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(youth.birth_date, Some(date(2008, 1, 26)));
        assert_eq!(youth.parents.len(), 2);
        assert_eq!(
            youth.municipality,
            Some(MunicipalityCode::parse("0530").unwrap())
        );
        let deceased = registry
            .lookup(&Bsn::parse("999992077").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(deceased.death_date, Some(date(2015, 10, 1)));
    }

    #[test]
    fn unknown_bsn_is_none() {
        // Valid 11-proof, not in the fixture.
        assert_eq!(
            fixture().lookup(&Bsn::parse("123456782").unwrap()).unwrap(),
            None
        );
    }

    #[test]
    fn a_broken_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("persons.json");
        std::fs::write(
            &path,
            r#"[{"bsn":"010008579","birth_date":null,"death_date":null}]"#,
        )
        .unwrap();
        assert!(matches!(
            JsonPersonRegistry::from_file(&path),
            Err(RegistryFileError::Bsn { index: 0, .. })
        ));
        std::fs::write(
            &path,
            r#"[{"bsn":"999991383","birth_date":null,"death_date":null,"municipality":"Groningen"}]"#,
        )
        .unwrap();
        assert!(matches!(
            JsonPersonRegistry::from_file(&path),
            Err(RegistryFileError::Municipality { index: 0, .. })
        ));
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(
            JsonPersonRegistry::from_file(&path),
            Err(RegistryFileError::Parse { .. })
        ));
    }
}
