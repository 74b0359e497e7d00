//! The search index on PostgreSQL (`event_grams`): the distinct trigrams of each run of up to 256 events a batch
//! stored, found in memory beside the batch's insert, so that a search reads the lines of a few candidate runs
//! instead of every line, and an insert adds a row per run instead of a posting per trigram of every line.

use sqlx::{Connection, PgConnection, Postgres, QueryBuilder};

use crate::store::search::{self, BLOCK_SHIFT};
use crate::store::StoreError;

/// Events per run at most.
const RUN: usize = 1 << BLOCK_SHIFT;

/// Indexes stored events given as (id, line) in id order, in the caller's transaction: runs of up to 256 events,
/// each from its first id to its last (the ids between belong to no other batch: batches are written one at a time).
pub(super) async fn index<'a>(
    conn: &mut PgConnection,
    events: impl IntoIterator<Item = (i64, Option<&'a str>)>,
) -> Result<(), StoreError> {
    let events: Vec<(i64, Option<&str>)> = events.into_iter().collect();
    let runs: Vec<(i64, i64, Vec<i64>)> = events
        .chunks(RUN)
        .map(|run| (run[0].0, run[run.len() - 1].0, search::trigram_keys(run.iter().filter_map(|(_, line)| *line))))
        .collect();
    if runs.is_empty() {
        return Ok(());
    }
    let mut insert = QueryBuilder::<Postgres>::new("INSERT INTO event_grams (first_id, last_id, grams) ");
    insert.push_values(runs, |mut row, (first, last, grams)| {
        row.push_bind(first).push_bind(last).push_bind(grams);
    });
    insert.build().execute(conn).await?;
    Ok(())
}

/// The id ranges that may hold a line with `needle`, newest first, or `None` when the index cannot narrow the search:
/// a needle shorter than three characters, or a string in more than [`search::MAX_CANDIDATE_BLOCKS`] runs (common:
/// reading lines newest first finds it soon).
pub(super) async fn candidates(conn: &mut PgConnection, needle: &str) -> Result<Option<Vec<(i64, i64)>>, StoreError> {
    let Some(keys) = search::needle_keys(needle) else { return Ok(None) };
    let mut transaction = conn.begin().await?;
    // The planner costs reading the runs' rows, not unpacking their arrays (stored apart, compressed): it would read
    // every run's array (measured: 12 s on 10M events) or walk them by first_id, rather than ask the trigram index.
    for setting in ["enable_seqscan", "enable_indexscan"] {
        sqlx::query(&format!("SET LOCAL {setting} = off")).execute(&mut *transaction).await?;
    }
    let ranges: Vec<(i64, i64)> =
        sqlx::query_as("SELECT first_id, last_id FROM event_grams WHERE grams @> $1 ORDER BY first_id DESC LIMIT $2")
            .bind(keys)
            .bind(search::MAX_CANDIDATE_BLOCKS as i64 + 1)
            .fetch_all(&mut *transaction)
            .await?;
    transaction.commit().await?;
    Ok((ranges.len() <= search::MAX_CANDIDATE_BLOCKS).then_some(ranges))
}

/// Removes the runs of events up to id `up_to` (retention pruned them).
pub(super) async fn prune(conn: &mut PgConnection, up_to: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM event_grams WHERE last_id <= $1").bind(up_to).execute(conn).await?;
    Ok(())
}
