"""``--mixed-precision``: the dtype policy training computes in, and where it may.

On a GPU: ``mixed_float16``, for which Keras's ``compile`` wraps the optimizer in a
``LossScaleOptimizer`` (the loss is scaled up so that float16 gradients do not underflow,
and the gradients scaled back before the update). On a CPU: ``mixed_bfloat16``, which needs
no loss scaling (bfloat16 has float32's exponent range), only where the processor has
bfloat16 instructions (``avx512_bf16`` or ``amx_bf16`` among /proc/cpuinfo's flags);
elsewhere TensorFlow would emulate bfloat16, which is slower than float32, so the flag is
refused. Under both policies the variables stay float32, and the layers that make a model's
outputs compute in float32 (``keras_rnn.layers.FLOAT32``). The run's ``model.keras`` is the
float32 model with the trained weights, so that evaluation, export and serving compute in
float32 as for any other run.

Keras is imported inside the functions that need it: ``policy_name`` answers before
TensorFlow starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from keras_rnn.errors import UserError
from keras_rnn.runs import RunDir, read_json

if TYPE_CHECKING:
    import keras

CPUINFO = Path("/proc/cpuinfo")
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")  # Linux's names of the bfloat16 instruction sets


def cpu_flags(cpuinfo: Path | None = None) -> set[str] | None:
    """The processor's feature flags from ``cpuinfo`` (/proc/cpuinfo), or None where that
    file cannot be read (not Linux)."""
    try:
        text = (cpuinfo or CPUINFO).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return {
        flag
        for line in text.splitlines()
        if line.split(":")[0].strip() == "flags"
        for flag in line.partition(":")[2].split()
    }


def policy_name(mixed: bool, gpu: bool, cpuinfo: Path | None = None) -> str:
    """The dtype policy to train in: "float32" unless ``mixed``; then "mixed_float16" on a
    ``gpu``, else "mixed_bfloat16" where the processor has bfloat16 instructions (a
    ``UserError`` where it has not)."""
    if not mixed:
        return "float32"
    if gpu:
        return "mixed_float16"
    flags = cpu_flags(cpuinfo)
    wanted = " or ".join(BFLOAT16_FLAGS)
    if flags is None:
        raise UserError(
            f"--mixed-precision without a GPU needs bfloat16 instructions ({wanted}), and "
            f"{cpuinfo or CPUINFO} cannot be read to tell whether this processor has them: "
            "train without --mixed-precision"
        )
    if not flags & set(BFLOAT16_FLAGS):
        raise UserError(
            f"--mixed-precision without a GPU needs a processor with bfloat16 instructions "
            f"({wanted} in {cpuinfo or CPUINFO}), and this one has neither: TensorFlow would "
            "emulate bfloat16, which is slower than float32, so train without --mixed-precision"
        )
    return "mixed_bfloat16"


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Within the block, layers are created under Keras's global dtype policy ``name``; the
    previous policy is back afterwards."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def check_loss_scaling(run: RunDir, model: keras.Model) -> None:
    """Refuse to resume a backup written with float16 loss scaling without it, or the
    reverse: the optimizer's state would not load (Keras skips it with a warning)."""
    import keras

    metadata = run.backup / "training_metadata.json"
    saved = read_json(metadata) if metadata.is_file() else {}
    scaled = isinstance(saved, dict) and saved.get("loss_scale") is True
    scaling = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    if scaled != scaling:
        before, now = ("with", "without") if scaled else ("without", "with")
        raise UserError(
            f"{run.path} was trained {before} float16 loss scaling (--mixed-precision on a GPU) "
            f"and would go on {now} it, losing the optimizer's state: resume it with the "
            "--mixed-precision setting and the kind of device it was trained with"
        )
