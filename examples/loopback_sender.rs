//! Loopback load generator for the TCP → SQLite throughput figure: sends numbered RFC 5424 lines over several TCP
//! connections to a running `hsmwatch serve`, then watches the database until every line is committed.
//!
//! `cargo run --release --example loopback_sender -- --addr 127.0.0.1:5514 --db hsmwatch.db --messages 1000000`
//! Only loopback addresses are accepted; the run is bounded by `--messages` and `--timeout`.

#![allow(missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hsmwatch::store::{open_reader, query};
use tokio::io::AsyncWriteExt;

struct Args {
    addr: SocketAddr,
    db: PathBuf,
    messages: usize,
    connections: usize,
    octet_counting: bool,
    timeout: Duration,
}

fn parse_args() -> Args {
    let mut args = Args {
        addr: "127.0.0.1:5514".parse().unwrap(),
        db: PathBuf::from("hsmwatch.db"),
        messages: 1_000_000,
        connections: 4,
        octet_counting: true,
        timeout: Duration::from_secs(300),
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let mut value = || words.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => args.addr = value().parse().expect("--addr IP:PORT"),
            "--db" => args.db = PathBuf::from(value()),
            "--messages" => args.messages = value().parse().expect("--messages N"),
            "--connections" => args.connections = value().parse().expect("--connections N"),
            "--framing" => args.octet_counting = value() == "octet",
            "--timeout" => args.timeout = Duration::from_secs(value().parse().expect("--timeout SECONDS")),
            other => panic!("unknown option {other}"),
        }
    }
    assert!(args.addr.ip().is_loopback(), "load tests only target loopback addresses");
    args
}

fn line(n: usize) -> String {
    format!(
        "<174>1 2026-03-01T12:00:00.000Z hsm-{:02} lunash 4101 - - info : 0 : Command: hsm show seq:{n:08} : admin : 10.0.106.107/50114",
        n % 16
    )
}

async fn send(addr: SocketAddr, numbers: std::ops::Range<usize>, octet_counting: bool) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut buf = Vec::with_capacity(256 * 1024);
    for n in numbers {
        let text = line(n);
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

#[tokio::main]
async fn main() {
    let args = parse_args();
    let pool = open_reader(&args.db).await.expect("open the server's database");
    // The newest id, not a count: a count scans a large table, and this runs every 10 ms.
    let before = query::newest_id(&pool).await.expect("newest id") as usize;
    let started = Instant::now();
    let per = args.messages.div_ceil(args.connections);
    let mut senders = Vec::new();
    for c in 0..args.connections {
        let range = (c * per).min(args.messages)..((c + 1) * per).min(args.messages);
        senders.push(tokio::spawn(send(args.addr, range, args.octet_counting)));
    }
    for sender in senders {
        sender.await.expect("sender");
    }
    let sent = started.elapsed();
    loop {
        let stored = query::newest_id(&pool).await.expect("newest id") as usize - before;
        if stored >= args.messages {
            break;
        }
        assert!(started.elapsed() < args.timeout, "only {stored} of {} stored after {:?}", args.messages, args.timeout);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stored = started.elapsed();
    println!(
        "messages={} connections={} framing={} sent_s={:.3} stored_s={:.3} stored_msgs_per_s={:.0}",
        args.messages,
        args.connections,
        if args.octet_counting { "octet" } else { "lf" },
        sent.as_secs_f64(),
        stored.as_secs_f64(),
        args.messages as f64 / stored.as_secs_f64()
    );
}
