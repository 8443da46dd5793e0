#!/usr/bin/env python3
"""What the GPU and PyTorch give, measured beside `morphogen bench layer` on the same machine.

Prints markdown tables:
- the GPU's measured peaks: device-to-device copy GB/s, f32 matmul TFLOP/s (TF32 off and on);
- `nn.Linear(hidden, hidden)` forward and forward+backward (`out.sum().backward()`), timed two
  ways: CUDA-event median per call (the peer's method, ../shared/design/peer-figures.md) and
  morphogen's method (wall clock between syncs around a burst of back-to-back calls);
- the dormant telemetry written as plain PyTorch ops (sum, sum of squares, positive count per
  feature; sum and sum of squares of chunk totals per seed), for scale.

Usage: python3 scripts/pytorch_baseline.py [--iters 50] [--burst 10]
"""
import argparse
import statistics
import time

import torch


def event_ms(fn, iters, warmup=5):
    """CUDA-event median of one call."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def burst_ms(fn, iters, burst, warmup=5):
    """Wall clock between syncs around `burst` calls, per call, median: morphogen's method."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        torch.cuda.synchronize()
        start = time.perf_counter()
        outs = [fn() for _ in range(burst)]
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3 / burst)
        del outs
    return statistics.median(times)


def peaks(iters):
    n = 256 * 1024 * 1024  # 1 GiB of f32
    x, y = torch.randn(n, device="cuda"), torch.empty(n, device="cuda")
    copy_ms = event_ms(lambda: y.copy_(x), iters)
    del x, y
    a, b = torch.randn(8192, 8192, device="cuda"), torch.randn(8192, 8192, device="cuda")
    flops = 2 * 8192**3
    out = {"copy_gbps": 2 * 4 * n / (copy_ms * 1e-3) / 1e9}
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        ms = event_ms(lambda: a @ b, max(iters // 5, 5))
        out[f"matmul_tflops_tf32_{'on' if tf32 else 'off'}"] = flops / (ms * 1e-3) / 1e12
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


def linear_rows(batches, hiddens, iters, burst):
    rows = []
    for hidden in hiddens:
        layer = torch.nn.Linear(hidden, hidden, device="cuda")
        for batch in batches:
            x = torch.randn(batch, hidden, device="cuda")
            fwd = lambda: layer(x)

            def fb():
                layer(x).sum().backward()

            with torch.no_grad():
                f_event, f_burst = event_ms(fwd, iters), burst_ms(fwd, iters, burst)
            rows.append((batch, hidden, f_event, f_burst, event_ms(fb, iters), burst_ms(fb, iters, burst)))
    return rows


def telemetry_rows(batches, hidden, seeds_list, iters):
    rows = []
    for seeds in seeds_list:
        base, big = divmod(hidden, seeds)
        for batch in batches:
            h = torch.randn(batch, hidden, device="cuda")

            def telemetry():
                per_feature = torch.stack([h.sum(0), (h * h).sum(0), (h > 0).float().sum(0)])
                head = h[:, : big * (base + 1)].reshape(batch, big, base + 1).sum(2)
                tail = h[:, big * (base + 1):].reshape(batch, seeds - big, base).sum(2)
                totals = torch.cat([head, tail], 1)
                return per_feature, torch.stack([totals.sum(0), (totals * totals).sum(0)])

            ms = event_ms(telemetry, iters)
            rows.append((batch, hidden, seeds, ms, 4 * batch * hidden / (ms * 1e-3) / 1e9))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--burst", type=int, default=10)
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"PyTorch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name()}\n")
    p = peaks(args.iters)
    print("| measured peak | value |\n|---|---|")
    print(f"| device-to-device copy (read + write) | {p['copy_gbps']:.0f} GB/s |")
    print(f"| f32 matmul 8192^3, TF32 off | {p['matmul_tflops_tf32_off']:.1f} TFLOP/s |")
    print(f"| f32 matmul 8192^3, TF32 on | {p['matmul_tflops_tf32_on']:.1f} TFLOP/s |\n")
    print(f"nn.Linear(hidden, hidden), f32, TF32 off; event: CUDA-event median per call; "
          f"burst: wall clock between syncs around {args.burst} calls, per call, median\n")
    print("| batch | hidden | fwd event ms | fwd burst ms | f+b event ms | f+b burst ms |\n|---|---|---|---|---|---|")
    for batch, hidden, fe, fbu, be, bbu in linear_rows([32, 64, 128, 256, 4096], [1024, 4096], args.iters, args.burst):
        print(f"| {batch} | {hidden} | {fe:.4f} | {fbu:.4f} | {be:.4f} | {bbu:.4f} |")
    print("\nDormant telemetry as plain PyTorch ops (CUDA-event median, no host layer)\n")
    print("| batch | hidden | seeds | ms | GB/s (h read once) |\n|---|---|---|---|---|")
    for batch, hidden, seeds, ms, gbps in telemetry_rows([256, 4096], 4096, [1000, 4096], args.iters):
        print(f"| {batch} | {hidden} | {seeds} | {ms:.4f} | {gbps:.0f} |")


if __name__ == "__main__":
    main()
