//! Fuzzes a receiver's `Retry-After` header: the parser (delay-seconds or an HTTP-date) and what the delivery worker
//! makes of the wait (the next attempt's time). Checks that nothing panics — a panic here once stopped a notifier
//! for good — and that no wait exceeds the longest backoff.
#![no_main]

use std::time::Duration;

use hsmwatch::config::notifiers::{DeliveryPolicy, RateLimit};
use hsmwatch::deliver::{classify, retry_after, Answer, Outcome, MAX_BACKOFF};
use hsmwatch::store::outbox::Job;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else { return };
    let now = chrono::DateTime::from_timestamp(1_772_000_000, 0).expect("a valid time");
    let asked = retry_after(value, now);
    let job = Job { id: 1, alert_id: 1, attempts: 0, created_at: now, idempotency_key: "k".into() };
    let policy = DeliveryPolicy {
        timeout: Duration::from_secs(10),
        retry_initial: Duration::from_secs(2),
        give_up_after: Duration::from_secs(86_400),
        fallback: None,
        rate_limit: RateLimit { max: 3, per: Duration::from_secs(60) },
    };
    for status in [429, 503] {
        match classify(&Answer::Status(status, asked), &job, &policy, now, 0.5) {
            Outcome::RetryAt(at, _) => {
                let wait = (at - now).to_std().unwrap_or(Duration::ZERO);
                assert!(wait <= MAX_BACKOFF, "a wait of {wait:?} past the longest backoff");
            }
            Outcome::Dead(_) | Outcome::Delivered => {}
        }
    }
});
