"""KVModel: a functional tf_keras Model whose `fit` applies its KV tables' freq counting."""
from deeprec_lite.compat import keras
from deeprec_lite.layers.embeddings.kv_embedding import TABLE_FORMATS
from deeprec_lite.layers.embeddings.kv_embedding_group import KVEmbeddingGroup
from deeprec_lite.training.callbacks import with_freq_counting
from deeprec_lite.training.model_tables import kv_tables
from deeprec_lite.training.optimizers import KVOptimizer


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

    def compile(self, optimizer="rmsprop", **kwargs):
        """keras.Model.compile; a model with KV tables needs a KVOptimizer (a plain
        tf_keras optimizer would never update the tables)."""
        super().compile(optimizer=optimizer, **kwargs)
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)  # loss scaling
        if not isinstance(inner, KVOptimizer) and kv_tables(self):
            raise ValueError(f"model {self.name!r} has KV tables: optimizer must be a "
                             f"deeprec_lite.optimizers.KVOptimizer (e.g. "
                             f"deeprec_lite.optimizers.Adagrad(0.05)), got {optimizer!r}")

    def save(self, filepath, overwrite=True, save_format=None, **kwargs):
        _check_table_format(self, filepath, save_format, "save")
        return super().save(filepath, overwrite=overwrite, save_format=save_format, **kwargs)

    def save_weights(self, filepath, overwrite=True, save_format=None, options=None):
        _check_table_format(self, filepath, save_format, "save_weights")
        return super().save_weights(filepath, overwrite=overwrite, save_format=save_format,
                                    options=options)

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


def _check_table_format(model, filepath, save_format, method):
    """Refuses, before anything is written, the HDF5 and .keras formats for a model
    with KV tables (see KVEmbedding.save_own_variables)."""
    path = str(filepath)
    if (save_format in ("h5", "keras") or path.endswith((".h5", ".keras"))) and kv_tables(model):
        raise ValueError(f"{method}: filepath={path!r} (save_format={save_format!r}) is an HDF5 "
                         f"or .keras file, which cannot hold KV tables; {TABLE_FORMATS}")


# Model.to_json names a Model subclass by its bare class name, not its registered
# "deeprec_lite>KVModel": so that keras.models.model_from_json (and checkpoints.load)
# rebuild a KVModel, the bare name is registered too.
keras.utils.get_custom_objects()["KVModel"] = KVModel
