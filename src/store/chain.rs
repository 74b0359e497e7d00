//! The tamper-evident store: every committed batch of events carries a SHA-256 hash over the previous batch's hash
//! and each of its rows (id and every column, length-prefixed), so that [`verify`] finds a deleted, altered or
//! inserted event row anywhere and names the first batch that no longer matches. Retention prunes whole batches from
//! the old end and moves the chain's anchor (`chain_anchor`) to the last pruned batch's hash, which `verify` starts
//! from.
//!
//! What it proves: that the rows are the ones hsmwatch committed, in order, since the anchor. What it cannot: someone
//! with write access who recomputes every later hash; record the head hash `verify` prints elsewhere (a ticket, a
//! second system) to close that gap, as Luna's own audit log is verified against its HSM-held key.

use chrono::{DateTime, TimeZone, Utc};
use sha2::{Digest, Sha256};
use sqlx::{Row, SqliteConnection};

use super::columns::{line_and_fields, load_dictionaries, SELECT_COLUMNS, TYPED_COLUMNS, TYPED_ORIGINAL};
use super::compressed::Expander;
use super::{Reader, StoreError, WriteConn};

/// The hash the first batch of a new database links to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One row's columns, as bound on insert and as read back.
#[derive(Debug, Clone, Copy)]
pub struct RowImage<'a> {
    /// Row id.
    pub id: i64,
    /// ts, ts_digits, created, created_digits.
    pub times: [i64; 4],
    /// host, dataset, action, outcome, user_name, source_ip, format, original.
    pub typed: [Option<&'a str>; 8],
    /// raw.
    pub raw: Option<&'a [u8]>,
    /// fields, as stored (packed, or the JSON of rows stored before).
    pub fields: &'a [u8],
    /// message_at (hashed from scheme 2 on).
    pub message_at: Option<i64>,
}

/// How new batches hash their rows: 2 covers `message_at` too (see migration 0009); batches of scheme 1 are verified
/// as they were written.
pub const SCHEME: i64 = 2;

fn feed_bytes(hasher: &mut Sha256, bytes: Option<&[u8]>) {
    match bytes {
        None => hasher.update([0u8]),
        Some(bytes) => {
            hasher.update([1u8]);
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        }
    }
}

/// The hash of a batch, computed as its rows are inserted (or read back).
#[derive(Debug, Clone)]
pub struct BatchHasher {
    hasher: Sha256,
    rows: u64,
    scheme: i64,
}

impl BatchHasher {
    /// Starts a batch of the current [`SCHEME`] that links to `prev_hash`.
    pub fn new(prev_hash: &str) -> Self {
        Self::with_scheme(prev_hash, SCHEME)
    }

    /// Starts a batch hashed as `scheme` says (to verify batches stored by an earlier version).
    pub fn with_scheme(prev_hash: &str, scheme: i64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(prev_hash.as_bytes());
        BatchHasher { hasher, rows: 0, scheme }
    }

    /// Adds one row.
    pub fn row(&mut self, row: &RowImage) {
        self.hasher.update(row.id.to_le_bytes());
        for time in row.times {
            self.hasher.update(time.to_le_bytes());
        }
        for text in row.typed {
            feed_bytes(&mut self.hasher, text.map(str::as_bytes));
        }
        feed_bytes(&mut self.hasher, row.raw);
        feed_bytes(&mut self.hasher, Some(row.fields));
        if self.scheme >= 2 {
            feed_bytes(&mut self.hasher, row.message_at.map(i64::to_le_bytes).as_ref().map(|b| b.as_slice()));
        }
        self.rows += 1;
    }

    /// The hash, lower-case hex.
    pub fn finish(mut self) -> String {
        self.hasher.update(self.rows.to_le_bytes());
        self.hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The hash the next batch links to: the newest batch's, else the anchor's (on the event inserter's connection,
/// inside the batch's transaction).
pub fn head(conn: &rusqlite::Connection) -> rusqlite::Result<String> {
    use rusqlite::OptionalExtension;
    let newest =
        conn.query_row("SELECT hash FROM event_batches ORDER BY id DESC LIMIT 1", [], |row| row.get(0)).optional()?;
    match newest {
        Some(hash) => Ok(hash),
        None => Ok(conn
            .query_row("SELECT hash FROM chain_anchor WHERE id = 1", [], |row| row.get(0))
            .optional()?
            .unwrap_or_else(|| GENESIS.to_owned())),
    }
}

/// Records a committed batch (inside its transaction, on the event inserter's connection).
pub fn record(
    conn: &rusqlite::Connection,
    first_event_id: i64,
    last_event_id: i64,
    rows: u64,
    prev_hash: &str,
    hash: &str,
    stored_at: DateTime<Utc>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO event_batches (first_event_id, last_event_id, row_count, stored_at, prev_hash, hash, scheme) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(rusqlite::params![
        first_event_id,
        last_event_id,
        i64::try_from(rows).unwrap_or(i64::MAX),
        stored_at.timestamp_micros(),
        prev_hash,
        hash,
        SCHEME
    ])?;
    Ok(())
}

/// A batch record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Batch id.
    pub id: i64,
    /// First event row.
    pub first_event_id: i64,
    /// Last event row.
    pub last_event_id: i64,
    /// Rows committed.
    pub row_count: i64,
    /// When it was committed.
    pub stored_at: DateTime<Utc>,
    /// The hash it links to.
    pub prev_hash: String,
    /// Its hash.
    pub hash: String,
    /// How its rows are hashed ([`SCHEME`] for new batches).
    pub scheme: i64,
}

fn batch_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Batch, StoreError> {
    Ok(Batch {
        id: row.try_get("id")?,
        first_event_id: row.try_get("first_event_id")?,
        last_event_id: row.try_get("last_event_id")?,
        row_count: row.try_get("row_count")?,
        stored_at: Utc.timestamp_micros(row.try_get("stored_at")?).single().unwrap_or_default(),
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
        scheme: row.try_get("scheme")?,
    })
}

/// The chain's anchor: events up to `last_event_id` are outside the chain; the first batch links to `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// Last event outside the chain.
    pub last_event_id: i64,
    /// The hash the first batch links to.
    pub hash: String,
    /// Batches pruned so far.
    pub pruned_batches: i64,
    /// Events pruned so far.
    pub pruned_events: i64,
}

/// Reads the anchor.
pub async fn anchor(reader: &Reader) -> Result<Anchor, StoreError> {
    read_anchor(&mut *reader.connection().await?).await
}

async fn read_anchor(conn: &mut SqliteConnection) -> Result<Anchor, StoreError> {
    let row = sqlx::query("SELECT * FROM chain_anchor WHERE id = 1").fetch_one(&mut *conn).await?;
    Ok(Anchor {
        last_event_id: row.try_get("last_event_id")?,
        hash: row.try_get("hash")?,
        pruned_batches: row.try_get("pruned_batches")?,
        pruned_events: row.try_get("pruned_events")?,
    })
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Every batch matches.
    Intact {
        /// Batches checked.
        batches: u64,
        /// Events checked.
        events: u64,
        /// The newest batch's hash (record it elsewhere to detect a rewrite of the whole chain).
        head: String,
        /// Events stored before the chain existed, not covered.
        unchained: u64,
    },
    /// The first batch that does not match, and why.
    Broken {
        /// The batch (None: rows outside every batch).
        batch: Option<Batch>,
        /// What is wrong.
        reason: String,
    },
}

/// Checks the whole chain from its anchor: every batch links to the one before, holds exactly the rows it recorded,
/// and hashes to what it recorded; no event row lies outside the chain.
pub async fn verify(reader: &Reader) -> Result<Finding, StoreError> {
    let mut conn = reader.connection().await?;
    let conn = &mut *conn;
    // One read transaction: a consistent snapshot while the server goes on writing (WAL).
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    let finding = verify_snapshot(conn).await;
    let _ = sqlx::query("COMMIT").execute(&mut *conn).await;
    finding
}

async fn verify_snapshot(conn: &mut SqliteConnection) -> Result<Finding, StoreError> {
    let anchor = read_anchor(conn).await?;
    let mut prev_hash = anchor.hash.clone();
    let mut expected_first = anchor.last_event_id + 1;
    let (mut batches, mut events) = (0u64, 0u64);
    let mut after = 0i64;
    let mut expander = Expander::default();
    loop {
        let page = sqlx::query("SELECT * FROM event_batches WHERE id > ? ORDER BY id LIMIT 256")
            .bind(after)
            .fetch_all(&mut *conn)
            .await?;
        if page.is_empty() {
            break;
        }
        for row in &page {
            let batch = batch_from_row(row)?;
            after = batch.id;
            if let Some(reason) = check_batch(conn, &batch, &prev_hash, expected_first, &mut expander).await? {
                return Ok(Finding::Broken { batch: Some(batch), reason });
            }
            prev_hash = batch.hash.clone();
            expected_first = batch.last_event_id + 1;
            batches += 1;
            events += u64::try_from(batch.row_count).unwrap_or(0);
        }
    }
    let (stray, first_stray): (i64, Option<i64>) = sqlx::query_as("SELECT count(*), min(id) FROM events WHERE id >= ?")
        .bind(expected_first)
        .fetch_one(&mut *conn)
        .await?;
    if stray > 0 {
        return Ok(Finding::Broken {
            batch: None,
            reason: format!(
                "{stray} event row(s) from id {} on belong to no batch: inserted outside hsmwatch",
                first_stray.unwrap_or_default()
            ),
        });
    }
    let unchained: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE id <= ?")
        .bind(anchor.last_event_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Finding::Intact { batches, events, head: prev_hash, unchained: u64::try_from(unchained).unwrap_or(0) })
}

async fn check_batch(
    conn: &mut SqliteConnection,
    batch: &Batch,
    prev_hash: &str,
    expected_first: i64,
    expander: &mut Expander,
) -> Result<Option<String>, StoreError> {
    if batch.prev_hash != prev_hash {
        return Ok(Some(
            "does not link to the batch before it: a batch record was removed, inserted or rewritten".into(),
        ));
    }
    if batch.first_event_id != expected_first {
        return Ok(Some(format!(
            "starts at event {} where the chain continues at {expected_first}: batch records were altered",
            batch.first_event_id
        )));
    }
    let rows = sqlx::query(&format!("SELECT {SELECT_COLUMNS} FROM events WHERE id BETWEEN ? AND ? ORDER BY id"))
        .bind(batch.first_event_id)
        .bind(batch.last_event_id)
        .fetch_all(&mut *conn)
        .await?;
    load_dictionaries(&mut *conn, &rows, expander).await?;
    let mut hasher = BatchHasher::with_scheme(&batch.prev_hash, batch.scheme);
    let mut next_id = batch.first_event_id;
    let mut missing = None;
    for row in &rows {
        let id: i64 = row.try_get("id")?;
        if id != next_id && missing.is_none() {
            missing = Some(next_id);
        }
        next_id = id + 1;
        let (original, fields) = match line_and_fields(row, expander) {
            Ok(read) => read,
            Err(StoreError::CorruptRow { reason, .. }) => {
                return Ok(Some(format!("event {id} cannot be read ({reason}): it was altered")));
            }
            Err(error) => return Err(error),
        };
        let mut typed: Vec<Option<String>> = TYPED_COLUMNS[..TYPED_ORIGINAL]
            .iter()
            .map(|c| row.try_get::<Option<String>, _>(*c))
            .collect::<Result<_, _>>()?;
        typed.push(original);
        let raw: Option<Vec<u8>> = row.try_get("raw")?;
        let message_at: Option<i64> = row.try_get("message_at")?;
        if message_at.is_some() && batch.scheme < 2 {
            // Its hash would not cover the offset, which changes the message read back.
            return Ok(Some(format!("event {id} has a message_at its batch's hash does not cover: it was altered")));
        }
        let typed: [Option<&str>; 8] = std::array::from_fn(|i| typed[i].as_deref());
        hasher.row(&RowImage {
            id,
            times: [
                row.try_get("ts")?,
                row.try_get("ts_digits")?,
                row.try_get("created")?,
                row.try_get("created_digits")?,
            ],
            typed,
            raw: raw.as_deref(),
            fields: &fields,
            message_at,
        });
    }
    if rows.len() as i64 != batch.row_count {
        let first_missing = missing.unwrap_or(next_id);
        return Ok(Some(format!(
            "holds {} event rows where {} were committed (first missing: event {first_missing}): rows were deleted",
            rows.len(),
            batch.row_count
        )));
    }
    if hasher.finish() != batch.hash {
        return Ok(Some("its events do not hash to the recorded value: an event row was altered".into()));
    }
    Ok(None)
}

/// Prunes the oldest batch committed before `cutoff` (never the newest batch, whose ids the next batch continues
/// from), with its events, moving the anchor to it; events stored before the chain existed and older than `cutoff` go
/// too, in chunks. One small transaction per call, so ingest waits at most for one; false when nothing was due.
pub async fn prune_oldest(conn: &mut WriteConn, cutoff: DateTime<Utc>) -> Result<bool, StoreError> {
    super::in_transaction(conn, async |conn| {
        let conn = &mut conn.0;
        let anchor = read_anchor(conn).await?;
        let legacy = sqlx::query(
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id <= ? AND created < ? ORDER BY id LIMIT 1000)",
        )
        .bind(anchor.last_event_id)
        .bind(cutoff.timestamp_micros())
        .execute(&mut *conn)
        .await?
        .rows_affected();
        let oldest = sqlx::query(
            "SELECT * FROM event_batches WHERE stored_at < ? AND id < (SELECT max(id) FROM event_batches) ORDER BY id LIMIT 1",
        )
        .bind(cutoff.timestamp_micros())
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = oldest else { return Ok(legacy > 0) };
        let batch = batch_from_row(&row)?;
        let deleted = sqlx::query("DELETE FROM events WHERE id BETWEEN ? AND ?")
            .bind(batch.first_event_id)
            .bind(batch.last_event_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM event_batches WHERE id = ?").bind(batch.id).execute(&mut *conn).await?;
        sqlx::query(
            "UPDATE chain_anchor SET last_event_id = ?, hash = ?, pruned_batches = pruned_batches + 1, \
             pruned_events = pruned_events + ? WHERE id = 1",
        )
        .bind(batch.last_event_id)
        .bind(&batch.hash)
        .bind(i64::try_from(deleted).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await?;
        super::search::forget_pruned(conn, batch.last_event_id).await?;
        Ok(true)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_every_column_and_the_link() {
        let row = RowImage {
            id: 7,
            times: [1, 0, 2, 6],
            typed: [
                Some("hsm-01"),
                Some("luna.lunash"),
                None,
                None,
                Some("admin"),
                None,
                Some("rfc3164"),
                Some("line"),
            ],
            raw: None,
            fields: b"{}",
            message_at: None,
        };
        let hash = |prev: &str, row: &RowImage| {
            let mut hasher = BatchHasher::new(prev);
            hasher.row(row);
            hasher.finish()
        };
        let base = hash(GENESIS, &row);
        assert_eq!(base.len(), 64);
        assert_ne!(base, hash("1", &row), "the link to the previous batch counts");
        assert_ne!(base, hash(GENESIS, &RowImage { id: 8, ..row }), "the row id counts");
        let moved = RowImage {
            typed: [
                Some("hsm-0"),
                Some("1luna.lunash"),
                None,
                None,
                Some("admin"),
                None,
                Some("rfc3164"),
                Some("line"),
            ],
            ..row
        };
        assert_ne!(base, hash(GENESIS, &moved), "length prefixes keep field boundaries");
        assert_ne!(base, hash(GENESIS, &RowImage { raw: Some(b""), ..row }), "an empty raw differs from none");
        assert_ne!(base, hash(GENESIS, &RowImage { message_at: Some(0), ..row }), "message_at counts");
        assert_ne!(
            hash(GENESIS, &RowImage { message_at: Some(1), ..row }),
            hash(GENESIS, &RowImage { message_at: Some(2), ..row })
        );
        let scheme_1 = |row: &RowImage| {
            let mut hasher = BatchHasher::with_scheme(GENESIS, 1);
            hasher.row(row);
            hasher.finish()
        };
        assert_ne!(scheme_1(&row), base, "schemes hash differently");
        assert_eq!(
            scheme_1(&row),
            "823a88a1da2c9cc00b5b1811c0df73ca6e1fae9ae7047fe64aca932b46b3a17a",
            "scheme 1 hashes as batches stored before message_at did (computed independently in Python)"
        );
    }
}
