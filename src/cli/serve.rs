//! `hsmwatch serve`: runs the collector until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::app::Server;
use crate::config::{ByteSize, Config, TcpListenerConfig, UdpListenerConfig};

/// The long help of `hsmwatch serve`.
pub const LONG_ABOUT: &str = "Run the collector.\n\n\
Without --config it runs on embedded defaults: UDP and TCP syslog on 0.0.0.0:5514, the database ./hsmwatch.db \
(created and migrated on start), rules from ./rules when that directory exists, else the pack built into the binary, \
and the dashboard, /metrics, /healthz, /readyz and the JSON API on http://127.0.0.1:8514/. \
`hsmwatch config example` prints every default as a commented file.\n\n\
With a configuration it also polls Luna appliances over SNMPv3 (`snmp.targets`) and receives SNMP traps \
(`listen.snmp_traps`); `hsmwatch snmp test NAME` polls one by hand.\n\n\
SIGHUP (or any change to a rules directory on disk) reloads rules and decoders; a reload with errors keeps the \
running ones and logs what is wrong. SIGINT or SIGTERM stop the listeners, store every accepted message, close the \
database and exit 0.";

/// Options of `hsmwatch serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// YAML configuration file (see `hsmwatch config example`).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database file, overriding storage.path [default: hsmwatch.db].
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Listen for UDP syslog here (repeatable). With --udp or --tcp, only the listeners given are opened.
    #[arg(long, value_name = "ADDR")]
    pub udp: Vec<SocketAddr>,
    /// Listen for TCP syslog here (repeatable). With --udp or --tcp, only the listeners given are opened.
    #[arg(long, value_name = "ADDR")]
    pub tcp: Vec<SocketAddr>,
    /// Rules directory (decoders in its decoders/), overriding rules.dir [default: ./rules, else the built-in pack].
    #[arg(long, value_name = "DIR")]
    pub rules: Option<std::path::PathBuf>,
    /// `builtin`: the decoders built into hsmwatch beside the rules directory's rules, overriding rules.decoders.
    #[arg(long, value_enum, value_name = "FROM")]
    pub decoders: Option<crate::pack::DecodersFrom>,
    /// Serve /healthz, /readyz, /metrics and /api/ here, overriding http.address [default: 127.0.0.1:8514].
    #[arg(long, value_name = "ADDR", conflicts_with = "no_http")]
    pub http: Option<SocketAddr>,
    /// No HTTP server.
    #[arg(long)]
    pub no_http: bool,
}

/// Builds the effective configuration: the file (or the defaults), then the command-line overrides.
pub fn effective_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(db) = &args.db {
        config.storage.path = db.clone();
    }
    if let Some(rules) = &args.rules {
        config.rules.dir = Some(rules.clone());
    }
    if let Some(decoders) = args.decoders {
        config.rules.decoders = decoders;
    }
    if let Some(address) = args.http {
        config.http.address = Some(address);
        if !address.ip().is_loopback() && config.http.token_env.is_none() && config.http.token_file.is_none() {
            return Err(super::UsageError(format!(
                "--http {address} is not loopback: set http.token_env or http.token_file in --config so that /api/* \
                 requires a bearer token"
            ))
            .into());
        }
    }
    if args.no_http {
        config.http.address = None;
    }
    if !args.udp.is_empty() || !args.tcp.is_empty() {
        let max_frame = ByteSize(crate::frame::DEFAULT_MAX_FRAME as u64);
        let recv_buffer = config.listen.udp.first().map_or(ByteSize(8 << 20), |l| l.recv_buffer);
        config.listen.udp = args
            .udp
            .iter()
            .map(|&address| UdpListenerConfig { recv_buffer, max_frame, ..UdpListenerConfig::on(address) })
            .collect();
        config.listen.tcp =
            args.tcp.iter().map(|&address| TcpListenerConfig { max_frame, ..TcpListenerConfig::on(address) }).collect();
        config.listen.tls.clear();
    }
    Ok(config)
}

/// Runs the server until a signal.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let config = effective_config(&args)?;
    // Handlers first: a signal that arrives while the server starts (its port may already accept) is kept, not fatal.
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let server = Server::start(&config).await?;
    let shutdown = server.shutdown_token();
    let reloader = server.reloader.clone();
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            reloader.reload_logged("SIGHUP");
            reloader.reload_certificates();
        }
    });
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("shutting down: draining connections and flushing the database");
        shutdown.cancel();
    });
    server.wait().await.context("shutdown")?;
    Ok(())
}
