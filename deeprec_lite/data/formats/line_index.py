"""Byte offsets of the lines of a text file (vectorized scan), for reading by row range."""
from __future__ import annotations

import mmap
import os

import numpy as np

_SCAN_CHUNK = 64 << 20
# The bytes of a whitespace-blank line (besides its newline); the libsvm parser trims them too.
WHITESPACE = b" \t\r\v\f"


def row_offsets(path: str, skip_header: bool = False, whitespace_blank: bool = False) -> np.ndarray:
    """Byte offset where each data row starts, plus the end offset (length ``rows + 1``).

    Blank lines (empty or a lone ``\\r``; with ``whitespace_blank`` any line of
    :data:`WHITESPACE` bytes only) are not rows; with ``skip_header`` the first
    non-blank line is not a row either. Rows ``[a, b)`` are the bytes
    ``[offsets[a], offsets[b])``.
    """
    size = os.path.getsize(path)
    if size == 0:
        return np.zeros(1, dtype=np.int64)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        buf = np.frombuffer(mm, dtype=np.uint8)
        try:
            pieces = [np.flatnonzero(buf[lo:lo + _SCAN_CHUNK] == 10) + lo
                      for lo in range(0, size, _SCAN_CHUNK)]
            newline_at = np.concatenate(pieces).astype(np.int64)
            line_starts = np.concatenate([[0], newline_at + 1]).astype(np.int64)
            line_ends = newline_at if int(buf[-1]) == 10 else np.append(newline_at, size)
            line_starts = line_starts[:len(line_ends)]
            lengths = line_ends - line_starts
            if whitespace_blank:
                keep = _has_text(buf, line_starts)
            else:
                lone_cr = (lengths == 1) & (buf[np.minimum(line_starts, size - 1)] == 13)
                keep = (lengths > 0) & ~lone_cr
        finally:
            del buf
    starts = line_starts[keep]
    nexts = np.minimum(line_ends[keep] + 1, size)
    if skip_header:
        starts, nexts = starts[1:], nexts[1:]
    if len(starts) == 0:
        return np.array([size], dtype=np.int64)
    return np.append(starts, nexts[-1]).astype(np.int64)


def _has_text(buf: np.ndarray, line_starts: np.ndarray) -> np.ndarray:
    """Per line: whether it holds a byte outside WHITESPACE and the newline (scanned by chunk)."""
    text = np.ones(256, dtype=bool)
    text[list(WHITESPACE + b"\n")] = False
    found = np.zeros(len(line_starts), dtype=bool)
    for lo in range(0, len(buf), _SCAN_CHUNK):
        hi = min(lo + _SCAN_CHUNK, len(buf))
        # Segments: from lo, then from each line start in (lo, hi); segment k lies in line
        # first - 1 + k (line_starts[0] == 0, so first >= 1).
        first = int(np.searchsorted(line_starts, lo, side="right"))
        last = int(np.searchsorted(line_starts, hi, side="left"))
        cuts = np.concatenate([[lo], line_starts[first:last]]) - lo
        found[first - 1:last] |= np.logical_or.reduceat(text[buf[lo:hi]], cuts)
    return found


def read_row_bytes(path: str, offsets: np.ndarray, start: int, stop: int) -> bytes:
    """The bytes of data rows ``[start, stop)`` given ``row_offsets(path)``."""
    with open(path, "rb") as f:
        f.seek(int(offsets[start]))
        return f.read(int(offsets[stop] - offsets[start]))
