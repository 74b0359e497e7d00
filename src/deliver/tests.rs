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

fn notifier() -> ResolvedWebhook {
    ResolvedWebhook {
        name: "n".into(),
        payload: crate::config::notifiers::Payload::Json,
        url: crate::config::notifiers::Secret("http://127.0.0.1:1/".into()),
        method: "POST".into(),
        headers: vec![],
        timeout: Duration::from_secs(10),
        retry_initial: Duration::from_secs(2),
        give_up_after: Duration::from_secs(3600),
        signature_secret: None,
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
        (Answer::Status(429, Some(Duration::from_secs(7200))), 0, Outcome::Dead("HTTP 429; giving up after 1h".into())),
    ];
    for (answer, attempts, expected) in cases {
        // Jitter 0.5 is the factor 1.0: the plain doubling.
        assert_eq!(classify(&answer, &job(attempts), &notifier(), now, 0.5), expected, "{answer:?} after {attempts}");
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
