#!/usr/bin/env python3
"""PyTorch DistributedDataParallel on morphogen's preset hosts: samples per second over N GPUs.

The PyTorch side of issue 17's scaling measurement (`morphogen train --devices 0,1` against
this in one lease). The hosts and data are `scripts/pytorch_train.py`'s (the same builders, so
the same networks as `morphogen train --model ...`); every process holds the whole data set on
its device and takes its shard of each global batch, as morphogen's replicas do: the global
batch is `--batch-per-device * world`, drawn from one seeded permutation per epoch shared by
every rank, rank r taking its r-th consecutive slice. Adam at 1e-3, f32 (TF32 off).

It times `--steps` optimizer steps after `--warmup` steps (a barrier and a device sync on both
ends) and prints, on rank 0, one JSON line: world size, global batch, seconds, samples per
second. Run it once per world size and divide:

    torchrun --nproc-per-node 1 scripts/pytorch_ddp.py --model resnet --width 8
    torchrun --nproc-per-node 2 scripts/pytorch_ddp.py --model resnet --width 8
    torchrun --nproc-per-node 2 scripts/pytorch_ddp.py --device cpu --model mlp --steps 20   (gloo, any machine)
"""
import argparse
import json
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import pytorch_train as presets


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=presets.PRESETS, default="resnet")
    p.add_argument("--batch-per-device", type=int, default=512, help="each process's shard of a global batch")
    p.add_argument("--steps", type=int, default=100, help="timed optimizer steps")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (cuDNN's choices, NCCL's set-up)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: the gloo backend")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--shakespeare", default="data/shakespeare/texts")
    p.add_argument("--train-subset", type=int, default=0)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--channels", type=presets.channel_pair, default=[8, 16])
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--attention", choices=("sdpa", "manual"), default="sdpa")
    args = p.parse_args()
    # What pytorch_train's data and model builders read besides the above.
    args.valid_subset, args.valid_fraction = 1, 0.1
    return args


def global_batches(size, batch, seed):
    """Endless global batches of `batch` indices into `size` examples, one permutation an epoch."""
    epoch = 0
    while True:
        epoch += 1
        order = torch.randperm(size, generator=torch.Generator().manual_seed(presets.epoch_seed(seed, epoch)))
        for start in range(0, size - batch + 1, batch):
            yield order[start:start + batch]


def main():
    args = parse_args()
    cuda = args.device == "cuda"
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", rank))
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(args.seed)
    train, _, task = presets.load_data(args, device)
    model = presets.build_model(args, task).to(device)
    model = DistributedDataParallel(model, device_ids=[local] if cuda else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-5)
    per, global_batch = args.batch_per_device, args.batch_per_device * world
    batches = global_batches(len(train[0]), global_batch, args.seed)

    def step():
        index = next(batches)[rank * per:(rank + 1) * per].to(device)
        logits, targets = presets.logits_and_targets(model, tuple(t[index] for t in train))
        loss = F.cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    for _ in range(args.warmup):
        step()
    presets.sync(device)
    dist.barrier()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    presets.sync(device)
    dist.barrier()
    seconds = time.perf_counter() - start
    if rank == 0:
        print(json.dumps({
            "model": args.model, "device": presets.device_name(device), "world": world,
            "global_batch": global_batch, "steps": args.steps, "seconds": round(seconds, 4),
            "samples_per_s": round(args.steps * global_batch / seconds, 1), "last_loss": round(loss.item(), 4),
        }))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
