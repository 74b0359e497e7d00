//! Events in PostgreSQL: batches stored once however many collectors receive them, read back in id order, queried as
//! `hsmwatch query` does (typed filters, substring and whole-word search through [`super::grams`]), and retention by
//! whole months. Each collector stores what it receives tagged with its name (`observer.name`); a copy of a line
//! another collector stored already (same host, time and line, and the same occurrence: a second identical line in the
//! same second is a second event) only adds the collector to the event's observers (a row of `event_copies`).
//!
//! Batches are written one at a time across all collectors (a transaction-scoped advisory lock), so that event ids
//! are assigned in commit order: a reader that has seen id N has seen every event below it, which a single evaluator
//! following the table by id needs. The same lock makes the month partitions one collector creates safe from another.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, TimeZone, Utc};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Connection, Postgres, QueryBuilder, Row};

use super::PgStore;
use crate::event::Event;
use crate::store::activity::Activity;
use crate::store::chain::{seal_events, BatchHasher, RowImage, StoredRow};
use crate::store::columns::{self, SELECT_COLUMNS, TYPED_COLUMNS, TYPED_ORIGINAL};
use crate::store::query::EventFilter;
use crate::store::StoreError;

/// The advisory lock that orders batch commits (and partition changes) across collectors: "hsmwatch" in ASCII.
pub(super) const WRITE_LOCK: i64 = 0x6873_6d77_6174_6368;

/// How long a collector remembers the lines it stored, to number identical ones (the dedupe window's default).
pub const DEFAULT_COPY_WINDOW: Duration = Duration::from_secs(600);

/// What a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchStored {
    /// Events new to the database.
    pub stored: usize,
    /// Copies of events another collector had stored: this collector was added to their observers.
    pub copies: usize,
}

/// An event read back, with its id and the collectors that received it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Its id: ids follow commit order.
    pub id: i64,
    /// The event.
    pub event: Event,
    /// The collectors that received it, first the one that stored it.
    pub observers: Vec<String>,
}

impl From<StoredEvent> for crate::store::query::StoredEvent {
    fn from(stored: StoredEvent) -> Self {
        crate::store::query::StoredEvent { id: stored.id, event: stored.event }
    }
}

impl PgStore {
    /// Stores `events` as received by this collector, in one transaction.
    pub async fn insert_batch(&self, events: &[Event]) -> Result<BatchStored, StoreError> {
        let rows: Vec<columns::RowValues<'_>> = events.iter().map(columns::row_values).collect();
        let keys: Vec<CopyKey> = rows.iter().map(CopyKey::of).collect();
        let now = Instant::now();
        let occurrences = self.batches().copies.number(&keys, now);
        let mut conn = self.pool.acquire().await?;
        let mut transaction = conn.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(WRITE_LOCK).execute(&mut *transaction).await?;
        let months: HashSet<(i32, u32)> = rows.iter().filter_map(|row| month_of(row.times[0])).collect();
        let missing: Vec<(i32, u32)> = months.difference(&self.batches().months).copied().collect();
        for month in missing {
            create_partition(&mut transaction, month).await?;
        }
        let arrays = EventArrays::of(rows.iter().map(|row| row.image(0)));
        let received: Vec<i64> = rows.iter().map(|row| row.times[2]).collect();
        sqlx::query(HEARD).bind(&arrays.hosts).bind(&received).bind(&self.collector).execute(&mut *transaction).await?;
        let stored = arrays
            .bind(sqlx::query(INSERT))
            .bind(keys.iter().map(|key| key.line_hash.to_vec()).collect::<Vec<_>>())
            .bind(&occurrences)
            .bind(&self.collector)
            .fetch_one(&mut *transaction)
            .await?;
        let (copies, stored_at, stored_ids): (i64, Vec<i32>, Vec<i64>) =
            (stored.try_get(0)?, stored.try_get(1)?, stored.try_get(2)?);
        if let (Some(first), Some(last)) = (stored_ids.first(), stored_ids.last()) {
            let prev_hash = super::chain::link(&mut transaction).await?;
            let mut hasher = BatchHasher::new(&prev_hash);
            for (at, id) in stored_at.iter().zip(&stored_ids) {
                hasher.row(&rows[*at as usize - 1].image(*id));
            }
            let sealed = seal_events(*first, *last, stored_ids.len() as u64, &hasher.finish(), Utc::now());
            super::chain::append_events(&mut transaction, *first, *last, &prev_hash, &sealed).await?;
            let lines = stored_at.iter().map(|at| rows[*at as usize - 1].typed[7]);
            super::grams::index(&mut transaction, stored_ids.iter().copied().zip(lines)).await?;
            let mut hours = Activity::default();
            hours.observe(stored_at.iter().map(|at| &events[*at as usize - 1]));
            hours.save_in_transaction(&mut *transaction).await?;
        }
        transaction.commit().await?;
        let mut batches = self.batches();
        batches.months.extend(months);
        batches.copies.remember(keys, &occurrences, now);
        Ok(BatchStored { stored: stored_ids.len(), copies: copies as usize })
    }

    /// Up to `limit` events after id `after`, in id order.
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        events_after(&mut *self.pool.acquire().await?, after, limit).await
    }

    /// The events `filter` selects, newest first (by time, then id), as `hsmwatch query` and the API ask: the typed
    /// filters through their indexes, `contains` and `word` (case-insensitive) through the search index
    /// ([`super::grams`]).
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        matching(&self.pool, filter).await
    }

    /// Retention, as far as `keep` allows in whole months: the chain's records committed before the month that holds
    /// the time `keep` ago go, with their events: the month partitions that end by then and hold no newer record's
    /// events are dropped whole (the common case: a month's lines are stored in that month), the few events of the
    /// removed records left elsewhere are deleted, and the anchor moves with a prune record in the chain. Events of a
    /// newer record in an old month (an import of old lines) keep their month until that record is old enough.
    pub async fn prune_before(&self, cutoff: DateTime<Utc>) -> Result<PrunedMonths, StoreError> {
        let Some(month_cutoff) = month_of(cutoff.timestamp_micros()).and_then(month_start) else {
            return Ok(PrunedMonths::default());
        };
        let month_cutoff = Utc.timestamp_micros(month_cutoff).single().unwrap_or(cutoff);
        let mut conn = self.pool.acquire().await?;
        let mut transaction = conn.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(WRITE_LOCK).execute(&mut *transaction).await?;
        let Some(prunable) = super::chain::prunable(&mut transaction, month_cutoff).await? else {
            return Ok(PrunedMonths::default());
        };
        let partitions: Vec<String> = sqlx::query_scalar(
            "SELECT child.relname::text FROM pg_inherits JOIN pg_class child ON child.oid = inhrelid \
             JOIN pg_class parent ON parent.oid = inhparent WHERE parent.relname = 'events'",
        )
        .fetch_all(&mut *transaction)
        .await?;
        let mut dropped = Vec::new();
        for name in partitions {
            let Some(month) = month_of_partition(&name) else { continue };
            if month_end(month).is_none_or(|end| end > month_cutoff.timestamp_micros()) {
                continue;
            }
            let newest: Option<i64> =
                sqlx::query_scalar(&format!("SELECT max(id) FROM {name}")).fetch_one(&mut *transaction).await?;
            if newest.is_some_and(|id| id > prunable.anchor.last_event_id) {
                continue;
            }
            let copies = copies_partition_name(month);
            sqlx::query(&format!("DROP TABLE {name}, {copies}")).execute(&mut *transaction).await?;
            dropped.push((month, name));
        }
        super::chain::prune(&mut transaction, &prunable).await?;
        transaction.commit().await?;
        let mut batches = self.batches();
        for (month, _) in &dropped {
            batches.months.remove(month);
        }
        let mut months: Vec<String> = dropped.into_iter().map(|(_, name)| name).collect();
        months.sort();
        Ok(PrunedMonths {
            months,
            events: (prunable.anchor.pruned_events - prunable.before.pruned_events) as u64,
            anchor: prunable.anchor,
        })
    }
}

/// What a retention pass removed from the shared database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrunedMonths {
    /// The month partitions dropped whole.
    pub months: Vec<String>,
    /// Events the removed records held.
    pub events: u64,
    /// Where the chain's anchor is now.
    pub anchor: crate::store::chain::AnchorState,
}

/// The events `filter` selects on `pool`, newest first (see [`PgStore::events`]).
pub(crate) async fn matching(pool: &sqlx::PgPool, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
    let mut conn = pool.acquire().await?;
    // The rarer of the strings narrows the lines read to a few runs of the search index; a common one is found soon
    // reading newest first.
    let mut runs = None;
    for needle in [&filter.contains, &filter.word].into_iter().flatten() {
        if let Some(found) = super::grams::candidates(&mut conn, needle).await? {
            if runs.as_ref().is_none_or(|runs: &Vec<(i64, i64)>| found.len() < runs.len()) {
                runs = Some(found);
            }
        }
    }
    let mut query = QueryBuilder::<Postgres>::new(format!("SELECT {SELECT_COLUMNS}, {OBSERVERS} FROM "));
    match runs {
        Some(runs) => {
            // Each run read by its ids (OFFSET 0 keeps the planner from joining the other way: reading every line
            // and matching it against the runs).
            let (firsts, lasts): (Vec<i64>, Vec<i64>) = runs.into_iter().unzip();
            query.push("UNNEST(").push_bind(firsts).push("::int8[], ").push_bind(lasts);
            query.push(
                "::int8[]) AS run(first_id, last_id) CROSS JOIN LATERAL (SELECT * FROM events \
                 WHERE id BETWEEN run.first_id AND run.last_id OFFSET 0) AS events",
            );
        }
        None => {
            query.push("events");
        }
    }
    query.push(" WHERE true");
    if let Some(since) = filter.since {
        query.push(" AND ts >= ").push_bind(since.timestamp_micros());
    }
    if let Some(until) = filter.until {
        query.push(" AND ts < ").push_bind(until.timestamp_micros());
    }
    if let Some(host) = &filter.host {
        query.push(" AND host = ").push_bind(host.clone());
    }
    for (column, value) in [
        ("action", &filter.action),
        ("outcome", &filter.outcome),
        ("user_name", &filter.user),
        ("source_ip", &filter.source_ip),
    ] {
        if let Some(value) = value {
            query.push(format!(" AND {column} = ")).push_bind(value.clone());
        }
    }
    if let Some(text) = &filter.contains {
        query.push(" AND original ILIKE ").push_bind(like_pattern(text));
    }
    if let Some(text) = &filter.word {
        // Not preceded or followed by an ASCII letter, digit or `_`, as SQLite's store has it.
        let pattern = format!("(^|[^A-Za-z0-9_]){}([^A-Za-z0-9_]|$)", regex_literal(text));
        query.push(" AND original ~* ").push_bind(pattern);
    }
    if let Some(after) = filter.after {
        query.push(" AND (ts, id) < (").push_bind(after.ts).push(", ").push_bind(after.id).push(")");
    }
    query.push(" ORDER BY ts DESC, id DESC LIMIT ").push_bind(i64::from(filter.limit));
    let rows = query.build().fetch_all(&mut *conn).await?;
    rows.iter().map(stored_event).collect()
}

/// Up to `limit` events after id `after` on `conn`, in id order.
pub(super) async fn events_after(
    conn: &mut sqlx::PgConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let sql = format!("SELECT {SELECT_COLUMNS}, {OBSERVERS} FROM events WHERE id > $1 ORDER BY id LIMIT $2");
    let rows = sqlx::query(&sql).bind(after).bind(limit).fetch_all(conn).await?;
    rows.iter().map(stored_event).collect()
}

/// The events of these ids (those that still exist), in id order.
pub(crate) async fn events_by_id(
    pool: &sqlx::PgPool,
    ids: &[i64],
) -> Result<Vec<crate::store::query::StoredEvent>, StoreError> {
    let sql = format!("SELECT {SELECT_COLUMNS}, {OBSERVERS} FROM events WHERE id = ANY($1) ORDER BY id");
    let rows = sqlx::query(&sql).bind(ids).fetch_all(pool).await?;
    rows.iter().map(|row| stored_event(row).map(Into::into)).collect()
}

/// One batch, as arrays: events new to the database are stored with this collector as their observer; a copy of an
/// event stored already (same host, time, line and occurrence; stored by another collector) only adds this collector
/// to its copies, once. A batch retried after an unknown commit changes nothing. Returns the copies added and the
/// events stored: their places in the batch (from 1) and their ids, in id order, for the chain's record. The copies are found among the rows that existed before the statement (its snapshot): exactly those
/// the insert left alone, each looked up by the unique key (a join let the planner scan a month's partition for
/// every batch).
const INSERT: &str = "WITH batch AS (SELECT * FROM UNNEST($1::int8[], $2::int2[], $3::int8[], $4::int2[], $5::text[], \
     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bytea[], $14::bytea[], \
     $15::int4[], $16::bytea[], $17::int2[]) WITH ORDINALITY AS b(ts, ts_digits, created, created_digits, host, \
     dataset, action, outcome, user_name, source_ip, format, original, raw, fields, message_at, line_hash, occurrence, \
     n)), \
     stored AS (INSERT INTO events (ts, ts_digits, created, created_digits, host, dataset, action, outcome, user_name, \
     source_ip, format, original, raw, fields, message_at, line_hash, occurrence, observer) \
     SELECT ts, ts_digits, created, created_digits, host, dataset, action, outcome, user_name, source_ip, format, \
     original, raw, fields, message_at, line_hash, occurrence, $18::text FROM batch \
     ORDER BY n ON CONFLICT (host, ts, line_hash, occurrence) DO NOTHING \
     RETURNING id, host, ts, line_hash, occurrence), \
     copies AS (INSERT INTO event_copies (event_id, ts, collector) \
     SELECT e.id, e.ts, $18::text FROM batch b CROSS JOIN LATERAL (SELECT id, ts, observer FROM events \
     WHERE host = b.host AND ts = b.ts AND line_hash = b.line_hash AND occurrence = b.occurrence LIMIT 1) e \
     WHERE e.observer <> $18::text ON CONFLICT DO NOTHING RETURNING 1) \
     SELECT (SELECT count(*) FROM copies), \
     ARRAY(SELECT b.n::int4 FROM stored s JOIN batch b USING (host, ts, line_hash, occurrence) ORDER BY s.id), \
     ARRAY(SELECT id FROM stored ORDER BY id)";

/// What a batch adds to `host_collectors`: per host, its lines' first and last receipt times and their count.
pub(super) const HEARD: &str = "INSERT INTO host_collectors (host, collector, first_seen, last_seen, events) \
     SELECT host, $3::text, min(created), max(created), count(*) FROM UNNEST($1::text[], $2::int8[]) AS b(host, created) \
     GROUP BY host ON CONFLICT (host, collector) DO UPDATE SET \
     first_seen = least(host_collectors.first_seen, excluded.first_seen), \
     last_seen = greatest(host_collectors.last_seen, excluded.last_seen), \
     events = host_collectors.events + excluded.events";

/// The observers of an event read with [`SELECT_COLUMNS`]: the collector that stored it, then the others by name.
const OBSERVERS: &str = "array_prepend(observer, ARRAY(SELECT c.collector FROM event_copies c \
     WHERE c.event_id = events.id AND c.ts = events.ts ORDER BY c.collector)) AS observers";

/// `text` as an ILIKE pattern matching it anywhere: `%`, `_` and `\` in it are literal.
fn like_pattern(text: &str) -> String {
    format!("%{}%", text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))
}

/// `text` as a regular expression matching itself.
fn regex_literal(text: &str) -> String {
    text.chars().fold(String::with_capacity(text.len()), |mut out, c| {
        if "\\.^$*+?()[]{}|".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

/// An event of a row read with [`SELECT_COLUMNS`] and `observers`.
fn stored_event(row: &PgRow) -> Result<StoredEvent, StoreError> {
    let parts = stored_row(row)?.into_parts();
    Ok(StoredEvent { id: parts.id, event: columns::event_from_parts(parts)?, observers: row.try_get("observers")? })
}

/// The columns of a row read with [`SELECT_COLUMNS`]: a host stored as '' (the dedupe key needs one) is none, as the
/// event had it.
pub(super) fn stored_row(row: &PgRow) -> Result<StoredRow, StoreError> {
    let mut typed: [Option<String>; 8] = Default::default();
    for (value, column) in typed.iter_mut().zip(TYPED_COLUMNS) {
        *value = row.try_get(column)?;
    }
    typed[0] = typed[0].take().filter(|host| !host.is_empty());
    Ok(StoredRow {
        id: row.try_get("id")?,
        times: [
            row.try_get("ts")?,
            i64::from(row.try_get::<i16, _>("ts_digits")?),
            row.try_get("created")?,
            i64::from(row.try_get::<i16, _>("created_digits")?),
        ],
        typed,
        raw: row.try_get("raw")?,
        fields: row.try_get("fields")?,
        message_at: row.try_get::<Option<i32>, _>("message_at")?.map(i64::from),
    })
}

/// Rows' columns as arrays, each one parameter of an `UNNEST`, bound in [`SELECT_COLUMNS`]' order from `ts` to
/// `message_at` (the host '' when the row names none: the dedupe key needs one).
pub(super) struct EventArrays {
    /// ts, created.
    times: [Vec<i64>; 2],
    /// ts_digits, created_digits.
    digits: [Vec<i16>; 2],
    /// host.
    pub(super) hosts: Vec<String>,
    /// dataset, action, outcome, user_name, source_ip, format, original.
    texts: [Vec<Option<String>>; 7],
    raw: Vec<Option<Vec<u8>>>,
    fields: Vec<Vec<u8>>,
    message_at: Vec<Option<i32>>,
}

impl EventArrays {
    /// The arrays of `rows`.
    pub(super) fn of<'r>(rows: impl Iterator<Item = RowImage<'r>>) -> EventArrays {
        let mut arrays = EventArrays {
            times: Default::default(),
            digits: Default::default(),
            hosts: Vec::new(),
            texts: Default::default(),
            raw: Vec::new(),
            fields: Vec::new(),
            message_at: Vec::new(),
        };
        for row in rows {
            let [ts, ts_digits, created, created_digits] = row.times;
            arrays.times[0].push(ts);
            arrays.times[1].push(created);
            arrays.digits[0].push(ts_digits as i16);
            arrays.digits[1].push(created_digits as i16);
            arrays.hosts.push(row.typed[0].unwrap_or_default().to_owned());
            for (array, text) in arrays.texts.iter_mut().zip(&row.typed[1..]) {
                array.push(text.map(str::to_owned));
            }
            arrays.raw.push(row.raw.map(<[u8]>::to_vec));
            arrays.fields.push(row.fields.to_vec());
            arrays.message_at.push(row.message_at.map(|at| at as i32));
        }
        arrays
    }

    /// `query` with the arrays bound next, fifteen parameters.
    pub(super) fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, Postgres, PgArguments>,
    ) -> sqlx::query::Query<'q, Postgres, PgArguments> {
        let [ts, created] = self.times;
        let [ts_digits, created_digits] = self.digits;
        let mut query = query.bind(ts).bind(ts_digits).bind(created).bind(created_digits).bind(self.hosts);
        for texts in self.texts {
            query = query.bind(texts);
        }
        query.bind(self.raw).bind(self.fields).bind(self.message_at)
    }
}

/// Year and month of a time in microseconds.
pub(super) fn month_of(micros: i64) -> Option<(i32, u32)> {
    Utc.timestamp_micros(micros).single().map(|at| (at.year(), at.month()))
}

/// The first microsecond of a month.
fn month_start((year, month): (i32, u32)) -> Option<i64> {
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).single().map(|at| at.timestamp_micros())
}

/// The first microsecond after a month.
fn month_end((year, month): (i32, u32)) -> Option<i64> {
    month_start(if month == 12 { (year + 1, 1) } else { (year, month + 1) })
}

/// A month partition's name.
fn partition_name((year, month): (i32, u32)) -> String {
    format!("events_{year:04}_{month:02}")
}

/// The name of a month's partition of the copies.
fn copies_partition_name((year, month): (i32, u32)) -> String {
    format!("event_copies_{year:04}_{month:02}")
}

/// The month of a partition's name.
fn month_of_partition(name: &str) -> Option<(i32, u32)> {
    let (year, month) = name.strip_prefix("events_")?.split_once('_')?;
    let month: u32 = month.parse().ok()?;
    (1..=12).contains(&month).then_some((year.parse().ok()?, month))
}

/// Creates a month's partition unless it exists (inside the write lock: no other collector races it).
pub(super) async fn create_partition(conn: &mut sqlx::PgConnection, month: (i32, u32)) -> Result<(), StoreError> {
    let (Some(start), Some(end)) = (month_start(month), month_end(month)) else {
        return Ok(());
    };
    for (table, name) in [("events", partition_name(month)), ("event_copies", copies_partition_name(month))] {
        let sql =
            format!("CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} FOR VALUES FROM ({start}) TO ({end})");
        sqlx::query(&sql).execute(&mut *conn).await?;
    }
    Ok(())
}

/// What makes two received lines copies of one event: host, time and the line's hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CopyKey {
    host: String,
    ts: i64,
    line_hash: [u8; 32],
}

impl CopyKey {
    fn of(row: &columns::RowValues<'_>) -> CopyKey {
        CopyKey {
            host: row.typed[0].unwrap_or_default().to_owned(),
            ts: row.times[0],
            line_hash: line_hash(row.typed[TYPED_ORIGINAL], row.raw),
        }
    }
}

/// The hash of a line (and of its raw frame, when it was not valid UTF-8) in the dedupe key.
pub(super) fn line_hash(original: Option<&str>, raw: Option<&[u8]>) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(original.unwrap_or_default().as_bytes());
    if let Some(raw) = raw {
        hash.update(raw);
    }
    hash.finalize().into()
}

/// The lines a collector stored lately, with how many of each: the second identical line in the same second is
/// occurrence 2, which matches another collector's occurrence 2 of it.
pub(super) struct Copies {
    window: Duration,
    seen: HashMap<CopyKey, i16>,
    order: VecDeque<(Instant, CopyKey)>,
}

impl Copies {
    pub(super) fn new(window: Duration) -> Self {
        Copies { window, seen: HashMap::new(), order: VecDeque::new() }
    }

    /// The occurrence of each key: after those already stored, and those before it in `keys`. Nothing is counted
    /// until [`Copies::remember`]: a batch that fails to commit is numbered the same when it is sent again.
    fn number(&mut self, keys: &[CopyKey], now: Instant) -> Vec<i16> {
        while self.order.front().is_some_and(|(at, _)| now.saturating_duration_since(*at) > self.window) {
            if let Some((_, key)) = self.order.pop_front() {
                self.seen.remove(&key);
            }
        }
        let mut in_batch: HashMap<&CopyKey, i16> = HashMap::new();
        keys.iter()
            .map(|key| {
                let count = in_batch.entry(key).or_insert_with(|| self.seen.get(key).copied().unwrap_or(0));
                *count = count.saturating_add(1);
                *count
            })
            .collect()
    }

    /// Counts a committed batch's keys with the occurrences [`Copies::number`] gave them.
    fn remember(&mut self, keys: Vec<CopyKey>, occurrences: &[i16], now: Instant) {
        for (key, occurrence) in keys.into_iter().zip(occurrences) {
            if !self.seen.contains_key(&key) {
                self.order.push_back((now, key.clone()));
            }
            let count = self.seen.entry(key).or_insert(0);
            *count = (*count).max(*occurrence);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(line: &str) -> CopyKey {
        CopyKey { host: "hsm1".into(), ts: 1, line_hash: Sha256::digest(line.as_bytes()).into() }
    }

    #[test]
    fn identical_lines_are_numbered_until_the_window_forgets_them() {
        let start = Instant::now();
        let mut copies = Copies::new(Duration::from_secs(600));
        let batch = [key("a"), key("b"), key("a")];
        assert_eq!(copies.number(&batch, start), [1, 1, 2]);
        assert_eq!(copies.number(&batch, start), [1, 1, 2], "a batch that did not commit is numbered the same again");
        copies.remember(batch.to_vec(), &[1, 1, 2], start);
        assert_eq!(copies.number(&[key("a")], start + Duration::from_secs(599)), [3]);
        assert_eq!(copies.number(&[key("a")], start + Duration::from_secs(601)), [1], "forgotten after the window");
    }

    #[test]
    fn search_text_is_literal_in_patterns() {
        assert_eq!(like_pattern(r"50%_a\b"), r"%50\%\_a\\b%");
        assert_eq!(regex_literal("p12.x(2)"), r"p12\.x\(2\)");
    }

    #[test]
    fn partitions_are_named_by_month_and_read_back() {
        let micros = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap().timestamp_micros();
        let month = month_of(micros).unwrap();
        assert_eq!(partition_name(month), "events_2026_12");
        assert_eq!(month_of_partition("events_2026_12"), Some((2026, 12)));
        assert_eq!(month_of_partition("events_copy"), None);
        assert_eq!(month_end(month), Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap().timestamp_micros()));
        assert!(month_start(month).unwrap() <= micros && micros < month_end(month).unwrap());
    }
}
