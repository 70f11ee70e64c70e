"""Work items: an epoch's input cut into (file, row range) pieces, and a digest of the list."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Callable, List, Sequence

import numpy as np

from deeprec_lite._checks import check_positive_int


@dataclasses.dataclass(frozen=True)
class WorkItem:
    """Rows ``[start, stop)`` of file ``path``."""

    path: str
    start: int
    stop: int

    @property
    def num_rows(self) -> int:
        return self.stop - self.start


def plan_work_items(paths: Sequence[str], rows_per_item: int,
                    count_rows: Callable[[str], int]) -> List[WorkItem]:
    """Cuts every file into consecutive items of ``rows_per_item`` rows (the last one shorter).

    Empty files give no item. Choose ``rows_per_item`` as a multiple of the batch
    size: batches never span two items, so an item's last batch may be short.
    """
    check_positive_int(rows_per_item, "rows_per_item")
    items: List[WorkItem] = []
    for path in paths:
        n = int(count_rows(path))
        items.extend(WorkItem(path, lo, min(lo + rows_per_item, n))
                     for lo in range(0, n, rows_per_item))
    return items


def work_list_digest(items: Sequence[WorkItem]) -> str:
    """SHA-256 of the work list: paths, file sizes and row ranges, in order.

    A restored queue state applies only to the same digest; a changed list (a
    file added, removed, rewritten with another size, or cut differently) gives
    another digest.
    """
    sizes = {}
    entries = []
    for item in items:
        if item.path not in sizes:
            sizes[item.path] = os.path.getsize(item.path) if os.path.exists(item.path) else -1
        entries.append([item.path, sizes[item.path], item.start, item.stop])
    return hashlib.sha256(json.dumps(entries).encode("utf-8")).hexdigest()


def epoch_order(num_items: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which an epoch hands out items: a permutation keyed by (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(num_items)
