//! `hsmwatch hosts`: the HSM inventory, one row per host.

use crate::telemetry::escape_controls;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;

use crate::inventory;
use crate::store::open_reader;

/// Options of `hsmwatch hosts`.
#[derive(Debug, Args)]
#[command(
    after_help = "A host that sent nothing for --silent-after is shown as SILENT. Open alerts are fingerprints whose latest \
alert (of the last 7 days) is firing."
)]
pub struct HostsArgs {
    /// JSON Lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Show a host as silent after this long without a line [default: inventory.silent_after of --config, else 15m].
    #[arg(long, value_name = "DURATION", value_parser = crate::config::units::parse_duration)]
    pub silent_after: Option<Duration>,
    /// Database file [default: storage.path of --config, else hsmwatch.db].
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Read the database path and inventory settings from this configuration file.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

fn when(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// Prints the inventory.
pub async fn run(args: HostsArgs) -> anyhow::Result<()> {
    let (config, db) = super::config_and_database(args.config.as_deref(), args.db.as_deref())?;
    let silent_after = args.silent_after.unwrap_or(config.inventory.silent_after);
    let reader = open_reader(&db).await?;
    let rows = inventory::views(&reader, silent_after, Utc::now()).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for row in &rows {
            serde_json::to_writer(&mut out, row)?;
            writeln!(out)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<18} {:<28} {:>8} {:>5}  {:<20} {:<20} {:<20} {:<16} ADDRESSES",
        "HOST", "LAST SEEN", "EVENTS", "OPEN", "LAST HEARTBEAT", "LAST BACKUP", "LAST LOGIN FAILURE", "SERIALS",
    )?;
    for row in &rows {
        let h = &row.host;
        let seen = if row.silent { format!("{} SILENT", when(Some(h.last_seen))) } else { when(Some(h.last_seen)) };
        let serials: Vec<&str> = h.serials.iter().map(String::as_str).collect();
        let addresses: Vec<&str> = h.addresses.iter().map(String::as_str).collect();
        writeln!(
            out,
            "{:<18} {:<28} {:>8} {:>5}  {:<20} {:<20} {:<20} {:<16} {}",
            // Host names, serials and addresses come from log lines.
            escape_controls(&h.name),
            seen,
            h.events,
            row.open_alerts,
            when(h.last_heartbeat),
            when(h.last_backup),
            when(h.last_login_failure),
            escape_controls(&if serials.is_empty() { "-".to_owned() } else { serials.join(",") }),
            escape_controls(&addresses.join(","))
        )?;
    }
    if rows.is_empty() {
        writeln!(out, "(no hosts yet)")?;
    }
    Ok(())
}
