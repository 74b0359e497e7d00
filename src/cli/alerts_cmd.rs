//! `hsmwatch alerts list`: recorded alerts, newest first.

use crate::telemetry::escape_controls;
use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};

use crate::store::alerts as store;
use crate::store::open_reader;

/// Alert subcommands.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List recorded alerts, newest first (works while the server runs).
    List(ListArgs),
    /// Show one alert in full, with the delivery state of each of its notifications.
    Show {
        /// The alert id (from `alerts list`).
        id: i64,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Database file [default: storage.path of --config, else hsmwatch.db].
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// Read the database path from this configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

fn database(db: Option<&PathBuf>, config: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(super::config_and_database(config.map(PathBuf::as_path), db.map(PathBuf::as_path))?.1)
}

async fn show(id: i64, json: bool, path: PathBuf) -> anyhow::Result<()> {
    let reader = open_reader(&path).await?;
    let Some(alert) = store::get(&reader, id).await? else {
        return Err(super::UsageError(format!("no alert {id} in {}", path.display())).into());
    };
    let deliveries = crate::store::outbox::deliveries(&reader, id).await?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &serde_json::json!({"id": id, "alert": alert, "deliveries": deliveries}))?;
        writeln!(out)?;
        return Ok(());
    }
    // Title, host, fingerprint, body and a receiver's error carry text from the network: escaped for the terminal.
    let safe = |text: &str| escape_controls(text).into_owned();
    writeln!(out, "alert {id}: {} {} {}", alert.severity, alert.status, alert.rule)?;
    writeln!(out, "title:       {}", safe(&alert.title))?;
    writeln!(out, "host:        {}", safe(alert.host.as_deref().unwrap_or("-")))?;
    writeln!(out, "fingerprint: {}", safe(&alert.fingerprint))?;
    writeln!(
        out,
        "count:       {} (first {}, last {})",
        alert.count,
        alert.first_seen.as_deref().unwrap_or("-"),
        alert.last_seen.as_deref().unwrap_or("-")
    )?;
    writeln!(out, "fired:       {}", alert.fired_at)?;
    writeln!(out, "events:      {:?}", alert.event_ids)?;
    let body: Vec<String> = alert.body.trim_end().lines().map(safe).collect();
    writeln!(out, "\n{}\n", body.join("\n"))?;
    match (alert.silenced_by, &alert.held_back) {
        (Some(silence), _) => {
            writeln!(out, "deliveries:  none: held back by silence {silence} (`hsmwatch silence list --all`)")?
        }
        (None, Some(why)) => writeln!(out, "deliveries:  none: not sent, {why}")?,
        (None, None) if deliveries.is_empty() => {
            writeln!(out, "deliveries:  none (no notifier was routed, or the throttle held it back)")?
        }
        (None, None) => {}
    }
    for d in &deliveries {
        let state = match d.status.as_str() {
            "sent" if d.digest_size.is_some() => format!(
                "sent at {} in a digest of {} alerts (rate limit)",
                d.sent_at.as_deref().unwrap_or("-"),
                d.digest_size.unwrap_or_default()
            ),
            "sent" => format!("sent at {}", d.sent_at.as_deref().unwrap_or("-")),
            "pending" => format!("pending, next attempt {}", d.next_attempt_at),
            other => other.to_owned(),
        };
        let error = d.last_error.as_deref().map(|e| format!("; last error: {}", safe(e))).unwrap_or_default();
        writeln!(out, "delivery to {}: {state} after {} attempt(s){error}", d.notifier, d.attempts)?;
    }
    Ok(())
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
    let args = match command {
        AlertsCommand::List(args) => args,
        AlertsCommand::Show { id, json, db, config } => {
            return show(id, json, database(db.as_ref(), config.as_ref())?).await
        }
    };
    let path = database(args.db.as_ref(), args.config.as_ref())?;
    let reader = open_reader(&path).await?;
    let status = args.status.map(|s| match s {
        StatusFilter::Firing => "firing",
        StatusFilter::Resolved => "resolved",
    });
    let alerts =
        store::list(&reader, &store::AlertFilter { status, since: args.since, host: None, limit: args.limit }).await?;
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
            let held = match (a.notify, a.silenced_by, &a.held_back) {
                (false, _, _) => "  (throttled)".to_owned(),
                (true, Some(silence), _) => format!("  (silenced by {silence})"),
                (true, None, Some(_)) => "  (not sent: history)".to_owned(),
                (true, None, None) => String::new(),
            };
            writeln!(
                out,
                "{:<6} {:<20} {:<9} {:<9} {:<34} {:>5}  {}{held}",
                a.id,
                a.fired_at,
                a.severity,
                a.status,
                a.rule_id,
                a.count,
                escape_controls(&a.title)
            )?;
        }
        if alerts.is_empty() {
            writeln!(out, "(no alerts match)")?;
        }
    }
    reader.close().await;
    Ok(())
}
