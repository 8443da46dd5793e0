//! A minimal blocking HTTP/1.1 client for OTLP/HTTP over plain `std::net`, so exporting needs
//! no async runtime. It reports the first failure once on stderr and never stops the caller.

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Connect, write and read timeout of one export.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(3);

/// Posts OTLP requests with `Connection: close`, one connection per batch. The first failed
/// export (no connection, timeout, or a status other than 2xx) prints one warning on stderr;
/// later failures drop their spans silently. Training never waits more than 3 s per
/// batch, and never on the training thread (the batch processor exports from its own).
#[derive(Debug)]
pub struct OtlpClient {
    url: String,
    warned: AtomicBool,
}

impl OtlpClient {
    /// A client for the traces URL `url` (used in its one warning).
    pub fn new(url: &str) -> Self {
        Self { url: url.to_string(), warned: AtomicBool::new(false) }
    }

    /// Whether a failure has been reported.
    pub fn has_warned(&self) -> bool {
        self.warned.load(Ordering::Relaxed)
    }

    fn warn_once(&self, problem: &str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            eprintln!(
                "warning: cannot export traces to {}: {problem}; training goes on and its spans are dropped \
                 (said once)",
                self.url
            );
        }
    }

    fn post(&self, request: &Request<Bytes>) -> std::io::Result<Response<Bytes>> {
        let uri = request.uri();
        let host = uri.host().unwrap_or("localhost");
        let port = uri.port_u16().unwrap_or(80);
        let addr = (host.trim_start_matches('[').trim_end_matches(']'), port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host} has no address")))?;
        let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
            request.body().len()
        );
        for (name, value) in request.headers() {
            if let Ok(value) = value.to_str() {
                head += &format!("{name}: {value}\r\n");
            }
        }
        head += "\r\n";
        stream.write_all(head.as_bytes())?;
        stream.write_all(request.body())?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply)?;
        parse_response(&reply)
    }
}

/// The status and body of a raw HTTP/1.x response (a chunked body is kept as sent: the
/// exporter only reads it for partial-success details).
fn parse_response(reply: &[u8]) -> std::io::Result<Response<Bytes>> {
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let end = reply.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| invalid("no complete HTTP response"))?;
    let head = std::str::from_utf8(&reply[..end]).map_err(|_| invalid("the response head is not UTF-8"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("no status code in the response"))?;
    Response::builder()
        .status(status)
        .body(Bytes::copy_from_slice(&reply[end + 4..]))
        .map_err(|e| invalid(&e.to_string()))
}

#[async_trait::async_trait]
impl HttpClient for OtlpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        match self.post(&request) {
            Ok(response) if response.status().is_success() => Ok(response),
            Ok(response) => {
                self.warn_once(&format!("the collector answered HTTP {}", response.status()));
                Ok(response)
            }
            Err(error) => {
                self.warn_once(&error.to_string());
                Err(Box::new(error))
            }
        }
    }
}
