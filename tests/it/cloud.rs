//! The AWS CloudHSM inventory against moto's server (the stand-in for AWS), run by `tests/peers/moto_cloudhsm.py` on
//! a loopback port and seeded with what moto's API cannot make (HSMs, DEGRADED states, old and unfinished backups),
//! read by the real `hsmwatch serve` through AWS's SDK: two accounts reached by AssumeRole, two regions, pagination,
//! AccessDenied on one account while the other is read, throttling answered with backoff, changes becoming events and
//! alerts, a dark HSM joined against real syslog traffic, and a restart that repeats nothing.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, query_json, run, scrape, BIN};

/// The Python that has moto: `HSMWATCH_MOTO_PYTHON`, else the virtual environment `.ci/run` makes, else `python3`.
fn moto_python() -> String {
    if let Ok(python) = std::env::var("HSMWATCH_MOTO_PYTHON") {
        return python;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers/moto/bin/python3");
    match venv.exists() {
        true => venv.display().to_string(),
        false => "python3".to_owned(),
    }
}

/// moto's server with the seeder's commands, stopped (by its process) when dropped.
pub struct Moto {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let python = moto_python();
        let has_moto =
            Command::new(&python).args(["-c", "import moto, boto3"]).output().is_ok_and(|o| o.status.success());
        assert!(has_moto, "{python} has no moto: the tests need it (.ci/run installs moto[server] with pip)");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/moto_cloudhsm.py");
        let mut child = Command::new(&python)
            .arg(script)
            .arg("0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        stdout.read_line(&mut ready).unwrap();
        let port = ready.trim().strip_prefix("READY ").and_then(|p| p.parse().ok()).unwrap_or_else(|| {
            panic!("moto did not start: {ready:?}");
        });
        Moto { child, stdin, stdout, port }
    }

    /// Sends one command; its answer.
    pub fn send(&mut self, command: serde_json::Value) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        assert!(!answer.starts_with("error"), "moto: {command} -> {answer}");
        answer.trim().to_owned()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ONE: &str = "111111111111";
const TWO: &str = "222222222222";

fn cluster(account: &str, region: &str, id: &str, state: &str, hsms: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"op": "cluster", "account": account, "region": region, "id": id, "state": state, "hsms": hsms})
}

/// The real server as a child process, its stderr a pipe, AWS credentials in its environment (never in its config).
struct Serve {
    child: Child,
    http: String,
    tcp: String,
}

impl Serve {
    /// Starts the server on `addresses` (TCP, HTTP), or on free ports.
    fn start(dir: &Path, moto: &Moto, addresses: Option<(String, String)>) -> Serve {
        let (tcp, http) =
            addresses.unwrap_or_else(|| (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port())));
        let config = format!(
            "listen: {{tcp: [{{address: '{tcp}'}}]}}\nhttp: {{address: '{http}'}}\nstorage: {{path: {db}}}\n\
             inventory: {{silent_after: 5s}}\ncloud:\n  aws:\n    regions: [eu-west-1, us-east-1]\n    interval: 1s\n    \
             endpoint_url: http://127.0.0.1:{port}\n    accounts:\n      - {{role_arn: 'arn:aws:iam::{ONE}:role/hsmwatch-readonly', name: payments}}\n      \
             - {{role_arn: 'arn:aws:iam::{TWO}:role/hsmwatch-readonly', external_id: hsmwatch, regions: [us-east-1]}}\n",
            db = dir.join("cloud.db").display(),
            port = moto.port
        );
        std::fs::write(dir.join("hsmwatch.yaml"), config).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(dir.join("hsmwatch.yaml"))
            .current_dir(dir)
            .envs(aws_environment())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hsmwatch serve");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&tcp).is_err() || std::net::TcpStream::connect(&http).is_err() {
            assert!(Instant::now() < deadline, "hsmwatch serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Serve { child, http, tcp }
    }

    fn stop(mut self) -> String {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let mut stderr = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "hsmwatch serve: {status}\n{stderr}");
        stderr
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Dummy keys for moto, and nothing else of a developer's AWS set-up (profiles, instance metadata).
fn aws_environment() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "AKIDHSMWATCHTEST"),
        ("AWS_SECRET_ACCESS_KEY", "hsmwatch-test-secret"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/hsmwatch-test"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/hsmwatch-test"),
    ]
}

fn events(db: &Path, action: &str) -> Vec<crate::support::Fields> {
    query_json(db, &["--action", action])
}

async fn wait_for(what: &str, done: impl FnMut() -> bool) {
    crate::support::wait_until(what, Duration::from_secs(40), done).await
}

/// The states of the alerts of `rule`, from `alerts list --json`, with their titles.
fn alerts(db: &Path, rule: &str) -> Vec<(String, String)> {
    let (_, out, _) = run(&["alerts", "list", "--json", "--state", "all", "--db", db.to_str().unwrap()]);
    out.lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|a| a["rule_id"] == rule)
        .map(|a| {
            (a["state"].as_str().unwrap_or_default().to_owned(), a["title"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

fn has_alert(db: &Path, rule: &str, state: &str, title: &str) -> bool {
    alerts(db, rule).iter().any(|(s, t)| s == state && t.contains(title))
}

async fn get(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// Sends a line with util-linux `logger` over TCP from 127.0.0.1 (the ENI address seeded for hsm-heard234567): its
/// host.name is this machine's name.
fn log_line(tcp: &str) -> bool {
    let (host, port) = tcp.rsplit_once(':').unwrap();
    let status = Command::new("logger")
        .args(["-T", "-n", host, "-P", port, "--rfc5424", "-t", "lunash", "-p", "local5.info"])
        .arg("info : 0 : Command: hsm show : admin : 10.1.2.3/51234")
        .stderr(Stdio::null())
        .status()
        .expect("run logger");
    status.success()
}

/// The name `logger` puts in its lines.
fn this_host() -> String {
    let output = Command::new("hostname").output().expect("run hostname");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inventory_reads_two_accounts_and_turns_changes_into_events_and_alerts() {
    crate::support::require_program("logger");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    let me = this_host();
    let mut moto = Moto::start();
    // Account one, eu-west-1: healthy, two HSMs (one heard from 127.0.0.1, one never heard), a backup a day old.
    let mut healthy = cluster(
        ONE,
        "eu-west-1",
        "cluster-healthy2345",
        "ACTIVE",
        serde_json::json!([{"id": "hsm-heard234567", "ip": "127.0.0.1", "az": "eu-west-1a"},
                           {"id": "hsm-dark2345678", "ip": "10.0.2.17", "az": "eu-west-1b"}]),
    );
    healthy["backups"] = serde_json::json!([{"id": "backup-daily23456", "age_days": 1}]);
    healthy["source_backup"] = serde_json::json!("backup-oldprod2345");
    healthy["created_days_ago"] = serde_json::json!(10);
    moto.send(healthy.clone());
    // Account one, us-east-1: 30 clusters, more than one page of 25.
    moto.send(
        serde_json::json!({"op": "bulk", "accounts": [ONE], "regions": ["us-east-1"], "clusters": 30, "hsms": 0}),
    );
    // Account two, us-east-1: a DEGRADED cluster with a DEGRADED HSM, its newest READY backup 12 days old, one being
    // made, created 120 days ago and never restored.
    let mut degraded = cluster(
        TWO,
        "us-east-1",
        "cluster-degraded234",
        "DEGRADED",
        serde_json::json!([{"id": "hsm-sick23456789", "ip": "10.1.2.10", "az": "us-east-1b", "state": "DEGRADED"}]),
    );
    degraded["backups"] = serde_json::json!([{"id": "backup-stale23456", "age_days": 12},
                                             {"id": "backup-making2345", "state": "CREATE_IN_PROGRESS"}]);
    degraded["created_days_ago"] = serde_json::json!(120);
    moto.send(degraded.clone());
    let server = Serve::start(dir.path(), &moto, None);
    // This host logs twice a second from 127.0.0.1 (the ENI address of hsm-heard234567) while the test runs.
    let talking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let talker = {
        let (talking, tcp) = (talking.clone(), server.tcp.clone());
        std::thread::spawn(move || {
            // While the server restarts, a line or two cannot be sent: the HSM is heard again a moment later.
            while talking.load(std::sync::atomic::Ordering::Relaxed) {
                log_line(&tcp);
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };

    // What is wrong already is told at the first read: the DEGRADED cluster and HSM; overdue backup and restore.
    wait_for("the degraded cluster", || !events(&db, "cloud.cluster_state").is_empty()).await;
    let state = &events(&db, "cloud.cluster_state")[0];
    assert_eq!(state["aws.cloudhsm.cluster_id"], "cluster-degraded234");
    assert_eq!((state["cloud.account.id"].as_str(), state["cloud.region"].as_str()), (TWO, "us-east-1"));
    assert_eq!((state["event.dataset"].as_str(), state["event.outcome"].as_str()), ("aws.cloudhsm", "failure"));
    assert_eq!(state["event.original"], format!("aws {TWO} us-east-1 cluster cluster-degraded234 DEGRADED"));
    let hsm = &events(&db, "cloud.hsm_state")[0];
    assert_eq!((hsm["aws.cloudhsm.hsm_id"].as_str(), hsm["host.ip"].as_str()), ("hsm-sick23456789", "10.1.2.10"));
    assert_eq!(hsm["cloud.availability_zone"], "us-east-1b");
    wait_for("the degraded alerts", || {
        has_alert(&db, "cloud.cluster.degraded", "firing", "cluster-degraded234 (222222222222 us-east-1) is DEGRADED")
            && has_alert(&db, "cloud.hsm.degraded", "firing", "hsm-sick23456789")
    })
    .await;
    wait_for("the overdue backup and restore", || {
        has_alert(&db, "cloud.backup.overdue", "firing", "no backup of cluster cluster-degraded234")
            && has_alert(&db, "cloud.restore.overdue", "firing", "no restore of cluster cluster-degraded234")
    })
    .await;
    assert!(!alerts(&db, "cloud.restore.overdue").iter().any(|(_, t)| t.contains("cluster-healthy2345")));
    // The HSM never heard from is dark once it has been listed for silent_after; the one heard from 127.0.0.1 is not.
    wait_for("the dark HSM", || has_alert(&db, "cloud.hsm.dark", "firing", "hsm hsm-dark2345678 never heard from"))
        .await;
    assert!(!events(&db, "cloud.hsm_silent").iter().any(|e| e["aws.cloudhsm.hsm_id"] == "hsm-heard234567"));

    // Every page was read: 30 clusters in us-east-1 of account one, each account only its own.
    let inventory: serde_json::Value =
        serde_json::from_str(&get(&format!("http://{}/api/cloud", server.http)).await).unwrap();
    let regions = inventory["regions"].as_array().unwrap();
    let region = |account: &str, name: &str| {
        regions.iter().find(|r| r["account"] == account && r["region"] == name).unwrap_or_else(|| panic!("{inventory}"))
    };
    assert_eq!(region(ONE, "us-east-1")["clusters"].as_array().unwrap().len(), 30);
    assert_eq!(region(TWO, "us-east-1")["clusters"].as_array().unwrap().len(), 1);
    let healthy_view = &region(ONE, "eu-west-1")["clusters"][0];
    assert_eq!(healthy_view["last_backup"]["id"], "backup-daily23456");
    assert_eq!(healthy_view["restored_from"], "backup-oldprod2345");
    assert_eq!(healthy_view["hsms"][0]["host"], me.as_str(), "joined by its ENI address");
    assert_eq!(region(TWO, "us-east-1")["clusters"][0]["backups_in_progress"][0]["id"], "backup-making2345");

    // AccessDenied on account two: one event, account one still read; allowed again, it recovers.
    moto.send(serde_json::json!({"op": "deny", "account": TWO}));
    wait_for("the unreadable account", || {
        events(&db, "cloud.inventory").iter().any(|e| e["event.outcome"] == "failure")
    })
    .await;
    let failure = events(&db, "cloud.inventory").into_iter().find(|e| e["event.outcome"] == "failure").unwrap();
    assert_eq!(failure["cloud.account.id"], TWO);
    assert!(failure["error.message"].contains("AccessDenied"), "{failure:?}");
    let reads_of_one = || {
        let metrics = scrape(&server.http);
        metric(
            &metrics,
            &format!("hsmwatch_cloud_reads_total{{account=\"{ONE}\",region=\"eu-west-1\",outcome=\"success\"}}"),
        )
    };
    let before = reads_of_one();
    wait_for("account one read meanwhile", || reads_of_one() >= before + 2.0).await;
    // Throttled calls are retried with backoff: no failure is told, and moto answered the throttles.
    moto.send(serde_json::json!({"op": "throttle", "count": 3}));
    moto.send(serde_json::json!({"op": "allow", "account": TWO}));
    wait_for("the recovery", || events(&db, "cloud.inventory").iter().any(|e| e["event.outcome"] == "success")).await;
    let stats: serde_json::Value = serde_json::from_str(&moto.send(serde_json::json!({"op": "stats"}))).unwrap();
    assert_eq!(stats["throttled"], 3, "{stats}");
    assert!(stats["denied"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(
        events(&db, "cloud.inventory").len(),
        2,
        "one failure, one recovery: {:#?}",
        events(&db, "cloud.inventory")
    );

    // Changes: the healthy cluster degrades, an HSM is added and one removed, the backup being made is READY.
    healthy["state"] = serde_json::json!("DEGRADED");
    healthy["hsms"] = serde_json::json!([{"id": "hsm-heard234567", "ip": "127.0.0.1", "az": "eu-west-1a"},
                                         {"id": "hsm-new23456789", "ip": "10.0.3.17", "az": "eu-west-1c"}]);
    moto.send(healthy);
    degraded["state"] = serde_json::json!("ACTIVE");
    degraded["backups"] = serde_json::json!([{"id": "backup-stale23456", "age_days": 12},
                                             {"id": "backup-making2345", "age_days": 0}]);
    moto.send(degraded);
    wait_for("the changes", || {
        events(&db, "cloud.hsm_added").len() == 1
            && events(&db, "cloud.hsm_removed").len() == 1
            && events(&db, "cloud.backup").len() == 1
            && events(&db, "cloud.cluster_state").len() == 3
    })
    .await;
    let change = events(&db, "cloud.cluster_state")
        .into_iter()
        .find(|e| e["aws.cloudhsm.cluster_id"] == "cluster-healthy2345")
        .unwrap();
    assert_eq!((change["previous.value"].as_str(), change["current.value"].as_str()), ("ACTIVE", "DEGRADED"));
    assert_eq!(events(&db, "cloud.hsm_added")[0]["aws.cloudhsm.hsm_id"], "hsm-new23456789");
    assert_eq!(events(&db, "cloud.hsm_removed")[0]["aws.cloudhsm.hsm_id"], "hsm-dark2345678");
    let backup = &events(&db, "cloud.backup")[0];
    assert_eq!(
        (backup["aws.cloudhsm.backup_id"].as_str(), backup["event.outcome"].as_str()),
        ("backup-making2345", "success")
    );
    // The degraded cluster is ACTIVE again and has a fresh backup: both alerts resolve; the removed HSM's darkness too.
    wait_for("the resolutions", || {
        has_alert(&db, "cloud.cluster.degraded", "resolved", "cluster-degraded234")
            && has_alert(&db, "cloud.backup.overdue", "resolved", "cluster-degraded234")
    })
    .await;

    // The operator's views: `hsmwatch cloud`, `hosts` and the dashboard.
    let (code, out, err) = run(&["cloud", "--db", db.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    for expected in [
        &format!("account {ONE} (payments)  region eu-west-1"),
        "cluster cluster-healthy2345  DEGRADED  hsm2m.medium FIPS  HSMs 2  last backup backup-daily23456",
        "last restore created from backup-oldprod2345",
        &format!("hsm hsm-heard234567  ACTIVE  127.0.0.1  eu-west-1a  host {me}"),
        "hsm hsm-new23456789  ACTIVE  10.0.3.17  eu-west-1c",
    ] {
        assert!(out.contains(expected), "`{expected}` in:\n{out}");
    }
    let (_, hosts, _) = run(&["hosts", "--db", db.to_str().unwrap()]);
    let row = hosts.lines().find(|l| l.starts_with(&me)).unwrap_or_else(|| panic!("{hosts}"));
    assert!(row.contains("hsm-heard234567 ACTIVE cluster-healthy2345 eu-west-1"), "{row}");
    let dark_row = hosts.lines().find(|l| l.starts_with("hsm-new23456789")).unwrap_or_else(|| panic!("{hosts}"));
    assert!(dark_row.contains("never SILENT"), "a listed HSM never heard is in the inventory: {dark_row}");
    let api: serde_json::Value =
        serde_json::from_str(&get(&format!("http://{}/api/hosts", server.http)).await).unwrap();
    let heard = api["hosts"].as_array().unwrap().iter().find(|h| h["name"] == me.as_str()).unwrap();
    assert_eq!(
        (heard["cloud"]["id"].as_str(), heard["cloud"]["cluster"].as_str()),
        (Some("hsm-heard234567"), Some("cluster-healthy2345"))
    );
    let host_page = get(&format!("http://{}/hosts/{me}", server.http)).await;
    assert!(host_page.contains("AWS CloudHSM") && host_page.contains("hsm-heard234567"), "{host_page}");
    let page = get(&format!("http://{}/cloud", server.http)).await;
    assert!(page.contains("cluster-healthy2345") && page.contains("backup-making2345") && page.contains(&me));
    let metrics = get(&format!("http://{}/metrics", server.http)).await;
    assert_eq!(
        metric(
            &metrics,
            &format!("hsmwatch_cloud_clusters{{account=\"{ONE}\",region=\"us-east-1\",state=\"ACTIVE\"}}")
        ),
        30.0
    );
    assert!(metric(&metrics, &format!("hsmwatch_cloud_newest_backup_age_seconds{{account=\"{ONE}\",region=\"eu-west-1\",cluster=\"cluster-healthy2345\"}}")) > 86_000.0);
    // The HSM added a moment ago goes dark too, once listed for silent_after: the last new fact before the restart.
    wait_for("the new HSM dark", || has_alert(&db, "cloud.hsm.dark", "firing", "hsm hsm-new23456789")).await;
    let cloud_events = || query_json(&db, &[]).into_iter().filter(|e| e["event.dataset"] == "aws.cloudhsm").count();
    let count = cloud_events();
    let addresses = (server.tcp.clone(), server.http.clone());
    let stderr = server.stop();
    assert!(!stderr.contains("hsmwatch-test-secret"), "the credentials never reach the log: {stderr}");

    // A restart knows what it knew: several reads later, no cloud event repeats (the heard HSM is still heard).
    let server = Serve::start(dir.path(), &moto, Some(addresses));
    let reads = || {
        let metrics = scrape(&server.http);
        metric(
            &metrics,
            &format!("hsmwatch_cloud_reads_total{{account=\"{TWO}\",region=\"us-east-1\",outcome=\"success\"}}"),
        )
    };
    wait_for("three reads after the restart", || reads() >= 3.0).await;
    assert_eq!(cloud_events(), count, "{:#?}", query_json(&db, &["--since", "1m"]));
    talking.store(false, std::sync::atomic::Ordering::Relaxed);
    talker.join().unwrap();
    server.stop();
}

/// A sample's value, 0 when absent (a counter not yet counted).
fn metric(text: &str, name: &str) -> f64 {
    crate::support::metric_value(text, name).unwrap_or(0.0)
}

#[test]
fn cloud_read_names_each_failure_and_reads_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut moto = Moto::start();
    for region in ["eu-west-1", "us-east-1", "eu-central-1"] {
        moto.send(cluster(ONE, region, "cluster-readnow2345", "ACTIVE", serde_json::json!([])));
    }
    moto.send(serde_json::json!({"op": "deny", "account": TWO}));
    // Account one: eu-west-1 answers broken JSON, us-east-1 answers too late (every attempt); eu-central-1 is read.
    moto.send(serde_json::json!({"op": "malformed", "region": "eu-west-1", "count": 1}));
    moto.send(serde_json::json!({"op": "stall", "region": "us-east-1", "seconds": 3}));
    let config = dir.path().join("hsmwatch.yaml");
    let yaml = format!(
        "cloud:\n  aws:\n    regions: [eu-west-1, us-east-1, eu-central-1]\n    timeout: 1s\n    endpoint_url: http://127.0.0.1:{}\n    accounts:\n      - role_arn: 'arn:aws:iam::{ONE}:role/ro'\n      - role_arn: 'arn:aws:iam::{TWO}:role/ro'\n",
        moto.port
    );
    std::fs::write(&config, yaml).unwrap();
    let output =
        Command::new(BIN).args(["cloud", "--read", "--config"]).arg(&config).envs(aws_environment()).output().unwrap();
    let (out, err) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{out}\n{err}");
    let line = |account: &str, region: &str| {
        let start = format!("account {account}  region {region}  ");
        out.lines().find(|l| l.starts_with(&start)).unwrap_or_else(|| panic!("{start} in:\n{out}")).to_owned()
    };
    assert!(
        line(ONE, "eu-west-1").contains("FAILING") && line(ONE, "eu-west-1").contains("malformed answer: "),
        "{out}"
    );
    assert!(line(ONE, "us-east-1").contains("FAILING") && line(ONE, "us-east-1").contains("timeout: "), "{out}");
    assert!(line(ONE, "eu-central-1").contains("read"), "{out}");
    assert_eq!(out.matches("cluster cluster-readnow2345  ACTIVE").count(), 1, "{out}");
    for region in ["eu-west-1", "us-east-1", "eu-central-1"] {
        assert!(line(TWO, region).contains("FAILING") && line(TWO, region).contains("AccessDenied"), "{out}");
    }
    assert!(err.contains("5 of 6 account regions could not be read"), "{err}");
    // Without a cloud section, --read says what is missing.
    std::fs::write(&config, "storage: {path: x.db}\n").unwrap();
    let (code, _, err) = run(&["cloud", "--read", "--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--read needs a --config with a cloud.aws section"), "{err}");
}
