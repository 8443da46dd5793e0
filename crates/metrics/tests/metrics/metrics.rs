//! Metric values after a scripted sequence of observer calls, and the HTTP endpoint.

use crate::common::{get, sample, scripted_run};
use morphogen_metrics::{serve, Borrowed, Both, MetricsObserver};
use morphogen_trainer::Observer;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn scripted_run_gives_the_expected_values() {
    let mut observer = MetricsObserver::new();
    scripted_run(&mut observer);
    let text = observer.encode();
    let value = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("no sample {name} in\n{text}"));
    assert_eq!(value("morphogen_germinations_total"), 3.0);
    assert_eq!(value("morphogen_fossilizations_total"), 1.0);
    assert_eq!(value("morphogen_culls_total"), 1.0);
    assert_eq!(value("morphogen_rollbacks_total"), 1.0);
    assert_eq!(value("morphogen_steps_total"), 7.0);
    assert_eq!(value("morphogen_widenings_total"), 2.0);
    assert_eq!(value("morphogen_widened_features_total"), 8.0);
    assert_eq!(value("morphogen_transitions_total{from=\"dormant\",to=\"germinated\"}"), 3.0);
    assert_eq!(value("morphogen_transitions_total{from=\"training\",to=\"culled\"}"), 1.0);
    assert_eq!(value("morphogen_transitions_total{from=\"training\",to=\"rolled_back\"}"), 1.0);
    // per layer, from the transitions
    assert_eq!(value("morphogen_seeds{layer=\"fc1\",stage=\"germinated\"}"), 0.0);
    assert_eq!(value("morphogen_seeds{layer=\"fc1\",stage=\"training\"}"), 0.0);
    assert_eq!(value("morphogen_seeds{layer=\"fc1\",stage=\"culled\"}"), 1.0);
    assert_eq!(value("morphogen_seeds{layer=\"fc1\",stage=\"rolled_back\"}"), 1.0);
    assert_eq!(value("morphogen_seeds{layer=\"fc2\",stage=\"germinated\"}"), 0.0);
    assert_eq!(value("morphogen_seeds{layer=\"fc2\",stage=\"fossilized\"}"), 1.0);
    assert!(!text.contains("stage=\"dormant\",") && !text.contains("layer=\"fc1\",stage=\"dormant\""));
    // over all layers, from the epoch end's counts
    assert_eq!(value("morphogen_seeds_by_stage{stage=\"dormant\"}"), 13.0);
    assert_eq!(value("morphogen_seeds_by_stage{stage=\"training\"}"), 1.0);
    assert_eq!(value("morphogen_seeds_by_stage{stage=\"fossilized\"}"), 0.0);
    // last epoch's gauges
    assert_eq!(value("morphogen_epoch"), 2.0);
    assert!((value("morphogen_val_loss") - 0.4).abs() < 1e-6);
    assert!((value("morphogen_val_accuracy") - 0.85).abs() < 1e-6);
    // histograms: 7 timed steps (the step before the rollback included), 2 finite alphas
    assert_eq!(value("morphogen_step_seconds_count"), 7.0);
    assert!(value("morphogen_step_seconds_sum") >= 0.006, "three steps slept 2 ms each");
    assert_eq!(value("morphogen_seed_alpha_count"), 2.0);
    assert_eq!(value("morphogen_seed_alpha_bucket{le=\"0.3\"}"), 1.0);
    assert!(text.trim_end().ends_with("# EOF"));
    // no per-seed labels
    assert!(!text.contains("seed=\""));
}

#[test]
fn both_forwards_every_call_to_each_observer() {
    let (mut a, mut b) = (MetricsObserver::new(), MetricsObserver::new());
    let mut plain = a.clone();
    {
        let mut both = Both(Borrowed(&mut plain as &mut dyn Observer), b.clone());
        scripted_run_through(&mut both);
    }
    scripted_run(&mut a);
    scripted_run(&mut b);
    for name in ["morphogen_germinations_total", "morphogen_steps_total", "morphogen_rollbacks_total"] {
        // each of a and b saw the script twice: once directly, once through Both
        assert_eq!(sample(&a.encode(), name), sample(&b.encode(), name));
    }
    assert_eq!(sample(&a.encode(), "morphogen_germinations_total"), Some(6.0));
}

fn scripted_run_through(observer: &mut dyn Observer) {
    use morphogen_contracts::Stage::*;
    observer.epoch_started(1, 3);
    for loss in [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4] {
        observer.step(loss);
    }
    for (seed, layer) in [(0, "fc1"), (1, "fc1"), (5, "fc2")] {
        observer.transition(&crate::common::event(layer, seed, Dormant, Germinated));
    }
    observer.rolled_back("scripted");
}

#[test]
fn http_endpoint_serves_metrics_and_survives_bad_requests() {
    let mut observer = MetricsObserver::new();
    let server = serve("127.0.0.1:0", observer.clone()).expect("bind loopback");
    let addr = server.local_addr();
    scripted_run(&mut observer);

    // garbage, an empty connection and a non-GET first: the server must keep serving
    let mut junk = TcpStream::connect(addr).unwrap();
    junk.write_all(b"\x00\xffnot http\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = junk.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 4"), "{reply}");
    drop(TcpStream::connect(addr).unwrap());
    let mut post = TcpStream::connect(addr).unwrap();
    post.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    post.write_all(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = post.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");

    let (status, body) = get(addr, "/nope").unwrap();
    assert_eq!(status, 404, "{body}");
    let (status, body) = get(addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert_eq!(sample(&body, "morphogen_germinations_total"), Some(3.0));
    assert_eq!(sample(&body, "morphogen_epoch"), Some(2.0));
    // later calls show up in the next scrape
    observer.rolled_back("again");
    let (_, body) = get(addr, "/metrics?x=1").unwrap();
    assert_eq!(sample(&body, "morphogen_rollbacks_total"), Some(2.0));
}

#[test]
fn a_client_trickling_its_request_is_cut_off_at_the_deadline_and_scrapes_go_on() {
    let server = serve("127.0.0.1:0", MetricsObserver::new()).expect("bind loopback");
    let addr = server.local_addr();
    let mut slow = TcpStream::connect(addr).unwrap();
    let started = std::time::Instant::now();
    slow.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    // One header byte every 100 ms: each read is quick, the request never completes.
    while started.elapsed() < morphogen_metrics::TIMEOUT * 3 && slow.write_all(b"X").is_ok() {
        std::thread::sleep(Duration::from_millis(100));
        slow.set_nonblocking(true).unwrap();
        let mut reply = [0u8; 64];
        let answered = matches!(slow.read(&mut reply), Ok(n) if n > 0);
        slow.set_nonblocking(false).unwrap();
        if answered {
            assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 408"));
            break;
        }
    }
    let cut_off = started.elapsed();
    assert!(cut_off < morphogen_metrics::TIMEOUT * 2, "still held after {cut_off:?}");
    let (status, _) = get(addr, "/metrics").unwrap();
    assert_eq!(status, 200, "the next scrape is served");
}

#[test]
fn measured_layers_set_exact_per_layer_counts_and_feed_the_alpha_histogram() {
    use morphogen_contracts::{LayerHealthReport, LayerState, SeedInfo, Stage};
    let seed = |id: usize, stage: Stage, alpha: f32| SeedInfo {
        seed: id,
        stage,
        blueprint: None,
        strategy: None,
        alpha,
        epochs_in_stage: 0,
        embargo_epochs_left: 0,
        failures: 0,
        chunk: id..id + 1,
    };
    let layer = LayerState {
        layer: "fc1".into(),
        host: "Linear".into(),
        seeds: vec![
            seed(0, Stage::Dormant, 0.0),
            seed(1, Stage::Dormant, 0.0),
            seed(2, Stage::Grafting, 0.25),
            seed(3, Stage::Germinated, 0.0),
        ],
        health: LayerHealthReport { layer: "fc1".into(), samples: 0, seeds: vec![] },
        blueprint_params: Default::default(),
    };
    let mut observer = MetricsObserver::new();
    observer.layers_measured(&[layer]);
    let text = observer.encode();
    let value = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("no sample {name} in\n{text}"));
    assert_eq!(value("morphogen_seeds{layer=\"fc1\",stage=\"dormant\"}"), 2.0);
    assert_eq!(value("morphogen_seeds{layer=\"fc1\",stage=\"grafting\"}"), 1.0);
    assert_eq!(value("morphogen_seeds{layer=\"fc1\",stage=\"fossilized\"}"), 0.0);
    assert_eq!(value("morphogen_seed_alpha_count"), 1.0, "only seeds past GERMINATED have a blending alpha");
}

#[test]
fn costs_errors_fallbacks_and_rules_are_exported() {
    use morphogen_trainer::{ErrorKind, LayerResources, Resources};
    let mut observer = MetricsObserver::new();
    let layer = |name: &str, bank_bytes, seeded_seconds| LayerResources {
        layer: name.into(),
        bank_bytes,
        state_bytes: 256,
        seeded_seconds,
    };
    // Host share 0.008 s: fc1's seed work is 0.25 of it, fc2's 0.0.
    let resources = Resources {
        rss_bytes: Some(64 << 20),
        forward_seconds: 0.010,
        layers: vec![layer("fc1", 4096, 0.002), layer("fc2", 0, 0.0)],
    };
    observer.resources_measured(&resources);
    for _ in 0..3 {
        observer.fast_path_fell_back("fc1", "unsupported shape");
    }
    observer.error(ErrorKind::NonFiniteLoss, "non-finite loss NaN");
    observer.error(ErrorKind::NonFiniteLoss, "non-finite loss inf");
    observer.error(ErrorKind::Checkpoint, "disk full");
    observer.rule_fired("memory_growth", "scripted");
    observer.flag_disabled("kernels", "scripted");
    let text = observer.encode();
    let value = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("no sample {name} in\n{text}"));
    assert_eq!(value("morphogen_resident_memory_bytes"), (64 << 20) as f64);
    assert_eq!(value("morphogen_bank_bytes{layer=\"fc1\"}"), 4096.0);
    assert_eq!(value("morphogen_bank_bytes{layer=\"fc2\"}"), 0.0);
    assert!((value("morphogen_seeded_overhead") - 0.25).abs() < 1e-9);
    assert!((value("morphogen_seeded_overhead_ratio_sum{layer=\"fc1\"}") - 0.25).abs() < 1e-9);
    assert_eq!(value("morphogen_seeded_overhead_ratio_bucket{le=\"0.256\",layer=\"fc1\"}"), 1.0);
    assert_eq!(value("morphogen_seeded_overhead_ratio_bucket{le=\"0.128\",layer=\"fc1\"}"), 0.0);
    assert_eq!(value("morphogen_seeded_overhead_ratio_count{layer=\"fc2\"}"), 1.0);
    assert_eq!(value("morphogen_fast_path_fallbacks_total{layer=\"fc1\"}"), 3.0);
    assert_eq!(value("morphogen_errors_total{kind=\"non_finite_loss\"}"), 2.0);
    assert_eq!(value("morphogen_errors_total{kind=\"checkpoint\"}"), 1.0);
    assert_eq!(value("morphogen_rollback_rule_firings_total{rule=\"memory_growth\"}"), 1.0);
    assert_eq!(value("morphogen_flag_disabled{feature=\"kernels\"}"), 1.0);
}

#[test]
fn who_decided_and_the_bus_lag_are_exported() {
    use morphogen_trainer::{DecisionSource, OnTimeout};
    let mut observer = MetricsObserver::new();
    let bus = |ms| DecisionSource::Bus { controller: "ctl-a".into(), round_trip: Duration::from_millis(ms) };
    observer.decided(1, &bus(3));
    observer.decided(2, &bus(40));
    observer.decided(3, &DecisionSource::Missing { reason: "timeout".into(), fallback: OnTimeout::Pause });
    observer.decided(4, &DecisionSource::Missing { reason: "down".into(), fallback: OnTimeout::InProcess });
    observer.decided(5, &DecisionSource::InProcess);
    let text = observer.encode();
    let value = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("no sample {name} in\n{text}"));
    assert_eq!(value("morphogen_decisions_total{controller=\"ctl-a\"}"), 2.0);
    assert_eq!(value("morphogen_decisions_total{controller=\"paused\"}"), 1.0);
    assert_eq!(value("morphogen_decisions_total{controller=\"in-process\"}"), 2.0);
    assert_eq!(value("morphogen_decision_round_trip_seconds_count"), 2.0);
    assert!((value("morphogen_decision_round_trip_seconds_sum") - 0.043).abs() < 1e-9);
    assert_eq!(value("morphogen_decision_round_trip_seconds_bucket{le=\"0.0032\"}"), 1.0);
}

/// Layers of a 12-block transformer named by dotted path, `seeds` seeds each.
fn transformer_layers(seeds: usize) -> Vec<morphogen_contracts::LayerState> {
    use morphogen_contracts::{LayerHealthReport, LayerState, SeedInfo, Stage};
    let names = (0..12).flat_map(|b| {
        ["attn.query", "attn.key", "attn.value", "attn.out", "mlp.fc1", "mlp.fc2"].map(|l| format!("blocks.{b}.{l}"))
    });
    let state = |name: String| LayerState {
        layer: name.clone(),
        host: "Linear".into(),
        seeds: (0..seeds)
            .map(|id| SeedInfo {
                seed: id,
                stage: if id % 5 == 0 { Stage::Training } else { Stage::Dormant },
                blueprint: None,
                strategy: None,
                alpha: 0.0,
                epochs_in_stage: 0,
                embargo_epochs_left: 0,
                failures: 0,
                chunk: id..id + 1,
            })
            .collect(),
        health: LayerHealthReport { layer: name, samples: 0, seeds: vec![] },
        blueprint_params: Default::default(),
    };
    names.map(state).collect()
}

/// Every `layer="..."` label value and every label name of an exposition text.
fn labels(text: &str) -> (Vec<String>, std::collections::BTreeSet<String>) {
    let mut layers = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, rest)) = line.split_once('{') else { continue };
        let Some((inside, _)) = rest.split_once('}') else { continue };
        for pair in inside.split("\",") {
            let (name, value) = pair.split_once("=\"").expect("name=\"value\"");
            names.insert(name.to_string());
            if name == "layer" {
                layers.push(value.trim_end_matches('"').to_string());
            }
        }
    }
    (layers, names)
}

fn observed(seeds: usize) -> String {
    use morphogen_trainer::{LayerResources, Resources};
    let layers = transformer_layers(seeds);
    let mut observer = MetricsObserver::new();
    observer.layers_measured(&layers);
    observer.transition(&crate::common::event(
        "blocks.11.mlp.fc2",
        seeds - 1,
        morphogen_contracts::Stage::Dormant,
        morphogen_contracts::Stage::Germinated,
    ));
    observer.fast_path_fell_back("blocks.3.attn.key", "scripted");
    let resources = Resources {
        rss_bytes: None,
        forward_seconds: 0.01,
        layers: layers
            .iter()
            .map(|l| LayerResources { layer: l.layer.clone(), bank_bytes: 64, state_bytes: 64, seeded_seconds: 0.0 })
            .collect(),
    };
    observer.resources_measured(&resources);
    observer.encode()
}

#[test]
fn dotted_layer_paths_are_the_layer_labels_and_seeds_never_are() {
    let text = observed(64);
    let (layers, names) = labels(&text);
    let expected: Vec<String> = transformer_layers(1).into_iter().map(|l| l.layer).collect();
    assert!(layers.iter().all(|l| expected.contains(l)), "a layer label that is not a layer path in\n{text}");
    for path in &expected {
        assert!(layers.contains(path), "no series for {path}");
    }
    assert_eq!(sample(&text, "morphogen_seeds{layer=\"blocks.0.attn.query\",stage=\"training\"}"), Some(13.0));
    assert_eq!(sample(&text, "morphogen_bank_bytes{layer=\"blocks.7.mlp.fc1\"}"), Some(64.0));
    assert_eq!(sample(&text, "morphogen_fast_path_fallbacks_total{layer=\"blocks.3.attn.key\"}"), Some(1.0));
    assert!(!names.contains("seed"), "a per-seed label: {names:?}");
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(series(&text), series(&observed(8)), "the number of series does not grow with seeds per layer");
}
