//! BRP mutations for a region node: deaths and changes of address, one JSON object per line,
//! e.g. `{"bsn":"999991383","death_date":"2026-11-20"}` or `{"bsn":"999991383","municipality":"0518"}`.
//!
//! A death purges every signal on the youth at once and refuses new ones (DOMAIN.md section 4).
//! A change of address changes nothing in vix: the node keeps no address, and the hub keeps a
//! youth matchable whichever region registers next. The whole file is checked before anything
//! is applied, so a bad line changes nothing.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::Deserialize;

use crate::domain::{Bsn, Pseudonymiser, YouthRef};
use crate::store::{SignalStore, StoreError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    bsn: String,
    #[serde(default)]
    death_date: Option<Date>,
    #[serde(default)]
    municipality: Option<String>,
}

#[derive(Debug)]
pub enum Mutation {
    Death { bsn: Bsn, on: Date },
    Move { bsn: Bsn },
}

#[derive(Debug, thiserror::Error)]
pub enum MutationError {
    /// Names the line, never its content: it holds a BSN.
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Nothing of the death was applied; importing the file again applies it.
    #[error(transparent)]
    Pseudonyms(#[from] crate::domain::PseudonymError),
}

/// Parses and checks every line; blank lines are skipped.
pub fn parse(text: &str) -> Result<Vec<Mutation>, MutationError> {
    let mut mutations = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let bad = |reason| MutationError::Line { line, reason };
        let parsed: Line = serde_json::from_str(raw).map_err(|_| {
            bad("not a mutation: {\"bsn\", and \"death_date\" or \"municipality\"}")
        })?;
        let bsn = Bsn::parse(&parsed.bsn).map_err(|_| bad("the BSN is not valid"))?;
        mutations.push(match (parsed.death_date, parsed.municipality) {
            (Some(on), None) => Mutation::Death { bsn, on },
            (None, Some(municipality))
                if municipality.len() == 4 && municipality.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Mutation::Move { bsn }
            }
            (None, Some(_)) => return Err(bad("a municipality code is four digits")),
            _ => return Err(bad("give either death_date or municipality")),
        });
    }
    Ok(mutations)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub deaths: u32,
    pub signals_deleted: u32,
    pub moves: u32,
}

/// Applies checked mutations: each death in its own transaction, so a crash halfway loses
/// nothing that was reported done; importing the file again is harmless.
pub async fn apply<S: SignalStore>(
    store: &S,
    pseudonymiser: &dyn Pseudonymiser,
    mutations: &[Mutation],
    now: Timestamp,
) -> Result<ImportReport, MutationError> {
    let mut report = ImportReport::default();
    for mutation in mutations {
        match mutation {
            Mutation::Death { bsn, .. } => {
                let pseudonyms = pseudonymiser.pseudonymise(YouthRef::Bsn(bsn), &[]).await?;
                report.signals_deleted += store.record_death(&pseudonyms.subject, now).await?;
                report.deaths += 1;
            }
            Mutation::Move { .. } => report.moves += 1,
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deaths_and_moves_parse_and_a_bad_line_is_named_without_its_content() {
        let text = "{\"bsn\":\"999991383\",\"death_date\":\"2026-11-20\"}\n\n{\"bsn\":\"999992065\",\"municipality\":\"0518\"}\n";
        let mutations = parse(text).unwrap();
        assert!(matches!(mutations[0], Mutation::Death { .. }));
        assert!(matches!(mutations[1], Mutation::Move { .. }));

        let bad = "{\"bsn\":\"999991383\",\"death_date\":\"2026-11-20\"}\n{\"bsn\":\"010008579\",\"death_date\":\"2026-11-20\"}\n";
        let error = parse(bad).unwrap_err().to_string();
        assert!(error.starts_with("line 2:"), "{error}");
        assert!(!error.contains("010008579"));
        for bad in [
            "{\"bsn\":\"999991383\"}",
            "{\"bsn\":\"999991383\",\"death_date\":\"2026-11-20\",\"municipality\":\"0518\"}",
            "{\"bsn\":\"999991383\",\"municipality\":\"518\"}",
            "{\"bsn\":\"999991383\",\"death_date\":\"yesterday\"}",
            "{\"bsn\":\"999991383\",\"death_date\":\"2026-11-20\",\"name\":\"x\"}",
            "not json",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
