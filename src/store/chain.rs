//! The tamper-evident store: every committed batch of events carries a SHA-256 hash over the previous record's hash,
//! each of its rows (id and every column, length-prefixed) and, from scheme 3 on, the record's own columns, so that
//! [`verify`] finds a deleted, altered or inserted event row anywhere and names the first record that no longer
//! matches. Retention prunes whole batches from the old end, moves the chain's anchor (`chain_anchor`) to the last
//! pruned record's hash, and appends a prune record that states where it put the anchor: the anchor is part of the
//! chain, and an anchor moved by hand no longer verifies.
//!
//! What it proves: that the rows are the ones hsmwatch committed, in order, since the anchor, and that every record
//! removed from the old end was removed by a prune that is itself in the chain. What it cannot: someone with write
//! access who knows the format can recompute every later hash, or delete the oldest records and append a prune record
//! of their own. Both change the head hash, so a head kept elsewhere (the server logs it at every prune and every
//! `chain.head_interval`, `/metrics` shows it, `verify --json` prints it) catches them: compare the logged heads and
//! prunes with the chain's.

use chrono::{DateTime, TimeZone, Utc};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Row, SqliteConnection};

use super::columns::{line_and_fields, load_dictionaries, SELECT_COLUMNS, TYPED_COLUMNS, TYPED_ORIGINAL};
use super::compressed::Expander;
use super::{Reader, StoreError, TableConn, WriteConn};

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

/// How new records are hashed: 2 covers `message_at` too (migration 0009), 3 the record's own columns as well
/// (migration 0015); records of earlier schemes are verified as they were written.
pub const SCHEME: i64 = 3;

/// A chain record that holds a batch of events.
pub const KIND_EVENTS: i64 = 0;
/// A chain record of a prune: it holds no events and states where the prune moved the anchor.
pub const KIND_PRUNE: i64 = 1;

/// Where the chain starts, as the anchor holds it and as a prune record states it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AnchorState {
    /// Last event outside the chain.
    pub last_event_id: i64,
    /// The hash the first record links to.
    pub hash: String,
    /// Batches of events pruned so far.
    pub pruned_batches: i64,
    /// Events pruned so far.
    pub pruned_events: i64,
}

/// The columns of a record that its hash covers from scheme 3 on, besides its link and its rows.
#[derive(Debug, Clone, Copy)]
pub struct RecordFields<'a> {
    /// [`KIND_EVENTS`] or [`KIND_PRUNE`].
    pub kind: i64,
    /// First event row (a prune record: the anchor's last event).
    pub first_event_id: i64,
    /// Last event row (a prune record: the anchor's last event).
    pub last_event_id: i64,
    /// Rows it holds.
    pub row_count: i64,
    /// When it was committed, microseconds since the epoch.
    pub stored_at: i64,
    /// Its scheme.
    pub scheme: i64,
    /// What a prune record states.
    pub anchor: Option<&'a AnchorState>,
}

/// The hash of a scheme 3 record: its content hash (link and rows, [`BatchHasher`]) and its own columns.
pub fn record_hash(content: &str, fields: &RecordFields) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"hsmwatch chain record 3\0");
    hasher.update(content.as_bytes());
    for number in [fields.kind, fields.first_event_id, fields.last_event_id, fields.row_count, fields.stored_at] {
        hasher.update(number.to_le_bytes());
    }
    hasher.update(fields.scheme.to_le_bytes());
    match fields.anchor {
        None => hasher.update([0u8]),
        Some(anchor) => {
            hasher.update([1u8]);
            feed_bytes(&mut hasher, Some(anchor.hash.as_bytes()));
            for number in [anchor.last_event_id, anchor.pruned_batches, anchor.pruned_events] {
                hasher.update(number.to_le_bytes());
            }
        }
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

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

/// The record of a batch of events whose link and rows hash to `content`: its columns and its hash.
pub fn seal_events(
    first_event_id: i64,
    last_event_id: i64,
    rows: u64,
    content: &str,
    stored_at: DateTime<Utc>,
) -> Sealed {
    let fields = RecordFields {
        kind: KIND_EVENTS,
        first_event_id,
        last_event_id,
        row_count: i64::try_from(rows).unwrap_or(i64::MAX),
        stored_at: stored_at.timestamp_micros(),
        scheme: SCHEME,
        anchor: None,
    };
    Sealed { hash: record_hash(content, &fields), row_count: fields.row_count, stored_at: fields.stored_at }
}

/// A batch of events' record, as [`seal_events`] made it.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// Its hash: the chain's new head.
    pub hash: String,
    /// Rows it holds.
    pub row_count: i64,
    /// When it was committed, microseconds since the epoch.
    pub stored_at: i64,
}

/// Records a committed batch whose link and rows hash to `content` (inside its transaction, on the event inserter's
/// connection); returns the record's hash, the chain's new head.
pub fn record(
    conn: &rusqlite::Connection,
    first_event_id: i64,
    last_event_id: i64,
    rows: u64,
    prev_hash: &str,
    content: &str,
    stored_at: DateTime<Utc>,
) -> rusqlite::Result<String> {
    let sealed = seal_events(first_event_id, last_event_id, rows, content, stored_at);
    conn.prepare_cached(
        "INSERT INTO event_batches (first_event_id, last_event_id, row_count, stored_at, prev_hash, hash, scheme, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(rusqlite::params![
        first_event_id,
        last_event_id,
        sealed.row_count,
        sealed.stored_at,
        prev_hash,
        sealed.hash,
        SCHEME,
        KIND_EVENTS
    ])?;
    Ok(sealed.hash)
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
    /// [`KIND_EVENTS`] or [`KIND_PRUNE`].
    pub kind: i64,
    /// When it was committed, as stored (microseconds), which the hash covers.
    pub stored_at_micros: i64,
    /// What a prune record states (`None` when any of its columns is missing).
    pub anchor: Option<AnchorState>,
}

impl Batch {
    /// The columns its hash covers.
    fn fields(&self) -> RecordFields<'_> {
        RecordFields {
            kind: self.kind,
            first_event_id: self.first_event_id,
            last_event_id: self.last_event_id,
            row_count: self.row_count,
            stored_at: self.stored_at_micros,
            scheme: self.scheme,
            anchor: self.anchor.as_ref(),
        }
    }
}

fn batch_from_row(row: &AnyRow) -> Result<Batch, StoreError> {
    let stored_at_micros: i64 = row.try_get("stored_at")?;
    let anchor_hash: Option<String> = row.try_get("anchor_hash")?;
    let anchor_batches: Option<i64> = row.try_get("anchor_batches")?;
    let anchor_events: Option<i64> = row.try_get("anchor_events")?;
    let last_event_id: i64 = row.try_get("last_event_id")?;
    let anchor = match (anchor_hash, anchor_batches, anchor_events) {
        (Some(hash), Some(pruned_batches), Some(pruned_events)) => {
            Some(AnchorState { last_event_id, hash, pruned_batches, pruned_events })
        }
        _ => None,
    };
    Ok(Batch {
        id: row.try_get("id")?,
        first_event_id: row.try_get("first_event_id")?,
        last_event_id,
        row_count: row.try_get("row_count")?,
        stored_at: Utc.timestamp_micros(stored_at_micros).single().unwrap_or_default(),
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
        scheme: row.try_get("scheme")?,
        kind: row.try_get("kind")?,
        stored_at_micros,
        anchor,
    })
}

/// The chain's anchor: events up to `state.last_event_id` are outside the chain; the first record links to
/// `state.hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// Where the chain starts.
    pub state: AnchorState,
    /// Events up to this one were stored before the chain existed (not covered, not tampering).
    pub legacy_last_event_id: i64,
    /// Moved by an earlier version without a prune record: the server records one at its next start.
    pub adopt: bool,
}

/// Reads the anchor.
pub async fn anchor(reader: &Reader) -> Result<Anchor, StoreError> {
    read_anchor(&mut reader.table_connection().await?).await
}

pub(crate) async fn read_anchor<C: TableConn>(conn: &mut C) -> Result<Anchor, StoreError> {
    let row = sqlx::query("SELECT * FROM chain_anchor WHERE id = 1").fetch_one(&mut conn.tables()).await?;
    Ok(Anchor {
        state: AnchorState {
            last_event_id: row.try_get("last_event_id")?,
            hash: row.try_get("hash")?,
            pruned_batches: row.try_get("pruned_batches")?,
            pruned_events: row.try_get("pruned_events")?,
        },
        legacy_last_event_id: row.try_get("legacy_last_event_id")?,
        adopt: row.try_get::<i64, _>("adopt")? != 0,
    })
}

/// The chain's newest record: its id and hash (the head a copy kept elsewhere is compared with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The record's id.
    pub record: i64,
    /// Its hash.
    pub hash: String,
}

/// The head now, `None` before the first batch.
pub async fn head_of(reader: &Reader) -> Result<Option<Head>, StoreError> {
    read_head(&mut reader.table_connection().await?).await
}

pub(crate) async fn read_head<C: TableConn>(conn: &mut C) -> Result<Option<Head>, StoreError> {
    let row: Option<(i64, String)> = sqlx::query_as("SELECT id, hash FROM event_batches ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut conn.tables())
        .await?;
    Ok(row.map(|(record, hash)| Head { record, hash }))
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Every record matches.
    Intact {
        /// Batches of events checked.
        batches: u64,
        /// Events checked.
        events: u64,
        /// Prune records in the chain.
        prunes: u64,
        /// The newest record (record it elsewhere to detect a rewrite of the whole chain).
        head: Option<Head>,
        /// Where the chain starts.
        anchor: AnchorState,
        /// Events stored before the chain existed, not covered.
        unchained: u64,
        /// The anchor was moved by an earlier version that recorded no prune: taken as it is until the server
        /// records one.
        anchor_unrecorded: bool,
    },
    /// The first record that does not match, and why.
    Broken {
        /// The record (None: rows outside every record, or the anchor).
        batch: Option<Batch>,
        /// What is wrong.
        reason: String,
    },
}

/// Checks the whole chain from its anchor: every record links to the one before, holds exactly the rows it recorded
/// and hashes to what it recorded; the anchor is where the newest prune record put it; no event row lies outside the
/// chain but those stored before it existed. On either backend.
pub async fn verify(reader: &Reader) -> Result<Finding, StoreError> {
    if let Some(pool) = reader.postgres_pool() {
        return super::postgres::chain::verify(pool).await;
    }
    let mut conn = reader.connection().await?;
    let conn = &mut *conn;
    // One read transaction: a consistent snapshot while the server goes on writing (WAL).
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    let finding = verify_source(&mut SqliteChain { conn: &mut *conn, expander: Expander::default() }).await;
    let _ = sqlx::query("COMMIT").execute(&mut *conn).await;
    finding
}

/// One event row as stored, the line expanded: what the chain hashes, a copy to another database moves, and an event
/// is rebuilt from.
#[derive(Debug, Clone)]
pub struct StoredRow {
    /// Row id.
    pub id: i64,
    /// ts, ts_digits, created, created_digits.
    pub times: [i64; 4],
    /// host, dataset, action, outcome, user_name, source_ip, format, original.
    pub typed: [Option<String>; 8],
    /// raw.
    pub raw: Option<Vec<u8>>,
    /// fields, packed (or the JSON of rows stored before packing).
    pub fields: Vec<u8>,
    /// message_at.
    pub message_at: Option<i64>,
}

impl StoredRow {
    /// Its columns, to rebuild its event from.
    pub fn into_parts(self) -> super::columns::RowParts {
        let [host, dataset, action, outcome, user_name, source_ip, format, original] = self.typed;
        super::columns::RowParts {
            id: self.id,
            times: self.times,
            typed: [host, dataset, action, outcome, user_name, source_ip, format],
            original,
            raw: self.raw,
            fields: self.fields,
            message_at: self.message_at,
        }
    }

    /// The row as it is hashed.
    pub fn image(&self) -> RowImage<'_> {
        RowImage {
            id: self.id,
            times: self.times,
            typed: std::array::from_fn(|i| self.typed[i].as_deref()),
            raw: self.raw.as_deref(),
            fields: &self.fields,
            message_at: self.message_at,
        }
    }
}

/// A consistent snapshot of one database's chain and events, as [`verify_source`] reads it.
pub(crate) trait ChainSource {
    /// Whether event ids may skip numbers between and inside records (PostgreSQL's do: a copy of an event or a batch
    /// that failed uses ids up).
    const IDS_HAVE_GAPS: bool;
    /// The connection the chain's tables are read on.
    type Conn: TableConn;
    /// That connection.
    fn conn(&mut self) -> &mut Self::Conn;
    /// The event rows with ids `first..=last`, in id order; a row that cannot be read is the reason why.
    async fn rows(&mut self, first: i64, last: i64) -> Result<Vec<Result<StoredRow, String>>, StoreError>;
}

/// SQLite's chain, on a connection inside a read transaction.
struct SqliteChain<'c> {
    conn: &'c mut SqliteConnection,
    expander: Expander,
}

impl ChainSource for SqliteChain<'_> {
    const IDS_HAVE_GAPS: bool = false;
    type Conn = SqliteConnection;

    fn conn(&mut self) -> &mut SqliteConnection {
        self.conn
    }

    async fn rows(&mut self, first: i64, last: i64) -> Result<Vec<Result<StoredRow, String>>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {SELECT_COLUMNS} FROM events WHERE id BETWEEN ? AND ? ORDER BY id"))
            .bind(first)
            .bind(last)
            .fetch_all(&mut *self.conn)
            .await?;
        load_dictionaries(&mut *self.conn, &rows, &mut self.expander).await?;
        rows.iter().map(|row| sqlite_chain_row(row, &mut self.expander)).collect()
    }
}

/// Up to `limit` records after record `after`, in order.
async fn records_after<C: TableConn>(conn: &mut C, after: i64, limit: i64) -> Result<Vec<Batch>, StoreError> {
    let rows = sqlx::query("SELECT * FROM event_batches WHERE id > $1 ORDER BY id LIMIT $2")
        .bind(after)
        .bind(limit)
        .fetch_all(&mut conn.tables())
        .await?;
    rows.iter().map(batch_from_row).collect()
}

/// How many event rows have an id in `low..=high`, and the lowest of them.
async fn count_ids<C: TableConn>(conn: &mut C, low: i64, high: i64) -> Result<(i64, Option<i64>), StoreError> {
    Ok(sqlx::query_as("SELECT count(*), min(id) FROM events WHERE id BETWEEN $1 AND $2")
        .bind(low)
        .bind(high)
        .fetch_one(&mut conn.tables())
        .await?)
}

/// Up to `limit` event rows of a SQLite database after id `after`, in id order, as the chain hashes them (to copy
/// them elsewhere: a row that cannot be read is an error).
pub(crate) async fn sqlite_rows_after(
    conn: &mut SqliteConnection,
    after: i64,
    limit: i64,
    expander: &mut Expander,
) -> Result<Vec<StoredRow>, StoreError> {
    let rows = sqlx::query(&format!("SELECT {SELECT_COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT ?"))
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    load_dictionaries(&mut *conn, &rows, expander).await?;
    rows.iter()
        .map(|row| match sqlite_chain_row(row, expander)? {
            Ok(row) => Ok(row),
            Err(reason) => Err(StoreError::CorruptRow { id: row.try_get("id").unwrap_or(0), reason }),
        })
        .collect()
}

/// A SQLite row as the chain hashes it, or why it cannot be read.
fn sqlite_chain_row(
    row: &sqlx::sqlite::SqliteRow,
    expander: &mut Expander,
) -> Result<Result<StoredRow, String>, StoreError> {
    let id: i64 = row.try_get("id")?;
    let (original, fields) = match line_and_fields(row, expander) {
        Ok(read) => read,
        Err(StoreError::CorruptRow { reason, .. }) => return Ok(Err(format!("event {id} cannot be read ({reason})"))),
        Err(error) => return Err(error),
    };
    let mut typed: [Option<String>; 8] = Default::default();
    for (value, column) in typed.iter_mut().zip(&TYPED_COLUMNS[..TYPED_ORIGINAL]) {
        *value = row.try_get(*column)?;
    }
    typed[TYPED_ORIGINAL] = original;
    Ok(Ok(StoredRow {
        id,
        times: [row.try_get("ts")?, row.try_get("ts_digits")?, row.try_get("created")?, row.try_get("created_digits")?],
        typed,
        raw: row.try_get("raw")?,
        fields,
        message_at: row.try_get("message_at")?,
    }))
}

/// Where a walk of the chain has got to.
#[derive(Debug)]
struct Walk {
    prev_hash: String,
    expected_first: i64,
    batches: u64,
    events: u64,
    prunes: u64,
    latest_prune: Option<Batch>,
}

/// Walks the chain of `source` from its anchor (see [`verify`]).
pub(crate) async fn verify_source<S: ChainSource>(source: &mut S) -> Result<Finding, StoreError> {
    let anchor = read_anchor(source.conn()).await?;
    let mut walk = Walk {
        prev_hash: anchor.state.hash.clone(),
        expected_first: anchor.state.last_event_id + 1,
        batches: 0,
        events: 0,
        prunes: 0,
        latest_prune: None,
    };
    let mut after = i64::MIN;
    loop {
        let page = records_after(source.conn(), after, 256).await?;
        if page.is_empty() {
            break;
        }
        for batch in page {
            after = batch.id;
            let problem = match batch.kind {
                KIND_EVENTS => check_batch(source, &batch, &walk).await?,
                KIND_PRUNE => check_prune(&batch, &walk),
                other => Some(format!("is of no known kind ({other}): it was altered")),
            };
            if let Some(reason) = problem {
                return Ok(Finding::Broken { batch: Some(batch), reason });
            }
            walk.prev_hash = batch.hash.clone();
            if batch.kind == KIND_PRUNE {
                walk.prunes += 1;
                walk.latest_prune = Some(batch);
            } else {
                walk.expected_first = batch.last_event_id + 1;
                walk.batches += 1;
                walk.events += u64::try_from(batch.row_count).unwrap_or(0);
            }
        }
    }
    if let Some(broken) = stray_rows(source, &anchor, &walk).await? {
        return Ok(broken);
    }
    if let Some(broken) = misplaced_anchor(&anchor, walk.latest_prune.as_ref()) {
        return Ok(broken);
    }
    let unchained_up_to = anchor.legacy_last_event_id.min(anchor.state.last_event_id);
    let (unchained, _) = count_ids(source.conn(), i64::MIN, unchained_up_to).await?;
    Ok(Finding::Intact {
        batches: walk.batches,
        events: walk.events,
        prunes: walk.prunes,
        head: read_head(source.conn()).await?,
        anchor: anchor.state,
        unchained: u64::try_from(unchained).unwrap_or(0),
        anchor_unrecorded: anchor.adopt,
    })
}

/// Event rows that no record holds: after the last record, between records, before the first possible id, or in the
/// range the chain says was pruned (above what was stored before the chain existed, up to the anchor).
async fn stray_rows<S: ChainSource>(
    source: &mut S,
    anchor: &Anchor,
    walk: &Walk,
) -> Result<Option<Finding>, StoreError> {
    let (stray, first_stray) = count_ids(source.conn(), walk.expected_first, i64::MAX).await?;
    if stray > 0 {
        let reason = format!(
            "{stray} event row(s) from id {} on belong to no batch: inserted outside hsmwatch",
            first_stray.unwrap_or_default()
        );
        return Ok(Some(Finding::Broken { batch: None, reason }));
    }
    let (chained, _) = count_ids(source.conn(), anchor.state.last_event_id + 1, i64::MAX).await?;
    let stray = chained - i64::try_from(walk.events).unwrap_or(i64::MAX);
    if stray > 0 {
        let reason = format!(
            "{stray} event row(s) lie between the chain's batches and belong to none: inserted outside hsmwatch"
        );
        return Ok(Some(Finding::Broken { batch: None, reason }));
    }
    let below = count_ids(source.conn(), i64::MIN, 0).await?;
    let pruned = count_ids(source.conn(), anchor.legacy_last_event_id + 1, anchor.state.last_event_id).await?;
    let (stray, first_stray) = (below.0 + pruned.0, below.1.or(pruned.1));
    if stray > 0 {
        let reason = format!(
            "{stray} event row(s) from id {} on lie before the chain's first batch, where no row was stored or every \
             row was pruned: inserted outside hsmwatch",
            first_stray.unwrap_or_default()
        );
        return Ok(Some(Finding::Broken { batch: None, reason }));
    }
    Ok(None)
}

/// Whether the anchor is somewhere no prune put it.
fn misplaced_anchor(anchor: &Anchor, latest_prune: Option<&Batch>) -> Option<Finding> {
    if anchor.adopt {
        return None;
    }
    match latest_prune {
        Some(prune) if prune.anchor.as_ref() != Some(&anchor.state) => Some(Finding::Broken {
            batch: Some(prune.clone()),
            reason: format!(
                "the anchor (after event {}, hash {}) is not where this prune record put it (after event {}): records \
                 were removed and the anchor moved outside hsmwatch",
                anchor.state.last_event_id,
                short(&anchor.state.hash),
                prune.last_event_id
            ),
        }),
        Some(_) => None,
        None if anchor.state.hash != GENESIS
            || anchor.state.pruned_batches != 0
            || anchor.state.last_event_id != anchor.legacy_last_event_id =>
        {
            Some(Finding::Broken {
                batch: None,
                reason: format!(
                    "the anchor was moved (after event {}) but the chain holds no prune record: records were removed \
                     outside hsmwatch",
                    anchor.state.last_event_id
                ),
            })
        }
        None => None,
    }
}

/// The first characters of a hash, for messages.
fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Whether a record's stored hash is what its content and columns hash to.
fn hash_matches(batch: &Batch, content: String) -> bool {
    let expected = if batch.scheme >= 3 { record_hash(&content, &batch.fields()) } else { content };
    expected == batch.hash
}

fn check_prune(batch: &Batch, walk: &Walk) -> Option<String> {
    if batch.prev_hash != walk.prev_hash {
        return Some("does not link to the record before it: a record was removed, inserted or rewritten".into());
    }
    if batch.scheme < 3 || batch.row_count != 0 || batch.anchor.is_none() {
        return Some("is a prune record no version of hsmwatch writes: it was altered".into());
    }
    let content = BatchHasher::with_scheme(&batch.prev_hash, batch.scheme).finish();
    if !hash_matches(batch, content) {
        return Some("does not hash to the recorded value: the prune record was altered".into());
    }
    None
}

async fn check_batch<S: ChainSource>(source: &mut S, batch: &Batch, walk: &Walk) -> Result<Option<String>, StoreError> {
    if batch.prev_hash != walk.prev_hash {
        return Ok(Some("does not link to the record before it: a record was removed, inserted or rewritten".into()));
    }
    let starts_right = if S::IDS_HAVE_GAPS {
        batch.first_event_id >= walk.expected_first && batch.first_event_id <= batch.last_event_id
    } else {
        batch.first_event_id == walk.expected_first
    };
    if !starts_right {
        return Ok(Some(format!(
            "starts at event {} where the chain continues at {}: batch records were altered",
            batch.first_event_id, walk.expected_first
        )));
    }
    let rows = source.rows(batch.first_event_id, batch.last_event_id).await?;
    let mut hasher = BatchHasher::with_scheme(&batch.prev_hash, batch.scheme);
    let mut next_id = batch.first_event_id;
    let mut missing = None;
    for row in &rows {
        let row = match row {
            Ok(row) => row,
            Err(reason) => return Ok(Some(format!("{reason}: it was altered"))),
        };
        if row.id != next_id && missing.is_none() {
            missing = Some(next_id);
        }
        next_id = row.id + 1;
        if row.message_at.is_some() && batch.scheme < 2 {
            // Its hash would not cover the offset, which changes the message read back.
            return Ok(Some(format!(
                "event {} has a message_at its batch's hash does not cover: it was altered",
                row.id
            )));
        }
        hasher.row(&row.image());
    }
    if rows.len() as i64 != batch.row_count {
        let first_missing = if S::IDS_HAVE_GAPS {
            String::new()
        } else {
            format!(" (first missing: event {})", missing.unwrap_or(next_id))
        };
        let what = if (rows.len() as i64) < batch.row_count {
            "rows were deleted"
        } else {
            "rows were inserted outside hsmwatch"
        };
        return Ok(Some(format!(
            "holds {} event rows where {} were committed{first_missing}: {what}",
            rows.len(),
            batch.row_count
        )));
    }
    if !hash_matches(batch, hasher.finish()) {
        return Ok(Some("its events or its record do not hash to the recorded value: they were altered".into()));
    }
    Ok(None)
}

/// At most this many records are pruned in one transaction...
const PRUNE_RECORDS: i64 = 64;
/// ...and no more once they held this many events.
const PRUNE_EVENTS: i64 = 20_000;

/// Prunes the oldest records committed before `cutoff` (never the newest batch of events, whose ids the next batch
/// continues from) with their events, moves the anchor to the last of them, and appends a prune record that states
/// the new anchor; events stored before the chain existed and older than `cutoff` go too, in chunks. One small
/// transaction per call, so ingest waits at most for one; false when nothing was due.
pub async fn prune_oldest(conn: &mut WriteConn, cutoff: DateTime<Utc>) -> Result<bool, StoreError> {
    super::in_transaction(conn, async |conn| {
        let conn = &mut conn.0;
        let anchor = read_anchor(conn).await?;
        let legacy = sqlx::query(
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id <= ? AND created < ? ORDER BY id LIMIT 1000)",
        )
        .bind(anchor.state.last_event_id)
        .bind(cutoff.timestamp_micros())
        .execute(&mut *conn)
        .await?
        .rows_affected();
        let due = sqlx::query(
            "SELECT * FROM event_batches WHERE stored_at < $1 \
             AND id < (SELECT max(id) FROM event_batches WHERE kind = 0) ORDER BY id LIMIT $2",
        )
        .bind(cutoff.timestamp_micros())
        .bind(PRUNE_RECORDS)
        .fetch_all(&mut conn.tables())
        .await?;
        let mut removed: Vec<Batch> = Vec::new();
        let mut held = 0;
        for row in &due {
            if held >= PRUNE_EVENTS {
                break;
            }
            let batch = batch_from_row(row)?;
            if batch.kind == KIND_EVENTS {
                held += batch.row_count;
            }
            removed.push(batch);
        }
        let (Some(first), Some(last)) = (removed.first(), removed.last()) else { return Ok(legacy > 0) };
        let event_batches: Vec<&Batch> = removed.iter().filter(|b| b.kind == KIND_EVENTS).collect();
        let mut state = anchor.state.clone();
        let mut deleted = 0;
        if let (Some(oldest), Some(newest)) = (event_batches.first(), event_batches.last()) {
            deleted = sqlx::query("DELETE FROM events WHERE id BETWEEN ? AND ?")
                .bind(oldest.first_event_id)
                .bind(newest.last_event_id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            state.last_event_id = newest.last_event_id;
        }
        sqlx::query("DELETE FROM event_batches WHERE id BETWEEN ? AND ?")
            .bind(first.id)
            .bind(last.id)
            .execute(&mut *conn)
            .await?;
        state.hash = last.hash.clone();
        state.pruned_batches += event_batches.len() as i64;
        state.pruned_events += i64::try_from(deleted).unwrap_or(i64::MAX);
        set_anchor(conn, &state).await?;
        append_prune(conn, &state).await?;
        super::search::forget_pruned(conn, state.last_event_id).await?;
        Ok(true)
    })
    .await
}

/// Moves the anchor to `state`.
pub(crate) async fn set_anchor<C: TableConn>(conn: &mut C, state: &AnchorState) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE chain_anchor SET last_event_id = $1, hash = $2, pruned_batches = $3, pruned_events = $4, adopt = 0 \
         WHERE id = 1",
    )
    .bind(state.last_event_id)
    .bind(&state.hash)
    .bind(state.pruned_batches)
    .bind(state.pruned_events)
    .execute(&mut conn.tables())
    .await?;
    Ok(())
}

/// Appends the record of a prune that left the anchor at `state`, linked to the head.
pub(crate) async fn append_prune<C: TableConn>(conn: &mut C, state: &AnchorState) -> Result<(), StoreError> {
    let prev_hash = read_head(conn).await?.map_or_else(|| state.hash.clone(), |head| head.hash);
    let fields = RecordFields {
        kind: KIND_PRUNE,
        first_event_id: state.last_event_id,
        last_event_id: state.last_event_id,
        row_count: 0,
        stored_at: Utc::now().timestamp_micros(),
        scheme: SCHEME,
        anchor: Some(state),
    };
    let hash = record_hash(&BatchHasher::new(&prev_hash).finish(), &fields);
    sqlx::query(
        "INSERT INTO event_batches (first_event_id, last_event_id, row_count, stored_at, prev_hash, hash, scheme, kind, \
         anchor_hash, anchor_batches, anchor_events) VALUES ($1, $2, 0, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(fields.first_event_id)
    .bind(fields.last_event_id)
    .bind(fields.stored_at)
    .bind(&prev_hash)
    .bind(&hash)
    .bind(SCHEME)
    .bind(KIND_PRUNE)
    .bind(&state.hash)
    .bind(state.pruned_batches)
    .bind(state.pruned_events)
    .execute(&mut conn.tables())
    .await?;
    Ok(())
}

/// Records the anchor an earlier version moved without a prune record (`adopt`), so that it verifies from now on;
/// true when it did. Run by the server at start.
pub async fn adopt_anchor(conn: &mut WriteConn) -> Result<bool, StoreError> {
    super::in_transaction(conn, async |conn| {
        let conn = &mut conn.0;
        let anchor = read_anchor(conn).await?;
        if !anchor.adopt {
            return Ok(false);
        }
        set_anchor(conn, &anchor.state).await?;
        append_prune(conn, &anchor.state).await?;
        Ok(true)
    })
    .await
}

/// The anchor and the head, on the write connection (for the log after a prune).
pub async fn anchor_and_head(conn: &mut WriteConn) -> Result<(AnchorState, Option<Head>), StoreError> {
    let anchor = read_anchor(&mut conn.0).await?;
    Ok((anchor.state, read_head(&mut conn.0).await?))
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

    #[test]
    fn a_record_hash_covers_each_of_its_columns() {
        let anchor = AnchorState { last_event_id: 9, hash: GENESIS.into(), pruned_batches: 2, pruned_events: 9 };
        let base = RecordFields {
            kind: KIND_PRUNE,
            first_event_id: 9,
            last_event_id: 9,
            row_count: 0,
            stored_at: 1_000,
            scheme: SCHEME,
            anchor: Some(&anchor),
        };
        let hash = |fields: &RecordFields| record_hash("content", fields);
        let reference = hash(&base);
        let other_anchor = AnchorState { pruned_events: 10, ..anchor.clone() };
        let variants = [
            RecordFields { kind: KIND_EVENTS, ..base },
            RecordFields { first_event_id: 8, ..base },
            RecordFields { last_event_id: 10, ..base },
            RecordFields { row_count: 1, ..base },
            RecordFields { stored_at: 999, ..base },
            RecordFields { scheme: 4, ..base },
            RecordFields { anchor: None, ..base },
            RecordFields { anchor: Some(&other_anchor), ..base },
        ];
        for variant in &variants {
            assert_ne!(hash(variant), reference, "{variant:?}");
        }
        assert_ne!(record_hash("other content", &base), reference);
    }

    /// A database with `batches` batches of one event each, and its writer.
    async fn chained(dir: &std::path::Path, batches: usize) -> (std::path::PathBuf, super::super::Writer) {
        let path = dir.join("t.db");
        let writer = super::super::Writer::new(super::super::open_writer(&path).await.unwrap());
        let mut inserter =
            super::super::inserter::open_connection(&path, super::super::inserter::InserterSettings::default())
                .unwrap();
        let now = crate::event::Timestamp::from_clock(Utc::now());
        for _ in 0..batches {
            super::super::inserter::insert_batch(&mut inserter, &[crate::event::Event::new(now, now)]).unwrap();
        }
        (path, writer)
    }

    #[tokio::test]
    async fn an_anchor_an_earlier_version_moved_is_adopted_once_and_a_hand_moved_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = chained(dir.path(), 3).await;
        // What a prune by an earlier version left: the oldest batch gone, the anchor moved, no prune record.
        let trim = "DELETE FROM events WHERE id = 1; \
                    UPDATE chain_anchor SET (last_event_id, hash, pruned_batches, pruned_events) = \
                      (SELECT last_event_id, hash, 1, 1 FROM event_batches WHERE id = 1); \
                    DELETE FROM event_batches WHERE id = 1;";
        sqlx::raw_sql(trim).execute(&mut writer.lock().await.unwrap().0).await.unwrap();
        let reader = super::super::open_reader(&path).await.unwrap();
        let finding = verify(&reader).await.unwrap();
        assert!(matches!(&finding, Finding::Broken { batch: None, reason } if reason.contains("no prune record")));

        // Migration 0015 marks such an anchor for adoption: taken as it is, then recorded once.
        sqlx::query("UPDATE chain_anchor SET adopt = 1").execute(&mut writer.lock().await.unwrap().0).await.unwrap();
        let finding = verify(&reader).await.unwrap();
        assert!(matches!(finding, Finding::Intact { anchor_unrecorded: true, prunes: 0, .. }), "{finding:?}");
        assert!(adopt_anchor(&mut writer.lock().await.unwrap()).await.unwrap());
        assert!(!adopt_anchor(&mut writer.lock().await.unwrap()).await.unwrap(), "once");
        let finding = verify(&reader).await.unwrap();
        assert!(
            matches!(&finding, Finding::Intact { anchor_unrecorded: false, prunes: 1, batches: 2, events: 2, .. }),
            "{finding:?}"
        );

        // The next batch links to the prune record, and the chain goes on verifying.
        let mut inserter =
            super::super::inserter::open_connection(&path, super::super::inserter::InserterSettings::default())
                .unwrap();
        let now = crate::event::Timestamp::from_clock(Utc::now());
        super::super::inserter::insert_batch(&mut inserter, &[crate::event::Event::new(now, now)]).unwrap();
        let finding = verify(&reader).await.unwrap();
        assert!(matches!(&finding, Finding::Intact { batches: 3, prunes: 1, .. }), "{finding:?}");
    }
}
