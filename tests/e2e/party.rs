//! No pair is silenced (ARCHITECTURE.md invariant 2, issue 9 item 1): when a signal is deleted
//! while its party (organisation, youth) goes on through another signal, the notices that named
//! it, or were addressed to it, move to the signal that now stands for the party, in every
//! region, with the same notice id and no second e-mail. Both sides keep seeing each other.

use jiff::civil::{Date, date};
use vix_node::domain::Clock;
use vix_protocol::region::v1 as pb;
use vix_tests::{TestHub, TestRegion, spawn_hub, spawn_linked_region};

/// Born 2019: years of lifecycle pass before the 23rd birthday.
const YOUTH: &str = "999996046";

fn withdraw(signal: &pb::Signal, reason: pb::WithdrawReason) -> pb::WithdrawSignalRequest {
    pb::WithdrawSignalRequest {
        acting_professional_id: "p-acting".into(),
        signal_id: signal.signal_id.clone(),
        reason: reason as i32,
    }
}

/// `(notice id, own signal, counterpart signal, counterpart state)` of `org`'s matches.
async fn shown(region: &TestRegion, org: &str) -> Vec<(String, String, String, i32)> {
    region
        .matches(org)
        .await
        .into_iter()
        .map(|m| {
            let counterpart = m.counterpart.unwrap();
            (
                m.notice_id,
                m.signal_id,
                counterpart.signal_id,
                counterpart.state,
            )
        })
        .collect()
}

/// JGZ (north) and VT (south) are told about each other through S1 and S2; JGZ archives S1 and
/// registers S3 (a re-registration: nobody is told). Returns (S1, S2, S3).
async fn two_parties_one_with_two_signals(
    north: &TestRegion,
    south: &TestRegion,
) -> (pb::Signal, pb::Signal, pb::Signal) {
    let s1 = north.register_bsn("jgz-north", YOUTH, "s1").await;
    let s2 = south.register_bsn("vt-south", YOUTH, "s2").await;
    north.quiet().await;
    north
        .client("jgz-north")
        .withdraw_signal(withdraw(&s1, pb::WithdrawReason::RiskGone))
        .await
        .unwrap();
    let s3 = north.register_bsn("jgz-north", YOUTH, "s3").await;
    north.quiet().await;
    assert_eq!(shown(north, "jgz-north").await.len(), 1);
    assert_eq!(shown(south, "vt-south").await.len(), 1);
    (s1, s2, s3)
}

async fn e_mails(region: &TestRegion) -> i64 {
    region.row_counts().await["email_jobs"]
}

#[tokio::test]
async fn an_unjustified_signal_of_a_party_that_goes_on_moves_its_notices_to_the_party() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    let (s1, s2, s3) = two_parties_one_with_two_signals(&north, &south).await;
    let (north_notice, ..) = shown(&north, "jgz-north").await.remove(0);
    let (south_notice, ..) = shown(&south, "vt-south").await.remove(0);
    let mails = (e_mails(&north).await, e_mails(&south).await);

    north
        .client("jgz-north")
        .withdraw_signal(withdraw(&s1, pb::WithdrawReason::Unjustified))
        .await
        .unwrap();
    north.quiet().await;

    let active = pb::SignalState::Active as i32;
    assert_eq!(
        shown(&north, "jgz-north").await,
        [(
            north_notice,
            s3.signal_id.clone(),
            s2.signal_id.clone(),
            active
        )],
        "JGZ still sees VT, on its remaining signal"
    );
    assert_eq!(
        shown(&south, "vt-south").await,
        [(
            south_notice,
            s2.signal_id.clone(),
            s3.signal_id.clone(),
            active
        )],
        "VT still sees JGZ, through JGZ's remaining signal"
    );
    assert_eq!(
        (e_mails(&north).await, e_mails(&south).await),
        mails,
        "nobody is e-mailed again"
    );
}

fn set_day(hub: &TestHub, regions: &[&TestRegion], day: Date) {
    let now = vix_node::domain::ManualClock::at_noon(day).now();
    hub.clock.set(now);
    for region in regions {
        region.clock.set(now);
    }
}

#[tokio::test]
async fn the_end_of_one_archived_signal_moves_its_notices_to_the_partys_other_signal() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    let (s1, s2, s3) = two_parties_one_with_two_signals(&north, &south).await;
    let (north_notice, ..) = shown(&north, "jgz-north").await.remove(0);
    let (south_notice, ..) = shown(&south, "vt-south").await.remove(0);

    // Five years after S1 was archived it is deleted; S3, archived a year later, stays.
    set_day(&hub, &[&north, &south], date(2031, 11, 26));
    // Each node sweeps before its first request of the day.
    shown(&north, "jgz-north").await;
    shown(&south, "vt-south").await;
    north.quiet().await;
    assert_eq!(north.row_counts().await["signals"], 1);

    let inactive = pb::SignalState::Inactive as i32;
    assert_eq!(
        shown(&north, "jgz-north").await,
        [(
            north_notice,
            s3.signal_id.clone(),
            s2.signal_id.clone(),
            inactive
        )]
    );
    assert_eq!(
        shown(&south, "vt-south").await,
        [(
            south_notice,
            s2.signal_id.clone(),
            s3.signal_id.clone(),
            inactive
        )]
    );
    let _ = s1;
}
