//! Whole models: listing seeded layers by name so a controller can address `(layer, seed)`.

use crate::grafting::GraftSignals;
use crate::seeds::SeedCore;
use burn::tensor::backend::Backend;
use morphogen_contracts::MorphogenError;
use morphogen_contracts::{Command, CommandKind, LayerHealthReport, LayerState};

/// What every seeded layer exposes to model-level code, whatever its host kind.
pub trait SeedControl<B: Backend> {
    /// The layer's seeds.
    fn seed_core(&self) -> &SeedCore<B>;
    /// The layer's seeds, mutably.
    fn seed_core_mut(&mut self) -> &mut SeedCore<B>;
    /// One grafting step (the layer supplies its host weights to drift gates).
    fn graft_step(&mut self, signals: &GraftSignals<B>) -> Result<(), MorphogenError>;
}

/// A model that holds seeded layers. Implement it with [`seeded_model!`](crate::seeded_model),
/// naming the fields that are seeded layers.
pub trait SeededModel<B: Backend> {
    /// Calls `f` with each seeded layer's name and the layer.
    fn visit_seeded(&self, f: &mut dyn FnMut(&str, &dyn SeedControl<B>));
    /// Calls `f` with each seeded layer's name and the layer, mutably.
    fn visit_seeded_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn SeedControl<B>));

    /// Names of the seeded layers, in visiting order.
    fn seeded_layer_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.visit_seeded(&mut |name, _| names.push(name.to_string()));
        names
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

    /// Carries out one controller command on the layer it addresses.
    fn apply_command(&mut self, command: &Command) -> Result<(), MorphogenError> {
        let mut outcome = None;
        self.visit_seeded_mut(&mut |name, layer| {
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
        self.visit_seeded(&mut |_, layer| {
            if result.is_ok() {
                result = layer.seed_core().check_invariants();
            }
        });
        result
    }

    /// Counts an epoch on every seeded layer.
    fn end_epoch(&mut self) {
        self.visit_seeded_mut(&mut |_, layer| layer.seed_core_mut().end_epoch());
    }

    /// One grafting step on every seeded layer.
    fn graft_step(&mut self, signals: &GraftSignals<B>) -> Result<(), MorphogenError> {
        let mut result = Ok(());
        self.visit_seeded_mut(&mut |_, layer| {
            if result.is_ok() {
                result = layer.graft_step(signals);
            }
        });
        result
    }
}

/// Implements [`SeededModel`] for a model struct by naming its seeded-layer fields:
/// `seeded_model!(Mlp { fc1, fc2 });`. Layers are addressed by their field names.
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
