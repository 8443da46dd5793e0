//! `morphogen watch`: the terminal view. [`WatchView`] draws one run into a ratatui buffer
//! (testable without a terminal); [`watch`] runs it full-screen, refreshed every interval.

use crate::{RunSet, RunView, STAGE_COLORS};
use morphogen_contracts::Stage;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, Widget};
use std::time::Duration;

/// Three-letter stage names for narrow columns, by stage code.
const SHORT: [&str; 11] = ["DOR", "GER", "TRN", "GRF", "STB", "EVL", "FTN", "FOS", "CUL", "CAN", "RBK"];

/// Layers shown one by one up to this many; beyond, the table and the lattice show groups of
/// layers by parent path ([`LayerGroup`](crate::LayerGroup)).
const PER_LAYER_MAX: usize = 8;

/// The narrowest lattice block of a group, in terminal cells.
const GROUP_BLOCK_WIDTH: u16 = 24;

/// One row of the stage table and one block of the lattice: a layer or a group of layers.
struct Item<'v> {
    label: String,
    layers: usize,
    counts: [usize; 11],
    stages: Vec<&'v [u8]>,
}

/// What the table and the lattice show, and whether its items are groups.
struct Shown<'v> {
    items: Vec<Item<'v>>,
    grouped: bool,
}

/// The terminal view of one run: a header with the latest metrics, what is missing or skipped,
/// seeds per stage and layer, the lattice in miniature (one character a group of seeds,
/// coloured by the group's most common non-dormant stage) and the latest events. A model of more
/// than 8 seeded layers is shown by block: one table row and one lattice block a group of layers
/// sharing a parent path (`blocks.3`), as many as fit, with a note saying how many do not.
#[derive(Clone, Copy, Debug)]
pub struct WatchView<'a> {
    view: &'a RunView,
    position: (usize, usize),
}

impl<'a> WatchView<'a> {
    /// The view of `view`, the only run.
    pub fn new(view: &'a RunView) -> Self {
        Self { view, position: (0, 1) }
    }

    /// Says in the header that this is run `index` (0-based) of `count`.
    pub fn position(self, index: usize, count: usize) -> Self {
        Self { position: (index, count), ..self }
    }

    fn header(&self) -> Vec<Line<'static>> {
        let v = self.view;
        let metrics = v.metrics.last().map_or_else(
            || "no epoch finished yet".to_string(),
            |line| {
                let m = &line.metrics;
                let decided = match (&line.decided_by, line.decision_ms) {
                    (Some(by), Some(ms)) => format!(" | decided by {by} in {ms:.1} ms"),
                    (Some(by), None) => format!(" | decided {by}"),
                    (None, _) => String::new(),
                };
                format!(
                    "train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4}{decided}",
                    m.train_loss, m.train_accuracy, m.val_loss, m.val_accuracy
                )
            },
        );
        let bold = Style::default().add_modifier(Modifier::BOLD);
        let mut lines = vec![Line::from(vec![
            Span::styled(format!("morphogen watch: {}", v.name), bold),
            Span::raw(format!("  epoch {}  {metrics}", v.epoch())),
        ])];
        let (index, count) = self.position;
        let runs =
            if count > 1 { format!("run {}/{count} (left/right to switch) | ", index + 1) } else { String::new() };
        lines
            .push(Line::styled(format!("{runs}{} events | q quits", v.events.len()), Style::default().fg(Color::Gray)));
        let warn = Style::default().fg(Color::Yellow);
        lines.extend(v.messages.iter().map(|m| Line::styled(format!("! {m}"), warn)));
        lines
    }

    /// The rows of the stage table and the blocks of the lattice: one a layer when there are
    /// few, else one a group of layers by parent path.
    fn shown(&self) -> Shown<'a> {
        let layers = &self.view.layers;
        if layers.len() <= PER_LAYER_MAX {
            let items = layers
                .iter()
                .map(|l| Item {
                    label: l.columns.layer.clone(),
                    layers: 1,
                    counts: l.counts,
                    stages: vec![&l.columns.stage],
                })
                .collect();
            return Shown { items, grouped: false };
        }
        let items = self
            .view
            .groups
            .iter()
            .map(|g| Item {
                label: if g.name.is_empty() { "(top level)".to_string() } else { g.name.clone() },
                layers: g.layers.len(),
                counts: g.counts,
                stages: g.layers.iter().filter_map(|i| layers.get(*i)).map(|l| l.columns.stage.as_slice()).collect(),
            })
            .collect();
        Shown { items, grouped: true }
    }

    fn stages(shown: &Shown, rows: usize) -> Table<'static> {
        let first = if shown.grouped { ["group", "layers"].as_slice() } else { ["layer"].as_slice() };
        let names = first.iter().chain(SHORT.iter()).map(|s| s.to_string());
        let header = Row::new(names).style(Style::default().add_modifier(Modifier::BOLD));
        let listed = shown.items.len().min(rows);
        let table_rows: Vec<Row> = shown.items[..listed]
            .iter()
            .map(|item| {
                let counts = item.counts.iter().enumerate().map(|(code, n)| {
                    let style = if *n > 0 { stage_style(code) } else { Style::default().fg(Color::DarkGray) };
                    Text::styled(n.to_string(), style)
                });
                let label = std::iter::once(Text::raw(item.label.clone()));
                let layers = shown.grouped.then(|| Text::raw(item.layers.to_string()));
                Row::new(label.chain(layers).chain(counts))
            })
            .collect();
        let label_width = shown.items.iter().map(|i| i.label.chars().count()).max().unwrap_or(0).clamp(10, 28);
        let widths = std::iter::once(Constraint::Length(label_width as u16))
            .chain(shown.grouped.then_some(Constraint::Length(6)))
            .chain([Constraint::Length(6); 11]);
        let title = if shown.grouped { " seeds per stage, by block " } else { " seeds per stage " };
        let mut block = Block::default().borders(Borders::ALL).title(title);
        let hidden = shown.items.len() - listed;
        if hidden > 0 {
            let what = if shown.grouped { "groups" } else { "layers" };
            block = block.title_bottom(format!(" {hidden} more {what} not listed "));
        }
        Table::new(table_rows, widths).header(header).block(block)
    }

    fn events(&self, height: usize) -> Paragraph<'static> {
        let skip = self.view.events.len().saturating_sub(height);
        let lines: Vec<Line> = self.view.events[skip..]
            .iter()
            .map(|e| {
                Line::from(vec![
                    Span::raw(format!("e{:<3} {}/{} ", e.epoch, e.layer, e.seed)),
                    Span::styled(e.from.name(), stage_style(e.from.code().into())),
                    Span::raw(" -> "),
                    Span::styled(e.to.name(), stage_style(e.to.code().into())),
                    Span::styled(format!("  {}", e.reason), Style::default().fg(Color::Gray)),
                ])
            })
            .collect();
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" latest events "))
    }
}

impl Widget for WatchView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let header = self.header();
        let shown = self.shown();
        let free = area.height.saturating_sub(header.len() as u16);
        let table_rows = usize::from(free.saturating_sub(9) / 2).max(1);
        let table_height = shown.items.len().min(table_rows) as u16 + 3;
        let lattice_rows = (free.saturating_sub(table_height + 6) / 2).max(3);
        let [top, stages, lattice, events] = Layout::vertical([
            Constraint::Length(header.len() as u16),
            Constraint::Length(table_height),
            Constraint::Length(lattice_rows),
            Constraint::Min(3),
        ])
        .areas(area);
        Paragraph::new(header).render(top, buf);
        Widget::render(Self::stages(&shown, table_rows), stages, buf);
        render_lattice(&shown, lattice, buf);
        self.events(events.height.saturating_sub(2).into()).render(events, buf);
    }
}

/// Items listed when at most `room` places are free: all of them, or `room - 1` and a note in
/// the last place for the rest. Returns (listed, hidden).
fn split_at_most(items: usize, room: usize) -> (usize, usize) {
    if items <= room {
        (items, 0)
    } else {
        let listed = room.saturating_sub(1);
        (listed, items - listed)
    }
}

/// The lattice in miniature: one bordered block per layer side by side, or, grouped, one per
/// group in a grid (as many as fit; the last block then says how many are left out).
fn render_lattice(shown: &Shown, area: Rect, buf: &mut Buffer) {
    if shown.items.is_empty() {
        let empty = Paragraph::new("no seeded layer recorded yet").block(Block::default().borders(Borders::ALL));
        return empty.render(area, buf);
    }
    let n = shown.items.len();
    let (columns, rows) = if shown.grouped {
        let columns = usize::from(area.width / GROUP_BLOCK_WIDTH).clamp(1, n);
        (columns, n.div_ceil(columns).min(usize::from(area.height / 3).max(1)))
    } else {
        (n, 1)
    };
    let (listed, hidden) = split_at_most(n, columns * rows);
    let row_areas = Layout::vertical(vec![Constraint::Fill(1); rows]).split(area);
    let cells =
        row_areas.iter().flat_map(|row| Layout::horizontal(vec![Constraint::Fill(1); columns]).split(*row).to_vec());
    for (index, cell) in cells.enumerate().take(listed + usize::from(hidden > 0)) {
        match shown.items.get(index).filter(|_| index < listed) {
            Some(item) => render_block(item, shown.grouped, cell, buf),
            None => {
                let note = format!("+{hidden} more groups");
                Paragraph::new(note).block(Block::default().borders(Borders::ALL)).render(cell, buf);
            }
        }
    }
}

/// One layer's or group's seeds, one character a group of seeds.
fn render_block(item: &Item, grouped: bool, area: Rect, buf: &mut Buffer) {
    let block = Block::default().borders(Borders::ALL);
    let inner = block.inner(area);
    let cells = usize::from(inner.width) * usize::from(inner.height);
    let stages: Vec<u8> = item.stages.concat();
    let group = stages.len().div_ceil(cells.max(1)).max(1);
    let block = if grouped {
        let layers = if item.layers == 1 { "layer".to_string() } else { format!("{} layers", item.layers) };
        block.title(format!(" {} · {layers} ", item.label)).title_bottom(format!(" 1 cell = {group} seeds "))
    } else {
        block.title(format!(" {} {} seeds, 1 cell = {group} ", item.label, stages.len()))
    };
    block.render(area, buf);
    for (i, chunk) in stages.chunks(group).enumerate().take(cells) {
        let (x, y) = (inner.x + (i % usize::from(inner.width)) as u16, inner.y + (i / usize::from(inner.width)) as u16);
        let code = shown_stage(chunk);
        let symbol = if code == 0 { "·" } else { "█" };
        buf[(x, y)].set_symbol(symbol).set_style(stage_style(code));
    }
}

/// The stage a group of seeds is drawn in: its most common non-dormant stage, else DORMANT.
fn shown_stage(codes: &[u8]) -> usize {
    let mut counts = [0usize; 11];
    codes.iter().for_each(|c| counts[usize::from(*c).min(10)] += 1);
    (1..11).filter(|c| counts[*c] > 0).max_by_key(|c| (counts[*c], *c)).unwrap_or(0)
}

fn stage_style(code: usize) -> Style {
    let [r, g, b] = STAGE_COLORS[code.min(10)];
    let color = if code == usize::from(Stage::Dormant.code()) { Color::DarkGray } else { Color::Rgb(r, g, b) };
    Style::default().fg(color)
}

/// Runs the terminal view of `runs` until `q`, Esc or Ctrl-C, re-reading the files every
/// `interval`; left/right (or Tab) switch between runs.
pub fn watch(mut runs: RunSet, interval: Duration) -> Result<(), crate::DashboardError> {
    let mut terminal = ratatui::try_init().map_err(crate::DashboardError::Terminal)?;
    let result = watch_loop(&mut terminal, &mut runs, interval);
    ratatui::try_restore().map_err(crate::DashboardError::Terminal)?;
    result.map_err(crate::DashboardError::Terminal)
}

fn watch_loop(terminal: &mut ratatui::DefaultTerminal, runs: &mut RunSet, interval: Duration) -> std::io::Result<()> {
    let mut index = 0;
    loop {
        runs.refresh();
        let count = runs.runs().len();
        index = index.min(count.saturating_sub(1));
        let view = runs.runs().get(index).map(RunView::live);
        terminal.draw(|frame| match &view {
            Some(view) => frame.render_widget(WatchView::new(view).position(index, count), frame.area()),
            None => frame.render_widget(Paragraph::new("no run here yet"), frame.area()),
        })?;
        if !event::poll(interval)? {
            continue;
        }
        let Event::Key(key) = event::read()? else { continue };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => return Ok(()),
            KeyCode::Right | KeyCode::Tab => index = (index + 1) % count.max(1),
            KeyCode::Left => index = (index + count.max(1) - 1) % count.max(1),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DemoRun, Run};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn screen(view: &RunView, width: u16, height: u16) -> (String, Buffer) {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| f.render_widget(WatchView::new(view), f.area())).unwrap();
        let buffer = terminal.backend().buffer().clone();
        let text = (0..height)
            .map(|y| (0..width).map(|x| buffer[(x, y)].symbol().to_string()).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n");
        (text, buffer)
    }

    #[test]
    fn shows_stage_counts_the_lattice_and_the_latest_events() {
        let dir = tempfile::tempdir().unwrap();
        DemoRun::new(2, 300, 6).write(dir.path()).unwrap();
        let run = Run::open(dir.path()).unwrap();
        let view = RunView::live(&run);
        let (text, buffer) = screen(&view, 120, 40);
        assert!(text.contains("morphogen watch:") && text.contains("epoch 6"), "{text}");
        let fc1 = text.lines().find(|l| l.contains("│fc1 ")).expect("a stage row for fc1");
        let dormant = view.layers[0].counts[0].to_string();
        assert!(fc1.contains(&format!(" {dormant} ")), "{fc1} shows {dormant} dormant");
        assert!(text.contains("fc2 300 seeds, 1 cell ="), "{text}");
        let last = view.events.last().unwrap();
        assert!(text.contains(&format!("{}/{} ", last.layer, last.seed)), "{text}");
        let coloured = (0..40u16)
            .flat_map(|y| (0..120u16).map(move |x| (x, y)))
            .filter(|p| buffer[*p].symbol() == "█")
            .map(|p| buffer[p].fg)
            .collect::<std::collections::HashSet<_>>();
        assert!(coloured.len() >= 2, "the lattice shows several stage colours: {coloured:?}");
    }

    /// 200 layers of 64 seeds in 25 blocks of 8: the table lists blocks, not layers, with a note
    /// for those that do not fit; the lattice names blocks; the events still have room.
    #[test]
    fn two_hundred_layers_are_shown_by_block_and_fit() {
        let dir = tempfile::tempdir().unwrap();
        DemoRun::new(200, 64, 3).in_blocks(8).write(dir.path()).unwrap();
        let view = RunView::live(&Run::open(dir.path()).unwrap());
        assert_eq!(view.groups.len(), 25);
        let (text, _) = screen(&view, 120, 40);
        let row = |name: &str| text.lines().find(|l| l.starts_with(&format!("│{name} "))).map(str::to_string);
        let first = row("blocks.0").unwrap_or_else(|| panic!("a stage row for blocks.0:\n{text}"));
        let numbers: Vec<usize> = first
            .trim_start_matches("│blocks.0")
            .trim_end_matches('│')
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(numbers[0], 8, "the layer count: {first}");
        assert_eq!(numbers[1..].iter().sum::<usize>(), 8 * 64, "all seeds of the block by stage: {first}");
        assert!(row("blocks.1").is_some() && row("blocks.0.fc1").is_none(), "rows are blocks, not layers:\n{text}");
        let listed = (0..25).filter(|b| row(&format!("blocks.{b}")).is_some()).count();
        assert!(listed >= 10, "{listed} blocks listed:\n{text}");
        assert!(text.contains(&format!(" {} more groups not listed ", 25 - listed)), "a note for the rest:\n{text}");
        assert!(text.contains("blocks.0 · 8 layers") && text.contains("1 cell = "), "lattice blocks:\n{text}");
        let drawn = (0..25).filter(|b| text.contains(&format!("blocks.{b} · 8 layers"))).count();
        assert!(text.contains(&format!("+{} more groups", 25 - drawn)), "the lattice's note:\n{text}");
        let events = text.lines().position(|l| l.contains("latest events")).expect("the events panel");
        assert!(events < 36, "the events panel has room for lines:\n{text}");
    }

    #[test]
    fn an_empty_run_says_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let view = RunView::live(&Run::open(dir.path()).unwrap());
        let (text, _) = screen(&view, 100, 24);
        assert!(text.contains("no epoch finished yet") && text.contains("! no config.toml yet"), "{text}");
        assert!(text.contains("no seeded layer recorded yet"), "{text}");
    }

    #[test]
    fn groups_show_their_most_common_active_stage() {
        assert_eq!(shown_stage(&[0, 0, 0]), 0);
        assert_eq!(shown_stage(&[0, 2, 3, 3, 0]), 3);
        assert_eq!(shown_stage(&[7, 0, 0, 0]), 7);
    }
}
