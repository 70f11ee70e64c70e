"""A parameter-server or worker task of a tf.distribute cluster that can run KV ops.

Parameter servers hold the KV table shards and run their lookups and updates;
workers run the training steps the coordinator sends them. Both execute
deeprec-lite's custom ops, so each task must load the op library before it
serves: a plain `tf.distribute.Server` cannot. Start every ps and worker task
with

    python -m deeprec_lite.distribute.server --cluster '<json cluster spec>' \
        --job ps --task 0

(or `serve(cluster_spec, "ps", 0)` from Python); the chief runs
`tf.distribute.ParameterServerStrategy` and `model.fit` as usual.
"""
import argparse
import json
import re
from typing import Mapping, Sequence

from deeprec_lite.kv import op_library
from deeprec_lite.compat import tf

JOBS = ("ps", "worker")
# host:port; an IPv6 host in brackets ("[::1]:2222")
_ADDRESS = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]/]+):([0-9]+)")


def check_address(job, task, address):
    """ValueError naming the job, task and address unless `address` is host:port with a
    non-empty host (an IPv6 one in brackets) and a port in [1, 65535]."""
    match = _ADDRESS.fullmatch(address) if isinstance(address, str) else None
    if match is None or not 1 <= int(match.group(2)) <= 65535:
        raise ValueError(f"cluster: the address of job {job!r} task {task} must be host:port "
                         f"with a port in [1, 65535] (an IPv6 host in brackets), got "
                         f"{address!r}")


def cluster_spec_of(cluster) -> tf.train.ClusterSpec:
    """A tf.train.ClusterSpec from a ClusterSpec, a {job: [host:port, ...]} mapping or
    its JSON text. ValueError naming the job, task and address of an address that is not
    host:port."""
    if isinstance(cluster, tf.train.ClusterSpec):
        for job in cluster.jobs:
            for task in cluster.task_indices(job):
                check_address(job, task, cluster.task_address(job, task))
        return cluster
    if isinstance(cluster, str):
        try:
            cluster = json.loads(cluster)
        except json.JSONDecodeError as e:
            raise ValueError(f"cluster must be JSON of {{job: [host:port, ...]}}, got {cluster!r}: "
                             f"{e}") from None
    if not isinstance(cluster, Mapping) or not all(
            isinstance(hosts, Sequence) and not isinstance(hosts, str) for hosts in cluster.values()):
        raise ValueError(f"cluster must map job names to lists of host:port, got {cluster!r}")
    for job, hosts in cluster.items():
        if not isinstance(job, str) or not job:
            raise ValueError(f"cluster: job names must be non-empty strings, got {job!r}")
        for task, address in enumerate(hosts):
            check_address(job, task, address)
    return tf.train.ClusterSpec({job: list(hosts) for job, hosts in cluster.items()})


def start(cluster, job: str, task: int) -> tf.distribute.Server:
    """Loads the op library and starts task `task` of `job` ("ps" or "worker")."""
    spec = cluster_spec_of(cluster)
    if job not in JOBS:
        raise ValueError(f"job must be one of {JOBS}, got {job!r}")
    if job not in spec.jobs:
        raise ValueError(f"job {job!r} is not in the cluster {spec.as_dict()}")
    tasks = spec.num_tasks(job)
    if isinstance(task, bool) or not isinstance(task, int) or not 0 <= task < tasks:
        raise ValueError(f"task must be an index in [0, {tasks}) of job {job!r}, got {task!r}")
    op_library.load()
    return tf.distribute.Server(spec, job_name=job, task_index=task, protocol="grpc", start=True)


def strategy(cluster, variable_partitioner=None) -> tf.distribute.ParameterServerStrategy:
    """The chief's ParameterServerStrategy for the cluster (which must have a chief),
    with the op library loaded. Start the ps and worker tasks first."""
    spec = cluster_spec_of(cluster)
    if "chief" not in spec.jobs or "ps" not in spec.jobs or "worker" not in spec.jobs:
        raise ValueError(f"cluster must have chief, ps and worker jobs, got {spec.as_dict()}")
    op_library.load()
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        spec, task_type="chief", task_id=0, rpc_layer="grpc")
    return tf.distribute.ParameterServerStrategy(resolver,
                                                 variable_partitioner=variable_partitioner)


def serve(cluster, job: str, task: int):
    """Starts the task and serves until the process is killed."""
    start(cluster, job, task).join()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cluster", required=True,
                        help='JSON cluster spec, e.g. {"chief": ["h:1"], "ps": ["h:2"], '
                             '"worker": ["h:3"]}')
    parser.add_argument("--job", required=True, choices=JOBS)
    parser.add_argument("--task", required=True, type=int)
    args = parser.parse_args(argv)
    try:
        server = start(args.cluster, args.job, args.task)
    except ValueError as e:
        parser.error(str(e))
    server.join()


if __name__ == "__main__":
    main()
