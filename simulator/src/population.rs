//! A synthetic population: families of one or two parents and one to four children aged 0 to 22,
//! every person with a valid BSN (the 11-proof), written in the BRP fixture's JSON format so the
//! nodes read it as their person registry. Seeded: the same seed gives the same population.

use std::collections::HashSet;

use jiff::civil::Date;
use serde::Serialize;

/// One person as the person registry serves them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    pub bsn: String,
    pub birth_date: Date,
    pub death_date: Option<Date>,
    pub parents: Vec<String>,
    pub children: Vec<String>,
    pub municipality: String,
}

/// One family: BSNs of its parents and children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub parents: Vec<String>,
    pub children: Vec<String>,
    /// Index of the region the family lives in.
    pub home: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Population {
    pub persons: Vec<Person>,
    pub families: Vec<Family>,
}

impl Population {
    /// `families` families spread over `regions` regions (region `i` has municipality
    /// `municipality(i)`), with ages as they are on `today`.
    pub fn generate(rng: &mut fastrand::Rng, families: usize, regions: usize, today: Date) -> Self {
        let mut taken = HashSet::new();
        let mut population = Self::default();
        for _ in 0..families {
            let home = rng.usize(..regions.max(1));
            let municipality = municipality(home);
            let parent_count = if rng.u8(..10) < 7 { 2 } else { 1 };
            let child_count = 1 + rng.usize(..4);
            let parents: Vec<String> = (0..parent_count).map(|_| bsn(rng, &mut taken)).collect();
            let children: Vec<String> = (0..child_count).map(|_| bsn(rng, &mut taken)).collect();
            for parent in &parents {
                population.persons.push(Person {
                    bsn: parent.clone(),
                    birth_date: days_before(today, 365 * (25 + rng.i64(0..30))),
                    death_date: None,
                    parents: Vec::new(),
                    children: children.clone(),
                    municipality: municipality.clone(),
                });
            }
            for child in &children {
                population.persons.push(Person {
                    bsn: child.clone(),
                    // 0 to 22 years old, never on the day of a 23rd birthday.
                    birth_date: days_before(today, 1 + rng.i64(0..365 * 23 - 2)),
                    death_date: None,
                    parents: parents.clone(),
                    children: Vec::new(),
                    municipality: municipality.clone(),
                });
            }
            population.families.push(Family {
                parents,
                children,
                home,
            });
        }
        population
    }

    /// The person registry file's text.
    pub fn registry_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&self.persons)
    }

    pub fn person(&self, bsn: &str) -> Option<&Person> {
        self.persons.iter().find(|person| person.bsn == bsn)
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
        let population = Population::generate(&mut rng, 200, 5, today);
        let mut seen = HashSet::new();
        for person in &population.persons {
            assert!(
                vix_node::domain::Bsn::parse(&person.bsn).is_ok(),
                "{}",
                person.bsn
            );
            assert!(seen.insert(person.bsn.clone()), "BSN twice");
        }
        for family in &population.families {
            assert!((1..=2).contains(&family.parents.len()));
            assert!((1..=4).contains(&family.children.len()));
            for child in &family.children {
                let child = population.person(child).unwrap();
                assert_eq!(child.parents, family.parents);
                let age = vix_node::domain::informing::age_on(child.birth_date, today);
                assert!(age <= 22, "{age}");
            }
        }
        let again = Population::generate(&mut fastrand::Rng::with_seed(1), 200, 5, today);
        assert_eq!(
            again.persons, population.persons,
            "the same seed, the same people"
        );
    }
}
