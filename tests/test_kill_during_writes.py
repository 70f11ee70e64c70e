"""kill -9 at a random moment of a checkpoint save over an existing one, a Parquet export,
a serving export and a warm start saved over an earlier one: the target then holds one of
the two complete states the child alternates between, never a mix, never nothing
(bench/faults.py runs many such trials)."""
import pytest

import kill_trials


@pytest.mark.parametrize("operation", kill_trials.OPERATIONS)
def test_a_kill_leaves_a_complete_state(operation, tmp_path):
    assert kill_trials.run_trial(operation, tmp_path, seed=hash(operation) % 1000) == "survived"
