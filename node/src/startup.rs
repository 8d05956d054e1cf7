//! Builds a runnable region node from its settings: every file is read and checked here, so a
//! bad configuration stops the process at start-up with a clear error, before it listens.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::RegionSettings;
use crate::domain::clock::Clock;
use crate::domain::{KeyVersion, OrganisationId, RegionId};
use crate::person_registry::JsonPersonRegistry;
use crate::pseudonym::HmacPseudonymiser;
use crate::region::{self, RegionContext};
use crate::store::sqlite::SqliteStore;
use crate::tls;

/// A region node that has opened its store and loaded its keys, ready to serve.
pub struct RegionNode {
    context: Arc<RegionContext<SqliteStore>>,
    tls: Arc<rustls::ServerConfig>,
}

impl RegionNode {
    pub async fn build(settings: &RegionSettings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let region_id = RegionId::parse(&settings.region_id)
            .with_context(|| format!("region.region_id {:?}", settings.region_id))?;
        let organisations = settings
            .organisations
            .iter()
            .map(|id| {
                OrganisationId::parse(id).with_context(|| format!("region.organisations: {id:?}"))
            })
            .collect::<anyhow::Result<HashSet<_>>>()?;
        if organisations.is_empty() {
            anyhow::bail!("region.organisations is empty: the node would serve nobody");
        }
        let version = KeyVersion::new(settings.federation_key_version)
            .context("region.federation_key_version")?;
        let pseudonymiser = HmacPseudonymiser::from_file(&settings.federation_key_file, version)?;
        let registry = JsonPersonRegistry::from_file(&settings.person_registry_file)?;
        let tls = tls::server_config(&settings.tls).context("region.tls")?;
        if let Some(folder) = settings
            .database
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(folder)
                .with_context(|| format!("creating {}", folder.display()))?;
        }
        let store = SqliteStore::open(&settings.database, region_id.clone())
            .await
            .with_context(|| format!("opening {}", settings.database.display()))?;
        tracing::info!(
            %region_id,
            persons = registry.len(),
            organisations = organisations.len(),
            "region node ready"
        );
        Ok(Self {
            context: Arc::new(RegionContext {
                region_id,
                store,
                registry: Arc::new(registry),
                pseudonymiser: Arc::new(pseudonymiser),
                clock,
                organisations,
            }),
            tls,
        })
    }

    pub fn context(&self) -> &Arc<RegionContext<SqliteStore>> {
        &self.context
    }

    /// Serves on `listener` until `shutdown`, then closes the store.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr()?;
        tracing::info!(%addr, region_id = %self.context.region_id, "region node listening");
        region::run(listener, self.tls, Arc::clone(&self.context), shutdown).await?;
        self.context.store.close().await;
        tracing::info!("region node stopped");
        Ok(())
    }
}
