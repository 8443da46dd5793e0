//! The live dashboard: a small axum server on loopback answering the page and its JSON API.
//!
//! Every request re-reads what the run files gained since the last one (by file offset), so
//! the page follows a run while it trains without a background task.
//!
//! Each connection is served by hyper with limits a browser never meets: the request head must
//! arrive within [`HEADER_TIMEOUT`] and fit in [`MAX_REQUEST_HEAD`] bytes (else 408 or 431), and
//! a connection lives at most [`CONNECTION_LIMIT`] (the page then opens a new one), so slow or
//! oversized clients cannot hold the server.

use crate::view::{lifecycle, EventFilter, EventRow, RunView};
use crate::{page, DashboardError, RunSet};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The longest a client may take to send a request's head (the request line and headers).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head served (a browser's is well under 2 KiB).
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// The longest one connection is kept, however busy.
pub const CONNECTION_LIMIT: Duration = Duration::from_secs(120);

/// The shared state of the handlers: the runs, re-read on each request, and each run's latest
/// view as JSON, so many pages polling one run serialize its view once per change.
struct Handlers {
    runs: Mutex<RunSet>,
    views: Mutex<HashMap<String, CachedView>>,
}

type Shared = Arc<Handlers>;

/// A run's view as JSON, and the run's version it was made from (a run's version only grows:
/// the set keeps each run it found for the life of the server).
struct CachedView {
    version: u64,
    json: Bytes,
}

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
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(DashboardError::Serve)?;
        runtime.block_on(async move {
            self.listener.set_nonblocking(true).map_err(DashboardError::Serve)?;
            let listener = tokio::net::TcpListener::from_std(self.listener).map_err(DashboardError::Serve)?;
            let routes = router(self.runs);
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(serve_connection(stream, routes.clone()));
                    }
                    // A failed accept loses that connection only; the pause keeps a lasting error
                    // (out of file descriptors) from spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
    }
}

/// Serves one connection's requests under the limits of the module's documentation.
async fn serve_connection(stream: tokio::net::TcpStream, routes: Router) {
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(routes));
    // Past the limit the connection is dropped; a client that was mid-request retries.
    let _ = tokio::time::timeout(CONNECTION_LIMIT, connection).await;
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
        .with_state(Arc::new(Handlers { runs: Mutex::new(runs), views: Mutex::default() }))
}

/// The runs, refreshed.
fn refreshed(shared: &Shared) -> MutexGuard<'_, RunSet> {
    let mut runs = shared.runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    runs.refresh();
    runs
}

fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => json_body(body.into()),
        Err(e) => not_found(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A 200 answer carrying `body`, JSON already.
fn json_body(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
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
            epoch: r.metrics().last().map_or(0, |m| m.metrics.epoch),
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
    let version = run.version();
    let mut views = shared.views.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(view) = views.get(&name).filter(|view| view.version == version) {
        return json_body(view.json.clone());
    }
    match serde_json::to_vec(&RunView::live(run)) {
        Ok(json) => {
            let json = Bytes::from(json);
            views.insert(name, CachedView { version, json: json.clone() });
            json_body(json)
        }
        Err(e) => not_found(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    /// A dashboard over an empty run folder, serving from a background thread.
    fn serving() -> (SocketAddr, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::bind(([127, 0, 0, 1], 0).into(), RunSet::open(dir.path()).unwrap()).unwrap();
        let addr = server.local_addr();
        std::thread::spawn(move || server.run());
        (addr, dir)
    }

    /// Sends `request` and reads the answer until the server closes or 10 s pass.
    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = stream.write_all(request);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }

    const LIST: &[u8] = b"GET /api/runs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    #[test]
    fn a_slow_client_is_cut_off_while_others_are_served() {
        let (addr, _dir) = serving();
        let mut slow = TcpStream::connect(addr).unwrap();
        let started = Instant::now();
        slow.write_all(b"GET /api/runs HTTP/1.1\r\n").unwrap();
        let mut cut_off = None;
        while started.elapsed() < HEADER_TIMEOUT * 3 {
            if slow.write_all(b"X-Slow: 1\r\n").is_err() {
                cut_off = Some(started.elapsed());
                break;
            }
            assert!(exchange(addr, LIST).starts_with("HTTP/1.1 200"), "a normal client is served meanwhile");
            std::thread::sleep(Duration::from_millis(200));
        }
        let cut_off = cut_off.expect("the slow client was never cut off");
        assert!(cut_off >= HEADER_TIMEOUT && cut_off < HEADER_TIMEOUT * 2, "cut off after {cut_off:?}");
    }

    #[test]
    fn an_oversized_request_is_refused_and_the_server_goes_on() {
        let (addr, _dir) = serving();
        let huge = format!("GET /api/runs HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(MAX_REQUEST_HEAD * 2));
        let answer = exchange(addr, huge.as_bytes());
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer}");
        assert!(exchange(addr, LIST).starts_with("HTTP/1.1 200"));
    }
}
