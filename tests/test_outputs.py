"""Files and folders the user names (serving/outputs.py): never inside a run directory or an
export, never over a file of someone else's without --force, one UserError for the rest."""

from __future__ import annotations

import os
import re

import pytest

from keras_rnn.runs import write_json
from serving.errors import UserError
from serving.outputs import check_output_file, create_folder, owned_folder_kind
from tests.test_runs import make_run, snapshot

SUFFIXES = {"png", "pdf"}


def ours(path) -> bool:
    return path.read_bytes() == b"ours"


def check(path, force: bool = False):
    return check_output_file(str(path), "--plot", SUFFIXES, force, ours)


def make_export(path):
    path.mkdir(parents=True, exist_ok=True)
    write_json(path / "manifest.json", {"task": "sine", "opset": 17, "graphs": []})
    return path


def test_run_directories_and_exports_are_recognised_by_their_marker(tmp_path):
    assert owned_folder_kind(make_run(tmp_path / "run")) == "run directory"
    assert owned_folder_kind(make_export(tmp_path / "export")) == "export"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"config": "someone else\'s"}')
    assert owned_folder_kind(tmp_path / "other") is None


def test_nothing_is_written_inside_a_run_or_an_export_even_with_force(tmp_path):
    run = make_run(tmp_path / "run", "model.keras", "plots/loss.png")
    export = make_export(run / "export")
    (tmp_path / "link").symlink_to(run / "plots")
    (tmp_path / "model.png").symlink_to(run / "model.keras")
    before = snapshot(run)
    for path, kind, folder in (
        (run / "model.keras", "run directory", run),
        (run / "plots" / "new.png", "run directory", run),
        (run / "plots" / "deeper" / "x.png", "run directory", run),
        (export / "onnx" / "a.png", "export", export),
        (tmp_path / "link" / "a.png", "run directory", run),  # through a link
        (tmp_path / "link" / ".." / "x.png", "run directory", run),  # run/x.png, really
        (tmp_path / "model.png", "run directory", run),  # a link to a file in the run
    ):
        for force in (False, True):
            with pytest.raises(UserError) as error:
                check(path, force)
            message = str(error.value)
            assert message.startswith(f"--plot {path} is inside the {kind} "), message
            assert str(folder) in message and "pick a path outside it" in message
    assert snapshot(run) == before


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "--plot is an empty name"),
        ("{tmp}", "is a folder"),
        ("{tmp}/new/", "is a folder"),
        ("{tmp}/figure.txt", "has the suffix .txt: end it with one of .pdf, .png"),
        ("{tmp}/figure", "has no suffix: end it with one of .pdf, .png"),
        ("{tmp}/a/b/figure.png", "a/b does not exist: create it first"),
        ("{tmp}/file.png/figure.png", "file.png is not a folder"),
        ("/proc/figure.png", "cannot write in /proc"),
        ("{tmp}/fifo.png", "is not a regular file"),
        ("{tmp}/theirs.png", "exists and this project did not write it: pass --force"),
        ("{tmp}/link.png", "exists and this project did not write it: pass --force"),
    ],
)
def test_what_cannot_or_may_not_be_written_is_refused(name, fragment, tmp_path):
    (tmp_path / "file.png").write_bytes(b"ours")
    (tmp_path / "theirs.png").write_bytes(b"theirs")
    (tmp_path / "link.png").symlink_to(tmp_path / "file.png")  # a link is never ours
    os.mkfifo(tmp_path / "fifo.png")
    before = snapshot(tmp_path)
    with pytest.raises(UserError, match=re.escape(fragment)):
        check(name.replace("{tmp}", str(tmp_path)))
    assert snapshot(tmp_path) == before  # missing folders are not created, probes are gone


def test_a_new_file_or_one_of_ours_may_be_written_and_force_replaces_others(tmp_path):
    (tmp_path / "ours.png").write_bytes(b"ours")
    (tmp_path / "theirs.PDF").write_bytes(b"theirs")
    assert check(tmp_path / "new.png") == tmp_path / "new.png"
    assert check(tmp_path / "ours.png") == tmp_path / "ours.png"
    assert check(tmp_path / "theirs.PDF", force=True) == tmp_path / "theirs.PDF"
    assert sorted(os.listdir(tmp_path)) == ["ours.png", "theirs.PDF"]


def test_a_folder_that_cannot_be_created_is_one_user_error(tmp_path):
    (tmp_path / "file").write_text("x")
    create_folder(tmp_path / "a" / "b", "--runs")
    assert (tmp_path / "a" / "b").is_dir()
    with pytest.raises(UserError, match=r"--runs .*file/runs: cannot create it"):
        create_folder(tmp_path / "file" / "runs", "--runs")
