//! The tables both backends hold alike (alerts, outbox, silences, rule state), tested the same way on SQLite and on a
//! real PostgreSQL: each scenario runs once on a fresh SQLite database and once on a fresh PostgreSQL database.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hsmwatch::store::alerts::{
    change_state, detail, get, insert, list, resolve_expired, AlertChange, AlertFilter, AlertRecord, Change,
    ChangeOutcome, StateFilter,
};
use hsmwatch::store::postgres::{PgStore, DEFAULT_COPY_WINDOW};
use hsmwatch::store::rule_state::{self, StateChange};
use hsmwatch::store::{in_transaction, outbox, silences, Reader, StoreError, TableConn};
use sqlx::Connection;

use crate::postgres::PgPeer;

/// Runs `scenario` on a fresh SQLite database and on a fresh database of `peer`.
macro_rules! on_both_backends {
    ($peer:expr, $scenario:ident) => {{
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tables.db");
        let mut conn = hsmwatch::store::open_writer(&path).await.unwrap();
        let reader = hsmwatch::store::open_reader(&path).await.unwrap();
        $scenario(&mut conn, &reader).await;

        let store = fresh_database($peer, stringify!($scenario)).await;
        let mut conn = store.connection().await.unwrap();
        $scenario(&mut conn, &store.reader()).await;
    }};
}

/// A new database named `name` on `peer`, migrated, as one collector opens it.
async fn fresh_database(peer: &PgPeer, name: &str) -> PgStore {
    let mut admin = sqlx::PgConnection::connect(&peer.url()).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    let url = peer.url().replace("/postgres", &format!("/{name}"));
    PgStore::open(&url, "collector-a", DEFAULT_COPY_WINDOW).await.unwrap()
}

fn record<'a>(
    fingerprint: &'a str,
    status: &'a str,
    at: DateTime<Utc>,
    group: &'a BTreeMap<String, String>,
) -> AlertRecord<'a> {
    AlertRecord {
        rule_id: "r",
        fingerprint,
        severity: "high",
        status,
        group,
        count: 1,
        first_seen: Some(at),
        last_seen: Some(at),
        at,
        title: "t",
        body: "b",
        event_ids: &[7, 8],
        notify: true,
        suppressed: 0,
        host: Some("hsm-1"),
        silenced_by: None,
        held_back: None,
    }
}

async fn state(reader: &Reader, id: i64) -> (String, i64) {
    let detail = detail(reader, id).await.unwrap().unwrap();
    (detail.summary.state, detail.summary.firings)
}

async fn firings_join_the_open_alert_and_a_change_is_recorded_and_held(conn: &mut impl TableConn, reader: &Reader) {
    let group = BTreeMap::from([("host.name".to_owned(), "hsm-1".to_owned())]);
    let now = Utc::now();
    let first = insert(conn, &[record("r|h=1", "firing", now, &group)]).await.unwrap();
    let second = insert(conn, &[record("r|h=1", "firing", now, &group)]).await.unwrap();
    let other = insert(conn, &[record("r|h=2", "firing", now, &group)]).await.unwrap();
    let alert = first[0].alert_id;
    assert_eq!((first[0].id, second[0].alert_id), (alert, alert), "the second firing joins the first");
    assert_ne!(other[0].alert_id, alert, "another fingerprint is another alert");
    assert_eq!(state(reader, second[0].id).await, ("firing".into(), 2));

    let ack = AlertChange { change: Change::Acknowledge, actor: "alice", note: Some("on it"), at: now };
    let changed = change_state(conn, second[0].id, &ack, true).await.unwrap();
    assert!(matches!(changed, ChangeOutcome::Changed { alert_id, .. } if alert_id == alert), "{changed:?}");
    let again = change_state(conn, alert, &ack, true).await.unwrap();
    assert_eq!(again, ChangeOutcome::Refused(format!("alert {alert} is acknowledged; it cannot be acknowledged")));
    assert_eq!(change_state(conn, 999, &ack, true).await.unwrap(), ChangeOutcome::NoSuchAlert);

    let held = insert(conn, &[record("r|h=1", "firing", now, &group)]).await.unwrap();
    assert_eq!(held[0].held_back.as_deref(), Some("acknowledged by alice"), "no notification while acknowledged");
    assert_eq!(state(reader, alert).await, ("acknowledged".into(), 3));

    let resolve = AlertChange { change: Change::Resolve, actor: "bob", note: None, at: now };
    assert!(matches!(change_state(conn, alert, &resolve, true).await.unwrap(), ChangeOutcome::Changed { .. }));
    let reopened = insert(conn, &[record("r|h=1", "firing", now, &group)]).await.unwrap();
    assert_ne!(reopened[0].alert_id, alert, "a firing after resolution opens a new alert");
    assert_eq!(reopened[0].held_back, None);

    let detail = detail(reader, alert).await.unwrap().unwrap();
    let changes: Vec<(&str, &str)> = detail.changes.iter().map(|c| (c.change.as_str(), c.actor.as_str())).collect();
    assert_eq!(changes, [("acknowledged", "alice"), ("resolved", "bob")]);
    assert_eq!(detail.changes[0].note.as_deref(), Some("on it"));
    let statuses: Vec<&str> = detail.rows.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["resolved", "firing", "acknowledged", "firing", "firing"], "newest first, notices included");
    assert!(detail.rows.iter().all(|row| row.notify), "{:?}", detail.rows);
    assert_eq!((detail.latest.group, detail.latest.event_ids), (group, vec![7, 8]), "read back as written");

    let open = list(reader, &AlertFilter { state: Some(StateFilter::Open), limit: 10, ..AlertFilter::default() })
        .await
        .unwrap();
    let open: Vec<i64> = open.iter().map(|a| a.id).collect();
    assert_eq!(open.len(), 2);
    assert!(open.contains(&other[0].alert_id) && open.contains(&reopened[0].alert_id));
    let all = list(reader, &AlertFilter { limit: 10, ..AlertFilter::default() }).await.unwrap();
    assert_eq!(all.last().map(|a| (a.id, a.state.as_str())), Some((alert, "resolved")), "open ones first");
    let of_host = AlertFilter { host: Some("hsm-9"), limit: 10, ..AlertFilter::default() };
    assert!(list(reader, &of_host).await.unwrap().is_empty(), "another host's alerts only");
}

async fn a_notice_goes_to_the_notifiers_the_alert_went_to(conn: &mut impl TableConn, reader: &Reader) {
    let group = BTreeMap::new();
    let now = Utc::now();
    let fired = insert(conn, &[record("r|h=1", "firing", now, &group)]).await.unwrap();
    outbox::enqueue(conn, fired[0].id, "pager", now).await.unwrap();
    let ack = AlertChange { change: Change::Acknowledge, actor: "alice", note: None, at: now };
    let ChangeOutcome::Changed { notice_id, queued, .. } = change_state(conn, fired[0].id, &ack, true).await.unwrap()
    else {
        panic!("not changed")
    };
    assert_eq!(queued, ["pager"]);
    let unack = AlertChange { change: Change::Unacknowledge, ..ack };
    assert!(matches!(
        change_state(conn, fired[0].id, &unack, true).await.unwrap(),
        ChangeOutcome::Changed { notice_id: None, .. }
    ));
    let quiet = AlertChange { change: Change::Resolve, ..ack };
    let ChangeOutcome::Changed { queued, notice_id: quiet_notice, .. } =
        change_state(conn, fired[0].id, &quiet, false).await.unwrap()
    else {
        panic!("not changed")
    };
    assert!(queued.is_empty(), "alerts.notify_changes: false");
    let notice = get(reader, notice_id.unwrap()).await.unwrap().unwrap();
    assert_eq!((notice.title.as_str(), notice.status.as_str()), ("Acknowledged by alice: t", "acknowledged"));
    assert!(get(reader, quiet_notice.unwrap()).await.unwrap().unwrap().held_back.is_some());
}

async fn a_rule_resolves_its_alert_and_resolve_after_closes_a_quiet_one(conn: &mut impl TableConn, reader: &Reader) {
    let group = BTreeMap::new();
    let now = Utc::now();
    let absence = insert(conn, &[record("absent|h=1", "firing", now, &group)]).await.unwrap();
    let resolution = insert(conn, &[record("absent|h=1", "resolved", now, &group)]).await.unwrap();
    assert_eq!((resolution[0].alert_id, resolution[0].held_back.as_deref()), (absence[0].alert_id, None));
    assert_eq!(state(reader, absence[0].id).await.0, "resolved");
    let late = insert(conn, &[record("absent|h=1", "resolved", now, &group)]).await.unwrap();
    assert_eq!(late[0].held_back.as_deref(), Some("the alert was already resolved"));

    let old = insert(conn, &[record("r|h=1", "firing", now - chrono::Duration::hours(25), &group)]).await.unwrap();
    let fresh = insert(conn, &[record("r|h=2", "firing", now - chrono::Duration::hours(1), &group)]).await.unwrap();
    let day = std::time::Duration::from_secs(86_400);
    let resolved = resolve_expired(conn, now, |_| Some(day), true).await.unwrap();
    assert_eq!(resolved, [old[0].alert_id]);
    assert_eq!(state(reader, fresh[0].id).await.0, "firing");
    let never = resolve_expired(conn, now + chrono::Duration::days(9), |_| None, true).await.unwrap();
    assert!(never.is_empty(), "rules that resolve their own alerts are left to them");
    let changes = detail(reader, old[0].id).await.unwrap().unwrap().changes;
    assert_eq!(changes[0].actor, "hsmwatch (resolve_after)");
    assert_eq!(changes[0].note.as_deref(), Some("no firing for 1day"));
}

async fn deliveries_are_queued_once_and_their_fate_recorded(conn: &mut impl TableConn, reader: &Reader) {
    let group = BTreeMap::new();
    let now = Utc::now();
    let fired = insert(conn, &[record("r|h=1", "firing", now, &group)]).await.unwrap()[0].id;
    for notifier in ["pager", "pager", "mail", "chat"] {
        outbox::enqueue(conn, fired, notifier, now).await.unwrap();
    }
    let due = outbox::due(reader, "pager", now, 10).await.unwrap();
    assert_eq!(due.len(), 1, "one job per alert and notifier: {due:?}");
    assert_eq!((due[0].alert_id, due[0].attempts, due[0].idempotency_key.as_str()), (fired, 0, "hsmwatch-1-pager"));
    assert_eq!(outbox::job_of(reader, fired, "pager").await.unwrap(), Some(due[0].clone()));

    outbox::mark_sent(conn, due[0].id, now, Some(3)).await.unwrap();
    let mail = outbox::job_of(reader, fired, "mail").await.unwrap().unwrap();
    let later = now + chrono::Duration::seconds(30);
    outbox::retry_at(conn, mail.id, later, "421 try later").await.unwrap();
    assert!(outbox::due(reader, "mail", now, 10).await.unwrap().is_empty(), "not before its retry");
    assert_eq!(outbox::due(reader, "mail", later, 10).await.unwrap()[0].attempts, 1);
    let next = outbox::next_due_time(reader, "mail").await.unwrap().unwrap();
    assert_eq!(next.timestamp_micros(), later.timestamp_micros());
    let chat = outbox::job_of(reader, fired, "chat").await.unwrap().unwrap();
    outbox::mark_dead(conn, chat.id, "404").await.unwrap();

    /// Notifier, status, attempts, last error, digest size.
    type Fate = (String, String, i64, Option<String>, Option<i64>);
    let fates: Vec<Fate> = outbox::deliveries(reader, fired)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.notifier, d.status, d.attempts, d.last_error, d.digest_size))
        .collect();
    assert_eq!(
        fates,
        [
            ("chat".into(), "dead".into(), 1, Some("404".into()), None),
            ("mail".into(), "pending".into(), 1, Some("421 try later".into()), None),
            ("pager".into(), "sent".into(), 1, None, Some(3)),
        ]
    );
    let figures = outbox::outbox_figures(reader).await.unwrap();
    assert_eq!(figures.0.iter().map(|(n, count, _)| (n.as_str(), *count)).collect::<Vec<_>>(), [("mail", 1)]);
}

async fn old_alerts_are_pruned_with_their_deliveries_and_open_ones_stay(conn: &mut impl TableConn, reader: &Reader) {
    let group = BTreeMap::new();
    let now = Utc::now();
    let old = now - chrono::Duration::days(800);
    let gone = insert(conn, &[record("r|h=1", "firing", old, &group)]).await.unwrap()[0].id;
    outbox::enqueue(conn, gone, "pager", old).await.unwrap();
    let resolve = AlertChange { change: Change::Resolve, actor: "bob", note: None, at: old };
    assert!(matches!(change_state(conn, gone, &resolve, false).await.unwrap(), ChangeOutcome::Changed { .. }));
    let open = insert(conn, &[record("r|h=2", "firing", old, &group)]).await.unwrap()[0].id;
    let recent = insert(conn, &[record("r|h=3", "firing", now, &group)]).await.unwrap()[0].id;
    let cutoff = now - chrono::Duration::days(730);
    let pruned = hsmwatch::store::retention::prune_alerts(conn, cutoff).await.unwrap();
    assert_eq!(pruned, 2, "the resolved alert's firing and its notice");
    assert!(detail(reader, gone).await.unwrap().is_none());
    assert!(outbox::deliveries(reader, gone).await.unwrap().is_empty(), "its delivery records went with it");
    assert!(detail(reader, open).await.unwrap().is_some(), "an open alert is kept however old");
    assert!(detail(reader, recent).await.unwrap().is_some());
    assert_eq!(hsmwatch::store::retention::prune_alerts(conn, cutoff).await.unwrap(), 0);
}

async fn silences_hold_until_they_end_or_expire(conn: &mut impl TableConn, reader: &Reader) {
    let now = Utc::now();
    let matchers = BTreeMap::from([("rule".to_owned(), "luna.auth.*".to_owned())]);
    let hour = chrono::Duration::hours(1);
    let running = silences::add(conn, &matchers, now - hour, now + hour, "maintenance", "alice").await.unwrap();
    let coming = silences::add(conn, &matchers, now + hour, now + hour * 2, "later", "bob").await.unwrap();
    let ended = silences::add(conn, &matchers, now - hour * 2, now - hour, "done", "carol").await.unwrap();
    assert!(running < coming && coming < ended, "ids in order: {running} {coming} {ended}");
    let active: Vec<i64> = silences::active(conn, now).await.unwrap().iter().map(|s| s.id).collect();
    assert_eq!(active, [running], "started and not ended");
    let listed: Vec<i64> = silences::list(reader, now, false).await.unwrap().iter().map(|s| s.id).collect();
    assert_eq!(listed, [coming, running], "current and coming, newest first");
    assert!(silences::expire(conn, running, now).await.unwrap());
    assert!(!silences::expire(conn, running, now).await.unwrap(), "expired once");
    assert!(silences::active(conn, now).await.unwrap().is_empty());
    let all = silences::list(reader, now, true).await.unwrap();
    assert_eq!(all.len(), 3);
    let expired = all.iter().find(|s| s.id == running).unwrap();
    assert_eq!((expired.matchers.clone(), expired.reason.as_str()), (matchers, "maintenance"));
    assert!(expired.expired_at.is_some());
}

async fn rule_state_and_the_cursor_are_kept_and_a_failed_transaction_keeps_nothing(
    conn: &mut impl TableConn,
    _reader: &Reader,
) {
    let change = |key: &str, state: Option<&str>| StateChange {
        rule_id: "luna.login.bruteforce".into(),
        rule_hash: 0xfeed_beef_0000_0001,
        key: key.into(),
        state: state.map(str::to_owned),
    };
    rule_state::save(conn, &[change("a", Some("1")), change("b", Some("2"))]).await.unwrap();
    rule_state::save(conn, &[change("a", Some("3")), change("b", None)]).await.unwrap();
    let saved = rule_state::load(conn).await.unwrap();
    assert_eq!(saved, [("luna.login.bruteforce".into(), 0xfeed_beef_0000_0001, "a".into(), "3".into())]);
    assert_eq!(rule_state::cursor(conn).await.unwrap(), 0);
    rule_state::set_cursor(conn, 40).await.unwrap();
    rule_state::set_cursor(conn, 30).await.unwrap();
    assert_eq!(rule_state::cursor(conn).await.unwrap(), 40, "the cursor never moves back");

    let failed: Result<(), StoreError> = in_transaction(conn, async |conn| {
        rule_state::save(conn, &[change("c", Some("9"))]).await?;
        rule_state::set_cursor(conn, 50).await?;
        Err(StoreError::NotLeader { term: 1 })
    })
    .await;
    assert!(matches!(failed, Err(StoreError::NotLeader { term: 1 })));
    assert_eq!(rule_state::load(conn).await.unwrap().len(), 1, "rolled back");
    assert_eq!(rule_state::cursor(conn).await.unwrap(), 40);
}

#[tokio::test]
async fn the_triage_upgrade_keeps_the_latest_firing_of_each_fingerprint_open_and_resolves_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upgrade.db");
    let mut conn = hsmwatch::store::open_writer(&path).await.unwrap();
    let reader = hsmwatch::store::open_reader(&path).await.unwrap();
    let group = BTreeMap::new();
    let now = Utc::now();
    for (fingerprint, status) in
        [("r|h=1", "firing"), ("r|h=1", "firing"), ("r|h=2", "firing"), ("r|h=3", "firing"), ("r|h=3", "resolved")]
    {
        insert(&mut conn, &[record(fingerprint, status, now, &group)]).await.unwrap();
    }
    // Rows as they were before alerts had states (SQLite's migration 0016): no alert, no state; then its upgrade.
    let migration = include_str!("../../migrations/0016_alert_triage.sql");
    let upgrade = &migration[migration.find("UPDATE alerts SET alert_id = id").unwrap()..];
    crate::support::sqlite3(
        &path,
        &format!(
            "UPDATE alerts SET alert_id = NULL, state = NULL, state_at = NULL, state_by = NULL, firings = NULL, \
             last_id = NULL, last_fired_at = NULL; DELETE FROM alert_changes; {upgrade}"
        ),
    );
    let states = crate::support::sqlite3(&path, "SELECT id || ' ' || state FROM alerts ORDER BY id");
    assert_eq!(states, "1 resolved\n2 firing\n3 firing\n4 resolved\n5 resolved");
    let open = list(&reader, &AlertFilter { state: Some(StateFilter::Open), limit: 10, ..AlertFilter::default() })
        .await
        .unwrap();
    assert_eq!(open.iter().map(|a| a.id).collect::<Vec<_>>(), [3, 2]);
    let joined = insert(&mut conn, &[record("r|h=1", "firing", now, &group)]).await.unwrap();
    assert_eq!(joined[0].alert_id, 2, "a firing after the upgrade joins the open alert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_behave_alike_on_sqlite_and_postgresql() {
    let peer = PgPeer::start();
    on_both_backends!(&peer, firings_join_the_open_alert_and_a_change_is_recorded_and_held);
    on_both_backends!(&peer, a_notice_goes_to_the_notifiers_the_alert_went_to);
    on_both_backends!(&peer, a_rule_resolves_its_alert_and_resolve_after_closes_a_quiet_one);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_silences_and_rule_state_behave_alike_on_sqlite_and_postgresql() {
    let peer = PgPeer::start();
    on_both_backends!(&peer, deliveries_are_queued_once_and_their_fate_recorded);
    on_both_backends!(&peer, silences_hold_until_they_end_or_expire);
    on_both_backends!(&peer, old_alerts_are_pruned_with_their_deliveries_and_open_ones_stay);
    on_both_backends!(&peer, rule_state_and_the_cursor_are_kept_and_a_failed_transaction_keeps_nothing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_due_job_goes_to_one_worker_of_the_collectors_sharing_postgresql() {
    let peer = PgPeer::start();
    let store = fresh_database(&peer, "jobs").await;
    let (mut first, mut second) = (store.connection().await.unwrap(), store.connection().await.unwrap());
    let now = Utc::now();
    let group = BTreeMap::new();
    for fingerprint in ["r|h=1", "r|h=2", "r|h=3", "r|h=4", "r|h=5"] {
        let id = insert(&mut first, &[record(fingerprint, "firing", now, &group)]).await.unwrap()[0].id;
        outbox::enqueue(&mut first, id, "pager", now).await.unwrap();
    }
    // Two collectors' workers for the same notifier ask at once: each job goes to one of them.
    let (mine, theirs) =
        tokio::join!(outbox::take_due(&mut first, "pager", now, 3), outbox::take_due(&mut second, "pager", now, 3));
    let (mine, theirs) = (mine.unwrap(), theirs.unwrap());
    let mut ids: Vec<i64> = mine.iter().chain(&theirs).map(|job| job.id).collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3, 4, 5], "every job once: {mine:?} {theirs:?}");
    assert!(outbox::take_due(&mut first, "pager", now, 10).await.unwrap().is_empty(), "all are leased");
    // A failed attempt gives its job back for its retry; a sent one is done.
    outbox::retry_at(&mut second, theirs[0].id, now, "503").await.unwrap();
    outbox::mark_sent(&mut first, mine[0].id, now, None).await.unwrap();
    let again = outbox::take_due(&mut first, "pager", now, 10).await.unwrap();
    assert_eq!(again.iter().map(|job| (job.id, job.attempts)).collect::<Vec<_>>(), [(theirs[0].id, 1)]);
}

/// The shared tables as both backends' migrations make them are the ones `store::schema` describes.
async fn the_shared_tables_are_as_described<C: TableConn>(conn: &mut C, _reader: &Reader) {
    let differences = hsmwatch::store::schema::differences(conn).await.unwrap();
    assert!(differences.is_empty(), "{:?}: {differences:#?}", conn.backend());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_make_the_shared_tables_their_description_says() {
    let peer = PgPeer::start();
    on_both_backends!(&peer, the_shared_tables_are_as_described);
}
