//! The JSON API: `GET /api/events` (the filters of `hsmwatch query`, newest first, paginated by cursor),
//! `GET /api/alerts`, `GET /api/alerts/{id}` and `GET /api/hosts`.
//!
//! Events are objects with the flat dotted field names of docs/events.md, as `hsmwatch query --json` prints them.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::AppState;
use crate::store::query::{self, EventQuery};

/// Most events or alerts one page returns.
pub const MAX_PAGE: u32 = 1000;

/// An API error: a status and a message, answered as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

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
        tracing::warn!(%error, "API request failed");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
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
    let (found, next_cursor) = query::page(&state.pool, &filter).await?;
    let events: Vec<_> = found.iter().map(|stored| stored.event.all_fields()).collect();
    Ok(Json(serde_json::json!({"events": events, "next_cursor": next_cursor})))
}

/// Query parameters of `/api/alerts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    /// `firing` or `resolved`.
    pub status: Option<String>,
    /// At or after.
    pub since: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// `GET /api/alerts`: `{"alerts": [...]}`, newest first.
pub async fn alerts(State(state): State<AppState>, Query(q): Query<AlertsQuery>) -> Answer {
    if let Some(status) = q.status.as_deref().filter(|s| !["firing", "resolved"].contains(s)) {
        return Err(bad_request(format!("status: `{status}` is neither firing nor resolved")));
    }
    let since = time(q.since.as_deref(), "since")?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let filter = crate::store::alerts::AlertFilter { status: q.status.as_deref(), since, host: None, limit };
    let alerts = crate::store::alerts::list(&state.pool, &filter).await?;
    Ok(Json(serde_json::json!({"alerts": alerts})))
}

/// `GET /api/alerts/{id}`: the alert in full with the state of each delivery.
pub async fn alert(State(state): State<AppState>, Path(id): Path<i64>) -> Answer {
    let alert = crate::store::alerts::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no alert {id}")))?;
    let deliveries = crate::store::outbox::deliveries(&state.pool, id).await?;
    Ok(Json(serde_json::json!({"id": id, "alert": alert, "deliveries": deliveries})))
}

/// `GET /api/hosts`: `{"hosts": [...]}`, the inventory as `hsmwatch hosts --json` prints it.
pub async fn hosts(State(state): State<AppState>) -> Answer {
    let hosts = crate::inventory::views(&state.pool, state.silent_after, Utc::now()).await?;
    Ok(Json(serde_json::json!({"hosts": hosts})))
}
