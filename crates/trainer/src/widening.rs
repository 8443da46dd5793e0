//! Widening a host mid-run (ADR 0025): when, by how much, and how each parameter and its Adam
//! moments grow so that the widened model computes what the narrow one did.
//!
//! A model that can widen ([`TaskModel::widen`](crate::TaskModel::widen)) returns, with the wider
//! model, a [`ParamGrowth`] for every parameter whose shape changed: the same parameter id, its
//! old values (maybe scaled) kept in place, and new rows or columns filled as each axis says.
//! [`grow_adam_state`] then grows the optimizer's moments the same way, so the old weights keep
//! their momentum and the new ones start from none.

use burn::module::{AutodiffModule, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::record::AdaptorRecord;
use burn::optim::{Adam, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Tensor};
use morphogen_contracts::MorphogenError;
use serde::{Deserialize, Serialize};

/// When and by how much the trainer widens the host (`[trainer.widen]`): after `after_epoch`,
/// and `times - 1` more times `every_epochs` apart, by `features` each time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Widening {
    /// The epoch after which the host first widens (its validation and decisions come first).
    pub after_epoch: u32,
    /// Features added to the host's width at each widening (the transformer's `d_model`, the
    /// ResNet's width).
    pub features: usize,
    /// How many widenings in all (1: once).
    #[serde(default = "one")]
    pub times: u32,
    /// Epochs from one widening to the next, when there are several.
    #[serde(default = "one")]
    pub every_epochs: u32,
    /// Start a decaying learning-rate schedule again at each widening, from `learning_rate` down
    /// over the epochs left, so that the new weights learn at full rate.
    #[serde(default)]
    pub restart_schedule: bool,
}

fn one() -> u32 {
    1
}

impl Widening {
    /// Widening once, after `after_epoch`, by `features`, the schedule not restarted.
    pub fn once(after_epoch: u32, features: usize) -> Self {
        Self { after_epoch, features, times: 1, every_epochs: 1, restart_schedule: false }
    }

    /// The epochs after which the host widens, in order.
    pub fn epochs(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.times).map(|i| self.after_epoch + i * self.every_epochs)
    }

    /// Whether the host widens after `epoch`.
    pub fn widens_after(&self, epoch: u32) -> bool {
        self.epochs().any(|at| at == epoch)
    }

    /// How many widenings have happened once `epoch` has ended.
    pub fn widenings_by(&self, epoch: u32) -> usize {
        self.epochs().filter(|&at| at <= epoch).count()
    }

    /// Step `position` of a run of `total` steps (`steps` an epoch) in epoch `epoch`, as the
    /// learning-rate schedule counts it: from the latest widening on, with `restart_schedule`,
    /// the position and length of the rest of the run.
    pub fn schedule_span(&self, epoch: u32, steps: u64, position: u64, total: u64) -> (u64, u64) {
        let latest = self.epochs().filter(|&at| at < epoch).last();
        match latest {
            Some(at) if self.restart_schedule => {
                let start = u64::from(at) * steps;
                (position - start, total - start)
            }
            _ => (position, total),
        }
    }

    /// Checks every widening can happen in a run of `epochs` epochs; the error names the field.
    pub fn validate(&self, epochs: u32) -> Result<(), MorphogenError> {
        let last = u64::from(self.after_epoch) + u64::from(self.times.saturating_sub(1)) * u64::from(self.every_epochs);
        let problem = if self.features == 0 {
            "trainer.widen.features must be at least 1"
        } else if self.times == 0 || self.every_epochs == 0 {
            "trainer.widen.times and trainer.widen.every_epochs must be at least 1"
        } else if self.after_epoch == 0 || last >= u64::from(epochs) {
            "trainer.widen.after_epoch must be at least 1, and the last widening before the last epoch"
        } else {
            return Ok(());
        };
        Err(MorphogenError::InvalidConfig {
            component: "trainer".into(),
            problem: problem.into(),
            hint: format!(
                "widen after epochs within 1..{} (after_epoch + (times - 1) * every_epochs) by 1 or more features",
                epochs.saturating_sub(1)
            ),
        })
    }
}

/// What the new entries of a grown axis hold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fill {
    /// One value everywhere.
    Constant(f64),
    /// Uniform in `[-bound, bound]`.
    Uniform(f64),
    /// The mean of the old entries along the grown axis (a new output feature that copies the
    /// mean of the old ones, so a layer norm's statistics stay as they were).
    MeanAlong,
}

/// How one axis of a parameter grows: it is `groups` blocks of `old` entries each (attention
/// heads; 1 for a plain axis), and each block grows to `new` entries, the old ones first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AxisGrowth {
    /// The axis.
    pub axis: usize,
    /// Blocks along the axis.
    pub groups: usize,
    /// Entries of a block before.
    pub old: usize,
    /// Entries of a block after (at least `old`).
    pub new: usize,
    /// What the added entries hold.
    pub fill: Fill,
}

/// How one parameter (a vector or a matrix) grows: its old values times `scale`, then each axis
/// in turn.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamGrowth {
    /// The parameter, whose id the wider model keeps.
    pub id: ParamId,
    /// Its rank: 1 (a vector), 2 (a matrix) or 4 (a conv kernel).
    pub rank: usize,
    /// Factor on the old values (a layer norm's gain, the queries of wider heads).
    pub scale: f64,
    /// The axes that grow, applied in order.
    pub axes: Vec<AxisGrowth>,
}

impl ParamGrowth {
    /// `tensor` (any rank: a vector, a matrix, a conv kernel) grown as this says.
    pub fn apply<B: Backend, const D: usize>(&self, tensor: Tensor<B, D>) -> Tensor<B, D> {
        let fills: Vec<Fill> = self.axes.iter().map(|axis| axis.fill).collect();
        self.apply_with(tensor.mul_scalar(self.scale), &fills)
    }

    /// `tensor` (old values already scaled) grown along the axes, each filled by `fills`.
    fn apply_with<B: Backend, const D: usize>(&self, tensor: Tensor<B, D>, fills: &[Fill]) -> Tensor<B, D> {
        self.axes.iter().zip(fills).fold(tensor, |tensor, (axis, fill)| grow_axis(tensor, axis, *fill))
    }
}

/// `param` grown as `axes` say (old values times `scale`), its id kept (so an optimizer's state
/// and a checkpoint follow it), its `require_grad` too; the growth is pushed on `growths`.
pub(crate) fn grow_param<B: Backend, const D: usize>(
    param: Param<Tensor<B, D>>,
    scale: f64,
    axes: Vec<AxisGrowth>,
    growths: &mut Vec<ParamGrowth>,
) -> Param<Tensor<B, D>> {
    let growth = ParamGrowth { id: param.id, rank: D, scale, axes };
    let trainable = param.is_require_grad();
    let value = growth.apply(param.val()).detach();
    growths.push(growth);
    Param::initialized(param.id, if trainable { value.require_grad() } else { value })
}

/// `tensor` with `growth.axis` grown block by block, the new entries as `fill` says. The tensor
/// is viewed as `[outer, groups, old, inner]` and grown along its third axis, so no axes are
/// permuted: on Burn 0.21's CubeCL backends a permuted tensor whose last axis has one entry,
/// reshaped with a unit axis added (a 1x1 conv kernel put back to rank 4), reads the wrong entries.
fn grow_axis<B: Backend, const D: usize>(tensor: Tensor<B, D>, growth: &AxisGrowth, fill: Fill) -> Tensor<B, D> {
    let AxisGrowth { axis, groups, old, new, .. } = *growth;
    let dims = tensor.dims();
    let (outer, inner) = (dims[..axis].iter().product(), dims[axis + 1..].iter().product());
    let device = tensor.device();
    let blocks: Tensor<B, 4> = tensor.reshape([outer, groups, old, inner]);
    let shape = [outer, groups, new - old, inner];
    let added = match fill {
        Fill::Constant(value) => Tensor::full(shape, value, &device),
        Fill::Uniform(bound) => Tensor::random(shape, Distribution::Uniform(-bound, bound), &device),
        Fill::MeanAlong => blocks.clone().mean_dim(2).repeat_dim(2, new - old),
    };
    let mut grown = dims;
    grown[axis] = groups * new;
    Tensor::cat(vec![blocks, added], 2).reshape(grown)
}

/// The Adam optimizer of a run on backend `B` training model `M`.
pub type AdamOptimizer<M, B> = OptimizerAdaptor<Adam, M, B>;

/// Grows the moments of every parameter in `growths` that `optim` tracks, as the parameter
/// grew: old entries kept (scaled as the values were: the first moment by `scale`, the second by
/// its square), both moments of new entries zero. A new weight starts without history; as Adam's
/// bias correction counts the steps of the whole tensor, its first steps are larger than an old
/// weight's. Measured against new second moments at the old ones' mean, which held new weights to
/// small steps for the rest of the run (`docs/results.md`, "Adam's memory of the narrow model").
pub fn grow_adam_state<B, M>(optim: AdamOptimizer<M, B>, growths: &[ParamGrowth]) -> AdamOptimizer<M, B>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    let mut records = optim.to_record();
    for growth in growths {
        let Some(record) = records.remove(&growth.id) else { continue };
        let grown = match growth.rank {
            1 => grow_record::<B, 1>(record, growth),
            2 => grow_record::<B, 2>(record, growth),
            _ => grow_record::<B, 4>(record, growth),
        };
        records.insert(growth.id, grown);
    }
    optim.load_record(records)
}

/// One parameter's Adam record of rank `D`, grown.
fn grow_record<B: AutodiffBackend, const D: usize>(
    record: AdaptorRecord<Adam, B>,
    growth: &ParamGrowth,
) -> AdaptorRecord<Adam, B> {
    let mut state = record.into_state::<D>();
    let momentum = &mut state.momentum;
    let zeros = vec![Fill::Constant(0.0); growth.axes.len()];
    momentum.moment_1 = growth.apply_with(momentum.moment_1.clone().mul_scalar(growth.scale), &zeros);
    momentum.moment_2 = growth.apply_with(momentum.moment_2.clone().mul_scalar(growth.scale * growth.scale), &zeros);
    momentum.max_moment_2 = None;
    AdaptorRecord::from_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray;

    fn matrix(rows: usize, cols: usize) -> Tensor<B, 2> {
        Tensor::<B, 1, burn::tensor::Int>::arange(0..(rows * cols) as i64, &Default::default())
            .float()
            .reshape([rows, cols])
    }

    #[test]
    fn old_values_stay_in_place_and_new_ones_fill_each_block() {
        // Two heads of 2 columns each grow to 3: the third column of each block is new.
        let growth = ParamGrowth {
            id: ParamId::new(),
            rank: 2,
            scale: 1.0,
            axes: vec![AxisGrowth { axis: 1, groups: 2, old: 2, new: 3, fill: Fill::Constant(-1.0) }],
        };
        let grown = growth.apply(matrix(2, 4));
        let expected = [[0.0, 1.0, -1.0, 2.0, 3.0, -1.0], [4.0, 5.0, -1.0, 6.0, 7.0, -1.0]];
        grown.into_data().assert_eq(&burn::tensor::TensorData::from(expected), false);
    }

    #[test]
    fn a_mean_fill_copies_the_mean_of_the_old_entries_along_the_axis() {
        let growth = ParamGrowth {
            id: ParamId::new(),
            rank: 1,
            scale: 2.0,
            axes: vec![AxisGrowth { axis: 0, groups: 1, old: 3, new: 4, fill: Fill::MeanAlong }],
        };
        let grown = growth.apply(Tensor::<B, 1>::from_floats([1.0, 2.0, 6.0], &Default::default()));
        grown.into_data().assert_eq(&burn::tensor::TensorData::from([2.0, 4.0, 12.0, 6.0]), false);
    }

    #[test]
    fn a_restarted_schedule_counts_from_the_latest_widening() {
        let widen = |restart_schedule| Widening { restart_schedule, ..Widening::once(3, 8) };
        // 10 epochs of 100 steps: step 5 of epoch 4 is step 305 of 1000, or 5 of the last 700.
        assert_eq!(widen(true).schedule_span(4, 100, 305, 1000), (5, 700));
        assert_eq!(widen(true).schedule_span(3, 100, 205, 1000), (205, 1000));
        assert_eq!(widen(false).schedule_span(4, 100, 305, 1000), (305, 1000));
        // Widened after epochs 3 and 6: epoch 7 counts from step 600.
        let twice = Widening { times: 2, every_epochs: 3, ..widen(true) };
        assert_eq!(twice.schedule_span(7, 100, 605, 1000), (5, 400));
        assert_eq!(twice.schedule_span(5, 100, 405, 1000), (105, 700));
    }

    #[test]
    fn widenings_come_every_epochs_apart_and_add_up() {
        let twice = Widening { times: 2, every_epochs: 3, ..Widening::once(3, 4) };
        assert_eq!(twice.epochs().collect::<Vec<_>>(), [3, 6]);
        assert!(twice.widens_after(6) && !twice.widens_after(4) && !twice.widens_after(9));
        assert_eq!([2, 3, 5, 6, 8].map(|epoch| twice.widenings_by(epoch)), [0, 1, 1, 2, 2]);
        assert_eq!(twice.widenings_by(u32::MAX), 2);
    }

    #[test]
    fn a_widening_after_the_last_epoch_or_of_nothing_is_refused_by_name() {
        assert!(Widening::once(2, 8).validate(10).is_ok());
        assert!(Widening { times: 3, every_epochs: 3, ..Widening::once(3, 8) }.validate(10).is_ok());
        for bad in [
            Widening::once(10, 8),
            Widening::once(0, 8),
            Widening { times: 3, every_epochs: 4, ..Widening::once(3, 8) },
        ] {
            assert!(bad.validate(10).unwrap_err().to_string().contains("after_epoch"), "{bad:?}");
        }
        assert!(Widening::once(2, 0).validate(10).unwrap_err().to_string().contains("features"));
        let never = Widening { times: 0, ..Widening::once(2, 8) };
        assert!(never.validate(10).unwrap_err().to_string().contains("times"));
    }
}
