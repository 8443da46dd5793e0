//! The API every seeded layer type shares, written once: `seeded_layer!(SeededLinear)` gives the
//! layer the lifecycle and inspection methods of its [`SeedCore`](crate::SeedCore) (field
//! `core`) as its own methods, so they show on the layer's rustdoc page, and implements
//! [`SeedControl`](crate::SeedControl) through the layer's own `graft_step`, and
//! [`SeededModel`](trait@crate::SeededModel) as a model of one layer at the empty path.

/// Implements the shared seeded-layer API for `$layer`, which has a `core: SeedCore<B>` field
/// and an inherent `graft_step`. Each method calls the core's method of the same name.
macro_rules! seeded_layer {
    ($layer:ident) => {
        /// The seeds' lifecycle and state; each method is [`SeedCore`](crate::SeedCore)'s of the
        /// same name (the core holds the rest, e.g. the seed table and banks).
        impl<B: Backend> $layer<B> {
            /// The layer's name, used in errors and reports: its path once a model has named it
            /// (see [`SeededModel`](trait@crate::SeededModel)), else its config's name.
            pub fn name(&self) -> &str {
                self.core.name()
            }

            /// Number of seeds.
            pub fn num_seeds(&self) -> usize {
                self.core.num_seeds()
            }

            /// Which output features each seed owns.
            pub fn chunks(&self) -> &$crate::ChunkMap {
                self.core.chunks()
            }

            /// Moves `seed` from DORMANT to GERMINATED with a blueprint and a grafting strategy;
            /// see [`SeedCore::request_germination`](crate::SeedCore::request_germination).
            pub fn request_germination(
                &mut self,
                seed: usize,
                blueprint: &str,
                strategy: &str,
            ) -> Result<(), $crate::MorphogenError> {
                self.core.request_germination(seed, blueprint, strategy)
            }

            /// Germinates many seeds, all or nothing; see
            /// [`SeedCore::request_germinations`](crate::SeedCore::request_germinations).
            pub fn request_germinations(
                &mut self,
                seeds: &[usize],
                blueprint: &str,
                strategy: &str,
            ) -> Result<(), $crate::MorphogenError> {
                self.core.request_germinations(seeds, blueprint, strategy)
            }

            /// Moves `seed` to `to` along a legal edge; see
            /// [`SeedCore::advance_many`](crate::SeedCore::advance_many).
            pub fn advance(&mut self, seed: usize, to: $crate::Stage) -> Result<(), $crate::MorphogenError> {
                self.core.advance(seed, to)
            }

            /// Moves the listed seeds to `to`, all or nothing; see
            /// [`SeedCore::advance_many`](crate::SeedCore::advance_many).
            pub fn advance_many(&mut self, seeds: &[usize], to: $crate::Stage) -> Result<(), $crate::MorphogenError> {
                self.core.advance_many(seeds, to)
            }

            /// Cancels a GERMINATED or TRAINING seed, discarding its blueprint.
            pub fn cancel_germination(&mut self, seed: usize) -> Result<(), $crate::MorphogenError> {
                self.core.cancel_germination(seed)
            }

            /// Sets alpha of GRAFTING seeds by hand.
            pub fn set_alpha(&mut self, seeds: &[usize], alpha: f32) -> Result<(), $crate::MorphogenError> {
                self.core.set_alpha(seeds, alpha)
            }

            /// Forces the listed EVALUATING seeds' contribution off until the next call.
            pub fn set_ablation(&mut self, seeds: &[usize]) -> Result<(), $crate::MorphogenError> {
                self.core.set_ablation(seeds)
            }

            /// Counts an epoch for every seed (time in stage, embargoes).
            pub fn end_epoch(&mut self) {
                self.core.end_epoch()
            }

            /// One seed's state.
            pub fn seed(&self, seed: usize) -> Result<$crate::SeedInfo, $crate::MorphogenError> {
                self.core.seed(seed)
            }

            /// Every seed's state, in one device read.
            pub fn seed_infos(&self) -> Vec<$crate::SeedInfo> {
                self.core.seed_infos()
            }

            /// Per-seed health since the last report, in one device read; resets the window.
            pub fn health_report(&self) -> $crate::LayerHealthReport {
                self.core.health_report()
            }

            /// Bytes of seed state on device (32 a seed).
            pub fn state_bytes(&self) -> usize {
                self.core.state_bytes()
            }

            /// Bytes of blueprint bank parameters on device.
            pub fn bank_bytes(&self) -> usize {
                self.core.bank_bytes()
            }

            /// Bytes of the telemetry window on device.
            pub fn telemetry_bytes(&self) -> usize {
                self.core.telemetry_bytes()
            }

            /// Why this layer left its CubeCL kernels for the tensor path, if it did.
            pub fn kernel_fallback(&self) -> Option<String> {
                self.core.kernel_fallback()
            }

            /// Checks the seeds' invariants, reading the device (debug mode).
            pub fn check_invariants(&self) -> Result<(), $crate::MorphogenError> {
                self.core.check_invariants()
            }
        }

        /// A seeded layer is a model of one layer, at the path its parent gives.
        impl<B: Backend> $crate::SeededModel<B> for $layer<B> {
            fn visit_seeded(&self, f: &mut dyn FnMut(&str, &dyn $crate::SeedControl<B>)) {
                f("", self)
            }
            fn visit_seeded_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn $crate::SeedControl<B>)) {
                f("", self)
            }
        }

        impl<B: Backend> $crate::SeedControl<B> for $layer<B> {
            fn seed_core(&self) -> &$crate::SeedCore<B> {
                &self.core
            }
            fn seed_core_mut(&mut self) -> &mut $crate::SeedCore<B> {
                &mut self.core
            }
            fn graft_step(&mut self, signals: &$crate::GraftSignals<B>) -> Result<(), $crate::MorphogenError> {
                $layer::graft_step(self, signals)
            }
        }
    };
}
pub(crate) use seeded_layer;
