//! A tiny HTTP/1.1 server for `GET /metrics`: one background thread, one connection at a time.
//! A request must arrive whole within [`TIMEOUT`] (however slowly its bytes trickle in) and
//! writes time out too, so a bad or slow client costs at most a few seconds and never a panic.

use crate::MetricsObserver;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The content type of the exposition `prometheus-client` writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Requests larger than this are refused (a scrape request is a few hundred bytes).
const MAX_REQUEST: usize = 8192;
/// The longest a client may take to send its request, and to take each write of the answer.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// A running metrics endpoint. The thread serves until the process ends.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
}

impl MetricsServer {
    /// The address it listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Binds `addr` and serves `metrics` at `GET /metrics` from a background thread.
pub fn serve(addr: impl ToSocketAddrs, metrics: MetricsObserver) -> std::io::Result<MetricsServer> {
    let listener = TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new().name("morphogen-metrics".into()).spawn(move || {
        for stream in listener.incoming() {
            // A failed accept or a broken connection only loses that request; a pause after a
            // failed accept keeps a persistent error (e.g. out of file descriptors) from spinning.
            match stream {
                Ok(stream) => {
                    let _ = handle(stream, &metrics);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    })?;
    Ok(MetricsServer { addr })
}

fn handle(mut stream: TcpStream, metrics: &MetricsObserver) -> std::io::Result<()> {
    stream.set_write_timeout(Some(TIMEOUT))?;
    let deadline = Instant::now() + TIMEOUT;
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && !request.windows(2).any(|w| w == b"\n\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return respond(&mut stream, "408 Request Timeout", "text/plain", "request too slow\n", true);
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
        if request.len() > MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request too large\n",
                true,
            );
        }
    }
    let text = String::from_utf8_lossy(&request);
    let mut parts = text.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let head = method == "HEAD";
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => respond(&mut stream, "200 OK", CONTENT_TYPE, &metrics.encode(), !head),
        ("GET" | "HEAD", "/") => {
            respond(&mut stream, "200 OK", "text/plain", "morphogen metrics: GET /metrics\n", !head)
        }
        ("GET" | "HEAD", _) => respond(&mut stream, "404 Not Found", "text/plain", "not found; try /metrics\n", !head),
        ("", _) => respond(&mut stream, "400 Bad Request", "text/plain", "bad request\n", true),
        _ => respond(&mut stream, "405 Method Not Allowed", "text/plain", "only GET\n", true),
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
    with_body: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if with_body {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}
