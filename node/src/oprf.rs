//! The oblivious pseudorandom function of the pseudonym service (issue 13): RFC 9497 in OPRF
//! mode with ristretto255-SHA512, through the `voprf` crate. A region blinds a BSN and sends
//! only the blinded element; the service, which holds the key, evaluates it without learning
//! the BSN; the region unblinds and finalizes. Neither side can compute a pseudonym alone, so a
//! leaked region key or hub database no longer lets anyone try every BSN.
//!
//! This module is the arithmetic only: the service and the region's pseudonymiser build on it.

use std::fmt;

use voprf::{BlindedElement, EvaluationElement, OprfClient, OprfServer, Ristretto255};
use zeroize::Zeroizing;

/// A serialized ristretto255 element (blinded or evaluated).
pub const ELEMENT_LEN: usize = 32;
/// The OPRF output: SHA-512.
pub const OUTPUT_LEN: usize = 64;
/// A serialized key (a ristretto255 scalar).
pub const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OprfError {
    #[error("not a ristretto255 element of {ELEMENT_LEN} bytes")]
    Element,
    #[error("element {index} of the batch is not a ristretto255 element of {ELEMENT_LEN} bytes")]
    BatchElement { index: usize },
    #[error("the input cannot be mapped to the group")]
    Input,
    #[error("not a key: {KEY_LEN} bytes of a non-zero ristretto255 scalar")]
    Key,
    #[error("the operating system's random source failed")]
    Random,
    #[error("an evaluation thread failed")]
    Evaluation,
}

/// Batches at least this long are spread over the machine's cores.
const PARALLEL_MIN: usize = 64;

/// The pseudonym service's key. Its scalar is zeroized on drop (by `voprf`); it is never
/// printed.
pub struct OprfKey(OprfServer<Ristretto255>);

impl fmt::Debug for OprfKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("OprfKey(..)")
    }
}

impl OprfKey {
    /// RFC 9497 DeriveKeyPair from a seed and key info (how the test vectors make theirs).
    pub fn from_seed(seed: &[u8; 32], info: &[u8]) -> Result<Self, OprfError> {
        OprfServer::new_from_seed(seed, info)
            .map(Self)
            .map_err(|_| OprfError::Key)
    }

    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, OprfError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand_core_06::RngCore::try_fill_bytes(&mut rand_core_06::OsRng, &mut seed[..])
            .map_err(|_| OprfError::Random)?;
        Self::from_seed(&seed, b"vix/pseudonym-service/v1")
    }

    /// A key as [`OprfKey::to_bytes`] wrote it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OprfError> {
        OprfServer::new_with_key(bytes)
            .map(Self)
            .map_err(|_| OprfError::Key)
    }

    /// The scalar, for the key file; zeroized when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; KEY_LEN]> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&self.0.serialize());
        bytes
    }

    /// Evaluates a batch of blinded elements, in order, on every core of the machine (one
    /// scalar multiplication each; a batch of a few hundred is worth the threads). One that is
    /// not a valid element refuses the batch, naming it: a region sends what its own code
    /// blinded. Blocking: an async caller runs it on a blocking thread.
    pub fn evaluate_batch<E: AsRef<[u8]> + Sync>(
        &self,
        blinded: &[E],
    ) -> Result<Vec<[u8; ELEMENT_LEN]>, OprfError> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        if threads < 2 || blinded.len() < PARALLEL_MIN {
            return self.evaluate_run(blinded, 0);
        }
        let chunk = blinded.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let runs: Vec<_> = blinded
                .chunks(chunk)
                .enumerate()
                .map(|(n, run)| scope.spawn(move || self.evaluate_run(run, n * chunk)))
                .collect();
            let mut evaluated = Vec::with_capacity(blinded.len());
            for run in runs {
                evaluated.extend(run.join().map_err(|_| OprfError::Evaluation)??);
            }
            Ok(evaluated)
        })
    }

    /// Evaluates `run`, whose first element is element `first` of the batch.
    fn evaluate_run<E: AsRef<[u8]>>(
        &self,
        run: &[E],
        first: usize,
    ) -> Result<Vec<[u8; ELEMENT_LEN]>, OprfError> {
        run.iter()
            .enumerate()
            .map(|(offset, element)| {
                let element = BlindedElement::<Ristretto255>::deserialize(element.as_ref())
                    .map_err(|_| OprfError::BatchElement {
                        index: first + offset,
                    })?;
                Ok(element_bytes(&self.0.blind_evaluate(&element).serialize()))
            })
            .collect()
    }

    /// The function evaluated directly on `input`, as a region gets it through blinding; for
    /// tests and the benchmark's baseline, never for a BSN at the service.
    pub fn evaluate_plain(&self, input: &[u8]) -> Result<[u8; OUTPUT_LEN], OprfError> {
        self.0
            .evaluate(input)
            .map(|output| output_bytes(&output))
            .map_err(|_| OprfError::Input)
    }
}

/// A region's side of one evaluation: the blind, kept until the service answers.
pub struct Blinded {
    client: OprfClient<Ristretto255>,
    element: [u8; ELEMENT_LEN],
}

impl fmt::Debug for Blinded {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Blinded(..)")
    }
}

impl Blinded {
    /// Blinds `input` with a fresh random blind.
    pub fn new(input: &[u8]) -> Result<Self, OprfError> {
        let blinded = OprfClient::<Ristretto255>::blind(input, &mut rand_core_06::OsRng)
            .map_err(|_| OprfError::Input)?;
        Ok(Self {
            element: element_bytes(&blinded.message.serialize()),
            client: blinded.state,
        })
    }

    /// What goes to the service: reveals nothing about the input.
    pub fn element(&self) -> [u8; ELEMENT_LEN] {
        self.element
    }

    /// Unblinds the service's evaluation and finalizes: the PRF of `input` under the service's
    /// key. `input` must be the one blinded.
    pub fn finalize(&self, input: &[u8], evaluation: &[u8]) -> Result<[u8; OUTPUT_LEN], OprfError> {
        let evaluation = EvaluationElement::<Ristretto255>::deserialize(evaluation)
            .map_err(|_| OprfError::Element)?;
        self.client
            .finalize(input, &evaluation)
            .map(|output| output_bytes(&output))
            .map_err(|_| OprfError::Input)
    }
}

fn element_bytes(serialized: &[u8]) -> [u8; ELEMENT_LEN] {
    let mut bytes = [0u8; ELEMENT_LEN];
    bytes.copy_from_slice(serialized);
    bytes
}

fn output_bytes(serialized: &[u8]) -> [u8; OUTPUT_LEN] {
    let mut bytes = [0u8; OUTPUT_LEN];
    bytes.copy_from_slice(serialized);
    bytes
}

#[cfg(test)]
mod tests {
    use voprf::Group;

    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        ::hex::decode(text.split_whitespace().collect::<String>()).unwrap()
    }

    /// RFC 9497 Appendix A.1.1, ristretto255-SHA512 in OPRF mode, transcribed from the RFC.
    const SEED: &str = "a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3";
    const KEY_INFO: &str = "74657374206b6579";
    const SK_SM: &str = "5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e";
    const BLIND: &str = "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706";

    struct Vector {
        input: &'static str,
        blinded_element: &'static str,
        evaluation_element: &'static str,
        output: &'static str,
    }

    const VECTORS: [Vector; 2] = [
        // A.1.1.1, Test Vector 1, Batch Size 1.
        Vector {
            input: "00",
            blinded_element: "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
            evaluation_element: "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e",
            output: "527759c3d9366f277d8c6020418d96bb393ba2afb20ff90df23fb7708264e2f3\
                     ab9135e3bd69955851de4b1f9fe8a0973396719b7912ba9ee8aa7d0b5e24bcf6",
        },
        // A.1.1.2, Test Vector 2, Batch Size 1.
        Vector {
            input: "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
            blinded_element: "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
            evaluation_element: "b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25",
            output: "f4a74c9c592497375e796aa837e907b1a045d34306a749db9f34221f7e750cb4\
                     f2a6413a6bf6fa5e19ba6348eb673934a722a7ede2e7621306d18951e7cf2c73",
        },
    ];

    fn rfc_key() -> OprfKey {
        let seed: [u8; 32] = hex(SEED).try_into().unwrap();
        OprfKey::from_seed(&seed, &hex(KEY_INFO)).unwrap()
    }

    #[test]
    fn the_rfc_9497_ristretto255_sha512_oprf_vectors_pass() {
        let key = rfc_key();
        assert_eq!(key.to_bytes().to_vec(), hex(SK_SM));
        let blind = Ristretto255::deserialize_scalar(&hex(BLIND)).unwrap();
        for vector in &VECTORS {
            let input = hex(vector.input);
            let blinded =
                OprfClient::<Ristretto255>::deterministic_blind_unchecked(&input, blind).unwrap();
            let ours = Blinded {
                element: element_bytes(&blinded.message.serialize()),
                client: blinded.state,
            };
            assert_eq!(ours.element().to_vec(), hex(vector.blinded_element));
            let evaluated = key.evaluate_batch(&[ours.element()]).unwrap();
            assert_eq!(evaluated[0].to_vec(), hex(vector.evaluation_element));
            let output = ours.finalize(&input, &evaluated[0]).unwrap();
            assert_eq!(output.to_vec(), hex(vector.output));
            assert_eq!(
                key.evaluate_plain(&input).unwrap().to_vec(),
                hex(vector.output)
            );
        }
    }

    #[test]
    fn blinding_hides_the_input_and_the_output_is_the_keys_function() {
        let key = OprfKey::generate().unwrap();
        let bsn = b"999991383";
        let first = Blinded::new(bsn).unwrap();
        let second = Blinded::new(bsn).unwrap();
        // Each blinding looks different to the service...
        assert_ne!(first.element(), second.element());
        let evaluated = key
            .evaluate_batch(&[first.element(), second.element()])
            .unwrap();
        // ...and both finalize to the same pseudonym input, the key's function of the BSN.
        let a = first.finalize(bsn, &evaluated[0]).unwrap();
        let b = second.finalize(bsn, &evaluated[1]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, key.evaluate_plain(bsn).unwrap());
        // Another key, another function.
        let other = OprfKey::generate().unwrap();
        let evaluated = other.evaluate_batch(&[first.element()]).unwrap();
        assert_ne!(first.finalize(bsn, &evaluated[0]).unwrap(), a);
        // The key survives its file form.
        let again = OprfKey::from_bytes(&key.to_bytes()[..]).unwrap();
        assert_eq!(again.evaluate_plain(bsn).unwrap(), a);
    }

    #[test]
    fn a_batch_with_an_element_that_is_not_one_is_refused_naming_it() {
        let key = OprfKey::generate().unwrap();
        let good = Blinded::new(b"999991383").unwrap().element();
        let refused = key.evaluate_batch(&[good.to_vec(), vec![0xff; 32]]);
        assert_eq!(refused, Err(OprfError::BatchElement { index: 1 }));
        let refused = key.evaluate_batch(&[good.to_vec(), good[..31].to_vec()]);
        assert_eq!(refused, Err(OprfError::BatchElement { index: 1 }));
        assert_eq!(
            Blinded::new(b"1").unwrap().finalize(b"1", &[0xff; 32]),
            Err(OprfError::Element)
        );
        // A long batch runs on several threads and still names the element, in batch order.
        let mut long = vec![good.to_vec(); 300];
        long[257] = vec![0xff; 32];
        assert_eq!(
            key.evaluate_batch(&long),
            Err(OprfError::BatchElement { index: 257 })
        );
        long[257] = good.to_vec();
        let evaluated = key.evaluate_batch(&long).unwrap();
        assert_eq!(evaluated.len(), 300);
        assert!(evaluated.iter().all(|element| *element == evaluated[0]));
        assert!(OprfKey::from_bytes(&[0u8; 32]).is_err());
        assert_eq!(format!("{key:?}"), "OprfKey(..)");
    }
}
