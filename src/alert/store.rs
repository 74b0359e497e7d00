//! The `alerts` and `throttle_marks` tables.

use chrono::{DateTime, TimeZone, Utc};
use sqlx::{Row, SqliteConnection};

use super::Alert;
use crate::store::StoreError;

/// Inserts alerts (inside the caller's transaction).
pub async fn insert(conn: &mut SqliteConnection, alerts: &[Alert]) -> Result<(), StoreError> {
    for alert in alerts {
        sqlx::query(
            "INSERT INTO alerts (rule_id, fingerprint, severity, status, group_json, count, first_seen, last_seen, fired_at, title, body, event_ids, notify, suppressed) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&alert.rule_id)
        .bind(&alert.fingerprint)
        .bind(alert.severity)
        .bind(alert.status.as_str())
        .bind(serde_json::to_string(&alert.group).expect("a map of strings serializes"))
        .bind(i64::try_from(alert.count).unwrap_or(i64::MAX))
        .bind(alert.first_seen.map(|t| t.timestamp_micros()))
        .bind(alert.last_seen.map(|t| t.timestamp_micros()))
        .bind(alert.at.timestamp_micros())
        .bind(&alert.title)
        .bind(&alert.body)
        .bind(serde_json::to_string(&alert.event_ids).expect("a list of ids serializes"))
        .bind(alert.notify)
        .bind(i64::try_from(alert.suppressed).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A throttle mark: when the fingerprint was last notified and how many firings were held back since.
pub type MarkRow = (String, DateTime<Utc>, u64);

/// Every throttle mark.
pub async fn load_marks(conn: &mut SqliteConnection) -> Result<Vec<MarkRow>, StoreError> {
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
pub async fn save_marks(conn: &mut SqliteConnection, marks: &[MarkRow]) -> Result<(), StoreError> {
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
