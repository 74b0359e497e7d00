//! Cloud inventory configuration: the AWS accounts and regions whose CloudHSM clusters, HSMs and backups are read
//! (`cloud.aws`). Credentials come from the standard AWS chain (environment, profile, instance or container role),
//! never from the configuration text; other accounts are reached by assuming a role in them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::units;

/// The `cloud:` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    /// AWS CloudHSM; absent, nothing is read.
    #[serde(default)]
    pub aws: Option<AwsConfig>,
}

/// `cloud.aws`: what to read, where, how often.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// The accounts; empty is the collector's own account (its credentials as they are, no role assumed).
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    /// The regions read in every account that does not list its own.
    pub regions: Vec<String>,
    /// How often everything is read.
    #[serde(default = "default_interval", with = "units::duration")]
    pub interval: Duration,
    /// How long one API call may take, each attempt (throttled calls are retried with backoff).
    #[serde(default = "default_timeout", with = "units::duration")]
    pub timeout: Duration,
    /// Another endpoint for CloudHSM and STS (a VPC endpoint, or a test server).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Account × region reads in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// HSM id → the `host.name` its logs carry, where the ENI address does not join them (logs through a relay).
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
}

/// One AWS account.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The role assumed to read it (`arn:aws:iam::<account>:role/<name>`); absent: the collector's own credentials.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// The external id the role's trust policy asks for.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Its regions, instead of `cloud.aws.regions`.
    #[serde(default)]
    pub regions: Option<Vec<String>>,
    /// A name shown beside its id (`prod`).
    #[serde(default)]
    pub name: Option<String>,
}

/// Default time between reads: the API's numbers change slowly and calls are rate-limited.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);

fn default_interval() -> Duration {
    DEFAULT_INTERVAL
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_concurrency() -> usize {
    8
}

/// An account ready to read: its id known (from the role ARN) or to be asked for (own credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedAccount {
    /// The account id from the role ARN; `None` for the collector's own account until STS says.
    pub id: Option<String>,
    /// The role to assume.
    pub role_arn: Option<String>,
    /// Its external id.
    pub external_id: Option<String>,
    /// Its regions.
    pub regions: Vec<String>,
    /// Its display name.
    pub name: Option<String>,
}

impl AwsConfig {
    /// Every account with its regions decided; an error names the account and the setting.
    pub fn resolve(&self) -> Result<Vec<ResolvedAccount>, String> {
        for region in &self.regions {
            check_region(region).map_err(|e| format!("cloud.aws.regions: {e}"))?;
        }
        if self.interval < Duration::from_secs(1) {
            return Err("cloud.aws.interval: at least 1s (the API is rate-limited: minutes are right)".into());
        }
        if self.concurrency == 0 {
            return Err("cloud.aws.concurrency must be at least 1".into());
        }
        if self.timeout.is_zero() {
            return Err("cloud.aws.timeout must be longer than zero".into());
        }
        if let Some(url) = &self.endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("cloud.aws.endpoint_url `{url}`: give an http:// or https:// URL"));
            }
        }
        let own = [AccountConfig::default()];
        let accounts = if self.accounts.is_empty() { &own[..] } else { &self.accounts[..] };
        let mut resolved = Vec::with_capacity(accounts.len());
        for (index, account) in accounts.iter().enumerate() {
            let at = |what: &str| format!("cloud.aws.accounts[{index}].{what}");
            let id = match &account.role_arn {
                Some(arn) => Some(account_of_role(arn).map_err(|e| format!("{}: {e}", at("role_arn")))?),
                None => None,
            };
            if account.external_id.is_some() && account.role_arn.is_none() {
                return Err(format!("{}: an external id goes with a role_arn", at("external_id")));
            }
            let regions = account.regions.clone().unwrap_or_else(|| self.regions.clone());
            for region in &regions {
                check_region(region).map_err(|e| format!("{}: {e}", at("regions")))?;
            }
            if regions.is_empty() {
                return Err(format!("{}: no region to read (set cloud.aws.regions)", at("regions")));
            }
            if resolved.iter().any(|other: &ResolvedAccount| other.id.is_some() && other.id == id) {
                return Err(format!("{}: account {} is listed twice", at("role_arn"), id.unwrap_or_default()));
            }
            if id.is_none() && resolved.iter().any(|other: &ResolvedAccount| other.role_arn.is_none()) {
                return Err(format!("{}: the collector's own account (no role_arn) is listed twice", at("role_arn")));
            }
            resolved.push(ResolvedAccount {
                id,
                role_arn: account.role_arn.clone(),
                external_id: account.external_id.clone(),
                regions,
                name: account.name.clone(),
            });
        }
        Ok(resolved)
    }
}

/// The account id of `arn:aws:iam::123456789012:role/name` (also the `aws-cn` and `aws-us-gov` partitions).
pub fn account_of_role(arn: &str) -> Result<String, String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let well_formed = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].starts_with("role/")
        && parts[5].len() > "role/".len();
    match well_formed {
        true => Ok(parts[4].to_owned()),
        false => Err(format!("`{arn}` is not a role ARN (arn:aws:iam::<12-digit account>:role/<name>)")),
    }
}

/// A region name as AWS spells them (`eu-west-1`, `us-gov-west-1`, `ap-southeast-3`).
fn check_region(region: &str) -> Result<(), String> {
    let parts: Vec<&str> = region.split('-').collect();
    let well_formed = parts.len() >= 3
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty();
    match well_formed {
        true => Ok(()),
        false => Err(format!("`{region}` is not a region name (like eu-west-1)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(yaml: &str) -> AwsConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn accounts_take_their_id_from_the_role_and_the_regions_from_the_section() {
        let config =
            aws("regions: [eu-west-1, us-east-1]\naccounts:\n  - role_arn: arn:aws:iam::111111111111:role/ro\n    \
             external_id: x\n  - {name: own, regions: [eu-central-1]}\n");
        let accounts = config.resolve().unwrap();
        assert_eq!(accounts[0].id.as_deref(), Some("111111111111"));
        assert_eq!(accounts[0].regions, ["eu-west-1", "us-east-1"]);
        assert_eq!(accounts[1].id, None);
        assert_eq!(accounts[1].regions, ["eu-central-1"]);
        assert_eq!(config.interval, DEFAULT_INTERVAL);
    }

    #[test]
    fn no_accounts_is_the_own_account() {
        let accounts = aws("regions: [eu-west-1]").resolve().unwrap();
        assert_eq!(accounts.len(), 1);
        assert_eq!(accounts[0].role_arn, None);
    }

    #[test]
    fn mistakes_name_the_setting() {
        let cases = [
            ("regions: [Europe]", "cloud.aws.regions: `Europe` is not a region name"),
            ("regions: [eu-west-1]\naccounts: [{role_arn: 'arn:aws:iam::1234:role/x'}]", "accounts[0].role_arn"),
            ("regions: [eu-west-1]\naccounts: [{external_id: x}]", "goes with a role_arn"),
            ("regions: []\naccounts: [{}]", "no region to read"),
            ("regions: [eu-west-1]\ninterval: 500ms", "at least 1s"),
            ("regions: [eu-west-1]\nendpoint_url: localhost:5000", "http:// or https://"),
            (
                "regions: [eu-west-1]\naccounts: [{role_arn: 'arn:aws:iam::111111111111:role/a'}, \
                 {role_arn: 'arn:aws:iam::111111111111:role/b'}]",
                "listed twice",
            ),
        ];
        for (yaml, expected) in cases {
            let error = aws(yaml).resolve().unwrap_err();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }

    #[test]
    fn role_arns_of_every_partition_give_their_account() {
        assert_eq!(account_of_role("arn:aws-us-gov:iam::222222222222:role/path/ro").unwrap(), "222222222222");
        assert!(account_of_role("arn:aws:iam::222222222222:user/ro").is_err());
    }
}
