//! What a poll changed: the state last known of a target (kept in the store, so a restart makes no burst of
//! "changes"), and the events a new poll makes against it. An event is made when something changes (a poll starting
//! or stopping to fail, NTLS going up or down, an HSM value that matters, storage crossing its limit, the certificate
//! entering its warning period), never once per poll.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::objects::Objects;
use super::reading::{name_only, named, Reading};
use crate::config::snmp::ResolvedTarget;
use crate::event::{field, Event, Timestamp};

/// HSM table values whose change is an `hsm.state_change`, with the MIB names `event.original` uses.
const WATCHED_HSM_VALUES: [(&str, &str); 5] = [
    ("fips_mode", "hsmFipsMode"),
    ("auth_method", "hsmAuthenticationMethod"),
    ("firmware", "hsmFirmwareVersion"),
    ("label", "hsmLabel"),
    ("partitions", "hsmPartitionsCreated"),
];

/// What is known of a target between polls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetState {
    /// The failure reported (once), while polls go on failing.
    pub failing: Option<String>,
    /// When the current run of failed polls began (RFC 3339), reported or not yet.
    #[serde(default)]
    pub failing_since: Option<String>,
    /// The last successful poll.
    pub reading: Option<Reading>,
    /// When that was (RFC 3339).
    pub last_success: Option<String>,
    /// Storages above their limit, reported (`hsm 66331`, `partition 1234`).
    pub storage_high: BTreeSet<String>,
    /// The certificate expiry already warned about.
    pub cert_warned: Option<String>,
    /// What the last successful poll says of the appliance, for the inventory.
    #[serde(default)]
    pub summary: Option<Summary>,
}

/// What the inventory shows of an appliance polled over SNMP, its values named.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// HSM serial numbers.
    pub serials: Vec<String>,
    /// HSM models.
    pub models: Vec<String>,
    /// HSM firmware versions.
    pub firmware: Vec<String>,
    /// FIPS mode of each HSM (`true`/`false`).
    pub fips_mode: Vec<String>,
    /// NTLS state (`up`, `down`, `unknown`).
    pub ntls_status: Option<String>,
    /// Clients connected over NTLS.
    pub ntls_clients: Option<String>,
    /// When the NTLS certificate ends, as the appliance says it.
    pub ntls_cert_expiry: Option<String>,
    /// The highest storage use of its HSMs and partitions, in percent.
    pub storage_used_pct: Option<f64>,
    /// The fullest of the appliance's disks, in percent.
    #[serde(default)]
    pub disk_used_pct: Option<f64>,
}

impl Summary {
    /// The summary of a reading, its numbers named from the table.
    pub fn of(reading: &Reading, objects: &Objects) -> Summary {
        let column = |name: &str| -> Vec<String> {
            let role = format!("hsm.{name}");
            reading.hsms.iter().filter_map(|row| row.get(name)).map(|v| name_only(objects, &role, v)).collect()
        };
        Summary {
            serials: column("serial"),
            models: column("model"),
            firmware: column("firmware"),
            fips_mode: column("fips_mode"),
            ntls_status: reading.scalar("ntls.status").map(|v| name_only(objects, "ntls.status", v)),
            ntls_clients: reading.scalar("ntls.clients").map(str::to_owned),
            ntls_cert_expiry: reading.scalar("ntls.cert_expiry").map(str::to_owned),
            storage_used_pct: reading.highest_storage_pct(),
            disk_used_pct: reading.highest_disk_pct(),
        }
    }
}

/// Reads `Nov 17 11:38:50 2024 GMT` (how Luna states the NTLS certificate's end).
pub fn parse_cert_expiry(text: &str) -> Option<DateTime<Utc>> {
    let squeezed: String = text.trim().trim_end_matches("GMT").split_whitespace().collect::<Vec<_>>().join(" ");
    NaiveDateTime::parse_from_str(&squeezed, "%b %d %H:%M:%S %Y").ok().map(|t| t.and_utc())
}

/// Makes the events of changes for one target.
pub struct Watcher<'a> {
    /// The target.
    pub target: &'a ResolvedTarget,
    /// The SNMP table (value names).
    pub objects: &'a Objects,
    /// Now.
    pub now: DateTime<Utc>,
}

impl Watcher<'_> {
    fn event(&self, action: &'static str, category: &'static str, outcome: &'static str, original: String) -> Event {
        let at = Timestamp::from_clock(self.now);
        let mut event = Event::new(at, at);
        event.set(field::ORIGINAL, format!("snmp {} {original}", self.target.name));
        event.set(field::MESSAGE, original);
        event.set(field::SOURCE_ADDRESS, self.target.address.clone());
        event.set(field::HOST_NAME, self.target.name.clone());
        event.set(field::DATASET, "luna.snmp");
        event.set(field::ACTION, action);
        event.set(field::OUTCOME, outcome);
        event.set(field::CATEGORY, category);
        event
    }

    /// A poll failed: one event once the failures have lasted the target's `down_after` (the state remembers them).
    pub fn failed(&self, state: &mut TargetState, error: &str) -> Vec<Event> {
        let now_text = self.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let since_text = state.failing_since.get_or_insert(now_text).clone();
        if state.failing.is_some() {
            state.failing = Some(error.to_owned());
            return Vec::new();
        }
        let since = DateTime::parse_from_rfc3339(&since_text).map_or(self.now, |t| t.with_timezone(&Utc));
        let down_for = (self.now - since).to_std().unwrap_or_default();
        if down_for < self.target.down_after {
            return Vec::new();
        }
        state.failing = Some(error.to_owned());
        let text = format!("not answering since {since_text}: {error}");
        let mut event = self.event("snmp.poll", "network", "failure", text);
        event.set(field::ERROR_MESSAGE, error.to_owned());
        vec![event]
    }

    /// A poll succeeded: the events of what changed since the last reading (none against no reading at all, except
    /// storage above its limit and a certificate about to expire, which are states worth telling at once).
    pub fn succeeded(&self, state: &mut TargetState, reading: Reading) -> Vec<Event> {
        let mut events = Vec::new();
        state.failing_since = None;
        if let Some(error) = state.failing.take() {
            let mut event = self.event("snmp.poll", "network", "success", format!("answers again (was: {error})"));
            event.set(field::PREVIOUS_VALUE, error);
            events.push(event);
        }
        if let Some(before) = &state.reading {
            events.extend(self.ntls_change(before, &reading));
            events.extend(self.hsm_changes(before, &reading));
        }
        events.extend(self.storage_crossings(state, &reading));
        events.extend(self.certificate(state, &reading));
        state.summary = Some(Summary::of(&reading, self.objects));
        state.reading = Some(reading);
        state.last_success = Some(self.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        events
    }

    fn ntls_change(&self, before: &Reading, after: &Reading) -> Option<Event> {
        let (was, now) = (before.scalar("ntls.status")?, after.scalar("ntls.status")?);
        if was == now {
            return None;
        }
        let (was_name, now_name) =
            (name_only(self.objects, "ntls.status", was), name_only(self.objects, "ntls.status", now));
        let outcome = if now_name == "up" { "success" } else { "failure" };
        let text = format!(
            "ntlsOperStatus={} was {}",
            named(self.objects, "ntls.status", now),
            named(self.objects, "ntls.status", was)
        );
        let mut event = self.event("ntls.state_change", "network", outcome, text);
        event.set(field::NTLS_STATUS, now_name.clone());
        event.set(field::PREVIOUS_VALUE, was_name);
        event.set(field::CURRENT_VALUE, now_name);
        if let Some(clients) = after.scalar("ntls.clients") {
            event.set(field::NTLS_CLIENTS, clients.to_owned());
        }
        Some(event)
    }

    fn hsm_changes(&self, before: &Reading, after: &Reading) -> Vec<Event> {
        let earlier: BTreeMap<&str, &super::reading::Row> =
            before.hsms.iter().map(|row| (Reading::row_name(row), row)).collect();
        let mut events = Vec::new();
        for row in &after.hsms {
            let serial = Reading::row_name(row);
            let Some(old) = earlier.get(serial) else { continue };
            for (column, mib) in WATCHED_HSM_VALUES {
                let (Some(was), Some(now)) = (old.get(column), row.get(column)) else { continue };
                if was == now {
                    continue;
                }
                let role = format!("hsm.{column}");
                let (was_name, now_name) = (name_only(self.objects, &role, was), name_only(self.objects, &role, now));
                let text = format!(
                    "HSM {serial} {mib}={} was {}",
                    named(self.objects, &role, now),
                    named(self.objects, &role, was)
                );
                let mut event = self.event("hsm.state_change", "hardware", "success", text);
                self.describe_hsm(&mut event, row);
                event.set(field::PREVIOUS_VALUE, was_name);
                event.set(field::CURRENT_VALUE, now_name);
                events.push(event);
            }
        }
        events
    }

    fn describe_hsm(&self, event: &mut Event, row: &super::reading::Row) {
        for (column, name) in [
            ("serial", field::HSM_SERIAL),
            ("model", field::HSM_MODEL),
            ("firmware", field::HSM_FIRMWARE),
            ("label", field::HSM_LABEL),
        ] {
            if let Some(value) = row.get(column) {
                event.set(name, value.clone());
            }
        }
        if let Some(fips) = row.get("fips_mode") {
            event.set(field::HSM_FIPS_MODE, name_only(self.objects, "hsm.fips_mode", fips));
        }
    }

    fn storage_crossings(&self, state: &mut TargetState, reading: &Reading) -> Vec<Event> {
        let limit = self.target.storage_high_pct;
        let mut events = Vec::new();
        let storages =
            reading.hsms.iter().map(|row| ("hsm", row)).chain(reading.partitions.iter().map(|row| ("partition", row)));
        for (kind, row) in storages {
            let Some(pct) = Reading::storage_pct(row) else { continue };
            let key = format!("{kind} {}", Reading::row_name(row));
            let (high, known) = (pct >= limit, state.storage_high.contains(&key));
            if high == known {
                continue;
            }
            let (outcome, text) = match high {
                true => ("failure", format!("{key} storage {pct:.1}% used, at or above {limit}%")),
                false => ("success", format!("{key} storage {pct:.1}% used, below {limit}% again")),
            };
            let mut event = self.event("hsm.storage_high", "hardware", outcome, text);
            event.set(field::HSM_STORAGE_USED_PCT, format!("{pct:.1}"));
            match kind {
                "hsm" => self.describe_hsm(&mut event, row),
                _ => event.set(
                    field::HSM_PARTITION,
                    row.get("label").cloned().unwrap_or_else(|| Reading::row_name(row).to_owned()),
                ),
            }
            if high {
                state.storage_high.insert(key);
            } else {
                state.storage_high.remove(&key);
            }
            events.push(event);
        }
        events
    }

    fn certificate(&self, state: &mut TargetState, reading: &Reading) -> Option<Event> {
        let text = reading.scalar("ntls.cert_expiry")?;
        let not_after = parse_cert_expiry(text)?;
        let warning = chrono::Duration::from_std(self.target.cert_warning).unwrap_or(chrono::Duration::MAX);
        let within = self.now.checked_add_signed(warning).is_none_or(|limit| not_after <= limit);
        if !within || state.cert_warned.as_deref() == Some(text) {
            return None;
        }
        state.cert_warned = Some(text.to_owned());
        let days = (not_after - self.now).num_days();
        let said = if days < 0 { format!("expired {} days ago", -days) } else { format!("expires in {days} days") };
        let mut event = self.event(
            "ntls.cert_expiring",
            "configuration",
            "failure",
            format!("NTLS server certificate {said} (ntlsCertExpireDay={text})"),
        );
        event.set(field::NTLS_CERT_NOT_AFTER, not_after.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::notifiers::Secret;
    use crate::config::snmp::AuthProtocol;

    fn target() -> ResolvedTarget {
        ResolvedTarget {
            address: "127.0.0.1:11161".into(),
            name: "hsm-snmp".into(),
            user: "u".into(),
            auth: (AuthProtocol::Sha, Secret("authPass123".into())),
            privacy: None,
            interval: std::time::Duration::from_secs(60),
            timeout: std::time::Duration::from_secs(1),
            retries: 0,
            storage_high_pct: 90.0,
            cert_warning: std::time::Duration::from_secs(30 * 86_400),
            down_after: std::time::Duration::ZERO,
        }
    }

    fn reading(ntls: &str, fips: &str, allocated: &str, cert: &str) -> Reading {
        let mut reading = Reading::default();
        reading.scalars.insert("ntls.status".into(), ntls.into());
        reading.scalars.insert("ntls.cert_expiry".into(), cert.into());
        let hsm: BTreeMap<String, String> =
            [("serial", "66331"), ("fips_mode", fips), ("storage_total", "1000"), ("storage_allocated", allocated)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        reading.hsms.push(hsm);
        reading
    }

    fn actions(events: &[Event]) -> Vec<(String, String)> {
        events
            .iter()
            .map(|e| (e.get(field::ACTION).unwrap().to_owned(), e.get(field::OUTCOME).unwrap().to_owned()))
            .collect()
    }

    #[test]
    fn changes_become_events_once_and_a_first_reading_only_states_what_is_wrong() {
        let objects = super::super::objects::load(&crate::pack::RuleSource::Embedded).unwrap();
        let target = target();
        let now = "2026-12-05T00:00:00Z".parse().unwrap();
        let watcher = Watcher { target: &target, objects: &objects, now };
        let mut state = TargetState::default();
        let far = "Feb 22 15:19:21 2029 GMT";
        assert!(watcher.succeeded(&mut state, reading("1", "1", "100", far)).is_empty(), "a baseline is no change");
        let events = watcher.succeeded(&mut state, reading("2", "2", "950", far));
        assert_eq!(
            actions(&events),
            [
                ("ntls.state_change".into(), "failure".into()),
                ("hsm.state_change".into(), "success".into()),
                ("hsm.storage_high".into(), "failure".into())
            ]
        );
        assert_eq!(events[0].get(field::ORIGINAL), Some("snmp hsm-snmp ntlsOperStatus=down(2) was up(1)"));
        assert_eq!(
            (events[1].get(field::PREVIOUS_VALUE), events[1].get(field::CURRENT_VALUE)),
            (Some("true"), Some("false"))
        );
        assert_eq!(events[2].get(field::HSM_STORAGE_USED_PCT), Some("95.0"));
        assert!(watcher.succeeded(&mut state, reading("2", "2", "960", far)).is_empty(), "nothing changed");
        let failed = watcher.failed(&mut state, "timeout");
        assert_eq!(actions(&failed), [("snmp.poll".into(), "failure".into())]);
        assert!(watcher.failed(&mut state, "timeout").is_empty(), "a failure is told once");
        let back = watcher.succeeded(&mut state, reading("1", "2", "100", "Dec 20 00:00:00 2026 GMT"));
        assert_eq!(
            actions(&back),
            [
                ("snmp.poll".into(), "success".into()),
                ("ntls.state_change".into(), "success".into()),
                ("hsm.storage_high".into(), "success".into()),
                ("ntls.cert_expiring".into(), "failure".into())
            ]
        );
        assert_eq!(back[3].get(field::NTLS_CERT_NOT_AFTER), Some("2026-12-20T00:00:00Z"));
        let again = watcher.succeeded(&mut state, reading("1", "2", "100", "Dec 20 00:00:00 2026 GMT"));
        assert!(again.is_empty(), "the certificate is warned about once");
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<TargetState>(&json).unwrap(), state, "the state survives a restart");
    }

    #[test]
    fn a_failure_is_an_event_only_once_it_lasted_down_after() {
        let objects = super::super::objects::load(&crate::pack::RuleSource::Embedded).unwrap();
        let target = ResolvedTarget { down_after: std::time::Duration::from_secs(300), ..target() };
        let at = |minute: i64| DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap();
        let mut state = TargetState::default();
        for minute in 0..5 {
            let watcher = Watcher { target: &target, objects: &objects, now: at(minute) };
            assert!(watcher.failed(&mut state, "timeout").is_empty(), "minute {minute}");
        }
        let watcher = Watcher { target: &target, objects: &objects, now: at(5) };
        let down = watcher.failed(&mut state, "timeout");
        assert_eq!(actions(&down), [("snmp.poll".into(), "failure".into())]);
        assert!(down[0].get(field::MESSAGE).unwrap().starts_with("not answering since 2027-01-15T08:00:00Z"));
        let blip = Watcher { target: &target, objects: &objects, now: at(6) };
        assert_eq!(actions(&blip.succeeded(&mut state, Reading::default())), [("snmp.poll".into(), "success".into())]);
        assert!(blip.failed(&mut state, "timeout").is_empty(), "a single lost answer is no outage");
        assert!(blip.succeeded(&mut state, Reading::default()).is_empty(), "nor is its recovery");
    }

    #[test]
    fn certificate_dates_read_as_luna_writes_them() {
        assert_eq!(parse_cert_expiry("Nov 17 11:38:50 2024 GMT").unwrap().to_rfc3339(), "2024-11-17T11:38:50+00:00");
        assert_eq!(parse_cert_expiry("Apr  3 01:02:03 2027 GMT").unwrap().to_rfc3339(), "2027-04-03T01:02:03+00:00");
        assert!(parse_cert_expiry("soon").is_none());
    }
}
