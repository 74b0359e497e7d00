//! `hsmwatch import FILE...`: replays appliance logs and CloudHSM audit exports into the database.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use tokio::sync::mpsc;

use crate::decode::Decoders;
use crate::event::Event;
use crate::import::{self, ImportFormat, ImportStats, Source};
use crate::store;
use crate::store::inserter::{self, Inserter, InserterSettings};

/// Options of `hsmwatch import`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  hsmwatch import tarlogs.tgz                    # a LunaSH `syslog tarlogs` archive, as is\n  hsmwatch import messages lunalogs.1.gz        # log files, plain or gzipped\n  \
hsmwatch import --format cloudhsm-audit --host hsm-abc123 audit.log\n\n\
Every line goes through the same redact, parse and decode path as the network. A summary per file gives lines, decoded, \
unknown (parsed, no decoder) and unparsed counts, and for CloudHSM exports the sequence gaps found."
)]
pub struct ImportArgs {
    /// Files to import: logs (plain or .gz), or tar archives (.tar, .tar.gz, .tgz) whose every file is imported.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// What the files hold.
    #[arg(long, value_enum, default_value_t = ImportFormat::Auto)]
    pub format: ImportFormat,
    /// host.name for records that name no host (CloudHSM exports) [default: the file name without extension].
    #[arg(long)]
    pub host: Option<String>,
    /// Database file [default: storage.path of --config, else hsmwatch.db]; created when missing.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Read the database path and rules directory from this configuration file.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Rules directory whose decoders/ to use [default: rules.dir of --config, ./rules, else the built-in pack].
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
}

/// Runs the import.
pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let (config, db) = super::config_and_database(args.config.as_deref(), args.db.as_deref())?;
    let rules = args.rules.clone().or(config.rules.dir);
    let decoders = Arc::new(Decoders::load(&super::decode_cmd::rule_source(rules.as_deref()))?);
    let mut conn = store::open_writer(&db).await?;
    let inserter = Inserter::start(inserter::open_connection(&db, InserterSettings::default())?)?;
    let mut total = ImportStats::default();
    let mut inputs = 0;
    for file in &args.files {
        let host = args.host.clone().or_else(|| file.file_stem().map(|s| s.to_string_lossy().into_owned()));
        for (name, reader) in open_inputs(file)? {
            let source = Source { name: name.clone(), host: host.clone(), received: Utc::now() };
            let stats = import_file(reader, args.format, source, decoders.clone(), &mut conn, &inserter)
                .await
                .with_context(|| format!("importing {name}"))?;
            println!("{name}: {}", summary(&stats));
            total = add(total, stats);
            inputs += 1;
        }
    }
    if inputs > 1 {
        println!("total: {}", summary(&total));
    }
    inserter.close().await;
    store::close_writer(conn).await?;
    Ok(())
}

/// A readable input with its name.
type Input = (String, Box<dyn std::io::BufRead + Send>);

/// The inputs of one file: the file itself, its decompressed content (`.gz`), or every regular file of a tar archive
/// (`.tar`, `.tar.gz`, `.tgz`: what LunaSH `syslog tarlogs` produces), each gzipped member decompressed too.
fn open_inputs(path: &std::path::Path) -> anyhow::Result<Vec<Input>> {
    let name = path.display().to_string();
    let open = || std::fs::File::open(path).with_context(|| format!("cannot open {name}"));
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".tar") || lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        let file = open()?;
        let reader: Box<dyn std::io::Read> =
            if lower.ends_with(".tar") { Box::new(file) } else { Box::new(flate2::read::GzDecoder::new(file)) };
        let mut archive = tar::Archive::new(reader);
        let mut inputs: Vec<Input> = Vec::new();
        for entry in archive.entries().with_context(|| format!("cannot read archive {name}"))? {
            let mut entry = entry.with_context(|| format!("cannot read archive {name}"))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let member = entry.path().map(|p| p.display().to_string()).unwrap_or_default();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes)
                .with_context(|| format!("cannot read {name}:{member}"))?;
            if member.ends_with(".gz") {
                let mut plain = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut plain)
                    .with_context(|| format!("cannot decompress {name}:{member}"))?;
                bytes = plain;
            }
            inputs.push((format!("{name}:{member}"), Box::new(std::io::Cursor::new(bytes))));
        }
        return Ok(inputs);
    }
    if lower.ends_with(".gz") {
        let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(open()?));
        return Ok(vec![(name, Box::new(reader))]);
    }
    let reader = std::io::BufReader::new(open()?);
    Ok(vec![(name, Box::new(reader))])
}

/// Reads on a blocking thread and stores on this task, joined by a small bounded channel, so memory stays bounded
/// whatever the size of the file.
async fn import_file(
    reader: Box<dyn std::io::BufRead + Send>,
    format: ImportFormat,
    source: Source,
    decoders: Arc<Decoders>,
    conn: &mut sqlx::SqliteConnection,
    inserter: &Inserter,
) -> anyhow::Result<ImportStats> {
    let (batches, mut received) = mpsc::channel::<Vec<Event>>(4);
    let name = source.name.clone();
    let reading = tokio::task::spawn_blocking(move || {
        import::read(reader, format, &source, &decoders, |batch| batches.blocking_send(batch), |_| {})
    });
    let show_progress = std::io::stderr().is_terminal();
    let mut last_shown = Instant::now();
    let mut stored = 0u64;
    // Imported lines count in the inventory and the dashboard's hourly activity as received ones do.
    let mut inventory = crate::inventory::Inventory::load(conn).await?;
    let mut activity = crate::activity::Activity::default();
    while let Some(batch) = received.recv().await {
        let (batch, outcome) = inserter.insert(batch).await;
        outcome?;
        inventory.observe(&batch);
        activity.observe(&batch);
        stored += batch.len() as u64;
        if show_progress && last_shown.elapsed() > Duration::from_millis(250) {
            eprint!("\r{name}: {stored} events stored");
            last_shown = Instant::now();
        }
    }
    if show_progress {
        eprint!("\r\x1b[K");
    }
    inventory.save(conn).await?;
    activity.save(conn).await?;
    reading.await?.map_err(|e| anyhow::anyhow!("{e}"))
}

fn summary(stats: &ImportStats) -> String {
    let mut text = format!(
        "{} lines, {} events: {} decoded, {} unknown, {} unparsed",
        stats.lines, stats.events, stats.decoded, stats.unknown, stats.unparsed
    );
    if stats.sequence_gaps > 0 {
        text.push_str(&format!(", {} audit sequence gaps", stats.sequence_gaps));
    }
    text
}

fn add(a: ImportStats, b: ImportStats) -> ImportStats {
    ImportStats {
        lines: a.lines + b.lines,
        events: a.events + b.events,
        decoded: a.decoded + b.decoded,
        unknown: a.unknown + b.unknown,
        unparsed: a.unparsed + b.unparsed,
        sequence_gaps: a.sequence_gaps + b.sequence_gaps,
    }
}
