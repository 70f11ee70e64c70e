"""Generic properties every public layer must have: batch independence, config and
saved-model round trips, finite gradients."""
import numpy as np

from deeprec_lite.compat import keras, tf


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _to_numpy(y):
    if isinstance(y, (list, tuple)):
        return [np.asarray(t) for t in y]
    return np.asarray(y)


def assert_batch_independent(layer, inputs, atol=1e-6):
    """f(X)[i] == f(X[i:i+1]) in inference mode."""
    full = _to_numpy(layer(inputs, training=False))
    batch = int(tf.shape(tf.nest.flatten(inputs)[0])[0])
    for i in range(batch):
        part = tf.nest.map_structure(lambda t: t[i:i + 1], inputs)
        one = _to_numpy(layer(part, training=False))
        for a, b in zip(_as_list(full), _as_list(one)):
            np.testing.assert_allclose(a[i:i + 1], b, atol=atol, rtol=1e-5)


def assert_config_round_trip(layer, inputs):
    """from_config(get_config()) gives a layer that, with the same weights, gives the same output."""
    expected = _to_numpy(layer(inputs, training=False))
    clone = layer.__class__.from_config(layer.get_config())
    clone(inputs, training=False)
    clone.set_weights(layer.get_weights())
    got = _to_numpy(clone(inputs, training=False))
    for a, b in zip(_as_list(expected), _as_list(got)):
        np.testing.assert_array_equal(a, b)
    assert clone.get_config() == layer.get_config()


def assert_finite_gradients(layer, inputs, allow_unused_weights=()):
    """Gradients of sum(out^2) w.r.t. the float inputs and every trainable weight: present, finite.

    A trainable weight with no gradient is a weight the forward pass never uses: that fails,
    unless its name contains one of ``allow_unused_weights``.
    """
    flat = [tf.Variable(t) if t.dtype.is_floating else t for t in tf.nest.flatten(inputs)]
    with tf.GradientTape() as tape:
        out = layer(tf.nest.pack_sequence_as(inputs, flat), training=True)
        loss = tf.add_n([tf.reduce_sum(tf.square(o)) for o in _as_list(out)])
    sources = [v for v in flat if isinstance(v, tf.Variable)] + layer.trainable_weights
    assert sources, "nothing to differentiate"
    grads = tape.gradient(loss, sources)
    for src, g in zip(sources, grads):
        name = getattr(src, "name", "input")
        if g is None:
            assert any(tag in name for tag in allow_unused_weights), f"no gradient reaches {name}"
            continue
        g = tf.convert_to_tensor(g)
        assert np.all(np.isfinite(g.numpy())), f"non-finite gradient for {name}"


def assert_saved_model_reload(layer, inputs, tmp_path):
    """A functional model around the layer survives model.save / load_model with identical outputs.

    Checked for both the TensorFlow SavedModel directory and the ``.keras`` archive, and the
    reloaded model must hold a real instance of the layer's class (registered, rebuilt from
    its config), not a generic revived object.
    """
    flat = tf.nest.flatten(inputs)
    sym = [keras.Input(shape=t.shape[1:], dtype=t.dtype) for t in flat]
    out = layer(tf.nest.pack_sequence_as(inputs, sym))
    model = keras.Model(sym, out)
    expected = _to_numpy(model(flat, training=False))
    for path in (str(tmp_path / "saved"), str(tmp_path / "model.keras")):
        model.save(path)
        reloaded = keras.models.load_model(path)
        assert any(type(l) is type(layer) for l in reloaded.layers), (
            f"{path}: reloaded model has no {type(layer).__name__} layer: "
            f"{[type(l).__name__ for l in reloaded.layers]}")
        got = _to_numpy(reloaded(flat, training=False))
        for a, b in zip(_as_list(expected), _as_list(got)):
            np.testing.assert_array_equal(a, b)
