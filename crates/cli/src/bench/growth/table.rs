//! The tables `morphogen bench growth` prints: one summary row per variant, every run, and the
//! lifecycle's costs.

use super::variants::{Comparison, RunRow};
use morphogen::Score;

/// Mean and population standard deviation.
fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    (mean, (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt())
}

/// What a run's `result` is, for the headers.
fn result_name(score: Score) -> &'static str {
    match score {
        Score::Accuracy => "test accuracy (higher is better)",
        Score::NegativePerplexity => "validation perplexity (lower is better)",
    }
}

/// The summary table (one row per variant), every run, and the lifecycle's costs.
pub fn table(comparison: &Comparison) -> String {
    let Comparison { model, size_name, score, variants, runs } = comparison;
    let mut out = format!("{model:?}, {}\n\n", result_name(*score)).to_lowercase();
    out += &format!(
        "| variant | {size_name} | runs | mean | spread (std) | trainable params | params added | germinated | fossilized | culled | wall s (mean) | training FLOPs (mean) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for (variant, group) in groups(variants, runs) {
        let n = group.len();
        let avg = |f: fn(&RunRow) -> f64| group.iter().map(|r| f(r)).sum::<f64>() / n as f64;
        let (mean, std) = mean_std(&group.iter().map(|r| f64::from(r.result)).collect::<Vec<_>>());
        out += &format!(
            "| {variant} | {} | {n} | {mean:.4} | {std:.4} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.3e} |\n",
            group[0].size,
            avg(|r| (r.host_params + r.params_added) as f64),
            avg(|r| r.params_added as f64),
            avg(|r| r.germinated as f64),
            avg(|r| r.fossilized as f64),
            avg(|r| r.culled as f64),
            avg(|r| r.seconds),
            avg(|r| r.train_flops as f64),
        );
    }
    out += &format!(
        "\n| variant | seed | {size_name} | result | params added | germinated | fossilized | culled | wall s | training FLOPs |\n|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for r in runs {
        out += &r.markdown_row();
    }
    out += "\nlifecycle costs at the last epoch end (means): seed state and bank bytes over every seeded layer, \
            and the seeded layers' share of one validation forward pass (telemetry and blending)\n\n\
            | variant | seed state bytes | bank bytes | seeded share of the pass |\n|---|---|---|---|\n";
    for (variant, group) in groups(variants, runs) {
        let avg = |f: fn(&RunRow) -> f64| group.iter().map(|r| f(r)).sum::<f64>() / group.len() as f64;
        out += &format!(
            "| {variant} | {:.0} | {:.0} | {:.1}% |\n",
            avg(|r| r.state_bytes as f64),
            avg(|r| r.bank_bytes as f64),
            100.0 * avg(|r| r.seeded_share)
        );
    }
    out
}

/// The runs of each of `variants` that has any, in that order.
fn groups<'a>(
    variants: &'a [&'static str],
    runs: &'a [RunRow],
) -> impl Iterator<Item = (&'static str, Vec<&'a RunRow>)> + 'a {
    variants
        .iter()
        .map(|&v| (v, runs.iter().filter(|r| r.variant == v).collect::<Vec<_>>()))
        .filter(|(_, g)| !g.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_standard_deviation() {
        let (m, s) = mean_std(&[0.8, 0.9]);
        assert!((m - 0.85).abs() < 1e-9 && (s - 0.05).abs() < 1e-9);
    }
}
