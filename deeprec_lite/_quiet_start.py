"""A quiet start for the command line and the examples.

TensorFlow's C++ start-up logging (the oneDNN notice, CUDA probing on a machine without
a GPU, CPU-feature notes) goes to the process's stderr before Python can filter it. The
command line imports TensorFlow through `import_tensorflow_quietly`, which holds that
output back (and shows it if the import fails) and sets TF_CPP_MIN_LOG_LEVEL=3 unless
the user set it. Library users who import deeprec_lite get TensorFlow's defaults.
"""
import os
import sys
import tempfile


def import_tensorflow_quietly():
    """Imports TensorFlow with its start-up logging held back; returns the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile() as held_back:
        os.dup2(held_back.fileno(), 2)
        try:
            import tensorflow
        except BaseException:
            os.dup2(saved_stderr, 2)
            held_back.seek(0)
            sys.stderr.write(held_back.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
    return tensorflow
