//! The year of an RFC 3164 timestamp, which has none: the year that puts the event nearest to its receipt
//! (docs/events.md: a `Dec 31` line received on `Jan 1` belongs to the year before).

use chrono::{DateTime, NaiveDate, Utc};

/// How many years either side of the year of receipt are tried, so that `Feb 29` finds a leap year.
const SEARCH_YEARS: i32 = 4;

/// The year for `(month, day, hour, minute, second)` nearest to `received`; the receipt year when no nearby year
/// has that date (then the date is invalid and the parser rejects it).
pub fn nearest_year(received: DateTime<Utc>, date: (u32, u32, u32, u32, u32)) -> i32 {
    let (month, day, hour, minute, second) = date;
    let base = chrono::Datelike::year(&received);
    let distance = |year: i32| {
        let at = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(hour, minute, second)?.and_utc();
        Some((year, (at - received).num_seconds().unsigned_abs()))
    };
    let nearest = |candidates: &mut dyn Iterator<Item = (i32, u64)>| {
        candidates.min_by_key(|&(year, distance)| (distance, (year - base).unsigned_abs())).map_or(base, |(y, _)| y)
    };
    // A date that exists in the years either side of the receipt year is nearest in one of those three: any other
    // year is more than a year away, and one of the three is within half a year. Only `Feb 29` needs the search.
    let close = [distance(base - 1), distance(base), distance(base + 1)];
    if close.iter().all(Option::is_some) {
        return nearest(&mut close.into_iter().flatten());
    }
    nearest(&mut (base - SEARCH_YEARS..=base + SEARCH_YEARS).filter_map(distance))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn year_rule_table() {
        let cases = [
            ("2027-01-01T00:00:03Z", (12, 31, 23, 59, 58), 2026),
            ("2026-12-31T23:59:57Z", (1, 1, 0, 0, 4), 2027),
            ("2028-03-01T00:00:10Z", (2, 29, 12, 5, 1), 2028),
            ("2026-01-10T12:00:00Z", (9, 15, 6, 30, 0), 2025),
            ("2026-03-01T12:00:00Z", (3, 1, 11, 0, 0), 2026),
            ("2026-03-01T12:00:00Z", (2, 29, 0, 0, 0), 2028),
            ("2026-03-01T12:00:00Z", (2, 30, 0, 0, 0), 2026),
        ];
        for (received, date, year) in cases {
            assert_eq!(nearest_year(at(received), date), year, "{date:?} received {received}");
        }
    }
}
