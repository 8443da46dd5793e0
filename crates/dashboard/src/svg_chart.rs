//! A line chart as inline SVG, for pages that run no script: shaded bands behind, a labelled
//! grid, then per series a line and one marker a point (filled or hollow).

use crate::html::escape;
use std::fmt::Write;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;
const TICKS: usize = 5;

/// One point of a series.
pub(crate) struct Point {
    pub x: f64,
    pub y: f64,
    /// A filled marker, else a hollow one.
    pub filled: bool,
}

/// One line of the chart.
pub(crate) struct Series {
    pub name: String,
    /// A CSS colour.
    pub color: &'static str,
    pub points: Vec<Point>,
}

/// A shaded stretch of the x axis, from half a unit before `from` to half a unit after `to`
/// (a run of consecutive integer x values); `class` gives its fill in the page's style.
pub(crate) struct Band {
    pub from: f64,
    pub to: f64,
    pub class: &'static str,
}

/// A linear map from values in `lo..=hi` to pixels in `start..=end`.
struct Scale {
    lo: f64,
    hi: f64,
    start: f64,
    end: f64,
}

impl Scale {
    fn at(&self, value: f64) -> f64 {
        self.start + (value - self.lo) / (self.hi - self.lo) * (self.end - self.start)
    }

    /// `TICKS` evenly spaced values from `lo` to `hi`.
    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        (0..TICKS).map(|i| self.lo + (self.hi - self.lo) * i as f64 / (TICKS - 1) as f64)
    }
}

/// The chart `<svg id="{id}">` of `series` over `bands`; the x range covers every point with
/// half a unit to spare, the y range every point with 5 % to spare. `series` must not all be
/// empty.
pub(crate) fn line_chart(id: &str, series: &[Series], bands: &[Band]) -> String {
    let points = || series.iter().flat_map(|s| &s.points);
    let (x, y) = (bounds(points().map(|p| p.x)), bounds(points().map(|p| p.y)));
    let y_pad = if y.1 > y.0 { (y.1 - y.0) * 0.05 } else { y.0.abs().max(1.0) * 0.1 };
    let x = Scale { lo: x.0 - 0.5, hi: x.1 + 0.5, start: LEFT, end: WIDTH - RIGHT };
    let y = Scale { lo: y.0 - y_pad, hi: y.1 + y_pad, start: HEIGHT - BOTTOM, end: TOP };
    let mut svg = format!(
        "<svg id=\"{}\" class=\"chart\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\">",
        escape(id)
    );
    svg += &bands_svg(bands, &x, &y);
    svg += &grid_svg(&x, &y);
    for s in series {
        svg += &series_svg(s, &x, &y);
    }
    svg + "</svg>"
}

/// The least and greatest of `values`.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    assert!(lo <= hi, "a chart needs at least one point");
    (lo, hi)
}

fn bands_svg(bands: &[Band], x: &Scale, y: &Scale) -> String {
    let mut out = String::new();
    for band in bands {
        let (left, right) = (x.at(band.from - 0.5), x.at(band.to + 0.5));
        let _ = write!(
            out,
            "<rect class=\"band {}\" x=\"{left:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>",
            band.class,
            y.end,
            right - left,
            y.start - y.end
        );
    }
    out
}

/// Horizontal grid lines with their values on the left, and whole x values along the bottom.
fn grid_svg(x: &Scale, y: &Scale) -> String {
    let mut out = String::from("<g class=\"grid\" font-size=\"11\" fill=\"#8a93a6\">");
    for value in y.ticks() {
        let at = y.at(value);
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{at:.1}\" y2=\"{at:.1}\" stroke=\"#2a2f3a\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x.end,
            LEFT - 6.0,
            at + 4.0,
            label(value)
        );
    }
    let xs = Scale { lo: x.lo + 0.5, hi: x.hi - 0.5, ..*x };
    let mut last = None;
    for value in xs.ticks().map(f64::round).filter(|v| last.replace(*v) != Some(*v)) {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{value}</text>",
            x.at(value),
            HEIGHT - 6.0
        );
    }
    out + "</g>"
}

fn series_svg(series: &Series, x: &Scale, y: &Scale) -> String {
    let color = series.color;
    let line: Vec<String> = series.points.iter().map(|p| format!("{:.1},{:.1}", x.at(p.x), y.at(p.y))).collect();
    let mut out = format!(
        "<g class=\"series\" data-series=\"{}\"><polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
        escape(&series.name),
        line.join(" ")
    );
    for p in &series.points {
        let fill = if p.filled { color } else { "#14161c" };
        let _ = write!(
            out,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{fill}\" stroke=\"{color}\"/>",
            x.at(p.x),
            y.at(p.y)
        );
    }
    out + "</g>"
}

/// A tick's value in few characters: whole numbers from 100 on, else 2 or 3 decimals.
fn label(value: f64) -> String {
    match value.abs() {
        a if a >= 100.0 => format!("{value:.0}"),
        a if a >= 1.0 => format!("{value:.2}"),
        _ => format!("{value:.3}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(svg: &str, attribute: &str) -> Vec<f64> {
        svg.split(&format!(" {attribute}=\"")).skip(1).map(|s| s[..s.find('"').unwrap()].parse().unwrap()).collect()
    }

    #[test]
    fn points_land_inside_the_plot_and_bands_tile_the_x_range() {
        let points = [(0.0, 0.5), (1.0, 0.7), (2.0, 0.6), (3.0, 0.9)];
        let points = points.iter().map(|&(x, y)| Point { x, y, filled: x >= 2.0 }).collect();
        let series = [Series { name: "a<b".into(), color: "#9ecbff", points }];
        let bands = [Band { from: 0.0, to: 1.0, class: "one" }, Band { from: 2.0, to: 3.0, class: "two" }];
        let svg = line_chart("c", &series, &bands);
        assert!(svg.contains("data-series=\"a&lt;b\""), "{svg}");
        let (cx, cy) = (numbers(&svg, "cx"), numbers(&svg, "cy"));
        assert_eq!(cx.len(), 4);
        assert!(cx.windows(2).all(|w| w[0] < w[1]) && cx.iter().all(|x| (LEFT..=WIDTH - RIGHT).contains(x)));
        assert!(cy.iter().all(|y| (TOP..=HEIGHT - BOTTOM).contains(y)));
        assert!(cy[3] < cy[1] && cy[1] < cy[2] && cy[2] < cy[0], "higher values higher up: {cy:?}");
        assert_eq!(svg.matches("fill=\"#9ecbff\"").count(), 2, "two filled markers");
        let (rx, widths) = (numbers(&svg, "x"), numbers(&svg, "width")[1..].to_vec());
        assert_eq!(rx[0], LEFT);
        assert!((rx[0] + widths[0] - rx[1]).abs() < 0.11, "the bands meet: {rx:?} {widths:?}");
        assert!((rx[1] + widths[1] - (WIDTH - RIGHT)).abs() < 0.11, "and end at the right edge");
        let x_labels: Vec<&str> =
            svg.split("text-anchor=\"middle\">").skip(1).map(|s| &s[..s.find('<').unwrap()]).collect();
        assert_eq!(x_labels, ["0", "1", "2", "3"], "whole x values, each once");
    }

    #[test]
    fn a_single_point_draws_without_nan() {
        let series = [Series { name: "s".into(), color: "red", points: vec![Point { x: 5.0, y: 0.0, filled: true }] }];
        let svg = line_chart("c", &series, &[]);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1);
    }
}
