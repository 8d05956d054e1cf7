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
use vix_node::hub::HubContext;
use vix_node::region::RegionContext;
use vix_node::startup::{HubNode, RegionNode};
use vix_node::store::hub_sqlite::HubSqliteStore;
use vix_node::store::sqlite::SqliteStore;
use vix_protocol::region::v1::region_service_client::RegionServiceClient;

use crate::population::municipality;

/// The kinds of organisation each simulated region has.
pub const ORGANISATION_KINDS: [&str; 3] = ["jgz", "school", "vt"];

pub fn region_id(index: usize) -> String {
    format!("r{index:02}")
}

pub fn organisation_id(kind: &str, region: usize) -> String {
    format!("{kind}-{}", region_id(region))
}

/// The PKI's contents for `regions` regions.
pub fn spec(regions: usize) -> DevPkiSpec {
    DevPkiSpec {
        regions: (0..regions).map(region_id).collect(),
        organisations: (0..regions)
            .flat_map(|region| {
                ORGANISATION_KINDS.iter().map(move |kind| DevOrganisation {
                    id: organisation_id(kind, region),
                    name: format!("{} {}", kind.to_uppercase(), region_id(region)),
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
    pub context: Arc<RegionContext<SqliteStore>>,
    settings: vix_node::config::RegionSettings,
    /// `None` while the region is down.
    running: Option<Running>,
}

pub struct Federation {
    pub dir: PathBuf,
    pki: PathBuf,
    pub clock: Arc<ManualClock>,
    pub hub: Arc<HubContext<HubSqliteStore>>,
    hub_addr: SocketAddr,
    /// `None` while the hub is down.
    hub_running: Option<Running>,
    pub regions: Vec<Region>,
    clients: HashMap<String, RegionServiceClient<Channel>>,
}

impl Federation {
    /// Writes the PKI and starts the hub and `regions` region nodes under `dir`, which holds the
    /// person registry file `persons`.
    pub async fn start(
        dir: &Path,
        regions: usize,
        persons: &Path,
        clock: Arc<ManualClock>,
    ) -> anyhow::Result<Self> {
        let pki = dir.join("pki");
        let spec = spec(regions);
        vix_certs_dev::generate(&pki, &spec).context("the simulation's PKI")?;

        let (hub, hub_addr, hub_running) =
            start_hub(&pki, dir, &clock, "127.0.0.1:0".parse()?).await?;

        let mut nodes = Vec::new();
        for index in 0..regions {
            let id = region_id(index);
            let settings =
                vix_tests::region_settings_in(&pki, &spec, persons, &id, dir, Some(hub_addr));
            let (context, addr, running) =
                start_region(&settings, &clock, "127.0.0.1:0".parse()?).await?;
            nodes.push(Region {
                id,
                addr,
                context,
                settings,
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
            let (hub, _, running) =
                start_hub(&self.pki, &self.dir, &self.clock, self.hub_addr).await?;
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
                start_region(&region.settings, &self.clock, region.addr).await?;
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
    listen: SocketAddr,
) -> anyhow::Result<(Arc<RegionContext<SqliteStore>>, SocketAddr, Running)> {
    let node = RegionNode::build(settings, clock.clone())
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

/// Starts the hub on the database in `dir`, listening on `listen`.
async fn start_hub(
    pki: &Path,
    dir: &Path,
    clock: &Arc<ManualClock>,
    listen: SocketAddr,
) -> anyhow::Result<(Arc<HubContext<HubSqliteStore>>, SocketAddr, Running)> {
    let settings = vix_tests::hub_settings_in(pki, dir);
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
