//! The `rule_state` and `rule_cursor` tables: the rule engine's state per rule and group, and the id of the last event
//! evaluated.

use crate::store::{StoreError, WriteConn};

/// One changed piece of rule state, to save: a group's state as JSON, or `None` when the group is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The rule.
    pub rule_id: String,
    /// Hash of the rule's source.
    pub rule_hash: u64,
    /// The group key (the empty key for the rule's own row).
    pub key: String,
    /// The state, or `None` to delete it.
    pub state: Option<String>,
}

/// A saved row: rule id, rule hash, group key, state JSON.
pub type SavedRow = (String, u64, String, String);

/// A row as either backend stores it: rule id, rule hash in hex, group key, state JSON.
pub(crate) type StoredRow = (String, String, String, String);

/// A stored row with its rule hash read back.
pub(crate) fn saved_row((rule_id, hash, key, state): StoredRow) -> SavedRow {
    (rule_id, u64::from_str_radix(&hash, 16).unwrap_or(0), key, state)
}

/// A rule hash as it is stored.
pub(crate) fn hash_text(hash: u64) -> String {
    format!("{hash:016x}")
}

/// Every saved state row.
pub async fn load(conn: &mut WriteConn) -> Result<Vec<SavedRow>, StoreError> {
    let rows: Vec<StoredRow> =
        sqlx::query_as("SELECT rule_id, rule_hash, group_key, state FROM rule_state").fetch_all(&mut conn.0).await?;
    Ok(rows.into_iter().map(saved_row).collect())
}

/// Writes changed state (inside the caller's transaction).
pub async fn save(conn: &mut WriteConn, changes: &[StateChange]) -> Result<(), StoreError> {
    let conn = &mut conn.0;
    for change in changes {
        match &change.state {
            Some(state) => {
                sqlx::query(
                    "INSERT OR REPLACE INTO rule_state (rule_id, rule_hash, group_key, state) VALUES (?, ?, ?, ?)",
                )
                .bind(&change.rule_id)
                .bind(hash_text(change.rule_hash))
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
pub async fn cursor(conn: &mut WriteConn) -> Result<i64, StoreError> {
    let conn = &mut conn.0;
    Ok(sqlx::query_scalar("SELECT last_event_id FROM rule_cursor WHERE id = 1").fetch_one(&mut *conn).await?)
}

/// Moves the cursor (inside the caller's transaction).
pub async fn set_cursor(conn: &mut WriteConn, last_event_id: i64) -> Result<(), StoreError> {
    let conn = &mut conn.0;
    sqlx::query("UPDATE rule_cursor SET last_event_id = max(last_event_id, ?) WHERE id = 1")
        .bind(last_event_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The id of the newest stored event (0 when there is none).
pub async fn newest_event(conn: &mut WriteConn) -> Result<i64, StoreError> {
    let conn = &mut conn.0;
    let newest: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM events").fetch_one(&mut *conn).await?;
    Ok(newest.unwrap_or(0))
}
