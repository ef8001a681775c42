"""A character language model: stateful training on consecutive batches, sampling with a
temperature, and the one-step graph through onnxruntime.

A GRU reads Python source code one character at a time and predicts the next one. It trains
as char-rnn did: the text is cut into as many streams as the batch has rows, each batch
continues the previous one row by row, and the layer carries its state from batch to batch
(truncated backpropagation through time). Text is then written one character at a time,
each drawn from the model's distribution at a temperature. Last, that one-character step is
exported to ONNX and run by onnxruntime, which gives the same distribution and, from the
same seed, the same text as Keras.

Run it from the repository root (about a minute on 2 CPU cores; ``--quick``: under 10 s, a
shorter text, a smaller model and one epoch: the tests' size):

    python examples/character_language_model.py [--quick] [--out runs/examples/character_lm]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import keras
import numpy as np

from export.model import export_model
from keras_rnn.tasks.charlm import Config
from keras_rnn.tasks.charlm.corpus import read_text
from keras_rnn.tasks.charlm.data import make_datasets
from keras_rnn.tasks.charlm.generation import (
    keras_generate,
    keras_step,
    state_names,
    step_model,
    step_runtime,
)
from keras_rnn.tasks.charlm.model import build_model, compile_args, stateless
from keras_rnn.tasks.charlm.task import callbacks
from keras_rnn.trainer import learning_rate
from serving.runtime import load_graph
from serving.runtime.charlm import onnx_generate, onnx_step
from serving.runtime.decoding import Sampling, feed, log_softmax

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--quick", action="store_true", help="a tiny run, for the tests")
parser.add_argument("--out", type=Path, default=Path("runs/examples/character_lm"))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
keras.utils.set_random_seed(0)

# ## The text
#
# The task's embedded corpus is 1.9 MB of Python's standard library; its first 400,000
# characters are enough here. `make_datasets` reads a text file (the CLI's `--text`), splits
# it by position (training, then validation, then the last 5% for testing) and builds the
# character vocabulary of the training part.
if args.quick:
    characters, size = 60_000, {"units": 64, "sequence_length": 50, "epochs": 1}
else:
    characters, size = 400_000, {"units": 256, "sequence_length": 100, "epochs": 6}
corpus = args.out / "corpus.py.txt"
corpus.write_text(read_text(Config())[0][:characters], encoding="utf-8")
config = Config(
    text=str(corpus),
    batch_size=32,
    sample_length=80,  # of the sample printed after each epoch, from "def "
    **size,
)
PREFIX = config.sample_prefix  # "def "
data = make_datasets(config)
print(f"{len(data.text):,} characters, a vocabulary of {data.vocab.size}")

# ## Consecutive batches
#
# With `batching="consecutive"` (the default) the training pipeline cuts the text into
# `batch_size` streams, and batch t holds window t of every stream: row b of batch t+1
# starts where row b of batch t ended. The two windows below join up:
first, second = (inputs["characters"].numpy() for inputs, _ in data.train.take(2))
print(f"row 0 of batch 0 ends   {data.vocab.decode(first[0, -30:])!r}")
print(f"row 0 of batch 1 starts {data.vocab.decode(second[0, :30])!r}")

# ## The model, stateful
#
# `build_model` is an embedding, the GRU and a dense layer giving the logits of the next
# character at every step. The GRU is stateful: its last state in a batch is its first in
# the next, so it learns from context longer than one window, at a fixed batch size. The
# task's callbacks reset the states at each epoch's start (the streams start over) and
# before validation, and print a sample after each epoch.
model = build_model(config, data)
optimizer = keras.optimizers.Adam(
    learning_rate(config, data.train), global_clipnorm=config.clipnorm
)
model.compile(optimizer=optimizer, **compile_args(config, data))
history = model.fit(
    data.train,
    validation_data=data.val,
    epochs=config.epochs,
    callbacks=callbacks(config, data),
    shuffle=False,  # the streams must stay in order
    verbose=2,
)
# The loss is the mean cross-entropy in nats: divided by ln 2, bits per character.
bits = history.history["val_loss"][-1] / math.log(2)
print(f"validation: {bits:.3f} bits per character")

# ## Sampling with a temperature
#
# Generation runs one character at a time, so it needs the model without a fixed batch:
# `stateless` rebuilds it with the same weights. `keras_generate` feeds the prefix, then
# draws each next character from softmax(logits / temperature) and feeds it back.
# Temperature 0 takes the most likely character every time (and tends to loop); 1 draws
# from the model's own distribution; in between trades variety for care.
model = stateless(model, config)
for temperature in (0.0, 0.5, 1.0):
    text, _ = keras_generate(model, config, data.vocab, PREFIX, Sampling(120, temperature))
    print(f"temperature {temperature}: {PREFIX + text!r}")

# ## The step graph, through onnxruntime
#
# `step_model` is what generation steps through: one character and the GRU's state in, the
# next character's logits and the new state out (the graph `lm_step` that `python -m
# export` writes for a charlm run). `export_model` converts any Keras model to ONNX with the
# recurrent layer fused into one ONNX `GRU` node, and checks that the ONNX graph gives
# Keras's outputs on random inputs. `runtime=` records beside the graph what the onnxruntime
# loop reads (`step_runtime`: the state inputs, in order, and their size), as `python -m
# export` does for a run, so the loaded graph carries them.
step = step_model(model, config)
report = export_model(
    step, args.out / "lm_step", force=True, name="lm_step", runtime=step_runtime(config)
)
(entry,) = report["graphs"]
print(
    f"lm_step exported: parity {report['ok']} (largest difference "
    f"{entry['max_abs_diff_onnx']:.1e}), {entry['onnx_op_counts'].get('GRU', 0)} fused GRU node"
)
graph = load_graph(args.out / "lm_step")

# Both steps read the same prefix from zero states; onnxruntime's distribution over the next
# character is Keras's, within float32 rounding.
prefix_ids, _ = data.vocab.encode(PREFIX + "__init__(self, ")
zeros = [np.zeros((1, config.units), np.float32) for _ in state_names(config)]
keras_logits, _ = feed(keras_step(step, config), zeros, prefix_ids)
onnx_logits, _ = feed(onnx_step(graph), zeros, prefix_ids)
difference = np.abs(np.exp(log_softmax(keras_logits)) - np.exp(log_softmax(onnx_logits))).max()
print(f"next-character probabilities, largest difference: {difference:.2e}")

# And the same seed draws the same characters, because both paths run the one sampling loop
# of `serving.runtime.decoding` over their own step.
settings = Sampling(200, 0.5, seed=7)
keras_text, _ = keras_generate(model, config, data.vocab, PREFIX, settings)
onnx_text, _ = onnx_generate(graph, data.vocab, PREFIX, settings)
print(f"onnxruntime sample: {PREFIX + onnx_text!r}")
print(f"the same 200 characters as Keras's: {keras_text == onnx_text}")
