//! SNMP configuration: the appliances polled over SNMPv3 (`snmp.targets`), with defaults shared by all of them
//! (`snmp.defaults`). Passphrases come from environment variables or files, never from the configuration text.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::notifiers::Secret;
use super::units;

/// The `snmp:` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnmpConfig {
    /// Settings every target starts from (all but `address` and `name`).
    #[serde(default)]
    pub defaults: TargetConfig,
    /// The appliances to poll.
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
}

/// One appliance to poll, or the defaults of all (then without `address` and `name`); each unset value falls back to
/// `snmp.defaults`, then to the built-in default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// `host:port` or `host` (port 161).
    #[serde(default)]
    pub address: Option<String>,
    /// The name its events carry as `host.name` (the name its syslog uses); default: the address without the port.
    #[serde(default)]
    pub name: Option<String>,
    /// The SNMPv3 user (security name).
    #[serde(default)]
    pub user: Option<String>,
    /// Authentication protocol.
    #[serde(default)]
    pub auth: Option<AuthProtocol>,
    /// The authentication passphrase, from this environment variable...
    #[serde(default)]
    pub auth_passphrase_env: Option<String>,
    /// ...or this file.
    #[serde(default)]
    pub auth_passphrase_file: Option<std::path::PathBuf>,
    /// Privacy (encryption) protocol.
    #[serde(default)]
    pub privacy: Option<PrivProtocol>,
    /// The privacy passphrase, from this environment variable...
    #[serde(default)]
    pub priv_passphrase_env: Option<String>,
    /// ...or this file.
    #[serde(default)]
    pub priv_passphrase_file: Option<std::path::PathBuf>,
    /// How often it is polled (Luna refreshes its tables every 60 s: faster polls read the same values).
    #[serde(default, with = "units::optional_duration")]
    pub interval: Option<Duration>,
    /// How long one request waits for its answer.
    #[serde(default, with = "units::optional_duration")]
    pub timeout: Option<Duration>,
    /// Requests sent again after a timeout.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Storage use (HSM or partition), in percent, that makes a `hsm.storage_high` event.
    #[serde(default)]
    pub storage_high_pct: Option<f64>,
    /// How long before the NTLS certificate expires a `ntls.cert_expiring` event is made.
    #[serde(default, with = "units::optional_duration")]
    pub cert_warning: Option<Duration>,
    /// How long a target must go on failing before a `snmp.poll` failure event is made (one lost datagram is not an
    /// outage).
    #[serde(default, with = "units::optional_duration")]
    pub down_after: Option<Duration>,
}

/// SNMPv3 authentication protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthProtocol {
    /// HMAC-MD5-96 (legacy).
    Md5,
    /// HMAC-SHA-96: what Luna offers.
    Sha,
    /// HMAC-SHA-224.
    Sha224,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-384.
    Sha384,
    /// HMAC-SHA-512.
    Sha512,
}

/// SNMPv3 privacy protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrivProtocol {
    /// AES-128-CFB: what Luna offers.
    Aes,
    /// AES-192 (Blumenthal key extension).
    Aes192,
    /// AES-256 (Blumenthal key extension).
    Aes256,
    /// DES (legacy).
    Des,
}

/// Default poll interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default retries after a timeout.
pub const DEFAULT_RETRIES: u32 = 1;
/// Default storage share that counts as high.
pub const DEFAULT_STORAGE_HIGH_PCT: f64 = 90.0;
/// Default time a target fails before its failure is an event.
pub const DEFAULT_DOWN_AFTER: Duration = Duration::from_secs(300);
/// Default warning before the NTLS certificate expires.
pub const DEFAULT_CERT_WARNING: Duration = Duration::from_secs(30 * 86_400);

/// A target ready to poll: every setting decided, the passphrases read.
#[derive(Clone, PartialEq)]
pub struct ResolvedTarget {
    /// `host:port`.
    pub address: String,
    /// Its `host.name`.
    pub name: String,
    /// SNMPv3 user.
    pub user: String,
    /// Authentication protocol and passphrase.
    pub auth: (AuthProtocol, Secret),
    /// Privacy protocol and passphrase, when the user has privacy.
    pub privacy: Option<(PrivProtocol, Secret)>,
    /// Poll interval.
    pub interval: Duration,
    /// Request timeout.
    pub timeout: Duration,
    /// Retries after a timeout.
    pub retries: u32,
    /// Storage share that counts as high.
    pub storage_high_pct: f64,
    /// Warning before the certificate expires.
    pub cert_warning: Duration,
    /// Failing this long makes the failure event.
    pub down_after: Duration,
}

impl fmt::Debug for ResolvedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedTarget")
            .field("address", &self.address)
            .field("name", &self.name)
            .field("user", &self.user)
            .field("auth", &self.auth.0)
            .field("privacy", &self.privacy.as_ref().map(|(p, _)| *p))
            .finish_non_exhaustive()
    }
}

/// Why a target cannot be polled; names the target and the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snmp target `{target}`, {field}: {message}")]
pub struct SnmpConfigError {
    /// The target's address.
    pub target: String,
    /// The setting at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// The setting is right but its secret cannot be read here (an unset variable, an unreadable file): the service
    /// may still see it (`config check` warns instead of failing).
    pub missing_secret: bool,
}

impl SnmpConfig {
    /// Every target with its settings decided and its passphrases read.
    pub fn resolve(&self) -> Result<Vec<ResolvedTarget>, SnmpConfigError> {
        if self.defaults.address.is_some() || self.defaults.name.is_some() {
            let message = "`address` and `name` belong to each target, not to the defaults".into();
            return Err(SnmpConfigError {
                target: "defaults".into(),
                field: "address".into(),
                message,
                missing_secret: false,
            });
        }
        let mut names = std::collections::HashSet::new();
        let mut resolved = Vec::with_capacity(self.targets.len());
        for target in &self.targets {
            let one = target.resolve(&self.defaults)?;
            if !names.insert(one.name.clone()) {
                let message = format!("the name `{}` is given to two targets", one.name);
                return Err(SnmpConfigError {
                    target: one.address,
                    field: "name".into(),
                    message,
                    missing_secret: false,
                });
            }
            resolved.push(one);
        }
        Ok(resolved)
    }

    /// The target with this name or address.
    pub fn find(&self, wanted: &str) -> Option<&TargetConfig> {
        self.targets.iter().find(|t| {
            let address = t.address.as_deref().unwrap_or_default();
            address == wanted || t.name.as_deref() == Some(wanted) || host_of(address) == wanted
        })
    }
}

/// The host part of `host:port` (an IPv6 literal in brackets loses them).
fn host_of(address: &str) -> &str {
    let host = match address.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() && !host.ends_with(':') => host,
        _ => address,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// `address` with port 161 when it names none.
fn with_port(address: &str) -> String {
    let bare_ipv6 = address.matches(':').count() > 1 && !address.starts_with('[');
    match address.rsplit_once(':') {
        Some((_, port)) if !bare_ipv6 && port.parse::<u16>().is_ok() => address.to_owned(),
        _ if bare_ipv6 => format!("[{address}]:161"),
        _ => format!("{address}:161"),
    }
}

fn passphrase(
    env: Option<&String>,
    file: Option<&std::path::PathBuf>,
    fields: (&str, &str),
    error: &dyn Fn(&str, String) -> SnmpConfigError,
) -> Result<Option<Secret>, SnmpConfigError> {
    let secret = super::secret::read(env, file, fields).map_err(|problem| SnmpConfigError {
        missing_secret: problem.unreadable,
        ..error(&problem.field, problem.message)
    })?;
    // RFC 3414 and net-snmp: a passphrase has at least 8 characters.
    if secret.as_ref().is_some_and(|s| s.0.len() < 8) {
        return Err(error(fields.0, "a passphrase has at least 8 characters".into()));
    }
    Ok(secret)
}

impl TargetConfig {
    /// This target over `defaults`, with its passphrases read.
    pub fn resolve(&self, defaults: &TargetConfig) -> Result<ResolvedTarget, SnmpConfigError> {
        let address = self.address.clone().unwrap_or_default();
        let label = match (&self.name, address.is_empty()) {
            (Some(name), false) => format!("{name} ({address})"),
            (Some(name), true) => name.clone(),
            (None, false) => address.clone(),
            (None, true) => "(no address)".to_owned(),
        };
        let error = |field: &str, message: String| SnmpConfigError {
            target: label.clone(),
            field: field.to_owned(),
            message,
            missing_secret: false,
        };
        if address.trim().is_empty() {
            return Err(error("address", "every target needs an address (host or host:port)".into()));
        }
        let own = self;
        let Credentials { user, auth, privacy } = own.credentials(defaults, &error)?;
        let storage_high_pct = own.storage_high_pct.or(defaults.storage_high_pct).unwrap_or(DEFAULT_STORAGE_HIGH_PCT);
        if !(0.0..=100.0).contains(&storage_high_pct) {
            return Err(error("storage_high_pct", format!("{storage_high_pct} is not a share between 0 and 100")));
        }
        let interval = own.interval.or(defaults.interval).unwrap_or(DEFAULT_INTERVAL);
        let timeout = own.timeout.or(defaults.timeout).unwrap_or(DEFAULT_TIMEOUT);
        if interval.is_zero() || timeout.is_zero() {
            return Err(error("interval", "interval and timeout must be above zero".into()));
        }
        Ok(ResolvedTarget {
            address: with_port(&address),
            name: self.name.clone().unwrap_or_else(|| host_of(&address).to_owned()),
            user,
            auth,
            privacy,
            interval,
            timeout,
            retries: own.retries.or(defaults.retries).unwrap_or(DEFAULT_RETRIES),
            storage_high_pct,
            cert_warning: own.cert_warning.or(defaults.cert_warning).unwrap_or(DEFAULT_CERT_WARNING),
            down_after: own.down_after.or(defaults.down_after).unwrap_or(DEFAULT_DOWN_AFTER),
        })
    }

    /// The SNMPv3 user of this target (or trap sender) over `defaults`, its passphrases read.
    fn credentials(
        &self,
        defaults: &TargetConfig,
        error: &dyn Fn(&str, String) -> SnmpConfigError,
    ) -> Result<Credentials, SnmpConfigError> {
        let user = self
            .user
            .clone()
            .or_else(|| defaults.user.clone())
            .ok_or_else(|| error("user", "no SNMPv3 user: set `user` on the target or in snmp.defaults".into()))?;
        let (auth_env, auth_file) = match (&self.auth_passphrase_env, &self.auth_passphrase_file) {
            (None, None) => (defaults.auth_passphrase_env.as_ref(), defaults.auth_passphrase_file.as_ref()),
            (env, file) => (env.as_ref(), file.as_ref()),
        };
        let auth_secret = passphrase(auth_env, auth_file, ("auth_passphrase_env", "auth_passphrase_file"), error)?
            .ok_or_else(|| {
                error(
                    "auth_passphrase_env",
                    "SNMPv3 needs an authentication passphrase (auth_passphrase_env or auth_passphrase_file)".into(),
                )
            })?;
        let (priv_env, priv_file) = match (&self.priv_passphrase_env, &self.priv_passphrase_file) {
            (None, None) => (defaults.priv_passphrase_env.as_ref(), defaults.priv_passphrase_file.as_ref()),
            (env, file) => (env.as_ref(), file.as_ref()),
        };
        let priv_secret = passphrase(priv_env, priv_file, ("priv_passphrase_env", "priv_passphrase_file"), error)?;
        let privacy = match (self.privacy.or(defaults.privacy), priv_secret) {
            (Some(protocol), Some(secret)) => Some((protocol, secret)),
            (None, Some(secret)) => Some((PrivProtocol::Aes, secret)),
            (Some(_), None) => {
                return Err(error("priv_passphrase_env", "`privacy` is set but no privacy passphrase is given".into()))
            }
            (None, None) => None,
        };
        let auth = (self.auth.or(defaults.auth).unwrap_or(AuthProtocol::Sha), auth_secret);
        Ok(Credentials { user, auth, privacy })
    }
}

/// The SNMP trap listener (`listen.snmp_traps`; off unless given).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrapsConfig {
    /// `host:port` or `host` (port 162, which needs privileges: 1162 and a port redirect is the usual way).
    pub address: String,
    /// Senders allowed: networks or addresses; empty lets any sender in.
    #[serde(default, with = "units::networks")]
    pub allow: Vec<ipnet::IpNet>,
    /// The v1/v2c communities accepted, comma-separated, from this environment variable...
    #[serde(default)]
    pub communities_env: Option<String>,
    /// ...or from this file, one a line.
    #[serde(default)]
    pub communities_file: Option<std::path::PathBuf>,
    /// SNMPv3 users whose traps are accepted (the user, protocols and passphrases the appliance sends with;
    /// `address` and the poll settings do not apply).
    #[serde(default)]
    pub users: Vec<TargetConfig>,
}

/// An SNMPv3 user with its passphrases: a target's, or one a trap may come from.
#[derive(Clone, PartialEq)]
pub struct Credentials {
    /// The security name.
    pub user: String,
    /// Authentication protocol and passphrase.
    pub auth: (AuthProtocol, Secret),
    /// Privacy protocol and passphrase, when the user has privacy.
    pub privacy: Option<(PrivProtocol, Secret)>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).field("auth", &self.auth.0).finish_non_exhaustive()
    }
}

/// Default port of the trap listener.
pub const TRAP_PORT: u16 = 162;

impl TrapsConfig {
    /// The address to bind.
    pub fn socket_address(&self) -> Result<std::net::SocketAddr, SnmpConfigError> {
        let error = |message: String| SnmpConfigError {
            target: "listen.snmp_traps".into(),
            field: "address".into(),
            message,
            missing_secret: false,
        };
        let with_port = match with_port(&self.address).strip_suffix(":161") {
            Some(host) => format!("{host}:{TRAP_PORT}"),
            None => with_port(&self.address),
        };
        with_port.parse().map_err(|_| error(format!("`{}` is not an address (127.0.0.1:1162)", self.address)))
    }

    /// The SNMPv3 users, their passphrases read.
    pub fn trap_users(&self) -> Result<Vec<Credentials>, SnmpConfigError> {
        self.users
            .iter()
            .map(|user| {
                let error = |field: &str, message: String| SnmpConfigError {
                    target: format!("listen.snmp_traps user {}", user.user.as_deref().unwrap_or("?")),
                    field: field.to_owned(),
                    message,
                    missing_secret: false,
                };
                user.credentials(&TargetConfig::default(), &error)
            })
            .collect()
    }

    /// The communities accepted, read from the environment or the file.
    pub fn communities(&self) -> Result<Vec<Secret>, SnmpConfigError> {
        let error = |field: &str, message: String| SnmpConfigError {
            target: "listen.snmp_traps".into(),
            field: field.to_owned(),
            message,
            missing_secret: false,
        };
        let fields = ("communities_env", "communities_file");
        let read = super::secret::read(self.communities_env.as_ref(), self.communities_file.as_ref(), fields).map_err(
            |problem| SnmpConfigError { missing_secret: problem.unreadable, ..error(&problem.field, problem.message) },
        )?;
        let text = match read {
            // A variable holds them comma-separated, a file one a line.
            Some(secret) if self.communities_env.is_some() => secret.0.replace(',', "\n"),
            Some(secret) => secret.0,
            // SNMPv3 users alone are enough.
            None if !self.users.is_empty() => return Ok(Vec::new()),
            None => {
                return Err(error(
                    "communities_env",
                    "a trap listener needs communities (communities_env or communities_file) or SNMPv3 users".into(),
                ))
            }
        };
        let communities: Vec<Secret> =
            text.lines().map(str::trim).filter(|c| !c.is_empty()).map(|c| Secret(c.to_owned())).collect();
        if communities.is_empty() {
            return Err(error("communities_env", "no community given".into()));
        }
        Ok(communities)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> SnmpConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn targets_take_the_defaults_and_override_them() {
        std::env::set_var("HSMWATCH_TEST_SNMP_AUTH", "authPass123");
        std::env::set_var("HSMWATCH_TEST_SNMP_PRIV", "privPass123");
        let config = parse(
            "defaults:\n  user: monitorhsm\n  auth_passphrase_env: HSMWATCH_TEST_SNMP_AUTH\n  priv_passphrase_env: HSMWATCH_TEST_SNMP_PRIV\n  interval: 2m\ntargets:\n  - address: 10.0.0.5\n  - address: 10.0.0.6:1161\n    name: hsm-6\n    auth: sha256\n    privacy: aes256\n    interval: 90s\n",
        );
        let targets = config.resolve().unwrap();
        assert_eq!((targets[0].address.as_str(), targets[0].name.as_str()), ("10.0.0.5:161", "10.0.0.5"));
        assert_eq!(
            (targets[0].auth.0, targets[0].privacy.as_ref().map(|p| p.0)),
            (AuthProtocol::Sha, Some(PrivProtocol::Aes))
        );
        assert_eq!(targets[0].interval, Duration::from_secs(120));
        assert_eq!((targets[1].address.as_str(), targets[1].name.as_str()), ("10.0.0.6:1161", "hsm-6"));
        assert_eq!((targets[1].auth.0, targets[1].interval), (AuthProtocol::Sha256, Duration::from_secs(90)));
        assert_eq!(targets[1].auth.1 .0, "authPass123");
        assert!(!format!("{targets:?}").contains("authPass123"), "passphrases stay out of debug output");
        assert!(config.find("hsm-6").is_some() && config.find("10.0.0.5").is_some());
    }

    #[test]
    fn mistakes_name_the_target_and_the_setting() {
        let missing_user = parse("targets:\n  - address: 10.0.0.5\n").resolve().unwrap_err();
        assert_eq!((missing_user.target.as_str(), missing_user.field.as_str()), ("10.0.0.5", "user"));
        let unset = parse("targets:\n  - address: h\n    user: u\n    auth_passphrase_env: HSMWATCH_TEST_NEVER_SET\n")
            .resolve()
            .unwrap_err();
        assert!(unset.to_string().contains("HSMWATCH_TEST_NEVER_SET is not set"), "{unset}");
        std::env::set_var("HSMWATCH_TEST_SNMP_SHORT", "short");
        let short = parse("targets:\n  - address: h\n    user: u\n    auth_passphrase_env: HSMWATCH_TEST_SNMP_SHORT\n")
            .resolve()
            .unwrap_err();
        assert!(short.message.contains("at least 8"), "{short}");
        assert!(serde_yaml_ng::from_str::<SnmpConfig>("targets:\n  - address: h\n    auth_passphrase: x\n").is_err());
        assert!(serde_yaml_ng::from_str::<SnmpConfig>("targets:\n  - address: h\n    auth: sha3\n").is_err());
    }

    #[test]
    fn the_trap_listener_reads_its_communities_and_users() {
        std::env::set_var("HSMWATCH_TEST_TRAP_SET", "public, ops-ro ,");
        std::env::set_var("HSMWATCH_TEST_TRAP_AUTH", "authPass123");
        let traps: TrapsConfig = serde_yaml_ng::from_str(
            "address: 127.0.0.1\ncommunities_env: HSMWATCH_TEST_TRAP_SET\nusers:\n  - {user: monitorhsm, auth_passphrase_env: HSMWATCH_TEST_TRAP_AUTH}\n",
        )
        .unwrap();
        assert_eq!(traps.socket_address().unwrap().to_string(), "127.0.0.1:162");
        let communities: Vec<String> = traps.communities().unwrap().into_iter().map(|c| c.0).collect();
        assert_eq!(communities, ["public", "ops-ro"]);
        let users = traps.trap_users().unwrap();
        assert_eq!(
            (users[0].user.as_str(), users[0].auth.0, users[0].privacy.is_none()),
            ("monitorhsm", AuthProtocol::Sha, true)
        );
        let bare: TrapsConfig = serde_yaml_ng::from_str("address: 127.0.0.1:1162\n").unwrap();
        assert!(bare.communities().unwrap_err().message.contains("needs communities"));
        let bad: TrapsConfig =
            serde_yaml_ng::from_str("address: nowhere:x\ncommunities_env: HSMWATCH_TEST_TRAP_SET\n").unwrap();
        assert!(bad.socket_address().is_err());
    }
}
