//! SNMP polling against net-snmp's real agent: `snmpd` in the foreground on a loopback port with a v3 authPriv user,
//! serving the Luna objects through `pass_persist` from a fixture script whose data file the test rewrites (NTLS
//! down, FIPS flipped, storage), and stopped and started again (poll failures, recovery). Changes become events and
//! alerts; the state survives a restart of hsmwatch; wrong passphrases and an unknown user are named.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, query_json, require_program, run, ServeProcess, TestServer};

const AUTH: &str = "authPass123";
const PRIV: &str = "privPass123";

/// The objects of a healthy appliance: NTLS up, FIPS on, one HSM at 3 % and one partition at 94.7 %.
fn luna_objects(ntls: u8, fips: u8) -> String {
    let serial = ".5.54.54.51.51.49";
    let partition = format!("{serial}.4.49.50.51.52");
    [
        ".1.3.6.1.4.1.12383.3.1.1.1.0 counter64 3858380".to_owned(),
        ".1.3.6.1.4.1.12383.3.1.1.2.0 counter64 385838".to_owned(),
        format!(".1.3.6.1.4.1.12383.3.1.2.1.0 integer {ntls}"),
        ".1.3.6.1.4.1.12383.3.1.2.2.0 gauge 3".to_owned(),
        ".1.3.6.1.4.1.12383.3.1.2.6.0 string Feb 22 15:19:21 2040 GMT".to_owned(),
        format!(".1.3.6.1.4.1.23629.1.5.1.2.1.1{serial} string 66331"),
        format!(".1.3.6.1.4.1.23629.1.5.1.2.1.2{serial} string 7.3.0"),
        format!(".1.3.6.1.4.1.23629.1.5.1.2.1.4{serial} string Luna K7"),
        format!(".1.3.6.1.4.1.23629.1.5.1.2.1.7{serial} integer {fips}"),
        format!(".1.3.6.1.4.1.23629.1.5.1.2.1.9{serial} unsigned 33554432"),
        format!(".1.3.6.1.4.1.23629.1.5.1.2.1.10{serial} unsigned 1048576"),
        format!(".1.3.6.1.4.1.23629.1.5.1.4.1.1{partition} string 1234"),
        format!(".1.3.6.1.4.1.23629.1.5.1.4.1.2{partition} string par1"),
        format!(".1.3.6.1.4.1.23629.1.5.1.4.1.4{partition} unsigned 102400"),
        format!(".1.3.6.1.4.1.23629.1.5.1.4.1.5{partition} unsigned 97000"),
    ]
    .join("\n")
        + "\n"
}

/// net-snmp's agent as a fake Luna appliance, stopped (by its process) when dropped.
struct FakeLuna {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl FakeLuna {
    fn start(dir: &Path) -> FakeLuna {
        require_program("snmpd");
        let mut luna = FakeLuna { dir: dir.to_owned(), port: free_port(), child: None };
        std::fs::create_dir_all(dir.join("persist")).unwrap();
        luna.set(&luna_objects(1, 1));
        let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/luna_snmp.py");
        let data = dir.join("luna.data");
        let pass = |prefix: &str| {
            format!("pass_persist {prefix} /usr/bin/python3 {} {} {prefix}\n", helper.display(), data.display())
        };
        let conf = format!(
            "agentaddress udp:127.0.0.1:{}\n[snmp] persistentDir {}\nengineID hsmwatch-fake-luna\n\
             createUser monitorhsm SHA {AUTH} AES {PRIV}\nrouser monitorhsm priv\nsysName fake-luna\ndisk / 1\n{}{}",
            luna.port,
            dir.join("persist").display(),
            pass(".1.3.6.1.4.1.23629.1.5"),
            pass(".1.3.6.1.4.1.12383.3.1"),
        );
        std::fs::write(dir.join("snmpd.conf"), conf).unwrap();
        luna.resume();
        luna
    }

    /// Rewrites what the agent serves (the helper reads the file again when it changes).
    fn set(&self, objects: &str) {
        let path = self.dir.join("luna.data");
        let staged = self.dir.join("luna.data.new");
        std::fs::write(&staged, objects).unwrap();
        std::fs::rename(staged, path).unwrap();
    }

    /// Starts the agent and waits until it answers.
    fn resume(&mut self) {
        self.child = Some(spawn_snmpd(&self.dir));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answered = Command::new("snmpget")
                .args(["-m", "", "-v3", "-l", "authPriv", "-u", "monitorhsm", "-a", "SHA", "-A", AUTH, "-x", "AES"])
                .args(["-X", PRIV, "-t", "0.3", "-r", "0", &format!("127.0.0.1:{}", self.port), ".1.3.6.1.2.1.1.5.0"])
                .output()
                .is_ok_and(|o| o.status.success());
            if answered {
                return;
            }
            let log = std::fs::read_to_string(self.dir.join("snmpd.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "snmpd did not answer within 10 s:\n{log}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the agent (by its process id).
    fn pause(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// net-snmp's agent in the foreground with `dir`'s `snmpd.conf` and persistent directory, logging to `snmpd.log`.
fn spawn_snmpd(dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("snmpd.log")).unwrap();
    Command::new("snmpd")
        .args(["-f", "-Lo", "-C", "-c"])
        .arg(dir.join("snmpd.conf"))
        .env("SNMP_PERSISTENT_DIR", dir.join("persist"))
        .env("MIBS", "")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start snmpd")
}

impl Drop for FakeLuna {
    fn drop(&mut self) {
        self.pause();
    }
}

fn target_yaml(luna: &FakeLuna) -> String {
    std::env::set_var("HSMWATCH_TEST_SNMP_AUTH", AUTH);
    std::env::set_var("HSMWATCH_TEST_SNMP_PRIV", PRIV);
    std::env::set_var("HSMWATCH_TEST_SNMP_WRONG", "wrongPass123");
    format!(
        "snmp:\n  defaults:\n    user: monitorhsm\n    auth_passphrase_env: HSMWATCH_TEST_SNMP_AUTH\n    priv_passphrase_env: HSMWATCH_TEST_SNMP_PRIV\n    interval: 1s\n    timeout: 300ms\n    retries: 0\n    down_after: 1s\n  targets:\n    - address: {0}\n      name: fake-luna\n    - address: {0}\n      name: wrong-auth\n      auth_passphrase_env: HSMWATCH_TEST_SNMP_WRONG\n",
        luna.address()
    )
}

async fn start_server(yaml: &str, db: Option<PathBuf>) -> TestServer {
    let snmp = hsmwatch::config::Config::parse(yaml, Path::new("t.yaml")).unwrap().snmp;
    TestServer::start_with(64 * 1024, move |config| {
        config.snmp = snmp;
        if let Some(db) = db {
            config.storage.path = db;
        }
    })
    .await
}

fn events(db: &Path, action: &str) -> Vec<crate::support::Fields> {
    query_json(db, &["--action", action])
}

async fn wait_for(what: &str, done: impl FnMut() -> bool) {
    crate::support::wait_until(what, Duration::from_secs(30), done).await
}

/// The state of the latest alert of `rule` on `host`, from `alerts list --json`.
fn alert_state(db: &Path, rule: &str, host: &str) -> Option<String> {
    let (_, out, _) = run(&["alerts", "list", "--json", "--state", "all", "--db", db.to_str().unwrap()]);
    out.lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|a| a["rule_id"] == rule && a["host"] == host)
        .map(|a| a["state"].as_str().unwrap_or_default().to_owned())
}

fn metric(server: &TestServer, name: &str) -> Option<f64> {
    let address = server.server.http_address.unwrap().to_string();
    crate::support::metric_value(&crate::support::scrape(&address), name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_turn_changes_into_events_and_alerts_and_a_restart_repeats_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut luna = FakeLuna::start(&dir.path().join("luna"));
    let yaml = target_yaml(&luna);
    let server = start_server(&yaml, None).await;
    let db = server.db();

    // The first reading is a baseline: only what is wrong already (a partition at 94.7 %) is told.
    wait_for("the storage event", || !events(&db, "hsm.storage_high").is_empty()).await;
    let storage = &events(&db, "hsm.storage_high")[0];
    assert_eq!(storage["host.name"], "fake-luna");
    assert_eq!((storage["hsm.partition"].as_str(), storage["hsm.storage.used_pct"].as_str()), ("par1", "94.7"));
    assert_eq!(storage["event.dataset"], "luna.snmp");
    // A user the agent does not accept is named as such.
    wait_for("the wrong passphrase's failure", || {
        events(&db, "snmp.poll").iter().any(|e| e["host.name"] == "wrong-auth")
    })
    .await;
    let refused = events(&db, "snmp.poll").into_iter().find(|e| e["host.name"] == "wrong-auth").unwrap();
    assert!(refused["error.message"].starts_with("authentication:"), "{refused:?}");

    // NTLS goes down, then FIPS mode is switched off: each a change, an event and an alert.
    luna.set(&luna_objects(2, 1));
    wait_for("NTLS down", || !events(&db, "ntls.state_change").is_empty()).await;
    let down = &events(&db, "ntls.state_change")[0];
    assert_eq!(down["event.original"], "snmp fake-luna ntlsOperStatus=down(2) was up(1)");
    assert_eq!((down["event.outcome"].as_str(), down["ntls.status"].as_str()), ("failure", "down"));
    wait_for("the NTLS alert", || alert_state(&db, "luna.ntls.down", "fake-luna").as_deref() == Some("firing")).await;
    luna.set(&luna_objects(2, 2));
    wait_for("FIPS switched off", || !events(&db, "hsm.state_change").is_empty()).await;
    let fips = &events(&db, "hsm.state_change")[0];
    assert_eq!((fips["previous.value"].as_str(), fips["current.value"].as_str()), ("true", "false"));
    assert_eq!(fips["hsm.serial"], "66331");
    wait_for("the FIPS alert", || alert_state(&db, "luna.hsm.security_setting_changed", "fake-luna").is_some()).await;

    // The agent stops: after down_after the failure is an event and an alert; back, it resolves.
    luna.pause();
    wait_for("the outage", || events(&db, "snmp.poll").iter().any(|e| e["host.name"] == "fake-luna")).await;
    let outage = events(&db, "snmp.poll").into_iter().find(|e| e["host.name"] == "fake-luna").unwrap();
    assert_eq!(outage["event.outcome"], "failure");
    assert!(outage["error.message"].starts_with("unreachable:") || outage["error.message"].starts_with("timeout:"));
    wait_for("the outage alert", || {
        alert_state(&db, "luna.snmp.unreachable", "fake-luna").as_deref() == Some("firing")
    })
    .await;
    assert_eq!(metric(&server, "hsmwatch_snmp_up{target=\"fake-luna\"}"), Some(0.0));
    luna.resume();
    wait_for("the recovery", || alert_state(&db, "luna.snmp.unreachable", "fake-luna").as_deref() == Some("resolved"))
        .await;
    assert_eq!(metric(&server, "hsmwatch_snmp_up{target=\"fake-luna\"}"), Some(1.0));
    assert_eq!(metric(&server, "hsmwatch_snmp_ntls_clients{target=\"fake-luna\"}"), Some(3.0));
    assert_eq!(metric(&server, "hsmwatch_snmp_hsm_operation_errors{target=\"fake-luna\"}"), Some(385838.0));
    // The appliance's disk (net-snmp's own dskTable: `disk /` in the agent's configuration).
    let disk = metric(&server, "hsmwatch_snmp_disk_used_percent{target=\"fake-luna\"}").expect("the disk is read");
    assert!((0.0..=100.0).contains(&disk), "{disk}");

    // The inventory shows what polling says: the API, the CLI and the dashboard (NTLS is still down, FIPS off).
    let base = format!("http://{}", server.server.http_address.unwrap());
    let hosts: serde_json::Value = reqwest::get(format!("{base}/api/hosts")).await.unwrap().json().await.unwrap();
    let luna_host =
        hosts["hosts"].as_array().unwrap().iter().find(|h| h["name"] == "fake-luna").expect("in the inventory");
    let snmp = &luna_host["snmp"];
    assert_eq!((snmp["serials"][0].as_str(), snmp["models"][0].as_str()), (Some("66331"), Some("Luna K7")));
    assert_eq!((snmp["ntls_status"].as_str(), snmp["ntls_clients"].as_str()), (Some("down"), Some("3")));
    assert_eq!((snmp["fips_mode"][0].as_str(), snmp["firmware"][0].as_str()), (Some("false"), Some("7.3.0")));
    assert!(snmp["last_poll"].is_string() && snmp["poll_error"].is_null(), "{snmp}");
    assert_eq!(snmp["disk_used_pct"].as_f64(), Some(disk), "{snmp}");
    let (_, table, _) = run(&["hosts", "--db", db.to_str().unwrap()]);
    let row = table.lines().find(|l| l.starts_with("fake-luna")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("66331") && row.contains("down/3") && row.contains("false") && row.contains("7.3.0"), "{row}");
    let overview = reqwest::get(format!("{base}/")).await.unwrap().text().await.unwrap();
    assert!(overview.contains("down (3 clients)"), "{overview}");
    let page = reqwest::get(format!("{base}/hosts/fake-luna")).await.unwrap().text().await.unwrap();
    assert!(page.contains("Appliance (SNMP)") && page.contains("Luna K7") && page.contains("94.7 %"), "{page}");

    // A restart of hsmwatch knows what it knew: several polls later, no event repeats.
    let count = || query_json(&db, &["--host", "fake-luna"]).len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = count();
    let _dir = server.stop().await;
    let server = start_server(&yaml, Some(db.clone())).await;
    wait_for("three polls after the restart", || {
        metric(&server, "hsmwatch_snmp_polls_total{target=\"fake-luna\",outcome=\"success\"}").unwrap_or(0.0) >= 3.0
    })
    .await;
    assert_eq!(count(), before, "{:#?}", query_json(&db, &["--host", "fake-luna"]));
    let _dir = server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snmp_test_prints_the_reading_and_names_each_failure() {
    let dir = tempfile::tempdir().unwrap();
    let luna = FakeLuna::start(&dir.path().join("luna"));
    let mut yaml = target_yaml(&luna);
    yaml.push_str(&format!(
        "    - address: {}\n      name: wrong-priv\n      priv_passphrase_env: HSMWATCH_TEST_SNMP_WRONG\n    - address: {}\n      name: stranger\n      user: stranger\n    - address: 127.0.0.1:{}\n      name: nobody\n",
        luna.address(),
        luna.address(),
        free_port()
    ));
    let config = dir.path().join("hsmwatch.yaml");
    std::fs::write(&config, &yaml).unwrap();
    let config = config.to_str().unwrap();
    let (code, out, err) = run(&["snmp", "test", "fake-luna", "--config", config]);
    assert_eq!(code, Some(0), "{err}");
    for expected in [
        "fake-luna (127.0.0.1:",
        "ntls.status",
        "up(1)",
        "hsm 66331:",
        "fips_mode",
        "true(1)",
        "partition 1234:",
        "94.7%",
    ] {
        assert!(out.contains(expected), "`{expected}` in:\n{out}");
    }
    for (target, said) in [
        ("wrong-auth", "authentication: the agent did not accept the user or the authentication passphrase"),
        ("stranger", "authentication: the agent did not accept the user"),
        ("wrong-priv", "answered engine discovery but not the encrypted request"),
        ("nobody", "no SNMP agent answers at 127.0.0.1:"),
    ] {
        let (code, _, err) = run(&["snmp", "test", target, "--config", config]);
        assert_eq!(code, Some(1), "{target}: {err}");
        assert!(err.contains(said), "{target}: {err}");
    }
    let (code, _, err) = run(&["snmp", "test", "fake-lune", "--config", config]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no SNMP target `fake-lune` in the config (did you mean `fake-luna`?)"), "{err}");
    drop(luna);
}

/// Sends with net-snmp's `snmptrap`/`snmpinform` (`-m ''`: no MIB files); its exit status and error output.
fn send_trap(args: &[&str]) -> (bool, String) {
    require_program("snmptrap");
    let output = Command::new(args[0]).args(["-m", ""]).args(&args[1..]).output().expect("run snmptrap");
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_and_informs_become_events_and_junk_changes_nothing() {
    std::env::set_var("HSMWATCH_TEST_TRAP_COMMUNITIES", "public,luna-ops");
    std::env::set_var("HSMWATCH_TEST_SNMP_AUTH", AUTH);
    std::env::set_var("HSMWATCH_TEST_SNMP_PRIV", PRIV);
    let yaml = "listen:\n  tcp: [{address: 127.0.0.1:0}]\n  snmp_traps:\n    address: 127.0.0.1:0\n    communities_env: HSMWATCH_TEST_TRAP_COMMUNITIES\n    users:\n      - {user: monitorhsm, auth: sha, auth_passphrase_env: HSMWATCH_TEST_SNMP_AUTH, privacy: aes, priv_passphrase_env: HSMWATCH_TEST_SNMP_PRIV}\n";
    let listen = hsmwatch::config::Config::parse(yaml, Path::new("t.yaml")).unwrap().listen;
    let server = TestServer::start_with(64 * 1024, move |config| config.listen.snmp_traps = listen.snmp_traps).await;
    let trap_address = server.server.snmp_trap_address.expect("the trap listener is bound").to_string();
    let db = server.db();
    let reference = ".1.3.6.1.4.1.23629.1.5.2.2.1";
    // A v2c trap (`snmptrap`) or inform (`snmpinform`, one retry after 2 s) of `oid` with a Luna log reference.
    let v2c = |tool: &str, community: &str, oid: &str, log_line: &str| {
        let mut args = vec![tool, "-v", "2c", "-c", community];
        if tool == "snmpinform" {
            args.extend(["-r", "1", "-t", "2"]);
        }
        args.extend([trap_address.as_str(), "", oid, reference, "s", log_line]);
        send_trap(&args)
    };

    // A v2c trap (a power supply asserted), a v2c inform (NTLS) that must be acknowledged, a v1 coldStart.
    let psu = "[myLuna:192.168.0.101 / messages / 2012 Feb 29 12:05:01 / ipmievd[1234] / 1]";
    let (sent, err) = v2c("snmptrap", "public", ".1.3.6.1.4.1.23629.1.5.2.2.3", psu);
    assert!(sent, "{err}");
    let ntls = "[hsm01:10.200.0.164 / messages / 2021 Sep  1 11:07:09 / NTLS[2345] / 1]";
    let (acknowledged, err) = v2c("snmpinform", "luna-ops", ".1.3.6.1.4.1.23629.1.5.2.2.6", ntls);
    assert!(acknowledged, "the inform was acknowledged: {err}");
    let (sent, err) = send_trap(&[
        "snmptrap",
        "-v",
        "1",
        "-c",
        "public",
        &trap_address,
        ".1.3.6.1.4.1.8072.3.2.10",
        "127.0.0.1",
        "0",
        "0",
        "",
    ]);
    assert!(sent, "{err}");

    // An SNMPv3 authPriv trap (as Luna's trap agent sends them: the sender's engine, SHA and AES).
    let reference_v3 = "[hsm01:10.200.0.164 / messages / 2021 Sep  1 11:07:09 / smartd[12532] / 1]";
    let v3 = |auth: &str, user: &str, oid: &str| {
        let mut args = vec!["snmptrap", "-v", "3", "-e", "0x8000000001020304", "-u", user, "-l", "authPriv"];
        args.extend([
            "-a",
            "SHA",
            "-A",
            auth,
            "-x",
            "AES",
            "-X",
            PRIV,
            &trap_address,
            "",
            oid,
            reference,
            "s",
            reference_v3,
        ]);
        send_trap(&args)
    };
    let (sent, err) = v3(AUTH, "monitorhsm", ".1.3.6.1.4.1.23629.1.5.2.2.5");
    assert!(sent, "{err}");
    // Its user's key is localized to the sender's engine first (a megabyte of hashing, slow in a debug build): the
    // junk below waits for it, or the kernel would drop datagrams while the listener is busy.
    wait_for("the SNMPv3 trap", || events(&db, "snmp.trap").iter().any(|e| e["snmp.trap.oid"].ends_with(".2.2.5")))
        .await;

    // An SNMPv3 authPriv inform: net-snmp discovers the listener's engine (ID, then boots and time), sends the inform
    // with keys localized to it, and exits 0 only once the listener acknowledges it.
    let v3_inform = |user: &str, auth: &str, privacy: &str, oid: &str| {
        let mut args = vec!["snmpinform", "-v", "3", "-u", user, "-l", "authPriv", "-a", "SHA", "-A", auth];
        args.extend(["-x", "AES", "-X", privacy, "-r", "0", "-t", "3", &trap_address, "", oid, reference, "s", psu]);
        send_trap(&args)
    };
    let (acknowledged, err) = v3_inform("monitorhsm", AUTH, PRIV, ".1.3.6.1.4.1.23629.1.5.2.2.4");
    assert!(acknowledged, "the SNMPv3 inform was acknowledged: {err}");

    // Junk: a wrong community, a v3 trap or inform with a wrong passphrase, a v3 trap from an unknown user, and
    // datagrams that are not SNMP (cut traps, random bytes).
    let (sent, _) =
        send_trap(&["snmptrap", "-v", "2c", "-c", "guess", &trap_address, "", ".1.3.6.1.4.1.23629.1.5.2.2.2"]);
    assert!(sent);
    assert!(v3("wrongPass123", "monitorhsm", ".1.3.6.1.4.1.23629.1.5.2.2.2").0);
    assert!(v3(AUTH, "stranger", ".1.3.6.1.4.1.23629.1.5.2.2.2").0);
    // An inform that does not authenticate, does not decrypt, or names an unknown user is refused, and the sender is
    // told why (RFC 3414's reports), as net-snmp's own agent would tell it.
    for (user, auth, privacy, said) in [
        ("monitorhsm", "wrongPass123", PRIV, "Authentication failure"),
        ("monitorhsm", AUTH, "wrongPriv123", "Decryption error"),
        ("stranger", AUTH, PRIV, "Unknown user name"),
    ] {
        let (acknowledged, err) = v3_inform(user, auth, privacy, ".1.3.6.1.4.1.23629.1.5.2.2.2");
        assert!(!acknowledged && err.contains(said), "{user}/{auth}/{privacy}: {err}");
    }
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let valid = b"\x30\x2c\x02\x01\x01\x04\x06public\xa7\x1f\x02\x01\x01\x02\x01\x00\x02\x01\x00\x30\x14\x30\x12\x06\x0a\x2b\x06\x01\x06\x03\x01\x01\x04\x01\x00\x06\x04\x2b\x06\x01\x04";
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut junk = 0;
    for cut in 0..valid.len() {
        socket.send_to(&valid[..cut], &trap_address).unwrap();
        junk += 1;
    }
    // Paced, so that the kernel's receive buffer never overflows: every datagram must reach the listener's count.
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..500 {
        let length = (seed % 200) as usize;
        let bytes: Vec<u8> = (0..length)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        socket.send_to(&bytes, &trap_address).unwrap();
        junk += 1;
        if junk % 50 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Still serving: another inform is acknowledged after all of it.
    let clear = "[hsm / messages / x / kernel / 0]";
    let (acknowledged, err) = v2c("snmpinform", "public", ".1.3.6.1.4.1.23629.1.5.2.2.7", clear);
    assert!(acknowledged, "{err}");

    wait_for("six trap events", || events(&db, "snmp.trap").len() >= 6).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let traps = events(&db, "snmp.trap");
    assert_eq!(traps.len(), 6, "{traps:#?}");
    let named = |name: &str| traps.iter().find(|e| e.get("snmp.trap.name").map(String::as_str) == Some(name)).cloned();
    let power = named("power").expect("the PSU trap");
    assert_eq!((power["event.outcome"].as_str(), power["host.name"].as_str()), ("failure", "127.0.0.1"));
    assert_eq!(power["snmp.trap.oid"], "1.3.6.1.4.1.23629.1.5.2.2.3");
    assert!(power["snmp.varbinds"].contains(psu), "{power:?}");
    assert_eq!(power["event.dataset"], "luna.snmp");
    assert_eq!(named("ntls").expect("the NTLS inform")["event.category"], "network");
    assert_eq!(named("cold_start").expect("the v1 coldStart")["snmp.trap.oid"], "1.3.6.1.6.3.1.1.5.1");
    assert_eq!(named("crypto").expect("the de-assert")["event.outcome"], "success");
    let disk = named("disk").expect("the SNMPv3 trap");
    assert!(disk["snmp.varbinds"].contains("smartd[12532] / 1]") && disk["event.outcome"] == "failure", "{disk:?}");
    let inform_v3 = traps.iter().find(|e| e["snmp.trap.oid"].ends_with(".2.2.4")).expect("the SNMPv3 inform");
    assert!(inform_v3["snmp.varbinds"].contains(psu), "{inform_v3:?}");
    // Every datagram that became no event is counted: the junk, the wrong community, the two refused v3 traps and the
    // three refused informs (their discovery probes are answered, not counted).
    let unparsed = metric(&server, "hsmwatch_lines_unparsed_total{transport=\"snmp-trap\"");
    assert_eq!(unparsed, Some(f64::from(junk + 6)));
    let _dir = server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_from_outside_the_allowlist_is_refused_and_counted() {
    std::env::set_var("HSMWATCH_TEST_TRAP_ALLOW_COMMUNITIES", "public");
    let yaml = "listen:\n  tcp: [{address: 127.0.0.1:0}]\n  snmp_traps:\n    address: 127.0.0.1:0\n    allow: [10.0.0.0/8]\n    communities_env: HSMWATCH_TEST_TRAP_ALLOW_COMMUNITIES\n";
    let listen = hsmwatch::config::Config::parse(yaml, Path::new("t.yaml")).unwrap().listen;
    let server = TestServer::start_with(64 * 1024, move |config| config.listen.snmp_traps = listen.snmp_traps).await;
    let trap_address = server.server.snmp_trap_address.unwrap().to_string();
    let mut args = vec!["snmptrap", "-v", "2c", "-c", "public", &trap_address, "", ".1.3.6.1.4.1.23629.1.5.2.2.2"];
    for _ in 0..3 {
        assert!(send_trap(&args).0);
    }
    // An inform from outside is not acknowledged either.
    args[0] = "snmpinform";
    args.splice(5..5, ["-r", "0", "-t", "1"]);
    assert!(!send_trap(&args).0, "no answer to a sender outside the allowlist");
    let refused = "hsmwatch_refused_not_allowed_total{transport=\"snmp-trap\"";
    wait_for("four refusals", || metric(&server, refused) == Some(4.0)).await;
    assert_eq!(metric(&server, "hsmwatch_lines_unparsed_total{transport=\"snmp-trap\""), Some(0.0));
    let db = server.db();
    assert!(events(&db, "snmp.trap").is_empty());
    let _dir = server.stop().await;
}

/// net-snmp's agent as an appliance that sends SNMPv3 informs (`trapsess -Ci`, as Luna's `sysconf snmp trap` sets
/// up): its coldStart at start, and an authenticationFailure for each request with a wrong community.
fn start_inform_sender(dir: &Path, trap_port: u16) -> (Child, u16) {
    require_program("snmpd");
    std::fs::create_dir_all(dir.join("persist")).unwrap();
    let port = free_port();
    let conf = format!(
        "agentaddress udp:127.0.0.1:{port}\n[snmp] persistentDir {}\nengineID hsmwatch-inform-sender\n\
         rocommunity public 127.0.0.1\nauthtrapenable 1\n\
         trapsess -v 3 -Ci -r 3 -t 2 -u monitorhsm -l authPriv -a SHA -A {AUTH} -x AES -X {PRIV} 127.0.0.1:{trap_port}\n",
        dir.join("persist").display()
    );
    std::fs::write(dir.join("snmpd.conf"), conf).unwrap();
    (spawn_snmpd(dir), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_lived_sender_s_v3_informs_are_acknowledged_across_a_restart_of_the_listener() {
    std::env::set_var("HSMWATCH_TEST_INFORM_AUTH", AUTH);
    std::env::set_var("HSMWATCH_TEST_INFORM_PRIV", PRIV);
    let dir = tempfile::tempdir().unwrap();
    let trap_port = free_port();
    let config = dir.path().join("hsmwatch.yaml");
    std::fs::write(
        &config,
        format!(
            "listen:\n  snmp_traps:\n    address: 127.0.0.1:{trap_port}\n    users:\n      - {{user: monitorhsm, auth: sha, \
             auth_passphrase_env: HSMWATCH_TEST_INFORM_AUTH, privacy: aes, priv_passphrase_env: HSMWATCH_TEST_INFORM_PRIV}}\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let serve = || ServeProcess::start_with_args(dir.path(), port, &["--config", config.to_str().unwrap()]);
    let server = serve();
    let db = server.db.clone();
    let oids = || -> Vec<String> { events(&db, "snmp.trap").iter().map(|e| e["snmp.trap.oid"].clone()).collect() };
    let sender_dir = dir.path().join("sender");
    let (mut sender, agent_port) = start_inform_sender(&sender_dir, trap_port);
    // The agent's coldStart inform: it discovers the listener's engine and is acknowledged.
    wait_for("the coldStart inform", || oids().iter().any(|o| o == "1.3.6.1.6.3.1.1.5.1")).await;

    // The listener restarts: it is the same engine, booted once more; the agent still holds its old boots and time,
    // is told the new ones (a notInTimeWindows report) and sends its next inform again.
    server.signal("TERM");
    let (_, said) = server.wait();
    assert!(said.contains("boots=1"), "{said}");
    let server = serve();
    let wrong_community = Command::new("snmpget")
        .args([
            "-m",
            "",
            "-v2c",
            "-c",
            "guess",
            "-t",
            "0.5",
            "-r",
            "0",
            &format!("127.0.0.1:{agent_port}"),
            ".1.3.6.1.2.1.1.3.0",
        ])
        .output()
        .expect("run snmpget");
    assert!(!wrong_community.status.success(), "the agent refuses the wrong community");
    wait_for("the authenticationFailure inform", || oids().iter().any(|o| o == "1.3.6.1.6.3.1.1.5.5")).await;
    // Acknowledged: the agent sends neither again (it would, up to three times, two seconds apart, if it were not).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut sent = oids();
    sent.sort();
    assert_eq!(sent, ["1.3.6.1.6.3.1.1.5.1", "1.3.6.1.6.3.1.1.5.5"], "each inform stored once");
    let _ = sender.kill();
    let _ = sender.wait();
    server.signal("TERM");
    let (_, said) = server.wait();
    assert!(said.contains("boots=2"), "{said}");
}
