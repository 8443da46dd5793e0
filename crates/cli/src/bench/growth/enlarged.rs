//! The enlarged variant's host: the same preset with its size parameter turned up until its
//! trainable parameter count is closest to a target, found by building candidates and counting
//! their parameters (no per-preset formula to keep in step with the presets).

use crate::error::CliError;

use morphogen::trainer::{ModelConfig, ModelKind};

/// The name of `kind`'s size parameter, as the config and the flags spell it.
pub fn size_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Mlp => "hidden",
        ModelKind::Cnn => "channels",
        ModelKind::Resnet => "width",
        ModelKind::Transformer => "d_model",
    }
}

/// The value of `config`'s size parameter (the CNN's: its first conv's channels).
pub fn size(config: &ModelConfig) -> usize {
    match config.kind {
        ModelKind::Mlp => config.hidden,
        ModelKind::Cnn => config.channels[0],
        ModelKind::Resnet => config.width,
        ModelKind::Transformer => config.d_model,
    }
}

/// `config` with its size parameter set to `size`: the CNN's second conv keeps its ratio to the
/// first (rounded), the transformer's `size` is a multiple of its heads.
fn with_size(config: &ModelConfig, size: usize) -> ModelConfig {
    let mut config = config.clone();
    match config.kind {
        ModelKind::Mlp => config.hidden = size,
        ModelKind::Cnn => {
            let [c1, c2] = config.channels;
            config.channels = [size, ((size * c2) as f64 / c1 as f64).round().max(1.0) as usize];
        }
        ModelKind::Resnet => config.width = size,
        ModelKind::Transformer => config.d_model = size,
    }
    config
}

/// How far apart candidate sizes are: the transformer's heads must divide `d_model`.
fn size_step(config: &ModelConfig) -> usize {
    match config.kind {
        ModelKind::Transformer => config.heads,
        _ => 1,
    }
}

/// `base` enlarged: of `base` and every larger size up to the first whose model has at least
/// `target` parameters (as `count` counts them), the one closest to `target` (the smaller on a
/// tie). Parameters grow with the size, so the search ends.
pub fn enlarged(
    base: &ModelConfig,
    target: usize,
    count: impl Fn(&ModelConfig) -> Result<usize, CliError>,
) -> Result<ModelConfig, CliError> {
    let mut below = (base.clone(), count(base)?);
    while below.1 < target {
        let candidate = with_size(base, size(&below.0) + size_step(base));
        let params = count(&candidate)?;
        if params >= target {
            let closer = params - target < target - below.1;
            return Ok(if closer { candidate } else { below.0 });
        }
        below = (candidate, params);
    }
    Ok(below.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::once::trainable_params;
    use morphogen::burn::backend::{Autodiff, NdArray};
    use morphogen::trainer::{ImageClassification, NextCharacter};

    type B = Autodiff<NdArray<f32>>;

    fn params(config: &ModelConfig) -> Result<usize, CliError> {
        let device = Default::default();
        Ok(match config.kind {
            ModelKind::Transformer => {
                trainable_params(&config.transformer::<B>(&NextCharacter { vocab: 11, context: 8 }, &device)?)
            }
            _ => trainable_params(&config.mlp::<B>(&ImageClassification { shape: [1, 8, 8], classes: 10 }, &device)?),
        })
    }

    #[test]
    fn the_search_lands_on_the_size_with_the_target_count() {
        let base = ModelConfig { hidden: 16, ..ModelConfig::default() };
        assert_eq!(enlarged(&base, params(&base).unwrap(), params).unwrap(), base);
        let bigger = with_size(&base, 23);
        let found = enlarged(&base, params(&bigger).unwrap() + 3, params).unwrap();
        assert_eq!(found.hidden, 23);
        // Half-way past 23 the next size is closer.
        let step = params(&with_size(&base, 24)).unwrap() - params(&bigger).unwrap();
        assert_eq!(enlarged(&base, params(&bigger).unwrap() + step / 2 + 1, params).unwrap().hidden, 24);
    }

    #[test]
    fn transformer_sizes_stay_multiples_of_the_heads() {
        let base =
            ModelConfig { kind: ModelKind::Transformer, layers: 1, d_model: 8, heads: 4, ..ModelConfig::default() };
        let target = params(&base).unwrap() * 3;
        let found = enlarged(&base, target, params).unwrap();
        assert_eq!(found.d_model % 4, 0);
        assert!(found.d_model > 8, "{}", found.d_model);
        let miss = params(&found).unwrap().abs_diff(target);
        for other in [found.d_model - 4, found.d_model + 4] {
            assert!(params(&with_size(&base, other)).unwrap().abs_diff(target) >= miss, "{other} is closer");
        }
    }

    #[test]
    fn the_cnn_keeps_its_channel_ratio() {
        let base = ModelConfig { kind: ModelKind::Cnn, channels: [8, 16], ..ModelConfig::default() };
        assert_eq!(with_size(&base, 11).channels, [11, 22]);
    }
}
