//! `hsmwatch rules check` and `hsmwatch rules test` on the shipped pack and on broken rules.

use crate::support::run;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");

#[test]
fn the_shipped_pack_checks_and_its_tests_pass() {
    let (code, out, err) = run(&["rules", "check", SHIPPED]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("rules,") && out.contains("ok"), "{out}");
    let (code, out, err) = run(&["rules", "test", SHIPPED]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.lines().last().unwrap().ends_with("passed, 0 failed"), "{out}");
}

#[test]
fn a_failing_rule_test_shows_expected_and_actual_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.yaml"),
        "id: r\ntitle: T\nseverity: low\nselect:\n  s:\n    event.action: ssh.login\ntests:\n  - name: expects two but gets one\n    events:\n      - {at: 0s, fields: {event.action: ssh.login}}\n    expect:\n      - {status: firing}\n      - {status: firing}\n",
    )
    .unwrap();
    let (code, out, _) = run(&["rules", "test", dir.path().to_str().unwrap(), "--decoders", "builtin"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with(&format!("rules: directory {}, decoders: the pack embedded", dir.path().display())),
        "{out}"
    );
    assert!(out.contains("FAIL  r / expects two but gets one"), "{out}");
    assert!(out.contains("1 notification(s) instead of 2"), "{out}");
    assert!(out.contains("actual:") && out.contains("- firing count=1"), "{out}");
}

#[test]
fn broken_rules_exit_2_with_file_line_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.yaml"),
        "id: r\ntitle: T\nseverity: low\nselect:\n  s:\n    event.actoin: ssh.login\n",
    )
    .unwrap();
    let (code, _, err) = run(&["rules", "check", dir.path().to_str().unwrap(), "--decoders", "builtin"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("r.yaml:6: rule `r`: selection `s`: unknown field `event.actoin` (did you mean `event.action`?)"),
        "{err}"
    );
}

/// A rules directory that cannot be what was meant is an error naming it and what is missing, in `config check`,
/// `serve` and `rules check`; `rules.decoders: builtin` says on purpose that the shipped decoders go with own rules.
#[test]
fn a_rules_directory_that_is_not_one_is_an_error_not_an_empty_pack() {
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str, rules: &str| {
        let path = dir.path().join(name);
        let text = format!(
            "rules:\n{rules}storage:\n  path: {}/x.db\nlisten:\n  tcp:\n    - address: 127.0.0.1:0\nhttp: null\n",
            dir.path().display()
        );
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let own = dir.path().join("own");
    std::fs::create_dir(&own).unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(own.join("r.yaml"), "id: r\ntitle: T\nseverity: low\nselect:\n  s:\n    event.action: ssh.login\n")
        .unwrap();
    let cases = [
        (config("missing.yaml", "  dir: /nonexistent\n"), "/nonexistent: no such rules directory"),
        (config("empty.yaml", &format!("  dir: {}\n", empty.display())), "empty: holds no rule files"),
        (config("no-decoders.yaml", &format!("  dir: {}\n", own.display())), "own/decoders: holds no decoder files"),
    ];
    for (file, message) in &cases {
        for command in [&["config", "check", file.as_str()][..], &["serve", "--config", file.as_str()][..]] {
            let (code, _, err) = run(command);
            assert_eq!(code, Some(2), "{command:?}: {err}");
            assert!(err.contains(message), "{command:?}: {err}");
        }
    }
    let (code, _, err) = run(&["rules", "check", own.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("holds no decoder files") && err.contains("rules.decoders: builtin"), "{err}");

    let builtin = config("builtin.yaml", &format!("  dir: {}\n  decoders: builtin\n", own.display()));
    let (code, out, err) = run(&["config", "check", &builtin]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&format!("rules: directory {}, decoders: the pack embedded", own.display())), "{out}");
    assert!(out.contains("1 rules"), "{out}");
}

#[test]
fn backtest_replays_stored_events_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("secure");
    let line = "<86>1 2026-03-03T22:41:50Z hsm-4-1-1-9 sshd 30442 - - Failed password for invalid user oracle from 203.0.113.45 port 40022 ssh2\n";
    std::fs::write(&log, line.repeat(6)).unwrap();
    let db = dir.path().join("b.db");
    let db = db.to_str().unwrap();
    let (code, _, err) = run(&["import", "--db", db, log.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(&[
        "rules",
        "backtest",
        "--db",
        db,
        "--rules",
        SHIPPED,
        "--since",
        "2026-03-01",
        "--until",
        "2026-03-04",
        "--rule",
        "luna.auth.bruteforce",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("luna.auth.bruteforce") && out.contains("5 failed logins on hsm-4-1-1-9 from 203.0.113.45"),
        "{out}"
    );
    assert!(out.contains("replayed 6 events through 1 rules: 1 alerts, 1 notified, nothing sent"), "{out}");
    let (code, _, err) =
        run(&["rules", "backtest", "--db", db, "--rules", SHIPPED, "--since", "1d", "--rule", "luna.auth.bruteforc"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("did you mean `luna.auth.bruteforce`"), "{err}");
}
