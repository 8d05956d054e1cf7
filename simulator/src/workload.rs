//! The workload, one simulated day at a time, drawn from the seed and from the oracle's record
//! of what was acknowledged so far (never from timing): so the same seed gives the same days.
//!
//! A youth comes to notice as a case: a first party registers, more follow over the next weeks
//! (a fifth of cases are busy youths with four or more parties), a sibling often gets a case too,
//! sometimes from another region (a school elsewhere, a move). Around the registrations:
//! re-registrations, updates, withdrawals of both kinds, erasure orders, deaths and moves;
//! planned removal dates bunch on 1 August, so a yearly expiry wave comes.

use std::collections::{BTreeMap, HashSet};

use jiff::ToSpan;
use jiff::civil::Date;

use crate::oracle::{Oracle, SignalRef, birthday_23};
use crate::population::{Population, draw};

/// Organisation kinds each region has: `organisation = region * KINDS + kind`.
pub const KINDS: [&str; 5] = ["jgz", "school", "vt", "wijkteam", "huisarts"];
/// Professionals per organisation.
pub const PROFESSIONALS: u8 = 3;

pub fn organisation_region(organisation: u32) -> usize {
    organisation as usize / KINDS.len()
}

/// How much of what happens.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rates {
    /// New signals a year, nationally (DOMAIN.md section 10: 250,000 to 350,000).
    pub registrations_per_year: u32,
    /// Chance (percent) that a party is an organisation of another region than the family's.
    pub elsewhere_percent: u8,
    /// Chance (percent) that a sibling gets a case too.
    pub sibling_percent: u8,
}

/// One acknowledged-to-be change that is not a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `unjustified`: deleted at once; otherwise the risk is gone and it turns inactive.
    Withdraw {
        signal: SignalRef,
        unjustified: bool,
    },
    /// A new contact, or an earlier planned removal date.
    Update {
        signal: SignalRef,
        planned_removal: Option<Date>,
    },
    /// The municipality's erasure order at the region where the youth lives: these signals of
    /// that region, or (empty) all of them.
    Erase {
        youth: u32,
        region: usize,
        signals: Vec<SignalRef>,
    },
    Death {
        youth: u32,
    },
    /// A family moves to another region (its municipality changes in the registry).
    Move {
        family: u32,
        to: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub signal: SignalRef,
    pub organisation: u32,
    pub professional: u8,
    pub youth: u32,
    pub planned_removal: Date,
}

impl Planned {
    pub fn region(&self) -> usize {
        organisation_region(self.organisation)
    }
}

pub struct Workload {
    rng: fastrand::Rng,
    rates: Rates,
    weights: Vec<f64>,
    regions: usize,
    next_signal: SignalRef,
    /// Parties of open cases, due on a day: (youth, organisation).
    due: BTreeMap<Date, Vec<(u32, u32)>>,
    /// Signals ever registered; dead ones are dropped when drawn.
    candidates: Vec<SignalRef>,
    /// Each family's region now (moves change it).
    pub home: Vec<usize>,
    pub dead: HashSet<u32>,
    /// Only withdrawals among the changes: real processes have no erasure officer configured,
    /// no mutation feed and a fixed registry file.
    pub only_withdrawals: bool,
}

impl Workload {
    pub fn new(seed: u64, rates: Rates, weights: Vec<f64>, population: &Population) -> Self {
        Self {
            // Apart from the population's stream, so a change here leaves the people alone.
            rng: fastrand::Rng::with_seed(seed ^ 0x5157_4f52_4b4c_4f41),
            rates,
            regions: weights.len(),
            weights,
            next_signal: 0,
            due: BTreeMap::new(),
            candidates: Vec::new(),
            home: population.families.iter().map(|f| f.home).collect(),
            dead: HashSet::new(),
            only_withdrawals: false,
        }
    }

    /// Registrations for `day`, about a 365th of the yearly rate (more on weekdays).
    fn count_for(&mut self, day: Date) -> usize {
        let per_day = f64::from(self.rates.registrations_per_year) / 365.0;
        let factor = match day.weekday() {
            jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday => 0.3,
            _ => 1.28,
        };
        let mean = per_day * factor;
        // Rounded at random, so small rates still register something.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let whole = mean.floor() as usize;
        whole + usize::from(self.rng.f64() < mean - mean.floor())
    }

    fn eligible(&self, population: &Population, youth: u32, day: Date) -> bool {
        let person = population.person(youth);
        !self.dead.contains(&youth)
            && person.birth_date < day
            && birthday_23(person.birth_date) > day
    }

    fn organisation_for(&mut self, population: &Population, youth: u32) -> u32 {
        let family = population.person(youth).family as usize;
        let region = if self.rng.u8(..100) < self.rates.elsewhere_percent {
            draw(&mut self.rng, &self.weights)
        } else {
            self.home.get(family).copied().unwrap_or(0)
        };
        let kind = self.rng.usize(..KINDS.len());
        u32::try_from(region * KINDS.len() + kind).unwrap_or(0)
    }

    /// A live signal drawn at random (`active_only`: an active one), if one turns up soon.
    fn live_signal(&mut self, oracle: &Oracle, active_only: bool) -> Option<SignalRef> {
        for _ in 0..20 {
            if self.candidates.is_empty() {
                return None;
            }
            let index = self.rng.usize(..self.candidates.len());
            let signal = self.candidates[index];
            match oracle.state(signal) {
                None => {
                    self.candidates.swap_remove(index);
                }
                Some(active) if active || !active_only => return Some(signal),
                Some(_) => {}
            }
        }
        None
    }

    /// The changes of `day`, each on a signal (or youth) no other change of the day touches,
    /// so they commute.
    pub fn changes(
        &mut self,
        day: Date,
        population: &Population,
        oracle: &Oracle,
        registrations: usize,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut touched: HashSet<SignalRef> = HashSet::new();
        let mut youths: HashSet<u32> = HashSet::new();
        // Per thousand registrations of an average day, rounded at random.
        let rng = &mut self.rng;
        let mut fraction = |per_mille: u32| {
            let mean = f64::from(per_mille) * registrations as f64 / 1000.0;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let whole = mean.floor() as usize;
            whole + usize::from(rng.f64() < mean - mean.floor())
        };
        let (risk_gone, unjustified) = (fraction(150), fraction(10));
        let (updates, erasures, deaths, moves) = if self.only_withdrawals {
            (0, 0, 0, 0)
        } else {
            (fraction(50), fraction(4), fraction(2), fraction(3))
        };
        for _ in 0..risk_gone {
            if let Some(signal) = self.live_signal(oracle, true)
                && touched.insert(signal)
            {
                changes.push(Change::Withdraw {
                    signal,
                    unjustified: false,
                });
            }
        }
        for _ in 0..unjustified {
            if let Some(signal) = self.live_signal(oracle, false)
                && touched.insert(signal)
            {
                changes.push(Change::Withdraw {
                    signal,
                    unjustified: true,
                });
            }
        }
        for _ in 0..updates {
            let Some(signal) = self.live_signal(oracle, true) else {
                continue;
            };
            let current = oracle.planned_removal(signal);
            let earlier = current.and_then(|current| {
                let span = (current - day).get_days();
                (span > 2).then(|| day.checked_add(self.rng.i32(1..span).days()).ok())?
            });
            if touched.insert(signal) {
                changes.push(Change::Update {
                    signal,
                    planned_removal: if self.rng.bool() { earlier } else { None },
                });
            }
        }
        // Youth-wide changes: an erasure order at the youth's home region, a death.
        for death in [false, true] {
            let count = if death { deaths } else { erasures };
            for _ in 0..count {
                let Some(signal) = self.live_signal(oracle, false) else {
                    continue;
                };
                let Some(party) = oracle.party_of(signal) else {
                    continue;
                };
                let signals = oracle.signals_on(party.youth);
                if !youths.insert(party.youth) || signals.iter().any(|s| touched.contains(s)) {
                    continue;
                }
                touched.extend(signals.iter().copied());
                if death {
                    self.dead.insert(party.youth);
                    changes.push(Change::Death { youth: party.youth });
                    continue;
                }
                let family = population.person(party.youth).family as usize;
                let region = self.home.get(family).copied().unwrap_or(0);
                let at_home: Vec<SignalRef> = signals
                    .into_iter()
                    .filter(|s| {
                        oracle
                            .party_of(*s)
                            .is_some_and(|p| organisation_region(p.organisation) == region)
                    })
                    .collect();
                if at_home.is_empty() {
                    continue;
                }
                // Half the orders name some signals, half erase all of the youth's.
                let named = if self.rng.bool() && at_home.len() > 1 {
                    at_home[..at_home.len() / 2].to_vec()
                } else {
                    Vec::new()
                };
                changes.push(Change::Erase {
                    youth: party.youth,
                    region,
                    signals: named,
                });
            }
        }
        for _ in 0..moves {
            let family = self.rng.usize(..population.families.len().max(1));
            let to = draw(&mut self.rng, &self.weights);
            let moved_youths = population
                .families
                .get(family)
                .map(|f| f.children.clone())
                .unwrap_or_default();
            if self.home.get(family) == Some(&to) || moved_youths.iter().any(|y| youths.contains(y))
            {
                continue;
            }
            youths.extend(moved_youths);
            if let Some(home) = self.home.get_mut(family) {
                *home = to;
            }
            changes.push(Change::Move {
                family: u32::try_from(family).unwrap_or(0),
                to,
            });
        }
        changes
    }

    /// The registrations of `day`: parties of open cases that are due, re-registrations, and
    /// new cases until the day's count is reached.
    pub fn registrations(
        &mut self,
        day: Date,
        population: &Population,
        oracle: &Oracle,
        burst: usize,
    ) -> Vec<Planned> {
        let target = self.count_for(day) * burst.max(1);
        let mut planned = Vec::new();
        let due = self.due.remove(&day).unwrap_or_default();
        for (youth, organisation) in due {
            if self.eligible(population, youth, day) {
                self.plan(&mut planned, day, youth, organisation);
            }
        }
        let mut attempts = 0;
        while planned.len() < target && attempts < target * 10 {
            attempts += 1;
            if self.rng.u8(..100) < 8 {
                // The same professional's organisation registers anew on a youth it knows.
                if let Some(party) = self
                    .live_signal(oracle, false)
                    .and_then(|signal| oracle.party_of(signal))
                {
                    self.plan(&mut planned, day, party.youth, party.organisation);
                }
                continue;
            }
            let Some(youth) = self.new_case_youth(population, day) else {
                continue;
            };
            self.open_case(population, day, youth, &mut planned);
            if self.rng.u8(..100) < self.rates.sibling_percent {
                let family = &population.families[population.person(youth).family as usize];
                let siblings: Vec<u32> = family
                    .children
                    .iter()
                    .copied()
                    .filter(|child| *child != youth && self.eligible(population, *child, day))
                    .collect();
                if !siblings.is_empty() {
                    let sibling = siblings[self.rng.usize(..siblings.len())];
                    let on = day.checked_add(self.rng.i32(1..60).days()).unwrap_or(day);
                    let organisation = self.organisation_for(population, sibling);
                    self.due
                        .entry(on)
                        .or_default()
                        .push((sibling, organisation));
                }
            }
        }
        planned
    }

    fn new_case_youth(&mut self, population: &Population, day: Date) -> Option<u32> {
        for _ in 0..5 {
            let family = &population.families[self.rng.usize(..population.families.len().max(1))];
            let child = family.children[self.rng.usize(..family.children.len())];
            if self.eligible(population, child, day) {
                return Some(child);
            }
        }
        None
    }

    /// A first party now, the others over the next weeks: 1 to 6 parties, a fifth busy (4+).
    fn open_case(
        &mut self,
        population: &Population,
        day: Date,
        youth: u32,
        into: &mut Vec<Planned>,
    ) {
        let parties = match self.rng.u8(..100) {
            0..35 => 1,
            35..65 => 2,
            65..80 => 3,
            80..90 => 4,
            90..96 => 5,
            _ => 6,
        };
        let first = self.organisation_for(population, youth);
        self.plan(into, day, youth, first);
        for _ in 1..parties {
            let organisation = self.organisation_for(population, youth);
            let on = day.checked_add(self.rng.i32(1..45).days()).unwrap_or(day);
            self.due.entry(on).or_default().push((youth, organisation));
        }
    }

    fn plan(&mut self, into: &mut Vec<Planned>, day: Date, youth: u32, organisation: u32) {
        // A third until a year from now, a quarter until the next 1 August but one (the
        // school year's wave), the rest the cap: two years.
        let planned_removal = match self.rng.u8(..100) {
            0..33 => day.checked_add(1.year()),
            33..58 => {
                let year = if day.month() >= 6 {
                    day.year() + 1
                } else {
                    day.year()
                };
                Ok(jiff::civil::date(year, 8, 1))
            }
            _ => day.checked_add(2.years()),
        }
        .unwrap_or(day);
        let signal = self.next_signal;
        self.next_signal += 1;
        self.candidates.push(signal);
        into.push(Planned {
            signal,
            organisation,
            professional: self.rng.u8(..PROFESSIONALS),
            youth,
            planned_removal,
        });
    }

    pub fn regions(&self) -> usize {
        self.regions
    }

    /// Registrations on an average day.
    pub fn daily_rate(&self) -> usize {
        (self.rates.registrations_per_year as usize).div_ceil(365)
    }
}
