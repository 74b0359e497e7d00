//! `hsmwatch query`: stored events, newest first, as a table or as JSON Lines.
//!
//! JSON Lines carry one object per event with the flat, dotted field names of docs/events.md as keys
//! (`{"@timestamp": ..., "event.action": ..., "host.name": ...}`), every value a string, absent fields left out.

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Args;

use crate::event::field;
use crate::store::query::{self, EventFilter, StoredEvent};
use crate::telemetry::escape_controls;

/// Options of `hsmwatch query`.
#[derive(Debug, Args)]
#[command(
    after_help = "Times: a duration back from now (30m, 1h, 7d) or a UTC date/time (2026-01-01, 2026-01-01T00:00:00Z).\n\
--json prints JSON Lines: one object per event, keys are the dotted field names of docs/events.md."
)]
pub struct QueryArgs {
    /// Database file [default: storage.path of --config, else hsmwatch.db].
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Read the database from this configuration file: `storage.path`, or with `storage.backend: postgres`
    /// the shared database.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Events at or after this time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Events before this time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
    /// host.name equals this.
    #[arg(long)]
    pub host: Option<String>,
    /// event.action equals this (e.g. partition.create).
    #[arg(long)]
    pub action: Option<String>,
    /// event.outcome equals this (success, failure, unknown).
    #[arg(long)]
    pub outcome: Option<String>,
    /// user.name equals this.
    #[arg(long)]
    pub user: Option<String>,
    /// source.ip equals this.
    #[arg(long, value_name = "IP")]
    pub source_ip: Option<String>,
    /// The raw line (event.original) contains this text, case-insensitive (found through the search index from 3
    /// characters on).
    #[arg(long, value_name = "TEXT")]
    pub contains: Option<String>,
    /// The raw line holds this text as whole words, case-insensitive: `--word admin` does not match `sysadmin`,
    /// `--word "partition create"` matches the two words in that order.
    #[arg(long, value_name = "TEXT")]
    pub word: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// JSON Lines of full events instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub use crate::config::units::parse_time;

/// Runs the query and prints the result.
pub async fn run(args: QueryArgs) -> anyhow::Result<()> {
    let (config, path) = super::config_and_database(args.config.as_deref(), args.db.as_deref())?;
    let reader = super::reader_for(&config, &path, args.db.is_some()).await?;
    let filter = EventFilter {
        since: args.since,
        until: args.until,
        host: args.host,
        action: args.action,
        outcome: args.outcome,
        user: args.user,
        source_ip: args.source_ip,
        contains: args.contains,
        word: args.word,
        // Both set for each page below.
        after: None,
        limit: 0,
    };
    // Buffered: the standard output flushes every line, a system call per event.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if !args.json {
        print_header(&mut out)?;
    }
    let mut printed = 0;
    let mut after = None;
    while printed < args.limit {
        let page = EventFilter { after, limit: (args.limit - printed).min(EVENTS_A_PAGE), ..filter.clone() };
        let (events, next) = query::page(&reader, &page).await?;
        if args.json {
            print_json(&mut out, &events)?;
        } else {
            print_rows(&mut out, &events)?;
        }
        // A page is shown whole before the next one is looked for, which may take a while (a rare string).
        out.flush()?;
        printed += events.len() as u32;
        match next {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    if printed == 0 && !args.json {
        writeln!(out, "(no events match)")?;
    }
    out.flush()?;
    reader.close().await;
    Ok(())
}

/// Events read and printed at a time: `--limit` may ask for a year of history, which is printed as it is read rather
/// than held in memory whole.
const EVENTS_A_PAGE: u32 = 5000;

fn print_json(out: &mut impl Write, events: &[StoredEvent]) -> anyhow::Result<()> {
    for stored in events {
        serde_json::to_writer(&mut *out, &stored.event.all_fields())?;
        writeln!(out)?;
    }
    Ok(())
}

/// Widest message shown in the table; `--json` shows everything.
const MESSAGE_WIDTH: usize = 100;

fn print_header(out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<27} {:<18} {:<24} {:<8} {:<12} {:<16} MESSAGE",
        "TIME", "HOST", "ACTION", "OUTCOME", "USER", "SOURCE"
    )
}

fn print_rows(out: &mut impl Write, events: &[StoredEvent]) -> std::io::Result<()> {
    for StoredEvent { event, .. } in events {
        // Every value came from a log line: escaped, so that no line can drive the reader's terminal.
        let get = |name| escape_controls(event.get(name).unwrap_or("-"));
        let action =
            escape_controls(event.get(field::ACTION).unwrap_or_else(|| event.get(field::DATASET).unwrap_or("-")));
        let message: String = event.get(field::MESSAGE).unwrap_or("-").chars().take(MESSAGE_WIDTH).collect();
        writeln!(
            out,
            "{:<27} {:<18} {:<24} {:<8} {:<12} {:<16} {}",
            event.timestamp.to_rfc3339(),
            get(field::HOST_NAME),
            action,
            get(field::OUTCOME),
            get(field::USER_NAME),
            get(field::SOURCE_IP),
            escape_controls(&message)
        )?;
    }
    Ok(())
}
