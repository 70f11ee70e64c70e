"""Lazy loading of the C++ op libraries (ops/, built by setup.py).

Nothing is loaded at import time; the first KV table needs the KV library, the
first file reader the reader library. When one is missing, built twice (setup.py and
Bazel) or built for another TensorFlow, the error says how to rebuild. There is no
fallback.
"""
import importlib.machinery
import os
import threading

import tensorflow as tf

_LOCK = threading.Lock()
_LIBRARY = None

REBUILD_HINT = ("Rebuild it from the repository root with `pip install -e .` "
                "(or `python setup.py build_ext --inplace`).")


class OpLibraryError(ImportError):
    """An op library is missing, stale, or does not load."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def library_path(name="_kv_ops", directory=_PACKAGE_DIR):
    """The built library in ``directory``: ``name`` with this Python's extension suffix
    (setup.py) or ``.so`` (scripts/bazel_build.sh). OpLibraryError when there is none, or
    both (which one is current cannot be told)."""
    found = [p for p in (os.path.join(directory, name + suffix)
                         for suffix in importlib.machinery.EXTENSION_SUFFIXES)
             if os.path.exists(p)]
    if not found:
        raise OpLibraryError(f"The deeprec_lite op library ({name}*.so) is not built in "
                             f"{directory}. " + REBUILD_HINT)
    if len(found) > 1:
        raise OpLibraryError(f"Two builds of the deeprec_lite op library {name}: "
                             f"{', '.join(found)}. Remove the one that is not current. "
                             + REBUILD_HINT)
    return found[0]


_MARKER = b"DRL_BUILT_FOR_TENSORFLOW="


def _built_for(path):
    """The TensorFlow version stamped into the library by setup.py (read, not loaded)."""
    with open(path, "rb") as f:
        data = f.read()
    start = data.find(_MARKER)
    if start < 0:
        return "an unknown version"
    start += len(_MARKER)
    return data[start:data.index(b"\0", start)].decode("ascii", "replace")


def _minor(version):
    return ".".join(version.split(".")[:2])


def load_library(path):
    """Loads the op library at ``path`` after checking the TensorFlow it was built for."""
    built_for = _built_for(path)
    if _minor(built_for) != _minor(tf.__version__):
        raise OpLibraryError(
            f"{path} was built for TensorFlow {built_for}, but TensorFlow "
            f"{tf.__version__} is running. " + REBUILD_HINT)
    try:
        return tf.load_op_library(path)
    except (tf.errors.NotFoundError, OSError) as e:
        raise OpLibraryError(f"{path} does not load in TensorFlow {tf.__version__}: {e}. "
                             + REBUILD_HINT) from e


def load():
    """Returns the loaded KV op module (generated op wrappers), loading it once."""
    global _LIBRARY
    with _LOCK:
        if _LIBRARY is None:
            _LIBRARY = load_library(library_path())
        return _LIBRARY
