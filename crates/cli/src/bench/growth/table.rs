//! The tables `morphogen bench growth` prints: one summary row per variant, then every run.

use super::variants::RunRow;

/// Mean and population standard deviation.
fn mean_std(values: &[f32]) -> (f32, f32) {
    let n = values.len().max(1) as f32;
    let mean = values.iter().sum::<f32>() / n;
    (mean, (values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt())
}

/// The summary table (one row per variant) and every run.
pub fn table(rows: &[RunRow]) -> String {
    let mut out = String::from(
        "| variant | hidden | runs | test accuracy mean | spread (std) | trainable params | params added | germinated | fossilized | culled | wall s (mean) |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for variant in ["static", "growing", "enlarged"] {
        let runs: Vec<&RunRow> = rows.iter().filter(|r| r.variant == variant).collect();
        let Some(first) = runs.first() else { continue };
        let n = runs.len();
        let (mean, std) = mean_std(&runs.iter().map(|r| r.accuracy).collect::<Vec<_>>());
        let avg = |f: fn(&RunRow) -> f64| runs.iter().map(|r| f(r)).sum::<f64>() / n as f64;
        out += &format!(
            "| {variant} | {} | {n} | {:.4} | {:.4} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            first.hidden,
            mean,
            std,
            avg(|r| (r.host_params + r.params_added) as f64),
            avg(|r| r.params_added as f64),
            avg(|r| r.germinated as f64),
            avg(|r| r.fossilized as f64),
            avg(|r| r.culled as f64),
            avg(|r| r.seconds),
        );
    }
    out += "\n| variant | seed | hidden | accuracy | params added | germinated | fossilized | culled | wall s |\n|---|---|---|---|---|---|---|---|---|\n";
    for r in rows {
        out += &format!(
            "| {} | {} | {} | {:.4} | {} | {} | {} | {} | {:.1} |\n",
            r.variant, r.seed, r.hidden, r.accuracy, r.params_added, r.germinated, r.fossilized, r.culled, r.seconds
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_standard_deviation() {
        let (m, s) = mean_std(&[0.8, 0.9]);
        assert!((m - 0.85).abs() < 1e-6 && (s - 0.05).abs() < 1e-6);
    }
}
