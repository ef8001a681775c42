"""python -m keras_rnn.train: train one task's model into a run directory.

    python -m keras_rnn.train --task sine --cell lstm [--run-dir runs/NAME] [--resume | --force]

Writes the run directory (docs/design.md, section 3) and prints the test metrics and where
everything went. User mistakes print one line to stderr and exit with status 2. Arguments and
the run directory are checked before TensorFlow is imported, so those mistakes answer at once.
TensorFlow's start-up lines stay off the terminal unless --verbose asks for them. Ctrl-C prints
one line with the command that continues the run and exits with status 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path
from typing import Any

from keras_rnn import distribute, quiet
from keras_rnn.config import (
    RuntimeConfig,
    TrainConfig,
    add_config_flags,
    check_applicable,
    config_from_dict,
    flag,
    input_files,
)
from keras_rnn.errors import UserError
from keras_rnn.runs import RunDir, check_resumable, check_run_dir, check_run_flags, read_json
from keras_rnn.tasks import config_class, task_configs
from serving import cli

RESUMABLE_FLAGS = {"epochs", "patience", "tensorboard"}  # what --resume may change


def saved_config(run: RunDir, task: str | None) -> dict[str, Any]:
    """The config of the unfinished run to resume; ``task``, if given, must be the run's."""
    check_resumable(run)
    saved = read_json(run.config_json)
    config = saved.get("config") if isinstance(saved, dict) else None
    if not isinstance(config, dict) or config.get("task") not in task_configs():
        raise UserError(f"{run.config_json} holds no config of a known task: retrain with --force")
    if task is not None and task != config["task"]:
        raise UserError(
            f"--task {task} differs from the task of {run.path}, {config['task']}: "
            "a resumed run keeps its task (leave --task out)"
        )
    return config


def parse_args(argv: list[str] | None) -> tuple[TrainConfig, argparse.Namespace]:
    """Return the resolved config and the run-control arguments (run_dir, resume, force, and
    ``runtime``: the ``RuntimeConfig``)."""
    pre = cli.ArgumentParser(add_help=False)
    pre.add_argument("--task")
    pre.add_argument("--run-dir")
    pre.add_argument("--resume", action="store_true")
    pre.add_argument("--force", action="store_true")
    known, _ = pre.parse_known_args(argv)
    check_run_flags(known.force, known.resume)  # before --resume reads the run
    task = known.task or "sine"
    if known.resume and known.run_dir is not None:  # the run knows its task
        task = saved_config(RunDir(Path(known.run_dir)), known.task)["task"]
    task_config = config_class(task)

    parser = cli.ArgumentParser(
        prog="python -m keras_rnn.train",
        usage="%(prog)s [--task TASK] [--run-dir DIR] [--resume | --force] [FLAG ...]",
        description="Train a recurrent model; write config, checkpoints, model, metrics, plots. "
        f"The hyperparameters listed are {task}'s: --task TASK --help lists those of another "
        f"task ({', '.join(task_configs())}).",
    )
    parser.add_argument(
        "--task",
        choices=tuple(task_configs()),
        default=task,
        help="(default: sine; with --resume, the run's own task)",
    )
    parser.add_argument("--run-dir", help="run directory (default: runs/TASK-CELL)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run: --run-dir DIR --resume is enough, its config.json "
        "gives the task and config; without --run-dir, the run at runs/TASK-CELL of --task "
        "and --cell",
    )
    parser.add_argument("--force", action="store_true", help="delete an existing run first")
    quiet.add_verbose_flag(parser)
    add_config_flags(
        parser.add_argument_group("runtime (a resumed run may change these)"), RuntimeConfig
    )
    add_config_flags(parser.add_argument_group(f"{task} hyperparameters"), task_config)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # such as --bidirectional, which another task takes
        raise UserError(
            f"unrecognized arguments: {' '.join(unknown)} (not flags of --task {task}: "
            f"--task {task} --help lists them)"
        )

    runtime_names = {field.name for field in dataclasses.fields(RuntimeConfig)}
    args.runtime = RuntimeConfig(**{k: v for k, v in vars(args).items() if k in runtime_names})
    control = {"task", "run_dir", "resume", "force", "verbose", "runtime", *runtime_names}
    explicit = {k: v for k, v in vars(args).items() if k not in control}
    cell = explicit.get("cell", task_config.cell)
    args.run_dir = Path(args.run_dir or f"runs/{args.task}-{cell}")
    if args.resume:
        saved = saved_config(RunDir(args.run_dir), args.task)
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


def check_inputs_outside(config: TrainConfig, run_dir: Path) -> None:
    """Refuse an input file inside the run directory that --force is about to delete."""
    for name, value in input_files(config).items():
        if Path(value).resolve().is_relative_to(run_dir.resolve()):
            raise UserError(
                f"--{flag(name)} {value} is inside --run-dir {run_dir}, which --force deletes: "
                "move the file out first"
            )


def resume_hint(run_dir: Path) -> str:
    """What to tell a user whose training was interrupted: how to go on, if it can."""
    run = RunDir(run_dir)
    if not run.config_json.is_file():
        return "training had not started: run the same command again"
    if run.complete:
        return f"the run had finished: {run.path}"
    command = ["python", "-m", "keras_rnn.train", "--run-dir", str(run.path), "--resume"]
    return f"continue the run with: {shlex.join(command)}"


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    try:
        config, args = parse_args(argv)
        position = distribute.worker(args.runtime.strategy)  # TF_CONFIG, before TensorFlow
        distribute.check_distributable(config, args.runtime)
        if position.chief:  # another worker leaves the run directory to the chief
            check_run_dir(args.run_dir, force=args.force, resume=args.resume)
            if args.force:
                check_inputs_outside(config, args.run_dir)
        with cli.exit_on_interrupt(lambda: resume_hint(args.run_dir)):
            quiet.start_tensorflow(args.verbose)
            from keras_rnn.trainer import run_training

            task, run, metrics = run_training(
                config, args.run_dir, args.force, args.resume, args.runtime
            )
    except UserError as error:
        return cli.report(error)
    print()
    print(task.format_metrics(metrics, config))
    print()
    print(f"run directory: {run.path}" + ("" if position.chief else " (written by the chief)"))
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
