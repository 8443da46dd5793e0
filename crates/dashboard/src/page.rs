//! The dashboard page (HTML, CSS and plain JS embedded in the binary) and the static report:
//! the same page with the run's data inlined.

use crate::{DashboardError, Run, RunView};
use morphogen_contracts::Stage;
use std::path::Path;

/// The colour of each stage, by stage code, in the page and the terminal view.
pub const STAGE_COLORS: [[u8; 3]; 11] = [
    [58, 63, 75],    // DORMANT
    [174, 213, 129], // GERMINATED
    [255, 202, 40],  // TRAINING
    [255, 143, 0],   // GRAFTING
    [0, 188, 212],   // STABILIZATION
    [33, 150, 243],  // EVALUATING
    [171, 71, 188],  // FINE_TUNING
    [67, 160, 71],   // FOSSILIZED
    [229, 57, 53],   // CULLED
    [141, 110, 99],  // CANCELLED
    [236, 64, 122],  // ROLLED_BACK
];

const TEMPLATE: &str = include_str!("assets/index.html");
/// The page's stylesheet, which the policy report shares.
pub(crate) const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

/// The live page: it asks the server's API for its data.
pub fn live_page() -> String {
    assemble("null")
}

/// The report page: `view` inlined, nothing fetched.
pub fn report_page(view: &RunView) -> String {
    let json = serde_json::to_string(view).expect("views serialise");
    // `<` only occurs inside JSON strings, where \u003c means the same; no `</script>` survives.
    assemble(&json.replace('<', "\\u003c"))
}

/// Writes the report of `run` to `path`.
pub fn write_report(run: &Run, path: &Path) -> Result<(), DashboardError> {
    std::fs::write(path, report_page(&RunView::report(run)))
        .map_err(|source| DashboardError::Io { path: path.into(), source })
}

/// The template with its parts in place; the data goes in last, so nothing in it is replaced.
fn assemble(data: &str) -> String {
    let stages: Vec<serde_json::Value> = Stage::ALL
        .iter()
        .map(|s| {
            let [r, g, b] = STAGE_COLORS[s.code() as usize];
            serde_json::json!({ "name": s.name(), "color": [r, g, b] })
        })
        .collect();
    TEMPLATE
        .replace("/*STYLE*/", STYLE)
        .replace("/*SCRIPT*/", SCRIPT)
        .replace("/*STAGES*/", &serde_json::Value::from(stages).to_string())
        .replace("/*DATA*/", data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headless::rendered_dom;

    #[test]
    fn the_page_embeds_everything_and_no_external_url() {
        let page = live_page();
        assert!(page.contains("window.MORPHOGEN_DATA = null"));
        assert!(page.contains("\"FINE_TUNING\"") && page.contains("function drawLattice"));
        assert!(!page.contains("/*SCRIPT*/") && !page.contains("/*STYLE*/"));
        for external in ["http://", "https://", "src=\"//"] {
            assert!(!page.contains(external), "the page must not load {external} resources");
        }
    }

    /// A 12-block model of 72 layers: the report's lattice and heatmaps are one labelled group
    /// a block, only the first open and drawn.
    #[test]
    fn a_report_of_seventy_two_layers_shows_them_by_block_in_chromium() {
        let dir = tempfile::tempdir().unwrap();
        crate::DemoRun::new(72, 64, 3).in_blocks(6).write(&dir.path().join("run")).unwrap();
        let report = dir.path().join("report.html");
        write_report(&Run::open(&dir.path().join("run")).unwrap(), &report).unwrap();
        let Some(dom) = rendered_dom(&report) else { return };
        assert!(dom.contains("data-ready=\"1\""), "the page rendered");
        let (lattice, heatmaps) = dom.split_once("id=\"heatmaps\"").expect("both sections");
        let groups = |html: &str| html.matches("<details class=\"layer-group\"").count();
        assert_eq!((groups(lattice), groups(heatmaps)), (12, 12), "one group a block in each section");
        let open = lattice.matches("<details class=\"layer-group\" data-group=\"blocks.0\" open=\"\"").count();
        assert_eq!(open, 1, "the first block starts open");
        assert_eq!(lattice.matches("open=\"\"").count(), 1, "the others start closed");
        assert_eq!(lattice.matches("class=\"lattice-canvas\"").count(), 6, "only the open block is drawn");
        assert_eq!(heatmaps.matches("class=\"heatmap\"").count(), 6 * 3);
        assert!(lattice.contains("blocks.11</span> 6 layers, 384 seeds"), "groups are labelled");
    }
}
