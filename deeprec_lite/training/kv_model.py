"""KVModel: a functional tf_keras Model whose `fit` applies its KV tables' freq counting."""
from deeprec_lite.compat import keras
from deeprec_lite.layers.embeddings.kv_embedding_group import KVEmbeddingGroup
from deeprec_lite.training.callbacks import with_freq_counting


@keras.utils.register_keras_serializable(package="deeprec_lite")
class KVModel(keras.Model):
    """A keras.Model (built like one: `KVModel(inputs, outputs, name=...)`) whose `fit`
    adds a callbacks.FreqCounting, so that tables with freq_counting="first_epoch"
    count epoch 0 only with no extra code, and whose `get_layer(name)` also finds the
    KVEmbedding members of a KVEmbeddingGroup (the zoo looks its fields up in groups,
    each field keeping its layer name). The zoo's models are KVModels; saving,
    loading and everything else are those of keras.Model.

    Example:
        ids = keras.Input((), dtype="int64")
        emb = drl.layers.KVEmbedding(drl.TableConfig(8, freq_counting="first_epoch"))(ids)
        model = drl.training.KVModel(ids, keras.layers.Dense(1, "sigmoid")(emb))
        model.compile(optimizer=drl.optimizers.Adagrad(0.05), loss="binary_crossentropy")
        model.fit(ids_data, labels, epochs=3)   # freq: occurrences in ids_data
    """

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            **kwargs):
        return super().fit(x, y, batch_size, epochs, verbose, with_freq_counting(callbacks),
                           **kwargs)

    def get_layer(self, name=None, index=None):
        try:
            return super().get_layer(name, index)
        except ValueError:
            groups = [layer for layer in self.layers if isinstance(layer, KVEmbeddingGroup)]
            for member in (m for group in groups for m in group.embeddings):
                if name is not None and member.name == name:
                    return member
            raise


# Model.to_json names a Model subclass by its bare class name, not its registered
# "deeprec_lite>KVModel": so that keras.models.model_from_json (and checkpoints.load)
# rebuild a KVModel, the bare name is registered too.
keras.utils.get_custom_objects()["KVModel"] = KVModel
