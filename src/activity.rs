//! Hourly activity: events per hour, host and category, and failed logins, kept current after each committed batch
//! (`event_hours`), so that the dashboard's charts and 24-hour counts read a few rows instead of scanning events.
//!
//! Receives committed batches (beside the inventory); emits nothing downstream. Counts in memory and adds them to the
//! store's `event_hours` table ([`crate::store::activity`]) after each batch.

use std::collections::HashMap;

use crate::event::{field, Event};
use crate::store::activity::{self, HourCount, HOUR_MICROS};
use crate::store::{StoreError, WriteConn};

pub use crate::store::activity::{hour_of, since, HourRow};

/// The category of events no decoder classified.
pub const UNCATEGORIZED: &str = "uncategorized";

/// One host's counts not yet written: (hour, category) → (events, failed logins).
type HourCounts = HashMap<(i64, &'static str), (u64, u64)>;

/// Counts not yet written, per host.
#[derive(Debug, Default)]
pub struct Activity {
    pending: HashMap<String, HourCounts>,
}

fn category_of(event: &Event) -> &'static str {
    match event.get(field::CATEGORY) {
        Some(category) => crate::event::CATEGORIES.iter().copied().find(|c| *c == category).unwrap_or(UNCATEGORIZED),
        None => UNCATEGORIZED,
    }
}

impl Activity {
    /// Counts a committed batch.
    pub fn observe(&mut self, events: &[Event]) {
        for event in events {
            let hour = event.timestamp.micros().div_euclid(HOUR_MICROS);
            let host = event.get(field::HOST_NAME).unwrap_or("-");
            let category = category_of(event);
            let failed = category == "authentication" && event.get(field::OUTCOME) == Some("failure");
            // The host name is copied only the first time it is seen in this round.
            if !self.pending.contains_key(host) {
                self.pending.insert(host.to_owned(), HashMap::new());
            }
            let hours = self.pending.get_mut(host).expect("inserted above");
            let counts = hours.entry((hour, category)).or_default();
            counts.0 += 1;
            counts.1 += u64::from(failed);
        }
    }

    /// Adds what was counted to the table.
    pub async fn save(&mut self, conn: &mut WriteConn) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::new();
        for (host, hours) in &self.pending {
            rows.extend(hours.iter().map(|((hour, category), (events, failed))| HourCount {
                host,
                hour: *hour,
                category,
                events: *events,
                failed_logins: *failed,
            }));
        }
        // In key order, the rows of a year's import append to the table's B-tree instead of landing all over it.
        rows.sort_unstable_by_key(|row| (row.hour, row.host, row.category));
        activity::add(conn, &rows).await?;
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;
    use chrono::DateTime;

    #[test]
    fn batches_fold_into_hour_host_and_category() {
        let at = |seconds: i64| {
            let t = Timestamp::new(DateTime::from_timestamp(1_767_225_600 + seconds, 0).unwrap(), 0);
            let mut e = Event::new(t, t);
            e.set(field::HOST_NAME, "hsm-01");
            e
        };
        let mut failed = at(10);
        failed.set(field::CATEGORY, "authentication");
        failed.set(field::OUTCOME, "failure");
        let mut activity = Activity::default();
        activity.observe(&[at(0), failed, at(3700)]);
        let mut rows: Vec<_> = activity
            .pending
            .iter()
            .flat_map(|(n, hours)| hours.iter().map(move |((h, c), v)| (*h, n.clone(), *c, *v)))
            .collect();
        rows.sort();
        let hour = 1_767_225_600 / 3600;
        assert_eq!(
            rows,
            [
                (hour, "hsm-01".to_owned(), "authentication", (1, 1)),
                (hour, "hsm-01".to_owned(), UNCATEGORIZED, (1, 0)),
                (hour + 1, "hsm-01".to_owned(), UNCATEGORIZED, (1, 0)),
            ]
        );
    }
}
