//! `hsmwatch import FILE...`: replays appliance logs and CloudHSM audit exports into the database.

use std::io::IsTerminal;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::Args;
use tokio::sync::mpsc;

use crate::decode::Decoders;
use crate::event::Event;
use crate::import::{self, ImportFormat, ImportStats, Source};
use crate::metrics::Counters;
use crate::parse::{TimeRules, YearRule};
use crate::store;
use crate::store::inserter::{self, Inserter, InserterSettings};

/// Options of `hsmwatch import`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  hsmwatch import tarlogs.tgz                    # a LunaSH `syslog tarlogs` archive, as is\n  hsmwatch import messages lunalogs.1.gz        # log files, plain or gzipped\n  \
hsmwatch import --format cloudhsm-audit --host hsm-abc123 audit.log\n\n\
Every line goes through the same redact, parse and decode path as the network. A summary per file gives lines, decoded, \
unknown (parsed, no decoder) and unparsed counts, and for CloudHSM exports the sequence gaps found.\n\n\
RFC 3164 times carry no year. A file holds only lines written before it was last modified, so each line takes the latest \
year that puts it no later than the file's modification time (a gzip file's own recorded time, a tar member's); \
--year or --received override that, and the summary says which was used. The same time is the lines' time of receipt \
(event.created), so alerts on an old archive are recorded but not sent (alerts.notify_horizon)."
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
    /// Read the database path and rules directory from this configuration file; with `storage.backend: postgres`
    /// (and no --db) the import goes to the shared database, as this collector's lines.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Rules directory whose decoders/ to use [default: rules.dir of --config, ./rules, else the built-in pack].
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// `builtin`: the decoders built into hsmwatch, whatever the rules directory holds [default: rules.decoders].
    #[arg(long, value_enum, value_name = "FROM")]
    pub decoders: Option<crate::pack::DecodersFrom>,
    /// The year of every RFC 3164 time (they carry none) [default: from each file's modification time].
    #[arg(long, value_name = "YYYY", conflicts_with = "received", value_parser = clap::value_parser!(i32).range(1970..=9999))]
    pub year: Option<i32>,
    /// Date RFC 3164 times as if every file had been written at this time (UTC, RFC 3339 or YYYY-MM-DD) instead of
    /// its modification time: each line takes the latest year not after it.
    #[arg(long, value_name = "TIME", value_parser = crate::config::units::parse_time)]
    pub received: Option<DateTime<Utc>>,
    /// The zone the files' times without an offset are in (RFC 3164, the Luna file layout): an IANA name.
    #[arg(long, value_name = "ZONE", default_value = "UTC", value_parser = crate::config::units::parse_zone)]
    pub timezone: Tz,
}

/// How the year of RFC 3164 times was chosen for one input, for its rules and its summary.
fn year_rule(args: &ImportArgs, modified: Option<DateTime<Utc>>) -> (YearRule, String) {
    let rfc3339 = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match (args.year, args.received, modified) {
        (Some(year), _, _) => (YearRule::Fixed(year), format!("year {year} (--year)")),
        (None, Some(at), _) => (YearRule::NotAfter(at), format!("years up to {} (--received)", rfc3339(at))),
        (None, None, Some(at)) => (YearRule::NotAfter(at), format!("years up to {} (modified)", rfc3339(at))),
        (None, None, None) => {
            let now = Utc::now();
            (YearRule::NotAfter(now), format!("years up to {} (no modification time: now)", rfc3339(now)))
        }
    }
}

/// Where an import stores: SQLite's file through the server's inserter, or the configuration's shared PostgreSQL
/// database as one more collector's batches.
enum Sink {
    /// The SQLite file, its write connection, its event inserter, and background checkpoints as the server's (the
    /// inserter's commits would otherwise copy the WAL and wait for the disk themselves), which run while `stored`
    /// grows.
    Sqlite {
        db: PathBuf,
        conn: store::WriteConn,
        inserter: Inserter,
        stored: Arc<Counters>,
        checkpoints: store::checkpoint::Background,
    },
    /// The shared database.
    Postgres(store::postgres::PgStore),
}

impl Sink {
    /// The configuration's shared database when `storage.backend` is `postgres` and no `--db` is given, else the
    /// SQLite file `db` (created when missing).
    async fn open(config: &crate::config::Config, db: PathBuf, db_given: bool) -> anyhow::Result<Sink> {
        if let Some(url) = super::shared_url(config, db_given)? {
            let settings = &config.storage.postgres;
            let store =
                store::postgres::PgStore::open(&url.0, &settings.collector_name(), settings.dedupe_window).await?;
            return Ok(Sink::Postgres(store));
        }
        let conn = store::open_writer(&db).await?;
        let settings = InserterSettings {
            max_size: None,
            deferred_checkpoints: true,
            compress_after: config.storage.compress_after(),
            min_free: Some(config.storage.min_free),
        };
        let inserter = Inserter::start(inserter::open_connection(&db, settings)?, Arc::default())?;
        let stored = Arc::new(Counters::default());
        let checkpoints = store::checkpoint::Background::start(db.clone(), stored.clone());
        Ok(Sink::Sqlite { db, conn, inserter, stored, checkpoints })
    }

    /// Closes what it opened.
    async fn close(self) -> anyhow::Result<()> {
        if let Sink::Sqlite { conn, inserter, checkpoints, .. } = self {
            checkpoints.stop().await;
            inserter.close().await;
            store::close_writer(conn).await?;
        }
        Ok(())
    }
}

/// Runs the import.
pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let (config, db) = super::config_and_database(args.config.as_deref(), args.db.as_deref())?;
    let pack = super::pack_of(&config.rules, args.rules.as_deref(), args.decoders)?;
    let decoders = Arc::new(Decoders::load(&pack.decoders)?);
    let mut sink = Sink::open(&config, db, args.db.is_some()).await?;
    let mut total = ImportStats::default();
    let mut inputs = 0;
    for file in &args.files {
        let host = args.host.clone().or_else(|| file.file_stem().map(|s| s.to_string_lossy().into_owned()));
        for Input { name, modified, reader } in open_inputs(file)? {
            let (year, dating) = year_rule(&args, modified);
            let time_rules = TimeRules { zone: args.timezone, year };
            // A line was received, at the latest, when its file was last written: an archive's lines count as old
            // receipts (`event.created`), so alerts on them are recorded but do not page (alerts.notify_horizon).
            let now = Utc::now();
            let received = args.received.or(modified).map_or(now, |at| at.min(now));
            let source = Source { name: name.clone(), host: host.clone(), received, time_rules };
            let (stats, already) = import_file(reader, args.format, source, decoders.clone(), &mut sink)
                .await
                .with_context(|| format!("importing {name}"))?;
            let already =
                if already > 0 { format!(" ({already} of them stored already: not again)") } else { String::new() };
            writeln!(std::io::stdout(), "{name}: {}{already}; {dating}", summary(&stats))?;
            total = add(total, stats);
            inputs += 1;
        }
    }
    if inputs > 1 {
        writeln!(std::io::stdout(), "total: {}", summary(&total))?;
    }
    sink.close().await
}

/// A readable input: its name, when it was last modified (when known), its content.
struct Input {
    name: String,
    modified: Option<DateTime<Utc>>,
    reader: Box<dyn std::io::BufRead + Send>,
}

/// A Unix time in seconds as a time, when it is one (0 means "not recorded" in gzip and tar headers). A time past
/// the year 9999 is taken as not recorded: no log line has one, and year arithmetic near the end of the calendar
/// would overflow.
fn unix_time(seconds: u64) -> Option<DateTime<Utc>> {
    use chrono::Datelike;
    DateTime::from_timestamp(i64::try_from(seconds).ok()?, 0).filter(|at| seconds > 0 && at.year() <= 9999)
}

/// The modification time a gzip stream recorded for the file it compressed, else `fallback`.
fn gzip_modified<R: std::io::Read>(
    gzip: &flate2::read::GzDecoder<R>,
    fallback: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    gzip.header().and_then(|header| unix_time(u64::from(header.mtime()))).or(fallback)
}

/// The inputs of one file: the file itself, its decompressed content (`.gz`), or every regular file of a tar archive
/// (`.tar`, `.tar.gz`, `.tgz`: what LunaSH `syslog tarlogs` produces), each gzipped member decompressed too. Each
/// carries its own modification time: the file's, the one gzip recorded, the tar member's.
fn open_inputs(path: &std::path::Path) -> anyhow::Result<Vec<Input>> {
    let name = path.display().to_string();
    let open = || std::fs::File::open(path).with_context(|| format!("cannot open {name}"));
    let file_modified = std::fs::metadata(path).and_then(|m| m.modified()).ok().map(DateTime::<Utc>::from);
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
            let mut modified = entry.header().mtime().ok().and_then(unix_time);
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes)
                .with_context(|| format!("cannot read {name}:{member}"))?;
            if member.ends_with(".gz") {
                let mut plain = Vec::new();
                let mut gzip = flate2::read::GzDecoder::new(&bytes[..]);
                std::io::Read::read_to_end(&mut gzip, &mut plain)
                    .with_context(|| format!("cannot decompress {name}:{member}"))?;
                modified = gzip_modified(&gzip, modified);
                bytes = plain;
            }
            let reader = Box::new(std::io::Cursor::new(bytes));
            inputs.push(Input { name: format!("{name}:{member}"), modified, reader });
        }
        return Ok(inputs);
    }
    if lower.ends_with(".gz") {
        let gzip = flate2::read::GzDecoder::new(open()?);
        let modified = gzip_modified(&gzip, file_modified);
        return Ok(vec![Input { name, modified, reader: Box::new(std::io::BufReader::new(gzip)) }]);
    }
    let reader = Box::new(std::io::BufReader::new(open()?));
    Ok(vec![Input { name, modified: file_modified, reader }])
}

/// Reads on a blocking thread and stores on this task, joined by a small bounded channel, so memory stays bounded
/// whatever the size of the file. Returns the file's figures and, on PostgreSQL, how many of its events the database
/// held already (the same lines imported or received before: stored once).
async fn import_file(
    reader: Box<dyn std::io::BufRead + Send>,
    format: ImportFormat,
    source: Source,
    decoders: Arc<Decoders>,
    sink: &mut Sink,
) -> anyhow::Result<(ImportStats, u64)> {
    let (batches, mut received) = mpsc::channel::<Vec<Event>>(2);
    let name = source.name.clone();
    let reading = tokio::task::spawn_blocking(move || {
        import::read(reader, format, &source, &decoders, |batch| batches.blocking_send(batch), |_| {})
    });
    let mut progress = Progress::new(&name);
    let already = match sink {
        Sink::Sqlite { db, conn, inserter, stored, .. } => {
            store_in_sqlite(&mut received, db, conn, inserter, stored, &mut progress).await?;
            0
        }
        Sink::Postgres(store) => store_in_postgres(&mut received, store, &mut progress).await?,
    };
    progress.done();
    Ok((reading.await?.map_err(|e| anyhow::anyhow!("{e}"))?, already))
}

/// Events stored so far, on stderr when it is a terminal.
struct Progress<'a> {
    name: &'a str,
    shown: bool,
    last_shown: Instant,
    stored: u64,
}

impl<'a> Progress<'a> {
    fn new(name: &'a str) -> Self {
        Progress { name, shown: std::io::stderr().is_terminal(), last_shown: Instant::now(), stored: 0 }
    }

    fn add(&mut self, events: usize) {
        self.stored += events as u64;
        if self.shown && self.last_shown.elapsed() > Duration::from_millis(250) {
            let _ = write!(std::io::stderr(), "\r{}: {} events stored", self.name, self.stored);
            self.last_shown = Instant::now();
        }
    }

    fn done(&self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

/// Stores batches through SQLite's inserter (which counts their hourly activity in each batch's transaction), counting
/// them in the inventory as received lines are.
async fn store_in_sqlite(
    received: &mut mpsc::Receiver<Vec<Event>>,
    db: &std::path::Path,
    conn: &mut store::WriteConn,
    inserter: &Inserter,
    counters: &Counters,
    progress: &mut Progress<'_>,
) -> anyhow::Result<()> {
    let mut inventory = crate::inventory::Inventory::load(&store::open_reader(db).await?).await?;
    let Some(first) = received.recv().await else { return Ok(()) };
    // The next batch is queued before the one before it is committed, so that the inserter never waits for this task
    // (and encodes each batch while it commits the one before); a batch is counted while the next one is inserted.
    let mut committing = inserter.queue_after(first);
    loop {
        let next = received.recv().await.map(|batch| inserter.queue_after(batch));
        let (committed, outcome) = committing.await;
        outcome?;
        Counters::add(&counters.stored, committed.len() as u64);
        inventory.observe(&committed);
        progress.add(committed.len());
        match next {
            Some(next) => committing = next,
            None => break,
        }
    }
    inventory.save(conn).await?;
    Ok(())
}

/// Events a PostgreSQL batch holds at most: one statement of arrays each.
const POSTGRES_BATCH: usize = 2_000;

/// Stores batches in the shared database as this collector's (the hourly activity is counted in each batch's
/// transaction there); returns how many events it held already.
async fn store_in_postgres(
    received: &mut mpsc::Receiver<Vec<Event>>,
    store: &store::postgres::PgStore,
    progress: &mut Progress<'_>,
) -> anyhow::Result<u64> {
    let mut already = 0;
    while let Some(batch) = received.recv().await {
        for chunk in batch.chunks(POSTGRES_BATCH) {
            let stored = store.insert_batch(chunk).await?;
            already += (chunk.len() - stored.stored) as u64;
            progress.add(chunk.len());
        }
    }
    Ok(already)
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
