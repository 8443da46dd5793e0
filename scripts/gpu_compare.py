#!/usr/bin/env python3
"""The whole job on one GPU: `morphogen train` against a plain PyTorch loop, preset by preset.

For each preset it runs, one after the other on the same GPU:
- `scripts/pytorch_train.py` (the same architecture, batch size, optimizer and data order rules);
- `morphogen train --backend cuda` once with an empty kernel cache, then again (the warm
  start-up a user sees on every later run), and `--backend cuda-fusion` when the binary has it;
- `morphogen train --backend ndarray` (the CPU build on the same machine) for one epoch.
Every process's peak GPU memory is sampled with nvidia-smi (the same measure for both sides).
It prints a markdown table (preset, PyTorch epoch s, morphogen epoch s, ratio, CPU epoch s,
start-up s, peak GPU MiB) and writes every log and number under --out.

Usage: python3 scripts/gpu_compare.py --bin path/to/morphogen --out DIR [--presets mlp,cnn]
       [--epochs 3] [--fashion DIR] [--shakespeare DIR] [--skip-cpu]
       [--precision bf16] [--extra "--d-model 512 --layers 4 --heads 8"] [--cache DIR]
With --precision bf16 both sides compute their products in bfloat16 (morphogen's --precision,
PyTorch's autocast) and the CPU run is skipped. With --cache DIR morphogen uses and keeps that
kernel cache and skips the cold run, so a second comparison does not compile again.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time

TIMING = re.compile(r"timing: start-up ([\d.]+|-) s .*typical epoch ([\d.]+|-) s")
LAST_EPOCH = re.compile(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|(?: ([\d.]+) \|)?$", re.M)


class PeakMemory:
    """Samples the GPU memory every process uses (nvidia-smi), keeping the peak of the total."""

    def __init__(self, period=0.2):
        self.period, self.peak, self._stop = period, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            out = subprocess.run(
                ["nvidia-smi", "--query-compute-apps=used_memory", "--format=csv,noheader,nounits"],
                capture_output=True, text=True).stdout
            used = sum(int(x) for x in out.split() if x.isdigit())
            self.peak = max(self.peak, used)
            time.sleep(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run(cmd, log_path, env=None):
    """Runs `cmd`, logging its output; returns (output, wall seconds, peak GPU MiB)."""
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    with PeakMemory() as memory:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    with open(log_path, "w") as f:
        f.write(output)
    if proc.returncode != 0:
        print(output[-3000:], flush=True)
        print(f"exit {proc.returncode}", flush=True)
    return output, seconds, memory.peak


def morphogen(args, preset, backend, epochs, tag, cache):
    """One `morphogen train` run; its timing line, last validation numbers and peak memory."""
    data = ["--task", "lm", "--data", args.shakespeare] if preset == "transformer" else ["--data", args.fashion]
    cmd = [args.bin, "train", "--backend", backend, "--model", preset, "--epochs", str(epochs), "--quiet",
           "--name", f"{preset}-{tag}", "--runs-dir", os.path.join(args.out, "runs")] + data + shlex.split(args.extra)
    if args.precision != "f32" and backend != "ndarray":
        cmd += ["--precision", args.precision]
    env = dict(os.environ, MORPHOGEN_KERNEL_CACHE=cache)
    output, seconds, peak = run(cmd, os.path.join(args.out, f"{preset}-{tag}.log"), env)
    timing = TIMING.search(output)
    epochs_seen = LAST_EPOCH.findall(output)
    last = epochs_seen[-1] if epochs_seen else None
    return {
        "start_up_s": float(timing.group(1)) if timing and timing.group(1) != "-" else None,
        "epoch_s": float(timing.group(2)) if timing and timing.group(2) != "-" else None,
        "wall_s": seconds,
        "peak_mib": peak,
        "val_loss": float(last[3]) if last else None,
        "val_acc": float(last[4]) if last else None,
        "val_ppl": float(last[5]) if last and last[5] else None,
    }


def pytorch(args, preset, epochs):
    """The PyTorch script's numbers for one preset."""
    path = os.path.join(args.out, f"torch-{preset}.json")
    cmd = [sys.executable, "scripts/pytorch_train.py", "--model", preset, "--epochs", str(epochs),
           "--fashion", args.fashion, "--shakespeare", args.shakespeare, "--json", path] + shlex.split(args.extra)
    if args.precision == "bf16":
        cmd.append("--autocast")
    _, seconds, peak = run(cmd, os.path.join(args.out, f"torch-{preset}.log"))
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        result = json.load(f)
    result = result[0] if isinstance(result, list) else result.get(preset, result)
    result["peak_mib_smi"], result["wall_s"] = peak, seconds
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--presets", default="mlp,cnn,resnet,transformer")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--shakespeare", default="data/shakespeare/texts")
    parser.add_argument("--cold-epochs", type=int, default=None,
                        help="epochs of the cold-cache run (default --epochs); its start-up is what is kept")
    parser.add_argument("--cache", default=None,
                        help="a kernel cache folder to use and keep: no cold run (a first bf16 run compiles for minutes)")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--skip-fusion", action="store_true")
    parser.add_argument("--precision", choices=("f32", "bf16"), default="f32",
                        help="bf16: morphogen's --precision bf16 against PyTorch's --autocast (GPU runs only)")
    parser.add_argument("--extra", default="",
                        help="flags both trainers take, e.g. \"--d-model 512 --layers 4 --heads 8 --train-subset 25600\"")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    fusion = not args.skip_fusion and "cuda-fusion" in subprocess.run(
        [args.bin, "info"], capture_output=True, text=True).stdout.split("not built")[0]
    results = {}
    for preset in args.presets.split(","):
        cache = args.cache or os.path.join(args.out, "kernel-cache")
        if not args.cache:
            shutil.rmtree(cache, ignore_errors=True)
        row = {"torch": pytorch(args, preset, args.epochs)}
        if not args.cache:
            row["cuda_cold"] = morphogen(args, preset, "cuda", args.cold_epochs or args.epochs, "cuda-cold", cache)
        row["cuda"] = morphogen(args, preset, "cuda", args.epochs, "cuda", cache)
        if fusion:
            row["fusion"] = morphogen(args, preset, "cuda-fusion", args.epochs, "fusion", cache)
        if not args.skip_cpu and args.precision == "f32":
            row["cpu"] = morphogen(args, preset, "ndarray", 1, "cpu", cache)
        results[preset] = row
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
    print_table(results)


def fmt(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


def print_table(results):
    print("\n| preset | PyTorch epoch s | morphogen cuda epoch s | ratio | cuda-fusion epoch s | CPU epoch s "
          "| GPU / CPU | start-up cold s | start-up warm s | peak GPU MiB PyTorch | peak GPU MiB morphogen |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for preset, row in results.items():
        torch_s = row["torch"].get("epoch_s_median")
        cuda_s, cpu_s = row["cuda"]["epoch_s"], row.get("cpu", {}).get("epoch_s")
        ratio = cuda_s / torch_s if cuda_s and torch_s else None
        speedup = cpu_s / cuda_s if cuda_s and cpu_s else None
        print(f"| {preset} | {fmt(torch_s)} | {fmt(cuda_s)} | {fmt(ratio)} | {fmt(row.get('fusion', {}).get('epoch_s'))} "
              f"| {fmt(cpu_s)} | {fmt(speedup, 1)} | {fmt(row.get('cuda_cold', {}).get('start_up_s'))} "
              f"| {fmt(row['cuda']['start_up_s'])} | {row['torch'].get('peak_mib_smi', '-')} | {row['cuda']['peak_mib']} |")


if __name__ == "__main__":
    main()
