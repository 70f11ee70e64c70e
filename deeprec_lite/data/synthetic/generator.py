"""Synthetic Criteo-like CTR data with a planted ground truth (so the best AUC is known).

Rows have ``num_numeric`` count features (``I1``...) and ``num_categorical`` id
features (``C1``...). Labels are drawn from a planted model::

    logit = bias
          + first_order_scale * sum_f w_f[id_f] / sqrt(F)
          + interaction_scale * sum_{(a,b) in pairs} <v_a[id_a], v_b[id_b]> / sqrt(k |pairs|)
          + numeric_scale     * sum_j beta_j * (log1p(I_j) - mu_j) / sigma_j / sqrt(J)
    p = sigmoid(logit),  label ~ Bernoulli(p)

where ``w`` and ``v`` (rank ``k``) are per-id weights, fixed functions of
(seed, field, id), and ``pairs`` a seeded random set of field pairs. ``p`` is a
function of the observed features only (a missing value contributes 0), so
ranking by ``p`` is the best any model can do: :func:`bayes_auc` of the rows'
probabilities is the best achievable AUC, returned with the data.

Ids: field ``f`` has ``vocab_sizes[f]`` popularity slots; a row's slot is drawn
from a Zipf-like power law (exponent ``zipf_exponent``, sampled in closed form). Each day a share
``new_id_rate`` of the slots (spread over all popularity levels) gets a brand
new id, so new ids appear day after day and old ones fade out. Ids are
scrambled positive int64 (or their decimal strings).

Deterministic by seed, any size: rows are made in chunks of ``CHUNK_ROWS`` from
a random stream keyed by (seed, day, chunk), so row ``i`` of a day is the same
whatever the total size or the way it is asked for. Vectorized numpy.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
import pyarrow as pa

from deeprec_lite._checks import check_int, check_number, check_positive_int, is_int
from deeprec_lite.data.auc import bayes_auc
from deeprec_lite.data.formats.arrow_columns import arrow_to_columns
from deeprec_lite.data.formats.column_batch import rebatch_chunks
from deeprec_lite.data.formats.schema import CategoricalField, LabelField, NumericField, Schema
from deeprec_lite.data.formats.tf_conversion import chunk_batches, column_batches_to_dataset
from deeprec_lite.data.synthetic import stateless_random as srand

CHUNK_ROWS = 65536
LABEL = "label"
MIN_TARGET_CTR = 1e-6  # target_ctr lies in [MIN_TARGET_CTR, 1 - MIN_TARGET_CTR]


def default_vocab_sizes(num_categorical: int) -> List[int]:
    """Criteo-like spread of vocabulary sizes: from 10 to 100,000 slots, geometric."""
    if num_categorical == 1:
        return [10_000]
    return [int(round(v)) for v in np.geomspace(10, 100_000, num_categorical)]


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic data (see the module docstring)."""

    num_numeric: int = 13
    num_categorical: int = 26
    vocab_sizes: Optional[Union[int, Tuple[int, ...]]] = None
    zipf_exponent: float = 1.1
    new_id_rate: float = 0.05
    id_dtype: str = "int64"
    embedding_rank: int = 4
    num_interaction_pairs: Optional[int] = None
    first_order_scale: float = 1.0
    interaction_scale: float = 1.0
    numeric_scale: float = 0.5
    target_ctr: float = 0.25
    numeric_missing_rate: float = 0.1
    categorical_missing_rate: float = 0.0
    seed: int = 0

    def __post_init__(self):
        def bad(name, want):
            raise ValueError(f"SyntheticConfig.{name} must be {want}, got {getattr(self, name)!r}")

        if not is_int(self.num_numeric) or self.num_numeric < 0:
            bad("num_numeric", "an int >= 0")
        if not is_int(self.num_categorical) or self.num_categorical < 0:
            bad("num_categorical", "an int >= 0")
        if self.num_numeric + self.num_categorical == 0:
            raise ValueError("SyntheticConfig needs at least one numeric or categorical field")
        sizes = self.vocab_sizes
        if sizes is None:
            sizes = default_vocab_sizes(self.num_categorical) if self.num_categorical else []
        elif is_int(sizes):
            sizes = [int(sizes)] * self.num_categorical
        sizes = tuple(int(s) if is_int(s) else s for s in sizes)
        if len(sizes) != self.num_categorical or not all(is_int(s) and s >= 1 for s in sizes):
            bad("vocab_sizes", f"an int >= 1 or {self.num_categorical} ints >= 1")
        object.__setattr__(self, "vocab_sizes", sizes)
        number = self._check_number
        number("zipf_exponent", low=0, low_open=True)
        number("new_id_rate", low=0, high=1)
        if self.id_dtype not in ("int64", "string"):
            bad("id_dtype", "'int64' or 'string'")
        if not is_int(self.embedding_rank) or self.embedding_rank < 1:
            bad("embedding_rank", "an int >= 1")
        max_pairs = self.num_categorical * (self.num_categorical - 1) // 2
        pairs = self.num_interaction_pairs
        if pairs is None:
            pairs = min(2 * self.num_categorical, max_pairs)
        if not is_int(pairs) or not 0 <= pairs <= max_pairs:
            bad("num_interaction_pairs", f"an int in [0, {max_pairs}]")
        object.__setattr__(self, "num_interaction_pairs", int(pairs))
        for name in ("first_order_scale", "interaction_scale", "numeric_scale"):
            number(name, low=0)
        number("target_ctr", low=MIN_TARGET_CTR, high=1 - MIN_TARGET_CTR)
        for name in ("numeric_missing_rate", "categorical_missing_rate"):
            number(name, low=0, high=1, high_open=True)
        check_int(self.seed, "SyntheticConfig.seed", minimum=0)  # int64: hashed as uint64

    def _check_number(self, name, **bounds):
        """Stores field `name` as a float after check_number."""
        value = check_number(getattr(self, name), f"SyntheticConfig.{name}", **bounds)
        object.__setattr__(self, name, value)


@dataclasses.dataclass
class SyntheticRows:
    """Generated rows.

    ``columns``: ``"label"`` float32, ``C*`` int64 or str ids (missing ones hold
    the schema default), ``I*`` float64 raw counts (NaN when missing).
    ``missing``: per categorical column, a bool mask of missing ids (or None).
    ``probabilities``: the true click probabilities; ``logit_parts``: the
    planted model's first-order, interaction and numeric terms and the bias.
    """

    columns: Dict[str, np.ndarray]
    missing: Dict[str, Optional[np.ndarray]]
    probabilities: np.ndarray
    logit_parts: Dict[str, np.ndarray]

    @property
    def num_rows(self) -> int:
        return len(self.probabilities)

    @property
    def labels(self) -> np.ndarray:
        return self.columns[LABEL]

    def bayes_auc(self) -> float:
        """Best achievable AUC on these rows (see :func:`deeprec_lite.data.auc.bayes_auc`)."""
        return bayes_auc(self.probabilities)


def _concat_rows(parts: List[SyntheticRows]) -> SyntheticRows:
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    missing = {k: (None if all(p.missing[k] is None for p in parts) else np.concatenate(
        [p.missing[k] if p.missing[k] is not None else np.zeros(p.num_rows, bool) for p in parts]))
        for k in first.missing}
    return SyntheticRows(
        columns={k: np.concatenate([p.columns[k] for p in parts]) for k in first.columns},
        missing=missing,
        probabilities=np.concatenate([p.probabilities for p in parts]),
        logit_parts={k: np.concatenate([p.logit_parts[k] for p in parts]) for k in first.logit_parts})


def _slice_rows(rows: SyntheticRows, lo: int, hi: int) -> SyntheticRows:
    return SyntheticRows(
        columns={k: v[lo:hi] for k, v in rows.columns.items()},
        missing={k: (None if v is None else v[lo:hi]) for k, v in rows.missing.items()},
        probabilities=rows.probabilities[lo:hi],
        logit_parts={k: v[lo:hi] for k, v in rows.logit_parts.items()})


class SyntheticCTR:
    """Criteo-like synthetic CTR data with a planted ground-truth model.

    Example::

        gen = SyntheticCTR(SyntheticConfig(seed=1))
        rows = gen.generate(100_000, day=0)       # numpy columns + true probabilities
        print(rows.bayes_auc())                   # best achievable AUC
        ds = gen.dataset(100_000, batch_size=4096, day=0)

    See :mod:`deeprec_lite.data.synthetic.output` for Parquet / CSV files.
    """

    def __init__(self, config: Optional[SyntheticConfig] = None, **overrides):
        if config is None:
            config = SyntheticConfig(**overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        if not isinstance(config, SyntheticConfig):
            raise ValueError(f"config must be a SyntheticConfig, got {type(config).__name__}")
        self.config = config
        c = config
        self.categorical_names = [f"C{i + 1}" for i in range(c.num_categorical)]
        self.numeric_names = [f"I{j + 1}" for j in range(c.num_numeric)]
        self.schema = Schema(
            labels=[LabelField(LABEL, binary=True)],
            categorical=[CategoricalField(n, dtype=c.id_dtype) for n in self.categorical_names],
            numeric=[NumericField(n, transform="log") for n in self.numeric_names])
        # Ground-truth parameters that do not depend on ids.
        j = np.arange(c.num_numeric)
        self._num_mu = 1.0 + 3.0 * srand.uniform(c.seed, 11, j)
        self._num_sigma = 0.5 + 1.0 * srand.uniform(c.seed, 12, j)
        self._num_beta = srand.normal(c.seed, 13, j)
        all_pairs = [(a, b) for a in range(c.num_categorical) for b in range(a + 1, c.num_categorical)]
        order = np.argsort(srand.uniform(c.seed, 14, np.arange(len(all_pairs))), kind="stable")
        self.interaction_pairs = [all_pairs[i] for i in sorted(order[:c.num_interaction_pairs])]
        self._bias = None
        self._tables_cache: Dict[int, list] = {}

    # --- ground truth -----------------------------------------------------------------
    def _zipf_slots(self, vocab: int, u: np.ndarray) -> np.ndarray:
        """Popularity slots in [0, vocab) for uniforms ``u``: a discretized bounded power law,
        P(slot k) proportional to the integral of x^-a over [k+1, k+2) (Zipf-like)."""
        a = self.config.zipf_exponent
        if abs(a - 1.0) < 1e-9:
            x = np.exp(u * math.log(vocab + 1.0))
        else:
            top = (vocab + 1.0) ** (1.0 - a)
            x = (1.0 + u * (top - 1.0)) ** (1.0 / (1.0 - a))
        return np.clip(x.astype(np.int64) - 1, 0, vocab - 1)

    def _day_tables(self, day: int):
        """Per field: id, first-order weight, interaction vector of every slot on ``day``."""
        if day in self._tables_cache:
            return self._tables_cache[day]
        c = self.config
        tables = []
        for f, vocab in enumerate(c.vocab_sizes):
            slot = np.arange(vocab, dtype=np.int64)
            phase = srand.uniform(c.seed, 21, f, slot)
            generation = np.floor(day * c.new_id_rate + phase).astype(np.int64)
            raw = slot + generation * vocab                      # unique per (slot, generation)
            key = srand.hash_keys(c.seed, 22, f, raw)
            ids = (key >> np.uint64(1)).astype(np.int64)        # scrambled positive int64
            w = _unit_uniform(srand.mix64(key ^ np.uint64(1)))
            v = np.stack([_unit_uniform(srand.mix64(key ^ np.uint64(2 + r)))
                          for r in range(c.embedding_rank)], axis=1)
            if c.id_dtype == "string":
                ids = ids.astype(str).astype(object)
            tables.append((ids, w, v))
        if len(self._tables_cache) >= 2:
            self._tables_cache.pop(next(iter(self._tables_cache)))
        self._tables_cache[day] = tables
        return tables

    def true_weights(self, field: int, ids, day: int = 0):
        """The planted (first-order weight, interaction vector) of ``ids`` of field index ``field``
        as active on ``day`` (ids not active that day raise ValueError). For tests and analysis."""
        check_int(field, "field", minimum=0, below=self.config.num_categorical)
        check_int(day, "day", minimum=0)
        ids_table, w, v = self._day_tables(day)[field]
        ids = np.asarray(ids, dtype=ids_table.dtype)
        order = np.argsort(ids_table)
        pos = np.searchsorted(ids_table[order], ids)
        pos = np.minimum(pos, len(order) - 1)
        slots = order[pos]
        if not np.all(ids_table[slots] == ids):
            raise ValueError(f"some ids are not active in field {field} on day {day}")
        return w[slots], v[slots]

    @property
    def bias(self) -> float:
        """Intercept of the planted model, calibrated so day 0 has CTR ~ ``target_ctr``."""
        if self._bias is None:
            parts = self._raw_chunk(0, 0, with_bias=False)
            z = parts["logit_no_bias"]
            # The mean of sigmoid(z + bias) is target_ctr for a bias in this bracket.
            target_logit = math.log(self.config.target_ctr / (1 - self.config.target_ctr))
            lo, hi = target_logit - z.max(), target_logit - z.min()
            for _ in range(80):
                mid = 0.5 * (lo + hi)
                if _sigmoid(z + mid).mean() < self.config.target_ctr:
                    lo = mid
                else:
                    hi = mid
            self._bias = 0.5 * (lo + hi)
        return self._bias

    # --- rows ---------------------------------------------------------------------------
    def _raw_chunk(self, day: int, chunk: int, with_bias: bool = True) -> dict:
        c = self.config
        rng = np.random.default_rng([c.seed, day, chunk])
        m = CHUNK_ROWS
        tables = self._day_tables(day)
        out = {"ids": [], "missing": [], "w": [], "v": []}
        for f, vocab in enumerate(c.vocab_sizes):
            slot = self._zipf_slots(vocab, rng.random(m))
            ids_table, w_table, v_table = tables[f]
            missing = rng.random(m) < c.categorical_missing_rate if c.categorical_missing_rate else None
            w, v = w_table[slot], v_table[slot]
            if missing is not None:
                w = np.where(missing, 0.0, w)
                v = np.where(missing[:, None], 0.0, v)
            out["ids"].append(ids_table[slot])
            out["missing"].append(missing)
            out["w"].append(w)
            out["v"].append(v)
        first = (np.sum(out["w"], axis=0) / math.sqrt(c.num_categorical)
                 if c.num_categorical else np.zeros(m))
        inter = np.zeros(m)
        for a, b in self.interaction_pairs:
            inter += np.einsum("ik,ik->i", out["v"][a], out["v"][b])
        if self.interaction_pairs:
            inter /= math.sqrt(c.embedding_rank * len(self.interaction_pairs))
        z = rng.standard_normal((m, c.num_numeric))
        counts = np.floor(np.exp(self._num_mu + self._num_sigma * z))
        if c.numeric_missing_rate:
            counts[rng.random((m, c.num_numeric)) < c.numeric_missing_rate] = np.nan
        standardized = (np.log1p(counts) - self._num_mu) / self._num_sigma
        numeric = (np.nansum(standardized * self._num_beta, axis=1) / math.sqrt(c.num_numeric)
                   if c.num_numeric else np.zeros(m))
        label_u = rng.random(m)
        logit = (c.first_order_scale * first + c.interaction_scale * inter
                 + c.numeric_scale * numeric)
        out.update(first_order=c.first_order_scale * first,
                   interaction=c.interaction_scale * inter,
                   numeric=c.numeric_scale * numeric, counts=counts, label_u=label_u,
                   logit_no_bias=logit)
        if with_bias:
            out["bias"] = np.full(m, self.bias)
        return out

    def _chunk_rows(self, day: int, chunk: int) -> SyntheticRows:
        raw = self._raw_chunk(day, chunk)
        p = _sigmoid(raw["logit_no_bias"] + raw["bias"])
        columns = {LABEL: (raw["label_u"] < p).astype(np.float32)}
        missing = {}
        for f, name in enumerate(self.categorical_names):
            ids, miss = raw["ids"][f], raw["missing"][f]
            if miss is not None:
                ids = ids.copy()
                ids[miss] = self.schema.field(name).default
            columns[name] = ids
            missing[name] = miss
        for j, name in enumerate(self.numeric_names):
            columns[name] = raw["counts"][:, j]
        parts = {k: raw[k] for k in ("first_order", "interaction", "numeric", "bias")}
        return SyntheticRows(columns, missing, p, parts)

    def iter_rows(self, num_rows: int, day: int = 0, start_row: int = 0,
                  max_rows: int = CHUNK_ROWS) -> Iterator[SyntheticRows]:
        """Rows ``[start_row, start_row + num_rows)`` of ``day``, in pieces of at most ``max_rows``."""
        check_rows(num_rows, day, start_row)  # here, not at the first next()
        check_positive_int(max_rows, "max_rows")
        return self._iter_rows(num_rows, day, start_row, max_rows)

    def _iter_rows(self, num_rows, day, start_row, max_rows):
        stop = start_row + num_rows
        position = start_row
        while position < stop:
            chunk, offset = divmod(position, CHUNK_ROWS)
            rows = self._chunk_rows(day, chunk)
            hi = min(CHUNK_ROWS, offset + (stop - position))
            for lo in range(offset, hi, max_rows):
                yield _slice_rows(rows, lo, min(lo + max_rows, hi))
            position += hi - offset

    def generate(self, num_rows: int, day: int = 0, start_row: int = 0) -> SyntheticRows:
        """Rows ``[start_row, start_row + num_rows)`` of ``day`` in memory."""
        parts = list(self.iter_rows(num_rows, day, start_row))
        if not parts:
            return _slice_rows(self._chunk_rows(day, 0), 0, 0)
        return _concat_rows(parts)

    def bayes_auc(self, num_rows: int, day: int = 0, start_row: int = 0) -> float:
        """Best achievable AUC on rows ``[start_row, start_row + num_rows)`` of ``day``."""
        check_int(num_rows, "num_rows", minimum=2)
        probabilities = np.concatenate(
            [r.probabilities for r in self.iter_rows(num_rows, day, start_row)])
        return bayes_auc(probabilities)

    def to_arrow(self, rows: SyntheticRows) -> pa.Table:
        """An Arrow table of the rows: missing ids and counts are nulls, counts are int64."""
        arrays = {LABEL: pa.array(rows.columns[LABEL], type=pa.float32())}
        id_type = pa.int64() if self.config.id_dtype == "int64" else pa.string()
        for name in self.categorical_names:
            arrays[name] = pa.array(rows.columns[name], type=id_type, mask=rows.missing[name])
        for name in self.numeric_names:
            counts = rows.columns[name]
            missing = np.isnan(counts)
            arrays[name] = pa.array(np.where(missing, 0, counts).astype(np.int64), mask=missing)
        return pa.table(arrays)

    def dataset(self, num_rows: int, batch_size: int, day: int = 0, start_row: int = 0,
                drop_remainder: bool = False):
        """A tf.data.Dataset of ``(features, label)`` batches, as the readers would give
        for the same rows written to files (numeric ``log`` transform, defaults for missing)."""
        check_positive_int(batch_size, "batch_size")
        check_rows(num_rows, day, start_row)  # here, not when the dataset is iterated
        schema = self.schema

        def generate(_shard):
            pieces = (arrow_to_columns(self.to_arrow(rows), schema, "<synthetic>")
                      for rows in self.iter_rows(num_rows, day=day, start_row=start_row))
            return rebatch_chunks(pieces, batch_size, chunk_batches(batch_size), drop_remainder)

        return column_batches_to_dataset(generate, 1, schema, batch_size=batch_size)


def _unit_uniform(key: np.ndarray) -> np.ndarray:
    """uint64 -> uniform on [-sqrt(3), sqrt(3)) (mean 0, variance 1)."""
    u = (key >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return (2.0 * u - 1.0) * math.sqrt(3.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def check_rows(num_rows, day, start_row) -> None:
    """ValueError naming the argument unless each is an integer >= 0 (int64)."""
    for name, value in (("num_rows", num_rows), ("day", day), ("start_row", start_row)):
        check_int(value, name, minimum=0)
