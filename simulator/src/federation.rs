//! A federation of real vix nodes in this process: a development PKI for the simulated regions
//! and organisations, the hub and every region node built through the same start-up API as
//! `vix-node`, on port 0 over mutual TLS on loopback, real SQLite files, one injected clock.
//! Settings come from the test harness (`vix-tests`), so the simulator and the tests start
//! nodes one way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use vix_certs_dev::{DevMunicipality, DevOrganisation, DevPkiSpec};
use vix_node::domain::ManualClock;
use vix_node::domain::registry::PersonRegistry;
use vix_node::hub::HubContext;
use vix_node::region::RegionContext;
use vix_node::startup::{HubNode, RegionNode};
use vix_node::store::database_location::DatabaseLocation;
use vix_node::store::hub_database::HubDatabase;
use vix_node::store::region_database::RegionDatabase;
use vix_protocol::region::v1::region_service_client::RegionServiceClient;
use vix_protocol::region::v1::rights_service_client::RightsServiceClient;

use crate::faults::FaultKind;
use crate::population::{SimRegistry, municipality};
use crate::proxy::{FaultProxy, LinkMode};
use crate::workload::{KINDS, organisation_region};

/// How late every byte is on a delayed link.
pub const LINK_DELAY: std::time::Duration = std::time::Duration::from_millis(40);

pub fn region_id(index: usize) -> String {
    format!("r{index:02}")
}

/// The id of organisation `index` (`region * KINDS + kind`).
pub fn organisation_id(index: u32) -> String {
    let kind = KINDS[index as usize % KINDS.len()];
    format!("{kind}-{}", region_id(organisation_region(index)))
}

/// The PKI's contents for `regions` regions.
pub fn spec(regions: usize) -> DevPkiSpec {
    DevPkiSpec {
        regions: (0..regions).map(region_id).collect(),
        organisations: (0..regions)
            .flat_map(|region| {
                KINDS
                    .iter()
                    .enumerate()
                    .map(move |(kind, name)| DevOrganisation {
                        id: organisation_id(
                            u32::try_from(region * KINDS.len() + kind).unwrap_or(0),
                        ),
                        name: format!("{} {}", name.to_uppercase(), region_id(region)),
                        region: region_id(region),
                    })
            })
            .collect(),
        municipalities: (0..regions)
            .map(|region| DevMunicipality {
                code: municipality(region),
                name: format!("Gemeente {}", region_id(region)),
                region: region_id(region),
            })
            .collect(),
        validity_days: 30,
    }
}

struct Running {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

pub struct Region {
    pub id: String,
    pub addr: SocketAddr,
    pub context: Arc<RegionContext<RegionDatabase>>,
    settings: vix_node::config::RegionSettings,
    /// The fault proxy on the region's way to the hub.
    link: FaultProxy,
    /// `None` while the region is down.
    running: Option<Running>,
}

pub struct Federation {
    pub dir: PathBuf,
    pki: PathBuf,
    pub clock: Arc<ManualClock>,
    pub hub: Arc<HubContext<HubDatabase>>,
    hub_addr: SocketAddr,
    /// `None` while the hub is down.
    hub_running: Option<Running>,
    pub regions: Vec<Region>,
    clients: HashMap<String, RegionServiceClient<Channel>>,
    officers: HashMap<usize, RightsServiceClient<Channel>>,
    registry: Arc<SimRegistry>,
    /// The nodes' maximum connection age, when not their default.
    connection_age_secs: Option<u64>,
    /// The hub's database when not a SQLite file in the run's folder (a PostgreSQL URL).
    hub_database: Option<DatabaseLocation>,
}

impl Federation {
    /// Writes the PKI and starts the hub and `regions` region nodes under `dir`, which holds the
    /// person registry file `persons`.
    pub async fn start(
        dir: &Path,
        regions: usize,
        persons: &Path,
        registry: Arc<SimRegistry>,
        clock: Arc<ManualClock>,
        connection_age_secs: Option<u64>,
        hub_database: Option<DatabaseLocation>,
    ) -> anyhow::Result<Self> {
        let pki = dir.join("pki");
        let spec = spec(regions);
        vix_certs_dev::generate(&pki, &spec).context("the simulation's PKI")?;

        let (hub, hub_addr, hub_running) = start_hub(
            &pki,
            dir,
            &clock,
            "127.0.0.1:0".parse()?,
            connection_age_secs,
            hub_database.as_ref(),
        )
        .await?;

        let mut nodes = Vec::new();
        for index in 0..regions {
            let id = region_id(index);
            let link = FaultProxy::start(hub_addr)
                .await
                .context("a fault proxy before the hub")?;
            let mut settings =
                vix_tests::region_settings_in(&pki, &spec, persons, &id, dir, Some(link.addr()));
            if let Some(age) = connection_age_secs {
                settings.tls.max_connection_age_secs = age;
                settings.tls.max_connection_age_grace_secs = age;
            }
            let (context, addr, running) =
                start_region(&settings, &clock, &registry, "127.0.0.1:0".parse()?).await?;
            nodes.push(Region {
                id,
                addr,
                context,
                settings,
                link,
                running: Some(running),
            });
        }
        Ok(Self {
            dir: dir.to_owned(),
            pki,
            clock,
            hub,
            hub_addr,
            hub_running: Some(hub_running),
            regions: nodes,
            clients: HashMap::new(),
            officers: HashMap::new(),
            registry,
            connection_age_secs,
            hub_database,
        })
    }

    /// A region API client for organisation `organisation` of region `region`.
    pub fn client(
        &mut self,
        region: usize,
        organisation: &str,
    ) -> anyhow::Result<RegionServiceClient<Channel>> {
        if let Some(client) = self.clients.get(organisation) {
            return Ok(client.clone());
        }
        let addr = self.regions.get(region).context("no such region")?.addr;
        let (cert, key) = vix_certs_dev::files::organisation(organisation);
        let client = RegionServiceClient::new(vix_tests::channel_in(&self.pki, addr, &cert, &key));
        self.clients.insert(organisation.to_owned(), client.clone());
        Ok(client)
    }

    /// A rights client for the officer of the municipality of region `region`, at that region.
    pub fn officer(&mut self, region: usize) -> anyhow::Result<RightsServiceClient<Channel>> {
        if let Some(client) = self.officers.get(&region) {
            return Ok(client.clone());
        }
        let addr = self.regions.get(region).context("no such region")?.addr;
        let (cert, key) = vix_certs_dev::files::municipality(&municipality(region));
        let client = RightsServiceClient::new(vix_tests::channel_in(&self.pki, addr, &cert, &key));
        self.officers.insert(region, client.clone());
        Ok(client)
    }

    /// The BRP reports a death to every region node (as `vix-node import-mutations` does).
    pub async fn record_death(&self, bsn: &str) -> anyhow::Result<u32> {
        let on = self.clock_today();
        self.registry.record_death(bsn, on)?;
        let mutation = vix_node::mutations::Mutation::Death {
            bsn: vix_node::domain::Bsn::parse(bsn)?,
            on,
        };
        let mut deleted = 0;
        for region in &self.regions {
            let context = &region.context;
            let report = vix_node::mutations::apply(
                &context.store,
                context.pseudonymiser.as_ref(),
                std::slice::from_ref(&mutation),
                vix_node::domain::Clock::now(context.clock.as_ref()),
            )
            .await?;
            if report.signals_deleted > 0 {
                context.outbox_ready.notify_one();
            }
            deleted += report.signals_deleted;
        }
        Ok(deleted)
    }

    /// The BRP reports a move: the person's municipality changes.
    pub fn record_move(&self, bsn: &str, to: usize) -> anyhow::Result<()> {
        self.registry.record_move(bsn, &municipality(to))
    }

    pub fn clock_today(&self) -> jiff::civil::Date {
        vix_node::domain::Clock::today(self.clock.as_ref())
    }

    /// Puts region `region`'s link to the hub into the fault `kind`.
    pub fn link_fault(&self, region: usize, kind: FaultKind) -> anyhow::Result<()> {
        let mode = match kind {
            FaultKind::LinkCut => LinkMode::Cut,
            FaultKind::LinkStall => LinkMode::Stall,
            FaultKind::LinkDelay => LinkMode::Delay(LINK_DELAY),
            FaultKind::Replay => LinkMode::DropReplies,
            other => anyhow::bail!("{other} is not a link fault"),
        };
        self.proxy(region)?.set(mode);
        Ok(())
    }

    /// Region `region`'s link to the hub carries everything again.
    pub fn heal_link(&self, region: usize) -> anyhow::Result<()> {
        self.proxy(region)?.set(LinkMode::Pass);
        Ok(())
    }

    /// What region `region`'s link carried and lost so far.
    pub fn link_stats(&self, region: usize) -> Option<crate::proxy::ProxyStats> {
        self.proxy(region).ok().map(FaultProxy::stats)
    }

    fn proxy(&self, region: usize) -> anyhow::Result<&FaultProxy> {
        self.regions
            .get(region)
            .map(|region| &region.link)
            .context("no such region")
    }

    /// Runs today's lifecycle on every node now, as the first request of the day would.
    pub async fn sweep(&self) -> anyhow::Result<()> {
        for region in &self.regions {
            if region.running.is_some() {
                region.context.ensure_swept().await?;
            }
        }
        if self.hub_running.is_some() {
            self.hub.ensure_swept().await?;
        }
        Ok(())
    }

    /// What waits: events in the regions' outboxes and notices the regions have not taken yet.
    pub async fn backlog(&self) -> (u64, u64) {
        use vix_node::store::SignalStore;
        use vix_node::store::hub::HubStore;
        let (mut outbox, mut unacked) = (0, 0);
        for region in &self.regions {
            outbox += region.context.store.outbox_len().await.unwrap_or(0);
            unacked += self
                .hub
                .store
                .unacked(&region.context.region_id)
                .await
                .unwrap_or(0);
        }
        (outbox, unacked)
    }

    /// Whether everything acknowledged has gone as far as it goes (the tests' watermark).
    pub async fn is_quiet(&self) -> bool {
        let regions: Vec<_> = self
            .regions
            .iter()
            .map(|region| Arc::clone(&region.context))
            .collect();
        vix_tests::is_quiet(&self.hub, &regions).await
    }

    /// Takes the hub down (a clean stop: its database stays as it was).
    pub async fn stop_hub(&mut self) -> anyhow::Result<()> {
        if let Some(running) = self.hub_running.take() {
            let _ = running.shutdown.send(());
            running.task.await??;
        }
        Ok(())
    }

    /// Brings the hub back on its database and its old address, the one the regions know.
    pub async fn start_hub(&mut self) -> anyhow::Result<()> {
        if self.hub_running.is_none() {
            let (hub, _, running) = start_hub(
                &self.pki,
                &self.dir,
                &self.clock,
                self.hub_addr,
                self.connection_age_secs,
                self.hub_database.as_ref(),
            )
            .await?;
            self.hub = hub;
            self.hub_running = Some(running);
        }
        Ok(())
    }

    /// Takes region `index` down (a clean stop).
    pub async fn stop_region(&mut self, index: usize) -> anyhow::Result<()> {
        let region = self.regions.get_mut(index).context("no such region")?;
        if let Some(running) = region.running.take() {
            let _ = running.shutdown.send(());
            running.task.await??;
        }
        Ok(())
    }

    /// Brings region `index` back on its database and its old address.
    pub async fn start_region(&mut self, index: usize) -> anyhow::Result<()> {
        let region = self.regions.get_mut(index).context("no such region")?;
        if region.running.is_none() {
            let (context, _, running) =
                start_region(&region.settings, &self.clock, &self.registry, region.addr).await?;
            region.context = context;
            region.running = Some(running);
        }
        Ok(())
    }

    /// Stops every node and waits until each closed its store.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for region in &mut self.regions {
            if let Some(running) = region.running.take() {
                let _ = running.shutdown.send(());
                running.task.await??;
            }
        }
        if let Some(running) = self.hub_running.take() {
            let _ = running.shutdown.send(());
            running.task.await??;
        }
        Ok(())
    }
}

/// Starts a region node with `settings`, listening on `listen`.
async fn start_region(
    settings: &vix_node::config::RegionSettings,
    clock: &Arc<ManualClock>,
    registry: &Arc<SimRegistry>,
    listen: SocketAddr,
) -> anyhow::Result<(Arc<RegionContext<RegionDatabase>>, SocketAddr, Running)> {
    let persons: Arc<dyn PersonRegistry> = registry.clone();
    let node = RegionNode::build_with_registry(settings, clock.clone(), Some(persons))
        .await
        .with_context(|| format!("region {}", settings.region_id))?;
    let context = Arc::clone(node.context());
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (shutdown, stopped) = oneshot::channel::<()>();
    let running = Running {
        shutdown,
        task: tokio::spawn(node.run(listener, async {
            let _ = stopped.await;
        })),
    };
    Ok((context, addr, running))
}

/// Starts the hub on `database`, or on a SQLite file in `dir`, listening on `listen`.
async fn start_hub(
    pki: &Path,
    dir: &Path,
    clock: &Arc<ManualClock>,
    listen: SocketAddr,
    connection_age_secs: Option<u64>,
    database: Option<&DatabaseLocation>,
) -> anyhow::Result<(Arc<HubContext<HubDatabase>>, SocketAddr, Running)> {
    let mut settings = vix_tests::hub_settings_in(pki, dir);
    if let Some(database) = database {
        settings.database = database.clone();
    }
    if let Some(age) = connection_age_secs {
        settings.tls.max_connection_age_secs = age;
        settings.tls.max_connection_age_grace_secs = age;
    }
    let node = HubNode::build(&settings, clock.clone()).await?;
    let hub = Arc::clone(node.context());
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (shutdown, stopped) = oneshot::channel::<()>();
    let running = Running {
        shutdown,
        task: tokio::spawn(node.run(listener, async {
            let _ = stopped.await;
        })),
    };
    Ok((hub, addr, running))
}
