//! `hsmwatch cloud`: the AWS CloudHSM inventory (accounts, regions, clusters, HSMs, backups with their ages), as the
//! server last read it, or read from AWS now with `--read`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;

use super::UsageError;
use crate::cloud::view::{region_view, RegionView};
use crate::cloud::watch::RegionState;
use crate::store::open_reader;
use crate::telemetry::escape_controls;

/// Options of `hsmwatch cloud`.
#[derive(Debug, Args)]
#[command(after_help = "Without --read: what the server read last (its database). With --read: every account and \
region of cloud.aws in --config is read now (credentials from the standard AWS chain: AWS_* variables, \
profile, instance or container role), nothing is stored, and the exit code is 1 when any of them fails. \
A HOST is the host.name an HSM's logs arrive as; SILENT marks an HSM that AWS lists and hsmwatch has not heard from \
for inventory.silent_after.")]
pub struct CloudArgs {
    /// Read AWS now instead of showing what the server read.
    #[arg(long)]
    pub read: bool,
    /// JSON Lines (one account's region a line) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Database file [default: storage.path of --config, else hsmwatch.db].
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// The server configuration (`cloud.aws`, `storage.path`).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Prints the cloud inventory.
pub async fn run(args: CloudArgs) -> anyhow::Result<()> {
    let (config, db) = super::config_and_database(args.config.as_deref(), args.db.as_deref())?;
    let (regions, failed) = match args.read {
        true => {
            let Some(aws) = &config.cloud.aws else {
                return Err(UsageError("--read needs a --config with a cloud.aws section".into()).into());
            };
            read_now(aws).await?
        }
        false => (crate::cloud::view::views(&open_reader(&db).await?).await?, 0),
    };
    let mut out = std::io::stdout().lock();
    match args.json {
        true => {
            for region in &regions {
                serde_json::to_writer(&mut out, region)?;
                writeln!(out)?;
            }
        }
        false => print(&mut out, &regions, Utc::now())?,
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} account regions could not be read", regions.len());
    }
    Ok(())
}

async fn read_now(aws: &crate::config::cloud::AwsConfig) -> anyhow::Result<(Vec<RegionView>, usize)> {
    let mut accounts = crate::cloud::Accounts::new(aws).await.map_err(UsageError)?;
    let started = std::time::Instant::now();
    let reads = accounts.read_all(aws.concurrency, &Default::default()).await;
    tracing::info!(regions = reads.len(), took = ?started.elapsed(), "cloud inventory read");
    let now = Utc::now();
    let mut failed = 0;
    let views = reads
        .into_iter()
        .map(|read| {
            let mut state = RegionState::default();
            crate::cloud::apply(&mut state, &read, now, None, Duration::MAX);
            failed += usize::from(read.result.is_err());
            region_view(read.account, read.region, &state)
        })
        .collect::<Vec<_>>();
    let mut views = views;
    crate::cloud::view::credit_restores(&mut views);
    Ok((views, failed))
}

fn when(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match at {
        None => "never".to_owned(),
        Some(at) => format!("{} ({} ago)", at.to_rfc3339_opts(SecondsFormat::Secs, true), age(now - at)),
    }
}

/// A short age: `45s`, `12m`, `5h`, `12d`.
fn age(span: chrono::TimeDelta) -> String {
    let seconds = span.num_seconds().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn print(out: &mut impl Write, regions: &[RegionView], now: DateTime<Utc>) -> std::io::Result<()> {
    if regions.is_empty() {
        writeln!(out, "(nothing read yet: configure cloud.aws and start the server, or use --read)")?;
    }
    // Every id, state and message comes from AWS's answers: escaped before it reaches a terminal.
    let e = |text: &str| escape_controls(text).into_owned();
    for region in regions {
        let name = region.account_name.as_deref().map(|n| format!(" ({})", e(n))).unwrap_or_default();
        let status = match &region.error {
            Some(error) => format!("FAILING since {}: {}", when(region.failing_since, now), e(error)),
            None => format!("read {}, {:.2}s", when(region.last_success, now), region.read_seconds.unwrap_or(0.0)),
        };
        writeln!(out, "account {}{name}  region {}  {status}", e(&region.account), e(&region.region))?;
        for cluster in &region.clusters {
            let backup = match &cluster.last_backup {
                Some(b) => format!("{} {}", e(&b.id), when(b.created, now)),
                None => "NONE READY".to_owned(),
            };
            let restore = match &cluster.last_restore {
                Some(r) if r.cluster == cluster.id => {
                    format!("created from {} {}", e(&r.backup), when(Some(r.at), now))
                }
                Some(r) => format!("{} made from {} {}", e(&r.cluster), e(&r.backup), when(Some(r.at), now)),
                None => "never".to_owned(),
            };
            writeln!(
                out,
                "  cluster {}  {}  {} {}  HSMs {}  last backup {backup}  last restore {restore}",
                e(&cluster.id),
                e(&cluster.state),
                e(cluster.hsm_type.as_deref().unwrap_or("-")),
                e(cluster.mode.as_deref().unwrap_or("-")),
                cluster.hsms.len(),
            )?;
            if let Some(message) = cluster.state_message.as_deref().filter(|_| cluster.state != "ACTIVE") {
                writeln!(out, "    ({})", e(message))?;
            }
            for hsm in &cluster.hsms {
                let heard = match (&hsm.host, hsm.silent) {
                    (Some(host), true) => format!("host {} SILENT", e(host)),
                    (Some(host), false) => format!("host {}", e(host)),
                    (None, true) => "never heard SILENT".to_owned(),
                    (None, false) => "-".to_owned(),
                };
                writeln!(
                    out,
                    "    hsm {}  {}  {}  {}  {heard}",
                    e(&hsm.id),
                    e(&hsm.state),
                    e(hsm.eni_ip.as_deref().unwrap_or("-")),
                    e(hsm.availability_zone.as_deref().unwrap_or("-")),
                )?;
            }
            for backup in &cluster.backups_in_progress {
                writeln!(out, "    backup {}  {}  {}", e(&backup.id), e(&backup.state), when(backup.created, now))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_short() {
        assert_eq!(age(chrono::TimeDelta::seconds(45)), "45s");
        assert_eq!(age(chrono::TimeDelta::minutes(90)), "90m");
        assert_eq!(age(chrono::TimeDelta::hours(30)), "30h");
        assert_eq!(age(chrono::TimeDelta::days(12)), "12d");
    }
}
