"""python -m export RUN_DIR [--force]: SavedModel + ONNX + manifest.json + parity.json.

The command line of ``export.exporting.export_run``, which writes each graph in the formats
it lists. Everything is built in a temporary folder inside the run and renamed to
``RUN_DIR/export`` only when parity holds; on a parity failure nothing is left behind and the
exit status is 1.
User mistakes print one line and exit with status 2; Ctrl-C prints one line and exits with
status 130. TensorFlow's start-up lines stay off the terminal unless --verbose asks for them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from export.exporting import export_run, print_outcome
from keras_rnn import quiet
from keras_rnn.errors import UserError
from keras_rnn.runs import check_export_dir, finished_run
from serving import cli


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m export", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished run directory")
    parser.add_argument("--force", action="store_true", help="replace an existing export")
    quiet.add_verbose_flag(parser)
    try:
        args = parser.parse_args(argv)
        run, config = finished_run(args.run_dir)
        check_export_dir(run.path / "export", args.force)  # --force replaces only our export
        with cli.exit_on_interrupt(lambda: "no new export was written"):
            quiet.start_tensorflow(args.verbose)
            report = export_run(run, config, args.force)
    except UserError as error:
        return cli.report(error)
    return print_outcome(report, run.path / "export")


if __name__ == "__main__":
    sys.exit(main())
