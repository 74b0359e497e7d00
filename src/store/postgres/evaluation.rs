//! What the leader's rule evaluation keeps in the shared database: how far it has gone (the rule cursor) and the rule
//! engine's state per rule and group. Both are written together, in one transaction that checks the leader's term,
//! so the next leader starts from exactly what its predecessor had committed.

use sqlx::Connection;

use super::PgStore;
use crate::store::rule_state::{hash_text, saved_row, SavedRow, StateChange, StoredRow};
use crate::store::StoreError;

impl PgStore {
    /// How far rule evaluation has gone: the last event id evaluated.
    pub async fn rule_cursor(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT last_event_id FROM rule_cursor").fetch_one(&self.pool).await?)
    }

    /// Every saved rule state row.
    pub async fn rule_state(&self) -> Result<Vec<SavedRow>, StoreError> {
        let rows: Vec<StoredRow> =
            sqlx::query_as("SELECT rule_id, rule_hash, group_key, state FROM rule_state ORDER BY rule_id, group_key")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(saved_row).collect())
    }

    /// Saves an evaluation step as the leader of `term`: the changed rule state and the cursor at `last_event_id`,
    /// together; refused ([`StoreError::NotLeader`]) when this process no longer holds the lease in that term.
    pub async fn save_evaluation(
        &self,
        term: i64,
        last_event_id: i64,
        changes: &[StateChange],
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut transaction = conn.begin().await?;
        self.hold_term(&mut transaction, term).await?;
        for change in changes {
            match &change.state {
                Some(state) => {
                    sqlx::query(
                        "INSERT INTO rule_state (rule_id, rule_hash, group_key, state) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (rule_id, group_key) DO UPDATE SET rule_hash = EXCLUDED.rule_hash, \
                         state = EXCLUDED.state",
                    )
                    .bind(&change.rule_id)
                    .bind(hash_text(change.rule_hash))
                    .bind(&change.key)
                    .bind(state)
                    .execute(&mut *transaction)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM rule_state WHERE rule_id = $1 AND group_key = $2")
                        .bind(&change.rule_id)
                        .bind(&change.key)
                        .execute(&mut *transaction)
                        .await?;
                }
            }
        }
        sqlx::query("UPDATE rule_cursor SET last_event_id = $1, term = $2")
            .bind(last_event_id)
            .bind(term)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }
}
