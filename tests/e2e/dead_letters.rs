//! Poison never blocks (issue 9, item 3): an event the hub refuses for good becomes a dead letter
//! with the hub's reason, its signal's later events wait behind it, every other event flows on;
//! an entry of the hub's notice log the node cannot read becomes a dead letter and the stream
//! goes on.

use vix_node::dead_letters::{self, RetryOutcome};
use vix_node::domain::Clock;
use vix_node::store::SignalStore;
use vix_node::store::dead_letter::DeadLetterSource;
use vix_node::store::hub::HubStore;
use vix_protocol::federation::v1 as fed;
use vix_protocol::region::v1 as pb;
use vix_tests::{eventually, new_dir, spawn_hub, spawn_linked_region, spawn_region_with};

const YOUTH: &str = "999991383";
const SIBLING: &str = "999992065";
const OTHER_YOUTH: &str = "999996046";

#[tokio::test]
async fn an_event_the_hub_refuses_waits_as_a_dead_letter_while_other_signals_flow() {
    let hub = spawn_hub().await;
    let south = spawn_linked_region("south", &hub).await;
    // A misconfigured north holds a registry that gives it south's organisation vt-south; the
    // hub's registry gives vt-south to south.
    let north_dir = new_dir("north");
    let wrong = vix_tests::write_organisation_registry(north_dir.path(), &[("vt-south", "north")]);
    let north = spawn_region_with("north", north_dir, Some(hub.addr), |settings| {
        settings.organisation_registry_file = wrong;
    })
    .await;

    // North speaks for vt-south before south ever did: nothing binds on first use, so the hub
    // refuses it all the same ...
    let poisoned = north.register_bsn("vt-south", SIBLING, "poison").await;
    eventually("the refused event is a dead letter", || async {
        (north.context.store.dead_letter_count().await.unwrap() == 1).then_some(())
    })
    .await;
    // ... and the region that serves vt-south is not stalled by it.
    south
        .register_bsn("vt-south", OTHER_YOUTH, "south-after")
        .await;
    eventually("south's vt-south event applied at the hub", || async {
        (south.context.store.outbox_len().await.unwrap() == 0
            && south.context.store.dead_letter_count().await.unwrap() == 0)
            .then_some(())
    })
    .await;
    let letters = dead_letters::list(&north.context.store).await.unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.source, DeadLetterSource::Outbox);
    assert_eq!(
        letter.signal_id.as_deref(),
        Some(poisoned.signal_id.as_str())
    );
    assert!(
        letter.reason.contains("PermissionDenied")
            && letter.reason.contains("].upsert.organisation_id")
            && letter.reason.contains("another region"),
        "{}",
        letter.reason
    );

    // A later event of the same signal waits behind it ...
    north
        .client("vt-south")
        .update_signal(pb::UpdateSignalRequest {
            acting_professional_id: "p-acting".into(),
            informing: None,
            signal_id: poisoned.signal_id.clone(),
            professional: None,
            planned_removal_date: "2027-06-01".into(),
        })
        .await
        .unwrap();
    // ... while another signal's events flow: jgz-north and vt-south (in south) match.
    north
        .register_bsn("jgz-north", OTHER_YOUTH, "healthy")
        .await;
    eventually("the healthy signal reached the hub and matched", || async {
        (south.matches("vt-south").await.len() == 1).then_some(())
    })
    .await;
    let held = north.context.store.outbox_batch(100).await.unwrap();
    assert!(held.is_empty(), "held events are not offered: {held:?}");
    assert_eq!(north.context.store.outbox_len().await.unwrap(), 1);

    // A retry puts it back ahead of its later event; the hub refuses it again.
    let now = north.clock.now();
    let outcome = dead_letters::retry(
        &north.context.store,
        &[letter.id],
        &north.context.region_id,
        None,
        now,
    )
    .await
    .unwrap();
    assert_eq!(outcome, vec![(letter.id, RetryOutcome::Requeued)]);
    eventually("refused again after the retry", || async {
        let letters = dead_letters::list(&north.context.store).await.unwrap();
        (letters.len() == 1 && letters[0].id != letter.id).then_some(())
    })
    .await;
    assert_eq!(north.context.store.outbox_len().await.unwrap(), 1);

    // Deleting the signal supersedes its refused events: the deletion goes, nothing is left.
    north
        .client("vt-south")
        .withdraw_signal(pb::WithdrawSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: poisoned.signal_id.clone(),
            reason: pb::WithdrawReason::Unjustified as i32,
        })
        .await
        .unwrap();
    eventually("the deletion was forwarded", || async {
        (north.context.store.outbox_len().await.unwrap() == 0).then_some(())
    })
    .await;
    assert_eq!(north.context.store.dead_letter_count().await.unwrap(), 0);
}

#[tokio::test]
async fn an_unreadable_notice_log_entry_is_kept_aside_and_the_stream_goes_on() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    // The first notice for vt-south arrives with a header injection in the counterpart's e-mail.
    let mut tampered = None::<String>;
    *hub.tamper.lock().unwrap() = Some(Box::new(move |entry: &mut fed::NoticeLogEntry| {
        if let Some(fed::notice_log_entry::Entry::Notice(notice)) = &mut entry.entry
            && notice.recipient_organisation_id == "vt-south"
            && tampered.get_or_insert_with(|| notice.notice_id.clone()) == &notice.notice_id
            && let Some(professional) = notice
                .counterpart
                .as_mut()
                .and_then(|c| c.professional.as_mut())
        {
            professional.email = "a@b.nl\r\nBcc: everyone@example.nl".into();
        }
    }));
    let stored = south.context.notices_stored.subscribe();
    south.register_bsn("vt-south", YOUTH, "vt").await;
    north.register_bsn("jgz-north", YOUTH, "jgz").await;
    eventually("the unreadable notice is a dead letter", || async {
        (south.context.store.dead_letter_count().await.unwrap() == 1).then_some(())
    })
    .await;
    // The stream goes on: the next notice is stored without a reconnect.
    north.register_bsn("school-north", YOUTH, "school").await;
    eventually("the next notice stored", || async {
        (south.matches("vt-south").await.len() == 1).then_some(())
    })
    .await;
    assert!(*stored.borrow() >= 1);
    let letters = dead_letters::list(&south.context.store).await.unwrap();
    assert_eq!(letters[0].source, DeadLetterSource::NoticeLog);
    assert!(letters[0].reason.contains("email"), "{}", letters[0].reason);
    // The cursor moved past it and the hub heard so: nothing is owed to south.
    let south_id = vix_node::domain::RegionId::parse("south").unwrap();
    eventually("south acknowledged past the dead letter", || async {
        (hub.context.store.unacked(&south_id).await.unwrap() == 0).then_some(())
    })
    .await;
    // Read again with the same code it is still unreadable and stays.
    let outcome = dead_letters::retry(
        &south.context.store,
        &[letters[0].id],
        &south.context.region_id,
        None,
        south.clock.now(),
    )
    .await
    .unwrap();
    assert!(
        matches!(&outcome[0].1, RetryOutcome::StillUnreadable(why) if why.contains("email")),
        "{outcome:?}"
    );
    assert_eq!(south.context.store.dead_letter_count().await.unwrap(), 1);
}
