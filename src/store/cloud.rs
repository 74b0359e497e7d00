//! The `cloud_state` and `recovery_state` tables: what the cloud inventory knows of each account's region between
//! reads (as the inventory's JSON), and which subjects are reported overdue for a backup or a restore.

use chrono::{DateTime, Utc};

use crate::store::{Reader, StoreError, WriteConn};

/// Every region's saved state: `(account, region, JSON)`.
pub async fn states(conn: &mut WriteConn) -> Result<Vec<(String, String, String)>, StoreError> {
    Ok(sqlx::query_as("SELECT account, region, state FROM cloud_state").fetch_all(&mut conn.0).await?)
}

/// Saves a region's state.
pub async fn save(
    conn: &mut WriteConn,
    account: &str,
    region: &str,
    state: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT OR REPLACE INTO cloud_state (account, region, state, updated_at) VALUES (?, ?, ?, ?)")
        .bind(account)
        .bind(region)
        .bind(state)
        .bind(at.timestamp_micros())
        .execute(&mut conn.0)
        .await?;
    Ok(())
}

/// Forgets a region's state (the collector's own account, saved before STS named it).
pub async fn forget(conn: &mut WriteConn, account: &str, region: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM cloud_state WHERE account = ? AND region = ?")
        .bind(account)
        .bind(region)
        .execute(&mut conn.0)
        .await?;
    Ok(())
}

/// Every region's saved state, read beside the server (the inventory, `hsmwatch cloud` and the dashboard show it).
pub async fn read_states(reader: &Reader) -> Result<Vec<(String, String, String)>, StoreError> {
    if reader.postgres_pool().is_some() {
        // A shared database holds no cloud state: the configuration refuses the cloud inventory with it.
        return Ok(Vec::new());
    }
    let mut conn = reader.connection().await?;
    Ok(sqlx::query_as("SELECT account, region, state FROM cloud_state ORDER BY account, region")
        .fetch_all(&mut *conn)
        .await?)
}

/// The subjects reported overdue.
pub async fn overdue(conn: &mut WriteConn) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT subject FROM recovery_state").fetch_all(&mut conn.0).await?;
    Ok(rows.into_iter().map(|(subject,)| subject).collect())
}

/// Records what became overdue and forgets what is not any more, in one transaction.
pub async fn set_overdue(
    conn: &mut WriteConn,
    became: &[String],
    ended: &[String],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    crate::store::in_transaction(conn, async |conn| {
        for subject in became {
            sqlx::query("INSERT OR REPLACE INTO recovery_state (subject, since) VALUES (?, ?)")
                .bind(subject)
                .bind(at.timestamp_micros())
                .execute(&mut conn.0)
                .await?;
        }
        for subject in ended {
            sqlx::query("DELETE FROM recovery_state WHERE subject = ?").bind(subject).execute(&mut conn.0).await?;
        }
        Ok(())
    })
    .await
}
