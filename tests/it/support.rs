//! Test support: a real server (in-process on port 0, or the real binary), real sockets, and `hsmwatch query --json`
//! to read back what was stored.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hsmwatch::app::Server;
use hsmwatch::config::{ByteSize, Config, TcpListenerConfig, UdpListenerConfig};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

/// The hsmwatch binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_hsmwatch");

/// One stored event as `query --json` prints it.
pub type Fields = BTreeMap<String, String>;

/// A server running inside the test process, with its own temporary database.
pub struct TestServer {
    pub server: Server,
    pub tcp: SocketAddr,
    pub udp: SocketAddr,
    pub dir: TempDir,
}

impl TestServer {
    /// Starts a server on 127.0.0.1 port 0 (UDP and TCP) with a temp db and `max_frame`.
    pub async fn start_with_max_frame(max_frame: u64) -> TestServer {
        Self::start_with(max_frame, |_| {}).await
    }

    /// Starts a server as [`TestServer::start_with_max_frame`] does, after `adjust` changed its config.
    pub async fn start_with(max_frame: u64, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        config.listen.tcp = vec![TcpListenerConfig { max_frame: ByteSize(max_frame), ..TcpListenerConfig::on(any) }];
        config.listen.udp = vec![UdpListenerConfig {
            recv_buffer: ByteSize(1 << 20),
            max_frame: ByteSize(max_frame),
            ..UdpListenerConfig::on(any)
        }];
        config.storage.path = dir.path().join("events.db");
        config.http.address = Some(any);
        adjust(&mut config);
        let server = Server::start(&config).await.expect("server starts");
        let (tcp, udp) = (server.tcp_addresses[0], server.udp_addresses[0]);
        TestServer { server, tcp, udp, dir }
    }

    /// Starts a server with the default 64 KiB maximum frame.
    pub async fn start() -> TestServer {
        Self::start_with_max_frame(64 * 1024).await
    }

    /// The database file of this server.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("events.db")
    }

    /// Stops the server (drain, flush, close) and returns every stored event, newest first.
    pub async fn stop_and_query(self) -> Vec<Fields> {
        self.server.stop().await.expect("server stops cleanly");
        query_json(&self.dir.path().join("events.db"), &[])
    }

    /// Stops the server and returns its temp dir, to run more CLI commands on the db.
    pub async fn stop(self) -> TempDir {
        self.server.stop().await.expect("server stops cleanly");
        self.dir
    }
}

/// Sends `bytes` on one TCP connection, optionally one byte per write, then closes it.
pub async fn send_tcp(address: SocketAddr, bytes: &[u8], byte_by_byte: bool) {
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    if byte_by_byte {
        for byte in bytes {
            stream.write_all(std::slice::from_ref(byte)).await.expect("write");
            stream.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
    } else {
        stream.write_all(bytes).await.expect("write");
    }
    stream.shutdown().await.expect("shutdown");
}

/// Sends each datagram to `address`.
pub fn send_udp(address: SocketAddr, datagrams: &[&[u8]]) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for datagram in datagrams {
        socket.send_to(datagram, address).expect("send");
    }
}

/// Runs `hsmwatch query --db DB --json --limit 100000 ARGS`, returning the events.
pub fn query_json(db: &Path, args: &[&str]) -> Vec<Fields> {
    let output = Command::new(BIN)
        .args(["query", "--json", "--limit", "100000", "--db"])
        .arg(db)
        .args(args)
        .output()
        .expect("run hsmwatch query");
    assert!(output.status.success(), "query failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .expect("query output is UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line}: {e}")))
        .collect()
}

/// The one event whose `event.original` equals `original`.
pub fn find<'a>(events: &'a [Fields], original: &str) -> &'a Fields {
    let matching: Vec<_> =
        events.iter().filter(|e| e.get("event.original").map(String::as_str) == Some(original)).collect();
    assert_eq!(matching.len(), 1, "expected one event with original {original:?} in {events:#?}");
    matching[0]
}

/// Checks `expected` against the event: a value must be equal, `None` must be absent.
pub fn assert_fields(event: &Fields, expected: &[(&str, Option<&str>)]) {
    for (name, value) in expected {
        assert_eq!(event.get(*name).map(String::as_str), *value, "field {name} of {event:#?}");
    }
}

/// A loopback port that was free a moment ago (for the real binary, which is given addresses on its command line).
pub fn free_port() -> u16 {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    // The same number must be free for UDP as well.
    UdpSocket::bind(("127.0.0.1", port)).map(|_| port).unwrap_or_else(|_| free_port())
}

/// The real `hsmwatch serve` process, on TCP and UDP `port`, with its database in `dir`.
pub struct ServeProcess {
    pub child: Child,
    pub port: u16,
    pub db: PathBuf,
}

impl ServeProcess {
    /// Starts `hsmwatch serve` and waits until its TCP port accepts connections.
    pub fn start(dir: &Path) -> ServeProcess {
        Self::start_on(dir, free_port())
    }

    /// Starts `hsmwatch serve` on a given port (to restart a server where it was).
    pub fn start_on(dir: &Path, port: u16) -> ServeProcess {
        Self::start_with_args(dir, port, &[])
    }

    /// Starts `hsmwatch serve` on `port` with more arguments (which override the defaults here, `--http` too).
    pub fn start_with_args(dir: &Path, port: u16, extra: &[&str]) -> ServeProcess {
        let address = format!("127.0.0.1:{port}");
        let mut args = vec!["--tcp", &address, "--udp", &address];
        args.extend(extra);
        // The HTTP server is bound last: a test that scrapes it waits for it too (when it named a port).
        let http = extra.iter().position(|arg| *arg == "--http").and_then(|i| extra.get(i + 1));
        let http = http.filter(|address| !address.ends_with(":0"));
        Self::spawn(dir, port, &args).listening(std::iter::once(address.clone()).chain(http.map(|a| a.to_string())))
    }

    /// Starts `hsmwatch serve --config` with `config` (YAML, written to `dir/hsmwatch.yaml`), whose database is
    /// `dir/serve.db`, and waits until each TCP port in `listening` accepts connections; `port` is the first.
    pub fn start_with_config(dir: &Path, config: &str, listening: &[u16]) -> ServeProcess {
        let path = dir.join("hsmwatch.yaml");
        std::fs::write(&path, config).unwrap();
        let server = Self::spawn(dir, listening[0], &["--config", path.to_str().unwrap()]);
        server.listening(listening.iter().map(|port| format!("127.0.0.1:{port}")))
    }

    /// `hsmwatch serve --http 127.0.0.1:0 --db DIR/serve.db ARGS`, started.
    fn spawn(dir: &Path, port: u16, args: &[&str]) -> ServeProcess {
        let db = dir.join("serve.db");
        let child = Command::new(BIN)
            .args(["serve", "--http", "127.0.0.1:0", "--db"])
            .arg(&db)
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hsmwatch serve");
        ServeProcess { child, port, db }
    }

    /// The server once each of `addresses` accepts TCP connections (20 s at most; a server that exits fails the test
    /// with its log).
    fn listening(mut self, addresses: impl Iterator<Item = String>) -> ServeProcess {
        let deadline = Instant::now() + Duration::from_secs(20);
        for address in addresses {
            while std::net::TcpStream::connect(&address).is_err() {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("hsmwatch serve exited ({status}): {}", stderr_of(&mut self.child));
                }
                assert!(Instant::now() < deadline, "hsmwatch serve did not start listening on {address}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self
    }

    /// Sends `signal` (TERM, INT, KILL) to the process.
    pub fn signal(&self, signal: &str) {
        let status =
            Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit and returns its exit code and stderr.
    pub fn wait(mut self) -> (Option<i32>, String) {
        let mut stderr = Vec::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            std::io::Read::read_to_end(&mut pipe, &mut stderr).expect("read hsmwatch's stderr");
        }
        let status = self.child.wait().expect("wait for hsmwatch");
        (status.code(), String::from_utf8_lossy(&stderr).into_owned())
    }
}

/// What `child` wrote to its piped stderr until it closed (the child has exited or been killed).
pub fn stderr_of(child: &mut Child) -> String {
    let mut said = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut said);
    }
    said
}

impl Drop for ServeProcess {
    /// A test that fails before it stops its server leaves none behind, and shows what the server said: a server that
    /// died (a port taken between `free_port` and its bind, a crash) is then told apart from one that misbehaved.
    fn drop(&mut self) {
        let exited = matches!(self.child.try_wait(), Ok(Some(_)));
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let said = stderr_of(&mut self.child);
            let tail: Vec<&str> = said.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
            let how = if exited { "had exited" } else { "was still running" };
            eprintln!("hsmwatch serve {how} when the test failed; the end of its log:\n{}", tail.join("\n"));
        }
    }
}

/// Runs `hsmwatch ARGS` to completion: exit code, stdout, stderr.
pub fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(BIN).args(args).output().expect("run hsmwatch");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The output of the `sqlite3` shell running `sql` on `db` (trimmed); the test fails when it fails.
pub fn sqlite3(db: &Path, sql: &str) -> String {
    require_program("sqlite3");
    let output = std::process::Command::new("sqlite3").arg(db).arg(sql).output().expect("run sqlite3");
    assert!(output.status.success(), "sqlite3 {sql}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Fails loudly when a program the tests need is not installed (`.ci/run` installs it).
pub fn require_program(name: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(found, "{name} is not installed: the tests need it (.ci/run installs it with apt-get)");
}

/// Headless Chromium on `url`, with its profile in `profile` and `extra` options (`--dump-dom`, `--screenshot=F`).
pub async fn chromium(profile: &Path, url: &str, extra: Vec<String>) -> std::process::Output {
    require_program("chromium");
    let (profile, url) = (profile.to_owned(), url.to_owned());
    tokio::task::spawn_blocking(move || {
        Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(url)
            .output()
            .expect("run chromium")
    })
    .await
    .unwrap()
}

/// A rules directory in `dir` with the shipped decoders and `rule` as its one rule file.
pub fn rules_dir_with(dir: &Path, rule: &str) -> PathBuf {
    let rules = dir.join("rules");
    let decoders = rules.join("decoders");
    std::fs::create_dir_all(&decoders).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/decoders");
    for entry in std::fs::read_dir(shipped).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, decoders.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(rules.join("rule.yaml"), rule).unwrap();
    rules
}

/// Polls `done` until it holds, failing the test after `timeout` with what it waited for.
pub async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET /metrics` of the server at `http` (`host:port`), with a plain HTTP/1.0 request, so that sync closures can poll it.
pub fn scrape(http: &str) -> String {
    let mut stream = std::net::TcpStream::connect(http).unwrap();
    std::io::Write::write_all(&mut stream, b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).unwrap();
    text
}

/// The value of the first sample of Prometheus text that starts with `name` (labels included).
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

/// A webhook receiver that answers 200 and keeps every JSON body.
#[derive(Clone, Default)]
pub struct Receiver(std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>);

impl Receiver {
    /// The bodies received so far.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.0.lock().unwrap().clone()
    }
}

async fn receive(axum::extract::State(receiver): axum::extract::State<Receiver>, body: String) -> &'static str {
    receiver.0.lock().unwrap().push(serde_json::from_str(&body).unwrap_or(serde_json::Value::Null));
    "ok"
}

/// A [`Receiver`] on a loopback port: POST `/hook`.
pub async fn start_receiver() -> (std::net::SocketAddr, Receiver) {
    let receiver = Receiver::default();
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, receiver)
}
