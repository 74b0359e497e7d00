//! Reading events back: the filters of `hsmwatch query` (and later `GET /api/events`), newest first.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite};

use sqlx::Row;

use super::columns::{event_from_row, expander_for, line, SELECT_COLUMNS};
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
/// The filters on the line (`contains`, `word`) run here, not in SQL (a compressed line is a BLOB to SQLite): rows
/// passing the other filters are read a page at a time, newest first, until `limit` of them match. A string the
/// search index narrows to a few blocks reads only those rows (and the rows not yet indexed): they are joined by id
/// range, and the other filters are kept off their indexes (`+column`) so that the planner walks the ranges, not an
/// index over the whole table.
pub async fn events(reader: &Reader, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
    let Some(line_filter) = LineFilter::of(filter) else {
        let rows = select(filter, None, SELECT_COLUMNS, filter.after, i64::from(filter.limit))
            .build()
            .fetch_all(&reader.0)
            .await?;
        return stored_events(&reader.0, &rows).await;
    };
    let candidates = match filter.contains.as_ref().or(filter.word.as_ref()) {
        Some(text) => super::search::candidates(reader, text).await?,
        None => None,
    };
    let mut matching = Vec::new();
    let mut after = filter.after;
    loop {
        let rows = select(filter, candidates.as_ref(), "id, ts, original", after, LINES_PER_PAGE)
            .build()
            .fetch_all(&reader.0)
            .await?;
        let mut expander = expander_for(&reader.0, &rows).await?;
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            after = Some(Cursor { ts: row.try_get("ts")?, id });
            if line_filter.matches(&line(row, &mut expander)?) {
                matching.push(id);
                if matching.len() == filter.limit as usize {
                    return in_order(reader, &matching).await;
                }
            }
        }
        if rows.len() < LINES_PER_PAGE as usize {
            return in_order(reader, &matching).await;
        }
    }
}

/// Rows whose lines a text filter reads in one query.
const LINES_PER_PAGE: i64 = 2000;

/// The events of `ids`, in the order given.
async fn in_order(reader: &Reader, ids: &[i64]) -> Result<Vec<StoredEvent>, StoreError> {
    let rank: std::collections::HashMap<i64, usize> = ids.iter().enumerate().map(|(at, id)| (*id, at)).collect();
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(EVENTS_BY_ID) {
        found.extend(events_by_id(reader, chunk).await?);
    }
    found.sort_by_key(|stored| rank.get(&stored.id).copied());
    Ok(found)
}

/// The SELECT of `columns` for `filter`'s filters other than those on the line, newest first, after `after`, at
/// most `limit` rows; within `candidates` when the search index narrowed a text filter.
fn select<'q>(
    filter: &'q EventFilter,
    candidates: Option<&super::search::Candidates>,
    columns: &str,
    after: Option<Cursor>,
    limit: i64,
) -> QueryBuilder<'q, Sqlite> {
    let mut query: QueryBuilder<'q, Sqlite> = QueryBuilder::new("");
    let column = match candidates {
        Some(found) => {
            query.push("WITH candidate(lo, hi) AS (VALUES (").push_bind(found.tail).push(", ").push_bind(i64::MAX);
            for (first, last) in &found.ranges {
                query.push("), (").push_bind(*first).push(", ").push_bind(*last);
            }
            query.push(format!(
                ")) SELECT {columns} FROM candidate JOIN events ON events.id BETWEEN candidate.lo AND candidate.hi \
                 WHERE 1=1"
            ));
            |name: &str| format!("+{name}")
        }
        None => {
            query.push(format!("SELECT {columns} FROM events WHERE 1=1"));
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
    if let Some(after) = after {
        query.push(format!(" AND ({} < ", column("ts"))).push_bind(after.ts);
        query
            .push(format!(" OR ({} = ", column("ts")))
            .push_bind(after.ts)
            .push(" AND id < ")
            .push_bind(after.id)
            .push("))");
    }
    query.push(" ORDER BY ts DESC, id DESC LIMIT ").push_bind(limit);
    query
}

/// The filters on the line, as `LIKE` and `lower()` would apply them: ASCII letters fold to lower case, nothing else
/// does.
#[derive(Debug)]
struct LineFilter {
    /// `contains`, folded.
    contains: Option<String>,
    /// `word`, folded.
    word: Option<String>,
}

impl LineFilter {
    /// The line filters of `filter`, if it has any.
    fn of(filter: &EventFilter) -> Option<LineFilter> {
        let folded = |text: &Option<String>| text.as_deref().map(str::to_ascii_lowercase);
        let line_filter = LineFilter { contains: folded(&filter.contains), word: folded(&filter.word) };
        (line_filter.contains.is_some() || line_filter.word.is_some()).then_some(line_filter)
    }

    /// Whether `line` passes both filters.
    fn matches(&self, line: &str) -> bool {
        let line = line.to_ascii_lowercase();
        self.contains.as_deref().is_none_or(|text| line.contains(text))
            && self.word.as_deref().is_none_or(|text| has_word(&line, text))
    }
}

/// Whether `text` occurs in `line` as whole words: not preceded or followed by an ASCII letter, digit or `_`.
fn has_word(line: &str, text: &str) -> bool {
    let is_word_byte = |byte: Option<&u8>| byte.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    line.match_indices(text).any(|(at, _)| {
        let bytes = line.as_bytes();
        !is_word_byte(at.checked_sub(1).and_then(|before| bytes.get(before)))
            && !is_word_byte(bytes.get(at + text.len()))
    })
}

/// Ids [`events_by_id`] reads at most.
pub const EVENTS_BY_ID: usize = 1000;

/// The events of these row ids (those that still exist; at most [`EVENTS_BY_ID`] of them), in id order.
pub async fn events_by_id(reader: &Reader, ids: &[i64]) -> Result<Vec<StoredEvent>, StoreError> {
    let pool = &reader.0;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query: QueryBuilder<'_, Sqlite> =
        QueryBuilder::new(format!("SELECT {SELECT_COLUMNS} FROM events WHERE id IN ("));
    let mut list = query.separated(", ");
    for id in ids.iter().take(EVENTS_BY_ID) {
        list.push_bind(*id);
    }
    query.push(") ORDER BY id");
    let rows = query.build().fetch_all(pool).await?;
    stored_events(pool, &rows).await
}

/// Events stored after row `after`, oldest first, at most `limit` (for resuming evaluation after a crash).
pub async fn events_after(conn: &mut WriteConn, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
    let conn = &mut conn.0;
    let rows = sqlx::query(&format!("SELECT {SELECT_COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT ?"))
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    stored_events(&mut *conn, &rows).await
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
    stored_events(&mut *conn, &rows).await
}

/// The events of `rows`, compressed ones expanded with the dictionaries read through `executor`.
async fn stored_events<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    rows: &[sqlx::sqlite::SqliteRow],
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut expander = expander_for(executor, rows).await?;
    rows.iter().map(|row| event_from_row(row, &mut expander).map(|(id, event)| StoredEvent { id, event })).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_filters_fold_ascii_only_and_take_wildcards_literally() {
        let filter = |contains: Option<&str>, word: Option<&str>| {
            LineFilter::of(&EventFilter {
                contains: contains.map(str::to_owned),
                word: word.map(str::to_owned),
                ..EventFilter::default()
            })
            .unwrap()
        };
        assert!(filter(Some("P12x200"), None).matches("partition create -partition p12X200 : admin"));
        assert!(filter(Some("50%_a\\b"), None).matches("x 50%_A\\b y"));
        assert!(!filter(Some("50%"), None).matches("x 500 y"));
        assert!(!filter(Some("Ä"), None).matches("ä"), "only ASCII folds, as in LIKE");
        assert!(filter(None, Some("Par1")).matches("-partition par1 : admin"));
        assert!(filter(None, Some("par1")).matches("par1"));
        assert!(!filter(None, Some("par1")).matches("-partition par10 : admin"));
        assert!(!filter(None, Some("par1")).matches("xpar1 and par1_x"));
        assert!(filter(None, Some("par1")).matches("xpar1 and (par1)"));
        assert!(filter(None, Some("p*1")).matches("a p*1 b") && !filter(None, Some("p*1")).matches("a px1 b"));
        assert!(filter(Some("create"), Some("par1")).matches("create par1"));
        assert!(!filter(Some("delete"), Some("par1")).matches("create par1"));
    }
}
