//! Reading AWS: one CloudHSM client per account and region, credentials from the standard chain (assuming a role for
//! other accounts), every list read to its last page. AWS's SDK does the signing, credential refresh and retries
//! (throttled calls back off and are tried again); this module turns its answers into a [`Snapshot`].

use std::collections::HashSet;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudhsmv2 as cloudhsm;
use chrono::{DateTime, Utc};

use super::snapshot::{Backup, Cluster, Hsm, Snapshot};
use crate::config::cloud::{AwsConfig, ResolvedAccount};

/// Clusters asked for per page (the API's maximum).
const CLUSTER_PAGE: i32 = 25;
/// Backups asked for per page (the API's maximum).
const BACKUP_PAGE: i32 = 50;
/// Backup pages read at most per region and read, newest first: enough for each cluster's newest `READY` one.
const MAX_BACKUP_PAGES: usize = 40;
/// The longest error message kept (an SDK error can carry a whole response).
const MAX_MESSAGE: usize = 400;
/// Attempts per call, the first included; throttling and transient failures back off between them.
const ATTEMPTS: u32 = 4;

/// Why a region of an account could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReadError {
    /// What went wrong, in AWS's words where it gave them.
    pub message: String,
}

impl ReadError {
    /// An SDK error, named by its kind first: a malformed answer and a timeout say so, before the SDK's own words.
    fn of<E, R>(error: cloudhsm::error::SdkError<E, R>) -> ReadError
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        use cloudhsm::error::SdkError;
        let kind = match &error {
            SdkError::ResponseError(_) => "malformed answer: ",
            SdkError::TimeoutError(_) => "timeout: ",
            _ => "",
        };
        let mut read = ReadError::from_chain(error);
        read.message.insert_str(0, kind);
        read
    }

    fn from_chain(error: impl std::error::Error + 'static) -> ReadError {
        // The SDK's display of an error is its outermost layer ("service error"); what AWS said is further down.
        let mut layers: Vec<String> = Vec::new();
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(layer) = next {
            let text = layer.to_string();
            if !layers.iter().any(|known| known.contains(&text)) {
                layers.push(text);
            }
            next = layer.source();
        }
        let mut message = layers.join(": ").replace('\n', " ");
        if message.len() > MAX_MESSAGE {
            let cut = (0..=MAX_MESSAGE).rev().find(|&i| message.is_char_boundary(i)).unwrap_or(0);
            message.truncate(cut);
            message.push('…');
        }
        ReadError { message }
    }
}

/// An account whose clients are built: its id and one client per region.
pub struct Account {
    /// The account id.
    pub id: String,
    /// Its display name.
    pub name: Option<String>,
    /// Its clients, by region.
    pub regions: Vec<(String, cloudhsm::Client)>,
}

/// The SDK configuration every client starts from: the credential chain, the test or VPC endpoint, timeouts and
/// retries, a ring-based HTTPS client.
pub async fn base_config(config: &AwsConfig, first_region: &str) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(10)))
        .build();
    let retries = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(500))
        .with_max_backoff(Duration::from_secs(20));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(first_region.to_owned()))
        .timeout_config(timeouts)
        .retry_config(retries);
    if let Some(url) = &config.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    loader.load().await
}

/// Builds the clients of an account: the role assumed (credentials cached and refreshed by the SDK), or the base
/// credentials with the account id asked of STS.
pub async fn account(base: &SdkConfig, account: &ResolvedAccount) -> Result<Account, ReadError> {
    let credentials = match &account.role_arn {
        Some(arn) => {
            let mut builder = aws_config::sts::AssumeRoleProvider::builder(arn.clone()).session_name("hsmwatch");
            if let Some(external_id) = &account.external_id {
                builder = builder.external_id(external_id.clone());
            }
            Some(cloudhsm::config::SharedCredentialsProvider::new(builder.configure(base).build().await))
        }
        None => None,
    };
    let id = match &account.id {
        Some(id) => id.clone(),
        None => own_account_id(base).await?,
    };
    let regions = account
        .regions
        .iter()
        .map(|region| {
            let mut conf = cloudhsm::config::Builder::from(base).region(Region::new(region.clone()));
            if let Some(credentials) = &credentials {
                conf = conf.credentials_provider(credentials.clone());
            }
            (region.clone(), cloudhsm::Client::from_conf(conf.build()))
        })
        .collect();
    Ok(Account { id, name: account.name.clone(), regions })
}

async fn own_account_id(base: &SdkConfig) -> Result<String, ReadError> {
    let answer = aws_sdk_sts::Client::new(base).get_caller_identity().send().await.map_err(ReadError::of)?;
    answer.account().map(str::to_owned).ok_or_else(|| ReadError { message: "STS named no account".into() })
}

/// Reads a region: every cluster, and the backups newest first until each cluster's newest `READY` one and every
/// backup in `watched` (those last seen being made) are found.
pub async fn read_region(client: &cloudhsm::Client, watched: &HashSet<String>) -> Result<Snapshot, ReadError> {
    let mut snapshot = Snapshot::default();
    let mut pages = client.describe_clusters().max_results(CLUSTER_PAGE).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(ReadError::of)?;
        for cluster in page.clusters() {
            snapshot.clusters.push(cluster_of(cluster)?);
        }
    }
    let mut without_ready: HashSet<&str> = snapshot.clusters.iter().map(|c| c.id.as_str()).collect();
    let mut unseen: HashSet<&str> = watched.iter().map(String::as_str).collect();
    let mut pages = client.describe_backups().max_results(BACKUP_PAGE).sort_ascending(false).into_paginator().send();
    let mut read = 0;
    while let Some(page) = pages.next().await {
        let page = page.map_err(ReadError::of)?;
        for backup in page.backups() {
            let backup = backup_of(backup)?;
            unseen.remove(backup.id.as_str());
            let first_ready = backup.ready() && without_ready.remove(backup.cluster_id.as_str());
            if first_ready || watched.contains(&backup.id) || backup.in_progress() {
                snapshot.backups.push(backup);
            }
        }
        read += 1;
        if (without_ready.is_empty() && unseen.is_empty()) || read >= MAX_BACKUP_PAGES {
            break;
        }
    }
    snapshot.backups.sort_by_key(|b| std::cmp::Reverse(b.created));
    Ok(snapshot)
}

fn time(at: Option<&cloudhsm::primitives::DateTime>) -> Option<DateTime<Utc>> {
    at.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

fn malformed(what: &str) -> ReadError {
    ReadError { message: format!("malformed answer: {what}") }
}

fn cluster_of(cluster: &cloudhsm::types::Cluster) -> Result<Cluster, ReadError> {
    let id = cluster.cluster_id().ok_or_else(|| malformed("a cluster without ClusterId"))?;
    Ok(Cluster {
        id: id.to_owned(),
        state: cluster.state().map_or("UNKNOWN", |s| s.as_str()).to_owned(),
        state_message: cluster.state_message().map(str::to_owned),
        hsm_type: cluster.hsm_type().map(str::to_owned),
        mode: cluster.mode().map(|m| m.as_str().to_owned()),
        created: time(cluster.create_timestamp()),
        source_backup_id: cluster.source_backup_id().filter(|s| !s.is_empty()).map(str::to_owned),
        hsms: cluster
            .hsms()
            .iter()
            .map(|hsm| Hsm {
                id: hsm.hsm_id().to_owned(),
                state: hsm.state().map_or("UNKNOWN", |s| s.as_str()).to_owned(),
                eni_ip: hsm.eni_ip().map(str::to_owned),
                availability_zone: hsm.availability_zone().map(str::to_owned),
            })
            .collect(),
    })
}

fn backup_of(backup: &cloudhsm::types::Backup) -> Result<Backup, ReadError> {
    let cluster_id = backup.cluster_id().ok_or_else(|| malformed("a backup without ClusterId"))?;
    Ok(Backup {
        id: backup.backup_id().to_owned(),
        cluster_id: cluster_id.to_owned(),
        state: backup.backup_state().map_or("UNKNOWN", |s| s.as_str()).to_owned(),
        created: time(backup.copy_timestamp().or(backup.create_timestamp())),
    })
}
