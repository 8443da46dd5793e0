//! Checks of a seeded layer's saved state before it is loaded: the engine trusts its state
//! columns (bank rows, registry ids), so a restore proves them consistent first.

use crate::error::CheckpointError;
use crate::paths::SeedLayerPath;
use crate::tensor::{safetensors_dtype, StoredTensor};
use burn::tensor::backend::Backend;
use morphogen_engine::{SeedCore, Stage};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// A layer's bank tensors by (blueprint id, page, param index), with their names.
pub type BankTensors = BTreeMap<(usize, usize, usize), (String, StoredTensor)>;

/// Most pages a bank may have: pages double, so even 2^32 seeds need fewer.
const MAX_PAGES: usize = 33;

/// Largest integer every column holds exactly (f32 mantissa).
const MAX_EXACT: f32 = 16_777_216.0;

/// Parses `<blueprint>.pages.<page>.params.<param>`.
pub fn parse_bank_key(rest: &str) -> Option<(usize, usize, usize)> {
    let parts: Vec<&str> = rest.split('.').collect();
    match parts.as_slice() {
        [blueprint, "pages", page, "params", param] => {
            Some((parse_index(blueprint)?, parse_index(page)?, parse_index(param)?))
        }
        _ => None,
    }
}

/// A decimal index without sign, leading zeros or whitespace (so each name has one meaning).
fn parse_index(text: &str) -> Option<usize> {
    let canonical = text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// The eight state columns of a layer as saved, in `StateColumns` field order.
pub struct ColumnValues(Vec<Vec<f32>>);

impl ColumnValues {
    /// Wraps the columns (stage, blueprint, slot, strategy, epochs_in_stage, alpha, embargo,
    /// failures).
    pub fn new(columns: Vec<Vec<f32>>) -> Self {
        Self(columns)
    }

    /// One column.
    pub fn column(&self, index: usize) -> &[f32] {
        &self.0[index]
    }

    fn id(&self, column: usize, seed: usize) -> Option<usize> {
        let v = self.0[column][seed];
        (v >= 0.0 && v.fract() == 0.0 && v < MAX_EXACT).then_some(v as usize)
    }

    /// Seeds whose (blueprint, slot) fall in `rows` of `blueprint`'s bank.
    fn seeds_in(&self, blueprint: usize, rows: Range<usize>) -> Vec<usize> {
        (0..self.0[0].len())
            .filter(|&s| self.id(1, s) == Some(blueprint) && self.id(2, s).is_some_and(|slot| rows.contains(&slot)))
            .collect()
    }
}

/// Checks every bank's pages against the layer's blueprints and returns each blueprint's row
/// capacity (`None` where no bank is saved).
pub fn check_banks<B: Backend>(
    layer: &SeedLayerPath,
    core: &SeedCore<B>,
    banks: &BankTensors,
    columns: &ColumnValues,
) -> Result<Vec<Option<usize>>, CheckpointError> {
    let dtype = safetensors_dtype(core.params().state.stage.val().dtype());
    let mut capacities = vec![None; core.blueprints().specs().len()];
    for (blueprint, capacity) in capacities.iter_mut().enumerate() {
        let pages: BTreeSet<usize> = banks.keys().filter(|k| k.0 == blueprint).map(|k| k.1).collect();
        if pages.is_empty() {
            continue;
        }
        let spec = core.blueprints().get(blueprint);
        let shapes = spec.param_shapes(core.chunks());
        let mut first_row = 0;
        for page in 0..pages.len() {
            let bank_error = |param: usize, problem: String, rows: Range<usize>| CheckpointError::BankMismatch {
                layer: layer.name.clone(),
                blueprint: spec.name.clone(),
                page,
                param,
                problem,
                seeds: columns.seeds_in(blueprint, rows),
            };
            if !pages.contains(&page) {
                return Err(bank_error(0, format!("pages are not numbered 0..{}", pages.len()), 0..0));
            }
            let page_params: Vec<_> = banks.range((blueprint, page, 0)..(blueprint, page + 1, 0)).collect();
            let rows = page_params.first().and_then(|(_, (_, t))| t.shape.first().copied()).unwrap_or(0);
            let span = first_row..first_row + rows;
            if page_params.len() != shapes.len() || page_params.iter().enumerate().any(|(i, (k, _))| k.2 != i) {
                let problem = format!("{} parameters saved, blueprint needs {}", page_params.len(), shapes.len());
                return Err(bank_error(page_params.len().min(shapes.len()), problem, span));
            }
            for (i, ((_, (_, tensor)), shape)) in page_params.iter().zip(&shapes).enumerate() {
                let expected = [rows, shape.dims[0], shape.dims[1]];
                if rows == 0 || tensor.shape != expected || Some(tensor.dtype) != dtype {
                    let problem = format!(
                        "saved as {:?} {:?}, the layer's blueprint needs {dtype:?} {expected:?} (rows >= 1)",
                        tensor.dtype, tensor.shape
                    );
                    return Err(bank_error(i, problem, span.clone()));
                }
            }
            first_row += rows;
        }
        if first_row > core.num_seeds() || pages.len() > MAX_PAGES {
            let problem = format!(
                "{} rows in {} pages; a bank holds at most one row per seed ({}) in at most {MAX_PAGES} pages",
                first_row,
                pages.len(),
                core.num_seeds()
            );
            let last = pages.len() - 1;
            return Err(CheckpointError::BankMismatch {
                layer: layer.name.clone(),
                blueprint: spec.name.clone(),
                page: last,
                param: 0,
                problem,
                seeds: Vec::new(),
            });
        }
        *capacity = Some(first_row);
    }
    Ok(capacities)
}

/// Checks every seed's columns: stage codes, registry ids, bank rows (within the saved
/// capacity, one seed per row), counters and alpha.
pub fn check_table<B: Backend>(
    layer: &SeedLayerPath,
    core: &SeedCore<B>,
    columns: &ColumnValues,
    capacities: &[Option<usize>],
) -> Result<(), CheckpointError> {
    let invalid =
        |seed: usize, problem: String| CheckpointError::InvalidSeedState { layer: layer.name.clone(), seed, problem };
    let strategies = core.strategies().specs().len();
    let mut taken = BTreeSet::new();
    for seed in 0..core.num_seeds() {
        let stage = columns
            .id(0, seed)
            .and_then(|code| u8::try_from(code).ok())
            .and_then(Stage::from_code)
            .ok_or_else(|| invalid(seed, format!("stage code {} is not one of 0-10", columns.column(0)[seed])))?;
        let ids = [columns.column(1)[seed], columns.column(2)[seed], columns.column(3)[seed]];
        if stage.holds_blueprint() {
            let (blueprint, slot, strategy) = (columns.id(1, seed), columns.id(2, seed), columns.id(3, seed));
            let capacity = blueprint.and_then(|b| capacities.get(b).copied().flatten());
            let fits = matches!((capacity, slot), (Some(c), Some(s)) if s < c);
            if !fits || strategy.is_none_or(|s| s >= strategies) {
                let problem = format!(
                    "{stage} with blueprint/slot/strategy {ids:?}, which name no saved bank row or known strategy"
                );
                return Err(invalid(seed, problem));
            }
            if !taken.insert((blueprint, slot)) {
                return Err(invalid(seed, format!("bank row {ids:?} is held by two seeds")));
            }
        } else if ids != [-1.0; 3] {
            return Err(invalid(seed, format!("{stage} holds no blueprint, yet blueprint/slot/strategy are {ids:?}")));
        }
        for (column, name) in [(4, "epochs_in_stage"), (6, "embargo"), (7, "failures")] {
            if columns.id(column, seed).is_none() {
                return Err(invalid(seed, format!("{name} = {} is not a count", columns.column(column)[seed])));
            }
        }
        let alpha = columns.column(5)[seed];
        if !(0.0..=1.0).contains(&alpha) {
            return Err(invalid(seed, format!("alpha = {alpha} is outside [0, 1]")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bank_keys_have_one_spelling() {
        assert_eq!(parse_bank_key("1.pages.0.params.3"), Some((1, 0, 3)));
        for bad in ["1.pages.00.params.3", "1.pages.0.params", "+1.pages.0.params.0", "1.pages.0.params.0.x", ""] {
            assert_eq!(parse_bank_key(bad), None, "{bad}");
        }
    }
}
