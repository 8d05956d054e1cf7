//! The region's side of blind pseudonymisation: every identifier of a request is blinded, the
//! pseudonym service evaluates them all in one call, and the node unblinds and finalizes them.
//! The service sees only blinded elements; the node never sees the service's key.
//!
//! `key = HMAC-SHA256(OPRF output, label)` per key version: the OPRF output (64 bytes) under
//! the version's key becomes a 32-byte key in the kind's namespace.

use std::time::Duration;

use ring::hmac;
use tonic::Code;
use tonic::transport::Channel;
use vix_protocol::pseudonym::v1 as pb;
use vix_protocol::pseudonym::v1::pseudonym_service_client::PseudonymServiceClient;

use super::{ALT_SUBJECT_LABEL, FAMILY_LABEL, REQUEST_LABEL, SUBJECT_LABEL, message};
use crate::domain::{
    Bsn, FamilyKey, KeyVersion, LiveKeys, OrganisationId, PseudonymError, PseudonymFuture,
    Pseudonymiser, Pseudonyms, RequestId, SubjectKey, YouthRef,
};
use crate::oprf::Blinded;

pub struct RemotePseudonymiser {
    client: PseudonymServiceClient<Channel>,
    /// The node's own key for idempotency keys: they never leave the node, and replays must be
    /// recognised across rotations of the service's keys.
    request_key: hmac::Key,
    timeout: Duration,
}

impl RemotePseudonymiser {
    pub fn new(channel: Channel, request_key: &[u8; 32], timeout: Duration) -> Self {
        Self {
            client: PseudonymServiceClient::new(channel)
                .max_decoding_message_size(crate::limits::PSEUDONYM_RESPONSE_MAX_BYTES),
            request_key: hmac::Key::new(hmac::HMAC_SHA256, request_key),
            timeout,
        }
    }

    async fn evaluate(
        &self,
        youth: YouthRef<'_>,
        parents: &[Bsn],
    ) -> Result<Pseudonyms, PseudonymError> {
        let mut inputs = Vec::with_capacity(1 + parents.len());
        inputs.push(match youth {
            YouthRef::Bsn(bsn) => (
                SUBJECT_LABEL,
                message(SUBJECT_LABEL, &[&bsn.expose_digits()]),
            ),
            YouthRef::Alt(id) => (
                ALT_SUBJECT_LABEL,
                message(
                    ALT_SUBJECT_LABEL,
                    &[id.issuer().as_bytes(), id.number().as_bytes()],
                ),
            ),
        });
        for parent in parents {
            inputs.push((
                FAMILY_LABEL,
                message(FAMILY_LABEL, &[&parent.expose_digits()]),
            ));
        }
        let blinded = inputs
            .iter()
            .map(|(_, input)| Blinded::new(input))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| PseudonymError::Unavailable(format!("blinding failed: {error}")))?;
        let request = pb::EvaluateRequest {
            blinded: blinded.iter().map(|b| b.element().to_vec()).collect(),
        };
        let mut client = self.client.clone();
        let answer = tokio::time::timeout(self.timeout, client.evaluate(request))
            .await
            .map_err(|_| {
                PseudonymError::Unavailable(format!(
                    "no answer within {} ms",
                    self.timeout.as_millis()
                ))
            })?
            .map_err(|status| match status.code() {
                Code::ResourceExhausted => PseudonymError::RateLimited(status.message().to_owned()),
                code => PseudonymError::Unavailable(format!("{code:?}: {}", status.message())),
            })?
            .into_inner();
        let unusable = |why: &str| PseudonymError::Unavailable(format!("unusable answer: {why}"));
        if answer.evaluations.is_empty() {
            return Err(unusable("no key version"));
        }
        // outputs[i][v]: input i finalized under the answer's v-th version.
        let mut outputs: Vec<Vec<(KeyVersion, [u8; 32])>> = vec![Vec::new(); inputs.len()];
        for evaluation in &answer.evaluations {
            let version =
                KeyVersion::new(evaluation.key_version).map_err(|_| unusable("key version 0"))?;
            if evaluation.evaluated.len() != inputs.len() {
                return Err(unusable("not one evaluation per element"));
            }
            for (index, evaluated) in evaluation.evaluated.iter().enumerate() {
                let (label, input) = &inputs[index];
                let output = blinded[index]
                    .finalize(input, evaluated)
                    .map_err(|_| unusable("not a group element"))?;
                let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &output), label);
                let mut digest = [0u8; 32];
                digest.copy_from_slice(tag.as_ref());
                outputs[index].push((version, digest));
            }
        }
        let mut outputs = outputs.into_iter();
        let subject = outputs.next().ok_or_else(|| unusable("no subject"))?;
        let subject = LiveKeys::new(
            subject
                .into_iter()
                .map(|(version, digest)| SubjectKey::new(version, digest))
                .collect(),
        )
        .map_err(|error| unusable(&error.to_string()))?;
        let families = outputs
            .map(|keys| {
                LiveKeys::new(
                    keys.into_iter()
                        .map(|(version, digest)| FamilyKey::new(version, digest))
                        .collect(),
                )
                .map_err(|error| unusable(&error.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Pseudonyms { subject, families })
    }
}

impl Pseudonymiser for RemotePseudonymiser {
    fn pseudonymise<'a>(&'a self, youth: YouthRef<'a>, parents: &'a [Bsn]) -> PseudonymFuture<'a> {
        Box::pin(self.evaluate(youth, parents))
    }

    fn request_key(&self, organisation: &OrganisationId, request: &RequestId) -> [u8; 32] {
        let tag = hmac::sign(
            &self.request_key,
            &message(
                REQUEST_LABEL,
                &[
                    organisation.as_str().as_bytes(),
                    request.as_str().as_bytes(),
                ],
            ),
        );
        let mut digest = [0u8; 32];
        digest.copy_from_slice(tag.as_ref());
        digest
    }
}
