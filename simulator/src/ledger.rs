//! What the federation acknowledged, as the simulation keeps it: the oracle fed with it, the
//! federation's signal numbers beside the simulation's names, the counts for the report, and
//! every answer that contradicted the rule. Both modes (in process, processes) keep one.

use std::collections::HashMap;

use anyhow::Context;
use vix_protocol::region::v1 as pb;
use vix_protocol::region::v1::region_service_client::RegionServiceClient;

use crate::check::{self, Seen};
use crate::federation::organisation_id;
use crate::oracle::{Oracle, Party, Registration, SignalRef, Youth};
use crate::population::Population;
use crate::report::{Operations, Verdict};
use crate::workload::{Change, Planned, organisation_region};

/// One acknowledged registration: what was planned, the signal number the node answered, and
/// whether the organisation already had an active signal on the youth (that one is returned,
/// nothing new is made).
pub type RegistrationAck = (Planned, String, bool);

#[derive(Debug, Default)]
pub struct Ledger {
    pub oracle: Oracle,
    /// The federation's signal numbers and the simulation's names for them, both ways.
    ids: HashMap<String, SignalRef>,
    numbers: HashMap<SignalRef, String>,
    pub operations: Operations,
    /// New signals acknowledged.
    pub signals: u64,
    /// Answers that contradict the rule, found while the workload ran.
    violations: Vec<String>,
}

impl Ledger {
    /// The federation's number of `signal`.
    pub fn number(&self, signal: SignalRef) -> anyhow::Result<String> {
        self.numbers
            .get(&signal)
            .cloned()
            .with_context(|| format!("signal #{signal} has no number"))
    }

    /// The organisation holding `signal`, while it lives.
    pub fn owner(&self, signal: SignalRef) -> anyhow::Result<u32> {
        self.oracle
            .party_of(signal)
            .map(|party| party.organisation)
            .with_context(|| format!("signal #{signal} is not live"))
    }

    /// An acknowledged change goes to the oracle at once (a day's changes commute).
    pub fn changed(&mut self, change: Change) {
        let operations = &mut self.operations;
        match change {
            Change::Withdraw {
                signal,
                unjustified: true,
            } => {
                operations.withdrawals_unjustified += 1;
                self.oracle.delete(signal);
            }
            Change::Withdraw { signal, .. } => {
                operations.withdrawals_risk_gone += 1;
                self.oracle.withdraw(signal);
            }
            Change::Update {
                signal,
                planned_removal,
            } => {
                operations.updates += 1;
                if let Some(date) = planned_removal {
                    self.oracle.set_planned_removal(signal, date);
                }
            }
            Change::Erase {
                youth,
                region,
                signals,
            } => {
                operations.erasure_orders += 1;
                let erased = if signals.is_empty() {
                    self.oracle
                        .signals_on(youth)
                        .into_iter()
                        .filter(|s| {
                            self.oracle
                                .party_of(*s)
                                .is_some_and(|p| organisation_region(p.organisation) == region)
                        })
                        .collect()
                } else {
                    signals
                };
                for signal in erased {
                    self.oracle.delete(signal);
                }
            }
            Change::Death { youth } => {
                operations.deaths += 1;
                self.oracle.delete_youth(youth);
            }
            Change::Move { .. } => {}
        }
    }

    /// Checks a phase's registrations against the re-registration rule and hands the new
    /// signals to the oracle. An organisation with an active signal on the youth keeps it
    /// (DOMAIN.md section 5: re-registration tells no one), so a party active before the phase
    /// gets no new signal, and one that was not gets exactly one however many registrations it
    /// sent; which of them made it is the node's order.
    pub fn close_phase(&mut self, population: &Population, acks: Vec<RegistrationAck>) {
        let mut new_by_party: HashMap<Party, u32> = HashMap::new();
        let mut sent_by_party: HashMap<Party, u32> = HashMap::new();
        let mut registrations = Vec::new();
        for (planned, number, already) in acks {
            let party = Party {
                organisation: planned.organisation,
                youth: planned.youth,
            };
            *sent_by_party.entry(party).or_default() += 1;
            if already {
                self.operations.re_registrations += 1;
                continue;
            }
            *new_by_party.entry(party).or_default() += 1;
            if self.oracle.has_signals(party) {
                self.operations.re_registrations += 1;
            }
            self.operations.registrations += 1;
            self.signals += 1;
            self.ids.insert(number.clone(), planned.signal);
            self.numbers.insert(planned.signal, number);
            let person = population.person(planned.youth);
            registrations.push(Registration {
                signal: planned.signal,
                organisation: planned.organisation,
                youth: Youth {
                    index: planned.youth,
                    parents: person.parent_indexes.clone(),
                    birth_date: person.birth_date,
                },
                planned_removal: planned.planned_removal,
            });
        }
        for (party, sent) in sent_by_party {
            let made = new_by_party.get(&party).copied().unwrap_or(0);
            let wanted = u32::from(!self.oracle.is_active(party));
            if made != wanted {
                self.violations.push(format!(
                    "{} on youth#{}: {sent} registrations made {made} new signals; the rule makes {wanted}",
                    organisation_id(party.organisation),
                    party.youth
                ));
            }
        }
        // The matchers' order within the phase is theirs; the oracle allows for any.
        self.oracle.register(&registrations);
    }

    /// The oracle's verdict on what the organisations see, with the violations found on the
    /// way.
    pub fn verdict(&mut self, seen: &[Seen]) -> Verdict {
        let mut verdict = check::verdict(&self.oracle, seen, &self.ids);
        verdict
            .unexpected
            .extend(std::mem::take(&mut self.violations));
        verdict
    }
}

/// Every match the client's organisation sees, page by page. A page cut on its way (a
/// connection renewed, GOAWAY) is read again, as a front-end would: reading changes nothing.
pub async fn all_matches(
    client: &mut RegionServiceClient<tonic::transport::Channel>,
) -> anyhow::Result<Vec<Seen>> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListMatchesRequest {
            acting_professional_id: "sim-oracle".into(),
            page_size: 500,
            page_token,
            ..Default::default()
        };
        let mut uncertain = false;
        let page = crate::requests::retrying(
            || {
                let (mut client, request) = (client.clone(), request.clone());
                async move { client.list_matches(request).await }
            },
            &mut uncertain,
            |_| false,
        )
        .await?
        .ok_or_else(|| anyhow::anyhow!("ListMatches gave no page"))?
        .into_inner();
        all.extend(page.matches.iter().map(Seen::from_match));
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}
