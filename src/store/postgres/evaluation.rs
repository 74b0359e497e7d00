//! What the leader's rule evaluation keeps in the shared database: how far it has gone (the rule cursor), the rule
//! engine's state per rule and group, and (through the shared table modules) the alerts it records and the deliveries
//! it queues. The leader writes them in transactions that check its term, so the next leader starts from exactly what
//! its predecessor had committed, and a deposed leader's late write changes nothing.

use super::leadership::LeaderConn;
use super::PgStore;
use crate::store::rule_state::{self, SavedRow, StateChange};
use crate::store::{in_transaction, PooledConn, StoreError, TableConn};

impl PgStore {
    /// A connection for the tables both backends hold alike (alerts, outbox, silences...), outside any term: what a
    /// person changes (an acknowledgement, a silence) and what any collector may write.
    pub async fn connection(&self) -> Result<PooledConn, StoreError> {
        Ok(PooledConn::Postgres(self.pool.acquire().await?))
    }

    /// How far rule evaluation has gone: the last event id evaluated.
    pub async fn rule_cursor(&self) -> Result<i64, StoreError> {
        rule_state::cursor(&mut self.connection().await?).await
    }

    /// Every saved rule state row.
    pub async fn rule_state(&self) -> Result<Vec<SavedRow>, StoreError> {
        rule_state::load(&mut self.connection().await?).await
    }

    /// Runs `work` in one transaction as the leader of `term`: refused ([`StoreError::NotLeader`]) and rolled back
    /// when this process no longer holds the lease in that term.
    pub async fn as_leader<T>(
        &self,
        term: i64,
        work: impl AsyncFnOnce(&mut LeaderConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        in_transaction(&mut self.leader_connection(term).await?, work).await
    }

    /// Saves an evaluation step as the leader of `term`: the changed rule state and the cursor at `last_event_id`,
    /// together.
    pub async fn save_evaluation(
        &self,
        term: i64,
        last_event_id: i64,
        changes: &[StateChange],
    ) -> Result<(), StoreError> {
        self.as_leader(term, async |conn: &mut LeaderConn| {
            rule_state::save(conn, changes).await?;
            sqlx::query("UPDATE rule_cursor SET last_event_id = $1, term = $2 WHERE id = 1")
                .bind(last_event_id)
                .bind(term)
                .execute(&mut conn.tables())
                .await?;
            Ok(())
        })
        .await
    }
}
