//! `vix-certs-dev`: writes the development PKI (see the crate docs for the files).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Writes a development PKI for vix: CA, CRL, hub, region and organisation certificates, a
/// rogue CA, expired and revoked client certificates, and a dev federation key.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Folder to write into.
    #[arg(long, default_value = "var/dev/pki")]
    out: PathBuf,
    /// Replace an existing PKI. Without it, a folder that already holds a CA is left alone.
    #[arg(long)]
    force: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.force && args.out.join(vix_certs_dev::files::CA_CERT).exists() {
        eprintln!(
            "dev PKI already in {}; --force replaces it",
            args.out.display()
        );
        return Ok(());
    }
    vix_certs_dev::generate(&args.out, &vix_certs_dev::DevPkiSpec::default())
        .with_context(|| format!("writing the dev PKI into {}", args.out.display()))?;
    eprintln!("dev PKI written to {}", args.out.display());
    Ok(())
}
