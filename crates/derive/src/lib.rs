//! `#[derive(SeededModel)]`: implements morphogen's `SeededModel` for a model struct by visiting,
//! in declaration order, every field whose type implements it (seeded layers, nested models,
//! and `Vec`, `Option`, arrays and `Box`es of them) and skipping every other field, with no
//! attributes. Each layer is named by its dotted path: field names, and indices for `Vec` and
//! array elements (`blocks.3.mlp.fc1`), as Burn names the record's tensors.
//!
//! Use it through `morphogen` or `morphogen-engine`, which re-export it beside the trait of the
//! same name; how fields are told apart is in docs/adr/0007-derived-seeded-models.md.
#![warn(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use proc_macro_crate::{crate_name, FoundCrate};
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Fields, GenericParam, Ident, Index, Member, TypeParamBound};

/// Implements `SeededModel<B>` for a struct generic over `B: Backend`; see the crate docs.
///
/// A struct with no seeded field gets an implementation that lists no layer.
#[proc_macro_derive(SeededModel)]
pub fn derive_seeded_model(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input).unwrap_or_else(syn::Error::into_compile_error).into()
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let engine = engine_path()?;
    let backend = backend_param(input)?;
    let fields = fields(input)?;
    let segments = fields.iter().map(segment);
    let segments_mut = segments.clone();
    let (members, members_mut) = (fields.iter(), fields.iter());
    let name = &input.ident;
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics #engine::SeededModel<#backend> for #name #type_generics #where_clause {
            fn visit_seeded(&self, visitor: &mut dyn FnMut(&str, &dyn #engine::SeedControl<#backend>)) {
                #[allow(unused_imports)]
                use #engine::__derive::{SeededField as _, UnseededField as _};
                #( (&#engine::__derive::Field::<#backend, _>::new(&self.#members)).visit(#segments, visitor); )*
                let _ = visitor;
            }

            fn visit_seeded_mut(
                &mut self,
                visitor: &mut dyn FnMut(&str, &mut dyn #engine::SeedControl<#backend>),
            ) {
                #[allow(unused_imports)]
                use #engine::__derive::{SeededFieldMut as _, UnseededFieldMut as _};
                #( (&mut #engine::__derive::FieldMut::<#backend, _>::new(&mut self.#members_mut))
                    .visit_mut(#segments_mut, visitor); )*
                let _ = visitor;
            }
        }
    })
}

/// How generated code names the engine: `::morphogen_engine` when the user's crate depends on it
/// (or is it: the engine names itself so with `extern crate self`, which also serves its tests,
/// examples and doc tests, where `crate` would name the test crate), else the `morphogen` facade.
fn engine_path() -> syn::Result<TokenStream2> {
    let found = crate_name("morphogen-engine").or_else(|_| crate_name("morphogen"));
    match found {
        Ok(FoundCrate::Itself) => Ok(quote!(::morphogen_engine)),
        Ok(FoundCrate::Name(name)) => {
            let name = Ident::new(&name, Span::call_site());
            Ok(quote!(::#name))
        }
        Err(_) => Err(syn::Error::new(
            Span::call_site(),
            "derive(SeededModel) needs `morphogen` or `morphogen-engine` among the crate's dependencies",
        )),
    }
}

/// The struct's type parameter bounded by `Backend` (inline or in the where clause).
fn backend_param(input: &DeriveInput) -> syn::Result<Ident> {
    let is_backend = |bound: &TypeParamBound| match bound {
        TypeParamBound::Trait(bound) => bound.path.segments.last().is_some_and(|s| s.ident == "Backend"),
        _ => false,
    };
    let where_bounds = |param: &Ident| {
        input.generics.where_clause.iter().flat_map(|w| &w.predicates).any(|predicate| match predicate {
            syn::WherePredicate::Type(p) => {
                matches!(&p.bounded_ty, syn::Type::Path(t) if t.path.is_ident(param)) && p.bounds.iter().any(is_backend)
            }
            _ => false,
        })
    };
    input
        .generics
        .params
        .iter()
        .find_map(|param| match param {
            GenericParam::Type(t) if t.bounds.iter().any(is_backend) || where_bounds(&t.ident) => Some(t.ident.clone()),
            _ => None,
        })
        .ok_or_else(|| {
            syn::Error::new_spanned(
                &input.ident,
                "derive(SeededModel) needs a type parameter bounded by Backend, as in `struct Model<B: Backend>`",
            )
        })
}

/// The struct's fields, in declaration order.
fn fields(input: &DeriveInput) -> syn::Result<Vec<Member>> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "derive(SeededModel) works on structs only; wrap the enum's variants in a struct or implement SeededModel by hand",
        ));
    };
    Ok(match &data.fields {
        Fields::Named(named) => named.named.iter().filter_map(|f| f.ident.clone()).map(Member::Named).collect(),
        Fields::Unnamed(unnamed) => (0..unnamed.unnamed.len()).map(|i| Member::Unnamed(Index::from(i))).collect(),
        Fields::Unit => Vec::new(),
    })
}

/// A field's path segment: its name (without `r#`) or its index.
fn segment(member: &Member) -> String {
    match member {
        Member::Named(ident) => ident.to_string().trim_start_matches("r#").to_string(),
        Member::Unnamed(index) => index.index.to_string(),
    }
}
