//! The mapping between an [`Event`] and an `events` row: which fields have typed columns, and the JSON of the rest.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::StoreError;
use crate::event::{field, Event, Timestamp};

/// Column list of an INSERT, in the order [`bind_row`] binds.
pub const INSERT_COLUMNS: &str =
    "ts, ts_digits, created, created_digits, host, dataset, action, outcome, user_name, source_ip, format, original, raw, fields";

/// Number of columns bound per row.
pub const BOUND_PER_ROW: usize = 14;

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

/// The values of one row, in [`INSERT_COLUMNS`] order.
pub struct RowValues<'a> {
    /// ts, ts_digits, created, created_digits.
    pub times: [i64; 4],
    /// host, dataset, action, outcome, user_name, source_ip, format, original.
    pub typed: [Option<&'a str>; 8],
    /// raw.
    pub raw: Option<&'a [u8]>,
    /// fields (JSON).
    pub json: String,
}

/// The JSON object of name/value pairs, byte for byte what `serde_json` writes for them, without its per-byte
/// escaping loop: most values need no escape, and checking that first is cheaper (the writer does this for every
/// row, on its serial path).
fn json_object<'a, 'b>(pairs: impl Iterator<Item = (&'a str, &'b str)>) -> String {
    let mut out = String::with_capacity(256);
    out.push('{');
    for (i, (name, value)) in pairs.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, name);
        out.push(':');
        push_json_string(&mut out, value);
    }
    out.push('}');
    out
}

fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    // No early exit: this form compiles to a vectorized scan.
    let needs_escape = text.bytes().fold(false, |any, b| any | (b < 0x20) | (b == b'"') | (b == b'\\'));
    if !needs_escape {
        out.push_str(text);
    } else {
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

/// Splits an event into its row values.
pub fn row_values(event: &Event) -> RowValues<'_> {
    RowValues {
        times: [
            event.timestamp.micros(),
            i64::from(event.timestamp.frac_digits),
            event.created.micros(),
            i64::from(event.created.frac_digits),
        ],
        typed: TYPED.map(|name| event.get(name).or_else(|| required_default(name))),
        raw: event.raw.as_deref(),
        json: json_object(event.fields().filter(|(name, _)| !TYPED.contains(name))),
    }
}

/// What a NOT NULL column holds when the event lacks the field, so that every event can be stored: a row that
/// violated the schema would fail its whole batch.
fn required_default(name: &str) -> Option<&'static str> {
    match name {
        field::ORIGINAL => Some(""),
        field::DATASET => Some(crate::event::DATASET_SYSLOG),
        field::FORMAT => Some("unparsed"),
        _ => None,
    }
}

/// Column list of a SELECT that [`event_from_row`] reads.
pub const SELECT_COLUMNS: &str =
    "id, ts, ts_digits, created, created_digits, host, dataset, action, outcome, user_name, source_ip, format, original, raw, fields";

/// Rebuilds the event of a row; returns it with its id.
pub fn event_from_row(row: &SqliteRow) -> Result<(i64, Event), StoreError> {
    let id: i64 = row.try_get("id")?;
    let corrupt = |reason: String| StoreError::CorruptRow { id, reason };
    let time = |micros: &str, digits: &str| -> Result<Timestamp, StoreError> {
        let at = Utc
            .timestamp_micros(row.try_get(micros)?)
            .single()
            .ok_or_else(|| corrupt(format!("{micros} out of range")))?;
        let digits: i64 = row.try_get(digits)?;
        Ok(Timestamp::new(at, u8::try_from(digits).unwrap_or(0)))
    };
    let mut event = Event::new(time("ts", "ts_digits")?, time("created", "created_digits")?);
    let columns = ["host", "dataset", "action", "outcome", "user_name", "source_ip", "format", "original"];
    for (name, column) in TYPED.iter().zip(columns) {
        if let Some(value) = row.try_get::<Option<String>, _>(column)? {
            event.set(name, value);
        }
    }
    event.raw = row.try_get("raw")?;
    let json: String = row.try_get("fields")?;
    let rest: BTreeMap<String, String> = serde_json::from_str(&json).map_err(|e| corrupt(format!("fields: {e}")))?;
    for (name, value) in rest {
        let known = field::lookup(&name).ok_or_else(|| corrupt(format!("unknown field {name}")))?;
        event.set(known, value);
    }
    Ok((id, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn the_fields_json_is_byte_for_byte_what_serde_json_writes(
            pairs in proptest::collection::vec(("[a-z._]{1,12}", "\\PC{0,40}|[\\x00-\\x7f]{0,40}"), 0..6)
        ) {
            let ours = json_object(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let entries: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), serde_json::to_string(v).unwrap()))
                .collect();
            proptest::prop_assert_eq!(ours, format!("{{{}}}", entries.join(",")));
        }
    }

    #[tokio::test]
    async fn an_event_without_original_is_still_stored() {
        // Regression: an event lacking event.original violated NOT NULL and made the writer retry forever.
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::store::open_writer(&dir.path().join("t.db")).await.unwrap();
        let now = Timestamp::from_clock(Utc::now());
        let event = Event::new(now, now);
        crate::store::writer::insert_batch(&mut conn, &[event]).await.unwrap();
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE original = '' AND format = 'unparsed'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(count, 1);
    }
}
