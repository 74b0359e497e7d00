//! The search index (`event_search`): which blocks of 256 consecutive events hold each trigram of their lines, so
//! that `contains` finds a rare string among millions of rows by reading a few blocks instead of every line.
//!
//! A block (rowid `id >> 8`) is indexed once all its ids exist, by a background task that takes the write connection
//! for a few blocks at a time ([`index_some`]); the events after the last indexed block are read directly by a
//! search. Retention removes the blocks it pruned. The index is contentless and keeps no positions (about 10 bytes an
//! event), so it only names candidate blocks: the query checks each candidate row's line itself.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqliteConnection;
use tokio_util::sync::CancellationToken;

use super::{Reader, StoreError, WriteConn, Writer};
use crate::metrics::Counters;

/// Events per block: `id >> BLOCK_SHIFT` is an event's block.
pub const BLOCK_SHIFT: u32 = 8;

/// Blocks indexed per transaction: short enough that ingest never waits long for the write connection.
const BLOCKS_PER_STEP: i64 = 32;

/// More candidate blocks than this and a search reads lines in time order instead (the string is common: matches
/// are found quickly that way, and the candidate blocks would be most of the table).
pub const MAX_CANDIDATE_BLOCKS: usize = 1000;

/// The ids a search reads for a string: candidate blocks as id ranges, and every id from `tail` on (not yet indexed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidates {
    /// Inclusive id ranges of the candidate blocks, ascending.
    pub ranges: Vec<(i64, i64)>,
    /// The first id of the first block not yet indexed.
    pub tail: i64,
}

/// The FTS5 query that finds the blocks holding every trigram of `needle` (case-folded by the tokenizer), or `None`
/// for a needle shorter than three characters, which no trigram can find.
pub fn match_expression(needle: &str) -> Option<String> {
    let chars: Vec<char> = needle.chars().collect();
    if chars.len() < 3 {
        return None;
    }
    let mut trigrams: Vec<String> = chars.windows(3).map(|w| w.iter().collect::<String>().to_lowercase()).collect();
    trigrams.sort();
    trigrams.dedup();
    let quoted: Vec<String> = trigrams.iter().map(|t| format!("\"{}\"", t.replace('"', "\"\""))).collect();
    Some(quoted.join(" AND "))
}

/// The candidates for `needle`, or `None` when the index cannot narrow the search (a short needle, or a string in
/// more than [`MAX_CANDIDATE_BLOCKS`] blocks).
pub async fn candidates(reader: &Reader, needle: &str) -> Result<Option<Candidates>, StoreError> {
    let Some(expression) = match_expression(needle) else { return Ok(None) };
    let mut conn = reader.connection().await?;
    let next_block: i64 =
        sqlx::query_scalar("SELECT next_block FROM search_cursor WHERE id = 1").fetch_one(&mut *conn).await?;
    let blocks: Vec<i64> = sqlx::query_scalar("SELECT rowid FROM event_search WHERE event_search MATCH ? LIMIT ?")
        .bind(&expression)
        .bind(MAX_CANDIDATE_BLOCKS as i64 + 1)
        .fetch_all(&mut *conn)
        .await?;
    if blocks.len() > MAX_CANDIDATE_BLOCKS {
        return Ok(None);
    }
    let ranges = blocks.iter().map(|b| (b << BLOCK_SHIFT, ((b + 1) << BLOCK_SHIFT) - 1)).collect();
    Ok(Some(Candidates { ranges, tail: next_block << BLOCK_SHIFT }))
}

/// Indexes up to `max_blocks` complete blocks not yet indexed, in one transaction; returns how many it indexed and
/// how many complete blocks are still waiting.
pub async fn index_some(conn: &mut WriteConn, max_blocks: i64) -> Result<(i64, i64), StoreError> {
    super::in_transaction(conn, async |conn| index_blocks(&mut conn.0, max_blocks).await).await
}

async fn index_blocks(conn: &mut SqliteConnection, max_blocks: i64) -> Result<(i64, i64), StoreError> {
    let next: i64 =
        sqlx::query_scalar("SELECT next_block FROM search_cursor WHERE id = 1").fetch_one(&mut *conn).await?;
    let (newest, pruned_up_to): (Option<i64>, i64) =
        sqlx::query_as("SELECT (SELECT max(id) FROM events), (SELECT last_event_id FROM chain_anchor WHERE id = 1)")
            .fetch_one(&mut *conn)
            .await?;
    // Complete blocks: every id of the block exists (the newest id is past its end); blocks retention pruned whole
    // are skipped.
    let complete = (newest.unwrap_or(0) + 1) >> BLOCK_SHIFT;
    let first = next.max((pruned_up_to + 1) >> BLOCK_SHIFT);
    let last = complete.min(first + max_blocks);
    for block in first..last {
        sqlx::query(
            "INSERT INTO event_search (rowid, lines) \
             SELECT ?1, group_concat(original, char(10)) FROM events WHERE id BETWEEN ?2 AND ?3 \
             HAVING count(*) > 0",
        )
        .bind(block)
        .bind(block << BLOCK_SHIFT)
        .bind(((block + 1) << BLOCK_SHIFT) - 1)
        .execute(&mut *conn)
        .await?;
    }
    if last > next {
        sqlx::query("UPDATE search_cursor SET next_block = ? WHERE id = 1").bind(last).execute(&mut *conn).await?;
    }
    Ok((last - first.min(last), complete - last))
}

/// Removes the blocks whose every event retention pruned (ids up to `pruned_up_to`), inside the caller's
/// transaction.
pub(super) async fn forget_pruned(conn: &mut SqliteConnection, pruned_up_to: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM event_search WHERE rowid < ?")
        .bind((pruned_up_to + 1) >> BLOCK_SHIFT)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Keeps the index current until `shutdown`: indexes complete blocks a few at a time, taking the write connection for
/// each step only; logs progress while it works through a backlog (a database from before the index, an import).
pub async fn run(writer: Writer, counters: Arc<Counters>, shutdown: CancellationToken) {
    let mut last_report = tokio::time::Instant::now();
    let mut backlog_reported = false;
    loop {
        let step = index_some(&mut *writer.lock().await, BLOCKS_PER_STEP).await;
        if let Ok((_, waiting)) = step {
            counters.search_waiting.store((waiting as u64) << BLOCK_SHIFT, Ordering::Relaxed);
        }
        let pause = match step {
            Ok((_, 0)) => {
                if backlog_reported {
                    tracing::info!("search index complete");
                    backlog_reported = false;
                }
                Duration::from_millis(500)
            }
            Ok((_, waiting)) => {
                if waiting > 10 * BLOCKS_PER_STEP && last_report.elapsed() > Duration::from_secs(10) {
                    tracing::info!(
                        blocks_waiting = waiting,
                        events_waiting = waiting << BLOCK_SHIFT,
                        "building the search index"
                    );
                    last_report = tokio::time::Instant::now();
                    backlog_reported = true;
                }
                Duration::from_millis(5)
            }
            Err(error) => {
                tracing::warn!(%error, "search indexing failed; trying again");
                Duration::from_secs(5)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{field, Event, Timestamp};
    use crate::store::query::{events, EventFilter};

    /// A database holding `count` events, line `n` being `line(n)`; every complete block indexed.
    async fn database(dir: &std::path::Path, count: usize, line: impl Fn(usize) -> String) -> (WriteConn, Reader) {
        let path = dir.join("s.db");
        let mut conn = crate::store::open_writer(&path).await.unwrap();
        let mut inserter =
            crate::store::inserter::open_connection(&path, crate::store::inserter::InserterSettings::default())
                .unwrap();
        let now = Timestamp::from_clock(chrono::Utc::now());
        let batch: Vec<Event> = (0..count)
            .map(|n| {
                let mut event = Event::new(now, now);
                event.set(field::ORIGINAL, line(n));
                event
            })
            .collect();
        crate::store::inserter::insert_batch(&mut inserter, &batch).unwrap();
        while index_some(&mut conn, 7).await.unwrap().1 > 0 {}
        (conn, crate::store::open_reader(&path).await.unwrap())
    }

    fn containing(text: &str) -> EventFilter {
        EventFilter { contains: Some(text.into()), limit: 100, ..EventFilter::default() }
    }

    #[tokio::test]
    async fn a_rare_string_is_found_in_indexed_blocks_and_in_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        // Ids 1..=1000: blocks 0..=2 complete (ids up to 767), the rest of block 3 not yet indexed.
        let line = |n: usize| match n {
            300 => "partition create -partition P12x200 : admin".to_owned(),
            990 => "partition delete -partition p12X200 : admin".to_owned(),
            n => format!("line {n} of nothing in particular"),
        };
        let (_conn, reader) = database(dir.path(), 1000, line).await;
        let found = candidates(&reader, "p12x200").await.unwrap().unwrap();
        assert_eq!(found, Candidates { ranges: vec![(256, 511)], tail: 768 });
        let ids: Vec<i64> = events(&reader, &containing("p12x200")).await.unwrap().iter().map(|e| e.id).collect();
        assert_eq!(ids.iter().copied().collect::<std::collections::BTreeSet<_>>(), [301, 991].into());
        // Short needles are read without the index, and still found.
        assert_eq!(candidates(&reader, "12").await.unwrap(), None);
        assert_eq!(events(&reader, &containing("x2")).await.unwrap().len(), 2);
        // A string in no block: only the tail is read.
        assert_eq!(candidates(&reader, "absent").await.unwrap().unwrap().ranges, []);
        assert!(events(&reader, &containing("absent")).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn whole_words_are_not_found_inside_longer_words() {
        let dir = tempfile::tempdir().unwrap();
        let line = |n: usize| match n {
            10 => "login : sysadmin : Console".to_owned(),
            20 => "login : Admin : Console".to_owned(),
            30 => "Command: partition create -partition p1".to_owned(),
            40 => "Command: partition created? no: partition  create".to_owned(),
            n => format!("line {n}"),
        };
        let (_conn, reader) = database(dir.path(), 700, line).await;
        let words = |text: &str| EventFilter { word: Some(text.into()), limit: 100, ..EventFilter::default() };
        let ids = |found: Vec<crate::store::query::StoredEvent>| found.iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(events(&reader, &words("admin")).await.unwrap()), [21]);
        assert_eq!(ids(events(&reader, &words("partition create")).await.unwrap()), [31]);
        assert_eq!(ids(events(&reader, &containing("admin")).await.unwrap()).len(), 2);
        assert_eq!(ids(events(&reader, &words("p1")).await.unwrap()), [31]);
    }

    #[tokio::test]
    async fn pruned_blocks_leave_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, reader) = database(dir.path(), 600, |n| format!("rare{n:04} line")).await;
        assert_eq!(candidates(&reader, "rare0010").await.unwrap().unwrap().ranges, [(0, 255)]);
        super::super::in_transaction(&mut conn, async |conn| forget_pruned(&mut conn.0, 300).await).await.unwrap();
        assert_eq!(candidates(&reader, "rare0010").await.unwrap().unwrap().ranges, []);
        assert_eq!(candidates(&reader, "rare0400").await.unwrap().unwrap().ranges, [(256, 511)]);
    }

    #[test]
    fn needles_become_the_and_of_their_trigrams() {
        assert_eq!(match_expression("ab"), None);
        assert_eq!(match_expression("P12x"), Some("\"12x\" AND \"p12\"".into()));
        assert_eq!(match_expression("a\"bc"), Some("\"\"\"bc\" AND \"a\"\"b\"".into()));
        assert_eq!(match_expression("ääää"), Some("\"äää\"".into()));
    }
}
