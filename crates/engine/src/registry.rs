//! A named, validated list of specs: the shared shape of the blueprint and strategy registries.

use morphogen_contracts::MorphogenError;
use serde::{Deserialize, Serialize};

/// What a registry holds: a named spec that can check itself.
pub trait Spec {
    /// The name requests use.
    fn name(&self) -> &str;
    /// Checks the spec is usable.
    fn validate(&self) -> Result<(), MorphogenError>;
}

/// Specs looked up by name; ids are positions in registration order, stable for the registry's
/// life (ids are what the seed-state columns store).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registry<T> {
    specs: Vec<T>,
}

impl<T: Spec> Registry<T> {
    /// A registry of already validated specs.
    pub fn from_specs(specs: Vec<T>) -> Result<Self, MorphogenError> {
        specs.iter().try_for_each(T::validate)?;
        Ok(Self { specs })
    }

    /// Adds (or replaces, by name) a spec after validating it.
    pub fn register(mut self, spec: T) -> Result<Self, MorphogenError> {
        spec.validate()?;
        match self.specs.iter_mut().find(|s| s.name() == spec.name()) {
            Some(existing) => *existing = spec,
            None => self.specs.push(spec),
        }
        Ok(self)
    }

    /// Id of the named spec.
    pub fn id(&self, name: &str) -> Option<usize> {
        self.specs.iter().position(|s| s.name() == name)
    }

    /// The spec with this id.
    pub fn get(&self, id: usize) -> &T {
        &self.specs[id]
    }

    /// Every spec, in id order.
    pub fn specs(&self) -> &[T] {
        &self.specs
    }

    /// Registered names, in id order.
    pub fn names(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.name().to_string()).collect()
    }
}
