//! The requests a professional's front-end sends for the workload, built one way for both
//! modes, and the bounded pipeline that keeps a number of them in flight.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::Context;
use jiff::civil::Date;
use tonic::Code;
use tonic::transport::Channel;
use vix_protocol::region::v1 as pb;
use vix_protocol::region::v1::region_service_client::RegionServiceClient;

/// How long a front-end keeps retrying one request while a node is down or restarting, or a
/// connection is being renewed.
const RETRY_MAX: Duration = Duration::from_secs(60);

use crate::federation::organisation_id;
use crate::ledger::RegistrationAck;
use crate::population::Population;
use crate::workload::{Change, Planned};

pub fn professional(organisation: u32, professional: u8, changed: bool) -> pb::ProfessionalContact {
    let organisation = organisation_id(organisation);
    pb::ProfessionalContact {
        professional_id: format!("p{professional}-{organisation}"),
        name: format!("Professional {professional} of {organisation}"),
        email: format!(
            "p{professional}{}@{organisation}.example.nl",
            if changed { ".new" } else { "" }
        ),
        phone: String::new(),
    }
}

/// The registration of `planned` on `today`. Its request id follows from the simulation's name
/// for the signal, so a retry after a lost answer is recognised by the node.
pub fn registration(
    population: &Population,
    planned: &Planned,
    today: Date,
) -> pb::RegisterSignalRequest {
    let person = population.person(planned.youth);
    pb::RegisterSignalRequest {
        request_id: format!("sim-{}", planned.signal),
        youth: Some(pb::register_signal_request::Youth::Bsn(person.bsn.clone())),
        professional: Some(professional(
            planned.organisation,
            planned.professional,
            false,
        )),
        planned_removal_date: planned.planned_removal.to_string(),
        informing: Some(vix_tests::informing_for_birth(person.birth_date, today)),
    }
}

pub fn withdrawal(
    number: String,
    organisation: u32,
    unjustified: bool,
) -> pb::WithdrawSignalRequest {
    pb::WithdrawSignalRequest {
        signal_id: number,
        reason: if unjustified {
            pb::WithdrawReason::Unjustified as i32
        } else {
            pb::WithdrawReason::RiskGone as i32
        },
        acting_professional_id: format!("p0-{}", organisation_id(organisation)),
    }
}

/// Whether `status` says the request or its answer may have been lost between client and
/// node, rather than the node refusing it: the node down, or the connection closing under the
/// request (a GOAWAY when a node renews its connections comes back as INTERNAL with the
/// transport error as its source).
fn lost_on_the_way(status: &tonic::Status) -> bool {
    let transport = std::error::Error::source(status)
        .is_some_and(|source| source.downcast_ref::<tonic::transport::Error>().is_some());
    transport
        || matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
        )
}

/// Sends until an answer comes, as a front-end does while a node is down: a refusal that
/// only means "your earlier attempt already did it" (`done_if`) counts as done once an
/// attempt's answer was lost. Returns `None` for that case.
pub async fn retrying<T, F, Fut>(
    mut attempt: F,
    uncertain: &mut bool,
    done_if: impl Fn(Code) -> bool,
) -> anyhow::Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let from = Instant::now();
    loop {
        match attempt().await {
            Ok(answer) => return Ok(Some(answer)),
            Err(status) if *uncertain && done_if(status.code()) => return Ok(None),
            Err(status) if lost_on_the_way(&status) && from.elapsed() < RETRY_MAX => {
                *uncertain = true;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => return Err(status.into()),
        }
    }
}

/// A registration sent until answered. The same request id again after a lost answer: the
/// node answers with the signal the first attempt made.
pub fn registering(
    client: RegionServiceClient<Channel>,
    request: pb::RegisterSignalRequest,
    planned: Planned,
) -> Operation {
    Box::pin(async move {
        let response = retrying(
            || {
                let (mut client, request) = (client.clone(), request.clone());
                async move {
                    client
                        .register_signal(request)
                        .await
                        .map(tonic::Response::into_inner)
                }
            },
            &mut false,
            |_| false,
        )
        .await
        .with_context(|| format!("registration of signal #{}", planned.signal))?
        .context("a registration without an answer")?;
        let signal = response.signal.context("a registered signal")?;
        Ok(Ack::Registered((
            planned,
            signal.signal_id,
            response.already_registered,
        )))
    })
}

/// A withdrawal sent until answered. After a lost answer, "already inactive" or "not found" is
/// the first attempt's work.
pub fn withdrawing(
    client: RegionServiceClient<Channel>,
    request: pb::WithdrawSignalRequest,
    change: Change,
    what: String,
) -> Operation {
    Box::pin(async move {
        retrying(
            || {
                let (mut client, request) = (client.clone(), request.clone());
                async move { client.withdraw_signal(request).await.map(|_| ()) }
            },
            &mut false,
            |code| matches!(code, Code::FailedPrecondition | Code::NotFound),
        )
        .await
        .context(what)?;
        Ok(Ack::Changed(change))
    })
}

/// What one acknowledged operation did.
pub enum Ack {
    Registered(RegistrationAck),
    Changed(Change),
}

pub type Operation = Pin<Box<dyn Future<Output = anyhow::Result<Ack>> + Send>>;

/// Operations with a bounded number in flight; acknowledgements come back in the order they
/// completed.
pub struct Pipeline {
    concurrency: usize,
    in_flight: tokio::task::JoinSet<anyhow::Result<Ack>>,
}

impl Pipeline {
    pub fn new(concurrency: usize) -> Self {
        Self {
            concurrency: concurrency.max(1),
            in_flight: tokio::task::JoinSet::new(),
        }
    }

    /// Starts `operation` once there is room; returns what completed meanwhile.
    pub async fn push(&mut self, operation: Operation) -> anyhow::Result<Vec<Ack>> {
        let mut done = Vec::new();
        while self.in_flight.len() >= self.concurrency {
            if let Some(ack) = self.in_flight.join_next().await {
                done.push(ack??);
            }
        }
        self.in_flight.spawn(operation);
        while let Some(ack) = self.in_flight.try_join_next() {
            done.push(ack??);
        }
        Ok(done)
    }

    /// Waits for everything in flight.
    pub async fn drain(&mut self) -> anyhow::Result<Vec<Ack>> {
        let mut done = Vec::new();
        while let Some(ack) = self.in_flight.join_next().await {
            done.push(ack??);
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_final_and_a_lost_connection_is_retried() {
        assert!(!lost_on_the_way(&tonic::Status::internal(
            "the store failed"
        )));
        assert!(!lost_on_the_way(&tonic::Status::invalid_argument("bad")));
        assert!(lost_on_the_way(&tonic::Status::unavailable("down")));
        assert!(lost_on_the_way(&tonic::Status::cancelled("closed")));
    }
}
