//! What only the Redis bus does: claim checks, dead letters, a server that is down or restarts,
//! passwords kept out of errors.

use morphogen_bus::{Body, Bus, BusError, BusOptions, Outgoing, Reader, RedisBus, Topic, DEAD_LETTER_STREAM};
use morphogen_testkit::RedisServer;
use redis::Commands;
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(2);

/// A payload of about `kib` KiB.
fn large(kib: usize) -> serde_json::Value {
    json!({ "seeds": vec![0.125f32; kib * 1024 / 6] })
}

#[test]
fn large_payloads_travel_as_verified_claim_checks() {
    let server = RedisServer::start();
    let options = BusOptions { claim_check_bytes: 1024, ..BusOptions::default() };
    let mut bus = RedisBus::connect(&server.url(), options, WAIT).unwrap();
    let payload = large(200);
    bus.publish(Outgoing::state("run", 1, &payload)).unwrap();
    let got = bus.receive(Reader::controller("run", "c"), WAIT).unwrap().unwrap();
    assert_eq!(got.payload, payload);
    let Body::Claim(check) = &got.envelope.body else { panic!("a claim check, not {:?}", got.envelope.body) };
    assert!(check.bytes > 200_000, "{check:?}");
    let mut raw = crate::raw(&server);
    let ttl: i64 = raw.ttl(&check.key).unwrap();
    assert!(ttl > 0 && ttl <= 3600, "the blob expires: ttl {ttl}");
    bus.ack(&got).unwrap();

    // Altered: the reader refuses it and the message stays pending for a retry.
    bus.publish(Outgoing::state("run", 2, &large(100))).unwrap();
    let keys: Vec<String> = raw.keys("morphogen:blob:*").unwrap();
    let newest = keys.iter().find(|k| **k != check.key).expect("the second blob").clone();
    let original: Vec<u8> = raw.get(&newest).unwrap();
    let mut altered = original.clone();
    altered[10] ^= 1;
    let () = raw.set(&newest, &altered).unwrap();
    let error = bus.receive(Reader::controller("run", "c"), WAIT).unwrap_err();
    assert!(matches!(error, BusError::AlteredBlob { .. }), "{error}");
    assert!(error.to_string().contains("SHA-256"), "{error}");

    // Missing: the same, and once the blob is back another consumer reclaims the message.
    let () = raw.del(&newest).unwrap();
    let error = bus.reclaim(Reader::controller("run", "c2"), Duration::ZERO).unwrap_err();
    assert!(matches!(error, BusError::MissingBlob { .. }), "{error}");
    let () = raw.set(&newest, &original).unwrap();
    let again = bus.reclaim(Reader::controller("run", "c2"), Duration::ZERO).unwrap();
    assert_eq!((again.len(), again[0].envelope.step), (1, 2));
}

#[test]
fn a_message_whose_blob_expired_goes_to_the_dead_letters_instead_of_failing_forever() {
    let server = RedisServer::start();
    let options = BusOptions { claim_check_bytes: 1024, blob_ttl: Duration::from_secs(1), ..BusOptions::default() };
    let mut bus = RedisBus::connect(&server.url(), options, WAIT).unwrap();
    bus.publish(Outgoing::state("run", 1, &large(10))).unwrap();
    std::thread::sleep(Duration::from_millis(2200));
    bus.publish(Outgoing::state("run", 2, &json!("fresh"))).unwrap();
    let got = bus.receive(Reader::controller("run", "c"), WAIT).unwrap().expect("the fresh message");
    assert_eq!(got.envelope.step, 2);
    let dead: redis::streams::StreamRangeReply = crate::raw(&server).xrange_all(DEAD_LETTER_STREAM).unwrap();
    let reason: String = dead.ids[0].get("reason").unwrap();
    assert!(reason.contains("expired"), "{reason}");
}

#[test]
fn garbage_and_other_schema_versions_go_to_the_dead_letter_stream() {
    let server = RedisServer::start();
    let mut raw = crate::raw(&server);
    let stream = morphogen_bus::stream_key("run", Topic::State);
    let newer = json!({"schema_version": 99, "id": "x", "run": "run", "step": 0, "reply_to": null, "sender": "t",
                       "body": {"kind": "inline", "payload": null}});
    let _: String = raw.xadd(&stream, "*", &[("envelope", b"\xff\xfe not json".to_vec())]).unwrap();
    let _: String = raw.xadd(&stream, "*", &[("envelope", serde_json::to_vec(&newer).unwrap())]).unwrap();
    let mut bus = RedisBus::connect(&server.url(), BusOptions::default(), WAIT).unwrap();
    bus.publish(Outgoing::state("run", 3, &json!("good"))).unwrap();
    let got = bus.receive(Reader::controller("run", "c"), WAIT).unwrap().expect("the good message");
    assert_eq!(got.payload, json!("good"));
    let dead: redis::streams::StreamRangeReply = raw.xrange_all(DEAD_LETTER_STREAM).unwrap();
    let reasons: Vec<String> = dead.ids.iter().map(|e| e.get("reason").unwrap()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("not a morphogen bus envelope"), "{reasons:?}");
    assert!(reasons[1].contains("schema version 99"), "{reasons:?}");
    let pending: redis::streams::StreamPendingReply = raw.xpending(&stream, "controllers").unwrap();
    assert_eq!(pending.count(), 1, "the dead letters were acknowledged; the good message awaits its ack");

    // A readable message its reader cannot use goes the same way, with the reader's reason.
    bus.dead_letter(&got, "the payload is not a decision request").unwrap();
    let dead: redis::streams::StreamRangeReply = raw.xrange_all(DEAD_LETTER_STREAM).unwrap();
    let last = dead.ids.last().unwrap();
    assert_eq!(dead.ids.len(), 3);
    assert_eq!(last.get::<String>("reason").unwrap(), "the payload is not a decision request");
    assert_eq!(last.get::<String>("entry").unwrap(), got.entry);
    let pending: redis::streams::StreamPendingReply = raw.xpending(&stream, "controllers").unwrap();
    assert_eq!(pending.count(), 0);
}

#[test]
fn a_server_that_is_down_is_a_typed_error_naming_it_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let error =
        RedisBus::connect(&format!("redis://:hunter2@127.0.0.1:{port}"), BusOptions::default(), WAIT).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "no hang: {:?}", started.elapsed());
    let text = error.to_string();
    assert!(matches!(error, BusError::Unreachable { .. }), "{text}");
    assert!(text.contains(&port.to_string()) && !text.contains("hunter2"), "{text}");
    let error = RedisBus::connect("http://nowhere", BusOptions::default(), WAIT).unwrap_err();
    assert!(matches!(error, BusError::BadUrl { .. }), "{error}");

    // Opened lazily, the bus exists while the server is down and works once it is up.
    let mut bus = RedisBus::open(&format!("redis://127.0.0.1:{port}"), BusOptions::default(), WAIT).unwrap();
    assert!(matches!(bus.publish(Outgoing::state("run", 1, &json!(1))), Err(BusError::Unreachable { .. })));
    let _server = RedisServer::on(port);
    bus.publish(Outgoing::state("run", 2, &json!(2))).unwrap();
    assert_eq!(bus.runs().unwrap(), ["run"]);
}

#[test]
fn a_redis_restart_fails_one_call_and_the_next_reconnects() {
    let server = RedisServer::start();
    let port = server.port;
    let mut bus = RedisBus::connect(&server.url(), BusOptions::default(), WAIT).unwrap();
    bus.publish(Outgoing::state("run", 1, &json!(1))).unwrap();
    drop(server);
    let error = bus.publish(Outgoing::state("run", 2, &json!(2))).unwrap_err();
    assert!(matches!(error, BusError::Unreachable { .. }), "{error}");
    let _server = RedisServer::on(port);
    bus.publish(Outgoing::state("run", 3, &json!(3))).unwrap();
    let got = bus.receive(Reader::controller("run", "c"), WAIT).unwrap().expect("after the restart");
    assert_eq!(got.envelope.step, 3, "the restarted server kept nothing (no persistence)");
}

#[test]
fn status_lists_each_run_s_streams_groups_pending_and_lag() {
    let server = RedisServer::start();
    let mut bus = RedisBus::connect(&server.url(), BusOptions::default(), WAIT).unwrap();
    assert_eq!(bus.status().unwrap().to_string(), "no run streams\ndead letters: 0\n");
    for step in 0..3 {
        bus.publish(Outgoing::state("alpha", step, &json!(step))).unwrap();
    }
    bus.publish(Outgoing::state("beta", 0, &json!(0))).unwrap();
    let _read_not_acked = bus.receive(Reader::controller("alpha", "c1"), WAIT).unwrap().unwrap();
    let status = bus.status().unwrap();
    let streams: Vec<&str> = status.streams.iter().map(|s| s.stream.as_str()).collect();
    assert_eq!(streams, ["morphogen:alpha:state", "morphogen:beta:state"]);
    let alpha = &status.streams[0];
    assert_eq!((alpha.length, alpha.groups.len()), (3, 1));
    let group = &alpha.groups[0];
    assert_eq!((group.name.as_str(), group.consumers, group.pending, group.lag), ("controllers", 1, 1, Some(2)));
    assert!(status.streams[1].groups.is_empty(), "nobody reads beta yet");
    let table = status.to_string();
    assert!(table.contains("(no reader)") && table.ends_with("dead letters: 0\n"), "{table}");
}

#[test]
fn rediss_with_a_password_works_with_the_server_s_ca_and_is_refused_without_it() {
    let dir = std::env::temp_dir().join(format!("morphogen-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = morphogen_testkit::TlsRedisServer::start(&dir);
    let trusted = BusOptions { ca_file: Some(server.ca_file.clone()), ..BusOptions::default() };
    let mut bus = RedisBus::connect(&server.url(), trusted.clone(), WAIT).unwrap();
    bus.publish(Outgoing::state("tls-run", 1, &json!("over TLS"))).unwrap();
    let got = bus.receive(Reader::controller("tls-run", "c"), WAIT).unwrap().unwrap();
    assert_eq!(got.payload, json!("over TLS"));

    // The system's authorities do not know this server: a typed error, no password shown.
    let error = RedisBus::connect(&server.url(), BusOptions::default(), WAIT).unwrap_err();
    assert!(matches!(error, BusError::Unreachable { .. }), "{error}");
    let text = error.to_string();
    assert!(!text.contains(server.password) && text.contains("rediss://:***@127.0.0.1"), "{text}");
    // A wrong password is refused the same way.
    let wrong = server.url().replace(server.password, "wrong");
    let error = RedisBus::connect(&wrong, trusted.clone(), WAIT).unwrap_err();
    assert!(matches!(error, BusError::Unreachable { .. }) && !error.to_string().contains("wrong@"), "{error}");
    // A CA file for a plain redis:// URL, or one that cannot be read, is a bad URL.
    let plain = RedisBus::connect("redis://127.0.0.1:1", trusted, WAIT).unwrap_err();
    assert!(matches!(plain, BusError::BadUrl { .. }) && plain.to_string().contains("rediss://"), "{plain}");
    let missing = BusOptions { ca_file: Some(dir.join("nope.pem")), ..BusOptions::default() };
    let error = RedisBus::connect(&server.url(), missing, WAIT).unwrap_err();
    assert!(error.to_string().contains("cannot read the CA file"), "{error}");
    std::fs::remove_dir_all(&dir).ok();
}
