"""A tf.data service (one dispatcher, N workers) on this machine's loopback address.

The WorkQueue hands out work items through TensorFlow's own tf.data service
with dynamic sharding; this starts one in-process for a single-machine job or
a test. Clients and workers talk to each other only through ``127.0.0.1``
addresses. (TensorFlow's gRPC servers do not let the caller choose the
interface they listen on, so they accept connections on every interface of
the machine; run on a host whose firewall keeps the ports private.)
"""
from __future__ import annotations

import gc
from typing import List

from deeprec_lite._checks import check_positive_int
from deeprec_lite.compat import tf

LOOPBACK = "127.0.0.1"


class LocalDataService:
    """Starts a dispatcher and ``num_workers`` tf.data service workers on 127.0.0.1.

    Use as a context manager or call :meth:`stop`. ``target`` is the
    ``grpc://127.0.0.1:<port>`` address clients pass to the WorkQueue.
    """

    def __init__(self, num_workers: int = 1):
        check_positive_int(num_workers, "num_workers")
        svc = tf.data.experimental.service
        self._dispatcher = svc.DispatchServer(svc.DispatcherConfig(port=0))
        port = int(self._dispatcher.target.rsplit(":", 1)[1])
        self.address = f"{LOOPBACK}:{port}"
        self.target = f"grpc://{self.address}"
        self._workers: List = []
        for _ in range(num_workers):
            self._workers.append(svc.WorkerServer(svc.WorkerConfig(
                dispatcher_address=self.address,
                worker_address=f"{LOOPBACK}:%port%",
                data_transfer_address=f"{LOOPBACK}:%dts_port%",
                port=0)))
        self._stopped = False

    @property
    def num_workers(self) -> int:
        return len(self._workers)

    def stop(self) -> None:
        """Stops the workers, then the dispatcher. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        # Client iterators that are garbage but not yet collected (reference cycles)
        # keep requests open on the workers, which then take seconds to stop.
        gc.collect()
        for worker in self._workers:
            worker.stop()
        self._dispatcher.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
