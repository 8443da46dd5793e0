//! A minimal HTTP/1.1 client over `std::net` (GET, POST and DELETE with JSON bodies), enough for
//! the dashboard's API and for chromedriver.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// GET `path` from `addr`: status and body.
pub fn get(addr: &str, path: &str) -> (u16, String) {
    request(addr, "GET", path, None)
}

/// One request; `body` is sent as JSON. Panics, naming the request, on any failure.
pub fn request(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    try_request(addr, method, path, body).unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// One request; `body` is sent as JSON. Any failure (connection, timeout, a response cut short)
/// is an error naming it.
pub fn try_request(addr: &str, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String), String> {
    let text = |e: std::io::Error| e.to_string();
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(120))).map_err(text)?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body.as_bytes())).map_err(text)?;
    let mut reader = std::io::BufReader::new(stream);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        let before = head.len();
        std::io::BufRead::read_line(&mut reader, &mut head).map_err(text)?;
        if head.len() == before {
            return Err(format!("the connection closed inside the response head: {head:?}"));
        }
    }
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("no status code")?;
    let lower = head.to_ascii_lowercase();
    let length = lower.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok());
    let mut payload = Vec::new();
    match length {
        // Servers may keep the connection open: read exactly the body.
        Some(n) => {
            payload.resize(n, 0);
            reader.read_exact(&mut payload).map_err(text)?;
        }
        None => {
            reader.read_to_end(&mut payload).map_err(text)?;
        }
    }
    if lower.contains("transfer-encoding: chunked") {
        payload = dechunk(&payload);
    }
    Ok((status, String::from_utf8(payload).map_err(|e| e.to_string())?))
}

/// The body of a chunked response.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").expect("a chunk size line");
        let size_text = String::from_utf8_lossy(&data[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 4 + size..];
    }
}
