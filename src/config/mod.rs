//! The server configuration: a YAML file, or the embedded defaults when there is none.
//!
//! Every key has a default, unknown keys are errors that name the file, line and key, and `hsmwatch config example`
//! prints [`EXAMPLE`], a commented file that a test keeps equal to the defaults.

pub mod cloud;
mod listen;
pub mod notifiers;
pub mod secret;
pub mod snmp;
pub mod units;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

pub use listen::{ListenConfig, NetworkZone, TcpListenerConfig, TlsListenerConfig, UdpListenerConfig};
pub use units::ByteSize;

/// The commented example configuration, equal to the built-in defaults.
pub const EXAMPLE: &str = include_str!("example.yaml");

/// Default syslog address for UDP and TCP: all interfaces, unprivileged port 5514.
pub const DEFAULT_SYSLOG_ADDRESS: &str = "0.0.0.0:5514";

/// Why a configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The file is not a valid configuration (syntax, unknown key, bad value); the message names line and column.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where syslog is received. When the key is present, only the listeners it lists are opened.
    #[serde(default)]
    pub listen: ListenConfig,
    /// The SQLite database and how the writer batches.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Where rules and decoders come from.
    #[serde(default)]
    pub rules: RulesConfig,
    /// Operational logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The tamper-evident chain.
    #[serde(default)]
    pub chain: ChainConfig,
    /// The HSM inventory.
    #[serde(default)]
    pub inventory: InventoryConfig,
    /// What becomes of alerts.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// Where alerts are delivered, by name (rules name them in `notify:`; without it a rule goes to every notifier
    /// whose `min_severity` its severity reaches).
    #[serde(default)]
    pub notifiers: std::collections::BTreeMap<String, notifiers::NotifierConfig>,
    /// The HTTP API, metrics and health endpoints; `http: null` turns the server off.
    #[serde(default, deserialize_with = "http_or_off")]
    pub http: HttpConfig,
    /// Luna appliances polled over SNMPv3.
    #[serde(default)]
    pub snmp: snmp::SnmpConfig,
    /// AWS CloudHSM clusters, HSMs and backups read from the cloud's API.
    #[serde(default)]
    pub cloud: cloud::CloudConfig,
}

/// `http: null` is the HTTP server turned off, as `http: {address: null}` is.
fn http_or_off<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<HttpConfig, D::Error> {
    let given = Option::<HttpConfig>::deserialize(deserializer)?;
    Ok(given.unwrap_or(HttpConfig { address: None, ..HttpConfig::default() }))
}

/// Default address of the HTTP API: loopback only, so that no token is needed out of the box.
pub const DEFAULT_HTTP_ADDRESS: &str = "127.0.0.1:8514";

/// The HTTP server: `/healthz`, `/readyz`, `/metrics`, `/api/*`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where it listens; null turns it off.
    #[serde(default = "default_http_address")]
    pub address: Option<SocketAddr>,
    /// The bearer token of `/api/*`, from this environment variable...
    #[serde(default)]
    pub token_env: Option<String>,
    /// ...or from this file. Required when `address` is not a loopback address.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM)...
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// ...and its private key (PEM). Required, with `cert_file`, when `address` is not loopback, unless
    /// `allow_plaintext`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy on the same host, say).
    #[serde(default)]
    pub allow_plaintext: bool,
    /// `/metrics` without the token even when one is set (a Prometheus that cannot send it).
    #[serde(default)]
    pub metrics_public: bool,
    /// How long a dashboard sign-in lasts.
    #[serde(default = "default_session_lifetime", with = "units::duration")]
    pub session_lifetime: Duration,
    /// The dashboard's address as people reach it (`https://hsmwatch.example.net`): every notification links to its
    /// alert's page under it.
    #[serde(default, deserialize_with = "units::external_url")]
    pub external_url: Option<String>,
}

fn default_http_address() -> Option<SocketAddr> {
    Some(DEFAULT_HTTP_ADDRESS.parse().expect("the default HTTP address is a valid literal"))
}

fn default_session_lifetime() -> Duration {
    Duration::from_secs(12 * 3600)
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            address: default_http_address(),
            token_env: None,
            token_file: None,
            cert_file: None,
            key_file: None,
            allow_plaintext: false,
            metrics_public: false,
            session_lifetime: default_session_lifetime(),
            external_url: None,
        }
    }
}

impl HttpConfig {
    /// Whether it serves HTTPS.
    pub fn tls(&self) -> bool {
        self.cert_file.is_some() && self.key_file.is_some()
    }
}

/// What becomes of alerts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// An alert whose events were received longer ago than this before the rules evaluated them (an import of
    /// archives, a backlog after downtime) is recorded but not sent; null sends every alert, however old.
    #[serde(default = "default_notify_horizon", with = "units::optional_duration")]
    pub notify_horizon: Option<Duration>,
    /// Acknowledging or resolving an alert (by a person, or by resolve_after) notifies the notifiers the alert went
    /// to; false records the change without telling them.
    #[serde(default = "notify_changes_by_default")]
    pub notify_changes: bool,
}

fn notify_changes_by_default() -> bool {
    true
}

fn default_notify_horizon() -> Option<Duration> {
    Some(Duration::from_secs(3600))
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig { notify_horizon: default_notify_horizon(), notify_changes: true }
    }
}

/// The HSM inventory.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryConfig {
    /// A host that sent nothing for this long is shown as silent by `hsmwatch hosts`.
    #[serde(default = "default_silent_after", with = "units::duration")]
    pub silent_after: Duration,
    /// An HSM or cluster whose last successful backup is older than this is overdue (`backup.overdue`).
    #[serde(default = "default_backup_max_age", with = "units::duration")]
    pub backup_max_age: Duration,
    /// An HSM or cluster with no restore exercised for this long is overdue (`restore.overdue`).
    #[serde(default = "default_restore_max_age", with = "units::duration")]
    pub restore_max_age: Duration,
}

fn default_silent_after() -> Duration {
    Duration::from_secs(15 * 60)
}

fn default_backup_max_age() -> Duration {
    Duration::from_secs(7 * 86_400)
}

fn default_restore_max_age() -> Duration {
    Duration::from_secs(90 * 86_400)
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig {
            silent_after: default_silent_after(),
            backup_max_age: default_backup_max_age(),
            restore_max_age: default_restore_max_age(),
        }
    }
}

/// Storage settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Where events, alerts and state are kept: `sqlite` (the file at `path`) or `postgres` (a database several
    /// collectors share, see `postgres`).
    #[serde(default)]
    pub backend: StorageBackend,
    /// SQLite database file, created and migrated on start.
    #[serde(default = "default_db_path")]
    pub path: PathBuf,
    /// A batch is committed when it holds this many events...
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// ...or when its first event has waited this long.
    #[serde(default = "default_batch_delay", with = "units::duration")]
    pub batch_delay: Duration,
    /// Events waiting for the writer, at most; when full, TCP reading pauses and UDP datagrams are dropped (counted).
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Bytes the events between the listeners and the database may take, at most: those waiting and those in the
    /// batches being written. When full, as for `queue_capacity`.
    #[serde(default = "default_queue_bytes")]
    pub queue_bytes: ByteSize,
    /// Free space the writer leaves on the database's filesystem (`1%`, at most 256 MiB; or a size): below it, it
    /// holds its batch as on a full disk, so that the WAL can always be moved into the database file once an
    /// operator frees space.
    #[serde(default = "default_min_free")]
    pub min_free: units::FreeSpace,
    /// Events older than this (by when they were stored) are pruned in the background; null keeps everything.
    #[serde(default = "default_retention", with = "units::optional_duration")]
    pub retention: Option<Duration>,
    /// Alerts (and their delivery records) older than this are pruned; null keeps everything.
    #[serde(default = "default_alert_retention", with = "units::optional_duration")]
    pub alert_retention: Option<Duration>,
    /// The database may not grow beyond this (null: the disk's size). When full, the writer holds its batch and
    /// retries (TCP senders are slowed, UDP overflow is counted) until retention or an operator frees space.
    #[serde(default)]
    pub max_size: Option<ByteSize>,
    /// How often retention looks for what is due.
    #[serde(default = "default_prune_interval", with = "units::duration")]
    pub prune_interval: Duration,
    /// Whether lines are stored compressed (with a dictionary trained on the database's first lines: a quarter of
    /// their size). Off, a line stays readable by tools other than hsmwatch, such as the `sqlite3` shell.
    #[serde(default = "default_compress")]
    pub compress: bool,
    /// The shared PostgreSQL database, when `backend` is `postgres`.
    #[serde(default)]
    pub postgres: PostgresConfig,
}

/// Which database the store keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// An embedded SQLite file.
    #[default]
    Sqlite,
    /// A PostgreSQL database, shared by several collectors.
    Postgres,
}

/// A PostgreSQL database several collectors share.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// The environment variable holding the connection URL (`postgres://user:password@host:port/database`, with
    /// `?sslmode=verify-full&sslrootcert=/path/ca.pem` for TLS); `HSMWATCH_DATABASE_URL` unless `url_file` is given.
    #[serde(default)]
    pub url_env: Option<String>,
    /// A file holding the connection URL, instead.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// This collector's name (`observer.name` of what it receives; the leader's name in `/readyz`); the host's name
    /// unless given.
    #[serde(default)]
    pub collector: Option<String>,
    /// The same line from the same host at the same time, received by several collectors within this window, is one
    /// event.
    #[serde(default = "default_dedupe_window", with = "units::duration")]
    pub dedupe_window: Duration,
    /// When the collector that evaluates rules and sends alerts stops (killed, cut off), another takes over after at
    /// most this long.
    #[serde(default = "default_leader_timeout", with = "units::duration")]
    pub leader_timeout: Duration,
}

/// The variable the connection URL is read from when neither `url_env` nor `url_file` is given.
pub const DEFAULT_DATABASE_URL_ENV: &str = "HSMWATCH_DATABASE_URL";

fn default_dedupe_window() -> Duration {
    Duration::from_secs(600)
}

fn default_leader_timeout() -> Duration {
    Duration::from_secs(15)
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            url_env: None,
            url_file: None,
            collector: None,
            dedupe_window: default_dedupe_window(),
            leader_timeout: default_leader_timeout(),
        }
    }
}

impl PostgresConfig {
    /// The connection URL, from `url_env`, `url_file` or `HSMWATCH_DATABASE_URL`.
    pub fn url(&self) -> Result<secret::Secret, secret::SecretProblem> {
        let default_env = DEFAULT_DATABASE_URL_ENV.to_owned();
        let variable = match (&self.url_env, &self.url_file) {
            (None, None) => Some(&default_env),
            (variable, _) => variable.as_ref(),
        };
        let fields = ("storage.postgres.url_env", "storage.postgres.url_file");
        Ok(secret::read(variable, self.url_file.as_ref(), fields)?.expect("a variable or a file is named"))
    }

    /// This collector's name: as configured, else the host's name.
    pub fn collector_name(&self) -> String {
        self.collector.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|name| name.trim().to_owned())
                .ok()
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "hsmwatch".to_owned())
        })
    }
}

fn default_compress() -> bool {
    true
}

/// Events a database stores before its compression dictionary is trained on them.
pub const COMPRESS_AFTER: i64 = 10_000;

impl StorageConfig {
    /// When new rows start to be compressed (see [`StorageConfig::compress`]).
    pub fn compress_after(&self) -> Option<i64> {
        self.compress.then_some(COMPRESS_AFTER)
    }
}

fn default_prune_interval() -> Duration {
    Duration::from_secs(600)
}

fn default_retention() -> Option<Duration> {
    // PCI DSS 10.5.1 asks for a year of audit history.
    Some(Duration::from_secs(365 * 24 * 3600))
}
fn default_alert_retention() -> Option<Duration> {
    Some(Duration::from_secs(2 * 365 * 24 * 3600))
}

/// Rule and decoder sources.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Rules directory (decoders in its `decoders/`). Unset: `./rules` when it exists, else the embedded pack.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Where the decoders come from: `dir` (the rules directory's `decoders/`, an error when it has none) or
    /// `builtin` (the decoders built into hsmwatch, beside your own rules).
    #[serde(default)]
    pub decoders: crate::pack::DecodersFrom,
}

impl RulesConfig {
    /// The sources these settings name.
    pub fn pack(&self) -> crate::pack::Pack {
        crate::pack::Pack::resolve(self.dir.as_deref(), self.decoders)
    }
}

/// Operational logging.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// How often a summary line (received, stored, unparsed, dropped) is logged while traffic flows.
    #[serde(default = "default_summary_interval", with = "units::duration")]
    pub summary_interval: Duration,
}

/// The tamper-evident chain.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// How often the chain's head is logged when it moved (a copy kept outside the database catches a rewrite).
    #[serde(default = "default_head_interval", with = "units::duration")]
    pub head_interval: Duration,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig { head_interval: default_head_interval() }
    }
}

fn default_head_interval() -> Duration {
    Duration::from_secs(3600)
}

fn default_db_path() -> PathBuf {
    PathBuf::from("hsmwatch.db")
}
fn default_batch_rows() -> usize {
    4000
}
fn default_batch_delay() -> Duration {
    Duration::from_millis(50)
}
fn default_queue_capacity() -> usize {
    16_384
}
fn default_min_free() -> units::FreeSpace {
    units::FreeSpace::Percent(1.0)
}
fn default_queue_bytes() -> ByteSize {
    ByteSize(256 * 1024 * 1024)
}
fn default_summary_interval() -> Duration {
    Duration::from_secs(60)
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: StorageBackend::Sqlite,
            path: default_db_path(),
            batch_rows: default_batch_rows(),
            batch_delay: default_batch_delay(),
            queue_capacity: default_queue_capacity(),
            queue_bytes: default_queue_bytes(),
            min_free: default_min_free(),
            retention: default_retention(),
            alert_retention: default_alert_retention(),
            prune_interval: default_prune_interval(),
            max_size: None,
            compress: default_compress(),
            postgres: PostgresConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { summary_interval: default_summary_interval() }
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read { path: path.to_owned(), cause })?;
        Config::parse(&text, path)
    }

    /// Parses configuration text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: path.to_owned(), message };
        // An empty file is the defaults, as no file is.
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let config: Config = serde_yaml_ng::from_str(text).map_err(|e| invalid(e.to_string()))?;
        config.validate().map_err(invalid)?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.storage.batch_rows == 0 {
            return Err("storage.batch_rows must be at least 1".into());
        }
        if self.storage.queue_capacity == 0 {
            return Err("storage.queue_capacity must be at least 1".into());
        }
        if self.storage.queue_bytes.0 < 1024 * 1024 {
            return Err("storage.queue_bytes must be at least 1MiB".into());
        }
        let syslog = !(self.listen.udp.is_empty() && self.listen.tcp.is_empty() && self.listen.tls.is_empty());
        if !syslog && self.listen.snmp_traps.is_none() {
            return Err("listen: no listener configured (give at least one udp, tcp, tls or snmp_traps address)".into());
        }
        let frames = self.listen.udp.iter().map(|l| l.max_frame).chain(self.listen.tcp.iter().map(|l| l.max_frame));
        let frames = frames.chain(self.listen.tls.iter().map(|l| l.max_frame));
        if frames.into_iter().any(|size| size.0 == 0) {
            return Err("listen: max_frame must be at least 1 byte".into());
        }
        if self.http.token_env.is_some() && self.http.token_file.is_some() {
            return Err("http: give token_env or token_file, not both".into());
        }
        if let Some(address) = self.http.address {
            let has_token = self.http.token_env.is_some() || self.http.token_file.is_some();
            if !address.ip().is_loopback() && !has_token {
                return Err(format!(
                    "http.address {address} is not loopback: set http.token_env or http.token_file so that /api/* \
                     requires a bearer token (or listen on 127.0.0.1)"
                ));
            }
            if !address.ip().is_loopback() && !self.http.tls() && !self.http.allow_plaintext {
                return Err(format!(
                    "http.address {address} is not loopback: the token and the dashboard's sign-in would cross the \
                     network in clear; set http.cert_file and http.key_file (HTTPS), or http.allow_plaintext: true \
                     when a TLS proxy on this host fronts it"
                ));
            }
        }
        for tls in &self.listen.tls {
            if tls.client_ca_file.is_none() && (tls.bind_host || tls.crl_file.is_some()) {
                return Err(format!(
                    "listen.tls {}: bind_host and crl_file are about client certificates: set client_ca_file",
                    tls.address
                ));
            }
        }
        if self.http.cert_file.is_some() != self.http.key_file.is_some() {
            return Err("http: give cert_file and key_file together".into());
        }
        if self.http.session_lifetime.is_zero() {
            return Err("http.session_lifetime must be longer than zero".into());
        }
        if self.storage.retention.is_some_and(|r| r.is_zero())
            || self.storage.alert_retention.is_some_and(|r| r.is_zero())
        {
            return Err("storage: a retention of zero would delete everything; use null to keep everything".into());
        }
        if self.inventory.backup_max_age.is_zero() || self.inventory.restore_max_age.is_zero() {
            return Err("inventory: backup_max_age and restore_max_age must be longer than zero".into());
        }
        if let Some(aws) = &self.cloud.aws {
            aws.resolve()?;
        }
        if self.storage.backend == StorageBackend::Postgres {
            self.validate_postgres()?;
        }
        Ok(())
    }

    /// What `storage.backend: postgres` needs, and what it does not do yet.
    fn validate_postgres(&self) -> Result<(), String> {
        let postgres = &self.storage.postgres;
        if postgres.url_env.is_some() && postgres.url_file.is_some() {
            return Err("storage.postgres: give url_env or url_file, not both".into());
        }
        if postgres.leader_timeout < Duration::from_secs(3) {
            return Err("storage.postgres.leader_timeout must be at least 3s (the leader renews its lease every \
                        third of it)"
                .into());
        }
        if postgres.dedupe_window.is_zero() {
            return Err("storage.postgres.dedupe_window must be longer than zero".into());
        }
        if postgres.collector.as_deref().is_some_and(|name| name.trim().is_empty() || name.len() > 100) {
            return Err("storage.postgres.collector must be a name of 1 to 100 characters".into());
        }
        let unsupported = [
            ("snmp.targets", !self.snmp.targets.is_empty()),
            ("listen.snmp_traps", self.listen.snmp_traps.is_some()),
            ("cloud.aws", self.cloud.aws.is_some()),
        ];
        if let Some((setting, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(format!(
                "{setting} is not available with storage.backend: postgres yet (SNMP and the cloud inventory keep \
                 their state in SQLite's store); use storage.backend: sqlite for it"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_is_the_defaults() {
        let parsed = Config::parse(EXAMPLE, Path::new("example.yaml")).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        assert_eq!(Config::parse("\n", Path::new("e.yaml")).unwrap(), Config::default());
    }

    #[test]
    fn a_shared_postgres_store_is_checked_and_its_url_never_in_the_text() {
        let parse = |text: &str| Config::parse(text, Path::new("pg.yaml"));
        let config = parse("storage:\n  backend: postgres\n  postgres:\n    collector: site-a\n").unwrap();
        assert_eq!(
            (config.storage.backend, config.storage.postgres.collector_name()),
            (StorageBackend::Postgres, "site-a".into())
        );
        assert_eq!(config.storage.postgres.leader_timeout, Duration::from_secs(15));
        std::env::remove_var(DEFAULT_DATABASE_URL_ENV);
        let missing = config.storage.postgres.url().unwrap_err();
        assert_eq!(missing.message, "environment variable HSMWATCH_DATABASE_URL is not set");
        let wrong = [
            ("    url: postgres://u:p@db/x\n", "unknown field `url`"),
            ("    url_env: A\n    url_file: /b\n", "give url_env or url_file, not both"),
            ("    leader_timeout: 1s\n", "leader_timeout must be at least 3s"),
            ("    dedupe_window: 0s\n", "dedupe_window must be longer than zero"),
        ];
        for (setting, message) in wrong {
            let error = parse(&format!("storage:\n  backend: postgres\n  postgres:\n{setting}")).unwrap_err();
            assert!(error.to_string().contains(message), "{setting}: {error}");
        }
        let snmp = "storage:\n  backend: postgres\nlisten:\n  snmp_traps:\n    address: 127.0.0.1:1162\n";
        let error = parse(snmp).unwrap_err().to_string();
        assert!(error.contains("listen.snmp_traps is not available with storage.backend: postgres yet"), "{error}");
        assert!(parse("storage:\n  backend: mysql\n").unwrap_err().to_string().contains("unknown variant `mysql`"));
    }

    #[test]
    fn unknown_keys_name_file_line_and_key() {
        let text = "storage:\n  path: x.db\n  batch_rowz: 10\n";
        let error = Config::parse(text, Path::new("/etc/hsmwatch.yaml")).unwrap_err().to_string();
        assert!(error.starts_with("/etc/hsmwatch.yaml: "), "{error}");
        assert!(error.contains("batch_rowz"), "{error}");
        assert!(error.contains("line 3"), "{error}");
    }

    #[test]
    fn http_null_turns_the_http_server_off() {
        let config = Config::parse("http: null\n", Path::new("c.yaml")).unwrap();
        assert_eq!(config.http.address, None);
        let config = Config::parse("http:\n  address: null\n", Path::new("c.yaml")).unwrap();
        assert_eq!(config.http.address, None);
        assert!(EXAMPLE.contains("null turns it off"));
    }

    #[test]
    fn listen_lists_only_what_it_names() {
        let config = Config::parse("listen:\n  tcp:\n    - address: 127.0.0.1:6000\n", Path::new("c.yaml")).unwrap();
        assert!(config.listen.udp.is_empty());
        assert_eq!(config.listen.tcp[0].max_frame, ByteSize(65536));
    }

    #[test]
    fn a_trap_listener_alone_is_a_listener_and_nothing_at_all_is_an_error() {
        let traps = "listen:\n  snmp_traps: {address: 127.0.0.1:1162, communities_env: C}\n";
        assert!(Config::parse(traps, Path::new("c.yaml")).unwrap().listen.udp.is_empty());
        let error = Config::parse("listen: {}\n", Path::new("c.yaml")).unwrap_err().to_string();
        assert!(error.contains("no listener configured"), "{error}");
    }

    #[test]
    fn a_public_http_address_needs_a_token_and_https_or_an_explicit_plaintext() {
        let base = "http:\n  address: 0.0.0.0:8514\n  token_env: T\n";
        let error = Config::parse(base, Path::new("c.yaml")).unwrap_err().to_string();
        assert!(error.contains("in clear") && error.contains("http.cert_file"), "{error}");
        let https = format!("{base}  cert_file: c.pem\n  key_file: c.key\n");
        assert!(Config::parse(&https, Path::new("c.yaml")).unwrap().http.tls());
        let proxied = format!("{base}  allow_plaintext: true\n");
        assert!(!Config::parse(&proxied, Path::new("c.yaml")).unwrap().http.tls());
    }

    #[test]
    fn bad_values_are_errors() {
        for text in [
            "storage:\n  batch_delay: soon\n",
            "storage:\n  batch_rows: 0\n",
            "storage:\n  queue_bytes: 64KiB\n",
            "http:\n  address: 0.0.0.0:8514\n  token_env: T\n",
            "http:\n  cert_file: c.pem\n",
            "http:\n  session_lifetime: 0s\n",
            "listen:\n  tcp: []\n  udp: []\n",
            "listen:\n  tcp:\n    - address: nowhere\n",
            "listen:\n  tcp:\n    - address: 127.0.0.1:1\n      max_frame: 12 parsecs\n",
            "http:\n  external_url: ftp://hsmwatch.example.net\n",
            "http:\n  external_url: https://hsmwatch.example.net/?token=x\n",
            "http:\n  external_url: hsmwatch.example.net\n",
        ] {
            assert!(Config::parse(text, Path::new("c.yaml")).is_err(), "{text}");
        }
    }

    #[test]
    fn the_external_url_is_kept_without_its_trailing_slash() {
        let config = Config::parse("http:\n  external_url: https://hsmwatch.example.net/ops/\n", Path::new("c.yaml"));
        assert_eq!(config.unwrap().http.external_url.as_deref(), Some("https://hsmwatch.example.net/ops"));
    }
}
