//! Real `vix-node` processes for the process tests and the simulator's process mode: their
//! configuration files, start-up on a known address, `kill -9`, and the federation's quiet
//! watermark read from the database files (a process has no in-memory state to ask). Each
//! process's log is kept in a file beside its database, so a failed run can be read afterwards
//! and the simulator's privacy scan reads it too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// How long a node may take to listen after it was started.
pub const START_TIME_MAX: Duration = Duration::from_secs(30);

/// The `vix-node` binary next to the running executable (tests and `vix-sim` are built into
/// the same target folder), or `VIX_NODE_BIN`.
pub fn vix_node_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("VIX_NODE_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("the running executable")?;
    let mut folder = exe.parent().map(Path::to_owned);
    // Test binaries live in `target/<profile>/deps`, binaries one folder up.
    for _ in 0..2 {
        let Some(dir) = folder else { break };
        let candidate = dir.join("vix-node");
        if candidate.is_file() {
            return Ok(candidate);
        }
        folder = dir.parent().map(Path::to_owned);
    }
    anyhow::bail!(
        "no vix-node binary beside {}: build it (cargo build -p vix-node) or set VIX_NODE_BIN",
        exe.display()
    )
}

/// Writes `<region>.toml` in `dir` for a region node on `listen` with the person registry file
/// `persons`, linked to `hub` if given.
pub fn region_config(
    dir: &Path,
    pki: &Path,
    region: &str,
    listen: &str,
    hub: Option<SocketAddr>,
    persons: &Path,
) -> anyhow::Result<PathBuf> {
    let mut config = format!(
        r#"
[log]
format = "text"
filter = "info"

[region]
region_id = "{region}"
listen = "{listen}"
database = "{db}"
federation_key_file = "{pki}/federation.key"
federation_key_version = 1
person_registry_file = "{persons}"
organisation_registry_file = "{pki}/organisations.toml"

[region.tls]
ca = "{pki}/ca.pem"
cert = "{pki}/region-{region}-server.pem"
key = "{pki}/region-{region}-server.key"
crls = ["{pki}/crl.pem"]
"#,
        db = dir.join(format!("{region}.sqlite")).display(),
        pki = pki.display(),
        persons = persons.display(),
    );
    if let Some(hub) = hub {
        config.push_str(&format!(
            r#"
[region.hub]
address = "{hub}"
server_name = "localhost"

[region.hub.tls]
ca = "{pki}/ca.pem"
cert = "{pki}/region-{region}-client.pem"
key = "{pki}/region-{region}-client.key"
crls = ["{pki}/crl.pem"]
"#,
            pki = pki.display(),
        ));
    }
    let path = dir.join(format!("{region}.toml"));
    std::fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Writes `hub.toml` in `dir` for a hub on `listen`.
pub fn hub_config(dir: &Path, pki: &Path, listen: SocketAddr) -> anyhow::Result<PathBuf> {
    let config = format!(
        r#"
[hub]
listen = "{listen}"
database = "{db}"
organisation_registry_file = "{pki}/organisations.toml"

[hub.tls]
ca = "{pki}/ca.pem"
cert = "{pki}/hub.pem"
key = "{pki}/hub.key"
crls = ["{pki}/crl.pem"]
"#,
        db = dir.join("hub.sqlite").display(),
        pki = pki.display(),
    );
    let path = dir.join("hub.toml");
    std::fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// A port that was free a moment ago: processes restarted after `kill -9` must come back on
/// the address their peers know.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// A running `vix-node`; killed when dropped.
pub struct NodeProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// Where its log goes (appended across restarts).
    pub log: PathBuf,
    /// Its log lines from start-up on, for tests that wait for one.
    pub lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl NodeProcess {
    /// Starts `vix-node <role> --config <config>` with `env` and waits (bounded) for the
    /// address it logs once it listens. Its log is appended to `log`.
    pub async fn start(
        binary: &Path,
        role: &str,
        config: &Path,
        env: &[(&str, &str)],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(binary)
            .arg(role)
            .arg("--config")
            .arg(config)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stderr = child.stderr.take().context("the node's stderr")?;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .await
            .with_context(|| format!("opening {}", log.display()))?;
        // Every line goes to the file and to the channel; the reader never stops draining, so
        // the node never blocks on a full pipe.
        let (sender, lines) = tokio::sync::mpsc::unbounded_channel();
        let (listening, mut address) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let _ = file.write_all(line.as_bytes()).await;
                let _ = file.write_all(b"\n").await;
                if line.contains(" listening ") {
                    let addr = line
                        .split_whitespace()
                        .find_map(|word| word.strip_prefix("addr="))
                        .and_then(|addr| addr.parse::<SocketAddr>().ok());
                    if let Some(addr) = addr {
                        let _ = listening.send(addr);
                    }
                }
                let _ = sender.send(line);
            }
            let _ = file.flush().await;
        });
        let addr = tokio::time::timeout(START_TIME_MAX, address.recv())
            .await
            .ok()
            .flatten();
        let Some(addr) = addr else {
            let _ = child.start_kill();
            anyhow::bail!(
                "vix-node {role} did not listen within {START_TIME_MAX:?}; its log:\n{}",
                tail(log, 30)
            );
        };
        Ok(Self {
            child,
            addr,
            log: log.to_owned(),
            lines,
        })
    }

    /// `kill -9`: no chance to finish anything.
    pub async fn kill_9(&mut self) -> anyhow::Result<()> {
        self.child.start_kill().context("SIGKILL")?;
        self.child
            .wait()
            .await
            .context("waiting for the killed node")?;
        Ok(())
    }

    /// SIGTERM, and waits (bounded) for the node to finish what it holds and exit.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let pid = self.child.id().context("the node has exited already")?;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .context("kill -TERM")?;
        anyhow::ensure!(status.success(), "kill -TERM {pid} failed");
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("the node did not stop within 30 s of SIGTERM")??;
        Ok(())
    }

    /// The last `lines` lines of its log, for a failure message.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

/// The last `lines` lines of the file at `path`.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One number from a database file of a running node, read-only.
pub async fn count(db: &Path, sql: &'static str, bind: &str) -> anyhow::Result<i64> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(db).read_only(true))
        .await
        .with_context(|| format!("opening {} read-only", db.display()))?;
    let mut query = sqlx::query_scalar::<_, i64>(sql);
    if !bind.is_empty() {
        query = query.bind(bind);
    }
    let value = query.fetch_one(&pool).await;
    pool.close().await;
    Ok(value?)
}

/// What waits in a federation of processes: events in the regions' outboxes, and notices the
/// hub logged for a region that it has not acknowledged. Both zero is the quiet watermark:
/// whatever the hub found before has been stored by its recipient.
pub async fn backlog(hub_db: &Path, regions: &[(String, PathBuf)]) -> anyhow::Result<(u64, u64)> {
    let (mut queued, mut unacked) = (0, 0);
    for (_, db) in regions {
        queued += count(
            db,
            "SELECT (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM coordination_outbox)",
            "",
        )
        .await?;
    }
    for (region, _) in regions {
        unacked += count(
            hub_db,
            "SELECT COUNT(*) FROM region_log WHERE region_id = ?1 AND cursor > \
             COALESCE((SELECT acked_cursor FROM region_cursors WHERE region_id = ?1), 0)",
            region,
        )
        .await?;
    }
    Ok((
        u64::try_from(queued).unwrap_or(0),
        u64::try_from(unacked).unwrap_or(0),
    ))
}
