//! The match rule of DOMAIN.md section 5, as one pure function shared by the node (pairs within
//! its region) and the hub (pairs across regions), so each pair is found in exactly one place.
//!
//! The caller loads, inside its write transaction, every non-deleted signal that shares the new
//! signal's subject key or one of its family keys, plus the notices already sent between the
//! organisations involved; [`plan_notices`] decides who is told what; the caller writes it.

use std::collections::{BTreeMap, HashSet};

use jiff::Timestamp;

use super::{FamilyKey, OrganisationId, RegionId, SignalId, SignalState, SubjectKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchType {
    /// Two parties on the same youth.
    Youth,
    /// Two parties on different youths who share a BRP parent.
    Family,
}

impl MatchType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Youth => "youth",
            Self::Family => "family",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        match stored {
            "youth" => Some(Self::Youth),
            "family" => Some(Self::Family),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    /// About a party with an active signal.
    Match,
    /// One-sided, about a party whose signals are all inactive.
    History,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Match => "match",
            Self::History => "history",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        match stored {
            "match" => Some(Self::Match),
            "history" => Some(Self::History),
            _ => None,
        }
    }
}

/// A non-deleted signal as the match rule sees it: pseudonyms and metadata, no personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchSignal {
    pub signal_id: SignalId,
    pub organisation_id: OrganisationId,
    pub region_id: RegionId,
    pub subject_key: SubjectKey,
    pub family_keys: Vec<FamilyKey>,
    pub state: SignalState,
    pub registered_at: Timestamp,
    /// For a signal being registered while a key rotation is under way: its keys under the
    /// older live versions. Signals stored under those are the same youth or family.
    pub previous_keys: PreviousKeys,
}

/// A new signal's keys under key versions older than its own that are still live. They only
/// find: nothing is stored under them, and a stored signal has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreviousKeys {
    pub subject: Vec<SubjectKey>,
    pub family: Vec<FamilyKey>,
}

impl MatchSignal {
    fn is_youth(&self, subject_key: SubjectKey) -> bool {
        subject_key == self.subject_key || self.previous_keys.subject.contains(&subject_key)
    }

    fn has_family_key(&self, key: &FamilyKey) -> bool {
        self.family_keys.contains(key) || self.previous_keys.family.contains(key)
    }
}

/// "Organisation `recipient` was told about organisation `counterpart` for this youth (pair) and
/// match type." While both parties exist, such a pair is never told again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ToldPair {
    pub recipient_organisation_id: OrganisationId,
    pub recipient_subject_key: SubjectKey,
    pub counterpart_organisation_id: OrganisationId,
    pub counterpart_subject_key: SubjectKey,
    pub match_type: MatchType,
}

/// One notice to write: `recipient_signal_id`'s owner is told about `counterpart_signal_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedNotice {
    pub recipient_signal_id: SignalId,
    pub recipient_organisation_id: OrganisationId,
    pub recipient_subject_key: SubjectKey,
    pub counterpart_signal_id: SignalId,
    pub counterpart_organisation_id: OrganisationId,
    pub counterpart_subject_key: SubjectKey,
    pub counterpart_region_id: RegionId,
    pub match_type: MatchType,
    pub kind: NoticeKind,
}

impl PlannedNotice {
    pub fn told_pair(&self) -> ToldPair {
        ToldPair {
            recipient_organisation_id: self.recipient_organisation_id.clone(),
            recipient_subject_key: self.recipient_subject_key,
            counterpart_organisation_id: self.counterpart_organisation_id.clone(),
            counterpart_subject_key: self.counterpart_subject_key,
            match_type: self.match_type,
        }
    }
}

/// Which pairs the caller is responsible for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchScope<'a> {
    /// A region node: parties in the new signal's own region.
    WithinRegion,
    /// The hub: parties in any region but the new signal's.
    AcrossRegions(&'a RegionId),
}

/// One of a party's signals (one organisation on one youth), as far as choosing which one
/// stands for the party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartySignal {
    pub signal_id: SignalId,
    pub state: SignalState,
    pub registered_at: Timestamp,
}

/// The signal that stands for a party: its newest active signal, or its newest inactive one if
/// none is active. A notice names it when the party is found (step 1 of the rule), and a
/// notice moves to it when the signal it named or was addressed to is deleted while the party
/// goes on (invariant 2: no pair is silenced). `None`: the party has no signal left.
pub fn standing_signal(signals: impl IntoIterator<Item = PartySignal>) -> Option<PartySignal> {
    signals
        .into_iter()
        .max_by_key(|s| (s.state == SignalState::Active, s.registered_at, s.signal_id))
}

/// Decides the notices that the newly registered signal `new` causes.
///
/// `others` may contain anything the caller found on the same keys (including `new` itself and
/// signals of `new`'s own organisation); the rule filters them. Only an active `new` matches.
pub fn plan_notices(
    new: &MatchSignal,
    others: &[MatchSignal],
    already_told: &HashSet<ToldPair>,
    scope: MatchScope<'_>,
) -> Vec<PlannedNotice> {
    if new.state != SignalState::Active {
        return Vec::new();
    }
    let in_scope = |signal: &MatchSignal| match scope {
        MatchScope::WithinRegion => signal.region_id == new.region_id,
        MatchScope::AcrossRegions(_) => signal.region_id != new.region_id,
    };

    // A party is one organisation with its signals on one youth. BTreeMap: deterministic order.
    let mut parties: BTreeMap<(&OrganisationId, SubjectKey), Vec<&MatchSignal>> = BTreeMap::new();
    for other in others {
        if other.signal_id == new.signal_id
            || other.organisation_id == new.organisation_id
            || !in_scope(other)
        {
            continue;
        }
        parties
            .entry((&other.organisation_id, other.subject_key))
            .or_default()
            .push(other);
    }

    let mut notices = Vec::new();
    for ((organisation_id, subject_key), signals) in parties {
        let match_type = if new.is_youth(subject_key) {
            MatchType::Youth
        } else if signals.iter().any(|s| shares_family_key(s, new)) {
            MatchType::Family
        } else {
            continue;
        };
        let Some(shown) = standing_signal(signals.iter().map(|s| PartySignal {
            signal_id: s.signal_id,
            state: s.state,
            registered_at: s.registered_at,
        })) else {
            continue;
        };
        let Some(party_shown) = signals.iter().find(|s| s.signal_id == shown.signal_id) else {
            continue;
        };
        let party_active = (party_shown.state == SignalState::Active).then_some(*party_shown);

        let to_new_owner = PlannedNotice {
            recipient_signal_id: new.signal_id,
            recipient_organisation_id: new.organisation_id.clone(),
            recipient_subject_key: new.subject_key,
            counterpart_signal_id: party_shown.signal_id,
            counterpart_organisation_id: organisation_id.clone(),
            counterpart_subject_key: subject_key,
            counterpart_region_id: party_shown.region_id.clone(),
            match_type,
            kind: if party_active.is_some() {
                NoticeKind::Match
            } else {
                NoticeKind::History
            },
        };
        if !already_told.contains(&to_new_owner.told_pair()) {
            notices.push(to_new_owner);
        }

        if let Some(party_active) = party_active {
            let to_party = PlannedNotice {
                recipient_signal_id: party_active.signal_id,
                recipient_organisation_id: organisation_id.clone(),
                recipient_subject_key: subject_key,
                counterpart_signal_id: new.signal_id,
                counterpart_organisation_id: new.organisation_id.clone(),
                counterpart_subject_key: new.subject_key,
                counterpart_region_id: new.region_id.clone(),
                match_type,
                kind: NoticeKind::Match,
            };
            if !already_told.contains(&to_party.told_pair()) {
                notices.push(to_party);
            }
        }
    }
    notices
}

/// Whether stored signal `stored` shares a family key with `new`, under any live version.
fn shares_family_key(stored: &MatchSignal, new: &MatchSignal) -> bool {
    stored.family_keys.iter().any(|key| new.has_family_key(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::KeyVersion;
    use jiff::SignedDuration;

    fn v1() -> KeyVersion {
        KeyVersion::new(1).unwrap()
    }
    fn youth(n: u8) -> SubjectKey {
        SubjectKey::new(v1(), [n; 32])
    }
    fn parent(n: u8) -> FamilyKey {
        FamilyKey::new(v1(), [n; 32])
    }
    fn org(name: &str) -> OrganisationId {
        OrganisationId::parse(name).unwrap()
    }
    fn region(name: &str) -> RegionId {
        RegionId::parse(name).unwrap()
    }

    /// Signals registered in the order they are built, one minute apart.
    struct World {
        signals: Vec<MatchSignal>,
        told: HashSet<ToldPair>,
    }

    impl World {
        fn new() -> Self {
            Self {
                signals: Vec::new(),
                told: HashSet::new(),
            }
        }

        fn signal(
            &self,
            organisation: &str,
            region_name: &str,
            subject: SubjectKey,
            parents: &[FamilyKey],
        ) -> MatchSignal {
            let start: Timestamp = "2026-11-25T09:00:00Z".parse().unwrap();
            MatchSignal {
                signal_id: SignalId::generate(),
                organisation_id: org(organisation),
                region_id: region(region_name),
                subject_key: subject,
                family_keys: parents.to_vec(),
                state: SignalState::Active,
                registered_at: start
                    + SignedDuration::from_mins(i64::try_from(self.signals.len()).unwrap()),
                previous_keys: PreviousKeys::default(),
            }
        }

        /// Registers `new` and returns the notices, as a node (`None`) or the hub would.
        fn register(&mut self, new: MatchSignal, hub: bool) -> Vec<PlannedNotice> {
            let new_region = new.region_id.clone();
            let scope = if hub {
                MatchScope::AcrossRegions(&new_region)
            } else {
                MatchScope::WithinRegion
            };
            let notices = plan_notices(&new, &self.signals, &self.told, scope);
            self.told
                .extend(notices.iter().map(PlannedNotice::told_pair));
            self.signals.push(new);
            notices
        }

        /// Runs both the node rule and the hub rule, as the federation does.
        fn register_everywhere(&mut self, new: MatchSignal) -> Vec<PlannedNotice> {
            let mut notices =
                plan_notices(&new, &self.signals, &self.told, MatchScope::WithinRegion);
            notices.extend(plan_notices(
                &new,
                &self.signals,
                &self.told,
                MatchScope::AcrossRegions(&new.region_id),
            ));
            self.told
                .extend(notices.iter().map(PlannedNotice::told_pair));
            self.signals.push(new);
            notices
        }
    }

    fn arrows(notices: &[PlannedNotice]) -> Vec<(String, String, MatchType, NoticeKind)> {
        let mut arrows: Vec<_> = notices
            .iter()
            .map(|n| {
                (
                    n.recipient_organisation_id.to_string(),
                    n.counterpart_organisation_id.to_string(),
                    n.match_type,
                    n.kind,
                )
            })
            .collect();
        arrows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        arrows
    }

    fn arrow(
        to: &str,
        about: &str,
        t: MatchType,
        k: NoticeKind,
    ) -> (String, String, MatchType, NoticeKind) {
        (to.to_owned(), about.to_owned(), t, k)
    }

    #[test]
    fn same_organisation_twice_is_no_match() {
        let mut world = World::new();
        let a1 = world.signal("a", "north", youth(1), &[parent(9)]);
        let a2 = world.signal("a", "north", youth(1), &[parent(9)]);
        let a3 = world.signal("a", "north", youth(2), &[parent(9)]);
        assert!(world.register(a1, false).is_empty());
        assert!(world.register(a2, false).is_empty());
        assert!(world.register(a3, false).is_empty());
    }

    #[test]
    fn during_a_rotation_the_new_version_finds_signals_stored_under_the_old() {
        let v2 = KeyVersion::new(2).unwrap();
        let mut world = World::new();
        // Before the rotation: a on youth 1, c on its sibling (youth 3), both under version 1.
        let a = world.signal("a", "north", youth(1), &[parent(9)]);
        assert!(world.register(a, true).is_empty());
        let c = world.signal("c", "north", youth(3), &[parent(9)]);
        assert_eq!(world.register(c, false).len(), 2);
        // After: b registers youth 1 under version 2, its version-1 keys given to find with.
        let mut b = world.signal(
            "b",
            "south",
            SubjectKey::new(v2, [1; 32]),
            &[FamilyKey::new(v2, [9; 32])],
        );
        let without = plan_notices(
            &b,
            &world.signals,
            &world.told,
            MatchScope::AcrossRegions(&region("south")),
        );
        assert!(without.is_empty(), "versions never match by themselves");
        b.previous_keys = PreviousKeys {
            subject: vec![youth(1)],
            family: vec![parent(9)],
        };
        let notices = world.register(b, true);
        assert_eq!(
            arrows(&notices),
            [
                arrow("a", "b", MatchType::Youth, NoticeKind::Match),
                arrow("b", "a", MatchType::Youth, NoticeKind::Match),
                arrow("b", "c", MatchType::Family, NoticeKind::Match),
                arrow("c", "b", MatchType::Family, NoticeKind::Match),
            ]
        );
    }

    #[test]
    fn two_organisations_on_one_youth_make_one_youth_match() {
        let mut world = World::new();
        let a = world.signal("a", "north", youth(1), &[]);
        assert!(world.register(a, false).is_empty());
        let b = world.signal("b", "north", youth(1), &[]);
        let notices = world.register(b, false);
        assert_eq!(
            arrows(&notices),
            [
                arrow("a", "b", MatchType::Youth, NoticeKind::Match),
                arrow("b", "a", MatchType::Youth, NoticeKind::Match),
            ]
        );
    }

    #[test]
    fn two_youths_with_a_shared_parent_make_one_family_match() {
        let mut world = World::new();
        // Both parents shared: still one family match.
        let a = world.signal("a", "north", youth(1), &[parent(8), parent(9)]);
        world.register(a, false);
        let b = world.signal("b", "north", youth(2), &[parent(9), parent(8)]);
        assert_eq!(
            arrows(&world.register(b, false)),
            [
                arrow("a", "b", MatchType::Family, NoticeKind::Match),
                arrow("b", "a", MatchType::Family, NoticeKind::Match),
            ]
        );
    }

    #[test]
    fn youths_without_a_shared_parent_do_not_match() {
        let mut world = World::new();
        let a = world.signal("a", "north", youth(1), &[parent(8)]);
        world.register(a, false);
        let b = world.signal("b", "north", youth(2), &[parent(9)]);
        assert!(world.register(b, false).is_empty());
    }

    #[test]
    fn alt_keys_never_meet_bsn_keys_because_they_are_different_keys() {
        // The rule compares keys only; the pseudonymiser's labels keep the namespaces apart
        // (tested in `pseudonym`). An alt key has no family keys, so no family match either.
        let mut world = World::new();
        let a = world.signal("a", "north", youth(1), &[parent(9)]);
        world.register(a, false);
        let b = world.signal("b", "north", youth(3), &[]);
        assert!(world.register(b, false).is_empty());
    }

    #[test]
    fn example_1_two_regions_is_found_by_the_hub_only() {
        let mut world = World::new();
        let gp = world.signal("gp", "n", youth(1), &[]);
        world.register_everywhere(gp);
        let school = world.signal("school", "s", youth(1), &[]);
        let notices = world.register_everywhere(school);
        assert_eq!(
            arrows(&notices),
            [
                arrow("gp", "school", MatchType::Youth, NoticeKind::Match),
                arrow("school", "gp", MatchType::Youth, NoticeKind::Match),
            ]
        );
        assert!(notices.iter().all(
            |n| n.recipient_organisation_id.as_str() != n.counterpart_organisation_id.as_str()
        ));
    }

    #[test]
    fn example_2_one_region_and_a_second_team_member() {
        let mut world = World::new();
        let care = world.signal("care", "n", youth(1), &[]);
        world.register_everywhere(care);
        let team = world.signal("team", "n", youth(1), &[]);
        assert_eq!(world.register_everywhere(team).len(), 2);
        let team_again = world.signal("team", "n", youth(1), &[]);
        assert!(world.register_everywhere(team_again).is_empty());
    }

    #[test]
    fn example_4_family_then_youth() {
        let mut world = World::new();
        let a_y1 = world.signal("a", "n", youth(1), &[parent(7), parent(8)]);
        world.register_everywhere(a_y1);
        let b_y2 = world.signal("b", "s", youth(2), &[parent(7), parent(8)]);
        assert_eq!(
            arrows(&world.register_everywhere(b_y2)),
            [
                arrow("a", "b", MatchType::Family, NoticeKind::Match),
                arrow("b", "a", MatchType::Family, NoticeKind::Match),
            ]
        );
        let a_y2 = world.signal("a", "n", youth(2), &[parent(7), parent(8)]);
        assert_eq!(
            arrows(&world.register_everywhere(a_y2)),
            [
                arrow("a", "b", MatchType::Youth, NoticeKind::Match),
                arrow("b", "a", MatchType::Youth, NoticeKind::Match),
            ]
        );
    }

    #[test]
    fn example_5_archived_party_gets_nothing_and_is_shown_as_history() {
        let mut world = World::new();
        let mut a_s1 = world.signal("a", "n", youth(1), &[]);
        a_s1.state = SignalState::Inactive;
        world.signals.push(a_s1);
        let b_s2 = world.signal("b", "n", youth(1), &[]);
        assert_eq!(
            arrows(&world.register_everywhere(b_s2)),
            [arrow("b", "a", MatchType::Youth, NoticeKind::History)]
        );
        let a_s3 = world.signal("a", "n", youth(1), &[]);
        assert_eq!(
            arrows(&world.register_everywhere(a_s3)),
            [arrow("a", "b", MatchType::Youth, NoticeKind::Match)]
        );
    }

    #[test]
    fn three_parties_on_one_youth_tell_each_pair_once() {
        let mut world = World::new();
        let mut all = Vec::new();
        for (o, r) in [("a", "n"), ("b", "s"), ("c", "e"), ("a", "n"), ("b", "s")] {
            let s = world.signal(o, r, youth(1), &[]);
            all.extend(world.register_everywhere(s));
        }
        let told: HashSet<_> = all.iter().map(PlannedNotice::told_pair).collect();
        assert_eq!(all.len(), 6, "a<->b, a<->c, b<->c");
        assert_eq!(told.len(), 6);
    }

    #[test]
    fn an_inactive_new_signal_matches_nothing() {
        let mut world = World::new();
        let a = world.signal("a", "n", youth(1), &[]);
        world.register(a, false);
        let mut b = world.signal("b", "n", youth(1), &[]);
        b.state = SignalState::Inactive;
        assert!(world.register(b, false).is_empty());
    }

    #[test]
    fn a_party_is_stood_for_by_its_newest_active_signal_else_its_newest_inactive_one() {
        let at = |seconds: i64| Timestamp::from_second(seconds).unwrap();
        let id = |_: u8| SignalId::generate();
        let signal = |n: u8, state, seconds| PartySignal {
            signal_id: id(n),
            state,
            registered_at: at(seconds),
        };
        let old_active = signal(1, SignalState::Active, 10);
        let new_active = signal(2, SignalState::Active, 20);
        let newest_inactive = signal(3, SignalState::Inactive, 30);
        let older_inactive = signal(4, SignalState::Inactive, 5);
        assert_eq!(
            standing_signal([old_active, newest_inactive, new_active]),
            Some(new_active)
        );
        assert_eq!(
            standing_signal([older_inactive, newest_inactive]),
            Some(newest_inactive)
        );
        assert_eq!(standing_signal([]), None);
    }

    #[test]
    fn notice_names_the_newest_active_signal_of_the_party() {
        let mut world = World::new();
        let a_old = world.signal("a", "n", youth(1), &[]);
        world.signals.push(a_old);
        let a_new = world.signal("a", "n", youth(1), &[]);
        let newest = a_new.signal_id;
        world.signals.push(a_new);
        let b = world.signal("b", "n", youth(1), &[]);
        let notices = world.register(b, false);
        let to_b = notices
            .iter()
            .find(|n| n.recipient_organisation_id.as_str() == "b")
            .unwrap();
        assert_eq!(to_b.counterpart_signal_id, newest);
        let to_a = notices
            .iter()
            .find(|n| n.recipient_organisation_id.as_str() == "a")
            .unwrap();
        assert_eq!(to_a.recipient_signal_id, newest);
    }
}
