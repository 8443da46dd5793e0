#!/usr/bin/env python3
"""Where the time went, from a `morphogen train --profile FILE` trace: total and mean seconds per
span name, largest first (the trace itself opens in ui.perfetto.dev or chrome://tracing).

Usage: python3 scripts/profile_summary.py FILE [--top 20] [--split operation] [--rank 0]

`--split ARG` counts spans apart by the value of their argument ARG (the `collective` spans of
data-parallel replicas by `operation`: gradients, decisions, telemetry, seed-state hashes);
`--rank R` keeps, of the spans that carry a `rank`, those of replica R.
"""
import argparse
import collections
import json


def load(path):
    """The trace's events (a JSON array; a run cut short may leave it unterminated)."""
    text = open(path).read().rstrip().rstrip(",")
    if not text.endswith("]"):
        text += "]"
    return json.loads(text)


def durations(events, split=None, rank=None):
    """Seconds of each span, by name (and `split` argument): complete events, or begin/end pairs
    matched per thread; spans of other ranks than `rank` left out."""
    spans = collections.defaultdict(list)
    open_spans = collections.defaultdict(list)

    def record(event, seconds):
        args = event.get("args", {})
        if rank is not None and "rank" in args and str(args["rank"]) != str(rank):
            return
        name = event.get("name")
        if split is not None and split in args:
            name = f"{name} ({args[split]})"
        spans[name].append(seconds)

    for e in events:
        phase = e.get("ph")
        if phase == "X":
            record(e, e["dur"] / 1e6)
        elif phase == "B":
            open_spans[(e.get("pid"), e.get("tid"))].append(e)
        elif phase == "E":
            stack = open_spans[(e.get("pid"), e.get("tid"))]
            if stack:
                begin = stack.pop()
                record(begin, (e["ts"] - begin["ts"]) / 1e6)
    return spans


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trace")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--split", help="count spans apart by this argument's value")
    parser.add_argument("--rank", help="keep only this replica's spans (of those carrying a rank)")
    args = parser.parse_args()
    spans = durations(load(args.trace), args.split, args.rank)
    rows = sorted(spans.items(), key=lambda kv: -sum(kv[1]))[: args.top]
    print("| span | count | total s | mean ms |\n|---|---|---|---|")
    for name, times in rows:
        print(f"| {name} | {len(times)} | {sum(times):.3f} | {1e3 * sum(times) / len(times):.3f} |")


if __name__ == "__main__":
    main()
