//! The search index (`event_search`): which blocks of 256 consecutive events hold each trigram of their lines, so
//! that `contains` finds a rare string among millions of rows by reading a few blocks instead of every line.
//!
//! A block (rowid `id >> 8`) is indexed once all its ids exist, by the event inserter in the transaction of the batch
//! that completes it ([`index_blocks`]); the events after the last indexed block are read directly by a search. A
//! database from before the index is indexed a step at a time while the inserter is idle. Retention removes the
//! blocks it pruned.
//!
//! The block's distinct trigrams are found here and handed to FTS5 as words (each a number in hex, split by its
//! `ascii` tokenizer), not as the lines for its `trigram` tokenizer: a block repeats most of its trigrams many times,
//! and FTS5 spent three quarters of an import's CPU merging the repeats. The index is contentless and keeps no
//! positions (about 10 bytes an event), so it only names candidate blocks: the query checks each candidate row's line.

use std::collections::HashSet;
use std::fmt::Write;

use rusqlite::types::ValueRef;
use rusqlite::OptionalExtension;
use sqlx::SqliteConnection;

use super::compressed::Expander;
use super::{Reader, StoreError};

/// Events per block: `id >> BLOCK_SHIFT` is an event's block.
pub const BLOCK_SHIFT: u32 = 8;

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

/// A trigram as one number: three ASCII characters in 24 bits, any other three in 63 bits with the top bit set (so
/// the two forms never meet). ASCII letters are folded to lower case, as `LIKE` and `lower()` fold them.
fn trigram_key(a: char, b: char, c: char) -> u64 {
    let [a, b, c] = [a, b, c].map(|c| u64::from(c.to_ascii_lowercase()));
    if a < 0x80 && b < 0x80 && c < 0x80 {
        (a << 16) | (b << 8) | c
    } else {
        (1 << 63) | (a << 42) | (b << 21) | c
    }
}

/// Adds the trigrams of `text` to `keys`.
fn add_trigrams(text: &str, keys: &mut HashSet<u64, foldhash::fast::FixedState>) {
    if text.is_ascii() {
        // Bytes are characters here: a rolling 24-bit window, no decoding.
        let mut window = 0u64;
        for (at, byte) in text.bytes().enumerate() {
            window = ((window << 8) | u64::from(byte.to_ascii_lowercase())) & 0xff_ffff;
            if at >= 2 {
                keys.insert(window);
            }
        }
    } else {
        let chars: Vec<char> = text.chars().collect();
        keys.extend(chars.windows(3).map(|w| trigram_key(w[0], w[1], w[2])));
    }
}

/// The words FTS5 indexes for a block of lines: each distinct trigram once, in hex, separated by spaces.
pub fn block_words<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    let keys = distinct_trigrams(lines);
    let mut words = String::with_capacity(keys.len() * 8);
    for key in keys {
        let _ = write!(words, "{key:x} ");
    }
    words
}

/// The words ([`block_words`]) of each block that lies whole among `lines`, whose ids run from `first_id`: a large
/// batch's blocks are found from the lines in memory, beside the inserts, instead of read back after them.
pub fn whole_blocks(first_id: i64, lines: &[&str]) -> Vec<(i64, String)> {
    let size = 1i64 << BLOCK_SHIFT;
    let last_id = first_id + lines.len() as i64 - 1;
    // The first block that starts at or after `first_id`, up to the last that ends at or before `last_id`.
    let first_block = (first_id + size - 1) >> BLOCK_SHIFT;
    let end_block = (last_id + 1) >> BLOCK_SHIFT;
    (first_block..end_block)
        .map(|block| {
            let start = ((block << BLOCK_SHIFT) - first_id) as usize;
            (block, block_words(lines[start..start + size as usize].iter().copied()))
        })
        .collect()
}

/// The distinct trigrams of `lines`, as numbers ([`trigram_key`]'s bits as a signed 64-bit integer, as PostgreSQL's
/// `bigint` holds them), in no order.
pub fn trigram_keys<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<i64> {
    distinct_trigrams(lines).into_iter().map(|key| key as i64).collect()
}

/// The distinct trigrams of `lines`.
fn distinct_trigrams<'a>(lines: impl IntoIterator<Item = &'a str>) -> HashSet<u64, foldhash::fast::FixedState> {
    let mut keys = HashSet::with_capacity_and_hasher(8192, foldhash::fast::FixedState::default());
    for line in lines {
        add_trigrams(line, &mut keys);
    }
    keys
}

/// The trigrams a line holding `needle` must hold ([`trigram_keys`]' numbers, distinct), or `None` for a needle
/// shorter than three characters, which no trigram can find.
pub fn needle_keys(needle: &str) -> Option<Vec<i64>> {
    let chars: Vec<char> = needle.chars().collect();
    let mut keys: Vec<i64> = chars.windows(3).map(|w| trigram_key(w[0], w[1], w[2]) as i64).collect();
    keys.sort_unstable();
    keys.dedup();
    (!keys.is_empty()).then_some(keys)
}

/// The FTS5 query that finds the blocks holding every trigram of `needle`, or `None` for a needle shorter than three
/// characters, which no trigram can find.
pub fn match_expression(needle: &str) -> Option<String> {
    let words: Vec<String> = needle_keys(needle)?.into_iter().map(|key| format!("\"{:x}\"", key as u64)).collect();
    Some(words.join(" AND "))
}

/// The candidates for `needle`, or `None` when the index cannot narrow the search (a short needle, a string in more
/// than [`MAX_CANDIDATE_BLOCKS`] blocks, or as many blocks not yet indexed: a database from before the index).
pub async fn candidates(reader: &Reader, needle: &str) -> Result<Option<Candidates>, StoreError> {
    let Some(expression) = match_expression(needle) else { return Ok(None) };
    let mut conn = reader.connection().await?;
    let next_block: i64 =
        sqlx::query_scalar("SELECT next_block FROM search_cursor WHERE id = 1").fetch_one(&mut *conn).await?;
    let newest: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM events").fetch_one(&mut *conn).await?;
    if (newest.unwrap_or(0) >> BLOCK_SHIFT) - next_block > MAX_CANDIDATE_BLOCKS as i64 {
        return Ok(None);
    }
    let blocks: Vec<i64> = sqlx::query_scalar("SELECT rowid FROM event_search WHERE event_search MATCH ? LIMIT ?")
        .bind(&expression)
        .bind(MAX_CANDIDATE_BLOCKS as i64 + 1)
        .fetch_all(&mut *conn)
        .await?;
    if blocks.len() > MAX_CANDIDATE_BLOCKS {
        return Ok(None);
    }
    // Blocks the inserter indexed between the two reads lie in the tail already: named twice, their rows would be
    // read (and returned) twice.
    let ranges = blocks
        .iter()
        .filter(|block| **block < next_block)
        .map(|b| (b << BLOCK_SHIFT, ((b + 1) << BLOCK_SHIFT) - 1))
        .collect();
    Ok(Some(Candidates { ranges, tail: next_block << BLOCK_SHIFT }))
}

/// What [`index_blocks`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Indexed {
    /// Blocks indexed.
    pub blocks: i64,
    /// Complete blocks still waiting.
    pub waiting: i64,
}

/// Indexes complete blocks not yet indexed, at most `max_blocks` of them, on the inserter's connection inside the
/// caller's transaction; the words of a block in `ready` (ascending, from [`whole_blocks`]) are taken from there, the
/// others are read from the table.
pub(super) fn index_blocks(
    conn: &rusqlite::Connection,
    max_blocks: i64,
    expander: &mut Expander,
    ready: &[(i64, String)],
) -> Result<Indexed, StoreError> {
    let next: i64 = conn.query_row("SELECT next_block FROM search_cursor WHERE id = 1", [], |row| row.get(0))?;
    let newest: Option<i64> = conn.query_row("SELECT max(id) FROM events", [], |row| row.get(0))?;
    let pruned_up_to: i64 = conn
        .query_row("SELECT last_event_id FROM chain_anchor WHERE id = 1", [], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    // Complete blocks: every id of the block exists (the newest id is past its end); blocks retention pruned whole
    // are skipped.
    let complete = (newest.unwrap_or(0) + 1) >> BLOCK_SHIFT;
    let first = next.max((pruned_up_to + 1) >> BLOCK_SHIFT);
    let last = complete.min(first + max_blocks);
    let mut lines = conn.prepare_cached("SELECT original FROM events WHERE id BETWEEN ? AND ?")?;
    let mut insert = conn.prepare_cached("INSERT INTO event_search (rowid, trigrams) VALUES (?, ?)")?;
    for block in first..last {
        if let Ok(at) = ready.binary_search_by_key(&block, |(ready, _)| *ready) {
            insert.execute(rusqlite::params![block, ready[at].1])?;
            continue;
        }
        let mut originals: Vec<String> = Vec::with_capacity(1 << BLOCK_SHIFT);
        let mut rows = lines.query([block << BLOCK_SHIFT, ((block + 1) << BLOCK_SHIFT) - 1])?;
        while let Some(row) = rows.next()? {
            originals.push(match row.get_ref(0)? {
                ValueRef::Blob(compressed) => expander.expand(compressed)?.0,
                other => other.as_str().map_err(rusqlite::Error::from)?.to_owned(),
            });
        }
        if !originals.is_empty() {
            insert.execute(rusqlite::params![block, block_words(originals.iter().map(String::as_str))])?;
        }
    }
    if last > next {
        conn.execute("UPDATE search_cursor SET next_block = ? WHERE id = 1", [last])?;
    }
    Ok(Indexed { blocks: (last - first).max(0), waiting: complete - last })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{field, Event, Timestamp};
    use crate::store::query::{events, EventFilter};
    use crate::store::WriteConn;

    /// A database holding `count` events, line `n` being `line(n)`, stored in one batch (which indexes every complete
    /// block).
    async fn database(dir: &std::path::Path, count: usize, line: impl Fn(usize) -> String) -> (WriteConn, Reader) {
        let path = dir.join("s.db");
        let conn = crate::store::open_writer(&path).await.unwrap();
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
        let committed = crate::store::inserter::insert_batch(&mut inserter, &batch).unwrap();
        assert_eq!(committed.search_waiting, 0);
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
        crate::store::in_transaction(&mut conn, async |conn| forget_pruned(&mut conn.0, 300).await).await.unwrap();
        assert_eq!(candidates(&reader, "rare0010").await.unwrap().unwrap().ranges, []);
        assert_eq!(candidates(&reader, "rare0400").await.unwrap().unwrap().ranges, [(256, 511)]);
    }

    #[test]
    fn a_batch_gives_the_words_of_the_blocks_it_holds_whole() {
        let lines: Vec<String> = (200..800).map(|id| format!("event {id}")).collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        // Ids 200..=799: blocks 1 (256..=511) and 2 (512..=767) lie whole within; 0 and 3 do not.
        let blocks = whole_blocks(200, &lines);
        assert_eq!(blocks.iter().map(|(block, _)| *block).collect::<Vec<_>>(), [1, 2]);
        let sorted = |words: &str| {
            let mut words: Vec<&str> = words.split_whitespace().collect();
            words.sort_unstable();
            words.join(" ")
        };
        assert_eq!(sorted(&blocks[0].1), sorted(&block_words(lines[56..312].iter().copied())));
        assert_eq!(sorted(&blocks[1].1), sorted(&block_words(lines[312..568].iter().copied())));
        assert!(whole_blocks(1, &lines[..255]).is_empty(), "ids 1..=255: block 0 lacks id 0 and is read back");
        assert_eq!(whole_blocks(256, &lines[..256]).len(), 1);
    }

    #[test]
    fn needles_become_the_and_of_their_trigrams_in_the_words_of_the_blocks() {
        assert_eq!(match_expression("ab"), None);
        // "12x" and "p12" as code points, the ASCII letters folded.
        assert_eq!(match_expression("P12x"), Some("\"313278\" AND \"703132\"".into()));
        assert_eq!(match_expression("a\"bc"), Some("\"226263\" AND \"612262\"".into()));
        // Beyond ASCII: 21 bits a character, the top bit set; not folded (LIKE does not fold it either).
        let wide = (1u64 << 63) | (0xe4 << 42) | (0xe4 << 21) | 0xe4;
        assert_eq!(match_expression("ääää"), Some(format!("\"{wide:x}\"")));
        assert_ne!(match_expression("ÄÄÄ"), match_expression("äää"));
        let mut words: Vec<String> =
            block_words(["Abcd", "bcd", "xäy", "ab"]).split_whitespace().map(String::from).collect();
        words.sort();
        let mut expected = vec![
            "616263".to_owned(),
            "626364".to_owned(),
            format!("{:x}", (1u64 << 63) | (0x78 << 42) | (0xe4 << 21) | 0x79),
        ];
        expected.sort();
        assert_eq!(words, expected, "each distinct trigram once, none across lines");
    }
}
