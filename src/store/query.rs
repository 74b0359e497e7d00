//! Reading events back: the filters of `hsmwatch query` (and later `GET /api/events`), newest first.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite};

use super::columns::{event_from_row, SELECT_COLUMNS};
use super::{Reader, StoreError, WriteConn};
use crate::event::Event;

/// Which events to return. Every filter is optional; text filters on fields match exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// `@timestamp` at or after this.
    pub since: Option<DateTime<Utc>>,
    /// `@timestamp` before this.
    pub until: Option<DateTime<Utc>>,
    /// `host.name`.
    pub host: Option<String>,
    /// `event.action`.
    pub action: Option<String>,
    /// `event.outcome`.
    pub outcome: Option<String>,
    /// `user.name`.
    pub user: Option<String>,
    /// `source.ip`.
    pub source_ip: Option<String>,
    /// Text anywhere in `event.original`, case-insensitive for ASCII.
    pub contains: Option<String>,
    /// Text as whole words in `event.original` (not inside a longer word), case-insensitive for ASCII.
    pub word: Option<String>,
    /// Only events after this one in the newest-first order (the cursor of the previous page's last event).
    pub after: Option<Cursor>,
    /// At most this many events.
    pub limit: u32,
}

/// A position in the newest-first order: an event's `@timestamp` (microseconds) and row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// `@timestamp` in microseconds.
    pub ts: i64,
    /// Row id.
    pub id: i64,
}

impl Cursor {
    /// The cursor of a stored event.
    pub fn of(stored: &StoredEvent) -> Cursor {
        Cursor { ts: stored.event.timestamp.micros(), id: stored.id }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.ts, self.id)
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("`{text}` is not a cursor (use next_cursor from the previous page)");
        let (ts, id) = text.split_once('_').ok_or_else(invalid)?;
        Ok(Cursor { ts: ts.parse().map_err(|_| invalid())?, id: id.parse().map_err(|_| invalid())? })
    }
}

/// The filters of `hsmwatch query` as text, the way a URL's query string carries them (`GET /api/events` and the
/// dashboard's forms). Empty values are no filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// At or after (30m, 7d, 2026-01-01, RFC 3339).
    pub since: Option<String>,
    /// Before.
    pub until: Option<String>,
    /// host.name.
    pub host: Option<String>,
    /// event.action.
    pub action: Option<String>,
    /// event.outcome.
    pub outcome: Option<String>,
    /// user.name.
    pub user: Option<String>,
    /// source.ip.
    pub source_ip: Option<String>,
    /// Text in event.original.
    pub contains: Option<String>,
    /// Whole words in event.original.
    pub word: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl EventQuery {
    /// The filter, with `limit` (default `default_limit`) kept within 1..=`max_limit`; the error names the parameter.
    pub fn filter(&self, default_limit: u32, max_limit: u32) -> Result<EventFilter, String> {
        let time = |value: &Option<String>, name: &str| {
            given(value).map(|t| crate::config::units::parse_time(t).map_err(|e| format!("{name}: {e}"))).transpose()
        };
        let text = |value: &Option<String>| given(value).map(str::to_owned);
        Ok(EventFilter {
            since: time(&self.since, "since")?,
            until: time(&self.until, "until")?,
            host: text(&self.host),
            action: text(&self.action),
            outcome: text(&self.outcome),
            user: text(&self.user),
            source_ip: text(&self.source_ip),
            contains: text(&self.contains),
            word: text(&self.word),
            after: given(&self.cursor).map(str::parse::<Cursor>).transpose().map_err(|e| format!("cursor: {e}"))?,
            limit: self.limit.unwrap_or(default_limit).clamp(1, max_limit),
        })
    }

    /// These filters as a query string, with another cursor (the link to the next page).
    pub fn with_cursor(&self, cursor: &str) -> String {
        let pairs = [
            ("since", &self.since),
            ("until", &self.until),
            ("host", &self.host),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("user", &self.user),
            ("source_ip", &self.source_ip),
            ("contains", &self.contains),
            ("word", &self.word),
        ];
        let mut query: Vec<String> =
            pairs.iter().filter_map(|(k, v)| given(v).map(|v| format!("{k}={}", percent_encode(v)))).collect();
        query.push(format!("cursor={}", percent_encode(cursor)));
        query.join("&")
    }
}

/// Percent-encodes a query value or path segment.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// One page of events for `filter` and the cursor of the next page (none when this one is not full).
pub async fn page(reader: &Reader, filter: &EventFilter) -> Result<(Vec<StoredEvent>, Option<String>), StoreError> {
    let found = events(reader, filter).await?;
    let next =
        (found.len() == filter.limit as usize).then(|| found.last().map(|e| Cursor::of(e).to_string())).flatten();
    Ok((found, next))
}

/// One stored event and its row id.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The row id: increases with the order of storing.
    pub id: i64,
    /// The event.
    pub event: Event,
}

/// Events matching `filter`, newest `@timestamp` first.
///
/// A `contains` string the search index narrows to a few blocks reads only those rows (and the rows not yet
/// indexed): they are joined by id range, and the other filters are kept off their indexes (`+column`) so that the
/// planner walks the ranges, not an index over the whole table.
pub async fn events(reader: &Reader, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
    let pool = &reader.0;
    let candidates = match filter.contains.as_ref().or(filter.word.as_ref()) {
        Some(text) => super::search::candidates(reader, text).await?,
        None => None,
    };
    let mut query: QueryBuilder<'_, Sqlite> = QueryBuilder::new("");
    let column = match &candidates {
        Some(found) => {
            query.push("WITH candidate(lo, hi) AS (VALUES (").push_bind(found.tail).push(", ").push_bind(i64::MAX);
            for (first, last) in &found.ranges {
                query.push("), (").push_bind(*first).push(", ").push_bind(*last);
            }
            query.push(format!(
                ")) SELECT {SELECT_COLUMNS} FROM candidate JOIN events ON events.id BETWEEN candidate.lo AND candidate.hi \
                 WHERE 1=1"
            ));
            |name: &str| format!("+{name}")
        }
        None => {
            query.push(format!("SELECT {SELECT_COLUMNS} FROM events WHERE 1=1"));
            |name: &str| name.to_owned()
        }
    };
    if let Some(since) = filter.since {
        query.push(format!(" AND {} >= ", column("ts"))).push_bind(since.timestamp_micros());
    }
    if let Some(until) = filter.until {
        query.push(format!(" AND {} < ", column("ts"))).push_bind(until.timestamp_micros());
    }
    let exact = [
        ("host", &filter.host),
        ("action", &filter.action),
        ("outcome", &filter.outcome),
        ("user_name", &filter.user),
        ("source_ip", &filter.source_ip),
    ];
    for (name, value) in exact {
        if let Some(value) = value {
            query.push(format!(" AND {} = ", column(name))).push_bind(value.as_str());
        }
    }
    if let Some(text) = &filter.contains {
        query.push(" AND original LIKE ").push_bind(like_pattern(text)).push(" ESCAPE '\\'");
    }
    if let Some(text) = &filter.word {
        query.push(" AND (' ' || lower(original) || ' ') GLOB ").push_bind(word_pattern(text));
    }
    if let Some(after) = filter.after {
        query.push(format!(" AND ({} < ", column("ts"))).push_bind(after.ts);
        query
            .push(format!(" OR ({} = ", column("ts")))
            .push_bind(after.ts)
            .push(" AND id < ")
            .push_bind(after.id)
            .push("))");
    }
    query.push(" ORDER BY ts DESC, id DESC LIMIT ").push_bind(i64::from(filter.limit));
    let rows = query.build().fetch_all(pool).await?;
    stored_events(&rows)
}

/// The events of these row ids (those that still exist), in id order.
pub async fn events_by_id(reader: &Reader, ids: &[i64]) -> Result<Vec<StoredEvent>, StoreError> {
    let pool = &reader.0;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query: QueryBuilder<'_, Sqlite> =
        QueryBuilder::new(format!("SELECT {SELECT_COLUMNS} FROM events WHERE id IN ("));
    let mut list = query.separated(", ");
    for id in ids.iter().take(1000) {
        list.push_bind(*id);
    }
    query.push(") ORDER BY id");
    let rows = query.build().fetch_all(pool).await?;
    stored_events(&rows)
}

/// Events stored after row `after`, oldest first, at most `limit` (for resuming evaluation after a crash).
pub async fn events_after(conn: &mut WriteConn, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
    let conn = &mut conn.0;
    let rows = sqlx::query(&format!("SELECT {SELECT_COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT ?"))
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    stored_events(&rows)
}

/// Events with `@timestamp` in `[since, until)` and a row id above `after`, in row id order (the order they were
/// stored in), at most `limit`: pages for replaying history.
pub async fn events_between(
    reader: &Reader,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut conn = reader.connection().await?;
    let conn = &mut *conn;
    let rows = sqlx::query(&format!(
        "SELECT {SELECT_COLUMNS} FROM events WHERE ts >= ? AND ts < ? AND id > ? ORDER BY id LIMIT ?"
    ))
    .bind(since.timestamp_micros())
    .bind(until.timestamp_micros())
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    stored_events(&rows)
}

fn stored_events(rows: &[sqlx::sqlite::SqliteRow]) -> Result<Vec<StoredEvent>, StoreError> {
    rows.iter().map(|row| event_from_row(row).map(|(id, event)| StoredEvent { id, event })).collect()
}

/// The id of the newest stored event (0 when there is none): cheap on any size of table, unlike a count.
pub async fn newest_id(reader: &Reader) -> Result<i64, StoreError> {
    let newest: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM events").fetch_one(&reader.0).await?;
    Ok(newest.unwrap_or(0))
}

/// Number of stored events.
pub async fn count(reader: &Reader) -> Result<i64, StoreError> {
    let pool = &reader.0;
    Ok(sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(pool).await?)
}

/// A GLOB pattern for `text` as whole words (ASCII letters, digits and `_` make a word) in a lower-cased line with a
/// space added at each end; GLOB's wildcards in `text` match themselves.
fn word_pattern(text: &str) -> String {
    let mut pattern = String::from("*[^a-z0-9_]");
    for c in text.to_lowercase().chars() {
        match c {
            '*' | '?' | '[' => pattern.extend(['[', c, ']']),
            c => pattern.push(c),
        }
    }
    pattern.push_str("[^a-z0-9_]*");
    pattern
}

/// `%text%` with LIKE's wildcards in `text` escaped, so they match themselves.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
