"""Run directory rules: nothing overwritten without --force, atomic writes, clear errors."""

import json
import os
import re
import stat
import subprocess
import sys

import pytest

from keras_rnn.errors import UserError
from keras_rnn.runs import (
    RunDir,
    atomic_save,
    atomic_write_bytes,
    check_export_dir,
    check_run_dir,
    not_a_run,
    prepare_run_dir,
    read_json,
    remove_stale_temporaries,
    write_json,
)


def test_new_run_dir_is_created(tmp_path):
    run = prepare_run_dir(tmp_path / "a" / "run")
    assert run.path.is_dir() and not run.complete


def test_existing_run_is_refused_then_replaced_with_force(tmp_path):
    run = prepare_run_dir(tmp_path / "run")
    write_json(run.config_json, our_config())
    with pytest.raises(UserError, match="exists: pass --force to overwrite it, or --resume"):
        prepare_run_dir(run.path)
    assert run.config_json.is_file()  # nothing lost
    prepare_run_dir(run.path, force=True)
    assert not any(run.path.iterdir())


def test_a_non_run_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a run of this project: pick another --run-dir"):
        prepare_run_dir(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_a_run_dir_inside_a_run_or_an_export_is_refused(tmp_path):
    run = make_run(tmp_path / "run", "model.keras")
    write_json(run / "export" / "manifest.json", {"task": "sine", "opset": 17, "graphs": []})
    before = snapshot(tmp_path)
    for path, kind in ((run / "plots", "run directory"), (run / "export" / "a", "export")):
        for force, resume in ((False, False), (True, False), (False, True)):
            with pytest.raises(
                UserError, match=re.escape(f"--run-dir {path} is inside the {kind} ")
            ):
                prepare_run_dir(path, force=force, resume=resume)
    assert snapshot(tmp_path) == before


def test_resume_rules(tmp_path):
    with pytest.raises(UserError, match=r"has no config\.json"):
        prepare_run_dir(tmp_path / "never", resume=True)
    run = prepare_run_dir(tmp_path / "run")
    write_json(run.config_json, {"config": {}})
    assert prepare_run_dir(run.path, resume=True) == run
    write_json(run.metrics_json, {})
    with pytest.raises(UserError, match="finished already"):
        prepare_run_dir(run.path, resume=True)
    with pytest.raises(UserError, match="contradict"):
        prepare_run_dir(run.path, resume=True, force=True)


def test_atomic_save_leaves_old_file_when_saving_fails(tmp_path):
    target = tmp_path / "model.weights.h5"
    target.write_text("old")

    def broken_save(path):
        path.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_save(target, broken_save)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.weights.h5"]


def test_atomic_save_keeps_suffix_for_keras(tmp_path):
    seen = []
    atomic_save(tmp_path / "model.keras", lambda p: (seen.append(p.name), p.write_text("x")))
    assert seen[0].endswith("model.keras") and (tmp_path / "model.keras").read_text() == "x"


def test_read_json_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="missing"):
        read_json(tmp_path / "config.json")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UserError, match=r"config\.json is not valid JSON"):
        read_json(tmp_path / "config.json")
    write_json(tmp_path / "ok.json", {"a": [1, 2]})
    assert json.loads((tmp_path / "ok.json").read_text()) == {"a": [1, 2]}


def our_config() -> dict:
    """A config.json as keras_rnn.train writes it (the parts the --force rule reads)."""
    return {"config": {"task": "sine", "cell": "lstm"}, "data": {}, "environment": {}}


def make_run(path, *entries):
    """A run directory of ours, with ``entries`` (files) beside its config.json."""
    path.mkdir(parents=True, exist_ok=True)
    write_json(path / "config.json", our_config())
    for entry in entries:
        (path / entry).parent.mkdir(parents=True, exist_ok=True)
        (path / entry).write_text("x")
    return path


def dead_pid() -> int:
    """The id of a process that has exited (a temporary named after it is stale)."""
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


def snapshot(path):
    """Every entry under ``path`` with its bytes (None for folders), to prove nothing changed."""
    if path.is_file():
        return path.read_bytes()
    return {
        str(p.relative_to(path)): p.read_bytes() if p.is_file() else None for p in path.rglob("*")
    }


def test_force_replaces_a_run_of_ours_with_leftovers(tmp_path):
    pid = dead_pid()
    run = make_run(
        tmp_path / "run",
        "model.keras",
        "metrics.json",
        "history.csv",
        "plots/loss.png",
        "checkpoints/anything.weights.h5",
        "export/onnx/x.onnx",
        f".tmp-{pid}-metrics.json",
        f".export.tmp-{pid}/manifest.json",
        ".DS_Store",
    )
    write_json(run / "export" / "manifest.json", {"task": "sine", "opset": 17, "graphs": []})
    prepare_run_dir(run, force=True)
    assert not any(run.iterdir())


def test_force_accepts_an_empty_folder(tmp_path):
    assert prepare_run_dir(tmp_path, force=True).path == tmp_path


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: (p.mkdir(), (p / "notes.txt").write_text("mine")), "has no config.json written"),
        (lambda p: p.write_text("t,value\n0,1\n"), "is a file"),
        (lambda p: make_run(p, "notes.txt"), "also holds notes.txt, which no run writes"),
        (lambda p: make_run(p, ".tmp-notes"), "also holds .tmp-notes"),
        (lambda p: (p.mkdir(), (p / "config.json").write_text('{"config": {}}')), "no config.json"),
        (lambda p: (p.mkdir(), (p / "config.json").write_text("{not json")), "no config.json"),
        (
            lambda p: make_run(p, "export/notes.txt"),
            "has an export/ folder that has no manifest.json",
        ),
        (lambda p: p.symlink_to(make_run(p.with_name("target"))), "is a symbolic link"),
    ],
    ids=[
        "user-folder",
        "file",
        "user-file-in-run",
        "like-a-temporary",
        "foreign-config",
        "bad-json",
        "user-file-in-export",
        "symlink",
    ],
)
def test_force_refuses_what_is_not_a_run_and_leaves_it(make, fragment, tmp_path):
    path = tmp_path / "data.csv"
    make(path)
    before = snapshot(path)
    for force in (True, False):
        with pytest.raises(UserError, match="so it is not a run of this project") as error:
            check_run_dir(path, force=force)
        assert fragment in str(error.value) and "another --run-dir" in str(error.value)
        assert ("--force leaves it alone" in str(error.value)) == force
        with pytest.raises(UserError, match=re.escape(fragment)):
            prepare_run_dir(path, force=force)
    assert snapshot(path) == before


def test_export_dir_rules(tmp_path):
    export = tmp_path / "export"
    check_export_dir(export, force=False)  # nothing there
    export.mkdir()
    check_export_dir(export, force=False)  # an empty folder
    write_json(export / "manifest.json", {"task": "sine", "opset": 17, "graphs": []})
    (export / "onnx").mkdir()
    (export / "onnx" / "old.onnx").write_text("x")
    with pytest.raises(UserError, match="exists: pass --force to replace it"):
        check_export_dir(export, force=False)
    check_export_dir(export, force=True)
    (export / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"also holds notes\.txt.*not an export of this project"):
        check_export_dir(export, force=True)
    (export / "notes.txt").unlink()
    write_json(export / "manifest.json", {"models": []})
    with pytest.raises(UserError, match=r"has no manifest\.json written by python -m export"):
        check_export_dir(export, force=True)
    (export / "manifest.json").unlink()
    with pytest.raises(UserError, match=r"has no manifest\.json"):
        check_export_dir(export, force=True)


def test_stale_temporaries_go_and_the_rest_stays(tmp_path):
    dead, live = dead_pid(), os.getpid()
    stale = [
        f".tmp-{dead}-model.keras",
        f".tmp-{dead}-1a2b3c4d-config.json",
        f"checkpoints/.tmp-{dead}-best.weights.h5",
        f"plots/.tmp-{dead}-0f0f0f0f-loss.png",
        f"vocab/.tmp-{dead}-0f0f0f0f-vocab.json",
        f".export.tmp-{dead}/onnx/x.onnx",
        f".export.old-{dead}/manifest.json",
    ]
    kept = [
        f".tmp-{live}-model.keras",
        f".tmp-{os.getppid()}-0f0f0f0f-metrics.json",
        f".export.tmp-{live}/onnx/x.onnx",
        ".tmp-notes",
        f"checkpoints/tmp-{dead}-best.weights.h5",
        "history.csv",
    ]
    run = make_run(tmp_path / "run", *stale, *kept)
    remove_stale_temporaries(RunDir(run))
    for name in stale:  # a temporary folder goes whole
        assert not (run / (name.split("/")[0] if name.startswith(".") else name)).exists(), name
    for name in kept:
        assert (run / name).exists(), name


def test_resume_removes_stale_temporaries(tmp_path):
    dead = dead_pid()
    leftovers = [
        f"checkpoints/.tmp-{dead}-best.weights.h5",
        f"checkpoints/backup/.tmp-{dead}-random_state.json",
    ]
    run = make_run(tmp_path / "run", *leftovers, "history.csv")
    prepare_run_dir(run, resume=True)
    assert not any((run / leftover).exists() for leftover in leftovers)
    assert (run / "history.csv").exists()


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_get_the_mode_the_umask_gives(umask, mode, tmp_path):
    old = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {})
        atomic_write_bytes(tmp_path / "plots" / "b.png", b"png")
    finally:
        os.umask(old)
    for path in (tmp_path / "a.json", tmp_path / "plots" / "b.png"):
        assert stat.S_IMODE(path.stat().st_mode) == mode, oct(path.stat().st_mode)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.json", "b.png", "plots"]


def test_a_replaced_export_comes_back_when_its_replacement_never_arrived(tmp_path):
    """An export killed between moving the old export/ aside and moving the new one in."""
    dead = dead_pid()
    run = make_run(tmp_path / "run", f".export.old-{dead}/manifest.json")
    remove_stale_temporaries(RunDir(run))
    assert (run / "export" / "manifest.json").exists()
    assert not (run / f".export.old-{dead}").exists()


def test_a_force_delete_killed_at_any_step_leaves_a_run_that_force_still_takes(
    tmp_path, monkeypatch
):
    """Ctrl-C or a kill can end --force's delete after any file: what is left must still be
    a run of ours, or the next --force would refuse it and the user would delete by hand."""
    files = ["history.csv", "model.keras", "plots/loss.png", "checkpoints/best.weights.h5"]
    markers_first(monkeypatch)  # the worst order a file system may list them in
    for step in range(100):
        run = make_run(tmp_path / f"run-{step}", *files, "export/onnx/m.onnx")
        write_json(run / "export" / "manifest.json", {"task": "sine", "opset": 17, "graphs": []})
        done = 0

        def dying(real, step=step):
            def call(*args, **kwargs):
                nonlocal done
                if done == step:
                    raise KeyboardInterrupt  # the process ends here
                done += 1
                return real(*args, **kwargs)

            return call

        with monkeypatch.context() as killing:
            killing.setattr(os, "unlink", dying(os.unlink))
            killing.setattr(os, "rmdir", dying(os.rmdir))
            try:
                prepare_run_dir(run, force=True)
                finished = True
            except KeyboardInterrupt:
                finished = False
        if not finished:
            assert not_a_run(run) is None, (step, sorted(p.name for p in run.rglob("*")))
            continue
        assert list(run.iterdir()) == []
        break
    assert step > 5  # every file and folder was a place to be killed


def markers_first(monkeypatch) -> None:
    """Make directory listings put config.json and manifest.json first."""

    def later(name: str) -> bool:
        return name not in ("config.json", "manifest.json")

    class Listing(list):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    listdir, scandir = os.listdir, os.scandir

    def ordered_scandir(*args, **kwargs):
        with scandir(*args, **kwargs) as entries:
            return Listing(sorted(entries, key=lambda entry: later(entry.name)))

    monkeypatch.setattr(
        os, "listdir", lambda *args, **kwargs: sorted(listdir(*args, **kwargs), key=later)
    )
    monkeypatch.setattr(os, "scandir", ordered_scandir)


def test_a_folder_holding_only_our_temporaries_is_ours(tmp_path):
    """A run killed while writing its first file (config.json) leaves only a temporary."""
    run = tmp_path / "run"
    run.mkdir()
    (run / f".tmp-{dead_pid()}-0f0f0f0f-config.json").write_text("{")
    assert not_a_run(run) is None
    prepare_run_dir(run, force=True)
    assert list(run.iterdir()) == []
