//! Burn's `Module` plumbing: the record is [`SeedParams`] and caches are derived again on load.
//! Run-time state (telemetry window, kernel guard) moves with [`Module::to_device`] and starts
//! fresh in a `fork`, `valid()` or `from_inner` copy.

use super::{SeedCore, SeedParams};
use crate::bank::{BankPage, BlueprintBank};
use burn::module::{
    AutodiffModule, Content, Devices, HasAutodiffModule, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper,
    ModuleVisitor,
};
use burn::tensor::backend::{AutodiffBackend, Backend};

impl<B: Backend> Module<B> for SeedCore<B> {
    type Record = <SeedParams<B> as Module<B>>::Record;

    fn collect_devices(&self, devices: Devices<B>) -> Devices<B> {
        self.params.collect_devices(devices)
    }

    fn fork(self, device: &B::Device) -> Self {
        let params = self.params.clone().fork(device);
        self.with_params(params)
    }

    fn to_device(self, device: &B::Device) -> Self {
        let window = self.shared.telemetry().clone().moved_to(device);
        let guard = self.shared.guard().clone();
        let params = self.params.clone().to_device(device);
        SeedCore::assemble(self.setup.clone(), params, self.table.clone(), Some((window, guard)))
    }

    fn visit<V: ModuleVisitor<B>>(&self, visitor: &mut V) {
        self.params.visit(visitor)
    }

    fn map<M: ModuleMapper<B>>(mut self, mapper: &mut M) -> Self {
        self.params = self.params.map(mapper);
        self
    }

    /// Loads state and banks from a record, re-creating lazily allocated bank pages the fresh
    /// module does not have yet, then rebuilds the host table from the loaded columns.
    fn load_record(self, record: Self::Record) -> Self {
        let device = self.device();
        let state = self.params.state.clone().load_record(record.state);
        let banks = record
            .banks
            .into_iter()
            .map(|bank| {
                bank.map(|bank| BlueprintBank {
                    pages: bank
                        .pages
                        .into_iter()
                        .map(|page| BankPage {
                            params: page
                                .params
                                .into_iter()
                                .map(|p| p.map(|t| t.to_device(&device).detach().require_grad()))
                                .collect(),
                        })
                        .collect(),
                })
            })
            .collect();
        let (table, _) = state.read();
        SeedCore::assemble(self.setup.clone(), SeedParams { state, banks }, table, None)
    }

    fn into_record(self) -> Self::Record {
        self.params.clone().into_record()
    }
}

impl<B: AutodiffBackend> AutodiffModule<B> for SeedCore<B> {
    type InnerModule = SeedCore<B::InnerBackend>;

    fn valid(&self) -> Self::InnerModule {
        self.with_params(self.params.valid())
    }

    fn from_inner(module: Self::InnerModule) -> Self {
        let params = SeedParams::from_inner(module.params.clone());
        module.with_params(params)
    }
}

impl<B: AutodiffBackend> HasAutodiffModule<B> for SeedCore<B::InnerBackend> {
    type TrainModule = SeedCore<B>;
}

impl<B: Backend> ModuleDisplayDefault for SeedCore<B> {
    fn content(&self, content: Content) -> Option<Content> {
        let active = self.table.iter().filter(|r| r.stage.holds_blueprint()).count();
        content
            .add_formatted(&format!(
                "SeedCore {{ seeds: {}, chunk: {}, with blueprint: {active} }}",
                self.num_seeds(),
                self.setup.chunks.width()
            ))
            .optional()
    }
}

impl<B: Backend> ModuleDisplay for SeedCore<B> {}
