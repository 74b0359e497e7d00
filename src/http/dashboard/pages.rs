//! The pages, as maud templates (compile-time checked; every interpolated value is HTML-escaped, so a user name such
//! as `<script>` from a log line stays text).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use maud::{html, Markup, DOCTYPE};

use crate::event::field;
use crate::inventory::{HostView, SnmpView};
use crate::store::alerts::{AlertDetail, AlertRow, StateFilter};
use crate::store::outbox::Delivery;
use crate::store::postgres::heard::Heard;
use crate::store::query::{percent_encode, StoredEvent};

/// The frame of every page.
pub fn layout(title: &str, body: Markup) -> Markup {
    layout_refreshed(title, body, None)
}

/// How often lists reload themselves, in seconds.
pub const REFRESH_SECONDS: u32 = 30;

/// The frame of a page that reloads itself every `refresh` seconds (no script: `<meta http-equiv="refresh">`).
pub fn layout_refreshed(title: &str, body: Markup, refresh: Option<u32>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                @if let Some(seconds) = refresh { meta http-equiv="refresh" content=(seconds); }
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · hsmwatch" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header {
                    a.brand href="/" { "hsmwatch" }
                    a href="/" { "HSMs" }
                    a href="/alerts" { "Alerts" }
                    a href="/events" { "Events" }
                    a href="/cloud" { "Cloud" }
                    form.signout method="post" action="/logout" { button type="submit" { "Sign out" } }
                }
                main { (body) }
            }
        }
    }
}

/// A time, or a dash.
pub fn when(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "–".to_owned(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// How long ago `at` was, as a person says it ("4 min ago"); the text itself when it is not a time.
pub fn ago(at: &str, now: DateTime<Utc>) -> String {
    let Ok(then) = DateTime::parse_from_rfc3339(at) else { return at.to_owned() };
    let seconds = (now - then.with_timezone(&Utc)).num_seconds();
    match seconds {
        i64::MIN..=-60 => "in the future".to_owned(),
        -59..=59 => "just now".to_owned(),
        60..=3599 => format!("{} min ago", seconds / 60),
        3600..=86_399 => format!("{} h ago", seconds / 3600),
        86_400..=172_799 => "1 day ago".to_owned(),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

/// A time shown as its age, with the exact time on hover.
fn age(at: &str, now: DateTime<Utc>) -> Markup {
    html! { time datetime=(at) title=(at) { (ago(at, now)) } }
}

fn severity_badge(severity: &str) -> Markup {
    html! { span class=(format!("sev sev-{}", severity_class(severity))) { (severity) } }
}

/// A CSS-safe class suffix for a severity (the value comes from the database).
fn severity_class(severity: &str) -> &'static str {
    match severity {
        "critical" => "critical",
        "high" => "high",
        "medium" => "medium",
        "low" => "low",
        _ => "info",
    }
}

/// Per-host figures of the overview.
#[derive(Debug, Default, Clone)]
pub struct HostFigures {
    /// Events in the last 24 hours.
    pub events: i64,
    /// Failed logins in the last 24 hours.
    pub failed_logins: i64,
    /// Open alerts by severity.
    pub open: BTreeMap<String, u64>,
}

fn host_link(name: &str) -> String {
    format!("/hosts/{}", percent_encode(name))
}

/// `/`: one row per HSM and the chart of the last 24 hours.
pub fn overview(hosts: &[HostView], figures: &BTreeMap<String, HostFigures>, chart: Markup) -> Markup {
    let body = html! {
        h1 { "HSMs" }
        h2 { "Events per hour, last 24 hours (UTC)" }
        (chart)
        table {
            thead { tr {
                th { "HSM" } th { "Last seen" } th.num { "Events 24 h" } th.num { "Failed logins 24 h" }
                th { "Open alerts" } th { "Last heartbeat" } th { "Last backup" } th { "Last restore" } th { "NTLS" } th { "FIPS" }
                th { "Firmware" } th { "Last poll" }
            } }
            tbody {
                @for view in hosts {
                    @let host = &view.host;
                    @let figure = figures.get(&host.name).cloned().unwrap_or_default();
                    tr {
                        td { a href=(host_link(&host.name)) { (host.name) } }
                        td class=[view.silent.then_some("silent")] {
                            @if host.events == 0 { "never" } @else { (when(Some(host.last_seen))) }
                            @if view.silent { " (silent)" }
                            @if !view.collectors.is_empty() {
                                br; span.muted { "heard by " (collector_names(&view.collectors)) }
                            }
                            @if let Some(aws) = &view.cloud { br; span.muted { "AWS " (aws.hsm.id) " " (aws.hsm.state) } }
                        }
                        td.num { (figure.events) }
                        td.num { (figure.failed_logins) }
                        td {
                            @for severity in ["critical", "high", "medium", "low", "info"] {
                                @if let Some(n) = figure.open.get(severity) { (severity_badge(severity)) (n) " " }
                            }
                        }
                        td { (when(host.last_heartbeat)) }
                        td { (when(host.last_backup)) }
                        td { (when(host.last_restore)) }
                        (snmp_cells(view.snmp.as_ref()))
                    }
                }
                @if hosts.is_empty() { tr { td colspan="12" .muted { "No HSM has reported yet." } } }
            }
        }
    };
    layout_refreshed("HSMs", body, Some(REFRESH_SECONDS))
}

/// The names of the collectors that hear a host, comma-separated.
fn collector_names(collectors: &[Heard]) -> String {
    collectors.iter().map(|c| c.collector.as_str()).collect::<Vec<_>>().join(", ")
}

/// `/hosts/{name}`'s collectors section, when several share the database: each one's latest line and lines received.
fn collectors_section(collectors: &[Heard]) -> Markup {
    if collectors.is_empty() {
        return html! {};
    }
    html! {
        h2 { "Collectors" }
        table {
            thead { tr { th { "Collector" } th { "First line" } th { "Latest line" } th.num { "Lines received" } } }
            tbody {
                @for heard in collectors {
                    tr {
                        td { (heard.collector) }
                        td { (when(Some(heard.first_seen))) }
                        td { (when(Some(heard.last_seen))) }
                        td.num { (heard.events) }
                    }
                }
            }
        }
    }
}

/// The SNMP columns of a host's row: NTLS state and clients, FIPS mode, firmware, last poll (red when failing).
fn snmp_cells(snmp: Option<&SnmpView>) -> Markup {
    let Some(view) = snmp else {
        return html! { td.muted { "–" } td.muted { "–" } td.muted { "–" } td.muted { "not polled" } };
    };
    let s = &view.summary;
    let ntls_down = s.ntls_status.as_deref().is_some_and(|status| status != "up");
    html! {
        td class=[ntls_down.then_some("silent")] {
            (s.ntls_status.as_deref().unwrap_or("–"))
            @if let Some(clients) = &s.ntls_clients { " (" (clients) " clients)" }
        }
        td { (s.fips_mode.join(", ")) }
        td { (s.firmware.join(", ")) }
        td class=[view.poll_error.is_some().then_some("silent")] {
            (view.last_poll.as_deref().unwrap_or("never"))
            @if let Some(error) = &view.poll_error { br; span.wrap { (error) } }
        }
    }
}

/// `/hosts/{name}`'s appliance section: what polling it over SNMP says.
fn appliance_section(snmp: Option<&SnmpView>) -> Markup {
    let Some(view) = snmp else { return html! {} };
    let s = &view.summary;
    html! {
        h2 { "Appliance (SNMP)" }
        dl.facts {
            dt { "Last poll" } dd { (view.last_poll.as_deref().unwrap_or("never")) }
            @if let Some(error) = &view.poll_error { dt { "Failing" } dd.silent.wrap { (error) } }
            dt { "HSM serials" } dd { (s.serials.join(", ")) }
            dt { "Models" } dd { (s.models.join(", ")) }
            dt { "Firmware" } dd { (s.firmware.join(", ")) }
            dt { "FIPS mode" } dd { (s.fips_mode.join(", ")) }
            dt { "NTLS" } dd { (s.ntls_status.as_deref().unwrap_or("–")) @if let Some(c) = &s.ntls_clients { ", " (c) " clients" } }
            dt { "NTLS certificate ends" } dd { (s.ntls_cert_expiry.as_deref().unwrap_or("–")) }
            dt { "Storage used (highest)" } dd { @if let Some(pct) = s.storage_used_pct { (format!("{pct:.1} %")) } @else { "–" } }
            dt { "Disk used (fullest)" } dd { @if let Some(pct) = s.disk_used_pct { (format!("{pct:.0} %")) } @else { "–" } }
        }
    }
}

/// `/cloud`: accounts and regions with their last read, clusters with backups and restores, HSMs with their hosts.
pub fn cloud_page(regions: &[crate::cloud::view::RegionView], now: DateTime<Utc>) -> Markup {
    let stamp = |at: Option<DateTime<Utc>>| -> Markup {
        match at {
            Some(at) => age(&at.to_rfc3339_opts(SecondsFormat::Secs, true), now),
            None => html! { "never" },
        }
    };
    let body = html! {
        h1 { "AWS CloudHSM" }
        @if regions.is_empty() {
            p.muted { "Nothing read yet: configure cloud.aws (see the configuration reference) and wait for the first read." }
        }
        h2 { "Accounts and regions" }
        table {
            thead { tr { th { "Account" } th { "Region" } th { "Last read" } th.num { "Seconds" } th { "Status" } } }
            tbody {
                @for r in regions {
                    tr {
                        td { (r.account) @if let Some(name) = &r.account_name { " (" (name) ")" } }
                        td { (r.region) }
                        td { (stamp(r.last_success)) }
                        td.num { (format!("{:.2}", r.read_seconds.unwrap_or(0.0))) }
                        @match &r.error {
                            Some(error) => td.silent.wrap { "failing since " (stamp(r.failing_since)) ": " (error) },
                            None => td { "ok" },
                        }
                    }
                }
            }
        }
        h2 { "Clusters" }
        table {
            thead { tr {
                th { "Account / region" } th { "Cluster" } th { "State" } th.num { "HSMs" } th { "Last backup" }
                th { "Last restore" } th { "Backups in progress" }
            } }
            tbody {
                @for r in regions { @for c in &r.clusters {
                    tr {
                        td { (r.account) " " (r.region) }
                        td { (c.id) br; span.muted { (c.hsm_type.as_deref().unwrap_or("")) " " (c.mode.as_deref().unwrap_or("")) } }
                        td class=[(c.state != "ACTIVE").then_some("silent")] {
                            (c.state) @if let Some(m) = c.state_message.as_ref().filter(|_| c.state != "ACTIVE") { br; span.wrap { (m) } }
                        }
                        td.num { (c.hsms.len()) }
                        @match &c.last_backup {
                            Some(b) => td { (stamp(b.created)) br; span.muted { (b.id) } },
                            None => td.silent { "none READY" },
                        }
                        @match &c.last_restore {
                            Some(r) => td {
                                (stamp(Some(r.at))) br;
                                span.muted { @if r.cluster != c.id { (r.cluster) " " } "from " (r.backup) }
                            },
                            None => td.muted { "never" },
                        }
                        td { @for b in &c.backups_in_progress { (b.id) " " (b.state) " " (stamp(b.created)) br; } }
                    }
                } }
            }
        }
        h2 { "HSMs" }
        table {
            thead { tr {
                th { "Cluster" } th { "HSM" } th { "State" } th { "ENI address" } th { "Zone" } th { "Heard as" }
            } }
            tbody {
                @for r in regions { @for c in &r.clusters { @for h in &c.hsms {
                    tr {
                        td { (c.id) } td { (h.id) }
                        td class=[(h.state != "ACTIVE").then_some("silent")] { (h.state) }
                        td { (h.eni_ip.as_deref().unwrap_or("–")) }
                        td { (h.availability_zone.as_deref().unwrap_or("–")) }
                        td class=[h.silent.then_some("silent")] {
                            @match &h.host { Some(host) => a href=(host_link(host)) { (host) }, None => "never heard" }
                            @if h.silent { " (dark)" }
                        }
                    }
                } } }
            }
        }
    };
    layout_refreshed("Cloud", body, Some(REFRESH_SECONDS))
}

/// The filters of `hsmwatch query`, as the forms send them.
pub type Filters = crate::store::query::EventQuery;

fn filter_form(action: &str, filters: &Filters, with_host: bool) -> Markup {
    let field = |name: &'static str, label: &'static str, value: &Option<String>| {
        html! { label { (label) input type="text" name=(name) value=(value.as_deref().unwrap_or("")); } }
    };
    html! {
        form.filters method="get" action=(action) {
            (field("since", "since (30m, 7d, date)", &filters.since))
            (field("until", "until", &filters.until))
            @if with_host { (field("host", "host", &filters.host)) }
            (field("action", "action", &filters.action))
            (field("outcome", "outcome", &filters.outcome))
            (field("user", "user", &filters.user))
            (field("source_ip", "source IP", &filters.source_ip))
            (field("contains", "line contains", &filters.contains))
            (field("word", "whole words", &filters.word))
            button type="submit" { "Search" }
        }
    }
}

/// A table of events, newest first, each expandable to all its fields.
pub fn event_table(events: &[StoredEvent]) -> Markup {
    html! {
        table.events {
            thead { tr { th { "Time" } th { "Host" } th { "Action" } th { "Outcome" } th { "User" } th { "Source" } th { "Message" } } }
            tbody {
                @for stored in events {
                    @let e = &stored.event;
                    @let get = |name| e.get(name).unwrap_or("–");
                    tr {
                        @let exact = e.timestamp.to_rfc3339();
                        td.mono.time title=(exact) { (e.timestamp.at.to_rfc3339_opts(SecondsFormat::Secs, true)) }
                        td { (get(field::HOST_NAME)) }
                        td { (e.get(field::ACTION).unwrap_or_else(|| get(field::DATASET))) }
                        td { (get(field::OUTCOME)) }
                        td { (get(field::USER_NAME)) }
                        td { (get(field::SOURCE_IP)) }
                        td {
                            details {
                                summary { (get(field::MESSAGE).chars().take(160).collect::<String>()) }
                                dl { @for (name, value) in e.all_fields() { dt { (name) } dd.mono { (value) } } }
                            }
                        }
                    }
                }
                @if events.is_empty() { tr { td colspan="7" .muted { "No events match." } } }
            }
        }
    }
}

fn pager(base: &str, filters: &Filters, next: Option<&str>) -> Markup {
    html! {
        p.pager {
            @if let Some(cursor) = next { a href=(format!("{base}?{}", filters.with_cursor(cursor))) { "Older events →" } }
        }
    }
}

/// `/events`: search, paginated.
pub fn events_page(filters: &Filters, events: &[StoredEvent], next: Option<&str>, error: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Events" }
        (filter_form("/events", filters, true))
        @if let Some(error) = error { p.silent { (error) } }
        (event_table(events))
        (pager("/events", filters, next))
    };
    layout("Events", body)
}

fn delivery_state(d: &Delivery) -> String {
    match d.status.as_str() {
        "sent" if d.digest_size.is_some() => format!("{}: sent (digest)", d.notifier),
        "pending" => format!("{}: pending ({} attempts)", d.notifier, d.attempts),
        status => format!("{}: {status}", d.notifier),
    }
}

/// A CSS-safe class suffix for an alert's state.
fn state_class(state: &str) -> &'static str {
    match state {
        "firing" => "firing",
        "acknowledged" => "acknowledged",
        _ => "resolved",
    }
}

fn state_badge(state: &str) -> Markup {
    html! { span class=(format!("state state-{}", state_class(state))) { (state) } }
}

/// The triage queue: open alerts first (firing, then acknowledged), with host, rule, severity, firings, age and who
/// acknowledged.
pub fn alert_queue(alerts: &[AlertRow], now: DateTime<Utc>) -> Markup {
    html! {
        table.alerts {
            thead { tr {
                th { "State" } th { "Severity" } th { "Host" } th { "Alert" } th { "Rule" } th.num { "Firings" }
                th { "Last fired" } th { "Opened" } th { "Acknowledged by" }
            } }
            tbody {
                @for a in alerts {
                    tr class=(format!("row-{}", state_class(&a.state))) {
                        td { (state_badge(&a.state)) }
                        td { (severity_badge(&a.severity)) }
                        td { @if let Some(host) = &a.host { a href=(host_link(host)) { (host) } } @else { "–" } }
                        td.wrap { a href=(format!("/alerts/{}", a.id)) { (a.title) } }
                        td.mono { (a.rule_id) }
                        td.num { (a.firings) }
                        td { (age(&a.last_fired_at, now)) }
                        td { (age(&a.fired_at, now)) }
                        td {
                            @if a.state == "acknowledged" { (a.state_by.as_deref().unwrap_or("–")) }
                        }
                    }
                }
                @if alerts.is_empty() { tr { td colspan="9" .muted { "No alerts." } } }
            }
        }
    }
}

/// `/alerts`: the triage queue, refreshed every [`REFRESH_SECONDS`].
pub fn alerts_page(wanted: Option<StateFilter>, alerts: &[AlertRow], now: DateTime<Utc>) -> Markup {
    let choices = [
        ("open", Some(StateFilter::Open)),
        ("firing", Some(StateFilter::Firing)),
        ("acknowledged", Some(StateFilter::Acknowledged)),
        ("resolved", Some(StateFilter::Resolved)),
        ("all", None),
    ];
    let body = html! {
        h1 { "Alerts" }
        p.choices {
            @for (name, filter) in choices {
                @if filter == wanted { strong { (name) } } @else { a href=(format!("/alerts?state={name}")) { (name) } }
                " "
            }
        }
        (alert_queue(alerts, now))
    };
    layout_refreshed("Alerts", body, Some(REFRESH_SECONDS))
}

fn change_button(id: i64, change: &str, label: &str, csrf: &str) -> Markup {
    html! {
        form.change method="post" action=(format!("/alerts/{id}/{change}")) {
            input type="hidden" name="csrf" value=(csrf);
            label { "Note " input type="text" name="note" maxlength="2000"; }
            " " button type="submit" { (label) }
        }
    }
}

/// `/alerts/{id}`: the alert's state with the buttons that change it (when `csrf` is given: changes are allowed),
/// who changed it, its firings, the latest one's deliveries and its triggering events.
pub fn alert_page(
    detail: &AlertDetail,
    deliveries: &[Delivery],
    events: &[StoredEvent],
    csrf: Option<&str>,
    now: DateTime<Utc>,
) -> Markup {
    let a = &detail.summary;
    let latest = &detail.latest;
    let body = html! {
        h1.wrap { (severity_badge(&a.severity)) " " (latest.title) }
        p {
            (state_badge(&a.state))
            @if let (Some(by), Some(at)) = (&a.state_by, &a.state_at) { " by " (by) " " (age(at, now)) }
            " · rule " span.mono { (a.rule_id) } " · host " (a.host.as_deref().unwrap_or("–"))
            " · opened " (age(&a.fired_at, now)) " · " (a.firings) " firing(s), last " (age(&a.last_fired_at, now))
        }
        @if let Some(csrf) = csrf {
            div.actions {
                @match a.state.as_str() {
                    "firing" => {
                        (change_button(a.id, "ack", "Acknowledge", csrf))
                        (change_button(a.id, "resolve", "Resolve", csrf))
                    },
                    "acknowledged" => {
                        (change_button(a.id, "unack", "Unacknowledge", csrf))
                        (change_button(a.id, "resolve", "Resolve", csrf))
                    },
                    _ => { p.muted { "Resolved: a new firing of this rule and group opens a new alert." } },
                }
            }
        }
        h2 { "History" }
        table {
            thead { tr { th { "When" } th { "Change" } th { "By" } th { "Note" } } }
            tbody {
                tr { td { (age(&a.fired_at, now)) } td { "opened" } td { "rule " (a.rule_id) } td {} }
                @for change in &detail.changes {
                    tr { td { (age(&change.at, now)) } td { (change.change) } td { (change.actor) } td.wrap { (change.note.as_deref().unwrap_or("")) } }
                }
            }
        }
        h2 { "Latest firing" }
        p.muted { "Fingerprint " span.mono.wrap { (latest.fingerprint) } }
        pre.mono.wrap { (latest.body) }
        p { @for d in deliveries { (delivery_state(d)) br; } }
        h2 { "Triggering events" }
        (event_table(events))
        h2 { "Rows of this alert" }
        table {
            thead { tr { th { "Row" } th { "When" } th { "Status" } th { "Title" } th.num { "Count" } th { "Notified" } } }
            tbody {
                @for row in &detail.rows {
                    tr {
                        td.num { (row.id) }
                        td { (age(&row.fired_at, now)) }
                        td { (row.status) }
                        td.wrap { (row.title) }
                        td.num { (row.count) }
                        td {
                            @if let Some(silence) = row.silenced_by { "silenced by " (silence) }
                            @else if let Some(why) = &row.held_back { "not sent: " (why) }
                            @else if !row.notify { "throttled" }
                            @else { "yes" }
                        }
                    }
                }
            }
        }
    };
    layout(&latest.title, body)
}

/// One page of events as a search found them.
#[derive(Debug, Clone, Copy)]
pub struct EventPage<'a> {
    /// The filters given.
    pub filters: &'a Filters,
    /// The events found, newest first.
    pub events: &'a [StoredEvent],
    /// The cursor of the next page.
    pub next: Option<&'a str>,
    /// Why the filters were refused.
    pub refused: Option<&'a str>,
}

/// What polling and the cloud say of a host, for its page.
#[derive(Debug, Default)]
pub struct HostSides {
    /// The collectors that hear it, when several share the database.
    pub collectors: Vec<Heard>,
    /// Its SNMP view, when it is polled.
    pub snmp: Option<SnmpView>,
    /// Its AWS view, when AWS lists it.
    pub cloud: Option<crate::cloud::view::CloudHsmView>,
}

/// `/hosts/{name}`'s AWS section: the HSM as AWS lists it.
fn cloud_section(cloud: Option<&crate::cloud::view::CloudHsmView>) -> Markup {
    let Some(view) = cloud else { return html! {} };
    html! {
        h2 { "AWS CloudHSM" }
        dl.facts {
            dt { "HSM" } dd { (view.hsm.id) }
            dt { "State" } dd class=[(view.hsm.state != "ACTIVE").then_some("silent")] { (view.hsm.state) }
            dt { "Cluster" } dd { (view.cluster) }
            dt { "Account, region" } dd { (view.account) ", " (view.region) }
            dt { "Zone" } dd { (view.hsm.availability_zone.as_deref().unwrap_or("–")) }
            dt { "ENI address" } dd { (view.hsm.eni_ip.as_deref().unwrap_or("–")) }
            @if view.hsm.silent { dt { "Heard" } dd.silent { "dark: nothing received for the silence threshold" } }
        }
    }
}

/// `/hosts/{name}`: the chart, recent events with filters (or why the filters were refused), and the host's alerts.
pub fn host_page(
    name: &str,
    sides: &HostSides,
    chart: Markup,
    found: EventPage<'_>,
    alerts: &[AlertRow],
    now: DateTime<Utc>,
) -> Markup {
    let base = format!("/hosts/{}", percent_encode(name));
    let body = html! {
        h1 { (name) }
        (collectors_section(&sides.collectors))
        (appliance_section(sides.snmp.as_ref()))
        (cloud_section(sides.cloud.as_ref()))
        h2 { "Alerts" }
        (alert_queue(alerts, now))
        h2 { "Events per hour, last 24 hours (UTC)" }
        (chart)
        h2 { "Events" }
        (filter_form(&base, found.filters, false))
        @if let Some(refused) = found.refused { p.silent { (refused) } }
        (event_table(found.events))
        (pager(&base, found.filters, found.next))
    };
    layout(name, body)
}

/// What the sign-in page says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    /// The form.
    Form,
    /// The token given was wrong.
    Failed,
    /// Too many wrong tokens from this address: wait this long.
    Throttled(std::time::Duration),
}

/// `/login`.
pub fn login_page(state: SignIn) -> Markup {
    let body = html! {
        h1 { "Sign in" }
        @match state {
            SignIn::Form => {},
            SignIn::Failed => p.silent { "That token is not the one configured (http.token_env / http.token_file)." },
            SignIn::Throttled(wait) => p.silent {
                "Too many failed attempts from this address; try again in " (wait.as_secs().div_ceil(60)) " min."
            },
        }
        form method="post" action="/login" {
            label { "Your name " input type="text" name="name" autocomplete="username" maxlength="64"; }
            " "
            label { "API token " input type="password" name="token" autocomplete="current-password"; }
            " " button type="submit" { "Sign in" }
        }
    };
    layout("Sign in", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_a_person_says_them() {
        let now = DateTime::parse_from_rfc3339("2026-12-05T12:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(ago("2026-12-05T11:59:30Z", now), "just now");
        assert_eq!(ago("2026-12-05T11:15:00Z", now), "45 min ago");
        assert_eq!(ago("2026-12-05T07:00:00Z", now), "5 h ago");
        assert_eq!(ago("2026-12-04T07:00:00Z", now), "1 day ago");
        assert_eq!(ago("2026-11-23T12:00:00Z", now), "12 days ago");
        assert_eq!(ago("not a time", now), "not a time");
    }
}
