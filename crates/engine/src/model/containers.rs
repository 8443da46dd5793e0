//! [`SeededModel`] through containers: a `Vec` or array of models is a model whose elements sit
//! at their indices (`blocks.0.fc1`), an `Option` or `Box` is its content at the same path
//! (nothing for `None`), as in Burn's record paths.

use super::{visit_child, visit_child_mut, SeedControl, SeededModel};
use burn::tensor::backend::Backend;

impl<B: Backend, T: SeededModel<B>> SeededModel<B> for Vec<T> {
    fn visit_seeded(&self, f: &mut dyn FnMut(&str, &dyn SeedControl<B>)) {
        self.as_slice().visit_seeded(f)
    }

    fn visit_seeded_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn SeedControl<B>)) {
        self.as_mut_slice().visit_seeded_mut(f)
    }
}

impl<B: Backend, T: SeededModel<B>, const N: usize> SeededModel<B> for [T; N] {
    fn visit_seeded(&self, f: &mut dyn FnMut(&str, &dyn SeedControl<B>)) {
        self.as_slice().visit_seeded(f)
    }

    fn visit_seeded_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn SeedControl<B>)) {
        self.as_mut_slice().visit_seeded_mut(f)
    }
}

/// Elements at their indices: what `Vec` and arrays share.
impl<B: Backend, T: SeededModel<B>> SeededModel<B> for [T] {
    fn visit_seeded(&self, f: &mut dyn FnMut(&str, &dyn SeedControl<B>)) {
        for (index, element) in self.iter().enumerate() {
            visit_child(&index.to_string(), element, f);
        }
    }

    fn visit_seeded_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn SeedControl<B>)) {
        for (index, element) in self.iter_mut().enumerate() {
            visit_child_mut(&index.to_string(), element, f);
        }
    }
}

impl<B: Backend, T: SeededModel<B>> SeededModel<B> for Option<T> {
    fn visit_seeded(&self, f: &mut dyn FnMut(&str, &dyn SeedControl<B>)) {
        if let Some(model) = self {
            model.visit_seeded(f);
        }
    }

    fn visit_seeded_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn SeedControl<B>)) {
        if let Some(model) = self {
            model.visit_seeded_mut(f);
        }
    }
}

impl<B: Backend, T: SeededModel<B> + ?Sized> SeededModel<B> for Box<T> {
    fn visit_seeded(&self, f: &mut dyn FnMut(&str, &dyn SeedControl<B>)) {
        (**self).visit_seeded(f)
    }

    fn visit_seeded_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn SeedControl<B>)) {
        (**self).visit_seeded_mut(f)
    }
}
