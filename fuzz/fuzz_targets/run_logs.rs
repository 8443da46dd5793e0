//! A run folder as `morphogen dashboard` and `watch` read it: the input's first byte picks the
//! file (`metrics.jsonl`, `events.jsonl`, `layers.jsonl` or `config.toml`), the rest is its
//! content. The run is read, and every view the dashboard serves is built from it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use morphogen_dashboard::{heatmaps, lattice, lifecycle, report_page, Run, RunView, RUN_FILES};

fuzz_target!(|input: &[u8]| {
    let Some((&pick, content)) = input.split_first() else { return };
    let dir = morphogen_fuzz::scratch("run");
    let file = RUN_FILES[usize::from(pick) % RUN_FILES.len()];
    std::fs::write(dir.join(file), content).unwrap();
    let Ok(run) = Run::open(&dir) else { return };
    let view = RunView::report(&run);
    let _ = serde_json::to_string(&view).unwrap();
    let _ = report_page(&view);
    let _ = (heatmaps(&run), run.messages());
    for layer in lattice(&run) {
        for seed in [0, layer.columns.seeds().saturating_sub(1)] {
            let _ = lifecycle(&run, &layer.columns.layer, seed);
        }
    }
});
