//! Fuzzes what the HTTP server makes of a query string before any database is asked: the extractor of
//! `/api/events` and the dashboard's event pages (`EventQuery`, percent-decoding included), the filter it becomes
//! (times, limits, cursors, search text), and `/api/alerts`' time. Checks that nothing panics and that every filter
//! that comes out is within the page limits.
#![no_main]

use axum::extract::Query;
use axum::http::Uri;
use hsmwatch::config::units::parse_time;
use hsmwatch::store::query::EventQuery;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Whatever a client can put after `?`: the URI parser decides what reaches the extractor, as in the server.
    let Ok(uri) = format!("/api/events?{text}").parse::<Uri>() else { return };
    if let Ok(Query(query)) = Query::<EventQuery>::try_from_uri(&uri) {
        if let Ok(filter) = query.filter(100, 1000) {
            assert!((1..=1000).contains(&filter.limit), "limit {} outside 1..=1000", filter.limit);
            if let (Some(since), Some(until)) = (filter.since, filter.until) {
                // Both parsed: comparing them must not panic either.
                let _ = since <= until;
            }
        }
    }
    // `since=` of `/api/alerts` and every time filter: relative spans, dates, absurd numbers.
    let _ = parse_time(text);
});
