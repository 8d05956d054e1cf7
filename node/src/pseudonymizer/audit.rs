//! The pseudonym service's audit of evaluation volume: one line per call, per region, in an
//! append-only file whose lines are hash-chained, so an operator (or an inspector) can see
//! which region asked for how many pseudonyms when, and that no line was removed or changed.
//!
//! An evaluated call's line is on disk (fsync) before its answer leaves: no region holds a
//! pseudonym the audit does not count. Refusals are written without a sync of their own: they
//! reach the disk with the next evaluated call's sync, and a region cannot make the service
//! sync by being refused.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use crate::domain::RegionId;

/// The chain's first `prev`.
const GENESIS: [u8; 32] = [0; 32];
/// No line is longer; the tail read at start-up looks this far back for the last one.
const LINE_LEN_MAX: u64 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Evaluated,
    /// Past the region's rate limit: nothing was evaluated.
    RateLimited,
    /// A malformed element: nothing was answered.
    Invalid,
}

/// One call. Field order is the hashed form's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    seq: u64,
    at: Timestamp,
    region: String,
    elements: u32,
    /// The key versions evaluated under, the current one first (empty for a refusal).
    key_versions: Vec<u32>,
    outcome: Outcome,
    prev: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    #[serde(flatten)]
    entry: Entry,
    hash: String,
}

fn chain_hash(prev: &[u8; 32], entry: &Entry) -> Result<[u8; 32], AuditError> {
    let body = serde_json::to_vec(entry).map_err(|error| AuditError::Encode(error.to_string()))?;
    let mut input = Vec::with_capacity(32 + body.len());
    input.extend_from_slice(prev);
    input.extend_from_slice(&body);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest(&SHA256, &input).as_ref());
    Ok(hash)
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit file {path}, line {line}: {reason}")]
    Broken {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("an audit entry cannot be encoded: {0}")]
    Encode(String),
}

/// The open audit file, positioned after its last entry.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    seq: u64,
    prev: [u8; 32],
}

impl AuditLog {
    /// Opens (or creates) the file and continues its chain from the last line. A last line cut
    /// short by a crash is removed: its call was never answered.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_owned(),
            source,
        };
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
        let mut file = options.open(path).map_err(io)?;
        let length = file.metadata().map_err(io)?.len();
        let start = length.saturating_sub(LINE_LEN_MAX + 1);
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).map_err(io)?;
        let complete = tail
            .iter()
            .rposition(|byte| *byte == b'\n')
            .map_or(0, |end| end + 1);
        if complete < tail.len() {
            tracing::warn!(path = %path.display(), "audit file: removing a last line cut short by a crash");
            file.set_len(start + complete as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
            tail.truncate(complete);
        }
        let last = tail[..complete.saturating_sub(1)]
            .rsplit(|byte| *byte == b'\n')
            .next()
            .filter(|line| !line.is_empty());
        let (seq, prev) = match last {
            None if start == 0 => (0, GENESIS),
            None => {
                return Err(AuditError::Broken {
                    path: path.to_owned(),
                    line: 0,
                    reason: "the last line is longer than any entry".into(),
                });
            }
            Some(line) => {
                let line: Line =
                    serde_json::from_slice(line).map_err(|error| AuditError::Broken {
                        path: path.to_owned(),
                        line: 0,
                        reason: format!("the last line is not an entry: {error}"),
                    })?;
                let mut hash = [0u8; 32];
                hex::decode_to_slice(&line.hash, &mut hash).map_err(|_| AuditError::Broken {
                    path: path.to_owned(),
                    line: line.entry.seq,
                    reason: "the hash is not 64 hexadecimal characters".into(),
                })?;
                (line.entry.seq, hash)
            }
        };
        Ok(Self {
            path: path.to_owned(),
            file,
            seq,
            prev,
        })
    }

    /// Appends one call; for an evaluated call, synced before this returns.
    pub fn append(
        &mut self,
        at: Timestamp,
        region: &RegionId,
        elements: u32,
        key_versions: Vec<u32>,
        outcome: Outcome,
    ) -> Result<(), AuditError> {
        let entry = Entry {
            seq: self.seq + 1,
            at,
            region: region.to_string(),
            elements,
            key_versions,
            outcome,
            prev: hex::encode(self.prev),
        };
        let hash = chain_hash(&self.prev, &entry)?;
        let line = Line {
            entry,
            hash: hex::encode(hash),
        };
        let mut text =
            serde_json::to_vec(&line).map_err(|error| AuditError::Encode(error.to_string()))?;
        text.push(b'\n');
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&text).map_err(io)?;
        if outcome == Outcome::Evaluated {
            self.file.sync_data().map_err(io)?;
        }
        self.seq += 1;
        self.prev = hash;
        Ok(())
    }
}

/// One region's volume in the audit file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub calls: u64,
    pub elements_evaluated: u64,
    pub calls_refused: u64,
}

/// What a verified audit file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub entries: u64,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
    pub regions: BTreeMap<String, Volume>,
}

/// Checks the whole chain (every hash, every `prev`, the numbering) and adds up each region's
/// volume. The first broken line is named.
pub fn verify(path: &Path) -> Result<Summary, AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_owned(),
        source,
    };
    let broken = |line: u64, reason: String| AuditError::Broken {
        path: path.to_owned(),
        line,
        reason,
    };
    let reader = BufReader::new(File::open(path).map_err(io)?);
    let mut summary = Summary::default();
    let mut prev = GENESIS;
    for (number, text) in (1u64..).zip(reader.lines()) {
        let text = text.map_err(io)?;
        let line: Line = serde_json::from_str(&text)
            .map_err(|error| broken(number, format!("not an entry: {error}")))?;
        if line.entry.seq != number {
            return Err(broken(number, format!("numbered {}", line.entry.seq)));
        }
        if line.entry.prev != hex::encode(prev) {
            return Err(broken(number, "does not follow the line before it".into()));
        }
        let hash = chain_hash(&prev, &line.entry)?;
        if line.hash != hex::encode(hash) {
            return Err(broken(number, "its hash does not match its content".into()));
        }
        prev = hash;
        summary.entries = number;
        summary.first.get_or_insert(line.entry.at);
        summary.last = Some(line.entry.at);
        let volume = summary.regions.entry(line.entry.region).or_default();
        volume.calls += 1;
        match line.entry.outcome {
            Outcome::Evaluated => volume.elements_evaluated += u64::from(line.entry.elements),
            Outcome::RateLimited | Outcome::Invalid => volume.calls_refused += 1,
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).unwrap()
    }

    fn write_three(path: &Path) {
        let north = RegionId::parse("north").unwrap();
        let south = RegionId::parse("south").unwrap();
        let mut log = AuditLog::open(path).unwrap();
        log.append(at(0), &north, 3, vec![2, 1], Outcome::Evaluated)
            .unwrap();
        log.append(at(1), &south, 500, vec![], Outcome::RateLimited)
            .unwrap();
        drop(log);
        // Reopened, the chain goes on.
        let mut log = AuditLog::open(path).unwrap();
        log.append(at(2), &north, 2, vec![2, 1], Outcome::Evaluated)
            .unwrap();
    }

    #[test]
    fn volumes_add_up_per_region_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write_three(&path);
        let summary = verify(&path).unwrap();
        assert_eq!(summary.entries, 3);
        assert_eq!(
            summary.regions["north"],
            Volume {
                calls: 2,
                elements_evaluated: 5,
                calls_refused: 0
            }
        );
        assert_eq!(summary.regions["south"].calls_refused, 1);
        assert_eq!(summary.regions["south"].elements_evaluated, 0);
    }

    #[test]
    fn a_changed_or_removed_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write_three(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();

        // Fewer elements claimed for north's first call.
        std::fs::write(&path, text.replacen("\"elements\":3", "\"elements\":1", 1)).unwrap();
        let error = verify(&path).unwrap_err().to_string();
        assert!(
            error.contains("line 1") && error.contains("hash"),
            "{error}"
        );

        // South's refusal removed.
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        let error = verify(&path).unwrap_err().to_string();
        assert!(error.contains("line 2"), "{error}");
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_removed_and_the_chain_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write_three(&path);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"seq\":4,\"at\":").unwrap();
        drop(file);
        let mut log = AuditLog::open(&path).unwrap();
        log.append(
            at(3),
            &RegionId::parse("east").unwrap(),
            1,
            vec![1],
            Outcome::Evaluated,
        )
        .unwrap();
        let summary = verify(&path).unwrap();
        assert_eq!(summary.entries, 4);
        assert_eq!(summary.regions["east"].elements_evaluated, 1);
    }
}
