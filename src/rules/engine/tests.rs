use super::*;
use crate::event::Timestamp;
use crate::rules::load::compile_files;

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600 + seconds, 0).unwrap()
}

fn engine_for(yaml: &str) -> Engine {
    let loaded = compile_files(&[("t.yaml".into(), yaml.into())]).unwrap_or_else(|e| panic!("{e}"));
    Engine::new(&loaded.rules, t(0))
}

fn event(at: i64, fields: &[(&'static str, &str)]) -> Event {
    let when = Timestamp::new(t(at), 0);
    let mut e = Event::new(when, when);
    for (k, v) in fields {
        e.set(k, v.to_string());
    }
    e
}

const FAILED: &str = "select:\n  failed:\n    event.action: [hsm.login, ssh.login]\n    event.outcome: failure\n";

#[test]
fn stateless_rules_fire_on_every_match_and_only_candidates_are_evaluated() {
    let mut engine = engine_for(&format!("id: any\ntitle: T\nseverity: low\n{FAILED}"));
    let fail = [(field::ACTION, "ssh.login"), (field::OUTCOME, "failure")];
    assert_eq!(engine.process(&event(0, &fail), Some(1)).len(), 1);
    assert!(engine
        .process(&event(1, &[(field::ACTION, "ssh.login"), (field::OUTCOME, "success")]), Some(2))
        .is_empty());
    assert!(engine.candidates(&event(1, &[(field::ACTION, "partition.create")])).is_empty(), "indexed by action");
}

#[test]
fn single_event_rules_without_group_by_fire_per_host() {
    let mut engine = engine_for(&format!("id: any\ntitle: T\nseverity: low\n{FAILED}"));
    let fail = |host| event(0, &[(field::ACTION, "ssh.login"), (field::OUTCOME, "failure"), (field::HOST_NAME, host)]);
    let fingerprints: Vec<String> = ["hsm-1", "hsm-2"]
        .into_iter()
        .flat_map(|host| engine.process(&fail(host), Some(1)))
        .map(|firing| firing.fingerprint)
        .collect();
    assert_eq!(fingerprints, ["any|host.name=hsm-1", "any|host.name=hsm-2"]);
    let hostless = engine.process(&event(0, &[(field::ACTION, "ssh.login"), (field::OUTCOME, "failure")]), Some(2));
    assert_eq!(hostless[0].fingerprint, "any", "a line without a host keeps the rule's own fingerprint");
}

#[test]
fn thresholds_count_per_group_in_a_sliding_window() {
    let mut engine = engine_for(&format!(
        "id: brute\ntitle: T\nseverity: high\n{FAILED}detect: {{type: threshold, count: 3, window: 5m, group_by: [host.name]}}\n"
    ));
    let fail =
        |host: &'static str| [(field::ACTION, "hsm.login"), (field::OUTCOME, "failure"), (field::HOST_NAME, host)];
    assert!(engine.process(&event(0, &fail("a")), Some(1)).is_empty());
    assert!(engine.process(&event(10, &fail("b")), Some(2)).is_empty());
    assert!(engine.process(&event(20, &fail("a")), Some(3)).is_empty());
    let fired = engine.process(&event(30, &fail("a")), Some(4));
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].fingerprint, "brute|host.name=a");
    assert_eq!((fired[0].evidence.count, fired[0].evidence.ids.clone()), (3, vec![1, 3, 4]));
    assert!(engine.process(&event(40, &fail("a")), Some(5)).is_empty(), "the window was consumed");
}

#[test]
fn absence_fires_without_traffic_and_resolves_when_it_returns() {
    let mut engine = engine_for(
        "id: silent\ntitle: T\nseverity: high\nselect:\n  any:\n    host.name|exists: true\ndetect: {type: absence, for: 15m, group_by: [host.name], expect: [hsm-x]}\n",
    );
    assert!(engine.process(&event(0, &[(field::HOST_NAME, "hsm-a")]), None).is_empty());
    assert!(engine.advance(t(14 * 60)).is_empty());
    let fired = engine.advance(t(20 * 60));
    let groups: Vec<_> = fired.iter().map(|f| (f.group[0].1.as_str(), f.at)).collect();
    assert_eq!(groups, [("hsm-a", t(15 * 60)), ("hsm-x", t(15 * 60))], "the expected host fires though it never spoke");
    assert!(engine.advance(t(40 * 60)).is_empty(), "fires once");
    let resolved = engine.process(&event(41 * 60, &[(field::HOST_NAME, "hsm-a")]), None);
    assert_eq!((resolved.len(), resolved[0].status), (1, Status::Resolved));
    assert_eq!(engine.advance(t(57 * 60)).len(), 1, "silent again: fires again");
}

#[test]
fn new_values_fire_after_learning() {
    let mut engine = engine_for(
        "id: newsrc\ntitle: T\nseverity: medium\nselect:\n  login:\n    event.action: appliance.login\ndetect: {type: new_value, fields: [source.ip], group_by: [user.name], learn: 1h}\n",
    );
    let login =
        |ip: &'static str| [(field::ACTION, "appliance.login"), (field::USER_NAME, "admin"), (field::SOURCE_IP, ip)];
    assert!(engine.process(&event(60, &login("10.0.0.1")), None).is_empty(), "learning");
    assert!(engine.process(&event(7200, &login("10.0.0.1")), None).is_empty(), "seen while learning");
    assert_eq!(engine.process(&event(7300, &login("10.0.0.2")), None).len(), 1);
    assert!(engine.process(&event(7400, &login("10.0.0.2")), None).is_empty());
}

#[test]
fn sequences_with_counts_and_absent_steps() {
    let mut engine = engine_for(
        "id: seq\ntitle: T\nseverity: high\nselect:\n  fail:\n    event.action: ssh.login\n    event.outcome: failure\n  ok:\n    event.action: ssh.login\n    event.outcome: success\ndetect: {type: sequence, within: 10m, group_by: [user.name], steps: [{select: fail, count: 2}, ok]}\n",
    );
    let e =
        |at, outcome| event(at, &[(field::ACTION, "ssh.login"), (field::OUTCOME, outcome), (field::USER_NAME, "bob")]);
    assert!(engine.process(&e(0, "failure"), None).is_empty());
    assert!(engine.process(&e(10, "success"), None).is_empty(), "one failure is not enough");
    assert!(engine.process(&e(20, "failure"), None).is_empty());
    let fired = engine.process(&e(30, "success"), None);
    assert_eq!((fired.len(), fired[0].evidence.count), (1, 3));

    let mut engine = engine_for(
        "id: unanswered\ntitle: T\nseverity: high\nselect:\n  a:\n    event.action: partition.backup\n  b:\n    event.action: partition.restore\ndetect: {type: sequence, within: 10m, group_by: [host.name], steps: [a, {select: b, absent: true}]}\n",
    );
    assert!(engine
        .process(&event(0, &[(field::ACTION, "partition.backup"), (field::HOST_NAME, "h")]), None)
        .is_empty());
    assert!(engine.advance(t(9 * 60)).is_empty());
    let fired = engine.advance(t(11 * 60));
    assert_eq!((fired.len(), fired[0].at), (1, t(10 * 60)));
}

#[test]
fn the_group_cap_forgets_the_least_active_group() {
    let mut engine = engine_for(&format!(
        "id: brute\ntitle: T\nseverity: high\n{FAILED}detect: {{type: threshold, count: 5, window: 5m, group_by: [source.ip]}}\n"
    ))
    .with_max_groups(2);
    for (i, ip) in ["1.1.1.1", "2.2.2.2", "3.3.3.3"].iter().enumerate() {
        engine.process(
            &event(i as i64, &[(field::ACTION, "hsm.login"), (field::OUTCOME, "failure"), (field::SOURCE_IP, ip)]),
            None,
        );
    }
    assert_eq!(engine.groups_evicted, 1);
}

#[test]
fn state_saved_and_restored_continues_a_half_full_window() {
    let yaml = format!("id: brute\ntitle: T\nseverity: high\n{FAILED}detect: {{type: threshold, count: 4, window: 5m, group_by: [host.name]}}\n");
    let fail = [(field::ACTION, "hsm.login"), (field::OUTCOME, "failure"), (field::HOST_NAME, "a")];
    let mut first = engine_for(&yaml);
    for i in 0..2 {
        assert!(first.process(&event(i, &fail), Some(i)).is_empty());
    }
    let saved = first.take_changes();
    assert_eq!(saved.len(), 1);
    assert!(first.take_changes().is_empty(), "changes are taken once");

    // A restarted engine, restored from the saved rows, needs only two more failures.
    let mut second = engine_for(&yaml);
    for change in &saved {
        assert!(second.restore(&change.rule_id, change.rule_hash, &change.key, change.state.as_deref().unwrap()));
    }
    assert!(second.process(&event(10, &fail), Some(10)).is_empty());
    let fired = second.process(&event(11, &fail), Some(11));
    assert_eq!(fired[0].evidence.ids, vec![0, 1, 10, 11]);

    // A changed rule does not take the old state.
    let mut changed = engine_for(&yaml.replace("count: 4", "count: 3"));
    assert!(!changed.restore(&saved[0].rule_id, saved[0].rule_hash, &saved[0].key, saved[0].state.as_deref().unwrap()));
}

#[test]
fn threshold_groups_expire_with_their_window() {
    let mut engine = engine_for(&format!("id: brute\ntitle: T\nseverity: high\n{FAILED}detect: {{type: threshold, count: 3, window: 5m, group_by: [host.name]}}\n"));
    engine.process(
        &event(0, &[(field::ACTION, "hsm.login"), (field::OUTCOME, "failure"), (field::HOST_NAME, "a")]),
        None,
    );
    engine.take_changes();
    engine.advance(t(4 * 60));
    assert!(engine.take_changes().is_empty(), "still in the window");
    engine.advance(t(6 * 60));
    let changes = engine.take_changes();
    assert_eq!((changes.len(), changes[0].state.clone()), (1, None), "expired and deleted");
}

#[test]
fn a_sender_clock_far_behind_does_not_expire_its_window() {
    // Regression: expiry compared the collector's clock with event time, so a lagging HSM never reached a threshold.
    let mut engine = engine_for(&format!("id: brute\ntitle: T\nseverity: high\n{FAILED}detect: {{type: threshold, count: 2, window: 5m, group_by: [host.name]}}\n"));
    let late = |at: i64| {
        let mut e = event(at, &[(field::ACTION, "hsm.login"), (field::OUTCOME, "failure"), (field::HOST_NAME, "a")]);
        e.created = Timestamp::new(t(at + 86_400 * 10), 0);
        e
    };
    assert!(engine.process(&late(0), None).is_empty());
    assert!(engine.advance(t(86_400 * 10 + 1)).is_empty());
    assert_eq!(engine.process(&late(2), None).len(), 1);
}
