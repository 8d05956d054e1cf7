//! The oracle: the lifecycle (DOMAIN.md section 4) and the match rule (section 5) written again,
//! by brute force and without any of vix's code (it must not share vix's mistakes). It is fed
//! the operations the federation acknowledged and says which notices each party must hold at
//! the end.
//!
//! A party is one organisation on one youth, with its signals that are not deleted. For a newly
//! registered active signal S of party X, every other organisation's party P on the same youth
//! (youth match) or on a youth sharing a parent (family match) is a match: X is told about P (a
//! match notice if P holds an active signal, else a history notice), and P is told about X if P
//! holds an active signal; nobody is told twice about the same party while both exist. A party
//! whose last signal is deleted loses every notice it holds or is named in, and is forgotten.
//!
//! Registrations of one phase may be processed by the matchers in any order (the hub sees the
//! regions' batches interleaved), so the oracle accepts each outcome that some order allows:
//! which notices exist does not depend on the order, but the kind of a notice from X about P
//! does when both registered in the phase and P held only inactive signals before it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::civil::Date;
use serde::Serialize;

/// The simulation's own name for a signal (the order it was planned), known before the
/// federation gives the signal its number.
pub type SignalRef = u64;

/// An organisation and a youth, by the simulation's indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Party {
    pub organisation: u32,
    pub youth: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Kind {
    Match,
    History,
}

/// A youth as the population knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Youth {
    pub index: u32,
    pub parents: Vec<u32>,
    pub birth_date: Date,
}

/// One acknowledged registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub signal: SignalRef,
    pub organisation: u32,
    pub youth: Youth,
    pub planned_removal: Date,
}

/// A notice that must stand: `recipient` is told about `counterpart`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub recipient: Party,
    pub counterpart: Party,
    pub family: bool,
    /// The kinds some processing order allows (one, or both).
    pub kinds: BTreeSet<Kind>,
}

#[derive(Debug, Clone)]
struct Signal {
    party: Party,
    active: bool,
    planned_removal: Date,
}

#[derive(Debug, Default)]
pub struct Oracle {
    signals: HashMap<SignalRef, Signal>,
    /// Each party's live signals.
    parties: BTreeMap<Party, BTreeSet<SignalRef>>,
    /// Youth -> its parties' organisations; parent -> their children; youth -> parents.
    on_youth: HashMap<u32, BTreeSet<u32>>,
    children: HashMap<u32, BTreeSet<u32>>,
    youths: HashMap<u32, Youth>,
    /// (recipient, counterpart) -> the kinds allowed.
    told: BTreeMap<(Party, Party), BTreeSet<Kind>>,
    /// The same pairs as (counterpart, recipient), to forget a party named in notices.
    told_about: BTreeSet<(Party, Party)>,
    /// Notices told per day and type, for the report (youth, family).
    pub told_today: (u64, u64),
}

/// The 23rd birthday (DOMAIN.md section 3: born on 29 February, it falls on 28 February).
pub fn birthday_23(birth: Date) -> Date {
    let year = birth.year() + 23;
    if birth.month() == 2 && birth.day() == 29 {
        return jiff::civil::date(year, 2, 28);
    }
    jiff::civil::date(year, birth.month(), birth.day())
}

impl Oracle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `signal` is live (registered and not deleted), and active.
    pub fn state(&self, signal: SignalRef) -> Option<bool> {
        self.signals.get(&signal).map(|s| s.active)
    }

    pub fn party_of(&self, signal: SignalRef) -> Option<Party> {
        self.signals.get(&signal).map(|s| s.party)
    }

    pub fn planned_removal(&self, signal: SignalRef) -> Option<Date> {
        self.signals.get(&signal).map(|s| s.planned_removal)
    }

    pub fn has_signals(&self, party: Party) -> bool {
        self.parties.contains_key(&party)
    }

    /// The live signals on `youth`.
    pub fn signals_on(&self, youth: u32) -> Vec<SignalRef> {
        let Some(organisations) = self.on_youth.get(&youth) else {
            return Vec::new();
        };
        organisations
            .iter()
            .flat_map(|organisation| {
                self.parties
                    .get(&Party {
                        organisation: *organisation,
                        youth,
                    })
                    .into_iter()
                    .flatten()
                    .copied()
            })
            .collect()
    }

    /// Whether `party` holds an active signal.
    pub fn is_active(&self, party: Party) -> bool {
        self.parties.get(&party).is_some_and(|signals| {
            signals
                .iter()
                .any(|signal| self.signals.get(signal).is_some_and(|s| s.active))
        })
    }

    /// Every other organisation's party related to `party`: on the same youth, or on a youth
    /// sharing a parent. Brute force over the youth's family.
    fn related(&self, party: Party) -> Vec<(Party, bool)> {
        let mut youths = BTreeSet::from([party.youth]);
        if let Some(youth) = self.youths.get(&party.youth) {
            for parent in &youth.parents {
                youths.extend(self.children.get(parent).into_iter().flatten().copied());
            }
        }
        let mut related = Vec::new();
        for youth in youths {
            for organisation in self.on_youth.get(&youth).into_iter().flatten() {
                if *organisation == party.organisation {
                    continue; // an organisation never matches itself
                }
                related.push((
                    Party {
                        organisation: *organisation,
                        youth,
                    },
                    youth != party.youth,
                ));
            }
        }
        related
    }

    /// Applies one phase of registrations, listed in the order they were acknowledged.
    pub fn register(&mut self, phase: &[Registration]) {
        let registering: BTreeSet<Party> = phase
            .iter()
            .map(|r| Party {
                organisation: r.organisation,
                youth: r.youth.index,
            })
            .collect();
        // Parties that held only inactive signals before the phase: a notice about one of
        // them is a history or a match notice depending on the order.
        let inactive_before: BTreeSet<Party> = registering
            .iter()
            .filter(|party| self.parties.contains_key(party) && !self.is_active(**party))
            .copied()
            .collect();
        for registration in phase {
            let new = Party {
                organisation: registration.organisation,
                youth: registration.youth.index,
            };
            self.youths
                .entry(new.youth)
                .or_insert_with(|| registration.youth.clone());
            for parent in &registration.youth.parents {
                self.children.entry(*parent).or_default().insert(new.youth);
            }
            for (other, family) in self.related(new) {
                let other_active = self.is_active(other);
                let ambiguous = registering.contains(&other) && inactive_before.contains(&other);
                let kinds = match (other_active, ambiguous) {
                    (_, true) => BTreeSet::from([Kind::Match, Kind::History]),
                    (true, false) => BTreeSet::from([Kind::Match]),
                    (false, false) => BTreeSet::from([Kind::History]),
                };
                self.tell(new, other, family, kinds);
                if other_active {
                    // Had `other` been processed first, it would have found `new` archived.
                    let kinds = if registering.contains(&other) && inactive_before.contains(&new) {
                        BTreeSet::from([Kind::Match, Kind::History])
                    } else {
                        BTreeSet::from([Kind::Match])
                    };
                    self.tell(other, new, family, kinds);
                }
            }
            self.signals.insert(
                registration.signal,
                Signal {
                    party: new,
                    active: true,
                    planned_removal: registration.planned_removal,
                },
            );
            self.parties
                .entry(new)
                .or_default()
                .insert(registration.signal);
            self.on_youth
                .entry(new.youth)
                .or_default()
                .insert(new.organisation);
        }
    }

    fn tell(&mut self, recipient: Party, counterpart: Party, family: bool, kinds: BTreeSet<Kind>) {
        if let std::collections::btree_map::Entry::Vacant(entry) =
            self.told.entry((recipient, counterpart))
        {
            entry.insert(kinds);
            self.told_about.insert((counterpart, recipient));
            if family {
                self.told_today.1 += 1;
            } else {
                self.told_today.0 += 1;
            }
        }
    }

    /// Withdrawn because the risk is gone: inactive from now on.
    pub fn withdraw(&mut self, signal: SignalRef) {
        if let Some(signal) = self.signals.get_mut(&signal) {
            signal.active = false;
        }
    }

    /// A correction to an earlier planned removal date.
    pub fn set_planned_removal(&mut self, signal: SignalRef, date: Date) {
        if let Some(signal) = self.signals.get_mut(&signal) {
            signal.planned_removal = date;
        }
    }

    /// Deletes `signal`; a party left without signals is forgotten with every notice it holds
    /// or is named in.
    pub fn delete(&mut self, signal: SignalRef) {
        let Some(removed) = self.signals.remove(&signal) else {
            return;
        };
        let party = removed.party;
        let Some(signals) = self.parties.get_mut(&party) else {
            return;
        };
        signals.remove(&signal);
        if !signals.is_empty() {
            return;
        }
        self.parties.remove(&party);
        if let Some(organisations) = self.on_youth.get_mut(&party.youth) {
            organisations.remove(&party.organisation);
        }
        let lowest = Party {
            organisation: 0,
            youth: 0,
        };
        let held: Vec<Party> = self
            .told
            .range((party, lowest)..)
            .take_while(|((recipient, _), _)| *recipient == party)
            .map(|((_, counterpart), _)| *counterpart)
            .collect();
        for counterpart in held {
            self.told.remove(&(party, counterpart));
            self.told_about.remove(&(counterpart, party));
        }
        let named: Vec<Party> = self
            .told_about
            .range((party, lowest)..)
            .take_while(|(counterpart, _)| *counterpart == party)
            .map(|(_, recipient)| *recipient)
            .collect();
        for recipient in named {
            self.told.remove(&(recipient, party));
            self.told_about.remove(&(party, recipient));
        }
    }

    /// Deletes every signal on `youth` (a death, an erasure of all, a 23rd birthday).
    pub fn delete_youth(&mut self, youth: u32) -> usize {
        let signals = self.signals_on(youth);
        for signal in &signals {
            self.delete(*signal);
        }
        signals.len()
    }

    /// The start of `day`: signals reach their planned removal date and youths their 23rd
    /// birthday. Returns (signals expired, youths purged).
    pub fn start_day(&mut self, day: Date) -> (u64, u64) {
        let mut expired = 0;
        for signal in self.signals.values_mut() {
            if signal.active && signal.planned_removal <= day {
                signal.active = false;
                expired += 1;
            }
        }
        let turned_23: Vec<u32> = self
            .on_youth
            .iter()
            .filter(|(_, organisations)| !organisations.is_empty())
            .filter_map(|(youth, _)| self.youths.get(youth))
            .filter(|youth| birthday_23(youth.birth_date) <= day)
            .map(|youth| youth.index)
            .collect();
        for youth in &turned_23 {
            self.delete_youth(*youth);
        }
        (expired, turned_23.len() as u64)
    }

    /// The notices that must stand now.
    pub fn expected(&self) -> Vec<Expected> {
        self.told
            .iter()
            .map(|((recipient, counterpart), kinds)| Expected {
                recipient: *recipient,
                counterpart: *counterpart,
                family: recipient.youth != counterpart.youth,
                kinds: kinds.clone(),
            })
            .collect()
    }

    pub fn live_signals(&self) -> usize {
        self.signals.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u32 = 0;
    const B: u32 = 1;
    const C: u32 = 2;

    fn youth(index: u32, parents: &[u32]) -> Youth {
        Youth {
            index,
            parents: parents.to_vec(),
            birth_date: jiff::civil::date(2015, 2, 1),
        }
    }

    fn reg(signal: SignalRef, organisation: u32, youth: &Youth) -> Registration {
        Registration {
            signal,
            organisation,
            youth: youth.clone(),
            planned_removal: jiff::civil::date(2027, 6, 1),
        }
    }

    fn arrows(oracle: &Oracle) -> Vec<String> {
        oracle
            .expected()
            .iter()
            .map(|e| {
                let kinds: Vec<_> = e.kinds.iter().map(|k| format!("{k:?}")).collect();
                format!(
                    "{}/{} -> {}/{}{} {}",
                    e.recipient.organisation,
                    e.recipient.youth,
                    e.counterpart.organisation,
                    e.counterpart.youth,
                    if e.family { " family" } else { "" },
                    kinds.join("|")
                )
            })
            .collect()
    }

    #[test]
    fn worked_example_2_a_second_team_member_tells_nobody() {
        let y = youth(10, &[90]);
        let mut oracle = Oracle::new();
        oracle.register(&[reg(1, A, &y)]);
        oracle.register(&[reg(2, B, &y)]);
        oracle.register(&[reg(3, B, &y)]);
        assert_eq!(
            arrows(&oracle),
            ["0/10 -> 1/10 Match", "1/10 -> 0/10 Match"]
        );
    }

    #[test]
    fn worked_example_4_family_then_youth() {
        let y1 = youth(10, &[90, 91]);
        let y2 = youth(11, &[90, 91]);
        let mut oracle = Oracle::new();
        oracle.register(&[reg(1, A, &y1)]);
        oracle.register(&[reg(2, B, &y2)]);
        oracle.register(&[reg(3, A, &y2)]);
        assert_eq!(
            arrows(&oracle),
            [
                "0/10 -> 1/11 family Match",
                "0/11 -> 1/11 Match",
                "1/11 -> 0/10 family Match",
                "1/11 -> 0/11 Match",
            ]
        );
    }

    #[test]
    fn worked_example_5_archived_gives_history_and_the_archived_party_is_not_told() {
        let y = youth(10, &[90]);
        let mut oracle = Oracle::new();
        oracle.register(&[reg(1, A, &y)]);
        assert_eq!(oracle.start_day(jiff::civil::date(2027, 6, 1)), (1, 0));
        oracle.register(&[reg(2, B, &y)]);
        assert_eq!(arrows(&oracle), ["1/10 -> 0/10 History"]);
        oracle.register(&[reg(3, A, &y)]);
        assert_eq!(
            arrows(&oracle),
            ["0/10 -> 1/10 Match", "1/10 -> 0/10 History"]
        );
    }

    #[test]
    fn worked_example_6_an_unjustified_signal_leaves_no_trace() {
        let y = youth(10, &[90]);
        let mut oracle = Oracle::new();
        oracle.register(&[reg(2, B, &y)]);
        oracle.register(&[reg(1, A, &y)]);
        oracle.delete(1);
        assert!(arrows(&oracle).is_empty());
        oracle.register(&[reg(3, C, &y)]);
        assert_eq!(
            arrows(&oracle),
            ["1/10 -> 2/10 Match", "2/10 -> 1/10 Match"]
        );
    }

    #[test]
    fn a_party_with_another_signal_keeps_its_notices_and_a_forgotten_one_is_told_again() {
        let y = youth(10, &[90]);
        let mut oracle = Oracle::new();
        oracle.register(&[reg(1, A, &y), reg(2, A, &y)]);
        oracle.register(&[reg(3, B, &y)]);
        oracle.delete(1);
        assert_eq!(arrows(&oracle).len(), 2, "A still stands by signal 2");
        oracle.delete(2);
        assert!(arrows(&oracle).is_empty());
        oracle.register(&[reg(4, A, &y)]);
        assert_eq!(arrows(&oracle).len(), 2, "A is new again and both are told");
    }

    #[test]
    fn in_one_phase_the_order_changes_only_the_kind_about_a_returning_archived_party() {
        let y = youth(10, &[90]);
        let mut oracle = Oracle::new();
        oracle.register(&[reg(1, B, &y)]);
        oracle.withdraw(1);
        // A is new, B comes back: A may have been told about archived B first (history), or
        // about B's new signal (match).
        oracle.register(&[reg(2, A, &y), reg(3, B, &y)]);
        assert_eq!(
            arrows(&oracle),
            ["0/10 -> 1/10 Match|History", "1/10 -> 0/10 Match"]
        );
        let mut reversed = Oracle::new();
        reversed.register(&[reg(1, B, &y)]);
        reversed.withdraw(1);
        reversed.register(&[reg(3, B, &y), reg(2, A, &y)]);
        assert_eq!(arrows(&reversed), arrows(&oracle));
    }

    #[test]
    fn one_organisation_never_matches_itself_and_strangers_do_not_match() {
        let mut oracle = Oracle::new();
        oracle.register(&[reg(1, A, &youth(10, &[90])), reg(2, A, &youth(11, &[90]))]);
        oracle.register(&[reg(3, B, &youth(12, &[99]))]);
        assert!(arrows(&oracle).is_empty());
    }

    #[test]
    fn the_23rd_birthday_purges_every_signal_and_29_february_counts_as_28() {
        assert_eq!(
            birthday_23(jiff::civil::date(2004, 2, 29)),
            jiff::civil::date(2027, 2, 28)
        );
        let y = Youth {
            birth_date: jiff::civil::date(2004, 2, 29),
            ..youth(10, &[90])
        };
        let mut oracle = Oracle::new();
        oracle.register(&[reg(1, A, &y)]);
        oracle.register(&[reg(2, B, &y)]);
        assert_eq!(oracle.start_day(jiff::civil::date(2027, 2, 27)), (0, 0));
        assert_eq!(oracle.start_day(jiff::civil::date(2027, 2, 28)), (0, 1));
        assert_eq!(oracle.live_signals(), 0);
        assert!(arrows(&oracle).is_empty());
    }
}
