//! The tables both backends hold alike, described once: what each backend's migrations make of them (rendered from
//! this description, and checked when a server opens PostgreSQL and by the tests on fresh databases of both), and what
//! `db migrate-to` copies. The SQL the table modules run on them is one text for both ([`super::tables`]).
//!
//! A table's columns are written `name type [flags]`, separated by `;`: the type is `integer`, `text` or `bytes`; a
//! column is NOT NULL unless it says `null`; `key` columns make the primary key, in order; `identity` gives a key new
//! ids when none is given (SQLite's rowid); `small` stores an integer as SMALLINT in PostgreSQL (BIGINT otherwise);
//! `default=V`, `unique` and `references=T` (to T's id) are the constraints of those names; `postgres` marks a column
//! only the shared database has (what several collectors need, such as a leader's term). An index is written
//! `[unique] name (columns) [WHERE condition]`.
//!
//! How the migrations come from it ([`rendered_migrations`], written by `cargo run --example render_migrations`, and a
//! test holds the files to it): PostgreSQL's migration [`POSTGRES_BASELINE`] creates every table as described, less
//! what a later [`Change`] adds; SQLite databases got the same tables from the migrations written before this
//! description existed (up to [`SQLITE_BASELINE`]), which stay as they are. A later change to a shared table (a new
//! table, column or index) is made in the description and listed in [`CHANGES`] with its version in each backend's
//! sequence: it becomes one migration file in each directory, and both backends' databases get it alike.

use std::fmt::Write as _;

use super::tables::Backend;
use super::{StoreError, TableConn};

/// The version of PostgreSQL's migration that creates the shared tables (`migrations_postgres/`).
pub const POSTGRES_BASELINE: u32 = 3;
/// The last of SQLite's migrations written by hand (`migrations/`), which made the shared tables there.
pub const SQLITE_BASELINE: u32 = 20;

/// A table both backends hold.
#[derive(Debug, Clone, Copy)]
pub struct SharedTable {
    /// Its name.
    pub name: &'static str,
    /// What it is for, written above it in the migration.
    pub about: &'static str,
    /// Its columns, as the module doc says.
    pub columns: &'static str,
    /// Its indexes besides the primary key, as the module doc says.
    pub indexes: &'static [&'static str],
    /// For a table of one row (`id = 1`), the columns and values of the row its migration makes, as `(a, b) VALUES
    /// (1, 2)`: columns both backends have (a PostgreSQL-only column of such a table has a default).
    pub single_row: Option<&'static str>,
}

/// A change to the shared tables made after the baseline, by one migration in each backend.
#[derive(Debug, Clone, Copy)]
pub struct Change {
    /// The migrations' name (`NNNN_name.sql`).
    pub name: &'static str,
    /// Its version among SQLite's migrations.
    pub sqlite: u32,
    /// Its version among PostgreSQL's migrations.
    pub postgres: u32,
    /// What it adds.
    pub step: Step,
}

/// What a [`Change`] adds to the description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The table of this name.
    Table(&'static str),
    /// The column of this name to the table.
    Column(&'static str, &'static str),
    /// The index of this name to the table.
    Index(&'static str, &'static str),
}

/// The changes made after the baseline, in order. None yet: the shared tables are as the baseline made them.
pub const CHANGES: &[Change] = &[];

/// The tables both backends hold, in an order their references allow.
pub const SHARED_TABLES: [SharedTable; 10] = [
    SharedTable {
        name: "silences",
        about: "Silences: alerts whose labels match `matchers` (JSON) between the two times are recorded, not sent.",
        columns: "id integer key identity; matchers text; starts_at integer; ends_at integer; reason text; \
                  created_by text; expired_at integer null",
        indexes: &["silences_ends_at (ends_at)"],
        single_row: None,
    },
    SharedTable {
        name: "alerts",
        about: "Alerts as the rules fired them, with their lifecycle (`state`) and the silence or hold that kept them \
                from being sent. Ids may be given: a copy of a SQLite database keeps its ids.",
        columns: "id integer key identity; rule_id text; fingerprint text; severity text; status text; \
                  group_json text; count integer; first_seen integer null; last_seen integer null; fired_at integer; \
                  title text; body text; event_ids text; notify integer small; suppressed integer; host text null; \
                  silenced_by integer null references=silences; held_back text null; alert_id integer null; \
                  state text null; state_at integer null; state_by text null; firings integer null; \
                  last_id integer null; last_fired_at integer null",
        indexes: &[
            "alerts_fired_at (fired_at)",
            "alerts_fingerprint (fingerprint, fired_at)",
            "alerts_host (host, fired_at)",
            "alerts_open (fingerprint) WHERE state IN ('firing', 'acknowledged')",
            "alerts_of_alert (alert_id, id)",
        ],
        single_row: None,
    },
    SharedTable {
        name: "alert_changes",
        about: "Every change of an alert's state (acknowledged, resolved, a note), by whom and when.",
        columns: "id integer key identity; alert_id integer references=alerts; at integer; actor text; change text; \
                  note text null",
        indexes: &["alert_changes_alert (alert_id, id)"],
        single_row: None,
    },
    SharedTable {
        name: "throttle_marks",
        about: "When an alert of each fingerprint was last sent, and how many were held back since.",
        columns: "fingerprint text key; last_sent integer; suppressed integer",
        indexes: &[],
        single_row: None,
    },
    SharedTable {
        name: "outbox",
        about: "One notice per alert and notifier, sent at least once; `lease_until` is how long a collector's \
                delivery worker holds it (FOR UPDATE SKIP LOCKED).",
        columns: "id integer key identity; alert_id integer references=alerts; notifier text; status text; \
                  attempts integer default=0; next_attempt_at integer; created_at integer; sent_at integer null; \
                  last_error text null; idempotency_key text unique; digest_size integer null; \
                  lease_until integer null",
        indexes: &["outbox_due (notifier, status, next_attempt_at)"],
        single_row: None,
    },
    SharedTable {
        name: "rule_state",
        about: "The rule engine's state (JSON) per rule and group, written with the rule cursor in one transaction, \
                so that the next evaluator continues a half-full window; `rule_hash` is the rule's source hash (the \
                state of a changed rule is not restored).",
        columns: "rule_id text key; rule_hash text; group_key text key; state text",
        indexes: &[],
        single_row: None,
    },
    SharedTable {
        name: "rule_cursor",
        about: "The last event the rules evaluated, and on PostgreSQL the term of the leader that moved it last.",
        columns: "id integer key small; last_event_id integer; term integer default=0 postgres",
        indexes: &[],
        single_row: Some("(id, last_event_id) VALUES (1, 0)"),
    },
    SharedTable {
        name: "event_batches",
        about: "The tamper-evident chain: one record per committed batch of events (kind 0) or prune (kind 1, its \
                anchor_* say where it put the anchor), hashed over the previous record's hash and the batch's rows, \
                written in the batch's transaction, so that the records of all collectors form one chain in commit \
                order. A record's rows are the events with ids from first_event_id to last_event_id (on PostgreSQL \
                ids have gaps: a copy or a failed batch uses an id up).",
        columns: "id integer key identity; first_event_id integer; last_event_id integer; row_count integer; \
                  stored_at integer; prev_hash text; hash text; scheme integer; kind integer default=0; \
                  anchor_hash text null; anchor_batches integer null; anchor_events integer null",
        indexes: &["event_batches_stored_at (stored_at)"],
        single_row: None,
    },
    SharedTable {
        name: "chain_anchor",
        about: "Where the chain starts: events up to last_event_id are outside it (pruned by retention, or stored \
                before the chain existed: up to legacy_last_event_id).",
        columns: "id integer key; last_event_id integer; hash text; pruned_batches integer default=0; \
                  pruned_events integer default=0; legacy_last_event_id integer default=0; adopt integer default=0",
        indexes: &[],
        single_row: Some(
            "(id, last_event_id, hash) VALUES (1, 0, \
             '0000000000000000000000000000000000000000000000000000000000000000')",
        ),
    },
    SharedTable {
        name: "event_hours",
        about:
            "Events and failed logins per hour (since the epoch, of the event's @timestamp), host and category, for \
                the dashboard's charts, counted by the collector that stores an event in the batch's transaction.",
        columns: "hour integer key; host text key; category text key; events integer; failed_logins integer",
        indexes: &[],
        single_row: None,
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
    /// Whether the database numbers new rows in it (a key).
    pub identity: bool,
    /// Whether PostgreSQL stores it as SMALLINT.
    pub small: bool,
    /// Whether no two rows hold the same value.
    pub unique: bool,
    /// Its value when an insert gives none.
    pub default: Option<&'static str>,
    /// The table whose id it refers to.
    pub references: Option<&'static str>,
}

impl Column {
    /// Reads a column written as the module doc says.
    fn parse(spec: &'static str) -> Column {
        let mut words = spec.split_whitespace();
        let name = words.next().unwrap_or_default();
        let kind = match words.next() {
            Some("text") => Kind::Text,
            Some("bytes") => Kind::Bytes,
            _ => Kind::Integer,
        };
        let flags: Vec<&'static str> = words.collect();
        let value = |prefix: &str| flags.iter().find_map(|flag| flag.strip_prefix(prefix));
        Column {
            name,
            kind,
            nullable: flags.contains(&"null"),
            key: flags.contains(&"key"),
            postgres_only: flags.contains(&"postgres"),
            identity: flags.contains(&"identity"),
            small: flags.contains(&"small"),
            unique: flags.contains(&"unique"),
            default: value("default="),
            references: value("references="),
        }
    }

    /// Its definition in a CREATE TABLE or ADD COLUMN of `backend`, the name padded to `width`.
    fn definition(&self, backend: Backend, width: usize) -> String {
        let kind = match (backend, self.kind) {
            (Backend::Sqlite, Kind::Integer) => "INTEGER",
            (Backend::Postgres, Kind::Integer) if self.identity => "BIGINT GENERATED BY DEFAULT AS IDENTITY",
            (Backend::Postgres, Kind::Integer) if self.small => "SMALLINT",
            (Backend::Postgres, Kind::Integer) => "BIGINT",
            (_, Kind::Text) => "TEXT",
            (Backend::Sqlite, Kind::Bytes) => "BLOB",
            (Backend::Postgres, Kind::Bytes) => "BYTEA",
        };
        let mut text = format!("{:width$} {kind}", self.name);
        if !self.nullable {
            text.push_str(" NOT NULL");
        }
        if let Some(default) = self.default {
            let _ = write!(text, " DEFAULT {default}");
        }
        if self.unique {
            text.push_str(" UNIQUE");
        }
        if let Some(table) = self.references {
            let _ = write!(text, " REFERENCES {table} (id)");
        }
        text
    }
}

impl SharedTable {
    /// Its columns on `backend`, in order.
    pub fn columns(&self, backend: Backend) -> Vec<Column> {
        self.columns
            .split(';')
            .map(Column::parse)
            .filter(|column| backend == Backend::Postgres || !column.postgres_only)
            .collect()
    }

    /// Its CREATE TABLE, indexes and first row on `backend`, without the columns and indexes a later change adds.
    fn create(&self, backend: Backend) -> String {
        let columns: Vec<Column> =
            self.columns(backend).into_iter().filter(|c| !added_later(Step::Column(self.name, c.name))).collect();
        let width = columns.iter().map(|column| column.name.len()).max().unwrap_or(0);
        let mut lines: Vec<String> = columns.iter().map(|column| column.definition(backend, width)).collect();
        let keys: Vec<&str> = columns.iter().filter(|column| column.key).map(|column| column.name).collect();
        lines.push(format!("PRIMARY KEY ({})", keys.join(", ")));
        if self.single_row.is_some() {
            lines.push("CHECK (id = 1)".to_owned());
        }
        let mut sql = comment(self.about);
        let _ = writeln!(sql, "CREATE TABLE {} (\n    {}\n);", self.name, lines.join(",\n    "));
        for index in self.indexes.iter().filter(|index| !added_later(Step::Index(self.name, index_name(index)))) {
            sql.push_str(&create_index(self.name, index));
        }
        if let Some(row) = self.single_row {
            let _ = writeln!(sql, "INSERT INTO {} {row};", self.name);
        }
        sql
    }
}

/// Whether a later change adds `step` (the baseline has it not).
fn added_later(step: Step) -> bool {
    CHANGES.iter().any(|change| change.step == step)
}

/// The name of an index written as the module doc says.
fn index_name(index: &str) -> &str {
    let index = index.strip_prefix("unique ").unwrap_or(index);
    index.split_whitespace().next().unwrap_or_default()
}

/// `CREATE [UNIQUE] INDEX name ON table (...)` of an index written as the module doc says.
fn create_index(table: &str, index: &str) -> String {
    let (unique, index) = match index.strip_prefix("unique ") {
        Some(rest) => ("UNIQUE ", rest),
        None => ("", index),
    };
    let (name, rest) = index.split_once(' ').unwrap_or((index, ""));
    format!("CREATE {unique}INDEX {name} ON {table} {rest};\n")
}

/// `text` as SQL comment lines of at most 120 characters.
fn comment(text: &str) -> String {
    let mut lines = vec![String::from("--")];
    for word in text.split_whitespace() {
        if lines.last().is_some_and(|line| line.len() + 1 + word.len() > 120) {
            lines.push(String::from("--"));
        }
        let line = lines.last_mut().expect("one line at least");
        line.push(' ');
        line.push_str(word);
    }
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// What a generated migration starts with.
const GENERATED: &str =
    "-- Generated from the description of the shared tables (src/store/schema.rs) by `cargo run --example \
                         render_migrations`:\n-- change the description, not this file.\n";

/// The SQL of `step` on `backend`.
fn render_step(step: Step, backend: Backend) -> String {
    let table = |name: &str| SHARED_TABLES.iter().find(|table| table.name == name);
    match step {
        Step::Table(name) => table(name).map(|table| table.create(backend)).unwrap_or_default(),
        Step::Column(name, column) => table(name)
            .and_then(|table| table.columns(backend).into_iter().find(|c| c.name == column))
            .map(|column| format!("ALTER TABLE {name} ADD COLUMN {};\n", column.definition(backend, 0)))
            .unwrap_or_default(),
        Step::Index(name, index) => table(name)
            .and_then(|table| table.indexes.iter().find(|i| index_name(i) == index))
            .map(|index| create_index(name, index))
            .unwrap_or_default(),
    }
}

/// Every migration rendered from the description: its path in the repository and its text.
pub fn rendered_migrations() -> Vec<(String, String)> {
    let mut baseline = String::from(GENERATED);
    for table in SHARED_TABLES.iter().filter(|table| !added_later(Step::Table(table.name))) {
        baseline.push('\n');
        baseline.push_str(&table.create(Backend::Postgres));
    }
    let mut files = vec![(format!("migrations_postgres/{POSTGRES_BASELINE:04}_shared_tables.sql"), baseline)];
    for (directory, backend) in [("migrations", Backend::Sqlite), ("migrations_postgres", Backend::Postgres)] {
        for change in CHANGES {
            let version = match backend {
                Backend::Sqlite => change.sqlite,
                Backend::Postgres => change.postgres,
            };
            let path = format!("{directory}/{version:04}_{}.sql", change.name);
            let step = render_step(change.step, backend);
            match files.iter_mut().find(|(existing, _)| *existing == path) {
                Some((_, text)) => text.push_str(&step),
                None => files.push((path, format!("{GENERATED}\n{step}"))),
            }
        }
    }
    files
}

/// What is wrong with the description, one line each (nothing: it renders as it says): names a change refers to that
/// do not exist, a column added to existing rows without a value for them, versions out of order.
pub fn description_faults() -> Vec<String> {
    faults_of(CHANGES)
}

/// [`description_faults`] with `changes` as the later changes.
fn faults_of(changes: &[Change]) -> Vec<String> {
    let mut faults = Vec::new();
    let table = |name: &str| SHARED_TABLES.iter().find(|table| table.name == name);
    let (mut sqlite, mut postgres) = (SQLITE_BASELINE, POSTGRES_BASELINE);
    for change in changes {
        if change.sqlite <= sqlite || change.postgres <= postgres {
            faults.push(format!("{}: its versions come before an earlier migration's", change.name));
        }
        (sqlite, postgres) = (change.sqlite, change.postgres);
        let fault = match change.step {
            Step::Table(name) => table(name).is_none().then(|| format!("no table {name}")),
            Step::Column(name, column) => {
                match table(name).and_then(|t| t.columns(Backend::Postgres).into_iter().find(|c| c.name == column)) {
                    None => Some(format!("no column {name}.{column}")),
                    Some(c) if !c.nullable && c.default.is_none() => {
                        Some(format!("{name}.{column} is added NOT NULL without a default for the rows there"))
                    }
                    Some(_) => None,
                }
            }
            Step::Index(name, index) => table(name)
                .is_none_or(|t| !t.indexes.iter().any(|i| index_name(i) == index))
                .then(|| format!("no index {index} on {name}")),
        };
        faults.extend(fault.map(|fault| format!("{}: {fault}", change.name)));
    }
    for (position, table) in SHARED_TABLES.iter().enumerate() {
        for column in table.columns(Backend::Postgres) {
            let earlier = &SHARED_TABLES[..position];
            if let Some(target) = column.references.filter(|target| !earlier.iter().any(|t| t.name == *target)) {
                faults
                    .push(format!("{}.{}: references {target}, not a shared table before it", table.name, column.name));
            }
            if column.postgres_only && column.default.is_none() && table.single_row.is_some() {
                faults.push(format!("{}.{}: only PostgreSQL has it and it has no default", table.name, column.name));
            }
        }
    }
    faults
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

    #[test]
    fn the_description_has_no_faults() {
        assert_eq!(description_faults(), Vec::<String>::new());
    }

    /// The migration files are what the description renders: a change to either alone fails here.
    #[test]
    fn the_migration_files_of_the_shared_tables_are_rendered_from_the_description() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let rendered = rendered_migrations();
        for (path, text) in &rendered {
            let on_disk = std::fs::read_to_string(root.join(path)).unwrap_or_default();
            assert!(
                on_disk == *text,
                "{path} differs from the description: run `cargo run --example render_migrations`"
            );
        }
        for directory in ["migrations", "migrations_postgres"] {
            for entry in std::fs::read_dir(root.join(directory)).unwrap() {
                let path = format!("{directory}/{}", entry.unwrap().file_name().to_string_lossy());
                let text = std::fs::read_to_string(root.join(&path)).unwrap();
                assert!(
                    !text.starts_with(GENERATED) || rendered.iter().any(|(p, _)| *p == path),
                    "{path} says it is generated, but the description renders no such file"
                );
            }
        }
    }

    #[test]
    fn a_table_renders_its_columns_keys_constraints_indexes_and_first_row() {
        let find = |name| SHARED_TABLES.iter().find(|t| t.name == name).unwrap();
        let outbox = find("outbox").create(Backend::Postgres);
        assert!(outbox.contains("id              BIGINT GENERATED BY DEFAULT AS IDENTITY NOT NULL,"), "{outbox}");
        assert!(outbox.contains("alert_id        BIGINT NOT NULL REFERENCES alerts (id),"), "{outbox}");
        assert!(outbox.contains("attempts        BIGINT NOT NULL DEFAULT 0,"), "{outbox}");
        assert!(outbox.contains("idempotency_key TEXT NOT NULL UNIQUE,"), "{outbox}");
        assert!(outbox.contains("lease_until     BIGINT,\n    PRIMARY KEY (id)\n);"), "{outbox}");
        assert!(outbox.contains("CREATE INDEX outbox_due ON outbox (notifier, status, next_attempt_at);"));
        let cursor = find("rule_cursor");
        assert!(cursor.create(Backend::Postgres).contains("id            SMALLINT NOT NULL,"));
        assert!(cursor.create(Backend::Postgres).contains("term          BIGINT NOT NULL DEFAULT 0,"));
        let on_sqlite = cursor.create(Backend::Sqlite);
        assert!(!on_sqlite.contains("    term") && on_sqlite.contains("CHECK (id = 1)\n);"), "{on_sqlite}");
        assert!(on_sqlite.ends_with("INSERT INTO rule_cursor (id, last_event_id) VALUES (1, 0);\n"), "{on_sqlite}");
        let alerts = find("alerts").create(Backend::Sqlite);
        assert!(alerts
            .contains("CREATE INDEX alerts_open ON alerts (fingerprint) WHERE state IN ('firing', 'acknowledged');"));
        assert!(find("rule_state").create(Backend::Sqlite).contains("PRIMARY KEY (rule_id, group_key)"));
    }

    #[test]
    fn a_later_column_or_index_renders_for_each_backend() {
        let column = render_step(Step::Column("outbox", "lease_until"), Backend::Sqlite);
        assert_eq!(column, "ALTER TABLE outbox ADD COLUMN lease_until INTEGER;\n");
        let column = render_step(Step::Column("alerts", "notify"), Backend::Postgres);
        assert_eq!(column, "ALTER TABLE alerts ADD COLUMN notify SMALLINT NOT NULL;\n");
        let index = render_step(Step::Index("alerts", "alerts_host"), Backend::Postgres);
        assert_eq!(index, "CREATE INDEX alerts_host ON alerts (host, fired_at);\n");
    }

    /// What a later change renders, run on a SQLite database the migrations made: the column and index are there
    /// after it, as the description says.
    #[tokio::test]
    async fn a_rendered_change_applies_to_a_database_of_the_baseline() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::store::open_writer(&dir.path().join("t.db")).await.unwrap();
        sqlx::query("DROP INDEX IF EXISTS alerts_host").execute(&mut conn.0).await.unwrap();
        sqlx::query("ALTER TABLE outbox DROP COLUMN lease_until").execute(&mut conn.0).await.unwrap();
        assert_eq!(differences(&mut conn).await.unwrap(), ["outbox.lease_until: missing"]);
        for step in [Step::Column("outbox", "lease_until"), Step::Index("alerts", "alerts_host")] {
            sqlx::raw_sql(&render_step(step, Backend::Sqlite)).execute(&mut conn.0).await.unwrap();
        }
        assert_eq!(differences(&mut conn).await.unwrap(), Vec::<String>::new());
        let indexes: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_index_list('alerts')").fetch_all(&mut conn.0).await.unwrap();
        assert!(indexes.iter().any(|name| name == "alerts_host"), "{indexes:?}");
    }

    #[test]
    fn a_fault_in_the_description_is_named() {
        let change = |name, sqlite, step| Change { name, sqlite, postgres: sqlite - 15, step };
        let faults = faults_of(&[
            change("early", 20, Step::Index("alerts", "alerts_host")),
            change("unknown_column", 21, Step::Column("outbox", "owner")),
            change("no_value", 22, Step::Column("alerts", "count")),
            change("unknown_table", 23, Step::Table("leases")),
        ]);
        assert_eq!(
            faults,
            [
                "early: its versions come before an earlier migration's",
                "unknown_column: no column outbox.owner",
                "no_value: alerts.count is added NOT NULL without a default for the rows there",
                "unknown_table: no table leases",
            ]
        );
        assert_eq!(index_name("unique events_copy (host, ts)"), "events_copy");
        assert_eq!(create_index("t", "unique u (a, b)"), "CREATE UNIQUE INDEX u ON t (a, b);\n");
        assert_eq!(comment(&"word ".repeat(40)).lines().count(), 2);
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
