//! The event inserter: a thread of its own, with a SQLite connection of its own, that commits the writer's batches of
//! events to the `events` table, the chain and the hourly activity; and an encoder thread before it, which prepares
//! the rows of batches queued ahead (an import's) while the inserter commits the ones before.
//!
//! Everything else in the store goes through sqlx; event rows do not, because they are the one write that happens for
//! every received line, on the writer's serial path. Through sqlx each bound value was copied into its argument list
//! and again into SQLite, a multi-row statement's text was built and hashed for every chunk, and each statement went
//! to sqlx's worker thread and back: per row, about as much CPU as SQLite's own insert (see `benches/README.md`).
//! Here rows are bound from the events' fields into cached statements of [`ROWS_PER_STATEMENT`] rows, on the thread
//! that owns the connection, and a batch crosses to it once (by way of the encoder thread) and back. It is the same SQLite library (sqlx links rusqlite's
//! `libsqlite3-sys`), on the same file, in WAL mode: the writer uses it between its own (sqlx) writes, never at the
//! same time.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, LazyLock, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::oneshot;

use super::activity::{self, Activity};
use super::columns::{row_values, Encoded, RowValues, BOUND_PER_ROW, INSERT_COLUMNS, TYPED_ORIGINAL};
use super::compressed::{self, Compressor, Dictionary, Expander};
use super::StoreError;
use super::{chain, search};
use crate::event::{field, Event};
use crate::metrics::Counters;

/// Rows per INSERT statement: a statement of several rows spends less of SQLite's time per row on running the
/// statement around them (measured on the events schema: 2.4 -> 1.9 us per row at 40 rows). Divides [`CHUNK_ROWS`].
const ROWS_PER_STATEMENT: usize = 32;

/// Values bound per row: the id and the insert columns.
const BOUND_WITH_ID: usize = 1 + BOUND_PER_ROW;

/// The statements of [`ROWS_PER_STATEMENT`] rows and of one row, written once (the statement cache is looked up by
/// their text).
static INSERT_SEVERAL: LazyLock<String> = LazyLock::new(|| insert_statement(ROWS_PER_STATEMENT));
static INSERT_ONE: LazyLock<String> = LazyLock::new(|| insert_statement(1));

/// The statement of `rows` rows; ids are bound, not left to SQLite (see [`insert_batch`]).
///
/// `OR ROLLBACK`: a failing row ends the whole transaction, which is what becomes of the batch anyway; with the
/// default (ABORT) SQLite keeps a statement journal so that it could undo just the statement's earlier rows, copying
/// every page a multi-row statement touches.
fn insert_statement(rows: usize) -> String {
    let row = format!("(?{})", ", ?".repeat(BOUND_PER_ROW));
    format!("INSERT OR ROLLBACK INTO events (id, {INSERT_COLUMNS}) VALUES {}", vec![row; rows].join(", "))
}

/// The inserter connection's page cache. A batch dirties pages all over the indexes; with SQLite's default 2 MB they
/// were written out to the WAL before the commit and read back within it (an import of 1M lines spent a third of its
/// time in those reads and writes).
const CACHE_BYTES: i64 = 64 << 20;

/// How the inserter's connection is set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct InserterSettings {
    /// Cap on the database's size in bytes (`PRAGMA max_page_count`): past it, inserts fail as on a full disk.
    pub max_size: Option<u64>,
    /// Whether commits checkpoint by themselves only past [`super::checkpoint::WRITER_FALLBACK_BYTES`] of WAL, not
    /// at SQLite's default 1000 pages: the server and an import checkpoint in the background
    /// ([`super::checkpoint::run`]).
    pub deferred_checkpoints: bool,
    /// Whether new rows are compressed ([`compressed`]): once the database holds this many events a dictionary is
    /// trained on them, and rows from then on are stored compressed. `None`: rows are stored as they are (rows
    /// compressed before are still read).
    pub compress_after: Option<i64>,
    /// Free space to leave on the database's filesystem: below it, inserts fail as on a full disk.
    pub min_free: Option<crate::config::units::FreeSpace>,
}

/// The inserter's connection, and what it compresses rows with.
pub struct InserterConn {
    conn: Connection,
    compression: Compression,
    /// A compressor with the newest dictionary for the encoder thread, left here when one is trained.
    encoder_compressor: EncoderCompressor,
    /// Expands compressed lines for the search index.
    expander: Expander,
    /// Where the database is (its filesystem's free space is checked before each batch), and its WAL.
    path: std::path::PathBuf,
    wal_path: std::path::PathBuf,
    /// Free space to leave.
    min_free: Option<crate::config::units::FreeSpace>,
    /// A write failed for lack of space: the WAL must be in the database file and truncated before the next append,
    /// or the next batch would take the space an operator freed before the WAL could be moved out of the way.
    recovering: bool,
}

impl std::fmt::Debug for InserterConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InserterConn").field("compression", &self.compression).finish_non_exhaustive()
    }
}

/// The compressor handed from the inserter's thread, which trains dictionaries, to the encoder's.
type EncoderCompressor = Arc<Mutex<Option<Compressor>>>;

/// Whether and how rows are compressed.
#[derive(Debug)]
struct Compression {
    /// No dictionary yet: the newest row id from which one is trained (`None`: compression is off).
    train_at: Option<i64>,
    /// The newest dictionary, once trained.
    compressor: Option<Compressor>,
}

/// Opens the inserter's connection on a database that [`super::open_writer`] has created and migrated: WAL (a
/// property of the file), `synchronous=NORMAL` and the busy timeout as on the other connections.
pub fn open_connection(path: &Path, settings: InserterSettings) -> Result<InserterConn, StoreError> {
    let open = |path: &Path| -> rusqlite::Result<Connection> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(super::BUSY_TIMEOUT)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Negative: KiB, not pages.
        conn.pragma_update(None, "cache_size", -(CACHE_BYTES >> 10))?;
        let page_size: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
        if settings.deferred_checkpoints {
            conn.pragma_update(None, "wal_autocheckpoint", super::checkpoint::fallback_pages(page_size))?;
        }
        if let Some(bytes) = settings.max_size {
            conn.pragma_update(None, "max_page_count", super::cap_pages(bytes, page_size))?;
        }
        Ok(conn)
    };
    let conn = open(path).map_err(|cause| StoreError::OpenInserter { path: path.to_owned(), cause })?;
    let dictionaries: Vec<(i64, Vec<u8>)> = conn
        .prepare("SELECT id, bytes FROM text_dictionaries ORDER BY id")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    // New rows are compressed with the newest dictionary.
    let newest = match (settings.compress_after, dictionaries.last()) {
        (Some(_), Some((id, bytes))) => Some(Arc::new(Dictionary::new(*id, bytes))),
        _ => None,
    };
    let train_at = settings.compress_after.filter(|_| newest.is_none()).map(|after| after.max(1));
    let compressor = || newest.as_ref().map(|dictionary| dictionary.compressor()).transpose();
    Ok(InserterConn {
        conn,
        compression: Compression { train_at, compressor: compressor()? },
        encoder_compressor: Arc::new(Mutex::new(compressor()?)),
        expander: Expander::new(dictionaries),
        path: path.to_owned(),
        wal_path: super::wal_path(path),
        min_free: settings.min_free,
        recovering: false,
    })
}

/// Rows of a sample below which training waits for more: zstd finds too little to learn from a few hundred lines.
const FEWEST_SAMPLES: usize = 1000;

/// Trains a dictionary on the newest packed rows and stores it, in a transaction of its own; `None` when there are
/// too few rows to train on yet.
fn train_dictionary(conn: &mut Connection) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
    let transaction = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let samples: Vec<Vec<u8>> = {
        let mut statement = transaction.prepare(
            "SELECT original, fields FROM events WHERE typeof(original) = 'text' AND typeof(fields) = 'blob' \
             ORDER BY id DESC LIMIT ?",
        )?;
        let rows = statement.query_map([compressed::SAMPLE_ROWS], |row| {
            let (original, fields): (String, Vec<u8>) = (row.get(0)?, row.get(1)?);
            let mut plain = Vec::new();
            compressed::plain_bytes(&original, &fields, &mut plain);
            Ok(plain)
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    if samples.len() < FEWEST_SAMPLES {
        return Ok(None);
    }
    let bytes = compressed::train(&samples)?;
    transaction.execute(
        "INSERT INTO text_dictionaries (trained_at, samples, bytes) VALUES (?, ?, ?)",
        rusqlite::params![chrono::Utc::now().timestamp_micros(), samples.len() as i64, bytes],
    )?;
    let id = transaction.last_insert_rowid();
    transaction.commit()?;
    Ok(Some((id, bytes)))
}

impl InserterConn {
    /// The bare SQLite connection, set up as the inserter's is: for measuring SQLite's own cost
    /// (`examples/sqlite_floor.rs`), not for storing events.
    pub fn into_sqlite(self) -> Connection {
        self.conn
    }

    /// Trains the dictionary once the database holds enough rows (see [`InserterSettings::compress_after`]); a failure
    /// is logged, and training tried again after as many rows again.
    fn train_when_due(&mut self, newest_id: i64) {
        let Some(due) = self.compression.train_at.filter(|due| newest_id >= *due) else { return };
        let started = Instant::now();
        let trained = train_dictionary(&mut self.conn).and_then(|dictionary| match dictionary {
            Some((id, bytes)) => {
                self.expander.add(id, &bytes);
                let dictionary = Arc::new(Dictionary::new(id, &bytes));
                Ok(Some((dictionary.compressor()?, dictionary.compressor()?)))
            }
            None => Ok(None),
        });
        match trained {
            Ok(Some((compressor, for_encoder))) => {
                tracing::info!(
                    took_ms = started.elapsed().as_millis() as u64,
                    "trained the compression dictionary on the newest stored lines; new rows are stored compressed"
                );
                self.compression = Compression { train_at: None, compressor: Some(compressor) };
                *self.encoder_compressor.lock().unwrap_or_else(PoisonError::into_inner) = Some(for_encoder);
            }
            Ok(None) => self.compression.train_at = Some(newest_id + due),
            Err(error) => {
                tracing::warn!(%error, "training the compression dictionary failed; rows stay uncompressed for now");
                self.compression.train_at = Some(newest_id + due);
            }
        }
    }
}

/// Rows per chunk handed from the preparing thread to the inserting one (a multiple of [`ROWS_PER_STATEMENT`], so that
/// only a batch's last chunk has rows that take the one-row statement).
const CHUNK_ROWS: usize = 4 * ROWS_PER_STATEMENT;

/// Batches from this size on are prepared on a thread beside the inserting one (and encoded ahead, when queued ahead);
/// for smaller ones a thread would cost more than it saves.
const PREPARE_BESIDE_FROM: usize = 256;

/// Inserts a batch in one `BEGIN IMMEDIATE` transaction, with its link in the tamper-evident chain and the search
/// index blocks it completes; returns the row id of its first event (the others follow in order). On error nothing of
/// the batch is stored.
///
/// Turning events into row values (packing and compressing their fields) and hashing them is a third of a row's cost;
/// for large batches it runs on a second thread, a chunk ahead of SQLite, and the search words of the blocks the batch
/// holds whole and its hourly activity ([`activity`]) on a third, so that this serial path does little but insert.
/// (A batch queued with [`Inserter::queue_after`] comes with its fields packed and compressed and its activity counted
/// by the encoder thread.) Once the database holds enough rows, the compression dictionary is trained after the commit
/// ([`InserterSettings::compress_after`]).
pub fn insert_batch(conn: &mut InserterConn, batch: &[Event]) -> Result<Committed, StoreError> {
    insert_encoded(conn, batch, None)
}

/// What the encoder thread made of a batch ahead of its transaction.
struct Ahead {
    /// The owned parts of its rows.
    rows: Vec<Encoded>,
    /// Its hourly activity.
    counts: Activity,
    /// Whether its rows were compressed: the encoder may have made them before the dictionary they are due for.
    compressed: bool,
}

impl Ahead {
    /// What is made of `batch` ahead, its rows compressed with `compressor`, if any.
    fn of(batch: &[Event], compressor: Option<&mut Compressor>) -> Ahead {
        let compressed = compressor.is_some();
        let rows = rows_of(batch, None, compressor).into_iter().map(RowValues::into_encoded).collect();
        Ahead { rows, counts: Activity::of(batch), compressed }
    }
}

/// [`insert_batch`], with what the encoder thread made of the batch ahead, if anything.
fn insert_encoded(conn: &mut InserterConn, batch: &[Event], ahead: Option<Ahead>) -> Result<Committed, StoreError> {
    if batch.is_empty() {
        return Ok(Committed { first_id: 0, search_waiting: 0 });
    }
    conn.make_room(batch)?;
    let committed = match insert_rows(conn, batch, ahead) {
        Err(error) if error.is_full() => {
            conn.recovering = true;
            return Err(error);
        }
        other => other?,
    };
    conn.train_when_due(committed.first_id + batch.len() as i64 - 1);
    Ok(committed)
}

/// What a batch may take on disk, at most, per byte of its lines: the row, its share of the indexes and of the search
/// index, and their WAL frames.
const DISK_PER_LINE_BYTE: u64 = 4;

/// What any batch may take on disk besides its lines: pages of indexes and of the chain it touches.
const DISK_PER_BATCH: u64 = 256 << 10;

impl InserterConn {
    /// `Err(NoRoom)` while `batch` may not be appended. With `min_free` set, near the floor (when the free space
    /// would not also hold the WAL and the batch twice over) the WAL is first moved into the database file and
    /// emptied (`wal_checkpoint(TRUNCATE)`), and the batch is appended only if the free space then holds it twice
    /// over above the floor. So the WAL never holds more than one batch while space is short, and a checkpoint never
    /// needs more room than there is: once an operator frees any space, the writer goes on. After a write failed for
    /// lack of space, the same checkpoint comes first too.
    fn make_room(&mut self, batch: &[Event]) -> Result<(), StoreError> {
        // Without a floor, or on a filesystem that cannot say its free space, only the checkpoint after a failure.
        let Some((free, floor)) = self.min_free.and_then(|min_free| self.free_and_floor(min_free)) else {
            return if self.recovering { self.empty_wal() } else { Ok(()) };
        };
        let lines: u64 = batch.iter().map(|event| event.get(field::ORIGINAL).map_or(0, str::len) as u64).sum();
        let needed = lines.saturating_mul(DISK_PER_LINE_BYTE).saturating_add(DISK_PER_BATCH).saturating_mul(2);
        let wal = std::fs::metadata(&self.wal_path).map_or(0, |m| m.len());
        if !self.recovering && free >= floor.saturating_add(wal).saturating_add(needed) {
            return Ok(());
        }
        self.empty_wal()?;
        let (free, floor) = self.min_free.and_then(|min_free| self.free_and_floor(min_free)).unwrap_or((free, floor));
        if free < floor.saturating_add(needed) {
            return Err(StoreError::NoRoom(format!(
                "the free space on the database's filesystem would fall below storage.min_free ({})",
                crate::config::ByteSize(floor)
            )));
        }
        Ok(())
    }

    /// Free bytes on the database's filesystem and the floor `min_free` sets there.
    fn free_and_floor(&self, min_free: crate::config::units::FreeSpace) -> Option<(u64, u64)> {
        let stats = rustix::fs::statvfs(&self.path).ok()?;
        let block = stats.f_frsize.max(1);
        Some((stats.f_bavail.saturating_mul(block), min_free.bytes_of(stats.f_blocks.saturating_mul(block))))
    }

    /// Moves the WAL into the database file and empties it; `Err(NoRoom)` (and the same again before the next batch)
    /// when it cannot yet.
    fn empty_wal(&mut self) -> Result<(), StoreError> {
        self.recovering = true;
        let outcome: rusqlite::Result<(i64, i64, i64)> =
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)));
        match outcome {
            Ok((0, _, _)) => {
                self.recovering = false;
                Ok(())
            }
            Ok(_) => Err(StoreError::NoRoom("the WAL waits for readers before it can be emptied".into())),
            Err(_) => Err(StoreError::NoRoom("the WAL cannot be moved into the database file yet".into())),
        }
    }
}

/// The transaction of [`insert_batch`].
fn insert_rows(conn: &mut InserterConn, batch: &[Event], ahead: Option<Ahead>) -> Result<Committed, StoreError> {
    let InserterConn { conn, compression, expander, .. } = conn;
    let compressor = &mut compression.compressor;
    let transaction = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let prev_hash = chain::head(&transaction)?;
    // The write lock is held from BEGIN IMMEDIATE: no other writer can take ids until the commit, so the batch's are
    // known before it is inserted, and the chain hashes exactly the ids the rows get.
    let newest: Option<i64> = transaction.query_row("SELECT max(id) FROM events", [], |row| row.get(0))?;
    let first_id = newest.unwrap_or(0) + 1;
    let (encoded, counts, compress_here) = match ahead {
        Some(Ahead { rows, counts, compressed }) => (Some(rows), Some(counts), !compressed),
        None => (None, None, true),
    };
    let compressor = compressor.as_mut().filter(|_| compress_here);
    let (hash, ready, counts) = {
        let mut statements = Statements {
            several: transaction.prepare_cached(&INSERT_SEVERAL)?,
            one: transaction.prepare_cached(&INSERT_ONE)?,
        };
        if batch.len() < PREPARE_BESIDE_FROM {
            let mut hasher = chain::BatchHasher::new(&prev_hash);
            let rows = rows_of(batch, encoded.map(Vec::into_iter).as_mut(), compressor);
            hash_rows(&rows, first_id, &mut hasher);
            statements.insert(first_id, &rows)?;
            (hasher.finish(), Vec::new(), counts.unwrap_or_else(|| Activity::of(batch)))
        } else {
            std::thread::scope(|scope| {
                let (chunks, prepared) = mpsc::sync_channel::<Vec<RowValues<'_>>>(2);
                let preparer = std::thread::Builder::new()
                    .name("hsmwatch-rows".into())
                    .spawn_scoped(scope, || prepare_rows(batch, encoded, first_id, &prev_hash, compressor, chunks))
                    .map_err(StoreError::InserterThread)?;
                let words_and_counts = std::thread::Builder::new()
                    .name("hsmwatch-words".into())
                    .spawn_scoped(scope, || {
                        let lines: Vec<&str> =
                            batch.iter().map(|event| event.get(field::ORIGINAL).unwrap_or_default()).collect();
                        (search::whole_blocks(first_id, &lines), counts.unwrap_or_else(|| Activity::of(batch)))
                    })
                    .map_err(StoreError::InserterThread)?;
                // On an error `prepared` is dropped on return, which stops the preparer at its next chunk.
                let mut id = first_id;
                for rows in prepared.iter() {
                    statements.insert(id, &rows)?;
                    id += rows.len() as i64;
                }
                let hash = preparer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
                let (ready, counts) = words_and_counts.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                Ok::<_, StoreError>((hash, ready, counts))
            })?
        }
    };
    let last_id = first_id + batch.len() as i64 - 1;
    chain::record(&transaction, first_id, last_id, batch.len() as u64, &prev_hash, &hash, chrono::Utc::now())?;
    // The blocks this batch completed, and a few of any backlog.
    let blocks = (batch.len() >> search::BLOCK_SHIFT) as i64 + 1 + BACKLOG_BLOCKS_PER_BATCH;
    let indexed = search::index_blocks(&transaction, blocks, expander, &ready)?;
    activity::add_on_inserter(&transaction, &counts)?;
    transaction.commit()?;
    Ok(Committed { first_id, search_waiting: indexed.waiting })
}

/// Search index blocks of a backlog (a database from before the index) indexed with each batch, besides the ones the
/// batch completes; the rest waits for the inserter to be idle.
const BACKLOG_BLOCKS_PER_BATCH: i64 = 4;

/// Backlog blocks indexed in one step while the inserter is idle: about 10 ms of work.
const BACKLOG_BLOCKS_PER_STEP: i64 = 16;

/// How long the inserter waits for a batch before it takes the next step of a search index backlog.
const IDLE_BEFORE_BACKLOG: std::time::Duration = std::time::Duration::from_millis(20);

/// What a committed batch left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The row id of the batch's first event (the others follow in order).
    pub first_id: i64,
    /// Complete blocks of events the search index has not taken in yet.
    pub search_waiting: i64,
}

/// Indexes a step of the search index's backlog in a transaction of its own; returns the blocks still waiting.
fn index_backlog(conn: &mut InserterConn) -> Result<i64, StoreError> {
    let transaction = conn.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let indexed = search::index_blocks(&transaction, BACKLOG_BLOCKS_PER_STEP, &mut conn.expander, &[])?;
    transaction.commit()?;
    Ok(indexed.waiting)
}

/// Row values of `batch` (with the encoder's parts, when it made them), hashed with ids from `first_id` on, sent
/// chunk by chunk; returns the batch's hash (or the chain error when the inserting side stopped early, whose own
/// error is the one reported).
fn prepare_rows<'a>(
    batch: &'a [Event],
    encoded: Option<Vec<Encoded>>,
    first_id: i64,
    prev_hash: &str,
    mut compressor: Option<&mut Compressor>,
    chunks: mpsc::SyncSender<Vec<RowValues<'a>>>,
) -> Result<String, StoreError> {
    let mut hasher = chain::BatchHasher::new(prev_hash);
    let mut encoded = encoded.map(Vec::into_iter);
    for (chunk, first) in batch.chunks(CHUNK_ROWS).zip((first_id..).step_by(CHUNK_ROWS)) {
        let rows = rows_of(chunk, encoded.as_mut(), compressor.as_deref_mut());
        hash_rows(&rows, first, &mut hasher);
        if chunks.send(rows).is_err() {
            return Err(StoreError::InserterStopped);
        }
    }
    Ok(hasher.finish())
}

/// The row values of `events`: with the owned parts the encoder made (`encoded`, taken as far as `events` go), else
/// made here; compressed with `compressor`, if any.
fn rows_of<'a>(
    events: &'a [Event],
    encoded: Option<&mut std::vec::IntoIter<Encoded>>,
    compressor: Option<&mut Compressor>,
) -> Vec<RowValues<'a>> {
    let mut rows: Vec<RowValues<'a>> = match encoded {
        Some(encoded) => {
            events.iter().zip(encoded).map(|(event, encoded)| RowValues::with_encoded(event, encoded)).collect()
        }
        None => events.iter().map(row_values).collect(),
    };
    if let Some(compressor) = compressor {
        for values in &mut rows {
            compress(values, compressor);
        }
    }
    rows
}

/// Compresses a row's line and fields together.
fn compress(values: &mut RowValues<'_>, compressor: &mut Compressor) {
    values.compressed = compressor.compress(values.typed[TYPED_ORIGINAL].unwrap_or_default(), &values.fields);
}

/// Adds `rows`, whose ids run from `first_id`, to `hasher` (as they read back: uncompressed).
fn hash_rows(rows: &[RowValues<'_>], first_id: i64, hasher: &mut chain::BatchHasher) {
    for (id, values) in (first_id..).zip(rows) {
        hasher.row(&values.image(id));
    }
}

/// The two INSERT statements a batch uses: [`ROWS_PER_STATEMENT`] rows, and one row for what is left at its end.
struct Statements<'c> {
    several: rusqlite::CachedStatement<'c>,
    one: rusqlite::CachedStatement<'c>,
}

impl Statements<'_> {
    /// Inserts `rows` with ids from `first_id` on.
    fn insert(&mut self, first_id: i64, rows: &[RowValues<'_>]) -> rusqlite::Result<()> {
        let mut groups = rows.chunks_exact(ROWS_PER_STATEMENT);
        let mut id = first_id;
        for group in &mut groups {
            bind_rows(&mut self.several, id, group)?;
            self.several.raw_execute()?;
            id += group.len() as i64;
        }
        for values in groups.remainder() {
            bind_rows(&mut self.one, id, std::slice::from_ref(values))?;
            self.one.raw_execute()?;
            id += 1;
        }
        Ok(())
    }
}

/// Binds every parameter of a statement of `rows.len()` rows (so nothing of an earlier execution stays bound).
fn bind_rows(statement: &mut rusqlite::Statement<'_>, first_id: i64, rows: &[RowValues<'_>]) -> rusqlite::Result<()> {
    for ((id, values), first) in (first_id..).zip(rows).zip((1..).step_by(BOUND_WITH_ID)) {
        let [ts, ts_digits, created, created_digits] = values.times;
        let integers = [id, ts, ts_digits, created, created_digits];
        for (at, value) in (first..).zip(integers) {
            statement.raw_bind_parameter(at, value)?;
        }
        let after_times = first + integers.len();
        for (at, text) in (after_times..).zip(values.typed) {
            statement.raw_bind_parameter(at, text)?;
        }
        // A compressed row: the line and the fields in place of the line, and no fields.
        let fields = match &values.compressed {
            Some(compressed) => {
                statement.raw_bind_parameter(after_times + TYPED_ORIGINAL, compressed.as_slice())?;
                &[][..]
            }
            None => values.fields.as_slice(),
        };
        let after_typed = after_times + values.typed.len();
        statement.raw_bind_parameter(after_typed, values.raw)?;
        statement.raw_bind_parameter(after_typed + 1, fields)?;
        statement.raw_bind_parameter(after_typed + 2, values.message_at)?;
    }
    Ok(())
}

/// The inserter thread's loop: commits the batches it is given, and indexes the search index's backlog (if any)
/// whenever no batch has come for a moment.
fn serve_jobs(conn: &mut InserterConn, jobs: &mpsc::Receiver<Job>, counters: &Counters) {
    // Unknown at start: a database from before the index has one; the first idle step finds out.
    let mut waiting = 1;
    let mut last_failed = false;
    let mut reported = Instant::now();
    loop {
        let job = if waiting > 0 {
            match jobs.recv_timeout(IDLE_BEFORE_BACKLOG) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match jobs.recv() {
                Ok(job) => Some(job),
                Err(mpsc::RecvError) => return,
            }
        };
        let before = waiting;
        match job {
            Some(job) => {
                let outcome = if job.queued_ahead && last_failed {
                    Err(StoreError::EarlierBatchFailed)
                } else {
                    insert_encoded(conn, &job.batch, job.ahead)
                };
                last_failed = outcome.is_err();
                if let Ok(committed) = &outcome {
                    waiting = committed.search_waiting;
                }
                // The writer may be gone (shutdown after a failure): the outcome then has no one to go to.
                let _ = job.reply.send((job.batch, outcome.map(|committed| committed.first_id)));
            }
            None => match index_backlog(conn) {
                Ok(left) => waiting = left,
                Err(error) => {
                    tracing::warn!(%error, "indexing the search index backlog failed; trying again in a second");
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            },
        }
        counters.search_waiting.store((waiting.max(0) as u64) << search::BLOCK_SHIFT, Ordering::Relaxed);
        if waiting > 0 && reported.elapsed() > REPORT_BACKLOG_EVERY {
            tracing::info!(events_waiting = waiting << search::BLOCK_SHIFT, "building the search index");
            reported = Instant::now();
        } else if waiting == 0 && before > BACKLOG_BLOCKS_PER_STEP {
            tracing::info!("search index complete");
        }
    }
}

/// How often the progress of a search index backlog is logged.
const REPORT_BACKLOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// What the inserter hands back: the batch (so its events go on to evaluation) and the outcome of its commit.
pub type Inserted = (Vec<Event>, Result<i64, StoreError>);

/// A batch on its way to the inserter's thread (by way of the encoder's when it is queued ahead).
struct Job {
    batch: Vec<Event>,
    /// What the encoder made of it, for a large batch.
    ahead: Option<Ahead>,
    /// Queued by [`Inserter::queue_after`]: stored only if the job before it was.
    queued_ahead: bool,
    reply: oneshot::Sender<Inserted>,
}

/// The encoder thread's loop: makes the owned parts of the rows of each large batch queued ahead (packed and compressed
/// fields: most of a row's preparation, and none of it depends on the row's id) and counts its hourly activity, while
/// the inserter commits the batches queued before it; passes every job on in the order it came.
fn encode_jobs(jobs: &mpsc::Receiver<Job>, encoded: &mpsc::Sender<Job>, handed: &EncoderCompressor) {
    let mut compressor: Option<Compressor> = None;
    for mut job in jobs {
        if job.batch.len() >= PREPARE_BESIDE_FROM {
            if let Some(newest) = handed.lock().unwrap_or_else(PoisonError::into_inner).take() {
                compressor = Some(newest);
            }
            job.ahead = Some(Ahead::of(&job.batch, compressor.as_mut()));
        }
        if encoded.send(job).is_err() {
            return;
        }
    }
}

/// The threads that own the inserter's connection and encode rows ahead of it. A batch given to [`Inserter::insert`]
/// goes to the inserter straight (there is nothing before it to encode it beside), and is not ordered with batches
/// queued ahead that the encoder still holds: a caller uses one or the other.
#[derive(Debug)]
pub struct Inserter {
    /// To the inserter's thread.
    jobs: mpsc::Sender<Job>,
    /// To the encoder's thread, which passes them on to the inserter's.
    queued: mpsc::Sender<Job>,
    threads: [JoinHandle<()>; 2],
}

impl Inserter {
    /// Starts the threads on `conn` (from [`open_connection`]); the inserter reports the search index's backlog in
    /// `counters`.
    pub fn start(mut conn: InserterConn, counters: Arc<Counters>) -> Result<Inserter, StoreError> {
        let (jobs, to_insert) = mpsc::channel::<Job>();
        let (queued, to_encode) = mpsc::channel::<Job>();
        let handed = conn.encoder_compressor.clone();
        let encoded = jobs.clone();
        let encoder = std::thread::Builder::new()
            .name("hsmwatch-encode".into())
            .spawn(move || encode_jobs(&to_encode, &encoded, &handed))
            .map_err(StoreError::InserterThread)?;
        let inserter = std::thread::Builder::new()
            .name("hsmwatch-insert".into())
            .spawn(move || serve_jobs(&mut conn, &to_insert, &counters))
            .map_err(StoreError::InserterThread)?;
        Ok(Inserter { jobs, queued, threads: [encoder, inserter] })
    }

    /// Commits `batch` (see [`insert_batch`]) and hands it back with the outcome.
    pub async fn insert(&self, batch: Vec<Event>) -> Inserted {
        self.queue(batch, false).await
    }

    /// Queues `batch` at once, to be committed after the batches queued before it, and only if the one just before it
    /// was (else it comes back with [`StoreError::EarlierBatchFailed`]); resolves when it is committed. A caller that
    /// keeps the next batch queued never lets the inserter wait for it, and its rows are encoded while the one before
    /// is committed.
    pub fn queue_after(&self, batch: Vec<Event>) -> impl std::future::Future<Output = Inserted> + use<> {
        self.queue(batch, true)
    }

    /// Sends `batch` to the encoder (queued ahead) or to the inserter straight; the future resolves with its outcome.
    fn queue(&self, batch: Vec<Event>, queued_ahead: bool) -> impl std::future::Future<Output = Inserted> + use<> {
        let (reply, answer) = oneshot::channel();
        let to = if queued_ahead { &self.queued } else { &self.jobs };
        let refused = to.send(Job { batch, ahead: None, queued_ahead, reply }).err();
        async move {
            if let Some(mpsc::SendError(job)) = refused {
                return (job.batch, Err(StoreError::InserterStopped));
            }
            // The reply is dropped unanswered only when a thread panicked (its message is already on stderr).
            answer.await.unwrap_or_else(|_| (Vec::new(), Err(StoreError::InserterStopped)))
        }
    }

    /// Stops the threads once they have finished what they were given, and closes the connection.
    pub async fn close(self) {
        let Inserter { jobs, queued, threads } = self;
        drop((jobs, queued));
        for thread in threads {
            if let Ok(Err(panic)) = tokio::task::spawn_blocking(move || thread.join()).await {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{field, Timestamp};
    use chrono::{TimeZone, Utc};

    fn event(original: &str) -> Event {
        let now = Timestamp::from_clock(Utc::now());
        let mut event = Event::new(now, now);
        event.set(field::ORIGINAL, original.to_owned());
        event
    }

    /// Asserts that the chain of the database in `dir` verifies.
    async fn assert_chain_intact(dir: &Path) {
        let pool = crate::store::open_reader(&dir.join("t.db")).await.unwrap();
        let finding = crate::store::chain::verify(&pool).await.unwrap();
        assert!(matches!(finding, crate::store::chain::Finding::Intact { .. }), "{finding:?}");
    }

    async fn database(dir: &Path, settings: InserterSettings) -> (sqlx::SqliteConnection, InserterConn) {
        let path = dir.join("t.db");
        let reader = crate::store::open_writer(&path).await.unwrap().0;
        (reader, open_connection(&path, settings).unwrap())
    }

    #[tokio::test]
    async fn batches_get_consecutive_ids_after_the_newest_row_and_an_intact_chain() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reader, conn) = database(dir.path(), InserterSettings::default()).await;
        let inserter = Inserter::start(conn, Arc::default()).unwrap();
        let (batch, first) = inserter.insert(vec![event("a"), event("b")]).await;
        assert_eq!((batch.len(), first.unwrap()), (2, 1));
        // A row stored by another connection (as an older version or `sqlite3` might): the next batch follows it.
        sqlx::query("INSERT INTO events (id, ts, ts_digits, created, created_digits, dataset, format, original, fields) VALUES (10, 0, 0, 0, 0, 'syslog', 'x', 'x', '{}')")
            .execute(&mut reader)
            .await
            .unwrap();
        let (_, first) = inserter.insert(vec![event("c")]).await;
        assert_eq!(first.unwrap(), 11);
        inserter.close().await;
        let originals: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, original FROM events ORDER BY id").fetch_all(&mut reader).await.unwrap();
        assert_eq!(originals, [(1, "a".into()), (2, "b".into()), (10, "x".into()), (11, "c".into())]);
        let batches: Vec<(i64, i64, i64)> =
            sqlx::query_as("SELECT first_event_id, last_event_id, row_count FROM event_batches ORDER BY id")
                .fetch_all(&mut reader)
                .await
                .unwrap();
        assert_eq!(batches, [(1, 2, 2), (11, 11, 1)]);
    }

    #[tokio::test]
    async fn a_database_from_before_the_index_is_indexed_while_the_inserter_is_idle() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reader, mut conn) = database(dir.path(), InserterSettings::default()).await;
        let batch: Vec<Event> = (0..3000).map(|n| event(&format!("line {n:05} of history"))).collect();
        assert_eq!(insert_batch(&mut conn, &batch).unwrap(), Committed { first_id: 1, search_waiting: 0 });
        // As the migration leaves a database that held events: nothing indexed.
        sqlx::raw_sql("DELETE FROM event_search; UPDATE search_cursor SET next_block = 0")
            .execute(&mut reader)
            .await
            .unwrap();
        let counters = Arc::new(Counters::default());
        let inserter = Inserter::start(conn, counters.clone()).unwrap();
        let complete = 3001 >> search::BLOCK_SHIFT;
        let mut next_block = 0;
        for _ in 0..200 {
            next_block =
                sqlx::query_scalar("SELECT next_block FROM search_cursor").fetch_one(&mut reader).await.unwrap();
            if next_block == complete {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(next_block, complete, "no batch came: the idle inserter indexed the backlog");
        assert_eq!(crate::metrics::value(&counters.search_waiting), 0);
        let pool = crate::store::open_reader(&dir.path().join("t.db")).await.unwrap();
        let found = search::candidates(&pool, "line 00300 ").await.unwrap().unwrap();
        assert_eq!(found.ranges, [(256, 511)]);
        inserter.close().await;
    }

    /// Events that differ in every column, some columns empty, some messages the tail of their line.
    fn varied(count: usize) -> Vec<Event> {
        (0..count)
            .map(|i| {
                let micros = |offset: i64| Utc.timestamp_micros(1_780_000_000_000_000 + offset).unwrap();
                let mut event = Event::new(
                    Timestamp::new(micros(i as i64 * 7), (i % 7) as u8),
                    Timestamp::new(micros(i as i64), 6),
                );
                event.set(field::DATASET, "lunash");
                event.set(field::FORMAT, "rfc3164");
                let message = format!("line {i} \"quoted\" \\ tab\t");
                event.set(field::ORIGINAL, format!("<14>Mar  1 10:00:00 hsm{} lunash: {message}", i % 3));
                event.set(field::MESSAGE, if i % 4 == 0 { format!("other {i}") } else { message });
                event.set(field::HOST_NAME, format!("hsm{}", i % 3));
                if i % 2 == 0 {
                    event.set(field::USER_NAME, format!("user{i}"));
                    event.set(field::ACTION, "user-login");
                }
                if i % 5 == 0 {
                    event.raw = Some(vec![0xff, i as u8]);
                }
                if i % 6 == 0 {
                    event.set(field::CATEGORY, "authentication");
                    event.set(field::OUTCOME, "failure");
                }
                event.set(field::APPNAME, "lunash");
                event
            })
            .collect()
    }

    #[tokio::test]
    async fn every_column_of_every_row_reads_back_as_inserted_across_statement_and_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reader, mut conn) = database(dir.path(), InserterSettings::default()).await;
        // Inline (under PREPARE_BESIDE_FROM) and beside the preparer; neither a multiple of ROWS_PER_STATEMENT.
        let small = varied(PREPARE_BESIDE_FROM - 1 - ROWS_PER_STATEMENT / 2);
        let large = varied(2 * CHUNK_ROWS + ROWS_PER_STATEMENT + 3);
        assert_eq!(insert_batch(&mut conn, &small).unwrap().first_id, 1);
        assert_eq!(insert_batch(&mut conn, &large).unwrap().first_id, 1 + small.len() as i64);
        let select = format!("SELECT {} FROM events ORDER BY id", super::super::columns::SELECT_COLUMNS);
        let rows = sqlx::query(&select).fetch_all(&mut reader).await.unwrap();
        assert_eq!(rows.len(), small.len() + large.len());
        for ((row, expected), id) in rows.iter().zip(small.iter().chain(&large)).zip(1..) {
            let (read_id, read) = super::super::columns::event_from_row(row, &mut Default::default()).unwrap();
            assert_eq!(read_id, id);
            assert_eq!(&read, expected, "row {id}");
        }
        assert_chain_intact(dir.path()).await;
    }

    #[tokio::test]
    async fn rows_after_the_dictionary_is_trained_are_compressed_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let settings = InserterSettings { compress_after: Some(1000), ..InserterSettings::default() };
        let (mut reader, mut conn) = database(dir.path(), settings).await;
        let first = varied(1100);
        insert_batch(&mut conn, &first).unwrap();
        // Beside the preparer and inline, after the dictionary: compressed.
        let second = varied(PREPARE_BESIDE_FROM + 40);
        let third = varied(10);
        insert_batch(&mut conn, &second).unwrap();
        insert_batch(&mut conn, &third).unwrap();
        let kinds: Vec<(String, i64)> =
            sqlx::query_as("SELECT typeof(original), count(*) FROM events GROUP BY 1 ORDER BY 1")
                .fetch_all(&mut reader)
                .await
                .unwrap();
        assert_eq!(kinds, [("blob".into(), (second.len() + third.len()) as i64), ("text".into(), 1100)]);
        // A new connection compresses with the stored dictionary; it does not train another.
        drop(conn);
        let mut conn = open_connection(&dir.path().join("t.db"), settings).unwrap();
        insert_batch(&mut conn, &third).unwrap();
        let dictionaries: i64 =
            sqlx::query_scalar("SELECT count(*) FROM text_dictionaries").fetch_one(&mut reader).await.unwrap();
        let text: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE typeof(original) = 'text'")
            .fetch_one(&mut reader)
            .await
            .unwrap();
        assert_eq!((dictionaries, text), (1, 1100));

        let stored_blob: Vec<u8> =
            sqlx::query_scalar("SELECT original FROM events WHERE id = 1300").fetch_one(&mut reader).await.unwrap();
        let pool = crate::store::open_reader(&dir.path().join("t.db")).await.unwrap();
        let ids: Vec<i64> = (1..=(first.len() + second.len() + 2 * third.len()) as i64).collect();
        let mut read = Vec::new();
        for chunk in ids.chunks(1000) {
            read.extend(crate::store::query::events_by_id(&pool, chunk).await.unwrap());
        }
        let expected: Vec<&Event> = first.iter().chain(&second).chain(&third).chain(&third).collect();
        assert_eq!(read.len(), expected.len());
        for (stored, expected) in read.iter().zip(expected) {
            assert_eq!(&stored.event, expected, "row {}", stored.id);
        }
        assert_chain_intact(dir.path()).await;
        // A compressed row whose bytes no longer expand is an altered row, not an error of the check.
        sqlx::query("UPDATE events SET original = X'01ff' WHERE id = 1300").execute(&mut reader).await.unwrap();
        match crate::store::chain::verify(&pool).await.unwrap() {
            crate::store::chain::Finding::Broken { reason, .. } => {
                assert!(reason.contains("event 1300 cannot be read") && reason.contains("altered"), "{reason}")
            }
            intact => panic!("{intact:?}"),
        }
        sqlx::query("UPDATE events SET original = ? WHERE id = 1300")
            .bind(&stored_blob)
            .execute(&mut reader)
            .await
            .unwrap();
        // Found by the line, in compressed rows indexed (block 4: ids 1024..=1279) and not yet indexed (from 1280).
        let filter = |contains: &str| crate::store::query::EventFilter {
            contains: Some(contains.into()),
            limit: 10,
            ..Default::default()
        };
        let found = crate::store::query::events(&pool, &filter("LINE 150 \"quoted")).await.unwrap();
        let found: Vec<i64> = found.iter().map(|stored| stored.id).collect();
        assert_eq!(found, [1100 + 151, 151], "the compressed row and the one stored before the dictionary");
        let tail = crate::store::query::events(&pool, &filter("line 7 \"")).await.unwrap();
        let tail: Vec<i64> = tail.iter().map(|stored| stored.id).collect();
        assert_eq!(tail, [ids.len() as i64 - 2, ids.len() as i64 - 12, 1100 + 8, 8]);
    }

    #[tokio::test]
    async fn with_compression_off_every_line_stays_text() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reader, mut conn) = database(dir.path(), InserterSettings::default()).await;
        insert_batch(&mut conn, &varied(3000)).unwrap();
        insert_batch(&mut conn, &varied(300)).unwrap();
        let compressed: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM events WHERE typeof(original) = 'blob') + (SELECT count(*) FROM text_dictionaries)",
        )
        .fetch_one(&mut reader)
        .await
        .unwrap();
        assert_eq!(compressed, 0);
    }

    /// Every column of every event row, the hourly activity, and the number of compressed rows.
    async fn stored(reader: &mut sqlx::SqliteConnection) -> (Vec<String>, Vec<(i64, String, String, i64, i64)>, i64) {
        let rows = sqlx::query_scalar(
            "SELECT printf('%d %d %d %d %d %s %s %s %s %s %s %s %s %s %s %s', id, ts, ts_digits, created, \
             created_digits, quote(host), dataset, quote(action), quote(outcome), quote(user_name), quote(source_ip), \
             format, hex(original), quote(raw), hex(fields), quote(message_at)) FROM events ORDER BY id",
        )
        .fetch_all(&mut *reader)
        .await
        .unwrap();
        let hours =
            sqlx::query_as("SELECT hour, host, category, events, failed_logins FROM event_hours ORDER BY 1, 2, 3")
                .fetch_all(&mut *reader)
                .await
                .unwrap();
        let compressed = sqlx::query_scalar("SELECT count(*) FROM events WHERE typeof(original) = 'blob'")
            .fetch_one(&mut *reader)
            .await
            .unwrap();
        (rows, hours, compressed)
    }

    #[tokio::test]
    async fn batches_queued_ahead_are_stored_as_batches_inserted_one_at_a_time() {
        let settings = InserterSettings { compress_after: Some(1000), ..InserterSettings::default() };
        // Trains the dictionary after the first; the second is encoded ahead, likely before that; the third is small.
        let batches = [varied(1100), varied(PREPARE_BESIDE_FROM + 40), varied(10)];
        let one_at_a_time = tempfile::tempdir().unwrap();
        let (mut reader, mut conn) = database(one_at_a_time.path(), settings).await;
        for batch in &batches {
            insert_batch(&mut conn, batch).unwrap();
        }
        let expected = stored(&mut reader).await;
        assert_eq!(expected.2, (batches[1].len() + batches[2].len()) as i64, "compressed after the first batch");
        assert_eq!(expected.1.iter().map(|hour| hour.3).sum::<i64>(), 1100 + 296 + 10);

        let queued = tempfile::tempdir().unwrap();
        let (mut reader, conn) = database(queued.path(), settings).await;
        let inserter = Inserter::start(conn, Arc::default()).unwrap();
        let pending: Vec<_> = batches.iter().map(|batch| inserter.queue_after(batch.clone())).collect();
        for (done, batch) in pending.into_iter().zip(&batches) {
            let (returned, outcome) = done.await;
            outcome.unwrap();
            assert_eq!(&returned, batch);
        }
        inserter.close().await;
        assert_eq!(stored(&mut reader).await, expected);
        assert_chain_intact(queued.path()).await;
    }

    #[tokio::test]
    async fn a_batch_queued_behind_one_that_failed_comes_back_unstored() {
        let dir = tempfile::tempdir().unwrap();
        let settings = InserterSettings { max_size: Some(2 << 20), ..InserterSettings::default() };
        let (mut reader, conn) = database(dir.path(), settings).await;
        let inserter = Inserter::start(conn, Arc::default()).unwrap();
        let line = "x".repeat(2000);
        let too_large: Vec<Event> = (0..1500).map(|_| event(&line)).collect();
        let failing = inserter.queue_after(too_large);
        let behind = inserter.queue_after(vec![event("behind")]);
        let (_, outcome) = failing.await;
        assert!(outcome.unwrap_err().is_full());
        let (returned, outcome) = behind.await;
        assert!(matches!(outcome, Err(StoreError::EarlierBatchFailed)), "{outcome:?}");
        assert_eq!(returned.len(), 1);
        // A batch given on its own is stored: nothing was left behind.
        let (_, outcome) = inserter.insert(vec![event("later")]).await;
        assert_eq!(outcome.unwrap(), 1);
        inserter.close().await;
        let lines: Vec<String> =
            sqlx::query_scalar("SELECT original FROM events").fetch_all(&mut reader).await.unwrap();
        assert_eq!(lines, ["later"]);
    }

    #[tokio::test]
    async fn each_batch_counts_its_hourly_activity_in_its_own_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reader, mut conn) = database(dir.path(), InserterSettings::default()).await;
        let at = |hour: i64, host: &str, category: Option<&'static str>, outcome: &str| {
            let time = Timestamp::new(Utc.timestamp_micros(hour * activity::HOUR_MICROS + 5).unwrap(), 6);
            let mut event = Event::new(time, time);
            event.set(field::ORIGINAL, format!("{host} {hour}"));
            event.set(field::HOST_NAME, host.to_owned());
            if let Some(category) = category {
                event.set(field::CATEGORY, category);
            }
            event.set(field::OUTCOME, outcome.to_owned());
            event
        };
        let batch = vec![
            at(500_000, "hsm-a", Some("authentication"), "failure"),
            at(500_000, "hsm-a", Some("authentication"), "success"),
            at(500_000, "hsm-b", None, "success"),
            at(500_001, "hsm-a", Some("authentication"), "failure"),
        ];
        insert_batch(&mut conn, &batch).unwrap();
        // Added to, not replaced: the same hour in a later batch.
        insert_batch(&mut conn, &batch[..1]).unwrap();
        let (_, hours, _) = stored(&mut reader).await;
        assert_eq!(
            hours,
            [
                (500_000, "hsm-a".into(), "authentication".into(), 3, 2),
                (500_000, "hsm-b".into(), activity::UNCATEGORIZED.into(), 1, 0),
                (500_001, "hsm-a".into(), "authentication".into(), 1, 1),
            ]
        );
    }

    #[tokio::test]
    async fn a_full_database_fails_the_whole_batch_retryably_and_stores_none_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let settings = InserterSettings { max_size: Some(2 << 20), ..InserterSettings::default() };
        let (mut reader, mut conn) = database(dir.path(), settings).await;
        let line = "x".repeat(2000);
        let batch: Vec<Event> = (0..1500).map(|_| event(&line)).collect();
        let error = insert_batch(&mut conn, &batch).unwrap_err();
        assert!(error.is_retryable() && error.is_full(), "{error}");
        assert!(error.to_string().contains("full"), "{error}");
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&mut reader).await.unwrap();
        assert_eq!(count, 0);
        // Smaller batches still fit: the failed one left nothing behind.
        assert_eq!(insert_batch(&mut conn, &batch[..10]).unwrap().first_id, 1);
    }
}
