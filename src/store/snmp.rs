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
    if reader.postgres_pool().is_some() {
        // A shared database holds no SNMP state: the configuration refuses SNMP with it.
        return Ok(Vec::new());
    }
    let mut conn = reader.connection().await?;
    Ok(sqlx::query_as("SELECT target, state FROM snmp_state").fetch_all(&mut *conn).await?)
}

/// The trap listener's SNMPv3 engine ID and its boot count, counting this start: made with `new_id` on first use.
pub async fn engine_boot(conn: &mut WriteConn, new_id: &[u8]) -> Result<(Vec<u8>, i64), StoreError> {
    let mut transaction = sqlx::Connection::begin(&mut conn.0).await?;
    sqlx::query("INSERT OR IGNORE INTO snmp_engine (only_row, engine_id, boots) VALUES (1, ?, 0)")
        .bind(new_id)
        .execute(&mut *transaction)
        .await?;
    let row: (Vec<u8>, i64) =
        sqlx::query_as("UPDATE snmp_engine SET boots = boots + 1 WHERE only_row = 1 RETURNING engine_id, boots")
            .fetch_one(&mut *transaction)
            .await?;
    transaction.commit().await?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_engine_id_is_made_once_and_its_boots_count_every_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = crate::store::open_writer(&path).await.unwrap();
        assert_eq!(super::engine_boot(&mut conn, b"first").await.unwrap(), (b"first".to_vec(), 1));
        drop(conn);
        let mut conn = crate::store::open_writer(&path).await.unwrap();
        assert_eq!(super::engine_boot(&mut conn, b"second").await.unwrap(), (b"first".to_vec(), 2));
    }
}
