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

    ``skipped`` lists ``(path, reason)``; ``count`` is its length. The files found bad
    when a reader is built come first, then those its C++ reader op left while reading.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._skipped: List[Tuple[str, str]] = []
        self._logs: list = []

    def add(self, path: str, reason: str) -> None:
        """Records that ``path`` was skipped because of ``reason``."""
        with self._lock:
            self._skipped.append((str(path), str(reason)))

    def attach(self, log) -> None:
        """Adds the entries of a reader op's bad-file log (anything with ``entries()``)."""
        with self._lock:
            self._logs.append(log)

    @property
    def count(self) -> int:
        """How many files were skipped so far."""
        return len(self.skipped)

    @property
    def skipped(self) -> List[Tuple[str, str]]:
        """(path, reason) for each skipped file, in the order they were skipped."""
        with self._lock:
            return list(self._skipped) + [entry for log in self._logs for entry in log.entries()]

    def __repr__(self):
        return f"BadFileCounter(count={self.count})"
