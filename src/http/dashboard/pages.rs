//! The pages, as maud templates (compile-time checked; every interpolated value is HTML-escaped, so a user name such
//! as `<script>` from a log line stays text).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use maud::{html, Markup, DOCTYPE};

use crate::event::field;
use crate::inventory::HostView;
use crate::store::alerts::StoredAlert;
use crate::store::outbox::Delivery;
use crate::store::query::{percent_encode, StoredEvent};

/// The frame of every page.
pub fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
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
                th { "Open alerts" } th { "Last heartbeat" } th { "Last backup" }
            } }
            tbody {
                @for view in hosts {
                    @let host = &view.host;
                    @let figure = figures.get(&host.name).cloned().unwrap_or_default();
                    tr {
                        td { a href=(host_link(&host.name)) { (host.name) } }
                        td class=[view.silent.then_some("silent")] {
                            (when(Some(host.last_seen))) @if view.silent { " (silent)" }
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
                    }
                }
                @if hosts.is_empty() { tr { td colspan="7" .muted { "No HSM has reported yet." } } }
            }
        }
    };
    layout("HSMs", body)
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
                        td.mono { (e.timestamp.to_rfc3339()) }
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

/// An alert row of the alerts tables.
pub struct AlertLine {
    /// The alert.
    pub alert: StoredAlert,
    /// Its deliveries.
    pub deliveries: Vec<Delivery>,
}

fn delivery_state(d: &Delivery) -> String {
    match d.status.as_str() {
        "sent" if d.digest_size.is_some() => format!("{}: sent (digest)", d.notifier),
        "pending" => format!("{}: pending ({} attempts)", d.notifier, d.attempts),
        status => format!("{}: {status}", d.notifier),
    }
}

/// A table of alerts with their delivery state.
pub fn alert_table(alerts: &[AlertLine]) -> Markup {
    html! {
        table {
            thead { tr {
                th { "Fired" } th { "Severity" } th { "Status" } th { "Rule" } th { "Title" } th { "Group" }
                th.num { "Count" } th { "First / last seen" } th { "Deliveries" }
            } }
            tbody {
                @for line in alerts {
                    @let a = &line.alert;
                    tr {
                        td.mono { (a.fired_at) }
                        td { (severity_badge(&a.severity)) }
                        td { (a.status) }
                        td.mono { (a.rule) }
                        td { a href=(format!("/alerts/{}", a.id)) { (a.title) } }
                        td { @for (k, v) in &a.group { span.mono { (k) "=" (v) } " " } }
                        td.num { (a.count) }
                        td.mono { (a.first_seen.as_deref().unwrap_or("–")) br; (a.last_seen.as_deref().unwrap_or("–")) }
                        td {
                            @if let Some(silence) = a.silenced_by { "silenced by " (silence) }
                            @if let Some(why) = &a.held_back { "not sent: " (why) }
                            @for d in &line.deliveries { (delivery_state(d)) br; }
                        }
                    }
                }
                @if alerts.is_empty() { tr { td colspan="9" .muted { "No alerts." } } }
            }
        }
    }
}

/// `/alerts`.
pub fn alerts_page(status: Option<&str>, alerts: &[AlertLine]) -> Markup {
    let body = html! {
        h1 { "Alerts" }
        p {
            a href="/alerts" { "all" } " · " a href="/alerts?status=firing" { "firing" } " · "
            a href="/alerts?status=resolved" { "resolved" }
            @if let Some(status) = status { span.muted { " (showing " (status) ")" } }
        }
        (alert_table(alerts))
    };
    layout("Alerts", body)
}

/// `/alerts/{id}`: the alert, its deliveries and its triggering events.
pub fn alert_page(line: &AlertLine, events: &[StoredEvent]) -> Markup {
    let a = &line.alert;
    let body = html! {
        h1 { (severity_badge(&a.severity)) " " (a.title) }
        p.muted { "Rule " span.mono { (a.rule) } " · " (a.status) " · fingerprint " span.mono { (a.fingerprint) } }
        (alert_table(std::slice::from_ref(line)))
        h2 { "Body" }
        pre.mono { (a.body) }
        h2 { "Triggering events" }
        (event_table(events))
    };
    layout(&a.title, body)
}

/// `/hosts/{name}`: the chart, recent events with filters (or why the filters were refused), and the alert history.
pub fn host_page(
    name: &str,
    chart: Markup,
    filters: &Filters,
    events: &[StoredEvent],
    next: Option<&str>,
    refused: Option<&str>,
    alerts: &[AlertLine],
) -> Markup {
    let base = format!("/hosts/{}", percent_encode(name));
    let body = html! {
        h1 { (name) }
        h2 { "Events per hour, last 24 hours (UTC)" }
        (chart)
        h2 { "Events" }
        (filter_form(&base, filters, false))
        @if let Some(refused) = refused { p.silent { (refused) } }
        (event_table(events))
        (pager(&base, filters, next))
        h2 { "Alerts" }
        (alert_table(alerts))
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
            label { "API token " input type="password" name="token" autocomplete="current-password"; }
            " " button type="submit" { "Sign in" }
        }
    };
    layout("Sign in", body)
}
