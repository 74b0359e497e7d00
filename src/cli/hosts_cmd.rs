//! `hsmwatch hosts`: the HSM inventory, one row per host.

use crate::telemetry::escape_controls;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;

use crate::inventory;

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
    /// Read the database (`storage.path`, or with `storage.backend: postgres` the shared database) and
    /// inventory settings from this configuration file.
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
    let reader = super::reader_for(&config, &db, args.db.is_some()).await?;
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
        "{:<18} {:<28} {:>8} {:>5}  {:<20} {:<20} {:<20} {:<20} {:<16} {:<10} {:<6} {:<10} {:<20} {:<32} ADDRESSES",
        "HOST",
        "LAST SEEN",
        "EVENTS",
        "OPEN",
        "LAST HEARTBEAT",
        "LAST BACKUP",
        "LAST RESTORE",
        "LAST LOGIN FAILURE",
        "SERIALS",
        "NTLS",
        "FIPS",
        "FIRMWARE",
        "LAST POLL",
        "AWS (HSM STATE CLUSTER REGION)",
    )?;
    let list = |values: &mut dyn Iterator<Item = &String>| {
        let all: Vec<&str> =
            values.map(String::as_str).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        if all.is_empty() {
            "-".to_owned()
        } else {
            all.join(",")
        }
    };
    for row in &rows {
        let h = &row.host;
        let last = if h.events == 0 { "never".to_owned() } else { when(Some(h.last_seen)) };
        let seen = if row.silent { format!("{last} SILENT") } else { last };
        let aws = row
            .cloud
            .as_ref()
            .map_or_else(|| "-".to_owned(), |c| format!("{} {} {} {}", c.hsm.id, c.hsm.state, c.cluster, c.region));
        let snmp = row.snmp.as_ref();
        let summary = snmp.map(|s| &s.summary);
        let serials = list(&mut h.serials.iter().chain(summary.into_iter().flat_map(|s| &s.serials)));
        let ntls = summary.and_then(|s| s.ntls_status.as_ref()).map_or_else(
            || "-".to_owned(),
            |status| format!("{status}/{}", summary.and_then(|s| s.ntls_clients.as_deref()).unwrap_or("?")),
        );
        let fips = list(&mut summary.into_iter().flat_map(|s| &s.fips_mode));
        let firmware = list(&mut summary.into_iter().flat_map(|s| &s.firmware));
        let last_poll = match snmp {
            None => "-".to_owned(),
            Some(view) if view.poll_error.is_some() => {
                format!("{} FAILING", view.last_poll.as_deref().unwrap_or("never"))
            }
            Some(view) => view.last_poll.clone().unwrap_or_else(|| "never".to_owned()),
        };
        let addresses: Vec<&str> = h.addresses.iter().map(String::as_str).collect();
        writeln!(
            out,
            "{:<18} {:<28} {:>8} {:>5}  {:<20} {:<20} {:<20} {:<20} {:<16} {:<10} {:<6} {:<10} {:<20} {:<32} {}",
            // Host names, serials, addresses and what an appliance answers come from the network.
            escape_controls(&h.name),
            seen,
            h.events,
            row.open_alerts,
            when(h.last_heartbeat),
            when(h.last_backup),
            when(h.last_restore),
            when(h.last_login_failure),
            escape_controls(&serials),
            escape_controls(&ntls),
            escape_controls(&fips),
            escape_controls(&firmware),
            last_poll,
            escape_controls(&aws),
            escape_controls(&addresses.join(","))
        )?;
        // On a database several collectors share: which of them hear it.
        for heard in &row.collectors {
            writeln!(
                out,
                "  heard by {:<28} last {} {:>8} lines",
                escape_controls(&heard.collector),
                when(Some(heard.last_seen)),
                heard.events
            )?;
        }
    }
    if rows.is_empty() {
        writeln!(out, "(no hosts yet)")?;
    }
    Ok(())
}
