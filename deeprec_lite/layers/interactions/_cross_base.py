"""What the cross networks (CrossNet, CrossNetV2, CrossNetMix, GatedCrossNet) share."""
from deeprec_lite.compat import keras, tf
from deeprec_lite._checks import check_positive_int
from deeprec_lite.layers._common import fresh_initializer
from deeprec_lite.layers.interactions._pairs import cross_input_dim, split_cross_inputs


class CrossLayerBase(keras.layers.Layer):
    """`num_layers` cross layers with kernel / bias initializers and regularizers, mapping
    ``x0`` or ``[x0, x]`` of shape ``(batch, d)`` to ``(batch, d)``."""

    def __init__(self, num_layers, kernel_initializer, bias_initializer, kernel_regularizer,
                 bias_regularizer, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = check_positive_int(num_layers, "num_layers", type(self).__name__)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    def _weights(self, name, shape, bias=False):
        """One weight per cross layer, ``name_0 .. name_{L-1}``, each freshly initialized."""
        initializer = self.bias_initializer if bias else self.kernel_initializer
        regularizer = self.bias_regularizer if bias else self.kernel_regularizer
        return [self.add_weight(name=f"{name}_{i}", shape=shape, trainable=True,
                                initializer=fresh_initializer(initializer), regularizer=regularizer)
                for i in range(self.num_layers)]

    def _input_dim(self, input_shape):
        """The checked width ``d`` of the input (see `cross_input_dim`), for `build`."""
        self._dim = cross_input_dim(input_shape, type(self).__name__)
        return self._dim

    def _split(self, inputs):
        """``(x0, x)`` of a call, whose shapes are checked as in `build` and against the
        width the layer was built for."""
        shapes = ([t.shape for t in inputs] if isinstance(inputs, (list, tuple))
                  else inputs.shape)
        if cross_input_dim(shapes, type(self).__name__) != self._dim:
            raise ValueError(f"{type(self).__name__} was built for inputs of width "
                             f"d={self._dim}; received input_shape={shapes}")
        return split_cross_inputs(inputs)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape[0] if isinstance(input_shape, list) else input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_layers": self.num_layers,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        })
        return config
