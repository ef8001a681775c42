"""python -m keras_rnn.translate RUN_DIR TEXT...: translations by a trained translate run.

    python -m keras_rnn.translate runs/translate "23 November 2026" "2026年11月23日"
    python -m keras_rnn.translate runs/translate "monday 23/11/2026" --beam 4 --plot att.png

Greedy decoding unless --beam N (N >= 2) asks for beam search; the same texts give the same
translations here and in ``python -m serving.predict`` (onnxruntime). --plot draws the
attention of the first text's greedy translation in the format its suffix names (.png, .pdf,
.svg, ...); it never writes inside a run directory or an export, and replaces a file that this
project did not write only with --force. Tokens outside the vocabulary are read as unknown and
reported; an empty text translates to an empty text; a text longer than the model's limit is
refused.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from keras_rnn import quiet
from keras_rnn.errors import UserError
from keras_rnn.runs import finished_run, load_trained_model
from serving import cli
from serving.predict_tasks.translate import note_unknown
from serving.runtime.translate import as_json, check_beam_flags, translate_texts


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m keras_rnn.translate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("run_dir", type=Path, help="a finished translate run directory")
    parser.add_argument("texts", nargs="+", help="texts to translate")
    parser.add_argument(
        "--beam", type=cli.non_negative_int, default=0, help="beam width (default: 0, greedy)"
    )
    parser.add_argument(
        "--length-penalty",
        type=float,
        help="beam search ranks by log-probability / length**LENGTH_PENALTY (default: 1)",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="draw the first text's attention into FILE (.png, .pdf, .svg, ...: its suffix)",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace a --plot file this project did not write"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    quiet.add_verbose_flag(parser)
    try:
        args = parser.parse_args(argv)
        run, config = finished_run(args.run_dir)
        if config.task != "translate":
            raise UserError(f"{run.path} is a {config.task} run: translate needs a translate run")
        plot = None
        if args.plot is not None:
            if config.attention == "none":
                raise UserError("--plot: this run's model has no attention to draw")
            from keras_rnn.plots import check_figure_path

            plot = check_figure_path(args.plot, "--plot", args.force)
        elif args.force:
            raise UserError("--force applies to --plot only: leave it out")
        check_beam_flags(args.beam, args.length_penalty)
        with cli.exit_on_interrupt(lambda: "nothing was translated"):
            quiet.start_tensorflow(args.verbose)  # after the cheap checks
            from keras_rnn.tasks.translate.decoding import keras_translator, plot_attention

            translator = keras_translator(load_trained_model(run), config, run.path / "vocab")
            translations = translate_texts(translator, args.texts, args.beam, args.length_penalty)
            note_unknown(translations)
            if plot is not None:
                plot_attention(translator.attend(args.texts[0]), plot)
    except UserError as error:
        return cli.report(error)
    if args.json:
        print(json.dumps(as_json(args.texts, translations)))
    else:
        print("\n".join(t.text for t in translations))
    return 0


if __name__ == "__main__":
    sys.exit(main())
