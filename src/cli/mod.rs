//! The command line: clap types and one file per subcommand.

mod alerts_cmd;
mod cloud_cmd;
mod config_cmd;
mod db_cmd;
mod decode_cmd;
mod hosts_cmd;
mod import;
mod notify_cmd;
mod query;
mod rules_cmd;
mod serve;
mod silence_cmd;
mod snmp_cmd;

use clap::{Parser, Subcommand};

/// `hsmwatch --version`: the crate version and the git revision it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("HSMWATCH_GIT_REV"), ")");

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for a runtime error (database, network, I/O).
pub const EXIT_RUNTIME: u8 = 1;
/// Exit code for a usage or configuration error.
pub const EXIT_USAGE: u8 = 2;

/// hsmwatch collects syslog from Thales/SafeNet Luna Network HSMs and AWS CloudHSM, stores every line in SQLite and
/// lets you query it.
#[derive(Debug, Parser)]
#[command(
    name = "hsmwatch",
    version = VERSION,
    about,
    args_override_self = true,
    after_help = "Exit codes: 0 success, 1 runtime error, 2 usage or configuration error.\nLogging: -v / -vv, or RUST_LOG (e.g. RUST_LOG=hsmwatch=debug)."
)]
pub struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector: receive syslog over UDP and TCP and store every line.
    #[command(long_about = serve::LONG_ABOUT)]
    Serve(serve::ServeArgs),
    /// Print stored events, newest first (works while the server runs).
    Query(query::QueryArgs),
    /// Replay appliance log files or AWS CloudHSM audit exports into the database.
    Import(import::ImportArgs),
    /// Show how a line is parsed and decoded: its format, the decoder that matched, every field.
    Decode(decode_cmd::DecodeArgs),
    /// Work with decoder files.
    #[command(subcommand)]
    Decoders(decode_cmd::DecodersCommand),
    /// Check rule files and run their tests.
    #[command(subcommand)]
    Rules(rules_cmd::RulesCommand),
    /// Look at recorded alerts.
    #[command(subcommand)]
    Alerts(alerts_cmd::AlertsCommand),
    /// The HSM inventory: every host that reports, its last signs of life and open alerts.
    Hosts(hosts_cmd::HostsArgs),
    /// The AWS CloudHSM inventory: accounts, regions, clusters, HSMs and backups with their ages.
    Cloud(cloud_cmd::CloudArgs),
    /// Work with notifiers.
    #[command(subcommand)]
    Notify(notify_cmd::NotifyCommand),
    /// Poll Luna appliances over SNMPv3 by hand.
    #[command(subcommand)]
    Snmp(snmp_cmd::SnmpCommand),
    /// Hold back notifications for a while (maintenance); alerts are still recorded.
    #[command(subcommand)]
    Silence(silence_cmd::SilenceCommand),
    /// Print or check configuration files.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Check the tamper-evident chain of stored events: names the first batch where a row was deleted, altered or
    /// inserted (exit 1), or prints the head hash to record elsewhere (exit 0).
    Verify(db_cmd::DbArgs),
    /// Look at the database.
    #[command(subcommand)]
    Db(db_cmd::DbCommand),
}

/// The tracing level a command logs at without -v or RUST_LOG.
pub fn default_log_level(cli: &Cli) -> &'static str {
    match (&cli.command, cli.verbose) {
        (_, 1) => "debug",
        (_, v) if v >= 2 => "trace",
        (Command::Serve(_), _) => "info",
        _ => "warn",
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Query(args) => query::run(args).await,
        Command::Import(args) => import::run(args).await,
        Command::Decode(args) => decode_cmd::run_decode(args),
        Command::Decoders(command) => decode_cmd::run_decoders(command),
        Command::Rules(command) => rules_cmd::run(command).await,
        Command::Alerts(command) => alerts_cmd::run(command).await,
        Command::Hosts(args) => hosts_cmd::run(args).await,
        Command::Cloud(args) => cloud_cmd::run(args).await,
        Command::Notify(command) => notify_cmd::run(command).await,
        Command::Snmp(command) => snmp_cmd::run(command).await,
        Command::Silence(command) => silence_cmd::run(command).await,
        Command::Config(command) => config_cmd::run(command),
        Command::Verify(args) => db_cmd::verify(args).await,
        Command::Db(command) => db_cmd::run(command).await,
    }
}

/// The exit code for an error: 2 for configuration and usage errors, else 1.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    let usage = error.chain().any(|cause| {
        cause.is::<crate::config::ConfigError>()
            || cause.is::<crate::diagnostic::FileErrors>()
            || cause.is::<crate::config::notifiers::NotifierError>()
            || cause.is::<UsageError>()
            || cause.is::<crate::listen::tls::TlsError>()
            || cause.is::<crate::config::snmp::SnmpConfigError>()
            || cause.downcast_ref::<crate::http::HttpError>().is_some_and(crate::http::HttpError::is_configuration)
            || cause.downcast_ref::<crate::app::AppError>().is_some_and(crate::app::AppError::is_configuration)
    });
    if usage {
        EXIT_USAGE
    } else {
        EXIT_RUNTIME
    }
}

/// Whether a command failed only because its output's reader went away (a closed pipe).
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    // A JSON writer's error does not name the I/O error among its causes: it is asked.
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().map(std::io::Error::kind) == broken
            || cause.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind) == broken
    })
}

/// The configuration a command reads (`--config FILE`, else the defaults) and the database it uses (`--db` wins over
/// the configuration's `storage.path`).
pub fn config_and_database(
    config: Option<&std::path::Path>,
    db: Option<&std::path::Path>,
) -> anyhow::Result<(crate::config::Config, std::path::PathBuf)> {
    let config = match config {
        Some(path) => crate::config::Config::load(path)?,
        None => crate::config::Config::default(),
    };
    let db = db.map_or_else(|| config.storage.path.clone(), std::path::Path::to_path_buf);
    Ok((config, db))
}

/// What a command reads: the configuration's PostgreSQL database when `storage.backend` is `postgres` and no `--db`
/// names a SQLite file, else the SQLite file `db`.
pub async fn reader_for(
    config: &crate::config::Config,
    db: &std::path::Path,
    db_given: bool,
) -> anyhow::Result<crate::store::Reader> {
    match shared_url(config, db_given)? {
        Some(url) => Ok(crate::store::postgres::open_reader(&url.0).await?),
        None => Ok(crate::store::open_reader(db).await?),
    }
}

/// A write connection a command opens on the tables both backends hold: the SQLite file (created and migrated), or
/// the configuration's PostgreSQL database.
pub enum CommandWriter {
    /// The SQLite file's write connection.
    Sqlite(crate::store::WriteConn),
    /// A connection to the shared database.
    Postgres(crate::store::PooledConn),
}

impl crate::store::TableConn for CommandWriter {
    fn tables(&mut self) -> crate::store::tables::Tables<'_> {
        match self {
            CommandWriter::Sqlite(conn) => conn.tables(),
            CommandWriter::Postgres(conn) => conn.tables(),
        }
    }

    fn backend(&self) -> crate::store::Backend {
        match self {
            CommandWriter::Sqlite(conn) => conn.backend(),
            CommandWriter::Postgres(conn) => conn.backend(),
        }
    }
}

impl CommandWriter {
    /// Closes it (SQLite's checkpoints its WAL).
    pub async fn close(self) -> anyhow::Result<()> {
        if let CommandWriter::Sqlite(conn) = self {
            crate::store::close_writer(conn).await?;
        }
        Ok(())
    }
}

/// What a command writes on: as [`reader_for`] chooses.
pub async fn writer_for(
    config: &crate::config::Config,
    db: &std::path::Path,
    db_given: bool,
) -> anyhow::Result<CommandWriter> {
    match shared_url(config, db_given)? {
        Some(url) => Ok(CommandWriter::Postgres(crate::store::postgres::open_connection(&url.0).await?)),
        None => Ok(CommandWriter::Sqlite(crate::store::open_writer(db).await?)),
    }
}

/// The PostgreSQL URL a command uses: when `storage.backend` is `postgres` and no `--db` names a SQLite file.
pub(super) fn shared_url(
    config: &crate::config::Config,
    db_given: bool,
) -> anyhow::Result<Option<crate::config::secret::Secret>> {
    if config.storage.backend != crate::config::StorageBackend::Postgres || db_given {
        return Ok(None);
    }
    let url = config.storage.postgres.url().map_err(|problem| {
        anyhow::anyhow!("cannot read the PostgreSQL URL ({}): {}", problem.field, problem.message)
    })?;
    Ok(Some(url))
}

/// The rules and decoders a command uses: `--rules DIR` and `--decoders` over the configuration's `rules:` settings,
/// checked to be what was meant (a missing directory, one without rule files or decoders is an error naming it).
pub fn pack_of(
    rules: &crate::config::RulesConfig,
    dir: Option<&std::path::Path>,
    decoders: Option<crate::pack::DecodersFrom>,
) -> Result<crate::pack::Pack, crate::diagnostic::FileErrors> {
    let pack = crate::pack::Pack::resolve(dir.or(rules.dir.as_deref()), decoders.unwrap_or(rules.decoders));
    pack.check_present()?;
    Ok(pack)
}

/// A mistake in how a command was called that clap cannot see (for example two options that exclude each other).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
