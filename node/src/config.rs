//! Typed settings: built-in defaults, then a TOML file (`--config`), then `VIX_` environment
//! variables with `__` between levels (`VIX_REGION__LISTEN=127.0.0.1:6000`). Parsed once in
//! `main` and passed down; tests build settings in code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::store::GroupCommit;
use crate::tls::TlsFiles;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    #[serde(default)]
    pub log: LogSettings,
    /// Present when this process may run as a region node.
    pub region: Option<RegionSettings>,
    /// Present when this process may run as the hub.
    pub hub: Option<HubSettings>,
    /// Present when this process may run as the pseudonym service.
    pub pseudonymizer: Option<PseudonymizerSettings>,
}

/// The pseudonym service (`vix-node pseudonymizer`): one per federation, run by the national
/// operator apart from the hub, so that neither holds both the pseudonyms and their key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PseudonymizerSettings {
    /// Address of the evaluation API (mutual TLS; region certificates only).
    pub listen: SocketAddr,
    /// The federation's organisation registry: its regions are the ones served.
    pub organisation_registry_file: PathBuf,
    /// The service's certificate (`urn:vix:pseudonymizer`) and the federation CA.
    pub tls: TlsFiles,
    /// Every live key version with its seed file (`vix-node key-file` writes one). Two during a
    /// rotation: elements are evaluated under each.
    pub keys: Vec<KeyFileSetting>,
    /// The version new pseudonyms are stored under.
    pub current_key_version: u32,
    /// The hash-chained audit of evaluation volume per region (created on first start).
    pub audit_file: PathBuf,
    /// Elements per region (`[pseudonymizer.rate_limit]`).
    #[serde(default)]
    pub rate_limit: crate::pseudonymizer::rate::RateLimit,
    /// Where Prometheus scrapes `GET /metrics`; absent, no metrics are served.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Streams per connection and the request timeout (`[pseudonymizer.limits]`).
    #[serde(default)]
    pub limits: crate::limits::ServerLimits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSettings {
    /// Address of the federation API (mutual TLS).
    pub listen: SocketAddr,
    /// The database: a SQLite file (a path, created with its folder on first start) for one
    /// machine, or `postgres://…` for several hub instances on one PostgreSQL database.
    pub database: crate::store::database_location::DatabaseLocation,
    /// The PostgreSQL connection pool and notice polling (`[hub.postgres]`); unused on SQLite.
    #[serde(default)]
    pub postgres: crate::store::postgres::PgSettings,
    /// Where Prometheus scrapes `GET /metrics` (plain HTTP: keep it on an operators' network);
    /// absent, no metrics are served.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// The federation's organisation registry (TOML, see `domain::organisations`): its
    /// regions are the ones whose certificates (`urn:vix:region:<id>`) the hub serves, and an
    /// event is accepted only for an organisation the registry gives to the calling region.
    pub organisation_registry_file: PathBuf,
    pub tls: TlsFiles,
    /// How concurrent writes share one commit (`[hub.group_commit]`).
    #[serde(default)]
    pub group_commit: GroupCommit,
    /// Days an acknowledged notice-log entry is kept before it is pruned.
    #[serde(default = "default_log_retention_days")]
    pub log_retention_days: u32,
    /// Streams per connection and the request timeout (`[hub.limits]`).
    #[serde(default)]
    pub limits: crate::limits::ServerLimits,
}

fn default_log_retention_days() -> u32 {
    90
}

/// How a region node reaches the hub. Without it the node runs alone and its outbox waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubLink {
    /// The hub's address; with several hub instances, the preferred one.
    pub address: SocketAddr,
    /// Further hub instances (on the same database), tried in turn when the one in use cannot
    /// be reached: refused, timed out, or a failed TLS handshake. Empty for a single hub.
    #[serde(default)]
    pub fallback_addresses: Vec<SocketAddr>,
    /// The name the hub's server certificate must carry.
    pub server_name: String,
    /// This region's client certificate (`urn:vix:region:<id>`) and the federation CA.
    pub tls: TlsFiles,
    /// The longest wait between attempts to reach the hub, in milliseconds. The link should be
    /// up: after an outage the region is back within this much of the hub.
    #[serde(default = "default_retry_delay_max_ms")]
    pub retry_delay_max_ms: u64,
}

fn default_retry_delay_max_ms() -> u64 {
    3_000
}

impl HubLink {
    /// Every hub instance, `address` first.
    pub fn addresses(&self) -> crate::tls::Addresses {
        crate::tls::Addresses::new(self.address, self.fallback_addresses.iter().copied())
    }
}

/// How the node reaches its SMTP relay for notice e-mails (`[region.smtp]`). Without it no
/// e-mail is sent: the jobs wait in the e-mail outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// The relay's host name (also the name its certificate must carry).
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// The sender, e.g. `Verwijsindex Noord <noreply@vix-noord.example.nl>`.
    pub sender: String,
    /// A file with the relay's user name on the first line and its password on the second;
    /// none for a relay that does not authenticate.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust beside Mozilla's roots, for a relay with a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// E-mails taken per round.
    #[serde(default = "default_smtp_batch")]
    pub batch: u32,
    /// The longest wait between tries of one e-mail, in milliseconds.
    #[serde(default = "default_smtp_retry_delay_max_ms")]
    pub retry_delay_max_ms: u64,
    /// How often the outbox is read without a new notice to wake it, in milliseconds.
    #[serde(default = "default_smtp_poll_ms")]
    pub poll_ms: u64,
    /// A connection or an SMTP command that takes longer fails (and is tried again later).
    #[serde(default = "default_smtp_timeout_ms")]
    pub timeout_ms: u64,
    /// How long a mail taken for sending is left to its sender, in milliseconds, before
    /// another round (or another instance of the node) may take it: a sender that died
    /// mid-send is covered after this. Longer than a round takes.
    #[serde(default = "default_smtp_claim_ms")]
    pub claim_ms: u64,
}

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain SMTP upgraded with STARTTLS, which is required (usually port 587).
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
    /// No TLS: only to a relay on this machine (localhost or a loopback address).
    Plain,
}

fn default_unhealthy_after_ms() -> u64 {
    30_000
}

fn default_smtp_batch() -> u32 {
    50
}

fn default_smtp_retry_delay_max_ms() -> u64 {
    3_600_000
}

fn default_smtp_poll_ms() -> u64 {
    5_000
}

fn default_smtp_timeout_ms() -> u64 {
    30_000
}

fn default_smtp_claim_ms() -> u64 {
    600_000
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` for people, `json` for log shippers.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `vix_node=debug`; `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSettings {
    /// This region's id; the hub knows it from the region's client certificate.
    pub region_id: String,
    /// Address of the region API (mutual TLS).
    pub listen: SocketAddr,
    /// The database: a SQLite file (a path, created with its folder on first start) for one
    /// machine, or `postgres://…` for a node on PostgreSQL (one or more instances on one
    /// database).
    pub database: crate::store::database_location::DatabaseLocation,
    /// The PostgreSQL connection pool (`[region.postgres]`); unused on SQLite.
    #[serde(default)]
    pub postgres: crate::store::postgres::PgSettings,
    /// Hexadecimal federation key shared by the region nodes, never by the hub: pseudonyms
    /// made on the node, for one machine or a development federation. Give this or
    /// `[region.pseudonym_service]`.
    #[serde(default)]
    pub federation_key_file: Option<PathBuf>,
    /// The version of `federation_key_file`, written beside every pseudonym.
    #[serde(default)]
    pub federation_key_version: Option<u32>,
    /// Federation keys being retired after a rotation (`[[region.previous_federation_keys]]`):
    /// what was stored under them is still found.
    #[serde(default)]
    pub previous_federation_keys: Vec<KeyFileSetting>,
    /// The pseudonym service (blind pseudonyms, RFC 9497): no key on the node can make a
    /// pseudonym. For a federation in production.
    #[serde(default)]
    pub pseudonym_service: Option<PseudonymServiceLink>,
    /// The person registry (BRP stand-in): a JSON file in the format of the BRP test fixture.
    pub person_registry_file: PathBuf,
    /// The federation's organisation registry (TOML, see `domain::organisations`), the same
    /// file as the hub's: this region serves the organisations it gives to `region_id`
    /// (certificates `urn:vix:org:<id>`), and shows each by the name it gives.
    pub organisation_registry_file: PathBuf,
    /// Municipality codes (from `urn:vix:municipality:<code>`) whose officers may exercise the
    /// rights of youths and parents here: export, correction, erasure orders.
    #[serde(default)]
    pub municipalities: Vec<String>,
    pub tls: TlsFiles,
    /// The national hub; absent for a region that runs alone.
    pub hub: Option<HubLink>,
    /// The SMTP relay for notice e-mails; absent, the e-mails wait in the outbox.
    #[serde(default)]
    pub smtp: Option<SmtpSettings>,
    /// Where Prometheus scrapes `GET /metrics` (plain HTTP: keep it on an operators' network);
    /// absent, no metrics are served.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// How concurrent writes share one commit (`[region.group_commit]`).
    #[serde(default)]
    pub group_commit: GroupCommit,
    /// Streams per connection and the request timeout (`[region.limits]`).
    #[serde(default)]
    pub limits: crate::limits::ServerLimits,
    /// How long the database or the hub link may be down, in milliseconds, before gRPC health
    /// answers `NOT_SERVING`.
    #[serde(default = "default_unhealthy_after_ms")]
    pub unhealthy_after_ms: u64,
    /// For process tests only: a named point where the node stops and waits to be killed
    /// (`VIX_REGION__FAILPOINT=notice-stored-before-ack`). Unset in every real deployment.
    #[serde(default)]
    pub failpoint: Option<String>,
    /// Taking over the signals of regions that leave the federation (`[region.adoption]`);
    /// absent, a handed-over signal is kept aside as a dead letter.
    #[serde(default)]
    pub adoption: Option<AdoptionSettings>,
}

/// One key version and the file that holds its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFileSetting {
    pub version: u32,
    pub file: PathBuf,
}

/// How a region node reaches the pseudonym service (`[region.pseudonym_service]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PseudonymServiceLink {
    pub address: SocketAddr,
    /// The name the service's certificate must carry (with `urn:vix:pseudonymizer`).
    pub server_name: String,
    /// This region's client certificate (`urn:vix:region:<id>`) and the federation CA.
    pub tls: TlsFiles,
    /// The node's own key for idempotency keys (64 hex characters, `vix-node key-file`): they
    /// never leave the node and must survive rotations of the service's keys.
    pub request_key_file: PathBuf,
    /// A registration waits this long for the service, then answers UNAVAILABLE.
    #[serde(default = "default_pseudonym_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_pseudonym_timeout_ms() -> u64 {
    5_000
}

/// A successor region's side of a decommission (`vix-node handover-key` makes the key).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdoptionSettings {
    /// The handover secret (64 hex characters, readable by the node's user only); its public
    /// key goes to the leaving region's operator.
    pub key_file: PathBuf,
    /// The regions whose signals this region takes over; a handover from any other is refused.
    pub predecessors: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    Missing(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
}

/// Reads the settings from `file` (if given) and the `VIX_` variables of `env`.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigError> {
    let toml = match file {
        None => None,
        Some(file) if !file.is_file() => return Err(ConfigError::Missing(file.to_owned())),
        Some(file) => Some(Toml::file_exact(file)),
    };
    extract(toml, env)
}

/// As [`load`], with the TOML text itself instead of a file (the fuzz target feeds it here).
pub fn load_str(
    toml: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigError> {
    extract(Some(Toml::string(toml)), env)
}

fn extract(
    toml: Option<figment::providers::Data<Toml>>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(LogDefaults::default()));
    if let Some(toml) = toml {
        figment = figment.merge(toml);
    }
    // figment reads the process environment; to keep configuration explicit (and testable)
    // the variables are passed in and served through a custom provider.
    let vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(key, _)| key.starts_with("VIX_"))
        .collect();
    figment = figment.merge(EnvVars(vars));
    figment
        .extract()
        .map_err(|error| ConfigError::Invalid(Box::new(error)))
}

#[derive(Default, Serialize)]
struct LogDefaults {
    log: LogSettings,
}

/// `VIX_A__B=value` as the nested key `a.b`, with values parsed like figment's `Env`.
struct EnvVars(Vec<(String, String)>);

impl figment::Provider for EnvVars {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("VIX_ environment variables")
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut dict = figment::value::Dict::new();
        for (key, value) in &self.0 {
            let Some(rest) = key.strip_prefix("VIX_") else {
                continue;
            };
            check_env_value(key, value).map_err(figment::Error::from)?;
            let path = rest.to_ascii_lowercase().replace("__", ".");
            let parsed: figment::value::Value = value
                .parse()
                .unwrap_or_else(|_| figment::value::Value::from(value.clone()));
            let nested = figment::util::nest(&path, parsed);
            if let figment::value::Value::Dict(_, nested) = nested {
                dict = merge_dicts(dict, nested);
            }
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// Values figment 0.10's value parser cannot take safely: it unescapes a quoted value by
/// slicing it at a character index (a multi-byte character before a backslash panics or drops
/// text), and it nests arrays and tables without a limit (deep nesting overflows the stack).
fn check_env_value(key: &str, value: &str) -> Result<(), String> {
    if value.contains('"') && value.contains('\\') && !value.is_ascii() {
        return Err(format!(
            "{key}: a quoted value with a backslash escape must be ASCII"
        ));
    }
    let mut depth = 0_usize;
    for c in value.chars() {
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > ENV_NESTING_MAX {
            return Err(format!(
                "{key}: nested more than {ENV_NESTING_MAX} levels deep"
            ));
        }
    }
    Ok(())
}

/// Deeper than any setting of vix, far below what overflows the stack.
const ENV_NESTING_MAX: usize = 16;

fn merge_dicts(mut base: figment::value::Dict, more: figment::value::Dict) -> figment::value::Dict {
    use figment::value::Value;
    for (key, value) in more {
        let merged = match (base.remove(&key), value) {
            (Some(Value::Dict(tag, inner)), Value::Dict(_, more_inner)) => {
                Value::Dict(tag, merge_dicts(inner, more_inner))
            }
            (_, value) => value,
        };
        base.insert(key, merged);
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGION_TOML: &str = r#"
        [region]
        region_id = "north"
        listen = "127.0.0.1:50051"
        database = "var/dev/north.sqlite"
        federation_key_file = "var/dev/pki/federation.key"
        federation_key_version = 1
        person_registry_file = "../shared/fixtures/brp-test-persons.json"
        organisation_registry_file = "var/dev/pki/organisations.toml"
        [region.tls]
        ca = "var/dev/pki/ca.pem"
        cert = "var/dev/pki/region-north-server.pem"
        key = "var/dev/pki/region-north-server.key"
        crls = ["var/dev/pki/crl.pem"]
    "#;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn file_then_environment() {
        let file = write(REGION_TOML);
        let env = [
            ("VIX_REGION__LISTEN".to_owned(), "127.0.0.1:6000".to_owned()),
            ("VIX_LOG__FORMAT".to_owned(), "json".to_owned()),
            ("OTHER".to_owned(), "ignored".to_owned()),
        ];
        let settings = load(Some(file.path()), env).unwrap();
        let region = settings.region.unwrap();
        assert_eq!(region.listen, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(region.region_id, "north");
        assert_eq!(settings.log.format, LogFormat::Json);
        assert_eq!(settings.log.filter, "info");
    }

    #[test]
    fn a_typo_is_a_clear_error() {
        let file = write(&REGION_TOML.replace("listen =", "lissen ="));
        let error = load(Some(file.path()), []).unwrap_err().to_string();
        assert!(error.contains("lissen"), "{error}");
    }

    #[test]
    fn a_bad_address_is_a_clear_error() {
        let file = write(REGION_TOML);
        let env = [("VIX_REGION__LISTEN".to_owned(), "nowhere".to_owned())];
        let error = load(Some(file.path()), env).unwrap_err().to_string();
        assert!(error.contains("listen"), "{error}");
    }

    #[test]
    fn the_example_configs_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
        for name in ["hub.toml", "region.toml", "pseudonymizer.toml"] {
            load(Some(&root.join(name)), []).unwrap_or_else(|error| panic!("{name}: {error}"));
        }
    }

    /// Found by the `config` fuzz target: figment 0.10's value parser cuts a quoted string at
    /// a character index taken as a byte index, so a multi-byte character before a backslash
    /// escape panicked (or silently dropped text).
    #[test]
    fn a_quoted_non_ascii_value_with_an_escape_is_a_clear_error() {
        for value in [r#""é\n""#, r#"["éé\t"]"#] {
            let env = [("VIX_LOG__FILTER".to_owned(), value.to_owned())];
            let error = load_str("", env).unwrap_err().to_string();
            assert!(error.contains("VIX_LOG__FILTER"), "{error}");
            assert!(!error.contains('é'), "the value is not repeated: {error}");
        }
        // An ASCII escape, and non-ASCII without one, read as before.
        let env = [
            ("VIX_LOG__FILTER".to_owned(), r#""info\twarn""#.to_owned()),
            ("VIX_LOG__FORMAT".to_owned(), r#""jsön""#.to_owned()),
        ];
        let error = load_str("", env).unwrap_err().to_string();
        assert!(error.contains("jsön"), "{error}");
        let env = [("VIX_LOG__FILTER".to_owned(), r#""info\twarn""#.to_owned())];
        assert_eq!(load_str("", env).unwrap().log.filter, "info\twarn");
    }

    #[test]
    fn tls_timings_have_defaults_and_can_be_set() {
        let file = write(REGION_TOML);
        let tls = load(Some(file.path()), []).unwrap().region.unwrap().tls;
        assert_eq!(
            (
                tls.crl_reload_secs,
                tls.max_connection_age_secs,
                tls.max_connection_age_grace_secs
            ),
            (5, 900, 60)
        );
        let env = [
            (
                "VIX_REGION__TLS__CRL_RELOAD_SECS".to_owned(),
                "1".to_owned(),
            ),
            (
                "VIX_REGION__TLS__MAX_CONNECTION_AGE_SECS".to_owned(),
                "0".to_owned(),
            ),
        ];
        let tls = load(Some(file.path()), env).unwrap().region.unwrap().tls;
        assert_eq!((tls.crl_reload_secs, tls.max_connection_age_secs), (1, 0));
        let typo = write(&format!("{REGION_TOML}crl_reload_sec = 1\n"));
        let error = load(Some(typo.path()), []).unwrap_err().to_string();
        assert!(error.contains("crl_reload_sec"), "{error}");
    }

    /// [`REGION_TOML`] with a `[region.hub]` section holding `extra` lines.
    fn with_hub_link(extra: &str) -> String {
        format!(
            r#"{REGION_TOML}
            [region.hub]
            address = "127.0.0.1:50050"
            server_name = "localhost"
            {extra}
            [region.hub.tls]
            ca = "var/dev/pki/ca.pem"
            cert = "var/dev/pki/region-north-client.pem"
            key = "var/dev/pki/region-north-client.key"
            "#
        )
    }

    #[test]
    fn a_hub_link_without_fallback_addresses_has_one_address() {
        let file = write(&with_hub_link(""));
        let hub = load(Some(file.path()), [])
            .unwrap()
            .region
            .unwrap()
            .hub
            .unwrap();
        assert_eq!(hub.fallback_addresses, []);
        let one: SocketAddr = "127.0.0.1:50050".parse().unwrap();
        assert_eq!(hub.addresses(), crate::tls::Addresses::one(one));
    }

    #[test]
    fn fallback_addresses_follow_the_address_in_order() {
        let file = write(&with_hub_link(
            r#"fallback_addresses = ["10.0.0.2:50050", "10.0.0.3:50050"]"#,
        ));
        let hub = load(Some(file.path()), [])
            .unwrap()
            .region
            .unwrap()
            .hub
            .unwrap();
        let addr = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert_eq!(
            hub.fallback_addresses,
            [addr("10.0.0.2:50050"), addr("10.0.0.3:50050")]
        );
        assert_eq!(
            hub.addresses(),
            crate::tls::Addresses::new(
                addr("127.0.0.1:50050"),
                [addr("10.0.0.2:50050"), addr("10.0.0.3:50050")]
            )
        );
        // As an environment variable, like every other setting.
        let env = [(
            "VIX_REGION__HUB__FALLBACK_ADDRESSES".to_owned(),
            r#"["10.0.0.4:50050"]"#.to_owned(),
        )];
        let hub = load(Some(file.path()), env)
            .unwrap()
            .region
            .unwrap()
            .hub
            .unwrap();
        assert_eq!(hub.fallback_addresses, [addr("10.0.0.4:50050")]);
        // A malformed address stops the node instead of being skipped.
        let bad = write(&with_hub_link(r#"fallback_addresses = ["hub-2"]"#));
        let error = load(Some(bad.path()), []).unwrap_err().to_string();
        assert!(error.contains("fallback_addresses"), "{error}");
    }

    #[test]
    fn the_dev_configs_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dev");
        for name in [
            "hub.toml",
            "region-north.toml",
            "region-south.toml",
            "pseudonymizer.toml",
        ] {
            load(Some(&root.join(name)), []).unwrap_or_else(|error| panic!("{name}: {error}"));
        }
    }

    /// Found by the `config` fuzz target: figment 0.10's value parser recurses once per `[`,
    /// so a long run of them overflowed the stack (SIGSEGV under the fuzzer, an abort here).
    #[test]
    fn a_deeply_nested_value_is_a_clear_error() {
        let env = [("VIX_LOG__FILTER".to_owned(), "[".repeat(5000))];
        let error = load_str("", env).unwrap_err().to_string();
        assert!(error.contains("VIX_LOG__FILTER: nested more"), "{error}");
        let env = [(
            "VIX_REGION__MUNICIPALITIES".to_owned(),
            r#"["0014", "0363"]"#.to_owned(),
        )];
        let error = load_str("", env).unwrap_err().to_string();
        assert!(error.contains("missing field"), "{error}");
    }

    #[test]
    fn the_dev_organisation_registry_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        vix_certs_dev::generate(dir.path(), &vix_certs_dev::DevPkiSpec::default()).unwrap();
        let text =
            std::fs::read_to_string(dir.path().join(vix_certs_dev::files::ORGANISATION_REGISTRY))
                .unwrap();
        let registry = crate::domain::OrganisationRegistry::parse_toml(&text).unwrap();
        for org in vix_certs_dev::DevPkiSpec::default().organisations {
            let id = crate::domain::OrganisationId::parse(&org.id).unwrap();
            let entry = registry.get(&id).unwrap();
            assert_eq!(
                (entry.name.as_str(), entry.region.as_str()),
                (org.name.as_str(), org.region.as_str())
            );
        }
    }

    #[test]
    fn a_missing_file_is_a_clear_error() {
        let error = load(Some(Path::new("/nonexistent.toml")), []).unwrap_err();
        assert!(matches!(error, ConfigError::Missing(_)));
    }
}
