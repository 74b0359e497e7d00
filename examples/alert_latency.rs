//! Alert latency: from a line leaving a TCP sender to its alert reaching a webhook receiver, p50 / p99 / max, at idle
//! and under background traffic. Runs an hsmwatch server in this process (shipped decoders and rules, a fresh
//! database) and a real HTTP receiver, both on loopback.
//!
//! `cargo run --release --example alert_latency -- [ALERTS] [BACKGROUND_MSGS_PER_S]` (defaults 200 and 1000). Each
//! alert is a tamper line from its own host (so no throttle applies), sent every 50 ms; the background is benign
//! LunaSH lines on another connection. The run is bounded: ALERTS × 50 ms plus a 30 s drain.

#![allow(missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use tokio::io::AsyncWriteExt;

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn receive(State(arrivals): State<Arrivals>, body: String) -> &'static str {
    let now = Instant::now();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    if let Some(host) = json["host"].as_str() {
        arrivals.lock().unwrap().entry(host.to_owned()).or_insert(now);
    }
    "ok"
}

async fn background(address: SocketAddr, per_second: u64, stop: Arc<std::sync::atomic::AtomicBool>) -> u64 {
    if per_second == 0 {
        return 0;
    }
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    // Sent in 10 ms slices: per_second / 100 lines each.
    let per_slice = per_second.div_ceil(100);
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    let mut sent = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        ticker.tick().await;
        let mut chunk = String::new();
        for _ in 0..per_slice {
            sent += 1;
            chunk.push_str(&format!(
                "<174>Mar 21 08:00:00 hsm-bg lunash [5200]: info : 0 : Command: hsm show : admin : 10.0.0.{}/22\n",
                sent % 250
            ));
        }
        stream.write_all(chunk.as_bytes()).await.expect("background send");
    }
    sent
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn measure(alerts: usize, per_second: u64) -> Vec<Duration> {
    let arrivals = Arrivals::default();
    let app = Router::new().route("/hook", post(receive)).with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "listen:\n  udp: []\n  tcp:\n    - address: 127.0.0.1:0\nstorage:\n  path: {}/latency.db\nrules:\n  dir: {}/rules\nnotifiers:\n  hook:\n    type: webhook\n    url: http://{hook}/hook\n    rate_limit: {{max: 100000, per: 1m}}\n",
        dir.path().display(),
        env!("CARGO_MANIFEST_DIR")
    );
    let config = hsmwatch::config::Config::parse(&yaml, std::path::Path::new("latency.yaml")).unwrap();
    let server = hsmwatch::app::Server::start(&config).await.expect("server starts");
    let address = server.tcp_addresses[0];

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn(background(address, per_second, stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    let mut sent_at = HashMap::new();
    for i in 0..alerts {
        let host = format!("lat-{i}");
        let line = format!("<6>Mar  7 02:14:09 {host} kernel: k7pf0: ALM0008: Hard tamper - enclosure penetration\n");
        sent_at.insert(host, Instant::now());
        stream.write_all(line.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals.lock().unwrap().len() < alerts && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let background_sent = load.await.unwrap();
    server.stop().await.expect("clean stop");
    let arrivals = arrivals.lock().unwrap();
    let mut latencies: Vec<Duration> =
        sent_at.iter().filter_map(|(host, sent)| arrivals.get(host).map(|got| *got - *sent)).collect();
    latencies.sort();
    if latencies.len() < alerts {
        eprintln!("warning: {} of {alerts} alerts arrived", latencies.len());
    }
    eprintln!("background lines sent: {background_sent}");
    latencies
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let alerts: usize = args.next().map_or(200, |a| a.parse().expect("ALERTS is a number"));
    let per_second: u64 = args.next().map_or(1000, |a| a.parse().expect("BACKGROUND_MSGS_PER_S is a number"));
    for (label, rate) in [("idle", 0), ("background", per_second)] {
        let latencies = measure(alerts, rate).await;
        if latencies.is_empty() {
            println!("{label}: no alert arrived");
            continue;
        }
        println!(
            "{label} ({rate} msg/s background, {} alerts): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            latencies.len(),
            percentile(&latencies, 50.0).as_secs_f64() * 1000.0,
            percentile(&latencies, 99.0).as_secs_f64() * 1000.0,
            latencies.last().unwrap().as_secs_f64() * 1000.0
        );
    }
}
