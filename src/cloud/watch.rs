//! What a read changed: the state last known of one account's region (kept in the store, so a restart makes no burst
//! of "changes") and the events a new read makes against it. An event is made when something changes (a cluster's or
//! an HSM's state, an HSM added or removed, a backup done or failed, the region becoming unreadable or readable, an
//! HSM going dark), never once per read.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::snapshot::{Backup, Cluster, Hsm, Snapshot};
use crate::event::{field, Event, Timestamp};

/// What is known of one account's region between reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionState {
    /// The account's display name, as configured when last read.
    #[serde(default)]
    pub account_name: Option<String>,
    /// The last successful read.
    pub snapshot: Option<Snapshot>,
    /// When that was.
    pub last_success: Option<DateTime<Utc>>,
    /// The last read, successful or not.
    pub last_attempt: Option<DateTime<Utc>>,
    /// How long the last read took, in seconds.
    #[serde(default)]
    pub last_duration: Option<f64>,
    /// The failure reported, while reads go on failing.
    pub failing: Option<String>,
    /// When the current run of failed reads began.
    pub failing_since: Option<DateTime<Utc>>,
    /// When each HSM was first listed (an HSM is not dark before it has existed for the silence threshold).
    #[serde(default)]
    pub hsm_first_listed: BTreeMap<String, DateTime<Utc>>,
    /// HSMs reported dark (listed by AWS, nothing heard from them).
    #[serde(default)]
    pub silent: BTreeSet<String>,
    /// The host each listed HSM's logs come from, as last joined.
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
}

impl RegionState {
    /// Backups last seen being made: the next read looks for each of them.
    pub fn watched_backups(&self) -> HashSet<String> {
        let Some(snapshot) = &self.snapshot else { return HashSet::new() };
        snapshot.backups.iter().filter(|b| b.in_progress()).map(|b| b.id.clone()).collect()
    }
}

/// What the inventory knows of an HSM's own traffic: the host its logs come from and when it last spoke.
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    /// The `host.name` its logs carry.
    pub host: String,
    /// The last line received from it.
    pub last_seen: DateTime<Utc>,
}

/// Makes the events of changes for one account's region.
pub struct Watcher<'a> {
    /// The account id.
    pub account: &'a str,
    /// The region.
    pub region: &'a str,
    /// Now.
    pub now: DateTime<Utc>,
}

/// The outcome of a state: the healthy one is a success, a degraded or deleted one a failure, the rest in between.
fn outcome_of(state: &str) -> &'static str {
    match state {
        "ACTIVE" | "READY" => "success",
        "DEGRADED" | "DELETED" | "DELETE_IN_PROGRESS" | "ROLLBACK_IN_PROGRESS" => "failure",
        _ => "unknown",
    }
}

/// A change's fields: the state after, and before when there was one.
fn set_change(event: &mut Event, current: &str, previous: Option<&str>) {
    event.set(field::CURRENT_VALUE, current.to_owned());
    if let Some(before) = previous {
        event.set(field::PREVIOUS_VALUE, before.to_owned());
    }
}

impl Watcher<'_> {
    fn event(&self, action: &'static str, category: &'static str, outcome: &'static str, text: String) -> Event {
        let at = Timestamp::from_clock(self.now);
        let mut event = Event::new(at, at);
        event.set(field::ORIGINAL, format!("aws {} {} {text}", self.account, self.region));
        event.set(field::MESSAGE, text);
        event.set(field::DATASET, super::DATASET);
        event.set(field::ACTION, action);
        event.set(field::OUTCOME, outcome);
        event.set(field::CATEGORY, category);
        event.set(field::CLOUD_PROVIDER, "aws");
        event.set(field::CLOUD_ACCOUNT_ID, self.account.to_owned());
        event.set(field::CLOUD_REGION, self.region.to_owned());
        event
    }

    fn hsm_event(
        &self,
        action: &'static str,
        cluster: &Cluster,
        hsm: &Hsm,
        outcome: &'static str,
        text: String,
    ) -> Event {
        let mut event = self.event(action, "configuration", outcome, text);
        event.set(field::AWS_CLUSTER_ID, cluster.id.clone());
        event.set(field::AWS_HSM_ID, hsm.id.clone());
        if let Some(ip) = &hsm.eni_ip {
            event.set(field::HOST_IP, ip.clone());
        }
        if let Some(zone) = &hsm.availability_zone {
            event.set(field::CLOUD_AVAILABILITY_ZONE, zone.clone());
        }
        event
    }

    /// A read failed: one event when a run of failures begins (the state remembers it).
    pub fn failed(&self, state: &mut RegionState, error: &str) -> Vec<Event> {
        state.last_attempt = Some(self.now);
        if state.failing.is_some() {
            return Vec::new();
        }
        state.failing = Some(error.to_owned());
        state.failing_since = Some(self.now);
        let mut event = self.event("cloud.inventory", "network", "failure", format!("cannot be read: {error}"));
        event.set(field::ERROR_MESSAGE, error.to_owned());
        vec![event]
    }

    /// The end of a run of failures, when there was one.
    pub fn recovered(&self, state: &mut RegionState) -> Option<Event> {
        state.failing_since = None;
        let error = state.failing.take()?;
        let mut event = self.event("cloud.inventory", "network", "success", "can be read again".into());
        event.set(field::PREVIOUS_VALUE, error);
        Some(event)
    }

    /// A read succeeded: the events of what changed since the last one, and the state updated.
    pub fn succeeded(&self, state: &mut RegionState, snapshot: Snapshot) -> Vec<Event> {
        let mut events: Vec<Event> = self.recovered(state).into_iter().collect();
        match &state.snapshot {
            Some(previous) => {
                self.compare_clusters(previous, &snapshot, &mut events);
                self.compare_backups(previous, &snapshot, &mut events);
            }
            None => self.first_read(&snapshot, &mut events),
        }
        let listed: BTreeSet<&str> =
            snapshot.clusters.iter().flat_map(|c| c.hsms.iter().map(|h| h.id.as_str())).collect();
        state.hsm_first_listed.retain(|id, _| listed.contains(id.as_str()));
        state.silent.retain(|id| listed.contains(id.as_str()));
        for id in listed {
            state.hsm_first_listed.entry(id.to_owned()).or_insert(self.now);
        }
        state.snapshot = Some(snapshot);
        state.last_success = Some(self.now);
        state.last_attempt = Some(self.now);
        events
    }

    /// The first read of a region tells only what is wrong already: there was no "before" to change from.
    fn first_read(&self, snapshot: &Snapshot, events: &mut Vec<Event>) {
        for cluster in &snapshot.clusters {
            if cluster.state != "ACTIVE" {
                events.push(self.cluster_state(cluster, None));
            }
            for hsm in cluster.hsms.iter().filter(|h| h.state != "ACTIVE") {
                events.push(self.hsm_state(cluster, hsm, None));
            }
        }
    }

    fn cluster_state(&self, cluster: &Cluster, previous: Option<&str>) -> Event {
        let text = match previous {
            Some(before) => format!("cluster {} {} was {before}", cluster.id, cluster.state),
            None => format!("cluster {} {}", cluster.id, cluster.state),
        };
        let mut event = self.event("cloud.cluster_state", "configuration", outcome_of(&cluster.state), text);
        event.set(field::AWS_CLUSTER_ID, cluster.id.clone());
        set_change(&mut event, &cluster.state, previous);
        if let Some(message) = &cluster.state_message {
            event.set(field::ERROR_MESSAGE, message.clone());
        }
        event
    }

    fn hsm_state(&self, cluster: &Cluster, hsm: &Hsm, previous: Option<&str>) -> Event {
        let text = match previous {
            Some(before) => format!("hsm {} of cluster {} {} was {before}", hsm.id, cluster.id, hsm.state),
            None => format!("hsm {} of cluster {} {}", hsm.id, cluster.id, hsm.state),
        };
        let mut event = self.hsm_event("cloud.hsm_state", cluster, hsm, outcome_of(&hsm.state), text);
        set_change(&mut event, &hsm.state, previous);
        event
    }

    fn compare_clusters(&self, previous: &Snapshot, now: &Snapshot, events: &mut Vec<Event>) {
        for cluster in &now.clusters {
            let Some(before) = previous.cluster(&cluster.id) else {
                events.push(self.cluster_state(cluster, None));
                for hsm in &cluster.hsms {
                    events.push(self.hsm_added(cluster, hsm));
                }
                continue;
            };
            if before.state != cluster.state {
                events.push(self.cluster_state(cluster, Some(&before.state)));
            }
            for hsm in &cluster.hsms {
                match before.hsms.iter().find(|h| h.id == hsm.id) {
                    None => events.push(self.hsm_added(cluster, hsm)),
                    Some(was) if was.state != hsm.state => events.push(self.hsm_state(cluster, hsm, Some(&was.state))),
                    Some(_) => {}
                }
            }
            for gone in before.hsms.iter().filter(|h| !cluster.hsms.iter().any(|n| n.id == h.id)) {
                let text = format!("hsm {} removed from cluster {}", gone.id, cluster.id);
                let mut event = self.hsm_event("cloud.hsm_removed", cluster, gone, "success", text);
                event.set(field::PREVIOUS_VALUE, gone.state.clone());
                events.push(event);
            }
        }
        for gone in previous.clusters.iter().filter(|c| now.cluster(&c.id).is_none()) {
            let deleted = Cluster { state: "DELETED".into(), state_message: None, ..gone.clone() };
            events.push(self.cluster_state(&deleted, Some(&gone.state)));
        }
    }

    fn hsm_added(&self, cluster: &Cluster, hsm: &Hsm) -> Event {
        let text = format!("hsm {} added to cluster {} ({})", hsm.id, cluster.id, hsm.state);
        let mut event = self.hsm_event("cloud.hsm_added", cluster, hsm, outcome_of(&hsm.state), text);
        set_change(&mut event, &hsm.state, None);
        event
    }

    fn compare_backups(&self, previous: &Snapshot, now: &Snapshot, events: &mut Vec<Event>) {
        let mut told = HashSet::new();
        for cluster in &now.clusters {
            let Some(newest) = now.newest_ready(&cluster.id) else { continue };
            let known = previous.newest_ready(&cluster.id);
            if known.is_none_or(|k| k.id != newest.id && k.created <= newest.created) {
                told.insert(newest.id.clone());
                events.push(self.backup(newest, "success", "READY"));
            }
        }
        for was in previous.backups.iter().filter(|b| b.in_progress()) {
            match now.backups.iter().find(|b| b.id == was.id) {
                Some(backup) if backup.ready() && !told.contains(&backup.id) => {
                    events.push(self.backup(backup, "success", "READY"));
                }
                Some(backup) if backup.gone() => events.push(self.backup(backup, "failure", &backup.state)),
                None => {
                    let vanished = Backup { state: "DELETED".into(), ..was.clone() };
                    events.push(self.backup(&vanished, "failure", "no longer listed"));
                }
                Some(_) => {}
            }
        }
    }

    fn backup(&self, backup: &Backup, outcome: &'static str, what: &str) -> Event {
        let text = format!("backup {} of cluster {} {what}", backup.id, backup.cluster_id);
        let mut event = self.event("cloud.backup", "configuration", outcome, text);
        if let Some(created) = backup.created {
            event.timestamp = Timestamp::from_clock(created);
        }
        event.set(field::AWS_CLUSTER_ID, backup.cluster_id.clone());
        event.set(field::AWS_BACKUP_ID, backup.id.clone());
        event.set(field::CURRENT_VALUE, backup.state.clone());
        event
    }

    /// Which listed HSMs went dark (nothing heard from them for `silent_after`, and listed at least that long) or
    /// spoke again, against what the inventory heard; `heard` finds an HSM's host by its id and address.
    pub fn darkness(
        &self,
        state: &mut RegionState,
        silent_after: std::time::Duration,
        heard: impl Fn(&Hsm) -> Option<Heard>,
    ) -> Vec<Event> {
        let RegionState { snapshot: Some(snapshot), silent, hosts, hsm_first_listed, .. } = state else {
            return Vec::new();
        };
        let mut events = Vec::new();
        hosts.clear();
        for cluster in &snapshot.clusters {
            for hsm in cluster.hsms.iter().filter(|h| !h.state.starts_with("DELETE") && h.state != "CREATE_IN_PROGRESS")
            {
                let listed = hsm_first_listed.get(&hsm.id).copied().unwrap_or(self.now);
                let source = heard(hsm);
                if let Some(host) = &source {
                    hosts.insert(hsm.id.clone(), host.host.clone());
                }
                let last = source.as_ref().map(|h| h.last_seen);
                let dark = crate::event::later(last.unwrap_or(listed).max(listed), silent_after) < self.now;
                let was_dark = silent.contains(&hsm.id);
                if dark == was_dark {
                    continue;
                }
                let text = match (dark, &source) {
                    (true, Some(host)) => {
                        let since = host.last_seen.format("%Y-%m-%d %H:%M:%S UTC");
                        format!("hsm {} ({}) silent since {since}", hsm.id, host.host)
                    }
                    (true, None) => format!("hsm {} never heard from", hsm.id),
                    (false, _) => format!("hsm {} heard from again", hsm.id),
                };
                let outcome = if dark { "failure" } else { "success" };
                events.push(self.hsm_event("cloud.hsm_silent", cluster, hsm, outcome, text));
                match dark {
                    true => silent.insert(hsm.id.clone()),
                    false => silent.remove(&hsm.id),
                };
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_796_400_000 + seconds, 0).unwrap()
    }

    fn watcher(seconds: i64) -> Watcher<'static> {
        Watcher { account: "111111111111", region: "eu-west-1", now: at(seconds) }
    }

    fn hsm(id: &str, state: &str) -> Hsm {
        Hsm { id: id.into(), state: state.into(), eni_ip: Some("10.0.1.17".into()), availability_zone: None }
    }

    fn cluster(id: &str, state: &str, hsms: Vec<Hsm>) -> Cluster {
        Cluster {
            id: id.into(),
            state: state.into(),
            state_message: None,
            hsm_type: None,
            mode: None,
            created: Some(at(-86_400)),
            source_backup_id: None,
            hsms,
        }
    }

    fn backup(id: &str, state: &str, seconds: i64) -> Backup {
        Backup { id: id.into(), cluster_id: "cluster-a".into(), state: state.into(), created: Some(at(seconds)) }
    }

    fn actions(events: &[Event]) -> Vec<(String, String)> {
        events
            .iter()
            .map(|e| (e.get(field::ACTION).unwrap().to_owned(), e.get(field::MESSAGE).unwrap().to_owned()))
            .collect()
    }

    #[test]
    fn the_first_read_tells_only_what_is_wrong() {
        let mut state = RegionState::default();
        let snapshot = Snapshot {
            clusters: vec![
                cluster("cluster-a", "ACTIVE", vec![hsm("hsm-1", "ACTIVE"), hsm("hsm-2", "DEGRADED")]),
                cluster("cluster-b", "DEGRADED", vec![]),
            ],
            backups: vec![backup("backup-1", "READY", -3600)],
        };
        let events = watcher(0).succeeded(&mut state, snapshot);
        assert_eq!(
            actions(&events),
            [
                ("cloud.hsm_state".to_owned(), "hsm hsm-2 of cluster cluster-a DEGRADED".to_owned()),
                ("cloud.cluster_state".to_owned(), "cluster cluster-b DEGRADED".to_owned()),
            ]
        );
        assert_eq!(events[1].get(field::OUTCOME), Some("failure"));
        assert_eq!(state.hsm_first_listed.len(), 2);
    }

    #[test]
    fn changes_between_reads_are_events_and_nothing_else_is() {
        let mut state = RegionState::default();
        let first = Snapshot {
            clusters: vec![cluster("cluster-a", "ACTIVE", vec![hsm("hsm-1", "ACTIVE"), hsm("hsm-2", "ACTIVE")])],
            backups: vec![backup("backup-2", "CREATE_IN_PROGRESS", -60), backup("backup-1", "READY", -86_400)],
        };
        assert!(watcher(0).succeeded(&mut state, first.clone()).is_empty());
        assert!(watcher(60).succeeded(&mut state, first).is_empty(), "the same read again tells nothing");
        let second = Snapshot {
            clusters: vec![
                cluster("cluster-a", "DEGRADED", vec![hsm("hsm-1", "DEGRADED"), hsm("hsm-3", "CREATE_IN_PROGRESS")]),
                cluster("cluster-new", "UNINITIALIZED", vec![]),
            ],
            backups: vec![backup("backup-2", "READY", -60), backup("backup-1", "READY", -86_400)],
        };
        let events = watcher(120).succeeded(&mut state, second);
        let got = actions(&events);
        let expected = [
            ("cloud.cluster_state", "cluster cluster-a DEGRADED was ACTIVE"),
            ("cloud.hsm_state", "hsm hsm-1 of cluster cluster-a DEGRADED was ACTIVE"),
            ("cloud.hsm_added", "hsm hsm-3 added to cluster cluster-a (CREATE_IN_PROGRESS)"),
            ("cloud.hsm_removed", "hsm hsm-2 removed from cluster cluster-a"),
            ("cloud.cluster_state", "cluster cluster-new UNINITIALIZED"),
            ("cloud.backup", "backup backup-2 of cluster cluster-a READY"),
        ];
        assert_eq!(got, expected.map(|(a, m)| (a.to_owned(), m.to_owned())));
        let ready = &events[5];
        assert_eq!(ready.timestamp.at, at(-60), "a backup's event is dated when it was made");
        assert_eq!(ready.get(field::AWS_BACKUP_ID), Some("backup-2"));
        // A cluster that is no longer listed was deleted.
        let third = Snapshot { clusters: vec![cluster("cluster-new", "UNINITIALIZED", vec![])], backups: vec![] };
        let gone = watcher(180).succeeded(&mut state, third);
        assert_eq!(actions(&gone)[0].1, "cluster cluster-a DELETED was DEGRADED");
    }

    #[test]
    fn a_backup_that_never_becomes_ready_fails() {
        let mut state = RegionState::default();
        let making = Snapshot {
            clusters: vec![cluster("cluster-a", "ACTIVE", vec![])],
            backups: vec![backup("backup-2", "CREATE_IN_PROGRESS", -60)],
        };
        watcher(0).succeeded(&mut state, making);
        assert_eq!(state.watched_backups().into_iter().collect::<Vec<_>>(), ["backup-2"]);
        let vanished = Snapshot { clusters: vec![cluster("cluster-a", "ACTIVE", vec![])], backups: vec![] };
        let events = watcher(60).succeeded(&mut state, vanished);
        assert_eq!(
            actions(&events),
            [("cloud.backup".to_owned(), "backup backup-2 of cluster cluster-a no longer listed".to_owned())]
        );
        assert_eq!(events[0].get(field::OUTCOME), Some("failure"));
    }

    #[test]
    fn a_failing_region_is_told_once_and_its_recovery_once() {
        let mut state = RegionState::default();
        let first = watcher(0).failed(&mut state, "AccessDenied");
        assert_eq!(first[0].get(field::ERROR_MESSAGE), Some("AccessDenied"));
        assert!(watcher(60).failed(&mut state, "AccessDenied").is_empty());
        assert_eq!(state.failing_since, Some(at(0)));
        let back = watcher(120).succeeded(&mut state, Snapshot::default());
        assert_eq!(actions(&back), [("cloud.inventory".to_owned(), "can be read again".to_owned())]);
        assert_eq!(back[0].get(field::OUTCOME), Some("success"));
        assert_eq!(state.failing, None);
    }

    #[test]
    fn an_hsm_is_dark_after_the_threshold_without_a_line_and_lit_when_heard() {
        let mut state = RegionState::default();
        let listed =
            Snapshot { clusters: vec![cluster("cluster-a", "ACTIVE", vec![hsm("hsm-1", "ACTIVE")])], backups: vec![] };
        watcher(0).succeeded(&mut state, listed);
        let silence = std::time::Duration::from_secs(600);
        assert!(watcher(300).darkness(&mut state, silence, |_| None).is_empty(), "listed only 5 minutes ago");
        let dark = watcher(700).darkness(&mut state, silence, |_| None);
        assert_eq!(actions(&dark), [("cloud.hsm_silent".to_owned(), "hsm hsm-1 never heard from".to_owned())]);
        assert!(watcher(800).darkness(&mut state, silence, |_| None).is_empty(), "told once");
        let heard = |_: &Hsm| Some(Heard { host: "cloudhsm-a".into(), last_seen: at(850) });
        let lit = watcher(900).darkness(&mut state, silence, heard);
        assert_eq!(lit[0].get(field::OUTCOME), Some("success"));
        assert_eq!(state.hosts.get("hsm-1").map(String::as_str), Some("cloudhsm-a"));
        let quiet = |_: &Hsm| Some(Heard { host: "cloudhsm-a".into(), last_seen: at(850) });
        let again = watcher(1500).darkness(&mut state, silence, quiet);
        assert!(actions(&again)[0].1.starts_with("hsm hsm-1 (cloudhsm-a) silent since"), "{:?}", actions(&again));
    }
}
