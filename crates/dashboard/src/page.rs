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
const STYLE: &str = include_str!("assets/style.css");
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
}
