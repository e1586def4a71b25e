"""The assistant's analysis on the held-out split: quality and speed, in one process.

Run `.venv/bin/python benchmarks/nlu.py` (after `make nlu`); `--compare` also cross-validates every
candidate model on the training split. The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from allo.assistant.nlu.training import compare, evaluate, heldout, load_analyzer
from allo.config import DEFAULT_DATA_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=Path("var/nlu/model.npz"))
    parser.add_argument("--compare", action="store_true", help="cross-validate the candidate models too")
    parser.add_argument("--repeat", type=int, default=5, help="passes over the held-out split for speed")
    args = parser.parse_args()

    started = time.perf_counter()
    analyzer = load_analyzer(args.model, DEFAULT_DATA_DIR)
    load_seconds = time.perf_counter() - started
    examples = heldout(DEFAULT_DATA_DIR)
    figures = evaluate(analyzer, examples)

    # Speed over several passes, after the first one has warmed the caches.
    latencies = []
    t0 = time.perf_counter()
    for _ in range(args.repeat):
        for example in examples:
            t = time.perf_counter()
            analyzer.analyze(example.text)
            latencies.append((time.perf_counter() - t) * 1000)
    elapsed = time.perf_counter() - t0
    latencies.sort()
    figures["latency_p50_ms"] = latencies[len(latencies) // 2]
    figures["latency_p99_ms"] = latencies[int(len(latencies) * 0.99)]
    figures["messages_per_second"] = len(latencies) / elapsed
    figures["model_load_seconds"] = load_seconds

    print(f"held-out examples:        {figures['examples']}")
    print(f"model load:               {load_seconds:.2f} s")
    print(f"intent accuracy:          {figures['intent_accuracy']:.3f}")
    print(f"intent macro-F1:          {figures['intent_macro_f1']:.3f}   (target ≥ 0.90)")
    print(f"sub-intent accuracy:      {figures['sub_intent_accuracy']:.3f}")
    print(f"language accuracy:        {figures['language_accuracy']:.3f}")
    print(f"calibration error (ECE):  {figures['calibration_error']:.3f}")
    print(f"escalation recall:        {figures['escalation_recall']:.3f}")
    print(f"escalation precision:     {figures['escalation_precision']:.3f}")
    for name, flag in figures["flags"].items():
        print(
            f"flag {name:<16}     precision {flag['precision']:.2f}  "
            f"recall {flag['recall']:.2f}  n={flag['support']}"
        )
    for name, value in figures["sentiment_accuracy_by_bucket"].items():
        print(f"sentiment {name:<14}   {value:.3f}")
    print(
        f"latency p50 / p99:        {figures['latency_p50_ms']:.2f} / "
        f"{figures['latency_p99_ms']:.2f} ms   (p99 target < 5)"
    )
    print(f"messages per second:      {figures['messages_per_second']:.0f}   (target ≥ 1,000)")

    if args.compare:
        print("\ncross-validation on the training split (intent macro-F1):")
        rows = []
        for result in compare(DEFAULT_DATA_DIR, progress=lambda step: print(f"  … {step}", flush=True)):
            rows.append({"features": result.spec.name(), "l2": result.l2, "macro_f1": result.macro_f1})
            print(f"  {result.spec.name():<32} l2={result.l2:<8g} {result.macro_f1:.3f}")
        figures["cross_validation"] = rows

    figures["benchmark"] = "nlu"
    figures["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    figures["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
