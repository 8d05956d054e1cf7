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
