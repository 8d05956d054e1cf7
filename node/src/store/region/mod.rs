//! The region node's store written once: the rules ([`rules`]) over the statements a backend
//! provides ([`tx::RegionTx`]), and the parsing of its rows ([`rows`]).

pub(crate) mod rows;
pub(crate) mod rules;
pub(crate) mod tx;

#[cfg(test)]
mod contract_tests;
