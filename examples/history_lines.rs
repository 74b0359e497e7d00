//! A year of Luna traffic for the history benchmark (`benches/history.sh`): N RFC 5424 lines from 50 HSMs, in time
//! order over the 365 days before `--end` (default now), in the mix an appliance fleet sends: LunaSH logins and
//! commands, NTLS client connections, sshd, HSM audit records, kernel alarms, the daily heartbeat. About 117 bytes a
//! line. Two lines (and only two) name the partition `p12x200`, the rare string the benchmark searches for.
//!
//! `cargo run --release --example history_lines -- 10000000 > history.log`
//!
//! `history_lines N END DAYS` spreads the lines over DAYS (a decimal: 0.04 is about an hour) before END instead: the
//! same mix as a fleet's live traffic, newer than a history that ends before it (`benches/ingest_pair.sh`).

#![allow(missing_docs)]

use std::io::Write;

use chrono::{DateTime, Duration, SecondsFormat, Utc};

/// A small, fast, deterministic generator (SplitMix64): the same N always gives the same file.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const USERS: [&str; 6] = ["admin", "operator", "monitor", "audit", "secops", "backup"];
const CLIENTS: [&str; 8] = ["app01", "app02", "payments", "pki-ca", "hsm-proxy", "signer", "kms-a", "kms-b"];
const COMMANDS: [&str; 8] = [
    "hsm show",
    "partition list",
    "ntls information show",
    "client list",
    "syslog tail -entries 20",
    "sysconf time show",
    "partition backup -partition par{n} -tokenpar bkp{n}",
    "partition create -partition par{n}",
];

fn ip(random: &mut Random) -> String {
    format!("10.{}.{}.{}", random.below(4), random.below(256), 1 + random.below(254))
}

/// The message and app name of one line.
fn message(random: &mut Random, rare: bool) -> (&'static str, String) {
    if rare {
        let user = USERS[0];
        return (
            "lunash",
            format!("info : 0 : Command: partition create -partition p12x200 : {user} : 10.1.2.3/51234"),
        );
    }
    let user = USERS[random.below(USERS.len() as u64) as usize];
    let port = 1024 + random.below(60000);
    match random.below(100) {
        0..=19 => ("lunash", format!("info : 0 : Lush user login : {user} : {}/{port}", ip(random))),
        20..=44 => {
            let command =
                COMMANDS[random.below(COMMANDS.len() as u64) as usize].replace("{n}", &random.below(90).to_string());
            ("lunash", format!("info : 0 : Command: {command} : {user} : {}/{port}", ip(random)))
        }
        45..=64 => {
            let client = CLIENTS[random.below(CLIENTS.len() as u64) as usize];
            ("NTLS", format!("info : 0 : NTLS Client \"{client}\" Connected : {}/{port}", ip(random)))
        }
        65..=74 => match random.below(4) {
            0 => ("sshd", format!("Failed password for {user} from {} port {port} ssh2", ip(random))),
            _ => ("sshd", format!("Accepted publickey for {user} from {} port {port} ssh2", ip(random))),
        },
        75..=89 => {
            let sequence = random.below(1_000_000);
            let operation = ["LUNA_LOGIN", "LUNA_LOGOUT", "LUNA_GENERATE_KEY", "LUNA_SIGN"][random.below(4) as usize];
            let session = random.below(40);
            ("cbs", format!("hsm_150518^{sequence} ,03/20/26 09:00:01,S/N 150518 session {session} Access 2147483651:2734 CO container=12 operation {operation} returned RC_OK(0x00000000)"))
        }
        90..=94 => ("kernel", format!("k7pf0: ALM{:04}: Fan {} speed low", 12 + random.below(20), random.below(4))),
        _ => ("logger", format!("uptime: {} days, load average: 0.{:02}", random.below(900), random.below(100))),
    }
}

fn main() {
    let count: u64 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let end: DateTime<Utc> = std::env::args().nth(2).and_then(|t| t.parse().ok()).unwrap_or_else(Utc::now);
    let days: f64 = std::env::args().nth(3).and_then(|d| d.parse().ok()).unwrap_or(365.0);
    let start = end - Duration::microseconds((days * 86_400e6) as i64);
    let span = (end - start).num_microseconds().unwrap_or(1) as u64;
    let rare = [count / 3, count * 2 / 3];
    let mut random = Random(0x5eed);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    for n in 0..count {
        let at = start + Duration::microseconds((span / count.max(1) * n + random.below(1000)) as i64);
        let host = 1 + random.below(50);
        let (app, text) = message(&mut random, rare.contains(&n));
        let pid = 1000 + random.below(9000);
        let written = writeln!(
            out,
            "<174>1 {} hsm-{host:02} {app} {pid} - - {text}",
            at.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
        if written.is_err() {
            return;
        }
    }
    let _ = out.flush();
}
