//! `morphogen bus status` against a real Redis server started by the test.

use crate::common::run;
use morphogen_bus::{Bus, BusOptions, Outgoing, Reader, RedisBus};
use morphogen_testkit::RedisServer;
use std::time::Duration;

#[test]
fn status_shows_each_run_s_streams_and_a_down_server_is_an_error_without_the_password() {
    let server = RedisServer::start();
    let mut bus = RedisBus::connect(&server.url(), BusOptions::default(), Duration::from_secs(2)).unwrap();
    for step in 0..3 {
        bus.publish(Outgoing::state("fashion-mlp", step, &serde_json::json!(step))).unwrap();
    }
    bus.receive(Reader::controller("fashion-mlp", "c1"), Duration::from_secs(2)).unwrap().unwrap();
    let out = run(&["bus", "status", "--bus", &server.url()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let row: Vec<&str> =
        stdout.lines().find(|l| l.starts_with("morphogen:fashion-mlp:state")).unwrap().split_whitespace().collect();
    assert_eq!(row, ["morphogen:fashion-mlp:state", "3", "controllers", "1", "1", "2"], "{stdout}");

    let port = server.port;
    drop(server);
    let out = run(&["bus", "status", "--bus", &format!("redis://:hunter2@127.0.0.1:{port}")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("***") && !stderr.contains("hunter2"),
        "{stderr}"
    );
    let out = run(&["bus", "status", "--bus", "http://nowhere"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
