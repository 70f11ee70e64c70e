"""FDO, field-level dimension optimization (GDCN paper, Wang et al. CIKM 2023).

Train once with a common embedding dim, then per field run a PCA of that field's
embedding table and keep the smallest number of components whose explained variance
reaches `threshold`; retrain with those per-field dims (e.g. `GDCN(field_dims=...)`).

PCA here is frequency-weighted: each key's row counts as many times as the key was looked
up (`freq` of the KV table), so the rows that the data actually uses dominate; with
`weighted=False` every admitted key counts once (the paper's table-level PCA). Only
admitted keys enter. Threshold: the GDCN paper uses 0.8 or 0.95 of the variance; the
default here is 0.95 (conservative: a little more width than the 0.8 setting).
"""
import numpy as np

from deeprec_lite._checks import check_int, check_number
from deeprec_lite.layers import KVEmbedding

DEFAULT_THRESHOLD = 0.95


def explained_variance(values, weights=None):
    """Eigenvalues (descending) of the weighted covariance of `values` [N, D]."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0 or not np.isfinite(values).all():
        raise ValueError(f"values must be a non-empty [N, D] matrix of finite numbers; received "
                         f"shape {values.shape}")
    w = np.ones(len(values)) if weights is None else np.asarray(weights, dtype=np.float64)
    if (w.shape != (len(values),) or not np.isfinite(w).all() or (w < 0).any()
            or w.sum() <= 0 or not np.isfinite(w.sum())):
        raise ValueError(f"weights must be {len(values)} finite non-negative numbers with a "
                         f"positive sum; received weights of shape {w.shape}")
    w = w / w.sum()
    centered = values - w @ values
    covariance = (centered * w[:, None]).T @ centered
    return np.clip(np.linalg.eigvalsh(covariance)[::-1], 0.0, None)


def pca_dim(values, weights=None, threshold=DEFAULT_THRESHOLD, min_dim=1):
    """Smallest k (>= min_dim) whose top-k components explain >= `threshold` of the
    (weighted) variance of `values` [N, D], at most D; `min_dim` (at most D) when the
    variance is 0."""
    check_number(threshold, "threshold", low=0, high=1, low_open=True)
    check_int(min_dim, "min_dim", minimum=1)
    eigenvalues = explained_variance(values, weights)
    total = eigenvalues.sum()
    if total <= 0:
        return min(min_dim, len(eigenvalues))
    ratios = np.cumsum(eigenvalues) / total
    k = int(np.searchsorted(ratios, threshold - 1e-12) + 1)
    return int(min(max(k, min_dim), len(eigenvalues)))


def field_tables(model, prefix="embedding"):
    """{field name: KVVariable} of the model's KVEmbedding layers named `<prefix>_<field>`
    (the zoo's main embeddings; `linear_*` and co-action tables are left out)."""
    tables = {}
    for layer in model.submodules:
        if isinstance(layer, KVEmbedding) and layer.name.startswith(prefix + "_"):
            tables[layer.name[len(prefix) + 1:]] = layer.kv
    if not tables:
        raise ValueError(f"model {model.name!r} has no KVEmbedding layer named "
                         f"'{prefix}_<field>'; received prefix={prefix!r}")
    return tables


def propose_field_dims(model_or_tables, threshold=DEFAULT_THRESHOLD, weighted=True, min_dim=1,
                       prefix="embedding"):
    """Per-field embedding dims from the PCA of each field's trained table.

    Args:
      model_or_tables: a trained zoo model, or {field: KVVariable or KVRecords}.
      threshold: explained-variance ratio to keep, in (0, 1] (default 0.95).
      weighted: weight every key's row by its lookup frequency (default True).
      min_dim: smallest dim proposed.
      prefix: name prefix of the embedding layers when a model is given.
    Returns: {field: dim}; fields whose table has no admitted key are left out.
    """
    tables = (field_tables(model_or_tables, prefix) if hasattr(model_or_tables, "layers")
              else model_or_tables)
    dims = {}
    for field, table in tables.items():
        records = table.export() if hasattr(table, "export") else table
        admitted = np.asarray(records.admitted, dtype=bool)
        if not admitted.any():
            continue
        values = np.asarray(records.values)[admitted]
        freqs = np.asarray(records.freqs, dtype=np.float64)[admitted]
        freqs = freqs if weighted and freqs.sum() > 0 else None  # no counts: unweighted
        dims[field] = pca_dim(values, freqs, threshold, min_dim)
    return dims
