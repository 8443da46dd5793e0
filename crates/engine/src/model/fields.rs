//! What `#[derive(SeededModel)]` expands to: each field wrapped in a `Field` and asked to
//! `visit` itself. A field whose type implements `SeededModel` visits its layers under its
//! name; any other field does nothing. The choice is made by *autoref-based specialization*:
//! `(&Field::new(&self.x)).visit(..)` finds `SeededField::visit` (implemented for `Field<T>`
//! where `T: SeededModel<B>`, taking `&self`) at the first step of method lookup, and only when
//! that impl does not apply takes one more reference and finds `UnseededField::visit`
//! (implemented for `&Field<T>`, every `T`). The field types are concrete in the derived impl
//! (`Linear<B>`, `Vec<Block<B>>`), so the compiler can decide, even with `B` generic. See
//! docs/adr/0007-derived-seeded-models.md.

/// The items the derive names; not part of the public API.
pub mod derive_support {
    use super::super::{visit_child, visit_child_mut, SeedControl, SeededModel};
    use burn::tensor::backend::Backend;
    use std::marker::PhantomData;

    /// A field of a model, for the derive to visit.
    pub struct Field<'a, B, T> {
        value: &'a T,
        backend: PhantomData<fn() -> B>,
    }

    impl<'a, B, T> Field<'a, B, T> {
        /// Wraps a field.
        pub fn new(value: &'a T) -> Self {
            Self { value, backend: PhantomData }
        }
    }

    /// Chosen for fields that are models: visits their layers under the field's name.
    pub trait SeededField<B: Backend> {
        /// Visits the field's layers under `segment`.
        fn visit(&self, segment: &str, f: &mut dyn FnMut(&str, &dyn SeedControl<B>));
    }

    impl<B: Backend, T: SeededModel<B>> SeededField<B> for Field<'_, B, T> {
        fn visit(&self, segment: &str, f: &mut dyn FnMut(&str, &dyn SeedControl<B>)) {
            visit_child(segment, self.value, f)
        }
    }

    /// Chosen for every other field: nothing to visit.
    pub trait UnseededField<B: Backend> {
        /// Does nothing.
        fn visit(&self, _segment: &str, _f: &mut dyn FnMut(&str, &dyn SeedControl<B>)) {}
    }

    impl<B: Backend, T> UnseededField<B> for &Field<'_, B, T> {}

    /// A field of a model, mutably, for the derive to visit.
    pub struct FieldMut<'a, B, T> {
        value: &'a mut T,
        backend: PhantomData<fn() -> B>,
    }

    impl<'a, B, T> FieldMut<'a, B, T> {
        /// Wraps a field.
        pub fn new(value: &'a mut T) -> Self {
            Self { value, backend: PhantomData }
        }
    }

    /// [`SeededField`], mutably.
    pub trait SeededFieldMut<B: Backend> {
        /// Visits the field's layers under `segment`, mutably.
        fn visit_mut(&mut self, segment: &str, f: &mut dyn FnMut(&str, &mut dyn SeedControl<B>));
    }

    impl<B: Backend, T: SeededModel<B>> SeededFieldMut<B> for FieldMut<'_, B, T> {
        fn visit_mut(&mut self, segment: &str, f: &mut dyn FnMut(&str, &mut dyn SeedControl<B>)) {
            visit_child_mut(segment, self.value, f)
        }
    }

    /// [`UnseededField`], mutably.
    pub trait UnseededFieldMut<B: Backend> {
        /// Does nothing.
        fn visit_mut(&mut self, _segment: &str, _f: &mut dyn FnMut(&str, &mut dyn SeedControl<B>)) {}
    }

    impl<B: Backend, T> UnseededFieldMut<B> for &mut FieldMut<'_, B, T> {}
}
