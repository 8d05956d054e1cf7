//! What a pseudonym costs (issue 13): the HMAC of the shared federation key, the baseline,
//! beside the oblivious PRF: the pseudonym service's batch evaluation (the figure the issue
//! asks at least 20,000 elements/s of) and a region's blinding and finalizing around it.
//! CPU only, on this machine's cores; no I/O.

use std::time::Instant;

use vix_node::domain::{Bsn, KeyVersion};
use vix_node::oprf::{Blinded, OprfKey};
use vix_node::pseudonym::HmacPseudonymiser;

use crate::report::{Report, Unit};

/// Elements per evaluation call: a busy region's batch.
const BATCH: usize = 500;

pub(crate) fn compare(smoke: bool, report: &mut Report) -> anyhow::Result<serde_json::Value> {
    let count = if smoke { 2_000 } else { 50_000 };
    let bsn = Bsn::parse("999991383").map_err(|error| anyhow::anyhow!("{error}"))?;
    let digits = bsn.expose_digits();
    let input = &digits[..];

    let hmac = HmacPseudonymiser::new(&[7; 32], KeyVersion::new(1)?)?;
    let started = Instant::now();
    let mut keys = 0usize;
    for _ in 0..count {
        keys += usize::from(hmac.subject_key(&bsn).digest()[0] & 1);
    }
    let hmac_rate = count as f64 / started.elapsed().as_secs_f64();
    std::hint::black_box(keys);
    report.add(
        "pseudonyms: HMAC subject keys",
        None,
        Unit::PerSecond,
        hmac_rate,
    );

    let key = OprfKey::generate()?;
    let blinded: Vec<Blinded> = (0..BATCH)
        .map(|_| Blinded::new(input))
        .collect::<Result<_, _>>()?;
    let elements: Vec<[u8; 32]> = blinded.iter().map(Blinded::element).collect();
    let started = Instant::now();
    let mut evaluated = Vec::new();
    for _ in 0..count / BATCH {
        evaluated = key.evaluate_batch(&elements)?;
    }
    let service_rate = (count / BATCH * BATCH) as f64 / started.elapsed().as_secs_f64();
    report.add_vs(
        "pseudonyms: OPRF service, batch evaluation",
        None,
        Unit::PerSecond,
        service_rate,
        "pseudonyms: HMAC subject keys",
    );

    let started = Instant::now();
    let rounds = count / 10;
    for index in 0..rounds {
        let mine = Blinded::new(input)?;
        let evaluation = &evaluated[index % evaluated.len()];
        // Another blind's evaluation: the cost is the same, and the output is not used.
        std::hint::black_box(mine.finalize(input, evaluation)?);
    }
    let region_rate = rounds as f64 / started.elapsed().as_secs_f64();
    report.add_vs(
        "pseudonyms: OPRF region, blind and finalize",
        None,
        Unit::PerSecond,
        region_rate,
        "pseudonyms: HMAC subject keys",
    );
    println!(
        "   HMAC {hmac_rate:.0}/s; OPRF service {service_rate:.0} elements/s (batches of \
         {BATCH}); OPRF region side {region_rate:.0}/s"
    );
    Ok(serde_json::json!({
        "hmac_per_s": hmac_rate,
        "oprf_service_elements_per_s": service_rate,
        "oprf_region_per_s": region_rate,
        "batch": BATCH,
        "count": count,
    }))
}

/// The pseudonym service as regions use it: a real `PseudonymizerNode` on loopback with mutual
/// TLS and its audit file, called with batches (the elements/s figure, beside the in-process
/// evaluation) and as one registration calls it: the youth and two parents in one round trip
/// (its latency, beside the same pseudonyms made with the HMAC key on the node).
pub(crate) async fn over_the_wire(
    smoke: bool,
    pki: &std::path::Path,
    dir: &std::path::Path,
    report: &mut Report,
) -> anyhow::Result<serde_json::Value> {
    use std::sync::Arc;

    use vix_node::config::{KeyFileSetting, PseudonymizerSettings};
    use vix_node::domain::{Pseudonymiser, YouthRef};
    use vix_node::pseudonym::remote::RemotePseudonymiser;
    use vix_node::tls::{self, TlsFiles};
    use vix_protocol::pseudonym::v1 as ps;

    let files = |cert: &str, key: &str| TlsFiles {
        ca: pki.join(vix_certs_dev::files::CA_CERT),
        cert: pki.join(cert),
        key: pki.join(key),
        ..Default::default()
    };
    let settings = PseudonymizerSettings {
        listen: "127.0.0.1:0".parse()?,
        organisation_registry_file: pki.join(vix_certs_dev::files::ORGANISATION_REGISTRY),
        tls: files(
            vix_certs_dev::files::PSEUDONYMIZER_CERT,
            vix_certs_dev::files::PSEUDONYMIZER_KEY,
        ),
        keys: vec![KeyFileSetting {
            version: 1,
            file: pki.join(vix_certs_dev::files::OPRF_KEY),
        }],
        current_key_version: 1,
        audit_file: dir.join("pseudonymizer-audit.jsonl"),
        // The figure is the service's throughput, not its brake on one region.
        rate_limit: vix_node::pseudonymizer::rate::RateLimit {
            elements_per_second: 10_000_000,
            burst: 10_000_000,
        },
        metrics_listen: None,
        limits: Default::default(),
    };
    let node = vix_node::startup::PseudonymizerNode::build(
        &settings,
        Arc::new(vix_node::domain::SystemClock),
    )?;
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(node.run(listener, async {
        let _ = stopped.await;
    }));

    let (cert, key) = vix_certs_dev::files::region_client("north");
    let client = tls::pseudonymizer_client_config(&files(&cert, &key))?;
    let channel = tls::channel(tls::Addresses::one(addr), "localhost", client)?;
    let mut evaluate = ps::pseudonym_service_client::PseudonymServiceClient::new(channel.clone());

    // Batches: what a busy region's backlog (or a re-keying) costs.
    let calls = if smoke { 4 } else { 100 };
    let blinded: Vec<Vec<u8>> = (0..BATCH)
        .map(|n| {
            Blinded::new(format!("vix/subject/v1\0{n:09}").as_bytes()).map(|b| b.element().to_vec())
        })
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    for _ in 0..calls {
        evaluate
            .evaluate(ps::EvaluateRequest {
                blinded: blinded.clone(),
            })
            .await?;
    }
    let wire_rate = (calls * BATCH) as f64 / started.elapsed().as_secs_f64();
    report.add_vs(
        "pseudonyms: OPRF service over mTLS, batches of 500",
        None,
        Unit::PerSecond,
        wire_rate,
        "pseudonyms: OPRF service, batch evaluation",
    );

    // One registration: the youth and two parents, blinded, evaluated and finalized.
    let request_key = [7u8; 32];
    let remote = RemotePseudonymiser::new(channel, &request_key, std::time::Duration::from_secs(5));
    let hmac = HmacPseudonymiser::new(&[7; 32], KeyVersion::new(1)?)?;
    let youth = Bsn::parse("999991383").map_err(|error| anyhow::anyhow!("{error}"))?;
    let parents = [
        Bsn::parse("999993562").map_err(|error| anyhow::anyhow!("{error}"))?,
        Bsn::parse("999990937").map_err(|error| anyhow::anyhow!("{error}"))?,
    ];
    let rounds = if smoke { 20 } else { 500 };
    let mut latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        remote
            .pseudonymise(YouthRef::Bsn(&youth), &parents)
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let mut hmac_latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        std::hint::black_box(hmac.pseudonyms(YouthRef::Bsn(&youth), &parents));
        hmac_latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let p50 = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (remote_p50, hmac_p50) = (p50(&mut latencies), p50(&mut hmac_latencies));
    report.add(
        "pseudonyms: HMAC, a registration's youth and two parents (p50)",
        None,
        Unit::Millis,
        hmac_p50,
    );
    report.add_vs(
        "pseudonyms: OPRF service, a registration's youth and two parents, one round trip (p50)",
        None,
        Unit::Millis,
        remote_p50,
        "pseudonyms: HMAC, a registration's youth and two parents (p50)",
    );
    println!(
        "   over mTLS: {wire_rate:.0} elements/s in batches of {BATCH}; a registration's \
         pseudonyms p50 {remote_p50:.2} ms (HMAC on the node {hmac_p50:.4} ms)"
    );
    let _ = stop.send(());
    service.await??;
    Ok(serde_json::json!({
        "wire_elements_per_s": wire_rate,
        "registration_p50_ms": remote_p50,
        "hmac_registration_p50_ms": hmac_p50,
        "calls": calls,
        "rounds": rounds,
    }))
}
