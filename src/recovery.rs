//! Backups and restores you can trust: for each Luna appliance (its successful `partition.backup` and
//! `partition.restore` lines, from the inventory) and each CloudHSM cluster (its newest READY backup; a cluster
//! created from a backup is a restore exercised), whether the last backup or restore is older than
//! `inventory.backup_max_age` / `restore_max_age`. Crossing the limit either way is an event (`backup.overdue`,
//! `restore.overdue`, dataset `hsmwatch.recovery`); what is overdue is kept in the store, so a restart repeats nothing.
//!
//! Something never backed up or restored is measured from when hsmwatch started watching it (the host's first line,
//! the cluster's creation), since nothing older can be known. An appliance is judged while it is heard: one that sent
//! nothing for `backup_max_age` (decommissioned, or known only from an imported archive) is not, since its silence
//! says nothing of its backups (`luna.host.silent` tells of the silence).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::cloud::view::RegionView;
use crate::event::{field, Event, Timestamp};
use crate::queue::Queue;
use crate::store::hosts::Host;
use crate::store::{Reader, StoreError, Writer};

/// How often the limits are checked when nothing asks sooner (a cloud read asks after each round).
const CHECK_EVERY: Duration = Duration::from_secs(600);

/// The dataset of the events made here.
pub const DATASET: &str = "hsmwatch.recovery";

/// What the limits are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Longest time without a successful backup.
    pub backup: Duration,
    /// Longest time without a restore exercised.
    pub restore: Duration,
}

/// Something that is backed up and can be restored: a Luna appliance or a CloudHSM cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    /// `host:hsm-01`, `cluster:111111111111/eu-west-1/cluster-abc`.
    pub key: String,
    /// How messages name it.
    pub label: String,
    /// Its last successful backup.
    pub last_backup: Option<DateTime<Utc>>,
    /// Its last restore exercised.
    pub last_restore: Option<DateTime<Utc>>,
    /// Since when it is watched (what "never" is measured from).
    pub watched_since: DateTime<Utc>,
    /// The fields its events carry to name it.
    pub fields: Vec<(&'static str, String)>,
}

/// A Luna appliance is a host that sends the appliance's own logs (not only what hsmwatch makes, nor CloudHSM audit
/// records, whose backups are the cluster's).
fn is_luna_appliance(host: &Host) -> bool {
    host.datasets.keys().any(|d| d.starts_with("luna.") && d != "luna.snmp")
}

/// The subjects: Luna appliances of the inventory heard within `heard_within` of `now`, and the clusters of the cloud
/// inventory (deleted ones left out).
pub fn subjects(hosts: &[Host], regions: &[RegionView], heard_within: Duration, now: DateTime<Utc>) -> Vec<Subject> {
    let heard = |host: &Host| crate::event::later(host.last_seen, heard_within) >= now;
    let appliances = hosts.iter().filter(|h| is_luna_appliance(h) && heard(h)).map(|host| Subject {
        key: format!("host:{}", host.name),
        label: host.name.clone(),
        last_backup: host.last_backup,
        last_restore: host.last_restore,
        watched_since: host.first_seen,
        fields: vec![(field::HOST_NAME, host.name.clone())],
    });
    let clusters = regions.iter().flat_map(|region| {
        region.clusters.iter().filter(|c| !c.state.starts_with("DELETE")).map(move |cluster| Subject {
            key: format!("cluster:{}/{}/{}", region.account, region.region, cluster.id),
            label: format!("cluster {} ({} {})", cluster.id, region.account, region.region),
            last_backup: cluster.last_backup.as_ref().and_then(|b| b.created),
            last_restore: cluster.last_restore.as_ref().map(|r| r.at),
            watched_since: cluster.created.or(region.last_success).unwrap_or_else(Utc::now),
            fields: vec![
                (field::CLOUD_PROVIDER, "aws".to_owned()),
                (field::CLOUD_ACCOUNT_ID, region.account.clone()),
                (field::CLOUD_REGION, region.region.clone()),
                (field::AWS_CLUSTER_ID, cluster.id.clone()),
            ],
        })
    });
    appliances.chain(clusters).collect()
}

/// What a check found: the events, the state keys that became overdue and those that ended.
#[derive(Debug, Default, PartialEq)]
pub struct Checked {
    /// Events to store.
    pub events: Vec<Event>,
    /// Keys now overdue (`backup host:hsm-01`).
    pub became: Vec<String>,
    /// Keys no longer overdue.
    pub ended: Vec<String>,
}

/// Compares each subject's last backup and restore with the limits, against what was already reported.
pub fn check(subjects: &[Subject], reported: &HashSet<String>, limits: Limits, now: DateTime<Utc>) -> Checked {
    let mut checked = Checked::default();
    for subject in subjects {
        let kinds = [
            ("backup", "backup.overdue", subject.last_backup, limits.backup),
            ("restore", "restore.overdue", subject.last_restore, limits.restore),
        ];
        for (kind, action, last, limit) in kinds {
            let key = format!("{kind} {}", subject.key);
            let overdue = crate::event::later(last.unwrap_or(subject.watched_since), limit) < now;
            if overdue == reported.contains(&key) {
                continue;
            }
            let text = match (overdue, last) {
                (true, Some(at)) => format!("no {kind} of {} since {}", subject.label, at.format("%Y-%m-%d %H:%M UTC")),
                (true, None) => format!(
                    "no {kind} of {} since it is watched ({})",
                    subject.label,
                    subject.watched_since.format("%Y-%m-%d")
                ),
                (false, _) => format!("{} has a recent {kind} again", subject.label),
            };
            checked.events.push(event(action, overdue, text, last, subject));
            match overdue {
                true => checked.became.push(key),
                false => checked.ended.push(key),
            }
        }
    }
    checked
}

fn event(action: &'static str, overdue: bool, text: String, last: Option<DateTime<Utc>>, subject: &Subject) -> Event {
    let at = Timestamp::from_clock(Utc::now());
    let mut event = Event::new(at, at);
    event.set(field::ORIGINAL, format!("hsmwatch {text}"));
    event.set(field::MESSAGE, text);
    event.set(field::DATASET, DATASET);
    event.set(field::ACTION, action);
    event.set(field::OUTCOME, if overdue { "failure" } else { "success" });
    event.set(field::CATEGORY, "configuration");
    if let Some(last) = last {
        event.set(field::PREVIOUS_VALUE, last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    for (name, value) in &subject.fields {
        event.set(name, value.clone());
    }
    event
}

/// What the check task needs.
pub struct RecoveryContext {
    /// Where its events go.
    pub queue: Queue,
    /// Where what is overdue is kept.
    pub writer: Writer,
    /// Where hosts and cloud states are read.
    pub reader: Reader,
    /// The limits.
    pub limits: Limits,
    /// Asks for a check now (after a cloud read).
    pub wake: Arc<tokio::sync::Notify>,
    /// Stops it.
    pub shutdown: CancellationToken,
}

/// Checks the limits every [`CHECK_EVERY`] and whenever woken, until shutdown.
pub async fn run(context: RecoveryContext) {
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = context.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
            _ = context.wake.notified() => {}
        }
        match check_once(&context).await {
            Ok(events) => {
                for event in events {
                    if context.queue.send(event).await.is_err() {
                        return;
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot check backups and restores; trying again later"),
        }
    }
}

async fn check_once(context: &RecoveryContext) -> Result<Vec<Event>, StoreError> {
    let hosts = crate::store::hosts::all(&context.reader).await?;
    let regions = crate::cloud::view::views(&context.reader).await?;
    let now = Utc::now();
    let subjects = subjects(&hosts, &regions, context.limits.backup, now);
    let mut conn = context.writer.lock().await?;
    let reported: HashSet<String> = crate::store::cloud::overdue(&mut conn).await?.into_iter().collect();
    let checked = check(&subjects, &reported, context.limits, now);
    // Subjects that left (a deleted cluster, a pruned host) are forgotten without an event.
    let present: HashSet<String> =
        subjects.iter().flat_map(|s| [format!("backup {}", s.key), format!("restore {}", s.key)]).collect();
    let mut ended = checked.ended;
    ended.extend(reported.into_iter().filter(|key| !present.contains(key)));
    crate::store::cloud::set_overdue(&mut conn, &checked.became, &ended, Utc::now()).await?;
    Ok(checked.events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::view::{BackupView, ClusterView};
    use std::collections::BTreeMap;

    const DAY: i64 = 86_400;

    fn at(days: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + days * DAY, 0).unwrap()
    }

    fn appliance(name: &str, first_seen: i64, backup: Option<i64>, restore: Option<i64>) -> Host {
        let mut host = Host::new(name, at(first_seen));
        host.last_seen = at(100);
        host.datasets.insert("luna.lunash".to_owned(), 1);
        host.last_backup = backup.map(at);
        host.last_restore = restore.map(at);
        host
    }

    const LIMITS: Limits =
        Limits { backup: Duration::from_secs(7 * 86_400), restore: Duration::from_secs(90 * 86_400) };

    #[test]
    fn an_old_backup_and_a_restore_never_made_are_overdue_once() {
        let hosts = [appliance("hsm-01", 0, Some(90), None)];
        let subjects = subjects(&hosts, &[], LIMITS.backup, at(100));
        let now = at(100);
        let first = check(&subjects, &HashSet::new(), LIMITS, now);
        let actions: Vec<_> = first.events.iter().map(|e| e.get(field::ACTION).unwrap()).collect();
        assert_eq!(actions, ["backup.overdue", "restore.overdue"]);
        assert!(first.events[1].get(field::MESSAGE).unwrap().contains("since it is watched"));
        assert_eq!(first.events[0].get(field::HOST_NAME), Some("hsm-01"));
        let reported: HashSet<String> = first.became.into_iter().collect();
        assert!(check(&subjects, &reported, LIMITS, now).events.is_empty(), "told once");
        let fresh = [appliance("hsm-01", 0, Some(99), Some(99))];
        let again = check(&super::subjects(&fresh, &[], LIMITS.backup, now), &reported, LIMITS, now);
        assert_eq!(again.ended.len(), 2);
        assert!(again.events.iter().all(|e| e.get(field::OUTCOME) == Some("success")));
    }

    #[test]
    fn new_silent_and_non_appliance_hosts_are_not_overdue() {
        let mut relay = appliance("relay", 0, None, None);
        relay.datasets = BTreeMap::from([("syslog".to_owned(), 5)]);
        let mut archived = appliance("hsm-archived", 0, None, None);
        archived.last_seen = at(10);
        let hosts = [appliance("hsm-new", 95, None, None), relay, archived];
        let found = check(&subjects(&hosts, &[], LIMITS.backup, at(100)), &HashSet::new(), LIMITS, at(100));
        assert!(found.events.is_empty(), "{:?}", found.events);
    }

    fn cluster(id: &str, created: i64, last_backup: Option<&str>, restored_from: Option<&str>) -> ClusterView {
        ClusterView {
            id: id.into(),
            state: "ACTIVE".into(),
            state_message: None,
            hsm_type: None,
            mode: None,
            created: Some(at(created)),
            restored_from: restored_from.map(str::to_owned),
            last_restore: None,
            last_backup: last_backup.map(|b| BackupView { id: b.into(), state: "READY".into(), created: Some(at(99)) }),
            backups_in_progress: Vec::new(),
            hsms: Vec::new(),
        }
    }

    #[test]
    fn a_cluster_made_from_a_backup_is_a_restore_of_itself_and_of_the_backups_cluster() {
        let region = RegionView {
            account: "111111111111".into(),
            account_name: None,
            region: "eu-west-1".into(),
            last_success: Some(at(100)),
            last_attempt: Some(at(100)),
            read_seconds: None,
            error: None,
            failing_since: None,
            clusters: vec![
                cluster("cluster-prod", 0, Some("backup-1"), None),
                cluster("cluster-drill", 95, Some("backup-2"), Some("backup-1")),
                cluster("cluster-other", 0, Some("backup-3"), None),
            ],
        };
        let mut regions = [region];
        crate::cloud::view::credit_restores(&mut regions);
        let found = subjects(&[], &regions, LIMITS.backup, at(100));
        let restore = |key: &str| found.iter().find(|s| s.key.ends_with(key)).unwrap().last_restore;
        assert_eq!(restore("/cluster-prod"), Some(at(95)));
        assert_eq!(restore("/cluster-drill"), Some(at(95)));
        assert_eq!(restore("/cluster-other"), None);
        let checked = check(&found, &HashSet::new(), LIMITS, at(100));
        let overdue: Vec<&str> = checked.events.iter().filter_map(|e| e.get(field::MESSAGE)).collect();
        assert_eq!(
            overdue,
            ["no restore of cluster cluster-other (111111111111 eu-west-1) since it is watched (2026-01-01)"]
        );
    }
}
