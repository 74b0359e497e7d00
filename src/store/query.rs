//! Reading events back: the filters of `hsmwatch query` (and later `GET /api/events`), newest first.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite};

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::columns::{event_from_row, line, load_dictionaries, SELECT_COLUMNS};
use super::compressed::Expander;
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

/// A position in the newest-first order: an event's `@timestamp` (microseconds) and row id (compared in that order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
pub async fn page(reader: &Reader, filter: &EventFilter) -> Result<(Vec<StoredEvent>, Option<Cursor>), StoreError> {
    let found = events(reader, filter).await?;
    let next = found.last().filter(|_| found.len() == filter.limit as usize).map(Cursor::of);
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
    if let Some(pool) = reader.postgres_pool() {
        let found = super::postgres::events::matching(pool, filter).await?;
        return Ok(found.into_iter().map(Into::into).collect());
    }
    let Some(line_filter) = LineFilter::of(filter) else {
        let rows = newest_rows(reader, filter, SELECT_COLUMNS, filter.after, i64::from(filter.limit)).await?;
        return stored_events(reader.sqlite()?, &rows).await;
    };
    let candidates = match filter.contains.as_ref().or(filter.word.as_ref()) {
        Some(text) => super::search::candidates(reader, text).await?,
        None => None,
    };
    let matching = match candidates {
        Some(candidates) => matching_candidates(reader, filter, &line_filter, &candidates).await?,
        None => matching_newest_first(reader, filter, &line_filter).await?,
    };
    let mut found = Vec::with_capacity(matching.len());
    for chunk in matching.chunks(EVENTS_BY_ID) {
        found.extend(events_by_id(reader, chunk).await?);
    }
    found.sort_by_key(|stored| std::cmp::Reverse(Cursor::of(stored)));
    Ok(found)
}

/// The ids of the newest `filter.limit` events among the candidate rows the search index named whose line passes
/// `line_filter`: every candidate row is read once (at most [`super::search::MAX_CANDIDATE_BLOCKS`] blocks and the
/// rows not yet indexed), in no order, and the matches sorted.
async fn matching_candidates(
    reader: &Reader,
    filter: &EventFilter,
    line_filter: &LineFilter,
    candidates: &super::search::Candidates,
) -> Result<Vec<i64>, StoreError> {
    let rows = select(filter, Scope::Candidates(candidates), "id, ts, original", filter.after)
        .build()
        .fetch_all(reader.sqlite()?)
        .await?;
    let mut expander = Expander::default();
    load_dictionaries(reader.sqlite()?, &rows, &mut expander).await?;
    let mut matching = Vec::new();
    for row in &rows {
        if line_filter.matches(&line(row, &mut expander)?) {
            matching.push(Cursor { ts: row.try_get("ts")?, id: row.try_get("id")? });
        }
    }
    matching.sort_unstable_by(|a, b| b.cmp(a));
    Ok(matching.iter().take(filter.limit as usize).map(|cursor| cursor.id).collect())
}

/// The ids of the newest `filter.limit` events whose line passes `line_filter`, reading rows that pass the other
/// filters a page at a time, newest first (a common string is found in the first pages).
async fn matching_newest_first(
    reader: &Reader,
    filter: &EventFilter,
    line_filter: &LineFilter,
) -> Result<Vec<i64>, StoreError> {
    let mut matching = Vec::new();
    let mut after = filter.after;
    let mut expander = Expander::default();
    loop {
        let rows = newest_rows(reader, filter, "id, ts, original", after, LINES_PER_PAGE).await?;
        load_dictionaries(reader.sqlite()?, &rows, &mut expander).await?;
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            after = Some(Cursor { ts: row.try_get("ts")?, id });
            if line_filter.matches(&line(row, &mut expander)?) {
                matching.push(id);
                if matching.len() == filter.limit as usize {
                    return Ok(matching);
                }
            }
        }
        if rows.len() < LINES_PER_PAGE as usize {
            return Ok(matching);
        }
    }
}

/// Rows whose lines a text filter reads in one query.
const LINES_PER_PAGE: i64 = 2000;

/// Microseconds in a day: the day-partitioned indexes lead with `ts / 86400000000` (SQLite's integer division, which
/// truncates toward zero as Rust's does).
const DAY_MICROS: i64 = 86_400_000_000;

/// The filters whose index leads with the day (migration 0014), and the index: their values come from senders, so an
/// index on the value alone would take each new row at a random page.
fn day_index(filter: &EventFilter) -> Option<&'static str> {
    if filter.source_ip.is_some() {
        Some("events_source_ip_day")
    } else if filter.user.is_some() {
        Some("events_user_day")
    } else {
        None
    }
}

/// Days a query of a day-partitioned index names at most: the first asks for the newest day, each next one for four
/// times as many older days, up to this (a rare address over a year: five queries).
const MOST_DAYS_A_QUERY: i64 = 400;

/// Rows passing `filter`'s filters other than those on the line, newest first from `after`, at most `limit`: one
/// query, or for a filter on a day-partitioned index, one query per run of days, newest first, until `limit` rows
/// are found or the oldest day is read.
async fn newest_rows(
    reader: &Reader,
    filter: &EventFilter,
    columns: &str,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<SqliteRow>, StoreError> {
    let Some(index) = day_index(filter) else {
        let rows = select(filter, Scope::Newest(limit), columns, after).build().fetch_all(reader.sqlite()?).await?;
        // Only a page after a cursor is read in two parts (`select_newest_after`); a first page comes in order.
        return if after.is_some() { newest_first(rows, limit) } else { Ok(rows) };
    };
    // One connection for the walk: each new one of the pool is opened and set up first.
    let mut conn = reader.connection().await?;
    // Two subqueries: SQLite reads a lone min() or max() from the end of an index, but both in one SELECT scan it.
    let (oldest, newest): (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT (SELECT min(ts) FROM events), (SELECT max(ts) FROM events)")
            .fetch_one(&mut *conn)
            .await?;
    let (Some(oldest), Some(newest)) = (oldest, newest) else { return Ok(Vec::new()) };
    let day = |micros: i64| micros / DAY_MICROS;
    let oldest = filter.since.map_or(day(oldest), |since| day(oldest).max(day(since.timestamp_micros())));
    let mut newest = day(newest);
    if let Some(until) = filter.until {
        newest = newest.min(day(until.timestamp_micros().saturating_sub(1)));
    }
    if let Some(after) = after {
        newest = newest.min(day(after.ts));
    }
    let mut rows = Vec::new();
    let mut width = 1;
    while newest >= oldest && (rows.len() as i64) < limit {
        let days: Vec<i64> = (newest.saturating_sub(width - 1).max(oldest)..=newest).rev().collect();
        let scope = Scope::Days { index, days: &days, limit: limit - rows.len() as i64 };
        rows.extend(select(filter, scope, columns, after).build().fetch_all(&mut *conn).await?);
        newest = newest.saturating_sub(width);
        width = (width * 4).min(MOST_DAYS_A_QUERY);
    }
    Ok(rows)
}

/// Which rows a SELECT reads, and in what order.
enum Scope<'a> {
    /// Newest first, at most this many.
    Newest(i64),
    /// Newest first, at most `limit`, through a day-partitioned `index` on these `days`.
    Days { index: &'static str, days: &'a [i64], limit: i64 },
    /// The rows of the blocks the search index named, and those not yet indexed, in no order.
    Candidates(&'a super::search::Candidates),
}

/// `rows` newest first, at most `limit`: the two parts of a page after a cursor come in no promised order.
fn newest_first(rows: Vec<SqliteRow>, limit: i64) -> Result<Vec<SqliteRow>, StoreError> {
    let mut keyed = rows
        .into_iter()
        .map(|row| Ok((Cursor { ts: row.try_get("ts")?, id: row.try_get("id")? }, row)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    keyed.sort_unstable_by(|(a, _), (b, _)| b.cmp(a));
    keyed.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(keyed.into_iter().map(|(_, row)| row).collect())
}

/// The SELECT of `columns` for `filter`'s filters other than those on the line, after `after`, in `scope`.
fn select<'q>(
    filter: &'q EventFilter,
    scope: Scope<'_>,
    columns: &str,
    after: Option<Cursor>,
) -> QueryBuilder<'q, Sqlite> {
    if let (Scope::Newest(limit), Some(after)) = (&scope, after) {
        return select_newest_after(filter, columns, after, *limit);
    }
    let mut query: QueryBuilder<'q, Sqlite> = QueryBuilder::new("");
    let column = match &scope {
        Scope::Candidates(found) => {
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
        Scope::Days { index, days, .. } => {
            // The planner is told: without statistics it may walk `events_ts` newest first instead, reading the
            // whole table for a rare address.
            query.push(format!("SELECT {columns} FROM events INDEXED BY {index} WHERE ts / {DAY_MICROS} IN ("));
            let mut list = query.separated(", ");
            for day in days.iter() {
                list.push_bind(*day);
            }
            query.push(")");
            |name: &str| name.to_owned()
        }
        Scope::Newest(_) => {
            query.push(format!("SELECT {columns} FROM events WHERE 1=1"));
            |name: &str| name.to_owned()
        }
    };
    push_field_filters(&mut query, filter, column);
    if let Some(after) = after {
        query.push(format!(" AND ({} < ", column("ts"))).push_bind(after.ts);
        query
            .push(format!(" OR ({} = ", column("ts")))
            .push_bind(after.ts)
            .push(" AND id < ")
            .push_bind(after.id)
            .push("))");
    }
    if let Scope::Newest(limit) | Scope::Days { limit, .. } = scope {
        query.push(" ORDER BY ts DESC, id DESC LIMIT ").push_bind(limit);
    }
    query
}

/// The newest `limit` rows after `after` in two index seeks, each at most `limit` rows: the rest of the cursor's own
/// timestamp, then the older rows (merged by [`newest_first`]). As one condition (`ts < ? OR (ts = ? AND id < ?)`)
/// SQLite starts at the end of the cursor's timestamp and steps over every row of it that earlier pages returned, so
/// paging through a burst of one second cost more each page (and an export of a million rows twice the time).
fn select_newest_after<'q>(
    filter: &'q EventFilter,
    columns: &str,
    after: Cursor,
    limit: i64,
) -> QueryBuilder<'q, Sqlite> {
    let mut query: QueryBuilder<'q, Sqlite> =
        QueryBuilder::new(format!("SELECT * FROM (SELECT {columns} FROM events WHERE ts = "));
    query.push_bind(after.ts).push(" AND id < ").push_bind(after.id);
    push_field_filters(&mut query, filter, str::to_owned);
    query.push(" ORDER BY ts DESC, id DESC LIMIT ").push_bind(limit);
    query.push(format!(") UNION ALL SELECT * FROM (SELECT {columns} FROM events WHERE ts < "));
    query.push_bind(after.ts);
    push_field_filters(&mut query, filter, str::to_owned);
    query.push(" ORDER BY ts DESC, id DESC LIMIT ").push_bind(limit).push(")");
    query
}

/// `filter`'s conditions on the time and the indexed fields, each ` AND column ...`, with the column named by `column`.
fn push_field_filters<'q>(
    query: &mut QueryBuilder<'q, Sqlite>,
    filter: &'q EventFilter,
    column: impl Fn(&str) -> String,
) {
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
    if let Some(pool) = reader.postgres_pool() {
        return super::postgres::events::events_by_id(pool, &ids[..ids.len().min(EVENTS_BY_ID)]).await;
    }
    let pool = reader.sqlite()?;
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
    let mut expander = Expander::default();
    load_dictionaries(executor, rows, &mut expander).await?;
    rows.iter().map(|row| event_from_row(row, &mut expander).map(|(id, event)| StoredEvent { id, event })).collect()
}

/// The id of the newest stored event (0 when there is none): cheap on any size of table, unlike a count.
pub async fn newest_id(reader: &Reader) -> Result<i64, StoreError> {
    let newest: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM events").fetch_one(reader.sqlite()?).await?;
    Ok(newest.unwrap_or(0))
}

/// Number of stored events.
pub async fn count(reader: &Reader) -> Result<i64, StoreError> {
    let pool = reader.sqlite()?;
    Ok(sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(pool).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{field, Timestamp};
    use chrono::TimeZone;

    /// A database of 400 days (from 1 Jan 2026) in which 10.0.0.1 sends three events a day as `alice`, others send
    /// one event a day as other users, 10.9.9.9 sends one event on the first day, and `mallory` one on the last.
    async fn days(dir: &std::path::Path) -> Reader {
        let path = dir.join("d.db");
        drop(crate::store::open_writer(&path).await.unwrap());
        let mut inserter =
            crate::store::inserter::open_connection(&path, crate::store::inserter::InserterSettings::default())
                .unwrap();
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut events = Vec::new();
        let mut add = |day: i64, minute: i64, ip: String, user: &str| {
            let at = Timestamp::from_clock(start + chrono::Duration::days(day) + chrono::Duration::minutes(minute));
            let mut event = Event::new(at, at);
            event.set(field::ORIGINAL, format!("day {day} minute {minute} from {ip} as {user}"));
            event.set(field::SOURCE_IP, ip);
            event.set(field::USER_NAME, user.to_owned());
            events.push(event);
        };
        add(0, 30, "10.9.9.9".into(), "bob");
        add(399, 30, "10.8.8.8".into(), "mallory");
        for day in 0..400 {
            for minute in [1, 600, 1200] {
                add(day, minute, "10.0.0.1".into(), "alice");
            }
            add(day, 5, format!("10.1.{}.{}", day / 200, day % 200), "bob");
        }
        crate::store::inserter::insert_batch(&mut inserter, &events).unwrap();
        crate::store::open_reader(&path).await.unwrap()
    }

    fn originals(found: &[StoredEvent]) -> Vec<&str> {
        found.iter().map(|stored| stored.event.get(field::ORIGINAL).unwrap()).collect()
    }

    #[tokio::test]
    async fn filters_on_day_partitioned_indexes_read_newest_first_across_days_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let reader = days(dir.path()).await;
        let filter = |ip: Option<&str>, user: Option<&str>, limit: u32| EventFilter {
            source_ip: ip.map(str::to_owned),
            user: user.map(str::to_owned),
            limit,
            ..EventFilter::default()
        };
        // The oldest row of the table, and the newest: reached through every day, and at once.
        assert_eq!(
            originals(&events(&reader, &filter(Some("10.9.9.9"), None, 50)).await.unwrap()),
            ["day 0 minute 30 from 10.9.9.9 as bob"]
        );
        assert_eq!(
            originals(&events(&reader, &filter(None, Some("mallory"), 50)).await.unwrap()),
            ["day 399 minute 30 from 10.8.8.8 as mallory"]
        );
        // 1200 rows of one address: pages of 100 newest first, each following the last, none lost or repeated.
        let mut all = Vec::new();
        let mut page = filter(Some("10.0.0.1"), Some("alice"), 100);
        loop {
            let found = events(&reader, &page).await.unwrap();
            let Some(last) = found.last() else { break };
            page.after = Some(Cursor::of(last));
            all.extend(found.iter().map(|stored| (stored.event.timestamp.micros(), stored.id)));
        }
        assert_eq!(all.len(), 1200);
        assert!(all.windows(2).all(|pair| pair[0] > pair[1]), "newest first");
        // A user alone, and within since/until: days outside are not read.
        let bob = events(&reader, &filter(None, Some("bob"), 3)).await.unwrap();
        assert_eq!(
            originals(&bob),
            [
                "day 399 minute 5 from 10.1.1.199 as bob",
                "day 398 minute 5 from 10.1.1.198 as bob",
                "day 397 minute 5 from 10.1.1.197 as bob"
            ]
        );
        let window = EventFilter {
            since: Some(Utc.with_ymd_and_hms(2026, 1, 3, 0, 10, 0).unwrap()),
            until: Some(Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap()),
            ..filter(Some("10.0.0.1"), None, 50)
        };
        assert_eq!(
            originals(&events(&reader, &window).await.unwrap()),
            [
                "day 3 minute 1200 from 10.0.0.1 as alice",
                "day 3 minute 600 from 10.0.0.1 as alice",
                "day 3 minute 1 from 10.0.0.1 as alice",
                "day 2 minute 1200 from 10.0.0.1 as alice",
                "day 2 minute 600 from 10.0.0.1 as alice",
            ]
        );
        // With a line filter, through the same walk.
        let line = EventFilter { contains: Some("DAY 17 ".into()), ..filter(Some("10.0.0.1"), None, 50) };
        assert_eq!(events(&reader, &line).await.unwrap().len(), 3);
        assert!(events(&reader, &filter(Some("10.7.7.7"), None, 50)).await.unwrap().is_empty());
    }

    /// Pages of `filter` (each `limit` long) followed by their cursors to the end: (timestamp, id) of every event.
    async fn every_page(reader: &Reader, mut filter: EventFilter) -> Vec<(i64, i64)> {
        let mut all = Vec::new();
        loop {
            let (found, next) = page(reader, &filter).await.unwrap();
            all.extend(found.iter().map(|stored| (stored.event.timestamp.micros(), stored.id)));
            match next {
                Some(cursor) => filter.after = Some(cursor),
                None => return all,
            }
        }
    }

    #[tokio::test]
    async fn pages_through_a_burst_of_one_second_return_each_event_once_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("burst.db");
        drop(crate::store::open_writer(&path).await.unwrap());
        let mut inserter =
            crate::store::inserter::open_connection(&path, crate::store::inserter::InserterSettings::default())
                .unwrap();
        let second = |s: i64| {
            Timestamp::from_clock(Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(s))
        };
        // 300 events in one second between one before and one after it, from two hosts in turn.
        let mut events_stored = Vec::new();
        for (n, at) in std::iter::once(second(-1)).chain((0..300).map(|_| second(0))).chain([second(1)]).enumerate() {
            let mut event = Event::new(at, at);
            event.set(field::ORIGINAL, format!("line {n}"));
            event.set(field::HOST_NAME, if n % 2 == 0 { "hsm-a" } else { "hsm-b" }.to_owned());
            events_stored.push(event);
        }
        crate::store::inserter::insert_batch(&mut inserter, &events_stored).unwrap();
        let reader = crate::store::open_reader(&path).await.unwrap();
        let newest_first = |rows: &[(i64, i64)]| rows.windows(2).all(|pair| pair[0] > pair[1]);

        let all = every_page(&reader, EventFilter { limit: 7, ..EventFilter::default() }).await;
        assert_eq!(all.len(), 302);
        assert!(newest_first(&all), "newest first, none repeated");
        assert_eq!((all[0].1, all[301].1), (302, 1), "the second after the burst first, the one before it last");

        let host_b = EventFilter { host: Some("hsm-b".into()), limit: 11, ..EventFilter::default() };
        let b = every_page(&reader, host_b).await;
        assert_eq!(b.len(), 151, "every second line, across pages ending inside the burst");
        assert!(newest_first(&b) && b.iter().all(|(_, id)| id % 2 == 0), "hsm-b's lines are the even ids");

        let since = Some(second(0).at);
        let within =
            every_page(&reader, EventFilter { since, until: Some(second(1).at), limit: 50, ..EventFilter::default() })
                .await;
        assert_eq!(within.len(), 300, "the burst alone");
        let lines =
            every_page(&reader, EventFilter { contains: Some("LINE 2".into()), limit: 4, ..EventFilter::default() })
                .await;
        assert_eq!(lines.len(), 1 + 10 + 100, "line 2, 20-29 and 200-299");
        assert!(newest_first(&lines));
    }

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
