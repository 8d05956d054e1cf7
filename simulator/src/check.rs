//! The oracle's expectations against what the organisations see: every notice each
//! organisation lists through `ListMatches`, by party, compared with the notices the oracle
//! says must stand. Missing, duplicated and unexpected notices are named (notice ids, signal
//! numbers, organisations and the simulation's youth numbers; never a BSN).

use std::collections::{BTreeMap, HashMap};

use vix_protocol::region::v1 as pb;

use crate::federation::organisation_id;
use crate::oracle::{Kind, Oracle, Party, SignalRef};
use crate::report::Verdict;
use crate::workload::organisation_region;

/// One notice as an organisation sees it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub notice_id: String,
    pub signal_id: String,
    pub counterpart_signal_id: String,
    pub family: bool,
    pub kind: Option<Kind>,
}

impl Seen {
    pub fn from_match(found: &pb::Match) -> Self {
        Self {
            notice_id: found.notice_id.clone(),
            signal_id: found.signal_id.clone(),
            counterpart_signal_id: found
                .counterpart
                .as_ref()
                .map(|c| c.signal_id.clone())
                .unwrap_or_default(),
            family: found.match_type == pb::MatchType::Family as i32,
            kind: match pb::NoticeKind::try_from(found.kind) {
                Ok(pb::NoticeKind::Match) => Some(Kind::Match),
                Ok(pb::NoticeKind::History) => Some(Kind::History),
                _ => None,
            },
        }
    }
}

fn party_name(party: Party) -> String {
    format!(
        "{}/youth#{}",
        organisation_id(party.organisation),
        party.youth
    )
}

/// Compares. `ids` maps the federation's signal numbers to the simulation's.
pub fn verdict(oracle: &Oracle, seen: &[Seen], ids: &HashMap<String, SignalRef>) -> Verdict {
    let mut verdict = Verdict::default();
    let expected: BTreeMap<(Party, Party), _> = oracle
        .expected()
        .into_iter()
        .map(|e| ((e.recipient, e.counterpart), e))
        .collect();
    let mut found: BTreeMap<(Party, Party), Vec<&Seen>> = BTreeMap::new();
    for notice in seen {
        let describe = || {
            format!(
                "notice {} on signal {} about signal {} ({}, {:?})",
                notice.notice_id,
                notice.signal_id,
                notice.counterpart_signal_id,
                if notice.family { "family" } else { "youth" },
                notice.kind
            )
        };
        let own = ids.get(&notice.signal_id).and_then(|s| oracle.party_of(*s));
        let other = ids
            .get(&notice.counterpart_signal_id)
            .and_then(|s| oracle.party_of(*s));
        let (Some(own), Some(other)) = (own, other) else {
            verdict.unexpected.push(format!(
                "{}: names a signal that is deleted or unknown",
                describe()
            ));
            continue;
        };
        let Some(wanted) = expected.get(&(own, other)) else {
            verdict.unexpected.push(format!(
                "{}: {} was never to be told about {}",
                describe(),
                party_name(own),
                party_name(other)
            ));
            continue;
        };
        if wanted.family != notice.family || !notice.kind.is_some_and(|k| wanted.kinds.contains(&k))
        {
            verdict.unexpected.push(format!(
                "{}: the rule gives {} with kinds {:?}",
                describe(),
                if wanted.family { "family" } else { "youth" },
                wanted.kinds
            ));
            continue;
        }
        found.entry((own, other)).or_default().push(notice);
    }
    for (key, wanted) in &expected {
        match found.get(key).map(Vec::len).unwrap_or(0) {
            0 => verdict.missing.push(format!(
                "{} about {} ({})",
                party_name(wanted.recipient),
                party_name(wanted.counterpart),
                if wanted.family { "family" } else { "youth" }
            )),
            1 => {}
            _ => verdict.duplicated.push(
                found[key]
                    .iter()
                    .map(|n| format!("notice {}", n.notice_id))
                    .collect::<Vec<_>>()
                    .join(", ")
                    + &format!(
                        ": {} about {}",
                        party_name(wanted.recipient),
                        party_name(wanted.counterpart)
                    ),
            ),
        }
        if wanted.family {
            verdict.family_matches += 1;
        } else {
            verdict.youth_matches += 1;
        }
        if wanted.kinds == std::collections::BTreeSet::from([Kind::History]) {
            verdict.history_notices += 1;
        }
        if organisation_region(wanted.recipient.organisation)
            == organisation_region(wanted.counterpart.organisation)
        {
            verdict.local += 1;
        } else {
            verdict.cross_region += 1;
        }
    }
    verdict.expected = expected.len() as u64;
    verdict.delivered = seen.len() as u64;
    verdict
}

/// Notices a region holds without an e-mail job. In a run every notice reaches an active
/// recipient (the day's changes and registrations are apart), so each must have one; a second
/// job for one notice cannot exist (the job is keyed by the notice id). Read from the
/// region's database file, read-only.
pub async fn notices_without_email(
    region: &str,
    db: &std::path::Path,
) -> anyhow::Result<Option<String>> {
    let missing = vix_tests::process::count(
        db,
        "SELECT COUNT(*) FROM notices n WHERE NOT EXISTS \
         (SELECT 1 FROM email_jobs e WHERE e.notice_id = n.notice_id)",
        "",
    )
    .await?;
    Ok((missing > 0).then(|| format!("region {region}: {missing} notices without an e-mail job")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::{Registration, Youth};

    fn setup() -> (Oracle, HashMap<String, SignalRef>) {
        let youth = Youth {
            index: 7,
            parents: vec![90],
            birth_date: jiff::civil::date(2015, 1, 1),
        };
        let mut oracle = Oracle::new();
        for (signal, organisation) in [(1, 0), (2, 5)] {
            oracle.register(&[Registration {
                signal,
                organisation,
                youth: youth.clone(),
                planned_removal: jiff::civil::date(2027, 1, 1),
            }]);
        }
        let ids = HashMap::from([
            ("S1".to_owned(), 1),
            ("S2".to_owned(), 2),
            ("S3".to_owned(), 3),
        ]);
        (oracle, ids)
    }

    fn seen(id: &str, own: &str, other: &str, kind: Kind) -> Seen {
        Seen {
            notice_id: id.into(),
            signal_id: own.into(),
            counterpart_signal_id: other.into(),
            family: false,
            kind: Some(kind),
        }
    }

    #[test]
    fn both_told_once_passes_and_each_fault_is_named() {
        let (oracle, ids) = setup();
        let good = [
            seen("n1", "S1", "S2", Kind::Match),
            seen("n2", "S2", "S1", Kind::Match),
        ];
        let verdict = verdict(&oracle, &good, &ids);
        assert!(
            verdict.missing.is_empty()
                && verdict.duplicated.is_empty()
                && verdict.unexpected.is_empty()
        );
        assert_eq!(
            (verdict.expected, verdict.delivered, verdict.cross_region),
            (2, 2, 2)
        );

        let lost = verdict_of(&oracle, &ids, &[seen("n1", "S1", "S2", Kind::Match)]);
        assert_eq!(lost.missing.len(), 1, "{lost:?}");
        let twice = verdict_of(
            &oracle,
            &ids,
            &[
                seen("n1", "S1", "S2", Kind::Match),
                seen("n2", "S2", "S1", Kind::Match),
                seen("n3", "S2", "S1", Kind::Match),
            ],
        );
        assert_eq!(twice.duplicated.len(), 1);
        assert!(twice.duplicated[0].contains("n2") && twice.duplicated[0].contains("n3"));
        let wrong_kind = verdict_of(
            &oracle,
            &ids,
            &[
                seen("n1", "S1", "S2", Kind::History),
                seen("n2", "S2", "S1", Kind::Match),
            ],
        );
        assert_eq!(wrong_kind.unexpected.len(), 1);
        let stale = verdict_of(
            &oracle,
            &ids,
            &[
                seen("n1", "S1", "S2", Kind::Match),
                seen("n2", "S2", "S1", Kind::Match),
                seen("n9", "S2", "S3", Kind::Match),
            ],
        );
        assert_eq!(stale.unexpected.len(), 1);
        assert!(stale.unexpected[0].contains("deleted or unknown"));
    }

    fn verdict_of(oracle: &Oracle, ids: &HashMap<String, SignalRef>, seen: &[Seen]) -> Verdict {
        verdict(oracle, seen, ids)
    }

    #[tokio::test]
    async fn a_notice_without_its_e_mail_job_is_named() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("region.sqlite");
        let url = format!("sqlite://{}?mode=rwc", db.display());
        let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
        for statement in [
            "CREATE TABLE notices (notice_id TEXT PRIMARY KEY)",
            "CREATE TABLE email_jobs (notice_id TEXT PRIMARY KEY)",
            "INSERT INTO notices VALUES ('n1'), ('n2')",
            "INSERT INTO email_jobs VALUES ('n1')",
        ] {
            sqlx::query(statement)
                .execute(&mut connection)
                .await
                .unwrap();
        }
        let gap = notices_without_email("r00", &db).await.unwrap();
        assert_eq!(
            gap.as_deref(),
            Some("region r00: 1 notices without an e-mail job")
        );
        sqlx::query("INSERT INTO email_jobs VALUES ('n2')")
            .execute(&mut connection)
            .await
            .unwrap();
        assert_eq!(notices_without_email("r00", &db).await.unwrap(), None);
    }
}
