//! `hsmwatch alerts`: the triage queue (open alerts first), one alert with its history, and the changes a person
//! makes: acknowledge, unacknowledge, resolve.

use crate::telemetry::escape_controls;
use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use crate::store::alerts as store;
use crate::store::alerts::{AlertChange, Change, ChangeOutcome, StateFilter};

/// Alert subcommands.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List alerts: open ones first (firing, then acknowledged), then resolved ones, newest first (works while the
    /// server runs).
    List(ListArgs),
    /// Show one alert in full: its state and who changed it, its firings, and the delivery state of its latest one.
    Show {
        /// The alert id (from `alerts list`; the id of any of its firings will do).
        id: i64,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Database file [default: storage.path of --config, else hsmwatch.db].
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// Read the database from this configuration file: `storage.path`, or with `storage.backend: postgres`
        /// the shared database.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Acknowledge alerts ("I have this"): their firings are recorded but not notified until unacknowledged or
    /// resolved; the notifiers they went to are told (alerts.notify_changes).
    Ack(ChangeArgs),
    /// Put acknowledged alerts back to firing: later firings notify again.
    Unack(ChangeArgs),
    /// Resolve alerts: the next firing of the same rule and group opens a new alert; the notifiers are told.
    Resolve(ChangeArgs),
}

/// Options of `alerts ack`, `unack` and `resolve`.
#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// Alert ids (from `alerts list`).
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<i64>,
    /// Why, in your words (recorded and sent with the notice).
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Who is acting [default: the login name, $USER].
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Database file [default: storage.path of --config, else hsmwatch.db].
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// The server configuration (database, alerts.notify_changes).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

async fn show(id: i64, json: bool, reader: &crate::store::Reader) -> anyhow::Result<()> {
    let Some(detail) = store::detail(reader, id).await? else {
        return Err(super::UsageError(format!("no alert {id}")).into());
    };
    let alert = &detail.latest;
    let summary = &detail.summary;
    let deliveries = crate::store::outbox::deliveries(reader, alert.id).await?;
    let mut out = std::io::stdout().lock();
    if json {
        let document = serde_json::json!({
            "id": summary.id,
            "summary": summary,
            "alert": alert,
            "changes": detail.changes,
            "rows": detail.rows,
            "deliveries": deliveries,
        });
        serde_json::to_writer(&mut out, &document)?;
        writeln!(out)?;
        return Ok(());
    }
    // Title, host, fingerprint, body, notes and a receiver's error carry text from the network or a person: escaped
    // for the terminal.
    let safe = |text: &str| escape_controls(text).into_owned();
    writeln!(out, "alert {}: {} {} {}", summary.id, alert.severity, summary.state, alert.rule)?;
    writeln!(out, "title:       {}", safe(&alert.title))?;
    writeln!(out, "host:        {}", safe(alert.host.as_deref().unwrap_or("-")))?;
    writeln!(out, "fingerprint: {}", safe(&alert.fingerprint))?;
    writeln!(out, "opened:      {}", summary.fired_at)?;
    writeln!(out, "firings:     {} (latest {}, alert row {})", summary.firings, summary.last_fired_at, alert.id)?;
    if let (Some(by), Some(at)) = (&summary.state_by, &summary.state_at) {
        writeln!(out, "state:       {} by {} at {at}", summary.state, safe(by))?;
    }
    writeln!(
        out,
        "count:       {} (first {}, last {})",
        alert.count,
        alert.first_seen.as_deref().unwrap_or("-"),
        alert.last_seen.as_deref().unwrap_or("-")
    )?;
    writeln!(out, "events:      {:?}", alert.event_ids)?;
    let body: Vec<String> = alert.body.trim_end().lines().map(safe).collect();
    writeln!(out, "\n{}\n", body.join("\n"))?;
    for change in &detail.changes {
        let note = change.note.as_deref().map(|n| format!(": {}", safe(n))).unwrap_or_default();
        writeln!(out, "{} {} by {}{note}", change.at, change.change, safe(&change.actor))?;
    }
    if detail.rows.len() > 1 {
        writeln!(out, "rows of this alert, newest first:")?;
        for row in &detail.rows {
            writeln!(out, "  {:<6} {} {:<14} {}", row.id, row.fired_at, row.status, safe(&row.title))?;
        }
    }
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

/// A `--state`: one state, or `all`.
#[derive(Debug, Clone, Copy)]
pub struct StateArg(pub Option<StateFilter>);

fn parse_state(text: &str) -> Result<StateArg, String> {
    match text {
        "all" => Ok(StateArg(None)),
        text => text.parse::<StateFilter>().map(|s| StateArg(Some(s))).map_err(|e| format!("{e}, or all")),
    }
}

/// Options of `hsmwatch alerts list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only alerts in this state: open (firing or acknowledged), firing, acknowledged, resolved, or all (the default).
    #[arg(long, alias = "status", value_parser = parse_state)]
    pub state: Option<StateArg>,
    /// Alerts that fired last at or after this time (30m, 7d, or a UTC time).
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
    /// Read the database from this configuration file: `storage.path`, or with `storage.backend: postgres`
    /// the shared database.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Runs an alerts subcommand.
pub async fn run(command: AlertsCommand) -> anyhow::Result<()> {
    let (change, args) = match command {
        AlertsCommand::List(args) => return list(args).await,
        AlertsCommand::Show { id, json, db, config } => {
            let (config, path) = super::config_and_database(config.as_deref(), db.as_deref())?;
            let reader = super::reader_for(&config, &path, db.is_some()).await?;
            return show(id, json, &reader).await;
        }
        AlertsCommand::Ack(args) => (Change::Acknowledge, args),
        AlertsCommand::Unack(args) => (Change::Unacknowledge, args),
        AlertsCommand::Resolve(args) => (Change::Resolve, args),
    };
    change_alerts(change, args).await
}

/// The name of whoever runs the command.
fn login_name() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "cli".to_owned())
}

async fn change_alerts(change: Change, args: ChangeArgs) -> anyhow::Result<()> {
    let (config, path) = super::config_and_database(args.config.as_deref(), args.db.as_deref())?;
    let shared = config.storage.backend == crate::config::StorageBackend::Postgres && args.db.is_none();
    if !shared && !path.exists() {
        return Err(crate::store::StoreError::Missing { path }.into());
    }
    let actor = args.by.unwrap_or_else(login_name);
    let mut conn = super::writer_for(&config, &path, args.db.is_some()).await?;
    let mut out = std::io::stdout().lock();
    let mut failed = Vec::new();
    for id in args.ids {
        let request = AlertChange { change, actor: &actor, note: args.note.as_deref(), at: Utc::now() };
        match store::change_state(&mut conn, id, &request, config.alerts.notify_changes).await? {
            ChangeOutcome::Changed { alert_id, queued, .. } => {
                let told = match queued.is_empty() {
                    true => String::new(),
                    false => format!("; notice queued for {}", queued.join(", ")),
                };
                writeln!(out, "alert {alert_id}: {} by {}{told}", change.as_str(), escape_controls(&actor))?;
            }
            ChangeOutcome::NoSuchAlert if shared => failed.push(format!("no alert {id} in the shared database")),
            ChangeOutcome::NoSuchAlert => failed.push(format!("no alert {id} in {}", path.display())),
            ChangeOutcome::Refused(why) => failed.push(why),
        }
    }
    conn.close().await?;
    match failed.is_empty() {
        true => Ok(()),
        false => Err(anyhow::anyhow!(failed.join("; "))),
    }
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let (config, path) = super::config_and_database(args.config.as_deref(), args.db.as_deref())?;
    let reader = super::reader_for(&config, &path, args.db.is_some()).await?;
    let state = args.state.and_then(|s| s.0);
    let filter = store::AlertFilter { state, since: args.since, host: None, limit: args.limit };
    let alerts = store::list(&reader, &filter).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for alert in &alerts {
            serde_json::to_writer(&mut out, alert)?;
            writeln!(out)?;
        }
    } else {
        writeln!(
            out,
            "{:<6} {:<13} {:<20} {:<20} {:>7} {:<9} {:<16} {:<30} TITLE",
            "ID", "STATE", "OPENED", "LAST FIRED", "FIRINGS", "SEVERITY", "HOST", "RULE"
        )?;
        for a in &alerts {
            let note = match (a.state.as_str(), &a.state_by, a.notify, a.silenced_by, &a.held_back) {
                ("acknowledged", Some(by), ..) => format!("  (acknowledged by {})", escape_controls(by)),
                (_, _, false, _, _) => "  (throttled)".to_owned(),
                (_, _, true, Some(silence), _) => format!("  (silenced by {silence})"),
                (_, _, true, None, Some(why)) => {
                    format!("  (not sent: {})", escape_controls(why.split(':').next().unwrap_or(why)))
                }
                _ => String::new(),
            };
            writeln!(
                out,
                "{:<6} {:<13} {:<20} {:<20} {:>7} {:<9} {:<16} {:<30} {}{note}",
                a.id,
                a.state,
                a.fired_at,
                a.last_fired_at,
                a.firings,
                a.severity,
                escape_controls(a.host.as_deref().unwrap_or("-")),
                a.rule_id,
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
