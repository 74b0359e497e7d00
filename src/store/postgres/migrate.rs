//! Moving a SQLite database to PostgreSQL (`hsmwatch db migrate-to postgres`): the events with their ids (the line
//! expanded where SQLite compressed it), the tamper-evident chain's records and anchor as they are, so that the chain
//! verifies on the copy, and the tables both backends hold alike (alerts with their changes, the outbox, silences,
//! throttle marks, rule state and the rule cursor, so that the first leader continues where the SQLite server
//! stopped) and the hourly activity. One transaction: a copy that fails leaves the target as it was. What only SQLite
//! keeps so far (SNMP and cloud state, the inventory's facts) is not copied.

use std::collections::HashSet;

use futures_util::TryStreamExt;
use sqlx::postgres::PgArguments;
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, PgConnection, Postgres, Row, SqliteConnection};

use super::events::{create_partition, line_hash, month_of, EventArrays, HEARD, WRITE_LOCK};
use super::PgStore;
use crate::store::chain::{sqlite_rows_after, StoredRow};
use crate::store::compressed::Expander;
use crate::store::schema::{self, Column, Kind, SharedTable, SHARED_TABLES};
use crate::store::tables::Backend;
use crate::store::{Reader, StoreError};

/// Event rows read and written at a time.
const EVENT_PAGE: i64 = 2_000;

/// Rows of the other tables written at a time.
const TABLE_PAGE: i64 = 500;

/// How far a copy has got, as it reports it.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// Rows of a table.
    Rows {
        /// The table being copied.
        table: &'a str,
        /// Its rows copied so far.
        copied: u64,
        /// Its rows in the source.
        total: u64,
    },
    /// Every row is copied; the events' indexes are being built over them.
    Indexing,
}

/// One table's rows in the source and in the target after the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    /// The table.
    pub table: String,
    /// Its rows in the SQLite database.
    pub source: u64,
    /// Its rows in PostgreSQL afterwards.
    pub target: u64,
}

/// Copies the SQLite database behind `source` into `target`'s empty database, in one transaction on each side (the
/// source read as one snapshot), reporting progress; returns each table's rows on both sides.
pub async fn copy_sqlite(
    source: &Reader,
    target: &PgStore,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<TableCount>, StoreError> {
    let mut source_conn = source.connection().await?;
    sqlx::query("BEGIN").execute(&mut *source_conn).await?;
    let mut target_conn = target.pool.acquire().await?;
    let mut transaction = target_conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(WRITE_LOCK).execute(&mut *transaction).await?;
    ensure_empty(&mut transaction, target.server()).await?;
    let differences = schema::differences(&mut *transaction).await?;
    if !differences.is_empty() {
        return Err(StoreError::SchemaDiffers {
            server: target.server().to_owned(),
            differences: differences.join("; "),
        });
    }
    let indexes = drop_secondary_indexes(&mut transaction).await?;
    let events = copy_events(&mut source_conn, &mut transaction, target.collector(), progress).await;
    let mut counts = vec![events.map_err(|cause| StoreError::Copy { table: "events", cause: Box::new(cause) })?];
    for table in SHARED_TABLES {
        let copied = copy_table(&mut source_conn, &mut transaction, &table, progress).await;
        counts.push(copied.map_err(|cause| StoreError::Copy { table: table.name, cause: Box::new(cause) })?);
    }
    for table in ["events", "event_batches", "silences", "alerts", "alert_changes", "outbox"] {
        let sql = format!("SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))");
        sqlx::query(&sql).execute(&mut *transaction).await?;
    }
    progress(Progress::Indexing);
    // Building an index sorts its keys: in memory rather than in many passes over temporary files (this transaction
    // only; the server's own setting for everything else).
    sqlx::query("SET LOCAL maintenance_work_mem = '512MB'").execute(&mut *transaction).await?;
    for definition in &indexes {
        // A partitioned table's index reads `ON ONLY events`: made again, it is made on every partition.
        sqlx::query(&definition.replacen(" ON ONLY ", " ON ", 1)).execute(&mut *transaction).await?;
    }
    for count in &mut counts {
        let sql = format!("SELECT count(*) FROM {}", count.table);
        count.target = sqlx::query_scalar::<_, i64>(&sql).fetch_one(&mut *transaction).await? as u64;
    }
    transaction.commit().await?;
    let _ = sqlx::query("COMMIT").execute(&mut *source_conn).await;
    Ok(counts)
}

/// Drops the events' secondary indexes and returns their definitions, to make them once over every row at the end:
/// kept up to date row by row they are most of an insert, and slower the larger they grow. The primary key and the
/// dedupe key stay: the copy numbers identical lines by the second.
async fn drop_secondary_indexes(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'events' \
         AND indexname NOT IN ('events_pkey', 'events_copy')",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (name, _) in &indexes {
        sqlx::query(&format!("DROP INDEX {name}")).execute(&mut *conn).await?;
    }
    Ok(indexes.into_iter().map(|(_, definition)| definition).collect())
}

/// Refuses a target that holds events, chain records, alerts, silences or rule state already.
async fn ensure_empty(conn: &mut PgConnection, server: &str) -> Result<(), StoreError> {
    for (table, what) in [
        ("events", "events"),
        ("event_batches", "chain records"),
        ("alerts", "alerts"),
        ("silences", "silences"),
        ("rule_state", "rule state"),
    ] {
        let held: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut *conn).await?;
        if held > 0 {
            return Err(StoreError::TargetNotEmpty { server: server.to_owned(), what: format!("{held} {what}") });
        }
    }
    Ok(())
}

/// Copies the events with their ids, as received by `collector` (their observer), and what they tell of who heard
/// each host.
async fn copy_events(
    source: &mut SqliteConnection,
    target: &mut PgConnection,
    collector: &str,
    progress: &mut dyn FnMut(Progress),
) -> Result<TableCount, StoreError> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&mut *source).await?;
    let total = total as u64;
    let mut expander = Expander::default();
    let mut months = HashSet::new();
    let (mut after, mut copied) = (i64::MIN, 0u64);
    loop {
        let rows = sqlite_rows_after(source, after, EVENT_PAGE, &mut expander).await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        for month in rows.iter().filter_map(|row| month_of(row.times[0])) {
            if months.insert(month) {
                create_partition(target, month).await?;
            }
        }
        insert_events(target, &rows, collector).await?;
        super::grams::index(target, rows.iter().map(|row| (row.id, row.typed[7].as_deref()))).await?;
        let hosts: Vec<String> = rows.iter().map(|row| row.typed[0].clone().unwrap_or_default()).collect();
        let created: Vec<i64> = rows.iter().map(|row| row.times[2]).collect();
        sqlx::query(HEARD).bind(&hosts).bind(&created).bind(collector).execute(&mut *target).await?;
        copied += rows.len() as u64;
        progress(Progress::Rows { table: "events", copied, total });
    }
    Ok(TableCount { table: "events".into(), source: total, target: 0 })
}

/// Inserts rows with their ids. Two identical lines at the same time from one host (two failed logins in a second)
/// need different occurrences in the dedupe key: a row the key refuses is tried again with the next one.
async fn insert_events(target: &mut PgConnection, rows: &[StoredRow], collector: &str) -> Result<(), StoreError> {
    let mut pending: Vec<(&StoredRow, i16)> = rows.iter().map(|row| (row, 1)).collect();
    while !pending.is_empty() {
        let stored: HashSet<i64> = insert_event_rows(target, &pending, collector).await?.into_iter().collect();
        pending = pending
            .into_iter()
            .filter(|(row, _)| !stored.contains(&row.id))
            .map(|(row, occurrence)| (row, occurrence.saturating_add(1)))
            .collect();
        if let Some((row, i16::MAX)) = pending.first() {
            return Err(StoreError::CorruptRow { id: row.id, reason: "too many identical lines at one time".into() });
        }
    }
    Ok(())
}

/// One statement for rows and their occurrences; returns the ids stored.
async fn insert_event_rows(
    target: &mut PgConnection,
    rows: &[(&StoredRow, i16)],
    collector: &str,
) -> Result<Vec<i64>, StoreError> {
    let ids: Vec<i64> = rows.iter().map(|(row, _)| row.id).collect();
    let hashes: Vec<Vec<u8>> =
        rows.iter().map(|(row, _)| line_hash(row.typed[7].as_deref(), row.raw.as_deref()).to_vec()).collect();
    let stored = EventArrays::of(rows.iter().map(|(row, _)| row.image()))
        .bind(sqlx::query(COPY_EVENTS).bind(ids))
        .bind(hashes)
        .bind(rows.iter().map(|(_, occurrence)| *occurrence).collect::<Vec<i16>>())
        .bind(collector)
        .fetch_all(&mut *target)
        .await?;
    Ok(stored.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?)
}

/// Rows of SQLite's events with their ids, as arrays.
const COPY_EVENTS: &str = "INSERT INTO events (id, ts, ts_digits, created, created_digits, host, dataset, action, \
     outcome, user_name, source_ip, format, original, raw, fields, message_at, line_hash, occurrence, observer) \
     OVERRIDING SYSTEM VALUE SELECT *, $19::text FROM UNNEST($1::int8[], $2::int8[], $3::int2[], $4::int8[], \
     $5::int2[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
     $14::bytea[], $15::bytea[], $16::int4[], $17::bytea[], $18::int2[]) \
     ON CONFLICT (host, ts, line_hash, occurrence) DO NOTHING RETURNING id";

/// A column's value.
enum Value {
    Integer(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

/// A source row's value of column `index`, read as `column` describes it.
fn value_of(row: &SqliteRow, index: usize, column: &Column) -> Result<Value, StoreError> {
    Ok(match column.kind {
        Kind::Integer => Value::Integer(row.try_get(index)?),
        Kind::Text => Value::Text(row.try_get(index)?),
        Kind::Bytes => Value::Bytes(row.try_get(index)?),
    })
}

/// `query` with `value` bound next.
fn bind_value<'q>(
    query: sqlx::query::Query<'q, Postgres, PgArguments>,
    value: Value,
) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    // An integer goes as a BIGINT; PostgreSQL narrows it to a SMALLINT column on assignment.
    match value {
        Value::Integer(v) => query.bind(v),
        Value::Text(v) => query.bind(v),
        Value::Bytes(v) => query.bind(v),
    }
}

/// Copies one table's rows (a single-row table: its row over the one the target's migrations made), read as one
/// stream and written in chunks.
async fn copy_table(
    source: &mut SqliteConnection,
    target: &mut PgConnection,
    table: &SharedTable,
    progress: &mut dyn FnMut(Progress),
) -> Result<TableCount, StoreError> {
    let columns = table.columns(Backend::Sqlite);
    let (single_row, table) = (table.single_row, table.name);
    let names: Vec<&str> = columns.iter().map(|column| column.name).collect();
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut *source).await?;
    let total = total as u64;
    let select = format!("SELECT {} FROM {table}", names.join(", "));
    let mut rows = sqlx::query(&select).fetch(&mut *source);
    let (mut chunk, mut copied) = (Vec::new(), 0u64);
    let mut write = async |chunk: Vec<Vec<Value>>, target: &mut PgConnection| {
        copied += chunk.len() as u64;
        if single_row.is_some() {
            update_single_row(target, table, &names, chunk).await?;
        } else {
            insert_rows(target, table, &names, chunk).await?;
        }
        progress(Progress::Rows { table, copied, total });
        Ok::<_, StoreError>(())
    };
    while let Some(row) = rows.try_next().await? {
        let values = columns.iter().enumerate().map(|(index, column)| value_of(&row, index, column));
        chunk.push(values.collect::<Result<Vec<Value>, _>>()?);
        if chunk.len() as i64 == TABLE_PAGE {
            write(std::mem::take(&mut chunk), target).await?;
        }
    }
    if !chunk.is_empty() {
        write(chunk, target).await?;
    }
    Ok(TableCount { table: table.to_owned(), source: total, target: 0 })
}

/// Inserts rows of `names`' values.
async fn insert_rows(
    target: &mut PgConnection,
    table: &str,
    names: &[&str],
    rows: Vec<Vec<Value>>,
) -> Result<(), StoreError> {
    let width = names.len();
    let tuples: Vec<String> = (0..rows.len())
        .map(|row| {
            let places: Vec<String> = (1..=width).map(|column| format!("${}", row * width + column)).collect();
            format!("({})", places.join(", "))
        })
        .collect();
    let sql = format!("INSERT INTO {table} ({}) VALUES {}", names.join(", "), tuples.join(", "));
    let mut query = sqlx::query(&sql);
    for value in rows.into_iter().flatten() {
        query = bind_value(query, value);
    }
    query.execute(&mut *target).await?;
    Ok(())
}

/// Sets the one row of a single-row table to the source's values.
async fn update_single_row(
    target: &mut PgConnection,
    table: &str,
    names: &[&str],
    rows: Vec<Vec<Value>>,
) -> Result<(), StoreError> {
    for row in rows {
        let mut assignments = Vec::new();
        let mut values = Vec::new();
        for (name, value) in names.iter().zip(row) {
            if *name != "id" {
                values.push(value);
                assignments.push(format!("{name} = ${}", values.len()));
            }
        }
        let sql = format!("UPDATE {table} SET {} WHERE id = 1", assignments.join(", "));
        let mut query = sqlx::query(&sql);
        for value in values {
            query = bind_value(query, value);
        }
        query.execute(&mut *target).await?;
    }
    Ok(())
}
