//! `vix-certs-dev`: writes the development PKI (see the crate docs for the files).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Writes a development PKI for vix: CA, CRL, hub, region and organisation certificates, a
/// rogue CA, expired and revoked client certificates, the pseudonym service's certificate, and
/// dev keys (federation, pseudonym service, idempotency).
///
/// Run again on a folder that already holds a PKI, it re-issues the CRL (the nodes refuse every
/// client once a CRL is past its nextUpdate, and pick up the new one without a restart).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Folder to write into.
    #[arg(long, default_value = "var/dev/pki")]
    out: PathBuf,
    /// Replace an existing PKI. Without it, a folder that already holds a CA keeps its
    /// certificates and only gets a fresh CRL.
    #[arg(long)]
    force: bool,
    /// Revoke this certificate (a file name in the folder, e.g. org-jgz-north.pem): add it to
    /// the CRL and re-issue the CRL.
    #[arg(long, value_name = "CERT_FILE")]
    revoke: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let exists = args.out.join(vix_certs_dev::files::CA_CERT).exists();
    if args.force || !exists {
        vix_certs_dev::generate(&args.out, &vix_certs_dev::DevPkiSpec::default())
            .with_context(|| format!("writing the dev PKI into {}", args.out.display()))?;
        eprintln!("dev PKI written to {}", args.out.display());
    } else if !args
        .out
        .join(vix_certs_dev::files::ORGANISATION_REGISTRY)
        .exists()
    {
        // A PKI written before the organisation registry existed gets one, so the nodes start.
        vix_certs_dev::write_organisation_registry(
            &args.out,
            &vix_certs_dev::DevPkiSpec::default(),
        )
        .context("writing the organisation registry")?;
    }
    let ca = vix_certs_dev::DevCa::load(&args.out)
        .with_context(|| format!("loading the dev CA of {}", args.out.display()))?;
    let next_update = match &args.revoke {
        Some(cert) => ca
            .revoke(cert)
            .with_context(|| format!("revoking {cert}"))?,
        None => ca.renew_crl().context("re-issuing the CRL")?,
    };
    eprintln!(
        "CRL {} valid until {next_update}{}",
        args.out.join(vix_certs_dev::files::CRL).display(),
        args.revoke
            .as_deref()
            .map(|cert| format!("; it now revokes {cert}"))
            .unwrap_or_default(),
    );
    Ok(())
}
