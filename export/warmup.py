"""TF Serving's SavedModel warm-up: ``assets.extra/tf_serving_warmup_requests`` in a SavedModel
folder, a TFRecord file of ``PredictionLog`` records, each a predict request for the
``serving_default`` signature that TF Serving runs when it loads the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis.predict_pb2 import PredictRequest
from tensorflow_serving.apis.prediction_log_pb2 import PredictionLog, PredictLog

from export.parity import BATCH_SIZES
from keras_rnn.graphs import ExportGraph
from keras_rnn.runs import atomic_save

WARMUP_FILE = Path("assets.extra", "tf_serving_warmup_requests")  # under the SavedModel folder
SIGNATURE = "serving_default"


def warmup_inputs(graph: ExportGraph, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """The graph's own samples (as parity draws them) at each batch size of
    ``export.parity.BATCH_SIZES`` and each of ``graph.lengths``."""
    rng = np.random.default_rng(seed)
    return [graph.sample(batch, length, rng) for batch in BATCH_SIZES for length in graph.lengths]


def prediction_log(name: str, inputs: dict[str, np.ndarray]) -> PredictionLog:
    """A ``PredictionLog`` holding a predict request for model ``name``'s ``serving_default``."""
    request = PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = SIGNATURE
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return PredictionLog(predict_log=PredictLog(request=request))


def write_warmup(graph: ExportGraph, savedmodel_dir: Path) -> Path:
    """Write ``savedmodel_dir/assets.extra/tf_serving_warmup_requests`` for ``graph``
    (atomically, with the umask's mode); returns its path."""
    path = savedmodel_dir / WARMUP_FILE

    def write(temporary: Path) -> None:
        with tf.io.TFRecordWriter(str(temporary)) as writer:
            for inputs in warmup_inputs(graph):
                writer.write(prediction_log(graph.name, inputs).SerializeToString())

    atomic_save(path, write)
    return path
