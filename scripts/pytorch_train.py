#!/usr/bin/env python3
"""Trains morphogen's four preset hosts with a plain eager PyTorch loop, timing every epoch.

The PyTorch side of the `morphogen train --backend cuda` comparison (issue 14): the host networks
of the four presets, built as `morphogen train --model mlp|cnn|resnet|transformer` builds them
at their default sizes (no seeds: a dormant seeded layer is the plain layer plus telemetry),
trained on the same data with the same rules:

- data: Fashion-MNIST's four IDX .gz files (pixels / 255, no normalisation; the 60,000 training
  images train, the 10,000 test images validate) or a folder of .txt files (read in file-name
  order, each followed by a newline; vocabulary: the characters sorted by code point; the last
  `--valid-fraction` of the text validates; windows of context + 1 tokens every `context`
  tokens, inputs 0..context, targets 1..=context); `--train-subset`/`--valid-subset` take the
  first N examples, as the CLI's flags do;
- Adam as Burn's `AdamConfig::new()` (betas 0.9, 0.999, eps 1e-5, no weight decay), learning
  rate 1e-3, batch size 128, cross-entropy;
- each epoch a fresh permutation of the training set, seeded per epoch as morphogen's trainer
  seeds it (the rule, not the same order: the generators differ), batches of `--batch-size`
  (the last partial batch kept), the whole training set resident on the device and every batch
  gathered there by index; after every epoch, validation over the whole validation set in order,
  `--valid-batch` (1024, as `[trainer] eval_batch_size`) at a time, in eval mode (batch norm's
  running statistics); the step loss and training accuracy summed on the device, read once an
  epoch;
- the transformer's attention is F.scaled_dot_product_attention (causal) unless
  `--attention manual`, which spells out morphogen's ops (scores, -1e4 mask, softmax, matmul).

Each preset runs in its own process, so its start-up (script start to the end of the first
optimizer step: imports, device initialisation, data load and upload, model build, first step)
is what a user waits for. Times are read after torch.cuda.synchronize(). An epoch is its
training pass plus its validation pass; the median leaves out the first epoch (warm-up). F32
throughout: TF32 is off for matmuls and convolutions unless `--tf32`.

Prints each epoch as it ends, then a markdown table: preset | params | startup s | epoch s
(median) | train s | valid s | val score | peak MiB. `--json FILE` writes every number.

Usage: python3 scripts/pytorch_train.py --model resnet --epochs 3
       python3 scripts/pytorch_train.py --json pytorch.json          (all four presets)
       python3 scripts/pytorch_train.py --model mlp --device cpu --train-subset 2000 --epochs 1
"""
import time

START = time.perf_counter()  # before the heavy imports: they are part of start-up

import argparse
import contextlib
import gzip
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PRESETS = ("mlp", "cnn", "resnet", "transformer")
IMAGE_PRESETS = ("mlp", "cnn", "resnet")


# --- data -------------------------------------------------------------------------------------


def read_idx(path, rank):
    """A gzip-compressed IDX file of unsigned bytes with `rank` dimensions, as a numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    header = 4 + 4 * rank
    if len(data) < header or data[:3] != b"\x00\x00\x08" or data[3] != rank:
        sys.exit(f"{path}: not an IDX file of unsigned bytes with {rank} dimensions")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    values = np.frombuffer(data, dtype=np.uint8, offset=header)
    if values.size != math.prod(dims):
        sys.exit(f"{path}: expected {math.prod(dims)} values after the header, found {values.size}")
    return values.reshape(dims)


def fashion_mnist(folder):
    """(train, valid) as (images [n, 1, 28, 28] float32 in [0, 1], labels [n] int64)."""
    def read(images, labels):
        pixels = read_idx(os.path.join(folder, images), 3)
        classes = read_idx(os.path.join(folder, labels), 1)
        return pixels[:, None].astype(np.float32) / np.float32(255.0), classes.astype(np.int64)

    if not os.path.exists(os.path.join(folder, "train-images-idx3-ubyte.gz")):
        sys.exit(f"no Fashion-MNIST in {folder}: `apt-get install dataset-fashion-mnist` or pass --fashion DIR")
    return (read("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
            read("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"))


def read_utf8(path):
    """The file's bytes decoded strictly as UTF-8, with no newline translation (as Rust reads it)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        sys.exit(f"{path}: not UTF-8 text: invalid byte at offset {e.start}")


def read_corpus(folder):
    """(token ids, vocabulary size) of every .txt file of `folder`, as `TextCorpus::read` makes them."""
    if not os.path.isdir(folder):
        sys.exit(f"no folder {folder}: run scripts/get-shakespeare.sh or pass --shakespeare DIR")
    names = sorted(n for n in os.listdir(folder)
                   if os.path.splitext(n)[1] == ".txt" and os.path.isfile(os.path.join(folder, n)))
    if not names:
        sys.exit(f"no .txt files in {folder}")
    text = "".join(read_utf8(os.path.join(folder, n)) + "\n" for n in names)
    code_points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    vocabulary = np.unique(code_points)  # sorted by code point
    return np.searchsorted(vocabulary, code_points).astype(np.int64), len(vocabulary)


def windows(tokens, start, end, context, limit):
    """[n, context + 1] windows of `tokens[start:end]`, `context` apart, at most `limit` of them."""
    count = min((end - start - 1) // context, limit)
    if count < 1:
        sys.exit(f"a context of {context} needs at least {context + 1} characters in each part of the text")
    index = start + np.arange(count)[:, None] * context + np.arange(context + 1)[None, :]
    return tokens[index]


def text_split(tokens, context, valid_fraction, train_limit, valid_limit):
    """(train, valid) windows: the last `valid_fraction` of the text validates."""
    # valid_fraction is an f32 in the Rust config, widened to f64 for the cut.
    cut = len(tokens) - int(len(tokens) * float(np.float32(valid_fraction)))
    return (windows(tokens, 0, cut, context, train_limit),
            windows(tokens, cut, len(tokens), context, valid_limit))


def limit_of(n):
    """A subset size (0: everything)."""
    return n if n > 0 else sys.maxsize


def load_data(args, device):
    """(train, valid, task) with train and valid as tuples of tensors resident on `device`."""
    if args.model in IMAGE_PRESETS:
        (train_x, train_y), (valid_x, valid_y) = fashion_mnist(args.fashion)
        train = (train_x[:limit_of(args.train_subset)], train_y[:limit_of(args.train_subset)])
        valid = (valid_x[:limit_of(args.valid_subset)], valid_y[:limit_of(args.valid_subset)])
        task = {"kind": "classify", "shape": train_x.shape[1:], "classes": 10}
    else:
        tokens, vocab = read_corpus(args.shakespeare)
        train, valid = text_split(tokens, args.context, args.valid_fraction,
                                  limit_of(args.train_subset), limit_of(args.valid_subset))
        train, valid = (train,), (valid,)
        task = {"kind": "lm", "vocab": vocab, "context": args.context}
    upload = lambda arrays: tuple(torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays)
    return upload(train), upload(valid), task


# --- models -----------------------------------------------------------------------------------


def mlp(args, task):
    """`pixels -> hidden -> hidden -> classes`, relu between (crates/trainer/src/models/mlp.rs)."""
    pixels = math.prod(task["shape"])
    return nn.Sequential(nn.Flatten(), nn.Linear(pixels, args.hidden), nn.ReLU(),
                         nn.Linear(args.hidden, args.hidden), nn.ReLU(), nn.Linear(args.hidden, task["classes"]))


def cnn(args, task):
    """Two 3x3 same convs with relu and 2x2 max pooling, then a linear head (cnn.rs)."""
    c1, c2 = args.channels
    channels, height, width = task["shape"]
    return nn.Sequential(
        nn.Conv2d(channels, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(c2 * (height // 4) * (width // 4), task["classes"]))


def conv_bn(inputs, outputs, kernel, stride):
    """A bias-free conv (padding keeps the size at stride 1) and its batch norm."""
    return nn.Sequential(nn.Conv2d(inputs, outputs, kernel, stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(outputs))


class ResidualBlock(nn.Module):
    """`relu(norm2(conv2(relu(norm1(conv1(x))))) + shortcut(x))` (resnet.rs)."""

    def __init__(self, inputs, outputs, stride):
        super().__init__()
        self.first, self.second = conv_bn(inputs, outputs, 3, stride), conv_bn(outputs, outputs, 3, 1)
        changes_shape = stride != 1 or inputs != outputs
        self.shortcut = conv_bn(inputs, outputs, 1, stride) if changes_shape else nn.Identity()

    def forward(self, x):
        return F.relu(self.second(F.relu(self.first(x))) + self.shortcut(x))


def resnet(args, task):
    """A 3x3 stem, three stages of two blocks (widths w, 2w, 4w; the first block of a wider stage
    strides 2), global average pooling, a linear head (resnet.rs)."""
    w = args.width
    layers, channels = [conv_bn(task["shape"][0], w, 3, 1), nn.ReLU()], w
    for stage_width in (w, 2 * w, 4 * w):
        for block in range(2):
            stride = 2 if block == 0 and stage_width != channels else 1
            layers.append(ResidualBlock(channels, stage_width, stride))
            channels = stage_width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, task["classes"]))


class CausalSelfAttention(nn.Module):
    """Four biased `d -> d` projections; scores `q.k / sqrt(d_head)`, position t sees 0..=t
    (crates/engine/src/attention.rs; no dropout)."""

    def __init__(self, d_model, heads, attention):
        super().__init__()
        self.query, self.key, self.value, self.output = (nn.Linear(d_model, d_model) for _ in range(4))
        self.heads, self.attention = heads, attention

    def forward(self, x):
        batch, seq, d_model = x.shape
        split = lambda t: t.view(batch, seq, self.heads, d_model // self.heads).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        if self.attention == "sdpa":
            context = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # morphogen's ops one by one, the future masked with -1e4 as Burn does
            scores = q @ k.transpose(-2, -1) / math.sqrt(d_model // self.heads)
            future = torch.ones(seq, seq, dtype=torch.bool, device=x.device).triu(1)
            context = scores.masked_fill(future, -1.0e4).softmax(-1) @ v
        return self.output(context.transpose(1, 2).reshape(batch, seq, d_model))


class TransformerBlock(nn.Module):
    """`x + attn(norm1(x))`, then `x + fc2(gelu(fc1(norm2(x))))` with a 4 d_model MLP (transformer.rs)."""

    def __init__(self, d_model, heads, attention):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, heads, attention)
        self.fc1, self.fc2 = nn.Linear(d_model, 4 * d_model), nn.Linear(4 * d_model, d_model)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class Transformer(nn.Module):
    """Token and learned position embeddings, pre-norm causal blocks, a final norm and a head."""

    def __init__(self, args, task):
        super().__init__()
        d, vocab = args.d_model, task["vocab"]
        self.embed, self.position = nn.Embedding(vocab, d), nn.Embedding(task["context"], d)
        self.blocks = nn.Sequential(*(TransformerBlock(d, args.heads, args.attention) for _ in range(args.layers)))
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, tokens):
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        return self.head(self.norm(self.blocks(self.embed(tokens) + self.position(positions))))


def build_model(args, task):
    """The preset `args.model` for `task`."""
    return {"mlp": mlp, "cnn": cnn, "resnet": resnet, "transformer": Transformer}[args.model](args, task)


# --- training ---------------------------------------------------------------------------------


def logits_and_targets(model, batch):
    """`[predictions, classes]` logits and `[predictions]` targets of a batch (a window batch is
    cut into inputs 0..context and targets 1..=context)."""
    if len(batch) == 2:
        images, labels = batch
        return model(images), labels
    (tokens,) = batch
    logits = model(tokens[:, :-1])
    return logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)


def epoch_seed(seed, epoch):
    """The shuffling seed of `epoch` (1-based), as morphogen's `Trainer::epoch_seed` makes it."""
    return (seed ^ (epoch * 0x9E3779B97F4A7C15)) & 0xFFFF_FFFF_FFFF_FFFF


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mixed_precision(args, device):
    """A fresh `torch.autocast` context for each forward pass under `--autocast`, else none."""
    if args.autocast:
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def train_epoch(model, optimizer, train, batch_size, seed, amp, on_first_step=None):
    """One pass in a fresh seeded order; (mean step loss, training accuracy), read once at the end."""
    model.train()
    device = train[0].device
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train[0]), generator=generator).to(device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    predictions, steps = 0, 0
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        with amp():
            logits, targets = logits_and_targets(model, tuple(t[index] for t in train))
            loss = F.cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()
        correct += (logits.detach().argmax(1) == targets).sum()
        predictions, steps = predictions + len(targets), steps + 1
        if on_first_step is not None and steps == 1:
            on_first_step()
    return loss_sum.item() / steps, correct.item() / predictions


@torch.no_grad()
def validate(model, valid, batch_size, amp):
    """Mean loss per prediction and accuracy over the whole validation set, in order."""
    model.eval()
    device = valid[0].device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), device=device)
    predictions = 0
    for start in range(0, len(valid[0]), batch_size):
        with amp():
            logits, targets = logits_and_targets(model, tuple(t[start:start + batch_size] for t in valid))
            loss_sum += F.cross_entropy(logits, targets, reduction="sum").double()
        correct += (logits.argmax(1) == targets).sum()
        predictions += len(targets)
    return loss_sum.item() / predictions, correct.item() / predictions


def run_preset(args):
    """Builds and trains `args.model`; every number of the run, as a dict."""
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.cuda.reset_peak_memory_stats(device)
    train, valid, task = load_data(args, device)
    model = build_model(args, task).to(device)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    step_model = torch.compile(model) if args.compile else model
    amp = mixed_precision(args, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-5, weight_decay=0.0)
    print(f"{args.model}: {params:,} parameters, {len(train[0]):,} training and {len(valid[0]):,} validation "
          f"examples, batch {args.batch_size}, {args.epochs} epochs on {device_name(device)}", flush=True)

    startup = []

    def first_step_done():
        sync(device)
        startup.append(time.perf_counter() - START)

    epochs = []
    for epoch in range(1, args.epochs + 1):
        sync(device)
        t0 = time.perf_counter()
        hook = first_step_done if epoch == 1 else None
        train_loss, train_accuracy = train_epoch(step_model, optimizer, train, args.batch_size,
                                                 epoch_seed(args.seed, epoch), amp, hook)
        sync(device)
        t1 = time.perf_counter()
        val_loss, val_accuracy = validate(step_model, valid, args.valid_batch, amp)
        sync(device)
        t2 = time.perf_counter()
        epochs.append({"epoch": epoch, "train_s": t1 - t0, "valid_s": t2 - t1, "epoch_s": t2 - t0,
                       "train_loss": train_loss, "train_accuracy": train_accuracy,
                       "val_loss": val_loss, "val_accuracy": val_accuracy})
        print(f"{args.model} epoch {epoch}/{args.epochs}: {t2 - t0:.3f} s (train {t1 - t0:.3f} s, valid "
              f"{t2 - t1:.3f} s), train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
              f"{score_text(task, val_loss, val_accuracy)}", flush=True)
    return summary(args, task, params, startup[0], epochs, device)


def score_text(task, val_loss, val_accuracy):
    if task["kind"] == "lm":
        return f"val perplexity {math.exp(val_loss):.3f}"
    return f"val accuracy {val_accuracy:.4f}"


def device_name(device):
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def median_after_warmup(values):
    """The median without the first (warm-up) epoch; the only value when there is one."""
    return statistics.median(values[1:] if len(values) > 1 else values)


def summary(args, task, params, startup_s, epochs, device):
    last = epochs[-1]
    return {
        "preset": args.model, "mode": "compile" if args.compile else "eager",
        "precision": "bf16 autocast" if args.autocast else ("tf32" if args.tf32 else "f32"),
        "attention": args.attention if args.model == "transformer" else None,
        "device": device_name(device), "torch": torch.__version__,
        "batch_size": args.batch_size, "valid_batch": args.valid_batch, "epochs": args.epochs,
        "params": params, "startup_s": startup_s,
        "epoch_s_median": median_after_warmup([e["epoch_s"] for e in epochs]),
        "train_s_median": median_after_warmup([e["train_s"] for e in epochs]),
        "valid_s_median": median_after_warmup([e["valid_s"] for e in epochs]),
        "train_loss": last["train_loss"], "val_loss": last["val_loss"], "val_accuracy": last["val_accuracy"],
        "score": "perplexity" if task["kind"] == "lm" else "accuracy",
        "val_score": math.exp(last["val_loss"]) if task["kind"] == "lm" else last["val_accuracy"],
        "peak_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "per_epoch": epochs,
    }


# --- driver -----------------------------------------------------------------------------------


def child_argv(args, preset, result_file):
    """The command line that runs `preset` alone with every other option of `args`."""
    argv = [sys.executable, os.path.abspath(__file__), "--model", preset, "--json", result_file, "--no-table"]
    for key, value in vars(args).items():
        if key in ("model", "json", "no_table") or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        else:
            argv += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return argv


def run_in_own_process(args, preset):
    """Runs one preset in a fresh Python process (its own start-up); its result dict."""
    with tempfile.TemporaryDirectory() as folder:
        result_file = os.path.join(folder, "result.json")
        if subprocess.run(child_argv(args, preset, result_file)).returncode != 0:
            sys.exit(f"the {preset} run failed (its output is above)")
        with open(result_file) as f:
            return json.load(f)[0]


def table(results):
    lines = ["| preset | params | startup s | epoch s (median) | train s | valid s | val score | peak MiB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        name = r["preset"] + (" (compile)" if r["mode"] == "compile" else "")
        score = f"ppl {r['val_score']:.3f}" if r["score"] == "perplexity" else f"acc {r['val_score']:.4f}"
        peak = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "-"
        lines.append(f"| {name} | {r['params']:,} | {r['startup_s']:.2f} | {r['epoch_s_median']:.3f} | "
                     f"{r['train_s_median']:.3f} | {r['valid_s_median']:.3f} | {score} | {peak} |")
    return "\n".join(lines)


def presets(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PRESETS]
    if unknown or not names:
        known = ", ".join(PRESETS)
        raise argparse.ArgumentTypeError(f"unknown preset {', '.join(unknown)}; use a comma list of {known}")
    return names


def channel_pair(text):
    pair = [int(c) for c in text.split(",")]
    if len(pair) != 2 or min(pair) < 1:
        raise argparse.ArgumentTypeError("use two positive channel counts, e.g. 8,16")
    return pair


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=presets, default=list(PRESETS), help="comma list of presets (default: all four)")
    p.add_argument("--epochs", type=int, default=3, help="(the CLI's default is 10 for every preset)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--valid-batch", type=int, default=1024,
                   help="validation batch (morphogen's [trainer] eval_batch_size)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=42, help="shuffling seed (and model initialisation)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--train-subset", "--train-limit", type=int, default=0, help="first N training examples (0: all)")
    p.add_argument("--valid-subset", type=int, default=0, help="first N validation examples (0: all)")
    p.add_argument("--valid-fraction", type=float, default=0.1, help="share of the text held out (transformer)")
    p.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST IDX .gz folder")
    p.add_argument("--shakespeare", default="data/shakespeare/texts", help="folder of .txt files")
    p.add_argument("--hidden", type=int, default=32, help="MLP hidden width")
    p.add_argument("--channels", type=channel_pair, default=[8, 16], help="CNN channels of the two convs")
    p.add_argument("--width", type=int, default=16, help="ResNet channels of the first stage")
    p.add_argument("--layers", type=int, default=2, help="transformer blocks")
    p.add_argument("--d-model", type=int, default=64, help="transformer width")
    p.add_argument("--heads", type=int, default=4, help="transformer heads")
    p.add_argument("--context", type=int, default=64, help="transformer context (characters)")
    p.add_argument("--attention", choices=("sdpa", "manual"), default="sdpa",
                   help="sdpa: F.scaled_dot_product_attention; manual: morphogen's ops one by one")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls and convolutions (default: f32)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (default: eager)")
    p.add_argument("--autocast", action="store_true",
                   help="mixed precision: products in bfloat16 under torch.autocast, f32 weights and optimizer "
                        "(morphogen's --precision bf16)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--no-table", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("CUDA is not available; pass --device cpu")
    return args


def main():
    args = parse_args()
    if len(args.model) > 1:
        results = [run_in_own_process(args, preset) for preset in args.model]
    else:
        args.model = args.model[0]
        results = [run_preset(args)]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if not args.no_table:
        print(f"\nPyTorch {torch.__version__}, {results[0]['device']}, batch {args.batch_size}, "
              f"{'bf16 autocast' if args.autocast else 'TF32' if args.tf32 else 'f32'}, "
              f"{'torch.compile' if args.compile else 'eager'}\n")
        print(table(results), flush=True)


if __name__ == "__main__":
    main()
