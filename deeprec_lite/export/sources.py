"""Where exported records come from: a model, KV variables, or a checkpoint on disk.

Every source gives {table name: kv.snapshots.TableSnapshot} (a table's records as a
stream of chunks, one internal shard at a time, so an export never holds a second
copy of a table) and the global step the staleness filter measures from.
Checkpoints are read with `tf.train.load_checkpoint` from the tensors that
deeprec_lite.kv.checkpointing writes (or, in checkpoints of earlier releases, one
tensor per field), so no model has to be built.
"""
import dataclasses
import os
from typing import Mapping, Optional

import numpy as np

from deeprec_lite.compat import tf
from deeprec_lite.kv import checkpointing, snapshots
from deeprec_lite.kv.partitioned_variable import KV_VARIABLES
from deeprec_lite.training import checkpoints

# The per-key tensors of a KVVariable in a checkpoint of earlier releases.
_KV_ATTRIBUTES = frozenset(["keys", "values", "freqs", "versions", "admitted", "slots",
                            "slot_names"])


@dataclasses.dataclass
class Source:
    """Loaded records: tables {name: TableSnapshot}, the description written to the
    manifest, and the checkpoint directory (None for in-memory sources)."""

    tables: dict
    description: str
    checkpoint_dir: Optional[str] = None

    @property
    def global_step(self):
        """The latest step clock of all tables (0 without tables)."""
        return max((t.step for t in self.tables.values()), default=0)


def kv_variables(source):
    """{name: KVVariable} of a model (any object with submodules), a KVVariable or a
    mapping of names to KVVariables."""
    from deeprec_lite.training.model_tables import kv_tables  # Keras front end, imported lazily

    if isinstance(source, KV_VARIABLES):
        return {source.name: source}
    if isinstance(source, Mapping):
        for name, kv in source.items():
            if not isinstance(kv, KV_VARIABLES):
                raise ValueError(f"source mapping must hold KVVariables, got {type(kv).__name__} "
                                 f"for {name!r}")
        return dict(source)
    if hasattr(source, "submodules"):
        return kv_tables(source)
    raise ValueError(f"source must be a model, a KVVariable, a mapping of KVVariables or a "
                     f"checkpoint path, got {type(source).__name__}")


def from_variables(source) -> Source:
    tables = {name: snapshots.of_variable(kv, name) for name, kv in kv_variables(source).items()}
    return Source(tables, f"{type(source).__name__} in memory")


# ----- checkpoints ------------------------------------------------------------

def resolve_checkpoint(checkpoint):
    """(checkpoint prefix, its directory) of a checkpoint directory or prefix."""
    if not isinstance(checkpoint, (str, os.PathLike)) or not os.fspath(checkpoint):
        raise ValueError(f"checkpoint must be a checkpoint directory or prefix, got {checkpoint!r}")
    path = os.fspath(checkpoint)
    if os.path.isdir(path):
        prefix = tf.train.latest_checkpoint(path)
        if prefix is None:
            raise ValueError(f"checkpoint {path!r} is a directory without a TensorFlow checkpoint "
                             "(no 'checkpoint' state file naming one)")
        return prefix, path
    if os.path.exists(path + ".index"):
        return path, os.path.dirname(os.path.abspath(path))
    raise ValueError(f"checkpoint {path!r} does not exist (neither a directory nor a prefix with "
                     "an .index file)")


def _object_graph(reader, path):
    from tensorflow.core.protobuf import trackable_object_graph_pb2  # stock TF protos

    if not reader.has_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"):
        raise ValueError(f"checkpoint {path!r} is not an object-based TF2 checkpoint "
                         "(tf.train.Checkpoint); deeprec-lite checkpoints are")
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    return graph


def _kv_nodes(graph):
    """(node, object path) of every KV table node, each once (shared tables too)."""
    paths, queue = {0: ""}, [0]
    while queue:  # breadth first: the shortest path names a node
        node_id = queue.pop(0)
        for child in graph.nodes[node_id].children:
            if child.node_id not in paths:
                prefix = paths[node_id]
                paths[child.node_id] = f"{prefix}/{child.local_name}" if prefix else child.local_name
                queue.append(child.node_id)
    for node_id, path in sorted(paths.items(), key=lambda item: item[1]):
        node = graph.nodes[node_id]
        if (node.registered_saver.name == checkpointing.REGISTERED_NAME
                or _KV_ATTRIBUTES <= {a.name for a in node.attributes}):
            yield node, path


def _step_variable(graph, node):
    """(full variable name, checkpoint key) of a KV node's `_step` clock, or None."""
    for child in node.children:
        if child.local_name == "_step":
            for attr in graph.nodes[child.node_id].attributes:
                if attr.name == "VARIABLE_VALUE":
                    return attr.full_name, attr.checkpoint_key
    return None


def from_checkpoint(checkpoint) -> Source:
    """The KV tables saved in a tf.train.Checkpoint. A table is named after its
    KVVariable (recovered from the name of its step variable), else its object path."""
    prefix, directory = resolve_checkpoint(checkpoint)
    try:
        try:
            reader = tf.train.load_checkpoint(prefix)
        except ValueError as e:  # what TensorFlow raises for a prefix that is no checkpoint
            raise ValueError(f"checkpoint {os.fspath(checkpoint)!r} cannot be read: {e}") from None
        graph = _object_graph(reader, os.fspath(checkpoint))
        tables = {name: dataclasses.replace(t, chunks=_naming_damage(t.chunks, prefix))
                  for name, t in _tables_of_checkpoint(reader, graph).items()}
    except checkpoints.READ_ERRORS as e:
        raise checkpoints.damaged(f"checkpoint {prefix}", e) from None
    if not tables:
        raise ValueError(f"checkpoint {os.fspath(checkpoint)!r} holds no deeprec-lite KV tables")
    return Source(tables, f"checkpoint {prefix}", directory)


def _naming_damage(chunks, prefix):
    """chunks, raising the damaged-checkpoint error for a file that cannot be read."""
    def named(with_slots=True):
        try:
            yield from chunks(with_slots)
        except checkpoints.READ_ERRORS as e:
            raise checkpoints.damaged(f"checkpoint {prefix}", e) from None
    return named


def _tables_of_checkpoint(reader, graph):
    tables = {}
    for node, path in _kv_nodes(graph):
        step_var = _step_variable(graph, node)
        name = path
        step = 0
        if step_var is not None:
            full_name, key = step_var
            step = int(reader.get_tensor(key))
            if full_name.endswith("_step") and full_name[:-5] and full_name[:-5] not in tables:
                name = full_name[:-5]
        if node.registered_saver.name:
            tables[name] = snapshots.of_checkpoint(reader, node.registered_saver.object_name,
                                                   name, step)
        else:
            tables[name] = _legacy_snapshot(reader, node, name, step)
    return tables


def _legacy_snapshot(reader, node, name, step):
    """A table of a checkpoint of earlier releases (one tensor per field), as one chunk."""
    fields = {a.name: reader.get_tensor(a.checkpoint_key) for a in node.attributes}
    admitted = fields["admitted"]
    pending = ~admitted
    chunk = snapshots.RecordChunk(
        fields["keys"][admitted], fields["values"][admitted], fields["slots"][admitted],
        fields["freqs"][admitted], fields["versions"][admitted], fields["keys"][pending],
        fields["freqs"][pending], fields["versions"][pending])
    return snapshots.TableSnapshot(
        name, "int64" if chunk.keys.dtype == np.int64 else "string", int(chunk.values.shape[1]),
        step, tuple(n.decode() for n in fields["slot_names"]),
        tuple(float(v) for v in fields["slot_inits"]), lambda with_slots=True: iter([chunk]),
        lambda: fields["bloom_counts"], len(admitted))


def load_source(model_or_checkpoint) -> Source:
    """Records of a model / KV variables (in memory) or of a checkpoint path."""
    if isinstance(model_or_checkpoint, (str, os.PathLike)):
        return from_checkpoint(model_or_checkpoint)
    return from_variables(model_or_checkpoint)
