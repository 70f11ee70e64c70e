"""The op library loader: clear errors when the library is missing or stale."""
import importlib.machinery
import os
import re
import sys

import pytest

from deeprec_lite.kv import op_library
from deeprec_lite.compat import tf


def test_missing_library_says_how_to_rebuild(tmp_path):
    with pytest.raises(op_library.OpLibraryError, match=r"not built in .*pip install -e \."):
        op_library.library_path(directory=str(tmp_path))


def test_two_builds_of_a_library_are_refused_by_name(tmp_path):
    # setup.py names the library with this Python's suffix, scripts/bazel_build.sh plain .so;
    # with both present the loader cannot tell which is current.
    setup_py = tmp_path / ("_kv_ops" + importlib.machinery.EXTENSION_SUFFIXES[0])
    bazel = tmp_path / "_kv_ops.so"
    setup_py.write_bytes(b"")
    assert op_library.library_path(directory=str(tmp_path)) == str(setup_py)
    bazel.write_bytes(b"")
    with pytest.raises(op_library.OpLibraryError,
                       match=rf"Two builds .*{re.escape(str(setup_py))}.*{re.escape(str(bazel))}"):
        op_library.library_path(directory=str(tmp_path))
    setup_py.unlink()
    assert op_library.library_path(directory=str(tmp_path)) == str(bazel)
    other_python = "cpython-39" if sys.version_info[:2] != (3, 9) else "cpython-310"
    (tmp_path / f"_kv_ops.{other_python}-x86_64-linux-gnu.so").write_bytes(b"")
    assert op_library.library_path(directory=str(tmp_path)) == str(bazel)


def test_library_built_for_another_tensorflow_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "_kv_ops.so"
    fake.write_bytes(b"\x7fELF....DRL_BUILT_FOR_TENSORFLOW=2.19.0\x00more")
    monkeypatch.setattr(op_library, "_LIBRARY", None)
    monkeypatch.setattr(op_library, "library_path", lambda: str(fake))
    with pytest.raises(op_library.OpLibraryError,
                       match=rf"built for TensorFlow 2\.19\.0, but TensorFlow {tf.__version__} .*"
                             r"pip install -e \."):
        op_library.load()


def test_installed_library_matches_running_tensorflow():
    path = op_library.library_path()
    assert op_library._minor(op_library._built_for(path)) == op_library._minor(tf.__version__)
    assert hasattr(op_library.load(), "drl_kv_find_or_insert")


def test_reader_library_is_built_and_loads():
    from deeprec_lite.data.formats import arrow_dataset

    path = op_library.library_path("_arrow_reader_ops", os.path.dirname(arrow_dataset.__file__))
    assert op_library._minor(op_library._built_for(path)) == op_library._minor(tf.__version__)
    assert hasattr(op_library.load_library(path), "drl_arrow_reader_dataset")
