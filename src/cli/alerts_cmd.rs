//! `hsmwatch alerts list`: recorded alerts, newest first.

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};

use crate::alert::store;
use crate::config::Config;
use crate::store::open_reader;

/// Alert subcommands.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List recorded alerts, newest first (works while the server runs).
    List(ListArgs),
}

/// Which alerts.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusFilter {
    /// Firings.
    Firing,
    /// Resolutions.
    Resolved,
}

/// Options of `hsmwatch alerts list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only firings or only resolutions.
    #[arg(long, value_enum)]
    pub status: Option<StatusFilter>,
    /// Alerts at or after this time (30m, 7d, or a UTC time).
    #[arg(long, value_parser = super::query::parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// JSON Lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Database file [default: storage.path of --config, else hsmwatch.db].
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Read the database path from this configuration file.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Runs an alerts subcommand.
pub async fn run(command: AlertsCommand) -> anyhow::Result<()> {
    let AlertsCommand::List(args) = command;
    let path = match (&args.db, &args.config) {
        (Some(db), _) => db.clone(),
        (None, Some(config)) => Config::load(config)?.storage.path,
        (None, None) => Config::default().storage.path,
    };
    let pool = open_reader(&path).await?;
    let status = args.status.map(|s| match s {
        StatusFilter::Firing => "firing",
        StatusFilter::Resolved => "resolved",
    });
    let alerts = store::list(&pool, status, args.since, args.limit).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for alert in &alerts {
            serde_json::to_writer(&mut out, alert)?;
            writeln!(out)?;
        }
    } else {
        writeln!(
            out,
            "{:<6} {:<20} {:<9} {:<9} {:<34} {:>5}  TITLE",
            "ID", "FIRED", "SEVERITY", "STATUS", "RULE", "COUNT"
        )?;
        for a in &alerts {
            let held = if a.notify { String::new() } else { "  (throttled)".to_owned() };
            writeln!(
                out,
                "{:<6} {:<20} {:<9} {:<9} {:<34} {:>5}  {}{held}",
                a.id, a.fired_at, a.severity, a.status, a.rule_id, a.count, a.title
            )?;
        }
        if alerts.is_empty() {
            writeln!(out, "(no alerts match)")?;
        }
    }
    pool.close().await;
    Ok(())
}
