//! The hub role: `vix.federation.v1.FederationService` for the region nodes, with health and
//! reflection on the same mutual-TLS port. A region is known only by its certificate.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use vix_protocol::federation::v1 as pb;
use vix_protocol::federation::v1::federation_service_server::{
    FederationService, FederationServiceServer,
};

use crate::domain::audit::{Actor, AuditAction, AuditEntry};
use crate::domain::clock::Clock;
use crate::domain::{OrganisationRegistry, RegionId, ValidationErrors};
use crate::store::hub::HubStore;
use crate::tls::{self, PeerIdentity};

pub(crate) mod convert;
mod error;

pub use error::HubError;

/// Notices sent per read of a region's log; also the stream's buffer towards the region.
const STREAM_PAGE_LEN: u32 = 256;

/// Everything the hub's requests need, built once at start-up.
pub struct HubContext<S> {
    pub store: S,
    pub clock: Arc<dyn Clock>,
    /// The regions of the federation (the organisation registry's). A certificate naming
    /// another region is refused.
    pub regions: HashSet<RegionId>,
    /// Which region serves which organisation, and the name notices show for it.
    pub organisations: Arc<OrganisationRegistry>,
    /// Bumped after every batch that logged notices, to wake the open notice streams.
    pub notices_logged: watch::Sender<u64>,
    /// Turns true when the hub shuts down, so that notice streams end and shutdown can finish.
    pub stopping: watch::Receiver<bool>,
    /// The hub's own lifecycle (expiry, end of archive), swept once a day before batches.
    pub daily_sweep: crate::sweeper::DailySweep,
    /// How long an acknowledged notice-log entry is kept (for an operator's inquiry) before
    /// it is pruned.
    pub log_retention: jiff::SignedDuration,
    /// Faults a simulator switches on to prove its oracle can fail.
    #[cfg(feature = "sim-faults")]
    pub faults: SimFaults,
}

/// A broken hub on purpose (feature `sim-faults` only): every `drop_every_nth_notice`th notice
/// entry streamed to any region is lost, as a bug in the log would lose it (its place in the
/// log is streamed as a retraction of nothing).
#[cfg(feature = "sim-faults")]
#[derive(Debug, Default)]
pub struct SimFaults {
    /// 0: off.
    pub drop_every_nth_notice: std::sync::atomic::AtomicU64,
    streamed: std::sync::atomic::AtomicU64,
}

#[cfg(feature = "sim-faults")]
impl SimFaults {
    fn drops(&self, entry: &crate::store::hub::LogEntry) -> bool {
        use std::sync::atomic::Ordering;
        let every = self.drop_every_nth_notice.load(Ordering::Relaxed);
        if every == 0 || !matches!(entry, crate::store::hub::LogEntry::Notice(_)) {
            return false;
        }
        (self.streamed.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(every)
    }
}

impl<S: HubStore> HubContext<S> {
    /// Applies today's lifecycle if that has not happened yet.
    pub async fn ensure_swept(
        &self,
    ) -> Result<crate::store::SweepReport, crate::store::StoreError> {
        let report = self
            .daily_sweep
            .ensure(self.clock.today(), |today, limit| {
                self.store.sweep(today, limit)
            })
            .await?;
        if !report.is_empty() {
            // Deletions retract notices, expiries refresh them: wake the streams.
            self.notices_logged.send_modify(|n| *n += 1);
        }
        Ok(report)
    }

    /// Prunes the notice-log entries acknowledged a retention period ago.
    pub async fn prune_log(&self) -> Result<u64, crate::store::StoreError> {
        let now = self.clock.now();
        let acked_before = now
            .checked_sub(self.log_retention)
            .unwrap_or(jiff::Timestamp::MIN);
        let pruned = self.store.prune_log(acked_before, now).await?;
        if pruned > 0 {
            tracing::info!(pruned, "acknowledged notice-log entries pruned");
        }
        Ok(pruned)
    }

    /// Sweeps (and prunes the log) at every tick until `stopping` turns true.
    pub async fn run_sweeper(self: Arc<Self>) {
        let mut stopping = self.stopping.clone();
        while !*stopping.borrow() {
            if let Err(error) = self.ensure_swept().await {
                tracing::warn!(error = %crate::telemetry::error_chain(&error), "lifecycle sweep failed; will retry");
            }
            if let Err(error) = self.prune_log().await {
                tracing::warn!(error = %crate::telemetry::error_chain(&error), "notice-log pruning failed; will retry");
            }
            tokio::select! {
                () = tokio::time::sleep(crate::sweeper::SWEEP_TICK) => {},
                _ = stopping.changed() => {},
            }
        }
    }
}

/// What the hub's port serves, besides health and reflection.
const SERVICES: &[&str] = &[vix_protocol::federation::v1::federation_service_server::SERVICE_NAME];

/// Serves the federation API on `listener` until `shutdown` completes. `api` is normally
/// [`HubApi`]; tests may wrap it to observe what the hub receives.
pub async fn run<T: FederationService>(
    listener: TcpListener,
    tls: tls::ServerTls,
    limits: crate::limits::ServerLimits,
    api: T,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<FederationServiceServer<T>>()
        .await;
    limits
        .apply(tls.server())
        .layer(crate::metrics::RpcMetricsLayer)
        .add_service(health_service)
        .add_optional_service(crate::reflection::v1(SERVICES))
        .add_optional_service(crate::reflection::v1alpha(SERVICES))
        .add_service(
            FederationServiceServer::new(api)
                .max_decoding_message_size(crate::limits::FEDERATION_REQUEST_MAX_BYTES)
                .max_encoding_message_size(crate::limits::FEDERATION_RESPONSE_MAX_BYTES),
        )
        .serve_with_incoming_shutdown(tls::incoming(listener, &tls), shutdown)
        .await
}

pub struct HubApi<S> {
    context: Arc<HubContext<S>>,
}

impl<S> HubApi<S> {
    pub fn new(context: Arc<HubContext<S>>) -> Self {
        Self { context }
    }
}

/// The calling region, from its certificate; a `region_id` in the body must be the same.
fn caller<S, T>(
    context: &HubContext<S>,
    request: &Request<T>,
    claimed: &str,
) -> Result<RegionId, HubError> {
    let identity = tls::peer_identity(request).map_err(HubError::PermissionDenied)?;
    let PeerIdentity::Region(region_id) = identity else {
        return Err(HubError::PermissionDenied(
            "only region certificates may use the federation API".into(),
        ));
    };
    if !context.regions.contains(&region_id) {
        return Err(HubError::PermissionDenied(
            "this region is not part of the federation".into(),
        ));
    }
    if !claimed.is_empty() && claimed != region_id.as_str() {
        tracing::warn!(%region_id, "a region claimed to be another region");
        return Err(HubError::PermissionDenied(
            "region_id does not match the client certificate".into(),
        ));
    }
    Ok(region_id)
}

impl<S: HubStore> HubApi<S> {
    async fn submit(
        &self,
        request: Request<pb::SubmitSignalsRequest>,
    ) -> Result<pb::SubmitSignalsResponse, HubError> {
        let region_id = caller(&self.context, &request, &request.get_ref().region_id)?;
        let events = convert::parse_events(
            &request.get_ref().events,
            &region_id,
            &self.context.organisations,
        )?;
        self.context.ensure_swept().await?;
        let count = events.len();
        let started = std::time::Instant::now();
        let outcome = self
            .context
            .store
            .submit(&region_id, events, self.context.clock.now())
            .await?;
        metrics::histogram!("vix_hub_batch_events").record(count as f64);
        metrics::histogram!("vix_hub_batch_apply_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("vix_hub_notices_total").increment(u64::from(outcome.notices));
        if outcome.notices > 0 || outcome.applied > 0 {
            // New notices, or retractions of deleted signals' notices.
            self.context.notices_logged.send_modify(|n| *n += 1);
        }
        tracing::info!(
            %region_id,
            events = count,
            applied = outcome.applied,
            ignored = outcome.ignored,
            notices = outcome.notices,
            "signals submitted"
        );
        Ok(pb::SubmitSignalsResponse {
            applied: outcome.applied,
            ignored: outcome.ignored,
            notices: outcome.notices,
        })
    }

    async fn coordinate(
        &self,
        request: Request<pb::SubmitCoordinationRequest>,
    ) -> Result<pb::SubmitCoordinationResponse, HubError> {
        let region_id = caller(&self.context, &request, &request.get_ref().region_id)?;
        let changes = &request.get_ref().changes;
        if changes.len() > convert::BATCH_EVENTS_MAX {
            return Err(ValidationErrors::single(
                "changes",
                format!("at most {} changes per call", convert::BATCH_EVENTS_MAX),
            )
            .into());
        }
        let mut errors = ValidationErrors::new();
        let parsed: Vec<_> = changes
            .iter()
            .enumerate()
            .map(|(i, change)| {
                convert::coordination_from_pb(change, &format!("changes[{i}]"), &mut errors)
            })
            .collect();
        errors.into_result()?;
        let parsed: Vec<_> = parsed.into_iter().flatten().collect();
        let relayed = self
            .context
            .store
            .submit_coordination(&region_id, parsed, self.context.clock.now())
            .await?;
        if relayed > 0 {
            self.context.notices_logged.send_modify(|n| *n += 1);
        }
        tracing::info!(%region_id, relayed, "coordination submitted");
        Ok(pb::SubmitCoordinationResponse { relayed })
    }

    async fn hand_over(
        &self,
        request: Request<pb::HandOverSignalsRequest>,
    ) -> Result<pb::HandOverSignalsResponse, HubError> {
        let region_id = caller(&self.context, &request, &request.get_ref().region_id)?;
        let body = request.get_ref();
        let successor = RegionId::parse(&body.successor_region_id)
            .ok()
            .filter(|successor| self.context.regions.contains(successor) && successor != &region_id)
            .ok_or_else(|| {
                ValidationErrors::single(
                    "successor_region_id",
                    "must be another region of the federation",
                )
            })?;
        let handovers = convert::parse_handovers(&body.handovers)?;
        let successor_organisations = self
            .context
            .organisations
            .of_region(&successor)
            .map(|organisation| organisation.id.clone())
            .collect();
        self.context.ensure_swept().await?;
        let outcome = self
            .context
            .store
            .hand_over(
                &region_id,
                &successor,
                &successor_organisations,
                body.after_cursor,
                handovers,
                self.context.clock.now(),
            )
            .await?;
        if outcome.handed_over > 0 {
            self.context.notices_logged.send_modify(|n| *n += 1);
        }
        tracing::info!(
            %region_id,
            %successor,
            handed_over = outcome.handed_over,
            ignored = outcome.ignored,
            "signals handed over"
        );
        Ok(pb::HandOverSignalsResponse {
            handed_over: outcome.handed_over,
            ignored: outcome.ignored,
        })
    }

    async fn ack(&self, request: Request<pb::AckNoticesRequest>) -> Result<(), HubError> {
        let region_id = caller(&self.context, &request, &request.get_ref().region_id)?;
        let cursor = request.get_ref().cursor;
        // The acknowledgement and its audit entry are one transaction.
        self.context
            .store
            .ack(&region_id, cursor, self.context.clock.now())
            .await?;
        Ok(())
    }
}

type NoticeStream = Pin<Box<dyn Stream<Item = Result<pb::NoticeLogEntry, Status>> + Send>>;

#[tonic::async_trait]
impl<S: HubStore> FederationService for HubApi<S> {
    async fn submit_signals(
        &self,
        request: Request<pb::SubmitSignalsRequest>,
    ) -> Result<Response<pb::SubmitSignalsResponse>, Status> {
        Ok(Response::new(self.submit(request).await?))
    }

    type StreamNoticesStream = NoticeStream;

    async fn stream_notices(
        &self,
        request: Request<pb::StreamNoticesRequest>,
    ) -> Result<Response<Self::StreamNoticesStream>, Status> {
        let region_id = caller(&self.context, &request, &request.get_ref().region_id)?;
        let after = request.get_ref().after_cursor;
        self.context
            .store
            .record_audit(AuditEntry {
                at: self.context.clock.now(),
                action: AuditAction::StreamNotices,
                actor: Actor::Region(region_id.clone()),
                signal_ids: Vec::new(),
                detail: Some(format!("after={after}")),
            })
            .await
            .map_err(HubError::from)?;
        let (sender, receiver) = mpsc::channel(STREAM_PAGE_LEN as usize);
        tokio::spawn(stream_log(
            Arc::clone(&self.context),
            region_id,
            after,
            sender,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn submit_coordination(
        &self,
        request: Request<pb::SubmitCoordinationRequest>,
    ) -> Result<Response<pb::SubmitCoordinationResponse>, Status> {
        Ok(Response::new(self.coordinate(request).await?))
    }

    async fn hand_over_signals(
        &self,
        request: Request<pb::HandOverSignalsRequest>,
    ) -> Result<Response<pb::HandOverSignalsResponse>, Status> {
        Ok(Response::new(self.hand_over(request).await?))
    }

    async fn ack_notices(
        &self,
        request: Request<pb::AckNoticesRequest>,
    ) -> Result<Response<pb::AckNoticesResponse>, Status> {
        self.ack(request).await?;
        Ok(Response::new(pb::AckNoticesResponse {}))
    }
}

/// Sends `region_id`'s log after `cursor`, then waits for more, until the region hangs up or
/// the hub stops. Ending the task ends the stream.
async fn stream_log<S: HubStore>(
    context: Arc<HubContext<S>>,
    region_id: RegionId,
    mut cursor: u64,
    sender: mpsc::Sender<Result<pb::NoticeLogEntry, Status>>,
) {
    let mut logged = context.notices_logged.subscribe();
    let mut stopping = context.stopping.clone();
    // The head goes first, so the region can tell that this is the log it consumed before it
    // stores anything from it.
    let head = match context.store.log_head().await {
        Ok(head) => head,
        Err(error) => {
            let _ = sender.send(Err(HubError::from(error).into())).await;
            return;
        }
    };
    if sender.send(Ok(convert::head_to_pb(&head))).await.is_err() {
        return;
    }
    tracing::info!(%region_id, after = cursor, end = head.end_cursor, "notice stream opened");
    loop {
        if *stopping.borrow() {
            break;
        }
        // Mark the current log as seen before reading it, so nothing logged after the read
        // can be missed.
        logged.borrow_and_update();
        let page = match context
            .store
            .log_after(&region_id, cursor, STREAM_PAGE_LEN)
            .await
        {
            Ok(page) => page,
            Err(error) => {
                let _ = sender.send(Err(HubError::from(error).into())).await;
                break;
            }
        };
        for entry in &page.entries {
            // The lost notice's place in the log still passes, so the region acknowledges
            // past it and the federation becomes quiet: the loss shows only in what is told.
            #[cfg(feature = "sim-faults")]
            let lost;
            #[cfg(feature = "sim-faults")]
            let entry = if context.faults.drops(entry) {
                lost = crate::store::hub::LogEntry::Retraction {
                    cursor: entry.cursor(),
                    notice_id: format!("sim-lost-{}", entry.cursor()),
                };
                &lost
            } else {
                entry
            };
            if sender.send(Ok(convert::entry_to_pb(entry))).await.is_err() {
                tracing::info!(%region_id, "notice stream closed by the region");
                return;
            }
        }
        if let Some(read_through) = page.read_through {
            cursor = read_through;
        }
        if page.full {
            continue;
        }
        tokio::select! {
            changed = logged.changed() => if changed.is_err() { break },
            _ = stopping.changed() => {},
            () = sender.closed() => break,
        }
    }
    tracing::info!(%region_id, "notice stream ended");
}
