//! The `rule_state` and `rule_cursor` tables: the rule engine's state per rule and group, and the id of the last event
//! evaluated.

use crate::store::{StoreError, TableConn};

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
pub async fn load(conn: &mut impl TableConn) -> Result<Vec<SavedRow>, StoreError> {
    let rows: Vec<StoredRow> = sqlx::query_as("SELECT rule_id, rule_hash, group_key, state FROM rule_state")
        .fetch_all(&mut conn.tables())
        .await?;
    Ok(rows.into_iter().map(saved_row).collect())
}

/// Writes changed state (inside the caller's transaction).
pub async fn save(conn: &mut impl TableConn, changes: &[StateChange]) -> Result<(), StoreError> {
    for change in changes {
        match &change.state {
            Some(state) => {
                sqlx::query(
                    "INSERT INTO rule_state (rule_id, rule_hash, group_key, state) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (rule_id, group_key) DO UPDATE SET rule_hash = excluded.rule_hash, \
                     state = excluded.state",
                )
                .bind(&change.rule_id)
                .bind(hash_text(change.rule_hash))
                .bind(&change.key)
                .bind(state)
                .execute(&mut conn.tables())
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM rule_state WHERE rule_id = $1 AND group_key = $2")
                    .bind(&change.rule_id)
                    .bind(&change.key)
                    .execute(&mut conn.tables())
                    .await?;
            }
        }
    }
    Ok(())
}

/// The id of the last event evaluated.
pub async fn cursor(conn: &mut impl TableConn) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT last_event_id FROM rule_cursor WHERE id = 1").fetch_one(&mut conn.tables()).await?)
}

/// Moves the cursor (inside the caller's transaction).
pub async fn set_cursor(conn: &mut impl TableConn, last_event_id: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE rule_cursor SET last_event_id = $1 WHERE id = 1 AND last_event_id < $1")
        .bind(last_event_id)
        .execute(&mut conn.tables())
        .await?;
    Ok(())
}

/// The id of the newest stored event (0 when there is none).
pub async fn newest_event(conn: &mut impl TableConn) -> Result<i64, StoreError> {
    let newest: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM events").fetch_one(&mut conn.tables()).await?;
    Ok(newest.unwrap_or(0))
}
