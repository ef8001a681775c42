"""python -m benchmarks.training: training speed of Keras on TensorFlow against PyTorch on CPU.

For each configuration (the charlm and sine task defaults and a larger charlm) and each cell,
trains the task's own Keras model, built and compiled as ``python -m keras_rnn.train`` does,
for a fixed number of steps in several ways (plain ``fit``, ``steps_per_execution``,
``jit_compile=True``, the task's tf.data pipeline, and the pipeline with ``steps_per_execution``
as the trainer runs it; ``benchmarks.training_keras``), then the
same network written in PyTorch (``nn.RNN``/``nn.GRU``/``nn.LSTM``,
``benchmarks.training_torch``), back to back. Each framework runs in its own process with the
same intra- and inter-op thread counts, set before it starts. Prints steps and tokens per
second, each row's ratio to PyTorch and how busy other processes kept the machine meanwhile:
ratios come from one run of this command; compare them, not absolute speeds, across machines.
Without torch the PyTorch rows are left out and a line says how to add them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from keras_rnn import quiet
from keras_rnn.config import CELLS
from keras_rnn.errors import UserError
from serving import cli

# name: (task, config fields that differ from the task's defaults, (warm-up, timed steps)).
# charlm with random windows: stateless layers, as PyTorch's peer, which starts every batch
# from zero states.
CONFIGURATIONS = {
    "charlm": ("charlm", {"batching": "random"}, (5, 20)),
    "charlm-large": ("charlm", {"batching": "random", "layers": 2, "units": 512}, (3, 10)),
    "sine": ("sine", {}, (50, 500)),
}
KERAS_VARIANTS = ("fit", "steps_per_execution", "jit_compile", "pipeline", "trainer")
INSTALL = "pip install -r benchmarks/requirements-torch.txt"
HEADER = (
    "| configuration | cell | trained with | steps/s | tokens/s | vs PyTorch | others' load |\n"
    "|---|---|---|---:|---:|---:|---:|"
)
ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class Spec:
    """One configuration and cell, as both sides' processes receive it (JSON)."""

    task: str
    cell: str
    overrides: dict[str, Any]
    threads: int
    warmup: int
    steps: int
    steps_per_execution: int
    variants: list[str]


def apply_thread_environment(threads: int) -> None:
    """Thread counts for the libraries under both frameworks (OpenMP, MKL, TensorFlow's
    pools), and no GPU: call it before TensorFlow or torch is imported."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU benchmark, on a machine with GPUs too
    for name in (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
    ):
        os.environ[name] = str(threads)


def synthetic_batch(peer: dict[str, Any]) -> tuple[dict, dict]:
    """One batch of the task's shapes from a seeded generator, the same on both sides:
    character ids and the next ids (charlm), or windows of a series and its next values."""
    rng = np.random.default_rng(0)
    batch, steps = peer["batch"], peer["steps"]
    if peer["task"] == "charlm":
        ids = rng.integers(0, peer["vocab"], size=(batch, steps + 1), dtype=np.int32)
        return {"characters": ids[:, :-1]}, {"logits": ids[:, 1:]}
    series = rng.normal(size=(batch, steps + peer["horizon"])).astype(np.float32)
    targets = series[:, steps:]
    return {"window": series[:, :steps, None]}, {
        "next_value": targets[:, :1],
        "next_values": targets,
    }


def busy_seconds() -> float | None:
    """CPU seconds the whole machine has been busy since boot (Linux ``/proc/stat``; None
    elsewhere); time stolen by a hypervisor counts as busy, since it is taken from us too."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait


def clock() -> tuple[float, float | None, float]:
    """Wall time, the machine's busy CPU seconds and this process's CPU seconds, now."""
    return time.perf_counter(), busy_seconds(), time.process_time()


def timing(steps: int, start: tuple, end: tuple) -> dict[str, Any]:
    """``steps`` between two ``clock()`` readings: their seconds, and the cores that other
    processes kept busy meanwhile, on average (None where it cannot be read)."""
    seconds = end[0] - start[0]
    others = None
    if start[1] is not None and end[1] is not None:
        others = (end[1] - start[1] - (end[2] - start[2])) / seconds
        others = min(max(0.0, others), float(os.cpu_count() or 1))  # clock ticks are coarse
    return {"steps": steps, "seconds": seconds, "others": others}


def run_side(module: str, arguments: list[str], verbose: bool) -> list[dict[str, Any]]:
    """Run one side's process; its rows (the JSON line it prints last)."""
    result = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=None if verbose else subprocess.PIPE,
        text=True,
        check=False,
        env=os.environ | ({quiet.VERBOSE_VARIABLE: "1"} if verbose else {}),
    )
    if result.returncode == 2:  # the side's one-line error (e.g. torch does not import)
        lines = (result.stderr or "").strip().splitlines() or [f"{module}: see its output above"]
        raise UserError(lines[-1].removeprefix("error: "))
    if result.returncode != 0:
        raise RuntimeError(f"{module} failed:\n{(result.stderr or '')[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def describe(peer: dict[str, Any]) -> str:
    """A configuration's sizes, e.g. "embedding 64, 384 units, batch 128 x 100"."""
    layers = f"{peer['layers']} x {peer['units']}" if peer["layers"] > 1 else str(peer["units"])
    embedding = f"embedding {peer['features']}, " if peer["task"] == "charlm" else ""
    return f"{embedding}{layers} units, batch {peer['batch']} x {peer['steps']}"


def benchmark(name: str, cell: str, args) -> list[str]:
    """Table rows of one configuration and cell: the Keras variants, then PyTorch; with
    ``--rounds``, each row's fastest round."""
    task, overrides, (warmup, steps) = CONFIGURATIONS[name]
    spec = Spec(
        task=task,
        cell=cell,
        overrides=overrides | ({"units": args.units} if args.units else {}),
        threads=args.threads,
        warmup=args.warmup or warmup,
        steps=args.steps or steps,
        steps_per_execution=args.steps_per_execution,
        variants=args.variants,
    )
    spec_json = json.dumps(dataclasses.asdict(spec))
    fastest: dict[str, dict[str, Any]] = {}  # by variant
    for round_ in range(1, args.rounds + 1):
        of = f", round {round_} of {args.rounds}" if args.rounds > 1 else ""
        print(f"training {name} ({cell}) with Keras{of}", flush=True)  # progress
        rows = run_side("benchmarks.training_keras", [spec_json], args.verbose)
        peer = rows[0]["peer"]
        if args.torch:
            print(f"training {name} ({cell}) with PyTorch{of}", flush=True)
            rows += run_side("benchmarks.training_torch", [spec_json, json.dumps(peer)], False)
        for row in rows:
            row["rate"] = row["steps"] / row["seconds"]
            if row["rate"] > fastest.get(row["variant"], {"rate": 0})["rate"]:
                fastest[row["variant"]] = row
    torch_rate = next((r["rate"] for r in fastest.values() if r.get("pytorch")), None)
    tokens = peer["batch"] * peer["steps"]
    lines = []
    for variant, row in fastest.items():
        ratio = f"{row['rate'] / torch_rate:.2f}x" if torch_rate else "n/a"
        others = "n/a" if row["others"] is None else f"{row['others']:.2f}"
        lines.append(
            f"| {name}: {describe(peer)} | {cell} | {variant} | {row['rate']:.2f} "
            f"| {row['rate'] * tokens:,.0f} | {ratio} | {others} |"
        )
    return lines


def parse_names(text: str, known, kind: str) -> list[str]:
    """Comma-separated names from ``known``; an unknown one is a ``UserError``."""
    names = text.split(",")
    if unknown := sorted(set(names) - set(known)):
        raise UserError(f"unknown {kind} {', '.join(unknown)}: choose from {', '.join(known)}")
    return names


def parse_args(argv: list[str] | None):
    parser = cli.ArgumentParser(
        prog="python -m benchmarks.training", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--configurations",
        default=",".join(CONFIGURATIONS),
        help=f"comma-separated: {', '.join(CONFIGURATIONS)} (default: all)",
    )
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated cells")
    parser.add_argument(
        "--variants",
        default=",".join(KERAS_VARIANTS),
        help=f"comma-separated Keras variants: {', '.join(KERAS_VARIANTS)} (default: all)",
    )
    parser.add_argument(
        "--threads",
        type=cli.positive_int,
        default=len(os.sched_getaffinity(0)),
        help="intra- and inter-op threads of both frameworks (default: the usable cores)",
    )
    for flag, what in (("--steps", "timed steps"), ("--warmup", "untimed steps first")):
        parser.add_argument(
            flag, type=cli.positive_int, help=f"{what} (default: per configuration)"
        )
    parser.add_argument(
        "--steps-per-execution",
        type=cli.positive_int,
        default=32,
        help="steps_per_execution of the steps_per_execution and trainer variants "
        "(default: 32, the trainer's)",
    )
    parser.add_argument(
        "--rounds",
        type=cli.positive_int,
        default=1,
        help="train each configuration this many times, keep each row's fastest (default: 1)",
    )
    parser.add_argument(
        "--units", type=cli.positive_int, help="units of every configuration's layers instead"
    )
    parser.add_argument("--no-torch", action="store_true", help="leave the PyTorch rows out")
    quiet.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    args.configurations = parse_names(args.configurations, CONFIGURATIONS, "configuration")
    args.cells = parse_names(args.cells, CELLS, "cell")
    args.variants = parse_names(args.variants, KERAS_VARIANTS, "variant")
    args.torch = not args.no_torch and importlib.util.find_spec("torch") is not None
    return args


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        rows = [
            row
            for name in args.configurations
            for cell in args.cells
            for row in benchmark(name, cell, args)
        ]
    except UserError as error:
        return cli.report(error)
    rounds = f", the fastest of {args.rounds} rounds" if args.rounds > 1 else ""
    print(
        f"\nTraining steps per second after the warm-up steps{rounds}, {args.threads} "
        "thread(s) in both frameworks; tokens: characters "
        "(charlm) or series values (sine) per step. Synthetic data (one batch of the task's "
        "shapes, repeated) except the pipeline rows. Others' load: cores other processes kept "
        "busy meanwhile.\n"
    )
    print(HEADER)
    print("\n".join(rows))
    if not args.torch:
        print(f"\nThe PyTorch rows need torch: `{INSTALL}`.")
    return 0


if __name__ == "__main__":
    with cli.exit_on_interrupt(lambda: "no table was printed"):
        sys.exit(main())
