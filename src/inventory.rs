//! The HSM inventory: what HSMs report here, from where, since when, and their vital signs (heartbeat, last successful
//! backup, last login failure, serials, installed software).
//!
//! Receives committed batches (after the store, beside the rule engine); emits nothing downstream. Keeps the hosts in
//! memory and writes the changed ones after each batch (the store's `hosts` table, [`crate::store::hosts`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::event::{field, Event};
use crate::store::{alerts, hosts, Reader, StoreError, WriteConn};

pub use crate::store::hosts::Host;

/// Datasets of events that hsmwatch makes about a host rather than receives from it.
pub const MADE_ABOUT_HOSTS: [&str; 2] = [crate::cloud::DATASET, crate::recovery::DATASET];

/// Sender addresses kept per host at most (a host behind NAT or DHCP churn must not grow without bound).
const MAX_ADDRESSES: usize = 32;

impl Host {
    /// A host first heard at `at`, with nothing counted yet.
    pub fn new(name: &str, at: DateTime<Utc>) -> Host {
        Host {
            name: name.to_owned(),
            first_seen: at,
            last_seen: at,
            events: 0,
            addresses: BTreeSet::new(),
            datasets: BTreeMap::new(),
            serials: BTreeSet::new(),
            software: BTreeSet::new(),
            last_heartbeat: None,
            last_backup: None,
            last_restore: None,
            last_login_failure: None,
        }
    }

    /// Takes one event into account.
    pub fn observe(&mut self, event: &Event) {
        let at = event.created.at;
        self.first_seen = self.first_seen.min(at);
        self.last_seen = self.last_seen.max(at);
        self.events += 1;
        if let Some(address) = event.get(field::SOURCE_ADDRESS).and_then(sender_ip) {
            if self.addresses.len() < MAX_ADDRESSES && !self.addresses.contains(address) {
                self.addresses.insert(address.to_owned());
            }
        }
        if let Some(dataset) = event.get(field::DATASET) {
            // Allocate a key only for a dataset the host has not sent before (this runs for every stored line).
            match self.datasets.get_mut(dataset) {
                Some(count) => *count += 1,
                None => {
                    self.datasets.insert(dataset.to_owned(), 1);
                }
            }
        }
        if let Some(serial) = event.get(field::HSM_SERIAL).filter(|s| !self.serials.contains(*s)) {
            self.serials.insert(serial.to_owned());
        }
        let latest = |slot: &mut Option<DateTime<Utc>>| *slot = Some(slot.map_or(at, |t| t.max(at)));
        let success = event.get(field::OUTCOME) == Some("success");
        match event.get(field::ACTION) {
            Some("heartbeat") => latest(&mut self.last_heartbeat),
            Some("partition.backup") if success => latest(&mut self.last_backup),
            Some("partition.restore") if success => latest(&mut self.last_restore),
            Some("appliance.software_update") if success => {
                if let Some(package) = event.get(field::HSM_COMMAND).and_then(|c| c.split_whitespace().nth(2)) {
                    self.software.insert(package.to_owned());
                }
            }
            _ => {}
        }
        if event.get(field::CATEGORY) == Some("authentication") && event.get(field::OUTCOME) == Some("failure") {
            latest(&mut self.last_login_failure);
        }
    }
}

/// The IP of a `log.source.address` (`10.0.4.17:41822`, `[fd00::1]:514`); `None` for an imported file's name.
fn sender_ip(address: &str) -> Option<&str> {
    let (ip, port) = address.rsplit_once(':')?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    (port.bytes().all(|b| b.is_ascii_digit()) && ip.parse::<std::net::IpAddr>().is_ok()).then_some(ip)
}

/// The inventory, kept in memory and written through to the `hosts` table.
#[derive(Debug, Default)]
pub struct Inventory {
    hosts: HashMap<String, Host>,
    changed: HashSet<String>,
}

impl Inventory {
    /// Loads every host.
    pub async fn load(reader: &Reader) -> Result<Inventory, StoreError> {
        let hosts = hosts::all(reader).await?.into_iter().map(|h| (h.name.clone(), h)).collect();
        Ok(Inventory { hosts, changed: HashSet::new() })
    }

    /// Takes a batch of events into account.
    pub fn observe(&mut self, events: &[Event]) {
        for event in events {
            let Some(name) = event.get(field::HOST_NAME) else { continue };
            // What hsmwatch concludes about a host (an HSM gone dark, a backup overdue) is not the host speaking.
            if event.get(field::DATASET).is_some_and(|d| MADE_ABOUT_HOSTS.contains(&d)) {
                continue;
            }
            if !self.hosts.contains_key(name) {
                self.hosts.insert(name.to_owned(), Host::new(name, event.created.at));
            }
            if let Some(host) = self.hosts.get_mut(name) {
                host.observe(event);
            }
            if !self.changed.contains(name) {
                self.changed.insert(name.to_owned());
            }
        }
    }

    /// Writes the hosts that changed since the last save.
    pub async fn save(&mut self, conn: &mut WriteConn) -> Result<(), StoreError> {
        if self.changed.is_empty() {
            return Ok(());
        }
        let changed: Vec<&Host> = self.changed.iter().filter_map(|name| self.hosts.get(name)).collect();
        hosts::save(conn, &changed).await?;
        self.changed.clear();
        Ok(())
    }
}

/// A host as shown by `hsmwatch hosts` and `GET /api/hosts`: the inventory row, whether it is silent, its open alerts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostView {
    /// The inventory row.
    #[serde(flatten)]
    pub host: Host,
    /// Nothing received for longer than the silence threshold.
    pub silent: bool,
    /// Alerts open on it (firing or acknowledged).
    pub open_alerts: u64,
    /// What polling it over SNMP says, when it is an SNMP target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snmp: Option<SnmpView>,
    /// What AWS says of it, when it is a CloudHSM HSM the cloud inventory lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<crate::cloud::view::CloudHsmView>,
    /// The collectors that hear it, when several share the database (PostgreSQL).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub collectors: Vec<crate::store::postgres::heard::Heard>,
}

/// An SNMP target's side of the inventory.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnmpView {
    /// The last successful poll (RFC 3339).
    pub last_poll: Option<String>,
    /// Why polls fail now, when they do (after `down_after`).
    pub poll_error: Option<String>,
    /// What the last successful poll said.
    #[serde(flatten)]
    pub summary: crate::snmp::watch::Summary,
}

/// The SNMP side of one host, when it is an SNMP target.
pub async fn snmp_view(reader: &Reader, name: &str) -> Result<Option<SnmpView>, StoreError> {
    Ok(snmp_views(reader).await?.remove(name))
}

/// The collectors that hear one host, when several share the database (none on SQLite).
pub async fn collectors_of(
    reader: &Reader,
    name: &str,
) -> Result<Vec<crate::store::postgres::heard::Heard>, StoreError> {
    Ok(hosts::heard_by(reader).await?.and_then(|mut heard| heard.remove(name)).unwrap_or_default())
}

/// The AWS side of one host: the listed HSM heard as `name`, or whose id is `name` (a dark one).
pub async fn cloud_view(reader: &Reader, name: &str) -> Result<Option<crate::cloud::view::CloudHsmView>, StoreError> {
    let listed = crate::cloud::view::hsms(&crate::cloud::view::views(reader).await?);
    Ok(listed.into_iter().find(|h| h.hsm.host.as_deref() == Some(name) || h.hsm.id == name))
}

/// The SNMP side of every target, by name; a state that does not read is left out (the poller says why).
async fn snmp_views(reader: &Reader) -> Result<HashMap<String, SnmpView>, StoreError> {
    let states = crate::store::snmp::read_states(reader).await?;
    Ok(states
        .into_iter()
        .filter_map(|(name, json)| {
            let state: crate::snmp::watch::TargetState = serde_json::from_str(&json).ok()?;
            let view = SnmpView {
                last_poll: state.last_success,
                poll_error: state.failing,
                summary: state.summary.unwrap_or_default(),
            };
            Some((name, view))
        })
        .collect())
}

/// Every host, by name, as shown to operators.
pub async fn views(
    reader: &Reader,
    silent_after: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<Vec<HostView>, StoreError> {
    let open = open_alerts(reader).await?;
    if let Some(heard) = hosts::heard_by(reader).await? {
        return Ok(views_of_heard(heard, &open, silent_after, now));
    }
    let mut snmp = snmp_views(reader).await?;
    let (mut cloud, unheard): (HashMap<String, _>, Vec<_>) = {
        let listed = crate::cloud::view::hsms(&crate::cloud::view::views(reader).await?);
        let (heard, unheard): (Vec<_>, Vec<_>) = listed.into_iter().partition(|h| h.hsm.host.is_some());
        (heard.into_iter().map(|h| (h.hsm.host.clone().unwrap_or_default(), h)).collect(), unheard)
    };
    let mut views: Vec<HostView> = hosts::all(reader)
        .await?
        .into_iter()
        .map(|host| HostView {
            silent: crate::event::later(host.last_seen, silent_after) < now,
            open_alerts: open.get(&host.name).copied().unwrap_or(0),
            snmp: snmp.remove(&host.name),
            cloud: cloud.remove(&host.name),
            collectors: Vec::new(),
            host,
        })
        .collect();
    // HSMs that AWS lists and nothing is heard from are in the inventory too, by their id: the dark ones.
    for listed in unheard {
        let host = Host::new(&listed.hsm.id, DateTime::UNIX_EPOCH);
        views.push(HostView {
            silent: true,
            open_alerts: open.get(&listed.hsm.id).copied().unwrap_or(0),
            snmp: None,
            cloud: Some(listed),
            collectors: Vec::new(),
            host,
        });
    }
    // Targets polled over SNMP that have sent nothing yet are in the inventory too: an appliance that answers SNMP
    // but does not log is exactly what should show.
    for (name, view) in snmp {
        let seen =
            view.last_poll.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc));
        let host = Host::new(&name, seen.unwrap_or(now));
        views.push(HostView {
            silent: crate::event::later(host.last_seen, silent_after) < now,
            open_alerts: open.get(&name).copied().unwrap_or(0),
            snmp: Some(view),
            cloud: None,
            collectors: Vec::new(),
            host,
        });
    }
    views.sort_by(|a, b| a.host.name.cmp(&b.host.name));
    Ok(views)
}

/// Open alerts per host (firing or acknowledged).
/// The inventory of a database several collectors share: each host with when it was last heard by any collector, the
/// most lines one collector received from it, and every collector's view. (Its other facts are kept by SQLite's
/// store only, so far.)
fn views_of_heard(
    heard: std::collections::BTreeMap<String, Vec<crate::store::postgres::heard::Heard>>,
    open: &HashMap<String, u64>,
    silent_after: std::time::Duration,
    now: DateTime<Utc>,
) -> Vec<HostView> {
    heard
        .into_iter()
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, collectors)| {
            let last_seen = collectors.iter().map(|c| c.last_seen).max().unwrap_or_default();
            let mut host = Host::new(&name, last_seen);
            host.first_seen = collectors.iter().map(|c| c.first_seen).min().unwrap_or_default();
            host.events = collectors.iter().map(|c| c.events).max().unwrap_or(0);
            HostView {
                silent: crate::event::later(last_seen, silent_after) < now,
                open_alerts: open.get(&name).copied().unwrap_or(0),
                snmp: None,
                cloud: None,
                collectors,
                host,
            }
        })
        .collect()
}

/// Open alerts per host.
pub async fn open_alerts(reader: &Reader) -> Result<HashMap<String, u64>, StoreError> {
    let by_severity = alerts::open_alerts_by_severity(reader).await?;
    Ok(by_severity.into_iter().map(|(host, by)| (host, by.values().sum())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;

    fn event(at: i64, fields: &[(&'static str, &str)]) -> Event {
        let when = Timestamp::new(DateTime::from_timestamp(1_767_225_600 + at, 0).unwrap(), 0);
        let mut e = Event::new(when, when);
        for (k, v) in fields {
            e.set(k, v.to_string());
        }
        e
    }

    #[test]
    fn a_host_collects_its_vital_signs() {
        let mut host = Host::new("hsm-1", DateTime::from_timestamp(1_767_225_600, 0).unwrap());
        host.observe(&event(
            0,
            &[
                (field::SOURCE_ADDRESS, "10.0.4.17:41822"),
                (field::DATASET, "luna.logger"),
                (field::ACTION, "heartbeat"),
            ],
        ));
        host.observe(&event(
            10,
            &[
                (field::SOURCE_ADDRESS, "[fd00::1]:514"),
                (field::ACTION, "partition.backup"),
                (field::OUTCOME, "failure"),
            ],
        ));
        host.observe(&event(
            20,
            &[(field::ACTION, "partition.backup"), (field::OUTCOME, "success"), (field::HSM_SERIAL, "150518")],
        ));
        host.observe(&event(
            30,
            &[(field::ACTION, "ssh.login"), (field::CATEGORY, "authentication"), (field::OUTCOME, "failure")],
        ));
        host.observe(&event(
            40,
            &[
                (field::ACTION, "appliance.software_update"),
                (field::OUTCOME, "success"),
                (field::HSM_COMMAND, "package update lunanetwork_update-7.8.4-262.spkg -authcode ***"),
            ],
        ));
        assert_eq!(host.events, 5);
        assert_eq!(host.addresses.iter().map(String::as_str).collect::<Vec<_>>(), ["10.0.4.17", "fd00::1"]);
        assert_eq!(host.last_heartbeat.unwrap().timestamp(), 1_767_225_600);
        assert_eq!(host.last_backup.unwrap().timestamp(), 1_767_225_620, "the failed backup does not count");
        assert_eq!(host.last_login_failure.unwrap().timestamp(), 1_767_225_630);
        assert!(host.serials.contains("150518"));
        assert!(host.software.contains("lunanetwork_update-7.8.4-262.spkg"));
        assert_eq!(host.datasets.get("luna.logger"), Some(&1));
    }

    #[test]
    fn sender_addresses_drop_the_port() {
        assert_eq!(sender_ip("10.0.4.17:41822"), Some("10.0.4.17"));
        assert_eq!(sender_ip("[fd00::1]:514"), Some("fd00::1"));
        assert_eq!(sender_ip("/var/log/messages"), None);
        assert_eq!(sender_ip("tarlogs.tgz:var/log/messages"), None);
    }
}
