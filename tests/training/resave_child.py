"""Child process of the kill -9 tests of checkpoint saves: trains a small model,
writes its predictions on fixed inputs to <dir>/expected.npy, saves a checkpoint,
prints "saved" after each save and then saves again at the same step until killed.

    python resave_child.py DIR
"""
import os
import sys

import numpy as np

from deeprec_lite.compat import keras, tf
from deeprec_lite.kv import sparse_optimizers
from deeprec_lite.layers import KVEmbedding
from deeprec_lite.training import checkpoints, optimizers


def build():
    inputs = {f: keras.Input((), dtype=tf.int64, name=f) for f in ("a", "b")}
    embedded = [KVEmbedding(8, seed=i, name=f"emb_{f}")(inputs[f]) for i, f in enumerate(inputs)]
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Concatenate()(embedded))
    model = keras.Model(inputs, out)
    model.compile(optimizer=optimizers.KVOptimizer(sparse_optimizers.Adam(0.01),
                                                   keras.optimizers.Adam(0.01)),
                  loss="binary_crossentropy")
    return model


def inputs(n=4096):
    rng = np.random.default_rng(0)
    return {f: rng.integers(0, 5000, n) for f in ("a", "b")}


def main(directory):
    model = build()
    x = inputs()
    model.fit(x, (x["a"] % 3 == 0).astype(np.float32), batch_size=256, verbose=0)
    np.save(os.path.join(directory, "expected.tmp.npy"), model.predict_on_batch(x))
    os.replace(os.path.join(directory, "expected.tmp.npy"), os.path.join(directory, "expected.npy"))
    while True:
        checkpoints.save(model, os.path.join(directory, "ckpt"))
        print("saved", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
