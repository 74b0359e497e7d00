//! The web dashboard an on-call engineer opens first: the HSMs and their last 24 hours, a host's events and alerts,
//! the alerts as a triage queue, and event search. Server-rendered HTML (maud), charts as inline SVG, one
//! stylesheet, no script and no CDN; behind the API's token rule (a bearer header, or a session cookie set by
//! `/login`: a random id that expires, ended by `/logout`). Alerts are acknowledged and resolved with plain forms
//! that carry a token of the session (CSRF). Every response carries a Content-Security-Policy that allows nothing but
//! the page's own stylesheet.

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

use self::pages::{Filters, HostFigures};
use super::AppState;
use crate::store::alerts::{AlertFilter, StateFilter};
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
        .route("/alerts/{id}/{change}", axum::routing::post(change_alert))
        .route("/events", get(events))
        .route("/cloud", get(cloud))
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

/// The sign-in form's fields.
#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    /// The API token.
    pub token: String,
    /// Who signs in: recorded on the alerts they acknowledge or resolve.
    #[serde(default)]
    pub name: String,
}

/// The longest name a sign-in keeps, in characters.
const MAX_NAME: usize = 64;

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
    let name: String = form.name.trim().chars().filter(|c| !c.is_control()).take(MAX_NAME).collect();
    let name = if name.is_empty() { format!("dashboard user at {}", peer.ip()) } else { name };
    match state.sessions.open(&name) {
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
        let hours = crate::store::activity::since(&state.pool, day_ago, None).await?;
        let open = crate::store::alerts::open_alerts_by_severity(&state.pool).await?;
        let mut figures: BTreeMap<String, HostFigures> = BTreeMap::new();
        for row in &hours {
            let figure = figures.entry(row.host.clone()).or_default();
            figure.events += row.events;
            figure.failed_logins += row.failed_logins;
        }
        for (host, by_severity) in open {
            figures.entry(host).or_default().open = by_severity;
        }
        let chart = chart::hourly(&hours, crate::store::activity::hour_of(now), 24);
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
    let (found, next) = query::page(&state.pool, &filter).await.map_err(|e| e.to_string())?;
    Ok((found, next.map(|cursor| cursor.to_string())))
}

async fn events(State(state): State<AppState>, Query(filters): Query<Filters>) -> Response {
    match search(&state, &filters, None).await {
        Ok((found, next)) => pages::events_page(&filters, &found, next.as_deref(), None).into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, pages::events_page(&filters, &[], None, Some(&error))).into_response(),
    }
}

/// `?state=` of the alerts page.
#[derive(Debug, serde::Deserialize)]
pub struct StateQuery {
    /// `open`, `firing`, `acknowledged`, `resolved`, or `all` (`status` is the older name).
    #[serde(alias = "status")]
    pub state: Option<String>,
}

async fn alerts(State(state): State<AppState>, Query(q): Query<StateQuery>) -> Response {
    let wanted = match q.state.as_deref() {
        None | Some("open") => Some(StateFilter::Open),
        Some(text) => text.parse::<StateFilter>().ok(),
    };
    let filter = AlertFilter { state: wanted, since: None, host: None, limit: 200 };
    match crate::store::alerts::list(&state.pool, &filter).await {
        Ok(rows) => pages::alerts_page(wanted, &rows, Utc::now()).into_response(),
        Err(error) => failure(error),
    }
}

async fn cloud(State(state): State<AppState>) -> Response {
    match crate::cloud::view::views(&state.pool).await {
        Ok(regions) => pages::cloud_page(&regions, Utc::now()).into_response(),
        Err(error) => failure(error),
    }
}

/// Who is signed in to the request's session, and that session's id.
fn signed_in(state: &AppState, headers: &axum::http::HeaderMap) -> (Option<String>, Option<String>) {
    let id = session_cookie(headers).filter(|id| state.sessions.is_open(id));
    let name = id.as_deref().and_then(|id| state.sessions.name(id));
    (id, name)
}

/// What the forms of an alert's page need: whether changes are allowed, and the form token of this session.
fn change_form(state: &AppState, session: Option<&str>) -> Option<String> {
    state.changes_allowed.then(|| state.sessions.form_token(session))
}

async fn alert(State(state): State<AppState>, Path(id): Path<i64>, headers: axum::http::HeaderMap) -> Response {
    let (session, _) = signed_in(&state, &headers);
    let built = async {
        let Some(detail) = crate::store::alerts::detail(&state.pool, id).await? else { return Ok(None) };
        let deliveries = crate::store::outbox::deliveries(&state.pool, detail.latest.id).await?;
        let events = query::events_by_id(&state.pool, &detail.latest.event_ids).await?;
        let form = change_form(&state, session.as_deref());
        Ok::<_, crate::store::StoreError>(Some(pages::alert_page(
            &detail,
            &deliveries,
            &events,
            form.as_deref(),
            Utc::now(),
        )))
    };
    match built.await {
        Ok(Some(page)) => page.into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, pages::layout("No such alert", maud::html! { h1 { "No alert " (id) } }))
            .into_response(),
        Err(error) => failure(error),
    }
}

/// The fields of an alert's change forms.
#[derive(Debug, serde::Deserialize)]
pub struct ChangeForm {
    /// The session's form token.
    pub csrf: String,
    /// Why, in the person's words.
    #[serde(default)]
    pub note: String,
}

/// `POST /alerts/{id}/{ack|unack|resolve}`: the change, by the signed-in name; back to the alert's page.
async fn change_alert(
    State(state): State<AppState>,
    Path((id, change)): Path<(i64, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    Form(form): Form<ChangeForm>,
) -> Response {
    let refused = |status: StatusCode, why: String| {
        let body = maud::html! { h1 { "Not changed" } p.silent { (why) } p { a href=(format!("/alerts/{id}")) { "Back to the alert" } } };
        (status, pages::layout("Not changed", body)).into_response()
    };
    let Ok(change) = change.parse::<crate::store::alerts::Change>() else {
        return refused(StatusCode::NOT_FOUND, format!("`{change}` is not a change of an alert"));
    };
    let (session, name) = signed_in(&state, &headers);
    let expected = state.sessions.form_token(session.as_deref());
    if !super::same_secret(form.csrf.as_bytes(), expected.as_bytes()) {
        tracing::warn!(%peer, "alert change refused: the form token does not match the session");
        return refused(
            StatusCode::FORBIDDEN,
            "The form has expired or did not come from this dashboard; reload the alert and try again.".into(),
        );
    }
    let actor = name.unwrap_or_else(|| format!("dashboard user at {}", peer.ip()));
    match super::api::apply_change(&state, id, change, &actor, Some(&form.note)).await {
        Ok(changed) => Redirect::to(&format!("/alerts/{}", changed.alert_id)).into_response(),
        Err(error) => {
            let (status, why) = error.parts();
            refused(status, why.to_owned())
        }
    }
}

async fn host(State(state): State<AppState>, Path(name): Path<String>, Query(filters): Query<Filters>) -> Response {
    let now = Utc::now();
    let built = async {
        let hours = crate::store::activity::since(&state.pool, now - chrono::Duration::hours(24), Some(&name)).await?;
        let lines = crate::store::alerts::list(
            &state.pool,
            &AlertFilter { state: None, since: None, host: Some(&name), limit: 50 },
        )
        .await?;
        let snmp = crate::inventory::snmp_view(&state.pool, &name).await?;
        let cloud = crate::inventory::cloud_view(&state.pool, &name).await?;
        let collectors = crate::inventory::collectors_of(&state.pool, &name).await?;
        Ok::<_, crate::store::StoreError>((hours, lines, pages::HostSides { collectors, snmp, cloud }))
    };
    let (hours, lines, sides) = match built.await {
        Ok(built) => built,
        Err(error) => return failure(error),
    };
    let chart = chart::hourly(&hours, crate::store::activity::hour_of(now), 24);
    match search(&state, &filters, Some(&name)).await {
        Ok((found, next)) => {
            let page = pages::EventPage { filters: &filters, events: &found, next: next.as_deref(), refused: None };
            pages::host_page(&name, &sides, chart, page, &lines, now).into_response()
        }
        Err(error) => {
            let page = pages::EventPage { filters: &filters, events: &[], next: None, refused: Some(&error) };
            (StatusCode::BAD_REQUEST, pages::host_page(&name, &sides, chart, page, &lines, now)).into_response()
        }
    }
}
