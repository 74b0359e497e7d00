//! The tables both backends hold alike, described once: what each backend's migrations must make of them (checked when
//! a server opens PostgreSQL, and by the tests on fresh databases of both), and what `db migrate-to` copies. The SQL
//! the table modules run on them is one text for both ([`super::tables`]).
//!
//! A table's columns are written `name type [null] [key] [postgres]`, separated by `;`: the type is `integer`, `text`
//! or `bytes` (how SQLite and PostgreSQL store it may differ in width: a flag is a SMALLINT there); a column is NOT NULL
//! unless it says `null`; `key` columns make the primary key, in order; `postgres` marks a column only the shared
//! database has (what several collectors need, such as a leader's term).

use super::tables::Backend;
use super::{StoreError, TableConn};

/// A table both backends hold.
#[derive(Debug, Clone, Copy)]
pub struct SharedTable {
    /// Its name.
    pub name: &'static str,
    /// Its columns, as the module doc says.
    pub columns: &'static str,
    /// Whether it holds one row (`id = 1`), which its migration makes.
    pub single_row: bool,
}

/// The tables both backends hold, in an order their references allow.
pub const SHARED_TABLES: [SharedTable; 10] = [
    SharedTable {
        name: "silences",
        columns: "id integer key; matchers text; starts_at integer; ends_at integer; reason text; created_by text; \
                  expired_at integer null",
        single_row: false,
    },
    SharedTable {
        name: "alerts",
        columns: "id integer key; rule_id text; fingerprint text; severity text; status text; group_json text; \
                  count integer; first_seen integer null; last_seen integer null; fired_at integer; title text; \
                  body text; event_ids text; notify integer; suppressed integer; host text null; \
                  silenced_by integer null; held_back text null; alert_id integer null; state text null; \
                  state_at integer null; state_by text null; firings integer null; last_id integer null; \
                  last_fired_at integer null",
        single_row: false,
    },
    SharedTable {
        name: "alert_changes",
        columns: "id integer key; alert_id integer; at integer; actor text; change text; note text null",
        single_row: false,
    },
    SharedTable {
        name: "throttle_marks",
        columns: "fingerprint text key; last_sent integer; suppressed integer",
        single_row: false,
    },
    SharedTable {
        name: "outbox",
        columns: "id integer key; alert_id integer; notifier text; status text; attempts integer; \
                  next_attempt_at integer; created_at integer; sent_at integer null; last_error text null; \
                  idempotency_key text; digest_size integer null; lease_until integer null",
        single_row: false,
    },
    SharedTable {
        name: "rule_state",
        columns: "rule_id text key; rule_hash text; group_key text key; state text",
        single_row: false,
    },
    SharedTable {
        name: "rule_cursor",
        columns: "id integer key; last_event_id integer; term integer postgres",
        single_row: true,
    },
    SharedTable {
        name: "event_batches",
        columns: "id integer key; first_event_id integer; last_event_id integer; row_count integer; \
                  stored_at integer; prev_hash text; hash text; scheme integer; kind integer; anchor_hash text null; \
                  anchor_batches integer null; anchor_events integer null",
        single_row: false,
    },
    SharedTable {
        name: "chain_anchor",
        columns: "id integer key; last_event_id integer; hash text; pruned_batches integer; pruned_events integer; \
                  legacy_last_event_id integer; adopt integer",
        single_row: true,
    },
    SharedTable {
        name: "event_hours",
        columns: "hour integer key; host text key; category text key; events integer; failed_logins integer",
        single_row: false,
    },
];

/// How a column is stored, as both backends' types group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// INTEGER in SQLite; SMALLINT, INTEGER or BIGINT in PostgreSQL.
    Integer,
    /// TEXT.
    Text,
    /// BLOB in SQLite, BYTEA in PostgreSQL.
    Bytes,
}

/// One column of a [`SharedTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: &'static str,
    /// How it is stored.
    pub kind: Kind,
    /// Whether it may be NULL.
    pub nullable: bool,
    /// Whether it is part of the primary key.
    pub key: bool,
    /// Whether only PostgreSQL has it.
    pub postgres_only: bool,
}

impl SharedTable {
    /// Its columns on `backend`, in order.
    pub fn columns(&self, backend: Backend) -> Vec<Column> {
        self.columns
            .split(';')
            .map(|spec| {
                let mut words = spec.split_whitespace();
                let name = words.next().unwrap_or_default();
                let kind = match words.next() {
                    Some("text") => Kind::Text,
                    Some("bytes") => Kind::Bytes,
                    _ => Kind::Integer,
                };
                let flags: Vec<&str> = words.collect();
                Column {
                    name,
                    kind,
                    nullable: flags.contains(&"null"),
                    key: flags.contains(&"key"),
                    postgres_only: flags.contains(&"postgres"),
                }
            })
            .filter(|column| backend == Backend::Postgres || !column.postgres_only)
            .collect()
    }
}

/// How the shared tables of the database behind `conn` differ from their description, one line each (none: alike).
pub async fn differences<C: TableConn>(conn: &mut C) -> Result<Vec<String>, StoreError> {
    let backend = conn.backend();
    let mut found = Vec::new();
    for table in SHARED_TABLES {
        let actual = columns_of(conn, table.name).await?;
        if actual.is_empty() {
            found.push(format!("{}: missing", table.name));
            continue;
        }
        let described = table.columns(backend);
        for column in &described {
            match actual.iter().find(|a| a.name == column.name) {
                None => found.push(format!("{}.{}: missing", table.name, column.name)),
                Some(a) if (a.kind, a.nullable, a.key) != (column.kind, column.nullable, column.key) => found
                    .push(format!("{}.{}: {:?} where the description says {:?}", table.name, column.name, a, column)),
                Some(_) => {}
            }
        }
        for extra in actual.iter().filter(|a| !described.iter().any(|c| c.name == a.name)) {
            found.push(format!("{}.{}: not in the description", table.name, extra.name));
        }
    }
    Ok(found)
}

/// A column as a database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ActualColumn {
    name: String,
    kind: Kind,
    nullable: bool,
    key: bool,
}

/// The columns of `table` as the database behind `conn` has them (none when it has no such table).
async fn columns_of<C: TableConn>(conn: &mut C, table: &str) -> Result<Vec<ActualColumn>, StoreError> {
    let sql = match conn.backend() {
        Backend::Sqlite => "SELECT name, type, \"notnull\", pk > 0 FROM pragma_table_info($1)",
        Backend::Postgres => {
            "SELECT c.column_name::text, c.data_type::text, CASE WHEN c.is_nullable = 'NO' THEN 1 ELSE 0 END, \
             CASE WHEN EXISTS (SELECT 1 FROM information_schema.table_constraints t \
             JOIN information_schema.key_column_usage k ON k.constraint_name = t.constraint_name \
             AND k.table_name = t.table_name AND k.table_schema = t.table_schema \
             WHERE t.table_name = c.table_name AND t.table_schema = c.table_schema \
             AND t.constraint_type = 'PRIMARY KEY' AND k.column_name = c.column_name) THEN 1 ELSE 0 END \
             FROM information_schema.columns c WHERE c.table_schema = current_schema() AND c.table_name = $1"
        }
    };
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(sql).bind(table).fetch_all(&mut conn.tables()).await?;
    Ok(rows
        .into_iter()
        .map(|(name, declared, not_null, key)| ActualColumn {
            name,
            kind: match declared.to_ascii_lowercase().as_str() {
                "text" => Kind::Text,
                "blob" | "bytea" => Kind::Bytes,
                _ => Kind::Integer,
            },
            // A key column holds no NULL, whatever SQLite's table_info says of a TEXT key.
            nullable: not_null == 0 && key == 0,
            key: key != 0,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_reads_its_columns_with_their_types_and_flags() {
        let cursor = SHARED_TABLES.iter().find(|t| t.name == "rule_cursor").unwrap();
        let names = |backend| cursor.columns(backend).iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(names(Backend::Sqlite), ["id", "last_event_id"]);
        assert_eq!(names(Backend::Postgres), ["id", "last_event_id", "term"]);
        let alerts = SHARED_TABLES.iter().find(|t| t.name == "alerts").unwrap().columns(Backend::Sqlite);
        let host = alerts.iter().find(|c| c.name == "host").unwrap();
        assert_eq!((host.kind, host.nullable, host.key), (Kind::Text, true, false));
        assert!(alerts[0].key && !alerts[0].nullable);
        assert!(SHARED_TABLES.iter().all(|t| t.columns(Backend::Postgres).iter().all(|c| !c.name.is_empty())));
    }

    #[tokio::test]
    async fn a_column_added_or_changed_by_hand_is_a_difference() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::store::open_writer(&dir.path().join("t.db")).await.unwrap();
        assert_eq!(differences(&mut conn).await.unwrap(), Vec::<String>::new());
        sqlx::query("ALTER TABLE alerts ADD COLUMN extra TEXT").execute(&mut conn.0).await.unwrap();
        sqlx::query("DROP TABLE event_hours").execute(&mut conn.0).await.unwrap();
        assert_eq!(
            differences(&mut conn).await.unwrap(),
            ["alerts.extra: not in the description", "event_hours: missing"]
        );
    }
}
