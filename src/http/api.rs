//! The JSON API: `GET /api/events` (the filters of `hsmwatch query`, newest first, paginated by cursor),
//! `GET /api/alerts`, `GET /api/alerts/{id}`, `POST /api/alerts/{id}/{ack|unack|resolve}`, `GET /api/hosts` and `GET /api/cloud`.
//!
//! Events are objects with the flat dotted field names of docs/events.md, as `hsmwatch query --json` prints them.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::AppState;
use crate::store::alerts::{AlertChange, AlertFilter, Change, ChangeOutcome, StateFilter};
use crate::store::query::{self, EventQuery};

/// Most events or alerts one page returns.
pub const MAX_PAGE: u32 = 1000;

/// An API error: a status and a message, answered as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    /// The status and the message.
    pub fn parts(&self) -> (StatusCode, &str) {
        (self.0, &self.1)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({"error": self.1}))).into_response()
    }
}

impl<E: std::fmt::Display> From<E> for ApiError
where
    E: Into<crate::store::StoreError>,
{
    fn from(error: E) -> Self {
        let text = error.to_string();
        if matches!(error.into(), crate::store::StoreError::NotOnPostgres) {
            return ApiError(StatusCode::NOT_IMPLEMENTED, text);
        }
        tracing::warn!(error = %text, "API request failed");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, text)
    }
}

fn bad_request(message: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message)
}

fn time(text: Option<&str>, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    text.map(|t| crate::config::units::parse_time(t).map_err(|e| bad_request(format!("{name}: {e}")))).transpose()
}

/// A handler's answer.
type Answer = Result<Json<serde_json::Value>, ApiError>;

/// `GET /api/events` (the parameters of [`EventQuery`]): `{"events": [...], "next_cursor": "..." | null}`.
pub async fn events(State(state): State<AppState>, Query(q): Query<EventQuery>) -> Answer {
    let filter = q.filter(100, MAX_PAGE).map_err(bad_request)?;
    let (found, next) = query::page(&state.pool, &filter).await?;
    let next_cursor = next.map(|cursor| cursor.to_string());
    let events: Vec<_> = found.iter().map(|stored| stored.event.all_fields()).collect();
    Ok(Json(serde_json::json!({"events": events, "next_cursor": next_cursor})))
}

/// Query parameters of `/api/alerts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    /// `open`, `firing`, `acknowledged`, `resolved` or `all`, the default (`status` is the older name).
    #[serde(alias = "status")]
    pub state: Option<String>,
    /// Fired last at or after.
    pub since: Option<String>,
    /// Concerning this host.
    pub host: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// `GET /api/alerts`: `{"alerts": [...]}`, open ones first (firing, then acknowledged), then resolved, newest first.
pub async fn alerts(State(state): State<AppState>, Query(q): Query<AlertsQuery>) -> Answer {
    let wanted = match q.state.as_deref() {
        None | Some("all") => None,
        Some(text) => Some(text.parse::<StateFilter>().map_err(|e| bad_request(format!("state: {e}, or all")))?),
    };
    let since = time(q.since.as_deref(), "since")?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let filter = AlertFilter { state: wanted, since, host: q.host.as_deref(), limit };
    let alerts = crate::store::alerts::list(&state.pool, &filter).await?;
    Ok(Json(serde_json::json!({"alerts": alerts})))
}

/// `GET /api/alerts/{id}`: the alert (`summary`: state, firings; `alert`: its latest firing in full), who changed
/// it, its rows, and the state of each delivery of its latest firing. Any of its rows' ids will do.
pub async fn alert(State(state): State<AppState>, Path(id): Path<i64>) -> Answer {
    let detail = crate::store::alerts::detail(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no alert {id}")))?;
    let deliveries = crate::store::outbox::deliveries(&state.pool, detail.latest.id).await?;
    Ok(Json(serde_json::json!({
        "id": detail.summary.id,
        "summary": detail.summary,
        "alert": detail.latest,
        "changes": detail.changes,
        "rows": detail.rows,
        "deliveries": deliveries,
    })))
}

/// The body of `POST /api/alerts/{id}/{ack|unack|resolve}` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeBody {
    /// Why.
    pub note: Option<String>,
    /// Who (default `api`).
    pub by: Option<String>,
}

/// Longest note or name accepted, in bytes.
pub const MAX_NOTE: usize = 2000;

/// `POST /api/alerts/{id}/{ack|unack|resolve}` (token required): `{"id": ALERT, "state": "...", "notified": [...]}`;
/// 403 without a configured token, 404 for no such alert, 409 when its state does not allow the change.
pub async fn change(
    State(state): State<AppState>,
    Path((id, change)): Path<(i64, String)>,
    body: Option<Json<ChangeBody>>,
) -> Answer {
    // A change through the API always carries the token: without one configured there is none to carry (the CLI
    // and, on a loopback-only listener, the dashboard's forms still work).
    if state.token.is_none() {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "changing alerts through the API needs a token (http.token_env or http.token_file)".into(),
        ));
    }
    let change: Change = change.parse().map_err(|e| ApiError(StatusCode::NOT_FOUND, e))?;
    let Json(body) = body.unwrap_or_default();
    let actor = body.by.as_deref().map(str::trim).filter(|b| !b.is_empty()).unwrap_or("api");
    let changed = apply_change(&state, id, change, actor, body.note.as_deref()).await?;
    Ok(Json(serde_json::json!({
        "id": changed.alert_id,
        "state": change.state(),
        "by": actor,
        "notified": changed.notified,
    })))
}

/// A change made: the alert (its opening row's id) and the notifiers told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The alert.
    pub alert_id: i64,
    /// The notifiers its notice was queued for.
    pub notified: Vec<String>,
}

/// Makes a change for the API or the dashboard: refused unless changes are allowed here.
pub async fn apply_change(
    state: &AppState,
    id: i64,
    change: Change,
    actor: &str,
    note: Option<&str>,
) -> Result<Changed, ApiError> {
    if !state.changes_allowed {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "changing alerts needs http.token_env or http.token_file, or a loopback-only listener".into(),
        ));
    }
    if actor.len() > MAX_NOTE || note.is_some_and(|n| n.len() > MAX_NOTE) {
        return Err(bad_request(format!("a name or note is at most {MAX_NOTE} bytes")));
    }
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    let request = AlertChange { change, actor, note, at: Utc::now() };
    let outcome =
        crate::store::alerts::change_state(&mut state.writer.tables().await?, id, &request, state.notify_changes)
            .await?;
    match outcome {
        ChangeOutcome::Changed { alert_id, queued, .. } => {
            if !queued.is_empty() {
                state.deliveries.notify_waiters();
            }
            tracing::info!(alert = alert_id, change = change.as_str(), actor = %crate::telemetry::Escaped(actor), "alert changed");
            Ok(Changed { alert_id, notified: queued })
        }
        ChangeOutcome::NoSuchAlert => Err(ApiError(StatusCode::NOT_FOUND, format!("no alert {id}"))),
        ChangeOutcome::Refused(why) => Err(ApiError(StatusCode::CONFLICT, why)),
    }
}

/// `GET /api/hosts`: `{"hosts": [...]}`, the inventory as `hsmwatch hosts --json` prints it.
pub async fn hosts(State(state): State<AppState>) -> Answer {
    let hosts = crate::inventory::views(&state.pool, state.silent_after, Utc::now()).await?;
    Ok(Json(serde_json::json!({"hosts": hosts})))
}

/// `GET /api/cloud`: `{"regions": [...]}`, the cloud inventory as `hsmwatch cloud --json` prints it.
pub async fn cloud(State(state): State<AppState>) -> Answer {
    let regions = crate::cloud::view::views(&state.pool).await?;
    Ok(Json(serde_json::json!({"regions": regions})))
}
