//! The decoder tools and decoders as data: `hsmwatch decode`, `hsmwatch decoders check`, `hsmwatch import`, and a
//! server whose rules directory replaces the shipped decoders without a rebuild.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{query_json, run, send_tcp, TestServer, BIN};

const CREATE: &str = "<174>Mar  9 10:00:01 hsm-2-1-2-6 lunash [4100]: info : 0 : Command: partition create -partition par1 -password S3cret! : admin : 10.1.2.3/51234";

#[test]
fn decode_shows_format_decoder_and_every_field_with_secrets_redacted() {
    let (code, out, err) = run(&["decode", CREATE]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("format:   rfc3164"), "{out}");
    assert!(out.contains("decoder:  luna.lunash / lunash.command"), "{out}");
    let fields: Vec<(&str, &str)> =
        out.lines().filter_map(|l| l.strip_prefix("  ")?.split_once(' ')).map(|(k, v)| (k, v.trim())).collect();
    for pair in [
        ("event.action", "partition.create"),
        ("hsm.partition", "par1"),
        ("source.ip", "10.1.2.3"),
        ("user.name", "admin"),
    ] {
        assert!(fields.contains(&pair), "missing {pair:?} in\n{out}");
    }
    assert!(out.contains("-password ***") && !out.contains("S3cret!"), "{out}");

    let (_, json, _) = run(&["decode", "--json", "<13>Mar  1 12:00:00 h app: nothing known"]);
    let fields: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(fields["event.dataset"], "syslog");
    assert!(fields.get("event.action").is_none());
}

#[test]
fn decode_reads_lines_from_standard_input() {
    let mut child =
        Command::new(BIN).args(["decode", "--json"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            format!("{CREATE}\n<6>Mar  7 02:14:09 h kernel: k7pf0: ALM0008: Hard tamper - enclosure penetration\n")
                .as_bytes(),
        )
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let actions: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event.action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["partition.create", "hsm.tamper"]);
}

#[test]
fn decoders_check_passes_the_shipped_pack_and_names_file_and_line_of_mistakes() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let (code, out, err) = run(&["decoders", "check", shipped]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("ok"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "decoders:\n  - id: g\n    dataset: luna.x\n    route: {appname: [x]}\n    patterns:\n      - id: p\n        match: '(?P<usr.name>\\S+)'\n").unwrap();
    let (code, _, err) = run(&["decoders", "check", dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("broken.yaml:7:") && err.contains("did you mean `user.name`"), "{err}");
}

fn write_rules_dir(dir: &Path, action: &str) {
    std::fs::create_dir_all(dir.join("decoders")).unwrap();
    let text = format!(
        "decoders:\n  - id: custom\n    dataset: luna.lunash\n    route: {{appname: [lunash]}}\n    patterns:\n      - id: custom.login\n        match: '^Lush user login : (?P<user.name>\\S+)'\n        set: {{event.action: {action}, event.category: authentication}}\n"
    );
    std::fs::write(dir.join("decoders/custom.yaml"), text).unwrap();
    std::fs::write(
        dir.join("logins.yaml"),
        "id: logins\ntitle: Logins\nseverity: low\nselect:\n  s:\n    event.action: ssh.login\n",
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rules_directory_replaces_the_shipped_decoders() {
    let rules = tempfile::tempdir().unwrap();
    write_rules_dir(rules.path(), "ssh.login");
    let rules_dir = rules.path().to_owned();
    let server = TestServer::start_with(64 * 1024, |config| config.rules.dir = Some(rules_dir)).await;
    send_tcp(server.tcp, b"<174>Feb 28 09:12:44 hsm-1 lunash[5120]: Lush user login : operator : Console\n", false)
        .await;
    let events = server.stop_and_query().await;
    assert_eq!(events[0]["event.action"], "ssh.login", "the operator's decoder, not the shipped one");
}

#[test]
fn serve_refuses_broken_decoders_with_exit_2() {
    let rules = tempfile::tempdir().unwrap();
    write_rules_dir(rules.path(), "hsm.logn");
    let config = rules.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "rules:\n  dir: {}\nstorage:\n  path: {}/x.db\nlisten:\n  tcp:\n    - address: 127.0.0.1:0\n",
            rules.path().display(),
            rules.path().display()
        ),
    )
    .unwrap();
    let (code, _, err) = run(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("custom.yaml:8:") && err.contains("did you mean `hsm.login`"), "{err}");
}

#[test]
fn import_replays_luna_files_and_cloudhsm_exports() {
    let dir = tempfile::tempdir().unwrap();
    let luna = dir.path().join("messages");
    std::fs::write(
        &luna,
        "2026 Mar  9 10:03:11 hsm-4-1-1-9  local5 info  lunash [4101]: info : 0 : Command: partition create -partition testPar1 -password secret123 : admin : Console\n\
         2017 Apr 17 11:02:10 local_host kern info kernel: k7pf0: ALM0010: Hard tamper - Decommission signal triggered\n\
         2017 Apr 17 11:02:11 local_host kern info kernel: eth0 link up\n\
         garbage that is no syslog\n",
    )
    .unwrap();
    let audit = dir.path().join("hsm-abc.log");
    let record = |seq: &str, usecs: &str| {
        format!("Time: 02/10/26 09:00:00.100200, usecs:{usecs}\nSequence No : {seq}\nReboot counter : 0x107\nCommand Type(hex) : CN_MGMT_CMD (0x0)\nOpcode : CN_LOGIN (0xd)\nSession Handle : 0x7004004\nResponse : 0:HSM Return: SUCCESS\nLog type : MGMT_USER_DETAILS_LOG (2)\nUser Name : testuser\nUser Type : CN_CRYPTO_USER (1)\n")
    };
    std::fs::write(&audit, format!("{}{}", record("0x30", "1770714000100200"), record("0x33", "1770714001100200")))
        .unwrap();
    let db = dir.path().join("import.db");
    let (code, out, err) =
        run(&["import", "--db", db.to_str().unwrap(), luna.to_str().unwrap(), audit.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("messages: 4 lines, 4 events: 2 decoded, 1 unknown, 1 unparsed"), "{out}");
    assert!(
        out.contains("hsm-abc.log: 2 lines, 3 events: 2 decoded, 0 unknown, 0 unparsed, 1 audit sequence gaps"),
        "{out}"
    );

    let events = query_json(&db, &[]);
    assert_eq!(events.len(), 7);
    let gap = events.iter().find(|e| e.get("event.action").map(String::as_str) == Some("audit.sequence_gap")).unwrap();
    assert_eq!(gap["host.name"], "hsm-abc");
    assert_eq!(gap["event.category"], "integrity");
    let login = query_json(&db, &["--action", "hsm.login"]);
    assert_eq!(login.len(), 2);
    assert_eq!(login[0]["user.roles"], "cu");
    assert!(events.iter().all(|e| !e["event.original"].contains("secret123")));
    let tamper = query_json(&db, &["--action", "hsm.tamper"]);
    assert_eq!(tamper[0]["hsm.alarm.code"], "ALM0010");
}

#[test]
fn luna_return_codes_in_console_output_are_extracted() {
    let line = "<172>Feb 28 11:20:40 hsm-2-1-2-5 lunash [6021]: Error:  'hsm login' failed. (A00000 : LUNA_RET_UM_PIN_INCORRECT)";
    let (code, json, err) = run(&["decode", "--json", line]);
    assert_eq!(code, Some(0), "{err}");
    let fields: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(fields["hsm.return_code"], "LUNA_RET_UM_PIN_INCORRECT");
    assert_eq!(fields["hsm.return_code_value"], "0xa00000");
}

#[test]
fn import_reads_tarlogs_archives_and_gzipped_files() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("var/log");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("messages"), "2017 Apr 17 11:02:10 local_host kern info kernel: k7pf0: ALM0010: Hard tamper - Decommission signal triggered\n").unwrap();
    std::fs::write(
        logs.join("lunalogs.1"),
        "2026 Mar  9 10:03:11 hsm-4-1-1-9  local5 info  lunash [4101]: info : 0 : Command: partition create -partition p1 -password s3cr3t : admin : Console\n",
    )
    .unwrap();
    let gzip = |file: &str| assert!(Command::new("gzip").arg(logs.join(file)).status().unwrap().success());
    gzip("lunalogs.1");
    let archive = dir.path().join("tarlogs.tgz");
    let status = Command::new("tar").arg("czf").arg(&archive).arg("-C").arg(dir.path()).arg("var").status().unwrap();
    assert!(status.success());
    let db = dir.path().join("t.db");
    let (code, out, err) = run(&["import", "--db", db.to_str().unwrap(), archive.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("tarlogs.tgz:var/log/messages: 1 lines, 1 events: 1 decoded"), "{out}");
    assert!(out.contains("tarlogs.tgz:var/log/lunalogs.1.gz: 1 lines, 1 events: 1 decoded"), "{out}");
    let events = query_json(&db, &[]);
    let actions: Vec<&str> = events.iter().map(|e| e["event.action"].as_str()).collect();
    assert!(actions.contains(&"hsm.tamper") && actions.contains(&"partition.create"), "{actions:?}");
    assert!(events.iter().all(|e| !e["event.original"].contains("s3cr3t")));

    let single = logs.join("messages");
    gzip("messages");
    let (code, out, _) = run(&["import", "--db", db.to_str().unwrap(), &format!("{}.gz", single.display())]);
    assert_eq!(code, Some(0));
    assert!(out.contains("messages.gz: 1 lines, 1 events: 1 decoded"), "{out}");
}

#[test]
fn import_dates_rfc3164_lines_no_later_than_their_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("last-year.log");
    let line =
        |date: &str| format!("<174>{date} hsm-1 lunash [4100]: info : 0 : Command: hsm show : admin : Console\n");
    std::fs::write(&log, [line("Dec 20 23:00:00"), line("Jan  5 08:00:00"), line("Mar  9 10:00:01")].concat()).unwrap();
    let touch = |path: &Path, when: &str| {
        assert!(Command::new("touch").args(["-d", when]).arg(path).status().unwrap().success());
    };
    touch(&log, "2025-06-01 12:00:00Z");
    let import = |db: &str, extra: &[&str], file: &Path| {
        let db = dir.path().join(db);
        let mut args = vec!["import", "--db", db.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(file.to_str().unwrap());
        let (code, out, err) = run(&args);
        assert_eq!(code, Some(0), "{err}");
        let mut times: Vec<String> = query_json(&db, &[]).into_iter().map(|e| e["@timestamp"].clone()).collect();
        times.sort();
        (out, times)
    };

    // The file was last written in June 2025: its March line is from March 2025, not from the March after the import.
    let (out, times) = import("mtime.db", &[], &log);
    assert_eq!(times, ["2024-12-20T23:00:00Z", "2025-01-05T08:00:00Z", "2025-03-09T10:00:01Z"], "{out}");
    assert!(out.contains("years up to 2025-06-01T12:00:00Z (modified)"), "{out}");

    let (out, times) = import("year.db", &["--year", "2019"], &log);
    assert_eq!(times, ["2019-01-05T08:00:00Z", "2019-03-09T10:00:01Z", "2019-12-20T23:00:00Z"]);
    assert!(out.contains("year 2019 (--year)"), "{out}");

    let (out, times) = import("received.db", &["--received", "2024-02-01"], &log);
    assert_eq!(times, ["2023-03-09T10:00:01Z", "2023-12-20T23:00:00Z", "2024-01-05T08:00:00Z"]);
    assert!(out.contains("years up to 2024-02-01T00:00:00Z (--received)"), "{out}");

    // gzip records the file's modification time; the .gz itself is newer.
    assert!(Command::new("gzip").arg("-k").arg(&log).status().unwrap().success());
    let gz = dir.path().join("last-year.log.gz");
    touch(&gz, "2026-11-30 00:00:00Z");
    let (out, times) = import("gz.db", &[], &gz);
    assert_eq!(times[2], "2025-03-09T10:00:01Z", "{out}");
    assert!(out.contains("years up to 2025-06-01T12:00:00Z (modified)"), "{out}");

    // A tar member keeps its own time.
    let archive = dir.path().join("logs.tar");
    let status =
        Command::new("tar").arg("cf").arg(&archive).arg("-C").arg(dir.path()).arg("last-year.log").status().unwrap();
    assert!(status.success());
    touch(&archive, "2026-11-30 00:00:00Z");
    let (out, times) = import("tar.db", &[], &archive);
    assert_eq!(times[2], "2025-03-09T10:00:01Z", "{out}");

    // A zone for times written without an offset.
    let berlin = dir.path().join("berlin.log");
    std::fs::write(&berlin, line("Jul 10 12:00:00")).unwrap();
    touch(&berlin, "2025-08-01 00:00:00Z");
    let (_, times) = import("zone.db", &["--timezone", "Europe/Berlin"], &berlin);
    assert_eq!(times, ["2025-07-10T10:00:00Z"]);
    let (code, _, err) = run(&["import", "--timezone", "Europe/Berln", berlin.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("did you mean `Europe/Berlin`"), "{err}");
}

/// sshd writes the name a client typed verbatim; a name with spaces, braces, quotes or a fake " from ... port ..." is
/// still a failed login from the real source.
#[test]
fn odd_ssh_user_names_decode_as_failed_logins_from_the_real_source() {
    let cases = [
        ("Invalid user a b from 203.0.113.9 port 40022", Some("a b")),
        ("Failed password for invalid user {{x}} from 203.0.113.9 port 40022 ssh2", Some("{{x}}")),
        ("Failed password for invalid user \"root\" from 203.0.113.9 port 40022 ssh2", Some("\"root\"")),
        ("Failed password for invalid user 'a' b' from 203.0.113.9 port 40022 ssh2", Some("'a' b'")),
        (
            "Failed password for invalid user x from 10.9.9.9 port 1 from 203.0.113.9 port 40022 ssh2",
            Some("x from 10.9.9.9 port 1"),
        ),
        ("Failed publickey for admin from 203.0.113.9 port 40022 ssh2: RSA SHA256:AbC", Some("admin")),
        // A name that fakes sshd's whole ending, key tail included: the last ending is sshd's.
        (
            "Failed password for invalid user x from 10.9.9.9 port 1 ssh2: y from 203.0.113.9 port 40022 ssh2",
            Some("x from 10.9.9.9 port 1 ssh2: y"),
        ),
        ("Invalid user  from 203.0.113.9 port 40022", None),
    ];
    for (message, user) in cases {
        let line = format!("<86>Mar  3 22:41:50 hsm-4-1-1-9 sshd[30442]: {message}");
        let (code, json, err) = run(&["decode", "--json", &line]);
        assert_eq!(code, Some(0), "{err}");
        let fields: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(fields["event.action"], "ssh.login", "{message}");
        assert_eq!(fields["event.outcome"], "failure", "{message}");
        assert_eq!(fields["source.ip"], "203.0.113.9", "{message}");
        assert_eq!(fields["source.port"], "40022", "{message}");
        assert_eq!(fields.get("user.name").and_then(|v| v.as_str()), user, "{message}");
    }
}
