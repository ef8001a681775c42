"""The Keras side of ``python -m benchmarks.training``, in its own process so that its thread
settings hold: ``python -m benchmarks.training_keras SPEC_JSON`` prints one JSON line.

Each variant builds the task's model with the project's builder (``task.build_model``) and
compiles it as ``keras_rnn.trainer`` does (``task.compile_args``; Adam with the trainer's
learning rate and global clipnorm; op determinism on; one step per execution except in the
``steps_per_execution`` and ``trainer`` variants), then times ``fit`` on one synthetic batch of
the task's shapes, repeated (the ``pipeline`` and ``trainer`` variants: on the task's own
tf.data pipeline, whose sine batches include each epoch's short last one). ``trainer`` is how
``python -m keras_rnn.train`` runs by default: the pipeline, several steps per call. The
optimizer's and metrics' variables are built before ``fit`` (``trainer.build_before_fit``),
which then traces its step once, not twice (in the untimed warm-up; the timed steps are the
same). The line also carries what the PyTorch side needs to train the same network
(``peer``), read from the same config and data.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from benchmarks.training import Spec, apply_thread_environment, clock, synthetic_batch, timing
from keras_rnn import quiet

LABELS = {
    "fit": "Keras fit",
    "steps_per_execution": "Keras fit, steps_per_execution={k}",
    "jit_compile": "Keras fit, jit_compile=True",
    "pipeline": "Keras fit, the task's tf.data pipeline",
    "trainer": "Keras fit, the task's tf.data pipeline, steps_per_execution={k}",
}
SEVERAL_STEPS_PER_CALL = ("steps_per_execution", "trainer")
ON_THE_PIPELINE = ("pipeline", "trainer")


def clock_callback(marks: dict[int, tuple], at: tuple[int, int]):
    """A callback that reads ``clock()`` into ``marks`` when an execution of ``fit`` ends
    after step ``at[0]`` or ``at[1]`` (0-based; the last step of an execution)."""
    import keras

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch in at:
                marks[batch] = clock()

    return Clock()


def train_variant(spec: Spec, variant: str) -> dict[str, Any]:
    """Build, compile and fit one variant: its timing and the PyTorch side's settings."""
    import keras
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    from keras_rnn.tasks import load_task
    from keras_rnn.trainer import build_before_fit, learning_rate

    task = load_task(spec.task)
    config = task.Config(cell=spec.cell, **spec.overrides)
    keras.utils.set_random_seed(config.seed)
    jit = variant == "jit_compile"
    if jit:  # Keras compiles without XLA while op determinism is on
        tf_config.disable_op_determinism()
    else:
        tf.config.experimental.enable_op_determinism()  # as keras_rnn.trainer does
    data = task.make_datasets(config)
    model = task.build_model(config, data)
    k = spec.steps_per_execution if variant in SEVERAL_STEPS_PER_CALL else 1
    optimizer = keras.optimizers.Adam(
        learning_rate(config, data.train), global_clipnorm=config.clipnorm or None
    )
    compile_args = task.compile_args(config, data)
    model.compile(optimizer=optimizer, jit_compile=jit, steps_per_execution=k, **compile_args)
    if jit and not model.jit_compile:
        raise RuntimeError(f"Keras compiled {spec.task} ({spec.cell}) without XLA")
    peer = peer_settings(spec, config, data, model)
    if variant in ON_THE_PIPELINE:
        dataset = data.train.repeat()
    else:
        dataset = tf.data.Dataset.from_tensors(synthetic_batch(peer)).repeat()
    build_before_fit(model, dataset)
    warmup = -(-spec.warmup // k) * k  # whole executions
    total = warmup + -(-spec.steps // k) * k
    marks: dict[int, tuple] = {}
    callback = clock_callback(marks, (warmup - 1, total - 1))
    model.fit(dataset, epochs=1, steps_per_epoch=total, callbacks=[callback], verbose=0)
    return {
        "variant": LABELS[variant].format(k=k),
        "peer": peer,
        **timing(total - warmup, marks[warmup - 1], marks[total - 1]),
    }


def peer_settings(spec: Spec, config, data, model) -> dict[str, Any]:
    """What the PyTorch side needs to build and train the same network."""
    from keras_rnn.trainer import learning_rate

    schedule = learning_rate(config, data.train)
    settings = {
        "task": spec.task,
        "cell": config.cell,
        "units": config.units,
        "layers": config.layers,
        "dropout": config.dropout,
        "batch": config.batch_size,
        "learning_rate": config.learning_rate,
        "decay_steps": None if isinstance(schedule, float) else int(schedule.decay_steps),
        "clipnorm": config.clipnorm,
        "parameters": model.count_params(),
    }
    if spec.task == "charlm":
        return settings | {
            "steps": config.sequence_length,
            "features": config.embedding_size,
            "vocab": data.vocab.size,
        }
    return settings | {
        "steps": config.window,
        "features": 1,
        "horizon": config.horizon,
        "mean": data.mean,
        "std": data.std,
    }


def main(argv: list[str] | None = None) -> int:
    spec = Spec(**json.loads((argv or sys.argv[1:])[0]))
    apply_thread_environment(spec.threads)
    tf = quiet.start_tensorflow()
    tf.config.threading.set_intra_op_parallelism_threads(spec.threads)
    tf.config.threading.set_inter_op_parallelism_threads(spec.threads)
    print(json.dumps([train_variant(spec, variant) for variant in spec.variants]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
