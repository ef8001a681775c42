"""python -m keras_rnn.train: train one task's model into a run directory.

    python -m keras_rnn.train --task sine --cell lstm [--run-dir runs/NAME] [--resume | --force]

Writes the run directory of DESIGN.md section 3 and prints the test metrics and where
everything went. User mistakes print one line to stderr and exit with status 2. Arguments and
the run directory are checked before TensorFlow is imported, so those mistakes answer at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keras_rnn.config import (
    CONFIGS,
    TrainConfig,
    add_config_flags,
    check_applicable,
    config_class,
    config_from_dict,
    flag,
)
from keras_rnn.errors import UserError
from keras_rnn.runs import RunDir, check_resumable, check_run_dir, read_json
from serving import cli

RESUMABLE_FLAGS = {"epochs", "patience", "tensorboard"}  # what --resume may change


def parse_args(argv: list[str] | None) -> tuple[TrainConfig, argparse.Namespace]:
    """Return the resolved config and the run-control arguments (run_dir, resume, force)."""
    pre = cli.ArgumentParser(add_help=False)
    pre.add_argument("--task", default="sine")
    known, _ = pre.parse_known_args(argv)
    task_config = config_class(known.task)

    parser = cli.ArgumentParser(
        prog="python -m keras_rnn.train",
        description="Train a recurrent model; write config, checkpoints, model, metrics, plots.",
    )
    parser.add_argument("--task", choices=tuple(CONFIGS), default="sine", help="(default: sine)")
    parser.add_argument("--run-dir", help="run directory (default: runs/TASK-CELL)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--force", action="store_true", help="delete an existing run first")
    add_config_flags(parser, task_config)
    args = parser.parse_args(argv)

    control = {"task", "run_dir", "resume", "force"}
    explicit = {k: v for k, v in vars(args).items() if k not in control}
    cell = explicit.get("cell", task_config.cell)
    args.run_dir = Path(args.run_dir or f"runs/{args.task}-{cell}")
    if args.resume:
        run = RunDir(args.run_dir)
        check_resumable(run)
        saved = read_json(run.config_json)["config"]
        for name, value in explicit.items():
            if name not in RESUMABLE_FLAGS and saved.get(name) != value:
                changeable = ", ".join(f"--{flag(name)}" for name in sorted(RESUMABLE_FLAGS))
                raise UserError(
                    f"--{flag(name)} {value} differs from the run's {saved.get(name)}: "
                    f"a resumed run keeps its config (it may change {changeable})"
                )
        values = {**saved, **explicit}
    else:
        values = {**explicit, "task": args.task}
    config = config_from_dict(task_config, values)
    check_applicable(config, explicit)  # a typed flag the config ignores is a mistake
    return config, args


def main(argv: list[str] | None = None) -> int:
    try:
        config, args = parse_args(argv)
        check_run_dir(args.run_dir, force=args.force, resume=args.resume)
        from keras_rnn.trainer import run_training  # TensorFlow starts here

        task, run, metrics = run_training(config, args.run_dir, args.force, args.resume)
    except UserError as error:
        return cli.report(error)
    print()
    print(task.format_metrics(metrics, config))
    print()
    print(f"run directory: {run.path}")
    for label, path in (
        ("model", run.model_keras),
        ("metrics", run.metrics_json),
        ("history", run.history_csv),
        ("plots", run.plots),
    ):
        print(f"  {label + ':':9} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
