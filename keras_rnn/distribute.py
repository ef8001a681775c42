"""``--strategy``: training spread over devices (``mirrored``) or machines (``multiworker``).

``default`` trains on one device. ``mirrored`` is ``tf.distribute.MirroredStrategy`` over
every GPU of the machine, or, without a GPU, over its logical CPU devices (one, unless
``tf.config.set_logical_device_configuration`` made more, as the tests do). ``multiworker`` is
``tf.distribute.MultiWorkerMirroredStrategy`` over the cluster in TF_CONFIG: every worker runs
the same command, and each uses its own GPUs (or one CPU). ``--batch-size`` is the global
batch in every case: each batch is split across all replicas, so a run sees the same batches,
and takes the same number of steps, under any strategy.

The chief (task ``chief``, or worker 0 when the cluster has none) writes the run directory.
Every other worker trains in a throwaway run directory of its own, removed when training ends,
as Keras's multi-worker guide recommends for checkpoints: it runs the same code as the chief
(the collective operations need every worker) and writes nothing the chief writes. On
``--resume`` it starts from a copy of the chief's config.json, history.csv and checkpoints/,
so the run directory must be readable by every worker at the same path (a shared file system).

This module imports TensorFlow only inside the functions that need it, so ``worker`` checks
TF_CONFIG before TensorFlow starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keras_rnn.config import RuntimeConfig, TrainConfig
from keras_rnn.errors import UserError
from keras_rnn.runs import RunDir, prepare_run_dir
from serving import cli

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

# Tests only: the folder a non-chief worker trains in, kept afterwards so that a test can read
# its model (normally a temporary folder, removed when training ends).
WORKER_RUN_VARIABLE = "KERAS_RNN_WORKER_RUN_DIR"
JOBS = ("chief", "worker")  # the tasks MultiWorkerMirroredStrategy runs
TF_CONFIG_EXAMPLE = (
    'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
    '"task": {"type": "worker", "index": 0}}\''
)


@dataclasses.dataclass(frozen=True)
class Worker:
    """This process's place among the ``count`` workers; ``index`` 0 is the chief."""

    index: int = 0
    count: int = 1

    @property
    def chief(self) -> bool:
        return self.index == 0


def worker(strategy: str, environ: Mapping[str, str] = os.environ) -> Worker:
    """This process's ``Worker`` under ``strategy``: from TF_CONFIG for ``multiworker`` (a
    missing or malformed one is a ``UserError``), the only worker otherwise."""
    if strategy != "multiworker":
        return Worker()
    text = environ.get("TF_CONFIG", "").strip()
    if not text:
        raise UserError(
            "--strategy multiworker needs TF_CONFIG in the environment, naming every worker's "
            f"address and this one's task, e.g. {TF_CONFIG_EXAMPLE}"
        )
    try:
        value = json.loads(text)
    except ValueError as error:
        raise UserError(f"TF_CONFIG is not valid JSON ({error})") from None
    cluster = value.get("cluster") if isinstance(value, dict) else None
    task = value.get("task") if isinstance(value, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise UserError(
            f'TF_CONFIG needs a "cluster" and a "task" object, e.g. {TF_CONFIG_EXAMPLE}'
        )
    for job, addresses in cluster.items():
        if job not in JOBS:
            raise UserError(
                f"TF_CONFIG's cluster has a {job!r} job: MultiWorkerMirroredStrategy runs "
                "chief and worker tasks only"
            )
        if not isinstance(addresses, list) or not addresses:
            raise UserError(f"TF_CONFIG's cluster lists no addresses for {job!r}")
        for address in addresses:
            host, _, port = str(address).rpartition(":")
            if not isinstance(address, str) or not host or not port.isdigit():
                raise UserError(f"TF_CONFIG's {job} address {address!r} is not HOST:PORT")
    if len(cluster.get("chief", [])) > 1:
        raise UserError("TF_CONFIG's cluster lists more than one chief")
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster:
        raise UserError(
            f"TF_CONFIG's task type {kind!r} is not a job of its cluster ({', '.join(cluster)})"
        )
    if type(index) is not int or not 0 <= index < len(cluster[kind]):
        raise UserError(
            f"TF_CONFIG's task index {index!r} is not one of the {len(cluster[kind])} "
            f"{kind} addresses (0 to {len(cluster[kind]) - 1})"
        )
    chiefs = len(cluster.get("chief", []))
    return Worker(index if kind == "chief" else chiefs + index, chiefs + len(cluster["worker"]))


def check_distributable(config: TrainConfig, runtime: RuntimeConfig) -> None:
    """Refuse a config that ``runtime.strategy`` cannot train (``undistributable``)."""
    reason = config.undistributable()
    if runtime.strategy != "default" and reason:
        raise UserError(f"--strategy {runtime.strategy} cannot train this run: {reason}")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy that ``--strategy name`` asks for. Call it before any
    other TensorFlow operation: the multi-worker one configures the runtime's collectives."""
    import tensorflow as tf

    if name == "mirrored":
        if tf.config.list_physical_devices("GPU"):
            return tf.distribute.MirroredStrategy()  # every GPU
        cpus = tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in cpus])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG
    return tf.distribute.get_strategy()  # the default: no distribution


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The public ``tf.distribute`` class of ``strategy`` (its own class may be a private
    one), or "default"."""
    import tensorflow as tf

    for name in ("MultiWorkerMirroredStrategy", "MirroredStrategy"):
        if isinstance(strategy, getattr(tf.distribute, name)):
            return name
    return "default"


def distributed_dataset(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` as ``fit`` should get it under any strategy.

    Keras's ``fit`` distributes a ``tf.data.Dataset`` itself
    (``experimental_distribute_dataset``): every global batch is split across the replicas,
    and across workers each keeps its replicas' part of every batch (the DATA shard policy,
    set here because no pipeline reads files, which the default policy tries first). Each
    worker runs the whole, seeded pipeline, so the workers agree on every batch. No pipeline
    needs per-replica input (``distribute_datasets_from_function``): the one that would,
    charlm's consecutive streams, whose rows must stay on one replica from batch to batch, is
    refused (``check_distributable``).
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def fix_keras(model: keras.Model) -> None:
    """Work around two faults of Keras 3.15.1's TensorFlow trainer under a strategy (both
    still in Keras 3.16's source), for ``model`` and this process.

    - ``fit`` and ``evaluate`` build the model from their first batch averaged over the
      replicas (``strategy.reduce("MEAN", batch)``), which fails when a batch does not split
      evenly ("Inputs to operation AddN ... must have the same size and shape": 31
      validation windows on 2 replicas are 16 and 15). The build needs shapes only: here it
      takes the first replica's part.
    - Under ``MultiWorkerMirroredStrategy`` every step's logs are reduced with
      ``strategy.reduce("MEAN", value, axis=0)``, which fails on the scalar logs ("Invalid
      reduction dimension 0 for input with 0 dimensions", tensorflow/tensorflow#72388). The
      logs are metric results, which the strategy already keeps equal on every replica, so
      the first replica's value is taken, as Keras does on TPUs.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    strategy = model.distribute_strategy

    def symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0], next(batches)
                )
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = symbolic_build
    if not getattr(trainer.reduce_per_replica, "keras_rnn_fix", False):
        original = trainer.reduce_per_replica

        def reduce_per_replica(values: Any, strategy: Any, reduction: str = "auto") -> Any:
            if reduction == "auto" and trainer._collective_all_reduce_multi_worker(strategy):
                reduction = "first"
            return original(values, strategy, reduction=reduction)

        reduce_per_replica.keras_rnn_fix = True
        trainer.reduce_per_replica = reduce_per_replica


@contextlib.contextmanager
def worker_run(run_path: Path, resume: bool, position: Worker) -> Iterator[RunDir]:
    """The throwaway run directory a non-chief worker trains in (see the module docstring),
    removed when the block ends (kept at $KERAS_RNN_WORKER_RUN_DIR, for tests)."""
    kept = os.environ.get(WORKER_RUN_VARIABLE)
    folder = Path(kept) if kept else Path(tempfile.mkdtemp(prefix="keras-rnn-worker-"))
    run = RunDir(folder / "run")
    remove = lambda: None if kept else shutil.rmtree(folder, ignore_errors=True)  # noqa: E731
    try:
        with cli.on_interrupt(remove):
            if resume:  # the chief's state, restored the same way (a shared file system)
                source = RunDir(run_path)
                run.checkpoints.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source.config_json, run.config_json)
                if source.history_csv.is_file():
                    shutil.copy(source.history_csv, run.history_csv)
                if source.checkpoints.is_dir():
                    shutil.copytree(source.checkpoints, run.checkpoints)
            print(
                f"worker {position.index} of {position.count}: the chief writes {run_path}; "
                f"this worker writes into {run.path}"
                + ("" if kept else " (removed when training ends)"),
                flush=True,
            )
            yield prepare_run_dir(run.path, resume=resume)
    finally:
        remove()
