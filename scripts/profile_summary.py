#!/usr/bin/env python3
"""Where the time went, from a `morphogen train --profile FILE` trace: total and mean seconds per
span name, largest first (the trace itself opens in ui.perfetto.dev or chrome://tracing).

Usage: python3 scripts/profile_summary.py FILE [--top 20]
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


def durations(events):
    """Seconds of each span, by name: complete events, or begin/end pairs matched per thread."""
    spans = collections.defaultdict(list)
    open_spans = collections.defaultdict(list)
    for e in events:
        phase, name = e.get("ph"), e.get("name")
        if phase == "X":
            spans[name].append(e["dur"] / 1e6)
        elif phase == "B":
            open_spans[(e.get("pid"), e.get("tid"))].append(e)
        elif phase == "E":
            stack = open_spans[(e.get("pid"), e.get("tid"))]
            if stack:
                begin = stack.pop()
                spans[begin["name"]].append((e["ts"] - begin["ts"]) / 1e6)
    return spans


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trace")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    spans = durations(load(args.trace))
    rows = sorted(spans.items(), key=lambda kv: -sum(kv[1]))[: args.top]
    print("| span | count | total s | mean ms |\n|---|---|---|---|")
    for name, times in rows:
        print(f"| {name} | {len(times)} | {sum(times):.3f} | {1e3 * sum(times) / len(times):.3f} |")


if __name__ == "__main__":
    main()
