//! Grafting: each GRAFTING seed's alpha moves on device by its strategy's ramp, gated by the
//! strategy's signal; the gates' memory is kept between steps (and saved by checkpoints).

use super::SeedCore;
use crate::grafting::{gate_factor, Gate, GraftMemory, GraftSignals};
use crate::telemetry::chunk_totals;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{IndexingUpdateOp, Tensor};
use morphogen_contracts::MorphogenError;

impl<B: Backend> SeedCore<B> {
    /// Whether a grafting seed uses a drift gate (the host layer then supplies its weights).
    pub fn needs_drift(&self) -> bool {
        self.ramps.iter().any(|(id, _)| matches!(self.setup.strategies.get(*id).gate, Gate::DriftBelow { .. }))
    }

    /// Whether a grafting seed's strategy gates on the per-seed gradient norms (the training
    /// loop then measures them with [`seed_grad_norms`](Self::seed_grad_norms)).
    pub fn needs_grad_norms(&self) -> bool {
        self.ramps.iter().any(|(id, _)| matches!(self.setup.strategies.get(*id).gate, Gate::GradNormWithin { .. }))
    }

    /// Moves every GRAFTING seed's alpha by its strategy, on device. `host_rows` gives the host
    /// weights as `[features, fan_in]` and is called only when a drift gate needs it.
    pub fn graft_step_with(
        &mut self,
        signals: &GraftSignals<B>,
        host_rows: impl FnOnce() -> Tensor<B, 2>,
    ) -> Result<(), MorphogenError> {
        if self.ramps.is_empty() {
            return Ok(());
        }
        let drift = self.needs_drift().then(|| self.measure_drift(host_rows()));
        let device = self.device();
        let mut increment = Tensor::<B, 1>::zeros([self.num_seeds()], &device);
        for (id, ramp) in self.ramps.clone() {
            let spec = self.setup.strategies.get(id).clone();
            let name = self.setup.name.clone();
            let missing = |signal: &str, hint: &str| MorphogenError::MissingSignal {
                layer: name.clone(),
                strategy: spec.name.clone(),
                signal: signal.into(),
                hint: hint.into(),
            };
            let alpha = &self.params.state.alpha;
            let factor = gate_factor(id, &spec, signals, drift.as_ref(), alpha, &mut self.gate_memory, missing)?;
            increment = increment + ramp * factor;
        }
        self.params.state.alpha = self.params.state.alpha.clone().map(|a| (a + increment).clamp(0.0, 1.0));
        Ok(())
    }

    /// Per-seed relative drift of the host weight rows since the last call (0 on the first).
    fn measure_drift(&mut self, rows: Tensor<B, 2>) -> Tensor<B, 1> {
        let rows = rows.detach();
        let [f, _] = rows.dims();
        let per_seed = |x: Tensor<B, 2>| {
            chunk_totals(x.square().sum_dim(1).reshape([1, f, 1]), &self.setup.chunks).reshape([self.num_seeds()])
        };
        let drift = match &self.drift_reference {
            Some(previous) => (per_seed(rows.clone() - previous.clone()) / (per_seed(previous.clone()) + 1e-12)).sqrt(),
            None => Tensor::zeros([self.num_seeds()], &rows.device()),
        };
        self.drift_reference = Some(rows);
        drift
    }

    /// A copy of the grafting gates' memory.
    pub fn graft_memory(&self) -> GraftMemory<B> {
        GraftMemory { loss_ema: self.gate_memory.loss_ema.clone(), drift_reference: self.drift_reference.clone() }
    }

    /// Replaces the grafting gates' memory with one saved by [`graft_memory`](Self::graft_memory),
    /// moved to this layer's device. Every loss average must belong to a distinct `LossImproving`
    /// strategy of this layer and have shape `[1]`; the drift reference must have one row per
    /// feature. On error nothing changes.
    pub fn restore_graft_memory(&mut self, memory: GraftMemory<B>) -> Result<(), MorphogenError> {
        self.check_graft_memory(&memory)?;
        let device = self.device();
        self.gate_memory.loss_ema = memory.loss_ema.into_iter().map(|(id, t)| (id, t.to_device(&device))).collect();
        self.drift_reference = memory.drift_reference.map(|t| t.to_device(&device));
        Ok(())
    }
}

impl<B: AutodiffBackend> SeedCore<B> {
    /// Per-seed L2 norm of the blueprint parameters' gradients, `[num_seeds]` (0 without a
    /// blueprint), for `grad_norm_gated` grafting.
    pub fn seed_grad_norms(&self, grads: &B::Gradients) -> Tensor<B, 1> {
        let device = self.device();
        let mut squares = Tensor::<B::InnerBackend, 1>::zeros([self.num_seeds()], &device);
        for index in &self.indices {
            let bank = self.params.banks[index.blueprint].as_ref().expect("indexed banks exist");
            let per_row: Vec<_> = bank
                .pages
                .iter()
                .map(|page| {
                    let rows = page.params[0].dims()[0];
                    page.params
                        .iter()
                        .filter_map(|p| p.grad(grads))
                        .map(|g| g.square().sum_dim(2).sum_dim(1).reshape([rows]))
                        .fold(Tensor::zeros([rows], &device), |acc, g| acc + g)
                })
                .collect();
            let per_row = Tensor::cat(per_row, 0);
            squares = squares.select_assign(0, index.row_seeds.clone().inner(), per_row, IndexingUpdateOp::Add);
        }
        Tensor::from_inner(squares.sqrt())
    }
}
