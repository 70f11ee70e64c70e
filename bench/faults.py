"""kill -9 at random moments of every operation that writes a model's state, at scale.

Runs the suite's trials (tests/kill_trials.py) `--trials` times per operation: a
checkpoint save over an existing one at the same step, a Parquet export, a serving
SavedModel export and a warm start saved over an earlier one, each killed at a random
moment of an operation and checked: the target must hold one of the two complete states
the child alternates between ("survived"), not be unreadable ("lost") nor read as
something else ("corrupted_silently"). The reference is the count of trials itself:
target survived == trials.

    python bench/faults.py [--trials 20] [--operations checkpoint,export]

Last line: ``faults: trials=<n> survived=<n> lost=<n> corrupted_silently=<n>``
"""
import argparse
import collections
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import kill_trials  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per operation")
    parser.add_argument("--operations", default=",".join(kill_trials.OPERATIONS))
    args = parser.parse_args()
    operations = args.operations.split(",")
    unknown = sorted(set(operations) - set(kill_trials.OPERATIONS))
    if unknown or args.trials < 1:
        parser.error(f"--operations must be among {kill_trials.OPERATIONS} and --trials >= 1")
    outcomes = {op: collections.Counter() for op in operations}
    start = time.perf_counter()
    for op in operations:
        for trial in range(args.trials):
            with tempfile.TemporaryDirectory() as directory:
                outcomes[op][kill_trials.run_trial(op, directory, seed=trial)] += 1
        print(f"{op:<11} {dict(outcomes[op])}", flush=True)
    total = sum(outcomes.values(), collections.Counter())
    trials = sum(total.values())
    print(f"{trials} trials in {time.perf_counter() - start:.0f} s")
    print(f"faults: trials={trials} survived={total['survived']} lost={total['lost']} "
          f"corrupted_silently={total['corrupted']}")


if __name__ == "__main__":
    main()
