//! `vix-node client`: the region and rights APIs for people at a terminal (professionals'
//! support desks, municipalities' officers, testers, operators checking a node by hand), with an
//! organisation's or a municipality's client certificate over mutual TLS. Output is a table, or one JSON object per line with `--json`. A refusal is said
//! plainly (the status code, the node's message and each field it names) and the command exits
//! non-zero.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use vix_node::tls::{self, TlsFiles};
use vix_protocol::region::v1 as pb;
use vix_protocol::region::v1::region_service_client::RegionServiceClient;
use vix_protocol::region::v1::rights_service_client::RightsServiceClient;

#[derive(Debug, Args)]
pub(crate) struct Client {
    /// The region node's address (host:port).
    #[arg(long)]
    addr: SocketAddr,
    /// The name the node's server certificate carries.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// The federation CA (PEM).
    #[arg(long)]
    ca: PathBuf,
    /// The organisation's client certificate (PEM, `urn:vix:org:<id>`).
    #[arg(long)]
    cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// One JSON object per line instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Register a signal: that this professional is involved with a youth (never why).
    Register(Register),
    /// The organisation's matches (of one signal with --signal), oldest first.
    Matches {
        /// The professional acting (recorded in the node's audit log).
        #[arg(long)]
        professional_id: String,
        /// Only the matches of this signal.
        #[arg(long)]
        signal: Option<String>,
    },
    /// A municipality's export of every signal on a youth, with its notices (access and copy);
    /// with a municipality's certificate.
    Export {
        #[command(flatten)]
        youth: YouthArgs,
        /// The officer acting (recorded in the node's audit log).
        #[arg(long)]
        officer_id: String,
    },
    /// A municipality's erasure order (an objection upheld): the youth's signals, or only
    /// those named, deleted here and at the hub; with a municipality's certificate.
    Erase {
        #[command(flatten)]
        youth: YouthArgs,
        #[arg(long)]
        officer_id: String,
        /// The order's reference (recorded in the audit log).
        #[arg(long)]
        reference: String,
        /// Only these signals (repeat the option); all of the youth's when absent.
        #[arg(long = "signal")]
        signals: Vec<String>,
    },
    /// Withdraw a signal: unjustified (deleted) or risk gone (archived).
    Withdraw {
        #[arg(long)]
        signal: String,
        #[arg(long, value_enum)]
        reason: Reason,
        #[arg(long)]
        professional_id: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Reason {
    Unjustified,
    RiskGone,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Safety {
    YouthSafety,
    ProfessionalSafety,
}

/// The youth a command is about.
#[derive(Debug, Args)]
struct YouthArgs {
    /// The youth's BSN.
    #[arg(long, conflicts_with = "alt_youth_id")]
    bsn: Option<String>,
    /// A youth without a BSN: ISSUER:NUMBER:BIRTH-DATE (YYYY-MM-DD).
    #[arg(long, required_unless_present = "bsn")]
    alt_youth_id: Option<String>,
}

/// A youth as the API takes it: a BSN, or an id without one.
enum Youth {
    Bsn(String),
    Alt(pb::AltYouthId),
}

impl YouthArgs {
    fn youth(self) -> anyhow::Result<Youth> {
        match (self.bsn, self.alt_youth_id) {
            (Some(bsn), _) => Ok(Youth::Bsn(bsn)),
            (None, Some(alt)) => {
                let mut parts = alt.splitn(3, ':');
                let (Some(issuer), Some(number), Some(birth_date)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    anyhow::bail!("--alt-youth-id is ISSUER:NUMBER:BIRTH-DATE, got {alt:?}");
                };
                Ok(Youth::Alt(pb::AltYouthId {
                    issuer: issuer.to_owned(),
                    number: number.to_owned(),
                    birth_date: birth_date.to_owned(),
                }))
            }
            (None, None) => anyhow::bail!("--bsn or --alt-youth-id is required"),
        }
    }
}

#[derive(Debug, Args)]
struct Register {
    /// Your id for this request: sent again, it returns the same signal.
    #[arg(long)]
    request_id: String,
    #[command(flatten)]
    youth: YouthArgs,
    #[arg(long)]
    professional_id: String,
    #[arg(long)]
    name: String,
    #[arg(long)]
    email: String,
    #[arg(long, default_value = "")]
    phone: String,
    /// The planned removal date (YYYY-MM-DD); the node's default when absent.
    #[arg(long, default_value = "")]
    removal_date: String,
    /// The parents were told (date in --informed-on).
    #[arg(long)]
    informed_parents: bool,
    /// The youth was told (date in --informed-on).
    #[arg(long)]
    informed_youth: bool,
    /// When they were told (YYYY-MM-DD).
    #[arg(long, required_unless_present = "not_informed")]
    informed_on: Option<String>,
    /// Nobody was told, for this reason.
    #[arg(long, value_enum, conflicts_with_all = ["informed_parents", "informed_youth", "informed_on"])]
    not_informed: Option<Safety>,
}

impl Client {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        let files = TlsFiles {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            ..Default::default()
        };
        let config = tls::client_config(&files).context("the client certificate")?;
        let channel = tls::channel(tls::Addresses::one(self.addr), &self.server_name, config)
            .context("--server-name")?;
        let mut region = RegionServiceClient::new(channel.clone());
        let mut rights = RightsServiceClient::new(channel);
        let lines = match self.command {
            ClientCommand::Register(register) => {
                let response = region
                    .register_signal(register.request()?)
                    .await
                    .map_err(refusal)?
                    .into_inner();
                let signal = response.signal.unwrap_or_default();
                let outcome = if response.replayed {
                    "replayed"
                } else if response.already_registered {
                    "already registered"
                } else {
                    "registered"
                };
                if self.json {
                    vec![
                        serde_json::json!({
                            "outcome": outcome,
                            "signal_id": signal.signal_id,
                            "state": state(signal.state),
                            "planned_removal_date": signal.planned_removal_date,
                        })
                        .to_string(),
                    ]
                } else {
                    vec![format!(
                        "{outcome}: signal {} ({}, planned removal {})",
                        signal.signal_id,
                        state(signal.state),
                        signal.planned_removal_date
                    )]
                }
            }
            ClientCommand::Matches {
                professional_id,
                signal,
            } => {
                let mut matches = Vec::new();
                let mut page_token = String::new();
                loop {
                    let page = region
                        .list_matches(pb::ListMatchesRequest {
                            signal_id: signal.clone().unwrap_or_default(),
                            acting_professional_id: professional_id.clone(),
                            page_size: 500,
                            page_token,
                        })
                        .await
                        .map_err(refusal)?
                        .into_inner();
                    matches.extend(page.matches);
                    if page.next_page_token.is_empty() {
                        break;
                    }
                    page_token = page.next_page_token;
                }
                matches_output(&matches, self.json)
            }
            ClientCommand::Export { youth, officer_id } => {
                let youth = youth.youth()?;
                let mut signals = Vec::new();
                let mut page_token = String::new();
                loop {
                    let page = rights
                        .export_youth(pb::ExportYouthRequest {
                            youth: Some(match &youth {
                                Youth::Bsn(bsn) => {
                                    pb::export_youth_request::Youth::Bsn(bsn.clone())
                                }
                                Youth::Alt(alt) => {
                                    pb::export_youth_request::Youth::AltYouthId(alt.clone())
                                }
                            }),
                            officer_id: officer_id.clone(),
                            page_size: 100,
                            page_token,
                        })
                        .await
                        .map_err(refusal)?
                        .into_inner();
                    signals.extend(page.signals);
                    if page.next_page_token.is_empty() {
                        break;
                    }
                    page_token = page.next_page_token;
                }
                export_output(&signals, self.json)
            }
            ClientCommand::Erase {
                youth,
                officer_id,
                reference,
                signals,
            } => {
                let erased = rights
                    .order_erasure(pb::OrderErasureRequest {
                        youth: Some(match youth.youth()? {
                            Youth::Bsn(bsn) => pb::order_erasure_request::Youth::Bsn(bsn),
                            Youth::Alt(alt) => pb::order_erasure_request::Youth::AltYouthId(alt),
                        }),
                        signal_ids: signals,
                        officer_id,
                        reference,
                    })
                    .await
                    .map_err(refusal)?
                    .into_inner()
                    .erased_signal_ids;
                if self.json {
                    vec![serde_json::json!({ "erased_signal_ids": erased }).to_string()]
                } else {
                    let mut lines: Vec<String> =
                        erased.iter().map(|id| format!("erased {id}")).collect();
                    lines.push(format!("{} signals erased", erased.len()));
                    lines
                }
            }
            ClientCommand::Withdraw {
                signal,
                reason,
                professional_id,
            } => {
                let response = region
                    .withdraw_signal(pb::WithdrawSignalRequest {
                        signal_id: signal.clone(),
                        reason: match reason {
                            Reason::Unjustified => pb::WithdrawReason::Unjustified,
                            Reason::RiskGone => pb::WithdrawReason::RiskGone,
                        } as i32,
                        acting_professional_id: professional_id,
                    })
                    .await
                    .map_err(refusal)?
                    .into_inner();
                let outcome = if response.deleted {
                    "deleted"
                } else {
                    "archived"
                };
                if self.json {
                    vec![serde_json::json!({ "signal_id": signal, "outcome": outcome }).to_string()]
                } else {
                    vec![format!("signal {signal} {outcome}")]
                }
            }
        };
        let mut out = String::new();
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
        print(&out);
        Ok(())
    }
}

#[allow(clippy::print_stdout)] // the command's answer, for the person at the terminal
fn print(text: &str) {
    print!("{text}");
}

impl Register {
    fn request(self) -> anyhow::Result<pb::RegisterSignalRequest> {
        let youth = match self.youth.youth()? {
            Youth::Bsn(bsn) => pb::register_signal_request::Youth::Bsn(bsn),
            Youth::Alt(alt) => pb::register_signal_request::Youth::AltYouthId(alt),
        };
        let record = match self.not_informed {
            Some(reason) => pb::informing_record::Record::NotInformed(pb::NotInformed {
                reason: match reason {
                    Safety::YouthSafety => pb::NotInformedReason::YouthSafety,
                    Safety::ProfessionalSafety => pb::NotInformedReason::ProfessionalSafety,
                } as i32,
            }),
            None => pb::informing_record::Record::Informed(pb::Informed {
                parents: self.informed_parents,
                youth: self.informed_youth,
                informed_on: self.informed_on.unwrap_or_default(),
            }),
        };
        Ok(pb::RegisterSignalRequest {
            request_id: self.request_id,
            youth: Some(youth),
            professional: Some(pb::ProfessionalContact {
                professional_id: self.professional_id,
                name: self.name,
                email: self.email,
                phone: self.phone,
            }),
            planned_removal_date: self.removal_date,
            informing: Some(pb::InformingRecord {
                record: Some(record),
            }),
        })
    }
}

fn state(state: i32) -> &'static str {
    match pb::SignalState::try_from(state) {
        Ok(pb::SignalState::Active) => "active",
        Ok(pb::SignalState::Inactive) => "inactive",
        _ => "unknown",
    }
}

fn matches_output(matches: &[pb::Match], json: bool) -> Vec<String> {
    let rows = matches.iter().map(|m| {
        let other = m.counterpart.clone().unwrap_or_default();
        let contact = other.professional.unwrap_or_default();
        let match_type = match pb::MatchType::try_from(m.match_type) {
            Ok(pb::MatchType::Youth) => "youth",
            Ok(pb::MatchType::Family) => "family",
            _ => "unknown",
        };
        let kind = match pb::NoticeKind::try_from(m.kind) {
            Ok(pb::NoticeKind::Match) => "match",
            Ok(pb::NoticeKind::History) => "history",
            _ => "unknown",
        };
        (
            m,
            match_type,
            kind,
            other.organisation_name,
            contact,
            other.signal_id,
            state(other.state),
            other.region_id,
        )
    });
    if json {
        return rows
            .map(
                |(m, match_type, kind, org, contact, other, state, region)| {
                    serde_json::json!({
                        "notice_id": m.notice_id,
                        "signal_id": m.signal_id,
                        "found_at": m.found_at,
                        "match_type": match_type,
                        "kind": kind,
                        "counterpart": {
                            "organisation_name": org,
                            "name": contact.name,
                            "email": contact.email,
                            "phone": contact.phone,
                            "signal_id": other,
                            "state": state,
                            "region_id": region,
                        },
                    })
                    .to_string()
                },
            )
            .collect();
    }
    let mut lines = vec![format!(
        "{:<36}  {:<6}  {:<7}  {:<28}  {:<24}  {:<32}  {:<8}  {}",
        "your signal", "type", "kind", "other organisation", "name", "e-mail", "state", "region"
    )];
    lines.extend(
        rows.map(|(m, match_type, kind, org, contact, _, state, region)| {
            format!(
                "{:<36}  {:<6}  {:<7}  {:<28}  {:<24}  {:<32}  {:<8}  {}",
                m.signal_id, match_type, kind, org, contact.name, contact.email, state, region
            )
        }),
    );
    lines.push(format!("{} matches", matches.len()));
    lines
}

fn export_output(signals: &[pb::ExportedSignal], json: bool) -> Vec<String> {
    if json {
        return signals
            .iter()
            .map(|exported| {
                let signal = exported.signal.clone().unwrap_or_default();
                let contact = signal.professional.clone().unwrap_or_default();
                serde_json::json!({
                    "signal_id": signal.signal_id,
                    "organisation_id": signal.organisation_id,
                    "organisation_name": signal.organisation_name,
                    "professional": { "name": contact.name, "email": contact.email },
                    "state": state(signal.state),
                    "registered_at": signal.registered_at,
                    "planned_removal_date": signal.planned_removal_date,
                    "notices": matches_output(&exported.notices, true)
                        .iter()
                        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                        .collect::<Vec<_>>(),
                })
                .to_string()
            })
            .collect();
    }
    let mut lines = vec![format!(
        "{:<36}  {:<28}  {:<8}  {:<26}  {:<10}  {}",
        "signal", "organisation", "state", "registered", "removal", "notices"
    )];
    for exported in signals {
        let signal = exported.signal.clone().unwrap_or_default();
        lines.push(format!(
            "{:<36}  {:<28}  {:<8}  {:<26}  {:<10}  {}",
            signal.signal_id,
            signal.organisation_name,
            state(signal.state),
            signal.registered_at,
            signal.planned_removal_date,
            exported.notices.len()
        ));
    }
    lines.push(format!("{} signals", signals.len()));
    lines
}

/// A refusal said plainly: the code, the node's message, and each field it named.
fn refusal(status: tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt;
    let mut text = format!("refused ({:?}): {}", status.code(), status.message());
    if let Some(request) = status.get_details_bad_request() {
        for violation in request.field_violations {
            let _ = write!(text, "\n  {}: {}", violation.field, violation.description);
        }
    }
    anyhow::anyhow!(text)
}
