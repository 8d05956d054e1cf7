//! A synthetic population: families of one or two parents and one to four children aged 0 to 22,
//! every person with a valid BSN (the 11-proof), written in the BRP fixture's JSON format so the
//! nodes read it as their person registry. Seeded: the same seed gives the same population.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use jiff::civil::Date;
use serde::Serialize;
use vix_node::domain::registry::{Person as RegistryPerson, PersonRegistry, RegistryError};
use vix_node::domain::{Bsn, MunicipalityCode};

/// One person as the person registry serves them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    pub bsn: String,
    pub birth_date: Date,
    pub death_date: Option<Date>,
    /// Indexes into [`Population::persons`].
    #[serde(skip)]
    pub parent_indexes: Vec<u32>,
    /// BSNs, as the registry file lists them.
    pub parents: Vec<String>,
    pub municipality: String,
    /// The family, an index into [`Population::families`].
    #[serde(skip)]
    pub family: u32,
}

/// One family: its parents and children (indexes into [`Population::persons`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub parents: Vec<u32>,
    pub children: Vec<u32>,
    /// Index of the region the family lives in.
    pub home: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Population {
    pub persons: Vec<Person>,
    pub families: Vec<Family>,
}

/// Relative sizes of `regions` regions, skewed as DOMAIN.md section 10 says: region 0 is the
/// largest (about two and a half times the mean), the three last are near empty (when there
/// are ten or more), the rest spread log-normally.
pub fn region_weights(rng: &mut fastrand::Rng, regions: usize) -> Vec<f64> {
    let mut weights: Vec<f64> = (0..regions)
        .map(|_| {
            // Box-Muller: a standard normal from two uniforms.
            let (u, v) = (rng.f64().max(f64::MIN_POSITIVE), rng.f64());
            let normal = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            (0.6 * normal).exp().min(2.0)
        })
        .collect();
    if regions >= 10 {
        for weight in weights.iter_mut().skip(regions - 3) {
            *weight = 0.01;
        }
    }
    #[allow(clippy::cast_precision_loss)] // a count of regions
    let mean = weights.iter().sum::<f64>() / regions.max(1) as f64;
    if let Some(first) = weights.first_mut() {
        *first = 2.5 * mean;
    }
    let total: f64 = weights.iter().sum();
    weights.iter().map(|weight| weight / total).collect()
}

/// An index drawn from `weights` (which sum to 1).
pub fn draw(rng: &mut fastrand::Rng, weights: &[f64]) -> usize {
    let mut left = rng.f64();
    for (index, weight) in weights.iter().enumerate() {
        if left < *weight {
            return index;
        }
        left -= weight;
    }
    weights.len().saturating_sub(1)
}

impl Population {
    /// `families` families spread over regions by `weights` (region `i` has municipality
    /// `municipality(i)`), with ages as they are on `today`.
    pub fn generate(
        rng: &mut fastrand::Rng,
        families: usize,
        weights: &[f64],
        today: Date,
    ) -> Self {
        let mut taken = HashSet::new();
        let mut population = Self::default();
        for _ in 0..families {
            let family = u32::try_from(population.families.len()).unwrap_or(u32::MAX);
            let home = draw(rng, weights);
            let municipality = municipality(home);
            let parent_count = if rng.u8(..10) < 7 { 2 } else { 1 };
            let child_count = 1 + rng.usize(..4);
            let mut parents = Vec::new();
            for _ in 0..parent_count {
                parents.push(population.add(Person {
                    bsn: bsn(rng, &mut taken),
                    birth_date: days_before(today, 365 * (25 + rng.i64(0..30))),
                    death_date: None,
                    parent_indexes: Vec::new(),
                    parents: Vec::new(),
                    municipality: municipality.clone(),
                    family,
                }));
            }
            let parent_bsns: Vec<String> = parents
                .iter()
                .map(|parent| population.persons[*parent as usize].bsn.clone())
                .collect();
            let mut children = Vec::new();
            for _ in 0..child_count {
                children.push(population.add(Person {
                    bsn: bsn(rng, &mut taken),
                    // 0 to 22 years old, never on the day of a 23rd birthday.
                    birth_date: days_before(today, 1 + rng.i64(0..365 * 23 - 2)),
                    death_date: None,
                    parent_indexes: parents.clone(),
                    parents: parent_bsns.clone(),
                    municipality: municipality.clone(),
                    family,
                }));
            }
            population.families.push(Family {
                parents,
                children,
                home,
            });
        }
        population
    }

    fn add(&mut self, person: Person) -> u32 {
        self.persons.push(person);
        u32::try_from(self.persons.len() - 1).unwrap_or(u32::MAX)
    }

    /// The person registry file's text.
    pub fn registry_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&self.persons)
    }

    pub fn person(&self, index: u32) -> &Person {
        &self.persons[index as usize]
    }
}

/// The person registry port served from memory to every region of an in-process federation;
/// deaths and moves change it while the nodes run, as the BRP would.
pub struct SimRegistry {
    persons: RwLock<HashMap<Bsn, RegistryPerson>>,
}

impl SimRegistry {
    pub fn new(population: &Population) -> anyhow::Result<Self> {
        let mut persons = HashMap::with_capacity(population.persons.len());
        for person in &population.persons {
            let parents = person
                .parents
                .iter()
                .map(|parent| Bsn::parse(parent))
                .collect::<Result<Vec<_>, _>>()?;
            persons.insert(
                Bsn::parse(&person.bsn)?,
                RegistryPerson {
                    birth_date: Some(person.birth_date),
                    death_date: person.death_date,
                    parents,
                    municipality: Some(MunicipalityCode::parse(&person.municipality)?),
                },
            );
        }
        Ok(Self {
            persons: RwLock::new(persons),
        })
    }

    fn change(&self, bsn: &str, change: impl FnOnce(&mut RegistryPerson)) -> anyhow::Result<()> {
        let bsn = Bsn::parse(bsn)?;
        let mut persons = self
            .persons
            .write()
            .map_err(|_| anyhow::anyhow!("the registry lock is poisoned"))?;
        if let Some(person) = persons.get_mut(&bsn) {
            change(person);
        }
        Ok(())
    }

    pub fn record_death(&self, bsn: &str, on: Date) -> anyhow::Result<()> {
        self.change(bsn, |person| person.death_date = Some(on))
    }

    pub fn record_move(&self, bsn: &str, municipality: &str) -> anyhow::Result<()> {
        let code = MunicipalityCode::parse(municipality)?;
        self.change(bsn, |person| person.municipality = Some(code))
    }
}

impl PersonRegistry for SimRegistry {
    fn lookup(&self, bsn: &Bsn) -> Result<Option<RegistryPerson>, RegistryError> {
        let persons = self
            .persons
            .read()
            .map_err(|_| RegistryError::Unavailable("the registry lock is poisoned".into()))?;
        Ok(persons.get(bsn).cloned())
    }
}

/// The municipality of region `index` (one each, so a municipality's officers act in one).
pub fn municipality(index: usize) -> String {
    format!("{:04}", 100 + index)
}

fn days_before(today: Date, days: i64) -> Date {
    today
        .checked_sub(jiff::Span::new().days(days))
        .unwrap_or(today)
}

/// A fresh BSN: nine digits whose weighted sum (9..2, and -1 for the last) is divisible by 11.
fn bsn(rng: &mut fastrand::Rng, taken: &mut HashSet<String>) -> String {
    loop {
        let mut digits = [0u32; 9];
        digits[0] = rng.u32(1..10);
        for digit in digits.iter_mut().take(8).skip(1) {
            *digit = rng.u32(..10);
        }
        let sum: u32 = digits
            .iter()
            .take(8)
            .zip((2..=9).rev())
            .map(|(digit, weight)| digit * weight)
            .sum();
        let last = sum % 11;
        if last == 10 {
            continue;
        }
        digits[8] = last;
        let text: String = digits
            .iter()
            .filter_map(|digit| char::from_digit(*digit, 10))
            .collect();
        if taken.insert(text.clone()) {
            return text;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bsn_passes_the_nodes_check_and_families_hang_together() {
        let today = jiff::civil::date(2026, 11, 25);
        let mut rng = fastrand::Rng::with_seed(1);
        let weights = region_weights(&mut rng, 5);
        let population = Population::generate(&mut rng, 200, &weights, today);
        let mut seen = HashSet::new();
        for person in &population.persons {
            assert!(Bsn::parse(&person.bsn).is_ok(), "{}", person.bsn);
            assert!(seen.insert(person.bsn.clone()), "BSN twice");
        }
        for family in &population.families {
            assert!((1..=2).contains(&family.parents.len()));
            assert!((1..=4).contains(&family.children.len()));
            for child in &family.children {
                let child = population.person(*child);
                assert_eq!(child.parent_indexes, family.parents);
                let age = vix_node::domain::informing::age_on(child.birth_date, today);
                assert!(age <= 22, "{age}");
            }
        }
        let mut rng = fastrand::Rng::with_seed(1);
        let weights = region_weights(&mut rng, 5);
        let again = Population::generate(&mut rng, 200, &weights, today);
        assert_eq!(
            again.persons, population.persons,
            "the same seed, the same people"
        );
    }
}
