//! The tables both backends hold alike (alerts, outbox, rule state, throttle marks, silences): their modules write one
//! SQL text for SQLite and PostgreSQL and run it on either backend's own connection through sqlx's `Any` values.
//!
//! What that text may use: `$1`…`$n` placeholders numbered in order of first use (SQLite binds `$N` to the N-th
//! value, PostgreSQL too), `ON CONFLICT … DO UPDATE / DO NOTHING`, `RETURNING`, integer times (microseconds), and
//! values of `Any`'s types (integers, text, bytes, floats; a flag is an integer, as SQLite stores it). A multi-row
//! insert writes its rows with [`Backend::values_row`] instead: SQLite looks a numbered placeholder up by walking the
//! statement's list of names, once for each value bound, which grows with the square of the values.

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::{Any, Describe, Either, Execute, Executor};
use sqlx_core::any::AnyConnectionBackend;

use super::{StoreError, WriteConn};

/// A connection of either backend, as the table modules run statements on it.
pub struct Tables<'c>(&'c mut dyn AnyConnectionBackend);

impl std::fmt::Debug for Tables<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tables({})", self.0.name())
    }
}

impl<'c, 'b: 'c> Executor<'c> for &'c mut Tables<'b> {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        mut query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match query.take_arguments().map_err(sqlx::Error::Encode) {
            Ok(arguments) => self.0.fetch_many(query.sql(), query.persistent(), arguments),
            Err(error) => futures_util::stream::once(std::future::ready(Err(error))).boxed(),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, mut query: E) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match query.take_arguments().map_err(sqlx::Error::Encode) {
            Ok(arguments) => self.0.fetch_optional(query.sql(), query.persistent(), arguments),
            Err(error) => std::future::ready(Err(error)).boxed(),
        }
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.0.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.0.describe(sql)
    }
}

/// A database the store can keep the tables on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// Shared by several collectors.
    Postgres,
}

impl Backend {
    /// The statement that begins a write transaction (SQLite takes its write lock at once, so a transaction never
    /// fails half-way for want of it).
    fn begin_statement(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// The placeholders of row `row` (from 0) of a multi-row insert of `columns` values a row: SQLite's anonymous
    /// (`?`, bound in order), PostgreSQL's numbered on from the rows before. Numbered ones on SQLite cost an import of a
    /// year's lines half its time in 500-row statements of the hourly counts.
    pub fn values_row(self, row: usize, columns: usize) -> String {
        let values: Vec<String> = match self {
            Backend::Sqlite => vec!["?".to_owned(); columns],
            Backend::Postgres => (1..=columns).map(|column| format!("${}", row * columns + column)).collect(),
        };
        format!("({})", values.join(", "))
    }
}

/// A connection the table modules can use: SQLite's write connection or a pooled reader, or a PostgreSQL connection.
pub trait TableConn: Send {
    /// The connection, for the statements of one call.
    fn tables(&mut self) -> Tables<'_>;

    /// Which database it is on, for the few statements that differ.
    fn backend(&self) -> Backend;

    /// Checks, first in each write transaction, that this connection may still write (a leader's term is still its
    /// own); what it locks for the check stays locked until the transaction ends.
    fn fence(&mut self) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        std::future::ready(Ok(()))
    }
}

impl TableConn for WriteConn {
    fn tables(&mut self) -> Tables<'_> {
        Tables(&mut self.0)
    }

    fn backend(&self) -> Backend {
        Backend::Sqlite
    }
}

impl TableConn for sqlx::SqliteConnection {
    fn tables(&mut self) -> Tables<'_> {
        Tables(self)
    }

    fn backend(&self) -> Backend {
        Backend::Sqlite
    }
}

impl TableConn for sqlx::PgConnection {
    fn tables(&mut self) -> Tables<'_> {
        Tables(self)
    }

    fn backend(&self) -> Backend {
        Backend::Postgres
    }
}

/// Runs `work` inside a transaction on `conn` (`BEGIN IMMEDIATE` on SQLite, `BEGIN` on PostgreSQL, then the
/// connection's [`TableConn::fence`]) … `COMMIT`; when it fails the transaction is rolled back (it may already be
/// gone: SQLITE_FULL rolls back on its own) and its error returned. The typed functions `work` calls join the
/// transaction.
pub async fn in_transaction<C: TableConn, T>(
    conn: &mut C,
    work: impl AsyncFnOnce(&mut C) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let begin = conn.backend().begin_statement();
    sqlx::query(begin).execute(&mut conn.tables()).await?;
    let done = match conn.fence().await {
        Ok(()) => work(&mut *conn).await,
        Err(error) => Err(error),
    };
    match done {
        Ok(value) => {
            sqlx::query("COMMIT").execute(&mut conn.tables()).await?;
            Ok(value)
        }
        Err(error) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut conn.tables()).await;
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_rows_take_anonymous_placeholders_postgres_numbered_ones() {
        assert_eq!(Backend::Sqlite.values_row(0, 5), "(?, ?, ?, ?, ?)");
        assert_eq!(Backend::Sqlite.values_row(499, 5), "(?, ?, ?, ?, ?)");
        assert_eq!(Backend::Postgres.values_row(0, 5), "($1, $2, $3, $4, $5)");
        assert_eq!(Backend::Postgres.values_row(2, 5), "($11, $12, $13, $14, $15)");
    }
}
