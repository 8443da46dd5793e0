//! The report of a policy folder: one self-contained HTML page (no script, no external asset)
//! with the manifest, the training curves per episode as inline SVG and the feature importance.

use crate::html::escape;
use crate::svg_chart::{line_chart, Band, Point, Series};
use crate::{DashboardError, PolicyEpisode, PolicyFolder, PolicyPhase};
use morphogen_contracts::PolicyManifest;
use serde_json::Value;
use std::path::Path;

/// One chart of the report: a value of each episode.
struct Curve {
    /// The `id` of its `<svg>`.
    id: &'static str,
    caption: &'static str,
    value: fn(&PolicyEpisode) -> f64,
}

/// The curves drawn, one chart each.
const CURVES: [Curve; 3] = [
    Curve { id: "chart-reward", caption: "Reward", value: |e| e.reward },
    Curve { id: "chart-score", caption: "Score at the episode's end", value: |e| e.score },
    Curve { id: "chart-params", caption: "Parameters added", value: |e| e.params_added as f64 },
];

/// One colour a preset, in the order presets first appear in the log.
const PRESET_COLORS: [&str; 6] = ["#9ecbff", "#ffb86c", "#a6e22e", "#f78c6c", "#c792ea", "#89ddff"];

/// Longest value shown in the training table, in characters.
const VALUE_CHARS: usize = 120;

/// What the policy page adds to the dashboard's style.
const POLICY_STYLE: &str = "\
svg.chart { background: #14161c; display: block; }
.band.imitation, .swatch.imitation { fill: rgba(255, 202, 40, 0.10); background: rgba(255, 202, 40, 0.35); }
.band.reinforce, .swatch.reinforce { fill: rgba(33, 150, 243, 0.12); background: rgba(33, 150, 243, 0.40); }
.legend { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 8px; font-size: 12px; }
#importance td.bar { width: 50%; }
#importance td.bar span { display: block; height: 10px; background: #9ecbff; border-radius: 2px; }
td.value { font-family: ui-monospace, monospace; word-break: break-all; }
";

/// The report page of `policy`.
pub fn policy_report_page(policy: &PolicyFolder) -> String {
    let name = escape(policy.name());
    let messages: String = policy.messages().iter().map(|m| format!("<div>{}</div>", escape(m))).collect();
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>morphogen policy {name}</title>\n<style>{}{POLICY_STYLE}</style>\n</head>\n<body>\n\
         <header><h1>morphogen policy <span>{name}</span></h1><span id=\"status\">static report: {} episodes</span></header>\n\
         <div id=\"messages\">{messages}</div>\n<main>\n{}{}{}</main>\n</body>\n</html>\n",
        crate::page::STYLE,
        policy.episodes().len(),
        manifest_section(policy.manifest()),
        curves_section(policy.episodes()),
        importance_section(policy.manifest()),
    )
}

/// Writes the report of `policy` to `path`.
pub fn write_policy_report(policy: &PolicyFolder, path: &Path) -> Result<(), DashboardError> {
    std::fs::write(path, policy_report_page(policy)).map_err(|source| DashboardError::Io { path: path.into(), source })
}

fn manifest_section(manifest: &PolicyManifest) -> String {
    let features = |names: &[String]| format!("{}: {}", names.len(), names.join(", "));
    let rows = [
        ("format", format!("{} (feature schema {})", manifest.format, manifest.schema_version)),
        ("hidden units", manifest.hidden.to_string()),
        ("candidate features", features(&manifest.candidate_features)),
        ("run features", features(&manifest.run_features)),
        ("weights SHA-256", manifest.weights_sha256.clone()),
    ];
    format!(
        "<section id=\"manifest\"><h2>Policy</h2>{}<h3>Training</h3>{}</section>\n",
        table(rows.iter().map(|(k, v)| (k.to_string(), v.clone()))),
        table(training_rows(&manifest.training)),
    )
}

/// The training record's keys and values (strings bare, the rest as compact JSON, shortened).
fn training_rows(training: &Value) -> Vec<(String, String)> {
    let Some(entries) = training.as_object() else {
        return vec![("(not an object)".into(), brief(training))];
    };
    entries.iter().map(|(key, value)| (key.clone(), brief(value))).collect()
}

fn brief(value: &Value) -> String {
    let text = value.as_str().map_or_else(|| value.to_string(), str::to_string);
    match text.char_indices().nth(VALUE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn table(rows: impl IntoIterator<Item = (String, String)>) -> String {
    let rows: String = rows
        .into_iter()
        .map(|(key, value)| format!("<tr><th>{}</th><td class=\"value\">{}</td></tr>", escape(&key), escape(&value)))
        .collect();
    format!("<table><tbody>{rows}</tbody></table>")
}

fn curves_section(episodes: &[PolicyEpisode]) -> String {
    let mut out = String::from(
        "<section id=\"curves\"><h2>Training curves</h2><p class=\"hint\">One line a preset, one marker an \
         episode; shaded background and hollow markers: imitation episodes, filled markers: reinforce.</p>",
    );
    if episodes.is_empty() {
        return out + "<p>No episodes to draw.</p></section>\n";
    }
    let presets = presets(episodes);
    out += &legend(&presets);
    out += "<div class=\"charts\">";
    let bands = phase_bands(episodes);
    for curve in &CURVES {
        let series = preset_series(episodes, &presets, curve.value);
        let chart = line_chart(curve.id, &series, &bands);
        out += &format!("<figure><figcaption>{}</figcaption>{chart}</figure>", curve.caption);
    }
    out + "</div></section>\n"
}

/// The presets of `episodes` in the order they first appear.
fn presets(episodes: &[PolicyEpisode]) -> Vec<&str> {
    let mut presets: Vec<&str> = Vec::new();
    for episode in episodes {
        if !presets.contains(&episode.preset.as_str()) {
            presets.push(&episode.preset);
        }
    }
    presets
}

fn preset_color(index: usize) -> &'static str {
    PRESET_COLORS[index % PRESET_COLORS.len()]
}

fn legend(presets: &[&str]) -> String {
    let mut items = String::new();
    for (i, preset) in presets.iter().enumerate() {
        let swatch = format!("<span class=\"swatch\" style=\"background:{}\"></span>", preset_color(i));
        items += &format!("<span>{swatch}{}</span>", escape(preset));
    }
    for phase in [PolicyPhase::Imitation, PolicyPhase::Reinforce] {
        items += &format!("<span><span class=\"swatch {0}\"></span>{0} phase</span>", phase.name());
    }
    format!("<div class=\"legend\">{items}</div>")
}

/// Runs of consecutive episodes (by number) in one phase.
fn phase_bands(episodes: &[PolicyEpisode]) -> Vec<Band> {
    let mut order: Vec<(u64, PolicyPhase)> = episodes.iter().map(|e| (e.episode, e.phase)).collect();
    order.sort_by_key(|(episode, _)| *episode);
    let mut bands: Vec<(u64, u64, PolicyPhase)> = Vec::new();
    for (episode, phase) in order {
        match bands.last_mut() {
            Some((_, to, last)) if *last == phase => *to = episode,
            _ => bands.push((episode, episode, phase)),
        }
    }
    bands.into_iter().map(|(from, to, phase)| Band { from: from as f64, to: to as f64, class: phase.name() }).collect()
}

/// One series a preset of `value` over the episode number.
fn preset_series(episodes: &[PolicyEpisode], presets: &[&str], value: fn(&PolicyEpisode) -> f64) -> Vec<Series> {
    let series = |(i, preset): (usize, &&str)| Series {
        name: preset.to_string(),
        color: preset_color(i),
        points: episodes
            .iter()
            .filter(|e| e.preset == **preset)
            .map(|e| Point { x: e.episode as f64, y: value(e), filled: e.phase == PolicyPhase::Reinforce })
            .collect(),
    };
    presets.iter().enumerate().map(series).collect()
}

fn importance_section(manifest: &PolicyManifest) -> String {
    let ranked = manifest.feature_importance();
    let mut out = String::from(
        "<section id=\"importance\"><h2>Feature importance</h2><p class=\"hint\">Mean absolute effect of \
         each feature on the policy's score, most important first.</p>",
    );
    let Some(&(_, top)) = ranked.first() else {
        return out + "<p>The training did not record feature importance.</p></section>\n";
    };
    out += "<table><thead><tr><th>#</th><th>feature</th><th></th><th>effect</th></tr></thead><tbody>";
    for (rank, (feature, effect)) in ranked.iter().enumerate() {
        let width = if top > 0.0 { (effect / top * 100.0).clamp(0.0, 100.0) } else { 0.0 };
        let feature = escape(feature);
        out += &format!(
            "<tr data-feature=\"{feature}\"><td>{}</td><td>{feature}</td><td class=\"bar\"><span style=\"width:{width:.1}%\"></span></td><td>{effect:.4}</td></tr>",
            rank + 1
        );
    }
    out + "</tbody></table></section>\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headless::rendered_dom;
    use serde_json::json;

    const PRESETS: [&str; 3] = ["mlp", "cnn", "mlp"];
    const IMITATION_EPISODES: u64 = 6;
    const EPISODES: u64 = 12;

    /// A policy folder as `train-policy` leaves it: 12 episodes, the presets taking turns
    /// (mlp twice as often), 6 of imitation then 6 of reinforce, and one malformed line.
    fn write_policy(dir: &Path) {
        let manifest = json!({
            "format": "morphogen-policy",
            "schema_version": 1,
            "candidate_features": ["dead_ratio", "correlation", "relative_variance"],
            "run_features": ["log_epoch", "budget_used"],
            "hidden": 32,
            "training": {
                "algorithm": "imitation then REINFORCE",
                "presets": ["mlp", "cnn"],
                "episodes": EPISODES,
                "feature_importance": {"log_epoch": 0.05, "dead_ratio": 0.42, "correlation": 0.17, "budget_used": 0.31}
            },
            "weights_sha256": "9f2c0e"
        });
        std::fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
        let mut lines: Vec<String> = (0..EPISODES).map(episode_line).collect();
        lines.insert(5, r#"{"episode": 5, "phase": "imitation", "preset": "mlp", "reward": oops}"#.into());
        std::fs::write(dir.join("training.jsonl"), lines.join("\n") + "\n").unwrap();
    }

    fn episode_line(episode: u64) -> String {
        let phase = if episode < IMITATION_EPISODES { "imitation" } else { "reinforce" };
        let score = 0.7 + episode as f64 / 100.0;
        let line = json!({
            "episode": episode, "phase": phase, "preset": PRESETS[episode as usize % 3], "seed": episode + 1,
            "reward": score - 0.02, "score": score, "params_added": 500 * episode, "host_params": 26000,
            "germinated": 6, "culled": 2, "policy_loss": if episode == 0 { Value::Null } else { json!(1.23) }
        });
        line.to_string()
    }

    /// The `<svg>` of chart `id`, and within it the group of series `preset`.
    fn chart<'a>(page: &'a str, id: &str) -> &'a str {
        let start = page.find(&format!("<svg id=\"{id}\"")).unwrap_or_else(|| panic!("no chart {id}"));
        &page[start..start + page[start..].find("</svg>").unwrap()]
    }

    fn series<'a>(chart: &'a str, preset: &str) -> &'a str {
        let start = chart.find(&format!("data-series=\"{preset}\"")).unwrap_or_else(|| panic!("no series {preset}"));
        &chart[start..start + chart[start..].find("</g>").unwrap()]
    }

    #[test]
    fn a_policy_folder_reports_its_manifest_curves_and_feature_importance() {
        let dir = tempfile::tempdir().unwrap();
        write_policy(dir.path());
        assert!(PolicyFolder::has_manifest(dir.path()));
        let policy = PolicyFolder::open(dir.path()).unwrap();
        assert_eq!((policy.episodes().len(), policy.skipped()), (EPISODES as usize, 1));
        let page = policy_report_page(&policy);
        for external in ["http://", "https://", "<script", "<link"] {
            assert!(!page.contains(external), "the report is self-contained, yet holds {external}");
        }
        assert!(page.contains("training.jsonl: 1 malformed line(s) skipped (first: line 6"), "{page}");
        assert!(page.contains("<th>hidden units</th><td class=\"value\">32</td>"));
        for key in ["algorithm", "presets", "episodes", "feature_importance"] {
            assert!(page.contains(&format!("<th>{key}</th>")), "the training table lists {key}");
        }

        for Curve { id, .. } in CURVES {
            let chart = chart(&page, id);
            assert_eq!(chart.matches("<circle").count(), EPISODES as usize, "{id}: one marker an episode");
            for (preset, points, imitation) in [("mlp", 8, 4), ("cnn", 4, 2)] {
                let series = series(chart, preset);
                assert_eq!(series.matches("<circle").count(), points, "{id}: {preset}'s points");
                assert_eq!(series.matches("fill=\"#14161c\"").count(), imitation, "{id}: {preset}'s hollow markers");
            }
            assert_eq!(chart.matches("class=\"band imitation\"").count(), 1, "{id}: one imitation stretch");
            assert_eq!(chart.matches("class=\"band reinforce\"").count(), 1, "{id}: one reinforce stretch");
        }

        let expected = [("dead_ratio", 0.42), ("budget_used", 0.31), ("correlation", 0.17), ("log_epoch", 0.05)];
        assert_eq!(policy.manifest().feature_importance(), expected);
        let rows: Vec<usize> =
            expected.iter().map(|(f, _)| page.find(&format!("<tr data-feature=\"{f}\">")).unwrap()).collect();
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "most important first: {rows:?}");
        assert!(page.contains("<span style=\"width:100.0%\"></span></td><td>0.4200</td>"), "the top bar is full");
    }

    #[test]
    fn the_policy_report_renders_in_chromium_without_console_messages() {
        let dir = tempfile::tempdir().unwrap();
        write_policy(dir.path());
        let report = dir.path().join("policy.html");
        write_policy_report(&PolicyFolder::open(dir.path()).unwrap(), &report).unwrap();
        let Some(dom) = rendered_dom(&report) else { return };
        assert_eq!(dom.matches("<svg id=\"chart-").count(), CURVES.len(), "the three charts are in the DOM");
        assert_eq!(dom.matches("<circle").count(), CURVES.len() * EPISODES as usize);
        assert_eq!(dom.matches("<tr data-feature=").count(), 4);
    }

    #[test]
    fn a_policy_without_its_training_log_or_feature_importance_says_so() {
        let dir = tempfile::tempdir().unwrap();
        write_policy(dir.path());
        std::fs::remove_file(dir.path().join("training.jsonl")).unwrap();
        let manifest = std::fs::read_to_string(dir.path().join("manifest.json")).unwrap();
        std::fs::write(dir.path().join("manifest.json"), manifest.replace("feature_importance", "other")).unwrap();
        let policy = PolicyFolder::open(dir.path()).unwrap();
        assert!(policy.messages()[0].starts_with("no training.jsonl yet"), "{:?}", policy.messages());
        let page = policy_report_page(&policy);
        assert!(page.contains("No episodes to draw.") && !page.contains("<svg"));
        assert!(page.contains("The training did not record feature importance."));
    }

    #[test]
    fn folders_whose_manifest_is_not_a_policy_are_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("manifest.json");
        let refusal = |expected: &str| {
            let error = PolicyFolder::open(dir.path()).unwrap_err();
            assert!(matches!(&error, DashboardError::NotAPolicy { path, .. } if *path == manifest), "{error:?}");
            assert!(error.is_user_error());
            let message = error.to_string();
            assert!(message.starts_with(&manifest.display().to_string()), "names the file: {message}");
            assert!(message.contains(expected), "{message}");
            assert!(
                message.contains("pass a policy folder written by `morphogen controller train-policy"),
                "{message}"
            );
        };
        assert!(!PolicyFolder::has_manifest(dir.path()), "a run folder has no manifest");
        refusal("cannot read it");
        std::fs::write(&manifest, r#"{"format": "morphogen-checkpoint", "schema_version": 3}"#).unwrap();
        assert!(PolicyFolder::has_manifest(dir.path()));
        refusal("its format is \"morphogen-checkpoint\", not \"morphogen-policy\"");
        std::fs::write(&manifest, "{\"format\": ").unwrap();
        refusal("not JSON");
        std::fs::write(&manifest, r#"{"schema_version": 1}"#).unwrap();
        refusal("it has no \"format\"");
        std::fs::write(&manifest, r#"{"format": "morphogen-policy", "schema_version": 1}"#).unwrap();
        refusal("not a complete policy manifest: missing field `candidate_features`");
        let missing = PolicyFolder::open(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(missing, DashboardError::NotAFolder { .. }), "{missing:?}");
    }
}
