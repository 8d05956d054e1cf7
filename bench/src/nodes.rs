//! Real nodes as child processes: this binary run as `vix-bench serve hub|region --config`,
//! with TOML configurations written here, the dev PKI, and mutual-TLS clients.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tonic::transport::Channel;
use vix_node::store::GroupCommit;
use vix_node::tls::{self, TlsFiles};

use crate::serve::LISTENING;

/// How long a node may take to open its database and bind (a big database runs its migrations
/// and `PRAGMA optimize` first).
const START_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a node may take to stop gracefully before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// The dev PKI and the BRP fixture, shared by every node of a run.
pub(crate) struct Federation {
    pub(crate) pki: PathBuf,
    pub(crate) registry: PathBuf,
    /// Log filter of the nodes (`[log] filter`).
    pub(crate) log_filter: String,
}

/// The BRP test persons in `shared/fixtures`, beside the workspace (registrations use
/// alternative ids, so the file only has to be readable).
pub(crate) fn person_registry_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/brp-test-persons.json")
}

impl Federation {
    pub(crate) fn create(dir: &Path, log_filter: &str) -> anyhow::Result<Self> {
        let pki = dir.join("pki");
        if !pki.join(vix_certs_dev::files::CA_CERT).is_file() {
            vix_certs_dev::generate(&pki, &vix_certs_dev::DevPkiSpec::default())
                .context("generating the dev PKI")?;
        }
        let registry = person_registry_file();
        if !registry.is_file() {
            bail!("the person registry {} is missing", registry.display());
        }
        Ok(Self {
            pki,
            registry,
            log_filter: log_filter.to_owned(),
        })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.pki.join(name)
    }

    fn tls_files(&self, cert: &str, key: &str, crl: bool) -> TlsFiles {
        TlsFiles {
            ca: self.file(vix_certs_dev::files::CA_CERT),
            cert: self.file(cert),
            key: self.file(key),
            crls: if crl {
                vec![self.file(vix_certs_dev::files::CRL)]
            } else {
                vec![]
            },
            ..Default::default()
        }
    }

    /// A channel to a region node as organisation `org`.
    pub(crate) fn org_channel(&self, addr: SocketAddr, org: &str) -> anyhow::Result<Channel> {
        let (cert, key) = vix_certs_dev::files::organisation(org);
        let config = tls::client_config(&self.tls_files(&cert, &key, false))?;
        Ok(tls::channel(
            tls::Addresses::one(addr),
            "localhost",
            config,
        )?)
    }

    /// A channel to the hub as region `region` (its client certificate).
    pub(crate) fn region_channel(&self, hub: SocketAddr, region: &str) -> anyhow::Result<Channel> {
        let (cert, key) = vix_certs_dev::files::region_client(region);
        let config = tls::hub_client_config(&self.tls_files(&cert, &key, true))?;
        Ok(tls::channel(tls::Addresses::one(hub), "localhost", config)?)
    }

    fn log_section(&self) -> String {
        format!(
            "[log]\nformat = \"text\"\nfilter = {}\n\n",
            quote(&self.log_filter)
        )
    }

    fn tls_section(&self, table: &str, cert: &str, key: &str) -> String {
        format!(
            "[{table}]\nca = {}\ncert = {}\nkey = {}\ncrls = [{}]\n\n",
            path(&self.file(vix_certs_dev::files::CA_CERT)),
            path(&self.file(cert)),
            path(&self.file(key)),
            path(&self.file(vix_certs_dev::files::CRL)),
        )
    }

    fn group_commit_section(table: &str, group_commit: GroupCommit) -> String {
        format!(
            "[{table}]\nmax_batch = {}\nmax_wait_us = {}\n\n",
            group_commit.max_batch, group_commit.max_wait_us
        )
    }

    /// The hub's configuration, listening on port 0.
    pub(crate) fn hub_config(&self, database: &Path, group_commit: GroupCommit) -> String {
        self.hub_config_at(&database.to_string_lossy(), group_commit)
    }

    /// The hub's configuration on the database at `location` (a path or `postgres://…`).
    pub(crate) fn hub_config_at(&self, location: &str, group_commit: GroupCommit) -> String {
        let mut text = self.log_section();
        text += &format!(
            "[hub]\nlisten = \"127.0.0.1:0\"\ndatabase = {}\norganisation_registry_file = {}\n\n",
            quote(location),
            path(&self.file(vix_certs_dev::files::ORGANISATION_REGISTRY)),
        );
        text += &self.tls_section(
            "hub.tls",
            vix_certs_dev::files::HUB_CERT,
            vix_certs_dev::files::HUB_KEY,
        );
        text += &Self::group_commit_section("hub.group_commit", group_commit);
        text
    }

    /// A region node's configuration, listening on port 0, linked to `hub` if given.
    pub(crate) fn region_config(
        &self,
        region: &str,
        database: &Path,
        group_commit: GroupCommit,
        hub: Option<SocketAddr>,
    ) -> String {
        let spec = vix_certs_dev::DevPkiSpec::default();
        let list = |items: Vec<String>| {
            items
                .iter()
                .map(|item| quote(item))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let municipalities = list(
            spec.municipalities
                .iter()
                .filter(|m| m.region == region)
                .map(|m| m.code.clone())
                .collect(),
        );
        let mut text = self.log_section();
        text += &format!(
            "[region]\nregion_id = {}\nlisten = \"127.0.0.1:0\"\ndatabase = {}\n\
             federation_key_file = {}\nfederation_key_version = 1\nperson_registry_file = {}\n\
             municipalities = [{municipalities}]\norganisation_registry_file = {}\n\n",
            quote(region),
            path(database),
            path(&self.file(vix_certs_dev::files::FEDERATION_KEY)),
            path(&self.registry),
            path(&self.file(vix_certs_dev::files::ORGANISATION_REGISTRY)),
        );
        let (cert, key) = vix_certs_dev::files::region_server(region);
        text += &self.tls_section("region.tls", &cert, &key);
        text += &Self::group_commit_section("region.group_commit", group_commit);
        if let Some(hub) = hub {
            text += &format!(
                "[region.hub]\naddress = {}\nserver_name = \"localhost\"\n\n",
                quote(&hub.to_string())
            );
            let (cert, key) = vix_certs_dev::files::region_client(region);
            text += &self.tls_section("region.hub.tls", &cert, &key);
        }
        text
    }
}

/// A TOML basic string (JSON's escaping is valid TOML for these values).
fn quote(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

fn path(path: &Path) -> String {
    quote(&path.to_string_lossy())
}

/// A node running as a child process of the bench.
pub(crate) struct NodeProcess {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    child: Child,
    /// Closing it (EOF) asks the node to stop gracefully.
    stdin: Option<ChildStdin>,
}

impl NodeProcess {
    /// Writes `config` beside the node's log and starts `vix-bench serve <role>`; returns once
    /// the node has bound its port.
    pub(crate) async fn start(
        dir: &Path,
        name: &str,
        role: &str,
        config: &str,
    ) -> anyhow::Result<Self> {
        let config_file = dir.join(format!("{name}.toml"));
        std::fs::write(&config_file, config)
            .with_context(|| format!("writing {}", config_file.display()))?;
        let log_file = dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_file)
            .with_context(|| format!("opening {}", log_file.display()))?;
        let exe = std::env::current_exe().context("finding the bench executable")?;
        let mut child = Command::new(exe)
            .arg("serve")
            .arg(role)
            .arg("--config")
            .arg(&config_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting node {name}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("the node's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = line.strip_prefix(LISTENING) {
                    return Ok(addr.trim().parse::<SocketAddr>()?);
                }
            }
            anyhow::Result::<SocketAddr>::Err(anyhow::anyhow!(
                "node {name} exited before listening; see {}",
                log_file.display()
            ))
        })
        .await
        .with_context(|| format!("node {name} did not start in time"))??;
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            name: name.to_owned(),
            addr,
            child,
            stdin,
        })
    }

    /// `VmRSS` and `VmHWM` of the node, in bytes.
    pub(crate) fn memory(&self) -> anyhow::Result<Memory> {
        let pid = self.child.id().context("the node has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find(|line| line.starts_with(name))
                .with_context(|| format!("{name} in /proc/{pid}/status"))?;
            let kb: u64 = line
                .split_whitespace()
                .nth(1)
                .context("a value in kB")?
                .parse()?;
            Ok(kb * 1024)
        };
        Ok(Memory {
            rss: field("VmRSS:")?,
            hwm: field("VmHWM:")?,
        })
    }

    /// Asks the node to stop (EOF on its stdin), waits for it, kills it if it hangs.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!("node {} stopped with {status}", self.name);
                }
                Ok(())
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("node {} did not stop in time and was killed", self.name)
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Memory {
    pub(crate) rss: u64,
    pub(crate) hwm: u64,
}

/// Bytes of a SQLite database on disk: the file and its WAL.
pub(crate) fn database_bytes(database: &Path) -> u64 {
    let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    size(database) + size(Path::new(&wal))
}

/// Reads the database file (and its WAL) once, so every node started on it finds it in the OS
/// page cache. Without this the second commit mode measured at a size ran on a cache the first
/// one had warmed, which at millions of signals (a file of gigabytes) favoured the second.
pub(crate) fn warm_page_cache(database: &Path) -> std::io::Result<()> {
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    for path in [database, Path::new(&wal)] {
        match std::fs::File::open(path) {
            Ok(mut file) => {
                std::io::copy(&mut file, &mut std::io::sink())?;
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
