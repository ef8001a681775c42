"""The course's toy sequence problems, each trained in seconds:

- 我要好好学习 -> 我要乖乖躺平: N to N (one output per input character), 8-character vocabulary.
- hello -> ohlol: N to N with two stacked recurrent layers.
- Six antonym pairs (man -> women, black -> white, ...): an encoder-decoder. At test time the
  decoder is fed its own previous output (greedy), never the gold prefix.

``python -m keras_rnn.toys`` trains all three and prints what they output.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING

import numpy as np

from keras_rnn import quiet
from keras_rnn.errors import UserError
from serving import cli

if TYPE_CHECKING:  # imported where used: main starts TensorFlow quietly after --help
    import keras

PAD, START, END = "_", "^", "$"  # reserved tokens of the encoder-decoder; PAD is id 0
ANTONYMS = (
    ("man", "women"),
    ("black", "white"),
    ("king", "queen"),
    ("girl", "boy"),
    ("up", "down"),
    ("high", "low"),
)


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Characters <-> ids, in the order given."""

    tokens: tuple[str, ...]

    def ids(self, text: str) -> np.ndarray:
        index = {token: i for i, token in enumerate(self.tokens)}
        return np.array([index[char] for char in text], dtype=np.int32)

    def text(self, ids) -> str:
        return "".join(self.tokens[i] for i in ids)


def vocabulary(*texts: str, reserved: tuple[str, ...] = ()) -> Vocabulary:
    """``reserved`` tokens first, then every character of ``texts`` in first-seen order."""
    return Vocabulary(tuple(dict.fromkeys([*reserved, *"".join(texts)])))


def n_to_n(
    source: str,
    target: str,
    cell: str = "lstm",
    layers: int = 1,
    units: int = 16,
    steps: int = 100,
    learning_rate: float = 0.05,
    seed: int = 0,
) -> str:
    """Train Embedding -> recurrent stack -> Dense on the single pair; return what the trained
    model outputs for ``source`` (the most likely character at each step)."""
    if len(source) != len(target):
        raise ValueError(f"N to N needs equal lengths, got {source!r} and {target!r}")
    import keras

    from keras_rnn.layers import recurrent_stack

    vocab = vocabulary(source, target)
    keras.utils.set_random_seed(seed)
    chars = keras.Input((None,), dtype="int32", name="chars")
    x = keras.layers.Embedding(len(vocab.tokens), 8)(chars)
    x = recurrent_stack(x, cell, units, layers=layers, return_sequences=True)
    logits = keras.layers.Dense(len(vocab.tokens), name="next_chars")(x)
    model = keras.Model(chars, logits, name="n_to_n")
    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    inputs, targets = vocab.ids(source)[None], vocab.ids(target)[None]
    # ``steps`` updates in one epoch: per-epoch overhead would dominate such a tiny problem.
    model.fit(np.repeat(inputs, steps, 0), np.repeat(targets, steps, 0), batch_size=1, verbose=0)
    return vocab.text(np.argmax(keras.ops.convert_to_numpy(model(inputs)), axis=-1)[0])


@dataclasses.dataclass
class Translator:
    """An encoder-decoder's inference halves: ``encoder`` maps padded source ids to the
    decoder's initial states; ``step`` maps one token and the states to logits and new states."""

    vocab: Vocabulary
    encoder: keras.Model
    step: keras.Model
    max_length: int

    def __call__(self, word: str) -> str:
        """Greedy decoding: each step is fed the previous step's own output."""
        import keras

        states = self.encoder(self.vocab.ids(word)[None])
        states = [
            keras.ops.convert_to_numpy(s)
            for s in (states if isinstance(states, list) else [states])
        ]
        token, output = self.vocab.ids(START), []
        for _ in range(self.max_length):
            logits, *states = (
                keras.ops.convert_to_numpy(t) for t in self.step([token[None], *states])
            )
            token = np.argmax(logits, axis=-1)[0]
            if self.vocab.tokens[token[0]] == END:
                break
            output.append(token[0])
        return self.vocab.text(output)


def encoder_decoder(
    pairs: tuple[tuple[str, str], ...] = ANTONYMS,
    cell: str = "gru",
    units: int = 32,
    steps: int = 300,
    learning_rate: float = 0.01,
    seed: int = 0,
) -> Translator:
    """Train a character encoder-decoder on ``pairs`` with teacher forcing; return its greedy
    translator."""
    import keras

    from keras_rnn.layers import rnn_layer

    vocab = vocabulary(*(a + b for a, b in pairs), reserved=(PAD, START, END))
    length = max(len(word) for pair in pairs for word in pair) + 1

    def padded(texts: list[str]) -> np.ndarray:
        return np.stack([np.pad(vocab.ids(t), (0, length - len(t))) for t in texts])

    keras.utils.set_random_seed(seed)
    size = len(vocab.tokens)
    source = keras.Input((None,), dtype="int32", name="source")
    _, *states = rnn_layer(cell, units, return_state=True, name="encoder")(
        keras.layers.Embedding(size, 16, mask_zero=True)(source)
    )
    target_in = keras.Input((None,), dtype="int32", name="target_in")
    embed = keras.layers.Embedding(size, 16, mask_zero=True)
    decoder = rnn_layer(cell, units, return_sequences=True, return_state=True, name="decoder")
    scores = keras.layers.Dense(size, name="next_token")
    # Keras drops the padding mask when initial_state is given (Keras 3.15): pass it.
    sequence, *_ = decoder(
        embed(target_in), initial_state=states, mask=embed.compute_mask(target_in)
    )
    model = keras.Model([source, target_in], scores(sequence), name="antonyms")
    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    sources, targets = [a for a, _ in pairs], [b for _, b in pairs]
    inputs = [padded(sources), padded([START + t for t in targets])]
    outputs = padded([t + END for t in targets])
    model.fit(  # ``steps`` full-batch updates in one epoch
        [np.tile(part, (steps, 1)) for part in inputs],
        np.tile(outputs, (steps, 1)),
        batch_size=len(pairs),
        shuffle=False,
        verbose=0,
    )
    token = keras.Input((1,), dtype="int32", name="token")
    state_inputs = [keras.Input((units,), name=f"state_{i}") for i in range(len(states))]
    step_sequence, *step_states = decoder(embed(token), initial_state=state_inputs)
    step = keras.Model([token, *state_inputs], [scores(step_sequence), *step_states])
    return Translator(vocab, keras.Model(source, states), step, max_length=length)


def print_toys() -> None:
    """Train the three toys and print what each trained model outputs."""
    print(f"我要好好学习 -> {n_to_n('我要好好学习', '我要乖乖躺平')}   (N to N, one LSTM layer)")
    print(f"hello -> {n_to_n('hello', 'ohlol', layers=2)}   (N to N, two stacked LSTM layers)")
    translate = encoder_decoder()
    for word, antonym in ANTONYMS:
        print(f"{word} -> {translate(word)}   (encoder-decoder, greedy; expected {antonym})")


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m keras_rnn.toys",
        description="Train the course's three toy problems (seconds each) and print what the "
        "trained models output; seed 0, nothing is written.",
    )
    quiet.add_verbose_flag(parser)
    try:
        args = parser.parse_args(argv)  # --help and --verbose only: the toys take no options
    except UserError as error:
        return cli.report(error)
    with cli.exit_on_interrupt(lambda: "nothing is kept: the toys train from scratch each time"):
        quiet.start_tensorflow(args.verbose)
        print_toys()
    return 0


if __name__ == "__main__":
    sys.exit(main())
