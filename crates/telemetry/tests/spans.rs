//! The span tree of a short real training run (Fashion-MNIST subset), from the SDK's in-memory
//! exporter; and OTLP/HTTP export to a loopback receiver and to nothing.

use burn::backend::{Autodiff, NdArray};
use burn::optim::AdamConfig;
use burn::tensor::backend::Backend;
use morphogen_controller::{Controller, ControllerConfig};
use morphogen_trainer::{
    fashion_mnist, EventLog, Mlp, ModelConfig, RollbackRule, Trainer, TrainerConfig, FASHION_MNIST_DIR,
};
use opentelemetry::trace::SpanId;
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

type B = Autodiff<NdArray>;

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
}

fn int(span: &SpanData, key: &str) -> i64 {
    match attr(span, key) {
        Some(Value::I64(v)) => *v,
        other => panic!("{} has no integer {key}: {other:?}", span.name),
    }
}

fn text(span: &SpanData, key: &str) -> String {
    match attr(span, key) {
        Some(Value::String(v)) => v.to_string(),
        other => panic!("{} has no string {key}: {other:?}", span.name),
    }
}

/// Three epochs with a checkpoint folder; the memory probe reads three times more once, at the
/// end of epoch 2, so a `memory_growth` rule rolls back from the newest checkpoint.
fn traced_run(dir: &Path) -> Vec<SpanData> {
    let (train, valid) = fashion_mnist(Path::new(FASHION_MNIST_DIR)).expect("install dataset-fashion-mnist");
    let data = train.take(640).with_validation(valid.take(200));
    let device = Default::default();
    B::seed(&device, 5);
    let model: Mlp<B> =
        ModelConfig { hidden: 16, num_seeds: 4, ..Default::default() }.mlp(&data.task, &device).unwrap();
    let controller =
        Controller::new(ControllerConfig { patience: 0, max_germinations_per_epoch: 2, ..Default::default() }).unwrap();
    let config = TrainerConfig {
        epochs: 3,
        batch_size: 64,
        eval_samples: 200,
        checkpoint_dir: Some(dir.to_path_buf()),
        rollback_rules: vec![RollbackRule::MemoryGrowth { factor: 2.0, flag: None }],
        ..Default::default()
    };
    let reads = AtomicUsize::new(0);
    let probe = move || Some(if reads.fetch_add(1, Ordering::SeqCst) == 1 { 300 << 20 } else { 100 << 20 });
    let mut trainer = Trainer::new(config, controller, EventLog::in_memory()).unwrap().with_memory_probe(probe);
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let subscriber = morphogen_telemetry::subscriber(&provider, tracing::Level::TRACE);
    let outcome = tracing::subscriber::with_default(subscriber, || {
        trainer.run(model, AdamConfig::new().init(), &data, &mut ()).unwrap()
    });
    assert_eq!(outcome.rollbacks, 1);
    provider.force_flush().unwrap();
    exporter.get_finished_spans().unwrap()
}

#[test]
fn a_training_run_gives_the_expected_span_tree() {
    let dir = tempfile::tempdir().unwrap();
    let spans = traced_run(dir.path());
    let named = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();
    let parent = |span: &SpanData| spans.iter().find(|s| s.span_context.span_id() == span.parent_span_id);
    let parent_name = |span: &SpanData| parent(span).map(|p| p.name.to_string()).unwrap_or_default();

    let runs = named("run");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].parent_span_id, SpanId::INVALID, "run is the root");
    assert_eq!(int(runs[0], "epochs"), 3);
    let trace = runs[0].span_context.trace_id();
    assert!(spans.iter().all(|s| s.span_context.trace_id() == trace), "one trace");

    // Epochs 1, 2 (rolled back by the rule), 2 again, 3: children of the run.
    let epochs = named("epoch");
    let numbers: Vec<_> = epochs.iter().map(|s| (int(s, "epoch"), int(s, "attempt"), text(s, "outcome"))).collect();
    assert_eq!(
        numbers,
        [(1, 0, "done".into()), (2, 0, "rollback_rule".into()), (2, 1, "done".into()), (3, 1, "done".into())]
    );
    for epoch in &epochs {
        assert_eq!(parent_name(epoch), "run");
        assert!(matches!(attr(epoch, "val_loss"), Some(Value::F64(v)) if v.is_finite()));
    }

    // Steps inside epochs; seeded-layer forward work inside steps (and validation passes).
    let steps = named("step");
    assert_eq!(steps.len(), 40);
    assert!(steps.iter().all(|s| parent_name(s) == "epoch"));
    let seeded = named("seeded_layer");
    let layers: BTreeSet<_> = seeded.iter().map(|s| text(s, "layer")).collect();
    assert_eq!(layers, BTreeSet::from(["fc1".to_string(), "fc2".to_string()]));
    let in_steps = seeded.iter().filter(|s| parent_name(s) == "forward").count();
    assert_eq!(in_steps, 80, "one per layer and step, inside the step's forward pass");
    for phase in ["forward", "backward", "optimizer", "graft_step"] {
        let spans = named(phase);
        assert_eq!(spans.len(), 40, "{phase}: one per step");
        assert!(spans.iter().all(|s| parent_name(s) == "step"), "{phase} inside its step");
    }

    // The controller decides once per accepted epoch; its commands follow inside the epoch.
    let decisions = named("controller.decide");
    assert_eq!(decisions.len(), 3);
    assert!(decisions.iter().all(|s| parent_name(s) == "epoch"));
    let commands = named("command");
    assert!(!commands.is_empty(), "the controller germinated seeds");
    for command in &commands {
        assert_eq!(parent_name(command), "epoch");
        assert!(["fc1", "fc2"].contains(&text(command, "layer").as_str()));
        assert!((0..4).contains(&int(command, "seed")));
        assert!(!text(command, "reason").is_empty());
        assert_ne!(text(command, "from"), text(command, "to"));
    }
    let germinations = commands.iter().filter(|c| text(c, "to") == "GERMINATED").count();
    assert!(germinations >= 1, "{:?}", commands.iter().map(|c| text(c, "to")).collect::<Vec<_>>());
    let total: i64 = decisions.iter().map(|d| int(d, "commands")).sum();
    assert_eq!(total as usize, commands.len());

    // A checkpoint before epoch 1 (under the run) and after each accepted epoch.
    let saves = named("checkpoint.save");
    assert_eq!(saves.len(), 4);
    assert_eq!(parent_name(saves[0]), "run");
    for save in &saves {
        assert!(int(save, "bytes") > 0);
        assert!(text(save, "path").starts_with(dir.path().to_str().unwrap()));
    }

    // The rule's rollback, inside epoch 2's first attempt, restored the newest checkpoint.
    let rollbacks = named("rollback");
    assert_eq!(rollbacks.len(), 1);
    let rollback = rollbacks[0];
    assert_eq!(parent(rollback).map(|p| (int(p, "epoch"), int(p, "attempt"))), Some((2, 0)));
    assert!(text(rollback, "reason").starts_with("rollback rule memory_growth"));
    assert_eq!(text(rollback, "source"), "checkpoint");
    let loads = named("checkpoint.load");
    assert_eq!(loads.len(), 1);
    assert_eq!(parent(loads[0]).map(|p| p.name.to_string()), Some("rollback".into()));
    assert_eq!(text(loads[0], "path"), text(saves[1], "path"), "the checkpoint of epoch 1");
}

/// Reads one HTTP request (head and Content-Length body) and answers `status`.
fn receive(listener: &TcpListener, status: &str) -> (String, Vec<u8>) {
    let (mut stream, _) = listener.accept().unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let (head, length) = loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the request ended early");
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(data[..end].to_vec()).unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap();
            data.drain(..end + 4);
            break (head, length);
        }
    };
    while data.len() < length {
        let n = stream.read(&mut buf).unwrap();
        data.extend_from_slice(&buf[..n]);
    }
    stream.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes()).unwrap();
    (head, data)
}

#[test]
fn spans_reach_an_otlp_http_receiver_as_protobuf() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || receive(&listener, "200 OK"));
    let export = morphogen_telemetry::Export::Otlp { endpoint };
    let provider = morphogen_telemetry::provider(&export).unwrap();
    tracing::subscriber::with_default(morphogen_telemetry::subscriber(&provider, tracing::Level::INFO), || {
        let _epoch = tracing::info_span!("epoch", epoch = 7).entered();
        let _hidden = tracing::debug_span!("step", step = 1).entered();
    });
    provider.shutdown().unwrap();
    let (head, body) = server.join().unwrap();
    assert!(head.starts_with("POST /v1/traces HTTP/1.1"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/x-protobuf"), "{head}");
    let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
    let spans: Vec<_> = request.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans).collect();
    assert_eq!(spans.len(), 1, "the debug-level step is filtered out at INFO");
    assert_eq!(spans[0].name, "epoch");
    let service =
        request.resource_spans[0].resource.as_ref().unwrap().attributes.iter().find(|a| a.key == "service.name");
    assert!(format!("{service:?}").contains("morphogen"));
}

#[test]
fn an_unreachable_collector_only_warns() {
    // Bind and drop a listener: the port is closed, so connections are refused at once.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/v1/traces");
    let client = Arc::new(morphogen_telemetry::OtlpClient::new(&url));
    let request = || {
        opentelemetry_http::Request::builder()
            .method("POST")
            .uri(url.as_str())
            .body(opentelemetry_http::Bytes::from_static(b"x"))
            .unwrap()
    };
    use opentelemetry_http::HttpClient;
    let first = futures_executor::block_on(client.send_bytes(request()));
    assert!(first.is_err());
    assert!(client.has_warned());
    assert!(futures_executor::block_on(client.send_bytes(request())).is_err(), "still failing, still no panic");
}

#[test]
fn endpoints_are_checked() {
    use morphogen_telemetry::traces_url;
    assert_eq!(traces_url("http://127.0.0.1:4318").unwrap(), "http://127.0.0.1:4318/v1/traces");
    assert_eq!(traces_url("http://collector:4318/").unwrap(), "http://collector:4318/v1/traces");
    assert_eq!(traces_url("http://c:4318/v1/traces").unwrap(), "http://c:4318/v1/traces");
    for bad in ["https://c:4318", "127.0.0.1:4318", "http://", "http://c:99999"] {
        assert!(traces_url(bad).is_err(), "{bad}");
    }
}
