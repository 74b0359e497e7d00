//! Loopback load generator for the TCP → SQLite throughput figure: sends numbered RFC 5424 lines over several TCP
//! connections to a running `hsmwatch serve`, then watches the database until every line is committed.
//!
//! `cargo run --release --example loopback_sender -- --addr 127.0.0.1:5514 --db hsmwatch.db --messages 1000000`
//!
//! For several collectors (an HSM sending to each), `--also ADDR` sends the same lines to another server too, and
//! `--metrics HOST:PORT` (once per server) watches each server's `hsmwatch_events_stored_total` instead of a database
//! file: every line is stored once every server counts all it received.
//! The numbered lines carry the time the run started, as a live HSM's are newer than any history the collector holds.
//! `--file PATH` sends that file's lines instead (from the start again if it has fewer than `--messages`), such as a
//! fleet's traffic mix from `examples/history_lines.rs`.
//! Only loopback addresses are accepted; the run is bounded by `--messages` and `--timeout`.

#![allow(missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hsmwatch::store::{open_reader, query};
use tokio::io::AsyncWriteExt;

struct Args {
    addr: SocketAddr,
    also: Vec<SocketAddr>,
    metrics: Vec<SocketAddr>,
    db: PathBuf,
    messages: usize,
    connections: usize,
    octet_counting: bool,
    timeout: Duration,
    file: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        addr: "127.0.0.1:5514".parse().unwrap(),
        also: Vec::new(),
        metrics: Vec::new(),
        db: PathBuf::from("hsmwatch.db"),
        messages: 1_000_000,
        connections: 4,
        octet_counting: true,
        timeout: Duration::from_secs(300),
        file: None,
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let mut value = || words.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => args.addr = value().parse().expect("--addr IP:PORT"),
            "--also" => args.also.push(value().parse().expect("--also IP:PORT")),
            "--metrics" => args.metrics.push(value().parse().expect("--metrics IP:PORT")),
            "--db" => args.db = PathBuf::from(value()),
            "--messages" => args.messages = value().parse().expect("--messages N"),
            "--connections" => args.connections = value().parse().expect("--connections N"),
            "--framing" => args.octet_counting = value() == "octet",
            "--timeout" => args.timeout = Duration::from_secs(value().parse().expect("--timeout SECONDS")),
            "--file" => args.file = Some(PathBuf::from(value())),
            other => panic!("unknown option {other}"),
        }
    }
    let targets = std::iter::once(&args.addr).chain(&args.also).chain(&args.metrics);
    assert!(targets.into_iter().all(|a| a.ip().is_loopback()), "load tests only target loopback addresses");
    args
}

/// What is sent: numbered lines of one moment, or a file's lines.
enum Lines {
    Numbered { timestamp: String },
    File { path: PathBuf, lines: Vec<String> },
}

impl Lines {
    /// The file's lines, or numbered lines stamped now.
    fn of(file: Option<PathBuf>) -> Lines {
        let Some(path) = file else {
            return Lines::Numbered { timestamp: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string() };
        };
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        assert!(!lines.is_empty(), "{} has no lines", path.display());
        Lines::File { path, lines }
    }

    fn line(&self, n: usize) -> std::borrow::Cow<'_, str> {
        match self {
            Lines::Numbered { timestamp } => format!(
                "<174>1 {timestamp} hsm-{:02} lunash 4101 - - info : 0 : Command: hsm show seq:{n:08} : admin : 10.0.106.107/50114",
                n % 16
            )
            .into(),
            Lines::File { lines, .. } => lines[n % lines.len()].as_str().into(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Lines::Numbered { timestamp } => format!("numbered@{timestamp}"),
            Lines::File { path, .. } => path.display().to_string(),
        }
    }
}

async fn send(addr: SocketAddr, numbers: std::ops::Range<usize>, octet_counting: bool, lines: Arc<Lines>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut buf = Vec::with_capacity(256 * 1024);
    for n in numbers {
        let text = lines.line(n);
        if octet_counting {
            buf.extend_from_slice(format!("{} ", text.len()).as_bytes());
            buf.extend_from_slice(text.as_bytes());
        } else {
            buf.extend_from_slice(text.as_bytes());
            buf.push(b'\n');
        }
        if buf.len() > 200 * 1024 {
            stream.write_all(&buf).await.expect("write");
            buf.clear();
        }
    }
    stream.write_all(&buf).await.expect("write");
    stream.shutdown().await.expect("shutdown");
}

/// Events stored so far: the database's newest id, or the sum of the servers' stored counters.
async fn stored(pool: Option<&hsmwatch::store::Reader>, metrics: &[SocketAddr]) -> usize {
    match pool {
        // The newest id, not a count: a count scans a large table, and this runs every 10 ms.
        Some(pool) => query::newest_id(pool).await.expect("newest id") as usize,
        None => {
            let mut total = 0;
            for server in metrics {
                let text =
                    reqwest::get(format!("http://{server}/metrics")).await.expect("scrape").text().await.unwrap();
                let line = text.lines().find(|l| l.starts_with("hsmwatch_events_stored_total")).unwrap_or("x 0");
                total += line.rsplit(' ').next().and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
            }
            total
        }
    }
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let pool = match args.metrics.is_empty() {
        true => Some(open_reader(&args.db).await.expect("open the server's database")),
        false => None,
    };
    // Every server counts every line it received (a copy another stored too).
    let expected = args.messages * if pool.is_some() { 1 } else { args.metrics.len() };
    let before = stored(pool.as_ref(), &args.metrics).await;
    let lines = Arc::new(Lines::of(args.file.clone()));
    let started = Instant::now();
    let per = args.messages.div_ceil(args.connections);
    let mut senders = Vec::new();
    for addr in std::iter::once(args.addr).chain(args.also.iter().copied()) {
        for c in 0..args.connections {
            let range = (c * per).min(args.messages)..((c + 1) * per).min(args.messages);
            senders.push(tokio::spawn(send(addr, range, args.octet_counting, lines.clone())));
        }
    }
    for sender in senders {
        sender.await.expect("sender");
    }
    let sent = started.elapsed();
    let poll = if pool.is_some() { Duration::from_millis(10) } else { Duration::from_millis(50) };
    loop {
        let stored = stored(pool.as_ref(), &args.metrics).await - before;
        if stored >= expected {
            break;
        }
        assert!(started.elapsed() < args.timeout, "only {stored} of {expected} stored after {:?}", args.timeout);
        tokio::time::sleep(poll).await;
    }
    let stored = started.elapsed();
    println!(
        "messages={} servers={} connections={} framing={} lines={} sent_s={:.3} stored_s={:.3} stored_msgs_per_s={:.0}",
        args.messages,
        1 + args.also.len(),
        args.connections,
        if args.octet_counting { "octet" } else { "lf" },
        lines.describe(),
        sent.as_secs_f64(),
        stored.as_secs_f64(),
        args.messages as f64 / stored.as_secs_f64()
    );
}
