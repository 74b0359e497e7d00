//! Alerts as things people work, over real HTTP, the real CLI and a real webhook receiver: an alert opens, later
//! firings join it, it is acknowledged (from the API, then the dashboard's forms with their CSRF token), its firings
//! stop notifying, it is resolved from the CLI, a new firing opens a new alert, and every change is recorded and sent
//! to the notifiers the alert went to, with a link to its page and the last event's fields. Headless Chromium renders
//! the triage queue and an alert's page (screenshots in the test's temp dir); resolve_after closes a quiet alert.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{chromium, send_tcp, start_receiver, TestServer};

const TOKEN: &str = "triage-token-0123456789abcdef";
const EXTERNAL: &str = "https://hsmwatch.example.net";

fn tamper(host: &str) -> String {
    format!("<6>Mar  7 02:14:09 {host} kernel: k7pf0: ALM0008: Hard tamper - enclosure penetration\n")
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

struct Http {
    base: String,
}

impl Http {
    fn new(server: &TestServer) -> Http {
        Http { base: format!("http://{}", server.server.http_address.unwrap()) }
    }

    async fn api(&self, path: &str) -> Value {
        let response = client().get(format!("{}{path}", self.base)).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        response.json().await.unwrap()
    }

    async fn post_api(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = client().post(format!("{}{path}", self.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    async fn page(&self, path: &str, cookie: &str) -> (u16, String) {
        let response = client().get(format!("{}{path}", self.base)).header("cookie", cookie).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Posts a dashboard form; the status and the Location it redirects to.
    async fn form(&self, path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> (u16, String) {
        let mut request = client().post(format!("{}{path}", self.base)).form(fields);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        let location = response.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        (response.status().as_u16(), location)
    }

    /// Signs in as `name`; the session cookie.
    async fn sign_in(&self, name: &str) -> String {
        let response = client()
            .post(format!("{}/login", self.base))
            .form(&[("token", TOKEN), ("name", name)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 303);
        response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
    }

    /// The open alert of `host`.
    async fn open_alert_of(&self, host: &str) -> Value {
        let open = self.api(&format!("/api/alerts?state=open&host={host}")).await;
        let alerts = open["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 1, "one open alert on {host}: {open}");
        alerts[0].clone()
    }
}

/// The form token on an alert's page.
fn csrf_of(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("a change form") + "name=\"csrf\" value=\"".len();
    page[start..].split('"').next().unwrap().to_owned()
}

fn actors(detail: &Value) -> Vec<(String, String)> {
    detail["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["change"].as_str().unwrap().to_owned(), c["actor"].as_str().unwrap().to_owned()))
        .collect()
}

fn pair(change: &str, actor: &str) -> (String, String) {
    (change.to_owned(), actor.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_is_acknowledged_held_resolved_and_reopened_from_the_api_the_dashboard_and_the_cli() {
    let (address, receiver) = start_receiver().await;
    std::env::set_var("HSMWATCH_TEST_TRIAGE_TOKEN", TOKEN);
    let yaml =
        format!("notifiers:\n  hook:\n    type: webhook\n    url: http://{address}/hook\n    retry_initial: 100ms\n");
    let notifiers = hsmwatch::config::Config::parse(&yaml, Path::new("t.yaml")).unwrap().notifiers;
    let server = TestServer::start_with(64 * 1024, move |config| {
        config.notifiers = notifiers;
        config.http.token_env = Some("HSMWATCH_TEST_TRIAGE_TOKEN".into());
        config.http.external_url = Some(format!("{EXTERNAL}/"));
    })
    .await;
    let http = Http::new(&server);
    let db = server.db();
    let db_arg = db.to_str().unwrap().to_owned();

    // Two tampers on one HSM are one alert with two firings; another HSM's tamper is an alert of its own.
    send_tcp(server.tcp, [tamper("hsm-a"), tamper("hsm-a"), tamper("hsm-b")].concat().as_bytes(), false).await;
    wait_until("three deliveries", || receiver.bodies().len() == 3).await;
    let a = http.open_alert_of("hsm-a").await;
    let b = http.open_alert_of("hsm-b").await;
    assert_eq!((a["state"].as_str(), a["firings"].as_i64()), (Some("firing"), Some(2)), "{a}");
    assert_ne!(a["id"], b["id"]);
    let a_id = a["id"].as_i64().unwrap();
    let b_id = b["id"].as_i64().unwrap();
    // Every notification links to its alert and carries the last event's fields.
    let first = &receiver.bodies()[0];
    assert_eq!(first["alert_id"], a_id, "{first}");
    assert_eq!(first["url"], format!("{EXTERNAL}/alerts/{a_id}"), "{first}");
    assert_eq!(first["event"]["host.name"], "hsm-a", "{first}");
    assert!(first["event"]["event.original"].as_str().unwrap().contains("ALM0008"), "{first}");

    // The API: the token is required, the change is recorded with who and why, and refused when it makes no sense.
    let ack = serde_json::json!({"note": "on my way to the rack", "by": "carol"});
    assert_eq!(http.post_api(&format!("/api/alerts/{a_id}/ack"), None, ack.clone()).await.0, 401);
    let (status, answer) = http.post_api(&format!("/api/alerts/{a_id}/ack"), Some(TOKEN), ack.clone()).await;
    assert_eq!(
        (status, answer["state"].as_str(), answer["notified"].clone()),
        (200, Some("acknowledged"), serde_json::json!(["hook"]))
    );
    let (status, answer) = http.post_api(&format!("/api/alerts/{a_id}/ack"), Some(TOKEN), ack.clone()).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(http.post_api("/api/alerts/999999/ack", Some(TOKEN), ack.clone()).await.0, 404);
    assert_eq!(http.post_api(&format!("/api/alerts/{a_id}/snooze"), Some(TOKEN), ack.clone()).await.0, 404);
    wait_until("the acknowledgement notice", || receiver.bodies().len() == 4).await;
    let notice = &receiver.bodies()[3];
    assert_eq!(notice["status"], "acknowledged", "{notice}");
    assert!(notice["title"].as_str().unwrap().starts_with("Acknowledged by carol: "), "{notice}");
    assert_eq!(notice["body"], "on my way to the rack");
    assert_eq!(notice["url"], format!("{EXTERNAL}/alerts/{a_id}"));

    // While acknowledged, a firing joins the alert and is recorded, not sent.
    send_tcp(server.tcp, tamper("hsm-a").as_bytes(), false).await;
    wait_until("the third firing", || {
        futures_lite_poll(http.api(&format!("/api/alerts/{a_id}")))["summary"]["firings"] == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.bodies().len(), 4, "nothing sent while acknowledged");
    let detail = http.api(&format!("/api/alerts/{a_id}")).await;
    assert_eq!(detail["alert"]["held_back"], "acknowledged by carol", "{detail}");

    // The CLI resolves it, by name and with a note; the notifiers hear of it.
    let (code, out, err) = crate::support::run(&[
        "alerts",
        "resolve",
        &a_id.to_string(),
        "--note",
        "cable reseated",
        "--by",
        "dave",
        "--db",
        &db_arg,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&format!("alert {a_id}: resolved by dave; notice queued for hook")), "{out}");
    let (code, _, err) = crate::support::run(&["alerts", "resolve", &a_id.to_string(), "--db", &db_arg]);
    assert_eq!(code, Some(1));
    assert!(err.contains(&format!("alert {a_id} is resolved; it cannot be resolved")), "{err}");
    wait_until("the resolution notice", || receiver.bodies().len() == 5).await;
    assert_eq!(receiver.bodies()[4]["status"], "resolved");
    let detail = http.api(&format!("/api/alerts/{a_id}")).await;
    assert_eq!(actors(&detail), [pair("acknowledged", "carol"), pair("resolved", "dave")]);
    assert_eq!(detail["changes"][1]["note"], "cable reseated");

    // A firing after the resolution opens a new alert, and notifies again.
    send_tcp(server.tcp, tamper("hsm-a").as_bytes(), false).await;
    wait_until("the new alert's delivery", || receiver.bodies().len() == 6).await;
    let reopened = http.open_alert_of("hsm-a").await;
    let reopened_id = reopened["id"].as_i64().unwrap();
    assert!(reopened_id > a_id, "{reopened}");
    assert_eq!(receiver.bodies()[5]["alert_id"], reopened_id);
    // The CLI acknowledges and unacknowledges too (several ids at once; one that does not exist fails the command).
    let reopened_arg = reopened_id.to_string();
    let (code, out, err) = crate::support::run(&["alerts", "ack", &reopened_arg, "--by", "frank", "--db", &db_arg]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&format!("alert {reopened_id}: acknowledged by frank")), "{out}");
    let (code, out, err) =
        crate::support::run(&["alerts", "unack", &reopened_arg, "999999", "--by", "frank", "--db", &db_arg]);
    assert_eq!(code, Some(1));
    assert!(out.contains(&format!("alert {reopened_id}: unacknowledged by frank")), "{out}");
    assert!(err.contains("no alert 999999"), "{err}");
    let detail = http.api(&format!("/api/alerts/{reopened_id}")).await;
    assert_eq!(detail["summary"]["state"], "firing");
    assert_eq!(actors(&detail), [pair("acknowledged", "frank"), pair("unacknowledged", "frank")]);

    // The dashboard: sign in with a name; the queue lists open alerts first and refreshes itself.
    let cookie = http.sign_in("erin").await;
    let (status, queue) = http.page("/alerts", &cookie).await;
    assert_eq!(status, 200);
    assert!(queue.contains("http-equiv=\"refresh\""), "{queue}");
    assert!(
        queue.contains(&format!("href=\"/alerts/{b_id}\""))
            && queue.contains(&format!("href=\"/alerts/{reopened_id}\""))
    );
    assert!(!queue.contains(&format!("href=\"/alerts/{a_id}\"")), "resolved alerts are not in the open queue");
    let (_, everything) = http.page("/alerts?state=all", &cookie).await;
    let (open_at, resolved_at) = (
        everything.find(&format!("/alerts/{b_id}\"")).unwrap(),
        everything.find(&format!("/alerts/{a_id}\"")).unwrap(),
    );
    assert!(open_at < resolved_at, "open alerts come first");
    assert!(everything.contains(" min ago") || everything.contains("just now"), "ages as people say them");

    // Its page has the forms; a form token from no session, another session, or none at all is refused.
    let (_, page) = http.page(&format!("/alerts/{b_id}"), &cookie).await;
    assert!(page.contains(&format!("action=\"/alerts/{b_id}/ack\"")), "{page}");
    let csrf = csrf_of(&page);
    let other = http.sign_in("mallory").await;
    let (_, other_page) = http.page(&format!("/alerts/{b_id}"), &other).await;
    assert_ne!(csrf_of(&other_page), csrf, "each session has its own form token");
    let path = format!("/alerts/{b_id}/ack");
    assert_eq!(http.form(&path, Some(&cookie), &[("csrf", "forged"), ("note", "x")]).await.0, 403);
    assert_eq!(http.form(&path, Some(&other), &[("csrf", &csrf), ("note", "x")]).await.0, 403);
    assert_eq!(http.form(&path, None, &[("csrf", &csrf), ("note", "x")]).await, (303, "/login".to_owned()));
    assert_eq!(http.api(&format!("/api/alerts/{b_id}")).await["summary"]["state"], "firing", "nothing changed yet");
    let done = http.form(&path, Some(&cookie), &[("csrf", &csrf), ("note", "checking the enclosure")]).await;
    assert_eq!(done, (303, format!("/alerts/{b_id}")));
    let (_, page) = http.page(&format!("/alerts/{b_id}"), &cookie).await;
    assert!(page.contains("acknowledged</span> by erin") && page.contains("checking the enclosure"), "{page}");
    let unack = http.form(&format!("/alerts/{b_id}/unack"), Some(&cookie), &[("csrf", &csrf), ("note", "")]).await;
    assert_eq!(unack.0, 303);
    let resolve =
        http.form(&format!("/alerts/{b_id}/resolve"), Some(&cookie), &[("csrf", &csrf), ("note", "done")]).await;
    assert_eq!(resolve.0, 303);
    let detail = http.api(&format!("/api/alerts/{b_id}")).await;
    assert_eq!(detail["summary"]["state"], "resolved");
    assert_eq!(
        actors(&detail),
        [pair("acknowledged", "erin"), pair("unacknowledged", "erin"), pair("resolved", "erin")]
    );
    // The CLI's list and show tell the same story.
    let (_, listed, _) = crate::support::run(&["alerts", "list", "--state", "resolved", "--db", &db_arg]);
    assert!(listed.contains("resolved") && listed.contains("luna.hsm.tamper"), "{listed}");
    let (_, shown, _) = crate::support::run(&["alerts", "show", &b_id.to_string(), "--db", &db_arg]);
    assert!(shown.contains("acknowledged by erin: checking the enclosure"), "{shown}");
    let _dir = server.stop().await;
}

/// Runs a future to completion from a synchronous closure (the wait loop's condition).
fn futures_lite_poll<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

/// A rules directory with the shipped decoders and one rule that closes its alerts after a second without firing.
fn quiet_rules(dir: &Path) -> PathBuf {
    crate::support::rules_dir_with(
        dir,
        "id: test.tamper\ntitle: Tamper\nseverity: high\nresolve_after: 1s\nselect:\n  t:\n    event.action: hsm.tamper\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_after_closes_an_alert_that_stopped_firing() {
    let dir = tempfile::tempdir().unwrap();
    let rules = quiet_rules(dir.path());
    let server = TestServer::start_with(64 * 1024, move |config| config.rules.dir = Some(rules)).await;
    let http = Http { base: format!("http://{}", server.server.http_address.unwrap()) };
    send_tcp(server.tcp, tamper("hsm-q").as_bytes(), false).await;
    let mut detail = Value::Null;
    wait_until("the alert resolved by time", || {
        let list = futures_lite_poll(http.api("/api/alerts?state=all"));
        let Some(id) = list["alerts"].as_array().and_then(|a| a.first()).map(|a| a["id"].clone()) else { return false };
        detail = futures_lite_poll(http.api(&format!("/api/alerts/{id}")));
        detail["summary"]["state"] == "resolved"
    })
    .await;
    assert_eq!(actors(&detail), [pair("resolved", "hsmwatch (resolve_after)")], "{detail}");
    assert_eq!(detail["changes"][0]["note"], "no firing for 1s");
    let _dir = server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_renders_the_queue_and_an_alert_with_its_forms() {
    // Loopback without a token: the pages open without signing in, and changes are still allowed.
    let server = TestServer::start().await;
    send_tcp(server.tcp, [tamper("hsm-c"), tamper("hsm-d")].concat().as_bytes(), false).await;
    let http = Http::new(&server);
    wait_until("two alerts", || futures_lite_poll(http.api("/api/alerts"))["alerts"].as_array().unwrap().len() == 2)
        .await;
    let id = http.open_alert_of("hsm-c").await["id"].as_i64().unwrap();
    // Without a token configured the API changes nothing (the dashboard's forms below still can, on loopback).
    let (status, answer) = http.post_api(&format!("/api/alerts/{id}/ack"), None, serde_json::json!({})).await;
    assert_eq!(status, 403, "{answer}");
    let dir = tempfile::tempdir().unwrap();
    for (name, path, expected) in [
        ("queue", "/alerts".to_owned(), vec!["hsm-c", "hsm-d", "luna.hsm.tamper", "firing"]),
        ("alert", format!("/alerts/{id}"), vec!["Acknowledge", "Resolve", "name=\"csrf\"", "History"]),
    ] {
        let target = format!("{}{path}", http.base);
        let profile = dir.path().join(format!("profile-{name}"));
        let screenshot = dir.path().join(format!("{name}.png"));
        let dom = chromium(&profile, &target, vec!["--dump-dom".into()]).await;
        let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
        for text in expected {
            assert!(dom.contains(text), "{name}: `{text}` renders: {dom}");
        }
        let options = vec![format!("--screenshot={}", screenshot.display()), "--window-size=1280,800".into()];
        let shot = chromium(&profile, &target, options).await;
        assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));
        let png = std::fs::read(&screenshot).expect("a screenshot was written");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{name}: {} bytes", png.len());
        if let Ok(keep) = std::env::var("HSMWATCH_KEEP_SCREENSHOTS") {
            std::fs::copy(&screenshot, Path::new(&keep).join(format!("{name}.png"))).unwrap();
        }
    }
    let _dir = server.stop().await;
}
