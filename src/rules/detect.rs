//! The state of the stateful detections, one group at a time: threshold windows, absence timers, new-value sets and
//! sequence progress. Times are UTC instants; windows use event time (`@timestamp`), absence uses time of receipt
//! (appliance clocks drift, and a silence is about what the collector has not received).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::load::Step;
use crate::event::Event;

/// Events kept per group for the alert text (`events`, the first few).
pub const SAMPLE: usize = 5;

/// What a group has collected towards a firing.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Evidence {
    /// Matching events counted.
    pub count: u64,
    /// Time of the first.
    pub first_seen: Option<DateTime<Utc>>,
    /// Time of the last.
    pub last_seen: Option<DateTime<Utc>>,
    /// The first few events.
    pub sample: Vec<Arc<Event>>,
    /// The last event.
    pub last: Option<Arc<Event>>,
    /// Stored ids of the events.
    pub ids: Vec<i64>,
}

impl Evidence {
    /// Adds an event seen at `at`.
    pub fn add(&mut self, event: &Arc<Event>, id: Option<i64>, at: DateTime<Utc>) {
        self.count += 1;
        self.first_seen = Some(self.first_seen.map_or(at, |f| f.min(at)));
        self.last_seen = Some(self.last_seen.map_or(at, |l| l.max(at)));
        if self.sample.len() < SAMPLE {
            self.sample.push(event.clone());
        }
        self.last = Some(event.clone());
        self.ids.extend(id);
    }
}

/// A sliding window of one group.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Window {
    entries: VecDeque<(DateTime<Utc>, Option<String>, Option<i64>)>,
    sample: Vec<(DateTime<Utc>, Arc<Event>)>,
    last: Option<Arc<Event>>,
    /// Receipt time of the newest event: expiry runs on the collector's clock, never comparing it with the sender's.
    #[serde(default)]
    last_received: Option<DateTime<Utc>>,
}

impl Window {
    /// Adds an event at event time `at` (with its distinct value), drops what fell out of `window`, and returns the
    /// evidence when `needed` events (or distinct values) are in the window; the window is then emptied.
    pub fn push(
        &mut self,
        event: &Arc<Event>,
        id: Option<i64>,
        at: DateTime<Utc>,
        distinct: Option<String>,
        window: chrono::Duration,
        needed: u64,
    ) -> Option<Evidence> {
        self.last_received = Some(self.last_received.map_or(event.created.at, |r| r.max(event.created.at)));
        let position = self.entries.iter().position(|(t, _, _)| *t > at).unwrap_or(self.entries.len());
        self.entries.insert(position, (at, distinct, id));
        // A window longer than the calendar reaches back to its start, not past it (which would panic).
        let newest = self.entries.back().map_or(at, |(t, _, _)| *t);
        let cutoff = newest.checked_sub_signed(window).unwrap_or(DateTime::<Utc>::MIN_UTC);
        while self.entries.front().is_some_and(|(t, _, _)| *t <= cutoff) {
            self.entries.pop_front();
        }
        self.sample.retain(|(t, _)| *t > cutoff);
        if self.sample.len() < SAMPLE && at > cutoff {
            self.sample.push((at, event.clone()));
        }
        self.last = Some(event.clone());
        let reached = match self.entries.front().and_then(|(_, d, _)| d.as_ref()) {
            Some(_) => self.entries.iter().filter_map(|(_, d, _)| d.as_deref()).collect::<HashSet<_>>().len() as u64,
            None => self.entries.len() as u64,
        };
        if reached < needed {
            return None;
        }
        let evidence = Evidence {
            count: reached,
            first_seen: self.entries.front().map(|(t, _, _)| *t),
            last_seen: self.entries.back().map(|(t, _, _)| *t),
            sample: std::mem::take(&mut self.sample).into_iter().map(|(_, e)| e).collect(),
            last: self.last.take(),
            ids: self.entries.iter().filter_map(|(_, _, id)| *id).collect(),
        };
        self.entries.clear();
        Some(evidence)
    }

    /// When the group last saw an event, for eviction.
    pub fn newest(&self) -> Option<DateTime<Utc>> {
        self.entries.back().map(|(t, _, _)| *t)
    }

    /// When the group last received an event (collector clock), for expiry.
    pub fn last_received(&self) -> Option<DateTime<Utc>> {
        self.last_received
    }
}

/// One group of an absence rule.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Silence {
    /// Receipt time of the last matching event (or when the group became expected).
    pub last_seen: DateTime<Utc>,
    /// Whether an alert is open for the group.
    pub firing: bool,
    /// The last matching event.
    pub last: Option<Arc<Event>>,
}

/// Progress of one group through a sequence.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// The step waited for.
    pub step: usize,
    /// Events of that step so far.
    pub count_in_step: u64,
    /// When the first step happened.
    pub started: DateTime<Utc>,
    /// Everything matched so far.
    pub evidence: Evidence,
}

/// What an event does to a sequence's progress.
#[derive(Debug)]
pub enum SequenceOutcome {
    /// Nothing for this group.
    Ignored,
    /// The progress moved or started.
    Moved(Progress),
    /// The last step completed: fire.
    Completed(Evidence),
    /// An `absent` step's event came: the sequence is broken and forgotten.
    Broken,
}

/// Advances `progress` (or starts one) with an event whose selections matched as `selected`.
pub fn sequence_step(
    progress: Option<Progress>,
    steps: &[Step],
    within: chrono::Duration,
    selected: &[bool],
    event: &Arc<Event>,
    id: Option<i64>,
    at: DateTime<Utc>,
) -> SequenceOutcome {
    let progress = progress.filter(|p| at - p.started <= within);
    let mut progress = match progress {
        Some(p) => p,
        None if selected[steps[0].selection] => {
            Progress { step: 0, count_in_step: 0, started: at, evidence: Evidence::default() }
        }
        None => return SequenceOutcome::Ignored,
    };
    let step = steps[progress.step];
    if !selected[step.selection] {
        return SequenceOutcome::Moved(progress);
    }
    if step.absent {
        return SequenceOutcome::Broken;
    }
    progress.evidence.add(event, id, at);
    progress.count_in_step += 1;
    if progress.count_in_step >= step.count {
        progress.step += 1;
        progress.count_in_step = 0;
        if progress.step == steps.len() {
            return SequenceOutcome::Completed(progress.evidence);
        }
    }
    SequenceOutcome::Moved(progress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn event() -> Arc<Event> {
        let now = Timestamp::from_clock(t(0));
        Arc::new(Event::new(now, now))
    }

    #[test]
    fn a_window_longer_than_the_calendar_does_not_panic() {
        let mut window = Window::default();
        let forever = chrono::Duration::MAX;
        let year_five = DateTime::from_timestamp(-62_000_000_000, 0).unwrap();
        assert!(window.push(&event(), Some(1), year_five, None, forever, 2).is_none());
        assert!(window.push(&event(), Some(2), t(0), None, forever, 2).is_some());
    }

    #[test]
    fn a_window_slides_and_empties_when_it_fires() {
        let mut window = Window::default();
        let five_minutes = chrono::Duration::minutes(5);
        assert!(window.push(&event(), Some(1), t(0), None, five_minutes, 3).is_none());
        assert!(window.push(&event(), Some(2), t(200), None, five_minutes, 3).is_none());
        // The first event has left the window by the third.
        assert!(window.push(&event(), Some(3), t(301), None, five_minutes, 3).is_none());
        let fired = window.push(&event(), Some(4), t(302), None, five_minutes, 3).unwrap();
        assert_eq!((fired.count, fired.ids.clone()), (3, vec![2, 3, 4]));
        assert_eq!((fired.first_seen, fired.last_seen), (Some(t(200)), Some(t(302))));
        assert!(
            window.push(&event(), Some(5), t(303), None, five_minutes, 3).is_none(),
            "consumed: counting starts again"
        );
    }

    #[test]
    fn distinct_counts_values() {
        let mut window = Window::default();
        let minute = chrono::Duration::minutes(1);
        for (i, user) in ["a", "a", "b"].iter().enumerate() {
            assert!(window.push(&event(), None, t(i as i64), Some(user.to_string()), minute, 3).is_none());
        }
        assert_eq!(window.push(&event(), None, t(5), Some("c".into()), minute, 3).unwrap().count, 3);
    }

    #[test]
    fn sequences_complete_break_and_expire() {
        let steps = [Step { selection: 0, count: 2, absent: false }, Step { selection: 1, count: 1, absent: false }];
        let within = chrono::Duration::minutes(10);
        let (a, b) = ([true, false], [false, true]);
        let mut p = None;
        for (sel, at) in [(a, 0), (a, 60)] {
            match sequence_step(p.take(), &steps, within, &sel, &event(), None, t(at)) {
                SequenceOutcome::Moved(next) => p = Some(next),
                other => panic!("{other:?}"),
            }
        }
        assert!(
            matches!(sequence_step(p.clone(), &steps, within, &b, &event(), None, t(120)), SequenceOutcome::Completed(e) if e.count == 3)
        );
        assert!(
            matches!(sequence_step(p, &steps, within, &b, &event(), None, t(700)), SequenceOutcome::Ignored),
            "expired"
        );
        let absent = [Step { selection: 0, count: 1, absent: false }, Step { selection: 1, count: 1, absent: true }];
        let Some(started) = (match sequence_step(None, &absent, within, &a, &event(), None, t(0)) {
            SequenceOutcome::Moved(p) => Some(p),
            _ => None,
        }) else {
            panic!("did not start")
        };
        assert!(matches!(
            sequence_step(Some(started), &absent, within, &b, &event(), None, t(30)),
            SequenceOutcome::Broken
        ));
    }
}
