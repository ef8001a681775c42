"""Run directory rules: nothing overwritten without --force, atomic writes, clear errors."""

import json

import pytest

from keras_rnn.errors import UserError
from keras_rnn.runs import atomic_save, prepare_run_dir, read_json, write_json


def test_new_run_dir_is_created(tmp_path):
    run = prepare_run_dir(tmp_path / "a" / "run")
    assert run.path.is_dir() and not run.complete


def test_existing_run_is_refused_then_replaced_with_force(tmp_path):
    run = prepare_run_dir(tmp_path / "run")
    write_json(run.config_json, {"config": {}})
    with pytest.raises(UserError, match="exists: pass --force to overwrite it, or --resume"):
        prepare_run_dir(run.path)
    assert run.config_json.is_file()  # nothing lost
    prepare_run_dir(run.path, force=True)
    assert not any(run.path.iterdir())


def test_a_non_run_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="or another --run-dir"):
        prepare_run_dir(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


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
