//! `vix-bench serve hub|region --config <toml>`: a node exactly as `vix-node` runs it, which also
//! prints its bound address on stdout and stops when its stdin closes (so a crashed bench leaves
//! no node behind), on SIGTERM or on Ctrl-C.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::io::AsyncReadExt;
use vix_node::domain::SystemClock;
use vix_node::startup::{HubNode, RegionNode};
use vix_node::{config, telemetry};

/// The line a node prints once it listens, followed by its address.
pub(crate) const LISTENING: &str = "VIX_BENCH_LISTENING ";

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Role {
    Hub,
    Region,
}

pub(crate) async fn serve(role: Role, config_file: &Path) -> anyhow::Result<()> {
    let settings = config::load(Some(config_file), std::env::vars())?;
    telemetry::init(&settings.log, std::env::var("RUST_LOG").ok());
    match role {
        Role::Region => {
            let region = settings
                .region
                .context("the configuration has no [region] section")?;
            let node = RegionNode::build(&region, Arc::new(SystemClock)).await?;
            let listener = tokio::net::TcpListener::bind(region.listen)
                .await
                .with_context(|| format!("binding {}", region.listen))?;
            announce(listener.local_addr()?);
            node.run(listener, shutdown_signal()).await
        }
        Role::Hub => {
            let hub = settings
                .hub
                .context("the configuration has no [hub] section")?;
            let node = HubNode::build(&hub, Arc::new(SystemClock)).await?;
            let listener = tokio::net::TcpListener::bind(hub.listen)
                .await
                .with_context(|| format!("binding {}", hub.listen))?;
            announce(listener.local_addr()?);
            node.run(listener, shutdown_signal()).await
        }
    }
}

fn announce(addr: std::net::SocketAddr) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    // The bench parses this line; if stdout is gone, the bench is too.
    let _ = writeln!(stdout, "{LISTENING}{addr}");
    let _ = stdout.flush();
}

/// Completes on SIGTERM, Ctrl-C or end of stdin.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buffer = [0u8; 64];
        loop {
            match stdin.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
        () = stdin_closed => {},
    }
}
