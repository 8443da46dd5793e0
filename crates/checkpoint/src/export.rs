//! Interchange with PyTorch: a grown model as a plain safetensors state dict, and host weights
//! back from one. The layout is documented in `docs/checkpoints.md`.
//!
//! Names follow the Burn module path with PyTorch conventions:
//! - a seeded layer at path `P` exports its host as `P.weight` / `P.bias` (Linear weights
//!   transposed to `[out, in]`; Conv2d weights are already `[out, in/groups, kh, kw]`);
//! - seeds whose blueprint is a chain of dense ops on a Linear host are merged into those rows
//!   of `P.weight` / `P.bias` (exact: the chain is affine);
//! - every other contributing seed `s` exports its blueprint as `P.residuals.s.<op>.weight|bias`
//!   (an `nn.Sequential` over the seed's chunk, activations taking indices too), added to the
//!   host output's features (channels) `start..end`; the seed's output weight is folded in;
//! - seeds that contribute nothing now (GERMINATED, TRAINING, ablated) are left out;
//! - a branch (`SeededBranch`) has no host weights: its layer entry names the host
//!   [`IDENTITY_HOST`], and its output is the sum of its residual modules on its input;
//! - other modules keep their path; `Linear` weights are transposed; `gamma` / `beta` of norm
//!   layers are renamed `weight` / `bias`.
//!
//! The file's metadata holds `format` ([`EXPORT_FORMAT`]) and `layers`: JSON describing each
//! seeded layer's residual modules (seed, feature range, ops), enough to build the PyTorch
//! module. Floats are exported as `f32`.

use crate::error::CheckpointError;
use crate::paths::{self, ParamEntry, Replacer, SeedLayerPath};
use crate::residual::{self, Exported};
use crate::tensor::{self, StoredTensor, TensorMap};
use burn::module::{Module, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, TensorData};
use morphogen_engine::{BlueprintInput, HostKind, SeedAddress, SeedCore, SeededModel, Stage};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// The `format` metadata value of exported files.
pub const EXPORT_FORMAT: &str = "morphogen-pytorch-state-dict";

/// The `host` a branch's layer entry names: it has no weights, and its output is the sum of its
/// residual modules on its input (ADR 0023).
pub const IDENTITY_HOST: &str = "Identity";

/// What an export wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportReport {
    /// Names of the tensors written.
    pub tensors: Vec<String>,
    /// Seeds merged into their host weights.
    pub merged: Vec<SeedAddress>,
    /// Seeds exported as residual modules.
    pub residuals: Vec<SeedAddress>,
    /// Seeds holding a blueprint that contributes nothing now, left out.
    pub inactive: Vec<SeedAddress>,
}

/// What an import loaded.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportReport {
    /// State-dict names loaded into the model.
    pub loaded: Vec<String>,
    /// State-dict names the model had no place for (residual modules, buffers, ...).
    pub unused: Vec<String>,
}

/// A parameter outside the seed cores, with its PyTorch name and layout change.
struct TorchParam<'a> {
    entry: &'a ParamEntry,
    name: String,
    transpose: bool,
}

/// Maps every parameter outside the seed cores to its PyTorch name.
fn torch_params<'a>(params: &'a [ParamEntry], layers: &[SeedLayerPath]) -> Vec<TorchParam<'a>> {
    params
        .iter()
        .filter(|p| !layers.iter().any(|l| l.owns(&p.path)))
        .map(|entry| {
            let host = layers.iter().find_map(|l| {
                let rest = entry.path.strip_prefix(&l.host_prefix())?.strip_prefix('.')?;
                Some((l.layer_path(), rest))
            });
            match host {
                Some((layer, rest)) => TorchParam {
                    entry,
                    name: paths::join(&[&layer, rest]),
                    transpose: entry.shape.len() == 2 && rest == "weight",
                },
                None => {
                    let (parent, last) = entry.path.rsplit_once('.').unwrap_or(("", &entry.path));
                    let renamed = match last {
                        "gamma" => "weight",
                        "beta" => "bias",
                        other => other,
                    };
                    let transpose = entry.container == "Struct:Linear" && last == "weight" && entry.shape.len() == 2;
                    TorchParam { entry, name: paths::join(&[parent, renamed]), transpose }
                }
            }
        })
        .collect()
}

/// Transposes a 2-D stored tensor (any element size).
fn transposed(t: &StoredTensor) -> StoredTensor {
    let [rows, cols] = [t.shape[0], t.shape[1]];
    let size = tensor::element_bytes(t.dtype);
    let mut bytes = Vec::with_capacity(t.bytes.len());
    for c in 0..cols {
        for r in 0..rows {
            let at = (r * cols + c) * size;
            bytes.extend_from_slice(&t.bytes[at..at + size]);
        }
    }
    StoredTensor { dtype: t.dtype, shape: vec![cols, rows], bytes }
}

fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F64 | DType::F32 | DType::Flex32 | DType::F16 | DType::BF16)
}

/// A parameter's values in PyTorch layout (floats as `f32`).
fn torch_tensor(param: &TorchParam) -> Result<StoredTensor, CheckpointError> {
    let data = param.entry.data.clone().expect("collected with data");
    let data = if is_float(data.dtype) { data.convert::<f32>() } else { data };
    let stored = StoredTensor::from_data(&param.name, data)?;
    Ok(if param.transpose { transposed(&stored) } else { stored })
}

/// Writes `model` as a PyTorch-style safetensors state dict at `path`.
pub fn export_pytorch<B, M>(model: &M, path: &Path) -> Result<ExportReport, CheckpointError>
where
    B: Backend,
    M: Module<B> + SeededModel<B>,
{
    let params = paths::collect(model, true);
    let layers = paths::seed_layers(model, &params)?;
    let mut out = TensorMap::new();
    for param in torch_params(&params, &layers) {
        out.insert(param.name.clone(), torch_tensor(&param)?);
    }
    let mut report =
        ExportReport { tensors: Vec::new(), merged: Vec::new(), residuals: Vec::new(), inactive: Vec::new() };
    let mut described = Vec::new();
    for (layer, core) in layers.iter().zip(paths::seed_cores(model)) {
        described.push(export_layer(layer, &core, &mut out, &mut report)?);
    }
    let metadata = HashMap::from([
        ("format".to_string(), EXPORT_FORMAT.to_string()),
        ("layers".to_string(), Value::Array(described).to_string()),
    ]);
    let bytes = tensor::encode(&out, Some(metadata))?;
    std::fs::write(path, bytes).map_err(CheckpointError::io("write", path))?;
    report.tensors = out.into_keys().collect();
    Ok(report)
}

/// The weight a seed's blueprint output is added with now (0: contributes nothing).
fn output_weight<B: Backend>(core: &SeedCore<B>, seed: usize, alpha: f32) -> f32 {
    match core.table()[seed].stage {
        Stage::Grafting => alpha,
        Stage::Evaluating if core.ablated_seeds().contains(&seed) => 0.0,
        Stage::Stabilization | Stage::Evaluating | Stage::FineTuning | Stage::Fossilized => 1.0,
        _ => 0.0,
    }
}

/// One bank parameter stacked over all pages: `f32` values and elements per row.
type Stacked = (Vec<f32>, usize);

/// Every allocated bank of a layer read back once, per blueprint id.
struct BankValues(Vec<Option<Vec<Stacked>>>);

impl BankValues {
    fn read<B: Backend>(core: &SeedCore<B>) -> Self {
        let banks = core.params().banks.iter().map(|bank| {
            let stacked = bank.as_ref()?.stacked();
            let params = stacked.into_iter().map(|t| {
                let [_, a, b] = t.dims();
                (t.into_data().convert::<f32>().to_vec::<f32>().expect("f32 after convert"), a * b)
            });
            Some(params.collect())
        });
        Self(banks.collect())
    }

    /// One bank row's parameters, in `param_shapes` order.
    fn row(&self, blueprint: usize, slot: usize) -> Vec<Vec<f32>> {
        let params = self.0[blueprint].as_ref().expect("a held blueprint has a bank");
        params.iter().map(|(values, size)| values[slot * size..(slot + 1) * size].to_vec()).collect()
    }
}

/// Exports one seeded layer's contributing seeds (merging or as residuals); returns its JSON.
fn export_layer<B: Backend>(
    layer: &SeedLayerPath,
    core: &SeedCore<B>,
    out: &mut TensorMap,
    report: &mut ExportReport,
) -> Result<Value, CheckpointError> {
    let base = layer.layer_path();
    let alpha: Vec<f32> = core.params().state.alpha.val().into_data().convert::<f32>().to_vec().expect("f32 alpha");
    let host = core.host_kind();
    let banks = BankValues::read(core);
    // A branch (`SeededBranch`) has no host weights: its host is the identity, nothing to merge into.
    let has_host = out.contains_key(&paths::join(&[&base, "weight"]));
    // Merging a seed changes the host output, which blueprints reading the whole layer read.
    let may_merge = has_host && host == HostKind::Linear && !reads_the_layer(core, &alpha);
    let mut residuals = Vec::new();
    let mut merged = Vec::new();
    for (seed, row) in core.table().iter().enumerate() {
        let (Some(blueprint), Some(slot)) = (row.blueprint, row.slot) else { continue };
        let address = SeedAddress { layer: layer.name.clone(), seed };
        let scale = output_weight(core, seed, alpha[seed]);
        if scale == 0.0 {
            report.inactive.push(address);
            continue;
        }
        let spec = core.blueprints().get(blueprint);
        let range = core.chunks().range(seed);
        let reads = spec.reads(core.chunks(), seed);
        let ops = residual::split_ops(spec, spec.input_width(core.chunks()), banks.row(blueprint, slot));
        let entry = json!({"seed": seed, "start": range.start, "end": range.end, "blueprint": spec.name,
                           "reads": [reads.start, reads.end], "stage": row.stage.name(), "scale": scale});
        if may_merge && residual::is_affine(spec) && merge_into_host(out, &base, range.clone(), &ops, scale) {
            merged.push(entry);
            report.merged.push(address);
            continue;
        }
        let (tensors, description) = residual::residual_tensors(&ops, spec, host, [reads.len(), range.len()], scale);
        for Exported { name, shape, values } in tensors {
            let full = paths::join(&[&base, "residuals", &seed.to_string(), &name]);
            out.insert(full, StoredTensor::from_f32(values, shape));
        }
        let mut entry = entry;
        entry["ops"] = Value::Array(description);
        residuals.push(entry);
        report.residuals.push(address);
    }
    let host_name = if has_host { host.to_string() } else { IDENTITY_HOST.to_string() };
    Ok(json!({"name": layer.name, "path": base, "host": host_name, "features": core.chunks().features(),
              "seeds": core.num_seeds(), "residuals": residuals, "merged": merged}))
}

/// Whether any seed of `core` contributing now holds a blueprint reading the whole layer.
fn reads_the_layer<B: Backend>(core: &SeedCore<B>, alpha: &[f32]) -> bool {
    core.table().iter().enumerate().any(|(seed, row)| {
        let reads_layer = row.blueprint.is_some_and(|b| core.blueprints().get(b).input == BlueprintInput::Layer);
        reads_layer && output_weight(core, seed, alpha[seed]) != 0.0
    })
}

/// Folds an affine blueprint into the host rows `range` of `P.weight` (`[out, in]`) and
/// `P.bias`: `W'[a+j] = W[a+j] + s * sum_i T[i][j] W[a+i]`, `b'[a+j] = b[a+j] + s * (sum_i b[a+i]
/// T[i][j] + t[j])`. Returns false (nothing changed) if a shift is needed but the host has no
/// bias.
fn merge_into_host(
    out: &mut TensorMap,
    base: &str,
    range: std::ops::Range<usize>,
    ops: &[(usize, morphogen_engine::BlueprintOp, residual::OpParams)],
    scale: f32,
) -> bool {
    let c = range.len();
    let (map, shift) = residual::affine_map(ops, c);
    let (weight_name, bias_name) = (paths::join(&[base, "weight"]), paths::join(&[base, "bias"]));
    let has_bias = out.contains_key(&bias_name);
    if !has_bias && shift.iter().any(|&v| v != 0.0) {
        return false;
    }
    let s = scale as f64;
    let weight = out.get_mut(&weight_name).expect("host weight exported");
    let fan_in = weight.shape[1];
    let mut w = weight.to_f32().expect("f32 host weight");
    let rows: Vec<Vec<f64>> =
        range.clone().map(|r| w[r * fan_in..(r + 1) * fan_in].iter().map(|&v| v as f64).collect()).collect();
    for j in 0..c {
        for k in 0..fan_in {
            let mixed: f64 = (0..c).map(|i| map[i * c + j] * rows[i][k]).sum();
            w[(range.start + j) * fan_in + k] = (rows[j][k] + s * mixed) as f32;
        }
    }
    *weight = StoredTensor::from_f32(w, weight.shape.clone());
    if let Some(bias) = out.get_mut(&bias_name) {
        let mut b = bias.to_f32().expect("f32 host bias");
        let old: Vec<f64> = range.clone().map(|r| b[r] as f64).collect();
        for j in 0..c {
            let mixed: f64 = (0..c).map(|i| old[i] * map[i * c + j]).sum::<f64>() + shift[j];
            b[range.start + j] = (old[j] + s * mixed) as f32;
        }
        *bias = StoredTensor::from_f32(b, bias.shape.clone());
    }
    true
}

/// Loads host weights (and every other parameter outside the seed cores) from a PyTorch-style
/// safetensors state dict named as [`export_pytorch`] names them. Seeds are left as they are.
/// Every such parameter must be present with the right shape; float dtypes are converted. On
/// error `model` is unchanged.
pub fn import_pytorch<B, M>(model: &mut M, path: &Path) -> Result<ImportReport, CheckpointError>
where
    B: Backend,
    M: Module<B> + SeededModel<B>,
{
    let (file, _) = tensor::read_file(path)?;
    let params = paths::collect(model, false);
    let layers = paths::seed_layers(model, &params)?;
    let mut replacements: BTreeMap<String, (TensorData, ParamId)> = BTreeMap::new();
    let mut loaded = BTreeSet::new();
    for param in torch_params(&params, &layers) {
        let stored =
            file.get(&param.name).ok_or_else(|| CheckpointError::MissingTensor { name: param.name.clone() })?;
        let data = imported_data(&param, stored)?;
        replacements.insert(param.entry.path.clone(), (data, param.entry.id));
        loaded.insert(param.name.clone());
    }
    *model = model.clone().map(&mut Replacer::new(replacements));
    let unused = file.keys().filter(|k| !loaded.contains(*k)).cloned().collect();
    Ok(ImportReport { loaded: loaded.into_iter().collect(), unused })
}

/// A state-dict tensor in the model's layout and dtype, or why it does not fit.
fn imported_data(param: &TorchParam, stored: &StoredTensor) -> Result<TensorData, CheckpointError> {
    let expected: Vec<usize> =
        if param.transpose { param.entry.shape.iter().rev().copied().collect() } else { param.entry.shape.clone() };
    if stored.shape != expected {
        return Err(CheckpointError::ShapeMismatch {
            name: param.name.clone(),
            layer: None,
            expected: format!("{expected:?}"),
            found: stored.shape.clone(),
        });
    }
    let stored = if param.transpose { transposed(stored) } else { stored.clone() };
    let data = stored.to_data().map_err(|_| CheckpointError::UnsupportedDtype {
        name: param.name.clone(),
        dtype: format!("{:?}", stored.dtype),
    })?;
    let (have, want) = (data.dtype, param.entry.dtype);
    match (have == want, is_float(have) && is_float(want)) {
        (true, _) => Ok(data),
        (false, true) => Ok(data.convert_dtype(want)),
        (false, false) => Err(CheckpointError::DtypeMismatch {
            name: param.name.clone(),
            expected: format!("{want:?}"),
            found: format!("{have:?}"),
        }),
    }
}
