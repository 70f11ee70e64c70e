"""The Keras front end insists on the Keras 2 API (tf_keras) and says what to do otherwise;
the KV core (deeprec_lite.kv) needs no Keras at all."""
import os
import subprocess
import sys


def run(code, **env):
    environ = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    environ.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environ, cwd=os.path.dirname(os.path.dirname(__file__)))


def test_tf_keras_is_keras_2_after_import():
    result = run("import deeprec_lite.compat as c; print(c.tf.keras.__name__, c.keras.__version__)")
    assert result.returncode == 0, result.stderr
    name, version = result.stdout.split()
    assert name.startswith("tf_keras") and version.startswith("2.")


def test_keras_3_already_loaded_gives_a_clear_error():
    result = run("import tensorflow as tf; tf.keras.layers; import deeprec_lite.layers")
    assert result.returncode != 0
    assert "TF_USE_LEGACY_KERAS=1" in result.stderr and "Import deeprec_lite before" in result.stderr


def test_legacy_keras_switched_off_gives_a_clear_error():
    result = run("import deeprec_lite; deeprec_lite.models", TF_USE_LEGACY_KERAS="0")
    assert result.returncode != 0
    assert "TF_USE_LEGACY_KERAS is set to '0'" in result.stderr


def test_the_kv_core_works_whatever_keras_is_loaded():
    code = ("import tensorflow as tf; tf.keras.layers; import deeprec_lite as drl; "
            "kv = drl.KVVariable(2, initializer='zeros'); "
            "print(kv.lookup_or_insert(tf.constant([7], tf.int64))[0].numpy().tolist())")
    result = run(code, TF_USE_LEGACY_KERAS="0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "[[0.0, 0.0]]"
