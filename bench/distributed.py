"""Benchmark: parameter-server training throughput with 1-2 workers and 1-2 parameter servers.

Each configuration starts a loopback cluster (deeprec_lite.distribute.LocalCluster)
and runs examples/ps_training.py as its chief: model.fit of a DeepFM whose KV
tables are split over the parameter servers. Throughput is examples/s of the
last epoch (the first one also traces and ships the functions and the data);
bytes moved per step are the loopback interface's bytes (/proc/net/dev) during
that epoch, divided by its steps. The reference, in the same run, is the same
job in a single process without a cluster (--single-process).

All tasks share this machine's cores, so the figures show the cost of the
distribution (RPCs, routing) and how it scales, not what separate machines give.

Last line: ``distributed: workers=<w> ps=<p> speedup=<x> one_ps_vs_local=<y>
remote_kv_calls_per_step=<m>``: the largest configuration's examples/s over 1
worker and 1 ps; 1 worker and 1 ps over the single process; and the calls to the
KV tables (all on the parameter servers) that one training step of the largest
configuration makes, counted in its traced graph.

Usage: python bench/distributed.py [--steps 200] [--batch-size 512] [--fields 26]
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from deeprec_lite.distribute.local_cluster import LocalCluster  # noqa: E402  pylint: disable=wrong-import-position

CONFIGS = [(1, 1), (2, 1), (1, 2), (2, 2)]  # (workers, ps)


def loopback_bytes():
    with open("/proc/net/dev") as f:
        for line in f:
            name, _, counters = line.partition(":")
            if name.strip() == "lo":
                return int(counters.split()[8])  # transmitted bytes
    raise RuntimeError("no loopback interface in /proc/net/dev")


def run_chief(args, extra):
    """(summary, loopback bytes during the last epoch) of one run of the example."""
    command = [sys.executable, os.path.join(ROOT, "examples", "ps_training.py"),
               "--epochs", "2", "--steps-per-epoch", str(args.steps), "--batch-size",
               str(args.batch_size), "--categorical-fields", str(args.fields),
               "--rows", str(args.rows), "--test-rows", "4096", *extra]
    process = subprocess.Popen(command, cwd=ROOT, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    start = end = None
    summary = None
    tail = []
    for line in process.stdout:
        tail = (tail + [line])[-40:]
        if line.startswith("Epoch 2/"):
            start = loopback_bytes()
        elif start is not None and end is None and line.startswith(f"{args.steps}/{args.steps}"):
            end = loopback_bytes()
        elif line.startswith("{"):
            summary = json.loads(line)
    if process.wait() != 0 or summary is None or end is None:
        raise RuntimeError(f"chief failed ({process.returncode}):\n{''.join(tail)}")
    return summary, end - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per epoch")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--fields", type=int, default=26, help="categorical fields")
    parser.add_argument("--rows", type=int, default=32768)
    args = parser.parse_args()

    single, _ = run_chief(args, ["--single-process"])
    print(f"single process (reference): {single['examples_per_second']:.0f} examples/s",
          flush=True)
    print("| workers | ps | examples/s | vs single process | loopback bytes / step |")
    print("|---|---|---|---|---|")
    results, calls = {}, {}
    for workers, ps in CONFIGS:
        with LocalCluster(num_ps=ps, num_workers=workers) as cluster:
            summary, moved = run_chief(args, ["--cluster", cluster.spec_json])
        rate = summary["examples_per_second"]
        results[(workers, ps)] = rate
        calls[(workers, ps)] = summary["kv_calls_per_step"]
        print(f"| {workers} | {ps} | {rate:.0f} | {rate / single['examples_per_second']:.2f} | "
              f"{moved / args.steps / 1e6:.2f} MB |", flush=True)
    workers, ps = CONFIGS[-1]
    print(f"distributed: workers={workers} ps={ps} "
          f"speedup={results[CONFIGS[-1]] / results[CONFIGS[0]]:.2f} "
          f"one_ps_vs_local={results[(1, 1)] / single['examples_per_second']:.2f} "
          f"remote_kv_calls_per_step={calls[CONFIGS[-1]]}")


if __name__ == "__main__":
    main()
