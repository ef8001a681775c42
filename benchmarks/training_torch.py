"""The PyTorch side of ``python -m benchmarks.training``, run in its own process so that its
thread settings hold: ``python -m benchmarks.training_torch SPEC_JSON PEER_JSON`` prints one
JSON line.

The peer is the network a PyTorch user would write for the same task: ``nn.Embedding`` (or
the sine task's normalisation), ``nn.RNN``/``nn.GRU``/``nn.LSTM`` with the same units, layers
and dropout, the same output layers and loss, Adam at the same learning rate (and cosine
decay), the same global gradient clipping, trained in the usual eager loop on the same
synthetic batch as the Keras side. Needs ``pip install -r benchmarks/requirements-torch.txt``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from benchmarks.training import (
    INSTALL,
    Spec,
    apply_thread_environment,
    clock,
    synthetic_batch,
    timing,
)

CELLS = {"simple": "RNN", "gru": "GRU", "lstm": "LSTM"}


def network(peer: dict[str, Any]):
    """The charlm or sine network of ``peer``'s sizes, as a ``torch.nn.Module``."""
    import torch
    from torch import nn

    recurrent = getattr(nn, CELLS[peer["cell"]])(
        peer["features"],
        peer["units"],
        num_layers=peer["layers"],
        batch_first=True,
        dropout=peer["dropout"] if peer["layers"] > 1 else 0.0,
    )

    class CharLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(peer["vocab"], peer["features"])
            self.rnn = recurrent
            self.dropout = nn.Dropout(peer["dropout"])
            self.logits = nn.Linear(peer["units"], peer["vocab"])

        def forward(self, characters):
            outputs, _ = self.rnn(self.embedding(characters))
            return self.logits(self.dropout(outputs))

    class Forecaster(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = recurrent
            self.next_value = nn.Linear(peer["units"], 1)
            self.next_values = nn.Linear(peer["units"], peer["horizon"])

        def forward(self, window):
            outputs, _ = self.rnn((window - peer["mean"]) / peer["std"])
            last = outputs[:, -1]
            scale = lambda x: x * peer["std"] + peer["mean"]  # noqa: E731
            return scale(self.next_value(last)), scale(self.next_values(last))

    torch.manual_seed(0)
    return CharLM() if peer["task"] == "charlm" else Forecaster()


def loss_function(peer: dict[str, Any]):
    """The task's loss on (outputs, targets), as ``task.compile_args`` defines it."""
    from torch.nn import functional

    if peer["task"] == "charlm":
        return lambda logits, ids: functional.cross_entropy(
            logits.reshape(-1, peer["vocab"]), ids.reshape(-1)
        )
    weight = 1.0 / peer["std"] ** 2
    return lambda outputs, targets: (
        weight
        * (
            functional.mse_loss(outputs[0], targets[0])
            + functional.mse_loss(outputs[1], targets[1])
        )
    )


def train(spec: Spec, peer: dict[str, Any]) -> dict[str, Any]:
    """Time ``spec.steps`` training steps after ``spec.warmup``."""
    import torch

    model = network(peer)
    optimizer = torch.optim.Adam(model.parameters(), lr=peer["learning_rate"], eps=1e-7)
    schedule = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, peer["decay_steps"])
        if peer["decay_steps"]
        else None
    )
    loss_of = loss_function(peer)
    inputs, targets = synthetic_batch(peer)
    if peer["task"] == "charlm":
        x = torch.from_numpy(inputs["characters"]).long()
        y = torch.from_numpy(targets["logits"]).long()
    else:
        x = torch.from_numpy(inputs["window"])
        y = (torch.from_numpy(targets["next_value"]), torch.from_numpy(targets["next_values"]))
    model.train()
    marks = {}
    for step in range(spec.warmup + spec.steps):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(model(x), y)
        loss.backward()
        if peer["clipnorm"]:
            torch.nn.utils.clip_grad_norm_(model.parameters(), peer["clipnorm"])
        optimizer.step()
        if schedule is not None:
            schedule.step()
        if step in (spec.warmup - 1, spec.warmup + spec.steps - 1):
            marks[step] = clock()
    return {
        "variant": f"PyTorch {torch.__version__} nn.{CELLS[peer['cell']]}",
        "pytorch": True,
        **timing(spec.steps, *marks.values()),
    }


def main(argv: list[str] | None = None) -> int:
    spec_json, peer_json = argv or sys.argv[1:]
    spec = Spec(**json.loads(spec_json))
    apply_thread_environment(spec.threads)
    try:
        import torch
    except ImportError as error:  # e.g. a PyPI wheel installed without its CUDA libraries
        print(f"error: torch does not import ({error}): {INSTALL}", file=sys.stderr)
        return 2
    torch.set_num_threads(spec.threads)
    torch.set_num_interop_threads(spec.threads)
    print(json.dumps([train(spec, json.loads(peer_json))]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
