//! Checkpoints for morphogen models: nothing a training run grew is ever lost.
//!
//! - **Save** a [`Snapshot`] of a model (host weights, every seed's state columns, allocated
//!   blueprint bank pages, grafting gate memory), optionally its optimizer's state, progress, RNG
//!   and caller JSON (controller state), as a directory holding a safetensors tensor file and a
//!   JSON manifest ([`write_checkpoint`], or [`CheckpointDir::save`] with retention). Writes are
//!   atomic: a crash leaves the previous checkpoints intact.
//! - **Read** with every integrity check ([`Checkpoint::read`]: checksums, schema, header) and
//!   **restore** into a model, even a freshly built one whose banks are not allocated yet
//!   ([`Checkpoint::restore`], [`Checkpoint::restore_with_optimizer`]): the checkpoint is checked
//!   against the model first and the model changes only if everything fits.
//! - **Roll back** to the last known-good checkpoint ([`CheckpointDir::rollback`]) and list the
//!   seeds that were active ([`active_seeds`]).
//! - **Exchange with PyTorch**: [`export_pytorch`] writes a plain state dict (Linear weights in
//!   PyTorch's `[out, in]` layout, linear blueprints merged into host weights, other blueprints as
//!   named residual modules); [`import_pytorch`] loads host weights from one.
//!
//! Loading never executes anything from the files: tensors are safetensors, metadata is JSON,
//! and the optimizer record is Burn's plain binary record format.
//!
//! ```
//! use morphogen_checkpoint::{Checkpoint, CheckpointDir, Snapshot};
//! use morphogen_engine::burn::backend::NdArray;
//! use morphogen_engine::burn::module::Module;
//! use morphogen_engine::{seeded_model, SeededLinear, SeededLinearConfig};
//!
//! #[derive(Module, Debug)]
//! struct Net<B: morphogen_engine::burn::tensor::backend::Backend> {
//!     fc: SeededLinear<B>,
//! }
//! seeded_model!(Net { fc });
//!
//! type B = NdArray;
//! let device = Default::default();
//! let net = |device| Net::<B> { fc: SeededLinearConfig::new(4, 6).with_num_seeds(3).init(device) };
//! let mut model = net(&device);
//! model.fc.request_germination(1, "residual_mlp", "fixed_ramp")?;
//!
//! let dir = std::env::temp_dir().join(format!("morphogen-doc-{}", std::process::id()));
//! let checkpoints = CheckpointDir::open(&dir)?;
//! let saved = checkpoints.save(&Snapshot::of(&model)?.with_progress(1, 10))?;
//!
//! let mut fresh = net(&device); // no bank allocated yet
//! let checkpoint = Checkpoint::read(&saved.path)?;
//! checkpoint.restore(&mut fresh)?;
//! assert_eq!(fresh.fc.core.table(), model.fc.core.table());
//! assert_eq!(checkpoint.progress().step, 10);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod error;
mod export;
mod io;
mod legacy;
pub mod manifest;
mod paths;
mod residual;
mod restore;
mod seedstate;
mod snapshot;
mod store;
mod tensor;

pub use error::CheckpointError;
pub use export::{export_pytorch, import_pytorch, ExportReport, ImportReport, EXPORT_FORMAT, IDENTITY_HOST};
pub use io::{sha256_hex, write_checkpoint, Checkpoint, MANIFEST_FILE, MANIFEST_SUM_FILE, TEMP_PREFIX, TENSOR_FILE};
pub use manifest::{Manifest, Progress, RngState, SCHEMA_VERSION};
pub use restore::STATE_COLUMNS;
pub use snapshot::{Snapshot, GRAFT_PREFIX, MODEL_PREFIX, OPTIMIZER_TENSOR};
pub use store::{active_seeds, CheckpointDir, Entry, Goal, Quarantined, Retention, Rollback, Saved, QUARANTINE_DIR};
pub use tensor::{StoredTensor, TensorMap};
