"""The charlm task's text, without TensorFlow: the embedded corpus or ``--text``, and where
its validation and test parts start (``benchmarks.xz`` reads the same parts)."""

from __future__ import annotations

import hashlib
import sysconfig
from pathlib import Path
from typing import Any

from keras_rnn.errors import UserError
from keras_rnn.tasks.charlm import Config
from serving import cli

# Standard-library modules of the embedded corpus, in this order (paths under stdlib).
CORPUS = (
    "argparse.py", "ast.py", "calendar.py", "collections/__init__.py", "configparser.py",
    "csv.py", "dataclasses.py", "datetime.py", "difflib.py", "email/message.py", "enum.py",
    "fractions.py", "functools.py", "gettext.py", "heapq.py", "http/client.py", "inspect.py",
    "json/decoder.py", "json/encoder.py", "locale.py", "logging/__init__.py", "pathlib.py",
    "pprint.py", "random.py", "shutil.py", "statistics.py", "string.py", "subprocess.py",
    "tarfile.py", "textwrap.py", "threading.py", "tokenize.py", "typing.py", "zipfile.py",
)  # fmt: skip


def read_text(config: Config) -> tuple[str, dict[str, Any]]:
    """The training text and what config.json records about it."""
    if config.text:
        path = cli.input_file(config.text, "text")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise UserError(f"{path} is not UTF-8 text (byte {error.start})") from None
        source = {"kind": "text file", "file": path.name}
    else:
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        text = "".join((stdlib / name).read_text(encoding="utf-8") for name in CORPUS)
        source = {"kind": "Python standard library", "files": list(CORPUS)}
    if not text.strip():
        raise UserError(f"{config.text or 'the corpus'} is empty: nothing to learn from")
    source["characters"] = len(text)
    source["text_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return text, source


def split_points(length: int, config: Config) -> tuple[int, int]:
    """Where the validation and the test parts of a text of ``length`` characters start: the
    test part is its last ``test_fraction``, validation the ``val_fraction`` before it."""
    test_start = length - round(length * config.test_fraction)
    return test_start - round(length * config.val_fraction), test_start
