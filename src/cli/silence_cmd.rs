//! `hsmwatch silence add|list|expire`: hold back notifications without losing alerts (they are still recorded).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{Datelike, Utc};
use clap::{Args, Subcommand};

use crate::silence::{self, Silence};
use crate::store;

/// Where the database is.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database file [default: storage.path of --config, else hsmwatch.db].
    #[arg(long, value_name = "PATH", global = true)]
    pub db: Option<PathBuf>,
    /// Read the database from this configuration file: `storage.path`, or with `storage.backend: postgres`
    /// the shared database.
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

/// Silence subcommands.
#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Hold back notifications of matching alerts for a while (they are still recorded; takes effect at once, also
    /// in a running server).
    #[command(after_help = "Matchers are KEY=VALUE, all of which must match. Keys: rule, host, severity, status, \
fingerprint, or a field the rule groups by (user.name=admin). `*` in a value matches any text.\n\nExample:\n  \
hsmwatch silence add host=hsm-02 'rule=luna.hw.*' --for 2h --reason 'fan replacement, CHG-4711'")]
    Add {
        /// KEY=VALUE matchers.
        #[arg(required = true, value_name = "MATCHER")]
        matchers: Vec<String>,
        /// How long (30m, 2h, 1d).
        #[arg(long = "for", value_name = "DURATION", value_parser = crate::config::units::parse_duration)]
        duration: Duration,
        /// Why: shown by `silence list` and `alerts show`.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// Who [default: $USER].
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List active silences (or every one with --all), newest first.
    List {
        /// Also silences that ended.
        #[arg(long)]
        all: bool,
        /// JSON Lines instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// End a silence now.
    Expire {
        /// The silence id (from `silence list`).
        id: i64,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// The write connection (creating and migrating a SQLite database: a silence may be added before the server first
/// ran), or the configuration's PostgreSQL database.
async fn connect(database: &DatabaseArgs) -> anyhow::Result<super::CommandWriter> {
    let (config, path) = super::config_and_database(database.config.as_deref(), database.db.as_deref())?;
    super::writer_for(&config, &path, database.db.is_some()).await
}

/// What the silences are read from.
async fn reader(database: &DatabaseArgs) -> anyhow::Result<store::Reader> {
    let (config, path) = super::config_and_database(database.config.as_deref(), database.db.as_deref())?;
    super::reader_for(&config, &path, database.db.is_some()).await
}

fn describe(silence: &Silence) -> String {
    silence.matchers.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// Runs a silence subcommand.
pub async fn run(command: SilenceCommand) -> anyhow::Result<()> {
    let now = Utc::now();
    let mut out = std::io::stdout().lock();
    match command {
        SilenceCommand::Add { matchers, duration, reason, by, database } => {
            let matchers = silence::parse_matchers(&matchers).map_err(|e| super::UsageError(e.to_string()))?;
            if duration.is_zero() {
                return Err(super::UsageError("--for must be longer than zero".into()).into());
            }
            if reason.trim().is_empty() {
                return Err(super::UsageError("--reason must say why".into()).into());
            }
            let by = by.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".into());
            let ends = chrono::Duration::from_std(duration)
                .ok()
                .and_then(|span| now.checked_add_signed(span))
                .filter(|ends| ends.year() <= 9999)
                .ok_or_else(|| super::UsageError("--for reaches past the year 9999".into()))?;
            let mut conn = connect(&database).await?;
            let id = store::silences::add(&mut conn, &matchers, now, ends, reason.trim(), &by).await?;
            writeln!(out, "silence {id} active until {}", ends.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))?;
        }
        SilenceCommand::List { all, json, database } => {
            let silences = store::silences::list(&reader(&database).await?, now, all).await?;
            if json {
                for s in &silences {
                    serde_json::to_writer(&mut out, s)?;
                    writeln!(out)?;
                }
                return Ok(());
            }
            writeln!(out, "{:<5} {:<8} {:<20} {:<12} {:<36} REASON", "ID", "STATE", "ENDS", "BY", "MATCHERS")?;
            for s in &silences {
                let state = match (s.is_active(now), s.expired_at) {
                    (true, _) => "active",
                    (false, Some(_)) => "expired",
                    (false, None) => "ended",
                };
                let ends = s.expired_at.unwrap_or(s.ends_at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                writeln!(
                    out,
                    "{:<5} {state:<8} {ends:<20} {:<12} {:<36} {}",
                    s.id,
                    s.created_by,
                    describe(s),
                    s.reason
                )?;
            }
            if silences.is_empty() {
                writeln!(out, "(no {}silences)", if all { "" } else { "active " })?;
            }
        }
        SilenceCommand::Expire { id, database } => {
            let mut conn = connect(&database).await?;
            if !store::silences::expire(&mut conn, id, now).await? {
                return Err(super::UsageError(format!("no active silence {id} (`hsmwatch silence list`)")).into());
            }
            writeln!(out, "silence {id} expired")?;
        }
    }
    Ok(())
}
