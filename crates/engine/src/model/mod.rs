//! Whole models: listing seeded layers by path so a controller can address `(layer, seed)`.
//!
//! [`SeededModel`] is the trait; `#[derive(SeededModel)]` implements it for a struct (see
//! `fields` for how the derive tells seeded fields from others), `containers` for `Vec`,
//! `Option`, arrays and `Box`es of models, and each seeded layer is a model of one layer.

mod containers;
mod fields;

use crate::grafting::GraftSignals;
use crate::seeds::SeedCore;
use burn::tensor::backend::Backend;
use morphogen_contracts::MorphogenError;
use morphogen_contracts::{Command, CommandKind, LayerHealthReport, LayerState};
use std::collections::BTreeSet;

#[doc(hidden)]
pub use fields::derive_support;

/// What every seeded layer exposes to model-level code, whatever its host kind.
pub trait SeedControl<B: Backend> {
    /// The layer's seeds.
    fn seed_core(&self) -> &SeedCore<B>;
    /// The layer's seeds, mutably.
    fn seed_core_mut(&mut self) -> &mut SeedCore<B>;
    /// One grafting step (the layer supplies its host weights to drift gates).
    fn graft_step(&mut self, signals: &GraftSignals<B>) -> Result<(), MorphogenError>;
}

/// A model that holds seeded layers, each addressed by its dotted *path* in the model.
///
/// Implement it with `#[derive(SeededModel)]` (beside `#[derive(Module)]`): the derive visits,
/// in declaration order, every field whose type implements `SeededModel` and skips the others
/// (`Linear`, `LayerNorm`, tensors, ...), with no attributes. Paths are field names joined by
/// dots, with indices for `Vec` and array elements and nothing for `Option` and `Box`, as Burn
/// names the record's tensors: `blocks.3.mlp.fc1`, `blocks.0.attn.query`. A seeded layer is a
/// model of one layer at the empty path, which its parent's field names. A struct with no seeded
/// field is a model with no layer: the derive compiles and every list is empty.
///
/// **One name per layer, its path.** Every model-level method names layers by their paths in
/// what it returns (reports, states, errors). Methods taking `&mut self` first give each layer's
/// core its path as its name ([`name_layers_by_path`](Self::name_layers_by_path)), so errors
/// raised inside a layer name the path and so do the layer's later forward spans and errors; a
/// layer's config name (`with_name`) only names a layer used on its own. Call
/// `name_layers_by_path` once after building a model to have every name right from the first
/// forward pass, and [`check_layer_paths`](Self::check_layer_paths) to be sure no two layers
/// share a path (only a hand-written visitor can make them).
///
/// ```
/// use burn::backend::NdArray;
/// use burn::module::Module;
/// use burn::nn::{LayerNorm, LayerNormConfig};
/// use burn::tensor::backend::Backend;
/// use morphogen_engine::{SeededLinear, SeededLinearConfig, SeededModel};
///
/// #[derive(Module, Debug, SeededModel)]
/// struct Block<B: Backend> {
///     norm: LayerNorm<B>, // not seeded: skipped
///     fc: SeededLinear<B>,
/// }
///
/// #[derive(Module, Debug, SeededModel)]
/// struct Net<B: Backend> {
///     blocks: Vec<Block<B>>,
///     head: Option<SeededLinear<B>>,
/// }
///
/// let device = Default::default();
/// let block = || Block::<NdArray> {
///     norm: LayerNormConfig::new(4).init(&device),
///     fc: SeededLinearConfig::new(4, 4).with_num_seeds(2).init(&device),
/// };
/// let mut net = Net { blocks: vec![block(), block()], head: Some(SeededLinearConfig::new(4, 2).init(&device)) };
/// net.check_layer_paths()?;
/// net.name_layers_by_path();
/// assert_eq!(net.seeded_layer_names(), ["blocks.0.fc", "blocks.1.fc", "head"]);
/// assert_eq!(net.blocks[1].fc.name(), "blocks.1.fc");
/// # Ok::<(), morphogen_engine::MorphogenError>(())
/// ```
pub trait SeededModel<B: Backend> {
    /// Calls `f` with each seeded layer's path and the layer, in declaration order.
    fn visit_seeded(&self, f: &mut dyn FnMut(&str, &dyn SeedControl<B>));
    /// Calls `f` with each seeded layer's path and the layer, mutably.
    fn visit_seeded_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn SeedControl<B>));

    /// Paths of the seeded layers, in visiting order.
    fn seeded_layer_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.visit_seeded(&mut |name, _| names.push(name.to_string()));
        names
    }

    /// Gives every seeded layer its path as its name (a layer at the empty path, one used on
    /// its own, keeps its config's name). Cheap when the names are already right.
    fn name_layers_by_path(&mut self) {
        visit_named_mut(self, &mut |_, _| {});
    }

    /// Checks that no two seeded layers report the same path; the error names the path.
    fn check_layer_paths(&self) -> Result<(), MorphogenError> {
        let mut seen = BTreeSet::new();
        let mut duplicate = None;
        self.visit_seeded(&mut |path, _| {
            if !seen.insert(path.to_string()) && duplicate.is_none() {
                duplicate = Some(path.to_string());
            }
        });
        duplicate.map_or(Ok(()), |path| Err(MorphogenError::DuplicateLayerPath { path }))
    }

    /// Every seeded layer's health report (one device read per layer); resets the windows.
    fn health_reports(&self) -> Vec<LayerHealthReport> {
        let mut reports = Vec::new();
        self.visit_seeded(&mut |name, layer| {
            let mut report = layer.seed_core().health_report();
            report.layer = name.to_string();
            reports.push(report);
        });
        reports
    }

    /// Every seeded layer's state for a controller: seeds, health (resets the windows) and
    /// blueprint costs.
    fn layer_states(&self) -> Vec<LayerState> {
        let mut states = Vec::new();
        self.visit_seeded(&mut |name, layer| {
            let core = layer.seed_core();
            let mut health = core.health_report();
            health.layer = name.to_string();
            states.push(LayerState {
                layer: name.to_string(),
                host: core.host_kind().to_string(),
                seeds: core.seed_infos(),
                health,
                blueprint_params: core.blueprint_params(),
            });
        });
        states
    }

    /// Parameters added by blueprints over every seeded layer.
    fn params_added(&self) -> usize {
        let mut total = 0;
        self.visit_seeded(&mut |_, layer| total += layer.seed_core().params_added());
        total
    }

    /// Carries out one controller command on the layer at the command's path.
    fn apply_command(&mut self, command: &Command) -> Result<(), MorphogenError> {
        let mut outcome = None;
        visit_named_mut(self, &mut |name, layer| {
            if name == command.target.layer {
                let core = layer.seed_core_mut();
                let seed = command.target.seed;
                outcome = Some(match &command.kind {
                    CommandKind::Germinate { blueprint, strategy } => {
                        core.request_germination(seed, blueprint, strategy)
                    }
                    CommandKind::Advance { to } => core.advance(seed, *to),
                });
            }
        });
        outcome.unwrap_or_else(|| {
            Err(MorphogenError::UnknownLayer { layer: command.target.layer.clone(), known: self.seeded_layer_names() })
        })
    }

    /// Runs every seeded layer's invariant checks (reads the device: for debug mode).
    fn check_invariants(&self) -> Result<(), MorphogenError> {
        let mut result = Ok(());
        self.visit_seeded(&mut |path, layer| {
            if result.is_ok() {
                let named = |e: MorphogenError| if path.is_empty() { e } else { e.at_layer(path) };
                result = layer.seed_core().check_invariants().map_err(named);
            }
        });
        result
    }

    /// Counts an epoch on every seeded layer.
    fn end_epoch(&mut self) {
        visit_named_mut(self, &mut |_, layer| layer.seed_core_mut().end_epoch());
    }

    /// One grafting step on every seeded layer.
    fn graft_step(&mut self, signals: &GraftSignals<B>) -> Result<(), MorphogenError> {
        self.graft_step_each(&|_| signals.clone())
    }

    /// One grafting step on every seeded layer, each with the signals `signals` gives for its
    /// path (a layer's own per-seed gradient norms, say); the first error stops the step.
    fn graft_step_each(&mut self, signals: &dyn Fn(&str) -> GraftSignals<B>) -> Result<(), MorphogenError> {
        let mut result = Ok(());
        visit_named_mut(self, &mut |path, layer| {
            if result.is_ok() {
                result = layer.graft_step(&signals(path));
            }
        });
        result
    }
}

/// Implements [`SeededModel`] for a model struct by naming its seeded-layer fields:
/// `seeded_model!(Mlp { fc1, fc2 });`. Layers are addressed by their field names. Prefer
/// `#[derive(SeededModel)]`, which also walks nested models, `Vec`s, `Option`s and arrays.
#[macro_export]
macro_rules! seeded_model {
    ($model:ident { $($field:ident),+ $(,)? }) => {
        impl<B: $crate::burn::tensor::backend::Backend> $crate::SeededModel<B> for $model<B> {
            fn visit_seeded(&self, f: &mut dyn FnMut(&str, &dyn $crate::SeedControl<B>)) {
                $( f(stringify!($field), &self.$field); )+
            }
            fn visit_seeded_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn $crate::SeedControl<B>)) {
                $( f(stringify!($field), &mut self.$field); )+
            }
        }
    };
}

/// Visits `model`'s layers mutably, giving each its path as its name (see
/// [`SeededModel::name_layers_by_path`]) before `f` acts on it: one pass where naming and acting
/// would take two.
fn visit_named_mut<B: Backend, M: SeededModel<B> + ?Sized>(
    model: &mut M,
    f: &mut dyn FnMut(&str, &mut dyn SeedControl<B>),
) {
    model.visit_seeded_mut(&mut |path, layer| {
        if !path.is_empty() && layer.seed_core().name() != path {
            layer.seed_core_mut().set_name(path);
        }
        f(path, layer);
    });
}

/// The path of a layer at `path` inside a child at `segment`: `segment.path`, or `segment` for
/// the child itself (a layer at the empty path).
fn child_path(segment: &str, path: &str) -> String {
    if path.is_empty() {
        segment.to_string()
    } else {
        format!("{segment}.{path}")
    }
}

/// Visits `child`'s layers with their paths under `segment`.
fn visit_child<B: Backend, M: SeededModel<B> + ?Sized>(
    segment: &str,
    child: &M,
    f: &mut dyn FnMut(&str, &dyn SeedControl<B>),
) {
    child.visit_seeded(&mut |path, layer| f(&child_path(segment, path), layer));
}

/// Visits `child`'s layers mutably with their paths under `segment`.
fn visit_child_mut<B: Backend, M: SeededModel<B> + ?Sized>(
    segment: &str,
    child: &mut M,
    f: &mut dyn FnMut(&str, &mut dyn SeedControl<B>),
) {
    child.visit_seeded_mut(&mut |path, layer| f(&child_path(segment, path), layer));
}
