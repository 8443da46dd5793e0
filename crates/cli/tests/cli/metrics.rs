//! `morphogen train --metrics-addr`: the exporter is up during a real run and fed by it.

use crate::common::{morphogen, sample, scratch, MetricsRun};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn get(addr: SocketAddr, target: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

#[test]
fn training_feeds_the_metrics_endpoint() {
    let runs = scratch("metrics");
    let run = MetricsRun::start(&runs, "metrics", 20);
    let addr = run.addr;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::new();
    while Instant::now() < deadline {
        match get(addr, "/metrics") {
            Ok(body) => {
                assert!(body.starts_with("HTTP/1.1 200"), "{body}");
                if sample(&body, "morphogen_steps_total").is_some_and(|v| v > 0.0) {
                    assert!(body.contains("morphogen_step_seconds_count"));
                    let _ = std::fs::remove_dir_all(&runs);
                    return;
                }
                last = body;
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::fs::remove_dir_all(&runs);
    panic!("no training steps seen at {addr} within 120 s; last: {last}");
}

#[test]
fn a_taken_metrics_address_is_a_usage_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = morphogen()
        .args(["train", "--quiet", "--metrics-addr", &addr, "--runs-dir"])
        .arg(scratch("metrics-taken"))
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--metrics-addr") && stderr.contains("cannot listen"), "{stderr}");
}
