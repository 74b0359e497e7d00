//! The queue from the listeners to the store's writer, bounded twice: in events (the channel) and in bytes (a budget
//! each event takes when it is queued and the writer gives back when the event leaves memory, after its batch was
//! committed and evaluated). A flood of 64 KiB datagrams fills the byte budget long before the event count, and the
//! budget covers the batches being written as well as the queue, so it bounds all the events held.
//!
//! When the queue is full, a TCP or TLS connection waits (backpressure: its sender is slowed, nothing is lost) and a
//! UDP datagram is dropped and counted.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};

use crate::event::Event;
use crate::metrics::Counters;

/// The budget is counted in KiB: a semaphore takes at most `u32::MAX` permits at once.
const UNIT: usize = 1024;

/// The sending side: cloned into every listener.
#[derive(Debug, Clone)]
pub struct Queue {
    events: mpsc::Sender<Event>,
    budget: ByteBudget,
}

/// The receiving side: the writer's.
#[derive(Debug)]
pub struct QueueReceiver {
    events: mpsc::Receiver<Event>,
    budget: ByteBudget,
}

/// Bytes the queued and unwritten events may take, shared by both sides.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    permits: Arc<Semaphore>,
    /// Units in all.
    capacity: usize,
    /// Where the bytes held now are shown (`/metrics`).
    counters: Arc<Counters>,
}

/// Why an event could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotQueued {
    /// The queue holds its maximum of events or bytes.
    Full,
    /// The writer is gone (shutdown).
    Closed,
}

/// A queue of at most `events` events and `bytes` bytes (each at least 1; one event larger than the whole budget
/// still passes, alone), the bytes held shown in `counters`.
pub fn channel(events: usize, bytes: u64, counters: Arc<Counters>) -> (Queue, QueueReceiver) {
    let capacity = usize::try_from(bytes / UNIT as u64).unwrap_or(usize::MAX).clamp(1, Semaphore::MAX_PERMITS);
    let budget = ByteBudget { permits: Arc::new(Semaphore::new(capacity)), capacity, counters };
    let (sender, receiver) = mpsc::channel(events.max(1));
    (Queue { events: sender, budget: budget.clone() }, QueueReceiver { events: receiver, budget })
}

impl ByteBudget {
    /// What `event` takes of the budget, in units: never more than all of it.
    fn cost(&self, event: &Event) -> u32 {
        let units = event.approx_bytes().div_ceil(UNIT).min(self.capacity);
        u32::try_from(units).unwrap_or(u32::MAX)
    }

    fn took(&self, units: u32) {
        self.counters.queue_bytes.fetch_add(u64::from(units) * UNIT as u64, Ordering::Relaxed);
    }

    fn give_back(&self, units: u64) {
        self.counters.queue_bytes.fetch_sub(units * UNIT as u64, Ordering::Relaxed);
        self.permits.add_permits(usize::try_from(units).unwrap_or(usize::MAX));
    }

    /// Gives back what `events` took: they have left memory (or are about to).
    pub fn release(&self, events: &[Event]) {
        self.give_back(events.iter().map(|event| u64::from(self.cost(event))).sum());
    }

    /// Bytes held by queued and unwritten events now.
    pub fn held_bytes(&self) -> u64 {
        self.counters.queue_bytes.load(Ordering::Relaxed)
    }
}

impl Queue {
    /// Queues `event`, waiting while the queue is full.
    pub async fn send(&self, event: Event) -> Result<(), NotQueued> {
        let units = self.budget.cost(&event);
        let permit = self.budget.permits.acquire_many(units).await.map_err(|_| NotQueued::Closed)?;
        // The writer gives the units back with `release`, once the event has left memory.
        permit.forget();
        self.budget.took(units);
        if self.events.send(event).await.is_err() {
            self.budget.give_back(u64::from(units));
            return Err(NotQueued::Closed);
        }
        Ok(())
    }

    /// Queues `event` if there is room now.
    pub fn try_send(&self, event: Event) -> Result<(), NotQueued> {
        let units = self.budget.cost(&event);
        let permit = self.budget.permits.try_acquire_many(units).map_err(|_| NotQueued::Full)?;
        match self.events.try_send(event) {
            Ok(()) => {
                permit.forget();
                self.budget.took(units);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(NotQueued::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(NotQueued::Closed),
        }
    }

    /// The byte budget, for `/metrics`.
    pub fn budget(&self) -> ByteBudget {
        self.budget.clone()
    }
}

impl QueueReceiver {
    /// Receives up to `limit` events into `buffer`; 0 when every sender is gone and the queue is empty.
    pub async fn recv_many(&mut self, buffer: &mut Vec<Event>, limit: usize) -> usize {
        self.events.recv_many(buffer, limit).await
    }

    /// Whether no event waits.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether every sender is gone.
    pub fn is_closed(&self) -> bool {
        self.events.is_closed()
    }

    /// The byte budget, to give back what written events took.
    pub fn budget(&self) -> &ByteBudget {
        &self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_of(bytes: usize) -> Event {
        let now = crate::event::Timestamp::new(chrono::Utc::now(), 6);
        let mut event = Event::new(now, now);
        event.set(crate::event::field::ORIGINAL, "x".repeat(bytes));
        event
    }

    #[tokio::test]
    async fn the_byte_budget_stops_big_events_before_the_event_count_does() {
        let (queue, mut receiver) = channel(1000, 256 * 1024, Arc::default());
        let big = event_of(64 * 1024);
        let mut queued = 0;
        while queue.try_send(big.clone()).is_ok() {
            queued += 1;
        }
        assert_eq!(queued, 3, "64 KiB events and their overhead in a 256 KiB budget");
        assert!(queue.budget().held_bytes() > 192 * 1024);
        let mut small = 0;
        while queue.try_send(event_of(10)).is_ok() {
            small += 1;
        }
        assert!(small < 64, "{small} small events took the rest of the budget, far below the 1000 events allowed");
        assert_eq!(queue.budget().held_bytes(), 256 * 1024, "all of it held");
        let mut batch = Vec::new();
        assert_eq!(receiver.recv_many(&mut batch, 1000).await, queued + small);
        assert_eq!(queue.try_send(event_of(10)), Err(NotQueued::Full), "received is not yet written");
        receiver.budget().release(&batch);
        assert_eq!(queue.budget().held_bytes(), 0);
        queue.try_send(event_of(10)).expect("room again once the batch is released");
    }

    #[tokio::test]
    async fn a_sender_waits_for_room_and_an_event_larger_than_the_budget_still_passes() {
        let (queue, mut receiver) = channel(1000, 8 * 1024, Arc::default());
        queue.send(event_of(100 * 1024)).await.expect("larger than the whole budget, alone");
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.send(event_of(10)).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the budget is all taken");
        let mut batch = Vec::new();
        receiver.recv_many(&mut batch, 10).await;
        receiver.budget().release(&batch);
        waiting.await.unwrap().expect("queued once the budget was given back");
        drop(queue);
        batch.clear();
        assert_eq!(receiver.recv_many(&mut batch, 10).await, 1);
        assert_eq!(receiver.recv_many(&mut batch, 10).await, 0, "closed");
    }
}
