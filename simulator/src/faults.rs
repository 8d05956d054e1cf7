//! The fault vocabulary and the schedule drawn from the seed. A fault lasts through the
//! registrations of one simulated day (a busy one: the day's load is tripled, so the return is
//! a burst); then everything is healed and the federation must become quiet within a bound.
//! Keeping a fault inside one day keeps the matchers' order the only freedom the oracle has to
//! allow for: a fault across midnight would let a backlog be matched against the next day's
//! states, which is a different workload, not a different fault.

use std::fmt;
use std::str::FromStr;

/// What can go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum FaultKind {
    /// The hub is stopped; regions keep working and their outboxes fill.
    HubDown,
    /// A region is stopped; its professionals' registrations wait and come as a burst.
    RegionDown,
    /// The fault proxy cuts a region's link to the hub and refuses new connections.
    LinkCut,
    /// The link holds every byte (a half-dead connection); they flow on when healed.
    LinkStall,
    /// Every byte on the link is late.
    LinkDelay,
    /// The hub's replies are lost: the region sends batches the hub already applied again.
    Replay,
    /// `kill -9` of a node process (process mode).
    Kill,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::HubDown => "hub-down",
            Self::RegionDown => "region-down",
            Self::LinkCut => "link-cut",
            Self::LinkStall => "link-stall",
            Self::LinkDelay => "link-delay",
            Self::Replay => "replay",
            Self::Kill => "kill",
        }
    }

    /// The kinds a `--faults` word names: `outage` (hub and region down), `partition` (cut,
    /// stall, delay, replay), `kill`, or one kind by its name; `all` is everything that runs in
    /// process.
    pub fn parse_list(words: &str) -> Result<Vec<Self>, FaultListError> {
        let mut kinds = Vec::new();
        for word in words.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let named: &[Self] = match word {
                "none" => &[],
                "outage" => &[Self::HubDown, Self::RegionDown],
                "partition" => &[
                    Self::LinkCut,
                    Self::LinkStall,
                    Self::LinkDelay,
                    Self::Replay,
                ],
                "all" => &[
                    Self::HubDown,
                    Self::RegionDown,
                    Self::LinkCut,
                    Self::LinkStall,
                    Self::LinkDelay,
                    Self::Replay,
                ],
                other => {
                    let kind = Self::from_str(other)?;
                    kinds.push(kind);
                    continue;
                }
            };
            kinds.extend_from_slice(named);
        }
        kinds.sort();
        kinds.dedup();
        Ok(kinds)
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown fault {0:?}: use outage, partition, kill, all, none, or one of hub-down, region-down, link-cut, link-stall, link-delay, replay"
)]
pub struct FaultListError(String);

impl FromStr for FaultKind {
    type Err = FaultListError;

    fn from_str(word: &str) -> Result<Self, Self::Err> {
        [
            Self::HubDown,
            Self::RegionDown,
            Self::LinkCut,
            Self::LinkStall,
            Self::LinkDelay,
            Self::Replay,
            Self::Kill,
        ]
        .into_iter()
        .find(|kind| kind.name() == word)
        .ok_or_else(|| FaultListError(word.to_owned()))
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One fault of the schedule: on day `day` (counted from the first), against `region` (for
/// the hub-wide kinds, the region is unused).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Scheduled {
    pub day: u32,
    pub kind: FaultKind,
    pub region: usize,
}

impl fmt::Display for Scheduled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FaultKind::HubDown => write!(f, "day {}: {}", self.day, self.kind),
            _ => write!(f, "day {}: {} r{:02}", self.day, self.kind, self.region),
        }
    }
}

/// Each kind `per_kind` times on distinct days of the middle 80 % of `days`, against regions
/// drawn uniformly (skipping the near-empty ones would hide nothing: an idle link must heal
/// too). Sorted by day; drawn from its own stream of the seed.
pub fn schedule(
    seed: u64,
    kinds: &[FaultKind],
    days: u32,
    regions: usize,
    per_kind: u32,
) -> Vec<Scheduled> {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x4641_554c_5453_0001);
    let first = days / 10;
    let last = days.saturating_sub(days / 10).max(first + 1);
    let mut taken = std::collections::BTreeSet::new();
    let mut faults = Vec::new();
    for kind in kinds {
        for _ in 0..per_kind {
            // A free day, if there is one left.
            let Some(day) = (0..100)
                .map(|_| rng.u32(first..last))
                .find(|day| !taken.contains(day))
            else {
                continue;
            };
            taken.insert(day);
            faults.push(Scheduled {
                day,
                kind: *kind,
                region: rng.usize(..regions.max(1)),
            });
        }
    }
    faults.sort_by_key(|fault| fault.day);
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_name_the_kinds_and_a_bad_word_is_refused() {
        assert_eq!(
            FaultKind::parse_list("outage,link-delay").unwrap(),
            [
                FaultKind::HubDown,
                FaultKind::RegionDown,
                FaultKind::LinkDelay
            ]
        );
        assert_eq!(FaultKind::parse_list("partition").unwrap().len(), 4);
        assert!(FaultKind::parse_list("none").unwrap().is_empty());
        assert!(FaultKind::parse_list("outage,meteor").is_err());
    }

    #[test]
    fn the_same_seed_draws_the_same_schedule_on_distinct_days() {
        let kinds = FaultKind::parse_list("all").unwrap();
        let one = schedule(7, &kinds, 365, 4, 2);
        assert_eq!(one, schedule(7, &kinds, 365, 4, 2));
        assert_eq!(one.len(), 12);
        let days: std::collections::BTreeSet<_> = one.iter().map(|f| f.day).collect();
        assert_eq!(days.len(), one.len());
        assert!(
            one.iter()
                .all(|f| (36..329).contains(&f.day) && f.region < 4)
        );
        assert_ne!(one, schedule(8, &kinds, 365, 4, 2));
    }
}
