//! The HTTP server (`axum`): `/healthz`, `/readyz`, `/metrics` in Prometheus text format, and a read-only JSON API
//! under `/api/` (events with the filters of `hsmwatch query`, alerts, hosts).
//!
//! Receives requests; reads the counters and the database (read-only connections, WAL, so it never blocks ingest).
//! `/api/*` (and `/metrics`, unless `http.metrics_public`) requires `Authorization: Bearer <token>` when a token is
//! configured, which the configuration insists on for any address other than loopback, together with HTTPS
//! (`http.cert_file`, `http.key_file`) unless `http.allow_plaintext`.

pub mod api;
pub mod dashboard;
pub mod metrics;
pub mod session;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

use crate::config::notifiers::Secret;
use crate::config::HttpConfig;
use crate::metrics::Counters;

/// Why the HTTP server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The token could not be read.
    #[error("http: {0}")]
    Token(String),
    /// The token is too short to resist guessing.
    #[error(
        "http: the token is shorter than {MIN_TOKEN_LENGTH} characters; use a long random string (openssl rand -hex 32)"
    )]
    ShortToken,
    /// The address could not be bound.
    #[error("cannot listen for HTTP on {address}: {cause}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        cause: std::io::Error,
    },
    /// The database could not be opened for reading.
    #[error("http: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl HttpError {
    /// Whether the configuration is at fault (a token missing or too short), not the machine.
    pub fn is_configuration(&self) -> bool {
        matches!(self, HttpError::Token(_) | HttpError::ShortToken)
    }
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The server's counters.
    pub counters: Arc<Counters>,
    /// Read-only connections to the database.
    pub pool: crate::store::Reader,
    /// The database file (for its size).
    pub db_path: PathBuf,
    /// Listeners configured (ready when every one is bound).
    pub listeners_configured: usize,
    /// A host silent this long is shown as such.
    pub silent_after: Duration,
    /// The bearer token of `/api/*`, when one is configured.
    pub token: Option<Arc<Secret>>,
    /// `/metrics` without the token.
    pub metrics_public: bool,
    /// Dashboard sign-ins.
    pub sessions: Arc<session::Sessions>,
    /// Failed sign-ins per address.
    pub throttle: Arc<session::LoginThrottle>,
    /// Served over HTTPS: session cookies are `Secure`.
    pub https: bool,
    /// Acknowledging and resolving alerts: the shared write connection.
    pub writer: crate::store::Writer,
    /// Whether changes are allowed: a token is configured, or the listener is loopback-only.
    pub changes_allowed: bool,
    /// Whether a change notifies the alert's notifiers (`alerts.notify_changes`).
    pub notify_changes: bool,
    /// Woken when a change queued notices.
    pub deliveries: Arc<tokio::sync::Notify>,
}

/// Where the HTTP server accepts connections.
#[derive(Debug)]
pub enum HttpListener {
    /// Plain HTTP.
    Plain(tokio::net::TcpListener),
    /// HTTPS.
    Tls(tls::HttpsListener),
}

/// Reads the configured token, if any.
pub fn token(config: &HttpConfig) -> Result<Option<Secret>, HttpError> {
    match (&config.token_env, &config.token_file) {
        (Some(variable), _) => std::env::var(variable)
            .map(|t| Some(Secret(t)))
            .map_err(|_| HttpError::Token(format!("token_env: environment variable {variable} is not set"))),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|t| Some(Secret(t.trim().to_owned())))
            .map_err(|e| HttpError::Token(format!("token_file: cannot read {}: {e}", path.display()))),
        (None, None) => Ok(None),
    }
    .and_then(|token| match token {
        Some(Secret(t)) if t.len() < MIN_TOKEN_LENGTH => Err(HttpError::ShortToken),
        other => Ok(other),
    })
}

/// The shortest token accepted.
pub const MIN_TOKEN_LENGTH: usize = 16;

/// The routes.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/events", get(api::events))
        .route("/api/alerts", get(api::alerts))
        .route("/api/alerts/{id}", get(api::alert))
        .route("/api/alerts/{id}/{change}", axum::routing::post(api::change))
        .route("/api/hosts", get(api::hosts))
        .route("/api/cloud", get(api::cloud))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token));
    let metrics = Router::new()
        .route("/metrics", get(metrics::handler))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token_for_metrics));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(metrics)
        .merge(api)
        .merge(dashboard::router(state.clone()))
        .with_state(state)
}

/// Serves until `shutdown`; handlers see the client's address (`ConnectInfo<SocketAddr>`).
pub async fn serve(listener: HttpListener, state: AppState, shutdown: CancellationToken) {
    use axum::serve::ListenerExt;
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let stopped = async move { shutdown.cancelled().await };
    let served = match listener {
        HttpListener::Plain(listener) => {
            axum::serve(listener.tap_io(|_| {}), app).with_graceful_shutdown(stopped).await
        }
        HttpListener::Tls(listener) => axum::serve(listener.tap_io(|_| {}), app).with_graceful_shutdown(stopped).await,
    };
    if let Err(error) = served {
        tracing::error!(%error, "the HTTP server stopped");
    }
}

pub use crate::config::secret::same_secret;

/// `/metrics` asks for the token as `/api/*` does, unless `http.metrics_public`.
async fn require_token_for_metrics(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.metrics_public {
        return next.run(request).await;
    }
    require_token(State(state), request, next).await
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(expected) = &state.token else { return next.run(request).await };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(token) if same_secret(token.as_bytes(), expected.0.as_bytes()) => next.run(request).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(serde_json::json!({"error": "a valid bearer token is required (Authorization: Bearer <token>)"})),
        )
            .into_response(),
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let bound = state.counters.listeners().len();
    let listeners = bound == state.listeners_configured;
    let database = !state.counters.store_failing.load(std::sync::atomic::Ordering::Relaxed)
        && crate::store::stats::answers(&state.pool).await;
    // A server without rules stores lines but alerts on nothing: not ready.
    let rules_loaded = crate::metrics::value(&state.counters.rules_loaded);
    let rules = rules_loaded > 0;
    // A notifier whose worker is not running delivers nothing: alerts to it only queue.
    let down = state.counters.workers_down();
    let notifiers = down.is_empty();
    let ready = listeners && database && rules && notifiers;
    let mut body = serde_json::json!({
        "ready": ready,
        "checks": {
            "listeners": {"ok": listeners, "bound": bound, "configured": state.listeners_configured},
            "database": {"ok": database},
            "rules": {"ok": rules, "loaded": rules_loaded},
            "notifiers": {"ok": notifiers, "not_running": down},
        }
    });
    // On a shared database: which collector evaluates rules and sends alerts. Following is as ready as leading.
    if let Some(leadership) = state.counters.leadership() {
        body["leadership"] = serde_json::json!(leadership);
    }
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}
