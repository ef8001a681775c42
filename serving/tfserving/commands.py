"""The Docker commands that build and run the TF Serving image over a model base folder, an
example ``curl`` request per graph, and ``--serve``, which runs them."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from serving.errors import UserError
from serving.tfserving import config

IMAGE = "keras-rnn-tfserving"
DOCKERFILE = Path(__file__).with_name("Dockerfile")
GRPC_PORT, REST_PORT = 8500, 8501  # TF Serving's own defaults, set in the Dockerfile
_EXAMPLE_LENGTH = 2  # steps of each variable dimension in an example input
_LONGEST_BODY = 200  # characters of an example request printed on one line


def build_argv() -> list[str]:
    """``docker build`` with the Dockerfile on stdin: it copies nothing, so no context is sent."""
    return ["docker", "build", "--tag", IMAGE, "-"]


def run_argv(out: Path, publish: tuple[str, ...] | None = None, detach: bool = False) -> list[str]:
    """``docker run`` of the image with ``out`` mounted read-only at ``/models``; ``publish``
    maps the ports (default: 8500 gRPC and 8501 REST on the same host ports). ``--init`` gives
    the server a PID 1 that passes Ctrl-C on."""
    if publish is None:
        publish = (f"{GRPC_PORT}:{GRPC_PORT}", f"{REST_PORT}:{REST_PORT}")
    ports = [arg for mapping in publish for arg in ("--publish", mapping)]
    mount = ["--volume", f"{os.path.abspath(out)}:{config.MOUNT}:ro"]
    return [
        "docker",
        "run",
        *(["--detach"] if detach else []),
        "--rm",
        "--init",
        *ports,
        *mount,
        IMAGE,
    ]


def build_command() -> str:
    """``build_argv`` as a shell line."""
    return f"{shlex.join(build_argv())} < {shlex.quote(str(DOCKERFILE.resolve()))}"


def run_command(out: Path) -> str:
    """``run_argv(out)`` as a shell line."""
    return shlex.join(run_argv(out))


def example_inputs(entry: dict[str, Any]) -> dict[str, Any]:
    """An input of one row for a manifest graph entry: its names, dtypes and shapes, each
    variable dimension ``_EXAMPLE_LENGTH`` long; the values are placeholders."""
    return {spec["name"]: [_nested(spec["shape"][1:], spec["dtype"])] for spec in entry["inputs"]}


def _nested(dims: list[int | None], dtype: str) -> Any:
    if not dims:
        return "text" if dtype == "string" else 0.5 if dtype.startswith("float") else 1
    return [_nested(dims[1:], dtype)] * (dims[0] or _EXAMPLE_LENGTH)


def curl_command(entry: dict[str, Any], host: str = f"localhost:{REST_PORT}") -> str:
    """A REST predict request of ``example_inputs`` (columnar: ``{"inputs": {...}}``), or, for
    inputs too wide to write on a line, the request for the graph's metadata (its signature)."""
    body = json.dumps({"inputs": example_inputs(entry)}, ensure_ascii=False)
    model = f"http://{host}/v1/models/{entry['name']}"
    if len(body) > _LONGEST_BODY:
        return f"curl -s {model}/metadata"
    return f"curl -s -X POST {model}:predict -d {shlex.quote(body)}"


def check_docker() -> None:
    """Raise ``UserError`` unless ``docker`` is on PATH and its engine answers."""
    if shutil.which("docker") is None:
        raise UserError(
            "docker is not installed (not on PATH): install Docker, or run the printed "
            "commands on a machine that has it (drop --serve)"
        )
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        raise UserError("the Docker engine did not answer docker info within 60 s") from None
    if info.returncode != 0 or not info.stdout.strip():
        said = [line for line in info.stderr.splitlines() if line.strip()]
        raise UserError(f"no Docker engine answers: {said[-1] if said else 'docker info failed'}")


def build_image() -> None:
    """``docker build`` of the image (its output on the terminal); ``UserError`` if it fails."""
    if not DOCKERFILE.is_file():
        raise UserError(f"{DOCKERFILE} is missing: run --serve from a checkout of keras-rnn")
    with DOCKERFILE.open("rb") as dockerfile:
        status = subprocess.run(build_argv(), stdin=dockerfile).returncode
    if status != 0:
        raise UserError(f"docker build failed (exit status {status}): see its messages above")


def exec_run(out: Path) -> None:
    """Replace this process with ``docker run`` in the foreground (Ctrl-C stops the server)."""
    sys.stdout.flush()
    sys.stderr.flush()
    argv = run_argv(out)
    os.execvp(argv[0], argv)
