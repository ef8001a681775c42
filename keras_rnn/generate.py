"""python -m keras_rnn.generate RUN_DIR --prefix TEXT: text from a trained character LM.

    python -m keras_rnn.generate runs/charlm --prefix "def " --length 300 --temperature 0.5

Greedy when --temperature is 0; --top-k K samples among the K most likely characters. The
same --seed gives the same text, here and in ``python -m serving.predict`` (onnxruntime).
Characters of the prefix outside the vocabulary are read as unknown and reported.
"""

from __future__ import annotations

import sys
from pathlib import Path

from keras_rnn import quiet
from keras_rnn.errors import UserError
from keras_rnn.runs import finished_run, load_trained_model
from serving import cli
from serving.predict_tasks.charlm import add_generation_flags, sampling_flags
from serving.runtime.charlm import check_generation
from serving.runtime.vocab import Vocabulary, unknown_note


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m keras_rnn.generate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("run_dir", type=Path, help="a finished charlm run directory")
    add_generation_flags(parser)
    quiet.add_verbose_flag(parser)
    try:
        args = parser.parse_args(argv)
        run, config = finished_run(args.run_dir)
        if config.task != "charlm":
            raise UserError(f"{run.path} is a {config.task} run: generate needs a charlm run")
        vocab = Vocabulary.load(run.path / "vocab" / "vocab.json")
        settings = sampling_flags(args)
        check_generation(args.prefix or "", settings, vocab.size)
        with cli.exit_on_interrupt(lambda: "no text was generated"):
            quiet.start_tensorflow(args.verbose)  # after the cheap checks
            from keras_rnn.tasks.charlm import task as charlm

            text, unknown = charlm.keras_generate(
                load_trained_model(run),
                config,
                vocab,
                args.prefix,
                settings,
            )
    except UserError as error:
        return cli.report(error)
    if unknown:
        print(unknown_note(unknown), file=sys.stderr)
    print(args.prefix + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
