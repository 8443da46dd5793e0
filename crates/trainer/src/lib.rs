//! Tolaria, the trainer: the epoch loop over a seeded model, its loss, optimizer and data. At
//! each epoch end it measures the controller's gates, asks the controller for decisions,
//! applies them, logs every transition, and keeps a known-good state to roll back to on a
//! NaN/Inf or spiking loss.
//!
//! Users with their own loop call `controller.step(&state)` and `model.apply_command(...)`
//! themselves; [`measure_system`] builds the controller's input from a model. With the
//! controller as a service on a message bus, [`Trainer::with_bus`] asks it instead (a loop of
//! one's own uses [`RemoteController`]). A loop of one's own runs data-parallel over several
//! devices with [`Replica`] (Burn's collective operations).
#![warn(missing_docs)]

mod ablation;
mod bus_config;
mod data;
mod device_data;
mod epoch_plan;
mod error;
mod events;
mod flops;
mod json_difference;
mod lr_schedule;
mod models;
mod node_group;
mod replica;
mod resources;
mod rules;
mod run_config;
mod signals;
mod task;
mod tasks;
mod trainer;
mod widening;

pub use ablation::Ablation;
pub use bus_config::{BusConfig, OnTimeout};
pub use data::{fashion_mnist, ImageSet, TextCorpus, TextWindows, Vocabulary, FASHION_MNIST_DIR, SHAKESPEARE_DIR};
pub use device_data::{Batching, DeviceData, Shard};
pub use epoch_plan::{EpochPlan, PassSlice};
pub use error::{ErrorKind, TrainError};
pub use events::{DecisionSource, EventLog, Observer, StageCounts};
pub use flops::{attention_flops, blueprint_flops, conv2d_flops, linear_flops, CountFlops, FlopProfile};
pub use lr_schedule::LrSchedule;
pub use models::{
    Cnn, FeedForward, Mlp, ModelConfig, ModelKind, Projection, ResNet, ResidualBlock, TaskKind, Transformer,
    TransformerBlock,
};
pub use node_group::{Coordinator, NodeGroup};
pub use replica::{Replica, ReplicaConfig};
pub use resources::{process_rss_bytes, LayerResources, Resources};
pub use rules::RollbackRule;
pub use run_config::{ControllerKind, RunConfig, RunSection, DEFAULT_RUN_NAME};
pub use signals::Signals;
pub use task::{StepOutput, Task, TaskData, TaskModel};
pub use tasks::{ImageBatch, ImageClassification, ImageItem, NextCharacter, TextBatch, TextItem};
pub use trainer::{
    evaluate, evaluate_seeds, measure_system, Answer, AppliedDecision, EvalBudget, Evaluation, NoDecision,
    RemoteController, Stopped, TrainOutcome, Trainer, TrainerConfig, Training, TrainingTypes,
};
pub use widening::{grow_adam_state, AdamOptimizer, AxisGrowth, Fill, ParamGrowth, Widening};
