//! The Burn-only baseline of `docs/benchmarks.md`: the CNN, ResNet and transformer presets' host
//! networks written with plain `burn::nn` layers (no seeds, nothing of morphogen's in the step)
//! and trained by the simplest Burn loop: data resident on the device, batches gathered there,
//! Adam, no host read until the epoch ends. What `morphogen train` costs beyond this is ours;
//! what this costs beyond PyTorch is Burn's.
//!
//! Run: `cargo run --release -p morphogen --example burn_baseline [--features cuda] -- resnet 3`
//! (or `cnn`, `transformer`; then optionally the epochs, default 3, and how many examples of each split
//! to use, default all). Fashion-MNIST comes from
//! `MORPHOGEN_FASHION_MNIST` or Debian's folder, Shakespeare from `MORPHOGEN_SHAKESPEARE` or
//! `data/shakespeare/texts`; CubeCL's kernels are kept in `MORPHOGEN_KERNEL_CACHE` when set.

use morphogen::burn::data::dataset::Dataset;
use morphogen::burn::module::{AutodiffModule, Module};
use morphogen::burn::nn::attention::{
    generate_autoregressive_mask, MhaInput, MultiHeadAttention, MultiHeadAttentionConfig,
};
use morphogen::burn::nn::conv::{Conv2d, Conv2dConfig};
use morphogen::burn::nn::loss::CrossEntropyLossConfig;
use morphogen::burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use morphogen::burn::nn::{
    BatchNorm, BatchNormConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig,
    PaddingConfig2d,
};
use morphogen::burn::optim::{AdamConfig, GradientsParams, Optimizer};
use morphogen::burn::tensor::activation::{gelu, relu};
use morphogen::burn::tensor::backend::Backend;
use morphogen::burn::tensor::{Device, Int, Tensor, TensorData};
use morphogen::trainer::{fashion_mnist, ModelConfig, TextCorpus, FASHION_MNIST_DIR, SHAKESPEARE_DIR};
use std::time::Instant;

#[cfg(feature = "cuda")]
type Inner = morphogen::CubeCuda;
#[cfg(not(feature = "cuda"))]
type Inner = morphogen::burn::backend::NdArray;
type Train = morphogen::burn::backend::Autodiff<Inner>;

/// Examples per step, as the presets train.
const BATCH: usize = 128;
/// Examples per validation pass, as `[trainer] eval_batch_size`.
const EVAL_BATCH: usize = 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let epochs = args.get(1).map(|e| e.parse()).transpose()?.unwrap_or(3);
    let limit = args.get(2).map(|n| n.parse()).transpose()?.unwrap_or(usize::MAX);
    let config = ModelConfig::default();
    // Where `morphogen train` keeps CubeCL's compiled kernels: a warm cache makes both start alike
    // (the CPU build compiles none).
    #[cfg(feature = "cuda")]
    if let Some(dir) = std::env::var_os("MORPHOGEN_KERNEL_CACHE") {
        morphogen::persist_kernel_caches(dir.as_ref());
    }
    let device = Default::default();
    match args.first().map_or("resnet", String::as_str) {
        preset @ ("resnet" | "cnn") => {
            let dir = std::env::var("MORPHOGEN_FASHION_MNIST").unwrap_or(FASHION_MNIST_DIR.into());
            let (train, valid) = fashion_mnist(dir.as_ref())?;
            let upload = |set: &morphogen::trainer::ImageSet| {
                let labels = set.labels.iter().map(|&l| l as i64).collect();
                (set.images.clone(), [set.labels.len(), set.pixels()], labels)
            };
            let classes = train.classes;
            let (train, valid) = (upload(&train.take(limit)), upload(&valid.take(limit)));
            match preset {
                "cnn" => run(Cnn::new(config.channels, classes, &device), train, valid, epochs, &device),
                _ => run(ResNet::new(config.width, classes, &device), train, valid, epochs, &device),
            }
        }
        "transformer" => {
            let dir = std::env::var("MORPHOGEN_SHAKESPEARE").unwrap_or(SHAKESPEARE_DIR.into());
            let corpus = TextCorpus::read(dir.as_ref())?;
            let (train, valid) = corpus.split(config.context, 0.1)?;
            let upload = |windows: &morphogen::trainer::TextWindows| {
                let rows: Vec<Vec<u32>> = (0..windows.len()).filter_map(|i| Some(windows.get(i)?.tokens)).collect();
                let inputs = rows.iter().flat_map(|w| w[..config.context].iter().map(|&t| t as f32)).collect();
                let targets = rows.iter().flat_map(|w| w[1..].iter().map(|&t| t as i64)).collect();
                (inputs, [rows.len(), config.context], targets)
            };
            let model = Transformer::new(&config, corpus.vocabulary.len(), &device);
            run(model, upload(&train.take(limit)), upload(&valid.take(limit)), epochs, &device);
        }
        other => return Err(format!("unknown model `{other}`: use cnn, resnet or transformer").into()),
    }
    Ok(())
}

/// A network that maps a batch of inputs `[n, features]` to logits `[rows, classes]`, one row
/// per target (one per image, or one per character).
trait Net<B: Backend>: Module<B> {
    fn logits(&self, inputs: Tensor<B, 2>) -> Tensor<B, 2>;
}

/// One split resident on the device: inputs `[n, features]`, targets `[n, per-example]`.
struct Resident<B: Backend> {
    inputs: Tensor<B, 2>,
    targets: Tensor<B, 2, Int>,
}

/// Host data of one split: the inputs, their shape, and the targets (same row count).
type HostSplit = (Vec<f32>, [usize; 2], Vec<i64>);

impl<B: Backend> Resident<B> {
    fn upload((inputs, shape, targets): HostSplit, device: &B::Device) -> Self {
        let per_row = targets.len() / shape[0];
        Self {
            inputs: Tensor::from_data(TensorData::new(inputs, shape), device),
            targets: Tensor::from_data(TensorData::new(targets, [shape[0], per_row]), device),
        }
    }

    fn len(&self) -> usize {
        self.inputs.dims()[0]
    }

    /// The inputs and flattened targets of the rows at `indices`.
    fn rows(&self, indices: Tensor<B, 1, Int>) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
        let targets = self.targets.clone().select(0, indices.clone());
        (self.inputs.clone().select(0, indices), targets.flatten(0, 1))
    }
}

/// Trains `model` for `epochs`, printing each epoch's seconds, training loss and validation
/// accuracy, then the median epoch.
fn run<M>(mut model: M, train: HostSplit, valid: HostSplit, epochs: usize, device: &Device<Train>)
where
    M: Net<Train> + AutodiffModule<Train>,
    M::InnerModule: Net<Inner>,
{
    let started = Instant::now();
    let train = Resident::<Train>::upload(train, device);
    let valid = Resident::<Inner>::upload(valid, device);
    let mut optim = AdamConfig::new().init();
    let mut times = Vec::new();
    for epoch in 1..=epochs {
        let start = Instant::now();
        let (trained, loss) = train_epoch(model, &mut optim, &train, epoch as u64);
        model = trained;
        let accuracy = validate(&model.valid(), &valid);
        let seconds = start.elapsed().as_secs_f64();
        times.push(seconds);
        println!("epoch {epoch}: {seconds:.3} s, train loss {loss:.4}, val acc {accuracy:.4}");
    }
    println!("run {:.2} s; {}", started.elapsed().as_secs_f64(), typical(&times));
}

/// One pass over `data` in a permutation seeded by `epoch`; the mean step loss, read once.
fn train_epoch<M, O>(mut model: M, optim: &mut O, data: &Resident<Train>, epoch: u64) -> (M, f32)
where
    M: Net<Train> + AutodiffModule<Train>,
    O: Optimizer<M, Train>,
{
    let device = data.inputs.device();
    let order =
        Tensor::<Train, 1, Int>::from_data(TensorData::new(permutation(data.len(), epoch), [data.len()]), &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut total = Tensor::<Inner, 1>::zeros([1], &device);
    let steps = data.len().div_ceil(BATCH);
    for step in 0..steps {
        let indices = order.clone().slice(step * BATCH..((step + 1) * BATCH).min(data.len()));
        let (inputs, targets) = data.rows(indices);
        let loss = loss_fn.forward(model.logits(inputs), targets);
        total = total + loss.clone().inner();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
    }
    (model, total.into_scalar() / steps as f32)
}

/// Accuracy over `data`, `EVAL_BATCH` rows at a time, counted on the device and read once.
fn validate<M: Net<Inner>>(model: &M, data: &Resident<Inner>) -> f32 {
    let device = data.inputs.device();
    let mut correct = Tensor::<Inner, 1, Int>::zeros([1], &device);
    let mut rows = 0;
    for start in (0..data.len()).step_by(EVAL_BATCH) {
        let end = (start + EVAL_BATCH).min(data.len());
        let (inputs, targets) = data.rows(Tensor::arange(start as i64..end as i64, &device));
        rows += targets.dims()[0];
        let predicted = model.logits(inputs).argmax(1).flatten(0, 1);
        correct = correct + predicted.equal(targets).int().sum();
    }
    correct.into_scalar() as f32 / rows as f32
}

/// `0..n` shuffled by a xorshift generator seeded with `seed` (Fisher-Yates).
fn permutation(n: usize, seed: u64) -> Vec<i64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut order: Vec<i64> = (0..n as i64).collect();
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    order
}

/// "typical epoch X s": the median of the epochs after the first (which compiles and tunes).
fn typical(times: &[f64]) -> String {
    let mut later = times.get(1..).filter(|t| !t.is_empty()).unwrap_or(times).to_vec();
    later.sort_by(f64::total_cmp);
    format!("typical epoch {:.3} s", later[later.len() / 2])
}

/// The CNN preset's host: two 3x3 convs, each followed by ReLU and 2x2 max pooling, then a head.
#[derive(Module, Debug)]
struct Cnn<B: Backend> {
    conv1: Conv2d<B>,
    conv2: Conv2d<B>,
    pool: MaxPool2d,
    head: Linear<B>,
}

impl<B: Backend> Cnn<B> {
    fn new([c1, c2]: [usize; 2], classes: usize, device: &B::Device) -> Self {
        let same = |io| Conv2dConfig::new(io, [3, 3]).with_padding(PaddingConfig2d::Same).init(device);
        Self {
            conv1: same([1, c1]),
            conv2: same([c1, c2]),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            head: LinearConfig::new(c2 * 7 * 7, classes).init(device),
        }
    }
}

impl<B: Backend> Net<B> for Cnn<B> {
    fn logits(&self, inputs: Tensor<B, 2>) -> Tensor<B, 2> {
        let n = inputs.dims()[0];
        let x = self.pool.forward(relu(self.conv1.forward(inputs.reshape([n, 1, 28, 28]))));
        let x = self.pool.forward(relu(self.conv2.forward(x)));
        self.head.forward(x.flatten(1, 3))
    }
}

/// The ResNet preset's host: a 3x3 stem, three stages of two residual blocks, pooling, a head.
#[derive(Module, Debug)]
struct ResNet<B: Backend> {
    stem: Conv2d<B>,
    stem_norm: BatchNorm<B>,
    blocks: Vec<Block<B>>,
    pool: AdaptiveAvgPool2d,
    head: Linear<B>,
}

/// `relu(norm2(conv2(relu(norm1(conv1(x))))) + shortcut(x))`.
#[derive(Module, Debug)]
struct Block<B: Backend> {
    conv1: Conv2d<B>,
    norm1: BatchNorm<B>,
    conv2: Conv2d<B>,
    norm2: BatchNorm<B>,
    projection: Option<(Conv2d<B>, BatchNorm<B>)>,
}

/// A `kernel`x`kernel` conv without bias (batch norm follows), padded to keep the size at stride 1.
fn conv(io: [usize; 2], kernel: usize, stride: usize) -> Conv2dConfig {
    let padding = kernel / 2;
    Conv2dConfig::new(io, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
        .with_bias(false)
}

impl<B: Backend> ResNet<B> {
    fn new(width: usize, classes: usize, device: &B::Device) -> Self {
        let mut blocks = Vec::new();
        let mut channels = width;
        for stage in [width, 2 * width, 4 * width] {
            for block in 0..2 {
                let stride = if block == 0 && stage != channels { 2 } else { 1 };
                let projection = (stride != 1 || channels != stage).then(|| {
                    (conv([channels, stage], 1, stride).init(device), BatchNormConfig::new(stage).init(device))
                });
                blocks.push(Block {
                    conv1: conv([channels, stage], 3, stride).init(device),
                    norm1: BatchNormConfig::new(stage).init(device),
                    conv2: conv([stage, stage], 3, 1).init(device),
                    norm2: BatchNormConfig::new(stage).init(device),
                    projection,
                });
                channels = stage;
            }
        }
        Self {
            stem: conv([1, width], 3, 1).init(device),
            stem_norm: BatchNormConfig::new(width).init(device),
            blocks,
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            head: LinearConfig::new(channels, classes).init(device),
        }
    }
}

impl<B: Backend> Net<B> for ResNet<B> {
    fn logits(&self, inputs: Tensor<B, 2>) -> Tensor<B, 2> {
        let n = inputs.dims()[0];
        let mut x = relu(self.stem_norm.forward(self.stem.forward(inputs.reshape([n, 1, 28, 28]))));
        for b in &self.blocks {
            let y = relu(b.norm1.forward(b.conv1.forward(x.clone())));
            let y = b.norm2.forward(b.conv2.forward(y));
            let shortcut = match &b.projection {
                Some((conv, norm)) => norm.forward(conv.forward(x)),
                None => x,
            };
            x = relu(y + shortcut);
        }
        self.head.forward(self.pool.forward(x).flatten(1, 3))
    }
}

/// The transformer preset's host: embeddings, pre-norm causal blocks, a final norm and head.
#[derive(Module, Debug)]
struct Transformer<B: Backend> {
    embed: Embedding<B>,
    position: Embedding<B>,
    blocks: Vec<Layer<B>>,
    norm: LayerNorm<B>,
    head: Linear<B>,
}

/// `x + attn(norm1(x))`, then `x + fc2(gelu(fc1(norm2(x))))`.
#[derive(Module, Debug)]
struct Layer<B: Backend> {
    norm1: LayerNorm<B>,
    attn: MultiHeadAttention<B>,
    norm2: LayerNorm<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
}

impl<B: Backend> Transformer<B> {
    fn new(config: &ModelConfig, vocab: usize, device: &B::Device) -> Self {
        let d = config.d_model;
        let block = || Layer {
            norm1: LayerNormConfig::new(d).init(device),
            attn: MultiHeadAttentionConfig::new(d, config.heads).with_dropout(0.0).init(device),
            norm2: LayerNormConfig::new(d).init(device),
            fc1: LinearConfig::new(d, 4 * d).init(device),
            fc2: LinearConfig::new(4 * d, d).init(device),
        };
        Self {
            embed: EmbeddingConfig::new(vocab, d).init(device),
            position: EmbeddingConfig::new(config.context, d).init(device),
            blocks: (0..config.layers).map(|_| block()).collect(),
            norm: LayerNormConfig::new(d).init(device),
            head: LinearConfig::new(d, vocab).init(device),
        }
    }
}

impl<B: Backend> Net<B> for Transformer<B> {
    fn logits(&self, inputs: Tensor<B, 2>) -> Tensor<B, 2> {
        let [n, seq] = inputs.dims();
        let device = inputs.device();
        let positions = Tensor::<B, 1, Int>::arange(0..seq as i64, &device).reshape([1, seq]);
        let mut x = self.embed.forward(inputs.int()) + self.position.forward(positions);
        let mask = generate_autoregressive_mask::<B>(n, seq, &device);
        for b in &self.blocks {
            let attended = b.attn.forward(MhaInput::self_attn(b.norm1.forward(x.clone())).mask_attn(mask.clone()));
            x = x + attended.context;
            x = x.clone() + b.fc2.forward(gelu(b.fc1.forward(b.norm2.forward(x))));
        }
        let logits = self.head.forward(self.norm.forward(x));
        let vocab = logits.dims()[2];
        logits.reshape([n * seq, vocab])
    }
}
