//! DOMAIN.md's worked examples 4 and 5 end to end across regions (examples 1, 2, 3 and 6 are in
//! `federation`, `region_api` and `lifecycle`).

use jiff::civil::{Date, date};
use vix_node::domain::Clock;
use vix_protocol::region::v1 as pb;
use vix_tests::{TestRegion, spawn_hub, spawn_linked_region};

/// Y1 and Y2 share both BRP parents in the fixture.
const Y1: &str = "999991383";
const Y2: &str = "999992065";

async fn register(
    region: &TestRegion,
    org: &str,
    bsn: &str,
    request_id: &str,
    removal: &str,
) -> pb::Signal {
    region
        .client(org)
        .register_signal(pb::RegisterSignalRequest {
            request_id: request_id.into(),
            youth: Some(pb::register_signal_request::Youth::Bsn(bsn.into())),
            professional: Some(pb::ProfessionalContact {
                professional_id: format!("p-{org}"),
                name: format!("Professional of {org}"),
                email: format!("p@{org}.example.nl"),
                phone: String::new(),
            }),
            planned_removal_date: removal.into(),
            informing: Some(vix_tests::informing_for(bsn, region.clock.today())),
        })
        .await
        .unwrap()
        .into_inner()
        .signal
        .unwrap()
}

/// `(match type, kind, counterpart organisation)` of each of `org`'s matches, sorted, once
/// there are `count` of them and no more arrive.
async fn settled(region: &TestRegion, org: &str, count: usize) -> Vec<(i32, i32, String)> {
    region.quiet().await;
    let mut seen: Vec<_> = region
        .matches(org)
        .await
        .into_iter()
        .map(|m| (m.match_type, m.kind, m.counterpart.unwrap().organisation_id))
        .collect();
    seen.sort();
    assert_eq!(seen.len(), count, "{org}: {seen:?}");
    seen
}

const YOUTH_MATCH: i32 = pb::MatchType::Youth as i32;
const FAMILY_MATCH: i32 = pb::MatchType::Family as i32;
const MATCH: i32 = pb::NoticeKind::Match as i32;
const HISTORY: i32 = pb::NoticeKind::History as i32;

#[tokio::test]
async fn example_4_family_then_youth() {
    let hub = spawn_hub().await;
    let n = spawn_linked_region("north", &hub).await;
    let s = spawn_linked_region("south", &hub).await;
    // Org A (N) signals Y1, org B (S) signals Y2: one family notice each way.
    register(&n, "jgz-north", Y1, "a-y1", "").await;
    register(&s, "vt-south", Y2, "b-y2", "").await;
    assert_eq!(
        settled(&n, "jgz-north", 1).await,
        [(FAMILY_MATCH, MATCH, "vt-south".into())]
    );
    assert_eq!(
        settled(&s, "vt-south", 1).await,
        [(FAMILY_MATCH, MATCH, "jgz-north".into())]
    );
    // A then signals Y2: youth notices A -> B and B -> A only.
    register(&n, "jgz-north", Y2, "a-y2", "").await;
    assert_eq!(
        settled(&n, "jgz-north", 2).await,
        [
            (YOUTH_MATCH, MATCH, "vt-south".into()),
            (FAMILY_MATCH, MATCH, "vt-south".into())
        ]
    );
    assert_eq!(
        settled(&s, "vt-south", 2).await,
        [
            (YOUTH_MATCH, MATCH, "jgz-north".into()),
            (FAMILY_MATCH, MATCH, "jgz-north".into())
        ]
    );
}

fn set_day(clock: &vix_node::domain::ManualClock, day: Date) {
    clock.set(vix_node::domain::ManualClock::at_noon(day).now());
}

#[tokio::test]
async fn example_5_archived() {
    let hub = spawn_hub().await;
    let n = spawn_linked_region("north", &hub).await;
    let s = spawn_linked_region("south", &hub).await;
    // A's S1 on Y expires (here on 1 March 2027).
    register(&n, "jgz-north", Y1, "s1", "2027-03-01").await;
    for clock in [&n.clock, &s.clock, &hub.clock] {
        set_day(clock, date(2027, 6, 1));
    }
    // B registers S2: B -> A as history; A gets none.
    register(&s, "vt-south", Y1, "s2", "").await;
    assert_eq!(
        settled(&s, "vt-south", 1).await,
        [(YOUTH_MATCH, HISTORY, "jgz-north".into())]
    );
    assert!(n.matches("jgz-north").await.is_empty());
    // A registers S3: A -> B (A was never told); B gets none.
    assert_eq!(n.clock.today(), date(2027, 6, 1));
    register(&n, "jgz-north", Y1, "s3", "").await;
    assert_eq!(
        settled(&n, "jgz-north", 1).await,
        [(YOUTH_MATCH, MATCH, "vt-south".into())]
    );
    assert_eq!(
        settled(&s, "vt-south", 1).await,
        [(YOUTH_MATCH, HISTORY, "jgz-north".into())]
    );
}
