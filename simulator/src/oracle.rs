//! The oracle: the match rule of DOMAIN.md section 5 written again, by brute force and without
//! any of vix's code (it must not share vix's mistakes). It is fed the registrations in the order
//! the system acknowledged them and says which notices each organisation must end up with.
//!
//! A party is one organisation on one youth. For a newly registered active signal S, every other
//! organisation's party P on the same youth (youth match) or on a youth sharing a parent (family
//! match) is a match: S's owner is told about P, and P about S if P holds an active signal;
//! nobody is told twice about the same parties and match type.

use std::collections::{BTreeMap, BTreeSet};

/// A youth, with the BSNs of their parents (the family keys' source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Youth {
    pub bsn: String,
    pub parents: Vec<String>,
}

/// One acknowledged registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub organisation: String,
    pub youth: Youth,
}

/// A notice as the oracle sees it: who is told about whom, by parties.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Notice {
    pub recipient_organisation: String,
    pub recipient_youth: String,
    pub counterpart_organisation: String,
    pub counterpart_youth: String,
    pub family: bool,
}

/// The notices that `registrations`, applied in order, must produce.
pub fn expected(registrations: &[Registration]) -> BTreeSet<Notice> {
    // Party (organisation, youth) -> the youth's parents; every party here is active.
    let mut parties: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut told = BTreeSet::new();
    for registration in registrations {
        let new = (
            registration.organisation.clone(),
            registration.youth.bsn.clone(),
        );
        for ((organisation, youth), parents) in &parties {
            if *organisation == registration.organisation {
                continue; // an organisation never matches itself
            }
            let family = if *youth == registration.youth.bsn {
                false
            } else if parents
                .iter()
                .any(|parent| registration.youth.parents.contains(parent))
            {
                true
            } else {
                continue;
            };
            told.insert(Notice {
                recipient_organisation: new.0.clone(),
                recipient_youth: new.1.clone(),
                counterpart_organisation: organisation.clone(),
                counterpart_youth: youth.clone(),
                family,
            });
            told.insert(Notice {
                recipient_organisation: organisation.clone(),
                recipient_youth: youth.clone(),
                counterpart_organisation: new.0.clone(),
                counterpart_youth: new.1.clone(),
                family,
            });
        }
        // A re-registration of a party adds nothing: the set of told pairs is what counts.
        parties.insert(new, registration.youth.parents.clone());
    }
    told
}

#[cfg(test)]
mod tests {
    use super::*;

    fn youth(bsn: &str, parents: &[&str]) -> Youth {
        Youth {
            bsn: bsn.into(),
            parents: parents.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    fn registration(organisation: &str, youth: &Youth) -> Registration {
        Registration {
            organisation: organisation.into(),
            youth: youth.clone(),
        }
    }

    fn arrows(notices: &BTreeSet<Notice>) -> Vec<String> {
        notices
            .iter()
            .map(|n| {
                format!(
                    "{}/{} -> {}/{}{}",
                    n.recipient_organisation,
                    n.recipient_youth,
                    n.counterpart_organisation,
                    n.counterpart_youth,
                    if n.family { " (family)" } else { "" }
                )
            })
            .collect()
    }

    #[test]
    fn worked_example_2_a_second_team_member_tells_nobody() {
        let y = youth("Y", &["P"]);
        let notices = expected(&[
            registration("care", &y),
            registration("team", &y),
            registration("team", &y),
        ]);
        assert_eq!(arrows(&notices), ["care/Y -> team/Y", "team/Y -> care/Y"]);
    }

    #[test]
    fn worked_example_4_family_then_youth() {
        let y1 = youth("Y1", &["P1", "P2"]);
        let y2 = youth("Y2", &["P1", "P2"]);
        let notices = expected(&[
            registration("A", &y1),
            registration("B", &y2),
            registration("A", &y2),
        ]);
        assert_eq!(
            arrows(&notices),
            [
                "A/Y1 -> B/Y2 (family)",
                "A/Y2 -> B/Y2",
                "B/Y2 -> A/Y1 (family)",
                "B/Y2 -> A/Y2",
            ]
        );
    }

    #[test]
    fn one_organisation_never_matches_itself_and_strangers_do_not_match() {
        let y1 = youth("Y1", &["P1"]);
        let y2 = youth("Y2", &["P1"]);
        let stranger = youth("Y3", &["P9"]);
        assert!(expected(&[registration("A", &y1), registration("A", &y2)]).is_empty());
        assert!(expected(&[registration("A", &y1), registration("B", &stranger)]).is_empty());
    }
}
