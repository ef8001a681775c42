"""python -m export.model MODEL.keras OUT_DIR [--force]: export a Keras model with fused ONNX.

For a saved Keras 3 model this project did not train (Functional or Sequential): OUT_DIR gets
what ``python -m export`` writes into a run's export/ (SavedModel with warm-up requests, fused
ONNX, Triton folder, manifest.json, parity.json), checked against Keras on generated inputs.
User mistakes print one line and exit with status 2; a parity failure writes nothing and exits
with status 1; Ctrl-C prints one line and exits with status 130.
"""

from __future__ import annotations

import sys
from pathlib import Path

from export.exporting import print_outcome
from export.model import check_out_dir, export_model
from export.model.loading import check_model_file, load_model_file
from export.model.names import safe_name
from keras_rnn import quiet
from keras_rnn.errors import UserError
from serving import cli


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m export.model", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a Keras 3 model file (.keras)")
    parser.add_argument("out_dir", type=Path, help="the folder to write (must not exist)")
    parser.add_argument(
        "--force", action="store_true", help="replace an OUT_DIR this command wrote before"
    )
    parser.add_argument(
        "--name", help="the graph's name (default: the model's name, made a valid name)"
    )
    parser.add_argument(
        "--import",
        dest="modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first: where the model's custom layers are defined (repeatable)",
    )
    parser.add_argument(
        "--atol", type=float, help="parity tolerance (default: 1e-4 with a GRU, else 1e-5)"
    )
    quiet.add_verbose_flag(parser)
    try:
        args = parser.parse_args(argv)
        if args.name is not None and safe_name(args.name) != args.name:
            raise UserError(
                f"--name {args.name!r}: use letters, digits, '_', '.' and '-', starting with "
                f"a letter or digit (e.g. {safe_name(args.name)!r})"
            )
        if args.atol is not None and not args.atol >= 0:
            raise UserError(f"--atol must be a number >= 0, got {args.atol}")
        check_model_file(args.model)
        check_out_dir(args.out_dir, args.force)
        with cli.exit_on_interrupt(lambda: f"nothing new was written to {args.out_dir}"):
            quiet.start_tensorflow(args.verbose)
            model = load_model_file(args.model, args.modules)
            report = export_model(
                model, args.out_dir, args.force, args.name, args.atol, source=args.model.name
            )
    except UserError as error:
        return cli.report(error)
    return print_outcome(report, args.out_dir)


if __name__ == "__main__":
    sys.exit(main())
