//! The cloud inventory stage: reads AWS CloudHSM (clusters, HSMs, backups) in every configured account and region
//! every `interval`, and turns what changed into events of the same contract as log lines (`event.dataset:
//! aws.cloudhsm`), stored and evaluated like any line.
//!
//! One task reads everything each round, a few account × region reads at a time; one failing account or region is
//! an event and never stops the others. What was read is compared with the state last known (kept in the store, so
//! a restart makes no burst of "changes"), and listed HSMs are joined with what the inventory hears, to find the
//! dark ones. AWS's SDK does the signing, credentials and retries ([`aws`]).

pub mod aws;
pub mod snapshot;
pub mod view;
pub mod watch;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use self::snapshot::{Hsm, Snapshot};
use self::watch::{Heard, RegionState, Watcher};
use crate::config::cloud::{AwsConfig, ResolvedAccount};
use crate::event::Event;
use crate::metrics::Counters;
use crate::queue::Queue;
use crate::store::hosts::Host;
use crate::store::{Reader, StoreError, Writer};

/// The `event.dataset` of the events this stage makes.
pub const DATASET: &str = "aws.cloudhsm";

/// The account key of the collector's own account while STS has not yet named it.
pub const OWN_ACCOUNT: &str = "own";

/// What the stage needs besides its configuration.
#[derive(Clone)]
pub struct CloudContext {
    /// Where its events go.
    pub queue: Queue,
    /// Where its state is saved.
    pub writer: Writer,
    /// Where the inventory's hosts are read (to find dark HSMs).
    pub reader: Reader,
    /// Where its figures are shown.
    pub counters: Arc<Counters>,
    /// A listed HSM that sent nothing for this long is dark.
    pub silent_after: Duration,
    /// Told after each round (the recovery check looks at the clusters' backups then).
    pub wake: Arc<tokio::sync::Notify>,
    /// Stops it.
    pub shutdown: CancellationToken,
}

/// One account × region read.
#[derive(Debug)]
pub struct RegionRead {
    /// The account id (or [`OWN_ACCOUNT`] when STS could not name it).
    pub account: String,
    /// The account's display name.
    pub account_name: Option<String>,
    /// The region.
    pub region: String,
    /// It is the collector's own account (read with its credentials as they are).
    pub own: bool,
    /// What was read, or why not.
    pub result: Result<Snapshot, aws::ReadError>,
    /// How long it took.
    pub took: Duration,
}

/// The clients of the configured accounts, built once (an account whose clients cannot be built yet, because STS
/// does not answer, is tried again each round).
pub struct Accounts {
    base: aws_config::SdkConfig,
    configured: Vec<ResolvedAccount>,
    built: Vec<Option<aws::Account>>,
}

impl Accounts {
    /// Prepares the accounts of `config`; nothing is asked of AWS yet.
    pub async fn new(config: &AwsConfig) -> Result<Accounts, String> {
        let configured = config.resolve()?;
        let first = configured.iter().flat_map(|a| a.regions.first()).next().cloned().unwrap_or_default();
        let base = aws::base_config(config, &first).await;
        let built = configured.iter().map(|_| None).collect();
        Ok(Accounts { base, configured, built })
    }

    /// Reads every account's regions, `concurrency` at a time, with `watched` backups per (account, region).
    pub async fn read_all(
        &mut self,
        concurrency: usize,
        watched: &HashMap<(String, String), std::collections::HashSet<String>>,
    ) -> Vec<RegionRead> {
        let mut reads = Vec::new();
        let mut jobs = tokio::task::JoinSet::new();
        let mut pending = HashMap::new();
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        for (configured, built) in self.configured.iter().zip(self.built.iter_mut()) {
            let own = configured.role_arn.is_none();
            let read_of = |account: &str, name: &Option<String>, region: &str, result| RegionRead {
                account: account.to_owned(),
                account_name: name.clone(),
                region: region.to_owned(),
                own,
                result,
                took: Duration::ZERO,
            };
            if built.is_none() {
                match aws::account(&self.base, configured).await {
                    Ok(account) => *built = Some(account),
                    Err(error) => {
                        let key = configured.id.as_deref().unwrap_or(OWN_ACCOUNT);
                        let failed = |region: &String| read_of(key, &configured.name, region, Err(error.clone()));
                        reads.extend(configured.regions.iter().map(failed));
                        continue;
                    }
                }
            }
            let Some(account) = built else { continue };
            for (region, client) in &account.regions {
                let client = client.clone();
                let watched = watched.get(&(account.id.clone(), region.clone())).cloned().unwrap_or_default();
                let permits = permits.clone();
                let task = jobs.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let started = Instant::now();
                    (aws::read_region(&client, &watched).await, started.elapsed())
                });
                // What the task's outcome is about, filled in when it ends.
                let read = read_of(&account.id, &account.name, region, Ok(Snapshot::default()));
                pending.insert(task.id(), read);
            }
        }
        while let Some(done) = jobs.join_next_with_id().await {
            let (id, result, took) = match done {
                Ok((id, (result, took))) => (id, result, took),
                Err(error) => {
                    // A read that panicked is a failed read of its region, not a region that vanished.
                    let message = format!("the read failed inside hsmwatch: {error}");
                    tracing::error!(%message, "cloud inventory read");
                    (error.id(), Err(aws::ReadError { message }), Duration::ZERO)
                }
            };
            if let Some(read) = pending.remove(&id) {
                reads.push(RegionRead { result, took, ..read });
            }
        }
        reads.sort_by(|a, b| (&a.account, &a.region).cmp(&(&b.account, &b.region)));
        reads
    }
}

/// Every region's saved state, by (account, region); a state that no longer reads is started afresh, and said so.
pub async fn saved_states(writer: &Writer) -> Result<HashMap<(String, String), RegionState>, StoreError> {
    let rows = crate::store::cloud::states(&mut *writer.lock().await?).await?;
    Ok(parse_states(rows).into_iter().map(|(account, region, state)| ((account, region), state)).collect())
}

/// Every region's saved state, read beside the server, ordered by account and region.
pub async fn read_states(reader: &Reader) -> Result<Vec<(String, String, RegionState)>, StoreError> {
    Ok(parse_states(crate::store::cloud::read_states(reader).await?))
}

fn parse_states(rows: Vec<(String, String, String)>) -> Vec<(String, String, RegionState)> {
    rows.into_iter()
        .filter_map(|(account, region, json)| match serde_json::from_str(&json) {
            Ok(state) => Some((account, region, state)),
            Err(error) => {
                tracing::warn!(%account, %region, %error, "the saved cloud state cannot be read; starting afresh");
                None
            }
        })
        .collect()
}

/// Reads AWS every `interval` until shutdown, the first round at once.
pub async fn run(config: AwsConfig, context: CloudContext) {
    let mut accounts = match Accounts::new(&config).await {
        Ok(accounts) => accounts,
        Err(error) => return tracing::error!(%error, "the cloud inventory cannot start"),
    };
    let mut states = match saved_states(&context.writer).await {
        Ok(states) => states,
        Err(error) => return tracing::error!(%error, "the cloud inventory cannot read its saved state"),
    };
    tracing::info!(accounts = accounts.configured.len(), interval = ?config.interval, "cloud inventory started");
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = context.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let watched = states.iter().map(|(key, state)| (key.clone(), state.watched_backups())).collect();
        let reads = tokio::select! {
            _ = context.shutdown.cancelled() => return,
            reads = accounts.read_all(config.concurrency, &watched) => reads,
        };
        let hosts = match crate::store::hosts::all(&context.reader).await {
            Ok(hosts) => Some(hosts),
            Err(error) => {
                tracing::warn!(%error, "cannot read the inventory's hosts; dark HSMs are checked next round");
                None
            }
        };
        let join = hosts.as_deref().map(|hosts| Join::new(hosts, &config.hosts));
        let now = Utc::now();
        for read in reads {
            let mut events = Vec::new();
            if read.own && read.account != OWN_ACCOUNT {
                events.extend(forget_unnamed(&mut states, &context.writer, &read.region, now).await);
            }
            let state = states.entry((read.account.clone(), read.region.clone())).or_default();
            events.extend(apply(state, &read, now, join.as_ref(), context.silent_after));
            record_figures(&context.counters, &read, state);
            for event in events {
                if context.queue.send(event).await.is_err() {
                    return;
                }
            }
            if let Err(error) = save(&context.writer, &read.account, &read.region, state).await {
                tracing::warn!(account = %read.account, region = %read.region, %error, "cannot save the cloud state");
            }
        }
        context.wake.notify_one();
    }
}

/// The collector's own account was read under [`OWN_ACCOUNT`] while STS could not name it; now that it can, that
/// state goes, and a failure it told is told to be over (its alert resolves).
async fn forget_unnamed(
    states: &mut HashMap<(String, String), RegionState>,
    writer: &Writer,
    region: &str,
    now: DateTime<Utc>,
) -> Vec<Event> {
    let Some(mut unnamed) = states.remove(&(OWN_ACCOUNT.to_owned(), region.to_owned())) else { return Vec::new() };
    let forgotten = match writer.lock().await {
        Ok(mut conn) => crate::store::cloud::forget(&mut conn, OWN_ACCOUNT, region).await,
        Err(error) => Err(error),
    };
    if let Err(error) = forgotten {
        tracing::warn!(%region, %error, "cannot forget the unnamed account's state");
    }
    Watcher { account: OWN_ACCOUNT, region, now }.recovered(&mut unnamed).into_iter().collect()
}

/// The events of one read against its region's state, and the state updated; dark HSMs are checked against `join`
/// only when the inventory's hosts could be read (an unreadable inventory must not make every HSM dark).
pub fn apply(
    state: &mut RegionState,
    read: &RegionRead,
    now: DateTime<Utc>,
    join: Option<&Join<'_>>,
    silent_after: Duration,
) -> Vec<Event> {
    let watcher = Watcher { account: &read.account, region: &read.region, now };
    state.account_name.clone_from(&read.account_name);
    state.last_duration = Some(read.took.as_secs_f64());
    let mut events = match &read.result {
        Ok(snapshot) => watcher.succeeded(state, snapshot.clone()),
        Err(error) => {
            tracing::debug!(account = %read.account, region = %read.region, %error, "cloud inventory read failed");
            watcher.failed(state, &error.message)
        }
    };
    if let Some(join) = join {
        events.extend(watcher.darkness(state, silent_after, |hsm| join.heard(hsm)));
    }
    events
}

async fn save(writer: &Writer, account: &str, region: &str, state: &RegionState) -> Result<(), StoreError> {
    let json = serde_json::to_string(state).map_err(|e| StoreError::CorruptRow { id: 0, reason: e.to_string() })?;
    crate::store::cloud::save(&mut *writer.lock().await?, account, region, &json, Utc::now()).await
}

/// How listed HSMs are matched with the hosts the inventory hears: the configured name, else a host that sent from
/// the HSM's ENI address, else a host named as the HSM id or its address.
pub struct Join<'a> {
    by_name: HashMap<&'a str, &'a Host>,
    by_address: HashMap<&'a str, &'a Host>,
    names: &'a BTreeMap<String, String>,
}

impl<'a> Join<'a> {
    /// Indexes `hosts`; `names` maps HSM ids to host names.
    pub fn new(hosts: &'a [Host], names: &'a BTreeMap<String, String>) -> Join<'a> {
        let by_name = hosts.iter().map(|h| (h.name.as_str(), h)).collect();
        let by_address = hosts.iter().flat_map(|h| h.addresses.iter().map(move |a| (a.as_str(), h))).collect();
        Join { by_name, by_address, names }
    }

    /// The host of a listed HSM.
    pub fn host(&self, hsm: &Hsm) -> Option<&'a Host> {
        if let Some(name) = self.names.get(&hsm.id) {
            return self.by_name.get(name.as_str()).copied();
        }
        let address = hsm.eni_ip.as_deref();
        address
            .and_then(|ip| self.by_address.get(ip))
            .or_else(|| self.by_name.get(hsm.id.as_str()))
            .or_else(|| address.and_then(|ip| self.by_name.get(ip)))
            .copied()
    }

    /// What the inventory heard from a listed HSM.
    pub fn heard(&self, hsm: &Hsm) -> Option<Heard> {
        self.host(hsm).map(|host| Heard { host: host.name.clone(), last_seen: host.last_seen })
    }
}

fn record_figures(counters: &Counters, read: &RegionRead, state: &RegionState) {
    let mut all = counters.cloud.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let figures = all.entry((read.account.clone(), read.region.clone())).or_default();
    figures.read_seconds = read.took.as_secs_f64();
    match &read.result {
        Ok(_) => figures.reads_ok += 1,
        Err(_) => figures.reads_failed += 1,
    }
    figures.up = read.result.is_ok();
    let Some(snapshot) = &state.snapshot else { return };
    figures.clusters = BTreeMap::new();
    figures.hsms = BTreeMap::new();
    figures.newest_backup = BTreeMap::new();
    for cluster in &snapshot.clusters {
        *figures.clusters.entry(cluster.state.clone()).or_default() += 1;
        for hsm in &cluster.hsms {
            *figures.hsms.entry(hsm.state.clone()).or_default() += 1;
        }
        figures.newest_backup.insert(cluster.id.clone(), snapshot.newest_ready(&cluster.id).and_then(|b| b.created));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, address: &str) -> Host {
        let mut host = Host::new(name, DateTime::from_timestamp(1_767_225_600, 0).unwrap());
        host.addresses.insert(address.to_owned());
        host
    }

    fn hsm(id: &str, ip: &str) -> Hsm {
        Hsm { id: id.into(), state: "ACTIVE".into(), eni_ip: Some(ip.into()), availability_zone: None }
    }

    #[test]
    fn hsms_join_hosts_by_mapping_then_address_then_name() {
        let hosts = [host("relay-seen", "10.0.0.9"), host("cloudhsm-a", "10.0.1.17"), host("hsm-named", "10.9.9.9")];
        let names = BTreeMap::from([("hsm-mapped".to_owned(), "relay-seen".to_owned())]);
        let join = Join::new(&hosts, &names);
        assert_eq!(join.host(&hsm("hsm-mapped", "10.0.1.17")).unwrap().name, "relay-seen");
        assert_eq!(join.host(&hsm("hsm-x", "10.0.1.17")).unwrap().name, "cloudhsm-a");
        assert_eq!(join.host(&hsm("hsm-named", "10.5.5.5")).unwrap().name, "hsm-named");
        assert!(join.host(&hsm("hsm-dark", "10.5.5.5")).is_none());
    }
}
