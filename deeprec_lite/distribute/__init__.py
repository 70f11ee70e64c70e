"""Training with KV tables on parameter servers (tf.distribute.ParameterServerStrategy)."""
