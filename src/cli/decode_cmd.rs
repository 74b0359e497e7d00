//! `hsmwatch decode [LINE]` and `hsmwatch decoders check [DIR]`: the tools an operator uses to write and fix decoders.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use super::UsageError;
use crate::decode::{Decoders, Origin};
use crate::event::field;
use crate::ingest::decode_frame;
use crate::pack::{DecodersFrom, RuleSource};

/// Options of `hsmwatch decode`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  hsmwatch decode '<174>Mar  9 10:00:01 hsm-1 lunash[4100]: info : 0 : Command: partition create -partition p1 : admin : Console'\n\
With no LINE, every line of standard input is decoded."
)]
pub struct DecodeArgs {
    /// The line to decode, exactly as a sender would send it (no octet count).
    pub line: Option<String>,
    /// Rules directory whose decoders/ to use [default: ./rules when it exists, else the built-in pack].
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// `builtin`: the decoders built into hsmwatch, whatever the rules directory holds.
    #[arg(long, value_enum, value_name = "FROM")]
    pub decoders: Option<DecodersFrom>,
    /// Time of receipt, for the year of RFC 3164 lines [default: now].
    #[arg(long, value_name = "TIME", value_parser = super::query::parse_time)]
    pub received: Option<DateTime<Utc>>,
    /// Print each event as one JSON object instead of a field list.
    #[arg(long)]
    pub json: bool,
}

/// `hsmwatch decoders ...`.
#[derive(Debug, Subcommand)]
pub enum DecodersCommand {
    /// Check decoder files: every mistake with its file and line; exit 2 when there is one.
    Check {
        /// A rules directory (its decoders/ is checked) or a decoders directory [default: ./rules, else the built-in pack].
        dir: Option<PathBuf>,
    },
}

/// Runs `hsmwatch decode`.
pub fn run_decode(args: DecodeArgs) -> anyhow::Result<()> {
    let pack = super::pack_of(&Default::default(), args.rules.as_deref(), args.decoders)?;
    let decoders = Decoders::load(&pack.decoders)?;
    let origin = Origin {
        received: args.received.unwrap_or_else(Utc::now),
        source_address: "command line".into(),
        peer_ip: None,
        default_host: None,
        time_rules: Default::default(),
    };
    let mut out = std::io::stdout().lock();
    match args.line {
        Some(line) => print_decoded(&mut out, &line, &origin, &decoders, args.json)?,
        None => {
            if std::io::stdin().is_terminal() {
                let _ = writeln!(std::io::stderr(), "reading lines to decode from standard input (Ctrl-D ends)");
            }
            for line in std::io::stdin().lock().lines() {
                print_decoded(&mut out, &line?, &origin, &decoders, args.json)?;
            }
        }
    }
    Ok(())
}

fn print_decoded(
    out: &mut impl Write,
    line: &str,
    origin: &Origin,
    decoders: &Decoders,
    json: bool,
) -> anyhow::Result<()> {
    let (event, matched) = decode_frame(line.as_bytes(), false, origin, decoders);
    let fields = event.all_fields();
    if json {
        serde_json::to_writer(&mut *out, &fields)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "format:   {}", event.get(field::FORMAT).unwrap_or("-"))?;
    match matched {
        Some(matched) => writeln!(out, "decoder:  {matched}")?,
        None => writeln!(out, "decoder:  none matched (event.dataset: {})", event.get(field::DATASET).unwrap_or("-"))?,
    }
    let width = fields.keys().map(|k| k.len()).max().unwrap_or(0);
    for (name, value) in &fields {
        writeln!(out, "  {name:<width$}  {}", crate::telemetry::escape_controls(value))?;
    }
    writeln!(out)?;
    Ok(())
}

/// Runs `hsmwatch decoders ...`.
pub fn run_decoders(command: DecodersCommand) -> anyhow::Result<()> {
    let DecodersCommand::Check { dir } = command;
    match dir {
        // A decoders directory itself is checked as the decoders of its parent.
        Some(dir) if !dir.join("decoders").is_dir() && dir.is_dir() => {
            let files = RuleSource::Dir(dir.clone()).yaml_files("")?;
            report(&dir.display().to_string(), Decoders::from_files(&files))
        }
        other => {
            let source = RuleSource::resolve(other.as_deref());
            if let RuleSource::Dir(dir) = &source {
                if !dir.join("decoders").is_dir() {
                    return Err(
                        UsageError(format!("{}: no such decoders directory", dir.join("decoders").display())).into()
                    );
                }
            }
            report(&source.describe(), Decoders::load(&source))
        }
    }
}

fn report(what: &str, loaded: Result<Decoders, crate::diagnostic::FileErrors>) -> anyhow::Result<()> {
    let decoders = loaded?;
    let (files, groups, patterns) = decoders.counts();
    writeln!(std::io::stdout(), "{what}: {files} decoder files, {groups} groups, {patterns} patterns: ok")?;
    Ok(())
}
