//! Builds the server from a [`Config`]: binds the listeners, opens the store, joins the stages with a bounded queue,
//! and shuts them down in order (listeners drain, the writer flushes, the database closes).
//!
//! The only module that knows every stage.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::notifiers::NotifierError;
use crate::config::{Config, StorageBackend};
use crate::decode::{Decoders, SharedDecoders};
use crate::evaluate::{Evaluator, ReloadSlot};
use crate::event::Event;
use crate::ingest::{Pipeline, SenderZones};
use crate::inventory::Inventory;
use crate::listen::{tcp, udp};
use crate::metrics::{Counters, Leadership, Snapshot};
use crate::outbox::Routing;
use crate::pack::{Pack, RuleSource};
use crate::store::writer::{self, BatchPolicy, WriterSummary};
use crate::store::writer::{AfterCommit, HookFuture};
use crate::store::{self, StoreError};
use tokio::sync::Notify;

/// Why the server could not start or stopped badly.
#[derive(Debug, Error)]
pub enum AppError {
    /// A listener could not bind.
    #[error("cannot listen on {transport} {address}: {cause}")]
    Bind {
        /// `udp` or `tcp`.
        transport: &'static str,
        /// The configured address.
        address: SocketAddr,
        /// The OS error.
        cause: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The rule or decoder files have errors, or the rules directory is not one.
    #[error("cannot load rules and decoders")]
    Rules(#[source] crate::diagnostic::FileErrors),
    /// A notifier cannot be used.
    #[error("invalid notifier")]
    Notifier(#[source] NotifierError),
    /// A TLS listener's certificate material is unusable.
    #[error(transparent)]
    Tls(#[from] crate::listen::tls::TlsError),
    /// The HTTP server cannot start.
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    /// An SNMP target cannot be polled as configured.
    #[error(transparent)]
    Snmp(#[from] crate::config::snmp::SnmpConfigError),
    /// The PostgreSQL connection URL cannot be read.
    #[error("cannot read the PostgreSQL URL ({}): {}", .0.field, .0.message)]
    DatabaseUrl(crate::config::secret::SecretProblem),
    /// A stage panicked.
    #[error("internal error: the {stage} task failed: {reason}")]
    Task {
        /// The stage.
        stage: &'static str,
        /// The panic or cancellation.
        reason: String,
    },
}

impl AppError {
    /// Whether the configuration is at fault (exit code 2), rather than the machine or the network.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            AppError::Rules(_)
                | AppError::Notifier(_)
                | AppError::Tls(_)
                | AppError::Snmp(_)
                | AppError::DatabaseUrl(_)
        ) || matches!(self, AppError::Http(error) if error.is_configuration())
    }
}

/// Every notifier a rule names must be in the server config (docs/rules.md: a load error when the server starts).
fn check_notifiers(
    rules: &[Arc<crate::rules::load::Rule>],
    routing: &Routing,
) -> Result<(), crate::diagnostic::FileErrors> {
    let known = routing.names();
    let errors: Vec<crate::diagnostic::FileError> = rules
        .iter()
        .flat_map(|rule| rule.notify.iter().flatten().map(move |name| (rule, name)))
        .filter(|(_, name)| !routing.knows(name))
        .map(|(rule, name)| crate::diagnostic::FileError {
            file: rule.file.clone(),
            line: Some(rule.line),
            message: format!(
                "rule `{}` notifies `{name}`, which the server config does not define{}; notifiers: {}",
                rule.id,
                crate::event::did_you_mean(name, &known),
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(crate::diagnostic::FileErrors(errors))
    }
}

/// What runs after each commit: the rule engine, and the inventory (saved on the timer: it is derived from the
/// events, and a second of it lost in a crash is rebuilt by the next lines).
struct AfterStore {
    evaluator: Evaluator,
    inventory: Inventory,
}

impl AfterCommit for AfterStore {
    fn busy(&self) -> bool {
        self.evaluator.is_behind()
    }

    fn evaluate(&mut self, batch: &[Event], first_id: i64) {
        self.inventory.observe(batch);
        self.evaluator.evaluate(batch, first_id);
    }

    fn persist<'a>(&'a mut self, conn: &'a mut store::WriteConn) -> HookFuture<'a> {
        self.evaluator.persist(conn)
    }

    fn tick<'a>(&'a mut self, conn: &'a mut store::WriteConn, now: chrono::DateTime<chrono::Utc>) -> HookFuture<'a> {
        Box::pin(async move {
            if self.evaluator.is_behind() {
                // Catching up on a backlog: the inventory waits for the once-a-second tick's turn.
                return self.evaluator.tick(conn, now).await;
            }
            if let Err(error) = self.inventory.save(conn).await {
                tracing::warn!(%error, "cannot save the host inventory");
            }
            self.evaluator.tick(conn, now).await
        })
    }
}

/// Loads the rules and decoders of `pack`: every mistake in every file at once, and an error when the rules
/// directory is not one (missing, no rule files, no decoders) or what it holds compiles to no rule or no decoder.
pub fn load_pack(pack: &Pack) -> Result<(crate::rules::load::Loaded, Decoders), crate::diagnostic::FileErrors> {
    use crate::diagnostic::{FileError, FileErrors};
    pack.check_present()?;
    let (decoders, rules) = (Decoders::load(&pack.decoders), crate::rules::load::load(&pack.rules));
    let (decoders, rules) = match (decoders, rules) {
        (Ok(decoders), Ok(rules)) => (decoders, rules),
        (decoders, rules) => {
            let errors = decoders.err().into_iter().chain(rules.err()).flat_map(|errors| errors.0).collect();
            return Err(FileErrors(errors));
        }
    };
    let empty = |source: &RuleSource, message: &str| {
        FileErrors(vec![FileError { file: source.describe(), line: None, message: message.into() }])
    };
    if rules.rules.is_empty() {
        return Err(empty(&pack.rules, "holds no rules (only lists, or nothing that is a rule)"));
    }
    if decoders.counts().2 == 0 {
        return Err(empty(&pack.decoders, "holds no decoder patterns"));
    }
    Ok((rules, decoders))
}

/// What every server loads before it opens its listeners: the rules and decoders, where alerts go, the notifiers.
struct Prepared {
    pack: Pack,
    rules: Vec<Arc<crate::rules::load::Rule>>,
    decoders: Arc<SharedDecoders>,
    routing: Routing,
    notifiers: Vec<crate::config::notifiers::ResolvedNotifier>,
    token: Option<crate::config::secret::Secret>,
    deliveries: Arc<Notify>,
}

/// Loads and checks the rules and decoders, the notifiers they name and the API token.
fn prepare(config: &Config, counters: &Counters) -> Result<Prepared, AppError> {
    let pack = config.rules.pack();
    let (rules, loaded_decoders) = load_pack(&pack).map_err(AppError::Rules)?;
    let (files, groups, patterns) = loaded_decoders.counts();
    let decoders = Arc::new(SharedDecoders::new(loaded_decoders));
    tracing::info!(source = %pack.decoders.describe(), files, groups, patterns, "decoders loaded");
    tracing::info!(source = %pack.rules.describe(), rules = rules.rules.len(), "rules loaded");
    if config.rules.dir.is_none() && pack.rules != RuleSource::Embedded {
        tracing::info!(
            "./rules exists in the working directory, so its rules and decoders replace the built-in pack \
             (set rules.dir to choose)"
        );
    }
    counters.rules_loaded.store(running_rules(&rules.rules), std::sync::atomic::Ordering::Relaxed);
    let mut routing = Routing::new(config.notifiers.iter().map(|(name, n)| (name.clone(), n.min_severity)).collect());
    if let Some(horizon) = config.alerts.notify_horizon {
        routing = routing.with_horizon(horizon);
    }
    if !config.alerts.notify_changes {
        routing = routing.with_quiet_changes();
    }
    check_notifiers(&rules.rules, &routing).map_err(AppError::Rules)?;
    let notifiers = crate::config::notifiers::resolve_all(&config.notifiers, config.http.external_url.as_deref())
        .map_err(AppError::Notifier)?;
    let token = crate::http::token(&config.http)?;
    Ok(Prepared { pack, rules: rules.rules, decoders, routing, notifiers, token, deliveries: Arc::new(Notify::new()) })
}

/// The reloader of `pack`'s rules (into `slot`) and decoders, watching the rules directory when the pack is one.
fn start_reloader(
    pack: &Pack,
    decoders: &Arc<SharedDecoders>,
    slot: ReloadSlot,
    routing: Routing,
    counters: &Arc<Counters>,
    shutdown: &CancellationToken,
) -> Arc<Reloader> {
    let reloader = Arc::new(Reloader {
        pack: pack.clone(),
        decoders: decoders.clone(),
        rules: slot,
        routing,
        counters: counters.clone(),
        tls: std::sync::Mutex::default(),
    });
    if let RuleSource::Dir(dir) = &pack.rules {
        tokio::spawn(watch_rules(dir.clone(), reloader.clone(), shutdown.clone()));
    }
    reloader
}

/// The syslog listeners' tasks and the addresses they bound, in config order.
struct Listeners {
    handles: Vec<JoinHandle<()>>,
    tcp: Vec<SocketAddr>,
    tls: Vec<SocketAddr>,
    udp: Vec<SocketAddr>,
}

/// Binds every TCP, TLS and UDP listener of the config and starts them, each sending to `queue`.
fn bind_syslog_listeners(
    config: &Config,
    decoders: &Arc<SharedDecoders>,
    queue: &crate::queue::Queue,
    counters: &Arc<Counters>,
    reloader: &Reloader,
    shutdown: &CancellationToken,
) -> Result<Listeners, AppError> {
    let mut handles = Vec::new();
    // Datagram listeners first: a sender that waits for a stream port to accept before it sends datagrams to the
    // same server finds them bound.
    let mut udp_addresses = Vec::new();
    for listener in &config.listen.udp {
        let bind_error = |cause| AppError::Bind { transport: "udp", address: listener.address, cause };
        let (socket, granted) = udp::bind(listener.address, listener.recv_buffer.as_usize()).map_err(bind_error)?;
        let address = socket.local_addr().map_err(bind_error)?;
        tracing::info!(transport = "udp", %address, recv_buffer = granted, "listening");
        if granted < listener.recv_buffer.as_usize() {
            tracing::info!(
                asked = listener.recv_buffer.as_usize(),
                granted,
                "the kernel granted a smaller UDP receive buffer (raise net.core.rmem_max for more)"
            );
        }
        let listener_counters = counters.listener("udp", address);
        let zones = SenderZones::new(listener.timezone, &config.listen.timezones);
        let ingest = Pipeline::new(listener.max_frame.as_usize(), decoders.clone(), listener_counters.clone(), zones);
        let admission = crate::listen::admission::Admission::new(listener.allow.clone(), 0, 0, 0);
        handles.push(tokio::spawn(udp::serve(
            socket,
            admission,
            ingest,
            queue.clone(),
            listener_counters,
            shutdown.clone(),
        )));
        udp_addresses.push(address);
    }
    let mut tcp_addresses = Vec::new();
    for listener in &config.listen.tcp {
        let bind_error = |cause| AppError::Bind { transport: "tcp", address: listener.address, cause };
        let socket = tcp::bind(listener.address).map_err(bind_error)?;
        let address = socket.local_addr().map_err(bind_error)?;
        tracing::info!(transport = "tcp", %address, max_frame = %listener.max_frame, "listening");
        let listener_counters = counters.listener("tcp", address);
        let zones = SenderZones::new(listener.timezone, &config.listen.timezones);
        let ingest = Pipeline::new(listener.max_frame.as_usize(), decoders.clone(), listener_counters.clone(), zones);
        handles.push(tokio::spawn(tcp::serve(
            socket,
            tcp::StreamPolicy::of_tcp(listener),
            ingest,
            queue.clone(),
            listener_counters,
            shutdown.clone(),
        )));
        tcp_addresses.push(address);
    }
    let mut tls_addresses = Vec::new();
    for listener in &config.listen.tls {
        let bind_error = |cause| AppError::Bind { transport: "tls", address: listener.address, cause };
        let socket = tcp::bind(listener.address).map_err(bind_error)?;
        let address = socket.local_addr().map_err(bind_error)?;
        let listener_counters = counters.listener("tls", address);
        let files = crate::listen::tls::TlsFiles {
            cert_file: listener.cert_file.clone(),
            key_file: listener.key_file.clone(),
            client_ca_file: listener.client_ca_file.clone(),
            crl_file: listener.crl_file.clone(),
        };
        let handshake = crate::listen::tls::TlsHandshake::new(files, listener_counters.clone(), listener.bind_host)?;
        tracing::info!(transport = "tls", %address, mutual = listener.client_ca_file.is_some(), "listening");
        reloader.tls.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(handshake.clone());
        let zones = SenderZones::new(listener.timezone, &config.listen.timezones);
        let ingest = Pipeline::new(listener.max_frame.as_usize(), decoders.clone(), listener_counters.clone(), zones);
        handles.push(tokio::spawn(tcp::serve_with(
            socket,
            handshake,
            tcp::StreamPolicy::of_tls(listener),
            ingest,
            queue.clone(),
            listener_counters,
            shutdown.clone(),
        )));
        tls_addresses.push(address);
    }
    Ok(Listeners { handles, tcp: tcp_addresses, tls: tls_addresses, udp: udp_addresses })
}

/// One delivery worker per notifier, so one slow receiver never holds back another; each takes a write connection
/// only to take its jobs and record what became of them.
fn start_deliverers(
    notifiers: Vec<crate::config::notifiers::ResolvedNotifier>,
    db: &store::Db,
    deliveries: &Arc<Notify>,
    counters: &Arc<Counters>,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    notifiers
        .into_iter()
        .map(|notifier| {
            tracing::info!(notifier = %notifier.name, "delivery worker started");
            tokio::spawn(crate::deliver::supervise(
                db.clone(),
                notifier,
                deliveries.clone(),
                counters.clone(),
                shutdown.clone(),
            ))
        })
        .collect()
}

/// What the HTTP server serves from.
struct HttpParts {
    db: store::Db,
    token: Option<crate::config::secret::Secret>,
    deliveries: Arc<Notify>,
}

/// Starts the HTTP API, dashboard and metrics when `http.address` is set; returns the bound address and its task.
async fn start_http(
    config: &Config,
    parts: HttpParts,
    counters: &Arc<Counters>,
    shutdown: &CancellationToken,
) -> Result<(Option<SocketAddr>, Option<JoinHandle<()>>), AppError> {
    let Some(address) = config.http.address else { return Ok((None, None)) };
    let HttpParts { db, token, deliveries } = parts;
    let bind_error = |cause| crate::http::HttpError::Bind { address, cause };
    let listener = TcpListener::bind(address).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    let listener = match crate::http::tls::server_config(&config.http)? {
        Some(tls) => crate::http::HttpListener::Tls(crate::http::tls::listen(listener, tls).map_err(bind_error)?),
        None => crate::http::HttpListener::Plain(listener),
    };
    let https = matches!(listener, crate::http::HttpListener::Tls(_));
    let state = crate::http::AppState {
        counters: counters.clone(),
        pool: db.reader.clone(),
        db_path: config.storage.path.clone(),
        listeners_configured: config.listen.tcp.len()
            + config.listen.udp.len()
            + config.listen.tls.len()
            + usize::from(config.listen.snmp_traps.is_some()),
        silent_after: config.inventory.silent_after,
        token: token.clone().map(Arc::new),
        metrics_public: config.http.metrics_public,
        sessions: Arc::new(
            crate::http::session::Sessions::new(config.http.session_lifetime)
                .map_err(|cause| crate::http::HttpError::Bind { address, cause })?,
        ),
        throttle: Arc::default(),
        https,
        writer: db.writer.clone(),
        changes_allowed: token.is_some() || address.ip().is_loopback(),
        notify_changes: config.alerts.notify_changes,
        deliveries,
    };
    tracing::info!(
        address = %bound,
        https,
        token = state.token.is_some(),
        metrics_public = state.metrics_public || state.token.is_none(),
        "HTTP API, dashboard and metrics listening"
    );
    Ok((Some(bound), Some(tokio::spawn(crate::http::serve(listener, state, shutdown.clone())))))
}

/// When the batch writer commits, as configured.
fn batch_policy(config: &Config) -> BatchPolicy {
    BatchPolicy {
        rows: config.storage.batch_rows,
        delay: config.storage.batch_delay,
        failing_summary: config.log.summary_interval,
    }
}

/// What retention keeps, as configured.
fn retention_policy(config: &Config) -> crate::store::retention::RetentionPolicy {
    crate::store::retention::RetentionPolicy {
        events: config.storage.retention,
        alerts: config.storage.alert_retention,
        every: config.storage.prune_interval,
    }
}

/// How many of `rules` are evaluated (not disabled): what `/readyz` calls the rules loaded.
fn running_rules(rules: &[Arc<crate::rules::load::Rule>]) -> u64 {
    rules.iter().filter(|rule| rule.enabled).count() as u64
}

/// Reloads rules and decoders from their source: on SIGHUP, and when the rules directory changes. A broken reload
/// keeps what is running and says what is wrong.
#[derive(Debug)]
pub struct Reloader {
    pack: Pack,
    decoders: Arc<SharedDecoders>,
    rules: ReloadSlot,
    routing: Routing,
    counters: Arc<Counters>,
    tls: std::sync::Mutex<Vec<crate::listen::tls::TlsHandshake>>,
}

impl Reloader {
    /// Loads and checks everything, then puts it in use; on any error nothing changes.
    pub fn reload(&self) -> Result<(), String> {
        let (rules, decoders) = load_pack(&self.pack).map_err(|e| e.to_string())?;
        check_notifiers(&rules.rules, &self.routing).map_err(|e| e.to_string())?;
        self.decoders.replace(decoders);
        self.counters.rules_loaded.store(running_rules(&rules.rules), std::sync::atomic::Ordering::Relaxed);
        *self.rules.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(rules.rules);
        Ok(())
    }

    /// Reads every TLS listener's certificate and key files again (SIGHUP); a listener whose files are broken keeps
    /// its running certificate.
    pub fn reload_certificates(&self) {
        for tls in self.tls.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter() {
            match tls.reload() {
                Ok(()) => tracing::info!(cert = %tls.cert_file().display(), "TLS certificate reloaded"),
                Err(error) => tracing::error!(%error, "TLS certificate reload failed; the running one stays"),
            }
        }
    }

    /// [`Reloader::reload`], logged.
    pub fn reload_logged(&self, why: &str) {
        match self.reload() {
            Ok(()) => tracing::info!(source = %self.pack.describe(), why, "rules and decoders reloaded"),
            Err(errors) => {
                tracing::error!(source = %self.pack.describe(), why, %errors, "reload failed; the running rules and decoders stay")
            }
        }
    }
}

/// A fingerprint of a rules directory: every YAML file's path, size and modification time.
fn directory_fingerprint(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut files = Vec::new();
    for sub in [dir.to_path_buf(), dir.join("decoders")] {
        let Ok(entries) = std::fs::read_dir(&sub) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let meta = entry.metadata().ok();
                files.push((path, meta.as_ref().map_or(0, |m| m.len()), meta.and_then(|m| m.modified().ok())));
            }
        }
    }
    files.sort();
    files
}

/// How often the rules directory is looked at; a change is reloaded once it has been still for one more look.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

async fn watch_rules(dir: std::path::PathBuf, reloader: Arc<Reloader>, shutdown: CancellationToken) {
    let mut loaded = directory_fingerprint(&dir);
    let mut seen = loaded.clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(WATCH_INTERVAL) => {}
        }
        let now = directory_fingerprint(&dir);
        // Debounce: an editor writes in steps; reload once the files stopped changing.
        if now == seen && now != loaded {
            reloader.reload_logged("rules directory changed");
            loaded = now.clone();
        }
        seen = now;
    }
}

/// A running server.
pub struct Server {
    /// Bound TCP addresses, in config order (the real ports when the config said port 0).
    pub tcp_addresses: Vec<SocketAddr>,
    /// Bound UDP addresses, in config order.
    pub udp_addresses: Vec<SocketAddr>,
    /// Bound TLS addresses, in config order.
    pub tls_addresses: Vec<SocketAddr>,
    /// The bound SNMP trap address, when `listen.snmp_traps` is given.
    pub snmp_trap_address: Option<SocketAddr>,
    /// The bound HTTP address, when the HTTP server runs.
    pub http_address: Option<SocketAddr>,
    /// The server's counters.
    pub counters: Arc<Counters>,
    /// Reloads rules and decoders.
    pub reloader: Arc<Reloader>,
    shutdown: CancellationToken,
    listeners: Vec<JoinHandle<()>>,
    /// SNMP pollers, the cloud inventory and the recovery check: they send to the writer queue, so they stop before the
    /// writer drains it.
    pollers: Vec<JoinHandle<()>>,
    deliverers: Vec<JoinHandle<()>>,
    http: Option<JoinHandle<()>>,
    /// Tasks that stop after the writer: retention (SQLite), leading (PostgreSQL).
    background: Vec<JoinHandle<()>>,
    writer: JoinHandle<Result<WriterSummary, StoreError>>,
    db: store::Db,
    summary: JoinHandle<()>,
    chain_heads: Option<JoinHandle<()>>,
}

impl Server {
    /// Opens the database, binds every listener and starts the stages.
    pub async fn start(config: &Config) -> Result<Server, AppError> {
        match config.storage.backend {
            StorageBackend::Sqlite => Self::start_on_sqlite(config).await,
            StorageBackend::Postgres => Self::start_on_postgres(config).await,
        }
    }

    /// A collector on a database several share: it stores what it receives (each line once across collectors) and
    /// evaluates rules and sends alerts while it leads (see [`crate::lead`]). SNMP and the cloud inventory are not
    /// available on it yet (the configuration refuses them).
    async fn start_on_postgres(config: &Config) -> Result<Server, AppError> {
        let counters = Arc::new(Counters::default());
        let shutdown = CancellationToken::new();
        let settings = &config.storage.postgres;
        let url = settings.url().map_err(AppError::DatabaseUrl)?;
        let collector = settings.collector_name();
        let shared = store::postgres::PgStore::open(&url.0, &collector, settings.dedupe_window).await?;
        tracing::info!(server = shared.server(), %collector, "database open (PostgreSQL, shared by collectors)");
        counters.set_leadership(Leadership { collector, leading: false, leader: None, term: None });
        let Prepared { pack, rules, decoders, routing, notifiers, token, deliveries } = prepare(config, &counters)?;
        let slot = ReloadSlot::default();
        let reloader = start_reloader(&pack, &decoders, slot.clone(), routing.clone(), &counters, &shutdown);
        let (queue, queue_rx) =
            crate::queue::channel(config.storage.queue_capacity, config.storage.queue_bytes.0, counters.clone());
        let Listeners { handles, tcp, tls, udp } =
            bind_syslog_listeners(config, &decoders, &queue, &counters, &reloader, &shutdown)?;
        // The listeners hold the only senders now: the writer's queue closes when the last of them ends.
        drop(queue);
        let policy = batch_policy(config);
        let writer = tokio::spawn(store::postgres::writer::run(shared.clone(), queue_rx, policy, counters.clone()));
        let db = store::Db { writer: shared.writer(), reader: shared.reader() };
        let lead = crate::lead::LeadContext {
            store: shared,
            rules,
            reload: slot,
            routing,
            deliveries: deliveries.clone(),
            counters: counters.clone(),
            timeout: settings.leader_timeout,
            retention: retention_policy(config),
            shutdown: shutdown.clone(),
        };
        let leading = tokio::spawn(crate::lead::run(lead));
        let summary = tokio::spawn(log_summaries(counters.clone(), config.log.summary_interval, shutdown.clone()));
        let deliverers = start_deliverers(notifiers, &db, &deliveries, &counters, &shutdown);
        let http_parts = HttpParts { db: db.clone(), token, deliveries };
        let (http_address, http) = start_http(config, http_parts, &counters, &shutdown).await?;
        Ok(Server {
            http_address,
            http,
            tcp_addresses: tcp,
            udp_addresses: udp,
            tls_addresses: tls,
            snmp_trap_address: None,
            counters,
            reloader,
            shutdown,
            listeners: handles,
            pollers: Vec::new(),
            writer,
            summary,
            chain_heads: None,
            deliverers,
            background: vec![leading],
            db,
        })
    }

    /// A collector on its own SQLite file.
    async fn start_on_sqlite(config: &Config) -> Result<Server, AppError> {
        let counters = Arc::new(Counters::default());
        let shutdown = CancellationToken::new();
        let mut conn = store::open_writer(&config.storage.path).await?;
        if let Some(cap) = config.storage.max_size {
            store::cap_size(&mut conn, cap.0).await?;
        }
        if store::chain::adopt_anchor(&mut conn).await? {
            tracing::info!("the chain's anchor, moved by an earlier version, is now recorded in the chain as a prune");
        }
        tracing::info!(path = %config.storage.path.display(), "database open");
        let Prepared { pack, rules, decoders, routing, notifiers, token, deliveries } = prepare(config, &counters)?;
        let snmp_targets = config.snmp.resolve()?;
        let traps = match &config.listen.snmp_traps {
            Some(traps) => {
                Some((traps.socket_address()?, traps.communities()?, traps.trap_users()?, traps.allow.clone()))
            }
            None => None,
        };
        let snmp_objects = match snmp_targets.is_empty() && traps.is_none() {
            true => None,
            false => Some(Arc::new(crate::snmp::objects::load(&pack.decoders).map_err(AppError::Rules)?)),
        };
        let evaluator = Evaluator::start(
            &mut conn,
            &rules,
            routing.clone(),
            deliveries.clone(),
            counters.clone(),
            chrono::Utc::now(),
        )
        .await?;
        let reader = store::open_reader(&config.storage.path).await?;
        let inventory = Inventory::load(&reader).await?;
        let reloader = start_reloader(&pack, &decoders, evaluator.reload_slot(), routing.clone(), &counters, &shutdown);
        let (queue, queue_rx) =
            crate::queue::channel(config.storage.queue_capacity, config.storage.queue_bytes.0, counters.clone());
        let Listeners { mut handles, tcp: tcp_addresses, tls: tls_addresses, udp: udp_addresses } =
            bind_syslog_listeners(config, &decoders, &queue, &counters, &reloader, &shutdown)?;
        let mut snmp_trap_address = None;
        if let (Some((address, communities, users, allow)), Some(objects)) = (traps, &snmp_objects) {
            let bind_error = |cause| AppError::Bind { transport: "snmp-trap", address, cause };
            let socket = tokio::net::UdpSocket::bind(address).await.map_err(bind_error)?;
            let bound = socket.local_addr().map_err(bind_error)?;
            let new_id = crate::snmp::engine::LocalEngine::new_id().map_err(|error| AppError::Bind {
                transport: "snmp-trap",
                address,
                cause: std::io::Error::other(error.to_string()),
            })?;
            let (engine_id, boots) = store::snmp::engine_boot(&mut conn, &new_id).await?;
            let engine = crate::snmp::engine::LocalEngine::new(engine_id, boots);
            tracing::info!(
                transport = "snmp-trap",
                address = %bound,
                engine_id = %crate::snmp::engine::hex(&engine.id),
                boots,
                "listening"
            );
            let names = snmp_targets
                .iter()
                .filter_map(|t| t.address.parse::<SocketAddr>().ok().map(|a| (a.ip(), t.name.clone())))
                .collect();
            let listener = crate::snmp::traps::TrapListener {
                socket,
                communities,
                users,
                keys: std::collections::HashMap::new(),
                new_keys: crate::snmp::traps::KeyBudget::new(std::time::Instant::now()),
                engine,
                inform_keys: std::collections::HashMap::new(),
                allow,
                objects: objects.clone(),
                names,
                queue: queue.clone(),
                counters: counters.listener("snmp-trap", bound),
            };
            handles.push(tokio::spawn(listener.serve(shutdown.clone())));
            snmp_trap_address = Some(bound);
        }
        // The listeners and the SNMP pollers hold the only senders now: the writer's queue closes when the last of
        // them ends.
        let snmp_queue = snmp_objects.as_ref().map(|_| queue.clone());
        let cloud_queue = config.cloud.aws.as_ref().map(|aws| (aws.clone(), queue.clone()));
        let recovery_queue = queue.clone();
        drop(queue);

        let policy = batch_policy(config);
        let writer_counters = counters.clone();
        store::checkpoint::defer_to_background(&mut conn).await?;
        // The one write connection, taken in turn by the writer's evaluation, delivery and retention.
        let db = store::Db { writer: store::Writer::new(conn), reader: reader.clone() };
        let checkpoints = store::checkpoint::Background::start(config.storage.path.clone(), counters.clone());
        let inserter = store::inserter::Inserter::start(
            store::inserter::open_connection(
                &config.storage.path,
                store::inserter::InserterSettings {
                    max_size: config.storage.max_size.map(|cap| cap.0),
                    deferred_checkpoints: true,
                    compress_after: config.storage.compress_after(),
                    min_free: Some(config.storage.min_free),
                },
            )?,
            counters.clone(),
        )?;
        let batch_writer = db.writer.sqlite()?;
        let writer = tokio::spawn(async move {
            let finished = writer::run(
                batch_writer,
                inserter,
                queue_rx,
                policy,
                writer_counters,
                AfterStore { evaluator, inventory },
            )
            .await;
            // Checkpoints go on while the writer flushes at shutdown; the write connection closes after the rest stop.
            checkpoints.stop().await;
            finished
        });
        let policy = retention_policy(config);
        let retention = tokio::spawn(crate::store::retention::run(db.writer.clone(), policy, shutdown.clone()));
        let mut pollers = Vec::new();
        if let (Some(objects), Some(queue)) = (snmp_objects, snmp_queue) {
            let mut saved = crate::snmp::saved_states(&db.writer).await?;
            let context = crate::snmp::PollerContext {
                objects,
                queue,
                writer: db.writer.clone(),
                counters: counters.clone(),
                shutdown: shutdown.clone(),
            };
            for target in snmp_targets {
                let state = saved.remove(&target.name).unwrap_or_default();
                pollers.push(tokio::spawn(crate::snmp::run(target, state, context.clone())));
            }
        }
        let wake_recovery = Arc::new(tokio::sync::Notify::new());
        if let Some((aws, queue)) = cloud_queue {
            let context = crate::cloud::CloudContext {
                queue,
                writer: db.writer.clone(),
                reader: reader.clone(),
                counters: counters.clone(),
                silent_after: config.inventory.silent_after,
                wake: wake_recovery.clone(),
                shutdown: shutdown.clone(),
            };
            pollers.push(tokio::spawn(crate::cloud::run(aws, context)));
        }
        pollers.push(tokio::spawn(crate::recovery::run(crate::recovery::RecoveryContext {
            queue: recovery_queue,
            writer: db.writer.clone(),
            reader: reader.clone(),
            limits: crate::recovery::Limits {
                backup: config.inventory.backup_max_age,
                restore: config.inventory.restore_max_age,
            },
            wake: wake_recovery,
            shutdown: shutdown.clone(),
        })));
        let summary = tokio::spawn(log_summaries(counters.clone(), config.log.summary_interval, shutdown.clone()));
        let chain_heads = tokio::spawn(log_chain_heads(reader.clone(), config.chain.head_interval, shutdown.clone()));
        let deliverers = start_deliverers(notifiers, &db, &deliveries, &counters, &shutdown);
        let http_parts = HttpParts { db: db.clone(), token, deliveries: deliveries.clone() };
        let (http_address, http) = start_http(config, http_parts, &counters, &shutdown).await?;
        Ok(Server {
            http_address,
            http,
            tcp_addresses,
            udp_addresses,
            tls_addresses,
            snmp_trap_address,
            counters,
            reloader,
            shutdown,
            listeners: handles,
            pollers,
            writer,
            summary,
            chain_heads: Some(chain_heads),
            deliverers,
            background: vec![retention],
            db,
        })
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the server is told to stop, then stops it: listeners drain, every accepted event is committed,
    /// the database is closed.
    pub async fn wait(self) -> Result<WriterSummary, AppError> {
        self.shutdown.cancelled().await;
        self.stop().await
    }

    /// Stops the server now (see [`Server::wait`]).
    pub async fn stop(self) -> Result<WriterSummary, AppError> {
        self.shutdown.cancel();
        for listener in self.listeners {
            listener.await.map_err(|e| AppError::Task { stage: "listener", reason: e.to_string() })?;
        }
        for poller in self.pollers {
            poller.await.map_err(|e| AppError::Task { stage: "poller", reason: e.to_string() })?;
        }
        let summary = self.writer.await.map_err(|e| AppError::Task { stage: "writer", reason: e.to_string() })??;
        self.summary.abort();
        if let Some(chain_heads) = self.chain_heads {
            chain_heads.abort();
        }
        if let Some(http) = self.http {
            let _ = http.await;
        }
        for task in self.background {
            let _ = task.await;
        }
        // Deliveries still pending stay in the outbox and resume at the next start.
        for deliverer in self.deliverers {
            let _ = deliverer.await;
        }
        self.db.reader.close().await;
        // Every other user of the write connection has stopped: close it (which checkpoints the WAL).
        if let Some(conn) = self.db.writer.into_inner() {
            store::close_writer(conn).await?;
        }
        let totals = self.counters.snapshot();
        tracing::info!(
            received = totals.received,
            stored = totals.stored,
            unparsed = totals.unparsed,
            udp_dropped = totals.udp_dropped,
            "stopped; every accepted event is stored"
        );
        Ok(summary)
    }
}

/// Logs the chain's head at start and then every `interval` when it moved, so that a copy of it is kept outside the
/// database (a log shipper's): a rewrite of the chain shows as a logged head that is no longer in it.
async fn log_chain_heads(reader: store::Reader, interval: Duration, shutdown: CancellationToken) {
    let mut last = None;
    let mut ticker = tokio::time::interval(interval.max(Duration::from_secs(1)));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match store::chain::head_of(&reader).await {
            Ok(Some(head)) if last.as_ref() != Some(&head) => {
                tracing::info!(record = head.record, hash = %head.hash, "chain head");
                last = Some(head);
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot read the chain's head"),
        }
    }
}

/// Logs a summary line every `interval` while traffic flows (and nothing while it does not).
async fn log_summaries(counters: Arc<Counters>, interval: Duration, shutdown: CancellationToken) {
    let mut last = Snapshot::default();
    let mut ticker = tokio::time::interval(interval.max(Duration::from_secs(1)));
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = counters.snapshot();
        if now != last {
            tracing::info!(
                received = now.received - last.received,
                stored = now.stored - last.stored,
                unparsed = now.unparsed - last.unparsed,
                truncated = now.truncated - last.truncated,
                udp_dropped = now.udp_dropped - last.udp_dropped,
                framing_errors = now.framing_errors - last.framing_errors,
                "summary since the last line"
            );
            last = now;
        }
    }
}
