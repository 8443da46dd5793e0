//! `morphogen watch`: the terminal view. [`WatchView`] draws one run into a ratatui buffer
//! (testable without a terminal); [`watch`] runs it full-screen, refreshed every interval.

use crate::{RunSet, RunView, STAGE_COLORS};
use morphogen_contracts::Stage;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, Widget};
use std::time::Duration;

/// Three-letter stage names for narrow columns, by stage code.
const SHORT: [&str; 11] = ["DOR", "GER", "TRN", "GRF", "STB", "EVL", "FTN", "FOS", "CUL", "CAN", "RBK"];

/// The terminal view of one run: a header with the latest metrics, what is missing or skipped,
/// seeds per stage and layer, the lattice in miniature (one character a group of seeds,
/// coloured by the group's most common non-dormant stage) and the latest events.
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
            |m| {
                format!(
                    "train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4}",
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

    fn stages(&self) -> Table<'static> {
        let header = Row::new(std::iter::once("layer".to_string()).chain(SHORT.iter().map(|s| s.to_string())))
            .style(Style::default().add_modifier(Modifier::BOLD));
        let rows = self.view.layers.iter().map(|layer| {
            let counts = layer.counts.iter().enumerate().map(|(code, n)| {
                let style = if *n > 0 { stage_style(code) } else { Style::default().fg(Color::DarkGray) };
                ratatui::text::Text::styled(n.to_string(), style)
            });
            Row::new(std::iter::once(ratatui::text::Text::raw(layer.columns.layer.clone())).chain(counts))
        });
        let widths = std::iter::once(Constraint::Length(10)).chain([Constraint::Length(6); 11]);
        Table::new(rows, widths).header(header).block(Block::default().borders(Borders::ALL).title(" seeds per stage "))
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
        let layers = self.view.layers.len();
        let lattice_rows = (area.height.saturating_sub(header.len() as u16 + layers as u16 + 9) / 2).max(3);
        let [top, stages, lattice, events] = Layout::vertical([
            Constraint::Length(header.len() as u16),
            Constraint::Length(layers as u16 + 3),
            Constraint::Length(lattice_rows),
            Constraint::Min(3),
        ])
        .areas(area);
        Paragraph::new(header).render(top, buf);
        Widget::render(self.stages(), stages, buf);
        render_lattice(self.view, lattice, buf);
        self.events(events.height.saturating_sub(2).into()).render(events, buf);
    }
}

/// The lattice in miniature: one bordered block per layer, side by side.
fn render_lattice(view: &RunView, area: Rect, buf: &mut Buffer) {
    if view.layers.is_empty() {
        let empty = Paragraph::new("no seeded layer recorded yet").block(Block::default().borders(Borders::ALL));
        return empty.render(area, buf);
    }
    let areas = Layout::horizontal(vec![Constraint::Fill(1); view.layers.len()]).split(area);
    for (layer, area) in view.layers.iter().zip(areas.iter()) {
        let block = Block::default().borders(Borders::ALL);
        let inner = block.inner(*area);
        let cells = usize::from(inner.width) * usize::from(inner.height);
        let stages = &layer.columns.stage;
        let group = stages.len().div_ceil(cells.max(1)).max(1);
        let title = format!(" {} {} seeds, 1 cell = {group} ", layer.columns.layer, stages.len());
        block.title(title).render(*area, buf);
        for (i, chunk) in stages.chunks(group).enumerate().take(cells) {
            let (x, y) =
                (inner.x + (i % usize::from(inner.width)) as u16, inner.y + (i / usize::from(inner.width)) as u16);
            let code = shown_stage(chunk);
            let symbol = if code == 0 { "·" } else { "█" };
            buf[(x, y)].set_symbol(symbol).set_style(stage_style(code));
        }
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
