//! Whole models: records, devices and addressing seeds by layer name.

use crate::common::*;
use burn::module::Module;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::Tensor;
use morphogen_engine::{
    Command, CommandKind, MorphogenError, SeedAddress, SeededLinear, SeededLinearConfig, SeededModel, Stage,
};

#[derive(Module, Debug, SeededModel)]
struct Mlp<B: burn::tensor::backend::Backend> {
    fc1: SeededLinear<B>,
    fc2: SeededLinear<B>,
}

fn mlp() -> Mlp<B> {
    Mlp {
        fc1: SeededLinearConfig::new(6, 8).with_num_seeds(4).init(&device()),
        fc2: SeededLinearConfig::new(8, 3).with_num_seeds(3).init(&device()),
    }
}

impl<B: burn::tensor::backend::Backend> Mlp<B> {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.fc2.forward(burn::tensor::activation::relu(self.fc1.forward(x)))
    }
}

fn command(layer: &str, seed: usize, kind: CommandKind) -> Command {
    Command { target: SeedAddress { layer: layer.into(), seed }, kind, reason: "test".into() }
}

#[test]
fn a_model_lists_its_seeded_layers_and_routes_commands() {
    let mut model = mlp();
    assert_eq!(model.seeded_layer_names(), ["fc1", "fc2"]);
    let germinate = CommandKind::Germinate { blueprint: "residual_mlp".into(), strategy: "fixed_ramp".into() };
    model.apply_command(&command("fc2", 2, germinate)).unwrap();
    model.apply_command(&command("fc2", 2, CommandKind::Advance { to: Stage::Training })).unwrap();
    assert_eq!(model.fc2.seed(2).unwrap().stage, Stage::Training);
    let err = model.apply_command(&command("fc9", 0, CommandKind::Advance { to: Stage::Training })).unwrap_err();
    assert!(matches!(err, MorphogenError::UnknownLayer { .. }) && err.to_string().contains("fc1, fc2"), "{err}");
    let json = serde_json::to_string(&command("fc1", 0, CommandKind::Advance { to: Stage::Culled })).unwrap();
    assert!(json.contains("\"to\":\"CULLED\""), "{json}");
    model.forward(random([2, 6]));
    let reports = model.health_reports();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[1].seeds[2].stage, Stage::Training);
    model.end_epoch();
    assert_eq!(model.fc2.seed(2).unwrap().epochs_in_stage, 1);
}

/// Saving a grown model and loading it into a freshly built one (no banks yet) restores seed
/// state, banks and outputs.
#[test]
fn records_round_trip_into_a_fresh_model() {
    let mut model = mlp();
    model.fc1.request_germinations(&[0, 3], "residual_mlp", "fixed_ramp").unwrap();
    model.fc1.advance_many(&[0, 3], Stage::Training).unwrap();
    model.fc1.advance(3, Stage::Grafting).unwrap();
    model.fc1.set_alpha(&[3], 0.4).unwrap();
    model.fc2.request_germination(1, "low_rank", "fixed_ramp").unwrap();
    // Train one step so blueprints are non-zero.
    let grads = model.forward(random([4, 6])).sum().backward();
    let grads = burn::optim::GradientsParams::from_grads(grads, &model);
    use burn::optim::Optimizer;
    let mut optim = burn::optim::SgdConfig::new().init::<B, Mlp<B>>();
    let model = optim.step(0.5, model, grads);

    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = recorder.record(model.clone().into_record(), ()).unwrap();
    let record = recorder.load(bytes, &device()).unwrap();
    let fresh = mlp().load_record(record);

    assert_eq!(fresh.fc1.core.table(), model.fc1.core.table());
    assert_eq!(fresh.fc1.seed(3).unwrap().alpha, 0.4);
    let x = random([3, 6]);
    assert_eq!(values(fresh.forward(x.clone())), values(model.forward(x)));
}

#[test]
fn validation_copies_run_on_the_inner_backend() {
    use burn::module::AutodiffModule;
    let mut model = mlp();
    model.fc1.request_germination(1, "low_rank", "fixed_ramp").unwrap();
    let x = random([2, 6]);
    let inner = model.valid();
    let y_inner = inner.forward(x.clone().inner());
    assert_eq!(values(y_inner), values(model.forward(x)));
    assert_eq!(inner.fc1.core.table(), model.fc1.core.table());
}

/// Growing a bank adds a page and never replaces one, so an optimizer's state for existing rows,
/// keyed by parameter id, carries on.
#[test]
fn optimizer_state_survives_bank_growth() {
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};
    let mut layer = SeededLinearConfig::new(4, 8)
        .with_num_seeds(8)
        .with_options(
            morphogen_engine::SeedOptions::new()
                .with_lifecycle(morphogen_engine::LifecycleConfig::new().with_bank_page_rows(2)),
        )
        .init::<B>(&device());
    let to_fine_tuning = [Stage::Training, Stage::Grafting, Stage::Stabilization, Stage::Evaluating, Stage::FineTuning];
    layer.request_germinations(&[0, 1], "residual_mlp", "fixed_ramp").unwrap();
    for stage in to_fine_tuning {
        layer.advance_many(&[0, 1], stage).unwrap();
    }
    let mut optim = AdamConfig::new().init::<B, SeededLinear<B>>();
    let x = random([32, 4]);
    let step = |layer: SeededLinear<B>, optim: &mut burn::optim::adaptor::OptimizerAdaptor<_, _, _>| {
        let grads = GradientsParams::from_grads(layer.forward(x.clone()).powi_scalar(2).sum().backward(), &layer);
        optim.step(1e-2, layer, grads)
    };
    layer = step(layer, &mut optim);
    // The output bias: its gradient does not pass through the blueprint's ReLU, so it is never
    // zero by chance (a hidden weight's is, when every unit happens to be dead on the batch).
    let output_bias =
        |layer: &SeededLinear<B>| layer.core.params().banks[0].as_ref().unwrap().pages[0].params[3].clone();
    let first_page = output_bias(&layer);
    assert!(optim.to_record().contains_key(&first_page.id), "Adam keeps state for the first page");

    layer.request_germinations(&[2, 3, 4], "residual_mlp", "fixed_ramp").unwrap();
    let bank = layer.core.params().banks[0].as_ref().unwrap();
    assert_eq!(bank.pages.len(), 2, "the bank grew by a page");
    assert_eq!(bank.pages[0].params[3].id, first_page.id, "the first page kept its parameter id");
    layer = step(layer, &mut optim);
    let after = output_bias(&layer).val();
    assert_ne!(values(after), values(first_page.val()), "the first page kept training");
    assert!(optim.to_record().contains_key(&first_page.id));
}
