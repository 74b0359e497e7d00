//! `hsmwatch verify` (the tamper-evident chain), `hsmwatch db stats` (sizes and row counts) and `hsmwatch db
//! migrate-to postgres` (a SQLite database copied into PostgreSQL).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::store::chain::{self, Finding};
use crate::store::open_reader;

/// Where the database is.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// Database file [default: storage.path of --config, else hsmwatch.db].
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Read the database path (and retention settings) from this configuration file; `db stats` reads the shared
    /// database of `storage.backend: postgres`.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Database subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Sizes, row counts, the chain's anchor and the retention in force (works while the server runs); on the
    /// configuration's PostgreSQL database: its size, the events and their months, copies, collectors, the search
    /// index and the leader.
    Stats(DbArgs),
    /// Copy a SQLite database into the empty PostgreSQL database of `storage.postgres` (events with their ids, the
    /// tamper-evident chain, alerts and their history, the outbox, silences, throttle marks, rule state and cursor),
    /// in one transaction, with progress; then check the copy: row counts on both sides and `verify` on the target.
    /// Stop the SQLite server first (a running one goes on writing after the snapshot the copy reads); the SQLite file
    /// is brought up to this version's schema first, as the server's next start would.
    #[command(name = "migrate-to")]
    MigrateTo(MigrateArgs),
}

/// Where `db migrate-to` copies from and to.
#[derive(Debug, Args)]
#[command(after_help = "The target's URL comes from storage.postgres (url_env or url_file; neither: the environment \
variable HSMWATCH_DATABASE_URL), its collector name (the copied events' observer) from storage.postgres.collector, \
else the host's name. What only SQLite keeps so far is not copied: SNMP and cloud state and the inventory's facts (the shared database derives which collector hears each host from the events). Exit 0 when every \
table has as many rows on both sides and the target's chain verifies, 1 otherwise.")]
pub struct MigrateArgs {
    /// The backend to copy to.
    #[arg(value_enum)]
    pub target: MigrateTarget,
    /// SQLite database file to copy [default: storage.path of --config, else hsmwatch.db].
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Configuration file: storage.path (the source) and storage.postgres (the target).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// A backend `db migrate-to` copies to.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MigrateTarget {
    /// The PostgreSQL database of storage.postgres.
    Postgres,
}

/// Runs `hsmwatch verify` (on the configuration's PostgreSQL database when `storage.backend` is `postgres` and no
/// `--db` is given): exit 0 when the chain is intact, 1 when it is broken (the message names the batch).
pub async fn verify(args: DbArgs) -> anyhow::Result<()> {
    let (config, path) = super::config_and_database(args.config.as_deref(), args.db.as_deref())?;
    let reader = super::reader_for(&config, &path, args.db.is_some()).await?;
    let finding = chain::verify(&reader).await?;
    let mut out = std::io::stdout().lock();
    match finding {
        Finding::Intact { batches, events, prunes, head, anchor, unchained, anchor_unrecorded } => {
            let (head_hash, head_record) = head.map_or((chain::GENESIS.to_owned(), None), |h| (h.hash, Some(h.record)));
            if args.json {
                let json = serde_json::json!({
                    "intact": true,
                    "batches": batches,
                    "events": events,
                    "prunes": prunes,
                    "head": head_hash,
                    "head_record": head_record,
                    "anchor": {
                        "last_event_id": anchor.last_event_id,
                        "hash": anchor.hash,
                        "pruned_batches": anchor.pruned_batches,
                        "pruned_events": anchor.pruned_events,
                    },
                    "unchained_events": unchained,
                    "anchor_unrecorded": anchor_unrecorded,
                });
                writeln!(out, "{json}")?;
            } else {
                writeln!(out, "intact: {batches} batches, {events} events; head {head_hash}")?;
                if prunes > 0 {
                    writeln!(
                        out,
                        "{prunes} prune record(s); the anchor is after event {} ({} batches, {} events pruned)",
                        anchor.last_event_id, anchor.pruned_batches, anchor.pruned_events
                    )?;
                }
                if unchained > 0 {
                    writeln!(out, "note: {unchained} events were stored before the chain existed and are not covered")?;
                }
                if anchor_unrecorded {
                    writeln!(
                        out,
                        "note: an earlier version moved the anchor without a prune record; the server records one at \
                         its next start"
                    )?;
                }
            }
            Ok(())
        }
        Finding::Broken { batch, reason } => {
            let what = match &batch {
                Some(b) => format!(
                    "batch {} (events {}-{}, stored {})",
                    b.id,
                    b.first_event_id,
                    b.last_event_id,
                    b.stored_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                None => "after the last batch".to_owned(),
            };
            if args.json {
                let json =
                    serde_json::json!({"intact": false, "batch": batch.as_ref().map(|b| b.id), "reason": reason});
                writeln!(out, "{json}")?;
            }
            Err(anyhow::anyhow!("TAMPERED: {what}: {reason}"))
        }
    }
}

/// `db stats` of the PostgreSQL database at `url`.
async fn shared_stats(config: &crate::config::Config, url: &str, json: bool) -> anyhow::Result<()> {
    let stats = crate::store::postgres::shared_stats(url).await?;
    let mut out = std::io::stdout().lock();
    let keep = |d: Option<std::time::Duration>| {
        d.map_or_else(|| "forever".to_owned(), |d| humantime::format_duration(d).to_string())
    };
    if json {
        let mut value = serde_json::json!(stats);
        value["oldest_event"] = micros_to_text(stats.oldest_event).into();
        value["newest_event"] = micros_to_text(stats.newest_event).into();
        value["retention"] = keep(config.storage.retention).into();
        value["alert_retention"] = keep(config.storage.alert_retention).into();
        writeln!(out, "{value}")?;
        return Ok(());
    }
    writeln!(out, "database      PostgreSQL {} ({:.1} MiB)", stats.server, stats.bytes as f64 / 1048576.0)?;
    writeln!(
        out,
        "events        {} (oldest {}, newest {}) in {} month(s)",
        stats.events,
        micros_to_text(stats.oldest_event),
        micros_to_text(stats.newest_event),
        stats.months.len()
    )?;
    let collectors: Vec<String> = stats.collectors.iter().map(|(name, n)| format!("{name} {n}")).collect();
    writeln!(out, "collectors    {} (lines received); {} copies", collectors.join(", "), stats.copies)?;
    writeln!(
        out,
        "search index  {} runs of up to {} events ({:.1} MiB)",
        stats.search_runs,
        1 << crate::store::search::BLOCK_SHIFT,
        stats.search_bytes as f64 / 1048576.0
    )?;
    writeln!(
        out,
        "chain         {} records; anchor after event {} ({} batches, {} events pruned)",
        stats.batches, stats.anchor.last_event_id, stats.anchor.pruned_batches, stats.anchor.pruned_events
    )?;
    match &stats.leader {
        Some((holder, term, until)) => writeln!(out, "leader        {holder} (term {term}, lease until {until})")?,
        None => writeln!(out, "leader        none yet")?,
    }
    writeln!(out, "rule cursor   after event {}", stats.rule_cursor)?;
    writeln!(out, "alerts        {}", stats.alerts)?;
    let outbox: Vec<String> = stats.outbox.iter().map(|(status, n)| format!("{status} {n}")).collect();
    writeln!(out, "outbox        {}", if outbox.is_empty() { "empty".to_owned() } else { outbox.join(", ") })?;
    writeln!(out, "silences      {}", stats.silences)?;
    writeln!(out, "hosts         {}", stats.hosts)?;
    writeln!(
        out,
        "retention     events {}, alerts {}",
        keep(config.storage.retention),
        keep(config.storage.alert_retention)
    )?;
    Ok(())
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn micros_to_text(micros: Option<i64>) -> String {
    micros
        .and_then(chrono::DateTime::from_timestamp_micros)
        .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Runs a db subcommand.
pub async fn run(command: DbCommand) -> anyhow::Result<()> {
    match command {
        DbCommand::Stats(args) => stats(args).await,
        DbCommand::MigrateTo(args) => migrate_to(args).await,
    }
}

/// Runs `db migrate-to postgres`.
async fn migrate_to(args: MigrateArgs) -> anyhow::Result<()> {
    let MigrateTarget::Postgres = args.target;
    let (config, path) = super::config_and_database(args.config.as_deref(), args.db.as_deref())?;
    if !path.exists() {
        anyhow::bail!("no SQLite database at {}: pass --db or --config to name it", path.display());
    }
    let settings = &config.storage.postgres;
    let url = settings.url().map_err(|problem| {
        anyhow::anyhow!("cannot read the PostgreSQL URL ({}): {}", problem.field, problem.message)
    })?;
    // The source is brought up to this version's schema first, as the server would at its next start: the copy reads
    // the columns this version describes.
    crate::store::close_writer(crate::store::open_writer(&path).await?).await?;
    let source = open_reader(&path).await?;
    let target =
        crate::store::postgres::PgStore::open(&url.0, &settings.collector_name(), settings.dedupe_window).await?;
    eprintln!("copying {} to PostgreSQL {} as collector {}", path.display(), target.server(), target.collector());
    let started = std::time::Instant::now();
    let mut report = ProgressReport::default();
    let counts = crate::store::postgres::migrate::copy_sqlite(&source, &target, &mut |p| report.show(p)).await?;
    eprintln!("copied in {:.1} s", started.elapsed().as_secs_f64());
    let mut out = std::io::stdout().lock();
    let mut differ = Vec::new();
    for count in &counts {
        writeln!(out, "{:<15} {} rows copied, {} in the target", count.table, count.source, count.target)?;
        if count.source != count.target {
            differ.push(count.table.clone());
        }
    }
    let finding = chain::verify(&target.reader()).await?;
    match &finding {
        Finding::Intact { batches, events, head, .. } => writeln!(
            out,
            "verify on the target: intact, {batches} batches, {events} events; head {}",
            head.as_ref().map_or(chain::GENESIS, |h| h.hash.as_str())
        )?,
        Finding::Broken { batch, reason } => {
            writeln!(out, "verify on the target: BROKEN: {}{reason}", record_of(batch))?
        }
    }
    if !differ.is_empty() {
        anyhow::bail!("the copy differs from the source in: {}", differ.join(", "));
    }
    if let Finding::Broken { batch, reason } = finding {
        // Told apart: a source altered before the copy (the copy is faithful) and a copy that differs from its source.
        let source_finding = chain::verify(&source).await?;
        let faithful = matches!(&source_finding, Finding::Broken { batch: source_batch, .. }
            if source_batch.as_ref().map(|b| b.id) == batch.as_ref().map(|b| b.id));
        if faithful {
            anyhow::bail!(
                "the chain does not verify on the source either, at the same record ({}{reason}): the SQLite database \
                 was altered before the copy, which is faithful to it",
                record_of(&batch)
            );
        }
        anyhow::bail!("the target's chain does not verify where the source's does: {}{reason}", record_of(&batch));
    }
    Ok(())
}

/// "batch N: " for a finding's record, or nothing.
fn record_of(batch: &Option<chain::Batch>) -> String {
    batch.as_ref().map_or_else(String::new, |b| format!("batch {}: ", b.id))
}

/// Progress of a copy on stderr: a line a second at most, and one at the end of each table.
#[derive(Default)]
struct ProgressReport {
    table: String,
    last: Option<std::time::Instant>,
    table_started: Option<std::time::Instant>,
}

impl ProgressReport {
    fn show(&mut self, progress: crate::store::postgres::migrate::Progress) {
        use crate::store::postgres::migrate::Progress;
        let Progress::Rows { table, copied, total } = progress else {
            eprintln!("building the indexes of the events");
            return;
        };
        let now = std::time::Instant::now();
        if self.table != table {
            self.table = table.to_owned();
            self.table_started = Some(now);
            self.last = None;
        }
        let done = copied >= total;
        if !done && self.last.is_some_and(|last| now.duration_since(last) < std::time::Duration::from_secs(1)) {
            return;
        }
        self.last = Some(now);
        let seconds = self.table_started.map_or(0.0, |at| now.duration_since(at).as_secs_f64()).max(0.001);
        let percent = if total == 0 { 100.0 } else { copied as f64 * 100.0 / total as f64 };
        eprintln!("{table}: {copied} of {total} rows ({percent:.0} %), {:.0} rows/s", copied as f64 / seconds);
    }
}

/// Runs `db stats`.
async fn stats(args: DbArgs) -> anyhow::Result<()> {
    let (config, path) = super::config_and_database(args.config.as_deref(), args.db.as_deref())?;
    if let Some(url) = super::shared_url(&config, args.db.is_some())? {
        return shared_stats(&config, &url.0, args.json).await;
    }
    let reader = open_reader(&path).await?;
    let wal = crate::store::wal_path(&path);
    let counts = crate::store::stats::stats(&reader).await?;
    let anchor = chain::anchor(&reader).await?;
    let outbox = &counts.outbox;
    let stats = serde_json::json!({
        "path": path.display().to_string(),
        "file_bytes": file_size(&path),
        "wal_bytes": file_size(&wal),
        "page_size": counts.page_size,
        "pages": counts.pages,
        "free_pages": counts.free_pages,
        "events": counts.events,
        "oldest_event": micros_to_text(counts.oldest_event),
        "newest_event": micros_to_text(counts.newest_event),
        "batches": counts.batches,
        "anchor_event_id": anchor.state.last_event_id,
        "pruned_batches": anchor.state.pruned_batches,
        "pruned_events": anchor.state.pruned_events,
        "alerts": counts.alerts,
        "outbox": outbox,
        "silences": counts.silences,
        "hosts": counts.hosts,
        "retention": config.storage.retention.map(|d| humantime::format_duration(d).to_string()),
        "alert_retention": config.storage.alert_retention.map(|d| humantime::format_duration(d).to_string()),
    });
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{stats}")?;
        return Ok(());
    }
    let mib = |bytes: &serde_json::Value| format!("{:.1} MiB", bytes.as_u64().unwrap_or(0) as f64 / 1048576.0);
    writeln!(
        out,
        "database      {} (file {}, WAL {})",
        stats["path"].as_str().unwrap_or("-"),
        mib(&stats["file_bytes"]),
        mib(&stats["wal_bytes"])
    )?;
    writeln!(out, "pages         {} of {} bytes, {} free", stats["pages"], stats["page_size"], stats["free_pages"])?;
    writeln!(
        out,
        "events        {} (oldest {}, newest {})",
        stats["events"],
        stats["oldest_event"].as_str().unwrap_or("-"),
        stats["newest_event"].as_str().unwrap_or("-")
    )?;
    writeln!(
        out,
        "chain         {} batches; anchor after event {} ({} batches, {} events pruned)",
        stats["batches"], anchor.state.last_event_id, anchor.state.pruned_batches, anchor.state.pruned_events
    )?;
    writeln!(out, "alerts        {}", stats["alerts"])?;
    let outbox: Vec<String> = outbox.iter().map(|(status, n)| format!("{status} {n}")).collect();
    writeln!(out, "outbox        {}", if outbox.is_empty() { "empty".to_owned() } else { outbox.join(", ") })?;
    writeln!(out, "silences      {}", stats["silences"])?;
    writeln!(out, "hosts         {}", stats["hosts"])?;
    let keep = |v: &serde_json::Value| v.as_str().map_or_else(|| "forever".to_owned(), str::to_owned);
    writeln!(out, "retention     events {}, alerts {}", keep(&stats["retention"]), keep(&stats["alert_retention"]))?;
    Ok(())
}
