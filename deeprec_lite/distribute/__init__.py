"""Training with KV tables on parameter servers (tf.distribute.ParameterServerStrategy).

Every ps and worker task runs `python -m deeprec_lite.distribute.server` (or
`server.serve`), which loads the op library before serving; the chief builds its
strategy with `server.strategy(cluster)` and creates the model in its scope: each
KVEmbedding's table is then a PartitionedKVVariable with one shard per parameter
server. `LocalCluster` runs such a cluster on this machine's loopback interface.
"""
from deeprec_lite.distribute.local_cluster import LocalCluster
from deeprec_lite.distribute.server import serve, start, strategy

__all__ = ["LocalCluster", "serve", "start", "strategy"]
