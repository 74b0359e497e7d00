//! The `hosts` table: the HSM inventory's rows.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use sqlx::{Row, SqliteConnection};

use crate::store::{Reader, StoreError, WriteConn};

/// What is known of one host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Host {
    /// `host.name`.
    pub name: String,
    /// First time a line from it was received.
    pub first_seen: DateTime<Utc>,
    /// Last time a line from it was received.
    pub last_seen: DateTime<Utc>,
    /// Lines received.
    pub events: u64,
    /// Sender addresses seen (without port).
    pub addresses: BTreeSet<String>,
    /// Lines by `event.dataset`.
    pub datasets: BTreeMap<String, u64>,
    /// HSM serial numbers seen in its audit records.
    pub serials: BTreeSet<String>,
    /// Appliance software packages installed (successful `package update`).
    pub software: BTreeSet<String>,
    /// Last daily heartbeat.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// Last successful partition backup.
    pub last_backup: Option<DateTime<Utc>>,
    /// Last successful partition restore (a restore exercised).
    pub last_restore: Option<DateTime<Utc>>,
    /// Last failed login of any kind.
    pub last_login_failure: Option<DateTime<Utc>>,
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("sets and maps of strings serialize")
}

/// Which collectors hear each host, by host name, when the database is one several share (PostgreSQL); `None` on
/// SQLite, where the one collector hears every host.
pub async fn heard_by(
    reader: &Reader,
) -> Result<Option<BTreeMap<String, Vec<super::postgres::heard::Heard>>>, StoreError> {
    match reader.postgres_pool() {
        Some(pool) => Ok(Some(super::postgres::heard::heard(pool).await?)),
        None => Ok(None),
    }
}

/// Writes hosts, in one transaction.
pub async fn save(conn: &mut WriteConn, hosts: &[&Host]) -> Result<(), StoreError> {
    crate::store::in_transaction(conn, async |conn| {
        for host in hosts {
            upsert(&mut conn.0, host).await?;
        }
        Ok(())
    })
    .await
}

async fn upsert(conn: &mut SqliteConnection, host: &Host) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT OR REPLACE INTO hosts (name, first_seen, last_seen, events, addresses, datasets, serials, software, last_heartbeat, last_backup, last_login_failure, last_restore) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&host.name)
    .bind(host.first_seen.timestamp_micros())
    .bind(host.last_seen.timestamp_micros())
    .bind(i64::try_from(host.events).unwrap_or(i64::MAX))
    .bind(json(&host.addresses))
    .bind(json(&host.datasets))
    .bind(json(&host.serials))
    .bind(json(&host.software))
    .bind(host.last_heartbeat.map(|t| t.timestamp_micros()))
    .bind(host.last_backup.map(|t| t.timestamp_micros()))
    .bind(host.last_login_failure.map(|t| t.timestamp_micros()))
    .bind(host.last_restore.map(|t| t.timestamp_micros()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn time(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros).single().unwrap_or_default()
}

/// Every host, by name.
pub async fn all(reader: &Reader) -> Result<Vec<Host>, StoreError> {
    let mut conn = reader.connection().await?;
    let conn = &mut *conn;
    let rows = sqlx::query("SELECT * FROM hosts ORDER BY name").fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| {
            let name: String = row.try_get("name")?;
            let parse = |column: &str| -> Result<String, StoreError> { row.try_get(column).map_err(StoreError::from) };
            let corrupt =
                |e: serde_json::Error| StoreError::CorruptRow { id: 0, reason: format!("hosts row {name}: {e}") };
            let events: i64 = row.try_get("events")?;
            Ok(Host {
                first_seen: time(row.try_get("first_seen")?),
                last_seen: time(row.try_get("last_seen")?),
                events: u64::try_from(events).unwrap_or(0),
                addresses: serde_json::from_str(&parse("addresses")?).map_err(corrupt)?,
                datasets: serde_json::from_str(&parse("datasets")?).map_err(corrupt)?,
                serials: serde_json::from_str(&parse("serials")?).map_err(corrupt)?,
                software: serde_json::from_str(&parse("software")?).map_err(corrupt)?,
                last_heartbeat: row.try_get::<Option<i64>, _>("last_heartbeat")?.map(time),
                last_backup: row.try_get::<Option<i64>, _>("last_backup")?.map(time),
                last_login_failure: row.try_get::<Option<i64>, _>("last_login_failure")?.map(time),
                last_restore: row.try_get::<Option<i64>, _>("last_restore")?.map(time),
                name,
            })
        })
        .collect()
}
