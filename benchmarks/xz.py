"""python -m benchmarks.xz [RUN_DIR ...]: the charlm test text against xz -9e.

A character model that compresses its test text worse than a general-purpose compressor has
not learned the text. For the default corpus (or ``--text FILE``), and for each finished
charlm run given (its own text and split, from config.json), this prints the bits per test
character that xz -9e spends on the test text alone and after the training text, beside the
run's ``test_bits_per_char`` and, where the run has it, its dynamic evaluation figure
(``test_bits_per_char_dynamic``: the model learning from the test text as it reads it, as
xz does). Python's lzma is liblzma, the library of the xz tool; no
TensorFlow is needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from keras_rnn.errors import UserError
from keras_rnn.runs import finished_run, read_json
from keras_rnn.tasks.charlm import Config
from keras_rnn.tasks.charlm.compression import xz_baselines
from keras_rnn.tasks.charlm.corpus import read_text, split_points
from serving import cli

HEADER = (
    "| text | test characters | model | model, dynamic evaluation | xz -9e alone "
    "| xz -9e after training text | beats xz alone | beats xz after training text |\n"
    "|---|---:|---:|---:|---:|---:|---|---|"
)


def row(label: str, config: Config, figures: tuple[float | None, float | None]) -> str:
    """One table row; ``figures``: the model's static and dynamic bits per test character
    (None: not known), each compared with both xz figures ("no / yes": static, dynamic)."""
    text, _ = read_text(config)
    val_start, test_start = split_points(len(text), config)
    xz = xz_baselines(text[:val_start], text[test_start:])
    alone, after = xz["test_bits_per_char_xz"], xz["test_bits_per_char_xz_after_train"]
    known = [bits for bits in figures if bits is not None]
    model, dynamic = ("" if bits is None else f"{bits:.3f}" for bits in figures)
    beats = [" / ".join("yes" if bits < x else "no" for bits in known) for x in (alone, after)]
    return (
        f"| {label} | {len(text) - test_start:,} | {model} | {dynamic} | {alone:.3f} "
        f"| {after:.3f} | {beats[0]} | {beats[1]} |"
    )


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m benchmarks.xz", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="finished charlm runs to compare")
    parser.add_argument(
        "--text", help="a UTF-8 text to split as charlm would (default: the corpus)"
    )
    try:
        args = parser.parse_args(argv)
        rows = []
        if not args.runs or args.text:
            label = args.text or "the default corpus"
            rows.append(row(label, Config(text=args.text or ""), (None, None)))
        for run_dir in args.runs:
            run, config = finished_run(run_dir)
            if config.task != "charlm":
                raise UserError(f"{run_dir} is from task {config.task}: xz is compared with charlm")
            metrics = read_json(run.path / "metrics.json")
            figures = (metrics["test_bits_per_char"], metrics.get("test_bits_per_char_dynamic"))
            rows.append(row(str(run_dir), config, figures))
    except UserError as error:
        return cli.report(error)
    print(
        "bits per test character (the last test_fraction of the text); xz: Python's lzma, preset "
        "9e; beats: the model's figure, then its dynamic evaluation's"
    )
    print(HEADER)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
