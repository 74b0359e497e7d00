//! The tamper-evident chain in PostgreSQL: the records SQLite's store keeps ([`crate::store::chain`]), written by
//! every collector in commit order (each batch's record in its transaction, under the write lock), checked by the same
//! walk, and pruned by retention together with whole months of events.

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, Row};

use crate::store::chain::{self, read_anchor, read_head, AnchorState, ChainSource, Finding, Sealed, StoredRow, SCHEME};
use crate::store::columns::SELECT_COLUMNS;
use crate::store::StoreError;

/// Checks the chain of the database behind `pool` (see [`chain::verify`]), in one snapshot while collectors write.
pub async fn verify(pool: &sqlx::PgPool) -> Result<Finding, StoreError> {
    let mut conn = pool.acquire().await?;
    let mut transaction = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *transaction).await?;
    let finding = chain::verify_source(&mut PgChain { conn: &mut transaction }).await;
    transaction.commit().await?;
    finding
}

/// PostgreSQL's chain, on a connection inside a snapshot.
struct PgChain<'c> {
    conn: &'c mut PgConnection,
}

impl ChainSource for PgChain<'_> {
    const IDS_HAVE_GAPS: bool = true;
    type Conn = PgConnection;

    fn conn(&mut self) -> &mut PgConnection {
        self.conn
    }

    async fn rows(&mut self, first: i64, last: i64) -> Result<Vec<Result<StoredRow, String>>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {SELECT_COLUMNS} FROM events WHERE id BETWEEN $1 AND $2 ORDER BY id"))
            .bind(first)
            .bind(last)
            .fetch_all(&mut *self.conn)
            .await?;
        rows.iter().map(|row| super::events::stored_row(row).map(Ok)).collect()
    }
}

/// The chain's head now: the hash a batch committed next links to (inside the batch's transaction, under the write
/// lock).
pub(super) async fn link(conn: &mut PgConnection) -> Result<String, StoreError> {
    match read_head(conn).await? {
        Some(head) => Ok(head.hash),
        None => Ok(read_anchor(conn).await?.state.hash),
    }
}

/// Appends the record of a batch whose rows were stored with ids `first..=last` and hash (linked to `prev_hash`) to
/// the sealed content.
pub(super) async fn append_events(
    conn: &mut PgConnection,
    first: i64,
    last: i64,
    prev_hash: &str,
    sealed: &Sealed,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO event_batches (first_event_id, last_event_id, row_count, stored_at, prev_hash, hash, scheme, kind) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0)",
    )
    .bind(first)
    .bind(last)
    .bind(sealed.row_count)
    .bind(sealed.stored_at)
    .bind(prev_hash)
    .bind(&sealed.hash)
    .bind(SCHEME)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What pruning the chain before a time found: the records to remove and where the anchor goes.
pub(super) struct Prunable {
    /// The newest record to remove.
    pub last_record: i64,
    /// The anchor afterwards.
    pub anchor: AnchorState,
    /// The anchor before.
    pub before: AnchorState,
}

/// The records before the first batch of events committed at or after `cutoff` (a prefix of the chain, with the prune
/// records among them; never the newest batch of events, whose ids the next one continues from) and the anchor after
/// them; `None` when none is due.
pub(super) async fn prunable(conn: &mut PgConnection, cutoff: DateTime<Utc>) -> Result<Option<Prunable>, StoreError> {
    let before = read_anchor(conn).await?.state;
    let row = sqlx::query(
        "WITH bound AS (SELECT least( \
             (SELECT coalesce(min(id), 9223372036854775807) FROM event_batches WHERE stored_at >= $1 AND kind = 0), \
             (SELECT coalesce(max(id), 0) FROM event_batches WHERE kind = 0)) AS below) \
         SELECT max(id) AS last_record, max(last_event_id) FILTER (WHERE kind = 0) AS last_event, \
                count(*) FILTER (WHERE kind = 0) AS batches, coalesce(sum(row_count), 0)::int8 AS events \
         FROM event_batches, bound WHERE id < bound.below",
    )
    .bind(cutoff.timestamp_micros())
    .fetch_one(&mut *conn)
    .await?;
    let Some(last_record) = row.try_get::<Option<i64>, _>("last_record")? else { return Ok(None) };
    let hash: String = sqlx::query_scalar("SELECT hash FROM event_batches WHERE id = $1")
        .bind(last_record)
        .fetch_one(&mut *conn)
        .await?;
    let anchor = AnchorState {
        last_event_id: row.try_get::<Option<i64>, _>("last_event")?.unwrap_or(before.last_event_id),
        hash,
        pruned_batches: before.pruned_batches + row.try_get::<i64, _>("batches")?,
        pruned_events: before.pruned_events + row.try_get::<i64, _>("events")?,
    };
    Ok(Some(Prunable { last_record, anchor, before }))
}

/// Removes the records up to `prunable.last_record` and the events they held that are still there, moves the anchor
/// and appends the prune record that states where (in the retention's transaction, after it dropped whole months).
pub(super) async fn prune(conn: &mut PgConnection, prunable: &Prunable) -> Result<(), StoreError> {
    let (after, up_to) = (prunable.before.last_event_id, prunable.anchor.last_event_id);
    sqlx::query("DELETE FROM event_copies WHERE event_id > $1 AND event_id <= $2")
        .bind(after)
        .bind(up_to)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM events WHERE id > $1 AND id <= $2").bind(after).bind(up_to).execute(&mut *conn).await?;
    super::grams::prune(conn, up_to).await?;
    sqlx::query("DELETE FROM event_batches WHERE id <= $1").bind(prunable.last_record).execute(&mut *conn).await?;
    chain::set_anchor(conn, &prunable.anchor).await?;
    chain::append_prune(conn, &prunable.anchor).await
}
