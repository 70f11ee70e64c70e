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
from typing import Mapping, Sequence

from deeprec_lite.kv import op_library
from deeprec_lite.compat import tf

JOBS = ("ps", "worker")


def cluster_spec_of(cluster) -> tf.train.ClusterSpec:
    """A tf.train.ClusterSpec from a ClusterSpec, a {job: [host:port, ...]} mapping or
    its JSON text."""
    if isinstance(cluster, tf.train.ClusterSpec):
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
    serve(args.cluster, args.job, args.task)


if __name__ == "__main__":
    main()
