//! The store, the database's one owner: opening and migrating it, the batch writer, every table's SQL, queries; on
//! SQLite (the embedded default, this module) or PostgreSQL, shared by several collectors ([`postgres`]).
//!
//! Receives events from the writer queue; emits committed batches to the writer's hook (the rule engine). Owns the
//! schema (`migrations/`, `migrations_postgres/`; the tables both hold described once in [`schema`]) and every connection: the write connection ([`WriteConn`], shared as
//! a [`Writer`] that the batch writer, delivery and retention take in turn), the event inserter's connection inside
//! the batch writer (event rows only, see [`inserter`]), the background checkpointer's, and the read-only pool
//! ([`Reader`]) that queries use while the server writes (WAL). The tables both backends hold alike (alerts, outbox,
//! silences, rule state) are written once for both ([`tables`]). Other stages call the typed functions of the table
//! modules and never see a connection or a line of SQL.

pub mod activity;
pub mod alerts;
pub mod chain;
pub mod checkpoint;
pub mod cloud;
mod columns;
pub mod compressed;
pub mod hosts;
pub mod inserter;
pub mod outbox;
pub mod packed;
pub mod postgres;
pub mod query;
pub mod retention;
pub mod rule_state;
pub mod schema;
pub mod search;
pub mod silences;
pub mod snmp;
pub mod stats;
pub mod tables;
pub mod writer;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use thiserror::Error;

/// Page size of new databases.
const PAGE_SIZE: u32 = 16_384;

/// How long a connection waits for a lock held by another (a reader during a checkpoint, the CLI during a write).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the store failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open database {path}: {cause}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        cause: sqlx::Error,
    },
    /// The database does not exist (queries never create one).
    #[error("no database at {path}: start `hsmwatch serve` first, or pass --db / --config to name the right file")]
    Missing {
        /// The database file.
        path: PathBuf,
    },
    /// The schema could not be brought up to date.
    #[error("cannot migrate database {path}: {cause}")]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// The migration error.
        cause: sqlx::migrate::MigrateError,
    },
    /// A statement failed.
    #[error("database error: {0}")]
    Sql(sqlx::Error),
    /// What was asked is kept only in SQLite's store so far.
    #[error("not available with storage.backend: postgres yet")]
    NotOnPostgres,
    /// The PostgreSQL database could not be reached or logged in to.
    #[error("cannot connect to PostgreSQL at {server}: {cause}")]
    OpenPostgres {
        /// Host, port and database (never the password).
        server: String,
        /// The driver's error.
        cause: sqlx::Error,
    },
    /// A leader's write in a term whose lease it no longer holds (another collector leads now).
    #[error("no longer the leader of term {term}: another collector took the lead")]
    NotLeader {
        /// The term the write was made in.
        term: i64,
    },
    /// A copy of a SQLite database into PostgreSQL found data there already.
    #[error(
        "the PostgreSQL database {server} already holds {what}: a SQLite database is copied into an empty one only"
    )]
    TargetNotEmpty {
        /// Host, port and database.
        server: String,
        /// What it holds.
        what: String,
    },
    /// Copying a table to another database failed.
    #[error("copying {table}: {cause}")]
    Copy {
        /// The table.
        table: &'static str,
        /// What failed.
        cause: Box<StoreError>,
    },
    /// The shared tables of a database are not as [`schema::SHARED_TABLES`] describes them.
    #[error("the tables of {server} are not as this version describes them: {differences}")]
    SchemaDiffers {
        /// Host, port and database, or the file.
        server: String,
        /// How they differ.
        differences: String,
    },
    /// The PostgreSQL schema could not be brought up to date.
    #[error("cannot migrate PostgreSQL database {server}: {cause}")]
    MigratePostgres {
        /// Host, port and database.
        server: String,
        /// The migration error.
        cause: sqlx::migrate::MigrateError,
    },
    /// The event inserter's connection could not be opened.
    #[error("cannot open database {path} for inserting events: {cause}")]
    OpenInserter {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        cause: rusqlite::Error,
    },
    /// A statement on the event inserter's connection failed.
    #[error("database error: {0}")]
    Insert(rusqlite::Error),
    /// Compressing rows, or training the dictionary for it, failed.
    #[error("compression: {0}")]
    Compress(#[from] compressed::CompressError),
    /// No room to write: the filesystem's free space is below `storage.min_free`, or the WAL a full disk left behind
    /// is not yet in the database file and truncated (nothing is appended before it is).
    #[error("no room to write: {0}")]
    NoRoom(String),
    /// The event inserter's thread could not be started.
    #[error("cannot start the event inserter thread: {0}")]
    InserterThread(std::io::Error),
    /// The event inserter's thread is gone (it panicked).
    #[error("the event inserter thread has stopped")]
    InserterStopped,
    /// A batch queued to follow another was not stored, because that one failed.
    #[error("not stored: the batch before it failed")]
    EarlierBatchFailed,
    /// A stored row could not be read back.
    #[error("corrupt event row {id}: {reason}")]
    CorruptRow {
        /// The row id.
        id: i64,
        /// What is wrong with it.
        reason: String,
    },
}

impl StoreError {
    /// Whether the database is full: the disk, or the size cap (`storage.max_size`).
    pub fn is_full(&self) -> bool {
        matches!(self, StoreError::NoRoom(_))
            || matches!(self, StoreError::Insert(rusqlite::Error::SqliteFailure(error, _)) if error.code == rusqlite::ErrorCode::DiskFull)
    }

    /// Whether trying the same write again may succeed: a full disk, a lock, an I/O error may pass; a constraint
    /// violation or a corrupt row will not.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::CorruptRow { .. }
            | StoreError::Missing { .. }
            | StoreError::InserterStopped
            | StoreError::NotOnPostgres
            | StoreError::TargetNotEmpty { .. }
            | StoreError::SchemaDiffers { .. }
            | StoreError::Copy { .. }
            | StoreError::NotLeader { .. } => false,
            StoreError::Sql(sqlx::Error::Database(error)) => matches!(error.kind(), sqlx::error::ErrorKind::Other),
            // SQLite's own conditions (full, busy, I/O) may pass; rusqlite's other errors are misuse, which will not.
            StoreError::Insert(rusqlite::Error::SqliteFailure(error, _)) => {
                error.code != rusqlite::ErrorCode::ConstraintViolation
            }
            StoreError::Insert(_) => false,
            _ => true,
        }
    }
}

/// The write-ahead log beside a database file (SQLite names it by appending `-wal`).
pub fn wal_path(db: &Path) -> PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

fn connect_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::from_str("sqlite://")
        .expect("a bare sqlite URL parses")
        .filename(path)
        .busy_timeout(BUSY_TIMEOUT)
        .log_statements(tracing::log::LevelFilter::Trace)
}

/// The database's write connection. Only the store's functions use what is inside.
#[derive(Debug)]
pub struct WriteConn(SqliteConnection);

/// The write connection, shared: each writer (the batch writer, a delivery worker, retention) takes it for one
/// transaction at a time. On PostgreSQL, a pool: writers take a connection each.
#[derive(Debug, Clone)]
pub struct Writer(WriterKind);

/// SQLite's write connection as its writers share it.
pub type SharedConn = std::sync::Arc<tokio::sync::Mutex<WriteConn>>;

/// What a [`Writer`] writes on.
#[derive(Debug, Clone)]
enum WriterKind {
    Sqlite(SharedConn),
    Postgres(sqlx::PgPool),
}

/// A write connection of either backend, taken from a [`Writer`] for the tables both hold alike.
pub enum TableWriter<'a> {
    /// SQLite's one write connection, taken in turn.
    Sqlite(tokio::sync::MutexGuard<'a, WriteConn>),
    /// A connection of PostgreSQL's pool.
    Pooled(PooledConn),
}

impl TableConn for TableWriter<'_> {
    fn tables(&mut self) -> tables::Tables<'_> {
        match self {
            TableWriter::Sqlite(conn) => conn.tables(),
            TableWriter::Pooled(conn) => conn.tables(),
        }
    }

    fn backend(&self) -> Backend {
        match self {
            TableWriter::Sqlite(conn) => conn.backend(),
            TableWriter::Pooled(conn) => conn.backend(),
        }
    }
}

impl Writer {
    /// Shares `conn`.
    pub fn new(conn: WriteConn) -> Self {
        Writer(WriterKind::Sqlite(std::sync::Arc::new(tokio::sync::Mutex::new(conn))))
    }

    /// Writes on a PostgreSQL pool.
    pub(crate) fn postgres(pool: sqlx::PgPool) -> Self {
        Writer(WriterKind::Postgres(pool))
    }

    /// SQLite's write connection, shared, for a stage that takes it again and again (the batch writer, retention).
    pub fn sqlite(&self) -> Result<SharedConn, StoreError> {
        match &self.0 {
            WriterKind::Sqlite(conn) => Ok(conn.clone()),
            WriterKind::Postgres(_) => Err(StoreError::NotOnPostgres),
        }
    }

    /// Waits for SQLite's write connection, for what only SQLite's store writes so far.
    pub async fn lock(&self) -> Result<tokio::sync::MutexGuard<'_, WriteConn>, StoreError> {
        match &self.0 {
            WriterKind::Sqlite(conn) => Ok(conn.lock().await),
            WriterKind::Postgres(_) => Err(StoreError::NotOnPostgres),
        }
    }

    /// Waits for a write connection of either backend, for the tables both hold alike.
    pub async fn tables(&self) -> Result<TableWriter<'_>, StoreError> {
        Ok(match &self.0 {
            WriterKind::Sqlite(conn) => TableWriter::Sqlite(conn.lock().await),
            WriterKind::Postgres(pool) => TableWriter::Pooled(PooledConn::Postgres(pool.acquire().await?)),
        })
    }

    /// SQLite's connection back, once no clone is left (at shutdown, to close it).
    pub fn into_inner(self) -> Option<WriteConn> {
        match self.0 {
            WriterKind::Sqlite(conn) => std::sync::Arc::into_inner(conn).map(tokio::sync::Mutex::into_inner),
            WriterKind::Postgres(_) => None,
        }
    }
}

/// Read-only connections on the database, for queries that run while the server writes.
#[derive(Debug, Clone)]
pub struct Reader(ReadPool);

/// The pool behind a [`Reader`].
#[derive(Debug, Clone)]
enum ReadPool {
    Sqlite(SqlitePool),
    Postgres(sqlx::PgPool),
}

/// A pooled connection of either backend, for the tables both hold alike.
pub enum PooledConn {
    /// SQLite's.
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    /// PostgreSQL's.
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

impl TableConn for PooledConn {
    fn tables(&mut self) -> tables::Tables<'_> {
        match self {
            PooledConn::Sqlite(conn) => conn.tables(),
            PooledConn::Postgres(conn) => conn.tables(),
        }
    }

    fn backend(&self) -> Backend {
        match self {
            PooledConn::Sqlite(conn) => conn.backend(),
            PooledConn::Postgres(conn) => conn.backend(),
        }
    }
}

impl Reader {
    /// Reads on a PostgreSQL pool.
    pub(crate) fn postgres(pool: sqlx::PgPool) -> Self {
        Reader(ReadPool::Postgres(pool))
    }

    /// The SQLite pool, for what only SQLite's store reads so far (events, search, statistics).
    fn sqlite(&self) -> Result<&SqlitePool, StoreError> {
        match &self.0 {
            ReadPool::Sqlite(pool) => Ok(pool),
            ReadPool::Postgres(_) => Err(StoreError::NotOnPostgres),
        }
    }

    /// The PostgreSQL pool, when the reads are there.
    fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.0 {
            ReadPool::Postgres(pool) => Some(pool),
            ReadPool::Sqlite(_) => None,
        }
    }

    /// A connection of the SQLite pool.
    async fn connection(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, StoreError> {
        Ok(self.sqlite()?.acquire().await?)
    }

    /// A connection of either backend, for the tables both hold alike.
    pub(crate) async fn table_connection(&self) -> Result<PooledConn, StoreError> {
        Ok(match &self.0 {
            ReadPool::Sqlite(pool) => PooledConn::Sqlite(pool.acquire().await?),
            ReadPool::Postgres(pool) => PooledConn::Postgres(pool.acquire().await?),
        })
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        match &self.0 {
            ReadPool::Sqlite(pool) => pool.close().await,
            ReadPool::Postgres(pool) => pool.close().await,
        }
    }
}

/// One database as a stage that reads and writes uses it: the shared write connection and the read pool.
#[derive(Debug, Clone)]
pub struct Db {
    /// Writes, in turn with the other writers.
    pub writer: Writer,
    /// Reads, beside everything else.
    pub reader: Reader,
}

/// Opens (creating if needed) and migrates the database, returning its write connection: WAL, `synchronous=NORMAL`
/// (a commit survives a crash of hsmwatch; only power loss may take the last commits back).
pub async fn open_writer(path: &Path) -> Result<WriteConn, StoreError> {
    let options = connect_options(path)
        .create_if_missing(true)
        // For a new database only (WAL fixes the page size of an existing one): fewer, larger pages make inserting
        // and checkpointing a row cheaper (measured: SQLite's CPU per loggen row 3.2 -> 2.6 us, checkpoints included).
        .page_size(PAGE_SIZE)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let mut conn = options.connect().await.map_err(|cause| StoreError::Open { path: path.to_owned(), cause })?;
    sqlx::migrate!("./migrations")
        .run(&mut conn)
        .await
        .map_err(|cause| StoreError::Migrate { path: path.to_owned(), cause })?;
    Ok(WriteConn(conn))
}

/// A second connection on a database [`open_writer`] opened and migrated, for the store's own background work
/// (checkpoints): it runs no migrations.
async fn open_background(path: &Path) -> Result<SqliteConnection, StoreError> {
    connect_options(path).connect().await.map_err(|cause| StoreError::Open { path: path.to_owned(), cause })
}

pub use tables::{in_transaction, Backend, TableConn};

/// A write connection rule evaluation runs on: it reads the stored events in id order and writes what they fired.
pub trait EvaluationConn: TableConn {
    /// Up to `limit` events stored after id `after`, oldest first.
    fn events_after(
        &mut self,
        after: i64,
        limit: i64,
    ) -> impl std::future::Future<Output = Result<Vec<query::StoredEvent>, StoreError>> + Send;
}

impl EvaluationConn for WriteConn {
    fn events_after(
        &mut self,
        after: i64,
        limit: i64,
    ) -> impl std::future::Future<Output = Result<Vec<query::StoredEvent>, StoreError>> + Send {
        query::events_after(self, after, limit)
    }
}

/// Caps the database at `bytes` for writes on this connection (`PRAGMA max_page_count`): past it, writes fail with
/// SQLITE_FULL, which the writer treats like a full disk (hold, retry, slow the senders).
pub async fn cap_size(conn: &mut WriteConn, bytes: u64) -> Result<(), StoreError> {
    let conn = &mut conn.0;
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(&mut *conn).await?;
    sqlx::query(&format!("PRAGMA max_page_count = {}", cap_pages(bytes, page_size))).execute(&mut *conn).await?;
    Ok(())
}

/// Pages of `page_size` bytes within a cap of `bytes` (at least one).
fn cap_pages(bytes: u64, page_size: i64) -> u64 {
    (bytes / u64::try_from(page_size.max(512)).unwrap_or(4096)).max(1)
}

/// Opens a read-only pool on an existing database, for queries that run while the server writes.
pub async fn open_reader(path: &Path) -> Result<Reader, StoreError> {
    if !path.exists() {
        return Err(StoreError::Missing { path: path.to_owned() });
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(connect_options(path).read_only(true))
        .await
        .map_err(|cause| StoreError::Open { path: path.to_owned(), cause })?;
    Ok(Reader(ReadPool::Sqlite(pool)))
}

/// Closes the write connection, checkpointing the WAL into the main file.
pub async fn close_writer(conn: WriteConn) -> Result<(), StoreError> {
    Ok(conn.0.close().await?)
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::Sql(error)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Insert(error)
    }
}
