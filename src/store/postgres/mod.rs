//! PostgreSQL, the database several collectors share (`storage.backend: postgres`; its migrations in
//! `migrations_postgres/`, the shared tables' rendered from [`super::schema`]): its events ([`events`]: each line
//! stored once however many collectors receive it), the chain over them ([`chain`]), who hears each host ([`heard`]),
//! its search index ([`grams`]), which collector leads ([`leadership`]: evaluates rules, records and delivers alerts),
//! what the leader's evaluation keeps ([`evaluation`]: the rule cursor and rule state, and its writes to the tables
//! both backends hold alike, see [`super::tables`]) and the move of a SQLite database into it ([`migrate`]).

pub mod chain;
pub mod evaluation;
pub mod events;
mod grams;
pub mod heard;
pub mod leadership;
pub mod migrate;
pub mod stats;
pub mod writer;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::StoreError;

pub use events::{BatchStored, StoredEvent, DEFAULT_COPY_WINDOW};
pub use leadership::{Lead, LeaderConn};

/// How long a statement waits for a connection of the pool (while the database is unreachable, among others).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// A PostgreSQL store, as one collector uses it; its clones share the pool, the instance and what the batches
/// remember.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// This collector's name (`observer.name`).
    collector: String,
    /// Host, port and database, for messages (never the password).
    server: String,
    /// What storing batches remembers: the month partitions known to exist, the lines stored lately.
    batches: Arc<Mutex<Batches>>,
    /// This process among collectors of the same name: the lease's holder is both.
    instance: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgStore({} as {})", self.server, self.holder())
    }
}

/// What storing batches remembers between them.
struct Batches {
    /// The month partitions known to exist.
    months: HashSet<(i32, u32)>,
    /// The lines stored lately, to number identical ones.
    copies: events::Copies,
}

/// Where `options` point, without the password.
fn describe(options: &PgConnectOptions) -> String {
    format!("{}:{}/{}", options.get_host(), options.get_port(), options.get_database().unwrap_or(""))
}

/// Reads on the PostgreSQL database at `url` for a command (`hsmwatch query`, `alerts`): no migration, a small pool.
pub async fn open_reader(url: &str) -> Result<super::Reader, StoreError> {
    Ok(super::Reader::postgres(open_pool(url, COMMAND_CONNECTIONS).await?.0))
}

/// Connections of a command's pool; a server's has [`SERVER_CONNECTIONS`].
const COMMAND_CONNECTIONS: u32 = 2;

/// Connections of a collector's pool: its writer, its leader, its delivery workers and the API take turns.
const SERVER_CONNECTIONS: u32 = 4;

/// A pool of `connections` on `url` and the server it names (host, port, database), without migrating.
async fn open_pool(url: &str, connections: u32) -> Result<(PgPool, String), StoreError> {
    let options: PgConnectOptions =
        url.parse().map_err(|cause| StoreError::OpenPostgres { server: "the database URL".into(), cause })?;
    let server = describe(&options);
    // hsmwatch's statements read a few rows through indexes: compiling one (JIT, when the planner's estimate is high,
    // as a search's is on 10M events) took 40 of its 61 ms.
    let options = options.options([("jit", "off")]);
    let pool = PgPoolOptions::new()
        .max_connections(connections)
        // A database that is down shows as failing writes (retried, logged, in /readyz) within seconds, not as a
        // writer silently waiting for a connection.
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|cause| StoreError::OpenPostgres { server: server.clone(), cause })?;
    Ok((pool, server))
}

/// A connection to the database at `url` for a command's writes to the tables both backends hold (acknowledging an
/// alert, adding a silence): no migration.
pub async fn open_connection(url: &str) -> Result<super::PooledConn, StoreError> {
    Ok(super::PooledConn::Postgres(open_pool(url, COMMAND_CONNECTIONS).await?.0.acquire().await?))
}

/// The statistics of the database at `url` (`hsmwatch db stats`).
pub async fn shared_stats(url: &str) -> Result<stats::SharedStats, StoreError> {
    let (pool, server) = open_pool(url, COMMAND_CONNECTIONS).await?;
    let found = stats::stats(&pool, &server).await;
    pool.close().await;
    found
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/database`, with `sslmode` and `sslrootcert` for TLS) as
    /// `collector`, and brings the schema up to date (collectors starting together take turns).
    pub async fn open(url: &str, collector: &str, copy_window: Duration) -> Result<PgStore, StoreError> {
        let (pool, server) = open_pool(url, SERVER_CONNECTIONS).await?;
        sqlx::migrate!("./migrations_postgres")
            .run(&pool)
            .await
            .map_err(|cause| StoreError::MigratePostgres { server: server.clone(), cause })?;
        Ok(PgStore {
            pool,
            collector: collector.to_owned(),
            server,
            batches: Arc::new(Mutex::new(Batches { months: HashSet::new(), copies: events::Copies::new(copy_window) })),
            instance: instance()?,
        })
    }

    /// Writes on this database, for the tables both backends hold alike (delivery, triage).
    pub fn writer(&self) -> super::Writer {
        super::Writer::postgres(self.pool.clone())
    }

    /// Reads on this database, beside the collector's writes.
    pub fn reader(&self) -> super::Reader {
        super::Reader::postgres(self.pool.clone())
    }

    /// Host, port and database.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// This collector's name.
    pub fn collector(&self) -> &str {
        &self.collector
    }

    /// What storing batches remembers, for one step (never held across a wait).
    fn batches(&self) -> std::sync::MutexGuard<'_, Batches> {
        self.batches.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The lease holder this process is: its collector's name and its instance.
    pub fn holder(&self) -> String {
        format!("{} {}", self.collector, self.instance)
    }
}

/// A random instance name: two processes given the same collector name never both hold the lease.
fn instance() -> Result<String, StoreError> {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes).map_err(|error| StoreError::OpenPostgres {
        server: "this host".into(),
        cause: sqlx::Error::Io(std::io::Error::other(error.to_string())),
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
