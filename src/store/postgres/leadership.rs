//! Which collector leads: evaluates rules, records alerts and delivers them. The leader holds a lease in the
//! database (the database's clock, not the collectors'), renews it well within its length, and loses it when it
//! stops renewing: another collector takes it once it has run out, with the next term. The leader's writes (see
//! [`super::evaluation`]) name their term and fail in the same transaction when the lease is no longer theirs, so a leader
//! that paused past its lease cannot undo its successor's work.

use std::time::Duration;

use chrono::{DateTime, Utc};

use sqlx::pool::PoolConnection;
use sqlx::Postgres;

use super::PgStore;
use crate::store::query::StoredEvent;
use crate::store::tables::Tables;
use crate::store::{Backend, EvaluationConn, StoreError, TableConn};

/// The lease as one collector sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lead {
    /// This process leads, in `term`, until `until` unless it renews.
    Leading {
        /// Its term: one more than its predecessor's.
        term: i64,
        /// When the lease runs out.
        until: DateTime<Utc>,
    },
    /// Another process leads.
    Following {
        /// The leader: collector name and instance.
        holder: String,
        /// When its lease runs out, unless it renews.
        until: DateTime<Utc>,
    },
}

/// Takes a free or run-out lease (the next term) or renews this holder's own (the same term), atomically.
const TAKE_OR_RENEW: &str = "INSERT INTO leadership (only_row, holder, term, lease_until) \
     VALUES (1, $1, 1, now() + make_interval(secs => $2)) \
     ON CONFLICT (only_row) DO UPDATE SET holder = EXCLUDED.holder, \
         term = CASE WHEN leadership.holder = EXCLUDED.holder THEN leadership.term ELSE leadership.term + 1 END, \
         lease_until = EXCLUDED.lease_until \
     WHERE leadership.holder = EXCLUDED.holder OR leadership.lease_until < now() \
     RETURNING term, (extract(epoch FROM lease_until) * 1000000)::bigint";

/// A time the database gave in microseconds since the epoch.
fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

impl PgStore {
    /// Takes the lead for `lease`, or renews it, if nobody else holds it; else says who does.
    pub async fn try_lead(&self, lease: Duration) -> Result<Lead, StoreError> {
        let taken: Option<(i64, i64)> = sqlx::query_as(TAKE_OR_RENEW)
            .bind(self.holder())
            .bind(lease.as_secs_f64())
            .fetch_optional(&self.pool)
            .await?;
        if let Some((term, until)) = taken {
            return Ok(Lead::Leading { term, until: from_micros(until) });
        }
        let (holder, until): (String, i64) =
            sqlx::query_as("SELECT holder, (extract(epoch FROM lease_until) * 1000000)::bigint FROM leadership")
                .fetch_one(&self.pool)
                .await?;
        Ok(Lead::Following { holder, until: from_micros(until) })
    }

    /// Gives the lead up, if this process holds it (a clean stop: the next collector need not wait for the lease).
    pub async fn resign(&self) -> Result<(), StoreError> {
        sqlx::query("UPDATE leadership SET lease_until = now() - interval '1 second' WHERE holder = $1")
            .bind(self.holder())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A connection for writing as the leader of `term`: each write transaction on it first checks the term.
    pub async fn leader_connection(&self, term: i64) -> Result<LeaderConn, StoreError> {
        Ok(LeaderConn { conn: self.pool.acquire().await?, holder: self.holder(), term })
    }
}

/// A connection of the leader of a term: every write transaction on it first checks that this process still holds
/// the lease in that term, and fails with [`StoreError::NotLeader`] when it does not.
pub struct LeaderConn {
    conn: PoolConnection<Postgres>,
    holder: String,
    term: i64,
}

impl LeaderConn {
    /// The term it writes in.
    pub fn term(&self) -> i64 {
        self.term
    }
}

impl TableConn for LeaderConn {
    fn tables(&mut self) -> Tables<'_> {
        self.conn.tables()
    }

    fn backend(&self) -> Backend {
        self.conn.backend()
    }

    /// The lease row stays locked (shared) until the transaction ends, so no successor's term begins in between.
    async fn fence(&mut self) -> Result<(), StoreError> {
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT term FROM leadership WHERE holder = $1 AND term = $2 AND lease_until > now() FOR SHARE",
        )
        .bind(&self.holder)
        .bind(self.term)
        .fetch_optional(&mut *self.conn)
        .await?;
        held.map(|_| ()).ok_or(StoreError::NotLeader { term: self.term })
    }
}

impl EvaluationConn for LeaderConn {
    async fn events_after(&mut self, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let events = super::events::events_after(&mut self.conn, after, limit).await?;
        Ok(events.into_iter().map(Into::into).collect())
    }
}
