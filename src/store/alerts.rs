//! The `alerts` and `throttle_marks` tables: recording alerts, listing and reading them back, the throttle's marks.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeZone, Utc};
use sqlx::Row;

use crate::store::{Reader, StoreError, WriteConn};

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

/// Inserts alerts (inside the caller's transaction); returns their row ids.
pub async fn insert(conn: &mut WriteConn, alerts: &[AlertRecord<'_>]) -> Result<Vec<i64>, StoreError> {
    let conn = &mut conn.0;
    let mut ids = Vec::with_capacity(alerts.len());
    for alert in alerts {
        let done = sqlx::query(
            "INSERT INTO alerts (rule_id, fingerprint, severity, status, group_json, count, first_seen, last_seen, fired_at, title, body, event_ids, notify, suppressed, host, silenced_by, held_back) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(alert.notify)
        .bind(i64::try_from(alert.suppressed).unwrap_or(i64::MAX))
        .bind(alert.host)
        .bind(alert.silenced_by)
        .bind(alert.held_back)
        .execute(&mut *conn)
        .await?;
        ids.push(done.last_insert_rowid());
    }
    Ok(ids)
}

/// A throttle mark: when the fingerprint was last notified and how many firings were held back since.
pub type MarkRow = (String, DateTime<Utc>, u64);

/// Every throttle mark.
pub async fn load_marks(conn: &mut WriteConn) -> Result<Vec<MarkRow>, StoreError> {
    let conn = &mut conn.0;
    let rows =
        sqlx::query("SELECT fingerprint, last_sent, suppressed FROM throttle_marks").fetch_all(&mut *conn).await?;
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
pub async fn save_marks(conn: &mut WriteConn, marks: &[MarkRow]) -> Result<(), StoreError> {
    let conn = &mut conn.0;
    for (fingerprint, last_sent, suppressed) in marks {
        sqlx::query("INSERT OR REPLACE INTO throttle_marks (fingerprint, last_sent, suppressed) VALUES (?, ?, ?)")
            .bind(fingerprint)
            .bind(last_sent.timestamp_micros())
            .bind(i64::try_from(*suppressed).unwrap_or(i64::MAX))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A recorded alert, as listed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertRow {
    /// Row id.
    pub id: i64,
    /// When it fired (RFC 3339).
    pub fired_at: String,
    /// Rule id.
    pub rule_id: String,
    /// Severity.
    pub severity: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// Fingerprint.
    pub fingerprint: String,
    /// Count.
    pub count: i64,
    /// Title.
    pub title: String,
    /// Whether a notification was due (false when throttled).
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

/// Which alerts to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlertFilter<'a> {
    /// `firing` or `resolved`.
    pub status: Option<&'a str>,
    /// Fired at or after.
    pub since: Option<DateTime<Utc>>,
    /// Concerning this host.
    pub host: Option<&'a str>,
    /// At most this many.
    pub limit: u32,
}

/// Alerts newest first, optionally of one status and since a time.
pub async fn list(reader: &Reader, filter: &AlertFilter<'_>) -> Result<Vec<AlertRow>, StoreError> {
    let pool = &reader.0;
    let rows = sqlx::query(
        "SELECT id, fired_at, rule_id, severity, status, fingerprint, count, title, notify, suppressed, silenced_by, held_back, host FROM alerts \
         WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR fired_at >= ?2) AND (?3 IS NULL OR host = ?3) \
         ORDER BY fired_at DESC, id DESC LIMIT ?4",
    )
    .bind(filter.status)
    .bind(filter.since.map(|t| t.timestamp_micros()))
    .bind(filter.host)
    .bind(i64::from(filter.limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let micros: i64 = row.try_get("fired_at")?;
            Ok(AlertRow {
                id: row.try_get("id")?,
                fired_at: Utc
                    .timestamp_micros(micros)
                    .single()
                    .unwrap_or_default()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                rule_id: row.try_get("rule_id")?,
                severity: row.try_get("severity")?,
                status: row.try_get("status")?,
                fingerprint: row.try_get("fingerprint")?,
                count: row.try_get("count")?,
                title: row.try_get("title")?,
                notify: row.try_get("notify")?,
                suppressed: row.try_get("suppressed")?,
                silenced_by: row.try_get("silenced_by")?,
                held_back: row.try_get("held_back")?,
                host: row.try_get("host")?,
            })
        })
        .collect()
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
}

fn rfc3339(micros: i64) -> String {
    Utc.timestamp_micros(micros).single().unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// One alert by id.
pub async fn get(reader: &Reader, id: i64) -> Result<Option<StoredAlert>, StoreError> {
    let mut conn = reader.connection().await?;
    let conn = &mut *conn;
    let Some(row) = sqlx::query("SELECT * FROM alerts WHERE id = ?").bind(id).fetch_optional(&mut *conn).await? else {
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
    }))
}

/// Open alerts per host and severity (fingerprints whose latest alert since `since` is firing).
pub async fn open_alerts_by_severity(
    reader: &Reader,
    since: DateTime<Utc>,
) -> Result<HashMap<String, BTreeMap<String, u64>>, StoreError> {
    let mut conn = reader.connection().await?;
    let conn = &mut *conn;
    // The latest alert of each fingerprint, found in one pass over the (fingerprint, fired_at) index: a correlated
    // subquery per row was quadratic in the alerts of a busy fingerprint.
    let rows: Vec<(Option<String>, String, String)> = sqlx::query_as(
        "SELECT a.host, a.severity, a.status FROM alerts a \
         JOIN (SELECT max(id) AS id FROM alerts WHERE fired_at >= ? GROUP BY fingerprint) latest ON a.id = latest.id",
    )
    .bind(since.timestamp_micros())
    .fetch_all(&mut *conn)
    .await?;
    let mut open: HashMap<String, BTreeMap<String, u64>> = HashMap::new();
    for (host, severity, status) in rows {
        if let (Some(host), "firing") = (host, status.as_str()) {
            *open.entry(host).or_default().entry(severity).or_default() += 1;
        }
    }
    Ok(open)
}
