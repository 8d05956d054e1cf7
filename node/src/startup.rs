//! Builds runnable nodes from their settings: every file is read and checked here, so a bad
//! configuration stops the process at start-up with a clear error, before it listens.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Channel;
use vix_protocol::federation::v1::federation_service_server::FederationService;

use crate::config::{HubSettings, RegionSettings};
use crate::domain::Pseudonymiser;
use crate::domain::clock::Clock;
use crate::domain::registry::PersonRegistry;
use crate::domain::{KeyVersion, OrganisationRegistry, RegionId};
use crate::hub::{self, HubApi, HubContext};
use crate::person_registry::JsonPersonRegistry;
use crate::pseudonym::HmacPseudonymiser;
use crate::pseudonym::remote::RemotePseudonymiser;
use crate::region::forwarder::Forwarder;
use crate::region::mailer::Mailer;
use crate::region::notice_consumer::NoticeConsumer;
use crate::region::{self, RegionContext};
use crate::store::SignalStore;
use crate::store::database_location::DatabaseLocation;
use crate::store::hub_database::HubDatabase;
use crate::store::region_database::RegionDatabase;
use crate::tls;

/// Reads and checks the organisation registry at `path`; `key` is the setting that named it.
pub fn load_organisation_registry(
    path: &std::path::Path,
    key: &str,
) -> anyhow::Result<OrganisationRegistry> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{key}: reading {}", path.display()))?;
    OrganisationRegistry::parse_toml(&text).with_context(|| format!("{key}: {}", path.display()))
}

fn create_parent(path: &std::path::Path) -> anyhow::Result<()> {
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating {}", folder.display()))?;
    }
    Ok(())
}

/// The region's pseudonymiser as its settings choose: the pseudonym service, or federation keys
/// on the node. Exactly one must be configured.
pub fn pseudonymiser(settings: &RegionSettings) -> anyhow::Result<Arc<dyn Pseudonymiser>> {
    match (&settings.pseudonym_service, &settings.federation_key_file) {
        (Some(_), Some(_)) => anyhow::bail!(
            "give either region.federation_key_file or [region.pseudonym_service], not both: \
             a region's pseudonyms must all come from one place"
        ),
        (None, None) => anyhow::bail!(
            "no pseudonyms: give [region.pseudonym_service] (production) or \
             region.federation_key_file with region.federation_key_version (one machine)"
        ),
        (Some(link), None) => {
            if settings.federation_key_version.is_some()
                || !settings.previous_federation_keys.is_empty()
            {
                anyhow::bail!(
                    "region.federation_key_version and region.previous_federation_keys belong to \
                     region.federation_key_file; with [region.pseudonym_service] the service holds \
                     the key versions"
                );
            }
            let client = tls::pseudonymizer_client_config(&link.tls)
                .context("region.pseudonym_service.tls")?;
            let channel =
                tls::channel(tls::Addresses::one(link.address), &link.server_name, client)
                    .context("region.pseudonym_service.server_name")?;
            let request_key = crate::secret_file::read_key32(&link.request_key_file)
                .context("region.pseudonym_service.request_key_file")?;
            Ok(Arc::new(RemotePseudonymiser::new(
                channel,
                &request_key,
                std::time::Duration::from_millis(link.timeout_ms),
            )))
        }
        (None, Some(file)) => {
            let version = settings.federation_key_version.context(
                "region.federation_key_version is required with region.federation_key_file",
            )?;
            let version = KeyVersion::new(version).context("region.federation_key_version")?;
            let mut keys = HmacPseudonymiser::from_file(file, version)
                .context("region.federation_key_file")?;
            for previous in &settings.previous_federation_keys {
                let version =
                    KeyVersion::new(previous.version).context("region.previous_federation_keys")?;
                keys = keys
                    .with_previous_file(&previous.file, version)
                    .context("region.previous_federation_keys")?;
            }
            Ok(Arc::new(keys))
        }
    }
}

/// A region node that has opened its store and loaded its keys, ready to serve.
pub struct RegionNode {
    context: Arc<RegionContext<RegionDatabase>>,
    tls: tls::ServerTls,
    limits: crate::limits::ServerLimits,
    /// The hub connection (connects lazily); `None` for a region running alone.
    hub: Option<Channel>,
    /// The notice e-mails' sender; `None` without `[region.smtp]` (the e-mails wait).
    mailer: Option<Mailer<RegionDatabase>>,
    /// Where `GET /metrics` is served, if anywhere.
    metrics: Option<TcpListener>,
}

impl RegionNode {
    pub async fn build(settings: &RegionSettings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        Self::build_with_registry(settings, clock, None).await
    }

    /// Like [`RegionNode::build`], asking `persons` instead of the file that
    /// `person_registry_file` names when it is given: the simulator serves one population in
    /// memory to all its regions.
    pub async fn build_with_registry(
        settings: &RegionSettings,
        clock: Arc<dyn Clock>,
        persons: Option<Arc<dyn PersonRegistry>>,
    ) -> anyhow::Result<Self> {
        // Figures are recorded from the first request on, whether or not they are served.
        crate::metrics::handle();
        let region_id = RegionId::parse(&settings.region_id)
            .with_context(|| format!("region.region_id {:?}", settings.region_id))?;
        let registry = load_organisation_registry(
            &settings.organisation_registry_file,
            "region.organisation_registry_file",
        )?;
        if !registry.regions().contains(&region_id) {
            anyhow::bail!(
                "region.region_id {:?} is not a region of the organisation registry {}",
                settings.region_id,
                settings.organisation_registry_file.display()
            );
        }
        // This region serves exactly the organisations the registry gives it, by their names.
        let organisations: HashMap<_, _> = registry
            .of_region(&region_id)
            .map(|organisation| (organisation.id.clone(), organisation.name.clone()))
            .collect();
        let languages: HashMap<_, _> = registry
            .of_region(&region_id)
            .map(|organisation| (organisation.id.clone(), organisation.language))
            .collect();
        if organisations.is_empty() {
            anyhow::bail!(
                "the organisation registry {} gives region {:?} no organisation: the node would serve nobody",
                settings.organisation_registry_file.display(),
                settings.region_id
            );
        }
        let municipalities = settings
            .municipalities
            .iter()
            .map(|code| {
                crate::domain::MunicipalityCode::parse(code)
                    .with_context(|| format!("region.municipalities: {code:?}"))
            })
            .collect::<anyhow::Result<HashSet<_>>>()?;
        let pseudonymiser = pseudonymiser(settings)?;
        let registry: Arc<dyn PersonRegistry> = match persons {
            Some(persons) => persons,
            None => Arc::new(JsonPersonRegistry::from_file(
                &settings.person_registry_file,
            )?),
        };
        let tls = tls::server_config(&settings.tls).context("region.tls")?;
        let hub = match &settings.hub {
            None => None,
            Some(link) => {
                let client = tls::hub_client_config(&link.tls).context("region.hub.tls")?;
                Some(
                    tls::channel(link.addresses(), &link.server_name, client)
                        .context("region.hub.server_name")?,
                )
            }
        };
        if let DatabaseLocation::Sqlite(path) = &settings.database {
            create_parent(path)?;
        }
        let store = RegionDatabase::open(
            &settings.database,
            region_id.clone(),
            settings.group_commit,
            settings.postgres,
        )
        .await
        .with_context(|| format!("opening {}", settings.database))?;
        tracing::info!(
            %region_id,
            organisations = organisations.len(),
            hub = hub.is_some(),
            "region node ready"
        );
        let context = Arc::new(RegionContext {
            region_id,
            store,
            registry,
            pseudonymiser,
            clock,
            organisations,
            municipalities,
            outbox_ready: Arc::default(),
            mail_ready: Arc::default(),
            notices_stored: watch::Sender::new(0),
            hub_log_halted: watch::Sender::new(None),
            failpoint: settings.failpoint.clone(),
            hub_retry_delay_max: std::time::Duration::from_millis(
                settings
                    .hub
                    .as_ref()
                    .map_or(0, |link| link.retry_delay_max_ms),
            ),
            daily_sweep: Default::default(),
            outages: Default::default(),
            unhealthy_after: std::time::Duration::from_millis(settings.unhealthy_after_ms),
            adopter: settings
                .adoption
                .as_ref()
                .map(region::adoption::Adopter::load)
                .transpose()?,
        });
        let mailer = match &settings.smtp {
            None => {
                tracing::warn!("no [region.smtp]: notice e-mails wait in the e-mail outbox");
                None
            }
            Some(smtp) => Some(Mailer::new(Arc::clone(&context), smtp, languages)?),
        };
        Ok(Self {
            context,
            tls,
            limits: settings.limits,
            hub,
            mailer,
            metrics: None,
        })
    }

    pub fn context(&self) -> &Arc<RegionContext<RegionDatabase>> {
        &self.context
    }

    /// The channel to the hub, when one is configured.
    pub fn hub(&self) -> Option<&Channel> {
        self.hub.as_ref()
    }

    /// Serves Prometheus's `GET /metrics` on `listener` too while the node runs.
    pub fn with_metrics(mut self, listener: TcpListener) -> Self {
        self.metrics = Some(listener);
        self
    }

    /// Serves on `listener`, and runs the forwarder and the notice consumer when a hub is
    /// configured, until `shutdown`; then stops the workers and closes the store.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr()?;
        let (stop, stopping) = watch::channel(false);
        let mut workers = vec![tokio::spawn(
            Arc::clone(&self.context).run_sweeper(stopping.clone()),
        )];
        {
            let context = Arc::clone(&self.context);
            let stopping = stopping.clone();
            workers.push(tokio::spawn(async move {
                context.store.maintain(stopping).await;
            }));
        }
        if let Some(mailer) = self.mailer {
            workers.push(tokio::spawn(mailer.run(stopping.clone())));
        }
        if let Some(listener) = self.metrics {
            let collect = region_gauges(Arc::clone(&self.context));
            let mut stopping = stopping.clone();
            workers.push(tokio::spawn(crate::metrics::serve(
                listener,
                collect,
                async move {
                    let _ = stopping.wait_for(|stop| *stop).await;
                },
            )));
        }
        if let Some(hub) = &self.hub {
            let forwarder = Forwarder::new(Arc::clone(&self.context), hub.clone());
            workers.push(tokio::spawn(forwarder.run(stopping.clone())));
            let consumer = NoticeConsumer::new(Arc::clone(&self.context), hub.clone());
            workers.push(tokio::spawn(consumer.run(stopping.clone())));
        }
        self.context.report_dead_letters().await;
        tracing::info!(%addr, region_id = %self.context.region_id, "region node listening");
        let served = region::run(
            listener,
            self.tls,
            self.limits,
            Arc::clone(&self.context),
            shutdown,
        )
        .await;
        let _ = stop.send(true);
        for worker in workers {
            let _ = worker.await;
        }
        self.context.store.close().await;
        served?;
        tracing::info!("region node stopped");
        Ok(())
    }
}

/// The region's gauges, read from its database when Prometheus scrapes.
fn region_gauges(context: Arc<RegionContext<RegionDatabase>>) -> crate::metrics::Collect {
    Arc::new(move || {
        let context = Arc::clone(&context);
        Box::pin(async move {
            let gauges = match context.store.gauges().await {
                Ok(gauges) => gauges,
                Err(error) => {
                    tracing::warn!(error = %crate::telemetry::error_chain(&error), "metrics: the database could not be read");
                    return;
                }
            };
            let region = context.region_id.to_string();
            let set = |name: &'static str, value: u64| {
                metrics::gauge!(name, "region" => region.clone()).set(value as f64);
            };
            set("vix_outbox_events", gauges.outbox_events);
            set("vix_dead_letters", gauges.dead_letters);
            set("vix_email_queue", gauges.emails_pending);
            for (state, count) in [
                ("active", gauges.active_signals),
                ("inactive", gauges.inactive_signals),
            ] {
                metrics::gauge!("vix_signals", "region" => region.clone(), "state" => state)
                    .set(count as f64);
            }
            let lag = gauges
                .oldest_outbox_event
                .map(|oldest| (context.clock.now() - oldest).as_secs().max(0))
                .unwrap_or(0);
            metrics::gauge!("vix_forwarder_lag_seconds", "region" => region).set(lag as f64);
        })
    })
}

/// The hub, with its store open, ready to serve.
pub struct HubNode {
    context: Arc<HubContext<HubDatabase>>,
    tls: tls::ServerTls,
    limits: crate::limits::ServerLimits,
    stop: watch::Sender<bool>,
    /// Where `GET /metrics` is served, if anywhere.
    metrics: Option<TcpListener>,
}

impl HubNode {
    pub async fn build(settings: &HubSettings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        crate::metrics::handle();
        let organisations = load_organisation_registry(
            &settings.organisation_registry_file,
            "hub.organisation_registry_file",
        )?;
        // The registry is never empty of regions (checked when it is read).
        let regions: HashSet<RegionId> = organisations.regions().iter().cloned().collect();
        let tls = tls::server_config(&settings.tls).context("hub.tls")?;
        if let DatabaseLocation::Sqlite(path) = &settings.database {
            create_parent(path)?;
        }
        let store = HubDatabase::open(&settings.database, settings.group_commit, settings.postgres)
            .await
            .with_context(|| format!("opening {}", settings.database))?;
        let (stop, stopping) = watch::channel(false);
        tracing::info!(regions = regions.len(), "hub ready");
        Ok(Self {
            context: Arc::new(HubContext {
                store,
                clock,
                regions,
                organisations: Arc::new(organisations),
                notices_logged: watch::Sender::new(0),
                stopping,
                daily_sweep: Default::default(),
                #[cfg(feature = "sim-faults")]
                faults: Default::default(),
                log_retention: jiff::SignedDuration::from_hours(
                    24 * i64::from(settings.log_retention_days),
                ),
            }),
            tls,
            limits: settings.limits,
            stop,
            metrics: None,
        })
    }

    pub fn context(&self) -> &Arc<HubContext<HubDatabase>> {
        &self.context
    }

    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        self.run_with(listener, |api| api, shutdown).await
    }

    /// Serves Prometheus's `GET /metrics` on `listener` too while the hub runs.
    pub fn with_metrics(mut self, listener: TcpListener) -> Self {
        self.metrics = Some(listener);
        self
    }

    /// Like [`Self::run`], with the API wrapped by `wrap` (tests record what the hub receives).
    pub async fn run_with<T: FederationService>(
        self,
        listener: TcpListener,
        wrap: impl FnOnce(HubApi<HubDatabase>) -> T,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "hub listening");
        let stop = self.stop;
        // Open notice streams never end by themselves: end them first, then stop serving.
        let shutdown = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        let api = wrap(HubApi::new(Arc::clone(&self.context)));
        let metrics = self.metrics.map(|listener| {
            let mut stopping = self.context.stopping.clone();
            tokio::spawn(crate::metrics::serve(
                listener,
                // The hub's figures are counters and histograms, recorded as they happen.
                Arc::new(|| Box::pin(async {})),
                async move {
                    let _ = stopping.wait_for(|stop| *stop).await;
                },
            ))
        });
        let sweeper = tokio::spawn(Arc::clone(&self.context).run_sweeper());
        // Other hub instances on the same database append to the logs too.
        let context = Arc::clone(&self.context);
        let watcher = tokio::spawn(async move {
            tokio::join!(
                context
                    .store
                    .watch_log(context.notices_logged.clone(), context.stopping.clone()),
                context.store.maintain(context.stopping.clone()),
            );
        });
        let served = hub::run(listener, self.tls, self.limits, api, shutdown).await;
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        let _ = sweeper.await;
        let _ = watcher.await;
        self.context.store.close().await;
        served?;
        tracing::info!("hub stopped");
        Ok(())
    }
}

/// The pseudonym service, with its keys read and its audit file open, ready to serve.
pub struct PseudonymizerNode {
    context: Arc<crate::pseudonymizer::PseudonymizerContext>,
    tls: tls::ServerTls,
    limits: crate::limits::ServerLimits,
    metrics: Option<TcpListener>,
}

impl PseudonymizerNode {
    pub fn build(
        settings: &crate::config::PseudonymizerSettings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        use crate::pseudonymizer::{PseudonymizerContext, audit::AuditLog, keys::KeyRing, rate};
        crate::metrics::handle();
        let organisations = load_organisation_registry(
            &settings.organisation_registry_file,
            "pseudonymizer.organisation_registry_file",
        )?;
        let regions: HashSet<RegionId> = organisations.regions().iter().cloned().collect();
        let keys = KeyRing::load(&settings.keys, settings.current_key_version)?;
        let buckets =
            rate::Buckets::new(settings.rate_limit).context("pseudonymizer.rate_limit")?;
        create_parent(&settings.audit_file)?;
        let audit = AuditLog::open(&settings.audit_file).context("pseudonymizer.audit_file")?;
        let tls = tls::server_config(&settings.tls).context("pseudonymizer.tls")?;
        tracing::info!(
            regions = regions.len(),
            key_versions = ?keys.versions().collect::<Vec<_>>(),
            "pseudonym service ready"
        );
        Ok(Self {
            context: Arc::new(PseudonymizerContext::new(
                keys, regions, clock, buckets, audit,
            )),
            tls,
            limits: settings.limits,
            metrics: None,
        })
    }

    /// Serves Prometheus's `GET /metrics` on `listener` too while the service runs.
    pub fn with_metrics(mut self, listener: TcpListener) -> Self {
        self.metrics = Some(listener);
        self
    }

    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        self.run_with(listener, |api| api, shutdown).await
    }

    /// Like [`Self::run`], with the API wrapped by `wrap` (tests record what it receives).
    pub async fn run_with<
        T: vix_protocol::pseudonym::v1::pseudonym_service_server::PseudonymService,
    >(
        self,
        listener: TcpListener,
        wrap: impl FnOnce(crate::pseudonymizer::PseudonymizerApi) -> T,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "pseudonym service listening");
        let (stop, stopping) = watch::channel(false);
        let metrics = self.metrics.map(|listener| {
            let mut stopping = stopping.clone();
            tokio::spawn(crate::metrics::serve(
                listener,
                // Counters and histograms, recorded as calls happen.
                Arc::new(|| Box::pin(async {})),
                async move {
                    let _ = stopping.wait_for(|stop| *stop).await;
                },
            ))
        });
        let api = wrap(crate::pseudonymizer::PseudonymizerApi::new(self.context));
        let served =
            crate::pseudonymizer::run(listener, self.tls, self.limits, api, shutdown).await;
        let _ = stop.send(true);
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        served?;
        tracing::info!("pseudonym service stopped");
        Ok(())
    }
}
