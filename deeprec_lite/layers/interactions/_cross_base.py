"""What the cross networks (CrossNet, CrossNetV2, CrossNetMix, GatedCrossNet) share."""
from deeprec_lite.compat import keras, tf
from deeprec_lite._checks import check_positive_int
from deeprec_lite.layers._common import fresh_initializer


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
