//! Writes a synthetic run (2 layers of 2,000 seeds, 12 epochs), its HTML report, and prints its
//! terminal view: `cargo run -p morphogen-dashboard --example demo_report -- [DIR]`.
//! Then `morphogen dashboard DIR` serves it live and `morphogen watch DIR` shows it in a terminal.

use morphogen_dashboard::{write_report, DemoRun, Run, RunView, WatchView};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;
use std::path::PathBuf;

fn main() -> Result<(), morphogen_dashboard::DashboardError> {
    let dir = std::env::args().nth(1).map_or_else(|| std::env::temp_dir().join("morphogen-demo-run"), PathBuf::from);
    DemoRun::new(2, 2000, 12).write(&dir)?;
    let run = Run::open(&dir)?;
    let report = dir.join("report.html");
    write_report(&run, &report)?;

    let view = RunView::live(&run);
    let area = Rect::new(0, 0, 110, 32);
    let mut buffer = Buffer::empty(area);
    WatchView::new(&view).render(area, &mut buffer);
    for y in 0..area.height {
        let line: String = (0..area.width).map(|x| buffer[(x, y)].symbol()).collect();
        println!("{}", line.trim_end());
    }
    println!("\nrun folder: {}\nreport: {}", dir.display(), report.display());
    println!("live: morphogen dashboard {}   terminal: morphogen watch {}", dir.display(), dir.display());
    Ok(())
}
