"""Errors and counters for bad input files."""
from __future__ import annotations

import threading
from typing import List, Optional, Tuple


class BadFileError(ValueError):
    """An input file cannot be read as the schema says.

    The message names the file and, when one is at fault, the column.
    ``path`` and ``column`` hold them for programs.
    """

    def __init__(self, path: str, problem: str, column: Optional[str] = None):
        self.path = str(path)
        self.column = column
        self.problem = problem
        where = f"file {self.path!r}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {problem}")


class BadFileCounter:
    """Counts the files a reader skipped (``skip_bad_files=True``), thread-safe.

    ``skipped`` lists ``(path, reason)``; ``count`` is its length.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._skipped: List[Tuple[str, str]] = []

    def add(self, path: str, reason: str) -> None:
        """Records that ``path`` was skipped because of ``reason``."""
        with self._lock:
            self._skipped.append((str(path), str(reason)))

    @property
    def count(self) -> int:
        """How many files were skipped so far."""
        with self._lock:
            return len(self._skipped)

    @property
    def skipped(self) -> List[Tuple[str, str]]:
        """(path, reason) for each skipped file, in the order they were skipped."""
        with self._lock:
            return list(self._skipped)

    def __repr__(self):
        return f"BadFileCounter(count={self.count})"
