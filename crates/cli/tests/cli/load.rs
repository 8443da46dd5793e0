//! Load: 100 clients polling `morphogen dashboard` on a run of 10,000 seeds a layer while its
//! logs grow, and the metrics endpoint of a real training run under the same clients. No
//! request may fail; latencies and the dashboard's memory are printed. CI polls for 3 s;
//! `MORPHOGEN_LOAD_SECONDS=60` is the long version (`docs/reliability.md`).

use crate::common::http::try_request;
use crate::common::{scratch, Dashboard, MetricsRun};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Concurrent clients.
const CLIENTS: usize = 100;
/// How often the live page asks for news (`setTimeout(poll, 1000)` in `app.js`).
const PAGE_INTERVAL: Duration = Duration::from_secs(1);

/// How long the clients poll.
fn load_duration() -> Duration {
    let seconds = std::env::var("MORPHOGEN_LOAD_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    Duration::from_secs(seconds)
}

/// What the clients saw: every request's latency, and every failure.
#[derive(Default)]
struct Polled {
    latencies: Vec<Duration>,
    failures: Vec<String>,
}

impl Polled {
    /// The `q` quantile (0..=1) of the latencies.
    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    }

    fn summary(&self, what: &str, seconds: f64) -> String {
        format!(
            "{what}: {CLIENTS} clients, {} requests in {seconds:.0} s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} failed",
            self.latencies.len(),
            self.quantile(0.5).as_secs_f64() * 1e3,
            self.quantile(0.99).as_secs_f64() * 1e3,
            self.quantile(1.0).as_secs_f64() * 1e3,
            self.failures.len()
        )
    }
}

/// `CLIENTS` threads polling `addr` until `duration` has passed. Client `i` is
/// `new_client(i)`: given the last answer's body ("" at first), it names the next target. A
/// request fails on any error or a status other than 200.
fn poll<C>(addr: &str, duration: Duration, new_client: impl Fn(usize) -> C + Sync) -> Polled
where
    C: FnMut(&str) -> String,
{
    let until = Instant::now() + duration;
    let results: Vec<Polled> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let new_client = &new_client;
                scope.spawn(move || {
                    let (mut next, mut polled, mut last) = (new_client(i), Polled::default(), String::new());
                    while Instant::now() < until {
                        let target = next(&last);
                        let started = Instant::now();
                        match try_request(addr, "GET", &target, None) {
                            Ok((200, body)) => {
                                polled.latencies.push(started.elapsed());
                                last = body;
                            }
                            Ok((status, body)) => polled.failures.push(format!("{target}: {status} {body:.200}")),
                            Err(e) => polled.failures.push(format!("{target}: {e}")),
                        }
                    }
                    polled
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a client thread")).collect()
    });
    results.into_iter().fold(Polled::default(), |mut all, p| {
        all.latencies.extend(p.latencies);
        all.failures.extend(p.failures);
        all
    })
}

/// A client as the live page polls: the whole view first, then every second `?since=` the
/// version it holds (answered "unchanged" until the run grows).
fn page_client(run: &str) -> impl FnMut(&str) -> String + '_ {
    let mut version: Option<u64> = None;
    move |last| {
        if !last.is_empty() {
            std::thread::sleep(PAGE_INTERVAL);
        }
        // The first `"version":` of a view or an "unchanged" answer is the run's (a whole view is
        // megabytes: parsing it all would make the clients, not the server, the bottleneck).
        let digits = last.split_once("\"version\":").map(|(_, rest)| rest.trim_start());
        if let Some(v) = digits.and_then(|d| d[..d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len())].parse().ok())
        {
            version = Some(v);
        }
        match version {
            Some(v) => format!("/api/runs/{run}/view?since={v}"),
            None => format!("/api/runs/{run}/view"),
        }
    }
}

/// Resident memory of process `pid` in KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse().ok()).unwrap()
}

/// Appends, every second until `until` (an epoch a second: a fast run), the next line of each of `source`'s logs that `dir`'s
/// copy does not have yet: the run keeps growing as a training run's would.
fn grow_logs(source: &Path, dir: &Path, until: Instant) {
    let logs = ["metrics.jsonl", "events.jsonl", "layers.jsonl"];
    let all: Vec<Vec<String>> = logs
        .iter()
        .map(|log| std::fs::read_to_string(source.join(log)).unwrap().lines().map(String::from).collect())
        .collect();
    let mut written: Vec<usize> =
        logs.iter().map(|log| std::fs::read_to_string(dir.join(log)).unwrap().lines().count()).collect();
    while Instant::now() < until {
        for ((log, lines), next) in logs.iter().zip(&all).zip(&mut written) {
            if let Some(line) = lines.get(*next) {
                let mut file = std::fs::OpenOptions::new().append(true).open(dir.join(log)).unwrap();
                writeln!(file, "{line}").unwrap();
                *next += 1;
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_hundred_clients_poll_the_dashboard_of_a_growing_ten_thousand_seed_run() {
    let runs = scratch("load-dashboard");
    let (dir, later) = (runs.join("big"), runs.join("later"));
    morphogen_dashboard::DemoRun::new(2, 10_000, 4).write(&dir).unwrap();
    morphogen_dashboard::DemoRun::new(2, 10_000, 40).write(&later).unwrap();
    let mut server = Dashboard::start(&dir);
    let pid = server.pid();
    let name = server.json("/api/runs")[0]["name"].as_str().unwrap().to_string();
    let before = rss_kib(pid);
    let duration = load_duration();
    let started = Instant::now();
    let polled = std::thread::scope(|scope| {
        scope.spawn(|| grow_logs(&later, &dir, started + duration));
        poll(&server.addr, duration, |_| page_client(&name))
    });
    let after = rss_kib(pid);
    eprintln!("{}", polled.summary("dashboard", started.elapsed().as_secs_f64()));
    let (_, view) = server.get(&format!("/api/runs/{name}/view"));
    eprintln!("the whole view at the end: {} KiB", view.len() / 1024);
    eprintln!("dashboard resident memory: {before} KiB before, {after} KiB after");
    assert!(polled.failures.is_empty(), "{} failed, first: {:?}", polled.failures.len(), polled.failures.first());
    assert!(polled.latencies.len() >= CLIENTS, "every client was answered at least once");
    assert!(server.alive(), "the server survived");
    // The logs grew by a few epochs: memory may grow with them, not with the requests.
    assert!(after < before * 3 / 2 + 64 * 1024, "resident memory went from {before} KiB to {after} KiB");
    std::fs::remove_dir_all(&runs).ok();
}

#[test]
fn a_hundred_clients_scrape_the_metrics_of_a_training_run() {
    let runs = scratch("load-metrics");
    let mut run = MetricsRun::start(&runs, "load", 1000);
    let started = Instant::now();
    let polled = poll(&run.addr.to_string(), load_duration(), |_| |_: &str| "/metrics".to_string());
    let running = run.alive();
    drop(run);
    std::fs::remove_dir_all(&runs).ok();
    eprintln!("{}", polled.summary("metrics", started.elapsed().as_secs_f64()));
    assert!(running, "training went on under the load");
    assert!(polled.failures.is_empty(), "{} failed, first: {:?}", polled.failures.len(), polled.failures.first());
    assert!(polled.latencies.len() >= CLIENTS, "every client was answered at least once");
}
