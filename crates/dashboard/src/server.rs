//! The live dashboard: a small axum server on loopback answering the page and its JSON API.
//!
//! Every request re-reads what the run files gained since the last one (by file offset), so
//! the page follows a run while it trains without a background task.

use crate::view::{lifecycle, EventFilter, EventRow, RunView};
use crate::{page, DashboardError, RunSet};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// The shared state of the handlers: the runs, re-read on each request.
type Shared = Arc<Mutex<RunSet>>;

/// A dashboard bound to its address, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: std::net::TcpListener,
    runs: RunSet,
}

impl Server {
    /// Listens on `addr` (use port 0 for any free port); fails at once if it cannot.
    pub fn bind(addr: SocketAddr, runs: RunSet) -> Result<Self, DashboardError> {
        let listener = std::net::TcpListener::bind(addr).map_err(|source| DashboardError::Bind { addr, source })?;
        Ok(Self { listener, runs })
    }

    /// The address it listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until the process ends (or the server fails).
    pub fn run(self) -> Result<(), DashboardError> {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_io().build().map_err(DashboardError::Serve)?;
        runtime.block_on(async move {
            self.listener.set_nonblocking(true).map_err(DashboardError::Serve)?;
            let listener = tokio::net::TcpListener::from_std(self.listener).map_err(DashboardError::Serve)?;
            axum::serve(listener, router(self.runs)).await.map_err(DashboardError::Serve)
        })
    }
}

/// The routes: `/` (the page), `/api/runs`, `/api/runs/{run}/view?since=V`,
/// `/api/runs/{run}/events?layer=&seed=&stage=` and `/api/runs/{run}/seed/{layer}/{seed}`.
pub fn router(runs: RunSet) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/runs", get(list_runs))
        .route("/api/runs/{run}/view", get(run_view))
        .route("/api/runs/{run}/events", get(run_events))
        .route("/api/runs/{run}/seed/{layer}/{seed}", get(seed_lifecycle))
        .with_state(Arc::new(Mutex::new(runs)))
}

/// The runs, refreshed.
fn refreshed(shared: &Shared) -> MutexGuard<'_, RunSet> {
    let mut runs = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    runs.refresh();
    runs
}

fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => not_found(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn not_found(status: StatusCode, error: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], serde_json::json!({ "error": error }).to_string())
        .into_response()
}

fn no_run(name: &str) -> Response {
    not_found(StatusCode::NOT_FOUND, format!("no run named '{name}'; GET /api/runs lists them"))
}

async fn index() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page::live_page()).into_response()
}

/// One entry of `/api/runs`.
#[derive(Serialize)]
struct RunEntry {
    name: String,
    version: u64,
    epoch: u32,
    messages: Vec<String>,
}

async fn list_runs(State(shared): State<Shared>) -> Response {
    let runs = refreshed(&shared);
    let entries: Vec<RunEntry> = runs
        .runs()
        .iter()
        .map(|r| RunEntry {
            name: r.name().to_string(),
            version: r.version(),
            epoch: r.metrics().last().map_or(0, |m| m.epoch),
            messages: r.messages(),
        })
        .collect();
    json(&entries)
}

/// `?since=V`: answer `{"unchanged": true}` when the run is still at version V.
#[derive(Deserialize)]
struct Since {
    since: Option<u64>,
}

async fn run_view(State(shared): State<Shared>, Path(name): Path<String>, Query(q): Query<Since>) -> Response {
    let runs = refreshed(&shared);
    let Some(run) = runs.get(&name) else { return no_run(&name) };
    if q.since == Some(run.version()) {
        return json(&serde_json::json!({ "unchanged": true, "version": run.version() }));
    }
    json(&RunView::live(run))
}

async fn run_events(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    Query(filter): Query<EventFilter>,
) -> Response {
    let runs = refreshed(&shared);
    let Some(run) = runs.get(&name) else { return no_run(&name) };
    let rows: Vec<EventRow> = run.events().iter().map(EventRow::from).filter(|e| filter.matches(e)).collect();
    json(&rows)
}

async fn seed_lifecycle(
    State(shared): State<Shared>,
    Path((name, layer, seed)): Path<(String, String, usize)>,
) -> Response {
    let runs = refreshed(&shared);
    let Some(run) = runs.get(&name) else { return no_run(&name) };
    match lifecycle(run, &layer, seed) {
        Some(story) => json(&story),
        None => not_found(StatusCode::NOT_FOUND, format!("run '{name}' has no seed {seed} in a layer '{layer}'")),
    }
}
