"""python -m export.model and export.model.export_model: Keras models this project did not
train, built here as a user would, exported fused with parity; and the refusals."""

import contextlib
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import onnx
import onnxruntime
import pytest

from export import parity
from export.consumers import embedding_sizes
from export.model import export_model
from export.model.__main__ import main as model_main
from export.model.inputs import LENGTHS
from export.parity import BATCH_SIZES
from export.warmup import WARMUP_FILE
from keras_rnn.errors import UserError
from serving.runtime.graph import load_graph
from tests.battery import op_types
from tests.conftest import (
    REPO,
    assert_user_error,
    interrupt_while_building,
    without_tensorflow,
)
from tests.test_runs import dead_pid, make_run, snapshot

LAYOUT = ["manifest.json", "onnx", "parity.json", "savedmodel", "triton"]
# kind -> (graph name, its recurrent cell, its fused ONNX nodes)
KINDS = {"sequential": ("frame_tagger", "gru", "2 GRU"), "functional": ("scorer", "lstm", "1 LSTM")}


def masked_sequential() -> keras.Model:
    """Frames (all-zero steps pad) -> Masking -> bidirectional GRU -> logits at every step."""
    return keras.Sequential(
        [
            keras.Input((None, 3), name="frames"),
            keras.layers.Masking(0.0),
            keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True)),
            keras.layers.Dense(2, name="logits"),
        ],
        name="frame tagger",  # not a valid graph name: the export makes it one
    )


def functional_with_ids() -> keras.Model:
    """Token ids (Embedding, 0 masks) and a static vector -> LSTM -> two heads, as lists."""
    ids = keras.Input((None,), dtype="int32", name="ids")
    static = keras.Input((3,), name="static")
    hidden = keras.layers.LSTM(4)(keras.layers.Embedding(12, 4, mask_zero=True)(ids))
    joined = keras.layers.Concatenate()([hidden, static])
    heads = [
        keras.layers.Dense(1, name="score")(joined),
        keras.layers.Dense(2, name="probs")(joined),
    ]
    return keras.Model([ids, static], heads, name="scorer")


def quietly(main, argv: list) -> tuple[int, str]:
    """``main(argv)`` in-process; its exit status and what it printed on stdout."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = main([str(arg) for arg in argv])
    return status, stdout.getvalue()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """Each model of KINDS saved to a .keras file of its own folder."""
    folder = tmp_path_factory.mktemp("models")
    models = {"sequential": masked_sequential(), "functional": functional_with_ids()}
    for kind, model in models.items():
        model.save(folder / f"{kind}.keras")
    return {kind: folder / f"{kind}.keras" for kind in models}


@pytest.fixture(scope="module")
def converted(saved, tmp_path_factory) -> dict[str, tuple[Path, int, str]]:
    """Each saved model converted by the CLI: (OUT_DIR, exit status, stdout). Tests must not
    change these folders (copy them first)."""
    results = {}
    for kind, path in saved.items():
        out = tmp_path_factory.mktemp(kind) / "out"
        results[kind] = (out, *quietly(model_main, [path, out]))
    return results


@pytest.mark.parametrize("kind", KINDS)
def test_cli_writes_the_export_layout_fused_with_parity(kind, converted):
    out, status, stdout = converted[kind]
    name, cell, node = KINDS[kind]
    assert status == 0, stdout
    assert sorted(path.name for path in out.iterdir()) == LAYOUT
    assert [path.name for path in out.parent.iterdir()] == ["out"]  # no temporaries
    savedmodel = out / "savedmodel" / name / "1"
    assert (savedmodel / "saved_model.pb").is_file() and (savedmodel / WARMUP_FILE).is_file()
    assert (out / "triton" / name / "config.pbtxt").is_file()
    ops = set(op_types(onnx.load(str(out / "onnx" / f"{name}.onnx")).graph))
    assert node.split()[1] in ops and not ops & {"Loop", "Scan"}, ops
    report = json.loads((out / "parity.json").read_text())
    (entry,) = report["graphs"]
    assert report["ok"] and entry["ok"] and entry["fused"] and entry["name"] == name
    assert entry["max_abs_diff_onnx"] <= entry["atol"] == parity.ATOL[cell]
    assert entry["max_abs_diff_savedmodel"] <= entry["atol"]
    sequence = "frames" if kind == "sequential" else "ids"
    tested = {tuple(shapes[sequence][:2]) for shapes in entry["shapes_tested"]}
    assert {(batch, length) for batch in BATCH_SIZES for length in LENGTHS} <= tested
    # the masked input is also tried with left padding, gaps and fully masked rows
    assert entry["masks_tested"][2] == "gapped batch: left-padded, gaps, fully masked, fully valid"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"] == "keras_model" and manifest["model"] == f"{kind}.keras"
    assert manifest["graphs"][0]["onnx"] == f"onnx/{name}.onnx"
    assert f"| {name} | " in stdout and f"| {node} | yes |" in stdout
    written = "manifest.json, onnx/, parity.json, savedmodel/, triton/"
    assert stdout.rstrip().endswith(f"export: {out} ({written})")


def test_names_come_from_the_model(converted):
    """Inputs are named after the model's inputs, outputs after the layers that make them;
    the masked input is the one that feeds Masking or Embedding(mask_zero=True)."""
    graphs = {
        kind: json.loads((converted[kind][0] / "manifest.json").read_text())["graphs"][0]
        for kind in KINDS
    }
    sequential, functional = graphs["sequential"], graphs["functional"]
    assert [(i["name"], i["shape"], i["dtype"]) for i in sequential["inputs"]] == [
        ("frames", [None, None, 3], "float32")
    ]
    assert [(o["name"], o["shape"]) for o in sequential["outputs"]] == [("logits", [None, None, 2])]
    assert [(i["name"], i["shape"], i["dtype"]) for i in functional["inputs"]] == [
        ("ids", [None, None], "int32"),
        ("static", [None, 3], "float32"),
    ]
    assert [o["name"] for o in functional["outputs"]] == ["score", "probs"]
    assert sequential["masked_input"] == {"name": "frames", "pad_value": 0.0}
    assert functional["masked_input"] == {"name": "ids", "pad_value": 0}
    assert [i.get("range") for i in functional["inputs"]] == [[0, 12], None]  # Embedding(12)


def test_served_ids_stay_within_the_embedding(converted):
    """The manifest's range is checked before the graph runs: onnxruntime would wrap -1
    (Gather) and fail on 12."""
    graph = load_graph(converted["functional"][0], "scorer")
    static = np.zeros((1, 3), np.float32)
    assert graph(ids=np.array([[11, 0]]), static=static)["probs"].shape == (1, 2)
    for bad in (12, -1):
        with pytest.raises(UserError, match=f"input ids holds {bad}, outside its range 0 to 11"):
            graph(ids=np.array([[1, bad]]), static=static)


def fresh_inputs(kind: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Inputs parity did not draw, with rows padded on the right, on the left and with a gap."""
    if kind == "sequential":
        frames = rng.normal(size=(4, 9, 3)).astype(np.float32)
        frames[0, 6:] = frames[1, :3] = frames[2, 4] = 0.0
        return {"frames": frames}
    ids = rng.integers(1, 12, size=(4, 9)).astype(np.int32)
    ids[0, 6:] = ids[1, :3] = ids[2, 4] = 0
    return {"ids": ids, "static": rng.normal(size=(4, 3)).astype(np.float32)}


@pytest.mark.parametrize("kind", KINDS)
def test_onnxruntime_gives_the_saved_models_answer(kind, saved, converted):
    name, cell, _ = KINDS[kind]
    model = keras.models.load_model(saved[kind])
    inputs = fresh_inputs(kind, np.random.default_rng(7))
    outputs = model(list(inputs.values()) if kind == "functional" else inputs["frames"])
    outputs = outputs if kind == "functional" else [outputs]
    names = ["score", "probs"] if kind == "functional" else ["logits"]
    session = onnxruntime.InferenceSession(str(converted[kind][0] / "onnx" / f"{name}.onnx"))
    assert sorted(output.name for output in session.get_outputs()) == sorted(names)
    for got, expected in zip(session.run(names, inputs), outputs, strict=True):
        expected = keras.ops.convert_to_numpy(expected)
        np.testing.assert_allclose(got, expected, atol=parity.ATOL[cell])


def test_function_exports_a_model_in_memory(tmp_path, capsys):
    """export_model takes the model itself, and the runtime facts to record beside it. Ids
    that feed an Embedding stay below its input_dim (Keras refuses an id past it, so parity
    would fail)."""
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    hidden = keras.layers.GRU(4)(keras.layers.Embedding(5, 4)(tokens))
    model = keras.Model(tokens, keras.layers.Dense(1, name="count")(hidden), name="counter")
    out = tmp_path / "exports" / "out"  # its parent is made too
    report = export_model(model, out, runtime={"vocab_size": 5})
    assert load_graph(out).runtime == {"vocab_size": 5, "task": "keras_model"}
    (entry,) = report["graphs"]
    assert report["ok"] and entry["fused"] and entry["masks_tested"] == []
    assert report == json.loads((out / "parity.json").read_text())
    assert sorted(path.name for path in out.iterdir()) == LAYOUT
    assert "note:" not in capsys.readouterr().err
    session = onnxruntime.InferenceSession(str(out / "onnx" / "counter.onnx"))
    ids = np.random.default_rng(3).integers(0, 5, size=(3, 11)).astype(np.int32)
    (got,) = session.run(["count"], {"tokens": ids})
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(model(ids)), atol=1e-4)


@pytest.mark.parametrize(
    ("runtime", "fragment"),
    [
        ({"task": "charlm"}, "runtime facts may not set task"),
        ({"units": np.int64(4)}, "runtime facts must be JSON"),
        ({1: "a"}, "runtime facts must be keyed by strings"),
    ],
)
def test_runtime_facts_the_manifest_cannot_hold_are_refused(runtime, fragment, tmp_path):
    model = keras.Sequential([keras.Input((None, 2)), keras.layers.GRU(2)])
    with pytest.raises(UserError, match=fragment):
        export_model(model, tmp_path / "out", runtime=runtime)
    assert not (tmp_path / "out").exists()


def test_a_model_without_recurrent_layers_is_exported_with_a_note(tmp_path, capsys):
    model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2)], name="plain")
    model.save(tmp_path / "plain.keras")
    assert quietly(model_main, [tmp_path / "plain.keras", tmp_path / "out"])[0] == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == ["note: plain has no recurrent layer: exported anyway, with nothing to fuse"]
    (entry,) = json.loads((tmp_path / "out" / "parity.json").read_text())["graphs"]
    assert entry["ok"] and entry["recurrent_layers"] == []


def test_force_replaces_only_an_output_of_its_own(saved, converted, tmp_path, cli_error):
    """Without --force an existing OUT_DIR stays as it was; with it, our own is replaced
    (files inside it too), and what a killed conversion into it left beside it goes."""
    out = tmp_path / "out"
    shutil.copytree(converted["sequential"][0], out)
    before = snapshot(out)
    cli_error(model_main, [saved["sequential"], out], "out exists: pass --force")
    assert snapshot(out) == before
    (out / "onnx" / "stale.onnx").write_text("x")
    dead = f".export.tmp-{dead_pid()}"
    stale, kept = tmp_path / f"{dead}-out", [tmp_path / f"{dead}-other", tmp_path / "notes"]
    for folder in (stale, *kept):
        folder.mkdir()
    assert quietly(model_main, [saved["sequential"], out, "--force"])[0] == 0
    assert not (out / "onnx" / "stale.onnx").exists()
    assert sorted(path.name for path in out.iterdir()) == LAYOUT
    assert sorted(tmp_path.iterdir()) == sorted([out, *kept])


def test_force_leaves_folders_it_did_not_write_alone(saved, tmp_path, cli_error):
    model = saved["sequential"]
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    run_export = tmp_path / "export"  # a run's export/ (python -m export), not ours
    run_export.mkdir()
    (run_export / "manifest.json").write_text('{"task": "sine", "opset": 17, "graphs": []}')
    (tmp_path / "file").write_text("mine")
    before = snapshot(tmp_path)
    for force in ([], ["--force"]):
        cli_error(model_main, [model, user, *force], "has no manifest.json")
        cli_error(model_main, [model, tmp_path / "file", *force], "is a file")
    cli_error(model_main, [model, run_export, "--force"], "sine run", "--force leaves it alone")
    assert snapshot(tmp_path) == before


def test_out_dir_is_never_inside_a_run_or_an_export(saved, tmp_path, cli_error):
    run = make_run(tmp_path / "run", "model.keras")
    export = run / "export"
    export.mkdir()
    (export / "manifest.json").write_text('{"task": "sine", "opset": 17, "graphs": []}')
    before = snapshot(tmp_path)
    for out, kind in ((run / "mine", "run directory"), (export, "run directory")):
        for force in ([], ["--force"]):
            cli_error(model_main, [saved["sequential"], out, *force], f"is inside the {kind} ")
    cli_error(model_main, [saved["sequential"], export / "onnx" / "mine"], "inside the export")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("problem", ["missing", "folder", "garbage", "no config", "legacy h5"])
def test_a_file_that_is_not_a_keras_model_is_one_line(problem, tmp_path, cli_error):
    path = tmp_path / "model.keras"
    if problem == "folder":
        path.mkdir()
    elif problem == "garbage":
        path.write_bytes(b"not a model")
    elif problem == "no config":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "a zip archive, not a model")
    elif problem == "legacy h5":
        path = tmp_path / "model.h5"
        keras.Sequential([keras.Input((None, 2)), keras.layers.GRU(2)]).save(path)
    fragment = {
        "missing": "model file not found",
        "folder": "is a folder, not a Keras model file",
        "garbage": "not a zip archive",
        "no config": "a zip archive but not a Keras model file (no config.json)",
        "legacy h5": "legacy .h5 format",
    }[problem]
    before = snapshot(tmp_path)
    cli_error(model_main, [path, tmp_path / "out"], str(path), fragment)
    assert snapshot(tmp_path) == before


CUSTOM_LAYER = """
import keras


@keras.saving.register_keras_serializable(package="user")
class Doubled(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x
"""


def test_a_custom_layer_keras_cannot_find_is_named_and_import_finds_it(
    tmp_path, monkeypatch, cli_error
):
    """The class is named with the flag that makes it importable; with that flag the model
    converts."""
    (tmp_path / "user_layers_14.py").write_text(CUSTOM_LAYER)
    monkeypatch.syspath_prepend(str(tmp_path))
    from user_layers_14 import Doubled  # registers user>Doubled

    model = keras.Sequential([keras.Input((None, 2)), Doubled(), keras.layers.GRU(4)])
    model.save(tmp_path / "custom.keras")
    registered = keras.saving.get_custom_objects()
    registered.pop("user>Doubled")  # as in a fresh process that never imported the module
    monkeypatch.delitem(sys.modules, "user_layers_14")
    argv = [tmp_path / "custom.keras", tmp_path / "out"]
    cli_error(model_main, argv, "uses user>Doubled (module user_layers_14)", "--import MODULE")
    assert not (tmp_path / "out").exists()
    try:
        assert quietly(model_main, [*argv, "--import", "user_layers_14"])[0] == 0
    finally:
        registered.pop("user>Doubled", None)
    (entry,) = json.loads((tmp_path / "out" / "parity.json").read_text())["graphs"]
    assert entry["ok"] and entry["fused"]
    cli_error(model_main, [*argv[:1], tmp_path / "o2", "--import", "no_such_module_14"], "no_such")


def test_a_class_of_the_saving_script_is_named_and_import_finds_it(
    tmp_path, monkeypatch, cli_error
):
    """Keras writes no module for a class defined in ``__main__``: the class is named, not
    Keras's "could not be deserialized properly"; with --import of a module that defines it
    now, the model converts."""
    registration = '@keras.saving.register_keras_serializable(package="user")\n'
    (tmp_path / "moved_layers_21.py").write_text(CUSTOM_LAYER.replace(registration, ""))
    monkeypatch.syspath_prepend(str(tmp_path))
    from moved_layers_21 import Doubled  # not registered

    monkeypatch.setattr(Doubled, "__module__", "__main__")  # as if the saving script defined it
    model = keras.Sequential([keras.Input((None, 2)), Doubled(), keras.layers.GRU(4)])
    model.save(tmp_path / "script.keras")
    monkeypatch.delitem(sys.modules, "moved_layers_21")
    argv = [tmp_path / "script.keras", tmp_path / "out"]
    cli_error(model_main, argv, "uses Doubled (defined in a script)", "--import MODULE")
    assert quietly(model_main, [*argv, "--import", "moved_layers_21"])[0] == 0


def test_cheap_checks_come_before_tensorflow(tmp_path):
    """A missing model file and a taken OUT_DIR are refused with TensorFlow unimportable."""
    blocker = without_tensorflow("export.model", blocked=("tensorflow", "keras", "tf2onnx"))
    (tmp_path / "model.keras").write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    for args, fragment in (
        ([tmp_path / "missing.keras", tmp_path / "out"], "model file not found"),
        ([tmp_path / "model.keras", tmp_path / "out"], "no config.json"),
        ([tmp_path / "missing.keras", tmp_path / "taken"], "model file not found"),
    ):
        done = subprocess.run(
            [sys.executable, "-c", blocker, *map(str, args)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert_user_error(done.returncode, done.stderr, fragment)


def test_parity_failure_exits_1_and_writes_nothing(saved, tmp_path, monkeypatch, capsys):
    """Also the folders it made for OUT_DIR go again."""
    monkeypatch.setitem(parity.ATOL, "gru", -1.0)  # no difference can pass
    assert quietly(model_main, [saved["sequential"], tmp_path / "new" / "out"])[0] == 1
    assert capsys.readouterr().err.splitlines()[-1] == "error: parity failed: nothing was written"
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_leaves_nothing_behind(saved, tmp_path):
    """SIGINT while the output is being built: status 130, one line, nothing beside it."""
    out = tmp_path / "out"
    returncode, stderr = interrupt_while_building(
        ["export.model", saved["sequential"], out], tmp_path
    )
    assert returncode == 130, stderr
    assert stderr.splitlines() == [f"interrupted: nothing new was written to {out}"]
    assert list(tmp_path.iterdir()) == []


def test_parity_inputs_follow_the_input_specs():
    """Sizes a first call recorded are noted (the batch freed); ids stay below input_dim, with
    0 as padding only where it masks; an input that feeds no Embedding draws small ids."""
    from export.model.graph import model_graph

    built = keras.Sequential([keras.layers.GRU(4)], name="built")
    built(np.zeros((2, 6, 3), np.float32))  # built by a call: batch 2, length 6
    graph, notes = model_graph(built)
    (name,) = graph.inputs  # the input layer's name, numbered by Keras
    assert graph.inputs[name] == ((None, 6, 3), "float32") and graph.lengths == (6,)
    assert notes == [
        f"input {name} was built for batch size 2: the export takes any batch size",
        f"input {name} has a fixed length of 6 steps (as the model was built): "
        "the export takes only that length",
    ]
    ids, plain = keras.Input((None,), dtype="int32", name="ids"), keras.Input((4,), dtype="int32")
    embedded = keras.layers.Embedding(7, 2, mask_zero=True)(ids)
    joined = keras.layers.Concatenate()(
        [keras.layers.LSTM(3)(embedded), keras.ops.cast(plain, "float32")]
    )
    graph, notes = model_graph(keras.Model([ids, plain], joined, name="two"))
    other = next(name for name in graph.inputs if name != "ids")
    assert notes == [f"input {other} (int32) feeds no Embedding: parity draws it from 0 to 1"]
    rng = np.random.default_rng(0)
    for batch in graph.sample(50, 20, rng), graph.sample(50, 8, rng):
        drawn, small = batch["ids"], batch[other]
        assert drawn.dtype == np.int32 and drawn.max() == 6 and drawn.min() == 0
        assert (drawn[:, 0] > 0).all()  # every row keeps a valid step; padding is on the right
        assert ((drawn[:, 1:] > 0) <= (drawn[:, :-1] > 0)).all()
        assert small.shape == (50, 4) and set(np.unique(small)) == {0, 1}
    assert (
        graph.masked_input == "ids" and graph.pad_value == 0 and graph.atol == parity.ATOL["lstm"]
    )
    assert embedding_sizes(graph.model) == {"ids": 7}  # the other int input has no range


@pytest.mark.parametrize("problem", ["stateful", "subclassed", "strings", "a layer"])
def test_models_a_graph_cannot_serve_are_refused(problem):
    from export.model.graph import model_graph

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    if problem == "stateful":
        x = keras.Input((None, 2), batch_size=3)
        model = keras.Model(x, keras.layers.GRU(2, stateful=True, name="memory")(x))
    elif problem == "strings":
        x = keras.Input((1,), dtype="string", name="text")
        model = keras.Model(x, keras.layers.StringLookup(vocabulary=["a"])(x))
    else:
        model = Subclassed() if problem == "subclassed" else keras.layers.GRU(2)
    fragment = {
        "stateful": "layer memory is stateful",
        "subclassed": "has no inputs defined",
        "strings": "input text takes strings",
        "a layer": "expected a keras.Model, got GRU",
    }[problem]
    with pytest.raises(UserError, match=fragment):
        model_graph(model)
