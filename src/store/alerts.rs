//! The `alerts` and `throttle_marks` tables: recording alerts, listing and reading them back, the throttle's marks.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeZone, Utc};
use sqlx::Row;

use crate::store::{Reader, StoreError, TableConn};

/// An alert to record, as the alert stage rendered it.
#[derive(Debug, Clone, Copy)]
pub struct AlertRecord<'a> {
    /// Rule id.
    pub rule_id: &'a str,
    /// Rule id plus group values.
    pub fingerprint: &'a str,
    /// Severity name.
    pub severity: &'a str,
    /// `firing` or `resolved`.
    pub status: &'a str,
    /// group_by fields and values.
    pub group: &'a BTreeMap<String, String>,
    /// What was counted.
    pub count: u64,
    /// First matching event.
    pub first_seen: Option<DateTime<Utc>>,
    /// Last matching event.
    pub last_seen: Option<DateTime<Utc>>,
    /// When it fired.
    pub at: DateTime<Utc>,
    /// Rendered title.
    pub title: &'a str,
    /// Rendered body.
    pub body: &'a str,
    /// Stored ids of the triggering events.
    pub event_ids: &'a [i64],
    /// Whether a notification goes out.
    pub notify: bool,
    /// Firings held back since the last notification.
    pub suppressed: u64,
    /// The host it concerns.
    pub host: Option<&'a str>,
    /// The silence that held its notification back.
    pub silenced_by: Option<i64>,
    /// Why it was not sent although it was due (history older than the notification horizon).
    pub held_back: Option<&'a str>,
}

/// What recording an alert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The row's id.
    pub id: i64,
    /// The alert it opened or joined (its opening row's id).
    pub alert_id: i64,
    /// Why it is not notified although it was due: the record's own reason, the alert being acknowledged, or a
    /// resolution of an alert that was already resolved.
    pub held_back: Option<String>,
}

/// The open alert of a fingerprint: its id, state and who set it.
async fn open_alert(
    conn: &mut impl TableConn,
    fingerprint: &str,
) -> Result<Option<(i64, String, Option<String>)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, state, state_by FROM alerts WHERE fingerprint = $1 AND state IN ('firing', 'acknowledged') \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(fingerprint)
    .fetch_optional(&mut conn.tables())
    .await?)
}

/// Inserts alerts (inside the caller's transaction). A firing joins the open alert of its fingerprint or opens a
/// new one; a resolution joins and resolves it. Returns what each became.
pub async fn insert(conn: &mut impl TableConn, alerts: &[AlertRecord<'_>]) -> Result<Vec<Recorded>, StoreError> {
    let mut recorded = Vec::with_capacity(alerts.len());
    for alert in alerts {
        let open = open_alert(conn, alert.fingerprint).await?;
        let held_back = match (&open, alert.status) {
            _ if !alert.notify || alert.held_back.is_some() => alert.held_back.map(str::to_owned),
            (Some((_, state, by)), "firing") if state == "acknowledged" => {
                Some(format!("acknowledged by {}", by.as_deref().unwrap_or("someone")))
            }
            (None, "resolved") => Some("the alert was already resolved".to_owned()),
            _ => None,
        };
        let id = insert_row(conn, alert, open.as_ref().map(|(id, ..)| *id), held_back.as_deref()).await?;
        let alert_id = match (open, alert.status) {
            (Some((open, ..)), "firing") => join(conn, open, id, alert.at).await?,
            (Some((open, ..)), _) => {
                let note = format!("rule {} ended the condition", alert.rule_id);
                let change = AlertChange { change: Change::Resolve, actor: "rule", note: Some(&note), at: alert.at };
                record_change(conn, open, &change).await?;
                open
            }
            (None, "firing") => open_new(conn, id, "firing", alert.at).await?,
            (None, _) => join_latest(conn, id, alert).await?,
        };
        recorded.push(Recorded { id, alert_id, held_back });
    }
    Ok(recorded)
}

/// Row `id`, a firing, joins the open alert `alert_id`.
async fn join(conn: &mut impl TableConn, alert_id: i64, id: i64, at: DateTime<Utc>) -> Result<i64, StoreError> {
    sqlx::query("UPDATE alerts SET firings = firings + 1, last_id = $1, last_fired_at = $2 WHERE id = $3")
        .bind(id)
        .bind(at.timestamp_micros())
        .bind(alert_id)
        .execute(&mut conn.tables())
        .await?;
    Ok(alert_id)
}

/// Row `id` opens an alert of its own, in `state`.
async fn open_new(conn: &mut impl TableConn, id: i64, state: &str, at: DateTime<Utc>) -> Result<i64, StoreError> {
    sqlx::query(
        "UPDATE alerts SET alert_id = id, state = $1, state_at = $2, firings = 1, last_id = id, last_fired_at = $3 \
         WHERE id = $4",
    )
    .bind(state)
    .bind(at.timestamp_micros())
    .bind(at.timestamp_micros())
    .bind(id)
    .execute(&mut conn.tables())
    .await?;
    Ok(id)
}

/// Row `id`, a resolution with no open alert (a person resolved it first), joins the latest alert of its fingerprint,
/// or stands as a resolved alert of its own when there is none.
async fn join_latest(conn: &mut impl TableConn, id: i64, alert: &AlertRecord<'_>) -> Result<i64, StoreError> {
    let latest: Option<i64> = sqlx::query_scalar(
        "SELECT alert_id FROM alerts WHERE fingerprint = $1 AND id < $2 AND alert_id IS NOT NULL ORDER BY id DESC LIMIT 1",
    )
    .bind(alert.fingerprint)
    .bind(id)
    .fetch_optional(&mut conn.tables())
    .await?;
    let Some(latest) = latest else { return open_new(conn, id, "resolved", alert.at).await };
    sqlx::query("UPDATE alerts SET alert_id = $1 WHERE id = $2")
        .bind(latest)
        .bind(id)
        .execute(&mut conn.tables())
        .await?;
    Ok(latest)
}

async fn insert_row(
    conn: &mut impl TableConn,
    alert: &AlertRecord<'_>,
    alert_id: Option<i64>,
    held_back: Option<&str>,
) -> Result<i64, StoreError> {
    let done = sqlx::query_scalar(
        "INSERT INTO alerts (rule_id, fingerprint, severity, status, group_json, count, first_seen, last_seen, \
         fired_at, title, body, event_ids, notify, suppressed, host, silenced_by, held_back, alert_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id",
    )
    .bind(alert.rule_id)
    .bind(alert.fingerprint)
    .bind(alert.severity)
    .bind(alert.status)
    .bind(serde_json::to_string(alert.group).expect("a map of strings serializes"))
    .bind(i64::try_from(alert.count).unwrap_or(i64::MAX))
    .bind(alert.first_seen.map(|t| t.timestamp_micros()))
    .bind(alert.last_seen.map(|t| t.timestamp_micros()))
    .bind(alert.at.timestamp_micros())
    .bind(alert.title)
    .bind(alert.body)
    .bind(serde_json::to_string(alert.event_ids).expect("a list of ids serializes"))
    .bind(i16::from(alert.notify))
    .bind(i64::try_from(alert.suppressed).unwrap_or(i64::MAX))
    .bind(alert.host)
    .bind(alert.silenced_by)
    .bind(held_back)
    .bind(alert_id)
    .fetch_one(&mut conn.tables())
    .await?;
    Ok(done)
}

/// A change a person (or hsmwatch) makes to an alert's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// "I have this": no notifications while acknowledged.
    Acknowledge,
    /// Back to firing.
    Unacknowledge,
    /// Closed: a new firing of its fingerprint opens a new alert.
    Resolve,
}

impl Change {
    /// The state it leads to.
    pub fn state(self) -> &'static str {
        match self {
            Change::Acknowledge => "acknowledged",
            Change::Unacknowledge => "firing",
            Change::Resolve => "resolved",
        }
    }

    /// How the change is recorded and named (`acknowledged`, `unacknowledged`, `resolved`).
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Acknowledge => "acknowledged",
            Change::Unacknowledge => "unacknowledged",
            Change::Resolve => "resolved",
        }
    }

    /// The states it can be made from.
    fn allowed_from(self) -> &'static [&'static str] {
        match self {
            Change::Acknowledge => &["firing"],
            Change::Unacknowledge => &["acknowledged"],
            Change::Resolve => &["firing", "acknowledged"],
        }
    }
}

impl std::str::FromStr for Change {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "ack" | "acknowledge" => Ok(Change::Acknowledge),
            "unack" | "unacknowledge" => Ok(Change::Unacknowledge),
            "resolve" => Ok(Change::Resolve),
            other => Err(format!("`{other}` is not a change of an alert (ack, unack or resolve)")),
        }
    }
}

/// Who changes an alert, how, and why.
#[derive(Debug, Clone, Copy)]
pub struct AlertChange<'a> {
    /// The change.
    pub change: Change,
    /// A person's name, `rule`, or `hsmwatch (...)`.
    pub actor: &'a str,
    /// Why, in their words.
    pub note: Option<&'a str>,
    /// When.
    pub at: DateTime<Utc>,
}

/// What became of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// Made; the notice row recorded and the notifiers it was queued for.
    Changed {
        /// The alert (its opening row's id).
        alert_id: i64,
        /// The row that tells of the change (notified like a firing).
        notice_id: Option<i64>,
        /// The notifiers the notice was queued for.
        queued: Vec<String>,
    },
    /// No alert has this id.
    NoSuchAlert,
    /// The alert's state does not allow it (`alert 4 is resolved`).
    Refused(String),
}

/// Sets the alert's state and records who did it (inside the caller's transaction).
async fn record_change(conn: &mut impl TableConn, alert_id: i64, change: &AlertChange<'_>) -> Result<(), StoreError> {
    sqlx::query("UPDATE alerts SET state = $1, state_at = $2, state_by = $3 WHERE id = $4")
        .bind(change.change.state())
        .bind(change.at.timestamp_micros())
        .bind(change.actor)
        .bind(alert_id)
        .execute(&mut conn.tables())
        .await?;
    sqlx::query("INSERT INTO alert_changes (alert_id, at, actor, change, note) VALUES ($1, $2, $3, $4, $5)")
        .bind(alert_id)
        .bind(change.at.timestamp_micros())
        .bind(change.actor)
        .bind(change.change.as_str())
        .bind(change.note)
        .execute(&mut conn.tables())
        .await?;
    Ok(())
}

/// Changes the state of the alert `id` belongs to (any of its rows' ids will do), in one transaction: the state, a
/// record of the change, and, for an acknowledgement or a resolution when `notify` is set, a notice row queued to
/// every notifier the alert went to.
pub async fn change_state(
    conn: &mut impl TableConn,
    id: i64,
    change: &AlertChange<'_>,
    notify: bool,
) -> Result<ChangeOutcome, StoreError> {
    super::in_transaction(conn, async |conn| change_in_transaction(conn, id, change, notify).await).await
}

async fn change_in_transaction(
    conn: &mut impl TableConn,
    id: i64,
    change: &AlertChange<'_>,
    notify: bool,
) -> Result<ChangeOutcome, StoreError> {
    let found: Option<(i64, Option<String>)> =
        sqlx::query_as("SELECT a.id, a.state FROM alerts r JOIN alerts a ON a.id = r.alert_id WHERE r.id = $1")
            .bind(id)
            .fetch_optional(&mut conn.tables())
            .await?;
    let Some((alert_id, state)) = found else { return Ok(ChangeOutcome::NoSuchAlert) };
    let state = state.unwrap_or_default();
    if !change.change.allowed_from().contains(&state.as_str()) {
        return Ok(ChangeOutcome::Refused(format!(
            "alert {alert_id} is {state}; it cannot be {}",
            change.change.as_str()
        )));
    }
    record_change(conn, alert_id, change).await?;
    if change.change == Change::Unacknowledge {
        return Ok(ChangeOutcome::Changed { alert_id, notice_id: None, queued: Vec::new() });
    }
    let notice_id = insert_notice(conn, alert_id, change, notify).await?;
    let queued: Vec<String> = match notify {
        true => {
            sqlx::query_scalar(
                "SELECT DISTINCT o.notifier FROM alerts r JOIN outbox o ON o.alert_id = r.id \
             WHERE r.alert_id = $1 AND r.status = 'firing' ORDER BY o.notifier",
            )
            .bind(alert_id)
            .fetch_all(&mut conn.tables())
            .await?
        }
        false => Vec::new(),
    };
    for notifier in &queued {
        super::outbox::enqueue(conn, notice_id, notifier, change.at).await?;
    }
    Ok(ChangeOutcome::Changed { alert_id, notice_id: Some(notice_id), queued })
}

/// The row that tells of a change: the alert's latest firing, with the change as its status and title.
async fn insert_notice(
    conn: &mut impl TableConn,
    alert_id: i64,
    change: &AlertChange<'_>,
    notify: bool,
) -> Result<i64, StoreError> {
    let done = sqlx::query_scalar(
        "INSERT INTO alerts (rule_id, fingerprint, severity, status, group_json, count, first_seen, last_seen, fired_at, \
         title, body, event_ids, notify, suppressed, host, alert_id, held_back) \
         SELECT l.rule_id, l.fingerprint, l.severity, $1, l.group_json, l.count, l.first_seen, l.last_seen, $2, \
         $3 || ': ' || l.title, $4, l.event_ids, $5, 0, l.host, a.id, $6 \
         FROM alerts a JOIN alerts l ON l.id = a.last_id WHERE a.id = $7 RETURNING id",
    )
    .bind(change.change.as_str())
    .bind(change.at.timestamp_micros())
    .bind(format!("{} by {}", capitalised(change.change.as_str()), change.actor))
    .bind(change.note.unwrap_or(""))
    .bind(i16::from(notify))
    .bind((!notify).then_some("notices of changes are off (alerts.notify_changes)"))
    .bind(alert_id)
    .fetch_one(&mut conn.tables())
    .await?;
    Ok(done)
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Resolves open alerts whose last firing is older than their rule's `resolve_after` (`None`: the rule resolves its
/// alerts itself); returns the alerts resolved.
pub async fn resolve_expired(
    conn: &mut impl TableConn,
    now: DateTime<Utc>,
    resolve_after: impl Fn(&str) -> Option<std::time::Duration>,
    notify: bool,
) -> Result<Vec<i64>, StoreError> {
    let open: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT id, rule_id, last_fired_at FROM alerts WHERE state IN ('firing', 'acknowledged') AND alert_id = id",
    )
    .fetch_all(&mut conn.tables())
    .await?;
    let mut resolved = Vec::new();
    for (id, rule_id, last_fired_at) in open {
        let Some(after) = resolve_after(&rule_id) else { continue };
        let after_micros = i64::try_from(after.as_micros()).unwrap_or(i64::MAX);
        if last_fired_at.saturating_add(after_micros) > now.timestamp_micros() {
            continue;
        }
        let note = format!("no firing for {}", humantime::format_duration(after));
        let change =
            AlertChange { change: Change::Resolve, actor: "hsmwatch (resolve_after)", note: Some(&note), at: now };
        if let ChangeOutcome::Changed { .. } = change_state(conn, id, &change, notify).await? {
            resolved.push(id);
        }
    }
    Ok(resolved)
}

/// A throttle mark: when the fingerprint was last notified and how many firings were held back since.
pub type MarkRow = (String, DateTime<Utc>, u64);

/// Every throttle mark.
pub async fn load_marks(conn: &mut impl TableConn) -> Result<Vec<MarkRow>, StoreError> {
    let rows = sqlx::query("SELECT fingerprint, last_sent, suppressed FROM throttle_marks")
        .fetch_all(&mut conn.tables())
        .await?;
    rows.iter()
        .map(|row| {
            let micros: i64 = row.try_get("last_sent")?;
            let suppressed: i64 = row.try_get("suppressed")?;
            Ok((
                row.try_get("fingerprint")?,
                Utc.timestamp_micros(micros).single().unwrap_or_default(),
                u64::try_from(suppressed).unwrap_or(0),
            ))
        })
        .collect()
}

/// Writes marks (inside the caller's transaction).
pub async fn save_marks(conn: &mut impl TableConn, marks: &[MarkRow]) -> Result<(), StoreError> {
    for (fingerprint, last_sent, suppressed) in marks {
        sqlx::query(
            "INSERT INTO throttle_marks (fingerprint, last_sent, suppressed) VALUES ($1, $2, $3) \
             ON CONFLICT (fingerprint) DO UPDATE SET last_sent = excluded.last_sent, suppressed = excluded.suppressed",
        )
        .bind(fingerprint)
        .bind(last_sent.timestamp_micros())
        .bind(i64::try_from(*suppressed).unwrap_or(i64::MAX))
        .execute(&mut conn.tables())
        .await?;
    }
    Ok(())
}

/// An alert as listed: its opening row with its state, and the title and count of its latest firing.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertRow {
    /// The alert's id (its opening row's).
    pub id: i64,
    /// When it opened (RFC 3339).
    pub fired_at: String,
    /// Rule id.
    pub rule_id: String,
    /// Severity.
    pub severity: String,
    /// `firing`, `acknowledged` or `resolved`.
    pub state: String,
    /// When the state last changed.
    pub state_at: Option<String>,
    /// Who changed it last (a person, `rule`, `hsmwatch (...)`).
    pub state_by: Option<String>,
    /// Firings joined so far.
    pub firings: i64,
    /// When the latest firing was.
    pub last_fired_at: String,
    /// `firing` or `resolved`: the latest firing's status.
    pub status: String,
    /// Fingerprint.
    pub fingerprint: String,
    /// The latest firing's count.
    pub count: i64,
    /// The latest firing's title.
    pub title: String,
    /// Whether the latest firing was due a notification (false when throttled).
    pub notify: bool,
    /// Firings held back before it.
    pub suppressed: i64,
    /// The silence that held its notification back.
    pub silenced_by: Option<i64>,
    /// Why it was not sent although it was due.
    pub held_back: Option<String>,
    /// The host it concerns.
    pub host: Option<String>,
}

/// Which alerts, by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateFilter {
    /// Firing or acknowledged.
    Open,
    /// Firing.
    Firing,
    /// Acknowledged.
    Acknowledged,
    /// Resolved.
    Resolved,
}

impl std::str::FromStr for StateFilter {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "open" => Ok(StateFilter::Open),
            "firing" => Ok(StateFilter::Firing),
            "acknowledged" => Ok(StateFilter::Acknowledged),
            "resolved" => Ok(StateFilter::Resolved),
            other => Err(format!("`{other}` is not a state (open, firing, acknowledged, resolved)")),
        }
    }
}

impl StateFilter {
    fn admits(self, state: &str) -> bool {
        match self {
            StateFilter::Open => state == "firing" || state == "acknowledged",
            StateFilter::Firing => state == "firing",
            StateFilter::Acknowledged => state == "acknowledged",
            StateFilter::Resolved => state == "resolved",
        }
    }
}

/// Which alerts to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlertFilter<'a> {
    /// In this state.
    pub state: Option<StateFilter>,
    /// Fired last at or after.
    pub since: Option<DateTime<Utc>>,
    /// Concerning this host.
    pub host: Option<&'a str>,
    /// At most this many.
    pub limit: u32,
}

const ALERT_COLUMNS: &str = "SELECT a.id, a.fired_at, a.rule_id, a.severity, a.state, a.state_at, a.state_by, \
     a.firings, a.last_fired_at, l.status, a.fingerprint, l.count, l.title, l.notify, l.suppressed, l.silenced_by, \
     l.held_back, a.host FROM alerts a JOIN alerts l ON l.id = a.last_id";

fn seconds(micros: i64) -> String {
    Utc.timestamp_micros(micros).single().unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn alert_row(row: &sqlx::any::AnyRow) -> Result<AlertRow, StoreError> {
    Ok(AlertRow {
        id: row.try_get("id")?,
        fired_at: seconds(row.try_get("fired_at")?),
        rule_id: row.try_get("rule_id")?,
        severity: row.try_get("severity")?,
        state: row.try_get::<Option<String>, _>("state")?.unwrap_or_default(),
        state_at: row.try_get::<Option<i64>, _>("state_at")?.map(seconds),
        state_by: row.try_get("state_by")?,
        firings: row.try_get::<Option<i64>, _>("firings")?.unwrap_or(1),
        last_fired_at: seconds(row.try_get::<Option<i64>, _>("last_fired_at")?.unwrap_or_default()),
        status: row.try_get("status")?,
        fingerprint: row.try_get("fingerprint")?,
        count: row.try_get("count")?,
        title: row.try_get("title")?,
        notify: row.try_get::<i64, _>("notify")? != 0,
        suppressed: row.try_get("suppressed")?,
        silenced_by: row.try_get("silenced_by")?,
        held_back: row.try_get("held_back")?,
        host: row.try_get("host")?,
    })
}

/// Alerts as a triage queue: open ones first (firing, then acknowledged, each by latest firing, newest first), then
/// resolved ones, newest first.
pub async fn list(reader: &Reader, filter: &AlertFilter<'_>) -> Result<Vec<AlertRow>, StoreError> {
    let mut conn = reader.table_connection().await?;
    let since = filter.since.map(|t| t.timestamp_micros());
    let limit = i64::from(filter.limit);
    let mut found = Vec::new();
    if filter.state.is_none_or(|s| s != StateFilter::Resolved) {
        // The open ones are few (the partial index holds only them): all are read and ordered here.
        let rows = sqlx::query(&format!(
            "{ALERT_COLUMNS} WHERE a.state IN ('firing', 'acknowledged') AND a.alert_id = a.id \
             AND ($1 IS NULL OR a.last_fired_at >= $1) AND ($2 IS NULL OR a.host = $2)"
        ))
        .bind(since)
        .bind(filter.host)
        .fetch_all(&mut conn.tables())
        .await?;
        let mut open = rows.iter().map(alert_row).collect::<Result<Vec<_>, _>>()?;
        open.retain(|a| filter.state.is_none_or(|s| s.admits(&a.state)));
        open.sort_by(|a, b| {
            (a.state != "firing", std::cmp::Reverse(&a.last_fired_at), std::cmp::Reverse(a.id)).cmp(&(
                b.state != "firing",
                std::cmp::Reverse(&b.last_fired_at),
                std::cmp::Reverse(b.id),
            ))
        });
        found.extend(open);
    }
    let left = limit - found.len() as i64;
    if filter.state.is_none_or(|s| s == StateFilter::Resolved) && left > 0 {
        let rows = sqlx::query(&format!(
            "{ALERT_COLUMNS} WHERE a.state = 'resolved' AND a.alert_id = a.id \
             AND ($1 IS NULL OR a.last_fired_at >= $1) AND ($2 IS NULL OR a.host = $2) ORDER BY a.id DESC LIMIT $3"
        ))
        .bind(since)
        .bind(filter.host)
        .bind(left)
        .fetch_all(&mut conn.tables())
        .await?;
        for row in &rows {
            found.push(alert_row(row)?);
        }
    }
    found.truncate(usize::try_from(filter.limit).unwrap_or(usize::MAX));
    Ok(found)
}

/// A change of an alert's state, as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChangeRow {
    /// When (RFC 3339).
    pub at: String,
    /// Who.
    pub actor: String,
    /// `acknowledged`, `unacknowledged` or `resolved`.
    pub change: String,
    /// Why.
    pub note: Option<String>,
}

/// A row of an alert's history: a firing, a resolution, or the notice of a change.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EntryRow {
    /// Row id.
    pub id: i64,
    /// When (RFC 3339).
    pub fired_at: String,
    /// `firing`, `resolved`, `acknowledged`...
    pub status: String,
    /// Title.
    pub title: String,
    /// Count.
    pub count: i64,
    /// Whether a notification was due (false when throttled).
    pub notify: bool,
    /// The silence that held its notification back.
    pub silenced_by: Option<i64>,
    /// Why it was not sent although it was due.
    pub held_back: Option<String>,
}

/// One alert in full: as listed, its latest firing as stored, who changed it, and its rows (newest first).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertDetail {
    /// As listed.
    pub summary: AlertRow,
    /// The latest firing, with its body and events.
    pub latest: StoredAlert,
    /// Every change of its state, oldest first.
    pub changes: Vec<ChangeRow>,
    /// Its rows, newest first (at most [`DETAIL_ROWS`]).
    pub rows: Vec<EntryRow>,
}

/// Rows of an alert shown with it, at most.
pub const DETAIL_ROWS: i64 = 200;

/// The alert row `id` belongs to (any of its rows' ids will do), in full.
pub async fn detail(reader: &Reader, id: i64) -> Result<Option<AlertDetail>, StoreError> {
    let mut pooled = reader.table_connection().await?;
    let conn = &mut pooled;
    let alert_id: Option<Option<i64>> = sqlx::query_scalar("SELECT alert_id FROM alerts WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut conn.tables())
        .await?;
    let Some(alert_id) = alert_id.flatten() else { return Ok(None) };
    let Some(row) = sqlx::query(&format!("{ALERT_COLUMNS} WHERE a.id = $1"))
        .bind(alert_id)
        .fetch_optional(&mut conn.tables())
        .await?
    else {
        return Ok(None);
    };
    let summary = alert_row(&row)?;
    let last_id: i64 = sqlx::query_scalar("SELECT last_id FROM alerts WHERE id = $1")
        .bind(alert_id)
        .fetch_one(&mut conn.tables())
        .await?;
    let changes = sqlx::query("SELECT at, actor, change, note FROM alert_changes WHERE alert_id = $1 ORDER BY id")
        .bind(alert_id)
        .fetch_all(&mut conn.tables())
        .await?
        .iter()
        .map(|row| {
            Ok(ChangeRow {
                at: seconds(row.try_get("at")?),
                actor: row.try_get("actor")?,
                change: row.try_get("change")?,
                note: row.try_get("note")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let rows = sqlx::query(
        "SELECT id, fired_at, status, title, count, notify, silenced_by, held_back FROM alerts \
         WHERE alert_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(alert_id)
    .bind(DETAIL_ROWS)
    .fetch_all(&mut conn.tables())
    .await?
    .iter()
    .map(|row| {
        Ok(EntryRow {
            id: row.try_get("id")?,
            fired_at: seconds(row.try_get("fired_at")?),
            status: row.try_get("status")?,
            title: row.try_get("title")?,
            count: row.try_get("count")?,
            notify: row.try_get::<i64, _>("notify")? != 0,
            silenced_by: row.try_get("silenced_by")?,
            held_back: row.try_get("held_back")?,
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    drop(pooled);
    let Some(latest) = get(reader, last_id).await? else { return Ok(None) };
    Ok(Some(AlertDetail { summary, latest, changes, rows }))
}

/// An alert as stored, for delivery.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredAlert {
    /// Row id.
    #[serde(skip)]
    pub id: i64,
    /// Rule id plus group values.
    pub fingerprint: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// Rule id.
    pub rule: String,
    /// Severity.
    pub severity: String,
    /// The host it concerns.
    pub host: Option<String>,
    /// group_by fields and values.
    pub group: BTreeMap<String, String>,
    /// Count.
    pub count: i64,
    /// First matching event (RFC 3339).
    pub first_seen: Option<String>,
    /// Last matching event.
    pub last_seen: Option<String>,
    /// When it fired.
    pub fired_at: String,
    /// Rendered title.
    pub title: String,
    /// Rendered body.
    pub body: String,
    /// Firings held back before it.
    pub suppressed: i64,
    /// Stored ids of the triggering events.
    pub event_ids: Vec<i64>,
    /// The silence that held its notification back (never set on what is delivered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silenced_by: Option<i64>,
    /// Why it was not sent although it was due (never set on what is delivered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_back: Option<String>,
    /// The alert this row belongs to (its opening row's id).
    pub alert_id: Option<i64>,
    /// The alert's page (`http.external_url` + `/alerts/ID`), set by delivery when that is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The fields of the last triggering event, set by delivery.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub event: BTreeMap<String, String>,
}

fn rfc3339(micros: i64) -> String {
    Utc.timestamp_micros(micros).single().unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// One alert by id.
pub async fn get(reader: &Reader, id: i64) -> Result<Option<StoredAlert>, StoreError> {
    let mut conn = reader.table_connection().await?;
    let Some(row) =
        sqlx::query("SELECT * FROM alerts WHERE id = $1").bind(id).fetch_optional(&mut conn.tables()).await?
    else {
        return Ok(None);
    };
    let corrupt = |e: serde_json::Error| StoreError::CorruptRow { id, reason: format!("alert: {e}") };
    let group: String = row.try_get("group_json")?;
    let ids: String = row.try_get("event_ids")?;
    Ok(Some(StoredAlert {
        id,
        fingerprint: row.try_get("fingerprint")?,
        status: row.try_get("status")?,
        rule: row.try_get("rule_id")?,
        severity: row.try_get("severity")?,
        host: row.try_get("host")?,
        group: serde_json::from_str(&group).map_err(corrupt)?,
        count: row.try_get("count")?,
        first_seen: row.try_get::<Option<i64>, _>("first_seen")?.map(rfc3339),
        last_seen: row.try_get::<Option<i64>, _>("last_seen")?.map(rfc3339),
        fired_at: rfc3339(row.try_get("fired_at")?),
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        suppressed: row.try_get("suppressed")?,
        event_ids: serde_json::from_str(&ids).map_err(corrupt)?,
        silenced_by: row.try_get("silenced_by")?,
        held_back: row.try_get("held_back")?,
        alert_id: row.try_get("alert_id")?,
        url: None,
        event: BTreeMap::new(),
    }))
}

/// Open alerts (firing or acknowledged) per host and severity.
pub async fn open_alerts_by_severity(reader: &Reader) -> Result<HashMap<String, BTreeMap<String, u64>>, StoreError> {
    let mut conn = reader.table_connection().await?;
    let rows: Vec<(Option<String>, String)> =
        sqlx::query_as("SELECT host, severity FROM alerts WHERE state IN ('firing', 'acknowledged') AND alert_id = id")
            .fetch_all(&mut conn.tables())
            .await?;
    let mut open: HashMap<String, BTreeMap<String, u64>> = HashMap::new();
    for (host, severity) in rows {
        if let Some(host) = host {
            *open.entry(host).or_default().entry(severity).or_default() += 1;
        }
    }
    Ok(open)
}
