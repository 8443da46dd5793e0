//! Helpers shared by the metrics tests: a scripted run and a minimal HTTP GET.

use morphogen_contracts::{GlobalMetrics, Stage, TransitionEvent};
use morphogen_metrics::MetricsObserver;
use morphogen_trainer::{Observer, StageCounts};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub fn metrics(epoch: u32, val_loss: f32, val_accuracy: f32) -> GlobalMetrics {
    GlobalMetrics { epoch, step: 0, train_loss: 0.5, train_accuracy: 0.8, val_loss, val_accuracy, ..Default::default() }
}

pub fn event(layer: &str, seed: usize, from: Stage, to: Stage) -> TransitionEvent {
    TransitionEvent {
        time: 0.0,
        epoch: 1,
        step: 0,
        layer: layer.into(),
        seed,
        from,
        to,
        reason: "scripted".into(),
        metrics: metrics(1, 0.6, 0.7),
        decided_by: None,
    }
}

/// Two epochs of 3 steps, 2 germinations in fc1 and 1 in fc2, one graft to completion, one
/// cull, a rollback, then epoch 2 with a fossilization.
pub fn scripted_run(observer: &mut MetricsObserver) {
    use Stage::*;
    observer.epoch_started(1, 3);
    for loss in [1.0, 0.9, 0.8] {
        std::thread::sleep(Duration::from_millis(2));
        observer.step(loss);
    }
    for e in [
        event("fc1", 0, Dormant, Germinated),
        event("fc1", 1, Dormant, Germinated),
        event("fc2", 5, Dormant, Germinated),
        event("fc1", 0, Germinated, Training),
        event("fc1", 1, Germinated, Training),
        event("fc1", 1, Training, Culled),
    ] {
        observer.transition(&e);
    }
    let mut counts = StageCounts::default();
    counts.0[Dormant.code() as usize] = 13;
    counts.0[Germinated.code() as usize] = 1;
    counts.0[Training.code() as usize] = 1;
    counts.0[Culled.code() as usize] = 1;
    observer.epoch_ended(&metrics(1, 0.6, 0.7), &counts);
    observer.widened(1, 4);
    observer.epoch_started(2, 3);
    observer.step(0.7);
    observer.rolled_back("loss spike");
    observer.transition(&event("fc1", 0, Training, RolledBack));
    observer.epoch_started(2, 3);
    for loss in [0.7, 0.6, 0.5] {
        observer.step(loss);
    }
    observer.transition(&event("fc2", 5, Germinated, Fossilized));
    observer.observe_alphas(&[0.25, 1.0, f32::NAN]);
    observer.widened(2, 4);
    observer.epoch_ended(&metrics(2, 0.4, 0.85), &counts);
}

/// The value of the sample `name` (with its labels exactly as written, e.g.
/// `morphogen_seeds{layer="fc1",stage="training"}`) in an exposition text.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// A bare HTTP/1.1 GET over loopback: (status code, body).
pub fn get(addr: SocketAddr, target: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}
