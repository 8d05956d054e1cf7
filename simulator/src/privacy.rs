//! The privacy scan: after a run, every file the nodes wrote (databases, their WAL and shared
//! memory, logs) is searched for the population's BSNs in plain text.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::report::Privacy;

/// Runs of exactly nine ASCII digits standing alone in `bytes` (not inside a longer number or a
/// hexadecimal string such as a pseudonym, a hash or a signal id, where nine digits in a row
/// occur by chance): how a BSN written as text would look.
fn plain_numbers(bytes: &[u8]) -> impl Iterator<Item = &str> {
    bytes
        .split(|byte| !byte.is_ascii_alphanumeric())
        .filter(|word| word.len() == 9 && word.iter().all(u8::is_ascii_digit))
        .filter_map(|word| std::str::from_utf8(word).ok())
}

/// Files under `dir` (databases, their WAL and shared memory, logs) that hold one of `bsns` in
/// plain text; the person registry file, which is the BRP's, is left out. A BSN stored as a
/// binary integer would not be seen: nothing in vix stores one so.
pub fn scan(dir: &Path, bsns: &HashSet<&str>) -> anyhow::Result<Privacy> {
    let mut privacy = Privacy::default();
    let mut folders: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            if path.file_name().is_some_and(|name| name == "persons.json") {
                continue;
            }
            let bytes = std::fs::read(&path)?;
            privacy.files_scanned += 1;
            privacy.bytes_scanned += bytes.len() as u64;
            if plain_numbers(&bytes).any(|number| bsns.contains(number)) {
                privacy.hits.push(path.display().to_string());
            }
        }
    }
    Ok(privacy)
}

#[cfg(test)]
mod tests {
    use super::{plain_numbers, scan};

    #[test]
    fn the_privacy_scan_finds_a_bsn_in_any_file_but_the_person_registry() {
        let dir = tempfile::tempdir().unwrap();
        let bsns = std::collections::HashSet::from(["999991383"]);
        std::fs::write(dir.path().join("persons.json"), r#"[{"bsn":"999991383"}]"#).unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        std::fs::write(dir.path().join("logs/node.log"), "ok").unwrap();
        assert!(scan(dir.path(), &bsns).unwrap().hits.is_empty());
        std::fs::write(dir.path().join("logs/node.log"), "refused bsn=999991383").unwrap();
        let hits = scan(dir.path(), &bsns).unwrap().hits;
        assert_eq!(hits.len(), 1);
        assert!(hits[0].ends_with("node.log"), "{hits:?}");
    }

    #[test]
    fn a_bsn_is_found_as_text_but_not_inside_hex_or_longer_numbers() {
        fn found(text: &str) -> Vec<&str> {
            plain_numbers(text.as_bytes()).collect()
        }
        assert_eq!(found(r#"{"bsn":"999991383"}"#), ["999991383"]);
        assert_eq!(found("bsn 999991383\n"), ["999991383"]);
        assert!(found("v1:ab999991383cd").is_empty());
        assert!(found("2026-11-25999991383").is_empty());
        assert!(found("9999913830").is_empty());
    }
}
