//! Decisions over the message bus: the same as the in-process controller's, each applied once
//! however often it is delivered, a run that never hangs when no controller answers, and the
//! record of applied decisions carried through a checkpoint (on a real Redis server).

use crate::common::{data, B};
use burn::optim::AdamConfig;
use burn::tensor::backend::Backend;
use morphogen_bus::{Bus, InProcessBus, Outgoing, Reader, RedisBus};
use morphogen_contracts::TransitionEvent;
use morphogen_controller::{Controller, ControllerConfig, ControllerService, DecisionRequest, Refusal, ServiceOptions};
use morphogen_testkit::RedisServer;
use morphogen_trainer::{
    BusConfig, DecisionSource, ErrorKind, EventLog, ImageClassification, Mlp, ModelConfig, Observer, OnTimeout,
    TaskData, Trainer, TrainerConfig,
};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const EPOCHS: u32 = 4;
const RUN: &str = "bus-test";

fn controller() -> Controller {
    let config = ControllerConfig { patience: 0, max_germinations_per_epoch: 2, ..Default::default() };
    Controller::new(config).unwrap()
}

fn trainer(checkpoints: Option<&Path>) -> Trainer {
    let config = TrainerConfig {
        epochs: EPOCHS,
        batch_size: 64,
        eval_samples: 300,
        checkpoint_dir: checkpoints.map(Path::to_path_buf),
        ..Default::default()
    };
    Trainer::new(config, controller(), EventLog::in_memory()).unwrap()
}

/// What a run reported about its decisions.
#[derive(Default)]
struct Decided {
    sources: Vec<DecisionSource>,
    bus_errors: Vec<String>,
}

impl Observer for Decided {
    fn decided(&mut self, _epoch: u32, source: &DecisionSource) {
        self.sources.push(source.clone());
    }

    fn error(&mut self, kind: ErrorKind, message: &str) {
        if kind == ErrorKind::Bus {
            self.bus_errors.push(message.to_string());
        }
    }
}

/// Trains the test MLP with `trainer` from the same start every time.
fn train(trainer: &mut Trainer, data: &TaskData<ImageClassification>) -> Decided {
    let device = Default::default();
    B::seed(&device, 7);
    let model: Mlp<B> =
        ModelConfig { hidden: 16, num_seeds: 4, ..Default::default() }.mlp(&data.task, &device).unwrap();
    let mut decided = Decided::default();
    trainer.run(model, AdamConfig::new().init(), data, &mut decided).unwrap();
    decided
}

/// The transitions without their times and origin.
fn moves(events: &[TransitionEvent]) -> Vec<(u32, String, usize, String, String, String)> {
    let strip = |e: &TransitionEvent| {
        (e.epoch, e.layer.clone(), e.seed, e.from.to_string(), e.to.to_string(), e.reason.clone())
    };
    events.iter().map(strip).collect()
}

/// A controller service on `bus` in a thread, until the returned flag is set.
fn serve<Q: Bus + 'static>(bus: Q, name: &str) -> (Arc<AtomicBool>, JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, name) = (stop.clone(), name.to_string());
    let options = ServiceOptions { wait: Duration::from_millis(20), ..Default::default() };
    let handle = std::thread::spawn(move || ControllerService::new(bus, name, options).serve(&flag, |_| {}));
    (stop, handle)
}

fn over(bus: impl Bus + 'static, timeout_ms: u64, on_timeout: OnTimeout) -> Trainer {
    let config = BusConfig { decision_timeout_ms: timeout_ms, on_timeout, ..Default::default() };
    trainer(None).with_bus(Box::new(bus), RUN, config).unwrap()
}

#[test]
fn decisions_over_the_bus_are_the_in_process_controller_s_each_applied_once() {
    let data = data(1000, 300);
    let mut local = trainer(None);
    train(&mut local, &data);
    let expected = moves(local.events().events());
    assert!(expected.len() >= 4, "the run grows: {expected:?}");

    let bus = InProcessBus::new();
    let (stop, service) = serve(bus.clone(), "replica-1");
    let mut remote = over(bus.clone(), 10_000, OnTimeout::Pause);
    let decided = train(&mut remote, &data);
    stop.store(true, Ordering::Relaxed);
    service.join().unwrap();
    assert_eq!(moves(remote.events().events()), expected);
    assert!(remote.events().events().iter().all(|e| e.decided_by.as_deref() == Some("replica-1")));
    assert_eq!(remote.controller().state(), local.controller().state(), "the replies carry the controller's memory");
    assert!(decided.bus_errors.is_empty(), "{:?}", decided.bus_errors);
    assert!(decided.sources.iter().all(|s| s.controller() == "replica-1"), "{:?}", decided.sources);
    let applied = remote.applied_decisions();
    assert_eq!(applied.iter().map(|a| a.epoch).collect::<Vec<_>>(), (1..=EPOCHS).collect::<Vec<_>>());
}

/// Answers every request twice, and sends every earlier answer again: the run must apply one
/// answer a request.
fn stutter(mut bus: InProcessBus, stop: Arc<AtomicBool>) {
    let mut sent = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let Some(request) = bus.receive(Reader::controller(RUN, "stutter"), Duration::from_millis(20)).unwrap() else {
            continue;
        };
        let asked: DecisionRequest = serde_json::from_value(request.payload.clone()).unwrap();
        let reply = serde_json::to_value(asked.answer(None).unwrap()).unwrap();
        for (old, old_reply) in &sent {
            bus.publish(Outgoing::decision(old, "stutter", old_reply)).unwrap();
        }
        bus.publish(Outgoing::decision(&request, "stutter", &reply)).unwrap();
        bus.publish(Outgoing::decision(&request, "stutter", &reply)).unwrap();
        bus.ack(&request).unwrap();
        sent.push((request, reply));
    }
}

#[test]
fn duplicated_and_late_answers_are_never_applied() {
    let data = data(1000, 300);
    let mut local = trainer(None);
    train(&mut local, &data);

    let bus = InProcessBus::new();
    let stop = Arc::new(AtomicBool::new(false));
    let stutterer = std::thread::spawn({
        let (bus, stop) = (bus.clone(), stop.clone());
        move || stutter(bus, stop)
    });
    let mut remote = over(bus, 10_000, OnTimeout::Pause);
    train(&mut remote, &data);
    stop.store(true, Ordering::Relaxed);
    stutterer.join().unwrap();
    assert_eq!(moves(remote.events().events()), moves(local.events().events()));
    let applied = remote.applied_decisions();
    assert_eq!(applied.len(), EPOCHS as usize);
    let requests: std::collections::BTreeSet<&str> = applied.iter().map(|a| a.request.as_str()).collect();
    assert_eq!(requests.len(), EPOCHS as usize, "one answer a request: {applied:?}");
}

#[test]
fn without_an_answer_the_run_pauses_growth_or_decides_in_process_and_never_hangs() {
    let data = data(600, 200);
    let mut local = trainer(None);
    train(&mut local, &data);

    let started = Instant::now();
    let mut paused = over(InProcessBus::new(), 100, OnTimeout::Pause);
    let decided = train(&mut paused, &data);
    assert!(paused.events().events().is_empty(), "nothing grows: {:?}", paused.events().events());
    assert_eq!(decided.bus_errors.len(), EPOCHS as usize, "{:?}", decided.bus_errors);
    assert!(decided.bus_errors[0].contains("no controller answered within 100ms"), "{:?}", decided.bus_errors);
    assert!(decided.sources.iter().all(|s| s.controller() == "paused"));
    assert!(started.elapsed() < Duration::from_secs(120));

    let mut fallback = over(InProcessBus::new(), 100, OnTimeout::InProcess);
    let decided = train(&mut fallback, &data);
    assert_eq!(moves(fallback.events().events()), moves(local.events().events()));
    assert!(fallback.events().events().iter().all(|e| e.decided_by.is_none()));
    assert_eq!(decided.bus_errors.len(), EPOCHS as usize);
}

#[test]
fn the_record_of_applied_decisions_is_checkpointed_and_a_resumed_run_continues_it() {
    let server = RedisServer::start();
    let open = || RedisBus::connect(&server.url(), Default::default(), Duration::from_secs(2)).unwrap();
    let (stop, service) = serve(open(), "redis-replica");
    let data = data(600, 200);
    let dir = tempfile::tempdir().unwrap();
    let config = BusConfig { decision_timeout_ms: 10_000, ..Default::default() };
    let mut first = trainer(Some(dir.path())).with_bus(Box::new(open()), RUN, config.clone()).unwrap();
    train(&mut first, &data);
    let saved = first.applied_decisions().to_vec();
    assert_eq!(saved.len(), EPOCHS as usize);
    assert!(saved.iter().all(|a| a.controller == "redis-replica"));

    let mut resumed = trainer(Some(dir.path())).with_bus(Box::new(open()), RUN, config).unwrap();
    let device = Default::default();
    let mut model: Mlp<B> =
        ModelConfig { hidden: 16, num_seeds: 4, ..Default::default() }.mlp(&data.task, &device).unwrap();
    let mut optim = AdamConfig::new().init();
    assert_eq!(resumed.resume(&mut model, &mut optim).unwrap(), EPOCHS);
    assert_eq!(resumed.applied_decisions(), saved.as_slice());
    stop.store(true, Ordering::Relaxed);
    service.join().unwrap();
}

#[test]
fn two_runs_at_once_and_two_controller_replicas_share_one_redis() {
    let server = RedisServer::start();
    let open = || RedisBus::connect(&server.url(), Default::default(), Duration::from_secs(2)).unwrap();
    let replicas = [serve(open(), "replica-1"), serve(open(), "replica-2")];
    let data = Arc::new(data(600, 200));
    let config = BusConfig { decision_timeout_ms: 10_000, ..Default::default() };
    // The runs share the backend's generator (one process), so their growth differs from a
    // lone run's; each must still get every decision, from a replica, answering its own state.
    let runs: Vec<_> = ["run-a", "run-b"]
        .into_iter()
        .map(|name| {
            let (bus, data, config) = (open(), data.clone(), config.clone());
            std::thread::spawn(move || {
                let mut remote = trainer(None).with_bus(Box::new(bus), name, config).unwrap();
                let decided = train(&mut remote, &data);
                (remote, decided)
            })
        })
        .collect();
    for run in runs {
        let (remote, decided) = run.join().unwrap();
        assert!(decided.bus_errors.is_empty(), "{:?}", decided.bus_errors);
        let applied = remote.applied_decisions();
        assert_eq!(applied.len(), EPOCHS as usize);
        assert!(applied.iter().all(|a| a.controller.starts_with("replica-")), "{applied:?}");
        let events = remote.events().events();
        assert!(!events.is_empty() && events.iter().all(|e| e.decided_by.is_some() && e.from.can_transition_to(e.to)));
    }
    for (stop, handle) in replicas {
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap();
    }
}

#[test]
fn a_refusal_is_reported_at_once_not_after_the_timeout() {
    let bus = InProcessBus::new();
    let stop = Arc::new(AtomicBool::new(false));
    let refuser = std::thread::spawn({
        let (mut bus, stop) = (bus.clone(), stop.clone());
        move || {
            let refusal = serde_json::to_value(Refusal { refused: "unknown field `new_knob`".into() }).unwrap();
            while !stop.load(Ordering::Relaxed) {
                if let Some(request) =
                    bus.receive(Reader::controller(RUN, "old-service"), Duration::from_millis(20)).unwrap()
                {
                    bus.publish(Outgoing::decision(&request, "old-service", &refusal)).unwrap();
                    bus.ack(&request).unwrap();
                }
            }
        }
    });
    let started = Instant::now();
    let mut refused = over(bus, 60_000, OnTimeout::Pause);
    let decided = train(&mut refused, &data(300, 100));
    stop.store(true, Ordering::Relaxed);
    refuser.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(60), "no epoch waited out its timeout");
    assert_eq!(decided.bus_errors.len(), EPOCHS as usize);
    assert!(decided.bus_errors[0].contains("controller old-service refused the request: unknown field `new_knob`"));
}
