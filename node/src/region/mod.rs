//! The region role: `vix.region.v1.RegionService` for the organisations of one region, with
//! health and reflection on the same mutual-TLS port.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use ring::digest;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};
use vix_protocol::region::v1 as pb;
use vix_protocol::region::v1::region_service_server::{RegionService, RegionServiceServer};

use crate::domain::clock::Clock;
use crate::domain::registry::PersonRegistry;
use crate::domain::signal::check_youth;
use crate::domain::{
    OrganisationId, OrganisationName, Pseudonymiser, RegionId, SignalId, ValidationErrors, YouthRef,
};
use crate::store::{NewSignal, Registered, SignalStore, SignalUpdate, SweepReport, Withdrawn};
use crate::tls::{self, PeerIdentity};

pub mod adoption;
pub(crate) mod convert;
mod error;
pub mod forwarder;
mod link;
pub mod mailer;
pub mod notice_consumer;
pub mod rights;

pub use error::RegionError;

use convert::{RegisterInput, Youth};

/// Everything a region node's requests need, built once at start-up.
pub struct RegionContext<S> {
    pub region_id: RegionId,
    pub store: S,
    /// The BRP stand-in: birth date, parents and death of a BSN.
    pub registry: Arc<dyn PersonRegistry>,
    pub pseudonymiser: Arc<dyn Pseudonymiser>,
    pub clock: Arc<dyn Clock>,
    /// Organisations served by this region, with the names the organisation registry gives
    /// them. An organisation belongs to one region, so a certificate of another region's
    /// organisation is refused here; a certificate's CN is never shown.
    pub organisations: HashMap<OrganisationId, OrganisationName>,
    /// Municipalities whose officers may exercise the rights of youths and parents here.
    pub municipalities: HashSet<crate::domain::MunicipalityCode>,
    /// Woken after every write that appended to the outbox, so the forwarder sends at once.
    pub outbox_ready: Arc<tokio::sync::Notify>,
    /// Woken after a registration that found local matches, so their e-mails go at once.
    pub mail_ready: Arc<tokio::sync::Notify>,
    /// Bumped after every hub notice stored; lets tests and operators wait for delivery.
    pub notices_stored: tokio::sync::watch::Sender<u64>,
    /// Set, with the reason, when the notice consumer stopped because the hub serves another
    /// log; health then reports `NOT_SERVING`.
    pub hub_log_halted: tokio::sync::watch::Sender<Option<String>>,
    /// The longest wait between attempts to reach the hub.
    pub hub_retry_delay_max: std::time::Duration,
    /// Since when the database and the hub link have been down, as the workers saw them.
    pub outages: crate::health::Outages,
    /// How long the database or the hub link may be down before health says `NOT_SERVING`.
    pub unhealthy_after: std::time::Duration,
    /// A crash point for process tests (`RegionSettings::failpoint`).
    pub failpoint: Option<String>,
    /// The lifecycle, swept once a day before anything is served.
    pub daily_sweep: crate::sweeper::DailySweep,
    /// Opens signals handed over by regions that left; `None` adopts nothing.
    pub adopter: Option<adoption::Adopter>,
}

/// Counts a RegisterSignal call by its outcome.
fn registered(region_id: &RegionId, outcome: &'static str) {
    metrics::counter!(
        "vix_registrations_total",
        "region" => region_id.to_string(),
        "outcome" => outcome,
    )
    .increment(1);
}

/// Where a process test may stop a region node: after a run of the hub's log is committed,
/// before the hub hears of it.
pub const FAILPOINT_BEFORE_ACK: &str = "notice-stored-before-ack";

impl<S: SignalStore> RegionContext<S> {
    /// Says how many dead letters wait for an operator (`vix-node dead-letters list`), at start
    /// and after each new one, so the count is visible in the log until it becomes a metric.
    pub async fn report_dead_letters(&self) {
        match self.store.dead_letter_count().await {
            Ok(0) => {}
            Ok(count) => tracing::warn!(
                dead_letters = count,
                "dead letters wait for an operator: vix-node dead-letters list"
            ),
            Err(error) => {
                tracing::warn!(error = %crate::telemetry::error_chain(&error), "cannot count the dead letters");
            }
        }
    }

    /// Stops here for good (to be killed) if the failpoint `name` is set.
    pub(crate) async fn failpoint(&self, name: &str) {
        if self.failpoint.as_deref() == Some(name) {
            tracing::warn!(failpoint = name, "failpoint reached; waiting to be killed");
            std::future::pending::<()>().await;
        }
    }

    /// Applies today's lifecycle if that has not happened yet; the changes go to the hub.
    pub async fn ensure_swept(&self) -> Result<SweepReport, crate::store::StoreError> {
        let report = self
            .daily_sweep
            .ensure(self.clock.today(), |today, limit| {
                self.store.sweep(today, limit)
            })
            .await?;
        if !report.is_empty() {
            self.outbox_ready.notify_one();
        }
        Ok(report)
    }

    /// Sweeps at every tick until `stopping` turns true.
    pub async fn run_sweeper(self: Arc<Self>, mut stopping: tokio::sync::watch::Receiver<bool>) {
        while !*stopping.borrow() {
            if let Err(error) = self.ensure_swept().await {
                tracing::warn!(error = %crate::telemetry::error_chain(&error), "lifecycle sweep failed; will retry");
            }
            tokio::select! {
                () = tokio::time::sleep(crate::sweeper::SWEEP_TICK) => {},
                _ = stopping.changed() => {},
            }
        }
    }
}

/// What a region's port serves, besides health and reflection.
const SERVICES: &[&str] = &[
    vix_protocol::region::v1::region_service_server::SERVICE_NAME,
    vix_protocol::region::v1::rights_service_server::SERVICE_NAME,
];

/// Serves the region API on `listener` until `shutdown` completes, then drains open requests.
/// Health reports each service and the whole node (`""`); all turn `NOT_SERVING` when the notice
/// consumer stopped on another hub log.
pub async fn run<S: SignalStore>(
    listener: TcpListener,
    tls: tls::ServerTls,
    limits: crate::limits::ServerLimits,
    context: Arc<RegionContext<S>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    set_health(&health_reporter, true).await;
    let health_task = tokio::spawn(watch_health(Arc::clone(&context), health_reporter));
    let incoming = tls::incoming(listener, &tls);
    let served = limits
        .apply(tls.server())
        .layer(crate::metrics::RpcMetricsLayer)
        .add_service(health_service)
        .add_optional_service(crate::reflection::v1(SERVICES))
        .add_optional_service(crate::reflection::v1alpha(SERVICES))
        .add_service(
            RegionServiceServer::new(RegionApi {
                context: Arc::clone(&context),
            })
            .max_decoding_message_size(crate::limits::REGION_REQUEST_MAX_BYTES)
            .max_encoding_message_size(crate::limits::REGION_RESPONSE_MAX_BYTES),
        )
        .add_service(
            vix_protocol::region::v1::rights_service_server::RightsServiceServer::new(
                rights::RightsApi::new(context),
            )
            .max_decoding_message_size(crate::limits::RIGHTS_REQUEST_MAX_BYTES)
            .max_encoding_message_size(crate::limits::RIGHTS_RESPONSE_MAX_BYTES),
        )
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    health_task.abort();
    served
}

/// Keeps the health service's answer current: `NOT_SERVING` while the notice consumer is
/// halted on another log, or the database or the hub link has been down longer than
/// `unhealthy_after`. The database is probed here; the hub link is reported by its workers.
async fn watch_health<S: SignalStore>(
    context: Arc<RegionContext<S>>,
    reporter: tonic_health::server::HealthReporter,
) {
    let probe = (context.unhealthy_after / 4).clamp(
        std::time::Duration::from_millis(50),
        std::time::Duration::from_secs(5),
    );
    let mut halted = context.hub_log_halted.subscribe();
    let mut serving = true;
    loop {
        context
            .outages
            .database(context.store.hub_log_position().await.is_ok());
        let now = context
            .outages
            .serving(context.unhealthy_after, std::time::Instant::now())
            && halted.borrow_and_update().is_none();
        if now != serving {
            serving = now;
            if !serving {
                tracing::warn!(
                    "health: NOT_SERVING (the database or the hub link is down, or the hub's log is another)"
                );
            } else {
                tracing::info!("health: SERVING again");
            }
            set_health(&reporter, serving).await;
        }
        tokio::select! {
            changed = halted.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(probe) => {}
        }
    }
}

async fn set_health(reporter: &tonic_health::server::HealthReporter, serving: bool) {
    let status = if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    for service in SERVICES.iter().chain(&[""]) {
        reporter.set_service_status(*service, status).await;
    }
}

pub struct RegionApi<S> {
    context: Arc<RegionContext<S>>,
}

/// The calling organisation, from its certificate's id, with its name from the organisation
/// registry: `(id, name)`.
fn caller<S, T>(
    context: &RegionContext<S>,
    request: &Request<T>,
) -> Result<(OrganisationId, OrganisationName), RegionError> {
    let identity = tls::peer_identity(request).map_err(RegionError::PermissionDenied)?;
    match identity {
        PeerIdentity::Organisation(id) => match context.organisations.get(&id) {
            Some(name) => Ok((id, name.clone())),
            None => Err(RegionError::PermissionDenied(
                "this organisation is not served by this region".into(),
            )),
        },
        PeerIdentity::Region(_)
        | PeerIdentity::Hub
        | PeerIdentity::Pseudonymizer
        | PeerIdentity::Municipality { .. } => Err(RegionError::PermissionDenied(
            "only organisation certificates may use the region API".into(),
        )),
    }
}

/// Identifies what a registration asked for, so a reused request_id with other content is
/// refused. Built from pseudonyms and contact only: it holds no BSN.
fn request_fingerprint(input: &RegisterInput, subject_key: &crate::domain::SubjectKey) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    let requested = input
        .requested_removal_date
        .map(|date| date.to_string())
        .unwrap_or_default();
    for part in [
        subject_key.to_stored().as_str(),
        input.contact.professional_id(),
        input.contact.name(),
        input.contact.email(),
        input.contact.phone().unwrap_or_default(),
        requested.as_str(),
    ] {
        context.update(part.as_bytes());
        context.update(&[0]);
    }
    hex::encode(context.finish())
}

impl<S: SignalStore> RegionApi<S> {
    /// The caller's signal `signal_id`. A signal of another organisation is
    /// [`StoreError::NotFound`](crate::store::StoreError::NotFound), exactly as one that does
    /// not exist, so a caller cannot learn which signal ids exist.
    async fn own_signal(
        &self,
        organisation_id: &OrganisationId,
        signal_id: SignalId,
    ) -> Result<crate::store::StoredSignal, RegionError> {
        self.context
            .store
            .signal(signal_id)
            .await?
            .filter(|signal| signal.organisation_id == *organisation_id)
            .ok_or(RegionError::Store(crate::store::StoreError::NotFound))
    }

    async fn register(
        &self,
        request: Request<pb::RegisterSignalRequest>,
    ) -> Result<pb::RegisterSignalResponse, RegionError> {
        let context = &self.context;
        let (organisation_id, organisation_name) = caller(context, &request)?;
        context.ensure_swept().await?;
        let now = context.clock.now();
        let today = crate::domain::clock::local_date(now);
        let input = convert::parse_register(request.get_ref(), today)?;

        let pseudonymiser = &context.pseudonymiser;
        let (pseudonyms, birth_date) = match &input.youth {
            Youth::Bsn(bsn) => {
                let person = context.registry.lookup(bsn)?.ok_or(RegionError::NotFound(
                    "no person with this BSN in the person registry",
                ))?;
                if person.death_date.is_some() {
                    return Err(RegionError::FailedPrecondition(
                        "the person registry records this youth as deceased".into(),
                    ));
                }
                let birth_date = person.birth_date.ok_or_else(|| {
                    RegionError::FailedPrecondition(
                        "the person registry has no birth date for this youth".into(),
                    )
                })?;
                check_youth(birth_date, today)
                    .map_err(|error| RegionError::FailedPrecondition(error.to_string()))?;
                // Whom to inform follows the age, which only the registry knew.
                crate::domain::informing::check(input.informing, birth_date, today, today)
                    .map_err(|error| ValidationErrors::single("informing", error.to_string()))?;
                // The youth and every parent in one round trip to the pseudonym service.
                let pseudonyms = pseudonymiser
                    .pseudonymise(YouthRef::Bsn(bsn), &person.parents)
                    .await?;
                (pseudonyms, birth_date)
            }
            Youth::Alt { id, birth_date } => (
                pseudonymiser.pseudonymise(YouthRef::Alt(id), &[]).await?,
                *birth_date,
            ),
        };
        let subject_key = pseudonyms.subject.current();
        let mut family_keys: Vec<_> = pseudonyms
            .families
            .iter()
            .map(|keys| keys.current())
            .collect();
        family_keys.sort_unstable();
        family_keys.dedup();

        let new = NewSignal {
            signal_id: SignalId::generate(),
            request_fingerprint: request_fingerprint(&input, &subject_key),
            previous_request_fingerprints: pseudonyms.subject.all()[1..]
                .iter()
                .map(|older| request_fingerprint(&input, older))
                .collect(),
            request_key: hex::encode(
                pseudonymiser.request_key(&organisation_id, &input.request_id),
            ),
            organisation_id,
            organisation_name,
            contact: input.contact,
            subject_key,
            family_keys,
            birth_date,
            registered_at: now,
            planned_removal_date: input.planned_removal_date,
            informing: input.informing,
            rekeys: pseudonyms.rekeys(),
        };
        let (signal, replayed, already_registered) = match context.store.register(new).await? {
            Registered::Created { signal, notices } => {
                registered(&context.region_id, "created");
                metrics::counter!(
                    "vix_notices_total",
                    "region" => context.region_id.to_string(),
                    "scope" => "local",
                )
                .increment(notices as u64);
                context.outbox_ready.notify_one();
                if notices > 0 {
                    context.mail_ready.notify_one();
                }
                tracing::info!(signal_id = %signal.signal_id, notices, "signal registered");
                (signal, false, false)
            }
            Registered::Replayed(signal) => {
                registered(&context.region_id, "replayed");
                tracing::info!(signal_id = %signal.signal_id, "registration replayed");
                (signal, true, false)
            }
            Registered::AlreadyActive(signal) => {
                registered(&context.region_id, "already_active");
                tracing::info!(signal_id = %signal.signal_id, "already registered and active");
                (signal, false, true)
            }
        };
        Ok(pb::RegisterSignalResponse {
            signal: Some(convert::signal_to_pb(&signal)),
            replayed,
            already_registered,
        })
    }

    async fn get(
        &self,
        request: Request<pb::GetSignalRequest>,
    ) -> Result<pb::GetSignalResponse, RegionError> {
        let (organisation_id, _) = caller(&self.context, &request)?;
        self.context.ensure_swept().await?;
        let mut errors = ValidationErrors::new();
        let signal_id = errors.check("signal_id", SignalId::parse(&request.get_ref().signal_id));
        let acting = convert::parse_acting(
            &organisation_id,
            &request.get_ref().acting_professional_id,
            &mut errors,
        );
        errors.into_result()?;
        let (Some(signal_id), Some(acting)) = (signal_id, acting) else {
            return Err(ValidationErrors::single("request", "is incomplete").into());
        };
        let signal = self.own_signal(&organisation_id, signal_id).await?;
        // The answer holds contact details: logged before it is given.
        self.context
            .store
            .record_lookup(&acting, vec![signal_id], self.context.clock.now())
            .await?;
        Ok(pb::GetSignalResponse {
            signal: Some(convert::signal_to_pb(&signal)),
        })
    }

    async fn list_matches(
        &self,
        request: Request<pb::ListMatchesRequest>,
    ) -> Result<pb::ListMatchesResponse, RegionError> {
        let (organisation_id, _) = caller(&self.context, &request)?;
        self.context.ensure_swept().await?;
        let mut errors = ValidationErrors::new();
        let signal_id = match request.get_ref().signal_id.as_str() {
            "" => None,
            id => errors.check("signal_id", SignalId::parse(id)),
        };
        let acting = convert::parse_acting(
            &organisation_id,
            &request.get_ref().acting_professional_id,
            &mut errors,
        );
        let page = convert::parse_match_page(
            request.get_ref().page_size,
            &request.get_ref().page_token,
            &mut errors,
        );
        errors.into_result()?;
        let (Some(acting), Some(page)) = (acting, page) else {
            return Err(ValidationErrors::single("request", "is incomplete").into());
        };
        if let Some(signal_id) = signal_id {
            // Another organisation's signal is answered as a missing one, not as an empty list
            // that a missing one would also get: neither tells whether the id exists.
            self.own_signal(&organisation_id, signal_id).await?;
        }
        let limit = page.limit;
        let matches = self
            .context
            .store
            .matches(&organisation_id, signal_id, page)
            .await?;
        let next_page_token = match matches.last() {
            Some(last) if matches.len() >= usize::try_from(limit).unwrap_or(usize::MAX) => {
                convert::match_page_token(&last.position())
            }
            _ => String::new(),
        };
        if !matches.is_empty() {
            // The other parties' contacts are about to be shown: logged before they are.
            let shown = matches.iter().map(|m| m.counterpart.signal_id).collect();
            self.context
                .store
                .record_lookup(&acting, shown, self.context.clock.now())
                .await?;
        }
        tracing::info!(organisation_id = %organisation_id, count = matches.len(), "matches read");
        Ok(pb::ListMatchesResponse {
            matches: matches.iter().map(convert::match_to_pb).collect(),
            next_page_token,
        })
    }

    async fn withdraw(
        &self,
        request: Request<pb::WithdrawSignalRequest>,
    ) -> Result<pb::WithdrawSignalResponse, RegionError> {
        let (organisation_id, _) = caller(&self.context, &request)?;
        self.context.ensure_swept().await?;
        let (acting, signal_id, reason) =
            convert::parse_withdraw(request.get_ref(), &organisation_id)?;
        let now = self.context.clock.now();
        let outcome = self
            .context
            .store
            .withdraw(&acting, signal_id, reason, now)
            .await?;
        self.context.outbox_ready.notify_one();
        tracing::info!(%signal_id, ?reason, "signal withdrawn");
        Ok(match outcome {
            Withdrawn::Deleted => pb::WithdrawSignalResponse {
                signal: None,
                deleted: true,
            },
            Withdrawn::Archived(signal) => pb::WithdrawSignalResponse {
                signal: Some(convert::signal_to_pb(&signal)),
                deleted: false,
            },
        })
    }

    async fn update(
        &self,
        request: Request<pb::UpdateSignalRequest>,
    ) -> Result<pb::UpdateSignalResponse, RegionError> {
        let (organisation_id, _) = caller(&self.context, &request)?;
        self.context.ensure_swept().await?;
        let input = convert::parse_update(request.get_ref(), &organisation_id)?;
        let now = self.context.clock.now();
        let update = SignalUpdate {
            contact: input.contact,
            planned_removal_date: input.planned_removal_date,
            informing: input.informing,
        };
        let signal = self
            .context
            .store
            .update(&input.acting, input.signal_id, update, now)
            .await?;
        self.context.outbox_ready.notify_one();
        tracing::info!(signal_id = %signal.signal_id, revision = signal.revision.get(), "signal updated");
        Ok(pb::UpdateSignalResponse {
            signal: Some(convert::signal_to_pb(&signal)),
        })
    }
}

impl<S: SignalStore> RegionApi<S> {
    async fn coordinate(
        &self,
        request: Request<pb::CoordinateRequest>,
    ) -> Result<pb::CoordinateResponse, RegionError> {
        use crate::domain::coordination::{CoordinationAction, Party};
        let (organisation_id, _) = caller(&self.context, &request)?;
        self.context.ensure_swept().await?;
        let body = request.get_ref();
        let mut errors = ValidationErrors::new();
        if uuid::Uuid::try_parse(&body.notice_id).is_err() {
            errors.add("notice_id", "is not a notice id (a UUID)");
        }
        let acting =
            convert::parse_acting(&organisation_id, &body.acting_professional_id, &mut errors);
        let action = match body.action {
            Some(pb::coordinate_request::Action::NameRegievoerder(party)) => {
                match pb::Party::try_from(party) {
                    Ok(pb::Party::Own) => Some(CoordinationAction::NameRegievoerder(Party::Own)),
                    Ok(pb::Party::Counterpart) => {
                        Some(CoordinationAction::NameRegievoerder(Party::Counterpart))
                    }
                    _ => {
                        errors.add("name_regievoerder", "must be OWN or COUNTERPART");
                        None
                    }
                }
            }
            Some(pb::coordinate_request::Action::MarkAfgestemd(true)) => {
                Some(CoordinationAction::MarkAfgestemd)
            }
            _ => {
                errors.add(
                    "action",
                    "name_regievoerder or mark_afgestemd = true is required",
                );
                None
            }
        };
        errors.into_result()?;
        let (Some(acting), Some(action)) = (acting, action) else {
            return Err(ValidationErrors::single("request", "is incomplete").into());
        };
        let view = self
            .context
            .store
            .coordinate(&acting, &body.notice_id, action, self.context.clock.now())
            .await?;
        self.context.outbox_ready.notify_one();
        Ok(pb::CoordinateResponse {
            r#match: Some(convert::match_to_pb(&view)),
        })
    }
}

#[tonic::async_trait]
impl<S: SignalStore> RegionService for RegionApi<S> {
    async fn register_signal(
        &self,
        request: Request<pb::RegisterSignalRequest>,
    ) -> Result<Response<pb::RegisterSignalResponse>, Status> {
        Ok(Response::new(self.register(request).await?))
    }

    async fn get_signal(
        &self,
        request: Request<pb::GetSignalRequest>,
    ) -> Result<Response<pb::GetSignalResponse>, Status> {
        Ok(Response::new(self.get(request).await?))
    }

    async fn list_matches(
        &self,
        request: Request<pb::ListMatchesRequest>,
    ) -> Result<Response<pb::ListMatchesResponse>, Status> {
        Ok(Response::new(RegionApi::list_matches(self, request).await?))
    }

    async fn withdraw_signal(
        &self,
        request: Request<pb::WithdrawSignalRequest>,
    ) -> Result<Response<pb::WithdrawSignalResponse>, Status> {
        Ok(Response::new(self.withdraw(request).await?))
    }

    async fn update_signal(
        &self,
        request: Request<pb::UpdateSignalRequest>,
    ) -> Result<Response<pb::UpdateSignalResponse>, Status> {
        Ok(Response::new(self.update(request).await?))
    }

    async fn coordinate(
        &self,
        request: Request<pb::CoordinateRequest>,
    ) -> Result<Response<pb::CoordinateResponse>, Status> {
        Ok(Response::new(RegionApi::coordinate(self, request).await?))
    }
}
