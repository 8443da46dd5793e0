#!/usr/bin/env python3
"""Load a grown morphogen model exported for PyTorch and check its forward pass.

The Rust side (`morphogen_checkpoint::export_pytorch`) writes a plain safetensors state dict;
see docs/checkpoints.md for its names and layouts. This script rebuilds the plain model from that
file and compares its output with the output the Rust model computed.

    python3 examples/pytorch_interop.py DIR            # numpy only (needs safetensors, numpy)
    python3 examples/pytorch_interop.py DIR --torch    # into a real torch.nn.Module

DIR holds:
  export.safetensors  the exported state dict; its metadata "layers" describes every seeded
                      layer's residual modules (seed, feature range, ops)
  io.safetensors      tensors "input" and "output" computed by the Rust model, and metadata
                      "architecture": the model as a JSON list of steps, each one of
                      {"layer": NAME, "stride": S, "padding": P} (a seeded layer; stride and
                      padding for Conv2d hosts), {"act": "relu"|"gelu"|"tanh"} or {"flatten": 1}

Exit status 0 when the outputs match (rtol/atol below), 1 otherwise.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

EXPORT_FORMAT = "morphogen-pytorch-state-dict"


def read_inputs(directory):
    """The state dict, the layer descriptions, the architecture and the Rust input/output."""
    export_path = os.path.join(directory, "export.safetensors")
    io_path = os.path.join(directory, "io.safetensors")
    with safe_open(export_path, framework="np") as f:
        metadata = f.metadata() or {}
    if metadata.get("format") != EXPORT_FORMAT:
        sys.exit(f"{export_path}: format is {metadata.get('format')!r}, expected {EXPORT_FORMAT!r}")
    layers = {layer["path"]: layer for layer in json.loads(metadata["layers"])}
    with safe_open(io_path, framework="np") as f:
        architecture = json.loads(f.metadata()["architecture"])
    io = load_file(io_path)
    return export_path, load_file(export_path), layers, architecture, io["input"], io["output"]


# ----- numpy ---------------------------------------------------------------------------------


def np_activation(name, x):
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "tanh":
        return np.tanh(x)
    if name == "gelu":  # exact (erf) GELU, as Burn and torch.nn.GELU() compute it
        erf = np.vectorize(math.erf)
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    raise ValueError(f"unknown activation {name}")


def np_conv2d(x, weight, bias, stride=1, padding=0):
    """Cross-correlation of x [n, c, h, w] with weight [o, c, k, k] (groups = 1)."""
    k = weight.shape[2]
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    h_out = (x.shape[2] - k) // stride + 1
    w_out = (x.shape[3] - k) // stride + 1
    out = np.zeros((x.shape[0], weight.shape[0], h_out, w_out), dtype=np.float64)
    for dy in range(k):
        for dx in range(k):
            patch = x[:, :, dy : dy + stride * h_out : stride, dx : dx + stride * w_out : stride]
            out += np.einsum("nchw,oc->nohw", patch, weight[:, :, dy, dx])
    if bias is not None:
        out += bias[None, :, None, None]
    return out


def np_residual(state, prefix, ops, x):
    """A residual module (nn.Sequential) on a chunk: x is [..., c] or [n, c, h, w]."""
    for index, op in enumerate(ops):
        weight = state.get(f"{prefix}.{index}.weight")
        bias = state.get(f"{prefix}.{index}.bias")
        if op["type"] == "linear":
            x = x @ weight.T + (bias if bias is not None else 0.0)
        elif op["type"] == "conv2d":
            x = np_conv2d(x, weight, bias, 1, op["padding"])
        else:
            x = np_activation(op["type"], x)
    return x


def np_layer(state, layer, step, x):
    path = layer["path"]
    weight, bias = state[f"{path}.weight"], state.get(f"{path}.bias")
    conv = layer["host"] == "Conv2d"
    if conv:
        h = np_conv2d(x, weight, bias, step.get("stride", 1), step.get("padding", 0))
    else:
        h = x @ weight.T + (bias if bias is not None else 0.0)
    out = h.copy()
    for residual in layer["residuals"]:
        a, b = residual["start"], residual["end"]
        ra, rb = residual.get("reads", [a, b])  # the chunk, or the whole layer
        prefix = f"{path}.residuals.{residual['seed']}"
        if conv:
            out[:, a:b] += np_residual(state, prefix, residual["ops"], h[:, ra:rb])
        else:
            out[..., a:b] += np_residual(state, prefix, residual["ops"], h[..., ra:rb])
    return out


def np_forward(state, layers, architecture, x):
    x = x.astype(np.float64)
    state = {k: v.astype(np.float64) for k, v in state.items()}
    for step in architecture:
        if "layer" in step:
            x = np_layer(state, layers[step["layer"]], step, x)
        elif "act" in step:
            x = np_activation(step["act"], x)
        elif "flatten" in step:
            x = x.reshape(x.shape[0], -1)
    return x


# ----- torch ---------------------------------------------------------------------------------


def torch_forward(export_path, layers, architecture, x):
    import torch
    from safetensors.torch import load_file as load_torch
    from torch import nn

    def sequential(ops):
        modules = []
        for op in ops:
            if op["type"] == "linear":
                modules.append(nn.Linear(op["in"], op["out"], bias=op["bias"]))
            elif op["type"] == "conv2d":
                modules.append(nn.Conv2d(op["in"], op["out"], op["kernel"], padding=op["padding"], bias=op["bias"]))
            else:
                modules.append({"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}[op["type"]]())
        return nn.Sequential(*modules)

    def residual_modules(layer):
        """The seed -> nn.Sequential dict and the seed -> (start, end, reads) of a seeded layer:
        its chunk, and the features its residual reads (the chunk, or the whole layer)."""
        modules = nn.ModuleDict({str(r["seed"]): sequential(r["ops"]) for r in layer["residuals"]})
        spans = {str(r["seed"]): (r["start"], r["end"], r.get("reads", [r["start"], r["end"]])) for r in layer["residuals"]}
        return modules, spans

    def add_residuals(residuals, chunks, h, channels_first):
        out = h.clone()
        for seed, module in residuals.items():
            a, b, (ra, rb) = chunks[seed]
            if channels_first:
                out[:, a:b] = out[:, a:b] + module(h[:, ra:rb])
            else:
                out[..., a:b] = out[..., a:b] + module(h[..., ra:rb])
        return out

    class GrownLinear(nn.Linear):
        """nn.Linear plus residual modules on chunks of its output features."""

        def __init__(self, layer, state):
            weight = state[f"{layer['path']}.weight"]
            super().__init__(weight.shape[1], weight.shape[0], bias=f"{layer['path']}.bias" in state)
            self.residuals, self.chunks = residual_modules(layer)

        def forward(self, x):
            return add_residuals(self.residuals, self.chunks, super().forward(x), channels_first=False)

    class GrownConv2d(nn.Conv2d):
        """nn.Conv2d plus residual modules on groups of its output channels."""

        def __init__(self, layer, state, step):
            weight = state[f"{layer['path']}.weight"]
            out_c, in_c, kh, kw = weight.shape
            super().__init__(in_c, out_c, (kh, kw), stride=step.get("stride", 1), padding=step.get("padding", 0),
                             bias=f"{layer['path']}.bias" in state)
            self.residuals, self.chunks = residual_modules(layer)

        def forward(self, x):
            return add_residuals(self.residuals, self.chunks, super().forward(x), channels_first=True)

    class Grown(nn.Module):
        def __init__(self, state):
            super().__init__()
            for step in architecture:
                if "layer" in step:
                    layer = layers[step["layer"]]
                    module = GrownConv2d(layer, state, step) if layer["host"] == "Conv2d" else GrownLinear(layer, state)
                    setattr(self, step["layer"], module)

        def forward(self, x):
            for step in architecture:
                if "layer" in step:
                    x = getattr(self, step["layer"])(x)
                elif "act" in step:
                    x = {"relu": torch.relu, "gelu": nn.functional.gelu, "tanh": torch.tanh}[step["act"]](x)
                elif "flatten" in step:
                    x = x.flatten(1)
            return x

    state = load_torch(export_path)
    model = Grown(state)
    model.load_state_dict(state, strict=True)  # every name and shape must match
    with torch.no_grad():
        return model(torch.from_numpy(x)).double().numpy()


# ----- main ----------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", help="directory holding export.safetensors and io.safetensors")
    parser.add_argument("--torch", action="store_true", help="load the state dict into a torch.nn.Module")
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--atol", type=float, default=1e-5)
    args = parser.parse_args()

    export_path, state, layers, architecture, x, expected = read_inputs(args.dir)
    if args.torch:
        got, how = torch_forward(export_path, layers, architecture, x), "torch.nn.Module"
    else:
        got, how = np_forward(state, layers, architecture, x), "numpy"
    residuals = sum(len(layer["residuals"]) for layer in layers.values())
    merged = sum(len(layer["merged"]) for layer in layers.values())
    diff = float(np.max(np.abs(got - expected)))
    ok = got.shape == expected.shape and np.allclose(got, expected, rtol=args.rtol, atol=args.atol)
    print(f"{how}: {len(state)} tensors, {merged} merged and {residuals} residual blueprints; "
          f"output {tuple(got.shape)}, max |diff| {diff:.3g}: {'match' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
