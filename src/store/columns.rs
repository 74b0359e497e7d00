//! The mapping between an [`Event`] and an `events` row: which fields have typed columns, the rest packed
//! ([`super::packed`]; JSON in rows stored before), and rows whose line and fields are compressed together
//! ([`super::compressed`]).

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, TypeInfo, ValueRef};

use super::compressed::Expander;
use super::StoreError;
use crate::event::{field, Event, Timestamp};

/// Column list of an INSERT, in the order [`bind_row`] binds.
pub const INSERT_COLUMNS: &str = "ts, ts_digits, created, created_digits, host, dataset, action, outcome, user_name, source_ip, format, original, raw, fields, message_at";

/// Number of columns bound per row.
pub const BOUND_PER_ROW: usize = 15;

/// Fields stored in their own column (besides the two times).
const TYPED: [&str; 8] = [
    field::HOST_NAME,
    field::DATASET,
    field::ACTION,
    field::OUTCOME,
    field::USER_NAME,
    field::SOURCE_IP,
    field::FORMAT,
    field::ORIGINAL,
];

/// The columns of the [`TYPED`] fields, in the same order.
pub const TYPED_COLUMNS: [&str; 8] =
    ["host", "dataset", "action", "outcome", "user_name", "source_ip", "format", "original"];

/// The values of one row, in [`INSERT_COLUMNS`] order.
pub struct RowValues<'a> {
    /// ts, ts_digits, created, created_digits.
    pub times: [i64; 4],
    /// host, dataset, action, outcome, user_name, source_ip, format, original.
    pub typed: [Option<&'a str>; 8],
    /// raw.
    pub raw: Option<&'a [u8]>,
    /// fields, packed ([`super::packed`]).
    pub fields: Vec<u8>,
    /// original and fields compressed together ([`super::compressed`]), stored in their place when set.
    pub compressed: Option<Vec<u8>>,
    /// message_at: where the message starts in `original`, when it is its tail (and so not in `json`).
    pub message_at: Option<i64>,
}

/// The part of a row that an event's fields do not give as they are, owned: its packed fields, where its message
/// starts, and its line and fields compressed. Made apart from the borrowed values, it can be made on another thread
/// ahead of the batch's transaction.
pub struct Encoded {
    /// fields, packed ([`super::packed`]).
    pub fields: Vec<u8>,
    /// message_at, as in [`RowValues`].
    pub message_at: Option<i64>,
    /// original and fields compressed together, as in [`RowValues`].
    pub compressed: Option<Vec<u8>>,
}

impl<'a> RowValues<'a> {
    /// The owned part of the row.
    pub fn into_encoded(self) -> Encoded {
        Encoded { fields: self.fields, message_at: self.message_at, compressed: self.compressed }
    }

    /// The row of `event` whose owned part `encoded` was made before (by [`row_values`]): only the values borrowed
    /// from the event are found here.
    pub fn with_encoded(event: &'a Event, encoded: Encoded) -> RowValues<'a> {
        let mut typed: [Option<&str>; 8] = [None; 8];
        for (name, value) in event.fields() {
            if let Some(column) = typed_column(name) {
                typed[column] = Some(value);
            }
        }
        add_required_defaults(&mut typed);
        RowValues {
            times: times_of(event),
            typed,
            raw: event.raw.as_deref(),
            fields: encoded.fields,
            compressed: encoded.compressed,
            message_at: encoded.message_at,
        }
    }

    /// The row as the chain hashes it, with its id.
    pub fn image(&self, id: i64) -> super::chain::RowImage<'_> {
        super::chain::RowImage {
            id,
            times: self.times,
            typed: self.typed,
            raw: self.raw,
            fields: &self.fields,
            message_at: self.message_at,
        }
    }
}

/// Splits an event into its row values, in one pass over its fields (this runs for every row, on the writer's
/// serial path: no lookups per column).
pub fn row_values(event: &Event) -> RowValues<'_> {
    let mut typed: [Option<&str>; 8] = [None; 8];
    let mut rest: Vec<(&'static str, &str)> = Vec::with_capacity(16);
    let mut message = None;
    for (name, value) in event.fields() {
        match typed_column(name) {
            Some(column) => typed[column] = Some(value),
            None if name == field::MESSAGE => message = Some((rest.len(), value)),
            None => rest.push((name, value)),
        }
    }
    let message_at =
        message.zip(typed[TYPED_ORIGINAL]).and_then(|((_, message), original)| message_offset(original, message));
    if let (Some((at, message)), None) = (message, message_at) {
        // Back in its place: fields are packed in the event's order.
        rest.insert(at, (field::MESSAGE, message));
    }
    add_required_defaults(&mut typed);
    RowValues {
        times: times_of(event),
        typed,
        raw: event.raw.as_deref(),
        fields: super::packed::pack(&rest, typed[TYPED_ORIGINAL].unwrap_or_default()),
        compressed: None,
        message_at,
    }
}

/// ts, ts_digits, created, created_digits.
fn times_of(event: &Event) -> [i64; 4] {
    [
        event.timestamp.micros(),
        i64::from(event.timestamp.frac_digits),
        event.created.micros(),
        i64::from(event.created.frac_digits),
    ]
}

/// Fills the NOT NULL columns the event has no field for ([`required_default`]).
fn add_required_defaults(typed: &mut [Option<&str>; 8]) {
    for (column, name) in TYPED.iter().enumerate() {
        typed[column] = typed[column].or_else(|| required_default(name));
    }
}

/// Position of `event.original` in [`TYPED`].
pub const TYPED_ORIGINAL: usize = 7;

/// The typed column a field goes to, by its position in [`TYPED`] (a match compiles to a switch on the length, where
/// a search of `TYPED` compares strings one after the other).
fn typed_column(name: &str) -> Option<usize> {
    match name {
        field::HOST_NAME => Some(0),
        field::DATASET => Some(1),
        field::ACTION => Some(2),
        field::OUTCOME => Some(3),
        field::USER_NAME => Some(4),
        field::SOURCE_IP => Some(5),
        field::FORMAT => Some(6),
        field::ORIGINAL => Some(TYPED_ORIGINAL),
        _ => None,
    }
}

/// Where `message` starts in `original`, when it is its tail (ASCII whitespace after it aside: a frame's trailing LF
/// is part of the original, not of the message).
fn message_offset(original: &str, message: &str) -> Option<i64> {
    let at = original.trim_end_matches(|c: char| c.is_ascii_whitespace()).strip_suffix(message)?.len();
    (message_from(original, at) == Some(message)).then_some(at as i64)
}

/// The message a row's `message_at` stands for (the view `events_with_message` does the same in SQL).
fn message_from(original: &str, at: usize) -> Option<&str> {
    original.get(at..).map(|tail| tail.trim_end_matches(|c: char| c.is_ascii_whitespace()))
}

/// What a NOT NULL column holds when the event lacks the field, so that every event can be stored: a row that
/// violated the schema would fail its whole batch.
fn required_default(name: &str) -> Option<&'static str> {
    match name {
        field::ORIGINAL => Some(""),
        field::DATASET => Some(crate::event::DATASET_SYSLOG),
        // Events hsmwatch makes itself (SNMP, the cloud inventory) have no syslog format: stored empty, read as absent.
        field::FORMAT => Some(""),
        _ => None,
    }
}

/// Column list of a SELECT that [`event_from_row`] reads.
pub const SELECT_COLUMNS: &str = "id, ts, ts_digits, created, created_digits, host, dataset, action, outcome, user_name, source_ip, format, original, raw, fields, message_at";

/// Gives `expander` the database's compression dictionaries when one of `rows` names one it lacks: they are read once
/// for a reader that keeps its expander, and not at all while no row is compressed.
pub async fn load_dictionaries<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    rows: &[SqliteRow],
    expander: &mut Expander,
) -> Result<(), StoreError> {
    let lacking = |row: &SqliteRow| {
        is_compressed(row) && row.try_get_unchecked::<Vec<u8>, _>("original").is_ok_and(|blob| !expander.knows(&blob))
    };
    if rows.iter().any(lacking) {
        let dictionaries: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT id, bytes FROM text_dictionaries").fetch_all(executor).await?;
        for (id, bytes) in dictionaries {
            expander.add(id, &bytes);
        }
    }
    Ok(())
}

/// Whether a row's line and fields are stored compressed (its `original` is a BLOB).
fn is_compressed(row: &SqliteRow) -> bool {
    row.try_get_raw("original").is_ok_and(|value| value.type_info().name() == "BLOB")
}

/// A row's `event.original` and packed (or JSON) fields, expanded when they are stored compressed.
pub fn line_and_fields(row: &SqliteRow, expander: &mut Expander) -> Result<(Option<String>, Vec<u8>), StoreError> {
    if is_compressed(row) {
        let blob: Vec<u8> = row.try_get("original")?;
        let (original, fields) = expander.expand(&blob).map_err(|error| StoreError::CorruptRow {
            id: row.try_get("id").unwrap_or(0),
            reason: error.to_string(),
        })?;
        return Ok((Some(original), fields));
    }
    Ok((row.try_get("original")?, row.try_get_unchecked("fields")?))
}

/// A row's `event.original` alone (for filters on the line; the row need not have `fields`), expanded when it is
/// stored compressed.
pub fn line(row: &SqliteRow, expander: &mut Expander) -> Result<String, StoreError> {
    if is_compressed(row) {
        return Ok(line_and_fields(row, expander)?.0.unwrap_or_default());
    }
    Ok(row.try_get::<Option<String>, _>("original")?.unwrap_or_default())
}

/// Rebuilds the event of a row (compressed ones with `expander`, see [`load_dictionaries`]); returns it with its id.
pub fn event_from_row(row: &SqliteRow, expander: &mut Expander) -> Result<(i64, Event), StoreError> {
    let id: i64 = row.try_get("id")?;
    let (original, fields) = line_and_fields(row, expander)?;
    let mut typed: [Option<String>; TYPED_ORIGINAL] = Default::default();
    for (value, column) in typed.iter_mut().zip(TYPED_COLUMNS) {
        *value = row.try_get(column)?;
    }
    let parts = RowParts {
        id,
        times: [row.try_get("ts")?, row.try_get("ts_digits")?, row.try_get("created")?, row.try_get("created_digits")?],
        typed,
        original,
        raw: row.try_get("raw")?,
        fields,
        message_at: row.try_get("message_at")?,
    };
    Ok((id, event_from_parts(parts)?))
}

/// The columns of a row as either backend reads them, the line expanded.
pub struct RowParts {
    /// id.
    pub id: i64,
    /// ts, ts_digits, created, created_digits.
    pub times: [i64; 4],
    /// host, dataset, action, outcome, user_name, source_ip, format.
    pub typed: [Option<String>; TYPED_ORIGINAL],
    /// original.
    pub original: Option<String>,
    /// raw.
    pub raw: Option<Vec<u8>>,
    /// fields: packed, or JSON in rows stored before packing.
    pub fields: Vec<u8>,
    /// message_at.
    pub message_at: Option<i64>,
}

/// Rebuilds the event of a row's columns.
pub fn event_from_parts(parts: RowParts) -> Result<Event, StoreError> {
    let id = parts.id;
    let corrupt = |reason: String| StoreError::CorruptRow { id, reason };
    let time = |micros: i64, digits: i64, name: &str| -> Result<Timestamp, StoreError> {
        let at = Utc.timestamp_micros(micros).single().ok_or_else(|| corrupt(format!("{name} out of range")))?;
        Ok(Timestamp::new(at, u8::try_from(digits).unwrap_or(0)))
    };
    let [ts, ts_digits, created, created_digits] = parts.times;
    let mut event = Event::new(time(ts, ts_digits, "ts")?, time(created, created_digits, "created")?);
    for (name, value) in TYPED[..TYPED_ORIGINAL].iter().zip(parts.typed) {
        if let Some(value) = value {
            if !(value.is_empty() && *name == field::FORMAT) {
                event.set(name, value);
            }
        }
    }
    if let Some(original) = parts.original {
        event.set(field::ORIGINAL, original);
    }
    event.raw = parts.raw;
    // Packed (a BLOB) or, in rows stored before packing, a JSON object (TEXT): told apart by the first byte.
    let fields = parts.fields;
    if fields.first() == Some(&super::packed::MARKER) {
        let original = event.get(field::ORIGINAL).unwrap_or_default();
        let unpacked = super::packed::unpack(&fields, original).map_err(|e| corrupt(format!("fields: {e}")))?;
        for (name, value) in unpacked {
            event.set(name, value);
        }
    } else {
        let rest: BTreeMap<String, String> =
            serde_json::from_slice(&fields).map_err(|e| corrupt(format!("fields: {e}")))?;
        for (name, value) in rest {
            let known = field::lookup(&name).ok_or_else(|| corrupt(format!("unknown field {name}")))?;
            event.set(known, value);
        }
    }
    if let Some(at) = parts.message_at {
        let message = usize::try_from(at)
            .ok()
            .and_then(|at| event.get(field::ORIGINAL).and_then(|original| message_from(original, at)))
            .ok_or_else(|| corrupt(format!("message_at {at} is not a character boundary of original")))?;
        event.set(field::MESSAGE, message.to_owned());
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_columns_follow_the_typed_list() {
        for (column, name) in TYPED.iter().enumerate() {
            assert_eq!(typed_column(name), Some(column), "{name}");
        }
        assert_eq!(typed_column(field::MESSAGE), None);
    }

    async fn reader(dir: &std::path::Path) -> crate::store::Reader {
        crate::store::open_reader(&dir.join("t.db")).await.unwrap()
    }

    /// A new database: its sqlx connection (for reading back) and an inserter connection.
    async fn database(dir: &std::path::Path) -> (sqlx::SqliteConnection, crate::store::inserter::InserterConn) {
        let path = dir.join("t.db");
        let conn = crate::store::open_writer(&path).await.unwrap().0;
        let settings = crate::store::inserter::InserterSettings::default();
        (conn, crate::store::inserter::open_connection(&path, settings).unwrap())
    }

    #[tokio::test]
    async fn an_event_without_original_is_still_stored() {
        // Regression: an event lacking event.original violated NOT NULL and made the writer retry forever.
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, mut inserter) = database(dir.path()).await;
        let now = Timestamp::from_clock(Utc::now());
        let event = Event::new(now, now);
        crate::store::inserter::insert_batch(&mut inserter, &[event]).unwrap();
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE original = '' AND format = ''")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(count, 1);
        let row = sqlx::query(&format!("SELECT {SELECT_COLUMNS} FROM events")).fetch_one(&mut conn).await.unwrap();
        let (_, back) = event_from_row(&row, &mut Expander::default()).unwrap();
        assert_eq!(back.get(field::FORMAT), None, "an event without a syslog format reads back without one");
    }

    #[tokio::test]
    async fn rows_stored_before_packing_read_back_from_their_json() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, _) = database(dir.path()).await;
        sqlx::query(
            "INSERT INTO events (id, ts, ts_digits, created, created_digits, host, dataset, format, original, fields) \
             VALUES (1, 0, 0, 0, 0, 'hsm', 'lunash', 'rfc3164', 'x', ?)",
        )
        .bind(r#"{"hsm.command":"hsm show","log.syslog.facility.name":"local5","message":"m"}"#)
        .execute(&mut conn)
        .await
        .unwrap();
        let row = sqlx::query(&format!("SELECT {SELECT_COLUMNS} FROM events")).fetch_one(&mut conn).await.unwrap();
        let (_, event) = event_from_row(&row, &mut Expander::default()).unwrap();
        assert_eq!(event.get(field::HSM_COMMAND), Some("hsm show"));
        assert_eq!(event.get(field::FACILITY_NAME), Some("local5"));
        assert_eq!(event.get(field::MESSAGE), Some("m"));
        assert_eq!(event.get(field::HOST_NAME), Some("hsm"));
        let view: Option<String> =
            sqlx::query_scalar("SELECT message FROM events_with_message").fetch_one(&mut conn).await.unwrap();
        assert_eq!(view.as_deref(), Some("m"));
    }

    #[tokio::test]
    async fn a_message_that_ends_the_original_is_stored_once_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, mut inserter) = database(dir.path()).await;
        let now = Timestamp::from_clock(Utc::now());
        let event = |original: &str, message: &str| {
            let mut event = Event::new(now, now);
            event.set(field::ORIGINAL, original.to_owned());
            event.set(field::MESSAGE, message.to_owned());
            event.set(field::APPNAME, "lunash");
            event
        };
        let stored = [
            event(
                "<14>Mar  1 10:00:00 hsm lunash: Lush user login : ädmin : Console",
                "Lush user login : ädmin : Console",
            ),
            event("2026 Mar  9 hsm local5 info lunash [41]: a : b", "not the tail"),
            event("<14>1 2026-03-01T10:00:00Z hsm lunash - - - \u{feff}tail, then LF\r\n", "\u{feff}tail, then LF"),
            event("", ""),
        ];
        crate::store::inserter::insert_batch(&mut inserter, &stored).unwrap();
        let rows: Vec<(Option<i64>, Vec<u8>)> =
            sqlx::query_as("SELECT message_at, fields FROM events ORDER BY id").fetch_all(&mut conn).await.unwrap();
        let holds = |bytes: &[u8], text: &str| memchr::memmem::find(bytes, text.as_bytes()).is_some();
        assert_eq!(rows[0].0, Some("<14>Mar  1 10:00:00 hsm lunash: ".len() as i64));
        assert!(!holds(&rows[0].1, "Lush user login"), "the message is not repeated in fields: {:?}", rows[0].1);
        assert_eq!(rows[1].0, None);
        assert!(holds(&rows[1].1, "not the tail"));
        assert_eq!(rows[2].0, Some("<14>1 2026-03-01T10:00:00Z hsm lunash - - - ".len() as i64));
        let read = sqlx::query(&format!("SELECT {SELECT_COLUMNS} FROM events ORDER BY id")).fetch_all(&mut conn).await;
        for (row, expected) in read.unwrap().iter().zip(&stored) {
            let (_, event) = event_from_row(row, &mut Expander::default()).unwrap();
            assert_eq!(event.get(field::MESSAGE), expected.get(field::MESSAGE));
            assert_eq!(event.get(field::ORIGINAL), expected.get(field::ORIGINAL));
        }
        let view: Vec<Option<String>> = sqlx::query_scalar("SELECT message FROM events_with_message ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            view[..3],
            [
                Some("Lush user login : ädmin : Console".into()),
                None, // packed: hsmwatch reads it, SQL alone does not
                Some("\u{feff}tail, then LF".into())
            ]
        );
        assert!(matches!(
            crate::store::chain::verify(&reader(dir.path()).await).await.unwrap(),
            crate::store::chain::Finding::Intact { .. }
        ));

        // Moving the offset changes the message read back: the chain covers it.
        sqlx::query("UPDATE events SET message_at = message_at + 4 WHERE message_at IS NOT NULL")
            .execute(&mut conn)
            .await
            .unwrap();
        let finding = crate::store::chain::verify(&reader(dir.path()).await).await.unwrap();
        assert!(matches!(finding, crate::store::chain::Finding::Broken { .. }), "{finding:?}");
    }
}
