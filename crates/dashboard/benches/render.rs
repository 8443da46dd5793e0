//! Rendering a run of 10,000 seeds per layer: reading the run folder, building the views, the
//! JSON the page polls, the report and the terminal view. Prints a table of median timings.
//!
//! `cargo bench -p morphogen-dashboard --bench render` (optionally `-- LAYERS SEEDS EPOCHS`).

use morphogen_dashboard::{report_page, DemoRun, Run, RunView, WatchView};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;
use std::time::{Duration, Instant};

/// The median of `iters` timed calls of `f`, after one untimed call.
fn median<T>(iters: usize, mut f: impl FnMut() -> T) -> Duration {
    std::hint::black_box(f());
    let mut times: Vec<Duration> = (0..iters)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .collect();
    times.sort();
    times[iters / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (layers, seeds, epochs) = match args[..] {
        [l, s, e] => (l, s, e as u32),
        _ => (2, 10_000, 20),
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let demo = DemoRun::new(layers, seeds, epochs);
    demo.write(dir.path()).expect("the demo run is written");
    let size = |name: &str| std::fs::metadata(dir.path().join(name)).map_or(0, |m| m.len());
    println!("run: {layers} layers x {seeds} seeds, {epochs} epochs (synthetic, DemoRun)");
    println!(
        "files: layers.jsonl {} KiB ({} KiB an epoch, {} bytes a seed), events.jsonl {} KiB\n",
        size("layers.jsonl") / 1024,
        size("layers.jsonl") / 1024 / u64::from(epochs),
        size("layers.jsonl") / (u64::from(epochs) * (layers * seeds) as u64),
        size("events.jsonl") / 1024
    );

    let mut rows = Vec::new();
    rows.push(("open and read the whole run folder", median(5, || Run::open(dir.path()).unwrap())));
    let mut run = Run::open(dir.path()).unwrap();
    rows.push(("refresh with nothing new", median(20, || run.refresh())));
    let view = RunView::live(&run);
    rows.push(("live view (lattice, heatmaps, events)", median(10, || RunView::live(&run))));
    let json = serde_json::to_string(&view).unwrap();
    rows.push(("view as JSON (what /view answers)", median(10, || serde_json::to_string(&view).unwrap())));
    rows.push(("report page (view + lifecycles, inlined)", median(5, || report_page(&RunView::report(&run)))));
    let area = Rect::new(0, 0, 160, 50);
    rows.push((
        "terminal view into a 160x50 buffer",
        median(20, || {
            let mut buffer = Buffer::empty(area);
            WatchView::new(&view).render(area, &mut buffer);
            buffer
        }),
    ));
    let report = report_page(&RunView::report(&run));
    println!("| step | median |\n|---|---|");
    for (name, time) in rows {
        println!("| {name} | {:.2} ms |", time.as_secs_f64() * 1e3);
    }
    println!("\n/view JSON: {} KiB; report: {} KiB", json.len() / 1024, report.len() / 1024);
}
