"""A parameter-server cluster on this machine: ps and worker tasks as processes on 127.0.0.1.

For tests, benchmarks and trying ParameterServerStrategy out before a real
cluster. Each task is `python -m deeprec_lite.distribute.server`; the chief is
the process that connects (see `cluster_spec` and `strategy`).

    with LocalCluster(num_ps=2, num_workers=2) as cluster:
        strategy = cluster.strategy()      # in the chief process, or in another
        ...                                # process: server.strategy(cluster.spec)
"""
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional

from deeprec_lite._checks import check_positive_int
from deeprec_lite.distribute import server

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    """In the child before exec: SIGKILL it when the thread that started it ends (Linux),
    so a crashed test or benchmark leaves no task behind. Start tasks from a thread
    that outlives them (the main thread)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _wait_listening(port, process, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"task on port {port} exited with code {process.returncode} "
                               "before it listened")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"task on port {port} did not listen within {timeout} s")


class LocalCluster:
    """ps and worker tasks as local processes, plus a reserved chief address.

    Args:
      num_ps: parameter-server tasks (>= 1).
      num_workers: worker tasks (>= 1).
      start_timeout: seconds a task may take to listen.
      log_dir: where each task's output goes (`<job>_<task>.log`); None: discarded.
    """

    def __init__(self, num_ps: int = 2, num_workers: int = 2, start_timeout: float = 120.0,
                 log_dir: Optional[str] = None):
        for name, value in (("num_ps", num_ps), ("num_workers", num_workers)):
            check_positive_int(value, name)
        self.spec: Dict[str, List[str]] = {
            "chief": [f"127.0.0.1:{_free_port()}"],
            "ps": [f"127.0.0.1:{_free_port()}" for _ in range(num_ps)],
            "worker": [f"127.0.0.1:{_free_port()}" for _ in range(num_workers)],
        }
        self.start_timeout = start_timeout
        self.log_dir = log_dir
        self.processes: Dict[tuple, subprocess.Popen] = {}

    @property
    def spec_json(self) -> str:
        return json.dumps(self.spec)

    def start(self):
        """Starts every ps and worker task and waits until all listen."""
        for job in server.JOBS:
            for task in range(len(self.spec[job])):
                self.start_task(job, task, wait=False)
        for (job, task), process in self.processes.items():
            _wait_listening(self._port(job, task), process, self.start_timeout)
        return self

    def _port(self, job, task):
        return int(self.spec[job][task].rsplit(":", 1)[1])

    def start_task(self, job: str, task: int, wait: bool = True):
        """(Re)starts one task on its address (after `kill_task`, as a supervisor would)."""
        if (job, task) in self.processes and self.processes[(job, task)].poll() is None:
            raise ValueError(f"task {job}:{task} is already running")
        out = subprocess.DEVNULL
        if self.log_dir is not None:
            os.makedirs(self.log_dir, exist_ok=True)
            out = open(os.path.join(self.log_dir, f"{job}_{task}.log"), "ab")  # noqa: SIM115
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        process = subprocess.Popen(
            [sys.executable, "-m", "deeprec_lite.distribute.server", "--cluster", self.spec_json,
             "--job", job, "--task", str(task)], stdout=out, stderr=subprocess.STDOUT, env=env,
            preexec_fn=_die_with_parent)
        if out is not subprocess.DEVNULL:
            out.close()
        self.processes[(job, task)] = process
        if wait:
            _wait_listening(self._port(job, task), process, self.start_timeout)
        return process

    def kill_task(self, job: str, task: int):
        """Kills one task with SIGKILL (a crashed machine) and waits for it to die."""
        process = self.processes[(job, task)]
        process.kill()
        process.wait()

    def pids(self) -> Dict[tuple, int]:
        """{(job, task): pid} of the running tasks."""
        return {key: p.pid for key, p in self.processes.items() if p.poll() is None}

    def stop(self):
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
