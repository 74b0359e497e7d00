//! The command line: help, config example and check, query filters and output, exit codes.

use crate::support::{query_json, run, send_tcp, TestServer};

#[test]
fn serve_help_states_the_defaults() {
    let (code, help, _) = run(&["serve", "--help"]);
    assert_eq!(code, Some(0));
    for needle in ["0.0.0.0:5514", "hsmwatch.db", "./rules", "config example", "SIGTERM", "http://127.0.0.1:8514/"] {
        assert!(help.contains(needle), "serve --help lacks {needle}:\n{help}");
    }
    let (_, top, _) = run(&["--help"]);
    assert!(top.contains("Exit codes: 0 success, 1 runtime error, 2 usage or configuration error"), "{top}");
}

#[test]
fn the_example_config_checks_ok_and_a_bad_key_is_exit_2_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, example, _) = run(&["config", "example"]);
    assert_eq!(code, Some(0));
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, &example).unwrap();
    let (code, out, err) = run(&["config", "check", good.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("ok"));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "storage:\n  path: x.db\n  batch_rowz: 5\n").unwrap();
    let (code, _, err) = run(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("bad.yaml") && err.contains("batch_rowz") && err.contains("line 3"), "{err}");
    let (code, _, err) = run(&["serve", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn usage_errors_exit_2_and_a_missing_database_exits_1() {
    let (code, _, _) = run(&["query", "--since", "the other day"]);
    assert_eq!(code, Some(2));
    let (code, _, err) = run(&["query", "--db", "/nonexistent/none.db"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no database at /nonexistent/none.db"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_filters_and_table() {
    let server = TestServer::start().await;
    let lines = "<134>1 2026-03-01T10:00:00Z hsm-a lunash 1 - - first on a\n\
                 <134>1 2026-03-01T11:00:00Z hsm-b lunash 1 - - second on b\n\
                 <134>1 2026-03-01T12:00:00Z hsm-a lunash 1 - - third on a 50%_off\n";
    send_tcp(server.tcp, lines.as_bytes(), false).await;
    let dir = server.stop().await;
    let db = dir.path().join("events.db");
    let messages = |args: &[&str]| query_json(&db, args).iter().map(|e| e["message"].clone()).collect::<Vec<_>>();

    assert_eq!(messages(&[]), ["third on a 50%_off", "second on b", "first on a"], "newest first");
    assert_eq!(messages(&["--host", "hsm-a"]), ["third on a 50%_off", "first on a"]);
    assert_eq!(messages(&["--since", "2026-03-01T10:30:00Z", "--until", "2026-03-01T12:00:00Z"]), ["second on b"]);
    assert_eq!(messages(&["--contains", "50%_"]), ["third on a 50%_off"]);
    assert_eq!(messages(&["--contains", "0%x"]), Vec::<String>::new());
    assert_eq!(messages(&["--limit", "1"]), ["third on a 50%_off"]);
    assert_eq!(messages(&["--user", "nobody"]), Vec::<String>::new());
    assert_eq!(messages(&["--action", "partition.create"]), Vec::<String>::new());
    assert_eq!(messages(&["--outcome", "failure"]), Vec::<String>::new());
    assert_eq!(messages(&["--source-ip", "10.0.0.1"]), Vec::<String>::new());

    let (code, table, err) = run(&["query", "--db", db.to_str().unwrap(), "--host", "hsm-b"]);
    assert_eq!(code, Some(0), "{err}");
    let rows: Vec<&str> = table.lines().collect();
    assert!(rows[0].starts_with("TIME") && rows[0].contains("MESSAGE"), "{table}");
    assert!(
        rows[1].starts_with("2026-03-01T11:00:00Z") && rows[1].contains("hsm-b") && rows[1].ends_with("second on b"),
        "{table}"
    );
    assert_eq!(rows.len(), 2);
}

#[test]
fn config_check_covers_notifiers_and_the_shipped_production_config() {
    // The production config as installed: its rules directory is where the package puts the shipped one.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/hsmwatch.yaml")).unwrap();
    assert!(text.contains("dir: /etc/hsmwatch/rules"));
    let production = dir.path().join("hsmwatch.yaml");
    std::fs::write(&production, text.replace("/etc/hsmwatch/rules", concat!(env!("CARGO_MANIFEST_DIR"), "/rules")))
        .unwrap();
    let (code, out, err) = run(&["config", "check", production.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("hsmwatch.yaml: ok (rules: directory"), "{out}");

    let misplaced = dir.path().join("misplaced.yaml");
    std::fs::write(&misplaced, "notifiers:\n  mail:\n    type: email\n    url: http://x\n").unwrap();
    let (code, _, err) = run(&["config", "check", misplaced.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("notifier `mail`, url: not a setting of an email notifier"), "{err}");

    let secret = dir.path().join("secret.yaml");
    std::fs::write(
        &secret,
        "notifiers:\n  hook:\n    type: webhook\n    url_env: HSMWATCH_TEST_NEVER_SET\n    fallback: hook2\n  hook2:\n    type: slack\n    url_file: /nonexistent/slack.url\n",
    )
    .unwrap();
    let (code, out, err) = run(&["config", "check", secret.to_str().unwrap()]);
    assert_eq!(code, Some(0), "a secret the shell cannot see is a warning: {err}");
    assert!(
        err.contains("warning: notifier `hook`, url_env: environment variable HSMWATCH_TEST_NEVER_SET is not set"),
        "{err}"
    );
    assert!(err.contains("warning: notifier `hook2`, url_file: cannot read /nonexistent/slack.url"), "{err}");
    assert!(out.contains(": ok ("), "{out}");

    // What serve refuses, config check refuses: a token too short to resist guessing.
    let short = dir.path().join("short.yaml");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "hunter2\n").unwrap();
    std::fs::write(&short, format!("http:\n  token_file: {}\n", token_file.display())).unwrap();
    let (code, _, err) = run(&["config", "check", short.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("the token is shorter than 16 characters"), "{err}");

    std::env::set_var("HSMWATCH_TEST_CLI_SNMP_AUTH", "authPass123");
    // SNMP: a passphrase this shell cannot read is a warning; two targets with one name, or a trap listener without
    // communities or users, are refused.
    let snmp = dir.path().join("snmp.yaml");
    let target = "snmp:\n  defaults: {user: monitorhsm, auth_passphrase_env: HSMWATCH_TEST_NEVER_SET}\n  targets:\n    - {address: 10.0.0.5, name: hsm-5}\n";
    std::fs::write(&snmp, target).unwrap();
    let (code, _, err) = run(&["config", "check", snmp.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("warning: snmp target `hsm-5 (10.0.0.5)`, auth_passphrase_env: environment variable HSMWATCH_TEST_NEVER_SET is not set"), "{err}");
    std::fs::write(
        &snmp,
        format!("{target}    - {{address: 10.0.0.6, name: hsm-5}}\n")
            .replace("HSMWATCH_TEST_NEVER_SET", "HSMWATCH_TEST_CLI_SNMP_AUTH"),
    )
    .unwrap();
    let (code, _, err) = run(&["config", "check", snmp.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("the name `hsm-5` is given to two targets"), "{err}");
    std::fs::write(&snmp, "listen:\n  tcp: [{address: 127.0.0.1:0}]\n  snmp_traps: {address: 127.0.0.1:1162}\n")
        .unwrap();
    let (code, _, err) = run(&["config", "check", snmp.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("a trap listener needs communities"), "{err}");
}

#[test]
fn operator_mistakes_are_named_and_documented_forms_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let (code, _, err) =
        run(&["silence", "add", "hots=vm", "--for", "1h", "--reason", "r", "--db", db.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`hots`: unknown matcher key (did you mean `host`?)"), "{err}");
    // The form `config example` documents for turning the HTTP server off.
    let config = dir.path().join("c.yaml");
    std::fs::write(&config, "http: null\n").unwrap();
    let (code, out, err) = run(&["config", "check", config.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("c.yaml: ok"), "{out}");
}

/// A line from the network cannot drive the terminal of whoever reads it: `query`, `alerts list`/`show`, `hosts`,
/// `decode` and the server's own log show control characters escaped (`#033`); JSON keeps the exact text.
#[test]
fn text_from_the_network_is_escaped_on_terminals() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::ServeProcess::start(dir.path());
    let line = "<174>Mar  9 10:00:01 hsm-\x1b[2J1 lunash [4100]: info : 0 : Command: partition create -partition p\x1b]0;owned\x07 : \x1b[2J\x1b[31mroot : 10.1.2.3/51234\n";
    std::io::Write::write_all(&mut std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap(), line.as_bytes())
        .unwrap();
    let db = server.db.clone();
    let db_arg = db.to_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while run(&["alerts", "list", "--db", &db_arg]).1.lines().count() < 2 {
        assert!(std::time::Instant::now() < deadline, "no alert");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.signal("TERM");
    let (code, log) = server.wait();
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains('\x1b') && !log.contains('\x07'), "{log}");
    assert!(log.contains("by #033[2J#033[31mroot"), "{log}");

    for command in [
        vec!["query", "--db", &db_arg],
        vec!["alerts", "list", "--db", &db_arg],
        vec!["alerts", "show", "1", "--db", &db_arg],
        vec!["hosts", "--db", &db_arg],
    ] {
        let (code, out, err) = run(&command);
        assert_eq!(code, Some(0), "{command:?}: {err}");
        assert!(!out.contains('\x1b') && !out.contains('\x07'), "{command:?}: {out:?}");
        assert!(out.contains("hsm-#033[2J1"), "{command:?}: {out}");
    }
    let (_, out, _) = run(&["query", "--db", &db_arg]);
    assert!(out.contains("#033[2J#033[31mroot"), "{out}");
    let (_, out, _) = run(&["decode", line.trim_end()]);
    assert!(out.contains("hsm.partition") && out.contains("p#033]0;owned#007"), "{out}");
    // JSON stays exact.
    let events = query_json(&db, &[]);
    assert_eq!(events[0]["user.name"], "\x1b[2J\x1b[31mroot");
}

/// `hsmwatch query | head -1`: the reader going away is no error, in the table and in JSON Lines.
#[test]
fn query_into_a_closed_pipe_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("many.log");
    let lines: String = (0..3000)
        .map(|n| format!("<13>Mar  1 12:00:00 h app: a line long enough to fill a pipe quickly {n:06}\n"))
        .collect();
    std::fs::write(&log, lines).unwrap();
    let db = dir.path().join("q.db");
    let (code, _, err) = run(&["import", "--db", db.to_str().unwrap(), log.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    for (format, first_line_starts) in [(None, "TIME"), (Some("--json"), "{")] {
        let mut child = std::process::Command::new(crate::support::BIN)
            .args(["query", "--limit", "100000", "--db", db.to_str().unwrap()])
            .args(format)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first).unwrap();
        assert!(first.starts_with(first_line_starts), "{format:?}: {first}");
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{format:?}: {stderr}");
        assert!(stderr.is_empty(), "{format:?}: {stderr}");
    }
}

/// `hsmwatch query` reads and prints a page at a time (so that a year's export is not held in memory): across the
/// pages every event comes once, newest first, also where a page ends among events of the same second, with a line
/// filter, and `--limit` is kept exactly.
#[test]
fn query_pages_through_many_events_newest_first_each_once() {
    let total = 12_000;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pages.log");
    let start = chrono::DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z").unwrap();
    // Three lines a second: the pages (5000 events) end among lines of the same second.
    let lines: String = (0..total)
        .map(|n| {
            let time = (start + chrono::TimeDelta::seconds(n / 3)).format("%Y-%m-%dT%H:%M:%SZ");
            let parity = if n % 2 == 0 { "even" } else { "odd" };
            format!("<134>1 {time} hsm-p pagetest - - - seq:{n:06} {parity}\n")
        })
        .collect();
    std::fs::write(&log, lines).unwrap();
    let db = dir.path().join("pages.db");
    let (code, _, err) = run(&["import", "--db", db.to_str().unwrap(), log.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let numbers = |args: &[&str]| -> Vec<i64> {
        query_json(&db, args).iter().map(|e| e["message"].trim_start_matches("seq:")[..6].parse().unwrap()).collect()
    };
    assert_eq!(numbers(&["--limit", "100000"]), (0..total).rev().collect::<Vec<_>>(), "every event once, newest first");
    assert_eq!(numbers(&["--limit", "7001"]), (total - 7001..total).rev().collect::<Vec<_>>(), "the newest 7001");
    let odd: Vec<i64> = (0..total).rev().filter(|n| n % 2 == 1).collect();
    assert_eq!(numbers(&["--limit", "100000", "--contains", " odd"]), odd, "a line filter across pages");
    let (code, table, err) = run(&["query", "--limit", "100000", "--db", db.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(table.lines().count(), 1 + total as usize, "one header, then a row an event");
    assert_eq!(table.matches("TIME").count(), 1, "the header is printed once");
}
