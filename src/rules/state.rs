//! Saving and loading rule state and the evaluation cursor (`rule_state`, `rule_cursor`).

use sqlx::{Row, SqliteConnection};

use super::engine::StateChange;
use crate::store::StoreError;

/// A saved row: rule id, rule hash, group key, state JSON.
pub type SavedRow = (String, u64, String, String);

/// Every saved state row.
pub async fn load(conn: &mut SqliteConnection) -> Result<Vec<SavedRow>, StoreError> {
    let rows = sqlx::query("SELECT rule_id, rule_hash, group_key, state FROM rule_state").fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| {
            let hash: String = row.try_get("rule_hash")?;
            Ok((
                row.try_get("rule_id")?,
                u64::from_str_radix(&hash, 16).unwrap_or(0),
                row.try_get("group_key")?,
                row.try_get("state")?,
            ))
        })
        .collect()
}

/// Writes changed state (inside the caller's transaction).
pub async fn save(conn: &mut SqliteConnection, changes: &[StateChange]) -> Result<(), StoreError> {
    for change in changes {
        match &change.state {
            Some(state) => {
                sqlx::query(
                    "INSERT OR REPLACE INTO rule_state (rule_id, rule_hash, group_key, state) VALUES (?, ?, ?, ?)",
                )
                .bind(&change.rule_id)
                .bind(format!("{:016x}", change.rule_hash))
                .bind(&change.key)
                .bind(state)
                .execute(&mut *conn)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM rule_state WHERE rule_id = ? AND group_key = ?")
                    .bind(&change.rule_id)
                    .bind(&change.key)
                    .execute(&mut *conn)
                    .await?;
            }
        }
    }
    Ok(())
}

/// The id of the last event evaluated.
pub async fn cursor(conn: &mut SqliteConnection) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT last_event_id FROM rule_cursor WHERE id = 1").fetch_one(&mut *conn).await?)
}

/// Moves the cursor (inside the caller's transaction).
pub async fn set_cursor(conn: &mut SqliteConnection, last_event_id: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE rule_cursor SET last_event_id = max(last_event_id, ?) WHERE id = 1")
        .bind(last_event_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
