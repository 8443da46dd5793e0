//! Seed visualization for morphogen runs, read from the run folder `morphogen train` writes.
//!
//! - [`Server`]: the live dashboard, a local web page (embedded in the binary, no external
//!   assets) with the seed lattice, health heatmaps, training curves and the event log,
//!   following a run while it trains by polling a JSON API.
//! - [`write_report`]: the same page as one self-contained HTML file, data inlined.
//! - [`write_policy_report`]: the report of a policy folder (`morphogen controller
//!   train-policy`, read as a [`PolicyFolder`]): its manifest, training curves per episode and
//!   feature importance, as one HTML file of inline SVG.
//! - [`WatchView`] and [`watch`]: a terminal view (ratatui) of stages per layer, the lattice in
//!   miniature and the latest events.
//!
//! Models of many layers are shown block by block: [`LayerGroup`]s gather the layers that share
//! a parent path (`blocks.3` for `blocks.3.fc1`).
//!
//! All three read a [`Run`] (or a [`RunSet`], a folder of runs) through [`JsonlTail`]s: files
//! re-read incrementally by offset, malformed lines skipped and counted, an unfinished last line
//! left for later. [`LayersLog`] writes the per-seed state they need (`layers.jsonl`, in
//! [`EpochLayers`] columns) from a trainer observer. See `docs/dashboard.md`.
#![warn(missing_docs)]

mod demo;
mod epoch_line;
mod error;
mod groups;
#[cfg(test)]
mod headless;
mod html;
mod layers;
mod page;
mod policy_folder;
mod policy_report;
mod run;
mod server;
mod svg_chart;
mod tail;
mod view;
mod watch;

pub use demo::DemoRun;
pub use epoch_line::EpochLine;
pub use error::DashboardError;
pub use groups::{group_of, layer_groups, LayerGroup};
pub use layers::{EpochLayers, LayerColumns, LayersLog};
pub use page::{live_page, report_page, write_report, STAGE_COLORS};
pub use policy_folder::{PolicyEpisode, PolicyFolder, PolicyPhase};
pub use policy_report::{policy_report_page, write_policy_report};
pub use run::{Run, RunSet, RUN_FILES};
pub use server::{router, Server, CONNECTION_LIMIT, HEADER_TIMEOUT, MAX_REQUEST_HEAD};
pub use tail::{FileState, JsonlTail, Record};
pub use view::{
    heatmaps, lattice, lifecycle, EventFilter, EventRow, Heatmap, LatticeLayer, RunView, SeedEpoch, SeedLifecycle,
    HEATMAP_BINS,
};
pub use watch::{watch, WatchView};
