//! The web dashboard an on-call engineer opens first: the HSMs and their last 24 hours, a host's events and alerts,
//! the alerts with their deliveries, and event search. Server-rendered HTML (maud), charts as inline SVG, one
//! stylesheet, no script and no CDN; read-only; behind the API's token rule (a bearer header, or a session cookie
//! set by `/login`: a random id that expires, ended by `/logout`). Every response carries a Content-Security-Policy
//! that allows nothing but the page's own stylesheet.

pub mod chart;
pub mod pages;

use std::collections::BTreeMap;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use chrono::Utc;

use self::pages::{AlertLine, Filters, HostFigures};
use super::AppState;
use crate::store::alerts::AlertFilter;
use crate::store::query;

/// The policy: the page's own stylesheet, nothing else (no script at all, no inline style, no frames).
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The session cookie's name.
const COOKIE: &str = "hsmwatch_session";

/// Events per page.
const PAGE: u32 = 50;

/// The dashboard's routes (merged into the HTTP server's).
pub fn router(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(overview))
        .route("/hosts/{name}", get(host))
        .route("/alerts", get(alerts))
        .route("/alerts/{id}", get(alert))
        .route("/events", get(events))
        .route_layer(axum::middleware::from_fn_with_state(state, require_session));
    Router::new()
        .merge(pages)
        .route("/login", get(login_form).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/static/style.css", get(stylesheet))
        .layer(axum::middleware::from_fn(security_headers))
}

/// The session id a request's cookie carries, if any.
fn session_cookie(request_headers: &axum::http::HeaderMap) -> Option<String> {
    request_headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|cookies| {
        cookies
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value.to_owned())
    })
}

fn has_session(state: &AppState, request: &Request, token: &str) -> bool {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| super::same_secret(t.trim().as_bytes(), token.as_bytes()));
    bearer || session_cookie(request.headers()).is_some_and(|id| state.sessions.is_open(&id))
}

async fn require_session(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match &state.token {
        Some(token) if !has_session(&state, &request, &token.0) => Redirect::to("/login").into_response(),
        _ => next.run(request).await,
    }
}

/// The `Set-Cookie` value of a session (`None`: the one that ends it in the browser).
fn session_cookie_header(state: &AppState, id: Option<&str>) -> String {
    let secure = if state.https { "; Secure" } else { "" };
    match id {
        Some(id) => format!(
            "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            state.sessions.lifetime().as_secs()
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("style.css")).into_response()
}

async fn login_form() -> maud::Markup {
    pages::login_page(pages::SignIn::Form)
}

/// The sign-in form's field.
#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    /// The API token.
    pub token: String,
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(token) = &state.token else { return Redirect::to("/").into_response() };
    if let Err(wait) = state.throttle.check(peer.ip()) {
        tracing::warn!(%peer, "dashboard sign-in refused: too many failed attempts from this address");
        let body = pages::login_page(pages::SignIn::Throttled(wait));
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, wait.as_secs().max(1).to_string())], body)
            .into_response();
    }
    if !super::same_secret(form.token.trim().as_bytes(), token.0.as_bytes()) {
        state.throttle.failed(peer.ip());
        tracing::info!(%peer, "dashboard sign-in failed");
        return (StatusCode::UNAUTHORIZED, pages::login_page(pages::SignIn::Failed)).into_response();
    }
    state.throttle.succeeded(peer.ip());
    match state.sessions.open() {
        Ok(id) => ([(header::SET_COOKIE, session_cookie_header(&state, Some(&id)))], Redirect::to("/")).into_response(),
        Err(error) => failure(format!("cannot open a session: {error}")),
    }
}

/// `POST /logout`: ends the session, here and in the browser.
async fn logout(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        state.sessions.close(&id);
    }
    ([(header::SET_COOKIE, session_cookie_header(&state, None))], Redirect::to("/login")).into_response()
}

/// A page that could not be built: the error, in the frame.
fn failure(error: impl std::fmt::Display) -> Response {
    tracing::warn!(%error, "dashboard page failed");
    let body = maud::html! { h1 { "Something went wrong" } p { (error.to_string()) } };
    (StatusCode::INTERNAL_SERVER_ERROR, pages::layout("Error", body)).into_response()
}

async fn overview(State(state): State<AppState>) -> Response {
    let now = Utc::now();
    let day_ago = now - chrono::Duration::hours(24);
    let built = async {
        let hosts = crate::inventory::views(&state.pool, state.silent_after, now).await?;
        let hours = crate::activity::since(&state.pool, day_ago, None).await?;
        let open = crate::store::alerts::open_alerts_by_severity(&state.pool, now - chrono::Duration::days(7)).await?;
        let mut figures: BTreeMap<String, HostFigures> = BTreeMap::new();
        for row in &hours {
            let figure = figures.entry(row.host.clone()).or_default();
            figure.events += row.events;
            figure.failed_logins += row.failed_logins;
        }
        for (host, by_severity) in open {
            figures.entry(host).or_default().open = by_severity;
        }
        let chart = chart::hourly(&hours, crate::activity::hour_of(now), 24);
        Ok::<_, crate::store::StoreError>(pages::overview(&hosts, &figures, chart))
    };
    match built.await {
        Ok(page) => page.into_response(),
        Err(error) => failure(error),
    }
}

/// Events matching the filters (on `host` when given), one page, and the cursor of the next.
async fn search(
    state: &AppState,
    filters: &Filters,
    host: Option<&str>,
) -> Result<(Vec<query::StoredEvent>, Option<String>), String> {
    let mut filter = filters.filter(PAGE, PAGE)?;
    if let Some(host) = host {
        filter.host = Some(host.to_owned());
    }
    query::page(&state.pool, &filter).await.map_err(|e| e.to_string())
}

async fn events(State(state): State<AppState>, Query(filters): Query<Filters>) -> Response {
    match search(&state, &filters, None).await {
        Ok((found, next)) => pages::events_page(&filters, &found, next.as_deref(), None).into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, pages::events_page(&filters, &[], None, Some(&error))).into_response(),
    }
}

/// Alerts with their deliveries.
async fn alert_lines(state: &AppState, filter: &AlertFilter<'_>) -> Result<Vec<AlertLine>, crate::store::StoreError> {
    let rows = crate::store::alerts::list(&state.pool, filter).await?;
    let mut lines = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(alert) = crate::store::alerts::get(&state.pool, row.id).await? {
            let deliveries = crate::store::outbox::deliveries(&state.pool, row.id).await?;
            lines.push(AlertLine { alert, deliveries });
        }
    }
    Ok(lines)
}

/// `?status=` of the alerts page.
#[derive(Debug, serde::Deserialize)]
pub struct StatusQuery {
    /// `firing` or `resolved`.
    pub status: Option<String>,
}

async fn alerts(State(state): State<AppState>, Query(q): Query<StatusQuery>) -> Response {
    let status = q.status.as_deref().filter(|s| ["firing", "resolved"].contains(s));
    match alert_lines(&state, &AlertFilter { status, since: None, host: None, limit: 100 }).await {
        Ok(lines) => pages::alerts_page(status, &lines).into_response(),
        Err(error) => failure(error),
    }
}

async fn alert(State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    let built = async {
        let Some(alert) = crate::store::alerts::get(&state.pool, id).await? else { return Ok(None) };
        let deliveries = crate::store::outbox::deliveries(&state.pool, id).await?;
        let events = query::events_by_id(&state.pool, &alert.event_ids).await?;
        Ok::<_, crate::store::StoreError>(Some(pages::alert_page(&AlertLine { alert, deliveries }, &events)))
    };
    match built.await {
        Ok(Some(page)) => page.into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, pages::layout("No such alert", maud::html! { h1 { "No alert " (id) } }))
            .into_response(),
        Err(error) => failure(error),
    }
}

async fn host(State(state): State<AppState>, Path(name): Path<String>, Query(filters): Query<Filters>) -> Response {
    let now = Utc::now();
    let built = async {
        let hours = crate::activity::since(&state.pool, now - chrono::Duration::hours(24), Some(&name)).await?;
        let lines =
            alert_lines(&state, &AlertFilter { status: None, since: None, host: Some(&name), limit: 50 }).await?;
        Ok::<_, crate::store::StoreError>((hours, lines))
    };
    let (hours, lines) = match built.await {
        Ok(built) => built,
        Err(error) => return failure(error),
    };
    let chart = chart::hourly(&hours, crate::activity::hour_of(now), 24);
    match search(&state, &filters, Some(&name)).await {
        Ok((found, next)) => {
            pages::host_page(&name, chart, &filters, &found, next.as_deref(), None, &lines).into_response()
        }
        Err(error) => {
            let page = pages::host_page(&name, chart, &filters, &[], None, Some(&error), &lines);
            (StatusCode::BAD_REQUEST, page).into_response()
        }
    }
}
