use super::*;

fn job(attempts: u32) -> Job {
    Job {
        id: 1,
        alert_id: 1,
        attempts,
        created_at: DateTime::from_timestamp(1_000_000, 0).unwrap(),
        idempotency_key: "k".into(),
    }
}

fn notifier() -> DeliveryPolicy {
    DeliveryPolicy {
        timeout: Duration::from_secs(10),
        retry_initial: Duration::from_secs(2),
        give_up_after: Duration::from_secs(3600),
        fallback: None,
        rate_limit: RateLimit { max: 3, per: Duration::from_secs(60) },
    }
}

#[test]
fn answers_table() {
    let now = DateTime::from_timestamp(1_000_100, 0).unwrap();
    let at = |seconds: i64| now + chrono::Duration::seconds(seconds);
    let cases: Vec<(Answer, u32, Outcome)> = vec![
        (Answer::Status(200, None), 0, Outcome::Delivered),
        (Answer::Status(204, None), 3, Outcome::Delivered),
        (Answer::Status(500, None), 0, Outcome::RetryAt(at(2), "HTTP 500".into())),
        (Answer::Status(502, None), 2, Outcome::RetryAt(at(8), "HTTP 502".into())),
        (Answer::Status(429, Some(Duration::from_secs(30))), 0, Outcome::RetryAt(at(30), "HTTP 429".into())),
        (Answer::Status(503, None), 1, Outcome::RetryAt(at(4), "HTTP 503".into())),
        (Answer::Status(400, None), 0, Outcome::Dead("HTTP 400: the receiver refused the request".into())),
        (Answer::Status(404, None), 5, Outcome::Dead("HTTP 404: the receiver refused the request".into())),
        (Answer::Failed("timed out".into()), 1, Outcome::RetryAt(at(4), "timed out".into())),
        // A Retry-After past the longest backoff waits that long; one past any date does not panic the worker.
        (Answer::Status(429, Some(Duration::from_secs(7200))), 0, Outcome::RetryAt(at(600), "HTTP 429".into())),
        (
            Answer::Status(503, Some(Duration::from_secs(99_999_999_999_999))),
            0,
            Outcome::RetryAt(at(600), "HTTP 503".into()),
        ),
        (Answer::Status(429, Some(Duration::MAX)), 0, Outcome::RetryAt(at(600), "HTTP 429".into())),
        (Answer::Rejected("SMTP: 550 no such user".into()), 0, Outcome::Dead("SMTP: 550 no such user".into())),
    ];
    for (answer, attempts, expected) in cases {
        // Jitter 0.5 is the factor 1.0: the plain doubling.
        assert_eq!(classify(&answer, &job(attempts), &notifier(), now, 0.5), expected, "{answer:?} after {attempts}");
    }
}

#[test]
fn a_deadline_past_any_date_never_panics() {
    let now = DateTime::from_timestamp(1_000_100, 0).unwrap();
    let policy = DeliveryPolicy { give_up_after: Duration::MAX, ..notifier() };
    let late = DeliveryPolicy { retry_initial: Duration::MAX, ..notifier() };
    assert_eq!(
        classify(&Answer::Status(500, None), &job(3), &policy, now, 0.5),
        Outcome::RetryAt(now + chrono::Duration::seconds(16), "HTTP 500".into())
    );
    // The longest backoff, jittered: within a quarter hour.
    match classify(&Answer::Failed("x".into()), &job(40), &late, now, 0.99) {
        Outcome::RetryAt(at, _) => assert!(at <= now + chrono::Duration::seconds(900), "{at}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_retry_past_the_deadline_gives_up() {
    // Created at 1_000_000 with a one-hour deadline; 3500 s later.
    let now = DateTime::from_timestamp(1_003_500, 0).unwrap();
    let answer = Answer::Status(500, None);
    assert_eq!(
        classify(&answer, &job(5), &notifier(), now, 0.5),
        Outcome::RetryAt(now + chrono::Duration::seconds(64), "HTTP 500".into())
    );
    assert_eq!(classify(&answer, &job(6), &notifier(), now, 0.5), Outcome::Dead("HTTP 500; giving up after 1h".into()));
}

#[test]
fn backoff_doubles_with_jitter_up_to_a_cap() {
    let second = Duration::from_secs(1);
    assert_eq!(backoff(second, 0, 0.5), second);
    assert_eq!(backoff(second, 3, 0.5), Duration::from_secs(8));
    assert_eq!(backoff(second, 3, 0.0), Duration::from_secs(4));
    assert_eq!(backoff(second, 40, 0.5), MAX_BACKOFF);
}

#[test]
fn the_flood_guard_keeps_the_last_place_for_a_digest() {
    let mut guard = FloodGuard::new(notifier().rate_limit);
    let start = Instant::now();
    assert_eq!((guard.room(start), batch_size(guard.room(start))), (3, 1));
    guard.record(start);
    guard.record(start + Duration::from_secs(1));
    assert_eq!(guard.room(start + Duration::from_secs(2)), 1);
    assert_eq!(batch_size(1), DIGEST_MAX, "the last place takes everything due, as one digest");
    guard.record(start + Duration::from_secs(2));
    assert_eq!(guard.room(start + Duration::from_secs(3)), 0);
    assert_eq!(guard.wait(start + Duration::from_secs(3)), Duration::from_secs(57));
    assert_eq!(guard.room(start + Duration::from_secs(60)), 1, "the oldest left the window");
}

// On the runtime's paused clock: on a busy machine, half of RESTART_AFTER of real time can pass before the first
// worker has even run.
#[tokio::test(start_paused = true)]
async fn a_worker_that_dies_is_started_again_counted_and_reported_down_meanwhile() {
    let counters = Counters::default();
    let shutdown = CancellationToken::new();
    let starts = std::sync::atomic::AtomicU32::new(0);
    let start = || {
        let nth = starts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if nth < 2 {
                panic!("worker {nth} dies");
            }
            shutdown.cancelled().await;
        })
    };
    let supervisor = keep_running("hook", start, &counters, &shutdown);
    tokio::pin!(supervisor);
    // Died once: down, counted, and waiting to start again.
    tokio::select! {
        _ = &mut supervisor => panic!("the supervisor returned"),
        _ = tokio::time::sleep(RESTART_AFTER / 2) => {}
    }
    assert_eq!(counters.workers_down(), ["hook"]);
    for _ in 0..100 {
        if starts.load(std::sync::atomic::Ordering::SeqCst) == 3 {
            break;
        }
        tokio::select! {
            _ = &mut supervisor => panic!("the supervisor returned"),
            _ = tokio::time::sleep(RESTART_AFTER / 10) => {}
        }
    }
    assert_eq!(starts.load(std::sync::atomic::Ordering::SeqCst), 3, "started again after each death");
    assert!(counters.workers_down().is_empty(), "the third runs");
    assert_eq!(counters.labelled().worker_restarts.get("hook"), Some(&2));
    shutdown.cancel();
    supervisor.await;
}

#[test]
fn retry_after_reads_seconds_and_http_dates_and_nothing_else() {
    let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z").unwrap().with_timezone(&chrono::Utc);
    let cases: &[(&str, Option<Duration>)] = &[
        ("120", Some(Duration::from_secs(120))),
        (" 0 ", Some(Duration::ZERO)),
        ("99999999999999999999999999", Some(Duration::MAX)),
        ("Wed, 21 Oct 2015 07:28:00 GMT", Some(Duration::from_secs(60))),
        ("Wed, 21 Oct 2015 07:00:00 GMT", Some(Duration::ZERO)),
        ("Fri, 31 Dec 9999 23:59:59 GMT", Some(Duration::from_secs(251_956_888_379))),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("Wed, 32 Oct 2015 07:28:00 GMT", None),
    ];
    for (value, expected) in cases {
        assert_eq!(super::retry_after(value, now), *expected, "{value:?}");
    }
}
