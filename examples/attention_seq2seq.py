"""Attention, side by side: dates written by people, translated to ISO 8601.

Two encoder-decoders read a date as people write it ("Monday, November 23, 2026",
"23.11.26", "二〇二六年十一月二十三日"), one character at a time, and write "2026-11-23". They
differ only in their attention over the encoder's outputs:

- Bahdanau (additive): the decoder attends from its previous state, and the context enters
  the recurrent cell's input at each step, so training steps a cell inside ``keras.layers.RNN``.
- Luong (general, scoring ``(W_a h_t) . h_s``): the decoder RNN runs first, over the whole
  target as one (cuDNN-eligible) layer, and attention combines its new states with the
  source afterwards.

Each is trained with ``fit``, decoded greedily and with a beam search, and scored by exact
match on dates it never saw; the attention each pays to one source is drawn into a PNG.

Run it from the repository root (about a minute on 2 CPU cores). ``--quick``, the tests' size,
takes about 30 s: 3,000 training pairs instead of 6,000, 3 epochs instead of 6 at a learning rate
of 0.03 instead of 0.005 (fewer steps need larger ones), 100 test dates instead of 200; exact
match about 0.7 for Bahdanau and 0.8 for Luong.

    python examples/attention_seq2seq.py [--quick] [--out runs/examples/attention_seq2seq]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import keras

from keras_rnn.epochs import FeedEpoch
from keras_rnn.tasks.translate import Config
from keras_rnn.tasks.translate.data import make_datasets
from keras_rnn.tasks.translate.decoding import keras_translator, plot_attention, scores
from keras_rnn.tasks.translate.model import build_model
from keras_rnn.tasks.translate.task import compile_args
from keras_rnn.trainer import learning_rate

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--quick", action="store_true", help="a tiny run, for the tests")
parser.add_argument("--out", type=Path, default=Path("runs/examples/attention_seq2seq"))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
keras.utils.set_random_seed(0)

# ## The data
#
# The task's config holds every setting the CLI has (`python -m keras_rnn.train --task
# translate`); a small model is enough for dates. `make_datasets` draws one example per
# calendar date, in one of 48 formats, so no test date is seen in training in any format. It
# builds a character vocabulary for each side and the tf.data pipelines that feed `fit`:
# `source` ids, `target_in` (START, then the target) and, as labels, the target then END.
config = Config(
    units=32,  # per direction of the encoder; the decoder, started from both, has 64
    embedding_size=16,
    attention_units=32,
    learning_rate=3e-2 if args.quick else 5e-3,
    train_pairs=3000 if args.quick else 6000,
    val_pairs=200,
    test_pairs=100 if args.quick else 200,
    epochs=3 if args.quick else 6,
)
data = make_datasets(config)
sources = [source for source, _ in data.splits["test"]]
references = [target for _, target in data.splits["test"]]
for source, target in data.splits["train"][:3]:
    print(f"  {source!r} -> {target!r}")

# The translators below read the vocabularies from files, as a trained run's do: write them.
for name, content in data.assets.items():
    (args.out / name).parent.mkdir(parents=True, exist_ok=True)
    (args.out / name).write_bytes(content)

# ## Two models, one attention apart
#
# `build_model` is the training model: source and target_in in, the logits of each next
# target character out. With Luong's attention the decoder is a plain GRU layer over the
# whole target, and attention comes after it. Bahdanau's must attend before each step, so
# its decoder is a `BahdanauCell` inside `keras.layers.RNN`. The cell needs the encoder's
# outputs, their keys and the source mask at every step; Keras 3's `RNN` has no
# `constants=` argument (Keras 2's way to hand each step the same extra tensors), so the
# decoder layer sets them on the cell as its `memory` attribute just before it calls the
# RNN, and clears it after.
#
# `compile_args` gives the task's loss: cross-entropy of the logits, padding (id 0) ignored.
# The learning rate decays to zero along a cosine over the epochs, as the CLI's does, and
# `FeedEpoch` gives each epoch its own seeded order of the training pairs.
results = {}
for attention in ("bahdanau", "luong-general"):
    config = dataclasses.replace(config, attention=attention)
    model = build_model(config, data.source_vocab.size, data.target_vocab.size)
    optimizer = keras.optimizers.Adam(
        learning_rate(config, data.train), global_clipnorm=config.clipnorm
    )
    model.compile(optimizer=optimizer, **compile_args(config, data))
    print(f"\n{attention}: {model.count_params():,} parameters")
    started = time.perf_counter()
    model.fit(
        data.train,
        validation_data=data.val,
        epochs=config.epochs,
        callbacks=[FeedEpoch()],
        shuffle=False,  # the pipeline orders the pairs itself
        verbose=2,
    )
    seconds = time.perf_counter() - started

    # ## Decoding
    #
    # At inference there is no target to feed: the decoder starts from START and feeds back
    # what it wrote. `keras_translator` cuts the trained model into an encoder and a
    # one-step decoder (the same two graphs the export writes) and hands them to the
    # TensorFlow-free loops of `serving.runtime`, which onnxruntime's graphs use too.
    # Greedy decoding takes the most likely character at each step; the beam search keeps
    # the 4 most likely prefixes. Every ISO date has 10 characters, so no length penalty is
    # needed (0: rank by log-probability), and the search stops as soon as no live prefix
    # can beat the 4 finished ones.
    translator = keras_translator(model, config, args.out / "vocab")
    greedy = translator.greedy(sources)
    beam = translator.beam(sources, 4, length_penalty=0.0)
    results[attention] = {
        "seconds": seconds,
        "greedy": scores(greedy, references, data.mode)["exact_match"],
        "beam": scores(beam, references, data.mode)["exact_match"],
        "example": greedy[0].text,
    }

    # ## Where the decoder looks
    #
    # `attend` decodes one source greedily and keeps each step's attention weights: one row
    # per character written, one column per character read. A model that has learnt the task
    # looks at the year's digits while it writes the year, then at the month, then the day.
    path = args.out / f"attention_{attention}.png"
    plot_attention(translator.attend(sources[0]), path)
    print(f"attention over {sources[0]!r} drawn in {path}")

# ## The result
#
# Exact match: the share of the test dates translated with every character right.
print("\n| attention | training s | greedy exact match | beam 4 exact match |")
print("|---|---:|---:|---:|")
for attention, result in results.items():
    print(
        f"| {attention} | {result['seconds']:.0f} | {result['greedy']:.3f} | {result['beam']:.3f} |"
    )
print(f"\n{sources[0]!r}, reference {references[0]!r}:")
for attention, result in results.items():
    print(f"  {attention}: {result['example']!r}")
