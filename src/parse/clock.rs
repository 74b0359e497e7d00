//! How times that leave something out are completed: the zone of a time written without an offset (RFC 3164, the
//! Luna file layout), and the year of an RFC 3164 time, which has none.
//!
//! A live line takes the year that puts it nearest to its receipt (docs/events.md: a `Dec 31` line received on `Jan 1`
//! belongs to the year before). A line read from a file was written before the file was last changed, so it takes
//! the latest year that does not put it after that time.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::year::nearest_year;

/// How zone-less times of one source are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRules {
    /// The zone the sender writes times without an offset in (an IANA zone; UTC by default, as senders should).
    pub zone: Tz,
    /// How the year an RFC 3164 time leaves out is chosen.
    pub year: YearRule,
}

impl Default for TimeRules {
    fn default() -> Self {
        TimeRules { zone: Tz::UTC, year: YearRule::NearestToReceipt }
    }
}

/// How the year of an RFC 3164 time is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YearRule {
    /// The year nearest to the time of receipt: a live sender.
    NearestToReceipt,
    /// The latest year that puts the line no later than this time (plus a day for clocks that disagree): a file
    /// whose lines were all written before it was last modified.
    NotAfter(DateTime<Utc>),
    /// This year, as an operator said (`hsmwatch import --year`).
    Fixed(i32),
}

/// How much later than a file's modification time a line may seem before it is put in the year before: the
/// appliance's clock and the clock that stamped the file need not agree to the second.
const NOT_AFTER_SLACK: TimeDelta = TimeDelta::days(1);

impl TimeRules {
    /// Rules for a source in `zone`, years nearest to receipt.
    pub fn in_zone(zone: Tz) -> Self {
        TimeRules { zone, year: YearRule::NearestToReceipt }
    }

    /// The year of `(month, day, hour, minute, second)`, written by a sender of these rules, received at `received`.
    pub fn year(&self, received: DateTime<Utc>, date: (u32, u32, u32, u32, u32)) -> i32 {
        match self.year {
            YearRule::NearestToReceipt => nearest_year(self.local(received), date),
            YearRule::NotAfter(limit) => {
                let limit = limit.checked_add_signed(NOT_AFTER_SLACK).unwrap_or(limit);
                latest_year_not_after(self.local(limit), date)
            }
            YearRule::Fixed(year) => year,
        }
    }

    /// A wall-clock time of the sender as UTC. A time the clocks skip (the hour a zone moves forward) is read as the
    /// time an hour later, where the clock went; a time they pass twice as the first.
    pub fn to_utc(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        if self.zone == Tz::UTC {
            return Some(local.and_utc());
        }
        let first = |naive: NaiveDateTime| self.zone.from_local_datetime(&naive).earliest();
        let hour_later = local.checked_add_signed(TimeDelta::hours(1));
        first(local).or_else(|| hour_later.and_then(first)).map(|at| at.with_timezone(&Utc))
    }

    /// `at` as the sender's wall clock shows it, as if that wall clock were UTC (what the year rules compare).
    fn local(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        if self.zone == Tz::UTC {
            return at;
        }
        at.with_timezone(&self.zone).naive_local().and_utc()
    }
}

/// The latest year in which the date exists and is at or before `limit`.
fn latest_year_not_after(limit: DateTime<Utc>, date: (u32, u32, u32, u32, u32)) -> i32 {
    let (month, day, hour, minute, second) = date;
    let at = |year: i32| NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(hour, minute, second);
    // Feb 29 exists once in four years (eight around 2100): nine years back always find it.
    (limit.year() - 8..=limit.year())
        .rev()
        .find(|&year| at(year).is_some_and(|naive| naive.and_utc() <= limit))
        .unwrap_or(limit.year())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn times_at_the_end_of_the_calendar_do_not_panic() {
        let rules = TimeRules { zone: Tz::UTC, year: YearRule::NotAfter(DateTime::<Utc>::MAX_UTC) };
        let _ = rules.year(DateTime::<Utc>::MAX_UTC, (12, 31, 23, 59, 59));
        let berlin = TimeRules { zone: chrono_tz::Europe::Berlin, year: YearRule::NearestToReceipt };
        let _ = berlin.to_utc(NaiveDateTime::MAX);
    }

    #[test]
    fn a_file_line_is_never_after_the_file() {
        let rules = |limit| TimeRules { zone: Tz::UTC, year: YearRule::NotAfter(at(limit)) };
        let cases = [
            // Modified in spring: a March line of that spring, a September line of the year before.
            ("2026-03-20T00:00:00Z", (3, 9, 10, 0, 1), 2026),
            ("2026-03-20T00:00:00Z", (9, 15, 6, 30, 0), 2025),
            // Nearest would say 2026 (eight days ahead); a file cannot hold a line from after it was written.
            ("2026-03-01T00:00:00Z", (3, 9, 10, 0, 1), 2025),
            // Within a day after: the clocks disagree, the line is not a year older.
            ("2026-03-09T09:00:00Z", (3, 9, 10, 0, 1), 2026),
            ("2026-03-01T00:00:00Z", (2, 29, 12, 0, 0), 2024),
        ];
        for (limit, date, year) in cases {
            assert_eq!(rules(limit).year(at("2030-01-01T00:00:00Z"), date), year, "{date:?} not after {limit}");
        }
        let fixed = TimeRules { zone: Tz::UTC, year: YearRule::Fixed(2019) };
        assert_eq!(fixed.year(at("2026-03-01T00:00:00Z"), (3, 9, 10, 0, 1)), 2019);
    }

    #[test]
    fn zones_turn_wall_clocks_into_utc() {
        let berlin = TimeRules::in_zone(chrono_tz::Europe::Berlin);
        let naive = |text: &str| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(berlin.to_utc(naive("2026-01-10 12:00:00")), Some(at("2026-01-10T11:00:00Z")));
        assert_eq!(berlin.to_utc(naive("2026-07-10 12:00:00")), Some(at("2026-07-10T10:00:00Z")));
        // 02:30 on 29 March 2026 does not exist in Berlin: the clocks went from 02:00 to 03:00.
        assert_eq!(berlin.to_utc(naive("2026-03-29 02:30:00")), Some(at("2026-03-29T01:30:00Z")));
        // 02:30 on 25 October 2026 happens twice: the first (summer time).
        assert_eq!(berlin.to_utc(naive("2026-10-25 02:30:00")), Some(at("2026-10-25T00:30:00Z")));
    }

    #[test]
    fn the_year_rule_compares_wall_clocks() {
        // Received 23:30 UTC on Dec 31 is 00:30 on Jan 1 in Berlin: a Berlin `Jan  1 00:20` line is the new year's.
        let berlin = TimeRules::in_zone(chrono_tz::Europe::Berlin);
        assert_eq!(berlin.year(at("2026-12-31T23:30:00Z"), (1, 1, 0, 20, 0)), 2027);
        assert_eq!(TimeRules::default().year(at("2026-12-31T23:30:00Z"), (12, 31, 23, 20, 0)), 2026);
    }
}
