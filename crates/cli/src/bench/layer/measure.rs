//! The measuring of `morphogen bench layer`: every case of the plan built as a seeded layer and
//! timed, generic over the backend.

use super::plan::{ActiveStage, Case, Plan, BLUEPRINT, GRAFT_STEPS, STRATEGY};
use super::results::{Measured, Results, Row, Settings, TelemetryPass, Timings};
use super::timer::Timer;
use crate::error::CliError;
use morphogen::burn::module::AutodiffModule;
use morphogen::burn::tensor::backend::{AutodiffBackend, Backend, ExecutionError};
use morphogen::burn::tensor::{Distribution, Tensor};
use morphogen::{
    reference, GraftSignals, LifecycleConfig, MorphogenError, SeedOptions, SeededLinear, SeededLinearConfig, Stage,
};

/// Measures every case of `plan` on `device`: forward on `B::InnerBackend`, forward+backward
/// on `B`. Progress goes to stderr.
pub fn run<B: AutodiffBackend>(device: &B::Device, plan: &Plan) -> Result<Results, CliError> {
    let cases = plan.cases();
    let mut rows = Vec::with_capacity(cases.len());
    for (i, case) in cases.iter().enumerate() {
        eprintln!("[{}/{}] {case}", i + 1, cases.len());
        let row = measure::<B>(device, plan, *case)?;
        eprintln!("{}", row.line());
        rows.push(row);
    }
    let backend = format!("{} on {device:?}", <B::InnerBackend as Backend>::name(device));
    Ok(Results { settings: Settings::new(backend, plan), rows })
}

/// One row: the layer set up for `case` twice (CubeCL kernels on and off), timed four ways
/// forward and four ways forward+backward, plus the telemetry pass alone. A shape the engine
/// refuses (more seeds than features) is a skipped row.
fn measure<B: AutodiffBackend>(device: &B::Device, plan: &Plan, case: Case) -> Result<Row, CliError> {
    let (layer, tensor_layer) = match (build::<B>(device, plan, case, true)?, build::<B>(device, plan, case, false)?) {
        (Ok(layer), Ok(tensor_layer)) => (layer, tensor_layer),
        (Err(refused), _) | (_, Err(refused)) => return Ok(Row::skipped(case, refused.to_string())),
    };
    let alpha = (case.active_seeds > 0).then(|| layer.seed(0)).transpose()?.map(|s| s.alpha);
    let reference = (case.seeds <= plan.reference_max_seeds).then(|| plan.reference_timer());
    let x = Tensor::<B::InnerBackend, 2>::random([case.batch, case.hidden], Distribution::Normal(0.0, 1.0), device);
    let layers = [layer.valid(), tensor_layer.valid()];
    let forward = time_paths(&layers, x.clone(), plan.timer(), reference, |y| y)?;
    let backward = |y: Tensor<B, 2>| y.sum().backward();
    let forward_backward =
        time_paths(&[layer.clone(), tensor_layer], Tensor::from_inner(x.clone()), plan.timer(), reference, backward)?;
    let telemetry =
        (case.active_seeds == 0 && plan.telemetry).then(|| telemetry_pass(&layers, x, plan.timer())).transpose()?;
    Ok(Row::measured(
        case,
        Measured {
            host_forward_tflops: host_tflops(case, forward.host_ms),
            seeded_forward_gbps: seeded_gbps(case, forward.kernel_ms),
            forward,
            forward_backward,
            telemetry,
            telemetry_kernel_ran: layer.core.telemetry_kernel_passes() > 0,
            active_kernel_ran: layer.core.blend_kernel_passes() > 0,
            state_bytes_per_seed: layer.state_bytes() / case.seeds,
            bank_bytes: layer.bank_bytes(),
            alpha,
        },
    ))
}

/// The layer for `case`, with morphogen's kernels on or off; the inner `Err` is a shape the
/// engine refuses.
fn build<B: AutodiffBackend>(
    device: &B::Device,
    plan: &Plan,
    case: Case,
    kernels: bool,
) -> Result<Result<SeededLinear<B>, MorphogenError>, CliError> {
    let lifecycle = LifecycleConfig::new()
        .with_telemetry(plan.telemetry)
        .with_telemetry_every(plan.telemetry_every)
        .with_kernels(kernels);
    let config = SeededLinearConfig::new(case.hidden, case.hidden)
        .with_num_seeds(case.seeds)
        .with_options(SeedOptions::new().with_lifecycle(lifecycle));
    let mut layer = match config.try_init::<B>(device) {
        Ok(layer) => layer,
        Err(refused) => return Ok(Err(refused)),
    };
    activate(&mut layer, case.active_seeds, plan.stage)?;
    Ok(Ok(layer))
}

/// Median milliseconds of the seeded layer's work on a precomputed host output, every seed
/// dormant: the telemetry pass alone, `[kernel, tensor path]`.
fn telemetry_pass<B: Backend>(
    [kernel, tensor]: &[SeededLinear<B>; 2],
    x: Tensor<B, 2>,
    timer: Timer,
) -> Result<TelemetryPass, ExecutionError> {
    let h = kernel.host.forward(x);
    let [batch, hidden] = h.dims();
    let h = h.reshape([batch, hidden, 1]);
    let device = h.device();
    let time = |layer: &SeededLinear<B>| timer.measure::<B, _>(&device, || layer.core.apply(h.clone(), None));
    Ok(TelemetryPass::new(batch * hidden, time(kernel)?, time(tensor)?.ms))
}

/// Germinates seeds `0..count` with [`BLUEPRINT`]/[`STRATEGY`] and moves them to `stage`; in
/// GRAFTING, alpha then takes [`GRAFT_STEPS`] fixed-ramp steps.
fn activate<B: Backend>(layer: &mut SeededLinear<B>, count: usize, stage: ActiveStage) -> Result<(), MorphogenError> {
    if count == 0 {
        return Ok(());
    }
    let seeds: Vec<usize> = (0..count).collect();
    layer.request_germinations(&seeds, BLUEPRINT, STRATEGY)?;
    let path: &[Stage] = match stage {
        ActiveStage::Grafting => &[Stage::Training, Stage::Grafting],
        ActiveStage::FineTuning => {
            &[Stage::Training, Stage::Grafting, Stage::Stabilization, Stage::Evaluating, Stage::FineTuning]
        }
    };
    for &to in path {
        layer.advance_many(&seeds, to)?;
    }
    if stage == ActiveStage::Grafting {
        for _ in 0..GRAFT_STEPS {
            layer.graft_step(&GraftSignals::new())?;
        }
    }
    Ok(())
}

/// Times the host layer alone, the seeded layer on the kernel path (`layers[0]`) and on the
/// tensor path (`layers[1]`), and (if given a timer) host plus the reference loop, each followed
/// by `finish` (identity for forward, `sum().backward()` for forward+backward).
fn time_paths<B: Backend, T>(
    [kernel, tensor]: &[SeededLinear<B>; 2],
    x: Tensor<B, 2>,
    timer: Timer,
    reference: Option<Timer>,
    finish: impl Fn(Tensor<B, 2>) -> T,
) -> Result<Timings, ExecutionError> {
    let device = x.device();
    let time = |layer: &SeededLinear<B>| timer.measure::<B, _>(&device, || finish(layer.forward(x.clone())));
    let host = timer.median_ms::<B, _>(&device, || finish(kernel.host.forward(x.clone())))?;
    let (kernel_time, tensor_ms) = (time(kernel)?, time(tensor)?.ms);
    let reference = reference
        .map(|timer| timer.median_ms::<B, _>(&device, || finish(reference_forward(kernel, x.clone()))))
        .transpose()?;
    Ok(Timings::new(host, tensor_ms, kernel_time, reference))
}

/// The legacy path: host forward, then [`reference::apply`] looping over seeds.
fn reference_forward<B: Backend>(layer: &SeededLinear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    let h = layer.host.forward(x);
    let [batch, hidden] = h.dims();
    reference::apply(&layer.core, h.reshape([batch, hidden, 1]), None).reshape([batch, hidden])
}

/// Achieved TFLOP/s of the host matmul: `2 * batch * hidden^2` flops.
fn host_tflops(case: Case, ms: f64) -> f64 {
    let flops = 2.0 * case.batch as f64 * (case.hidden * case.hidden) as f64;
    flops / (ms * 1e-3) / 1e12
}

/// Achieved GB/s of the seeded forward over its minimum traffic: f32 input `batch * hidden`,
/// weight `hidden^2` and bias `hidden` read, output `batch * hidden` written.
fn seeded_gbps(case: Case, ms: f64) -> f64 {
    let (b, h) = (case.batch, case.hidden);
    let bytes = (std::mem::size_of::<f32>() * (b * h + h * h + h + b * h)) as f64;
    bytes / (ms * 1e-3) / 1e9
}
