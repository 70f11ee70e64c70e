"""The ps/worker server entry point and LocalCluster: argument checks (no cluster started
except where a test says so)."""
import json
import re
import subprocess
import sys
import time

import pytest

from deeprec_lite.compat import tf
from deeprec_lite.distribute import LocalCluster, server

SPEC = {"chief": ["127.0.0.1:1"], "ps": ["127.0.0.1:2", "127.0.0.1:3"], "worker": ["127.0.0.1:4"]}


@pytest.mark.parametrize("cluster", [SPEC, json.dumps(SPEC), tf.train.ClusterSpec(SPEC)])
def test_cluster_spec_from_mapping_json_or_spec(cluster):
    assert server.cluster_spec_of(cluster).as_dict() == SPEC


@pytest.mark.parametrize("cluster, message", [
    ("{not json", "cluster must be JSON"),
    ({"ps": "127.0.0.1:2"}, "cluster must map job names to lists"),
    (["127.0.0.1:2"], "cluster must map job names to lists"),
])
def test_bad_cluster_is_refused(cluster, message):
    with pytest.raises(ValueError, match=message):
        server.cluster_spec_of(cluster)


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "host:12:34", "host:0", ":2", "host:",
                                     "host:+2", "host", "::1:2", 2, None])
def test_a_bad_address_is_named_with_its_job_and_task(address):
    bad = {"chief": ["127.0.0.1:1"], "ps": ["127.0.0.1:2", address], "worker": ["127.0.0.1:4"]}
    message = (r"cluster: the address of job 'ps' task 1 must be host:port .*got "
               + re.escape(repr(address)) + "$")
    with pytest.raises(ValueError, match=message):
        server.cluster_spec_of(bad)
    with pytest.raises(ValueError, match="job 'ps' task 1"):
        server.strategy(json.dumps(bad))
    if isinstance(address, str):
        with pytest.raises(ValueError, match="job 'ps' task 1"):
            server.cluster_spec_of(tf.train.ClusterSpec(bad))


def test_addresses_with_ports_1_to_65535_and_bracketed_ipv6_hosts_are_taken():
    spec = {"ps": ["localhost:1", "[::1]:65535", "10.0.0.7:2222"], "worker": ["w-3.example:80"]}
    assert server.cluster_spec_of(spec).as_dict() == spec


@pytest.mark.parametrize("job, task, message", [
    ("chief", 0, "job must be one of"),
    ("evaluator", 0, "job must be one of"),
    ("ps", 2, r"task must be an index in \[0, 2\) of job 'ps', got 2"),
    ("ps", -1, "task must be an index"),
    ("worker", True, "task must be an index"),
])
def test_bad_task_is_refused_before_anything_starts(job, task, message):
    with pytest.raises(ValueError, match=message):
        server.start(SPEC, job, task)


def test_job_missing_from_the_cluster_is_refused():
    with pytest.raises(ValueError, match="job 'worker' is not in the cluster"):
        server.start({"ps": ["127.0.0.1:2"]}, "worker", 0)


def test_strategy_needs_chief_ps_and_worker_jobs():
    with pytest.raises(ValueError, match="cluster must have chief, ps and worker jobs"):
        server.strategy({"ps": ["127.0.0.1:2"], "worker": ["127.0.0.1:4"]})


@pytest.mark.parametrize("kwargs, message", [
    ({"num_ps": 0}, "num_ps must be a positive integer, got 0"),
    ({"num_workers": True}, "num_workers must be a positive integer, got True"),
])
def test_local_cluster_checks_its_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LocalCluster(**kwargs)


def test_command_line_rejects_an_unknown_job():
    result = subprocess.run([sys.executable, "-m", "deeprec_lite.distribute.server", "--cluster",
                             json.dumps(SPEC), "--job", "chief", "--task", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "invalid choice: 'chief'" in result.stderr


def test_command_line_names_a_bad_address():
    result = subprocess.run([sys.executable, "-m", "deeprec_lite.distribute.server", "--cluster",
                             json.dumps({"ps": ["localhost:99999"]}), "--job", "ps", "--task",
                             "0"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "job 'ps' task 0 must be host:port" in result.stderr
    assert "'localhost:99999'" in result.stderr


def test_local_cluster_tasks_listen_and_restart_after_a_kill(tmp_path):
    with LocalCluster(num_ps=1, num_workers=1, log_dir=str(tmp_path)) as cluster:
        assert set(cluster.pids()) == {("ps", 0), ("worker", 0)}
        cluster.kill_task("ps", 0)
        assert set(cluster.pids()) == {("worker", 0)}
        with pytest.raises(ValueError, match="task worker:0 is already running"):
            cluster.start_task("worker", 0)
        cluster.start_task("ps", 0)
        assert set(cluster.pids()) == {("ps", 0), ("worker", 0)}
    assert cluster.pids() == {}
    assert (tmp_path / "ps_0.log").exists()


def test_tasks_die_with_the_process_that_started_them():
    script = ("import os; from deeprec_lite.distribute import LocalCluster; "
              "c = LocalCluster(1, 1).start(); print(*c.pids().values(), flush=True); os._exit(0)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=180)
    pids = [int(p) for p in result.stdout.split()]
    assert len(pids) == 2, result.stderr[-3000:]
    deadline = time.monotonic() + 30
    while any(map(_running, pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(_running, pids))


def _running(pid):
    """Whether the process exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
