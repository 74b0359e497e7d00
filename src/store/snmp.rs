//! The `snmp_state` table: what the SNMP poller knows of each target between polls, as the poller's JSON.

use chrono::{DateTime, Utc};

use crate::store::{Reader, StoreError, WriteConn};

/// Every target's saved state: `(target name, JSON)`.
pub async fn states(conn: &mut WriteConn) -> Result<Vec<(String, String)>, StoreError> {
    Ok(sqlx::query_as("SELECT target, state FROM snmp_state").fetch_all(&mut conn.0).await?)
}

/// Saves a target's state.
pub async fn save(conn: &mut WriteConn, target: &str, state: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query("INSERT OR REPLACE INTO snmp_state (target, state, updated_at) VALUES (?, ?, ?)")
        .bind(target)
        .bind(state)
        .bind(at.timestamp_micros())
        .execute(&mut conn.0)
        .await?;
    Ok(())
}

/// Every target's saved state, read beside the server (the inventory shows it).
pub async fn read_states(reader: &Reader) -> Result<Vec<(String, String)>, StoreError> {
    let mut conn = reader.connection().await?;
    Ok(sqlx::query_as("SELECT target, state FROM snmp_state").fetch_all(&mut *conn).await?)
}
