"""python -m benchmarks.attention_length: exact match against source length, with and without
attention (the shape of Bahdanau et al. 2015, Figure 2).

Trains one translate model per ``--attention`` on the embedded numbers data (numbers written
out in English and Chinese words, 1 to about 150 characters, to digits), every model with the
same data, size, epochs and seed, then decodes the test split greedily and prints exact match
per source-length bucket as a Markdown table, and draws it into ``--plot`` (its suffix names
the format; a file that this project did not write is replaced only with ``--force``). Runs go
to ``--runs DIR/<attention>``; a finished run there with the same config is reused, so a second
call only decodes and draws.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from keras_rnn import plots, quiet
from keras_rnn.config import flag
from keras_rnn.errors import UserError
from keras_rnn.runs import RunDir, finished_run, load_trained_model
from keras_rnn.tasks.translate import ATTENTIONS, Config
from serving import cli
from serving.outputs import check_outside_owned_folders, create_folder

BUCKET = 25  # characters per source-length bucket


def configs(args) -> dict[str, Config]:
    """One config per attention, the same in everything else."""
    return {
        attention: Config(
            attention=attention,
            data="numbers",
            units=args.units,
            epochs=args.epochs,
            patience=0,
            learning_rate_schedule="cosine",
            train_pairs=args.train_pairs,
            test_pairs=args.test_pairs,
            beam_width=0,  # greedy only: the study reads greedy exact match
        )
        for attention in args.attention
    }


def trained(config: Config, run_dir: Path):
    """The finished run at ``run_dir`` if its config is ``config``; else train it there."""
    from keras_rnn.trainer import run_training

    if RunDir(run_dir).complete:
        run, saved = finished_run(run_dir)
        if saved != config:
            changed = [
                f.name
                for f in dataclasses.fields(config)
                if getattr(saved, f.name) != getattr(config, f.name)
            ]
            raise UserError(
                f"{run_dir} was trained with other settings ({', '.join(map(flag, changed))}): "
                "give another --runs folder"
            )
        print(f"{config.attention}: reusing {run_dir}", flush=True)
        return run
    print(f"{config.attention}: training into {run_dir}", flush=True)
    _, run, _ = run_training(config, run_dir, force=False, resume=False)
    return run


def exact_by_length(config: Config, run) -> dict[int, tuple[int, int]]:
    """(exact, count) of the test split's greedy translations, by source-length bucket."""

    from keras_rnn.tasks.translate.data import read_splits
    from keras_rnn.tasks.translate.decoding import keras_translator

    translator = keras_translator(load_trained_model(run), config, run.path / "vocab")
    test = read_splits(config)[0]["test"]
    translations = translator.greedy([source for source, _ in test], f"{config.attention}, greedy")
    buckets: dict[int, list[int]] = {}
    for (source, target), translation in zip(test, translations, strict=True):
        counts = buckets.setdefault(len(source) // BUCKET, [0, 0])
        counts[0] += translation.text == target
        counts[1] += 1
    return {bucket: (exact, count) for bucket, (exact, count) in sorted(buckets.items())}


def table(results: dict[str, dict[int, tuple[int, int]]]) -> str:
    buckets = sorted({b for by_length in results.values() for b in by_length})
    lines = [
        "| source characters | examples | " + " | ".join(results) + " |",
        "|---|---:|" + "---:|" * len(results),
    ]
    for bucket in buckets:
        count = next(r[bucket][1] for r in results.values() if bucket in r)
        cells = [
            f"{r[bucket][0] / r[bucket][1]:.3f}" if bucket in r else "-" for r in results.values()
        ]
        span = f"{bucket * BUCKET}-{(bucket + 1) * BUCKET - 1}"
        lines.append(f"| {span} | {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict[str, dict[int, tuple[int, int]]], path: Path) -> None:
    figure, axes = plots.plt.subplots(figsize=(7, 4))
    for attention, by_length in results.items():
        middles = [(b + 0.5) * BUCKET for b in by_length]
        axes.plot(middles, [e / n for e, n in by_length.values()], marker="o", label=attention)
    axes.set_xlabel("source length (characters)")
    axes.set_ylabel("exact match (greedy)")
    axes.set_ylim(0, 1.02)
    axes.set_title("Numbers in words to digits: exact match against source length")
    axes.legend()
    axes.grid(alpha=0.3)
    plots.save_figure(figure, path)


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m benchmarks.attention_length", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--attention",
        nargs="+",
        choices=ATTENTIONS,
        default=["none", "bahdanau", "luong-dot", "luong-general", "luong-concat"],
        help="the models to compare (default: all five)",
    )
    parser.add_argument("--units", type=cli.positive_int, default=64, help="(default: 64)")
    parser.add_argument("--epochs", type=cli.positive_int, default=8, help="(default: 8)")
    parser.add_argument(
        "--train-pairs", type=cli.positive_int, default=20000, help="(default: 20000)"
    )
    parser.add_argument("--test-pairs", type=cli.positive_int, default=2000, help="(default: 2000)")
    parser.add_argument(
        "--runs", type=Path, default=Path("runs/attention_length"), help="(default: %(default)s)"
    )
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="the figure to draw, .png, .pdf, .svg, ... (default: RUNS/attention_length.png)",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace a --plot file this project did not write"
    )
    quiet.add_verbose_flag(parser)
    try:
        args = parser.parse_args(argv)
        settings = configs(args)
        for attention in settings:
            check_outside_owned_folders(args.runs / attention, "--runs")
        if args.plot is None:  # beside the runs, in the folder that training would create
            create_folder(args.runs, "--runs")
        default_plot = str(args.runs / "attention_length.png")
        plot_path = plots.check_figure_path(
            default_plot if args.plot is None else args.plot, "--plot", args.force
        )
        quiet.start_tensorflow(args.verbose)
        results = {
            attention: exact_by_length(config, trained(config, args.runs / attention))
            for attention, config in settings.items()
        }
        plot(results, plot_path)
    except UserError as error:
        return cli.report(error)
    print(
        f"\ngreedy exact match on {args.test_pairs} held-out numbers by source length; "
        f"{args.train_pairs} training pairs, {args.epochs} epochs, {args.units} units\n"
    )
    print(table(results))
    print(f"\nplot: {plot_path}")
    return 0


if __name__ == "__main__":
    with cli.exit_on_interrupt(lambda: "no table was printed"):
        sys.exit(main())
