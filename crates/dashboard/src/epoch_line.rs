//! `metrics.jsonl`: one line an epoch, the run's metrics and where that epoch's decisions came
//! from, and whether the host widened after it.

use morphogen_contracts::GlobalMetrics;
use serde::{Deserialize, Serialize};

/// One line of `metrics.jsonl`. Lines written before decisions and widenings were recorded
/// read with those fields empty.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLine {
    /// The epoch's metrics (their fields at the top level of the line).
    #[serde(flatten)]
    pub metrics: GlobalMetrics,
    /// Who decided at the epoch's end: a controller service's name (over the bus),
    /// `in-process`, or `paused` (no decision came in time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// The bus round trip of that decision, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_ms: Option<f64>,
    /// Features the host widened by after this epoch (`[trainer.widen]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widened_by: Option<usize>,
}

impl From<GlobalMetrics> for EpochLine {
    fn from(metrics: GlobalMetrics) -> Self {
        Self { metrics, decided_by: None, decision_ms: None, widened_by: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_and_without_the_decision_and_widening_read_back() {
        let metrics = GlobalMetrics { epoch: 3, step: 90, val_loss: 0.5, ..Default::default() };
        let line =
            EpochLine { metrics, decided_by: Some("ctl-a".into()), decision_ms: Some(1.25), widened_by: Some(8) };
        let text = serde_json::to_string(&line).unwrap();
        assert!(text.contains("\"epoch\":3") && text.contains("\"decided_by\":\"ctl-a\""), "{text}");
        assert!(text.contains("\"widened_by\":8"), "{text}");
        assert_eq!(serde_json::from_str::<EpochLine>(&text).unwrap(), line);
        let old = serde_json::to_string(&metrics).unwrap();
        assert_eq!(serde_json::from_str::<EpochLine>(&old).unwrap(), EpochLine::from(metrics));
    }
}
